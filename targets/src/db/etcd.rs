//! The etcd adapter: a 3-member etcd cluster from Debian's `etcd-server` (or an existing
//! one with `--endpoints`), spoken to through its JSON gateway (`/v3/…`) with `reqwest`.
//!
//! What it guarantees on top of the `DbCluster`/`DbSession` contract:
//! - every member runs with `--pre-vote` (an isolated member does not disrupt leadership
//!   when it comes back), heartbeat 100 ms and election timeout 1000 ms, its data under
//!   `data_dir/<node>` (that path stays in the server's argv, so the ledger's cleanup
//!   recognises it) and its log in `log_dir/<node>.log`;
//! - the cluster is ready when every member answers `maintenance/status` and a
//!   linearizable range succeeds, all within `startup_timeout`;
//! - a register read is one range (linearizable unless `--etcd-reads serializable`), a
//!   write one put; an append is read-modify-write of a JSON list under a mod-revision
//!   compare, retried a bounded number of times on a lost race (a lost race wrote nothing);
//! - outcome mapping: refused connection, HTTP 4xx, any failed read and a compare that
//!   never succeeded → `Fail`; a timeout, a 5xx (etcd's "request timed out" is a 503) or a
//!   connection lost after sending, on a put or a txn → `Unknown`;
//! - a transaction (`txn`) is optimistic and never retried: one read-only `Txn` ranges over
//!   every key it touches at one revision, its micro-ops run against that snapshot, and a
//!   second `Txn` puts what it wrote only if every touched key still has the mod revision
//!   seen (a failed compare is `Fail`; a commit without an answer `Unknown`), so committed
//!   transactions are strict serializable; values are JSON lists (appends) or integers;
//! - keys live under `schism/<nonce>/` (one nonce per `open`), so a run against an
//!   attached cluster never reads another run's values.

use crate::ReadRouting;
use crate::client::{Reply, error_text};
use crate::db::{
    BoxFuture, DbCluster, DbKind, DbOptions, DbSession, DbSpec, EtcdReads, ManagedProcess,
    Placement, ProcessSpec, loopback_ports, require_binary,
};
use crate::error::TargetError;
use crate::reference::NodeId;
use crate::request::Request;
use crate::target::TxnReply;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use schism_history::Value;
use schism_history::txn::{MicroOp, MopF, MopValue};
use serde_json::{Value as Json, json};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// etcd's client and peer ports inside a node namespace.
const CLIENT_PORT: u16 = 2379;
const PEER_PORT: u16 = 2380;
/// Raft timing (RECIPES.md §1): leader change in about 1.5 s.
const HEARTBEAT_MS: u64 = 100;
const ELECTION_MS: u64 = 1000;
/// Lost compare races an append retries before giving up (`Fail`: nothing was written).
const APPEND_ATTEMPTS: usize = 20;
/// An append's whole budget, in per-request timeouts (the runner puts no bound around
/// `invoke`, so the session does).
const APPEND_BUDGET_TIMEOUTS: u32 = 2;
/// How long a status probe (leader discovery) may take per member.
const STATUS_TIMEOUT_MS: u64 = 300;
/// A session's knowledge of the leader is refreshed at least this often.
const LEADER_REFRESH_MS: u64 = 1000;
/// After a restart with a majority running, how long to wait for the member to serve
/// clients (about two elections).
const RESTART_SERVE_WAIT_MS: u64 = 3000;
/// SIGTERM → SIGKILL grace at `stop`.
const STOP_GRACE_MS: u64 = 5000;
/// Readiness polling period.
const POLL_MS: u64 = 100;

/// One member: its client URL, and its process when schism started it.
#[derive(Debug)]
struct Member {
    id: NodeId,
    /// `http://host:port`, no trailing slash.
    url: String,
    /// The peer URL (empty when attached: schism never restarts those).
    peer_url: String,
    process: Option<ManagedProcess>,
}

/// What sessions share with the cluster: the HTTP pool, the members' URLs and raft ids.
#[derive(Debug)]
struct Shared {
    http: reqwest::Client,
    nodes: Vec<NodeId>,
    urls: Vec<String>,
    /// Raft member id (decimal string, as the gateway shows it) of each node, once known.
    member_ids: Mutex<Vec<Option<String>>>,
    options: DbOptions,
    /// Key prefix: `schism/<nonce>/`.
    prefix: String,
}

/// A provisioned (or attached) etcd cluster.
#[derive(Debug)]
pub struct EtcdCluster {
    members: Vec<Member>,
    shared: Arc<Shared>,
    managed: bool,
    startup_timeout: Duration,
    log_dir: std::path::PathBuf,
}

impl EtcdCluster {
    pub async fn open(spec: DbSpec) -> Result<Box<dyn DbCluster>, TargetError> {
        let nonce = nonce(&spec);
        let http = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .connect_timeout(spec.options.timeout)
            .pool_max_idle_per_host(256)
            .build()
            .map_err(|e| TargetError::Client(e.to_string()))?;
        let nodes = spec.node_ids();
        let (urls, members) = match &spec.endpoints {
            Some(eps) => {
                let urls: Vec<String> = eps.iter().map(|e| endpoint_url(e)).collect();
                let members = nodes
                    .iter()
                    .zip(&urls)
                    .map(|(id, url)| Member {
                        id: id.clone(),
                        url: url.clone(),
                        peer_url: String::new(),
                        process: None,
                    })
                    .collect();
                (urls, members)
            }
            None => {
                // On hosts over SSH the binary is the host's own, found on its PATH (the
                // preflight checked it is there).
                let binary = match &spec.placement {
                    Placement::Hosts(_) => std::path::PathBuf::from("etcd"),
                    _ => require_binary("etcd", "etcd-server")?,
                };
                provision(&spec, &binary, &nodes, &nonce)?
            }
        };
        let shared = Arc::new(Shared {
            http,
            member_ids: Mutex::new(vec![None; nodes.len()]),
            nodes,
            urls,
            options: spec.options.clone(),
            prefix: format!("schism/{nonce}/"),
        });
        let mut cluster = EtcdCluster {
            members,
            shared,
            managed: spec.endpoints.is_none(),
            startup_timeout: spec.startup_timeout,
            log_dir: spec.log_dir.clone(),
        };
        if let Err(e) = cluster.wait_ready().await {
            // No member outlives a failed start.
            let _ = cluster.stop().await;
            return Err(e);
        }
        Ok(Box::new(cluster))
    }

