//! Lifecycle of a reference cluster: one OS process per node, started, signalled and
//! stopped by pid.
//!
//! Guarantees: `start` checks every port before spawning anything and fails with one line
//! naming the port; it returns only when every node answers `/status` and knows the
//! leader, or reports the node that exited (with the tail of its log) or timed out. Every
//! process started is stopped by its own pid: `stop` (SIGTERM, a grace period, then
//! SIGKILL, always reaped), `kill`, and `Drop` (SIGKILL and reap, for panics and early
//! returns). Nodes run in their own process group, so a terminal's Ctrl-C reaches only the
//! runner, which then stops them in order; if the runner is SIGKILLed, each node notices
//! its parent is gone and exits by itself.
//!
//! Every node is a `ManagedProcess` started through its host's `Exec`: `Local` here
//! (inside network namespace i with `ClusterSpec::netns`, listening on its address there;
//! the namespaces must exist, the nemesis creates them) or a host over SSH with
//! `ClusterSpec::hosts` (its config uploaded into the host's run folder, the node a child
//! of the host's sshd). One start, signal, kill and stop path for all three placements:
//! only the `Exec` differs; `stop` downloads a remote node's log into the local log
//! folder. The admin calls (`set_clock`, `set_links`, `dump`) reach a node's admin API.

use super::node::{ClockRequest, Dump, LinksRequest, NodeConfig};
use super::replica::ReplicaSettings;
use super::{Durability, Failover, Model, NodeId, Replication, Topology};
use crate::client::{ClientOptions, Endpoint, ReadRouting, ReferenceClient, fetch_status};
use crate::error::TargetError;
use crate::process::{ManagedProcess, ProcessSpec, create_run_dirs, log_tail, pick_ports};
use crate::reference::leader_follower::Status;
use crate::remote::{Exec, Local};
use nix::sys::signal::Signal;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to start.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSpec {
    /// The executable that runs a node as `<exe> node --config <file>` (the schism binary).
    pub exe: PathBuf,
    pub nodes: usize,
    /// Node i (from 0) listens on `base_port + i`; `None` picks free ports.
    pub base_port: Option<u16>,
    /// Node `<id>` keeps its log and config in `data_dir/<id>`.
    pub data_dir: PathBuf,
    /// Node `<id>`'s stdout and stderr are appended to `log_dir/<id>.log`.
    pub log_dir: PathBuf,
    pub replication: Replication,
    pub durability: Durability,
    pub failover: Failover,
    pub fencing: bool,
    pub read_lease: bool,
    pub topology: Topology,
    /// Replication model of every node.
    pub model: Model,
    /// Multi-leader and leaderless settings.
    pub replica: ReplicaSettings,
    /// Tokio workers per node process.
    /// Leader-follower: ship new entries to followers at most this often (0: at once).
    pub ship_interval_ms: u64,
    pub worker_threads: usize,
    /// How long `start` and `restart` wait for nodes to answer.
    pub startup_timeout_ms: u64,
    /// How long `stop` waits after SIGTERM before SIGKILL.
    pub stop_grace_ms: u64,
    /// Run node i inside `namespaces[i]` on `addrs[i]:port` instead of on loopback.
    pub netns: Option<NetnsPlacement>,
    /// Run node i on host i (over SSH) instead of here.
    pub hosts: Option<HostsPlacement>,
}

/// Where nodes run when each has its own host.
#[derive(Debug, Clone)]
pub struct HostsPlacement {
    /// One host per node, in node order.
    pub execs: Vec<Arc<dyn Exec>>,
    /// Node i's address (host i's address).
    pub addrs: Vec<Ipv4Addr>,
    /// Every node listens on this port.
    pub port: u16,
    /// The schism binary on each host.
    pub exes: Vec<String>,
    /// This run's folder on each host (node `<id>` keeps its files in `<folder>/<id>`).
    pub run_dirs: Vec<String>,
}

impl Eq for HostsPlacement {}

impl PartialEq for HostsPlacement {
    fn eq(&self, other: &Self) -> bool {
        self.addrs == other.addrs
            && self.port == other.port
            && self.exes == other.exes
            && self.run_dirs == other.run_dirs
    }
}

