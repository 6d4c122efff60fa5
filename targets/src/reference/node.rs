//! A reference node's process: its configuration (`NodeConfig`, the JSON file the runner
//! writes; in `config`), its injected clock and log lines (`context`), and `run_node`,
//! which builds the runtime and runs the one shell of every model (`shell`) until
//! SIGTERM/SIGINT or its parent's death (checked every 200 ms), so a SIGKILLed runner
//! leaves no orphans.
//!
//! HTTP API (JSON): `POST /kv` `{"f":"append","key":7,"value":42}` →
//! `{"ok":true,"node":"n1","lsn":12}` / `{"ok":true,"node":"n2","value":[1,42],"applied":11}` /
//! `{"ok":false,"node":"n2","error":"not leader; leader is n1","leader":"n1"}`;
//! `GET /status` → `Status` (with the clock offset); `POST /replicate` (internal) takes a
//! leader-follower `PeerMessage`, or a JSON array of multi-leader/leaderless messages.
//! Every `/kv` answer carries `time_ms`, the node's own (skewable) clock.
//!
//! Admin API, on the same listener (loopback, or the node's address inside a network
//! namespace the run created): `POST /admin/clock {"offset_ms":-250,"rate":1.0}` sets the
//! injected clock (`SkewClock`) that every timestamp and the state machine's `now` come
//! from; `POST /admin/links {"cut":["n2"],"one_way":false}` drops replication traffic to and
//! from those peers (`one_way`: only what comes from them) — a cooperative partition for
//! runs without root; `GET /admin/dump` returns the status and every key's value.
//!
//! This module is the node's public face (`run_node` and the types callers name); the
//! parts live below it, each importing only the ones after it: `shell` (the actor and the
//! process lifecycle) → `http` (handlers) and `peers` (links) → `hosted` (what differs per
//! model) → `storage` (the log) → `context` (logger, clock, link cuts) → `config`.

pub use super::config::{ClockRequest, LinksRequest, NodeConfig};
pub use super::context::Logger;
use crate::error::TargetError;
pub use schism_replication::api::{Dump, KvOpts, KvReply};
use std::time::Duration;

/// Runs a node until SIGTERM, SIGINT or its parent's death. Blocking; builds its own runtime.
pub fn run_node(config: NodeConfig) -> Result<(), TargetError> {
    config.validate()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.worker_threads)
        .enable_all()
        .build()
        .map_err(TargetError::Runtime)?;
    let result = rt.block_on(super::shell::serve(config));
    rt.shutdown_timeout(Duration::from_millis(500));
    result
}
