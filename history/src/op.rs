//! Op, its type, process, function and value, with the exact JSON shape of DESIGN.md.
//!
//! Serialization is hand-written where derive would be slow or ambiguous: `Value` is
//! decoded without serde's buffering `untagged` machinery (a 1M-op history must parse
//! quickly), and `Process` is either an integer or the string `"nemesis"`.

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Keys are small non-negative integers in every schism workload.
pub type Key = u64;

/// Jepsen's op types: an `Invoke`, then exactly one completion by the same process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpType {
    Invoke,
    /// It happened.
    Ok,
    /// It certainly did not happen.
    Fail,
    /// Unknown: it may take effect at any time after its invoke, or never.
    Info,
}

impl OpType {
    pub fn is_completion(self) -> bool {
        !matches!(self, OpType::Invoke)
    }
}

/// A logical client thread (Jepsen's process) or the nemesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Process {
    Client(u64),
    Nemesis,
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Process::Client(p) => write!(f, "{p}"),
            Process::Nemesis => f.write_str("nemesis"),
        }
    }
}

impl Serialize for Process {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Process::Client(p) => s.serialize_u64(*p),
            Process::Nemesis => s.serialize_str("nemesis"),
        }
    }
}

impl<'de> Deserialize<'de> for Process {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Process;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative integer or \"nemesis\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Process, E> {
                Ok(Process::Client(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Process, E> {
                u64::try_from(v)
                    .map(Process::Client)
                    .map_err(|_| E::custom(format!("process {v} is negative")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Process, E> {
                if v == "nemesis" {
                    Ok(Process::Nemesis)
                } else {
                    Err(E::custom(format!(
                        "process {v:?} is neither an integer nor \"nemesis\""
                    )))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// The function of an op. Client functions are closed; nemesis functions are free text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum F {
    Read,
    Write,
    Cas,
    Append,
    Add,
    Incr,
    /// Any other name: nemesis events (`start-partition`, …) or functions a checker rejects.
    Other(String),
}

impl F {
    pub fn as_str(&self) -> &str {
        match self {
            F::Read => "read",
            F::Write => "write",
            F::Cas => "cas",
            F::Append => "append",
            F::Add => "add",
            F::Incr => "incr",
            F::Other(s) => s,
        }
    }

    pub fn parse(s: &str) -> F {
        match s {
            "read" => F::Read,
            "write" => F::Write,
            "cas" => F::Cas,
            "append" => F::Append,
            "add" => F::Add,
            "incr" => F::Incr,
            other => F::Other(other.to_owned()),
        }
    }

    /// True for functions that change state (everything but `read`).
    pub fn is_write(&self) -> bool {
        !matches!(self, F::Read | F::Other(_))
    }
}

impl fmt::Display for F {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for F {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for F {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = F;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a function name string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<F, E> {
                Ok(F::parse(v))
            }
        }
        d.deserialize_str(V)
    }
}

/// The value of an op: what a write wrote, what a read returned, `[expected, new]` for cas.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum Value {
    /// No value: a read invocation, or a register read of a never-written key.
    #[default]
    Null,
    Int(i64),
    /// A list of integers: append/set reads, and cas as `[expected, new]`.
    List(Vec<i64>),
    /// Anything else (nemesis payloads such as partition groups), kept verbatim.
    Other(serde_json::Value),
}

impl Value {
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(v) => Some(*v),
            _ => None,
        }
    }

    pub fn as_list(&self) -> Option<&[i64]> {
        match self {
            Value::List(v) => Some(v),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("nil"),
            Value::Int(v) => write!(f, "{v}"),
            Value::List(v) => {
                f.write_str("[")?;
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{x}")?;
                }
                f.write_str("]")
            }
            Value::Other(v) => write!(f, "{v}"),
        }
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Int(v) => s.serialize_i64(*v),
            Value::List(v) => {
                let mut seq = s.serialize_seq(Some(v.len()))?;
                for x in v {
                    seq.serialize_element(x)?;
                }
                seq.end()
            }
            Value::Other(v) => v.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("null, an integer, a list or an object")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
                Ok(Value::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
                match i64::try_from(v) {
                    Ok(v) => Ok(Value::Int(v)),
                    Err(_) => Ok(Value::Other(serde_json::Value::from(v))),
                }
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
                Ok(Value::Other(serde_json::Value::from(v)))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
                Ok(Value::Other(serde_json::Value::Bool(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
                Ok(Value::Other(serde_json::Value::String(v.to_owned())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
                // Fast path: a list of integers. On the first non-integer, fall back to
                // a verbatim JSON array holding what was read so far plus the rest.
                let mut ints: Vec<i64> = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(el) = seq.next_element::<Element>()? {
                    match el {
                        Element::Int(i) => ints.push(i),
                        Element::Other(el) => {
                            let mut all: Vec<serde_json::Value> =
                                ints.into_iter().map(serde_json::Value::from).collect();
                            all.push(el);
                            while let Some(el) = seq.next_element::<serde_json::Value>()? {
                                all.push(el);
                            }
                            return Ok(Value::Other(serde_json::Value::Array(all)));
                        }
                    }
                }
                Ok(Value::List(ints))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Value, A::Error> {
                let v = serde_json::Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Value::Other(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// One element of a list value: an integer (no JSON tree built for it, the common case),
/// or anything else kept verbatim.
enum Element {
    Int(i64),
    Other(serde_json::Value),
}

impl<'de> Deserialize<'de> for Element {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Element;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Element, E> {
                Ok(Element::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Element, E> {
                Ok(i64::try_from(v).map_or(Element::Other(v.into()), Element::Int))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Element, E> {
                Ok(Element::Other(v.into()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Element, E> {
                Ok(Element::Other(v.into()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Element, E> {
                Ok(Element::Other(v.into()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Element, E> {
                Ok(Element::Other(serde_json::Value::Null))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Element, A::Error> {
                serde_json::Value::deserialize(de::value::SeqAccessDeserializer::new(seq))
                    .map(Element::Other)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Element, A::Error> {
                serde_json::Value::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(Element::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// One line of a history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Op {
    pub index: u64,
    /// Monotonic nanoseconds since the run started, from the runner's one clock.
    pub time_ns: u64,
    pub process: Process,
    #[serde(rename = "type")]
    pub kind: OpType,
    pub f: F,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Key>,
    #[serde(default)]
    pub value: Value,
    /// Which node served it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Target facts such as a version, LSN or revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<serde_json::Value>,
    /// Concurrent versions a read returned (version-vector targets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub siblings: Option<Vec<Value>>,
}

impl Op {
    /// A bare op; the optional fields start empty.
    pub fn new(
        index: u64,
        time_ns: u64,
        process: Process,
        kind: OpType,
        f: F,
        key: Option<Key>,
        value: Value,
    ) -> Op {
        Op {
            index,
            time_ns,
            process,
            kind,
            f,
            key,
            value,
            node: None,
            error: None,
            meta: None,
            siblings: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn design_md_lines_round_trip() {
        let lines = [
            r#"{"index":0,"time_ns":1200,"process":3,"type":"invoke","f":"append","key":7,"value":42}"#,
            r#"{"index":1,"time_ns":830417,"process":3,"type":"ok","f":"append","key":7,"value":42,"node":"n2"}"#,
            r#"{"index":2,"time_ns":901000,"process":5,"type":"ok","f":"read","key":7,"value":[1,42],"node":"n1"}"#,
            r#"{"index":3,"time_ns":950000,"process":"nemesis","type":"info","f":"start-partition","value":{"groups":[["n1"],["n2","n3"]]}}"#,
        ];
        for line in lines {
            let op: Op = serde_json::from_str(line).unwrap();
            assert_eq!(serde_json::to_string(&op).unwrap(), line);
        }
        let op: Op = serde_json::from_str(lines[2]).unwrap();
        assert_eq!(op.value, Value::List(vec![1, 42]));
        let op: Op = serde_json::from_str(lines[3]).unwrap();
        assert_eq!(op.process, Process::Nemesis);
        assert_eq!(op.f, F::Other("start-partition".into()));
    }

    #[test]
    fn mixed_list_falls_back_to_verbatim_json() {
        let v: Value = serde_json::from_str(r#"[1,"x",3]"#).unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), r#"[1,"x",3]"#);
        let v: Value = serde_json::from_str("null").unwrap();
        assert_eq!(v, Value::Null);
    }

    /// The in-memory size of one op (BENCHMARKS.md, "History reader"): a history holds two
    /// per operation, so growth here is memory for every check. Shrinking it is issue #19's
    /// compact history; this keeps it from growing unnoticed meanwhile.
    #[test]
    fn op_size_does_not_grow() {
        assert!(size_of::<Op>() <= 216, "{}", size_of::<Op>());
    }

    #[test]
    fn negative_process_is_rejected() {
        let e = serde_json::from_str::<Process>("-1").unwrap_err();
        assert!(e.to_string().contains("negative"), "{e}");
    }
}
