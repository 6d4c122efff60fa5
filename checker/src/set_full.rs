//! The `set-full` checker (Jepsen's semantics): `add` of unique integers to a set per
//! key, reads of the whole set.
//!
//! An element is *known* from the completion of its ok add or of the first read that
//! shows it, whichever is earlier. Against the ok reads that began after that point it is:
//! - **never-read** when no read began after it was known (only counted);
//! - **lost** when the last such read lacks it (it vanished and did not come back);
//! - **stale** when it is present at the end but some read that began after it was known
//!   lacked it (reported as `stale-read`);
//! - **stable** otherwise. Stable latency: from the add's invoke to the invoke of the first
//!   read of the final run of reads that all contain it; lost latency: from the add's
//!   invoke to the last read that contained it.
//!
//! Also phantom elements (never added), aborted ones (their add failed) and duplicates
//! within one read. Guarantees: indeterminate adds are never blamed unless a read showed
//! them; time linear in the total size of the reads.
//!
//! It streams (`SetStream`, fed op by op; the whole-history check, `whole::check_ops`, has
//! each key's reads at hand instead, and the test oracle compares the two). Reads are taken in invoke order: a completed read waits (its list shared,
//! not copied) for the reads of earlier invoke still open. Per element it holds what its
//! classification needs — its add, when it became known, the first read that showed it,
//! where its last run of reads began, its last read, the first read after it was known and
//! the first after that to lack it, the read that ended its last run (each read as its
//! place among the key's ok reads) —; per key a 32-byte row per ok read (process, invoke
//! and completion times, index: never its list), the elements of the previous read (to
//! see runs end) and the elements known but not yet followed by a read. Memory:
//! O(elements + reads) small records, plus the completed reads invoked after one still
//! open (a read never completed holds those until the end).

use crate::explain::secs;
use crate::fx::{FxHashMap, FxHashSet};
use crate::opstream::OpStream;
use crate::report::{Anomaly, AnomalyKind, CheckResult, OrderedSink, Validity};
use crate::{CheckError, Options};
use schism_history::{F, IntList, Key, Op, Outcome, Paired, Process, Value};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

const KINDS: [AnomalyKind; 5] = [
    AnomalyKind::LostElement,
    AnomalyKind::StaleRead,
    AnomalyKind::PhantomRead,
    AnomalyKind::AbortedRead,
    AnomalyKind::DuplicateElement,
];