    /// Every member answers `maintenance/status` (which also teaches us its raft id) and a
    /// linearizable range goes through (so a leader is elected and reachable).
    async fn wait_ready(&mut self) -> Result<(), TargetError> {
        let deadline = Instant::now() + self.startup_timeout;
        let probe_timeout = Duration::from_millis(STATUS_TIMEOUT_MS.max(1000));
        loop {
            self.check_alive()?;
            let mut last = String::new();
            let mut all = true;
            for i in 0..self.members.len() {
                if let Err(e) = self.shared.status(i, probe_timeout).await {
                    last = format!("{}: {e}", self.members[i].id);
                    all = false;
                    break;
                }
            }
            if all {
                let key = format!("{}ready", self.shared.prefix);
                match self
                    .shared
                    .post(0, "kv/range", &json!({"key": b64(&key)}), probe_timeout)
                    .await
                {
                    Ok(_) => return Ok(()),
                    Err(e) => last = format!("linearizable range on {}: {e}", self.members[0].id),
                }
            }
            if Instant::now() >= deadline {
                let node = self
                    .members
                    .first()
                    .map(|m| m.id.clone())
                    .unwrap_or_default();
                return Err(TargetError::StartupTimeout {
                    node,
                    timeout_ms: self.startup_timeout.as_millis() as u64,
                    last_error: last,
                    log: self.log_dir.clone(),
                });
            }
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
    }

    /// A member that exited while we wait for it is an error naming its log.
    fn check_alive(&mut self) -> Result<(), TargetError> {
        for m in &mut self.members {
            if let Some(p) = m.process.as_mut()
                && let Some(status) = p.try_exited()
            {
                return Err(TargetError::NodeExited {
                    node: m.id.clone(),
                    status,
                    tail: p.log_tail(5),
                    log: p.spec().log.clone(),
                });
            }
        }
        Ok(())
    }

    /// Waits until a restarted member is up. etcd serves clients only once it has
    /// published itself through raft, which needs a quorum: after a kill of every member
    /// the first one restarted cannot answer a client before the second is back. So "up"
    /// is its peer port answering `GET /version` (served before readiness), and then, when
    /// a majority of members runs, a bounded wait for its client port (not an error: a
    /// partition may keep it from serving).
    async fn wait_restarted(&mut self, i: usize) -> Result<(), TargetError> {
        let node = self.members[i].id.clone();
        let deadline = Instant::now() + self.startup_timeout;
        let timeout = Duration::from_millis(STATUS_TIMEOUT_MS);
        let version = format!("{}/version", self.members[i].peer_url);
        loop {
            let p = self.members[i]
                .process
                .as_mut()
                .ok_or_else(|| TargetError::NotRunning(node.clone()))?;
            if let Some(status) = p.try_exited() {
                return Err(TargetError::NodeExited {
                    node,
                    status,
                    tail: p.log_tail(5),
                    log: p.spec().log.clone(),
                });
            }
            let answered = self.shared.http.get(&version).timeout(timeout).send().await;
            match answered {
                Ok(r) if r.status().is_success() => break,
                Ok(r) if Instant::now() >= deadline => {
                    return Err(
                        self.restart_timeout(&node, format!("peer /version: HTTP {}", r.status()))
                    );
                }
                Err(e) if Instant::now() >= deadline => {
                    return Err(
                        self.restart_timeout(&node, format!("peer /version: {}", error_text(&e)))
                    );
                }
                _ => tokio::time::sleep(Duration::from_millis(POLL_MS)).await,
            }
        }
        let running = self
            .members
            .iter()
            .filter(|m| m.process.as_ref().is_some_and(ManagedProcess::is_running))
            .count();
        if running * 2 > self.members.len() {
            let serve_deadline = Instant::now() + Duration::from_millis(RESTART_SERVE_WAIT_MS);
            while Instant::now() < serve_deadline && self.shared.status(i, timeout).await.is_err() {
                tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
            }
        }
        Ok(())
    }

    fn restart_timeout(&self, node: &str, last_error: String) -> TargetError {
        TargetError::StartupTimeout {
            node: node.to_owned(),
            timeout_ms: self.startup_timeout.as_millis() as u64,
            last_error,
            log: self.log_dir.join(format!("{node}.log")),
        }
    }

    fn index(&self, node: &str) -> Result<usize, TargetError> {
        self.members
            .iter()
            .position(|m| m.id == node)
            .ok_or_else(|| TargetError::UnknownNode(node.to_owned()))
    }

    fn unmanaged(&self, what: &str) -> TargetError {
        TargetError::Invalid(format!(
            "cannot {what} a member of a cluster attached with --endpoints: schism does not control its processes; drop --endpoints to let schism provision one"
        ))
    }
}

/// Starts the members (not waiting for them): returns their client URLs and processes.
fn provision(
    spec: &DbSpec,
    binary: &std::path::Path,
    nodes: &[NodeId],
    nonce: &str,
) -> Result<(Vec<String>, Vec<Member>), TargetError> {
    let n = nodes.len();
    let layout = member_layout(spec, nodes)?;
    crate::process::create_run_dirs(&spec.data_dir, &spec.log_dir)?;
    let initial_cluster = nodes
        .iter()
        .zip(&layout)
        .map(|(id, m)| format!("{id}=http://{}:{}", m.host, m.peer))
        .collect::<Vec<_>>()
        .join(",");
    let mut urls = Vec::with_capacity(n);
    let mut members = Vec::with_capacity(n);
    for (i, (id, m)) in nodes.iter().zip(layout).enumerate() {
        let client_url = format!("http://{}:{}", m.host, m.client);
        let peer_url = format!("http://{}:{}", m.host, m.peer);
        let urls_of = MemberUrls {
            client: &client_url,
            peer: &peer_url,
            initial_cluster: &initial_cluster,
        };
        let process = ManagedProcess::spawn(ProcessSpec {
            node: id.clone(),
            exec: m.exec,
            program: binary.to_path_buf(),
            args: member_args(&m.data_dir, id, &urls_of, nonce),
            env: spec.env_of(i).to_vec(),
            user: None,
            log: m.log,
            cwd: None,
        });
        // An error here drops the members started so far, which kills them.
        let process = process?;
        urls.push(client_url.clone());
        members.push(Member {
            id: id.clone(),
            url: client_url,
            peer_url,
            process: Some(process),
        });
    }
    Ok((urls, members))
}

/// Where one member runs and listens.
struct MemberAddr {
    /// The address it listens on (and is reached at).
    host: String,
    client: u16,
    peer: u16,
    /// Its host: here (inside its namespace, if any) or over SSH.
    exec: Arc<dyn crate::remote::Exec>,
    /// Its data and log, on its host.
    data_dir: std::path::PathBuf,
    log: std::path::PathBuf,
}

/// Each member's `MemberAddr`: free loopback ports, or each namespace's (host's) own
/// address on the default ports; files under the run's folder here, or under each
/// host's run folder.
fn member_layout(spec: &DbSpec, nodes: &[NodeId]) -> Result<Vec<MemberAddr>, TargetError> {
    use crate::remote::Local;
    let n = nodes.len();
    let local = |i: usize, host: String, client, peer, netns: Option<String>| MemberAddr {
        host,
        client,
        peer,
        exec: Local::on(netns),
        data_dir: spec.data_dir.join(&nodes[i]),
        log: spec.log_dir.join(format!("{}.log", nodes[i])),
    };
    match &spec.placement {
        Placement::Loopback { base_port } => {
            let ports = loopback_ports(2 * n, *base_port)?;
            Ok((0..n)
                .map(|i| local(i, "127.0.0.1".into(), ports[2 * i], ports[2 * i + 1], None))
                .collect())
        }
        Placement::Netns { namespaces, addrs } => {
            if namespaces.len() < n || addrs.len() < n {
                return Err(TargetError::Invalid(format!(
                    "{n} etcd members need {n} namespaces and addresses, got {} and {}",
                    namespaces.len(),
                    addrs.len()
                )));
            }
            Ok((0..n)
                .map(|i| {
                    let ns = Some(namespaces[i].clone());
                    local(i, addrs[i].to_string(), CLIENT_PORT, PEER_PORT, ns)
                })
                .collect())
        }
        Placement::Hosts(h) => {
            if h.execs.len() < n || h.addrs.len() < n || h.run_dirs.len() < n {
                return Err(TargetError::Invalid(format!(
                    "{n} etcd members need {n} hosts, got {}",
                    h.execs.len()
                )));
            }
            Ok((0..n)
                .map(|i| {
                    let dir = std::path::Path::new(&h.run_dirs[i]);
                    MemberAddr {
                        host: h.addrs[i].to_string(),
                        client: CLIENT_PORT,
                        peer: PEER_PORT,
                        exec: h.execs[i].clone(),
                        data_dir: dir.join(&nodes[i]),
                        log: dir.join(format!("{}.log", nodes[i])),
                    }
                })
                .collect())
        }
    }
}

/// A member's own URLs and the cluster it starts in.
struct MemberUrls<'a> {
    client: &'a str,
    peer: &'a str,
    initial_cluster: &'a str,
}

