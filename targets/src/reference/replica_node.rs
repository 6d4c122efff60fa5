//! The process shell of a multi-leader or leaderless node: the same HTTP API, admin API,
//! clock and link cuts as the leader-follower shell (`node`), around any `replica::Machine`.
//!
//! One actor task owns the machine and the state log; HTTP handlers and timers only send
//! it commands. It drains every queued command, feeds them to the machine (with `now` =
//! the node's skewable clock in Unix nanoseconds, so LWW stamps move with clock faults),
//! writes every key state the inputs asked to persist with one write(2) (plus fdatasync
//! under `Durability::Fsync`), and only then sends replies and peer messages. Peer messages
//! go out in batches (`POST /replicate` with a JSON array) on one task per peer; a failed
//! batch is dropped (the protocols resend what matters). A reply `Unknown` is answered
//! with HTTP 503, which the client records as indeterminate.
//!
//! The state log is `<data_dir>/state.jsonl`: one `[key, state]` line per persisted key
//! state, later lines replacing earlier ones; `open` keeps every whole line up to the
//! first torn or unreadable one and truncates the rest.

use super::Durability;
use super::Model;
use super::NodeId;
use super::leader_follower::Status;
use super::leaderless::{Leaderless, LlConfig};
use super::multi_leader::{MlConfig, MultiLeader};
use super::node::{
    ClockRequest, Dump, KvReply, Links, LinksRequest, Logger, NodeClock, NodeConfig,
    error_response, json_response, serve_until_exit,
};
use super::replica::{DumpState, Input, Machine, Output, Reply};
use super::versioned::KeyState;
use crate::error::TargetError;
use crate::request::Request;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use schism_history::{Key, Value};
use std::collections::{BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// An opened log, the last state of every key it held, and the bytes of torn tail cut.
pub type Opened = (StateLog, Vec<(Key, KeyState)>, u64);

/// The append-only log of key states.
#[derive(Debug)]
pub struct StateLog {
    file: File,
    path: PathBuf,
    durability: Durability,
    buf: Vec<u8>,
}

impl StateLog {
    /// Opens (creating) `<dir>/state.jsonl`; returns the last state of every key, and how
    /// many bytes of a torn tail were cut.
    pub fn open(dir: &Path, durability: Durability) -> Result<Opened, TargetError> {
        std::fs::create_dir_all(dir).map_err(|source| TargetError::DataDir {
            path: dir.to_owned(),
            source,
        })?;
        let path = dir.join("state.jsonl");
        let io = |source| TargetError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        let mut states = std::collections::BTreeMap::new();
        let mut valid = 0usize;
        for line in bytes.split_inclusive(|b| *b == b'\n') {
            if !line.ends_with(b"\n") {
                break;
            }
            match serde_json::from_slice::<(Key, KeyState)>(line) {
                Ok((k, s)) => {
                    states.insert(k, s);
                    valid += line.len();
                }
                Err(_) => break,
            }
        }
        let cut = (bytes.len() - valid) as u64;
        if cut > 0 {
            file.set_len(valid as u64).map_err(io)?;
        }
        let log = StateLog {
            file,
            path,
            durability,
            buf: Vec::new(),
        };
        Ok((log, states.into_iter().collect(), cut))
    }

    /// Appends the states with one write(2) (and fdatasync under `Fsync`).
    pub fn append(&mut self, items: &[(Key, KeyState)]) -> Result<(), TargetError> {
        self.buf.clear();
        for item in items {
            serde_json::to_writer(&mut self.buf, item)
                .map_err(|e| TargetError::Invalid(e.to_string()))?;
            self.buf.push(b'\n');
        }
        let io = |source| TargetError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(&self.buf).map_err(io)?;
        if self.durability == Durability::Fsync {
            self.file.sync_data().map_err(io)?;
        }
        Ok(())
    }
}

enum Cmd<M: Machine> {
    Client {
        op: Request,
        tx: oneshot::Sender<Reply>,
    },
    Peer(Vec<M::Msg>),
    Status(oneshot::Sender<Status>),
    Dump(oneshot::Sender<(Status, DumpState)>),
}

struct Shared<M: Machine> {
    cmd: mpsc::Sender<Cmd<M>>,
    node: NodeId,
    clock: Arc<NodeClock>,
    links: Arc<RwLock<Links>>,
    logger: Logger,
}

impl<M: Machine> Clone for Shared<M> {
    fn clone(&self) -> Self {
        Shared {
            cmd: self.cmd.clone(),
            node: self.node.clone(),
            clock: self.clock.clone(),
            links: self.links.clone(),
            logger: self.logger.clone(),
        }
    }
}

/// Runs a multi-leader or leaderless node until its actor or server stops, SIGTERM,
/// SIGINT or the parent's death.
pub(super) async fn serve(config: NodeConfig) -> Result<(), TargetError> {
    let logger = Logger {
        id: config.id.clone(),
        start: Instant::now(),
    };
    let nodes: Vec<NodeId> = config.peers.keys().cloned().collect();
    let s = config.replica;
    if config.model == Model::Leaderless {
        s.check_leaderless(nodes.len())
            .map_err(TargetError::Invalid)?;
    }
    logger.line(format_args!(
        "starting: pid {}, {} on {}, settings {}, durability {}, data {}",
        std::process::id(),
        config.model,
        config.listen,
        serde_json::to_string(&s).unwrap_or_default(),
        config.durability,
        config.data_dir.display()
    ));
    let (log, recovered, cut) = StateLog::open(&config.data_dir, config.durability)?;
    if cut > 0 {
        logger.line(format_args!("state log: cut {cut} bytes of a torn tail"));
    }
    logger.line(format_args!(
        "state log: recovered {} keys",
        recovered.len()
    ));
    let ms = 1_000_000;
    match config.model {
        Model::MultiLeader => {
            let mut cfg = MlConfig::new(&config.id, &nodes, s);
            cfg.resend_after_ns = config.resend_after_ms * ms;
            cfg.heartbeat_ns = config.heartbeat_ms * ms;
            cfg.suspect_after_ns = 4 * config.heartbeat_ms * ms;
            run(config, logger, MultiLeader::new(cfg, recovered), log).await
        }
        _ => {
            let mut cfg = LlConfig::new(&config.id, &nodes, s);
            cfg.resend_after_ns = config.resend_after_ms * ms;
            cfg.heartbeat_ns = config.heartbeat_ms * ms;
            cfg.suspect_after_ns = 4 * config.heartbeat_ms * ms;
            cfg.request_timeout_ns = (config.peer_timeout_ms / 2).max(50) * ms;
            run(config, logger, Leaderless::new(cfg, recovered), log).await
        }
    }
}

async fn run<M>(
    config: NodeConfig,
    logger: Logger,
    machine: M,
    log: StateLog,
) -> Result<(), TargetError>
where
    M: Machine + Send + 'static,
{
    let parent = nix::unistd::getppid();
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
        tokio::spawn(peer_sender::<M>(
            logger.clone(),
            id.clone(),
            format!("http://{addr}/replicate"),
            http.clone(),
            rx,
            links.clone(),
        ));
    }
    let (cmd_tx, cmd_rx) = mpsc::channel(16_384);
    let actor = tokio::spawn(actor(
        machine,
        log,
        cmd_rx,
        peers,
        clock.clone(),
        Duration::from_millis(config.tick_ms),
    ));
    let app = Router::new()
        .route("/kv", post(kv::<M>))
        .route("/replicate", post(replicate::<M>))
        .route("/status", get(status::<M>))
        .route("/admin/clock", post(admin_clock::<M>))
        .route("/admin/links", post(admin_links::<M>))
        .route("/admin/dump", get(admin_dump::<M>))
        .with_state(Shared {
            cmd: cmd_tx,
            node: config.id.clone(),
            clock,
            links,
            logger: logger.clone(),
        });
    serve_until_exit(listener, app, actor, &config, parent, &logger).await
}

