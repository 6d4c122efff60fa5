//! The client of the reference cluster: routes requests and classifies their outcomes.
//!
//! Guarantees, which the history's `ok`/`fail`/`info` rest on:
//! - `Reply::Ok`: the node said it happened;
//! - `Reply::Fail`: it certainly did not happen — the node said so, the request was
//!   malformed (4xx), the connection was refused before anything was sent, or it was a
//!   read (a read changes nothing, so a read that timed out is a failure, as DESIGN.md says);
//! - `Reply::Unknown`: a write whose fate is unknown — timeout, connection reset after
//!   sending, a 5xx, an unreadable answer.
//!
//! Writes go to the leader; reads follow `ReadRouting`. A `Session` is one worker's
//! client-side state: a seeded RNG choosing nodes for `Any` reads, so node choice is
//! reproducible from the run's seed (and later: read-your-writes tokens, sticky nodes).
//! One `ReferenceClient` holds one connection pool shared by all sessions.

use crate::error::TargetError;
use crate::reference::NodeId;
use crate::reference::leader_follower::Status;
use crate::reference::node::KvReply;
use crate::request::Request;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use schism_history::Value;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

/// Where reads go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadRouting {
    Leader,
    /// A node chosen uniformly at random per read (stale reads from followers).
    #[default]
    Any,
}

impl fmt::Display for ReadRouting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReadRouting::Leader => "leader",
            ReadRouting::Any => "any",
        })
    }
}

impl FromStr for ReadRouting {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "leader" => Ok(ReadRouting::Leader),
            "any" => Ok(ReadRouting::Any),
            "follower" | "ryw" | "sticky" => Err(format!(
                "reads `{s}` are not implemented by the reference client yet (use leader or any)"
            )),
            other => Err(format!(
                "unknown read routing {other:?}: expected leader, any, follower, ryw or sticky"
            )),
        }
    }
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

/// A node the client can talk to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub id: NodeId,
    pub addr: SocketAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientOptions {
    pub routing: ReadRouting,
    /// Per-request timeout (the whole exchange).
    pub timeout_ms: u64,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            routing: ReadRouting::Any,
            timeout_ms: 1000,
        }
    }
}

/// One worker's client-side state.
#[derive(Debug, Clone)]
pub struct Session {
    rng: ChaCha8Rng,
}

impl Session {
    pub fn new(seed: u64) -> Session {
        Session {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }
}

#[derive(Debug, Clone)]
struct Node {
    id: NodeId,
    kv_url: String,
    status_url: String,
}

/// A client of one reference cluster; cheap to share by reference across tasks.
#[derive(Debug, Clone)]
pub struct ReferenceClient {
    http: reqwest::Client,
    nodes: Vec<Node>,
    leader: usize,
    options: ClientOptions,
    /// Writes go to a node chosen like an `Any` read (multi-leader, leaderless).
    write_any: bool,
}

impl ReferenceClient {
    pub fn new(
        nodes: &[Endpoint],
        leader: &str,
        options: ClientOptions,
    ) -> Result<ReferenceClient, TargetError> {
        let leader = nodes
            .iter()
            .position(|n| n.id == leader)
            .ok_or_else(|| TargetError::UnknownNode(leader.to_owned()))?;
        let http = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_millis(options.timeout_ms))
            .pool_max_idle_per_host(1024)
            .build()
            .map_err(|e| TargetError::Client(e.to_string()))?;
        let nodes = nodes
            .iter()
            .map(|n| Node {
                id: n.id.clone(),
                kv_url: format!("http://{}/kv", n.addr),
                status_url: format!("http://{}/status", n.addr),
            })
            .collect();
        Ok(ReferenceClient {
            http,
            nodes,
            leader,
            options,
            write_any: false,
        })
    }

    /// Sends writes to a node chosen at random per request (every node takes writes in
    /// multi-leader and leaderless clusters; the contacted node coordinates).
    pub fn with_writes_to_any_node(mut self, yes: bool) -> ReferenceClient {
        self.write_any = yes;
        self
    }