/// The etcd command line of member `id` of a new cluster.
fn member_args(
    data_dir: &std::path::Path,
    id: &str,
    urls: &MemberUrls<'_>,
    nonce: &str,
) -> Vec<String> {
    [
        "--name",
        id,
        "--data-dir",
        &data_dir.display().to_string(),
        "--listen-client-urls",
        urls.client,
        "--advertise-client-urls",
        urls.client,
        "--listen-peer-urls",
        urls.peer,
        "--initial-advertise-peer-urls",
        urls.peer,
        "--initial-cluster",
        urls.initial_cluster,
        "--initial-cluster-token",
        &format!("schism-{nonce}"),
        "--initial-cluster-state",
        "new",
        "--heartbeat-interval",
        &HEARTBEAT_MS.to_string(),
        "--election-timeout",
        &ELECTION_MS.to_string(),
        // Without it an isolated member keeps campaigning and, once healed, forces a
        // new election (RECIPES.md §1).
        "--pre-vote=true",
        "--logger=zap",
    ]
    .map(String::from)
    .to_vec()
}

/// `host:port` (or a full URL) → `http://host:port`.
fn endpoint_url(e: &str) -> String {
    let e = e.trim().trim_end_matches('/');
    if e.starts_with("http://") || e.starts_with("https://") {
        e.to_owned()
    } else {
        format!("http://{e}")
    }
}

/// A short id for this cluster's keys and cluster token.
fn nonce(spec: &DbSpec) -> String {
    let text = format!(
        "{}:{}:{:?}",
        spec.data_dir.display(),
        std::process::id(),
        std::time::SystemTime::now()
    );
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    format!("{:08x}", h & 0xffff_ffff)
}

