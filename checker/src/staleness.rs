//! The `staleness` checker: how far behind every read was (k- and Δ-atomicity).
//!
//! For each ok read: `versions_behind`, the number of versions between what it returned
//! and the freshest write acknowledged before it began, and `ms_behind`, how long before
//! the read began the first version it missed had been acknowledged. A read that is not
//! behind scores (0, 0). Append keys use the version order of their longest read (reads
//! that are not a prefix of it are skipped: divergence is the append checker's); register
//! keys count the acknowledged writes that real time forces after the value read. The
//! measurement is `perop`'s: a read is behind here exactly when it is a stale read there
//! (a read missing only an append no read ever saw is 1 version behind), so
//! `stale_reads` here equals the `graph` checker's count by construction.
//!
//! Guarantees: figures only, never an anomaly (stale reads are counted once, by the
//! `graph` checker, else the `append` checker); verdict valid, or unknown when aborted. Output is
//! bounded: quantiles, fixed histogram buckets, the 5 worst reads, and a per-read series
//! of at most `SERIES_CAP` stale reads `(time_ns, versions_behind, ms_behind)` with a
//! count of those left out. `k_atomic` is the smallest k for which every read returned
//! one of the k latest acknowledged versions; `delta_atomic_ms` the smallest such Δ.
//!
//! It does not stream (`stream::streams` leaves it on the whole path): no bounded state
//! gives these figures exactly. An append key's version order is its longest read, known
//! only at the end, so every read's length, last element and time must be kept to the
//! end (O(reads)); a register read's lag counts the acknowledged writes of its key that
//! real time forces after the write of the value it returned, whose completion may come
//! arbitrarily later (or never), so each key's writes (value, invoke, completion) must be
//! kept as long as a read of the key may come — and the workloads end with a final read of
//! every key used, so to the end (O(writes)). Either way the state grows with the history,
//! only by a constant factor less than the history itself.

use crate::append_keys::Analysis;
use crate::explain::op_index;
use crate::perop;
use crate::report::{CheckResult, Validity};
use crate::{CheckError, Options, Workload};
use schism_history::{History, Operation};
use serde_json::{Value as Json, json};

/// At most this many stale reads are listed in the series.
pub const SERIES_CAP: usize = 10_000;

/// One read's lag.
#[derive(Debug, Clone, Copy)]
struct Sample {
    slot: usize,
    versions: u64,
    ns: u64,
}

pub(crate) fn check_ops(
    h: &History,
    ops: &[Operation],
    opts: &Options,
    w: Workload,
    shared: &mut crate::Shared,
) -> Result<CheckResult, CheckError> {
    let mut figures = match w {
        Workload::Append => of_lags(
            h,
            ops,
            perop::append(h, ops, &Analysis::new(h, ops)?, true).lags,
        ),
        Workload::Register => shared.take_staleness(h, ops, opts),
        other => {
            return Err(CheckError::Unsupported {
                checker: "staleness",
                workload: other,
            });
        }
    };
    let validity = if opts.aborted() {
        figures.insert("unknown_reason".into(), "aborted".into());
        Validity::Unknown
    } else {
        Validity::Valid
    };
    Ok(CheckResult {
        checker: "staleness".into(),
        validity,
        anomalies: Vec::new(),
        figures,
    })
}

/// The figures of every read's lag (`perop`'s, sorted by invoke).
pub(crate) fn of_lags(
    h: &History,
    ops: &[Operation],
    lags: Vec<perop::Lag>,
) -> serde_json::Map<String, Json> {
    let samples: Vec<Sample> = lags
        .into_iter()
        .map(|l| Sample {
            slot: l.slot,
            versions: l.versions,
            ns: l.ns,
        })
        .collect();
    figures(h, ops, &samples)
}

