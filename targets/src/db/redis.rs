//! The Redis adapter: a primary (n1) with asynchronous replicas (n2, n3), optionally
//! watched by one Sentinel per node that fails over, and sessions that talk to it like an
//! ordinary client with a cached topology.
//!
//! Provisioning writes fresh config files under `data_dir/<node>/` (on hosts over SSH:
//! `<host's run folder>/<node>/`, through the host's `Exec`) on every run (Sentinel
//! rewrites them), with the append-only file on and fsynced before every reply
//! (`appendonly yes`, `appendfsync always`; no RDB snapshots), so that a killed server
//! restarts with every write it acknowledged (with `--failover none` a killed primary
//! comes back with its data, where without persistence it came back empty and its
//! replicas resynchronised to the empty dataset), and `set-proc-title no`, so each
//! server's command line keeps its config path — inside the run folder, which is what
//! the ledger's cleanup matches. A cluster is ready once both replicas report
//! `master_link_status:up` and, with Sentinel, every sentinel knows the primary, both
//! replicas and the other sentinels.
//!
//! Sessions: each owns one connection per node (opened lazily, dropped after any error or
//! timeout). Register ops are `SET`/`GET`, appends `RPUSH`/`LRANGE`; a read finds out which
//! of the two a key holds in one round trip (a read-only Lua script), because a `Request`
//! does not say which workload it belongs to. Writes go to the primary as this session
//! knows it; with `semi-sync:K`/`sync` each write is followed by `WAIT K` on the same
//! connection (WAIT counts acks for that connection's writes only), and fewer than K acks
//! make the write `Unknown`: it is on the primary but may be lost. Reads go to the primary
//! (`leader`, and `ryw`/`sticky`, which Redis cannot honour), any node or a replica, chosen
//! with the session's seeded RNG. With Sentinel, a session
//! refreshes its primary from a sentinel only after a failed write or every ~2 s, as a
//! real client caching the topology would — which is what lets a resumed old primary keep
//! acknowledging writes that the failover already doomed.

use crate::ReadRouting;
use crate::client::Reply;
use crate::db::{
    BoxFuture, DbCluster, DbKind, DbSession, DbSpec, ManagedProcess, Placement, ProcessSpec,
    loopback_ports, require_binary,
};
use crate::error::TargetError;
use crate::process::{put_file, wait_until_alive};
use crate::reference::NodeId;
use crate::remote::{Exec, Local};
use crate::request::Request;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ErrorKind, RedisError, ServerErrorKind, Value as RValue};
use schism_history::Value;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The name Sentinel monitors the primary under.
const MASTER_NAME: &str = "mymaster";
/// Default ports inside network namespaces.
const NETNS_SERVER_PORT: u16 = 6379;
const NETNS_SENTINEL_PORT: u16 = 26379;
/// Sentinel settings (the brief's: quorum 2 of 3, down after 1 s, failover timeout 5 s).
const SENTINEL_QUORUM: usize = 2;
const DOWN_AFTER_MS: u64 = 1000;
const FAILOVER_TIMEOUT_MS: u64 = 5000;
/// How often, at most, a session asks a sentinel who leads when nothing went wrong; each
/// session draws its own period in this range so they do not all ask at once.
const REFRESH_MIN_MS: u64 = 1500;
const REFRESH_MAX_MS: u64 = 2500;
/// Budget for one control-plane question (readiness, `leader()`, a sentinel lookup).
const CONTROL_TIMEOUT: Duration = Duration::from_millis(500);
/// Grace between SIGTERM and SIGKILL when stopping.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// Extra time a `WAIT` reply may take beyond its own timeout before the write is `Unknown`.
const WAIT_SLACK: Duration = Duration::from_millis(300);

/// Reads a key whatever it holds: `{'s', value}` for a register, `{'l', items…}` for an
/// append list, `{'n'}` when absent. Read-only, so replicas run it too (`EVAL_RO`).
const READ_SCRIPT: &str = "local t = redis.call('TYPE', KEYS[1])['ok'] \
if t == 'string' then return {'s', redis.call('GET', KEYS[1])} end \
if t == 'list' then return {'l', redis.call('LRANGE', KEYS[1], 0, -1)} end \
return {'n'}";

/// Compare-and-set on a register: 1 when the value was `expected` and is now `new`.
const CAS_SCRIPT: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
redis.call('SET', KEYS[1], ARGV[2]) return 1 end return 0";

/// Where one node listens (shared by the cluster and its sessions).
#[derive(Debug, Clone, PartialEq, Eq)]
struct NodeAddr {
    id: NodeId,
    addr: SocketAddr,
}

/// What sessions need to know about the cluster.
#[derive(Debug)]
struct Topology {
    nodes: Vec<NodeAddr>,
    /// Sentinel addresses (empty without failover).
    sentinels: Vec<SocketAddr>,
    /// The primary at start (index into `nodes`).
    initial_primary: usize,
    reads: ReadRouting,
    /// Replica acks each write waits for (0 = async).
    wait_acks: usize,
    timeout: Duration,
}

impl Topology {
    fn index_of(&self, addr: SocketAddr) -> Option<usize> {
        self.nodes.iter().position(|n| n.addr == addr)
    }
}

/// A provisioned (or attached) Redis primary with replicas, and its sentinels.
pub struct RedisCluster {
    topo: Arc<Topology>,
    /// One server per node (empty when attached with `--endpoints`).
    servers: Vec<ManagedProcess>,
    sentinels: Vec<ManagedProcess>,
    managed: bool,
    /// The run's `nodes/` folder here: logs of servers on other hosts come into it.
    log_dir: PathBuf,
}

