//! Pairing invocations with completions: the operations that checkers reason about.
//!
//! Guarantees: every client invoke yields exactly one `Operation`; an invoke that never
//! completed is `Outcome::Info` (it may have happened); a completion without an open
//! invoke, a second invoke while one is open, or a completion whose `f` differs from its
//! invoke is an error naming the op's index (and its `file:line` when the history was read
//! from a file). Nemesis ops are skipped. An `Operation` is 40 bytes: positions and key
//! are stored in 32 bits (`MAX_POSITION`; a longer history is an error, not a wrap).

use crate::{F, History, HistoryError, Key, OpType, Process, Value};
use std::collections::HashMap;

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Ok,
    Fail,
    /// Indeterminate: an `info` completion, or no completion before the history ended.
    Info,
}

/// Largest position in `History::ops` an `Operation` can name: positions are stored in
/// 32 bits (`u32::MAX` marks "no completion"), so pairing a history of more ops than
/// `MAX_POSITION + 1` is an error naming the first op past it.
pub const MAX_POSITION: usize = u32::MAX as usize - 1;

/// The stored "no completion" / "no key".
const NONE32: u32 = u32::MAX;

/// An invocation with its completion, in 40 bytes (`operation_is_compact`): the
/// positions and the key are read through accessors, as they are stored narrower than
/// they read.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    /// The completion's value when it is `ok` and carries one (reads), else the invoke's.
    pub value: Value,
    invoke: u32,
    complete: u32,
    pub process: Process,
    key: u32,
    pub f: F,
    pub outcome: Outcome,
}

impl Operation {
    /// Position of the invoke in `History::ops`.
    #[inline]
    pub fn invoke(&self) -> usize {
        self.invoke as usize
    }

    /// Position of the completion, if any.
    #[inline]
    pub fn complete(&self) -> Option<usize> {
        (self.complete != NONE32).then_some(self.complete as usize)
    }

    /// The key of the invoke, if it has one.
    #[inline]
    pub fn key(&self) -> Option<Key> {
        (self.key != NONE32).then_some(Key::from(self.key))
    }
}

/// `pos` as stored, or `None` past `MAX_POSITION`.
fn narrow_position(pos: usize) -> Option<u32> {
    u32::try_from(pos).ok().filter(|&p| p != NONE32)
}

impl History {
    /// Pairs every client invoke with its completion, in invoke order.
    pub fn operations(&self) -> Result<Vec<Operation>, HistoryError> {
        let mut out: Vec<Operation> = Vec::with_capacity(self.ops.len() / 2 + 1);
        let mut open: HashMap<Process, usize> = HashMap::new();
        for (pos, op) in self.ops.iter().enumerate() {
            if op.process == Process::NEMESIS {
                continue;
            }
            let Some(pos32) = narrow_position(pos) else {
                return Err(self.op_error(
                    op.index(),
                    format!(
                        "the history holds more than {} ops, schism's limit for pairing",
                        MAX_POSITION + 1
                    ),
                ));
            };
            match op.kind {
                OpType::Invoke => {
                    if let Some(&prev) = open.get(&op.process) {
                        return Err(self.op_error(
                            op.index(),
                            format!(
                                "process {} invokes again while its op at index {} is still open (a process runs one op at a time)",
                                op.process, self.ops[out[prev].invoke()].index()
                            ),
                        ));
                    }
                    open.insert(op.process, out.len());
                    out.push(Operation {
                        value: op.value.clone(),
                        invoke: pos32,
                        complete: NONE32,
                        process: op.process,
                        // Keys are stored in 32 bits already (`MAX_KEY`), never `NONE32`.
                        key: op.key().map_or(NONE32, |k| k as u32),
                        f: op.f,
                        outcome: Outcome::Info,
                    });
                }
                kind => {
                    let Some(slot) = open.remove(&op.process) else {
                        return Err(self.op_error(
                            op.index(),
                            format!("process {} completes an op it never invoked", op.process),
                        ));
                    };
                    let o = &mut out[slot];
                    if o.f != op.f {
                        return Err(self.op_error(
                            op.index(),
                            format!(
                                "completion f={} does not match its invoke f={} at index {}",
                                op.f,
                                o.f,
                                self.ops[o.invoke()].index()
                            ),
                        ));
                    }
                    o.complete = pos32;
                    o.outcome = match kind {
                        OpType::Ok => Outcome::Ok,
                        OpType::Fail => Outcome::Fail,
                        _ => Outcome::Info,
                    };
                    if kind == OpType::Ok && !op.value.is_null() {
                        o.value = op.value.clone();
                    } else if kind == OpType::Ok && o.f == F::Read {
                        o.value = Value::Null;
                    }
                }
            }
        }
        Ok(out)
    }
}

