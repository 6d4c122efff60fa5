//! The injected clock of a reference node: real time shifted by an offset and scaled by a rate.
//!
//! The process shell reads every timestamp through a `SkewClock`, and the admin API
//! (`POST /admin/clock {offset_ms, rate}`) changes it, so the nemesis can skew a node the
//! way a wrong NTP setting would. `SkewClock` itself reads no clock: real time comes in as
//! an argument (`real_ns`, nanoseconds since the Unix epoch), which keeps it testable.
//!
//! Guarantees: `set` takes effect from the instant it is given (`now(at) = at + offset`);
//! between changes, skewed time advances `rate` times as fast as real time; `offset_ns`
//! always reports skewed minus real time, so drift shows up as a growing offset. The
//! state machine's timer clock (`machine_ns`) never goes backwards: after a negative bump
//! the node's timers stand still until its clock has caught up (a real effect of such a
//! fault on a program that times with the wall clock).

/// Skewed time as an affine function of real time, anchored at the last change.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SkewClock {
    anchor_real_ns: i128,
    anchor_skewed_ns: i128,
    rate: f64,
    last_machine_ns: u64,
}

impl Default for SkewClock {
    fn default() -> Self {
        SkewClock {
            anchor_real_ns: 0,
            anchor_skewed_ns: 0,
            rate: 1.0,
            last_machine_ns: 0,
        }
    }
}

impl SkewClock {
    /// Skewed nanoseconds since the Unix epoch at real time `real_ns`.
    pub fn now_ns(&self, real_ns: i128) -> i128 {
        let elapsed = (real_ns - self.anchor_real_ns) as f64;
        self.anchor_skewed_ns + (elapsed * self.rate) as i128
    }

    /// From `real_ns` on, skewed time is `real_ns + offset_ns` and runs at `rate`.
    /// A rate that is not finite and positive is refused.
    pub fn set(&mut self, real_ns: i128, offset_ns: i128, rate: f64) -> Result<(), String> {
        if !(rate.is_finite() && rate > 0.0 && rate <= 1000.0) {
            return Err(format!("clock rate {rate} must be in (0, 1000]"));
        }
        self.anchor_real_ns = real_ns;
        self.anchor_skewed_ns = real_ns + offset_ns;
        self.rate = rate;
        Ok(())
    }

    /// Skewed minus real time at `real_ns`.
    pub fn offset_ns(&self, real_ns: i128) -> i128 {
        self.now_ns(real_ns) - real_ns
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// The state machine's clock: skewed nanoseconds since `origin_real_ns`, never
    /// decreasing and never negative.
    pub fn machine_ns(&mut self, real_ns: i128, origin_real_ns: i128) -> u64 {
        let t = (self.now_ns(real_ns) - origin_real_ns).clamp(0, u64::MAX as i128) as u64;
        self.last_machine_ns = self.last_machine_ns.max(t);
        self.last_machine_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_and_rate_shift_time() {
        let mut c = SkewClock::default();
        assert_eq!(c.now_ns(1_000), 1_000);
        c.set(1_000, 500, 1.0).unwrap();
        assert_eq!(c.now_ns(2_000), 2_500);
        assert_eq!(c.offset_ns(9_000), 500);
        // Drift: twice as fast from the anchor on; the offset grows.
        c.set(10_000, 0, 2.0).unwrap();
        assert_eq!(c.now_ns(11_000), 12_000);
        assert_eq!(c.offset_ns(11_000), 1_000);
        assert!(c.set(0, 0, 0.0).is_err());
        assert!(c.set(0, 0, f64::NAN).is_err());
    }

    #[test]
    fn machine_time_never_goes_back() {
        let mut c = SkewClock::default();
        assert_eq!(c.machine_ns(5_000, 1_000), 4_000);
        c.set(5_000, -3_000, 1.0).unwrap();
        assert_eq!(c.machine_ns(6_000, 1_000), 4_000);
        assert_eq!(c.machine_ns(9_000, 1_000), 5_000);
    }
}