/// The transaction that appends `value` to the list `current` (its text and mod
/// revision; `None`: no such key) under etcd key `k` if nobody changed it meanwhile; its
/// failure branch reads the list as it is then.
fn append_txn(
    k: &str,
    key: schism_history::Key,
    current: Option<&(String, u64)>,
    value: i64,
) -> Result<Json, String> {
    let (mut list, compare) = match current {
        None => (
            Vec::new(),
            json!({"target": "CREATE", "key": k, "result": "EQUAL", "create_revision": "0"}),
        ),
        Some((text, rev)) => match decode_value(text)? {
            Value::List(l) => (
                l.to_vec(),
                json!({"target": "MOD", "key": k, "result": "EQUAL", "mod_revision": rev.to_string()}),
            ),
            other => return Err(format!("key {key} holds {other}, not a list")),
        },
    };
    list.push(value);
    let text = serde_json::to_string(&list).unwrap_or_default();
    Ok(json!({
        "compare": [compare],
        "success": [{"request_put": {"key": k, "value": b64(&text)}}],
        "failure": [{"request_range": {"key": k}}],
    }))
}

fn b64(text: &str) -> String {
    B64.encode(text.as_bytes())
}

/// An int64 field of a gateway answer: a decimal string (or, defensively, a number);
/// absent means 0 (the gateway omits default values).
fn int_field(v: &Json, name: &str) -> u64 {
    match &v[name] {
        Json::String(s) => s.parse().unwrap_or(0),
        Json::Number(n) => n.as_u64().unwrap_or(0),
        _ => 0,
    }
}

fn str_field(v: &Json, name: &str) -> Option<String> {
    match &v[name] {
        Json::String(s) if !s.is_empty() && s != "0" => Some(s.clone()),
        Json::Number(n) if n.as_u64().is_some_and(|x| x != 0) => Some(n.to_string()),
        _ => None,
    }
}

/// The first kv of a range answer: (decoded value, mod_revision), or None when absent.
fn first_kv(range: &Json) -> Result<Option<(String, u64)>, String> {
    let Some(kv) = range["kvs"].as_array().and_then(|a| a.first()) else {
        return Ok(None);
    };
    let raw = kv["value"].as_str().unwrap_or("");
    let bytes = B64
        .decode(raw)
        .map_err(|e| format!("bad base64 value {raw:?}: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|e| format!("non-UTF-8 value: {e}"))?;
    Ok(Some((text, int_field(kv, "mod_revision"))))
}

/// A stored value as the history's value: a JSON list (appends) or an integer (registers).
fn decode_value(text: &str) -> Result<Value, String> {
    let t = text.trim();
    if t.starts_with('[') {
        serde_json::from_str::<Vec<i64>>(t)
            .map(Value::list)
            .map_err(|e| format!("stored value {t:?} is not a list of integers: {e}"))
    } else {
        t.parse::<i64>()
            .map(Value::Int)
            .map_err(|e| format!("stored value {t:?} is not an integer: {e}"))
    }
}

/// How a gateway request went wrong.
#[derive(Debug)]
enum HttpError {
    /// Nothing reached the server (connection refused, no route).
    NotSent(String),
    /// The request may have been applied: timeout, connection lost, 5xx.
    Indeterminate(String),
    /// The server refused it (4xx) or answered nonsense to a successful request.
    Refused(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::NotSent(e) | HttpError::Indeterminate(e) | HttpError::Refused(e) => {
                f.write_str(e)
            }
        }
    }
}

impl Shared {
    /// POSTs `body` to `/v3/<path>` on member `i`.
    async fn post(
        &self,
        i: usize,
        path: &str,
        body: &Json,
        timeout: Duration,
    ) -> Result<Json, HttpError> {
        let url = format!("{}/v3/{path}", self.urls[i]);
        let sent = self
            .http
            .post(&url)
            .timeout(timeout)
            .json(body)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) if e.is_connect() => return Err(HttpError::NotSent(error_text(&e))),
            Err(e) => return Err(HttpError::Indeterminate(error_text(&e))),
        };
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| HttpError::Indeterminate(error_text(&e)))?;
        let text = || String::from_utf8_lossy(&bytes).trim().to_owned();
        if status.is_client_error() {
            return Err(HttpError::Refused(format!("HTTP {status}: {}", text())));
        }
        if !status.is_success() {
            return Err(HttpError::Indeterminate(format!(
                "HTTP {status}: {}",
                text()
            )));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| HttpError::Indeterminate(format!("unreadable answer ({e}): {}", text())))
    }

    /// Member `i`'s status: (its raft id, the leader it knows or None, raft term).
    async fn status(
        &self,
        i: usize,
        timeout: Duration,
    ) -> Result<(String, Option<String>, u64), HttpError> {
        let st = self
            .post(i, "maintenance/status", &json!({}), timeout)
            .await?;
        let me = str_field(&st["header"], "member_id")
            .ok_or_else(|| HttpError::Refused(format!("status without member_id: {st}")))?;
        if let Ok(mut ids) = self.member_ids.lock() {
            ids[i] = Some(me.clone());
        }
        let term = int_field(&st, "raft_term").max(int_field(&st, "raftTerm"));
        Ok((me, str_field(&st, "leader"), term))
    }

    /// Asks every member who leads; a member that says it leads itself in the highest term
    /// wins, else the leader most recently named (highest term).
    async fn leader(&self) -> Option<usize> {
        let timeout = Duration::from_millis(STATUS_TIMEOUT_MS);
        let mut asks = Vec::with_capacity(self.urls.len());
        for i in 0..self.urls.len() {
            asks.push(self.status(i, timeout));
        }
        let answers = join_all(asks).await;
        let mut best_self: Option<(u64, String)> = None;
        let mut best_named: Option<(u64, String)> = None;
        for (me, leader, term) in answers.into_iter().flatten() {
            let Some(leader) = leader else { continue };
            if leader == me && best_self.as_ref().is_none_or(|(t, _)| term > *t) {
                best_self = Some((term, leader.clone()));
            }
            if best_named.as_ref().is_none_or(|(t, _)| term > *t) {
                best_named = Some((term, leader));
            }
        }
        let id = best_self.or(best_named)?.1;
        let ids = self.member_ids.lock().ok()?;
        ids.iter().position(|m| m.as_deref() == Some(id.as_str()))
    }
}