/// Where nodes run when each has its own network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetnsPlacement {
    /// One existing namespace per node, in node order.
    pub namespaces: Vec<String>,
    /// Node i's address inside its namespace.
    pub addrs: Vec<Ipv4Addr>,
    /// Every node listens on this port (each in its own namespace).
    pub port: u16,
}

impl Default for ClusterSpec {
    /// Three nodes of `schism` (found on PATH) on free ports, data and logs under the
    /// current directory; callers normally override `exe`, `data_dir` and `log_dir`.
    fn default() -> Self {
        ClusterSpec::new("schism", 3, "data", "logs")
    }
}

impl ClusterSpec {
    pub fn new(
        exe: impl Into<PathBuf>,
        nodes: usize,
        data_dir: impl Into<PathBuf>,
        log_dir: impl Into<PathBuf>,
    ) -> ClusterSpec {
        ClusterSpec {
            exe: exe.into(),
            nodes,
            base_port: None,
            data_dir: data_dir.into(),
            log_dir: log_dir.into(),
            replication: Replication::default(),
            durability: Durability::default(),
            failover: Failover::default(),
            fencing: true,
            read_lease: false,
            topology: Topology::default(),
            model: Model::default(),
            replica: ReplicaSettings::default(),
            worker_threads: 2,
            ship_interval_ms: 0,
            startup_timeout_ms: 10_000,
            stop_grace_ms: 2_000,
            netns: None,
            hosts: None,
        }
    }
}

#[derive(Debug)]
struct NodeProc {
    id: NodeId,
    addr: SocketAddr,
    /// The node's log here (for a node on another host: where `stop` downloads it).
    log_path: PathBuf,
    /// The node's process, started through its host's `Exec` (paths on that host).
    proc: ManagedProcess,
    paused: bool,
    netns: Option<String>,
}

impl NodeProc {
    /// The node's pid on its host, while it runs.
    fn pid(&self) -> Option<u32> {
        self.proc.pid()
    }

    fn is_remote(&self) -> bool {
        !self.proc.exec().is_local()
    }

    fn signal(&self, signal: Signal) -> Result<(), TargetError> {
        self.proc.signal(signal)
    }

    /// Copies a remote node's log into the local log folder (best effort: the node's
    /// own log stays on the host until the run folder there is removed).
    fn fetch_log(&self) {
        self.proc.fetch_log(&self.log_path);
    }
}

/// A running reference cluster. Leader is the first node (`n1`).
#[derive(Debug)]
pub struct ReferenceCluster {
    spec: ClusterSpec,
    leader: NodeId,
    nodes: Vec<NodeProc>,
    http: reqwest::Client,
}

impl ReferenceCluster {
    /// Checks ports, writes configs, spawns every node and waits until all are ready.
    pub async fn start(spec: ClusterSpec) -> Result<ReferenceCluster, TargetError> {
        if spec.nodes == 0 {
            return Err(TargetError::Invalid(
                "a cluster needs at least one node".into(),
            ));
        }
        let ids: Vec<NodeId> = (1..=spec.nodes).map(|i| format!("n{i}")).collect();
        let addrs = node_addrs(&spec, &ids)?;
        create_run_dirs(&spec.data_dir, &spec.log_dir)?;
        let peers: BTreeMap<NodeId, SocketAddr> = ids
            .iter()
            .zip(&addrs)
            .map(|(id, addr)| (id.clone(), *addr))
            .collect();
        let leader = ids[0].clone();
        let nodes = ids
            .iter()
            .enumerate()
            .map(|(i, id)| write_node(&spec, i, id, &peers, &leader))
            .collect::<Result<Vec<_>, _>>()?;
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(|e| TargetError::Client(e.to_string()))?;
        // From here on, Drop kills whatever was spawned if anything below fails.
        let mut cluster = ReferenceCluster {
            spec,
            leader,
            nodes,
            http,
        };
        for i in 0..cluster.nodes.len() {
            cluster.spawn(i)?;
        }
        let all: Vec<usize> = (0..cluster.nodes.len()).collect();
        cluster.wait_ready(&all, true).await?;
        Ok(cluster)
    }

