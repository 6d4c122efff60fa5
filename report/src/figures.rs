//! The figures a comparison sets side by side, computed from one run's history and
//! checker results: anomaly counts by kind, lost writes, stale-read rate, worst staleness
//! (ms and versions), availability during fault windows, write and read latency
//! quantiles, and throughput. Pure and deterministic.

use schism_checker::{AnomalyKind, CheckResult, Validity};
use schism_history::History;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::data::{Out, Pairs, fault_windows, quantile, sort, staleness};

/// One run's comparable figures (what `comparison.json` holds per run).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RunFigures {
    pub validity: Option<Validity>,
    /// Anomalies by kind (totals from the checkers' figures, not only those listed).
    pub anomalies: BTreeMap<String, u64>,
    pub lost_writes: u64,
    pub ok_reads: u64,
    pub stale_reads: u64,
    /// Stale reads / ok reads.
    pub stale_read_rate: Option<f64>,
    pub worst_staleness_ms: f64,
    pub worst_staleness_versions: u64,
    /// Fault windows (not instants) seen in the history.
    pub fault_windows: u64,
    /// ok / all client ops invoked while a fault window was open; `None` without faults.
    pub availability_during_faults: Option<f64>,
    /// ok / all client ops invoked outside fault windows.
    pub availability_outside_faults: Option<f64>,
    pub write_latency_ms_p50: Option<f64>,
    pub write_latency_ms_p99: Option<f64>,
    pub read_latency_ms_p50: Option<f64>,
    pub read_latency_ms_p99: Option<f64>,
    /// ok client ops per second over the run's span.
    pub ok_per_s: f64,
    pub ops: u64,
    /// Replication lag over the run (`None`: the target cannot tell it).
    #[serde(default)]
    pub lag: Option<crate::lag::LagFigures>,
}

/// Latencies (ms) of ok writes and ok reads, for pooled quantiles and CDFs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LatencySamples {
    pub write_ms: Vec<f64>,
    pub read_ms: Vec<f64>,
    /// Every lag reading of the run (for pooled max and p99 per setting).
    pub lag: Vec<crate::lag::LagSample>,
}

/// The run's one count per anomaly kind (`schism_checker::counts`, which every display uses).
pub(crate) fn anomaly_counts(results: &[CheckResult]) -> BTreeMap<String, u64> {
    schism_checker::counts::count_map(results)
}

/// Computes a run's figures and its latency samples; `lag` is the run's `lag.jsonl`
/// (empty when it has none).
pub fn run_figures(
    history: &History,
    validity: Option<Validity>,
    results: &[CheckResult],
    lag: &crate::lag::LagData,
) -> (RunFigures, LatencySamples) {
    let pairs = Pairs::build(history);
    let anomalies = anomaly_counts(results);
    let mut f = RunFigures {
        validity,
        lost_writes: anomalies.get("lost-write").copied().unwrap_or(0),
        anomalies,
        ops: pairs.spans.len() as u64,
        ..RunFigures::default()
    };
    let mut samples = LatencySamples {
        lag: lag.samples.clone(),
        ..LatencySamples::default()
    };
    if !lag.samples.is_empty() {
        f.lag = Some(crate::lag::lag_figures(&lag.samples));
    }
    let (mut first, mut last) = (u64::MAX, 0u64);
    let mut ok = 0u64;
    for s in &pairs.spans {
        first = first.min(s.start_ns);
        if s.out != Out::Ok {
            continue;
        }
        ok += 1;
        let Some(lat) = pairs.latency_ns(s) else {
            continue;
        };
        last = last.max(s.end_ns.unwrap_or(0));
        let ms = lat as f64 / 1e6;
        if pairs.is_read(s) {
            f.ok_reads += 1;
            samples.read_ms.push(ms);
        } else {
            samples.write_ms.push(ms);
        }
    }
    if last > first {
        f.ok_per_s = ok as f64 / ((last - first) as f64 / 1e9);
    }
    sort(&mut samples.write_ms);
    sort(&mut samples.read_ms);
    f.write_latency_ms_p50 = quantile(&samples.write_ms, 0.5);
    f.write_latency_ms_p99 = quantile(&samples.write_ms, 0.99);
    f.read_latency_ms_p50 = quantile(&samples.read_ms, 0.5);
    f.read_latency_ms_p99 = quantile(&samples.read_ms, 0.99);

    let stale = staleness(history, &pairs);
    // The run's count (from the checker that owns stale reads), as every page shows it.
    f.stale_reads = f
        .anomalies
        .get(AnomalyKind::StaleRead.as_str())
        .copied()
        .unwrap_or(0);
    for s in &stale {
        f.worst_staleness_ms = f.worst_staleness_ms.max(s.ms);
        f.worst_staleness_versions = f.worst_staleness_versions.max(s.versions);
    }
    if f.ok_reads > 0 {
        f.stale_read_rate = Some(f.stale_reads as f64 / f.ok_reads as f64);
    }

    let windows = fault_windows(history);
    f.fault_windows = windows.len() as u64;
    let (mut in_ok, mut in_all, mut out_ok, mut out_all) = (0u64, 0u64, 0u64, 0u64);
    for s in &pairs.spans {
        let inside = windows
            .iter()
            .any(|w| s.start_ns >= w.start_ns && s.start_ns <= w.end_ns);
        let good = u64::from(s.out == Out::Ok);
        if inside {
            in_all += 1;
            in_ok += good;
        } else {
            out_all += 1;
            out_ok += good;
        }
    }
    if in_all > 0 {
        f.availability_during_faults = Some(in_ok as f64 / in_all as f64);
    }
    if out_all > 0 {
        f.availability_outside_faults = Some(out_ok as f64 / out_all as f64);
    }
    (f, samples)
}