/// Replication lag from every member's `maintenance/status`: the member that says it
/// leads (highest term) is the source; each other member trails it by the leader's raft
/// index minus the member's applied index (raft entries).
struct EtcdLag {
    shared: Arc<Shared>,
}

/// (node index, its member id, the leader it names, raft term, raft index, applied index).
type MemberStatus = (usize, Option<String>, Option<String>, u64, u64, u64);

impl crate::lag::LagProbe for EtcdLag {
    fn sample(&mut self) -> BoxFuture<'_, Vec<crate::lag::LagReading>> {
        Box::pin(async move {
            let sh = &self.shared;
            let body = json!({});
            let asks = (0..sh.urls.len())
                .map(|i| sh.post(i, "maintenance/status", &body, crate::lag::PROBE_TIMEOUT))
                .collect();
            let answers: Vec<MemberStatus> = join_all(asks)
                .await
                .into_iter()
                .enumerate()
                .filter_map(|(i, r)| {
                    let st = r.ok()?;
                    let index = int_field(&st, "raftIndex").max(int_field(&st, "raft_index"));
                    let applied = int_field(&st, "raftAppliedIndex")
                        .max(int_field(&st, "raft_applied_index"));
                    Some((
                        i,
                        str_field(&st["header"], "member_id"),
                        str_field(&st, "leader"),
                        int_field(&st, "raftTerm").max(int_field(&st, "raft_term")),
                        index,
                        if applied > 0 { applied } else { index },
                    ))
                })
                .collect();
            let Some(lead) = answers
                .iter()
                .filter(|a| a.1.is_some() && a.1 == a.2)
                .max_by_key(|a| a.3)
            else {
                return Vec::new();
            };
            let (li, source) = (lead.0, lead.4);
            answers
                .iter()
                .filter(|a| a.0 != li)
                .map(|a| crate::lag::LagReading {
                    node: sh.nodes[a.0].clone(),
                    source: Some(sh.nodes[li].clone()),
                    position: Some(a.5),
                    source_position: Some(source),
                    behind: Some(source.saturating_sub(a.5)),
                    unit: "entries",
                    behind_ms: None,
                    lags_ms: Vec::new(),
                })
                .collect()
        })
    }

    fn method(&self) -> String {
        "every member's maintenance/status: the leader's raft index minus the member's applied index (raft entries)".into()
    }
}

/// Runs futures concurrently (no extra crate): each in its own task would need 'static.
async fn join_all<F: Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in pinned.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

impl DbCluster for EtcdCluster {
    fn kind(&self) -> crate::target::TargetKind {
        DbKind::Etcd.into()
    }

    fn node_ids(&self) -> Vec<NodeId> {
        self.members.iter().map(|m| m.id.clone()).collect()
    }

    fn describe(&self) -> String {
        let members = self
            .members
            .iter()
            .map(|m| match m.process.as_ref().and_then(ManagedProcess::pid) {
                Some(pid) => format!("{} {} (pid {pid})", m.id, m.url),
                None => format!("{} {}", m.id, m.url),
            })
            .collect::<Vec<_>>()
            .join(", ");
        let how = if self.managed {
            "provisioned"
        } else {
            "attached"
        };
        format!(
            "etcd {how}: {members}; keys under {}; reads {}",
            self.shared.prefix,
            match self.shared.options.etcd_reads {
                EtcdReads::Linearizable => "linearizable",
                EtcdReads::Serializable => "serializable",
            }
        )
    }

    fn managed(&self) -> bool {
        self.managed
    }

    fn pids(&self) -> Vec<u32> {
        self.members
            .iter()
            .filter_map(|m| m.process.as_ref().and_then(ManagedProcess::local_pid))
            .collect()
    }

