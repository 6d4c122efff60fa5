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
//! to one member of a real cluster sees. Each session keeps its own kept-alive
//! connection to each node (`http1`, a lean HTTP/1.1 exchange run by the worker's own
//! task; reqwest only asks `/status`). Every decision above is `routing::Router`'s (pure): this client
//! only does the HTTP and keeps the time of the next leader search, so `schism sim`'s
//! simulated clients, which drive the same `Router`, route exactly as this one does.

pub use crate::api::{Endpoint, ReadRouting, Reply};
pub(crate) use crate::api::{error_text, fetch_status};
use crate::error::TargetError;
use crate::http1::{Conns, Dest, Exchange};
use crate::reference::NodeId;
use crate::reference::leader_follower::Status;
use crate::reference::node::KvReply;
use crate::request::Request;
use crate::routing::{AfterRead, Conditions, Outcome, Router, Rules, Seen};
use crate::target::{BoxFuture, TargetSession, TxnReply};
use schism_history::txn::{MicroOp, MopF, MopValue, parse_txn, txn_value};
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

/// One worker's client-side state: its routing state (`routing::Router`: seeded RNG,
/// home node, the leader it follows, LSN tokens), when it next asks who leads, and its
/// own kept-alive connection to each node (`http1`).
#[derive(Debug)]
pub struct Session {
    router: Router,
    /// Ask the nodes who leads before the next request, at the latest at this time.
    refresh_at: Option<std::time::Instant>,
    /// By node index, opened on first use, with the request buffers they reuse.
    conns: Conns,
}

impl Clone for Session {
    /// The same routing state, without the connections (a clone opens its own).
    fn clone(&self) -> Session {
        Session {
            router: self.router.clone(),
            refresh_at: self.refresh_at,
            conns: Conns::default(),
        }
    }
}

impl Session {
    /// A session bound to the first node (`ReferenceClient::session` deals homes out).
    pub fn new(seed: u64) -> Session {
        Session {
            router: Router::new(seed, 0),
            refresh_at: None,
            conns: Conns::default(),
        }
    }

    /// The session's read-your-writes token.
    pub fn last_write_lsn(&self) -> u64 {
        self.router.last_write_lsn()
    }
}

#[derive(Debug, Clone)]
struct Node {
    id: NodeId,
    addr: std::net::SocketAddr,
    /// `addr` as the `host` header says it (formatted once, not per request).
    host: String,
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
            // Never resend a request: a resent write could happen twice, which the
            // history would not show (and each retry-able request costs a clone).
            .retry(reqwest::retry::never())
            .build()
            .map_err(|e| TargetError::Client(e.to_string()))?;
        let nodes = nodes
            .iter()
            .map(|n| Node {
                id: n.id.clone(),
                addr: n.addr,
                host: n.addr.to_string(),
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
            router: Router::new(seed, k % self.nodes.len()),
            refresh_at: None,
            conns: Conns::default(),
        }
    }

    pub fn options(&self) -> ClientOptions {
        self.options
    }

    /// The routing rules every session of this client shares.
    fn rules(&self) -> Rules {
        Rules {
            routing: self.options.routing,
            write_any: self.write_any,
            discover_leader: self.options.discover_leader,
            nodes: self.nodes.len(),
            initial_leader: self.leader,
        }
    }

    /// Sends `req` where the routing rules (`routing::Router`) say.
    pub async fn invoke(&self, session: &mut Session, req: Request) -> Reply {
        let rules = self.rules();
        self.refresh_if_due(session).await;
        let (node, cond) = session.router.route(&rules, req.is_write());
        let (reply, hint) = self.send(&mut session.conns, node, req, cond).await;
        let outcome = self.outcome(&reply, hint);
        match settle(session, &rules, req.is_write(), node, cond, &outcome) {
            None => reply,
            Some((node, cond)) => {
                // Boxed: the retried read is rare, and inline its state would add to
                // that of every request's future (see `refresh_if_due`).
                let reply = Box::pin(self.send(&mut session.conns, node, req, cond))
                    .await
                    .0;
                session.router.after_final_read(&self.outcome(&reply, None));
                reply
            }
        }
    }

    /// Asks the nodes who leads when leader discovery is on and the session's next search
    /// is due.
    async fn refresh_if_due(&self, session: &mut Session) {
        if self.options.discover_leader
            && session
                .refresh_at
                .is_none_or(|t| std::time::Instant::now() >= t)
        {
            // Boxed: rare, and large (a task per node). `TargetSession` boxes every
            // request's future, which the allocator serves from its per-thread cache
            // only up to about 1 KiB (glibc's tcache); rare states inline would push
            // it past that (BENCHMARKS.md "Runner CPU per op").
            Box::pin(self.refresh_leader(session)).await;
        }
    }

