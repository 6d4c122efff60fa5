//! Transactions: the vocabulary of `f = "txn"` ops, defined once for the workloads that
//! produce them and the checker that reads them.
//!
//! A transaction's `value` is its list of micro-ops, each `[f, key, value]`: `append`
//! (list-append), `w` (rw-register) and `r` (both). An invocation's reads carry `null`;
//! an `ok` completion carries what they returned: a list (`[1, 2]`) for list-append, an
//! integer for registers, `null` for a key never written. In JSON Lines:
//! `{"f":"txn","value":[["append",1,2],["r",1,[1,2]]]}`; in Elle's EDN:
//! `{:f :txn, :value [[:append 1 2] [:r 1 [1 2]]]}` (the EDN reader turns keywords into
//! the same strings, so both forms meet here). Guarantees: `parse_txn` accepts exactly
//! what `txn_value` writes (round trip), rejects anything else with one sentence naming
//! the offending micro-op, and `read_txns` pairs a history's txn ops (Elle's semantics:
//! `info` may or may not have happened, `fail` never did), naming `file:line` of a
//! malformed op when the history was read from a file.

use crate::{History, HistoryError, Key, Outcome, Value};
use serde_json::Value as J;

/// The `f` of a transaction op.
pub const TXN_F: &str = "txn";

/// Longest transaction accepted, in micro-ops: a bound on one op's work and on the
/// checker's per-transaction state.
pub const MAX_MICRO_OPS: usize = 4096;

/// What a micro-op does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MopF {
    /// `append`: add a unique integer to the end of the key's list.
    Append,
    /// `w`: set the key's register to a unique integer.
    Write,
    /// `r`: read the key.
    Read,
}

impl MopF {
    pub fn as_str(self) -> &'static str {
        match self {
            MopF::Append => "append",
            MopF::Write => "w",
            MopF::Read => "r",
        }
    }
}

/// A micro-op's value: what was written, or what a read returned (`Nil` before it
/// completed, or for a key never written).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum MopValue {
    #[default]
    Nil,
    Int(i64),
    List(Vec<i64>),
}

impl std::fmt::Display for MopValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MopValue::Nil => f.write_str("nil"),
            MopValue::Int(v) => write!(f, "{v}"),
            MopValue::List(xs) => {
                f.write_str("[")?;
                for (i, x) in xs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{x}")?;
                }
                f.write_str("]")
            }
        }
    }
}

/// One micro-op of a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MicroOp {
    pub f: MopF,
    pub key: Key,
    pub value: MopValue,
}

impl MicroOp {
    pub fn append(key: Key, value: i64) -> MicroOp {
        MicroOp {
            f: MopF::Append,
            key,
            value: MopValue::Int(value),
        }
    }

    pub fn write(key: Key, value: i64) -> MicroOp {
        MicroOp {
            f: MopF::Write,
            key,
            value: MopValue::Int(value),
        }
    }

    /// A read not yet completed (`[r k nil]`).
    pub fn read(key: Key) -> MicroOp {
        MicroOp {
            f: MopF::Read,
            key,
            value: MopValue::Nil,
        }
    }

    /// The integer a write or append puts.
    pub fn written(&self) -> Option<i64> {
        match (self.f, &self.value) {
            (MopF::Append | MopF::Write, MopValue::Int(v)) => Some(*v),
            _ => None,
        }
    }
}

impl std::fmt::Display for MicroOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{} {} {}]", self.f.as_str(), self.key, self.value)
    }
}

/// The op value of a transaction (what a producer records).
pub fn txn_value(mops: &[MicroOp]) -> Value {
    let arr = mops
        .iter()
        .map(|m| {
            let v = match &m.value {
                MopValue::Nil => J::Null,
                MopValue::Int(i) => J::from(*i),
                MopValue::List(xs) => J::Array(xs.iter().map(|&x| J::from(x)).collect()),
            };
            J::Array(vec![J::from(m.f.as_str()), J::from(m.key), v])
        })
        .collect();
    Value::Other(J::Array(arr))
}

