//! An append history validated and grouped by key: each key's appends and ok reads, its
//! version order (the first longest ok read) and which reads are prefixes of it, the
//! counts of ops by outcome, and the fate of an acknowledged append no read saw
//! (`Unseen`: lost, lagging or unread). The `append`, `graph` and `staleness` checkers and
//! `perop`'s per-op kinds all read this one analysis, so none of them imports another.
//!
//! Guarantees: every op is validated once (function, key, integer append values unique
//! per key, list reads), with the first violation named by op index; keys come sorted, so
//! reports are deterministic; the version order and the prefix test are computed once
//! per key.

use crate::CheckError;
use crate::explain::op_index;
use crate::fx::FxHashMap;
use schism_history::{F, History, Key, Operation, Outcome, Value};
use std::collections::BTreeMap;

/// One key's operations, validated.
#[derive(Default)]
pub(crate) struct KeyOps<'a> {
    /// Every append by its value (unique per key), whatever its outcome.
    pub(crate) appends: FxHashMap<i64, &'a Operation>,
    /// Ok appends in invoke order.
    pub(crate) ok_appends: Vec<(&'a Operation, i64)>,
    /// Ok reads in invoke order, with their lists.
    pub(crate) reads: Vec<(&'a Operation, &'a [i64])>,
    /// Index in `reads` of the first longest read (the version order).
    longest: Option<usize>,
    /// Per read: is it a prefix of the version order (else divergent)?
    pub(crate) prefix: Vec<bool>,
}

#[derive(Default)]
pub(crate) struct Counts {
    pub(crate) reads_ok: u64,
    pub(crate) reads_not_ok: u64,
    pub(crate) appends_ok: u64,
    pub(crate) appends_fail: u64,
    pub(crate) appends_info: u64,
    pub(crate) unobserved: u64,
    pub(crate) longest_read: usize,
}

/// A validated append history grouped by key, with its counts.
pub(crate) struct Analysis<'a> {
    pub(crate) keys: BTreeMap<Key, KeyOps<'a>>,
    pub(crate) counts: Counts,
}

impl<'a> Analysis<'a> {
    /// Validates every op and groups them by key.
    pub(crate) fn new(h: &History, ops: &'a [Operation]) -> Result<Self, CheckError> {
        let mut counts = Counts::default();
        let mut keys = group(h, ops, &mut counts)?;
        for k in keys.values_mut() {
            k.settle();
        }
        Ok(Analysis { keys, counts })
    }

    /// Counts of ops by outcome, written into `figures`.
    pub(crate) fn figures(&self, figures: &mut serde_json::Map<String, serde_json::Value>) {
        let counts = &self.counts;
        figures.insert("keys".into(), self.keys.len().into());
        figures.insert("reads".into(), counts.reads_ok.into());
        figures.insert("reads_not_ok".into(), counts.reads_not_ok.into());
        figures.insert("appends_ok".into(), counts.appends_ok.into());
        figures.insert("appends_fail".into(), counts.appends_fail.into());
        figures.insert("appends_info".into(), counts.appends_info.into());
        figures.insert("unobserved".into(), counts.unobserved.into());
        figures.insert("longest_read".into(), counts.longest_read.into());
    }
}

impl<'a> KeyOps<'a> {
    /// The key's version order: its first longest ok read (empty without reads), and
    /// that read.
    pub(crate) fn version_order(&self) -> (&'a [i64], Option<&'a Operation>) {
        match self.longest {
            Some(i) => (self.reads[i].1, Some(self.reads[i].0)),
            None => (&[], None),
        }
    }