    /// Runs a transaction. Leader-follower: the whole transaction goes to one node
    /// (`POST /txn`), routed like a write when it writes (to the leader, which runs it
    /// atomically) and like a read when it only reads (`ReadRouting`: a follower serves it
    /// from its applied state). Multi-leader and leaderless (writes to any node): each
    /// micro-op is its own request, in order, routed as usual — no atomicity across keys,
    /// which is these models' semantics; a micro-op that fails after an earlier write
    /// took effect (or may have) leaves the transaction `Unknown`, never `Fail`.
    pub async fn txn(&self, session: &mut Session, mops: Vec<MicroOp>) -> TxnReply {
        if self.write_any {
            return self.txn_one_by_one(session, mops).await;
        }
        let rules = self.rules();
        self.refresh_if_due(session).await;
        let writes = mops.iter().any(|m| m.f != MopF::Read);
        let (node, cond) = session.router.route(&rules, writes);
        let body = txn_body(&mut session.conns.body, &mops, cond);
        let (reply, hint) = self
            .post(&mut session.conns, node, true, body, writes)
            .await;
        let outcome = self.outcome(&reply, hint);
        let reply = match settle(session, &rules, writes, node, cond, &outcome) {
            None => reply,
            Some((node, cond)) => {
                let body = txn_body(&mut session.conns.body, &mops, cond);
                let reply = self
                    .post(&mut session.conns, node, true, body, false)
                    .await
                    .0;
                session.router.after_final_read(&self.outcome(&reply, None));
                reply
            }
        };
        txn_reply(&mops, reply, writes)
    }

    /// Each micro-op as its own request (multi-leader, leaderless), all to the one node
    /// the routing picks for the transaction (its coordinator, as a client connected to
    /// one member would use): the node applies each on its own, no atomicity across keys.
    async fn txn_one_by_one(&self, session: &mut Session, mut mops: Vec<MicroOp>) -> TxnReply {
        let writes = mops.iter().any(|m| m.f != MopF::Read);
        let (node, cond) = session.router.route(&self.rules(), writes);
        // Whether an earlier write took effect, or may have.
        let mut wrote = false;
        for (i, m) in mops.iter_mut().enumerate() {
            let req = match (m.f, m.written()) {
                (MopF::Read, _) => Request::Read { key: m.key },
                (MopF::Append, Some(value)) => Request::Append { key: m.key, value },
                (MopF::Write, Some(value)) => Request::Write { key: m.key, value },
                _ => {
                    return TxnReply::Fail {
                        error: format!("malformed micro-op {m}"),
                    };
                }
            };
            let step = format!("micro-op {} {m}", i + 1);
            match self.send(&mut session.conns, node, req, cond).await.0 {
                Reply::Ok { value, .. } => {
                    if m.f == MopF::Read {
                        m.value = mop_value(&value);
                    } else {
                        wrote = true;
                    }
                }
                Reply::Fail { error, .. } if !wrote => {
                    return TxnReply::Fail {
                        error: format!("{step}: {error}"),
                    };
                }
                Reply::Fail { error, .. } | Reply::Unknown { error, .. } => {
                    return TxnReply::Unknown {
                        error: format!("{step}: {error} (earlier micro-ops may have taken effect)"),
                    };
                }
            }
        }
        TxnReply::Ok(mops)
    }

    /// What routing needs of a reply.
    fn outcome(&self, reply: &Reply, hint: Option<String>) -> Outcome {
        match reply {
            Reply::Ok { meta, .. } => Outcome {
                ok: true,
                lsn: meta_u64(meta, "lsn"),
                applied: meta_u64(meta, "applied"),
                hint: None,
            },
            _ => Outcome {
                hint: hint.and_then(|h| self.nodes.iter().position(|n| n.id == h)),
                ..Outcome::default()
            },
        }
    }

