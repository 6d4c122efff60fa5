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
//! client-side state: a seeded RNG choosing nodes (so node choice is reproducible from the
//! run's seed), the leader as this session knows it, the LSN of its last write (the
//! read-your-writes token: a node serves such a read only once it applied that far, else
//! the read is redirected to the leader), and for `sticky` its node and the highest LSN it
//! has seen (so that a switch of node never goes back in time). With leader discovery on
//! (failover auto), a session learns a new leader from redirects ("not leader; leader is
//! n2") and by asking the nodes' `/status` after a failed or indeterminate write and every
//! few hundred milliseconds — each session on its own schedule, as independent clients
//! would. Each session is bound to a home node (sessions are dealt round-robin over the
//! nodes, as Jepsen binds each client process to one node) and follows the leader *its
//! node* believes in: the home node itself if it says it leads, else the leader it names;
//! when it knows none (its leader went silent, an election runs), a leader of a newer
//! epoch than it knows, if any answers, else the home node (which refuses at once until it
//! learns a leader). Only when the home node does not answer does the session take the
//! node that leads in the highest epoch among all answers. So during a partition the
//! clients of an isolated old leader keep using it until it steps down (check-quorum),
//! while the clients of the majority side follow the new leader — what a client connected
//! to one member of a real cluster sees. One `ReferenceClient` holds one connection pool
//! shared by all sessions.

pub use crate::api::{Endpoint, ReadRouting, Reply};
pub(crate) use crate::api::{error_text, fetch_status};
use crate::error::TargetError;
use crate::reference::NodeId;
use crate::reference::leader_follower::Status;
use crate::reference::node::KvReply;
use crate::request::Request;
use crate::target::{BoxFuture, TargetSession};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientOptions {
    pub routing: ReadRouting,
    /// Per-request timeout (the whole exchange).
    pub timeout_ms: u64,
    /// Find the leader by asking (redirects, `/status`): on when the cluster fails over.
    pub discover_leader: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            routing: ReadRouting::Any,
            timeout_ms: 1000,
            discover_leader: false,
        }
    }
}

/// One worker's client-side state.
#[derive(Debug, Clone)]
pub struct Session {
    rng: ChaCha8Rng,
    /// The node this session is bound to (index into the client's nodes): the one it asks
    /// first who leads.
    home: usize,
    /// The leader as this session knows it (index into the client's nodes).
    leader: Option<usize>,
    /// Ask the nodes who leads before the next request, at the latest at this time.
    refresh_at: Option<std::time::Instant>,
    /// LSN of this session's last acknowledged write (read-your-writes token).
    last_write_lsn: u64,
    /// Highest applied LSN a read of this session saw (monotonic-read token).
    seen_lsn: u64,
    sticky: Option<usize>,
}

impl Session {
    /// A session bound to the first node (`ReferenceClient::session` deals homes out).
    pub fn new(seed: u64) -> Session {
        Session {
            rng: ChaCha8Rng::seed_from_u64(seed),
            home: 0,
            leader: None,
            refresh_at: None,
            last_write_lsn: 0,
            seen_lsn: 0,
            sticky: None,
        }
    }

    /// The session's read-your-writes token.
    pub fn last_write_lsn(&self) -> u64 {
        self.last_write_lsn
    }
}

