//! One count per anomaly kind for a whole report: which checker owns each kind, and
//! the counting rule people compare runs by.
//!
//! Several checkers look at one history and some report the same kind (the `append`
//! and `graph` checkers both report stale reads; `staleness` carries a `stale_reads`
//! figure), so adding their figures counts one anomaly twice. Here each kind has an
//! ordered list of owning checkers, and its count comes from the first owner present in
//! the report, never from a sum. All owners of a kind use the same definition (shared
//! code in `perop` and `append`), so which owner supplies it does not change the figure.
//!
//! Guarantees: every kind of `AnomalyKind::ALL` has at least one owner; `counts` is a
//! pure function of the report; a count is the owner's total (figure), never less than
//! the anomalies it listed; the `non-linearizable` count leaves out the violations the
//! linearizability checker found on keys that already carry a per-op anomaly (a stale
//! read, a session violation, a phantom or aborted read), which are counted at their
//! cause.

use crate::report::{AnomalyKind, Report};
use std::collections::BTreeMap;

/// Figure in the `linearizable` result: violations on keys that already hold a per-op
/// anomaly (counted at that anomaly, not again as non-linearizable).
pub const NON_LINEARIZABLE_EXPLAINED: &str = "non_linearizable_explained_by_per_op";

impl AnomalyKind {
    /// The checkers (by `CheckResult::checker`) that count this kind, preferred first.
    /// `counts` takes a kind from the first of them present in a report.
    pub fn owners(self) -> &'static [&'static str] {
        use AnomalyKind::*;
        match self {
            // The per-op kinds of one history: the graph checker (which runs the append
            // checker's analysis for append histories), else the append checker; set-full
            // has its own stale reads of elements.
            StaleRead => &["graph", "append", "set-full"],
            MonotonicRead | ReadYourWrites | MonotonicWrites | WritesFollowReads => &["graph"],
            LostWrite | Divergence | DuplicateElement => &["graph", "append"],
            PhantomRead | AbortedRead => &["graph", "append", "linearizable"],
            Cycle | G0 | G0Process | G0Realtime | G1c | G1cProcess | G1cRealtime | GSingle
            | GSingleProcess | GSingleRealtime | G2 | G2Process | G2Realtime => &["graph"],
            NonLinearizable => &["linearizable"],
            LostElement => &["set-full"],
            CounterOutOfBounds => &["counter"],
            ReplicaDivergence => &["convergence"],
        }
    }

    /// True for the kinds that name a dependency cycle (one per strongly connected
    /// component of the graph), rather than one offending op.
    pub fn is_cycle(self) -> bool {
        use AnomalyKind::*;
        matches!(
            self,
            Cycle
                | G0
                | G0Process
                | G0Realtime
                | G1c
                | G1cProcess
                | G1cRealtime
                | GSingle
                | GSingleProcess
                | GSingleRealtime
                | G2
                | G2Process
                | G2Realtime
        )
    }
}

/// One count per kind for a report: each kind from its first owning checker present
/// (see `AnomalyKind::owners`), zero kinds left out. This is the figure to show and
/// compare; summing every checker's figures double-counts.
pub fn counts(report: &Report) -> BTreeMap<AnomalyKind, u64> {
    let mut out = BTreeMap::new();
    for kind in AnomalyKind::ALL {
        let Some(r) = kind
            .owners()
            .iter()
            .find_map(|o| report.results.iter().find(|r| r.checker == *o))
        else {
            continue;
        };
        let figure = |name: &str| {
            r.figures
                .get(name)
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0)
        };
        let listed = r.anomalies.iter().filter(|a| a.kind == kind).count() as u64;
        let mut n = figure(kind.figure_name()).max(listed);
        if kind == AnomalyKind::NonLinearizable {
            n = n.saturating_sub(figure(NON_LINEARIZABLE_EXPLAINED));
        }
        if n > 0 {
            out.insert(kind, n);
        }
    }
    out
}