impl fmt::Debug for RedisCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCluster")
            .field("nodes", &self.topo.nodes)
            .field("sentinels", &self.topo.sentinels)
            .field("managed", &self.managed)
            .finish()
    }
}

impl RedisCluster {
    pub async fn open(spec: DbSpec) -> Result<Box<dyn DbCluster>, TargetError> {
        let wait_acks = spec
            .options
            .replication
            .required_followers(match &spec.endpoints {
                Some(eps) => eps.len(),
                None => spec.nodes,
            });
        if let Some(eps) = &spec.endpoints {
            return Self::attach(&spec, eps, wait_acks).await;
        }
        if spec.nodes < 1 {
            return Err(TargetError::Invalid(
                "redis needs at least one node: pass --nodes 3".into(),
            ));
        }
        // On hosts over SSH the binaries are the hosts' own, found on their PATH (the
        // preflight checked they are there).
        let remote = matches!(spec.placement, Placement::Hosts(_));
        let binary = |name: &str| {
            if remote {
                Ok(PathBuf::from(name))
            } else {
                require_binary(name, name)
            }
        };
        let server_bin = binary("redis-server")?;
        let sentinel_bin = if spec.options.failover {
            Some(binary("redis-sentinel")?)
        } else {
            None
        };
        let ids = spec.node_ids();
        let layout = Layout::of(&spec, ids.len())?;
        std::fs::create_dir_all(&spec.log_dir).map_err(|source| TargetError::LogDir {
            path: spec.log_dir.clone(),
            source,
        })?;
        let servers = layout.spawn_all(&spec, &ids, &server_bin, false)?;
        let topo = Arc::new(Topology {
            nodes: ids
                .iter()
                .zip(&layout.servers)
                .map(|(id, &addr)| NodeAddr {
                    id: id.clone(),
                    addr,
                })
                .collect(),
            sentinels: if sentinel_bin.is_some() {
                layout.sentinels.clone()
            } else {
                Vec::new()
            },
            initial_primary: 0,
            reads: spec.options.reads,
            wait_acks,
            timeout: spec.options.timeout,
        });
        let mut cluster = RedisCluster {
            topo,
            servers,
            sentinels: Vec::new(),
            managed: true,
            log_dir: spec.log_dir.clone(),
        };
        // On an error the cluster is dropped here, and dropping kills every process.
        let deadline = Instant::now() + spec.startup_timeout;
        cluster.wait_servers(deadline).await?;
        // Sentinels start once the replicas are linked: a sentinel learns replicas from
        // the primary's INFO, which it polls only every 10 s after the first time.
        if let Some(bin) = &sentinel_bin {
            cluster.sentinels = layout.spawn_all(&spec, &ids, bin, true)?;
        }
        cluster.wait_sentinels(deadline).await?;
        Ok(Box::new(cluster))
    }

    /// `--endpoints`: the node answering `role:master` is the primary; nothing is managed.
    async fn attach(
        spec: &DbSpec,
        eps: &[String],
        wait_acks: usize,
    ) -> Result<Box<dyn DbCluster>, TargetError> {
        let mut nodes = Vec::new();
        for (i, ep) in eps.iter().enumerate() {
            let addr = ep
                .to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(|| {
                    TargetError::Invalid(format!(
                        "--endpoints: cannot resolve {ep:?}: expected host:port"
                    ))
                })?;
            nodes.push(NodeAddr {
                id: format!("n{}", i + 1),
                addr,
            });
        }
        let mut primary = None;
        for (i, n) in nodes.iter().enumerate() {
            if let Ok(info) = info_replication(n.addr).await
                && info_field(&info, "role") == Some("master")
            {
                primary = Some(i);
                break;
            }
        }
        let Some(initial_primary) = primary else {
            return Err(TargetError::Invalid(format!(
                "--endpoints: no Redis endpoint answered INFO replication with role:master ({})",
                eps.join(",")
            )));
        };
        Ok(Box::new(RedisCluster {
            topo: Arc::new(Topology {
                nodes,
                sentinels: Vec::new(),
                initial_primary,
                reads: spec.options.reads,
                wait_acks,
                timeout: spec.options.timeout,
            }),
            servers: Vec::new(),
            sentinels: Vec::new(),
            managed: false,
            log_dir: spec.log_dir.clone(),
        }))
    }

    /// Waits until every server answers and both replicas are linked to the primary.
    async fn wait_servers(&mut self, deadline: Instant) -> Result<(), TargetError> {
        let topo = self.topo.clone();
        for (i, node) in topo.nodes.iter().enumerate() {
            let left = deadline.saturating_duration_since(Instant::now());
            let primary = i == topo.initial_primary;
            let addr = node.addr;
            wait_until_alive(
                &format!("redis {}", node.id),
                left,
                Duration::from_millis(50),
                &mut self.servers[i],
                || async move {
                    let info = info_replication(addr).await?;
                    if primary || info_field(&info, "master_link_status") == Some("up") {
                        Ok(())
                    } else {
                        Err("replica not linked to the primary yet".into())
                    }
                },
            )
            .await
            .map_err(|e| self.startup_error(i, e))?;
        }
        Ok(())
    }

