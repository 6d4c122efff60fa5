//! Pairing invocations with completions: the operations that checkers reason about.
//!
//! Guarantees: every client invoke yields exactly one `Operation`; an invoke that never
//! completed is `Outcome::Info` (it may have happened); a completion without an open
//! invoke, a second invoke while one is open, or a completion whose `f` differs from its
//! invoke is an error naming the op's index (and its `file:line` when the history was read
//! from a file). Nemesis ops are skipped.

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

/// An invocation with its completion.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    /// Position of the invoke in `History::ops`.
    pub invoke: usize,
    /// Position of the completion, if any.
    pub complete: Option<usize>,
    pub process: Process,
    pub f: F,
    pub key: Option<Key>,
    /// The completion's value when it is `ok` and carries one (reads), else the invoke's.
    pub value: Value,
    pub outcome: Outcome,
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
            match op.kind {
                OpType::Invoke => {
                    if let Some(&prev) = open.get(&op.process) {
                        return Err(self.op_error(
                            op.index(),
                            format!(
                                "process {} invokes again while its op at index {} is still open (a process runs one op at a time)",
                                op.process, self.ops[out[prev].invoke].index()
                            ),
                        ));
                    }
                    open.insert(op.process, out.len());
                    out.push(Operation {
                        invoke: pos,
                        complete: None,
                        process: op.process,
                        f: op.f,
                        key: op.key(),
                        value: op.value.clone(),
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
                                self.ops[o.invoke].index()
                            ),
                        ));
                    }
                    o.complete = Some(pos);
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
        assert_eq!(ops[1].complete, Some(3));
        assert_eq!(ops[2].outcome, Outcome::Info);
        assert_eq!(ops[2].complete, None);
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
}
