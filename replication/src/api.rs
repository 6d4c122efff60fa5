//! The JSON shapes of a reference node's HTTP API that more than one crate reads: the
//! answer of `POST /kv` (`KvReply`, read by the client), its read conditions (`KvOpts`)
//! and `GET /admin/dump` (`Dump`, read by the runner's convergence checks). Pure serde
//! types: the node shell serves them, nothing here does I/O.

use crate::machine::Status;
use crate::settings::NodeId;
use schism_history::{Key, Value};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The JSON answer of `POST /kv`, shared with the client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KvReply {
    pub ok: bool,
    pub node: NodeId,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub value: Value,
    /// The LSN a write was logged at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lsn: Option<u64>,
    /// How far the serving node had applied when it answered a read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<NodeId>,
    /// `ok: false` but the write may still take effect (the leader stepped down first).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unknown: bool,
    /// The node's own clock when it answered (Unix milliseconds, skewed by the nemesis).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_ms: Option<i64>,
    /// A read's concurrent versions (multi-leader and leaderless under version vectors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub siblings: Option<Vec<Value>>,
}

/// Read conditions of `POST /kv`, next to the request's own fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvOpts {
    #[serde(default)]
    pub min_lsn: u64,
    #[serde(default)]
    pub leader_only: bool,
}

/// `GET /admin/dump`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dump {
    pub status: Status,
    /// Every key's value here (JSON object keys are the key numbers).
    pub state: BTreeMap<Key, Value>,
    pub drop_from: BTreeSet<NodeId>,
    pub drop_to: BTreeSet<NodeId>,
    /// Keys holding concurrent versions (multi-leader, leaderless).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub siblings: BTreeMap<Key, Vec<Value>>,
    /// Leaderless: the replicas each key belongs on (a convergence check compares only those).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub owners: BTreeMap<Key, Vec<NodeId>>,
    /// Model-specific facts (pending hints, unacknowledged keys, …).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub extra: serde_json::Value,
}