    /// Finds the version order and which reads are prefixes of it (once per key; every
    /// user shares it).
    fn settle(&mut self) {
        self.longest = self
            .reads
            .iter()
            .enumerate()
            .reduce(|best, r| {
                if r.1.1.len() > best.1.1.len() {
                    r
                } else {
                    best
                }
            })
            .map(|(i, _)| i);
        let (order, _) = self.version_order();
        self.prefix = self
            .reads
            .iter()
            .map(|(_, v)| order.starts_with(v))
            .collect();
    }
}
/// Validates every op and groups them by key (sorted, so reports are deterministic).
fn group<'a>(
    h: &History,
    ops: &'a [Operation],
    counts: &mut Counts,
) -> Result<BTreeMap<Key, KeyOps<'a>>, CheckError> {
    let mut keys: BTreeMap<Key, KeyOps<'a>> = BTreeMap::new();
    for o in ops {
        let index = h.ops[o.invoke()].index();
        let bad = |msg: String| CheckError::Op { index, msg };
        if !matches!(o.f, F::Append | F::Read) {
            return Err(bad(format!(
                "function {:?} does not belong to the append workload (read, append)",
                o.f.as_str()
            )));
        }
        let Some(key) = o.key() else {
            return Err(bad(format!("{} has no key", o.f)));
        };
        let k = keys.entry(key).or_default();
        match o.f {
            F::Append => {
                let Value::Int(v) = o.value else {
                    return Err(bad(format!("append value {} is not an integer", o.value)));
                };
                if let Some(prev) = k.appends.insert(v, o) {
                    return Err(bad(format!(
                        "append of {v} to key {key} repeats the append at op index {}; append values must be unique per key",
                        h.ops[prev.invoke()].index()
                    )));
                }
                match o.outcome {
                    Outcome::Ok => {
                        counts.appends_ok += 1;
                        k.ok_appends.push((o, v));
                    }
                    Outcome::Fail => counts.appends_fail += 1,
                    Outcome::Info => counts.appends_info += 1,
                }
            }
            _ => {
                if o.outcome != Outcome::Ok {
                    counts.reads_not_ok += 1;
                    continue;
                }
                let vals: &[i64] = match &o.value {
                    Value::List(v) => v,
                    // A store may answer nil for a key nobody appended to yet.
                    Value::Null => &[],
                    other => {
                        let index = op_index(h, o);
                        return Err(CheckError::Op {
                            index,
                            msg: format!(
                                "read of key {key} returned {other}, not a list of integers"
                            ),
                        });
                    }
                };
                counts.reads_ok += 1;
                counts.longest_read = counts.longest_read.max(vals.len());
                k.reads.push((o, vals));
            }
        }
    }
    Ok(keys)
}
/// What became of an ok append that no ok read observed.
pub(crate) enum Unseen<'a> {
    /// No read of its key began after it was acknowledged: only counted, `unobserved`.
    Unread,
    /// Provably lost: a later read holds a value whose append began only after this
    /// one was acknowledged (the key's order went past it), or a final read misses it.
    Lost {
        read: &'a Operation,
        vals: &'a [i64],
        final_read: bool,
    },
    /// Later reads miss it without proof of loss (a lagging replica): the first of them,
    /// by its index in `KeyOps::reads`, is a stale read.
    Lagging { read: usize },
}

/// Every ok append of `k` that `observed` says no ok read holds, with its fate.
pub(crate) fn unseen<'a>(
    h: &History,
    k: &KeyOps<'a>,
    observed: &dyn Fn(i64) -> bool,
) -> Vec<(&'a Operation, i64, Unseen<'a>)> {
    let mut out = Vec::new();
    for &(a, v) in &k.ok_appends {
        if observed(v) {
            continue;
        }
        let done = a.complete().expect("an ok append has a completion");
        let first_after = k.reads.partition_point(|(r, _)| r.invoke() < done);
        if first_after == k.reads.len() {
            out.push((a, v, Unseen::Unread));
            continue;
        }
        let after = &k.reads[first_after..];
        let passed_over = after.iter().find(|(_, vals)| {
            vals.iter()
                .any(|w| k.appends.get(w).is_some_and(|o| o.invoke() > done))
        });
        let fate = match passed_over {
            Some(&(read, vals)) => Unseen::Lost {
                read,
                vals,
                final_read: false,
            },
            None => match after.iter().find(|(r, _)| is_final_read(h, r)) {
                Some(&(read, vals)) => Unseen::Lost {
                    read,
                    vals,
                    final_read: true,
                },
                None => Unseen::Lagging { read: first_after },
            },
        };
        out.push((a, v, fate));
    }
    out
}

/// A final read: the runner marks the invoke of reads taken after the time limit and a
/// quiet period with `meta.final = true`.
fn is_final_read(h: &History, r: &Operation) -> bool {
    h.ops[r.invoke()]
        .meta()
        .as_ref()
        .and_then(|m| m.get("final"))
        .and_then(serde_json::Value::as_bool)
        == Some(true)
}
