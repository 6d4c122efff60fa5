//! The `counter` checker (Jepsen's semantics): `incr` (or `add`) of integers to a counter
//! per key, integer reads.
//!
//! A read is valid when its value lies within [lower, upper], where, over the increments
//! of its key: `certain` ones were acknowledged before the read began and `possible` ones
//! (ok or indeterminate, not failed) were invoked before it ended but not acknowledged
//! before it began; lower = Σ certain + Σ negative possible, upper = Σ certain + Σ
//! positive possible. With only non-negative increments that is Jepsen's
//! [acknowledged before it began, attempted before it ended].
//!
//! It streams (`CounterStream`, fed op by op; the whole-history check replays the history
//! through it): per key the sums of the increments acknowledged and of those resolved not
//! failed so far; per open read the acknowledged sums when it began; a read that
//! completed while increments of its key were still open waits for them (at most one per
//! process) to resolve, then is judged. Memory: O(keys + processes + waiting reads), never
//! the operations.
//!
//! Guarantees: failed increments never count; every out-of-bounds read is an anomaly
//! naming the read and explaining both bounds, in key then read-invoke order; O(n).

use crate::explain::secs;
use crate::fx::FxHashMap;
use crate::opstream::{OpStream, replay};
use crate::report::{Anomaly, AnomalyKind, CheckResult, OrderedSink, Validity};
use crate::{CheckError, Options};
use schism_history::{F, History, Key, Op, OpType, Operation, Outcome, Paired, Process, Value};
use std::collections::BTreeMap;

/// Sums of (delta, positive part, negative part).
type Sums = (i128, i128, i128);

fn add(s: &mut Sums, d: i64) {
    let d = i128::from(d);
    s.0 += d;
    s.1 += d.max(0);
    s.2 += d.min(0);
}

/// One key's increments so far.
#[derive(Debug, Default)]
struct KeyCounter {
    /// Ok increments completed.
    acked: Sums,
    /// Ok or indeterminate increments resolved (completed, or at the end).
    attempted: Sums,
}

/// An ok read waiting for the increments of its key still open when it completed.
#[derive(Debug)]
struct Waiting {
    key: Key,
    invoke: usize,
    value: i64,
    process: Process,
    invoke_ns: u64,
    index: u64,
    certain: Sums,
    attempted: Sums,
    open: usize,
}

/// The `counter` checker op by op (see the module's doc).
#[derive(Debug)]
pub(crate) struct CounterStream {
    keys: BTreeMap<Key, KeyCounter>,
    incr_ok: u64,
    incr_fail: u64,
    incr_info: u64,
    reads: u64,
    /// Open increments by invoke position: their key and the line of their invoke.
    open_incrs: FxHashMap<usize, (Key, usize)>,
    /// Open reads by invoke position: the key's acknowledged sums when it began.
    open_reads: FxHashMap<usize, Sums>,
    /// Waiting reads by invoke position, and which wait for an increment (by its invoke
    /// position).
    waiting: FxHashMap<usize, Waiting>,
    waits_for: FxHashMap<usize, Vec<usize>>,
    sink: OrderedSink<(Key, usize)>,
    /// The error of the op first in invoke order: its invoke position, the error, its line.
    error: Option<(usize, CheckError, usize)>,
}

impl CounterStream {
    pub(crate) fn new(opts: &Options) -> Self {
        CounterStream {
            keys: BTreeMap::new(),
            incr_ok: 0,
            incr_fail: 0,
            incr_info: 0,
            reads: 0,
            open_incrs: FxHashMap::default(),
            open_reads: FxHashMap::default(),
            waiting: FxHashMap::default(),
            waits_for: FxHashMap::default(),
            sink: OrderedSink::new(opts.max_anomalies_per_kind),
            error: None,
        }
    }

    fn fail(&mut self, pos: usize, e: CheckError, line: usize) {
        if self.error.as_ref().is_none_or(|(p, _, _)| pos < *p) {
            self.error = Some((pos, e, line));
        }
    }

    fn judge(&mut self, w: Waiting) {
        self.reads += 1;
        let Waiting {
            key,
            invoke,
            value: v,
            process,
            invoke_ns,
            index,
            certain,
            attempted,
            ..
        } = w;
        // Possible = attempted before the read ended minus the certain ones (every
        // certain increment was invoked before it completed).
        let pos = attempted.1 - certain.1;
        let neg = attempted.2 - certain.2;
        let lower = certain.0 + neg;
        let upper = certain.0 + pos;
        let v128 = i128::from(v);
        if v128 < lower || v128 > upper {
            self.sink
                .push_with(AnomalyKind::CounterOutOfBounds, (key, invoke), || {
                    let side = if v128 < lower {
                        format!(
                            "below {lower}: increments acknowledged before it began sum to {}",
                            certain.0
                        )
                    } else {
                        format!(
                            "above {upper}: all increments attempted before it ended sum to at most {upper}"
                        )
                    };
                    Anomaly::new(
                        AnomalyKind::CounterOutOfBounds,
                        Some(key),
                        vec![index],
                        format!(
                            "process {process} read {v} from counter {key} at t={}, which must lie within [{lower}, {upper}]; it is {side}",
                            secs(invoke_ns),
                        ),
                    )
                });
        }
    }