fn quantiles(sorted: &[u64], scale: f64) -> Json {
    let q = |p: f64| -> f64 {
        if sorted.is_empty() {
            return 0.0;
        }
        let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[i] as f64 / scale
    };
    json!({"p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "p999": q(0.999), "max": q(1.0)})
}

/// Counts per bucket: `[label, upper bound inclusive]` pairs, the last unbounded.
fn buckets(values: &[u64], bounds: &[(&str, u64)]) -> Json {
    let mut counts = vec![0u64; bounds.len()];
    for &v in values {
        let i = bounds
            .iter()
            .position(|&(_, hi)| v <= hi)
            .unwrap_or(bounds.len() - 1);
        counts[i] += 1;
    }
    Json::Array(
        bounds
            .iter()
            .zip(counts)
            .map(|(&(label, _), n)| json!({"bucket": label, "reads": n}))
            .collect(),
    )
}

fn figures(h: &History, ops: &[Operation], samples: &[Sample]) -> serde_json::Map<String, Json> {
    let mut f = serde_json::Map::new();
    let mut versions: Vec<u64> = samples.iter().map(|s| s.versions).collect();
    let mut ns: Vec<u64> = samples.iter().map(|s| s.ns).collect();
    let stale = samples.iter().filter(|s| s.versions > 0).count();
    f.insert("reads".into(), samples.len().into());
    f.insert("stale_reads".into(), stale.into());
    versions.sort_unstable();
    ns.sort_unstable();
    let max_versions = versions.last().copied().unwrap_or(0);
    f.insert("k_atomic".into(), (max_versions + 1).into());
    f.insert(
        "delta_atomic_ms".into(),
        (ns.last().copied().unwrap_or(0) as f64 / 1e6).into(),
    );
    f.insert("versions_behind".into(), quantiles(&versions, 1.0));
    f.insert("ms_behind".into(), quantiles(&ns, 1e6));
    f.insert(
        "versions_behind_histogram".into(),
        buckets(
            &versions,
            &[
                ("0", 0),
                ("1", 1),
                ("2", 2),
                ("3-4", 4),
                ("5-8", 8),
                ("9-16", 16),
                ("17-64", 64),
                ("65+", u64::MAX),
            ],
        ),
    );
    f.insert(
        "ms_behind_histogram".into(),
        buckets(
            &ns,
            &[
                ("0", 0),
                ("<1ms", 999_999),
                ("1-10ms", 10_000_000),
                ("10-100ms", 100_000_000),
                ("100ms-1s", 1_000_000_000),
                ("1-10s", 10_000_000_000),
                (">10s", u64::MAX),
            ],
        ),
    );
    let row = |s: &Sample| {
        let o = &ops[s.slot];
        json!({
            "op": op_index(h, o),
            "key": o.key(),
            "process": o.process,
            "time_ns": h.ops[o.invoke()].time_ns,
            "versions_behind": s.versions,
            "ms_behind": s.ns as f64 / 1e6,
        })
    };
    let mut worst: Vec<&Sample> = samples.iter().filter(|s| s.versions > 0).collect();
    worst.sort_by_key(|s| (std::cmp::Reverse(s.ns), ops[s.slot].invoke()));
    f.insert(
        "worst_by_ms".into(),
        Json::Array(worst.iter().take(5).map(|s| row(s)).collect()),
    );
    worst.sort_by_key(|s| (std::cmp::Reverse(s.versions), ops[s.slot].invoke()));
    f.insert(
        "worst_by_versions".into(),
        Json::Array(worst.iter().take(5).map(|s| row(s)).collect()),
    );
    let rows: Vec<Json> = samples
        .iter()
        .filter(|s| s.versions > 0)
        .take(SERIES_CAP)
        .map(|s| {
            json!([
                h.ops[ops[s.slot].invoke()].time_ns,
                s.versions,
                s.ns as f64 / 1e6
            ])
        })
        .collect();
    f.insert(
        "series".into(),
        json!({
            "columns": ["time_ns", "versions_behind", "ms_behind"],
            "rows": rows,
            "omitted": stale.saturating_sub(SERIES_CAP),
        }),
    );
    f
}