    /// Members on hosts over SSH: member i runs on host i.
    fn remote_pids(&self) -> Vec<(usize, u32)> {
        self.members
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                let p = m.process.as_ref()?;
                p.local_pid().is_none().then_some((i, p.pid()?))
            })
            .collect()
    }

    /// SIGSTOP through the member's host (here or over SSH), settled.
    fn pause(&mut self, node: &str) -> Result<(), TargetError> {
        let i = self.index(node)?;
        match self.members[i].process.as_ref() {
            Some(p) => p.signal(nix::sys::signal::Signal::SIGSTOP),
            None => Err(self.unmanaged("pause")),
        }
    }

    fn resume(&mut self, node: &str) -> Result<(), TargetError> {
        let i = self.index(node)?;
        match self.members[i].process.as_ref() {
            Some(p) => p.signal(nix::sys::signal::Signal::SIGCONT),
            None => Err(self.unmanaged("resume")),
        }
    }

    fn pid(&self, node: &str) -> Option<u32> {
        let m = self.members.iter().find(|m| m.id == node)?;
        m.process.as_ref().and_then(ManagedProcess::pid)
    }

    fn is_running(&self, node: &str) -> bool {
        self.members
            .iter()
            .find(|m| m.id == node)
            .and_then(|m| m.process.as_ref())
            .is_some_and(ManagedProcess::is_running)
    }

    fn kill<'a>(&'a mut self, node: &'a str) -> BoxFuture<'a, Result<(), TargetError>> {
        Box::pin(async move {
            if !self.managed {
                return Err(self.unmanaged("kill"));
            }
            let i = self.index(node)?;
            match self.members[i].process.as_mut() {
                Some(p) => p.kill().await,
                None => Err(TargetError::NotRunning(node.to_owned())),
            }
        })
    }

    fn restart<'a>(&'a mut self, node: &'a str) -> BoxFuture<'a, Result<(), TargetError>> {
        Box::pin(async move {
            if !self.managed {
                return Err(self.unmanaged("restart"));
            }
            let i = self.index(node)?;
            let Some(p) = self.members[i].process.as_mut() else {
                return Err(TargetError::NotRunning(node.to_owned()));
            };
            // Same command, same data dir: etcd ignores `--initial-cluster-state new` once
            // its data dir exists, and rejoins.
            p.start()?;
            self.wait_restarted(i).await
        })
    }

    fn leader(&self) -> BoxFuture<'_, Option<NodeId>> {
        Box::pin(async move {
            let i = self.shared.leader().await?;
            Some(self.shared.nodes[i].clone())
        })
    }

    fn lag_probe(&self) -> Option<Box<dyn crate::lag::LagProbe>> {
        Some(Box::new(EtcdLag {
            shared: self.shared.clone(),
        }))
    }

    fn session(&self, seed: u64) -> Box<dyn DbSession> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let writer = rng.random_range(0..self.shared.urls.len().max(1));
        Box::new(EtcdSession {
            shared: self.shared.clone(),
            rng,
            writer,
            leader: None,
            leader_checked: None,
        })
    }

    fn stop(&mut self) -> BoxFuture<'_, Result<(), TargetError>> {
        Box::pin(async move {
            // Every member is stopped even if one fails; the first error is reported.
            let mut first = Ok(());
            for m in &mut self.members {
                if let Some(p) = m.process.as_mut() {
                    if let Err(e) = p.stop(Duration::from_millis(STOP_GRACE_MS)).await
                        && first.is_ok()
                    {
                        first = Err(e);
                    }
                    // A member on another host: its log comes into the run's folder.
                    p.fetch_log(&self.log_dir.join(format!("{}.log", m.id)));
                }
            }
            first
        })
    }
}

/// One worker's client: its write member, its seeded choice of read members, and the
/// leader as it last learned it.
#[derive(Debug)]
struct EtcdSession {
    shared: Arc<Shared>,
    rng: ChaCha8Rng,
    /// Member that takes this session's writes (etcd forwards them to the leader); moves
    /// on after a failure.
    writer: usize,
    leader: Option<usize>,
    leader_checked: Option<Instant>,
}

impl EtcdSession {
    fn key(&self, key: schism_history::Key) -> String {
        b64(&format!("{}{key}", self.shared.prefix))
    }

    fn node(&self, i: usize) -> String {
        self.shared.nodes[i].clone()
    }

    fn timeout(&self) -> Duration {
        self.shared.options.timeout
    }

    /// The leader, asking the members when unknown or older than `LEADER_REFRESH_MS`.
    async fn known_leader(&mut self) -> Option<usize> {
        let stale = self
            .leader_checked
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(LEADER_REFRESH_MS));
        if self.leader.is_none() || stale {
            self.leader = self.shared.leader().await;
            self.leader_checked = Some(Instant::now());
        }
        self.leader
    }

    /// The member a read goes to, per `--reads`.
    async fn read_member(&mut self) -> usize {
        let n = self.shared.urls.len();
        match self.shared.options.reads {
            ReadRouting::Leader => match self.known_leader().await {
                Some(l) => l,
                None => self.rng.random_range(0..n),
            },
            ReadRouting::Follower if n > 1 => {
                let leader = match self.known_leader().await {
                    Some(l) => l,
                    None => self.rng.random_range(0..n),
                };
                (leader + 1 + self.rng.random_range(0..n - 1)) % n
            }
            // Any (and the routings etcd has no notion of): a seeded random member.
            _ => self.rng.random_range(0..n),
        }
    }

    async fn read(&mut self, key: schism_history::Key) -> Reply {
        let i = self.read_member().await;
        let mut body = json!({"key": self.key(key)});
        if self.shared.options.etcd_reads == EtcdReads::Serializable {
            body["serializable"] = json!(true);
        }
        let got = self.shared.post(i, "kv/range", &body, self.timeout()).await;
        let node = self.node(i);
        match got {
            Ok(range) => match first_kv(&range).and_then(|kv| match kv {
                None => Ok(Value::Null),
                Some((text, _)) => decode_value(&text),
            }) {
                Ok(value) => Reply::Ok {
                    value,
                    node,
                    meta: Some(json!({"revision": int_field(&range["header"], "revision")})),
                    siblings: None,
                },
                Err(error) => Reply::Fail {
                    node: Some(node),
                    error,
                },
            },
            Err(e) => {
                // The leader may have moved: ask again before the next read.
                self.leader_checked = None;
                Reply::Fail {
                    node: Some(node),
                    error: e.to_string(),
                }
            }
        }
    }

    /// After a failed or indeterminate write, the next one goes to another member.
    fn move_writer(&mut self) {
        let n = self.shared.urls.len();
        if n > 1 {
            self.writer = (self.writer + 1 + self.rng.random_range(0..n - 1)) % n;
        }
    }

    async fn write(&mut self, key: schism_history::Key, value: i64) -> Reply {
        let i = self.writer;
        let body = json!({"key": self.key(key), "value": b64(&value.to_string())});
        let got = self.shared.post(i, "kv/put", &body, self.timeout()).await;
        let node = Some(self.node(i));
        match got {
            Ok(put) => Reply::Ok {
                value: Value::Null,
                node: self.node(i),
                meta: Some(json!({"revision": int_field(&put["header"], "revision")})),
                siblings: None,
            },
            Err(e) => self.write_failed(node, e),
        }
    }

    /// A write that got no answer: the next one goes to another member; the write did
    /// not happen unless the request may have reached the member.
    fn write_failed(&mut self, node: Option<NodeId>, e: HttpError) -> Reply {
        self.move_writer();
        match e {
            HttpError::NotSent(error) | HttpError::Refused(error) => Reply::Fail { node, error },
            HttpError::Indeterminate(error) => Reply::Unknown { node, error },
        }
    }

    /// Read the list, then put the longer list if nobody changed the key since (mod
    /// revision compare, or create revision 0 when absent); a lost race reads the new
    /// list from the txn's failure branch and tries again.
    async fn append(&mut self, key: schism_history::Key, value: i64) -> Reply {
        let i = self.writer;
        let node = Some(self.node(i));
        let deadline = Instant::now() + self.timeout() * APPEND_BUDGET_TIMEOUTS;
        let k = self.key(key);
        let fail = |error: String| Reply::Fail {
            node: node.clone(),
            error,
        };
        let got = self
            .shared
            .post(i, "kv/range", &json!({"key": k}), self.timeout())
            .await;
        let mut current = match got.map_err(|e| e.to_string()).and_then(|r| first_kv(&r)) {
            Ok(kv) => kv,
            Err(e) => {
                self.move_writer();
                return fail(format!("reading the list: {e}"));
            }
        };
        for attempt in 1..=APPEND_ATTEMPTS {
            let txn = match append_txn(&k, key, current.as_ref(), value) {
                Ok(txn) => txn,
                Err(e) => return fail(e),
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return fail(format!(
                    "gave up after {} lost compare race(s) within {} ms (nothing written)",
                    attempt - 1,
                    (self.timeout() * APPEND_BUDGET_TIMEOUTS).as_millis()
                ));
            }
            match self
                .shared
                .post(i, "kv/txn", &txn, left.min(self.timeout()))
                .await
            {
                Ok(resp) if resp["succeeded"].as_bool() == Some(true) => {
                    return Reply::Ok {
                        value: Value::Null,
                        node: self.node(i),
                        meta: Some(json!({
                            "revision": int_field(&resp["header"], "revision"),
                            "attempts": attempt,
                        })),
                        siblings: None,
                    };
                }
                Ok(resp) => {
                    // Lost the race: the failure branch carries the list as it is now.
                    let range = &resp["responses"][0]["response_range"];
                    match first_kv(range) {
                        Ok(kv) => current = kv,
                        Err(e) => return fail(e),
                    }
                }
                Err(e) => return self.write_failed(node.clone(), e),
            }
        }
        fail(format!(
            "lost {APPEND_ATTEMPTS} compare races in a row (nothing written)"
        ))
    }
}

