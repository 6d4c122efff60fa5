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
//! What differs between the models is declared once, in their `Hosted` impls (`hosted`).
//! The process lifecycle is here too (`serve_until_exit`): SIGTERM/SIGINT or the parent's
//! death end the node.

use super::config::NodeConfig;
use super::context::{Links, Logger, NodeClock};
use super::hosted::Hosted;
use super::http::{self, Cmd, Shared};
use super::leader_follower::LeaderFollower;
use super::leaderless::Leaderless;
use super::multi_leader::MultiLeader;
use super::peers::Peers;
use super::storage::Store;
use super::{Durability, Model};
use crate::error::TargetError;
use axum::Router;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use schism_replication::{Input, Machine, Output, Reply};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Runs the node of `config.model` until its actor or server stops, SIGTERM, SIGINT or
/// the parent's death.
pub(super) async fn serve(config: NodeConfig) -> Result<(), TargetError> {
    match config.model {
        Model::LeaderFollower => serve_model::<LeaderFollower>(config).await,
        Model::MultiLeader => serve_model::<MultiLeader>(config).await,
        Model::Leaderless => serve_model::<Leaderless>(config).await,
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
        .route("/txn", post(http::txn::<M>))
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
            Cmd::Txn { mops, opts, tx } => {
                waiting.next_req += 1;
                let req = waiting.next_req;
                waiting.txs.insert(req, tx);
                self.machine
                    .handle(now_ns, Input::Txn { req, mops, opts }, out);
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

/// Serves `app` until the process should end, and owns the lifecycle every reference
/// node shares: SIGTERM/SIGINT end it cleanly, and so does the parent (the runner)
/// disappearing — checked by polling `getppid()` every 200 ms, because PR_SET_PDEATHSIG
/// would fire when the spawning *thread* exits — so a SIGKILLed runner leaves no orphan.
/// A failed HTTP server or state-machine task ends it with that error.
async fn serve_until_exit(
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