/// One operation paired by `Pairing`: the `Operation` (its positions are those the ops
/// would have in `History::ops`), and what a streaming checker needs of its two ops.
#[derive(Debug, Clone, PartialEq)]
pub struct Paired {
    pub op: Operation,
    /// The invoke's `index` and time.
    pub invoke_index: u64,
    pub invoke_ns: u64,
    /// The completion's time, if it completed.
    pub complete_ns: Option<u64>,
    /// The completion's `index`, if it completed.
    pub complete_index: Option<u64>,
}

/// Pairing op by op, for a history that is never held whole: an open invoke per process
/// (`process count` entries, whatever the history's length). Fed every op in recorded
/// order (nemesis ops too: they take a position), it yields each operation when it
/// completes, and `finish` the ones never completed (`Outcome::Info`), in invoke order:
/// the operations, values, outcomes and errors of `History::operations`, in another order.
/// An error is the op's index and the message `History::operations` gives it (the
/// caller names the file and line).
#[derive(Debug, Default)]
pub struct Pairing {
    open: HashMap<Process, Paired>,
    /// Position of the next op.
    pos: usize,
}

impl Pairing {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the next op: the operation it completes, if any.
    pub fn push(&mut self, op: &crate::Op) -> Result<Option<Paired>, (u64, String)> {
        let pos = self.pos;
        self.pos += 1;
        if op.process == Process::NEMESIS {
            return Ok(None);
        }
        let Some(pos32) = narrow_position(pos) else {
            return Err((
                op.index(),
                format!(
                    "the history holds more than {} ops, schism's limit for pairing",
                    MAX_POSITION + 1
                ),
            ));
        };
        match op.kind {
            OpType::Invoke => {
                if let Some(prev) = self.open.get(&op.process) {
                    return Err((
                        op.index(),
                        format!(
                            "process {} invokes again while its op at index {} is still open (a process runs one op at a time)",
                            op.process, prev.invoke_index
                        ),
                    ));
                }
                self.open.insert(
                    op.process,
                    Paired {
                        op: Operation {
                            value: op.value.clone(),
                            invoke: pos32,
                            complete: NONE32,
                            process: op.process,
                            key: op.key().map_or(NONE32, |k| k as u32),
                            f: op.f,
                            outcome: Outcome::Info,
                        },
                        invoke_index: op.index(),
                        invoke_ns: op.time_ns,
                        complete_ns: None,
                        complete_index: None,
                    },
                );
                Ok(None)
            }
            kind => {
                let Some(mut p) = self.open.remove(&op.process) else {
                    return Err((
                        op.index(),
                        format!("process {} completes an op it never invoked", op.process),
                    ));
                };
                let o = &mut p.op;
                if o.f != op.f {
                    return Err((
                        op.index(),
                        format!(
                            "completion f={} does not match its invoke f={} at index {}",
                            op.f, o.f, p.invoke_index
                        ),
                    ));
                }
                o.complete = pos32;
                o.outcome = match kind {
                    OpType::Ok => Outcome::Ok,
                    OpType::Fail => Outcome::Fail,
                    _ => Outcome::Info,
                };
                if kind == OpType::Ok && !op.value.is_null() {
                    o.value = op.value.clone();
                } else if kind == OpType::Ok && o.f == F::Read {
                    o.value = Value::Null;
                }
                p.complete_ns = Some(op.time_ns);
                p.complete_index = Some(op.index());
                Ok(Some(p))
            }
        }
    }

