//! The vocabulary a client of any target speaks: where reads go (`ReadRouting`), what a
//! request came to (`Reply`: certainly happened, certainly did not, or unknown), a node's
//! address (`Endpoint`), and the two HTTP helpers the reference cluster's client, shell
//! and lag probe share (`fetch_status`, `error_text`).
//!
//! This module depends on nothing else in the crate but the reference nodes' `Status`
//! (the body of `/status`), so the client, the adapters and the node shells all import
//! from here without importing each other.

use crate::reference::NodeId;
use crate::reference::leader_follower::Status;
use schism_history::Value;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::str::FromStr;
use std::time::Duration;

/// A boxed, sendable future: what the object-safe target traits return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where reads go (`--reads`; parses itself with `FromStr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadRouting {
    /// The leader, and only while it leads (and holds its lease, when leases are on).
    Leader,
    /// A node chosen uniformly at random per read (stale reads from followers).
    #[default]
    Any,
    /// A follower chosen at random per read.
    Follower,
    /// Any node, but only once it applied the session's last write (else the leader).
    Ryw,
    /// One node per session, never going back in time when it has to switch.
    Sticky,
}

impl fmt::Display for ReadRouting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReadRouting::Leader => "leader",
            ReadRouting::Any => "any",
            ReadRouting::Follower => "follower",
            ReadRouting::Ryw => "ryw",
            ReadRouting::Sticky => "sticky",
        })
    }
}

impl FromStr for ReadRouting {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "leader" => Ok(ReadRouting::Leader),
            "any" => Ok(ReadRouting::Any),
            "follower" => Ok(ReadRouting::Follower),
            "ryw" => Ok(ReadRouting::Ryw),
            "sticky" => Ok(ReadRouting::Sticky),
            other => Err(format!(
                "unknown read routing {other:?}: expected leader, any, follower, ryw or sticky"
            )),
        }
    }
}

impl schism_history::Choices for ReadRouting {
    const CHOICES: &'static [(&'static str, &'static str)] = &[
        ("leader", "Every read goes to the leader"),
        (
            "any",
            "Each read goes to a node chosen at random (followers may be behind)",
        ),
        ("follower", "Each read goes to a follower chosen at random"),
        (
            "ryw",
            "Any node, once it applied the session's last write (else redirected to the leader)",
        ),
        (
            "sticky",
            "One node per session; monotonic reads across a switch",
        ),
    ];
}

/// The outcome of one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// It happened. `value` is a read's result (Null, Int or List); Null for writes.
    /// `meta` holds `{"lsn":n}` for writes and `{"applied":n}` for reads, and `time_ms`,
    /// the serving node's own (skewable) clock when it answered.
    Ok {
        value: Value,
        node: String,
        meta: Option<serde_json::Value>,
        /// A read's concurrent versions, when the target keeps siblings.
        siblings: Option<Vec<Value>>,
    },
    /// It certainly did not happen.
    Fail { node: Option<String>, error: String },
    /// It may or may not have happened.
    Unknown { node: Option<String>, error: String },
}

impl Reply {
    /// An outcome that `uncertain` leaves open: a write that may or may not have happened
    /// is `Unknown`; a read changed nothing whatever happened, so it simply failed.
    pub fn uncertain(
        uncertain: bool,
        is_write: bool,
        node: Option<String>,
        error: String,
    ) -> Reply {
        if uncertain && is_write {
            Reply::Unknown { node, error }
        } else {
            Reply::Fail { node, error }
        }
    }
}

/// A node the client can talk to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub id: NodeId,
    pub addr: SocketAddr,
}

/// `GET /status` of a reference node, bounded by `timeout`.
pub(crate) async fn fetch_status(
    http: &reqwest::Client,
    url: &str,
    timeout: Duration,
) -> Result<Status, String> {
    let resp = http
        .get(url)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| error_text(&e))?;
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(|e| error_text(&e))?;
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("unreadable status: {e}"))
}

/// A reqwest error as one short line: its kind and innermost cause
/// ("timeout", "connect: Connection refused (os error 111)").
pub(crate) fn error_text(e: &reqwest::Error) -> String {
    let mut inner: &dyn std::error::Error = e;
    while let Some(next) = inner.source() {
        inner = next;
    }
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "request"
    };
    if std::ptr::addr_eq(inner, e as &dyn std::error::Error) {
        kind.to_owned()
    } else {
        format!("{kind}: {inner}")
    }
}