    /// With Sentinel: waits until every sentinel names the primary and knows both
    /// replicas and the other sentinels (else a failover could not reach its quorum).
    async fn wait_sentinels(&mut self, deadline: Instant) -> Result<(), TargetError> {
        let topo = self.topo.clone();
        let want = topo.nodes.len() - 1;
        for (i, &s) in topo.sentinels.iter().enumerate() {
            let left = deadline.saturating_duration_since(Instant::now());
            let primary = topo.nodes[topo.initial_primary].addr;
            wait_until_alive(
                &format!("sentinel of {}", topo.nodes[i].id),
                left,
                Duration::from_millis(100),
                &mut self.sentinels[i],
                || async move {
                    match sentinel_primary(s).await? {
                        Some(a) if a == primary => {}
                        other => return Err(format!("names {other:?} as primary")),
                    }
                    let replicas = sentinel_count(s, "replicas").await?;
                    let peers = sentinel_count(s, "sentinels").await?;
                    if replicas >= want && peers >= want {
                        Ok(())
                    } else {
                        Err(format!(
                            "knows {replicas} replicas and {peers} other sentinels"
                        ))
                    }
                },
            )
            .await
            .map_err(|e| last_lines(&self.sentinels[i], e))?;
        }
        Ok(())
    }

    fn startup_error(&self, i: usize, e: TargetError) -> TargetError {
        last_lines(&self.servers[i], e)
    }

    /// Signals `node`'s server through its host's `Exec` (nothing when it does not run).
    fn signal(&self, node: &str, sig: nix::sys::signal::Signal) -> Result<(), TargetError> {
        if !self.managed {
            return Err(TargetError::Invalid(format!(
                "redis node {node} is attached with --endpoints: schism cannot pause or resume it"
            )));
        }
        let p = &self.servers[self.index(node)?];
        if p.pid().is_none() {
            return Ok(());
        }
        p.signal(sig)
    }

    fn index(&self, node: &str) -> Result<usize, TargetError> {
        self.topo
            .nodes
            .iter()
            .position(|n| n.id == node)
            .ok_or_else(|| TargetError::UnknownNode(node.to_owned()))
    }

    fn server_mut(&mut self, node: &str) -> Result<&mut ManagedProcess, TargetError> {
        if !self.managed {
            return Err(TargetError::Invalid(format!(
                "redis node {node} is attached with --endpoints: schism cannot kill or restart it"
            )));
        }
        let i = self.index(node)?;
        Ok(&mut self.servers[i])
    }
}

impl DbCluster for RedisCluster {
    fn kind(&self) -> crate::target::TargetKind {
        DbKind::Redis.into()
    }

    fn node_ids(&self) -> Vec<NodeId> {
        self.topo.nodes.iter().map(|n| n.id.clone()).collect()
    }

    fn describe(&self) -> String {
        let nodes: Vec<String> = self
            .topo
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let role = if i == self.topo.initial_primary {
                    "primary"
                } else {
                    "replica"
                };
                format!("{} {role} {}", n.id, n.addr)
            })
            .collect();
        let mut line = nodes.join(", ");
        if !self.topo.sentinels.is_empty() {
            let s: Vec<String> = self.topo.sentinels.iter().map(|a| a.to_string()).collect();
            line.push_str(&format!("; sentinels {}", s.join(", ")));
        }
        if self.topo.wait_acks > 0 {
            line.push_str(&format!("; WAIT {} after each write", self.topo.wait_acks));
        }
        line
    }

    fn managed(&self) -> bool {
        self.managed
    }

    fn pids(&self) -> Vec<u32> {
        self.servers
            .iter()
            .chain(&self.sentinels)
            .filter_map(ManagedProcess::local_pid)
            .collect()
    }

    /// Servers and sentinels on hosts over SSH: node i's on host i.
    fn remote_pids(&self) -> Vec<(usize, u32)> {
        let of = |ps: &[ManagedProcess]| -> Vec<(usize, u32)> {
            ps.iter()
                .enumerate()
                .filter_map(|(i, p)| p.local_pid().is_none().then_some((i, p.pid()?)))
                .collect()
        };
        let mut all = of(&self.servers);
        all.extend(of(&self.sentinels));
        all
    }

    /// SIGSTOP through the server's host (here or over SSH), settled; a server that
    /// does not run is left alone.
    fn pause(&mut self, node: &str) -> Result<(), TargetError> {
        self.signal(node, nix::sys::signal::Signal::SIGSTOP)
    }

    fn resume(&mut self, node: &str) -> Result<(), TargetError> {
        self.signal(node, nix::sys::signal::Signal::SIGCONT)
    }

    fn pid(&self, node: &str) -> Option<u32> {
        let i = self.index(node).ok()?;
        self.servers.get(i).and_then(ManagedProcess::pid)
    }

    fn is_running(&self, node: &str) -> bool {
        self.index(node)
            .ok()
            .and_then(|i| self.servers.get(i))
            .is_some_and(ManagedProcess::is_running)
    }

    fn kill<'a>(&'a mut self, node: &'a str) -> BoxFuture<'a, Result<(), TargetError>> {
        Box::pin(async move { self.server_mut(node)?.kill().await })
    }

    fn restart<'a>(&'a mut self, node: &'a str) -> BoxFuture<'a, Result<(), TargetError>> {
        Box::pin(async move {
            let timeout = self.topo.timeout.max(Duration::from_secs(10));
            // The same config file: Sentinel may have rewritten its `replicaof` line.
            let p = self.server_mut(node)?;
            p.start()?;
            let i = self.index(node)?;
            let addr = self.topo.nodes[i].addr;
            wait_until_alive(
                &format!("redis {node} after restart"),
                timeout,
                Duration::from_millis(50),
                &mut self.servers[i],
                || async move { info_replication(addr).await.map(|_| ()) },
            )
            .await
            .map_err(|e| self.startup_error(i, e))
        })
    }

    fn leader(&self) -> BoxFuture<'_, Option<NodeId>> {
        Box::pin(async move {
            let topo = &self.topo;
            if topo.sentinels.is_empty() {
                return Some(topo.nodes[topo.initial_primary].id.clone());
            }
            for &s in &topo.sentinels {
                if let Ok(Some(addr)) = sentinel_primary(s).await
                    && let Some(i) = topo.index_of(addr)
                {
                    return Some(topo.nodes[i].id.clone());
                }
            }
            None
        })
    }

    fn session(&self, seed: u64) -> Box<dyn DbSession> {
        Box::new(RedisSession::new(self.topo.clone(), seed))
    }

    fn lag_probe(&self) -> Option<Box<dyn crate::lag::LagProbe>> {
        Some(Box::new(RedisLag {
            conns: self.topo.nodes.iter().map(|_| None).collect(),
            topo: self.topo.clone(),
        }))
    }

    fn stop(&mut self) -> BoxFuture<'_, Result<(), TargetError>> {
        Box::pin(async move {
            // Sentinels first, so that none reconfigures a server while it stops.
            let mut first_err = None;
            for p in self.sentinels.iter_mut().chain(self.servers.iter_mut()) {
                if let Err(e) = p.stop(STOP_GRACE).await {
                    first_err.get_or_insert(e);
                }
                // A server on another host: its log comes into the run's folder.
                if let Some(name) = p.spec().log.file_name() {
                    p.fetch_log(&self.log_dir.join(name));
                }
            }
            first_err.map_or(Ok(()), Err)
        })
    }
}

