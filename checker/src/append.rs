//! The `append` checker: per-key lists built by unique appends, observed by list reads.
//!
//! A key's version order is its longest `ok` read. Against it the checker finds, in time
//! linear in the total size of the reads per key:
//! - divergence: an ok read that is not a prefix of the longest read;
//! - stale reads, as `perop` defines them (the one definition the `graph` checker and
//!   the `staleness` figures share);
//! - lost writes: an ok append seen by no ok read although a read of its key that began
//!   after it completed already holds a value whose append began after it was
//!   acknowledged (the order provably passed over it), or a *final* read (one whose
//!   invoke carries `meta.final`: taken after the run's time limit and a quiet period,
//!   Jepsen's final read) misses it. Otherwise the first read after it is a stale
//!   read (a lagging replica is not proof of loss; `Unseen::Lagging`); appends never
//!   followed by a read are only counted, `unobserved`;
//! - phantom reads (a value no invoke appended), aborted reads (a value whose append
//!   failed) and duplicate elements, each reported once per key and value.
//!
//! Prefix reads contain nothing the longest read does not, so per-element hashing is
//! done once on the order and on divergent reads only; the other reads cost a `memcmp`.
//!
//! Guarantees: every reported anomaly is a real violation of the contract (no false
//! positives: indeterminate appends are never blamed, and only ok reads are used); the
//! verdict is `Valid` only when none is found; an abort yields `Unknown`.

use crate::append_keys::{Analysis, Counts, KeyOps, Unseen, unseen};
use crate::explain::{complete_ns, elements, invoke_ns, list, op_index, secs};
use crate::fx::{FxHashMap, FxHashSet};
use crate::report::{Anomaly, AnomalyKind, AnomalySink, CheckResult, Validity};
use crate::{CheckError, Options, perop};
use schism_history::{History, Key, Operation, Outcome};

const KINDS: [AnomalyKind; 6] = [
    AnomalyKind::StaleRead,
    AnomalyKind::LostWrite,
    AnomalyKind::Divergence,
    AnomalyKind::PhantomRead,
    AnomalyKind::AbortedRead,
    AnomalyKind::DuplicateElement,
];

/// The append checker's own per-key checks over the shared analysis.
impl<'a> Analysis<'a> {
    /// Runs the per-key checks into `sink` (all but stale reads and the session kinds,
    /// which `perop` defines). Returns the key at which an abort stopped the work.
    pub(crate) fn check_keys(
        &mut self,
        h: &History,
        opts: &Options,
        sink: &mut AnomalySink,
    ) -> Option<Key> {
        for (&key, k) in &self.keys {
            if opts.aborted() {
                return Some(key);
            }
            check_key(h, key, k, sink, &mut self.counts);
        }
        None
    }
}

pub(crate) fn check_ops(
    h: &History,
    ops: &[Operation],
    opts: &Options,
) -> Result<CheckResult, CheckError> {
    let mut analysis = Analysis::new(h, ops)?;
    let mut sink = AnomalySink::new(opts.max_anomalies_per_kind);
    let aborted_at = analysis.check_keys(h, opts, &mut sink);
    if aborted_at.is_none() {
        for f in perop::append(h, ops, &analysis, false).findings {
            if f.kind == AnomalyKind::StaleRead {
                sink.push_with(f.kind, || perop::explain(h, ops, &f));
            }
        }
    }
    let mut figures = serde_json::Map::new();
    analysis.figures(&mut figures);
    let found = !sink.is_empty();
    let anomalies = sink.finish(&KINDS, &mut figures);
    let validity = if found {
        Validity::Invalid
    } else if let Some(key) = aborted_at {
        figures.insert(
            "unknown_reason".into(),
            format!("aborted before checking key {key}").into(),
        );
        Validity::Unknown
    } else {
        Validity::Valid
    };
    Ok(CheckResult {
        checker: "append".into(),
        validity,
        anomalies,
        figures,
    })
}
/// The first read to show a value, and how many reads showed it.
struct Sighting<'a> {
    read: &'a Operation,
    vals: &'a [i64],
    reads: u64,
}

fn note<'a>(
    m: &mut FxHashMap<i64, Sighting<'a>>,
    order: &mut Vec<i64>,
    v: i64,
    (read, vals): (&'a Operation, &'a [i64]),
    reads: u64,
) {
    m.entry(v)
        .and_modify(|s| s.reads += reads)
        .or_insert_with(|| {
            order.push(v);
            Sighting { read, vals, reads }
        });
}