/// The micro-ops of a transaction's value; an error is one sentence naming the offender.
pub fn parse_txn(value: &Value) -> Result<Vec<MicroOp>, String> {
    let items = match value {
        // An empty transaction reads as an empty integer list.
        Value::List(xs) if xs.is_empty() => return Ok(Vec::new()),
        Value::Null => return Err("a txn needs a list of micro-ops as its value, found nil".into()),
        Value::Other(J::Array(items)) => items,
        other => {
            return Err(format!(
                "a txn's value is a list of micro-ops like [\"append\", 1, 2], found {other}"
            ));
        }
    };
    if items.len() > MAX_MICRO_OPS {
        return Err(format!(
            "a txn of {} micro-ops is longer than the limit of {MAX_MICRO_OPS}",
            items.len()
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, m)| parse_mop(m).map_err(|e| format!("micro-op {} {m}: {e}", i + 1)))
        .collect()
}

fn parse_mop(m: &J) -> Result<MicroOp, String> {
    let J::Array(parts) = m else {
        return Err("expected [f key value]".into());
    };
    let [f, key, value] = parts.as_slice() else {
        return Err(format!(
            "expected 3 parts [f key value], found {}",
            parts.len()
        ));
    };
    let f = match f.as_str() {
        Some("append") => MopF::Append,
        Some("w" | "write") => MopF::Write,
        Some("r" | "read") => MopF::Read,
        _ => return Err("f is not one of append, r, w".into()),
    };
    let key = key
        .as_u64()
        .ok_or("the key is not a non-negative integer")?;
    let value = match value {
        J::Null => MopValue::Nil,
        J::Array(xs) => MopValue::List(
            xs.iter()
                .map(|x| x.as_i64().ok_or("a read list holds a non-integer"))
                .collect::<Result<_, _>>()?,
        ),
        v => MopValue::Int(
            v.as_i64()
                .ok_or("the value is not an integer, a list or nil")?,
        ),
    };
    match (f, &value) {
        (MopF::Append | MopF::Write, MopValue::Int(_)) | (MopF::Read, _) => {}
        _ => return Err(format!("{} needs an integer value", f.as_str())),
    }
    Ok(MicroOp { f, key, value })
}

/// One transaction of a history: its invocation paired with its completion.
#[derive(Debug, Clone, PartialEq)]
pub struct Txn {
    /// `Op::index` of the invocation (how anomalies name it).
    pub index: u64,
    /// Positions of the invocation and completion in `History::ops` (real-time order).
    pub invoke_pos: usize,
    pub complete_pos: Option<usize>,
    pub process: crate::Process,
    pub outcome: Outcome,
    /// The completion's micro-ops when `ok` (reads filled in), else the invocation's.
    pub mops: Vec<MicroOp>,
}

/// Every transaction of a history, in invocation order. Any client op whose `f` is not
/// `txn`, a malformed value, a completion without an open invocation, a second invocation
/// while one is open, or a completion whose micro-ops do not match its invocation's (other
/// functions, keys or written values) is an error naming the op. Pairs as
/// `History::operations` does, without copying values.
pub fn read_txns(h: &History) -> Result<Vec<Txn>, HistoryError> {
    let mut out: Vec<Txn> = Vec::with_capacity(h.ops.len() / 2 + 1);
    let mut open: std::collections::HashMap<crate::Process, usize> =
        std::collections::HashMap::new();
    for (pos, op) in h.ops.iter().enumerate() {
        if op.process == crate::Process::Nemesis {
            continue;
        }
        if op.f.as_str() != TXN_F {
            return Err(h.op_error(
                op.index,
                format!(
                    "f {} is not txn: a transactional workload records only txn ops",
                    op.f
                ),
            ));
        }
        if op.kind == crate::OpType::Invoke {
            if let Some(&prev) = open.get(&op.process) {
                return Err(h.op_error(
                    op.index,
                    format!(
                        "process {} invokes again while its op at index {} is still open (a process runs one op at a time)",
                        op.process, out[prev].index
                    ),
                ));
            }
            let mops = parse_txn(&op.value).map_err(|e| h.op_error(op.index, e))?;
            open.insert(op.process, out.len());
            out.push(Txn {
                index: op.index,
                invoke_pos: pos,
                complete_pos: None,
                process: op.process,
                outcome: Outcome::Info,
                mops,
            });
            continue;
        }
        let Some(i) = open.remove(&op.process) else {
            return Err(h.op_error(
                op.index,
                format!(
                    "a completion of process {} without an open invocation",
                    op.process
                ),
            ));
        };
        let t = &mut out[i];
        t.complete_pos = Some(pos);
        t.outcome = match op.kind {
            crate::OpType::Ok => Outcome::Ok,
            crate::OpType::Fail => Outcome::Fail,
            _ => Outcome::Info,
        };
        if t.outcome == Outcome::Ok && !op.value.is_null() {
            let mops = parse_txn(&op.value).map_err(|e| h.op_error(op.index, e))?;
            matches_invocation(&t.mops, &mops).map_err(|e| h.op_error(op.index, e))?;
            t.mops = mops;
        }
    }
    Ok(out)
}

fn matches_invocation(invoked: &[MicroOp], done: &[MicroOp]) -> Result<(), String> {
    if invoked.len() != done.len() {
        return Err(format!(
            "the completion has {} micro-ops but its invocation had {}",
            done.len(),
            invoked.len()
        ));
    }
    for (i, (a, b)) in invoked.iter().zip(done).enumerate() {
        let same = a.f == b.f && a.key == b.key && (a.f == MopF::Read || a.value == b.value);
        if !same {
            return Err(format!(
                "micro-op {} completed as {b} but was invoked as {a}",
                i + 1
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mops = vec![
            MicroOp::append(1, 2),
            MicroOp {
                f: MopF::Read,
                key: 1,
                value: MopValue::List(vec![1, 2]),
            },
            MicroOp::write(3, 4),
            MicroOp::read(3),
        ];
        assert_eq!(parse_txn(&txn_value(&mops)).unwrap(), mops);
    }

    #[test]
    fn rejects_with_a_reason() {
        let v: Value = serde_json::from_str(r#"[["append",1,2],["x",1,null]]"#).unwrap();
        let e = parse_txn(&v).unwrap_err();
        assert!(e.contains("micro-op 2") && e.contains("not one of"), "{e}");
        let v: Value = serde_json::from_str(r#"[["append",1,[2]]]"#).unwrap();
        assert!(parse_txn(&v).unwrap_err().contains("integer value"));
    }
}