/// Replication lag from every node's `INFO replication`: the node that says it is the
/// primary (the highest offset if several do) is the source; each replica trails it by
/// the primary's `master_repl_offset` minus its own (bytes of the replication stream).
struct RedisLag {
    topo: Arc<Topology>,
    conns: Vec<Option<MultiplexedConnection>>,
}

impl RedisLag {
    /// `(is primary, replication offset)` of node `i`, within the probe timeout.
    async fn offset(&mut self, i: usize) -> Option<(bool, u64)> {
        let t = crate::lag::PROBE_TIMEOUT;
        if self.conns[i].is_none() {
            self.conns[i] = connect(self.topo.nodes[i].addr, t).await.ok();
        }
        let conn = self.conns[i].as_mut()?;
        let mut cmd = redis::cmd("INFO");
        cmd.arg("replication");
        let answer = tokio::time::timeout(t, cmd.query_async::<RValue>(conn)).await;
        let text = match answer {
            Ok(Ok(v)) => as_text(&v)?,
            _ => {
                self.conns[i] = None;
                return None;
            }
        };
        let primary = info_field(&text, "role") == Some("master");
        let offset = info_field(&text, "master_repl_offset")?.parse().ok()?;
        Some((primary, offset))
    }
}

impl crate::lag::LagProbe for RedisLag {
    fn sample(&mut self) -> BoxFuture<'_, Vec<crate::lag::LagReading>> {
        Box::pin(async move {
            let mut seen = Vec::new();
            for i in 0..self.topo.nodes.len() {
                if let Some(o) = self.offset(i).await {
                    seen.push((i, o));
                }
            }
            let Some(&(p, (_, source))) = seen
                .iter()
                .filter(|(_, (primary, _))| *primary)
                .max_by_key(|(_, (_, off))| *off)
            else {
                return Vec::new();
            };
            seen.iter()
                .filter(|(i, _)| *i != p)
                .map(|&(i, (_, off))| crate::lag::LagReading {
                    node: self.topo.nodes[i].id.clone(),
                    source: Some(self.topo.nodes[p].id.clone()),
                    position: Some(off),
                    source_position: Some(source),
                    behind: Some(source.saturating_sub(off)),
                    unit: "bytes",
                    behind_ms: None,
                    lags_ms: Vec::new(),
                })
                .collect()
        })
    }

    fn method(&self) -> String {
        "every node's INFO replication: the primary's master_repl_offset minus the replica's (bytes of the replication stream)".into()
    }
}

/// One worker's view of the cluster: its own connections, its cached primary.
pub struct RedisSession {
    topo: Arc<Topology>,
    /// One lazily opened connection per node; `None` after an error.
    conns: Vec<Option<MultiplexedConnection>>,
    primary: usize,
    /// When this session last asked a sentinel; `None` = ask before the next write.
    refreshed: Option<Instant>,
    refresh_every: Duration,
    rng: ChaCha8Rng,
}

/// How a command failed, before it is mapped to a `Reply`.
enum Failure {
    /// The connection could not be opened: nothing was sent.
    Connect(String),
    /// The server answered with an error: the command did not happen.
    Server { readonly: bool, msg: String },
    /// Timeout or lost connection after sending: the outcome is unknown.
    Indeterminate(String),
}

impl RedisSession {
    fn new(topo: Arc<Topology>, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let refresh_every =
            Duration::from_millis(rng.random_range(REFRESH_MIN_MS..=REFRESH_MAX_MS));
        RedisSession {
            conns: vec![None; topo.nodes.len()],
            primary: topo.initial_primary,
            refreshed: Some(Instant::now()),
            refresh_every,
            topo,
            rng,
        }
    }

    /// With Sentinel: asks one (the first that answers, starting at a random one) who the
    /// primary is, when the cache is marked stale or old enough.
    async fn maybe_refresh(&mut self) {
        let topo = self.topo.clone();
        if topo.sentinels.is_empty() {
            return;
        }
        if self
            .refreshed
            .is_some_and(|t| t.elapsed() < self.refresh_every)
        {
            return;
        }
        let start = self.rng.random_range(0..topo.sentinels.len());
        for k in 0..topo.sentinels.len() {
            let s = topo.sentinels[(start + k) % topo.sentinels.len()];
            if let Ok(Some(addr)) = sentinel_primary(s).await
                && let Some(i) = topo.index_of(addr)
            {
                self.primary = i;
                self.refreshed = Some(Instant::now());
                return;
            }
        }
        // No sentinel answered: keep the cached primary, ask again before the next write.
        self.refreshed = None;
    }

