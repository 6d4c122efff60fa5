//! The process shell of a reference node: HTTP on loopback, a log file, timers, signals.
//!
//! `run_node` owns one OS process. A single actor task owns the state machine and the log
//! file; HTTP handlers and timers only send it commands. The actor drains every queued
//! command, feeds them to the machine, writes all entries those inputs produced with one
//! write(2) (plus fdatasync under `Durability::Fsync`), and only then sends replies and
//! peer messages, so no client or follower ever hears of an entry that is not in the log
//! (group commit: the busier the node, the bigger each write). Peer messages go out on one
//! sender task per peer. The node exits cleanly on SIGTERM/SIGINT and by itself when its
//! parent process dies (checked every 200 ms), so a SIGKILLed runner leaves no orphans.
//!
//! HTTP API (JSON): `POST /kv` `{"f":"append","key":7,"value":42}` →
//! `{"ok":true,"node":"n1","lsn":12}` / `{"ok":true,"node":"n2","value":[1,42],"applied":11}` /
//! `{"ok":false,"node":"n2","error":"not leader; leader is n1","leader":"n1"}`;
//! `GET /status` → `Status` (with the clock offset); `POST /replicate` (internal) takes a
//! `PeerMessage`. Every `/kv` answer carries `time_ms`, the node's own (skewable) clock.
//!
//! Admin API, on the same listener (loopback, or the node's address inside a network
//! namespace the run created): `POST /admin/clock {"offset_ms":-250,"rate":1.0}` sets the
//! injected clock (`SkewClock`) that every timestamp and the state machine's `now` come
//! from; `POST /admin/links {"cut":["n2"],"one_way":false}` drops replication traffic to and
//! from those peers (`one_way`: only what comes from them) — a cooperative partition for
//! runs without root; `GET /admin/dump` returns the status and every key's value.