/// A key's state as a transaction's snapshot read it: its value (`None`: absent) and the
/// mod revision the commit compares against.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    value: Option<Value>,
    mod_revision: u64,
}

/// The read-only etcd transaction that ranges over `keys` (etcd keys) at one revision;
/// `serializable` lets the contacted member answer from its own state.
fn snapshot_txn(keys: &[String], serializable: bool) -> Json {
    let ranges: Vec<Json> = keys
        .iter()
        .map(|k| {
            let mut r = json!({"key": k});
            if serializable {
                r["serializable"] = json!(true);
            }
            json!({ "request_range": r })
        })
        .collect();
    json!({"compare": [], "success": ranges, "failure": []})
}

/// Each key's `Seen` from a snapshot transaction's answer, in request order.
fn snapshot_of(resp: &Json, n: usize) -> Result<Vec<Seen>, String> {
    let answers = resp["responses"].as_array().map_or(&[][..], Vec::as_slice);
    if answers.len() != n {
        return Err(format!(
            "a snapshot of {n} keys answered {} ranges: {resp}",
            answers.len()
        ));
    }
    answers
        .iter()
        .map(|a| {
            Ok(match first_kv(&a["response_range"])? {
                None => Seen {
                    value: None,
                    mod_revision: 0,
                },
                Some((text, rev)) => Seen {
                    value: Some(decode_value(&text)?),
                    mod_revision: rev,
                },
            })
        })
        .collect()
}

/// Applies `mops` in order to the snapshot `state` (keyed like `keys`): reads take what
/// the transaction sees so far, appends extend the list, writes replace the register.
/// Returns the completed micro-ops and which keys were written.
fn apply_mops(
    mut mops: Vec<MicroOp>,
    keys: &[schism_history::Key],
    state: &mut [Option<Value>],
) -> Result<(Vec<MicroOp>, Vec<bool>), String> {
    let mut written = vec![false; keys.len()];
    for m in &mut mops {
        let Some(i) = keys.iter().position(|&k| k == m.key) else {
            continue;
        };
        match (m.f, &m.value) {
            (MopF::Read, _) => {
                m.value = match &state[i] {
                    None => MopValue::Nil,
                    Some(Value::List(xs)) => MopValue::List(xs.to_vec()),
                    Some(Value::Int(x)) => MopValue::Int(*x),
                    Some(other) => return Err(format!("key {} holds {other}", m.key)),
                };
            }
            (MopF::Append, MopValue::Int(v)) => {
                let mut list = match state[i].take() {
                    None => Vec::new(),
                    Some(Value::List(xs)) => xs.to_vec(),
                    Some(other) => return Err(format!("key {} holds {other}, not a list", m.key)),
                };
                list.push(*v);
                state[i] = Some(Value::list(list));
                written[i] = true;
            }
            (MopF::Write, MopValue::Int(v)) => {
                state[i] = Some(Value::Int(*v));
                written[i] = true;
            }
            _ => {}
        }
    }
    Ok((mops, written))
}