/// Read conditions sent along with a request (see the node's `KvOpts`).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
struct Conditions {
    #[serde(skip_serializing_if = "is_zero")]
    min_lsn: u64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    leader_only: bool,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
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
    /// Sessions made so far: the next one's home node is this modulo the node count.
    sessions_made: std::sync::Arc<std::sync::atomic::AtomicUsize>,
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
            sessions_made: Default::default(),
        })
    }

    /// Sends writes to a node chosen at random per request (every node takes writes in
    /// multi-leader and leaderless clusters; the contacted node coordinates).
    pub fn with_writes_to_any_node(mut self, yes: bool) -> ReferenceClient {
        self.write_any = yes;
        self
    }

    /// A new session for one worker; derive `seed` from the run's seed and the worker.
    /// Sessions are bound to the nodes round-robin in the order they are made (the k-th
    /// session to node k mod n), so every node has clients whatever the seed.
    pub fn session(&self, seed: u64) -> Session {
        let k = self
            .sessions_made
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Session {
            home: k % self.nodes.len(),
            ..Session::new(seed)
        }
    }

    pub fn options(&self) -> ClientOptions {
        self.options
    }

    /// Sends `req` where the routing rules say.
    pub async fn invoke(&self, session: &mut Session, req: Request) -> Reply {
        if self.options.discover_leader
            && session
                .refresh_at
                .is_none_or(|t| std::time::Instant::now() >= t)
        {
            self.refresh_leader(session).await;
        }
        let leader = session.leader.unwrap_or(self.leader);
        let n = self.nodes.len();
        let none = Conditions::default();
        if req.is_write() {
            // Multi-leader and leaderless nodes all take writes; leader-follower only the leader.
            let target = if self.write_any {
                session.rng.random_range(0..n)
            } else {
                leader
            };
            let (reply, hint) = self.send(target, req, none).await;
            if let Reply::Ok { meta, .. } = &reply {
                session.last_write_lsn = session.last_write_lsn.max(meta_u64(meta, "lsn"));
            } else {
                self.learn(session, hint);
            }
            return reply;
        }
        let (node, cond) = self.read_target(session, leader);
        let (mut reply, hint) = self.send(node, req, cond).await;
        if !matches!(reply, Reply::Ok { .. }) {
            match self.options.routing {
                // Not caught up (or down): the leader has every acknowledged write.
                ReadRouting::Ryw if node != leader => {
                    reply = self
                        .send(
                            leader,
                            req,
                            Conditions {
                                leader_only: true,
                                ..cond
                            },
                        )
                        .await
                        .0;
                }
                // Move on; the token keeps the next node from going back in time.
                ReadRouting::Sticky => session.sticky = Some(session.rng.random_range(0..n)),
                ReadRouting::Leader => self.learn(session, hint),
                _ => {}
            }
        }
        if let Reply::Ok { meta, .. } = &reply {
            session.seen_lsn = session.seen_lsn.max(meta_u64(meta, "applied"));
        }
        reply
    }

    /// Where a read goes under the routing rules, and the conditions it carries.
    fn read_target(&self, session: &mut Session, leader: usize) -> (usize, Conditions) {
        let n = self.nodes.len();
        let none = Conditions::default();
        match self.options.routing {
            ReadRouting::Leader => (
                leader,
                Conditions {
                    leader_only: true,
                    ..none
                },
            ),
            ReadRouting::Any => (session.rng.random_range(0..n), none),
            ReadRouting::Follower => {
                let pick = if n > 1 {
                    (leader + 1 + session.rng.random_range(0..n - 1)) % n
                } else {
                    leader
                };
                (pick, none)
            }
            ReadRouting::Ryw => (
                session.rng.random_range(0..n),
                Conditions {
                    min_lsn: session.last_write_lsn,
                    ..none
                },
            ),
            ReadRouting::Sticky => {
                let node = *session
                    .sticky
                    .get_or_insert_with(|| session.rng.random_range(0..n));
                (
                    node,
                    Conditions {
                        min_lsn: session.seen_lsn,
                        ..none
                    },
                )
            }
        }
    }

    /// After a refusal: follow a redirect, or ask everyone who leads before the next request.
    fn learn(&self, session: &mut Session, hint: Option<String>) {
        if !self.options.discover_leader {
            return;
        }
        match hint.and_then(|h| self.nodes.iter().position(|n| n.id == h)) {
            Some(i) if Some(i) != session.leader => session.leader = Some(i),
            _ => session.refresh_at = Some(std::time::Instant::now()),
        }
    }

    /// Asks every node's `/status` and follows the leader the session's home node believes
    /// in (itself, or the leader it names). When the home node knows no leader, a node that
    /// leads in a newer epoch than the home knows, else the home itself (which refuses until
    /// it learns one); when the home does not answer, the node leading in the highest epoch.
    async fn refresh_leader(&self, session: &mut Session) {
        let timeout = Duration::from_millis(self.options.timeout_ms.min(150));
        let mut asks = tokio::task::JoinSet::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let (http, url) = (self.http.clone(), n.status_url.clone());
            asks.spawn(async move { (i, fetch_status(&http, &url, timeout).await) });
        }
        // Every node that says it leads, with its epoch; the home node's answer apart.
        let mut leaders: Vec<(u64, usize)> = Vec::new();
        let mut home = None;
        while let Some(joined) = asks.join_next().await {
            let Ok((i, Ok(st))) = joined else { continue };
            if st.role == crate::reference::leader_follower::Role::Leader {
                leaders.push((st.epoch, i));
            }
            if i == session.home {
                home = Some(st);
            }
        }
        // The newest leader, ties to the lowest index; only epochs above `floor`.
        let newest = |floor: Option<u64>| {
            leaders
                .iter()
                .filter(|(e, _)| floor.is_none_or(|f| *e > f))
                .max_by_key(|(e, i)| (*e, std::cmp::Reverse(*i)))
                .map(|(_, i)| *i)
        };
        let pick = match home {
            // A home that leads serves; one that follows sends the session to its leader.
            Some(st) if st.role == crate::reference::leader_follower::Role::Leader => {
                Some(session.home)
            }
            Some(st) => match st
                .leader
                .as_ref()
                .and_then(|l| self.nodes.iter().position(|n| n.id == *l))
            {
                Some(i) => Some(i),
                // It knows no leader (its leader went silent, an election runs): only a
                // leader of a newer epoch than it knows can be the one; else stay with it
                // (requests fail at once, "no leader known", until it learns one).
                None => newest(Some(st.epoch)).or(Some(session.home)),
            },
            // The home node does not answer (down, paused): the newest leader.
            None => newest(None),
        };
        if let Some(i) = pick {
            session.leader = Some(i);
        }
        let jitter = session.rng.random_range(200..600);
        session.refresh_at = Some(std::time::Instant::now() + Duration::from_millis(jitter));
    }

    /// Sends `req` to a named node, whatever its kind (tests; writes to followers).
    pub async fn invoke_on(&self, node: &str, req: Request) -> Reply {
        match self.nodes.iter().position(|n| n.id == node) {
            Some(i) => self.send(i, req, Conditions::default()).await.0,
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

    /// Sends one request; the second value is the leader a refusal named.
    async fn send(&self, i: usize, req: Request, cond: Conditions) -> (Reply, Option<String>) {
        let node = &self.nodes[i];
        let fail = |error: String| Reply::Fail {
            node: Some(node.id.clone()),
            error,
        };
        // A write whose fate the answer does not tell may have happened; a read did nothing.
        let uncertain = |error: String| {
            if req.is_write() {
                Reply::Unknown {
                    node: Some(node.id.clone()),
                    error,
                }
            } else {
                fail(error)
            }
        };
        let body = match request_body(&req, cond) {
            Ok(b) => b,
            Err(e) => return (fail(format!("cannot encode request: {e}")), None),
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
            Err(e) if e.is_connect() => return (fail(error_text(&e)), None),
            Err(e) => return (uncertain(error_text(&e)), None),
        };
        let status = resp.status();
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => return (uncertain(error_text(&e)), None),
        };
        let text = || String::from_utf8_lossy(&bytes);
        if status.is_client_error() {
            return (fail(format!("HTTP {status}: {}", text())), None);
        }
        if !status.is_success() {
            return (uncertain(format!("HTTP {status}: {}", text())), None);
        }
        match serde_json::from_slice::<KvReply>(&bytes) {
            Ok(kv) => reply_of(kv),
            Err(e) => (uncertain(format!("unreadable reply: {e}")), None),
        }
    }
}

