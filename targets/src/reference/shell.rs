//! The one process shell of every reference model: HTTP on loopback, a log file, timers.
//!
//! A single actor task owns the state machine (any `Hosted` model) and its `Store`; HTTP
//! handlers (`http`) and timers only send it commands. The actor drains every queued
//! command, feeds them to the machine, makes every record those inputs asked to persist
//! durable with one batch (one write(2), plus fdatasync under `Durability::Fsync`), and
//! only then sends replies and peer messages, so no client or peer ever hears of a change
//! that is not in the log (group commit: the busier the node, the bigger each write).
//! Peer messages go through one bounded queue per peer (`peers`): a full queue drops the
//! message and counts it, as a congested network would.
//!
//! What differs between the models is declared once, in their `Hosted` impls: how the
//! machine is built from the config and the disk, which clock it reads (leader-follower:
//! skewed time since start, never decreasing; the others: skewed Unix time, so LWW stamps
//! move with clock faults), the shape of `/replicate`, and how an indeterminate write is
//! answered (leader-follower: `unknown: true`; the others: HTTP 503).

use super::http;
use super::leader_follower::LeaderFollower;
use super::leaderless::{Leaderless, LlConfig};
use super::multi_leader::{MlConfig, MultiLeader};
use super::node::{Links, Logger, NodeClock, NodeConfig, serve_until_exit};
use super::peers::Peers;
use super::storage::{EntryStore, StateLog, Store};
use super::{Durability, Model, NodeId};
use crate::error::TargetError;
use crate::request::Request;
use axum::Router;
use axum::routing::{get, post};
use schism_replication::{DumpState, Input, Machine, Output, ReadOpts, Reply, Status};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// A model as the shell hosts it: what the shell needs beyond `Machine`.
pub(super) trait Hosted: Machine + Send + 'static {
    type Store: Store<Self>;
    /// `/replicate` carries a JSON array of messages (else one message per request).
    const BATCHED_WIRE: bool;
    /// A `Reply::Unknown` is answered with HTTP 503 (else HTTP 200 and `unknown: true`).
    const UNKNOWN_AS_UNAVAILABLE: bool;

    /// Refuses settings the model cannot run with, before anything starts.
    fn validate(_config: &NodeConfig) -> Result<(), TargetError> {
        Ok(())
    }

    /// The model's settings, for the node log's first line.
    fn describe(config: &NodeConfig) -> String;

    /// The machine, resuming from what its disk held.
    fn build(config: &NodeConfig, disk: Self::Durable) -> Self;

    /// The machine's `now`.
    fn now_ns(clock: &NodeClock) -> u64;

    /// Drops queued messages to one peer that later ones make useless.
    fn coalesce(_batch: &mut Vec<Self::Msg>) {}
}

impl Hosted for LeaderFollower {
    type Store = EntryStore;
    const BATCHED_WIRE: bool = false;
    const UNKNOWN_AS_UNAVAILABLE: bool = false;

    fn describe(c: &NodeConfig) -> String {
        format!(
            "leader {}, replication {}, durability {}, failover {}, fencing {}, read lease {}, topology {}",
            c.leader,
            c.replication,
            c.durability,
            c.failover,
            if c.fencing { "on" } else { "off" },
            if c.read_lease { "on" } else { "off" },
            c.topology,
        )
    }

    fn build(config: &NodeConfig, disk: Self::Durable) -> Self {
        LeaderFollower::from_disk(config.machine_config(), disk)
    }

    fn now_ns(clock: &NodeClock) -> u64 {
        clock.machine_ns()
    }

    fn coalesce(batch: &mut Vec<Self::Msg>) {
        super::peers::coalesce(batch);
    }
}

/// The settings line of the two replica models.
fn describe_replica(c: &NodeConfig) -> String {
    format!(
        "settings {}, durability {}",
        serde_json::to_string(&c.replica).unwrap_or_default(),
        c.durability
    )
}

const MS: u64 = 1_000_000;

impl Hosted for MultiLeader {
    type Store = StateLog;
    const BATCHED_WIRE: bool = true;
    const UNKNOWN_AS_UNAVAILABLE: bool = true;

    fn describe(c: &NodeConfig) -> String {
        describe_replica(c)
    }

    fn build(config: &NodeConfig, disk: Self::Durable) -> Self {
        let nodes: Vec<NodeId> = config.peers.keys().cloned().collect();
        let mut cfg = MlConfig::new(&config.id, &nodes, config.replica);
        cfg.resend_after_ns = config.resend_after_ms * MS;
        cfg.heartbeat_ns = config.heartbeat_ms * MS;
        cfg.suspect_after_ns = 4 * config.heartbeat_ms * MS;
        MultiLeader::new(cfg, disk.into_iter().collect())
    }