fn quantiles(mut v: Vec<u64>) -> serde_json::Value {
    v.sort_unstable();
    let q = |p: f64| {
        if v.is_empty() {
            0.0
        } else {
            v[((v.len() as f64 - 1.0) * p).round() as usize] as f64 / 1e6
        }
    };
    json!({"p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "max": q(1.0)})
}

/// An ok read of a key, as its elements refer to it (by its place among the key's ok
/// reads in invoke order): never its list.
#[derive(Debug, Clone, Copy)]
struct ReadRow {
    process: Process,
    invoke_ns: u64,
    /// Its completion's index and time.
    index: u64,
    complete_ns: u64,
}

/// An element's add: the one first in invoke order.
#[derive(Debug, Clone, Copy)]
struct Add {
    invoke_index: u64,
    invoke_ns: u64,
    /// Its completion's index and time (its invoke's if it never completed).
    complete_index: u64,
    complete_ns: u64,
    invoke: u32,
    /// Its completion's position, `NO_POS` if it never completed.
    complete: u32,
    process: Process,
    /// The line of its invoke (`u32::MAX` past it).
    line: u32,
    outcome: Outcome,
}

/// No position.
const NO_POS: u32 = u32::MAX;

impl Add {
    /// `explain::op_index`.
    fn index(&self) -> u64 {
        self.complete_index
    }

    /// Its acknowledgement's position, if it was acknowledged.
    fn acked(&self) -> Option<usize> {
        (self.outcome == Outcome::Ok && self.complete != NO_POS).then_some(self.complete as usize)
    }
}

/// A read's place among its key's ok reads in invoke order, counted from 1 (so that an
/// absent one costs no more room).
type Seq = std::num::NonZeroU32;

/// One element of a key (see the module's doc); reads are their places among the key's
/// ok reads.
#[derive(Debug, Default)]
struct Elem {
    x: i64,
    add: Option<Add>,
    /// The first read to show it.
    first_seen: Option<Seq>,
    /// The last read to show it.
    last_seen: Option<Seq>,
    /// The first read of its latest run of reads that show it.
    run_start: Option<Seq>,
    /// The position, plus 1, of the op from which it was known (its ack, or the
    /// completion of the first read to show it).
    known: Option<Seq>,
    /// The first read invoked after it was known.
    first_after: Option<Seq>,
    /// The first read from `first_after` on that lacks it.
    miss: Option<Seq>,
    /// The read that ended its latest run.
    broke: Option<Seq>,
    /// A duplicate of it within one read was reported.
    flagged: bool,
}

/// One key's state.
#[derive(Debug, Default)]
struct SetKey {
    /// Its elements, in the order they appeared, and where each is (a vector and an
    /// index rather than a map of elements: half the memory).
    elems: Vec<Elem>,
    at: FxHashMap<i64, u32>,
    /// Ok reads taken so far.
    reads: Vec<ReadRow>,
    /// The elements of the previous ok read (a vector: half a set's memory).
    prev: Vec<i64>,
    /// Elements known (at this position) but not yet followed by a read.
    unread: BTreeSet<(u32, i64)>,
}

impl SetKey {
    /// The element `x`, new if it was not there.
    fn elem(&mut self, x: i64) -> &mut Elem {
        let n = u32::try_from(self.elems.len()).expect("elements are fewer than positions");
        let i = *self.at.entry(x).or_insert(n);
        if i == n {
            self.elems.push(Elem {
                x,
                ..Elem::default()
            });
        }
        &mut self.elems[i as usize]
    }

    /// The element `x`, which is there.
    fn get_mut(&mut self, x: i64) -> &mut Elem {
        let i = self.at[&x];
        &mut self.elems[i as usize]
    }

    /// `x` became known at position `pos` (or earlier than it was thought).
    fn know(&mut self, x: i64, pos: u32) {
        let e = self.elem(x);
        let at = Seq::new(pos + 1).expect("positions are below u32::MAX");
        if e.first_after.is_some() || e.known.is_some_and(|old| old <= at) {
            return;
        }
        let old = e.known.replace(at);
        if let Some(old) = old {
            self.unread.remove(&(old.get() - 1, x));
        }
        self.unread.insert((pos, x));
    }
}

/// A completed ok read waiting for its turn (invoke order).
#[derive(Debug)]
struct Done {
    key: Key,
    values: Option<IntList>,
    process: Process,
    invoke_ns: u64,
    index: u64,
    complete: usize,
    complete_ns: u64,
}

/// The `set-full` checker op by op (see the module's doc).
#[derive(Debug)]
pub(crate) struct SetStream {
    keys: BTreeMap<Key, SetKey>,
    /// Reads by invoke position: `None` while open.
    reads: BTreeMap<usize, Option<Done>>,
    /// Open adds by invoke position: the line of their invoke.
    open_adds: FxHashMap<usize, usize>,
    sink: OrderedSink<(Key, u8, u64, i64)>,
    /// The error of the op first in invoke order: its invoke position, the error, its line.
    error: Option<(usize, CheckError, usize)>,
}

impl SetStream {
    pub(crate) fn new(opts: &Options) -> Self {
        SetStream {
            keys: BTreeMap::new(),
            reads: BTreeMap::new(),
            open_adds: FxHashMap::default(),
            sink: OrderedSink::new(opts.max_anomalies_per_kind),
            error: None,
        }
    }

    fn fail(&mut self, pos: usize, e: CheckError, line: usize) {
        if self.error.as_ref().is_none_or(|(p, _, _)| pos < *p) {
            self.error = Some((pos, e, line));
        }
    }

    /// Takes the completed reads whose earlier reads have all completed.
    fn drain(&mut self) {
        while let Some(entry) = self.reads.first_entry() {
            if entry.get().is_none() {
                return;
            }
            let (pos, done) = entry.remove_entry();
            self.take_read(pos, done.expect("completed"));
        }
    }

    /// One ok read, in invoke order.
    fn take_read(&mut self, invoke: usize, d: Done) {
        let k = self.keys.entry(d.key).or_default();
        let seq = u32::try_from(k.reads.len() + 1)
            .ok()
            .and_then(Seq::new)
            .expect("reads are fewer than positions");
        let row = ReadRow {
            process: d.process,
            invoke_ns: d.invoke_ns,
            index: d.index,
            complete_ns: d.complete_ns,
        };
        k.reads.push(row);
        let complete = u32::try_from(d.complete).expect("positions fit in 32 bits");
        let values: &[i64] = d.values.as_deref().map_or(&[], |v| &v[..]);
        let mut cur: FxHashSet<i64> =
            FxHashSet::with_capacity_and_hasher(values.len(), Default::default());
        for &x in values {
            cur.insert(x);
        }
        // Elements known before this read began: it is the first read after them.
        while let Some(&(p, x)) = k.unread.first()
            && (p as usize) < invoke
        {
            k.unread.pop_first();
            let e = k.get_mut(x);
            e.first_after = Some(seq);
            if !cur.contains(&x) {
                e.miss = Some(seq);
            }
        }
        // Runs that end here.
        for x in &k.prev {
            if !cur.contains(x) {
                let e = &mut k.elems[k.at[x] as usize];
                e.broke = Some(seq);
                if e.first_after.is_some() && e.miss.is_none() {
                    e.miss = Some(seq);
                }
            }
        }
        let mut in_read: FxHashSet<i64> =
            FxHashSet::with_capacity_and_hasher(values.len(), Default::default());
        for (j, &x) in values.iter().enumerate() {
            let e = k.elem(x);
            if !in_read.insert(x) && !e.flagged {
                e.flagged = true;
                let key = d.key;
                self.sink.push_with(
                    AnomalyKind::DuplicateElement,
                    (key, 0, u64::from(seq.get()), j as i64),
                    || {
                        Anomaly::new(
                            AnomalyKind::DuplicateElement,
                            Some(key),
                            vec![row.index],
                            format!(
                                "process {} read the set of key {key} at t={} and it contains {x} twice",
                                row.process,
                                secs(row.invoke_ns)
                            ),
                        )
                    },
                );
            }
            if e.first_seen.is_none() {
                e.first_seen = Some(seq);
                e.run_start = Some(seq);
                e.last_seen = Some(seq);
                let acked_before = e
                    .add
                    .and_then(|a| a.acked())
                    .is_some_and(|c| c < d.complete);
                if !acked_before {
                    k.know(x, complete);
                }
                continue;
            }
            if e.last_seen == Some(seq) {
                continue;
            }
            if e.last_seen.is_some_and(|l| l.get() + 1 != seq.get()) {
                e.run_start = Some(seq);
            }
            e.last_seen = Some(seq);
        }
        k.prev = cur.into_iter().collect();
    }

    /// The result once every op has been fed (the never-completed ones last).
    pub(crate) fn finish(mut self, opts: &Options) -> Result<CheckResult, (CheckError, usize)> {
        self.drain();
        if let Some((_, e, line)) = self.error {
            return Err((e, line));
        }
        debug_assert!(self.reads.is_empty(), "a read is still open at the end");
        if !self.keys.is_empty() && opts.aborted() {
            return Ok(CheckResult {
                checker: "set-full".into(),
                validity: Validity::Unknown,
                anomalies: Vec::new(),
                figures: [("unknown_reason".to_string(), json!("aborted"))]
                    .into_iter()
                    .collect(),
            });
        }
        let mut sink = self.sink;
        let (mut stable, mut lost, mut stale, mut never_read, mut elements) = (0u64, 0, 0, 0, 0u64);
        let (mut stable_lat, mut lost_lat) = (Vec::new(), Vec::new());
        let nkeys = self.keys.len();
        for (key, k) in self.keys {
            let reads = &k.reads;
            let row = |i: Seq| reads[i.get() as usize - 1];
            // Phantom and aborted elements.
            let mut strange: Vec<(Seq, i64, &Elem)> = k
                .elems
                .iter()
                .filter(|e| {
                    e.first_seen.is_some() && e.add.is_none_or(|a| a.outcome == Outcome::Fail)
                })
                .map(|e| (e.first_seen.expect("seen"), e.x, e))
                .collect();
            strange.sort_unstable_by_key(|&(i, x, _)| (i, x));
            for (i, x, e) in strange {
                let r = row(i);
                let place = (key, 1, u64::from(i.get()), x);
                match e.add {
                    None => sink.push_with(AnomalyKind::PhantomRead, place, || {
                        Anomaly::new(
                            AnomalyKind::PhantomRead,
                            Some(key),
                            vec![r.index],
                            format!(
                                "process {} read the set of key {key} at t={} and it contains {x}, which no add ever added",
                                r.process,
                                secs(r.invoke_ns)
                            ),
                        )
                    }),
                    Some(a) => sink.push_with(AnomalyKind::AbortedRead, place, || {
                        Anomaly::new(
                            AnomalyKind::AbortedRead,
                            Some(key),
                            vec![r.index, a.index()],
                            format!(
                                "process {} read the set of key {key} at t={} and it contains {x}, whose add by process {} failed at t={} (it certainly did not happen)",
                                r.process,
                                secs(r.invoke_ns),
                                a.process,
                                secs(a.complete_ns)
                            ),
                        )
                    }),
                }
            }
            // Each added element (ok, or seen) against the reads after it was known.
            let mut adds: Vec<(i64, &Elem, Add)> = k
                .elems
                .iter()
                .filter_map(|e| e.add.map(|a| (e.x, e, a)))
                .collect();
            adds.sort_unstable_by_key(|(_, _, a)| a.invoke);
            for (x, e, a) in adds {
                let Some(known) = e.known else {
                    continue; // failed or indeterminate and never seen
                };
                let acked = a.acked();
                if a.outcome == Outcome::Fail {
                    continue; // reported as aborted above
                }
                elements += 1;
                let Some(first_after) = e.first_after else {
                    never_read += 1;
                    continue;
                };
                let last = u32::try_from(reads.len())
                    .ok()
                    .and_then(Seq::new)
                    .expect("a read after it was known");
                let a_inv = a.invoke_ns;
                let by_ack = acked == Some(known.get() as usize - 1);
                let known_ns = if by_ack {
                    a.complete_ns
                } else {
                    row(e.first_seen.expect("known by its ack or by a read")).complete_ns
                };
                let how = |seen: &'static str| if by_ack { "acknowledged" } else { seen };
                match e.last_seen {
                    Some(l) if l == last => {
                        // Present at the end: stable from the start of its final run.
                        let run_start = e.run_start.expect("seen at the end");
                        let since_ns = row(run_start).invoke_ns;
                        stable_lat.push(since_ns.saturating_sub(a_inv));
                        if run_start > first_after {
                            stale += 1;
                            let miss = row(e.miss.expect("a read lacked it since it was known"));
                            sink.push_with(
                                AnomalyKind::StaleRead,
                                (key, 2, u64::from(a.invoke), 0),
                                || {
                                    Anomaly::new(
                                        AnomalyKind::StaleRead,
                                        Some(key),
                                        vec![miss.index, a.index()],
                                        format!(
                                            "process {} read the set of key {key} at t={} without {x}, although {x} had been {} at t={}; it is in every read since t={}: a stale read",
                                            miss.process,
                                            secs(miss.invoke_ns),
                                            how("read"),
                                            secs(known_ns),
                                            secs(since_ns)
                                        ),
                                    )
                                },
                            );
                        } else {
                            stable += 1;
                        }
                    }
                    _ => {
                        lost += 1;
                        match e.last_seen {
                            Some(l) => lost_lat.push(row(l).invoke_ns.saturating_sub(a_inv)),
                            None => lost_lat.push(0),
                        }
                        let first_missing = match e.last_seen {
                            Some(l) if l.get() + 1 > first_after.get() => {
                                e.broke.expect("a read ended its last run")
                            }
                            _ => e.miss.expect("the first read after it was known lacks it"),
                        };
                        let r = row(first_missing);
                        let shown = match e.last_seen {
                            Some(l) => format!(
                                "; the last read to show it began at t={}",
                                secs(row(l).invoke_ns)
                            ),
                            None => String::new(),
                        };
                        sink.push_with(
                            AnomalyKind::LostElement,
                            (key, 2, u64::from(a.invoke), 0),
                            || {
                                Anomaly::new(
                                    AnomalyKind::LostElement,
                                    Some(key),
                                    vec![a.index(), r.index],
                                    format!(
                                        "{x}, added to key {key} by process {} and {} at t={}, is missing from every read since t={} ({} read{}){shown}: a lost element",
                                        a.process,
                                        how("seen"),
                                        secs(known_ns),
                                        secs(r.invoke_ns),
                                        last.get() - first_missing.get() + 1,
                                        if last == first_missing { "" } else { "s" },
                                    ),
                                )
                            },
                        );
                    }
                }
            }
        }
        let mut figures = serde_json::Map::new();
        figures.insert("keys".into(), nkeys.into());
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
}

impl OpStream for SetStream {
    fn invoke(&mut self, pos: usize, op: &Op, line: usize) {
        let bad = |msg: String| CheckError::Op {
            index: op.index(),
            msg,
        };
        let Some(key) = op.key() else {
            let e = bad(format!("{} has no key", op.f));
            return self.fail(pos, e, line);
        };
        self.keys.entry(key).or_default();
        match op.f {
            F::Add => {
                self.open_adds.insert(pos, line);
            }
            F::Read => {
                self.reads.insert(pos, None);
            }
            f => {
                let e = bad(format!(
                    "function {:?} does not belong to the set workload (add, read)",
                    f.as_str()
                ));
                self.fail(pos, e, line);
            }
        }
    }

    fn complete(&mut self, p: &Paired, line: usize) {
        let o = &p.op;
        let pos = o.invoke();
        let Some(key) = o.key() else {
            return; // an error already
        };
        match o.f {
            F::Add => {
                let invoke_line = self.open_adds.remove(&pos).unwrap_or(line);
                let Value::Int(x) = o.value else {
                    let msg = format!("add value {} is not an integer", o.value);
                    let index = p.invoke_index;
                    return self.fail(pos, CheckError::Op { index, msg }, invoke_line);
                };
                let add = Add {
                    invoke_index: p.invoke_index,
                    invoke_ns: p.invoke_ns,
                    complete_index: p.complete_index.unwrap_or(p.invoke_index),
                    complete_ns: p.complete_ns.unwrap_or(p.invoke_ns),
                    invoke: u32::try_from(pos).expect("positions fit in 32 bits"),
                    complete: o.complete().map_or(NO_POS, |c| {
                        u32::try_from(c).expect("positions fit in 32 bits")
                    }),
                    process: o.process,
                    line: u32::try_from(invoke_line).unwrap_or(u32::MAX),
                    outcome: o.outcome,
                };
                let k = self.keys.entry(key).or_default();
                let e = k.elem(x);
                if let Some(prev) = e.add {
                    // The later add in invoke order repeats the earlier one.
                    let (first, later) = if (prev.invoke as usize) < pos {
                        (prev, add)
                    } else {
                        e.add = Some(add);
                        (add, prev)
                    };
                    let msg = format!(
                        "add of {x} to key {key} repeats the add at op index {}; set elements must be unique",
                        first.invoke_index
                    );
                    let index = later.invoke_index;
                    let (at, line) = (later.invoke as usize, later.line as usize);
                    return self.fail(at, CheckError::Op { index, msg }, line);
                }
                e.add = Some(add);
                if o.outcome == Outcome::Ok
                    && let Some(c) = o.complete()
                {
                    k.know(x, u32::try_from(c).expect("positions fit in 32 bits"));
                }
            }
            F::Read => {
                if !self.reads.contains_key(&pos) {
                    return;
                }
                let values = match (&o.outcome, &o.value) {
                    (Outcome::Ok, Value::List(l)) => Some(l.clone()),
                    (Outcome::Ok, Value::Null) => None,
                    (Outcome::Ok, v) => {
                        let msg = format!("read of key {key} returned {v}, not a set of integers");
                        let index = p.complete_index.unwrap_or(p.invoke_index);
                        self.reads.remove(&pos);
                        self.fail(pos, CheckError::Op { index, msg }, line);
                        return self.drain();
                    }
                    _ => {
                        self.reads.remove(&pos);
                        return self.drain();
                    }
                };
                let c = o.complete().expect("ok reads complete");
                self.reads.insert(
                    pos,
                    Some(Done {
                        key,
                        values,
                        process: o.process,
                        invoke_ns: p.invoke_ns,
                        index: p.complete_index.unwrap_or(p.invoke_index),
                        complete: c,
                        complete_ns: p.complete_ns.unwrap_or(p.invoke_ns),
                    }),
                );
                self.drain();
            }
            _ => {}
        }
    }
}

mod whole;

pub(crate) use whole::check_ops;

/// `check_ops` through the stream (`opstream::replay`), for the test oracle.
#[cfg(test)]
pub(crate) fn check_ops_streamed(
    h: &schism_history::History,
    ops: &[schism_history::Operation],
    opts: &Options,
) -> Result<CheckResult, CheckError> {
    let mut s = SetStream::new(opts);
    crate::opstream::replay(h, ops, &mut s);
    s.finish(opts).map_err(|(e, _)| e)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The streamed check's memory is mostly these, one per element.
    #[test]
    fn elements_are_compact() {
        assert_eq!(size_of::<Add>(), 56);
        assert_eq!(size_of::<Elem>(), 96);
    }
}