/// A node's answer as a `Reply`, with the leader a refusal named.
fn reply_of(kv: KvReply) -> (Reply, Option<String>) {
    match kv {
        KvReply {
            ok: true,
            node,
            value,
            lsn,
            applied,
            time_ms,
            siblings,
            ..
        } => {
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
            let ok = Reply::Ok {
                value,
                node,
                meta,
                siblings,
            };
            (ok, None)
        }
        KvReply {
            node,
            error,
            unknown: true,
            ..
        } => {
            let error = error.unwrap_or_else(|| "indeterminate".to_owned());
            (
                Reply::Unknown {
                    node: Some(node),
                    error,
                },
                None,
            )
        }
        KvReply {
            node,
            error,
            leader,
            ..
        } => {
            let error = error.unwrap_or_else(|| "refused".to_owned());
            (
                Reply::Fail {
                    node: Some(node),
                    error,
                },
                leader,
            )
        }
    }
}

/// The request's own JSON object with the read conditions beside its fields.
fn request_body(req: &Request, cond: Conditions) -> Result<Vec<u8>, serde_json::Error> {
    let mut v = serde_json::to_value(req)?;
    if let (serde_json::Value::Object(obj), serde_json::Value::Object(extra)) =
        (&mut v, serde_json::to_value(cond)?)
    {
        obj.extend(extra);
    }
    serde_json::to_vec(&v)
}

fn meta_u64(meta: &Option<serde_json::Value>, field: &str) -> u64 {
    meta.as_ref()
        .and_then(|m| m.get(field))
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0)
}

/// The reference client as a `TargetSession`: one worker's session over the shared client, so
/// the runner drives the reference cluster and real databases through one interface.
#[derive(Debug)]
pub struct ReferenceSession {
    client: std::sync::Arc<ReferenceClient>,
    session: Session,
}

impl ReferenceSession {
    pub fn new(client: std::sync::Arc<ReferenceClient>, seed: u64) -> ReferenceSession {
        let session = client.session(seed);
        ReferenceSession { client, session }
    }
}

impl TargetSession for ReferenceSession {
    fn invoke(&mut self, req: Request) -> BoxFuture<'_, Reply> {
        Box::pin(async move { self.client.invoke(&mut self.session, req).await })
    }
}
