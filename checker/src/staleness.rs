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
//! It streams (`StalenessStream`, `stream.rs`), though not in bounded state: an append
//! key's version order is its longest read, known only at the end, so every read keeps a
//! small record to the end (O(reads), never its list unless it differs from the key's
//! longest and last); a register read's lag counts the acknowledged writes of its key
//! that real time forces after the write of the value it returned, so each key's
//! acknowledged writes (invoke, completion, time) are kept as long as a read of the key
//! may come — to the end (O(writes), never the reads). The figures come from `Lags`: a
//! count of the reads not behind and a row per stale read, built alike by the whole path
//! (from `perop`'s lags) and the stream, so both give the same bytes.

mod stream;

pub(crate) use stream::StalenessStream;

use crate::append_keys::Analysis;
use crate::explain::op_index;
use crate::perop;
use crate::report::{CheckResult, Validity};
use crate::{CheckError, Options, Workload};
use schism_history::{History, Key, Operation, Process};
use serde_json::{Value as Json, json};

/// At most this many stale reads are listed in the series.
pub const SERIES_CAP: usize = 10_000;

pub(crate) fn check_ops(
    h: &History,
    ops: &[Operation],
    opts: &Options,
    w: Workload,
    shared: &mut crate::Shared,
) -> Result<CheckResult, CheckError> {
    let figures = match w {
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
    Ok(result(figures, opts))
}

/// The checker's result of its figures.
pub(crate) fn result(mut figures: serde_json::Map<String, Json>, opts: &Options) -> CheckResult {
    let validity = if opts.aborted() {
        figures.insert("unknown_reason".into(), "aborted".into());
        Validity::Unknown
    } else {
        Validity::Valid
    };
    CheckResult {
        checker: "staleness".into(),
        validity,
        anomalies: Vec::new(),
        figures,
    }
}

/// The figures of every read's lag (`perop`'s, sorted by invoke).
pub(crate) fn of_lags(
    h: &History,
    ops: &[Operation],
    lags: Vec<perop::Lag>,
) -> serde_json::Map<String, Json> {
    let mut l = Lags::default();
    for lag in lags {
        let o = &ops[lag.slot];
        l.push(lag.versions, lag.ns, || Stale {
            invoke: o.invoke(),
            versions: lag.versions,
            ns: lag.ns,
            index: op_index(h, o),
            key: o.key(),
            process: o.process,
            time_ns: h.ops[o.invoke()].time_ns,
        });
    }
    l.figures()
}

/// One read behind (`versions > 0`): its lag and what a row of the figures names.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stale {
    /// The read's invoke position (rows and the series come in invoke order).
    pub(crate) invoke: usize,
    pub(crate) versions: u64,
    pub(crate) ns: u64,
    /// `op_index`: the read's completion index.
    pub(crate) index: u64,
    pub(crate) key: Option<Key>,
    pub(crate) process: Process,
    /// When the read began.
    pub(crate) time_ns: u64,
}

/// Every read measured, compactly: a count of those not behind (each `(0, 0)`: a read
/// is behind by some time only when it is behind by some version) and a record per read
/// behind. The figures are exact from it: the sorted lags are the zeros, then the stale
/// reads' lags sorted.
#[derive(Debug, Default)]
pub(crate) struct Lags {
    pub(crate) reads: u64,
    pub(crate) stale: Vec<Stale>,
}

impl Lags {
    /// One read's lag; `row` names it when it is behind.
    pub(crate) fn push(&mut self, versions: u64, ns: u64, row: impl FnOnce() -> Stale) {
        debug_assert!(versions > 0 || ns == 0, "a read behind in time only");
        self.reads += 1;
        if versions > 0 {
            self.stale.push(row());
        }
    }

    /// The figures (`check_ops`'s), the stale reads sorted by invoke first.
    pub(crate) fn figures(mut self) -> serde_json::Map<String, Json> {
        self.stale.sort_unstable_by_key(|s| s.invoke);
        figures(&self)
    }
}

/// A sorted list of `zeros` zeros followed by `rest` (sorted), read by index.
struct Sorted<'a> {
    zeros: usize,
    rest: &'a [u64],
}

impl Sorted<'_> {
    fn len(&self) -> usize {
        self.zeros + self.rest.len()
    }

    fn get(&self, i: usize) -> u64 {
        i.checked_sub(self.zeros).map_or(0, |j| self.rest[j])
    }
}

fn quantiles(sorted: &Sorted<'_>, scale: f64) -> Json {
    let q = |p: f64| -> f64 {
        if sorted.len() == 0 {
            return 0.0;
        }
        let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted.get(i) as f64 / scale
    };
    json!({"p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "p999": q(0.999), "max": q(1.0)})
}

/// Counts per bucket: `[label, upper bound inclusive]` pairs, the last unbounded; the
/// zeros in the first.
fn buckets(values: &Sorted<'_>, bounds: &[(&str, u64)]) -> Json {
    let mut counts = vec![0u64; bounds.len()];
    counts[0] += values.zeros as u64;
    for &v in values.rest {
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

/// The figures of `lags`, whose stale reads are sorted by invoke.
fn figures(lags: &Lags) -> serde_json::Map<String, Json> {
    let samples = &lags.stale;
    let mut f = serde_json::Map::new();
    let mut versions: Vec<u64> = samples.iter().map(|s| s.versions).collect();
    let mut ns: Vec<u64> = samples.iter().map(|s| s.ns).collect();
    let stale = samples.len();
    let zeros = lags.reads as usize - stale;
    f.insert("reads".into(), lags.reads.into());
    f.insert("stale_reads".into(), stale.into());
    versions.sort_unstable();
    ns.sort_unstable();
    let versions = Sorted {
        zeros,
        rest: &versions,
    };
    let ns = Sorted { zeros, rest: &ns };
    let max_versions = versions.rest.last().copied().unwrap_or(0);
    f.insert("k_atomic".into(), (max_versions + 1).into());
    f.insert(
        "delta_atomic_ms".into(),
        (ns.rest.last().copied().unwrap_or(0) as f64 / 1e6).into(),
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
    let row = |s: &Stale| {
        json!({
            "op": s.index,
            "key": s.key,
            "process": s.process,
            "time_ns": s.time_ns,
            "versions_behind": s.versions,
            "ms_behind": s.ns as f64 / 1e6,
        })
    };
    let mut worst: Vec<&Stale> = samples.iter().collect();
    worst.sort_by_key(|s| (std::cmp::Reverse(s.ns), s.invoke));
    f.insert(
        "worst_by_ms".into(),
        Json::Array(worst.iter().take(5).map(|s| row(s)).collect()),
    );
    worst.sort_by_key(|s| (std::cmp::Reverse(s.versions), s.invoke));
    f.insert(
        "worst_by_versions".into(),
        Json::Array(worst.iter().take(5).map(|s| row(s)).collect()),
    );
    let rows: Vec<Json> = samples
        .iter()
        .take(SERIES_CAP)
        .map(|s| json!([s.time_ns, s.versions, s.ns as f64 / 1e6]))
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
