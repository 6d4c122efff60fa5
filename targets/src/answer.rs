//! A node's `POST /kv` answer as the reference client decodes it: `KvReply`'s fields,
//! with a read's list value gathered in a reused per-thread buffer and then allocated
//! once at its exact size.
//!
//! `KvReply`'s own `Deserialize` (through `schism_history::Value`'s) grows the list one
//! element at a time — about log2(n) reallocations per read, plus a final shrink — and
//! the runner decodes every answer of a run (BENCHMARKS.md "Runner CPU per op": malloc
//! was the largest user-space item of its workers). The result is the same `KvReply`,
//! value for value (the unit tests decode every shape both ways); a list holding
//! anything but integers is kept verbatim, as `Value`'s decoder keeps it.

use schism_history::{ThinVec, Value};
use schism_replication::api::KvReply;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

/// Integers a thread's buffer keeps between answers (a longer list is gathered in a
/// buffer of its own, which is then dropped).
const SCRATCH_KEPT_INTS: usize = 1 << 16;

thread_local! {
    static SCRATCH: RefCell<Vec<i64>> = const { RefCell::new(Vec::new()) };
}

/// `KvReply`, field for field (names, defaults, unknown fields ignored).
#[derive(Deserialize)]
struct Answer {
    ok: bool,
    node: String,
    #[serde(default, deserialize_with = "value_exact")]
    value: Value,
    #[serde(default)]
    lsn: Option<u64>,
    #[serde(default)]
    applied: Option<u64>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    leader: Option<String>,
    #[serde(default)]
    unknown: bool,
    #[serde(default)]
    time_ms: Option<i64>,
    #[serde(default)]
    siblings: Option<Vec<Value>>,
}

/// The answer in `bytes`, as `serde_json::from_slice::<KvReply>` reads it.
pub(crate) fn decode(bytes: &[u8]) -> serde_json::Result<KvReply> {
    let a: Answer = serde_json::from_slice(bytes)?;
    Ok(KvReply {
        ok: a.ok,
        node: a.node,
        value: a.value,
        lsn: a.lsn,
        applied: a.applied,
        error: a.error,
        leader: a.leader,
        unknown: a.unknown,
        time_ms: a.time_ms,
        siblings: a.siblings,
    })
}

fn value_exact<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
    d.deserialize_any(ValueVisitor)
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
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
        Ok(i64::try_from(v).map_or_else(|_| Value::other(v.into()), Value::Int))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::other(v.into()))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::other(v.into()))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::other(v.into()))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Value, A::Error> {
        let v = serde_json::Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(Value::other(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut ints = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
        ints.clear();
        let mut other = None;
        while let Some(el) = seq.next_element::<Element>()? {
            match el {
                Element::Int(i) => ints.push(i),
                Element::Other(el) => {
                    other = Some(el);
                    break;
                }
            }
        }
        let value = match other {
            None => {
                let mut exact = ThinVec::with_capacity(ints.len());
                exact.extend_from_slice(&ints);
                Value::List(Arc::new(exact))
            }
            Some(el) => {
                // As `Value`'s decoder: the whole list verbatim.
                let mut all: Vec<serde_json::Value> =
                    ints.iter().map(|&i| serde_json::Value::from(i)).collect();
                all.push(el);
                while let Some(el) = seq.next_element::<serde_json::Value>()? {
                    all.push(el);
                }
                Value::other(serde_json::Value::Array(all))
            }
        };
        if ints.capacity() <= SCRATCH_KEPT_INTS {
            SCRATCH.with(|s| *s.borrow_mut() = ints);
        }
        Ok(value)
    }
}

/// One element of a list: an integer, or anything else kept verbatim.
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
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Element, A::Error> {
                serde_json::Value::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(Element::Other)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every shape a node answers with (and some it never does), decoded both ways.
    #[test]
    fn decodes_as_kv_reply_does() {
        let long: Vec<String> = (0..5000).map(|i| i.to_string()).collect();
        let long = format!(r#"{{"ok":true,"node":"n1","value":[{}]}}"#, long.join(","));
        let bodies = [
            r#"{"ok":true,"node":"n2","value":[4,15,18,21],"applied":23,"time_ms":1796226001705}"#,
            r#"{"ok":true,"node":"n1","lsn":27,"time_ms":1796226001706}"#,
            r#"{"ok":true,"node":"n1","value":[],"applied":0}"#,
            r#"{"ok":true,"node":"n1","value":null}"#,
            r#"{"ok":true,"node":"n1","value":7}"#,
            r#"{"ok":true,"node":"n1","value":-7,"extra":{"ignored":[1]}}"#,
            r#"{"ok":true,"node":"n1","value":18446744073709551615}"#,
            r#"{"ok":true,"node":"n1","value":[1,2,"three",4,[5],{"6":7}]}"#,
            r#"{"ok":true,"node":"n1","value":[1,18446744073709551615,-3]}"#,
            r#"{"ok":true,"node":"n1","value":[1.5]}"#,
            r#"{"ok":true,"node":"n1","value":{"a":1}}"#,
            r#"{"ok":true,"node":"n1","value":"s"}"#,
            r#"{"ok":true,"node":"n1","value":true}"#,
            r#"{"ok":true,"node":"n1","value":[1,2],"siblings":[[1],[2,3],null,5]}"#,
            r#"{"ok":false,"node":"n3","error":"not leader; leader is n2","leader":"n2"}"#,
            r#"{"ok":false,"node":"n1","error":"stepped down","unknown":true}"#,
            &long,
        ];
        for body in bodies {
            let theirs: KvReply = serde_json::from_slice(body.as_bytes()).unwrap();
            let ours = decode(body.as_bytes()).unwrap();
            assert_eq!(ours, theirs, "{body}");
            // Twice: the buffer left by the first decode changes nothing.
            assert_eq!(decode(body.as_bytes()).unwrap(), theirs, "{body}");
        }
        for bad in [
            r#"{"node":"n1"}"#,
            r#"{"ok":true}"#,
            r#"{"ok":true,"node":"n1","value":[1,"#,
            "[]",
        ] {
            assert!(serde_json::from_slice::<KvReply>(bad.as_bytes()).is_err());
            assert!(decode(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    /// `KvReply` and its client-side mirror name the same fields: an answer with all of
    /// them set comes back whole.
    #[test]
    fn every_field_of_kv_reply_is_read() {
        let all = KvReply {
            ok: true,
            node: "n1".into(),
            value: Value::list(vec![1, 2]),
            lsn: Some(3),
            applied: Some(4),
            error: Some("e".into()),
            leader: Some("n2".into()),
            unknown: true,
            time_ms: Some(-5),
            siblings: Some(vec![Value::Int(6)]),
        };
        let body = serde_json::to_vec(&all).unwrap();
        assert_eq!(decode(&body).unwrap(), all);
    }
}
