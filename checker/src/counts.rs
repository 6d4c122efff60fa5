//! One count per anomaly kind per run, defined once: every display (the CLI summary,
//! `results.json`'s `counts`, the report's badges, JUnit, the comparison page) shows
//! what `counts` returns.
//!
//! Several checkers look at one history and some report the same kind (the `append`
//! and `graph` checkers both report stale reads; `staleness` carries a `stale_reads`
//! figure), so adding their figures counts one anomaly twice. Here each kind has an
//! ordered list of owning checkers (`AnomalyKind::owners`), and its count comes from the
//! first owner present in the results, never from a sum. All owners of a kind use the
//! same definition (shared code in `perop` and `append`), so which owner supplies it does
//! not change the figure. A checker's own figure for the kind (its total, including
//! anomalies it did not keep) is the count; without that figure, the anomalies it listed.
//! Measuring checkers (`staleness`, `stats`) own no kind: their figures are measurements,
//! and their verdict says only whether the measurement completed.
//!
//! Guarantees: every kind of `AnomalyKind::ALL` has at least one owner; `counts` is a
//! pure function of the results; a count is never less than the anomalies its owner
//! listed; the `non-linearizable` count leaves out the violations the linearizability
//! checker found on keys that already carry a per-op anomaly (a stale read, a session
//! violation, a phantom or aborted read), which are counted at their cause.

use crate::report::{Anomaly, AnomalyKind, CheckResult};
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
            // The transactional kinds: the `txn` checker alone (it never runs beside the
            // single-object checkers on one history).
            G1a | G1b | GNonadjacent | GNonadjacentProcess | GNonadjacentRealtime | G2Item
            | G2ItemProcess | G2ItemRealtime | Internal | LostUpdate | DirtyUpdate
            | IncompatibleOrder | FutureRead => &["txn"],
            MonotonicRead | ReadYourWrites | MonotonicWrites | WritesFollowReads => &["graph"],
            LostWrite | Divergence => &["graph", "append"],
            DuplicateElement => &["graph", "append", "set-full", "txn"],
            PhantomRead => &["graph", "append", "linearizable", "set-full", "txn"],
            // A transaction's aborted read is G1a.
            AbortedRead => &["graph", "append", "linearizable", "set-full"],
            Cycle | G2 | G2Process | G2Realtime => &["graph"],
            G0 | G0Process | G0Realtime | G1c | G1cProcess | G1cRealtime | GSingle
            | GSingleProcess | GSingleRealtime => &["graph", "txn"],
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
                | GNonadjacent
                | GNonadjacentProcess
                | GNonadjacentRealtime
                | G2Item
                | G2ItemProcess
                | G2ItemRealtime
        )
    }
}

/// One kind's count and the checker it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindCount {
    pub kind: AnomalyKind,
    pub count: u64,
    pub checker: String,
}

/// The kind an anomaly listed by `checker` counts as (the convergence checker's
/// `divergence` anomalies are replica divergence).
pub fn counted_kind(checker: &str, a: &Anomaly) -> AnomalyKind {
    if checker == "convergence" && a.kind == AnomalyKind::Divergence {
        AnomalyKind::ReplicaDivergence
    } else {
        a.kind
    }
}

/// The checker whose count of `kind` is the run's, if any present checker proves it.
pub fn owner(kind: AnomalyKind, results: &[CheckResult]) -> Option<&CheckResult> {
    kind.owners()
        .iter()
        .find_map(|n| results.iter().find(|r| r.checker == *n))
}

/// Whether an anomaly `r` lists is one the run's counts include (it comes from the
/// owner of its kind), so a list shows each anomaly once.
pub fn is_counted(r: &CheckResult, a: &Anomaly, results: &[CheckResult]) -> bool {
    owner(counted_kind(&r.checker, a), results).is_some_and(|o| o.checker == r.checker)
}

/// The run's count of every kind found (count > 0), in `AnomalyKind::ALL` order.
pub fn counts(results: &[CheckResult]) -> Vec<KindCount> {
    let mut out = Vec::new();
    for kind in AnomalyKind::ALL {
        let Some(r) = owner(kind, results) else {
            continue;
        };
        let listed = r
            .anomalies
            .iter()
            .filter(|a| counted_kind(&r.checker, a) == kind)
            .count() as u64;
        let figure = r
            .figures
            .get(kind.figure_name())
            .and_then(serde_json::Value::as_u64);
        let mut count = figure.unwrap_or(0).max(listed);
        if kind == AnomalyKind::NonLinearizable {
            let explained = r
                .figures
                .get(NON_LINEARIZABLE_EXPLAINED)
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0);
            count = count.saturating_sub(explained);
        }
        if count > 0 {
            out.push(KindCount {
                kind,
                count,
                checker: r.checker.clone(),
            });
        }
    }
    out
}

/// `counts` as `kind name → count` (what `results.json` holds under `counts`).
pub fn count_map(results: &[CheckResult]) -> BTreeMap<String, u64> {
    counts(results)
        .into_iter()
        .map(|c| (c.kind.as_str().to_owned(), c.count))
        .collect()
}

/// What a checker's verdict means, in one sentence (for the report's checker table).
pub fn role(checker: &str) -> &'static str {
    match checker {
        "staleness" => {
            "measures how far behind each read was (versions and ms); its figures are measurements, not anomalies — stale reads are counted once, by the checker that proves them — so its verdict is valid whenever the measurement completed"
        }
        "stats" => {
            "counts ops and measures latency and throughput; valid whenever the measurement completed"
        }
        "graph" => {
            "builds the dependency graph (write-read, version order, anti-dependency, real time, process order) and proves every anomaly it reports by a cycle"
        }
        "append" => "checks every read of an append-only list against one version order per key",
        "linearizable" => "searches for a linearization of each key's operations",
        "set-full" => "checks that every added element is read, and reads only added ones",
        "counter" => "checks every counter read against the increments around it",
        "convergence" => "compares the replicas' final states after the final heal",
        "txn" => {
            "infers version orders and the transaction dependency graph, and proves every isolation anomaly it reports by a cycle or an offending read"
        }
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Validity;

    fn result(checker: &str, kind: AnomalyKind, n: u64) -> CheckResult {
        let mut figures = serde_json::Map::new();
        figures.insert(kind.figure_name().into(), n.into());
        CheckResult {
            checker: checker.into(),
            validity: Validity::Invalid,
            anomalies: vec![Anomaly::new(kind, Some(1), vec![3], String::new())],
            figures,
        }
    }

    #[test]
    fn one_owner_per_kind() {
        let results = vec![
            result("append", AnomalyKind::StaleRead, 5063),
            result("graph", AnomalyKind::StaleRead, 1160),
            result("staleness", AnomalyKind::StaleRead, 3903),
        ];
        let c = counts(&results);
        assert_eq!(
            c,
            vec![KindCount {
                kind: AnomalyKind::StaleRead,
                count: 1160,
                checker: "graph".into()
            }]
        );
        assert!(!is_counted(&results[0], &results[0].anomalies[0], &results));
        assert!(is_counted(&results[1], &results[1].anomalies[0], &results));
        // Without the graph checker, the append checker owns stale reads.
        assert_eq!(count_map(&results[..1])["stale-read"], 5063);
        assert!(count_map(&results[2..]).is_empty());
    }

    #[test]
    fn every_kind_has_an_owner() {
        for kind in AnomalyKind::ALL {
            assert!(!kind.owners().is_empty());
        }
    }
}
