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
    let mut s = StatsStream::default();
    for o in ops {
        s.push(o.f, o.outcome, o.invoke_ns, o.complete_ns);
    }
    s.finish()
}

/// `stats` op by op, for a history that is never held whole: the operations pushed in
/// any order give the figures of `stats_of` on them. It holds the counts and one latency
/// histogram per `f` (fixed-size, whatever the number of ops).
#[derive(Debug)]
pub struct StatsStream {
    s: Stats,
    hists: BTreeMap<String, hdrhistogram::Histogram<u64>>,
    first_ns: u64,
    last_ns: u64,
}

impl Default for StatsStream {
    fn default() -> Self {
        StatsStream {
            s: Stats::default(),
            hists: BTreeMap::new(),
            first_ns: u64::MAX,
            last_ns: 0,
        }
    }
}

impl StatsStream {
    /// One paired operation: its `f`, outcome, invoke time and completion time, if any.
    pub fn push(&mut self, f: &str, outcome: Outcome, invoke_ns: u64, complete_ns: Option<u64>) {
        let s = &mut self.s;
        s.ops += 1;
        let name = f;
        if !s.by_f.contains_key(name) {
            s.by_f.insert(name.to_owned(), FStats::default());
        }
        let fs = s.by_f.get_mut(name).expect("inserted above");
        let inv = invoke_ns;
        self.first_ns = self.first_ns.min(inv);
        match outcome {
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
        if let (Outcome::Ok, Some(done)) = (outcome, complete_ns) {
            self.last_ns = self.last_ns.max(done);
            if !self.hists.contains_key(name) {
                self.hists.insert(
                    name.to_owned(),
                    hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3)
                        .expect("static histogram bounds"),
                );
            }
            let h = self.hists.get_mut(name).expect("inserted above");
            h.saturating_record(done.saturating_sub(inv).max(1000) / 1000);
        }
    }

    /// The figures of every operation pushed.
    pub fn finish(self) -> Stats {
        let StatsStream {
            mut s,
            hists,
            first_ns,
            last_ns,
        } = self;
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
}

/// The `stats` checker's result for these figures.
pub fn result_of(s: &Stats) -> CheckResult {
    let figures = match serde_json::to_value(s) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    CheckResult {
        checker: "stats".into(),
        validity: Validity::Valid,
        anomalies: Vec::new(),
        figures,
    }
}

/// The `stats` checker: always valid, the figures are `Stats` as JSON.
pub(crate) fn check_ops(h: &History, ops: &[Operation]) -> Result<CheckResult, CheckError> {
    Ok(result_of(&stats_of(h, ops)))
}
