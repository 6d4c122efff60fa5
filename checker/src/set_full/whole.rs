//! `set-full` over the whole history (`check` when the history is held): the same
//! classification as `SetStream`, with each key's reads at hand rather than per-element
//! state, which costs less when the history is in memory anyway (a 10M-op set history:
//! 1.36 GB and 6 s here, 2.05 GB and 9.5 s replayed through the stream). The test oracle
//! compares the two on random histories; the runner's streaming proptest compares
//! `schism check` both ways.

use super::{KINDS, quantiles};
use crate::explain::{complete_ns, invoke_ns, op_index, secs};
use crate::fx::FxHashMap;
use crate::report::{Anomaly, AnomalyKind, AnomalySink, CheckResult, Validity};
use crate::{CheckError, Options};
use schism_history::{F, History, Key, Operation, Outcome, Value};
use serde_json::json;
use std::collections::BTreeMap;

#[derive(Default)]
struct KeySet<'a> {
    adds: FxHashMap<i64, &'a Operation>,
    reads: Vec<(&'a Operation, &'a [i64])>,
}

/// Per element, over the reads of its key in invoke order.
#[derive(Clone, Copy)]
struct Track {
    first_seen: Option<usize>,
    last_seen: Option<usize>,
    /// The first read of the latest run of consecutive reads that contain it.
    run_start: usize,
}