    fn now_ns(clock: &NodeClock) -> u64 {
        clock.unix_ns()
    }
}

impl Hosted for Leaderless {
    type Store = StateLog;
    const BATCHED_WIRE: bool = true;
    const UNKNOWN_AS_UNAVAILABLE: bool = true;

    fn validate(config: &NodeConfig) -> Result<(), TargetError> {
        config
            .replica
            .check_leaderless(config.peers.len())
            .map_err(TargetError::Invalid)
    }

    fn describe(c: &NodeConfig) -> String {
        describe_replica(c)
    }

    fn build(config: &NodeConfig, disk: Self::Durable) -> Self {
        let nodes: Vec<NodeId> = config.peers.keys().cloned().collect();
        let mut cfg = LlConfig::new(&config.id, &nodes, config.replica);
        cfg.resend_after_ns = config.resend_after_ms * MS;
        cfg.heartbeat_ns = config.heartbeat_ms * MS;
        cfg.suspect_after_ns = 4 * config.heartbeat_ms * MS;
        cfg.request_timeout_ns = (config.peer_timeout_ms / 2).max(50) * MS;
        Leaderless::new(cfg, disk.into_iter().collect())
    }

    fn now_ns(clock: &NodeClock) -> u64 {
        clock.unix_ns()
    }
}

/// The machines a node with `config` runs, resumed from `disk`, built exactly as the
/// process shell builds them (same timers, same settings): what `schism sim` puts under
/// the deterministic harness.
pub fn leader_follower_machine(
    config: &NodeConfig,
    disk: <LeaderFollower as Machine>::Durable,
) -> LeaderFollower {
    <LeaderFollower as Hosted>::build(config, disk)
}

/// See `leader_follower_machine`.
pub fn multi_leader_machine(
    config: &NodeConfig,
    disk: <MultiLeader as Machine>::Durable,
) -> MultiLeader {
    <MultiLeader as Hosted>::build(config, disk)
}

/// See `leader_follower_machine`.
pub fn leaderless_machine(
    config: &NodeConfig,
    disk: <Leaderless as Machine>::Durable,
) -> Leaderless {
    <Leaderless as Hosted>::build(config, disk)
}

/// Runs the node of `config.model` until its actor or server stops, SIGTERM, SIGINT or
/// the parent's death.
pub(super) async fn serve(config: NodeConfig) -> Result<(), TargetError> {
    match config.model {
        Model::LeaderFollower => serve_model::<LeaderFollower>(config).await,
        Model::MultiLeader => serve_model::<MultiLeader>(config).await,
        Model::Leaderless => serve_model::<Leaderless>(config).await,
    }
}

/// What the HTTP handlers ask the actor.
pub(super) enum Cmd<M: Machine> {
    Client {
        op: Request,
        opts: ReadOpts,
        tx: oneshot::Sender<Reply>,
    },
    Peer(Vec<M::Msg>),
    Status(oneshot::Sender<Status>),
    Dump(oneshot::Sender<(Status, DumpState)>),
}

/// What every HTTP handler holds.
pub(super) struct Shared<M: Machine> {
    pub(super) cmd: mpsc::Sender<Cmd<M>>,
    pub(super) node: NodeId,
    pub(super) clock: Arc<NodeClock>,
    pub(super) links: Arc<RwLock<Links>>,
    pub(super) logger: Logger,
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

async fn serve_model<M: Hosted>(config: NodeConfig) -> Result<(), TargetError> {
    let logger = Logger {
        id: config.id.clone(),
        start: Instant::now(),
    };
    M::validate(&config)?;
    let parent = nix::unistd::getppid();
    logger.line(format_args!(
        "starting: pid {}, {} on {}, {}, data {}",
        std::process::id(),
        config.model,
        config.listen,
        M::describe(&config),
        config.data_dir.display()
    ));
    let (store, disk) = M::Store::open(&config.data_dir, config.durability, &logger)?;
    let machine = M::build(&config, disk);
    let listener = bind(&config).await?;
    let clock = Arc::new(NodeClock::new());
    let links = Arc::new(RwLock::new(Links::default()));
    let peers = Peers::<M>::start(&config, &logger, &links)?;
    let (cmd_tx, cmd_rx) = mpsc::channel(16_384);
    let actor = tokio::spawn(actor(
        Actor {
            machine,
            store,
            peers,
            clock: clock.clone(),
            logger: logger.clone(),
        },
        cmd_rx,
        Duration::from_millis(config.tick_ms),
        (config.durability == Durability::Buffered)
            .then(|| Duration::from_millis(config.flush_ms.max(1))),
    ));
    let app = Router::new()
        .route("/kv", post(http::kv::<M>))
        .route("/replicate", post(http::replicate::<M>))
        .route("/status", get(http::status::<M>))
        .route("/admin/clock", post(http::admin_clock::<M>))
        .route("/admin/links", post(http::admin_links::<M>))
        .route("/admin/dump", get(http::admin_dump::<M>))
        .with_state(Shared {
            cmd: cmd_tx,
            node: config.id.clone(),
            clock,
            links,
            logger: logger.clone(),
        });
    serve_until_exit(listener, app, actor, &config, parent, &logger).await
}

async fn bind(config: &NodeConfig) -> Result<tokio::net::TcpListener, TargetError> {
    tokio::net::TcpListener::bind(config.listen)
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
        })
}