/// The commit: every key the transaction touched still at the mod revision its snapshot
/// saw (0 for a key that was absent: etcd compares a missing key as all zero), then one
/// put per written key; nothing on failure.
fn commit_txn(keys: &[String], seen: &[Seen], state: &[Option<Value>], written: &[bool]) -> Json {
    let compare: Vec<Json> = keys
        .iter()
        .zip(seen)
        .map(|(k, s)| {
            json!({"target": "MOD", "key": k, "result": "EQUAL", "mod_revision": s.mod_revision.to_string()})
        })
        .collect();
    let puts: Vec<Json> = keys
        .iter()
        .zip(state)
        .zip(written)
        .filter(|(_, w)| **w)
        .filter_map(|((k, v), _)| {
            let text = match v.as_ref()? {
                Value::List(xs) => serde_json::to_string(&xs[..]).ok()?,
                Value::Int(x) => x.to_string(),
                _ => return None,
            };
            Some(json!({"request_put": {"key": k, "value": b64(&text)}}))
        })
        .collect();
    json!({"compare": compare, "success": puts, "failure": []})
}

impl EtcdSession {
    /// One transaction, optimistically and without retries: a snapshot transaction ranges
    /// over every key it touches at one revision (on the read member for a read-only
    /// transaction, honouring `--etcd-reads`; on the write member otherwise), the
    /// micro-ops run against that snapshot, and — if it wrote — one `Txn` commits the
    /// puts only if every touched key's mod revision is still the one seen. A failed
    /// compare is `Fail` (nothing was written); a snapshot that failed is `Fail`; a commit
    /// whose answer never came (timeout, 5xx, lost connection) is `Unknown`.
    async fn txn(&mut self, mops: Vec<MicroOp>) -> TxnReply {
        let mut keys: Vec<schism_history::Key> = Vec::new();
        for m in &mops {
            if !keys.contains(&m.key) {
                keys.push(m.key);
            }
        }
        let etcd_keys: Vec<String> = keys.iter().map(|&k| self.key(k)).collect();
        let read_only = mops.iter().all(|m| m.f == MopF::Read);
        let (i, serializable) = if read_only {
            let i = self.read_member().await;
            (i, self.shared.options.etcd_reads == EtcdReads::Serializable)
        } else {
            (self.writer, false)
        };
        let node = self.node(i);
        let fail = |error: String| TxnReply::Fail {
            error: format!("{node}: {error}"),
        };
        let snap = self
            .shared
            .post(
                i,
                "kv/txn",
                &snapshot_txn(&etcd_keys, serializable),
                self.timeout(),
            )
            .await;
        let seen = match snap
            .map_err(|e| e.to_string())
            .and_then(|r| snapshot_of(&r, keys.len()))
        {
            Ok(seen) => seen,
            Err(e) => {
                self.leader_checked = None;
                if !read_only {
                    self.move_writer();
                }
                return fail(format!("snapshot read: {e}"));
            }
        };
        let mut state: Vec<Option<Value>> = seen.iter().map(|s| s.value.clone()).collect();
        let (mops, written) = match apply_mops(mops, &keys, &mut state) {
            Ok(x) => x,
            Err(e) => return fail(e),
        };
        if read_only {
            return TxnReply::Ok(mops);
        }
        let commit = commit_txn(&etcd_keys, &seen, &state, &written);
        match self.shared.post(i, "kv/txn", &commit, self.timeout()).await {
            Ok(resp) if resp["succeeded"].as_bool() == Some(true) => TxnReply::Ok(mops),
            Ok(_) => fail(
                "a key changed since the snapshot read it (compare failed; nothing written)".into(),
            ),
            Err(e) => {
                self.move_writer();
                match e {
                    HttpError::NotSent(error) | HttpError::Refused(error) => fail(error),
                    HttpError::Indeterminate(error) => TxnReply::Unknown {
                        error: format!("{node}: {error}"),
                    },
                }
            }
        }
    }
}

impl DbSession for EtcdSession {
    fn txn(&mut self, mops: Vec<MicroOp>) -> BoxFuture<'_, TxnReply> {
        Box::pin(EtcdSession::txn(self, mops))
    }

    fn invoke(&mut self, req: Request) -> BoxFuture<'_, Reply> {
        Box::pin(async move {
            match req {
                Request::Read { key } => self.read(key).await,
                Request::Write { key, value } => self.write(key, value).await,
                Request::Append { key, value } => self.append(key, value).await,
                other => Reply::Fail {
                    node: None,
                    error: format!("the etcd adapter does not support {}", other.f()),
                },
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_values_decode_as_lists_or_integers() {
        assert_eq!(decode_value("[1,2,3]").unwrap(), Value::list(vec![1, 2, 3]));
        assert_eq!(decode_value("[]").unwrap(), Value::list(vec![]));
        assert_eq!(decode_value("-7").unwrap(), Value::Int(-7));
        assert!(decode_value("x").is_err());
    }

    #[test]
    fn gateway_answers_with_omitted_defaults_and_string_ints() {
        // An empty range has neither kvs nor count.
        let empty: Json = serde_json::from_str(r#"{"header":{"revision":"5"}}"#).unwrap();
        assert_eq!(first_kv(&empty).unwrap(), None);
        assert_eq!(int_field(&empty["header"], "revision"), 5);
        let one = json!({"kvs": [{"key": b64("k"), "value": b64("[4]"), "mod_revision": "9"}]});
        assert_eq!(first_kv(&one).unwrap(), Some(("[4]".to_owned(), 9)));
        // A leader of "0" (or none) means no leader known.
        assert_eq!(str_field(&json!({"leader": "0"}), "leader"), None);
        assert_eq!(
            str_field(&json!({"leader": "123"}), "leader").as_deref(),
            Some("123")
        );
    }

    #[test]
    fn endpoints_become_urls() {
        assert_eq!(endpoint_url("127.0.0.1:2379"), "http://127.0.0.1:2379");
        assert_eq!(endpoint_url("http://h:1/"), "http://h:1");
    }
}