fn check_key<'a>(
    h: &History,
    key: Key,
    k: &KeyOps<'a>,
    sink: &mut AnomalySink,
    counts: &mut Counts,
) {
    let read_desc = |r: &Operation, vals: &[i64]| {
        format!(
            "read at t={} by process {} of key {key} saw {} ({})",
            secs(invoke_ns(h, r)),
            r.process,
            list(vals),
            elements(vals.len())
        )
    };

    // The version order: the first longest ok read.
    let (order, longest) = k.version_order();

    let mut phantom: FxHashMap<i64, Sighting<'_>> = FxHashMap::default();
    let mut aborted: FxHashMap<i64, Sighting<'_>> = FxHashMap::default();
    let mut dup: FxHashMap<i64, Sighting<'_>> = FxHashMap::default();
    let (mut phantom_order, mut aborted_order, mut dup_order) =
        (Vec::new(), Vec::new(), Vec::new());
    let mut observed: FxHashSet<i64> = FxHashSet::default();
    let mut seen: FxHashSet<i64> = FxHashSet::default();
    // Reads that are prefixes of the order (nearly all) hold nothing the longest read
    // does not, so elements are checked once on the order, and element by element only
    // on divergent reads. For position i of the order: the first prefix read that
    // reached it, and how many prefix reads reach it (those longer than i).
    let mut first_at: Vec<usize> = vec![0; order.len()];
    let mut reads_by_len: Vec<u64> = vec![0; order.len() + 1];
    let mut covered = 0usize;
    let mut divergent: Vec<(&Operation, &[i64])> = Vec::new();

    for (ri, &(r, vals)) in k.reads.iter().enumerate() {
        if !k.prefix[ri] {
            let lr = longest.expect("a read exists, so a longest read exists");
            let at = vals
                .iter()
                .zip(order)
                .position(|(a, b)| a != b)
                .unwrap_or(order.len());
            sink.push_with(AnomalyKind::Divergence, || {
                let why = match (vals.get(at), order.get(at)) {
                    (Some(a), Some(b)) => format!("element {} is {a} there but {b} in the longest read", at + 1),
                    _ => "it is longer than the longest read".into(),
                };
                Anomaly {
                    kind: AnomalyKind::Divergence,
                    cycle: Vec::new(),
                    key: Some(key),
                    ops: vec![op_index(h, r), op_index(h, lr)],
                    explanation: format!(
                        "{}, which is not a prefix of the longest read {} (index {}, t={}): {why}; the two orders are incompatible",
                        read_desc(r, vals),
                        list(order),
                        op_index(h, lr),
                        secs(invoke_ns(h, lr)),
                    ),
                }
            });
            divergent.push((r, vals));
            continue;
        }
        reads_by_len[vals.len()] += 1;
        while covered < vals.len() {
            first_at[covered] = ri;
            covered += 1;
        }
    }

    let mut reaching = reads_by_len
        .iter()
        .skip(1)
        .rev()
        .scan(0u64, |acc, &n| {
            *acc += n;
            Some(*acc)
        })
        .collect::<Vec<u64>>();
    reaching.reverse();
    let mut check_elements =
        |vals: &[i64], at: &dyn Fn(usize) -> ((&'a Operation, &'a [i64]), u64)| {
            seen.clear();
            for (i, &x) in vals.iter().enumerate() {
                observed.insert(x);
                if !seen.insert(x) {
                    let (read, n) = at(i);
                    note(&mut dup, &mut dup_order, x, read, n);
                }
                match k.appends.get(&x) {
                    None => {
                        let (read, n) = at(i);
                        note(&mut phantom, &mut phantom_order, x, read, n);
                    }
                    Some(a) if a.outcome == Outcome::Fail => {
                        let (read, n) = at(i);
                        note(&mut aborted, &mut aborted_order, x, read, n);
                    }
                    Some(_) => {}
                }
            }
        };
    check_elements(order, &|i| (k.reads[first_at[i]], reaching[i]));
    for &(r, vals) in &divergent {
        check_elements(vals, &|_| ((r, vals), 1));
    }

    for (kind, map, vals_order) in [
        (AnomalyKind::PhantomRead, &phantom, &phantom_order),
        (AnomalyKind::AbortedRead, &aborted, &aborted_order),
        (AnomalyKind::DuplicateElement, &dup, &dup_order),
    ] {
        for v in vals_order {
            let s = &map[v];
            let others = match s.reads {
                1 => String::new(),
                n => format!(" ({} reads in all)", n),
            };
            sink.push_with(kind, || {
                let (ops, why) = match kind {
                    AnomalyKind::PhantomRead => {
                        (vec![op_index(h, s.read)], format!("{v}, which no append to key {key} ever wrote"))
                    }
                    AnomalyKind::AbortedRead => {
                        let a = k.appends[v];
                        (
                            vec![op_index(h, s.read), op_index(h, a)],
                            format!(
                                "{v}, whose append by process {} failed at t={} (it certainly did not happen)",
                                a.process,
                                secs(complete_ns(h, a))
                            ),
                        )
                    }
                    _ => (vec![op_index(h, s.read)], format!("{v} twice")),
                };
                Anomaly::new(
                    kind,
                    Some(key),
                    ops,
                    format!("{}: it contains {why}{others}", read_desc(s.read, s.vals)),
                )
            });
        }
    }

    for (a, v, fate) in unseen(h, k, &|v| observed.contains(&v)) {
        let Unseen::Lost {
            read: r,
            vals,
            final_read,
        } = fate
        else {
            // Unread: only counted. Lagging: its first later read is a stale read
            // (`perop::append_key`), not proof of loss.
            if matches!(fate, Unseen::Unread) {
                counts.unobserved += 1;
            }
            continue;
        };
        let done = a.complete().expect("an ok append has a completion");
        let later = k.reads.len() - k.reads.partition_point(|(r, _)| r.invoke() < done);
        let (which, saw) = if final_read {
            (
                "including the final read at",
                "(after the quiet period), which saw",
            )
        } else {
            ("although the read at", "already holds later appends:")
        };
        sink.push_with(AnomalyKind::LostWrite, || Anomaly {
            kind: AnomalyKind::LostWrite,
            cycle: Vec::new(),
            key: Some(key),
            ops: vec![op_index(h, a), op_index(h, r)],
            explanation: format!(
                "append {v} to key {key} by process {}, acknowledged at t={}, is missing from all {} read{} of key {key} that began after it, {which} t={} by process {} {saw} {}",
                a.process,
                secs(complete_ns(h, a)),
                later,
                if later == 1 { "" } else { "s" },
                secs(invoke_ns(h, r)),
                r.process,
                list(vals)
            ),
        });
    }
}
