//! Which anomalies a report lists: a representative few per kind rather than the first
//! few a checker happened to find.
//!
//! From the anomalies the run counts (each from the checker that owns its kind,
//! `schism_checker::counts`), per kind: the earliest (by its first witness op), the worst
//! (stale reads: most versions, then most ms behind; others: the longest witness cycle or
//! most ops), and the earliest inside each fault window where that kind occurred. The
//! checkers keep a bounded sample spread over the history, so these are chosen from what
//! they kept; the page says so and gives the totals.

use schism_checker::counts::{counted_kind, is_counted};
use schism_checker::{Anomaly, AnomalyKind, CheckResult};
use std::collections::BTreeMap;

use crate::data::FaultWindow;

/// One listed anomaly and why it was chosen.
#[derive(Debug, Clone)]
pub(crate) struct Chosen<'a> {
    pub anomaly: &'a Anomaly,
    pub kind: AnomalyKind,
    /// Time of its first witness op.
    pub t_ns: u64,
    /// `earliest`, `worst`, `inside partition n1 | n2 n3` …
    pub reasons: Vec<String>,
    /// How bad: (versions, ms) for stale reads, else (witness size, 0).
    pub severity: (u64, f64),
}

/// A candidate's time and severity, as the caller computes them from the history.
pub(crate) struct Measure {
    pub t_ns: u64,
    pub severity: (u64, f64),
}

/// Chooses the listed anomalies; `measure` gives each candidate's time and severity.
pub(crate) fn choose<'a>(
    results: &'a [CheckResult],
    faults: &[FaultWindow],
    mut measure: impl FnMut(&Anomaly) -> Measure,
) -> (Vec<Chosen<'a>>, usize) {
    let mut by_kind: BTreeMap<AnomalyKind, Vec<Chosen<'a>>> = BTreeMap::new();
    let mut candidates = 0;
    for r in results {
        for a in &r.anomalies {
            if !is_counted(r, a, results) {
                continue;
            }
            candidates += 1;
            let m = measure(a);
            by_kind
                .entry(counted_kind(&r.checker, a))
                .or_default()
                .push(Chosen {
                    anomaly: a,
                    kind: counted_kind(&r.checker, a),
                    t_ns: m.t_ns,
                    reasons: Vec::new(),
                    severity: m.severity,
                });
        }
    }
    let mut out = Vec::new();
    for (_, mut list) in by_kind {
        list.sort_by_key(|c| c.t_ns);
        let mut pick = vec![false; list.len()];
        if !list.is_empty() {
            pick[0] = true;
            list[0].reasons.push("earliest".into());
            let worst = (0..list.len())
                .max_by(|&a, &b| {
                    let (x, y) = (list[a].severity, list[b].severity);
                    x.0.cmp(&y.0).then(x.1.total_cmp(&y.1)).then(b.cmp(&a))
                })
                .unwrap_or(0);
            pick[worst] = true;
            list[worst].reasons.push("worst".into());
        }
        for w in faults {
            if let Some(i) = list.iter().position(|c| w.contains(c.t_ns)) {
                pick[i] = true;
                list[i].reasons.push(format!("inside {}", w.label));
            }
        }
        out.extend(
            list.into_iter()
                .zip(pick)
                .filter(|(_, p)| *p)
                .map(|(c, _)| c),
        );
    }
    out.sort_by_key(|c| c.t_ns);
    (out, candidates)
}