async fn actor<M: Machine>(
    mut machine: M,
    mut log: StateLog,
    mut rx: mpsc::Receiver<Cmd<M>>,
    peers: HashMap<NodeId, mpsc::UnboundedSender<M::Msg>>,
    clock: Arc<NodeClock>,
    tick: Duration,
) -> Result<(), TargetError> {
    let mut cmds = Vec::with_capacity(512);
    let mut out: Vec<Output<M::Msg>> = Vec::with_capacity(1024);
    let mut to_persist = Vec::new();
    let mut waiting: HashMap<u64, oneshot::Sender<Reply>> = HashMap::new();
    let mut next_req = 0u64;
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            n = rx.recv_many(&mut cmds, 512) => {
                if n == 0 {
                    return Ok(());
                }
                for cmd in cmds.drain(..) {
                    let now_ns = clock.unix_ns();
                    match cmd {
                        Cmd::Client { op, tx } => {
                            next_req += 1;
                            waiting.insert(next_req, tx);
                            machine.handle(now_ns, Input::Client { req: next_req, op }, &mut out);
                        }
                        Cmd::Peer(msgs) => {
                            for msg in msgs {
                                machine.handle(now_ns, Input::Peer(msg), &mut out);
                            }
                        }
                        Cmd::Status(tx) => {
                            let _ = tx.send(machine.status());
                        }
                        Cmd::Dump(tx) => {
                            let _ = tx.send((machine.status(), machine.dump()));
                        }
                    }
                }
            }
            _ = ticker.tick() => {
                machine.handle(clock.unix_ns(), Input::Tick, &mut out);
            }
        }
        for o in &out {
            if let Output::Persist(items) = o {
                to_persist.extend_from_slice(items);
            }
        }
        if !to_persist.is_empty() {
            log.append(&to_persist)?;
            to_persist.clear();
        }
        for o in out.drain(..) {
            match o {
                Output::Persist(_) => {}
                Output::Reply { req, reply } => {
                    if let Some(tx) = waiting.remove(&req) {
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

/// Delivers batches of messages to one peer, in order; a failed batch is dropped.
async fn peer_sender<M: Machine>(
    logger: Logger,
    peer: NodeId,
    url: String,
    http: reqwest::Client,
    mut rx: mpsc::UnboundedReceiver<M::Msg>,
    links: Arc<RwLock<Links>>,
) {
    let mut batch = Vec::new();
    let mut down_since: Option<Instant> = None;
    while rx.recv_many(&mut batch, 1024).await > 0 {
        let cut = links
            .read()
            .map(|l| l.drop_to.contains(&peer))
            .unwrap_or(false);
        if cut {
            batch.clear();
            continue;
        }
        let body = serde_json::to_vec(&batch).unwrap_or_default();
        batch.clear();
        let result = http
            .post(&url)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .and_then(|r| r.error_for_status());
        match (result, down_since) {
            (Ok(_), Some(since)) => {
                logger.line(format_args!(
                    "link to {peer} is back after {:.1}s",
                    since.elapsed().as_secs_f64()
                ));
                down_since = None;
            }
            (Err(e), None) => {
                logger.line(format_args!(
                    "link to {peer} is down: {}",
                    crate::api::error_text(&e)
                ));
                down_since = Some(Instant::now());
            }
            _ => {}
        }
    }
}

async fn kv<M: Machine>(State(s): State<Shared<M>>, body: Bytes) -> Response {
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
    let (tx, rx) = oneshot::channel();
    if s.cmd.send(Cmd::Client { op, tx }).await.is_err() {
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
    let mut kv = KvReply {
        ok: true,
        node: s.node.clone(),
        value: Value::Null,
        lsn: None,
        applied: None,
        error: None,
        leader: None,
        unknown: false,
        time_ms: Some(s.clock.now_ms()),
        siblings: None,
    };
    let status = match reply {
        Reply::Ok { value, siblings } => {
            kv.value = value;
            kv.siblings = siblings;
            StatusCode::OK
        }
        Reply::Fail { error } => {
            kv.ok = false;
            kv.error = Some(error);
            StatusCode::OK
        }
        Reply::Unknown { error } => {
            kv.ok = false;
            kv.error = Some(error);
            StatusCode::SERVICE_UNAVAILABLE
        }
    };
    json_response(status, serde_json::to_vec(&kv).unwrap_or_default())
}

async fn replicate<M: Machine>(State(s): State<Shared<M>>, body: Bytes) -> Response {
    let msgs: Vec<M::Msg> = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                &s.node,
                format!("bad replication message: {e}"),
            );
        }
    };
    let cut = s
        .links
        .read()
        .map(|l| msgs.iter().any(|m| l.drop_from.contains(M::sender(m))))
        .unwrap_or(false);
    if cut {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    match s.cmd.send(Cmd::Peer(msgs)).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

async fn status<M: Machine>(State(s): State<Shared<M>>) -> Response {
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

async fn admin_clock<M: Machine>(State(s): State<Shared<M>>, body: Bytes) -> Response {
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

async fn admin_links<M: Machine>(State(s): State<Shared<M>>, body: Bytes) -> Response {
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

async fn admin_dump<M: Machine>(State(s): State<Shared<M>>) -> Response {
    let (tx, rx) = oneshot::channel();
    if s.cmd.send(Cmd::Dump(tx)).await.is_err() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let Ok((mut status, d)) = rx.await else {
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
        state: d.state,
        drop_from,
        drop_to,
        siblings: d.siblings,
        owners: d.owners,
        extra: d.extra,
    };
    json_response(
        StatusCode::OK,
        serde_json::to_vec(&dump).unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_log_keeps_whole_lines_and_cuts_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, rec, cut) = StateLog::open(dir.path(), Durability::Buffered).unwrap();
        assert!(rec.is_empty() && cut == 0);
        let s = |v| {
            KeyState(vec![super::super::versioned::Version {
                ts: 1,
                origin: "n1".into(),
                datum: super::super::versioned::Datum::Int(v),
                clock: Default::default(),
            }])
        };
        log.append(&[(1, s(1)), (2, s(2))]).unwrap();
        log.append(&[(1, s(3))]).unwrap();
        drop(log);
        let path = dir.path().join("state.jsonl");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"[3,[{\"ts\":").unwrap();
        drop(f);
        let (_, rec, cut) = StateLog::open(dir.path(), Durability::Buffered).unwrap();
        assert_eq!(rec, vec![(1, s(3)), (2, s(2))]);
        assert_eq!(cut, 10);
    }
}