use super::clock::SkewClock;
use super::leader_follower::{
    ClientReply, ClockStatus, Input, LeaderFollower, MachineConfig, Meta, Output, PeerMessage,
    ReadOpts, Status,
};
use super::storage::{self, LogFile};
use super::{Durability, Failover, Model, NodeId, Replication, Topology};
use crate::error::TargetError;
use crate::request::Request;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use schism_history::Value;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Everything a node process needs; the runner writes it as JSON and passes `--config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeConfig {
    pub id: NodeId,
    pub listen: SocketAddr,
    /// Every node, including this one.
    pub peers: BTreeMap<NodeId, SocketAddr>,
    pub leader: NodeId,
    pub data_dir: PathBuf,
    #[serde(default)]
    pub model: Model,
    #[serde(default)]
    pub replication: Replication,
    #[serde(default)]
    pub durability: Durability,
    #[serde(default)]
    pub failover: Failover,
    #[serde(default = "defaults::yes")]
    pub fencing: bool,
    #[serde(default)]
    pub read_lease: bool,
    #[serde(default)]
    pub topology: Topology,
    /// Shortest election timeout (node i waits 1 + i/4 times this).
    #[serde(default = "defaults::election_timeout_ms")]
    pub election_timeout_ms: u64,
    /// Check-quorum: a leader that heard no majority this long steps down (fencing on).
    #[serde(default = "defaults::check_quorum_ms")]
    pub check_quorum_ms: u64,
    /// Read lease length (below the election timeout).
    #[serde(default = "defaults::lease_ms")]
    pub lease_ms: u64,
    /// How long a read waits for its `min_lsn` before failing with a redirect.
    #[serde(default = "defaults::read_wait_ms")]
    pub read_wait_ms: u64,
    /// Buffered durability: how often the in-memory log buffer is written to the file.
    #[serde(default = "defaults::flush_ms")]
    pub flush_ms: u64,
    #[serde(default = "defaults::worker_threads")]
    pub worker_threads: usize,
    #[serde(default = "defaults::batch_max_entries")]
    pub batch_max_entries: usize,
    #[serde(default = "defaults::tick_ms")]
    pub tick_ms: u64,
    #[serde(default = "defaults::resend_after_ms")]
    pub resend_after_ms: u64,
    /// Leader-follower: ship new entries to a follower at most this often (0: at once).
    #[serde(default)]
    pub ship_interval_ms: u64,
    #[serde(default = "defaults::heartbeat_ms")]
    pub heartbeat_ms: u64,
    /// Timeout of one node-to-node HTTP request.
    #[serde(default = "defaults::peer_timeout_ms")]
    pub peer_timeout_ms: u64,
    /// Multi-leader and leaderless settings (ignored by leader-follower).
    #[serde(default)]
    pub replica: super::replica::ReplicaSettings,
    /// Exit when the parent process dies (off only for hand-started nodes).
    #[serde(default = "defaults::yes")]
    pub exit_with_parent: bool,
}

mod defaults {
    pub fn worker_threads() -> usize {
        2
    }
    pub fn batch_max_entries() -> usize {
        4096
    }
    pub fn tick_ms() -> u64 {
        20
    }
    pub fn resend_after_ms() -> u64 {
        250
    }
    pub fn heartbeat_ms() -> u64 {
        100
    }
    pub fn peer_timeout_ms() -> u64 {
        1000
    }
    pub fn election_timeout_ms() -> u64 {
        1000
    }
    /// Twice the election timeout plus a margin (Raft implementations check their quorum
    /// once per election period or two): an isolated leader is replaced before it notices.
    pub fn check_quorum_ms() -> u64 {
        2500
    }
    pub fn lease_ms() -> u64 {
        500
    }
    pub fn read_wait_ms() -> u64 {
        200
    }
    pub fn flush_ms() -> u64 {
        50
    }
    pub fn yes() -> bool {
        true
    }
}

impl NodeConfig {
    /// A config with every knob at its default.
    pub fn new(
        id: &str,
        peers: BTreeMap<NodeId, SocketAddr>,
        leader: &str,
        data_dir: PathBuf,
    ) -> Result<NodeConfig, TargetError> {
        let listen = *peers
            .get(id)
            .ok_or_else(|| TargetError::Invalid(format!("node {id} is not among the peers")))?;
        Ok(NodeConfig {
            id: id.to_owned(),
            listen,
            peers,
            leader: leader.to_owned(),
            data_dir,
            model: Model::default(),
            replication: Replication::default(),
            durability: Durability::default(),
            failover: Failover::default(),
            fencing: true,
            read_lease: false,
            topology: Topology::default(),
            election_timeout_ms: defaults::election_timeout_ms(),
            check_quorum_ms: defaults::check_quorum_ms(),
            lease_ms: defaults::lease_ms(),
            read_wait_ms: defaults::read_wait_ms(),
            flush_ms: defaults::flush_ms(),
            worker_threads: defaults::worker_threads(),
            batch_max_entries: defaults::batch_max_entries(),
            tick_ms: defaults::tick_ms(),
            resend_after_ms: defaults::resend_after_ms(),
            ship_interval_ms: 0,
            heartbeat_ms: defaults::heartbeat_ms(),
            peer_timeout_ms: defaults::peer_timeout_ms(),
            replica: Default::default(),
            exit_with_parent: true,
        })
    }

    pub fn from_file(path: &Path) -> Result<NodeConfig, TargetError> {
        let text = std::fs::read(path).map_err(|source| TargetError::Io {
            path: path.to_owned(),
            source,
        })?;
        let cfg: NodeConfig = serde_json::from_slice(&text).map_err(|e| TargetError::Config {
            path: path.to_owned(),
            msg: e.to_string(),
        })?;
        cfg.validate().map_err(|e| TargetError::Config {
            path: path.to_owned(),
            msg: e.to_string(),
        })?;
        Ok(cfg)
    }

    pub fn write_file(&self, path: &Path) -> Result<(), TargetError> {
        let text =
            serde_json::to_vec_pretty(self).map_err(|e| TargetError::Invalid(e.to_string()))?;
        std::fs::write(path, text).map_err(|source| TargetError::DataDir {
            path: path.to_owned(),
            source,
        })
    }

    pub fn validate(&self) -> Result<(), TargetError> {
        let bad = |msg: String| Err(TargetError::Invalid(msg));
        if !self.peers.contains_key(&self.id) {
            return bad(format!("node {} is not among the peers", self.id));
        }
        if !self.peers.contains_key(&self.leader) {
            return bad(format!("leader {} is not among the peers", self.leader));
        }
        if self.batch_max_entries == 0 || self.worker_threads == 0 || self.tick_ms == 0 {
            return bad("batch_max_entries, worker_threads and tick_ms must be at least 1".into());
        }
        if let Err(e) = self.replication.validate(self.peers.len()) {
            return bad(e);
        }
        if self.read_lease && self.lease_ms >= self.election_timeout_ms {
            return bad(format!(
                "lease_ms {} must be below election_timeout_ms {} (else two leaders could both hold a lease)",
                self.lease_ms, self.election_timeout_ms
            ));
        }
        Ok(())
    }

    fn machine_config(&self) -> MachineConfig {
        MachineConfig {
            id: self.id.clone(),
            nodes: self.peers.keys().cloned().collect(),
            leader: self.leader.clone(),
            replication: self.replication,
            failover: self.failover,
            fencing: self.fencing,
            read_lease: self.read_lease,
            topology: self.topology,
            batch_max_entries: self.batch_max_entries,
            resend_after_ns: self.resend_after_ms * 1_000_000,
            ship_interval_ns: self.ship_interval_ms * 1_000_000,
            heartbeat_ns: self.heartbeat_ms * 1_000_000,
            election_timeout_ns: self.election_timeout_ms * 1_000_000,
            check_quorum_ns: self.check_quorum_ms * 1_000_000,
            lease_ns: self.lease_ms * 1_000_000,
            read_wait_ns: self.read_wait_ms * 1_000_000,
        }
    }
}

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

/// `POST /admin/clock`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClockRequest {
    /// Skewed minus real time from now on.
    pub offset_ms: f64,
    /// Skewed seconds per real second.
    #[serde(default = "one")]
    pub rate: f64,
}

fn one() -> f64 {
    1.0
}

/// `POST /admin/links`: the peers whose replication traffic this node drops.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinksRequest {
    pub cut: Vec<NodeId>,
    /// Drop only what comes from `cut` (this node cannot hear them; they can hear it).
    #[serde(default)]
    pub one_way: bool,
}

/// `GET /admin/dump`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dump {
    pub status: Status,
    /// Every key's value here (JSON object keys are the key numbers).
    pub state: BTreeMap<schism_history::Key, Value>,
    pub drop_from: BTreeSet<NodeId>,
    pub drop_to: BTreeSet<NodeId>,
    /// Keys holding concurrent versions (multi-leader, leaderless).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub siblings: BTreeMap<schism_history::Key, Vec<Value>>,
    /// Leaderless: the replicas each key belongs on (a convergence check compares only those).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub owners: BTreeMap<schism_history::Key, Vec<NodeId>>,
    /// Model-specific facts (pending hints, unacknowledged keys, …).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub extra: serde_json::Value,
}

/// Which peers' replication traffic is dropped (cooperative link cuts).
#[derive(Debug, Default)]
pub(super) struct Links {
    pub(super) drop_from: BTreeSet<NodeId>,
    pub(super) drop_to: BTreeSet<NodeId>,
}

/// The node's time source: real time (monotonic, anchored at the Unix time of start)
/// through the injected `SkewClock`.
#[derive(Debug)]
pub(super) struct NodeClock {
    start: Instant,
    start_unix_ns: i128,
    skew: Mutex<SkewClock>,
}

impl NodeClock {
    pub(super) fn new() -> NodeClock {
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        NodeClock {
            start: Instant::now(),
            start_unix_ns: unix,
            skew: Mutex::new(SkewClock::default()),
        }
    }

    fn real_ns(&self) -> i128 {
        self.start_unix_ns + self.start.elapsed().as_nanos() as i128
    }

    fn skew(&self) -> std::sync::MutexGuard<'_, SkewClock> {
        self.skew.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The node's clock, Unix milliseconds.
    pub(super) fn now_ms(&self) -> i64 {
        (self.skew().now_ns(self.real_ns()) / 1_000_000) as i64
    }

    /// The node's clock, Unix nanoseconds (what multi-leader and leaderless machines read).
    pub(super) fn unix_ns(&self) -> u64 {
        u64::try_from(self.skew().now_ns(self.real_ns())).unwrap_or(0)
    }

    /// The state machine's `now`: skewed time since start, never decreasing.
    fn machine_ns(&self) -> u64 {
        let real = self.real_ns();
        self.skew().machine_ns(real, self.start_unix_ns)
    }

    pub(super) fn status(&self) -> ClockStatus {
        let real = self.real_ns();
        let skew = self.skew();
        ClockStatus {
            offset_ms: skew.offset_ns(real) as f64 / 1e6,
            rate: skew.rate(),
        }
    }

    pub(super) fn set(&self, req: ClockRequest) -> Result<(), String> {
        if !req.offset_ms.is_finite() || req.offset_ms.abs() > 1e12 {
            return Err(format!("offset_ms {} is out of range", req.offset_ms));
        }
        let real = self.real_ns();
        self.skew()
            .set(real, (req.offset_ms * 1e6) as i128, req.rate)
    }
}

/// Runs a node until SIGTERM, SIGINT or its parent's death. Blocking; builds its own runtime.
pub fn run_node(config: NodeConfig) -> Result<(), TargetError> {
    config.validate()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.worker_threads)
        .enable_all()
        .build()
        .map_err(TargetError::Runtime)?;
    let result = match config.model {
        Model::LeaderFollower => rt.block_on(serve(config)),
        Model::MultiLeader | Model::Leaderless => rt.block_on(super::replica_node::serve(config)),
    };
    rt.shutdown_timeout(Duration::from_millis(500));
    result
}

/// Prefixes every stderr line with the node and the seconds since it started.
#[derive(Debug, Clone)]
pub(super) struct Logger {
    pub(super) id: NodeId,
    pub(super) start: Instant,
}

impl Logger {
    pub(super) fn line(&self, msg: std::fmt::Arguments<'_>) {
        eprintln!(
            "[{:>9.3}s {}] {msg}",
            self.start.elapsed().as_secs_f64(),
            self.id
        );
    }
}

enum Cmd {
    Client {
        op: Request,
        opts: ReadOpts,
        tx: oneshot::Sender<ClientReply>,
    },
    Peer(PeerMessage),
    Status(oneshot::Sender<Status>),
    Dump(oneshot::Sender<(Status, BTreeMap<schism_history::Key, Value>)>),
}

#[derive(Clone)]
struct Shared {
    cmd: mpsc::Sender<Cmd>,
    node: NodeId,
    clock: Arc<NodeClock>,
    links: Arc<RwLock<Links>>,
    logger: Logger,
}

async fn serve(config: NodeConfig) -> Result<(), TargetError> {
    let start = Instant::now();
    let logger = Logger {
        id: config.id.clone(),
        start,
    };
    let parent = nix::unistd::getppid();
    logger.line(format_args!(
        "starting: pid {}, {} on {}, leader {}, replication {}, durability {}, failover {}, fencing {}, read lease {}, topology {}, data {}",
        std::process::id(),
        config.model,
        config.listen,
        config.leader,
        config.replication,
        config.durability,
        config.failover,
        if config.fencing { "on" } else { "off" },
        if config.read_lease { "on" } else { "off" },
        config.topology,
        config.data_dir.display()
    ));
    let (log, recovered) = LogFile::open(&config.data_dir, config.durability)?;
    if let Some((bytes, why)) = &recovered.truncated {
        logger.line(format_args!("log: cut {bytes} bytes from the end ({why})"));
    }
    logger.line(format_args!(
        "log: recovered {} entries from {}",
        recovered.entries.len(),
        log.path().display()
    ));
    let meta = storage::read_meta(&config.data_dir)?;
    if let Some(m) = &meta {
        logger.line(format_args!(
            "meta: epoch {}, voted for {:?}",
            m.epoch, m.voted_for
        ));
    }
    let machine = LeaderFollower::recover(config.machine_config(), recovered.entries, meta);

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| {
            if source.kind() == std::io::ErrorKind::AddrInUse {
                TargetError::PortInUse {
                    addr: config.listen,
                    node: config.id.clone(),
                }
            } else {
                TargetError::Bind {
                    addr: config.listen,
                    node: config.id.clone(),
                    source,
                }
            }
        })?;

    let clock = Arc::new(NodeClock::new());
    let links = Arc::new(RwLock::new(Links::default()));
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(config.peer_timeout_ms))
        .connect_timeout(Duration::from_millis(config.peer_timeout_ms.min(250)))
        .tcp_nodelay(true)
        .build()
        .map_err(|e| TargetError::Client(e.to_string()))?;
    let mut peers = HashMap::new();
    for (id, addr) in &config.peers {
        if *id == config.id {
            continue;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        peers.insert(id.clone(), tx);
        let url = format!("http://{addr}/replicate");
        tokio::spawn(peer_sender(
            logger.clone(),
            id.clone(),
            url,
            http.clone(),
            rx,
            links.clone(),
        ));
    }

    let (cmd_tx, cmd_rx) = mpsc::channel(16_384);
    let actor = tokio::spawn(actor(
        machine,
        Disk {
            log,
            dir: config.data_dir.clone(),
            flush_every: (config.durability == Durability::Buffered)
                .then(|| Duration::from_millis(config.flush_ms.max(1))),
        },
        cmd_rx,
        peers,
        clock.clone(),
        Duration::from_millis(config.tick_ms),
        logger.clone(),
    ));
    let app = Router::new()
        .route("/kv", post(kv))
        .route("/replicate", post(replicate))
        .route("/status", get(status))
        .route("/admin/clock", post(admin_clock))
        .route("/admin/links", post(admin_links))
        .route("/admin/dump", get(admin_dump))
        .with_state(Shared {
            cmd: cmd_tx,
            node: config.id.clone(),
            clock,
            links,
            logger: logger.clone(),
        });
    serve_until_exit(listener, app, actor, &config, parent, &logger).await
}

/// Serves `app` until the process should end, and owns the lifecycle every reference
/// node shares: SIGTERM/SIGINT end it cleanly, and so does the parent (the runner)
/// disappearing — checked by polling `getppid()` every 200 ms, because PR_SET_PDEATHSIG
/// would fire when the spawning *thread* exits — so a SIGKILLed runner leaves no orphan.
/// A failed HTTP server or state-machine task ends it with that error.
pub(super) async fn serve_until_exit(
    listener: tokio::net::TcpListener,
    app: Router,
    actor: tokio::task::JoinHandle<Result<(), TargetError>>,
    config: &NodeConfig,
    parent: nix::unistd::Pid,
    logger: &Logger,
) -> Result<(), TargetError> {
    let listener = listener.tap_io(|tcp| {
        // Request/response traffic: Nagle would hold back small replies.
        let _ = tcp.set_nodelay(true);
    });
    let server = axum::serve(listener, app).into_future();
    let signal = |kind| {
        tokio::signal::unix::signal(kind).map_err(|e| TargetError::Node {
            node: config.id.clone(),
            msg: format!("cannot install signal handler: {e}"),
        })
    };
    let mut sigterm = signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut sigint = signal(tokio::signal::unix::SignalKind::interrupt())?;
    let watch_parent = config.exit_with_parent;
    let orphaned = async move {
        if !watch_parent {
            return std::future::pending().await;
        }
        let mut every = tokio::time::interval(Duration::from_millis(200));
        loop {
            every.tick().await;
            if nix::unistd::getppid() != parent {
                return;
            }
        }
    };
    logger.line(format_args!("listening on http://{}", config.listen));
    let node = config.id.clone();
    tokio::select! {
        r = server => r.map_err(|e| TargetError::Node { node, msg: format!("HTTP server failed: {e}") }),
        r = actor => match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                logger.line(format_args!("fatal: {e}"));
                Err(e)
            }
            Err(e) => Err(TargetError::Node { node, msg: format!("state machine task failed: {e}") }),
        },
        _ = sigterm.recv() => {
            logger.line(format_args!("SIGTERM: exiting"));
            Ok(())
        }
        _ = sigint.recv() => {
            logger.line(format_args!("SIGINT: exiting"));
            Ok(())
        }
        () = orphaned => {
            logger.line(format_args!("parent process {parent} is gone: exiting"));
            Ok(())
        }
    }
}

/// The node's persistent state as the actor owns it.
struct Disk {
    log: LogFile,
    dir: PathBuf,
    /// Buffered durability: write the log buffer out this often.
    flush_every: Option<Duration>,
}

/// The one owner of the state machine and the log. Returns only on a log write failure
/// (a node that cannot persist must stop acknowledging) or when every sender is gone.
#[allow(clippy::too_many_arguments)]
async fn actor(
    mut machine: LeaderFollower,
    mut disk: Disk,
    mut rx: mpsc::Receiver<Cmd>,
    peers: HashMap<NodeId, mpsc::UnboundedSender<PeerMessage>>,
    clock: Arc<NodeClock>,
    tick: Duration,
    logger: Logger,
) -> Result<(), TargetError> {
    let mut cmds = Vec::with_capacity(512);
    let mut out: Vec<Output> = Vec::with_capacity(1024);
    let mut to_persist = Vec::with_capacity(1024);
    let mut waiting: HashMap<u64, oneshot::Sender<ClientReply>> = HashMap::new();
    let mut next_req = 0u64;
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut flusher = tokio::time::interval(disk.flush_every.unwrap_or(Duration::from_secs(3600)));
    flusher.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            n = rx.recv_many(&mut cmds, 512) => {
                if n == 0 {
                    return Ok(());
                }
                let now_ns = clock.machine_ns();
                for cmd in cmds.drain(..) {
                    match cmd {
                        Cmd::Client { op, opts, tx } => {
                            next_req += 1;
                            waiting.insert(next_req, tx);
                            machine.handle(now_ns, Input::ClientWith { req: next_req, op, opts }, &mut out);
                        }
                        Cmd::Peer(msg) => machine.handle(now_ns, Input::Peer(msg), &mut out),
                        Cmd::Status(tx) => {
                            let _ = tx.send(machine.status_at(now_ns));
                        }
                        Cmd::Dump(tx) => {
                            let _ = tx.send((machine.status_at(now_ns), machine.dump()));
                        }
                    }
                }
            }
            _ = ticker.tick() => {
                machine.handle(clock.machine_ns(), Input::Tick, &mut out);
            }
            _ = flusher.tick(), if disk.flush_every.is_some() => {
                disk.log.flush()?;
            }
        }
        for e in machine.take_events() {
            logger.line(format_args!("{e}"));
        }
        // Disk first, in order; persisting earlier than asked is always safe, so
        // consecutive appends go out in one write.
        for o in &out {
            match o {
                Output::Persist(entries) => to_persist.extend_from_slice(entries),
                Output::Truncate { keep } => {
                    if !to_persist.is_empty() {
                        disk.log.append(&to_persist)?;
                        to_persist.clear();
                    }
                    disk.log.truncate(*keep)?;
                }
                Output::PersistMeta { epoch, voted_for } => {
                    storage::write_meta(
                        &disk.dir,
                        &Meta {
                            epoch: *epoch,
                            voted_for: voted_for.clone(),
                        },
                    )?;
                }
                Output::Reply { .. } | Output::Send { .. } => {}
            }
        }
        if !to_persist.is_empty() {
            disk.log.append(&to_persist)?;
            to_persist.clear();
        }
        for o in out.drain(..) {
            match o {
                Output::Persist(_) | Output::Truncate { .. } | Output::PersistMeta { .. } => {}
                Output::Reply { req, reply } => {
                    if let Some(tx) = waiting.remove(&req) {
                        // The client may have given up; its loss.
                        let _ = tx.send(reply);
                    }
                }
                Output::Send { to, msg } => {
                    if let Some(tx) = peers.get(&to) {
                        let _ = tx.send(msg);
                    }
                }
            }
        }
    }
}

/// Delivers messages to one peer in order. A failed delivery is dropped: the protocol
/// resends what matters. Failures are logged when a link goes down and when it comes back.
async fn peer_sender(
    logger: Logger,
    peer: NodeId,
    url: String,
    http: reqwest::Client,
    mut rx: mpsc::UnboundedReceiver<PeerMessage>,
    links: Arc<RwLock<Links>>,
) {
    let mut link = Link {
        logger,
        peer,
        url,
        http,
        down_since: None,
        failures: 0,
    };
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, 1024).await > 0 {
        // While a peer is slow or paused, resends pile up here; only the newest counts.
        coalesce(&mut batch);
        for msg in batch.drain(..) {
            let cut = links
                .read()
                .map(|l| l.drop_to.contains(&link.peer))
                .unwrap_or(false);
            if cut {
                // A cooperative partition: the message is lost, as a dropped packet would be.
                continue;
            }
            link.send(&msg).await;
        }
    }
}

/// Drops every message that a later message in `batch` makes useless: in leader-follower,
/// the leader only accepts the ack of its newest `Append`, and a newer `Append` starts no
/// later than an older one, so of each kind only the last one matters — unless the epoch
/// changed in between (an older-epoch message is then kept; it may matter to fencing).
/// Votes are always kept.
fn coalesce(batch: &mut Vec<PeerMessage>) {
    let last_append = batch
        .iter()
        .rposition(|m| matches!(m, PeerMessage::Append { .. }));
    let last_ack = batch
        .iter()
        .rposition(|m| matches!(m, PeerMessage::Ack { .. }));
    let epoch_of = |i: Option<usize>, b: &[PeerMessage]| match i.map(|i| &b[i]) {
        Some(PeerMessage::Append { epoch, .. } | PeerMessage::Ack { epoch, .. }) => *epoch,
        _ => 0,
    };
    let (append_epoch, ack_epoch) = (epoch_of(last_append, batch), epoch_of(last_ack, batch));
    let mut i = 0;
    batch.retain(|m| {
        let keep = match m {
            PeerMessage::Append { epoch, .. } => Some(i) == last_append || *epoch != append_epoch,
            PeerMessage::Ack { epoch, .. } => Some(i) == last_ack || *epoch != ack_epoch,
            PeerMessage::Vote { .. } | PeerMessage::VoteReply { .. } => true,
        };
        i += 1;
        keep
    });
}

/// The sending side of one node-to-node link.
struct Link {
    logger: Logger,
    peer: NodeId,
    url: String,
    http: reqwest::Client,
    down_since: Option<Instant>,
    failures: u64,
}

impl Link {
    async fn send(&mut self, msg: &PeerMessage) {
        let body = match serde_json::to_vec(msg) {
            Ok(b) => b,
            Err(e) => {
                self.logger.line(format_args!(
                    "cannot encode a message to {}: {e}",
                    self.peer
                ));
                return;
            }
        };
        let result = self
            .http
            .post(&self.url)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .and_then(|r| r.error_for_status());
        match result {
            Ok(_) => {
                if let Some(since) = self.down_since.take() {
                    self.logger.line(format_args!(
                        "link to {} is back after {:.1}s ({} messages lost)",
                        self.peer,
                        since.elapsed().as_secs_f64(),
                        self.failures
                    ));
                    self.failures = 0;
                }
            }
            Err(e) => {
                self.failures += 1;
                if self.down_since.is_none() {
                    self.down_since = Some(Instant::now());
                    self.logger.line(format_args!(
                        "link to {} is down: {}",
                        self.peer,
                        crate::api::error_text(&e)
                    ));
                }
            }
        }
    }
}

pub(super) fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

pub(super) fn error_response(status: StatusCode, node: &str, error: String) -> Response {
    let reply = KvReply {
        ok: false,
        node: node.to_owned(),
        value: Value::Null,
        lsn: None,
        applied: None,
        error: Some(error),
        leader: None,
        unknown: false,
        time_ms: None,
        siblings: None,
    };
    json_response(status, serde_json::to_vec(&reply).unwrap_or_default())
}

async fn kv(State(s): State<Shared>, body: Bytes) -> Response {
    let op: Request = match serde_json::from_slice(&body) {
        Ok(op) => op,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                &s.node,
                format!("bad request: {e}"),
            );
        }
    };
    // Read conditions ride in the same object: {"f":"read","key":1,"min_lsn":9,"leader_only":true}.
    let opts = serde_json::from_slice::<KvOpts>(&body).unwrap_or_default();
    let opts = ReadOpts {
        min_lsn: opts.min_lsn,
        leader_only: opts.leader_only,
    };
    let (tx, rx) = oneshot::channel();
    if s.cmd.send(Cmd::Client { op, opts, tx }).await.is_err() {
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &s.node,
            "node is shutting down".into(),
        );
    }
    let Ok(reply) = rx.await else {
        return error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &s.node,
            "request dropped".into(),
        );
    };
    let reply = match reply {
        ClientReply::Ok {
            value,
            lsn,
            applied_lsn,
        } => KvReply {
            ok: true,
            node: s.node,
            value,
            applied: lsn.is_none().then_some(applied_lsn),
            lsn,
            error: None,
            leader: None,
            unknown: false,
            time_ms: Some(s.clock.now_ms()),
            siblings: None,
        },
        ClientReply::Fail { error, leader } => KvReply {
            ok: false,
            node: s.node,
            value: Value::Null,
            lsn: None,
            applied: None,
            error: Some(error),
            leader,
            unknown: false,
            time_ms: Some(s.clock.now_ms()),
            siblings: None,
        },
        ClientReply::Unknown { error } => KvReply {
            ok: false,
            node: s.node,
            value: Value::Null,
            lsn: None,
            applied: None,
            error: Some(error),
            leader: None,
            unknown: true,
            time_ms: Some(s.clock.now_ms()),
            siblings: None,
        },
    };
    json_response(
        StatusCode::OK,
        serde_json::to_vec(&reply).unwrap_or_default(),
    )
}

async fn replicate(State(s): State<Shared>, body: Bytes) -> Response {
    match serde_json::from_slice::<PeerMessage>(&body) {
        Ok(msg) => {
            let from = msg.from();
            let cut = s
                .links
                .read()
                .map(|l| l.drop_from.contains(from))
                .unwrap_or(false);
            if cut {
                // A cooperative partition: the message is dropped on arrival.
                return StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
            match s.cmd.send(Cmd::Peer(msg)).await {
                Ok(()) => StatusCode::NO_CONTENT.into_response(),
                Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
            }
        }
        Err(e) => error_response(
            StatusCode::BAD_REQUEST,
            &s.node,
            format!("bad replication message: {e}"),
        ),
    }
}

async fn status(State(s): State<Shared>) -> Response {
    let (tx, rx) = oneshot::channel();
    if s.cmd.send(Cmd::Status(tx)).await.is_err() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    match rx.await {
        Ok(mut st) => {
            st.clock = s.clock.status();
            json_response(StatusCode::OK, serde_json::to_vec(&st).unwrap_or_default())
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn admin_clock(State(s): State<Shared>, body: Bytes) -> Response {
    let req: ClockRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                &s.node,
                format!("bad clock request: {e}"),
            );
        }
    };
    if let Err(e) = s.clock.set(req) {
        return error_response(StatusCode::BAD_REQUEST, &s.node, e);
    }
    s.logger.line(format_args!(
        "admin: clock offset {} ms, rate {}",
        req.offset_ms, req.rate
    ));
    json_response(
        StatusCode::OK,
        serde_json::to_vec(&s.clock.status()).unwrap_or_default(),
    )
}

async fn admin_links(State(s): State<Shared>, body: Bytes) -> Response {
    let req: LinksRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                &s.node,
                format!("bad links request: {e}"),
            );
        }
    };
    let cut: BTreeSet<NodeId> = req.cut.iter().cloned().collect();
    {
        let Ok(mut links) = s.links.write() else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        links.drop_to = if req.one_way {
            BTreeSet::new()
        } else {
            cut.clone()
        };
        links.drop_from = cut;
    }
    s.logger.line(format_args!(
        "admin: links cut {:?}{}",
        req.cut,
        if req.one_way { " (incoming only)" } else { "" }
    ));
    StatusCode::NO_CONTENT.into_response()
}

async fn admin_dump(State(s): State<Shared>) -> Response {
    let (tx, rx) = oneshot::channel();
    if s.cmd.send(Cmd::Dump(tx)).await.is_err() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let Ok((mut status, state)) = rx.await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    status.clock = s.clock.status();
    let (drop_from, drop_to) = s
        .links
        .read()
        .map(|l| (l.drop_from.clone(), l.drop_to.clone()))
        .unwrap_or_default();
    let dump = Dump {
        status,
        state,
        drop_from,
        drop_to,
        siblings: BTreeMap::new(),
        owners: BTreeMap::new(),
        extra: serde_json::Value::Null,
    };
    json_response(
        StatusCode::OK,
        serde_json::to_vec(&dump).unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(seq: u64) -> PeerMessage {
        PeerMessage::Append {
            from: "n1".into(),
            epoch: 1,
            seq,
            prev_lsn: 0,
            prev_epoch: 0,
            commit: 0,
            leader: None,
            entries: Vec::new(),
        }
    }

    fn ack(seq: u64) -> PeerMessage {
        PeerMessage::Ack {
            from: "n2".into(),
            epoch: 1,
            seq,
            last_lsn: 0,
            downstream: Vec::new(),
        }
    }

    #[test]
    fn coalesce_keeps_the_newest_of_each_kind() {
        let mut batch = vec![append(1), ack(7), append(2), append(3), ack(8)];
        coalesce(&mut batch);
        assert_eq!(batch, vec![append(3), ack(8)]);
        let mut one = vec![append(4)];
        coalesce(&mut one);
        assert_eq!(one, vec![append(4)]);
    }

    #[test]
    fn config_round_trips_and_fills_defaults() {
        let peers: BTreeMap<NodeId, SocketAddr> = [
            ("n1".to_owned(), "127.0.0.1:7001".parse().unwrap()),
            ("n2".to_owned(), "127.0.0.1:7002".parse().unwrap()),
        ]
        .into_iter()
        .collect();
        let cfg = NodeConfig::new("n2", peers, "n1", "/tmp/x".into()).unwrap();
        let text = serde_json::to_string(&cfg).unwrap();
        assert_eq!(serde_json::from_str::<NodeConfig>(&text).unwrap(), cfg);
        let minimal = r#"{"id":"n1","listen":"127.0.0.1:7001","peers":{"n1":"127.0.0.1:7001"},"leader":"n1","data_dir":"d"}"#;
        let cfg: NodeConfig = serde_json::from_str(minimal).unwrap();
        assert_eq!(
            (cfg.replication, cfg.durability, cfg.batch_max_entries),
            (Replication::Async, Durability::Fsync, 4096)
        );
        cfg.validate().unwrap();
        let bad = minimal.replace(r#""leader":"n1""#, r#""leader":"n9""#);
        let cfg: NodeConfig = serde_json::from_str(&bad).unwrap();
        assert!(
            cfg.validate()
                .unwrap_err()
                .to_string()
                .contains("leader n9")
        );
    }
}