    async fn conn(&mut self, i: usize) -> Result<&mut MultiplexedConnection, Failure> {
        if self.conns[i].is_none() {
            let c = connect(self.topo.nodes[i].addr, self.topo.timeout)
                .await
                .map_err(Failure::Connect)?;
            self.conns[i] = Some(c);
        }
        Ok(self.conns[i].as_mut().expect("just opened"))
    }

    /// Runs `cmd` on node `i` within `budget`; any failure but a server error drops the
    /// connection (a late answer must not be mistaken for the next command's).
    async fn run(
        &mut self,
        i: usize,
        cmd: &redis::Cmd,
        budget: Duration,
    ) -> Result<RValue, Failure> {
        let conn = self.conn(i).await?;
        let res = tokio::time::timeout(budget, cmd.query_async::<RValue>(conn)).await;
        match res {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) if is_server_error(&e) => Err(Failure::Server {
                readonly: e.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly),
                msg: one_line(&e),
            }),
            Ok(Err(e)) => {
                self.conns[i] = None;
                Err(Failure::Indeterminate(one_line(&e)))
            }
            Err(_) => {
                self.conns[i] = None;
                Err(Failure::Indeterminate(format!(
                    "no answer within {} ms",
                    budget.as_millis()
                )))
            }
        }
    }

    async fn write(&mut self, req: Request) -> Reply {
        self.maybe_refresh().await;
        let i = self.primary;
        let node = self.topo.nodes[i].id.clone();
        let cmd = match write_cmd(&req) {
            Ok(cmd) => cmd,
            Err(refused) => return refused,
        };
        let started = Instant::now();
        let timeout = self.topo.timeout;
        let answer = match self.run(i, &cmd, timeout).await {
            Ok(v) => v,
            Err(f) => return self.write_failure(node, f),
        };
        if let Request::Cas { .. } = req
            && !matches!(answer, RValue::Int(1))
        {
            return Reply::Fail {
                node: Some(node),
                error: "cas: the value differs from the expected one".into(),
            };
        }
        let k = self.topo.wait_acks;
        if k > 0
            && let Err(unknown) = self
                .wait_replicas(i, &node, k, timeout.saturating_sub(started.elapsed()))
                .await
        {
            return unknown;
        }
        Reply::Ok {
            value: Value::Null,
            node,
            meta: None,
            siblings: None,
        }
    }

    /// Redis WAIT for `k` replicas, on the connection the write went out on (WAIT counts
    /// that connection's writes only), within `left` of the write's budget (at least 1 ms:
    /// 0 blocks forever); an `Unknown` reply when fewer acknowledged or WAIT failed.
    async fn wait_replicas(
        &mut self,
        i: usize,
        node: &str,
        k: usize,
        left: Duration,
    ) -> Result<(), Reply> {
        let wait_ms = left.as_millis().clamp(1, u128::from(u32::MAX)) as u64;
        let mut c = redis::cmd("WAIT");
        c.arg(k).arg(wait_ms);
        let unknown = |error: String| {
            Err(Reply::Unknown {
                node: Some(node.to_owned()),
                error,
            })
        };
        match self
            .run(i, &c, Duration::from_millis(wait_ms) + WAIT_SLACK)
            .await
        {
            Ok(RValue::Int(acks)) if acks >= k as i64 => Ok(()),
            Ok(RValue::Int(acks)) => unknown(format!(
                "on the primary, but only {acks} of {k} replicas acknowledged within {wait_ms} ms"
            )),
            Ok(other) => unknown(format!("unexpected WAIT answer {other:?}")),
            Err(f) => {
                self.refreshed = None;
                let error = match f {
                    Failure::Connect(m)
                    | Failure::Indeterminate(m)
                    | Failure::Server { msg: m, .. } => m,
                };
                unknown(format!("written, but WAIT failed: {error}"))
            }
        }
    }

    fn write_failure(&mut self, node: NodeId, f: Failure) -> Reply {
        // Any failed write may mean the primary moved: ask a sentinel before the next one.
        self.refreshed = None;
        match f {
            Failure::Connect(error) => Reply::Fail {
                node: Some(node),
                error,
            },
            Failure::Server { readonly, msg } => Reply::Fail {
                node: Some(node),
                error: if readonly {
                    format!("{msg} (no longer the primary)")
                } else {
                    msg
                },
            },
            Failure::Indeterminate(error) => Reply::Unknown {
                node: Some(node),
                error,
            },
        }
    }

    fn read_node(&mut self) -> usize {
        let n = self.topo.nodes.len();
        match self.topo.reads {
            ReadRouting::Any => self.rng.random_range(0..n),
            ReadRouting::Follower if n > 1 => {
                (self.primary + 1 + self.rng.random_range(0..n - 1)) % n
            }
            // Leader, and the routings Redis has no way to honour (ryw, sticky), read
            // from the primary.
            _ => self.primary,
        }
    }

    async fn read(&mut self, key: u64) -> Reply {
        if self.topo.reads == ReadRouting::Leader {
            self.maybe_refresh().await;
        }
        let i = self.read_node();
        let node = self.topo.nodes[i].id.clone();
        let mut cmd = redis::cmd("EVAL_RO");
        cmd.arg(READ_SCRIPT).arg(1).arg(key_name(key));
        let timeout = self.topo.timeout;
        match self.run(i, &cmd, timeout).await {
            Ok(v) => match parse_read(&v) {
                Ok(value) => Reply::Ok {
                    value,
                    node,
                    meta: None,
                    siblings: None,
                },
                Err(error) => Reply::Fail {
                    node: Some(node),
                    error,
                },
            },
            // A read changes nothing: whatever went wrong, it did not happen.
            Err(Failure::Connect(error))
            | Err(Failure::Indeterminate(error))
            | Err(Failure::Server { msg: error, .. }) => Reply::Fail {
                node: Some(node),
                error,
            },
        }
    }
}

