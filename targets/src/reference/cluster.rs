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
//! With `ClusterSpec::netns`, node i runs inside network namespace i (spawned as
//! `ip netns exec <ns> <exe> node …`, which execs, so the pid held is the node's own) and
//! listens on its address there; the namespaces must exist (the nemesis creates them).
//! The admin calls (`set_clock`, `set_links`, `dump`) reach a node's admin API.
//!
//! With `ClusterSpec::hosts`, node i runs on host i through the host's `Exec` (over SSH):
//! its config is uploaded into the host's run folder and it is started as one session of
//! the host's connection (`echo $$; exec <exe> node …`, so the node is a child of the
//! host's sshd and its pid comes back first); signals go by `kill` to that remote pid,
//! and `stop` downloads each node's log into the local log folder.

use super::node::{ClockRequest, Dump, LinksRequest, NodeConfig};
use super::replica::ReplicaSettings;
use super::{Durability, Failover, Model, NodeId, Replication, Topology};
use crate::client::{ClientOptions, Endpoint, ReadRouting, ReferenceClient, fetch_status};
use crate::error::TargetError;
use crate::process::{create_run_dirs, log_tail, open_output_log, pick_ports, wait_stopped};
use crate::reference::leader_follower::Status;
use crate::remote::{Exec, quote};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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
    config_path: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
    paused: bool,
    netns: Option<String>,
    remote: Option<RemoteNode>,
}

/// A node on another host.
#[derive(Debug)]
struct RemoteNode {
    exec: Arc<dyn Exec>,
    exe: String,
    config: String,
    log: String,
    /// The node's pid on the host, while it runs.
    pid: Option<u32>,
}

impl NodeProc {
    /// The node's pid (on its host, for a remote node).
    fn pid(&self) -> Option<u32> {
        match &self.remote {
            Some(r) => self.child.as_ref().and(r.pid),
            None => self.child.as_ref().map(Child::id),
        }
    }

    /// The local process that stands for the node (the node, or its SSH session).
    fn local_pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn signal(&self, signal: Signal) -> Result<(), TargetError> {
        let pid = self
            .pid()
            .ok_or_else(|| TargetError::NotRunning(self.id.clone()))?;
        if let Some(r) = &self.remote {
            let name = signal.as_str().trim_start_matches("SIG");
            return r
                .exec
                .run(&format!("kill -{name} {pid}"), None)
                .map(|_| ())
                .map_err(|e| TargetError::Node {
                    node: self.id.clone(),
                    msg: e.to_string(),
                });
        }
        kill(Pid::from_raw(pid as i32), signal).map_err(|source| TargetError::Signal {
            node: self.id.clone(),
            pid,
            signal: signal.as_str(),
            source,
        })
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
        self.nodes.iter().filter_map(NodeProc::local_pid).collect()
    }