    /// The result once every op has been fed (the never-completed ones last).
    pub(crate) fn finish(self, opts: &Options) -> Result<CheckResult, (CheckError, usize)> {
        if let Some((_, e, line)) = self.error {
            return Err((e, line));
        }
        debug_assert!(self.waiting.is_empty(), "a read still waits at the end");
        if !self.keys.is_empty() && opts.aborted() {
            let mut figures = serde_json::Map::new();
            figures.insert("unknown_reason".into(), "aborted".into());
            return Ok(CheckResult {
                checker: "counter".into(),
                validity: Validity::Unknown,
                anomalies: Vec::new(),
                figures,
            });
        }
        let mut figures = serde_json::Map::new();
        figures.insert("keys".into(), self.keys.len().into());
        figures.insert("reads".into(), self.reads.into());
        figures.insert("incr_ok".into(), self.incr_ok.into());
        figures.insert("incr_fail".into(), self.incr_fail.into());
        figures.insert("incr_info".into(), self.incr_info.into());
        let found = !self.sink.is_empty();
        let anomalies = self
            .sink
            .finish(&[AnomalyKind::CounterOutOfBounds], &mut figures);
        Ok(CheckResult {
            checker: "counter".into(),
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

impl OpStream for CounterStream {
    fn invoke(&mut self, pos: usize, op: &Op, line: usize) {
        debug_assert_eq!(op.kind, OpType::Invoke);
        let key = op.key().unwrap_or(0);
        let k = self.keys.entry(key).or_default();
        match (&op.f, &op.value) {
            // The delta is the operation's value (an ok completion's, if it carries one):
            // known when it resolves.
            (F::Incr | F::Add, _) => {
                self.open_incrs.insert(pos, (key, line));
            }
            (F::Read, _) => {
                self.open_reads.insert(pos, k.acked);
            }
            (f, _) => {
                let msg = format!(
                    "function {:?} does not belong to the counter workload (incr, add, read)",
                    f.as_str()
                );
                self.fail(
                    pos,
                    CheckError::Op {
                        index: op.index(),
                        msg,
                    },
                    line,
                );
            }
        }
    }

    fn complete(&mut self, p: &Paired, line: usize) {
        let o = &p.op;
        let pos = o.invoke();
        let key = o.key().unwrap_or(0);
        match o.f {
            F::Incr | F::Add => {
                let invoke_line = self.open_incrs.remove(&pos).map_or(line, |(_, l)| l);
                let d = match &o.value {
                    Value::Int(d) => *d,
                    v => {
                        let msg = format!("{} value {v} is not an integer", o.f);
                        let index = p.invoke_index;
                        self.fail(pos, CheckError::Op { index, msg }, invoke_line);
                        0
                    }
                };
                let k = self.keys.entry(key).or_default();
                let counts = o.outcome != Outcome::Fail;
                match o.outcome {
                    Outcome::Ok => {
                        self.incr_ok += 1;
                        add(&mut k.acked, d);
                        add(&mut k.attempted, d);
                    }
                    Outcome::Info => {
                        self.incr_info += 1;
                        add(&mut k.attempted, d);
                    }
                    Outcome::Fail => self.incr_fail += 1,
                }
                for r in self.waits_for.remove(&pos).unwrap_or_default() {
                    let w = self.waiting.get_mut(&r).expect("a waiting read");
                    if counts {
                        add(&mut w.attempted, d);
                    }
                    w.open -= 1;
                    if w.open == 0 {
                        let w = self.waiting.remove(&r).expect("a waiting read");
                        self.judge(w);
                    }
                }
            }
            F::Read => {
                let certain = self.open_reads.remove(&pos);
                if o.outcome != Outcome::Ok {
                    return;
                }
                let (Some(certain), Value::Int(v)) = (certain, &o.value) else {
                    let msg = format!("counter read returned {}, not an integer", o.value);
                    let index = p.complete_index.unwrap_or(p.invoke_index);
                    self.fail(pos, CheckError::Op { index, msg }, line);
                    return;
                };
                let attempted = self.keys.get(&key).map(|k| k.attempted).unwrap_or_default();
                let mut w = Waiting {
                    key,
                    invoke: pos,
                    value: *v,
                    process: o.process,
                    invoke_ns: p.invoke_ns,
                    index: p.complete_index.unwrap_or(p.invoke_index),
                    certain,
                    attempted,
                    open: 0,
                };
                // Increments of the key still open were invoked before the read ended:
                // they count once they resolve, unless they fail.
                for (&i, &(k, _)) in &self.open_incrs {
                    if k == key {
                        w.open += 1;
                        self.waits_for.entry(i).or_default().push(pos);
                    }
                }
                if w.open == 0 {
                    self.judge(w);
                } else {
                    self.waiting.insert(pos, w);
                }
            }
            _ => {}
        }
    }
}

pub(crate) fn check_ops(
    h: &History,
    ops: &[Operation],
    opts: &Options,
) -> Result<CheckResult, CheckError> {
    let mut s = CounterStream::new(opts);
    replay(h, ops, &mut s);
    s.finish(opts).map_err(|(e, _)| e)
}
