//! Client requests: the operations a workload sends to a target, and their wire form.
//!
//! One `Request` type serves the reference node's state machine, its HTTP API and the
//! client, so the three cannot drift apart. The wire form is the history's own shape
//! (`{"f":"cas","key":7,"value":[1,2]}`), which keeps node logs and histories easy to
//! compare by eye. Decoding rejects unknown functions and values of the wrong shape.

use schism_history::{F, Key, Value};
use serde::{Deserialize, Serialize};

/// One client operation on one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RequestWire", into = "RequestWire")]
pub enum Request {
    Read {
        key: Key,
    },
    Write {
        key: Key,
        value: i64,
    },
    Cas {
        key: Key,
        expected: i64,
        new: i64,
    },
    Append {
        key: Key,
        value: i64,
    },
    /// Counter add (any delta).
    Add {
        key: Key,
        value: i64,
    },
    /// Counter increment; kept apart from `Add` because histories name it separately.
    Incr {
        key: Key,
        value: i64,
    },
}

impl Request {
    pub fn key(&self) -> Key {
        match *self {
            Request::Read { key }
            | Request::Write { key, .. }
            | Request::Cas { key, .. }
            | Request::Append { key, .. }
            | Request::Add { key, .. }
            | Request::Incr { key, .. } => key,
        }
    }

    /// The history function this request records as.
    pub fn f(&self) -> F {
        match self {
            Request::Read { .. } => F::Read,
            Request::Write { .. } => F::Write,
            Request::Cas { .. } => F::Cas,
            Request::Append { .. } => F::Append,
            Request::Add { .. } => F::Add,
            Request::Incr { .. } => F::Incr,
        }
    }

    /// The history value of the invocation (`[expected, new]` for cas, null for reads).
    pub fn value(&self) -> Value {
        match *self {
            Request::Read { .. } => Value::Null,
            Request::Cas { expected, new, .. } => Value::list(vec![expected, new]),
            Request::Write { value, .. }
            | Request::Append { value, .. }
            | Request::Add { value, .. }
            | Request::Incr { value, .. } => Value::Int(value),
        }
    }

    /// True for everything but reads: such requests must go to the leader.
    pub fn is_write(&self) -> bool {
        !matches!(self, Request::Read { .. })
    }

    /// Builds a request from a history function, key and invocation value.
    pub fn from_parts(f: &F, key: Key, value: &Value) -> Result<Request, String> {
        let int = |what: &str| {
            value
                .as_int()
                .ok_or_else(|| format!("{what} needs an integer value, got {value}"))
        };
        Ok(match f {
            F::Read => Request::Read { key },
            F::Write => Request::Write {
                key,
                value: int("write")?,
            },
            F::Append => Request::Append {
                key,
                value: int("append")?,
            },
            F::Add => Request::Add {
                key,
                value: int("add")?,
            },
            F::Incr => Request::Incr {
                key,
                // A bare `incr` means +1.
                value: if value.is_null() { 1 } else { int("incr")? },
            },
            F::Cas => match value.as_list() {
                Some(&[expected, new]) => Request::Cas { key, expected, new },
                _ => return Err(format!("cas needs [expected, new], got {value}")),
            },
            F::Other(name) => return Err(format!("unknown function {name:?}")),
        })
    }
}

/// `{"f":..,"key":..,"value":..}`, exactly as in a history line.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RequestWire {
    f: F,
    key: Key,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    value: Value,
}

impl From<Request> for RequestWire {
    fn from(r: Request) -> Self {
        RequestWire {
            f: r.f(),
            key: r.key(),
            value: r.value(),
        }
    }
}

impl TryFrom<RequestWire> for Request {
    type Error = String;
    fn try_from(w: RequestWire) -> Result<Self, String> {
        Request::from_parts(&w.f, w.key, &w.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_matches_history_lines() {
        let cases = [
            (Request::Read { key: 7 }, r#"{"f":"read","key":7}"#),
            (
                Request::Append { key: 7, value: 42 },
                r#"{"f":"append","key":7,"value":42}"#,
            ),
            (
                Request::Cas {
                    key: 1,
                    expected: 2,
                    new: 3,
                },
                r#"{"f":"cas","key":1,"value":[2,3]}"#,
            ),
        ];
        for (req, text) in cases {
            assert_eq!(serde_json::to_string(&req).unwrap(), text);
            assert_eq!(serde_json::from_str::<Request>(text).unwrap(), req);
        }
    }

    #[test]
    fn bad_shapes_are_rejected() {
        assert!(serde_json::from_str::<Request>(r#"{"f":"cas","key":1,"value":3}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"f":"frob","key":1}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"f":"write","key":1}"#).is_err());
    }
}
