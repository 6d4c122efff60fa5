//! The zones algorithm (Gibbons–Korach; Golab, Li and Shah's formulation): exact
//! linearizability of one read/write register whose writes all have distinct values, in
//! O(n log n).
//!
//! Every value `v` has a *cluster*: its write and the reads that returned it (the initial
//! value's write is virtual, at −∞). With `f` the earliest completion and `s` the latest
//! invocation in the cluster, the cluster's zone is *forward* `[f, s]` when `f < s`
//! (some op of the cluster finished before another began: the value must stay in the
//! register across that whole interval) and *backward* `[s, f]` otherwise. A history
//! whose reads each have a write that does not begin after the read ended is
//! linearizable iff no two forward zones overlap and no backward zone lies inside a
//! forward zone. Times are history positions, so all endpoints are distinct.
//!
//! Indeterminate ops: a read is dropped (it returned nothing); a write observed by a
//! completed read completes at +∞ (a pending op may be completed at the end of the
//! history); an unobserved one is dropped (it may never have happened). Prefixes are
//! checked the same way, which finds the first op that cannot be placed: the completion
//! that turns the shortest non-linearizable prefix non-linearizable (binary search over
//! completions, since a prefix of a linearizable history is linearizable).
//!
//! Guarantees: the verdict is exact under those preconditions (unique values, no cas),
//! which `eligible` checks; the failing op is the same one the exact search reports.

use super::wgl::{Call, IMPOSSIBLE, Step};

const NEG_INF: i64 = -1;
const POS_INF: i64 = i64::MAX;

/// True when zones decides these calls exactly: only reads and writes, every write of a
/// distinct state, and no write of the initial state.
pub(crate) fn eligible(calls: &[Call], initial: u32, states: usize) -> bool {
    let mut written = vec![false; states];
    written[initial as usize] = true;
    for c in calls {
        match c.step {
            Step::Write(v) => {
                if v == IMPOSSIBLE || std::mem::replace(&mut written[v as usize], true) {
                    return false;
                }
            }
            Step::Read(_) | Step::ReadAny => {}
            Step::Cas(..) | Step::Txn(_) => return false,
        }
    }
    true
}

/// Why a (prefix of a) history is not linearizable: call indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Conflict {
    /// A read of a value that no write in the prefix wrote.
    NoWriter { read: usize },
    /// A read that completed before the write of its value began.
    ReadBeforeWrite { read: usize, write: usize },
    /// Two values that must each stay in the register over overlapping intervals.
    Overlap { a: u32, b: u32 },
    /// A value written and read entirely while another value had to stay in place.
    Inside { inner: u32, outer: u32 },
}

/// One key's calls, prepared for repeated prefix checks.
pub(crate) struct Zones<'a> {
    calls: &'a [Call],
    initial: u32,
    states: usize,
    /// Calls removed after being reported (failing reads), so later ones can be found.
    removed: Vec<bool>,
    /// The write call of each state (`usize::MAX` if none).
    writer: Vec<usize>,
}

/// The first op that cannot be placed, with the conflict that shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    /// Index into `calls`.
    pub call: usize,
    /// Calls that completed before it (the linearizable prefix).
    pub completed_before: usize,
    pub conflict: Conflict,
}

impl<'a> Zones<'a> {
    pub(crate) fn new(calls: &'a [Call], initial: u32, states: usize) -> Self {
        let mut writer = vec![usize::MAX; states];
        for (i, c) in calls.iter().enumerate() {
            if let Step::Write(v) = c.step {
                writer[v as usize] = i;
            }
        }
        Zones {
            calls,
            initial,
            states,
            removed: vec![false; calls.len()],
            writer,
        }
    }

    /// The call's completion, or +∞ when it is indeterminate (or only has a deadline).
    fn ret(c: &Call) -> i64 {
        match c.ret {
            Some(r) if !c.deadline => r as i64,
            _ => POS_INF,
        }
    }

