//! What every part of a running reference node shares: its log lines (`Logger`), its
//! injected clock (`NodeClock`: real time through a `SkewClock`, so clock faults move every
//! timestamp and the machine's `now`), and its cooperative link cuts (`Links`, set by
//! `POST /admin/links`).

use super::NodeId;
use super::clock::SkewClock;
use super::config::ClockRequest;
use schism_replication::machine::ClockStatus;
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Instant;

/// Which peers' replication traffic is dropped (cooperative link cuts).
#[derive(Debug, Default)]
pub(super) struct Links {
    pub(super) drop_from: BTreeSet<NodeId>,
    pub(super) drop_to: BTreeSet<NodeId>,
}

/// The node's time source: real time (monotonic, anchored at the Unix time of start)
/// through the injected `SkewClock`.
#[derive(Debug)]
pub(super) struct NodeClock {
    start: Instant,
    start_unix_ns: i128,
    skew: Mutex<SkewClock>,
}

impl NodeClock {
    pub(super) fn new() -> NodeClock {
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        NodeClock {
            start: Instant::now(),
            start_unix_ns: unix,
            skew: Mutex::new(SkewClock::default()),
        }
    }

    fn real_ns(&self) -> i128 {
        self.start_unix_ns + self.start.elapsed().as_nanos() as i128
    }

    fn skew(&self) -> std::sync::MutexGuard<'_, SkewClock> {
        self.skew.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The node's clock, Unix milliseconds.
    pub(super) fn now_ms(&self) -> i64 {
        (self.skew().now_ns(self.real_ns()) / 1_000_000) as i64
    }

    /// The node's clock, Unix nanoseconds (what multi-leader and leaderless machines read).
    pub(super) fn unix_ns(&self) -> u64 {
        u64::try_from(self.skew().now_ns(self.real_ns())).unwrap_or(0)
    }

    /// The state machine's `now`: skewed time since start, never decreasing.
    pub(super) fn machine_ns(&self) -> u64 {
        let real = self.real_ns();
        self.skew().machine_ns(real, self.start_unix_ns)
    }

    pub(super) fn status(&self) -> ClockStatus {
        let real = self.real_ns();
        let skew = self.skew();
        ClockStatus {
            offset_ms: skew.offset_ns(real) as f64 / 1e6,
            rate: skew.rate(),
        }
    }

    pub(super) fn set(&self, req: ClockRequest) -> Result<(), String> {
        if !req.offset_ms.is_finite() || req.offset_ms.abs() > 1e12 {
            return Err(format!("offset_ms {} is out of range", req.offset_ms));
        }
        let real = self.real_ns();
        self.skew()
            .set(real, (req.offset_ms * 1e6) as i128, req.rate)
    }
}

/// Prefixes every stderr line with the node and the seconds since it started.
#[derive(Debug, Clone)]
pub struct Logger {
    pub id: NodeId,
    pub start: Instant,
}

impl Logger {
    pub fn line(&self, msg: std::fmt::Arguments<'_>) {
        eprintln!(
            "[{:>9.3}s {}] {msg}",
            self.start.elapsed().as_secs_f64(),
            self.id
        );
    }
}