pub(crate) fn check_ops(
    h: &History,
    ops: &[Operation],
    opts: &Options,
) -> Result<CheckResult, CheckError> {
    let mut keys: BTreeMap<Key, KeySet<'_>> = BTreeMap::new();
    for o in ops {
        let index = h.ops[o.invoke()].index();
        let bad = |msg: String| CheckError::Op { index, msg };
        let Some(key) = o.key() else {
            return Err(bad(format!("{} has no key", o.f)));
        };
        let k = keys.entry(key).or_default();
        match (&o.f, &o.value) {
            (F::Add, Value::Int(v)) => {
                if let Some(prev) = k.adds.insert(*v, o) {
                    return Err(bad(format!(
                        "add of {v} to key {key} repeats the add at op index {}; set elements must be unique",
                        h.ops[prev.invoke()].index()
                    )));
                }
            }
            (F::Add, v) => return Err(bad(format!("add value {v} is not an integer"))),
            (F::Read, _) if o.outcome != Outcome::Ok => {}
            (F::Read, Value::List(l)) => k.reads.push((o, l)),
            (F::Read, Value::Null) => k.reads.push((o, &[])),
            (F::Read, v) => {
                return Err(CheckError::Op {
                    index: op_index(h, o),
                    msg: format!("read of key {key} returned {v}, not a set of integers"),
                });
            }
            (f, _) => {
                return Err(bad(format!(
                    "function {:?} does not belong to the set workload (add, read)",
                    f.as_str()
                )));
            }
        }
    }
    let mut sink = AnomalySink::new(opts.max_anomalies_per_kind);
    let (mut stable, mut lost, mut stale, mut never_read, mut elements) = (0u64, 0, 0, 0, 0u64);
    let (mut stable_lat, mut lost_lat) = (Vec::new(), Vec::new());
    for (&key, k) in &keys {
        if opts.aborted() {
            return Ok(CheckResult {
                checker: "set-full".into(),
                validity: Validity::Unknown,
                anomalies: Vec::new(),
                figures: [("unknown_reason".to_string(), json!("aborted"))]
                    .into_iter()
                    .collect(),
            });
        }
        let mut track: FxHashMap<i64, Track> = FxHashMap::default();
        let mut seen_in_read: FxHashMap<i64, usize> = FxHashMap::default();
        let mut flagged: FxHashMap<i64, ()> = FxHashMap::default();
        for (i, &(r, vals)) in k.reads.iter().enumerate() {
            for &x in vals {
                if seen_in_read.insert(x, i) == Some(i) && flagged.insert(x, ()).is_none() {
                    sink.push_with(AnomalyKind::DuplicateElement, || {
                        Anomaly::new(
                            AnomalyKind::DuplicateElement,
                            Some(key),
                            vec![op_index(h, r)],
                            format!(
                                "process {} read the set of key {key} at t={} and it contains {x} twice",
                                r.process,
                                secs(invoke_ns(h, r))
                            ),
                        )
                    });
                }
                let t = track.entry(x).or_insert(Track {
                    first_seen: Some(i),
                    last_seen: None,
                    run_start: i,
                });
                if t.last_seen == Some(i) {
                    continue;
                }
                if t.last_seen.is_some_and(|l| l + 1 != i) {
                    t.run_start = i;
                }
                t.last_seen = Some(i);
            }
        }
        // Phantom and aborted elements.
        let mut strange: Vec<(i64, usize)> = track
            .iter()
            .filter(|(x, _)| k.adds.get(x).is_none_or(|a| a.outcome == Outcome::Fail))
            .map(|(&x, t)| (x, t.first_seen.expect("seen")))
            .collect();
        strange.sort_unstable_by_key(|&(x, i)| (i, x));
        for (x, i) in strange {
            let r = k.reads[i].0;
            match k.adds.get(&x) {
                None => sink.push_with(AnomalyKind::PhantomRead, || {
                    Anomaly::new(
                        AnomalyKind::PhantomRead,
                        Some(key),
                        vec![op_index(h, r)],
                        format!(
                            "process {} read the set of key {key} at t={} and it contains {x}, which no add ever added",
                            r.process,
                            secs(invoke_ns(h, r))
                        ),
                    )
                }),
                Some(a) => sink.push_with(AnomalyKind::AbortedRead, || {
                    Anomaly::new(
                        AnomalyKind::AbortedRead,
                        Some(key),
                        vec![op_index(h, r), op_index(h, a)],
                        format!(
                            "process {} read the set of key {key} at t={} and it contains {x}, whose add by process {} failed at t={} (it certainly did not happen)",
                            r.process,
                            secs(invoke_ns(h, r)),
                            a.process,
                            secs(complete_ns(h, a))
                        ),
                    )
                }),
            }
        }
        // Each added element (ok, or seen) against the reads after it was known.
        let mut adds: Vec<(&i64, &&Operation)> = k.adds.iter().collect();
        adds.sort_unstable_by_key(|(_, a)| a.invoke());
        for (&x, a) in adds {
            let t = track.get(&x).copied();
            let acked = (a.outcome == Outcome::Ok).then_some(a.complete()).flatten();
            let seen_done = t
                .and_then(|t| t.first_seen)
                .and_then(|i| k.reads[i].0.complete());
            let known = match (acked, seen_done) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) => a,
                (None, Some(b)) => b,
                (None, None) => continue, // failed or indeterminate and never seen
            };
            if a.outcome == Outcome::Fail {
                continue; // reported as aborted above
            }
            elements += 1;
            let first_after = k.reads.partition_point(|(r, _)| r.invoke() < known);
            if first_after == k.reads.len() {
                never_read += 1;
                continue;
            }
            let last = k.reads.len() - 1;
            let a_inv = h.ops[a.invoke()].time_ns;
            match t {
                Some(t) if t.last_seen == Some(last) => {
                    // Present at the end: stable from the start of its final run.
                    stable_lat.push(invoke_ns(h, k.reads[t.run_start].0).saturating_sub(a_inv));
                    if t.run_start > first_after {
                        stale += 1;
                        let miss = k.reads[first_after..t.run_start]
                            .iter()
                            .find(|(_, vals)| !vals.contains(&x))
                            .map(|&(r, _)| r)
                            .unwrap_or(k.reads[first_after].0);
                        let since = k.reads[t.run_start].0;
                        sink.push_with(AnomalyKind::StaleRead, || {
                            Anomaly::new(
                                AnomalyKind::StaleRead,
                                Some(key),
                                vec![op_index(h, miss), op_index(h, a)],
                                format!(
                                    "process {} read the set of key {key} at t={} without {x}, although {x} had been {} at t={}; it is in every read since t={}: a stale read",
                                    miss.process,
                                    secs(invoke_ns(h, miss)),
                                    if acked == Some(known) { "acknowledged" } else { "read" },
                                    secs(h.ops[known].time_ns),
                                    secs(invoke_ns(h, since))
                                ),
                            )
                        });
                    } else {
                        stable += 1;
                    }
                }
                _ => {
                    lost += 1;
                    let last_seen = t.and_then(|t| t.last_seen);
                    if let Some(l) = last_seen {
                        lost_lat.push(invoke_ns(h, k.reads[l].0).saturating_sub(a_inv));
                    } else {
                        lost_lat.push(0);
                    }
                    let first_missing = match last_seen {
                        Some(l) if l + 1 > first_after => l + 1,
                        _ => first_after,
                    };
                    let r = k.reads[first_missing].0;
                    let shown = match last_seen {
                        Some(l) => format!(
                            "; the last read to show it began at t={}",
                            secs(invoke_ns(h, k.reads[l].0))
                        ),
                        None => String::new(),
                    };
                    sink.push_with(AnomalyKind::LostElement, || {
                        Anomaly::new(
                            AnomalyKind::LostElement,
                            Some(key),
                            vec![op_index(h, a), op_index(h, r)],
                            format!(
                                "{x}, added to key {key} by process {} and {} at t={}, is missing from every read since t={} ({} read{}){shown}: a lost element",
                                a.process,
                                if acked == Some(known) { "acknowledged" } else { "seen" },
                                secs(h.ops[known].time_ns),
                                secs(invoke_ns(h, r)),
                                last - first_missing + 1,
                                if last == first_missing { "" } else { "s" },
                            ),
                        )
                    });
                }
            }
        }
    }
    let mut figures = serde_json::Map::new();
    figures.insert("keys".into(), keys.len().into());
    figures.insert("elements".into(), elements.into());
    figures.insert("stable".into(), stable.into());
    figures.insert("lost".into(), lost.into());
    figures.insert("stale".into(), stale.into());
    figures.insert("never_read".into(), never_read.into());
    figures.insert("stable_latency_ms".into(), quantiles(stable_lat));
    figures.insert("lost_latency_ms".into(), quantiles(lost_lat));
    let found = !sink.is_empty();
    let anomalies = sink.finish(&KINDS, &mut figures);
    Ok(CheckResult {
        checker: "set-full".into(),
        validity: if found {
            Validity::Invalid
        } else {
            Validity::Valid
        },
        anomalies,
        figures,
    })
}
