//! The `stats` checker: op counts by outcome, throughput and latency quantiles per `f`.
//!
//! Guarantees: counts cover every client operation (nemesis ops excluded), latencies
//! only ok ops that completed (invoke to completion, microsecond resolution, 3
//! significant digits); the verdict is always valid: statistics prove nothing wrong.

use crate::CheckError;
use crate::report::{CheckResult, Validity};
use schism_history::txn::{TXN_F, Txns};
use schism_history::{History, Operation, Outcome};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Counts and latencies of one `f`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FStats {
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
    pub latency_ms_p50: f64,
    #[serde(default)]
    pub latency_ms_p90: f64,
    pub latency_ms_p99: f64,
    pub latency_ms_max: f64,
}

/// Counts, throughput and latencies of a whole history.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Stats {
    pub ops: u64,
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
    /// Completed-ok client ops per second over the span from first invoke to last completion.
    pub ok_per_s: f64,
    pub duration_s: f64,
    pub by_f: BTreeMap<String, FStats>,
}

/// Counts, throughput and latency quantiles per `f`.
pub fn stats(history: &History) -> Result<Stats, CheckError> {
    Ok(stats_of(history, &history.operations()?))
}

/// `stats` on already-paired operations.
pub fn stats_of(history: &History, ops: &[Operation]) -> Stats {
    summarise(ops.iter().map(|o| Timed {
        f: o.f.as_str(),
        outcome: o.outcome,
        invoke_ns: history.ops[o.invoke()].time_ns,
        complete_ns: o.complete().map(|c| history.ops[c].time_ns),
    }))
}

/// `stats` of a history of transactions (all of `f` `txn`).
pub fn stats_txns(txns: &Txns) -> Stats {
    summarise(txns.iter().map(|t| Timed {
        f: TXN_F,
        outcome: t.outcome,
        invoke_ns: t.invoke_ns,
        complete_ns: t.complete_pos().map(|_| t.complete_ns),
    }))
}

/// What `stats` needs of one operation.
struct Timed<'a> {
    f: &'a str,
    outcome: Outcome,
    invoke_ns: u64,
    complete_ns: Option<u64>,
}

fn summarise<'a>(ops: impl Iterator<Item = Timed<'a>>) -> Stats {
    let mut s = Stats::default();
    let mut hists: BTreeMap<String, hdrhistogram::Histogram<u64>> = BTreeMap::new();
    let (mut first_ns, mut last_ns) = (u64::MAX, 0u64);
    for o in ops {
        s.ops += 1;
        let name = o.f;
        if !s.by_f.contains_key(name) {
            s.by_f.insert(name.to_owned(), FStats::default());
        }
        let fs = s.by_f.get_mut(name).expect("inserted above");
        let inv = o.invoke_ns;
        first_ns = first_ns.min(inv);
        match o.outcome {
            Outcome::Ok => {
                s.ok += 1;
                fs.ok += 1;
            }
            Outcome::Fail => {
                s.fail += 1;
                fs.fail += 1;
            }
            Outcome::Info => {
                s.info += 1;
                fs.info += 1;
            }
        }
        if let (Outcome::Ok, Some(done)) = (o.outcome, o.complete_ns) {
            last_ns = last_ns.max(done);
            if !hists.contains_key(name) {
                hists.insert(
                    name.to_owned(),
                    hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3)
                        .expect("static histogram bounds"),
                );
            }
            let h = hists.get_mut(name).expect("inserted above");
            h.saturating_record(done.saturating_sub(inv).max(1000) / 1000);
        }
    }
    if last_ns > first_ns {
        s.duration_s = (last_ns - first_ns) as f64 / 1e9;
        s.ok_per_s = s.ok as f64 / s.duration_s;
    }
    for (name, h) in hists {
        if let Some(fs) = s.by_f.get_mut(&name) {
            fs.latency_ms_p50 = h.value_at_quantile(0.5) as f64 / 1000.0;
            fs.latency_ms_p90 = h.value_at_quantile(0.9) as f64 / 1000.0;
            fs.latency_ms_p99 = h.value_at_quantile(0.99) as f64 / 1000.0;
            fs.latency_ms_max = h.max() as f64 / 1000.0;
        }
    }
    s
}

/// The `stats` checker: always valid, the figures are `Stats` as JSON.
pub(crate) fn check_ops(h: &History, ops: &[Operation]) -> Result<CheckResult, CheckError> {
    let s = stats_of(h, ops);
    let figures = match serde_json::to_value(&s) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    Ok(CheckResult {
        checker: "stats".into(),
        validity: Validity::Valid,
        anomalies: Vec::new(),
        figures,
    })
}