    /// Asks every node's `/status` and lets the session's router pick the leader to
    /// follow (`Router::follow`: the one its home node believes in).
    async fn refresh_leader(&self, session: &mut Session) {
        let timeout = Duration::from_millis(self.options.timeout_ms.min(150));
        let mut asks = tokio::task::JoinSet::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let (http, url) = (self.http.clone(), n.status_url.clone());
            asks.spawn(async move { (i, fetch_status(&http, &url, timeout).await) });
        }
        let mut answers: Vec<Option<Seen>> = vec![None; self.nodes.len()];
        while let Some(joined) = asks.join_next().await {
            let Ok((i, Ok(st))) = joined else { continue };
            answers[i] = Some(Seen {
                leads: st.role == crate::reference::leader_follower::Role::Leader,
                epoch: st.epoch,
                names: st
                    .leader
                    .as_ref()
                    .and_then(|l| self.nodes.iter().position(|n| n.id == *l)),
            });
        }
        let jitter = session.router.follow(&answers);
        session.refresh_at = Some(std::time::Instant::now() + Duration::from_millis(jitter));
    }

    /// Sends `req` to a named node, whatever its kind (tests; writes to followers).
    pub async fn invoke_on(&self, node: &str, req: Request) -> Reply {
        match self.nodes.iter().position(|n| n.id == node) {
            Some(i) => {
                self.send(&mut Conns::default(), i, req, Conditions::default())
                    .await
                    .0
            }
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

    /// Sends one request over the session's connection to node `i`; the second value
    /// is the leader a refusal named.
    async fn send(
        &self,
        conns: &mut Conns,
        i: usize,
        req: Request,
        cond: Conditions,
    ) -> (Reply, Option<String>) {
        let body = request_body(&mut conns.body, &req, cond);
        self.post(conns, i, false, body, req.is_write()).await
    }

    /// Posts `conns.body` to node `i`'s `/kv` (or `/txn`); `body` says whether encoding
    /// it failed, `changes` whether the request may change state (then a lost answer
    /// leaves its fate unknown).
    async fn post(
        &self,
        conns: &mut Conns,
        i: usize,
        txn: bool,
        body: Result<(), serde_json::Error>,
        changes: bool,
    ) -> (Reply, Option<String>) {
        let node = &self.nodes[i];
        if let Err(e) = body {
            return failed(node, format!("cannot encode request: {e}"));
        }
        let dest = Dest {
            addr: node.addr,
            host: &node.host,
            path: if txn { "/txn" } else { "/kv" },
        };
        let timeout = Duration::from_millis(self.options.timeout_ms);
        match conns
            .post(i, dest, timeout, |status, bytes| {
                answer_of(node, changes, status, bytes)
            })
            .await
        {
            Ok(reply) => reply,
            // Nothing was sent on a connection that never opened.
            Err(Exchange::NotSent(e)) => failed(node, e),
            Err(Exchange::Lost(e)) => uncertain(node, changes, e),
        }
    }
}

/// A certain failure at `node`.
fn failed(node: &Node, error: String) -> (Reply, Option<String>) {
    let reply = Reply::Fail {
        node: Some(node.id.clone()),
        error,
    };
    (reply, None)
}

/// A request that may have reached `node`: a write's fate is unknown.
fn uncertain(node: &Node, changes: bool, error: String) -> (Reply, Option<String>) {
    let node = Some(node.id.clone());
    let reply = if changes {
        Reply::Unknown { node, error }
    } else {
        Reply::Fail { node, error }
    };
    (reply, None)
}

/// The reply for a complete answer from `node` (status and body).
fn answer_of(node: &Node, changes: bool, status: u16, bytes: &[u8]) -> (Reply, Option<String>) {
    let text = || String::from_utf8_lossy(bytes).into_owned();
    if (400..500).contains(&status) {
        return failed(node, format!("HTTP {}: {}", status_text(status), text()));
    }
    if !(200..300).contains(&status) {
        return uncertain(
            node,
            changes,
            format!("HTTP {}: {}", status_text(status), text()),
        );
    }
    match serde_json::from_slice::<KvReply>(bytes) {
        Ok(kv) => reply_of(kv),
        Err(e) => uncertain(node, changes, format!("unreadable reply: {e}")),
    }
}

/// The client's reply for a node's decoded answer; the second value is the leader a
/// refusal named.
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
            (
                Reply::Ok {
                    value,
                    node,
                    meta,
                    siblings,
                },
                None,
            )
        }
        KvReply {
            node,
            error,
            unknown: true,
            ..
        } => (
            Reply::Unknown {
                node: Some(node),
                error: error.unwrap_or_else(|| "indeterminate".to_owned()),
            },
            None,
        ),
        KvReply {
            node,
            error,
            leader,
            ..
        } => (
            Reply::Fail {
                node: Some(node),
                error: error.unwrap_or_else(|| "refused".to_owned()),
            },
            leader,
        ),
    }
}

/// `404 Not Found`, as reqwest's `StatusCode` prints it (error texts stay as they were).
fn status_text(status: u16) -> String {
    match reqwest::StatusCode::from_u16(status) {
        Ok(s) => s.to_string(),
        Err(_) => status.to_string(),
    }
}

/// The request's own JSON object with the read conditions beside its fields, written
/// straight into `out` (cleared first; no `serde_json::Value` in between, and `out` is
/// the session's reused buffer: no allocation per request).
fn request_body(
    out: &mut Vec<u8>,
    req: &Request,
    cond: Conditions,
) -> Result<(), serde_json::Error> {
    out.clear();
    serde_json::to_writer(&mut *out, req)?;
    let at = out.len();
    serde_json::to_writer(&mut *out, &cond)?;
    // Both are JSON objects: `{..}{..}` → `{..,..}` (an empty `{}` adds nothing).
    if out.len() - at <= 2 {
        out.truncate(at);
    } else if at > 2 && out[at - 1] == b'}' && out[at] == b'{' {
        out[at - 1] = b',';
        out.remove(at);
    }
    Ok(())
}