    /// For nodes on other hosts: (host index, pid on the host) of each running one.
    pub fn remote_pids(&self) -> Vec<(usize, u32)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.remote.as_ref().and(n.pid()).map(|p| (i, p)))
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
                let on = n
                    .remote
                    .as_ref()
                    .map_or(String::new(), |r| format!("on {}, ", r.exec.name()));
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
        if p.remote.is_some() && p.child.is_some() {
            // The node dies on its host; its session then ends here.
            let _ = p.signal(Signal::SIGKILL);
            if let Some(child) = &mut p.child {
                let _ = reap(child, Duration::from_secs(5)).await;
            }
        }
        if let Some(r) = &mut p.remote {
            r.pid = None;
        }
        if let Some(mut child) = p.child.take() {
            // A kill of an already exited child is harmless; wait() reaps either way.
            let _ = child.kill();
            reap(&mut child, Duration::from_secs(5))
                .await
                .map_err(|e| TargetError::Node {
                    node: p.id.clone(),
                    msg: format!("cannot reap pid {}: {e}", child.id()),
                })?;
        }
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

    /// SIGSTOP (`paused`) or SIGCONT, returning once the kernel shows the process in that
    /// state: signal delivery is asynchronous, and the nemesis records the fault only then.
    fn set_paused(&mut self, node: &str, paused: bool) -> Result<(), TargetError> {
        let n = self.node(node)?;
        let signal = if paused {
            Signal::SIGSTOP
        } else {
            Signal::SIGCONT
        };
        let p = &mut self.nodes[n];
        if let (Some(r), Some(pid)) = (&p.remote, p.pid()) {
            remote_signal_settle(&*r.exec, &p.id, pid, paused)?;
            p.paused = paused;
            return Ok(());
        }
        p.signal(signal)?;
        p.paused = paused;
        if let Some(pid) = p.pid() {
            wait_stopped(pid, paused);
        }
        Ok(())
    }

    /// SIGTERM every node (and SIGCONT the paused ones so they can act on it), wait up to
    /// `stop_grace_ms`, SIGKILL what is left, reap everything. Errs only if a process could
    /// not be reaped (it may still exist); every other node is stopped regardless.
    pub async fn stop(&mut self) -> Result<(), TargetError> {
        for p in &mut self.nodes {
            if p.child.is_some() {
                let _ = p.signal(Signal::SIGTERM);
                if p.paused {
                    let _ = p.signal(Signal::SIGCONT);
                    p.paused = false;
                }
            }
        }
        let deadline = Instant::now() + Duration::from_millis(self.spec.stop_grace_ms);
        loop {
            for p in &mut self.nodes {
                if let Some(child) = &mut p.child
                    && !matches!(child.try_wait(), Ok(None))
                {
                    p.child = None;
                }
            }
            if self.nodes.iter().all(|p| p.child.is_none()) || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut result = Ok(());
        for p in &mut self.nodes {
            if p.remote.is_some() && p.child.is_some() {
                let _ = p.signal(Signal::SIGKILL);
                if let Some(child) = &mut p.child {
                    let _ = reap(child, Duration::from_secs(5)).await;
                }
            }
            if let Some(r) = &mut p.remote {
                r.pid = None;
            }
            if let Some(mut child) = p.child.take() {
                let _ = child.kill();
                if let Err(e) = reap(&mut child, Duration::from_secs(5)).await {
                    result = Err(TargetError::Node {
                        node: p.id.clone(),
                        msg: format!("cannot reap pid {}: {e}", child.id()),
                    });
                }
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
        if self.nodes[i].remote.is_some() {
            return self.nodes[i].spawn_remote();
        }
        let p = &mut self.nodes[i];
        let (log, log2) = open_output_log(&p.log_path)?;
        let mut cmd = match &p.netns {
            // `ip netns exec` execs the program, so the child's pid is the node's own.
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&self.spec.exe);
                c
            }
            None => Command::new(&self.spec.exe),
        };
        let child = cmd
            .arg("node")
            .arg("--config")
            .arg(&p.config_path)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            // Own process group: a terminal's Ctrl-C goes to the runner only.
            .process_group(0)
            .spawn()
            .map_err(|source| TargetError::Spawn {
                exe: self.spec.exe.clone(),
                source,
            })?;
        p.child = Some(child);
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
                let exited = match &mut p.child {
                    Some(child) => child.try_wait().ok().flatten(),
                    None => return Err(TargetError::NotRunning(p.id.clone())),
                };
                if let Some(status) = exited {
                    p.child = None;
                    p.fetch_log();
                    return Err(TargetError::NodeExited {
                        node: p.id.clone(),
                        status: status.to_string(),
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
    let remote = match (&spec.hosts, remote_dir) {
        (Some(h), Some(rdir)) => {
            let exec = h.execs[i].clone();
            let config = format!("{rdir}/node.json");
            exec.upload(&config_path, &config)
                .map_err(|e| TargetError::Node {
                    node: id.clone(),
                    msg: e.to_string(),
                })?;
            Some(RemoteNode {
                exec,
                exe: h.exes[i].clone(),
                config,
                log: format!("{rdir}/node.log"),
                pid: None,
            })
        }
        _ => None,
    };
    Ok(NodeProc {
        id: id.clone(),
        addr: peers[id],
        config_path,
        log_path: spec.log_dir.join(format!("{id}.log")),
        child: None,
        paused: false,
        netns: spec.netns.as_ref().map(|p| p.namespaces[i].clone()),
        remote,
    })
}

impl NodeProc {
    /// Starts the node on its host as one session of the host's connection; the first
    /// line the session prints is the node's pid there.
    fn spawn_remote(&mut self) -> Result<(), TargetError> {
        let Some(r) = &mut self.remote else {
            return Ok(());
        };
        let err = |msg: String| TargetError::Node {
            node: self.id.clone(),
            msg,
        };
        let script = format!(
            "echo $$; exec {} node --config {} >>{} 2>&1 </dev/null",
            quote(&r.exe),
            quote(&r.config),
            quote(&r.log)
        );
        let mut child = r.exec.spawn(&script).map_err(|e| err(e.to_string()))?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = std::io::BufReader::new(out).read_line(&mut line);
        }
        match line.trim().parse::<u32>() {
            Ok(pid) => {
                r.pid = Some(pid);
                self.child = Some(child);
                self.paused = false;
                Ok(())
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(err(format!(
                    "could not start the node on host {} (its session printed no pid; see ssh-{}.log in the run folder)",
                    r.exec.name(),
                    r.exec.name()
                )))
            }
        }
    }

    /// Copies a remote node's log into the local log folder (best effort: the node's
    /// own log stays on the host until the run folder there is removed).
    fn fetch_log(&self) {
        if let Some(r) = &self.remote
            && let Err(e) = r.exec.download(&r.log, &self.log_path)
        {
            let _ = std::fs::write(&self.log_path, format!("(log not downloaded: {e})\n"));
        }
    }
}

/// SIGSTOP (`paused`) or SIGCONT a node on its host, and wait there (bounded, 1 s) until
/// its state shows it.
fn remote_signal_settle(
    exec: &dyn Exec,
    node: &str,
    pid: u32,
    paused: bool,
) -> Result<(), TargetError> {
    let (sig, want) = if paused {
        ("STOP", "= T")
    } else {
        ("CONT", "!= T")
    };
    let script = format!(
        "kill -{sig} {pid} || exit 1; i=0; while [ $i -lt 100 ]; do s=$(sed 's/.*) //' /proc/{pid}/stat 2>/dev/null | cut -c1); [ \"$s\" {want} ] && exit 0; [ -z \"$s\" ] && exit 0; sleep 0.01; i=$((i+1)); done"
    );
    exec.run(&script, None)
        .map(|_| ())
        .map_err(|e| TargetError::Node {
            node: node.to_owned(),
            msg: e.to_string(),
        })
}

impl Drop for ReferenceCluster {
    fn drop(&mut self) {
        for p in &mut self.nodes {
            if p.remote.is_some() && p.child.is_some() {
                let _ = p.signal(Signal::SIGKILL);
            }
            if let Some(mut child) = p.child.take() {
                // SIGKILL works on stopped processes too; wait() reaps at once after it.
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Waits for a killed child without blocking the runtime for long.
async fn reap(child: &mut Child, timeout: Duration) -> std::io::Result<()> {
    let deadline = Instant::now() + timeout;
    while child.try_wait()?.is_none() {
        if Instant::now() >= deadline {
            // Still not gone (uninterruptible sleep?): block; SIGKILL will win.
            child.wait()?;
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}