    /// The operations still open at the end (never completed: `Outcome::Info`), in
    /// invoke order.
    pub fn finish(self) -> Vec<Paired> {
        let mut left: Vec<Paired> = self.open.into_values().collect();
        left.sort_unstable_by_key(|p| p.op.invoke);
        left
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Op;

    fn op(i: u64, p: u64, kind: OpType, f: F, v: Value) -> Op {
        Op::new(i, i * 10, Process::client(p), kind, f, Some(1), v)
    }

    #[test]
    fn pairs_and_marks_unfinished_as_info() {
        let h = History::new(vec![
            op(0, 1, OpType::Invoke, F::Write, Value::Int(5)),
            op(1, 2, OpType::Invoke, F::Read, Value::Null),
            op(2, 1, OpType::Ok, F::Write, Value::Int(5)),
            op(3, 2, OpType::Ok, F::Read, Value::Int(5)),
            op(4, 1, OpType::Invoke, F::Write, Value::Int(6)),
        ]);
        let ops = h.operations().unwrap();
        assert_eq!(ops.len(), 3);
        assert_eq!(ops[1].value, Value::Int(5));
        assert_eq!(ops[1].complete(), Some(3));
        assert_eq!(ops[1].invoke(), 1);
        assert_eq!(ops[1].key(), Some(1));
        assert_eq!(ops[2].outcome, Outcome::Info);
        assert_eq!(ops[2].complete(), None);
    }

    #[test]
    fn double_invoke_names_the_index() {
        let h = History::new(vec![
            op(0, 1, OpType::Invoke, F::Write, Value::Int(5)),
            op(1, 1, OpType::Invoke, F::Write, Value::Int(6)),
        ]);
        let e = h.operations().unwrap_err().to_string();
        assert!(e.contains("index 1") && e.contains("index 0"), "{e}");
    }

    #[test]
    fn orphan_completion_is_an_error() {
        let h = History::new(vec![op(0, 1, OpType::Ok, F::Write, Value::Int(5))]);
        assert!(
            h.operations()
                .unwrap_err()
                .to_string()
                .contains("never invoked")
        );
    }

    #[test]
    fn operation_is_compact() {
        assert_eq!(size_of::<Operation>(), 40);
    }

    #[test]
    fn positions_past_the_limit_are_refused() {
        assert_eq!(narrow_position(0), Some(0));
        assert_eq!(narrow_position(MAX_POSITION), Some(MAX_POSITION as u32));
        assert_eq!(narrow_position(MAX_POSITION + 1), None);
        assert_eq!(narrow_position(usize::MAX), None);
    }

    #[test]
    fn keyless_ops_pair_without_a_key() {
        let h = History::new(vec![
            Op::new(
                0,
                0,
                Process::client(1),
                OpType::Invoke,
                F::Read,
                None,
                Value::Null,
            ),
            Op::new(
                1,
                1,
                Process::client(1),
                OpType::Ok,
                F::Read,
                None,
                Value::Int(1),
            ),
        ]);
        assert_eq!(h.operations().unwrap()[0].key(), None);
    }

    /// Op by op, the same operations (and the same first error) as the whole history.
    #[test]
    fn pairing_op_by_op_gives_the_whole_history_operations() {
        let cases = [
            vec![
                op(0, 1, OpType::Invoke, F::Write, Value::Int(5)),
                op(1, 2, OpType::Invoke, F::Read, Value::Null),
                op(2, 1, OpType::Ok, F::Write, Value::Int(5)),
                op(3, 2, OpType::Ok, F::Read, Value::Null),
                op(4, 1, OpType::Invoke, F::Write, Value::Int(6)),
                op(5, 2, OpType::Invoke, F::Read, Value::Null),
                op(6, 2, OpType::Fail, F::Read, Value::Null),
            ],
            vec![
                op(0, 1, OpType::Invoke, F::Write, Value::Int(5)),
                op(1, 1, OpType::Invoke, F::Write, Value::Int(6)),
            ],
            vec![op(0, 1, OpType::Ok, F::Write, Value::Int(5))],
            vec![
                op(0, 1, OpType::Invoke, F::Write, Value::Int(5)),
                op(1, 1, OpType::Ok, F::Read, Value::Int(5)),
            ],
        ];
        for ops in cases {
            let h = History::new(ops);
            let mut p = Pairing::new();
            let mut got = Vec::new();
            let mut err = None;
            for o in &h.ops {
                match p.push(o) {
                    Ok(Some(done)) => got.push(done.op),
                    Ok(None) => {}
                    Err((index, msg)) => {
                        err = Some(h.op_error(index, msg).to_string());
                        break;
                    }
                }
            }
            got.extend(p.finish().into_iter().map(|d| d.op));
            got.sort_by_key(|o| o.invoke());
            match h.operations() {
                Ok(want) => assert_eq!((got, err), (want, None)),
                Err(e) => assert_eq!(err, Some(e.to_string())),
            }
        }
    }
}
