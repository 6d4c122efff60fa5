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
//! the offending micro-op, and `Txns` (`store`) holds a history's txn ops paired (Elle's
//! semantics: `info` may or may not have happened, `fail` never did) in a compact arena,
//! read from a `History` or straight from JSON Lines (`jsonl`), naming `file:line` of a
//! malformed op when the history was read from a file.

mod jsonl;
mod store;

pub use jsonl::{read_txn_file, read_txn_jsonl, read_txn_jsonl_threads};
pub use store::{MAX_TXN_OPS, Mop, MopArena, MopRef, MopView, Mops, TxnHead, Txns};

use crate::{Key, Value};
use serde_json::Value as J;
use store::Shape;

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
    /// The micro-op function a history spells `name` (`w`/`write`, `r`/`read`, `append`).
    pub fn parse(name: &str) -> Option<MopF> {
        match name {
            "append" => Some(MopF::Append),
            "w" | "write" => Some(MopF::Write),
            "r" | "read" => Some(MopF::Read),
            _ => None,
        }
    }

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

/// Printed as its borrowed view prints (`nil`, `3`, `[1 2]`).
impl std::fmt::Display for MopValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.view().fmt(f)
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
    Value::other(J::Array(arr))
}

/// The micro-ops of a transaction's value; an error is one sentence naming the offender.
pub fn parse_txn(value: &Value) -> Result<Vec<MicroOp>, String> {
    let mut arena = MopArena::default();
    parse_txn_into(value, &mut arena)?;
    Ok(arena.all().iter().map(|m| m.to_micro_op()).collect())
}

/// `parse_txn` appending the micro-ops to `arena` (nothing is appended on an error).
pub fn parse_txn_into(value: &Value, arena: &mut MopArena) -> Result<(), String> {
    let items = match value {
        // An empty transaction reads as an empty integer list.
        Value::List(xs) if xs.is_empty() => return Ok(()),
        Value::Null => return Err("a txn needs a list of micro-ops as its value, found nil".into()),
        Value::Other(v) if v.is_array() => v.as_array().map_or(&[][..], Vec::as_slice),
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
    let mark = arena.mark();
    for (i, m) in items.iter().enumerate() {
        if let Err(e) = parse_mop_into(m, arena) {
            arena.truncate(mark);
            return Err(format!("micro-op {} {m}: {e}", i + 1));
        }
    }
    Ok(())
}

fn parse_mop_into(m: &J, arena: &mut MopArena) -> Result<(), String> {
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
        Some(name) => MopF::parse(name).ok_or("f is not one of append, r, w")?,
        None => return Err("f is not one of append, r, w".into()),
    };
    let key = key
        .as_u64()
        .ok_or("the key is not a non-negative integer")?;
    let mark = arena.mark();
    let value = match value {
        J::Null => Shape::Nil,
        J::Array(xs) => {
            for x in xs {
                let Some(x) = x.as_i64() else {
                    arena.truncate(mark);
                    return Err("a read list holds a non-integer".into());
                };
                arena.push_elem(x);
            }
            Shape::List
        }
        v => Shape::Int(
            v.as_i64()
                .ok_or("the value is not an integer, a list or nil")?,
        ),
    };
    arena
        .push_mop(f, key, value, mark)
        .inspect_err(|_| arena.truncate(mark))
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