impl fmt::Debug for RedisSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSession")
            .field("primary", &self.topo.nodes[self.primary].id)
            .field("refresh_every", &self.refresh_every)
            .finish()
    }
}

impl DbSession for RedisSession {
    fn invoke(&mut self, req: Request) -> BoxFuture<'_, Reply> {
        Box::pin(async move {
            match req {
                Request::Read { key } => self.read(key).await,
                _ => self.write(req).await,
            }
        })
    }
}

/// The Redis key of a history key.
fn key_name(key: u64) -> String {
    format!("k{key}")
}

/// A Redis answer as one line.
fn one_line(e: &RedisError) -> String {
    e.to_string().replace('\n', " ")
}

/// True when the server answered with an error reply (the command did not happen).
fn is_server_error(e: &RedisError) -> bool {
    matches!(e.kind(), ErrorKind::Server(_) | ErrorKind::Extension)
}

/// Decodes `READ_SCRIPT`'s answer.
fn parse_read(v: &RValue) -> Result<Value, String> {
    let RValue::Array(items) = v else {
        return Err(format!("unexpected read answer {v:?}"));
    };
    let tag = items.first().and_then(as_text);
    match tag.as_deref() {
        Some("n") => Ok(Value::Null),
        Some("s") => match items.get(1) {
            None | Some(RValue::Nil) => Ok(Value::Null),
            Some(x) => as_int(x).map(Value::Int),
        },
        Some("l") => {
            let list = match items.get(1) {
                Some(RValue::Array(xs)) => xs.iter().map(as_int).collect::<Result<Vec<_>, _>>()?,
                None | Some(RValue::Nil) => Vec::new(),
                Some(other) => return Err(format!("unexpected list answer {other:?}")),
            };
            Ok(Value::list(list))
        }
        _ => Err(format!("unexpected read answer {v:?}")),
    }
}

fn as_text(v: &RValue) -> Option<String> {
    match v {
        RValue::BulkString(b) => String::from_utf8(b.clone()).ok(),
        RValue::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn as_int(v: &RValue) -> Result<i64, String> {
    match v {
        RValue::Int(i) => Ok(*i),
        other => as_text(other)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("not an integer: {other:?}")),
    }
}

/// A `key:value` field of an `INFO` answer.
fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines().find_map(|l| {
        let (k, v) = l.trim_end().split_once(':')?;
        (k == name).then_some(v)
    })
}

/// A fresh connection with our own timeouts (responses are timed by the caller).
async fn connect(addr: SocketAddr, timeout: Duration) -> Result<MultiplexedConnection, String> {
    let client = redis::Client::open(format!("redis://{addr}/")).map_err(|e| one_line(&e))?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(None);
    match tokio::time::timeout(
        timeout + Duration::from_millis(100),
        client.get_multiplexed_async_connection_with_config(&config),
    )
    .await
    {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(format!("cannot connect to {addr}: {}", one_line(&e))),
        Err(_) => Err(format!(
            "cannot connect to {addr} within {} ms",
            timeout.as_millis()
        )),
    }
}

/// One control-plane question on a fresh connection, within `CONTROL_TIMEOUT`.
async fn ask(addr: SocketAddr, cmd: &redis::Cmd) -> Result<RValue, String> {
    let mut c = connect(addr, CONTROL_TIMEOUT).await?;
    match tokio::time::timeout(CONTROL_TIMEOUT, cmd.query_async::<RValue>(&mut c)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{addr}: {}", one_line(&e))),
        Err(_) => Err(format!(
            "{addr}: no answer within {} ms",
            CONTROL_TIMEOUT.as_millis()
        )),
    }
}

async fn info_replication(addr: SocketAddr) -> Result<String, String> {
    let mut c = redis::cmd("INFO");
    c.arg("replication");
    match ask(addr, &c).await? {
        v @ (RValue::BulkString(_) | RValue::SimpleString(_)) => {
            as_text(&v).ok_or_else(|| "INFO is not text".into())
        }
        RValue::VerbatimString { text, .. } => Ok(text),
        other => Err(format!("unexpected INFO answer {other:?}")),
    }
}

/// `SENTINEL get-master-addr-by-name`: the primary this sentinel names, if any.
async fn sentinel_primary(sentinel: SocketAddr) -> Result<Option<SocketAddr>, String> {
    let mut c = redis::cmd("SENTINEL");
    c.arg("get-master-addr-by-name").arg(MASTER_NAME);
    match ask(sentinel, &c).await? {
        RValue::Nil => Ok(None),
        RValue::Array(xs) if xs.len() == 2 => {
            let host = as_text(&xs[0]).ok_or("bad host")?;
            let port = as_int(&xs[1])?;
            let ip: Ipv4Addr = host.parse().map_err(|_| format!("bad host {host:?}"))?;
            let port = u16::try_from(port).map_err(|_| format!("bad port {port}"))?;
            Ok(Some(SocketAddr::from((ip, port))))
        }
        other => Err(format!("unexpected sentinel answer {other:?}")),
    }
}