    /// Checks the prefix of the history up to and including position `cut`.
    pub(crate) fn check(&self, cut: i64) -> Result<(), Conflict> {
        let n = self.states;
        // Per state: earliest completion and latest invocation over the cluster.
        let mut f = vec![POS_INF; n];
        let mut s = vec![NEG_INF; n];
        let mut read = vec![false; n];
        for (i, c) in self.calls.iter().enumerate() {
            if self.removed[i] || c.invoke as i64 > cut {
                continue;
            }
            let (inv, ret) = (c.invoke as i64, Self::ret(c));
            if let Step::Read(v) = c.step {
                if ret > cut {
                    continue; // pending read: constrains nothing
                }
                if v == IMPOSSIBLE {
                    return Err(Conflict::NoWriter { read: i });
                }
                let v = v as usize;
                read[v] = true;
                f[v] = f[v].min(ret);
                s[v] = s[v].max(inv);
            }
        }
        for v in 0..n {
            if !read[v] || v == self.initial as usize {
                continue;
            }
            let w = self.writer[v];
            let first_read = || {
                (0..self.calls.len())
                    .find(|&i| {
                        !self.removed[i]
                            && self.calls[i].step == Step::Read(v as u32)
                            && Self::ret(&self.calls[i]) <= cut
                    })
                    .expect("a read of this state is in the prefix")
            };
            if w == usize::MAX || self.calls[w].invoke as i64 > cut {
                return Err(Conflict::NoWriter { read: first_read() });
            }
            let wc = &self.calls[w];
            let (winv, wret) = (wc.invoke as i64, Self::ret(wc));
            // The earliest read completion must not precede the write's invocation.
            if f[v] < winv {
                let read = (0..self.calls.len())
                    .find(|&i| {
                        !self.removed[i]
                            && self.calls[i].step == Step::Read(v as u32)
                            && Self::ret(&self.calls[i]) == f[v]
                    })
                    .expect("the read that set f");
                return Err(Conflict::ReadBeforeWrite { read, write: w });
            }
            f[v] = f[v].min(if wret > cut { POS_INF } else { wret });
            s[v] = s[v].max(winv);
        }
        // Unobserved writes that completed in the prefix form backward zones too.
        for (v, &w) in self.writer.iter().enumerate() {
            if w == usize::MAX || read[v] {
                continue;
            }
            let wc = &self.calls[w];
            let ret = Self::ret(wc);
            if wc.invoke as i64 > cut || ret > cut {
                continue; // pending and unobserved: may never have happened
            }
            f[v] = ret;
            s[v] = wc.invoke as i64;
        }
        if read[self.initial as usize] {
            f[self.initial as usize] = NEG_INF;
        }
        let mut forward: Vec<(i64, i64, u32)> = Vec::new();
        let mut backward: Vec<(i64, i64, u32)> = Vec::new();
        for v in 0..n {
            if s[v] == NEG_INF && f[v] == POS_INF {
                continue; // not in this prefix
            }
            if v == self.initial as usize && !read[v] {
                continue;
            }
            if f[v] < s[v] {
                forward.push((f[v], s[v], v as u32));
            } else {
                backward.push((s[v], f[v], v as u32));
            }
        }
        forward.sort_unstable();
        for w in forward.windows(2) {
            if w[1].0 < w[0].1 {
                return Err(Conflict::Overlap {
                    a: w[0].2,
                    b: w[1].2,
                });
            }
        }
        for &(bs, bf, v) in &backward {
            let k = forward.partition_point(|z| z.0 < bs);
            if k > 0 && bf < forward[k - 1].1 {
                return Err(Conflict::Inside {
                    inner: v,
                    outer: forward[k - 1].2,
                });
            }
        }
        Ok(())
    }

    /// Finds up to `limit` ops that cannot be placed, in history order: the first, then
    /// (when it is a read) the first once that read is set aside, and so on.
    pub(crate) fn failures(&mut self, limit: usize) -> Vec<Failure> {
        let mut out = Vec::new();
        // Completions of ok ops, in history order: the candidate cuts.
        let mut cuts: Vec<(i64, usize)> = self
            .calls
            .iter()
            .enumerate()
            .filter(|(_, c)| Self::ret(c) != POS_INF)
            .map(|(i, c)| (Self::ret(c), i))
            .collect();
        cuts.sort_unstable();
        let mut lo = 0usize;
        while out.len() < limit && self.check(POS_INF).is_err() {
            // The smallest cut whose prefix fails; cuts before `lo` are known to pass.
            let (mut a, mut b) = (lo, cuts.len());
            while a < b {
                let mid = (a + b) / 2;
                if self.check(cuts[mid].0).is_err() {
                    b = mid;
                } else {
                    a = mid + 1;
                }
            }
            if a == cuts.len() {
                break; // only the pending tail fails; cannot happen, kept for safety
            }
            let (cut, call) = cuts[a];
            let conflict = self.check(cut).expect_err("this prefix fails");
            let completed_before = cuts[..a].iter().filter(|&&(_, i)| !self.removed[i]).count();
            out.push(Failure {
                call,
                completed_before,
                conflict,
            });
            if !matches!(self.calls[call].step, Step::Read(_)) {
                break;
            }
            self.removed[call] = true;
            lo = a;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(invoke: usize, ret: usize, step: Step) -> Call {
        Call {
            invoke,
            ret: Some(ret),
            deadline: false,
            step,
        }
    }

    #[test]
    fn stale_read_is_found_and_named() {
        // w1 done, w2 done, then a read of 1.
        let calls = [
            ok(0, 1, Step::Write(1)),
            ok(2, 3, Step::Write(2)),
            ok(4, 5, Step::Read(1)),
        ];
        assert!(eligible(&calls, 0, 3));
        let mut z = Zones::new(&calls, 0, 3);
        let f = z.failures(5);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].call, 2);
        assert_eq!(f[0].completed_before, 2);
    }

    #[test]
    fn concurrent_reads_may_disagree_in_order() {
        let calls = [
            ok(0, 5, Step::Write(1)),
            ok(1, 2, Step::Read(1)),
            ok(3, 4, Step::Read(0)),
        ];
        // The read of 0 after a read of 1 completed: new-old inversion.
        let z = Zones::new(&calls, 0, 2);
        assert!(z.check(POS_INF).is_err());
        let calls = [
            ok(0, 5, Step::Write(1)),
            ok(1, 2, Step::Read(0)),
            ok(3, 4, Step::Read(1)),
        ];
        assert!(Zones::new(&calls, 0, 2).check(POS_INF).is_ok());
    }

    #[test]
    fn cas_and_duplicates_are_not_eligible() {
        assert!(!eligible(&[ok(0, 1, Step::Cas(0, 1))], 0, 2));
        assert!(!eligible(
            &[ok(0, 1, Step::Write(1)), ok(2, 3, Step::Write(1))],
            0,
            2
        ));
        assert!(!eligible(&[ok(0, 1, Step::Write(0))], 0, 1));
    }
}