/// What the actor owns.
struct Actor<M: Hosted> {
    machine: M,
    store: M::Store,
    peers: Peers<M>,
    clock: Arc<NodeClock>,
    logger: Logger,
}

/// Pending client requests by the id the machine echoes.
struct Waiting {
    next_req: u64,
    txs: HashMap<u64, oneshot::Sender<Reply>>,
}

/// The one owner of the state machine and the log. Returns only on a log write failure
/// (a node that cannot persist must stop acknowledging) or when every sender is gone.
async fn actor<M: Hosted>(
    mut a: Actor<M>,
    mut rx: mpsc::Receiver<Cmd<M>>,
    tick: Duration,
    flush_every: Option<Duration>,
) -> Result<(), TargetError> {
    let mut cmds = Vec::with_capacity(512);
    let mut out = Vec::with_capacity(1024);
    let mut waiting = Waiting {
        next_req: 0,
        txs: HashMap::new(),
    };
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut flusher = tokio::time::interval(flush_every.unwrap_or(Duration::from_secs(3600)));
    flusher.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            n = rx.recv_many(&mut cmds, 512) => {
                if n == 0 {
                    return Ok(());
                }
                for cmd in cmds.drain(..) {
                    a.command(cmd, &mut waiting, &mut out);
                }
            }
            _ = ticker.tick() => {
                a.machine.handle(M::now_ns(&a.clock), Input::Tick, &mut out);
            }
            _ = flusher.tick(), if flush_every.is_some() => {
                a.store.flush()?;
            }
        }
        for e in a.machine.take_events() {
            a.logger.line(format_args!("{e}"));
        }
        a.carry_out(&mut out, &mut waiting)?;
    }
}

impl<M: Hosted> Actor<M> {
    fn command(&mut self, cmd: Cmd<M>, waiting: &mut Waiting, out: &mut Vec<OutputOf<M>>) {
        let now_ns = M::now_ns(&self.clock);
        match cmd {
            Cmd::Client { op, opts, tx } => {
                waiting.next_req += 1;
                let req = waiting.next_req;
                waiting.txs.insert(req, tx);
                self.machine
                    .handle(now_ns, Input::ClientWith { req, op, opts }, out);
            }
            Cmd::Peer(msgs) => {
                for msg in msgs {
                    self.machine.handle(now_ns, Input::Peer(msg), out);
                }
            }
            Cmd::Status(tx) => {
                let _ = tx.send(self.machine.status(now_ns));
            }
            Cmd::Dump(tx) => {
                let _ = tx.send((self.machine.status(now_ns), self.machine.dump()));
            }
        }
    }

    /// Disk first, in order, as one batch; then replies and messages.
    fn carry_out(
        &mut self,
        out: &mut Vec<OutputOf<M>>,
        waiting: &mut Waiting,
    ) -> Result<(), TargetError> {
        let mut records = Vec::new();
        let mut rest = Vec::with_capacity(out.len());
        for o in out.drain(..) {
            match o {
                Output::Persist(r) => records.push(r),
                o => rest.push(o),
            }
        }
        if !records.is_empty() {
            self.store.write(&records)?;
        }
        for o in rest {
            match o {
                Output::Persist(_) => {}
                Output::Reply { req, reply } => {
                    if let Some(tx) = waiting.txs.remove(&req) {
                        // The client may have given up; its loss.
                        let _ = tx.send(reply);
                    }
                }
                Output::Send { to, msg } => self.peers.send(&to, msg, &self.logger),
            }
        }
        Ok(())
    }
}

type OutputOf<M> = Output<<M as Machine>::Msg, <M as Machine>::Persist>;