/// How many `replicas` or `sentinels` a sentinel knows for the primary.
async fn sentinel_count(sentinel: SocketAddr, what: &str) -> Result<usize, String> {
    let mut c = redis::cmd("SENTINEL");
    c.arg(what).arg(MASTER_NAME);
    match ask(sentinel, &c).await? {
        RValue::Array(xs) => Ok(xs.len()),
        other => Err(format!("unexpected sentinel answer {other:?}")),
    }
}

/// A path as a quoted config argument.
fn quoted(p: &Path) -> String {
    format!(
        "\"{}\"",
        p.display()
            .to_string()
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
    )
}

/// The command that carries a write (`SET`, `RPUSH`, or the cas script), or the refusal
/// of an operation the adapter does not support.
fn write_cmd(req: &Request) -> Result<redis::Cmd, Reply> {
    let key = key_name(req.key());
    let mut c;
    match req {
        Request::Write { value, .. } => {
            c = redis::cmd("SET");
            c.arg(&key).arg(value);
        }
        Request::Append { value, .. } => {
            c = redis::cmd("RPUSH");
            c.arg(&key).arg(value);
        }
        Request::Cas { expected, new, .. } => {
            c = redis::cmd("EVAL");
            c.arg(CAS_SCRIPT).arg(1).arg(&key).arg(expected).arg(new);
        }
        other => {
            return Err(Reply::Fail {
                node: None,
                error: format!("redis adapter: {:?} is not supported", other.f()),
            });
        }
    }
    Ok(c)
}

/// Where each node's server and sentinel listen, where each runs (here, inside its
/// namespace, or on its host over SSH) and keeps its files and logs.
struct Layout {
    servers: Vec<SocketAddr>,
    sentinels: Vec<SocketAddr>,
    execs: Vec<Arc<dyn Exec>>,
    /// Node i's files (`<dir>/<id>`) and logs (`<log>/<name>.log`), on its host.
    dirs: Vec<PathBuf>,
    logs: Vec<PathBuf>,
}

impl Layout {
    /// Free loopback ports, or each namespace's own address on the default ports.
    fn of(spec: &DbSpec, n: usize) -> Result<Layout, TargetError> {
        match &spec.placement {
            Placement::Loopback { base_port } => {
                let ports = loopback_ports(2 * n, *base_port)?;
                let at = |p: u16| SocketAddr::from((Ipv4Addr::LOCALHOST, p));
                Ok(Layout {
                    servers: ports[..n].iter().map(|&p| at(p)).collect(),
                    sentinels: ports[n..].iter().map(|&p| at(p)).collect(),
                    execs: (0..n).map(|_| Local::on(None)).collect(),
                    dirs: vec![spec.data_dir.clone(); n],
                    logs: vec![spec.log_dir.clone(); n],
                })
            }
            Placement::Netns { namespaces, addrs } => {
                if namespaces.len() < n || addrs.len() < n {
                    return Err(TargetError::Invalid(format!(
                        "redis: {n} nodes but {} namespaces and {} addresses",
                        namespaces.len(),
                        addrs.len()
                    )));
                }
                let at = |port: u16| addrs[..n].iter().map(move |&a| SocketAddr::from((a, port)));
                Ok(Layout {
                    servers: at(NETNS_SERVER_PORT).collect(),
                    sentinels: at(NETNS_SENTINEL_PORT).collect(),
                    execs: namespaces[..n]
                        .iter()
                        .map(|ns| Local::on(Some(ns.clone())))
                        .collect(),
                    dirs: vec![spec.data_dir.clone(); n],
                    logs: vec![spec.log_dir.clone(); n],
                })
            }
            Placement::Hosts(h) => {
                if h.execs.len() < n || h.addrs.len() < n || h.run_dirs.len() < n {
                    return Err(TargetError::Invalid(format!(
                        "redis: {n} nodes need {n} hosts, got {}",
                        h.execs.len()
                    )));
                }
                let at = |port: u16| {
                    h.addrs[..n]
                        .iter()
                        .map(move |&a| SocketAddr::from((a, port)))
                };
                let dirs: Vec<PathBuf> = h.run_dirs[..n].iter().map(PathBuf::from).collect();
                Ok(Layout {
                    servers: at(NETNS_SERVER_PORT).collect(),
                    sentinels: at(NETNS_SENTINEL_PORT).collect(),
                    execs: h.execs[..n].to_vec(),
                    logs: dirs.clone(),
                    dirs,
                })
            }
        }
    }

    /// Every node's server (in `<data_dir>/<id>`, each a replica of the first) or, with
    /// `sentinels`, every node's sentinel monitoring the first server (it shares its node's
    /// clock, `spec.env_of(i)`). Dropping the result on an error kills those started.
    fn spawn_all(
        &self,
        spec: &DbSpec,
        ids: &[NodeId],
        bin: &Path,
        sentinels: bool,
    ) -> Result<Vec<ManagedProcess>, TargetError> {
        let primary = self.servers[0];
        let mut started = Vec::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            let dir = self.dirs[i].join(id);
            let (name, conf) = if sentinels {
                let text = sentinel_conf(&dir, self.sentinels[i], primary);
                (format!("sentinel-{id}"), (dir.join("sentinel.conf"), text))
            } else {
                let text = server_conf(&dir, self.servers[i], (i > 0).then_some(primary));
                (id.clone(), (dir.join("redis.conf"), text))
            };
            started.push(self.spawn(spec, (i, name), bin, conf)?);
        }
        Ok(started)
    }

    /// Writes `conf` (path, text) and starts `program` on it for node `i`, as process
    /// `name` (logging to `<log_dir>/<name>.log`), in the config's directory.
    fn spawn(
        &self,
        spec: &DbSpec,
        (i, name): (usize, String),
        program: &Path,
        (conf, text): (PathBuf, String),
    ) -> Result<ManagedProcess, TargetError> {
        // The config's folder is the server's data folder (made with it).
        put_file(&*self.execs[i], &conf, &text)?;
        ManagedProcess::spawn(ProcessSpec {
            log: self.logs[i].join(format!("{name}.log")),
            node: name,
            program: program.to_owned(),
            args: vec![conf.display().to_string()],
            env: spec.env_of(i).to_vec(),
            exec: self.execs[i].clone(),
            user: None,
            cwd: conf.parent().map(Path::to_owned),
        })
    }
}