    pub fn leader(&self) -> &str {
        &self.leader
    }

    pub fn node_ids(&self) -> Vec<NodeId> {
        self.nodes.iter().map(|n| n.id.clone()).collect()
    }

    /// Every node with its address, for `ReferenceClient::new`.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        self.nodes
            .iter()
            .map(|n| Endpoint {
                id: n.id.clone(),
                addr: n.addr,
            })
            .collect()
    }

    pub fn addr(&self, node: &str) -> Option<SocketAddr> {
        self.nodes.iter().find(|n| n.id == node).map(|n| n.addr)
    }

    /// The pid of a running node.
    pub fn pid(&self, node: &str) -> Option<u32> {
        self.nodes
            .iter()
            .find(|n| n.id == node)
            .and_then(NodeProc::pid)
    }

    /// Pids of all running nodes here (for nodes on other hosts: their SSH sessions).
    pub fn pids(&self) -> Vec<u32> {
        self.nodes
            .iter()
            .filter_map(|n| n.proc.local_pid())
            .collect()
    }

    /// For nodes on other hosts: (host index, pid on the host) of each running one.
    pub fn remote_pids(&self) -> Vec<(usize, u32)> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.is_remote())
            .filter_map(|(i, n)| n.pid().map(|p| (i, p)))
            .collect()
    }

    pub fn log_path(&self, node: &str) -> Option<&Path> {
        self.nodes
            .iter()
            .find(|n| n.id == node)
            .map(|n| n.log_path.as_path())
    }

    pub fn data_dir(&self, node: &str) -> PathBuf {
        self.spec.data_dir.join(node)
    }

    pub fn spec(&self) -> &ClusterSpec {
        &self.spec
    }

    /// A client for this cluster: reads routed by `routing`, each request bounded by `timeout`.
    pub fn client(
        &self,
        routing: ReadRouting,
        timeout: Duration,
    ) -> Result<ReferenceClient, TargetError> {
        let timeout_ms = u64::try_from(timeout.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        // Multi-leader and leaderless nodes all take writes: spread them like reads.
        ReferenceClient::new(
            &self.endpoints(),
            &self.leader,
            ClientOptions {
                routing,
                timeout_ms,
                discover_leader: self.spec.failover == Failover::Auto,
            },
        )
        .map(|c| c.with_writes_to_any_node(self.spec.model != Model::LeaderFollower))
    }

    /// One line for people: `n1=127.0.0.1:40001 (leader, pid 123), n2=…`.
    pub fn describe(&self) -> String {
        self.nodes
            .iter()
            .map(|n| {
                let role = if n.id == self.leader {
                    "leader"
                } else {
                    "follower"
                };
                let on = if n.is_remote() {
                    format!("on {}, ", n.proc.exec().name())
                } else {
                    String::new()
                };
                match n.pid() {
                    Some(pid) => format!("{}={} ({role}, {on}pid {pid})", n.id, n.addr),
                    None => format!("{}={} ({role}, not running)", n.id, n.addr),
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// A lag probe for this cluster (leader-follower only: the other models have no
    /// single source to trail).
    pub fn lag_probe(&self) -> Option<Box<dyn crate::lag::LagProbe>> {
        if self.spec.model != Model::LeaderFollower {
            return None;
        }
        Some(Box::new(crate::lag::ReferenceLag {
            http: self.http.clone(),
            nodes: self.nodes.iter().map(|n| (n.id.clone(), n.addr)).collect(),
        }))
    }

    /// One node's `/status` (1 s timeout).
    pub async fn status(&self, node: &str) -> Result<Status, TargetError> {
        let n = self.node(node)?;
        let url = format!("http://{}/status", self.nodes[n].addr);
        fetch_status(&self.http, &url, Duration::from_secs(1))
            .await
            .map_err(|msg| TargetError::Node {
                node: node.to_owned(),
                msg,
            })
    }

    /// Whether the node's process is running (paused counts as running).
    pub fn is_running(&self, node: &str) -> bool {
        self.pid(node).is_some()
    }

    /// Whether the node was paused (SIGSTOP) and not resumed since.
    pub fn is_paused(&self, node: &str) -> bool {
        self.nodes.iter().any(|n| n.id == node && n.paused)
    }

    /// The network namespace a node runs in, if any.
    pub fn netns(&self, node: &str) -> Option<&str> {
        self.nodes
            .iter()
            .find(|n| n.id == node)
            .and_then(|n| n.netns.as_deref())
    }

    /// `POST /admin/clock`: from now on the node's clock is real time + `offset_ms`,
    /// running at `rate`.
    pub async fn set_clock(
        &self,
        node: &str,
        offset_ms: f64,
        rate: f64,
    ) -> Result<(), TargetError> {
        self.admin_post(node, "clock", &ClockRequest { offset_ms, rate })
            .await
    }

    /// `POST /admin/links`: the node drops replication traffic from `cut` (and to it,
    /// unless `one_way`).
    pub async fn set_links(
        &self,
        node: &str,
        cut: &[NodeId],
        one_way: bool,
    ) -> Result<(), TargetError> {
        self.admin_post(
            node,
            "links",
            &LinksRequest {
                cut: cut.to_vec(),
                one_way,
            },
        )
        .await
    }

    /// `GET /admin/dump`: the node's status and every key's value.
    pub async fn dump(&self, node: &str) -> Result<Dump, TargetError> {
        let n = self.node(node)?;
        let url = format!("http://{}/admin/dump", self.nodes[n].addr);
        let err = |msg: String| TargetError::Node {
            node: node.to_owned(),
            msg,
        };
        let resp = self
            .http
            .get(&url)
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .map_err(|e| err(crate::client::error_text(&e)))?;
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| err(crate::client::error_text(&e)))?;
        serde_json::from_slice(&bytes).map_err(|e| err(format!("unreadable dump: {e}")))
    }

    async fn admin_post<T: serde::Serialize>(
        &self,
        node: &str,
        what: &str,
        body: &T,
    ) -> Result<(), TargetError> {
        let n = self.node(node)?;
        let url = format!("http://{}/admin/{what}", self.nodes[n].addr);
        let err = |msg: String| TargetError::Node {
            node: node.to_owned(),
            msg: format!("admin {what}: {msg}"),
        };
        let resp = self
            .http
            .post(&url)
            .timeout(Duration::from_secs(2))
            .json(body)
            .send()
            .await
            .map_err(|e| err(crate::client::error_text(&e)))?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            return Err(err(format!("HTTP {status}: {text}")));
        }
        Ok(())
    }

    /// SIGKILL and reap; the data directory stays.
    pub async fn kill(&mut self, node: &str) -> Result<(), TargetError> {
        let n = self.node(node)?;
        let p = &mut self.nodes[n];
        p.proc.kill().await?;
        p.paused = false;
        Ok(())
    }

    /// Kills the node if it runs, then starts it again with the same command and waits
    /// until it answers.
    pub async fn restart(&mut self, node: &str) -> Result<(), TargetError> {
        self.kill(node).await?;
        let n = self.node(node)?;
        self.spawn(n)?;
        self.wait_ready(&[n], false).await
    }

    /// SIGSTOP: the process stays, frozen, with its sockets open.
    pub fn pause(&mut self, node: &str) -> Result<(), TargetError> {
        self.set_paused(node, true)
    }

    /// SIGCONT.
    pub fn resume(&mut self, node: &str) -> Result<(), TargetError> {
        self.set_paused(node, false)
    }

    /// SIGSTOP (`paused`) or SIGCONT, returning once the node's host shows the process in
    /// that state (the `Exec` settles it): signal delivery is asynchronous, and the
    /// nemesis records the fault only then.
    fn set_paused(&mut self, node: &str, paused: bool) -> Result<(), TargetError> {
        let n = self.node(node)?;
        let signal = if paused {
            Signal::SIGSTOP
        } else {
            Signal::SIGCONT
        };
        let p = &mut self.nodes[n];
        p.signal(signal)?;
        p.paused = paused;
        Ok(())
    }

    /// SIGTERM every node (and SIGCONT the paused ones so they can act on it), wait up to
    /// `stop_grace_ms`, SIGKILL what is left, reap everything, then download the logs of
    /// nodes on other hosts. Every node is stopped and every log fetched even when one
    /// kill fails; the last such failure is returned (that process is killed again by
    /// `ManagedProcess`'s Drop).
    pub async fn stop(&mut self) -> Result<(), TargetError> {
        for p in &mut self.nodes {
            if p.proc.is_running() {
                let _ = p.signal(Signal::SIGTERM);
                if p.paused {
                    let _ = p.signal(Signal::SIGCONT);
                }
            }
            p.paused = false;
        }
        let deadline = Instant::now() + Duration::from_millis(self.spec.stop_grace_ms);
        while self.nodes.iter().any(|p| p.proc.is_running()) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut result = Ok(());
        for p in &mut self.nodes {
            // Reaps the exited ones; SIGKILLs (and reaps) the rest.
            if let Err(e) = p.proc.kill().await {
                result = Err(e);
            }
        }
        for p in &self.nodes {
            p.fetch_log();
        }
        result
    }

    fn node(&self, node: &str) -> Result<usize, TargetError> {
        self.nodes
            .iter()
            .position(|n| n.id == node)
            .ok_or_else(|| TargetError::UnknownNode(node.to_owned()))
    }

    fn spawn(&mut self, i: usize) -> Result<(), TargetError> {
        let p = &mut self.nodes[i];
        p.proc.start()?;
        p.paused = false;
        Ok(())
    }

    /// Polls until every node in `which` answers `/status` and names the leader; with
    /// `followers_acked`, also until the leader has heard from every follower (at start, so
    /// the first writes replicate at once instead of after a resend timeout; not on a
    /// restart, where another node may be paused on purpose).
    async fn wait_ready(
        &mut self,
        which: &[usize],
        followers_acked: bool,
    ) -> Result<(), TargetError> {
        let timeout_ms = self.spec.startup_timeout_ms;
        let deadline = Instant::now() + Duration::from_millis(timeout_ms);
        let mut ready = vec![false; self.nodes.len()];
        let mut last_error = vec![String::from("no answer yet"); self.nodes.len()];
        loop {
            for &i in which {
                if ready[i] {
                    continue;
                }
                let p = &mut self.nodes[i];
                if let Some(status) = p.proc.try_exited() {
                    p.fetch_log();
                    return Err(TargetError::NodeExited {
                        node: p.id.clone(),
                        status,
                        log: p.log_path.clone(),
                        tail: log_tail(&p.log_path, 5),
                    });
                }
                let url = format!("http://{}/status", p.addr);
                // After a restart under failover auto, any leader (or none yet) is fine.
                let any_leader = !followers_acked && self.spec.failover == Failover::Auto;
                match fetch_status(&self.http, &url, Duration::from_millis(500)).await {
                    Ok(_) if any_leader => ready[i] = true,
                    Ok(st)
                        if self.spec.model == Model::LeaderFollower
                            && st.leader.as_deref() != Some(self.leader.as_str()) =>
                    {
                        last_error[i] = format!("it names leader {:?}", st.leader)
                    }
                    Ok(st) if followers_acked && st.followers.iter().any(|f| !f.acked) => {
                        last_error[i] = "not every follower has answered the leader yet".into()
                    }
                    Ok(_) => ready[i] = true,
                    Err(e) => last_error[i] = e,
                }
            }
            if which.iter().all(|&i| ready[i]) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let i = which.iter().copied().find(|&i| !ready[i]).unwrap_or(0);
                return Err(TargetError::StartupTimeout {
                    node: self.nodes[i].id.clone(),
                    timeout_ms,
                    last_error: last_error[i].clone(),
                    log: self.nodes[i].log_path.clone(),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Node i's address: its namespace's address, or a free (or `base_port + i`) loopback port.
fn node_addrs(spec: &ClusterSpec, ids: &[NodeId]) -> Result<Vec<SocketAddr>, TargetError> {
    if let Some(h) = &spec.hosts {
        if h.execs.len() != ids.len() || h.addrs.len() != ids.len() {
            return Err(TargetError::Invalid(format!(
                "{} nodes but {} hosts",
                ids.len(),
                h.execs.len()
            )));
        }
        return Ok(h
            .addrs
            .iter()
            .map(|a| SocketAddr::V4(SocketAddrV4::new(*a, h.port)))
            .collect());
    }
    let Some(p) = &spec.netns else {
        return Ok(pick_ports(ids, spec.base_port)?
            .into_iter()
            .map(|port| SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)))
            .collect());
    };
    if p.namespaces.len() != ids.len() || p.addrs.len() != ids.len() {
        return Err(TargetError::Invalid(format!(
            "{} nodes but {} namespaces and {} addresses",
            ids.len(),
            p.namespaces.len(),
            p.addrs.len()
        )));
    }
    Ok(p.addrs
        .iter()
        .map(|a| SocketAddr::V4(SocketAddrV4::new(*a, p.port)))
        .collect())
}

/// Writes node `id`'s config (`data_dir/<id>/node.json`) and returns it, not yet spawned.
fn write_node(
    spec: &ClusterSpec,
    i: usize,
    id: &NodeId,
    peers: &BTreeMap<NodeId, SocketAddr>,
    leader: &str,
) -> Result<NodeProc, TargetError> {
    let dir = spec.data_dir.join(id);
    std::fs::create_dir_all(&dir).map_err(|source| TargetError::DataDir {
        path: dir.clone(),
        source,
    })?;
    // A node on another host keeps its files in the run's folder there.
    let remote_dir = spec
        .hosts
        .as_ref()
        .map(|h| format!("{}/{id}", h.run_dirs[i]));
    let node_dir = remote_dir.as_ref().map_or(dir.clone(), PathBuf::from);
    let mut cfg = NodeConfig::new(id, peers.clone(), leader, node_dir)?;
    cfg.replication = spec.replication;
    cfg.durability = spec.durability;
    cfg.failover = spec.failover;
    cfg.fencing = spec.fencing;
    cfg.read_lease = spec.read_lease;
    cfg.topology = spec.topology;
    cfg.model = spec.model;
    cfg.replica = spec.replica;
    cfg.worker_threads = spec.worker_threads.max(1);
    cfg.ship_interval_ms = spec.ship_interval_ms;
    let config_path = dir.join("node.json");
    cfg.write_file(&config_path)?;
    let err = |e: crate::remote::ExecError| TargetError::Node {
        node: id.clone(),
        msg: e.to_string(),
    };
    let start = match (&spec.hosts, remote_dir) {
        (Some(h), Some(rdir)) => {
            let exec = h.execs[i].clone();
            let config = format!("{rdir}/node.json");
            exec.upload(&config_path, &config).map_err(err)?;
            node_process(
                id,
                exec,
                &h.exes[i],
                &config,
                PathBuf::from(format!("{rdir}/node.log")),
            )
        }
        _ => node_process(
            id,
            Local::on(spec.netns.as_ref().map(|p| p.namespaces[i].clone())),
            &spec.exe.display().to_string(),
            &config_path.display().to_string(),
            spec.log_dir.join(format!("{id}.log")),
        ),
    };
    Ok(NodeProc {
        id: id.clone(),
        addr: peers[id],
        log_path: spec.log_dir.join(format!("{id}.log")),
        proc: ManagedProcess::new(start),
        paused: false,
        netns: spec.netns.as_ref().map(|p| p.namespaces[i].clone()),
    })
}

/// `<exe> node --config <config>` through `exec`, its output appended to `log` (paths on
/// the node's host). The node runs in its own process group (`Local` spawns it so), so a
/// terminal's Ctrl-C reaches only the runner.
fn node_process(
    id: &NodeId,
    exec: Arc<dyn Exec>,
    exe: &str,
    config: &str,
    log: PathBuf,
) -> ProcessSpec {
    ProcessSpec {
        node: id.clone(),
        exec,
        program: PathBuf::from(exe),
        args: vec!["node".into(), "--config".into(), config.to_owned()],
        env: Vec::new(),
        user: None,
        log,
        cwd: None,
    }
}