    /// A new session for one worker; derive `seed` from the run's seed and the worker.
    pub fn session(&self, seed: u64) -> Session {
        Session::new(seed)
    }

    pub fn options(&self) -> ClientOptions {
        self.options
    }

    /// Sends `req` where the routing rules say.
    pub async fn invoke(&self, session: &mut Session, req: Request) -> Reply {
        let node = match (req.is_write(), self.options.routing) {
            (true, _) if self.write_any => session.rng.random_range(0..self.nodes.len()),
            (true, _) | (false, ReadRouting::Leader) => self.leader,
            (false, ReadRouting::Any) => session.rng.random_range(0..self.nodes.len()),
        };
        self.send(node, req).await
    }

    /// Sends `req` to a named node, whatever its kind (tests; writes to followers).
    pub async fn invoke_on(&self, node: &str, req: Request) -> Reply {
        match self.nodes.iter().position(|n| n.id == node) {
            Some(i) => self.send(i, req).await,
            None => Reply::Fail {
                node: None,
                error: format!("no node named {node:?}"),
            },
        }
    }

    /// The node's `/status`.
    pub async fn status(&self, node: &str) -> Result<Status, String> {
        let n = self
            .nodes
            .iter()
            .find(|n| n.id == node)
            .ok_or_else(|| format!("no node named {node:?}"))?;
        fetch_status(
            &self.http,
            &n.status_url,
            Duration::from_millis(self.options.timeout_ms),
        )
        .await
    }

    async fn send(&self, i: usize, req: Request) -> Reply {
        let node = &self.nodes[i];
        let uncertain = |error: String| {
            if req.is_write() {
                Reply::Unknown {
                    node: Some(node.id.clone()),
                    error,
                }
            } else {
                Reply::Fail {
                    node: Some(node.id.clone()),
                    error,
                }
            }
        };
        let body = match serde_json::to_vec(&req) {
            Ok(b) => b,
            Err(e) => {
                return Reply::Fail {
                    node: Some(node.id.clone()),
                    error: format!("cannot encode request: {e}"),
                };
            }
        };
        let sent = self
            .http
            .post(&node.kv_url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .timeout(Duration::from_millis(self.options.timeout_ms))
            .body(body)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            // Nothing was sent on a connection that never opened.
            Err(e) if e.is_connect() => {
                return Reply::Fail {
                    node: Some(node.id.clone()),
                    error: error_text(&e),
                };
            }
            Err(e) => return uncertain(error_text(&e)),
        };
        let status = resp.status();
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => return uncertain(error_text(&e)),
        };
        if status.is_client_error() {
            let text = String::from_utf8_lossy(&bytes);
            return Reply::Fail {
                node: Some(node.id.clone()),
                error: format!("HTTP {status}: {text}"),
            };
        }
        if !status.is_success() {
            return uncertain(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&bytes)
            ));
        }
        match serde_json::from_slice::<KvReply>(&bytes) {
            Ok(KvReply {
                ok: true,
                node,
                value,
                lsn,
                applied,
                time_ms,
                siblings,
                ..
            }) => {
                let mut meta = serde_json::Map::new();
                if let Some(lsn) = lsn {
                    meta.insert("lsn".into(), lsn.into());
                } else if let Some(applied) = applied {
                    meta.insert("applied".into(), applied.into());
                }
                if let Some(t) = time_ms {
                    meta.insert("time_ms".into(), t.into());
                }
                let meta = (!meta.is_empty()).then_some(serde_json::Value::Object(meta));
                Reply::Ok {
                    value,
                    node,
                    meta,
                    siblings,
                }
            }
            Ok(KvReply { node, error, .. }) => Reply::Fail {
                node: Some(node),
                error: error.unwrap_or_else(|| "refused".to_owned()),
            },
            Err(e) => uncertain(format!("unreadable reply: {e}")),
        }
    }
}

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