/// `POST /txn`'s body, into `out` (cleared first): the transaction beside the read
/// conditions.
fn txn_body(
    out: &mut Vec<u8>,
    mops: &[MicroOp],
    cond: Conditions,
) -> Result<(), serde_json::Error> {
    out.clear();
    let mut v = serde_json::to_value(cond)?;
    if let serde_json::Value::Object(obj) = &mut v {
        obj.insert("txn".into(), serde_json::to_value(txn_value(mops))?);
    }
    serde_json::to_writer(out, &v)
}

/// A node's answer to a transaction as the runner records it: an `ok` whose value is not
/// the same transaction with its reads filled in is no answer (unknown if it wrote).
fn txn_reply(sent: &[MicroOp], reply: Reply, writes: bool) -> TxnReply {
    match reply {
        Reply::Ok { value, node, .. } => match parse_txn(&value) {
            Ok(done)
                if done.len() == sent.len()
                    && done
                        .iter()
                        .zip(sent)
                        .all(|(d, s)| d.f == s.f && d.key == s.key) =>
            {
                TxnReply::Ok(done)
            }
            Ok(_) | Err(_) => {
                let error = format!("{node} answered the transaction with {value}");
                TxnReply::not_committed(writes, error)
            }
        },
        Reply::Fail { error, .. } => TxnReply::Fail { error },
        Reply::Unknown { error, .. } => TxnReply::Unknown { error },
    }
}

/// What the router makes of an answer (a write's, or a read's served by `node` under
/// `cond`): `Some` node and conditions to retry a read at once, else `None`; schedules a
/// leader search when the answer calls for one.
fn settle(
    session: &mut Session,
    rules: &Rules,
    write: bool,
    node: usize,
    cond: Conditions,
    outcome: &Outcome,
) -> Option<(usize, Conditions)> {
    let refresh_now = if write {
        session.router.after_write(rules, outcome)
    } else {
        match session.router.after_read(rules, node, cond, outcome) {
            AfterRead::Done { refresh_now } => refresh_now,
            AfterRead::Retry(node, cond) => return Some((node, cond)),
        }
    };
    if refresh_now {
        session.refresh_at = Some(std::time::Instant::now());
    }
    None
}

/// A single-key read's value as a micro-op's.
fn mop_value(v: &schism_history::Value) -> MopValue {
    match v {
        schism_history::Value::Int(i) => MopValue::Int(*i),
        schism_history::Value::List(xs) => MopValue::List(xs.to_vec()),
        _ => MopValue::Nil,
    }
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

    fn txn(&mut self, mops: Vec<MicroOp>) -> BoxFuture<'_, TxnReply> {
        Box::pin(async move { self.client.txn(&mut self.session, mops).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The future of one request, which `TargetSession` boxes per request, stays within
    /// what glibc's malloc serves from its per-thread cache (tcache: up to 1,032 bytes);
    /// past it every request paid a search of the shared bins and a consolidation of
    /// the fast ones (BENCHMARKS.md "Runner CPU per op"). A size, not a timing.
    #[test]
    fn a_request_future_fits_the_allocators_thread_cache() {
        let nodes = vec![Endpoint {
            id: "n1".into(),
            addr: "127.0.0.1:1".parse().unwrap(),
        }];
        let client = ReferenceClient::new(&nodes, "n1", ClientOptions::default()).unwrap();
        let mut session = ReferenceSession::new(std::sync::Arc::new(client), 1);
        let boxed = session.invoke(Request::Read { key: 1 });
        let bytes = size_of_val(&*boxed);
        assert!(bytes <= 1024, "a request's future is {bytes} bytes");
    }

    #[test]
    fn request_body_puts_the_conditions_beside_the_request_fields() {
        let body = |req: &Request, cond| {
            let mut out = b"left over".to_vec();
            request_body(&mut out, req, cond).unwrap();
            out
        };
        let read = Request::Read { key: 7 };
        let plain = body(&read, Conditions::default());
        assert_eq!(plain, br#"{"f":"read","key":7}"#);
        let cond = Conditions {
            min_lsn: 12,
            leader_only: true,
        };
        assert_eq!(
            body(&read, cond),
            br#"{"f":"read","key":7,"min_lsn":12,"leader_only":true}"#
        );
        let append = Request::Append { key: 1, value: 5 };
        let cond = Conditions {
            min_lsn: 3,
            leader_only: false,
        };
        assert_eq!(
            body(&append, cond),
            br#"{"f":"append","key":1,"value":5,"min_lsn":3}"#
        );
    }
}