/// A server's config: the append-only file written and fsynced before each reply
/// (`appendfsync everysec` may postpone the write behind a slow fsync and still reply,
/// so an acknowledged write could die with the process), no RDB snapshots, diskless
/// replication without delay, logging to stdout (the process log), and the process title
/// left alone so that the command line keeps the config path.
fn server_conf(dir: &Path, addr: SocketAddr, replica_of: Option<SocketAddr>) -> String {
    let mut s = format!(
        "port {port}\nbind {ip}\nprotected-mode no\ndaemonize no\nset-proc-title no\n\
         dir {dir}\nlogfile \"\"\nsave \"\"\nappendonly yes\nappendfsync always\n\
         repl-diskless-sync yes\nrepl-diskless-sync-delay 0\n",
        port = addr.port(),
        ip = addr.ip(),
        dir = quoted(dir),
    );
    if let Some(p) = replica_of {
        s.push_str(&format!("replicaof {} {}\n", p.ip(), p.port()));
    }
    s
}

/// A sentinel's config (Sentinel rewrites it as it learns the cluster).
fn sentinel_conf(dir: &Path, addr: SocketAddr, primary: SocketAddr) -> String {
    format!(
        "port {port}\nbind {ip}\nprotected-mode no\ndaemonize no\nset-proc-title no\n\
         dir {dir}\nlogfile \"\"\n\
         sentinel monitor {MASTER_NAME} {pip} {pport} {SENTINEL_QUORUM}\n\
         sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n\
         sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n\
         sentinel parallel-syncs {MASTER_NAME} 1\n",
        port = addr.port(),
        ip = addr.ip(),
        dir = quoted(dir),
        pip = primary.ip(),
        pport = primary.port(),
    )
}

/// `e` with the last lines of `p`'s log (read on its host).
fn last_lines(p: &ManagedProcess, e: TargetError) -> TargetError {
    TargetError::Invalid(format!(
        "{e}; last lines of {} on {}: {}",
        p.spec().log.display(),
        p.exec().name(),
        p.log_tail(3)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> RValue {
        RValue::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn reads_decode_registers_lists_and_absent_keys() {
        assert_eq!(parse_read(&RValue::Array(vec![bulk("n")])), Ok(Value::Null));
        assert_eq!(
            parse_read(&RValue::Array(vec![bulk("s"), bulk("42")])),
            Ok(Value::Int(42))
        );
        assert_eq!(
            parse_read(&RValue::Array(vec![
                bulk("l"),
                RValue::Array(vec![bulk("3"), bulk("1"), bulk("2")])
            ])),
            Ok(Value::list(vec![3, 1, 2]))
        );
        assert!(parse_read(&RValue::Array(vec![bulk("s"), bulk("x")])).is_err());
        assert!(parse_read(&RValue::Okay).is_err());
    }

    #[test]
    fn info_fields_are_found_by_exact_name() {
        let info =
            "# Replication\r\nrole:slave\r\nmaster_link_status:up\r\nmaster_link_status_x:down\r\n";
        assert_eq!(info_field(info, "role"), Some("slave"));
        assert_eq!(info_field(info, "master_link_status"), Some("up"));
        assert_eq!(info_field(info, "missing"), None);
    }

    #[test]
    fn configs_keep_the_path_and_persist_every_acknowledged_write() {
        let dir = Path::new("/tmp/run x/data/n2");
        let me: SocketAddr = "127.0.0.1:7001".parse().unwrap();
        let p: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        let c = server_conf(dir, me, Some(p));
        for line in [
            "port 7001",
            "bind 127.0.0.1",
            "save \"\"",
            "appendonly yes",
            "appendfsync always",
            "set-proc-title no",
            "repl-diskless-sync yes",
            "repl-diskless-sync-delay 0",
            "replicaof 127.0.0.1 7000",
            "dir \"/tmp/run x/data/n2\"",
        ] {
            assert!(c.lines().any(|l| l == line), "{line:?} missing in\n{c}");
        }
        assert!(!server_conf(dir, p, None).contains("replicaof"));
        let s = sentinel_conf(dir, "127.0.0.1:7100".parse().unwrap(), p);
        assert!(
            s.contains("sentinel monitor mymaster 127.0.0.1 7000 2\n"),
            "{s}"
        );
        assert!(s.contains("down-after-milliseconds mymaster 1000\n"), "{s}");
        assert!(s.contains("failover-timeout mymaster 5000\n"), "{s}");
    }

    #[test]
    fn follower_reads_never_pick_the_primary() {
        let topo = Arc::new(Topology {
            nodes: (1..=3)
                .map(|i| NodeAddr {
                    id: format!("n{i}"),
                    addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 7000 + i)),
                })
                .collect(),
            sentinels: Vec::new(),
            initial_primary: 0,
            reads: ReadRouting::Follower,
            wait_acks: 0,
            timeout: Duration::from_secs(1),
        });
        let mut s = RedisSession::new(topo, 7);
        let picks: Vec<usize> = (0..200).map(|_| s.read_node()).collect();
        assert!(picks.iter().all(|&i| i != 0));
        assert!(picks.contains(&1) && picks.contains(&2));
    }
}
