//! External databases as targets: the interface every adapter implements, and the
//! process plumbing they share.
//!
//! An adapter brings two things: a `DbCluster` (provision a local cluster from the
//! installed binaries under the run's folder — or, with `--endpoints`, attach to an
//! existing one — then kill, restart, find the leader, stop) and `DbSession`s (one per
//! worker, owning its connections, turning a `Request` into a `Reply`). The runner and the
//! nemesis only ever see these two traits, so a new database is one new module.
//!
//! Guarantees every adapter keeps:
//! - a `Reply::Ok` means the database said it happened; `Fail` that it certainly did not
//!   (a refused connection, a constraint or certification failure, any read that failed);
//!   `Unknown` that a write's fate is unknown (timeout, connection lost after sending,
//!   a commit whose answer never came) — the history records it as `info`;
//! - every process it starts is a `ManagedProcess` whose pid is the server's own (no
//!   shell, no wrapper that forks), so a pause, a kill and the ledger's cleanup reach it;
//!   `stop` ends them all, and dropping the cluster kills whatever is left;
//! - a missing server binary is one line naming the Debian package to install;
//! - every network address is on loopback or inside the run's own namespaces.
//!
//! Adapters sit behind cargo features (`etcd`, `redis`, `postgres`, `galera`;
//! `all-targets` for all) so the default build compiles no database client.

use crate::ReadRouting;
use crate::client::Reply;
use crate::error::TargetError;
use crate::reference::{NodeId, Replication};
use crate::request::Request;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::Serialize;
use std::fmt;
use std::fs::OpenOptions;
use std::future::Future;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::str::FromStr;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

#[cfg(feature = "etcd")]
pub mod etcd;
#[cfg(feature = "galera")]
pub mod galera;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;

/// A boxed, sendable future: what the object-safe traits below return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The databases schism can provision and test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DbKind {
    Etcd,
    Redis,
    Postgres,
    Galera,
}

impl DbKind {
    pub const ALL: [DbKind; 4] = [
        DbKind::Etcd,
        DbKind::Redis,
        DbKind::Postgres,
        DbKind::Galera,
    ];

    /// The cargo feature that compiles this adapter.
    pub fn feature(self) -> &'static str {
        match self {
            DbKind::Etcd => "etcd",
            DbKind::Redis => "redis",
            DbKind::Postgres => "postgres",
            DbKind::Galera => "galera",
        }
    }

    /// Whether this build carries the adapter.
    pub fn compiled(self) -> bool {
        match self {
            DbKind::Etcd => cfg!(feature = "etcd"),
            DbKind::Redis => cfg!(feature = "redis"),
            DbKind::Postgres => cfg!(feature = "postgres"),
            DbKind::Galera => cfg!(feature = "galera"),
        }
    }
}

impl fmt::Display for DbKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.feature())
    }
}

impl FromStr for DbKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "etcd" => Ok(DbKind::Etcd),
            "redis" => Ok(DbKind::Redis),
            "postgres" | "postgresql" => Ok(DbKind::Postgres),
            "galera" | "mariadb" => Ok(DbKind::Galera),
            other => Err(format!(
                "unknown database {other:?}: expected etcd, redis, postgres or galera"
            )),
        }
    }
}

/// Where the provisioned nodes listen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Every node on 127.0.0.1, on ports of its own (`base_port` + offsets, or free ports).
    Loopback { base_port: Option<u16> },
    /// Node i inside network namespace `namespaces[i]` at `addrs[i]`, on the database's
    /// default ports; the runner reaches them through the run's bridge.
    Netns {
        namespaces: Vec<String>,
        addrs: Vec<Ipv4Addr>,
    },
}

/// `--etcd-reads`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EtcdReads {
    /// Through the raft leader (quorum read): the default.
    #[default]
    Linearizable,
    /// Served from the contacted member's local state: possibly stale.
    Serializable,
}

/// Settings an adapter reads; the runner refuses combinations that do not apply before
/// calling `open`.
#[derive(Debug, Clone, PartialEq)]
pub struct DbOptions {
    /// Redis: `sync` / `semi-sync:K` = `WAIT K` after each write; PostgreSQL: sync =
    /// `synchronous_standby_names = 'ANY 1 (…)'` (semi-sync:K = `ANY K`), async = `''`.
    pub replication: Replication,
    /// Where reads go: `leader` = the primary, `any` = any node, `follower` = a replica.
    pub reads: ReadRouting,
    /// Whether the adapter fails over (Redis: Sentinel; PostgreSQL: promote the most
    /// up-to-date standby when the primary stays unreachable).
    pub failover: bool,
    pub etcd_reads: EtcdReads,
    /// Per-request timeout: after it, a read fails and a write is `Unknown`.
    pub timeout: Duration,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            replication: Replication::Async,
            reads: ReadRouting::Leader,
            failover: false,
            etcd_reads: EtcdReads::Linearizable,
            timeout: Duration::from_secs(1),
        }
    }
}

/// Everything `open` needs.
#[derive(Debug, Clone)]
pub struct DbSpec {
    pub kind: DbKind,
    /// Nodes to provision (ignored with `endpoints`).
    pub nodes: usize,
    /// Node i's files go under `data_dir/<node>/`.
    pub data_dir: PathBuf,
    /// Node i's server log is `log_dir/<node>.log` (collected into the results folder).
    pub log_dir: PathBuf,
    pub placement: Placement,
    /// Extra environment per node, in node order (the clock shim's LD_PRELOAD).
    pub node_env: Vec<Vec<(String, String)>>,
    /// Attach to an existing cluster (`--endpoints host:port,…`) instead of provisioning.
    pub endpoints: Option<Vec<String>>,
    pub options: DbOptions,
    /// Startup budget: a cluster not ready by then is an error naming its log.
    pub startup_timeout: Duration,
}

impl DbSpec {
    pub fn node_ids(&self) -> Vec<NodeId> {
        match &self.endpoints {
            Some(eps) => (1..=eps.len()).map(|i| format!("n{i}")).collect(),
            None => (1..=self.nodes).map(|i| format!("n{i}")).collect(),
        }
    }

    /// The environment for node `i` (empty when none was given).
    pub fn env_of(&self, i: usize) -> &[(String, String)] {
        self.node_env.get(i).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// How a node is paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseStyle {
    /// SIGSTOP the server's pid (single-process servers).
    Signal,
    /// Freeze the whole process tree in a cgroup (servers that fork, such as PostgreSQL,
    /// whose backends each call setsid and so escape a process-group signal).
    Tree,
}

/// A provisioned (or attached) cluster of one database.
pub trait DbCluster: Send + Sync + fmt::Debug {
    fn kind(&self) -> DbKind;
    /// The nodes, in order (`n1`, `n2`, …).
    fn node_ids(&self) -> Vec<NodeId>;
    /// One line for the terminal: who is where, who leads.
    fn describe(&self) -> String;
    /// False with `--endpoints`: nothing here can be killed, paused or restarted.
    fn managed(&self) -> bool;
    /// Pids of every running server process (the ledger kills these after a crash).
    fn pids(&self) -> Vec<u32>;
    /// The server's own pid on `node`, if it runs.
    fn pid(&self, node: &str) -> Option<u32>;
    fn is_running(&self, node: &str) -> bool;
    fn pause_style(&self) -> PauseStyle {
        PauseStyle::Signal
    }
    /// SIGKILL the node's server (data kept), and reap it.
    fn kill<'a>(&'a mut self, node: &'a str) -> BoxFuture<'a, Result<(), TargetError>>;
    /// Start the node's server again with the same data (rejoining as the database needs),
    /// waiting until it answers.
    fn restart<'a>(&'a mut self, node: &'a str) -> BoxFuture<'a, Result<(), TargetError>>;
    /// The node that currently leads (primary, raft leader), as the cluster says.
    fn leader(&self) -> BoxFuture<'_, Option<NodeId>>;
    /// A session for one worker; `seed` derives from the run's seed and the worker.
    fn session(&self, seed: u64) -> Box<dyn DbSession>;
    /// A probe of replication lag with its own connections (`None`: the adapter cannot
    /// tell, and the report says so).
    fn lag_probe(&self) -> Option<Box<dyn crate::lag::LagProbe>> {
        None
    }
    /// Stop every process (SIGCONT, SIGTERM, then SIGKILL after a grace period) and any
    /// helper task, and copy logs into `log_dir`. Idempotent.
    fn stop(&mut self) -> BoxFuture<'_, Result<(), TargetError>>;
}

/// One worker's connection(s) to the cluster.
pub trait DbSession: Send {
    fn invoke(&mut self, req: Request) -> BoxFuture<'_, Reply>;
}

/// Provisions (or attaches to) a cluster of `spec.kind`.
pub async fn open(spec: DbSpec) -> Result<Box<dyn DbCluster>, TargetError> {
    if !spec.kind.compiled() {
        return Err(TargetError::Invalid(format!(
            "this schism was built without the `{f}` feature: rebuild with `cargo build --release --features {f}` (or `--features all-targets`)",
            f = spec.kind.feature()
        )));
    }
    match spec.kind {
        #[cfg(feature = "etcd")]
        DbKind::Etcd => etcd::EtcdCluster::open(spec).await,
        #[cfg(feature = "redis")]
        DbKind::Redis => redis::RedisCluster::open(spec).await,
        #[cfg(feature = "postgres")]
        DbKind::Postgres => postgres::PgCluster::open(spec).await,
        #[cfg(feature = "galera")]
        DbKind::Galera => galera::GaleraCluster::open(spec).await,
        #[allow(unreachable_patterns)]
        other => Err(TargetError::Invalid(format!(
            "the {other} adapter is not compiled in"
        ))),
    }
}

/// Finds a server binary by name (on `PATH`) or absolute path; a missing one is one line
/// naming the Debian package.
pub fn require_binary(name: &str, package: &str) -> Result<PathBuf, TargetError> {
    let found = if name.contains('/') {
        Path::new(name).is_file().then(|| PathBuf::from(name))
    } else {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
    };
    found.ok_or_else(|| TargetError::MissingBinary {
        binary: name.to_owned(),
        package: package.to_owned(),
    })
}

/// `n` distinct free loopback ports (held open together so the kernel hands out distinct
/// ones), or `base..base+n` when a base is given and every one of them is free.
pub fn loopback_ports(n: usize, base: Option<u16>) -> Result<Vec<u16>, TargetError> {
    let ids: Vec<NodeId> = (1..=n).map(|i| format!("port{i}")).collect();
    crate::reference::cluster::pick_ports(&ids, base)
}

/// The last `lines` non-empty lines of a log file, joined with " | " (for errors).
pub fn log_tail(path: &Path, lines: usize) -> String {
    crate::reference::cluster::log_tail(path, lines)
}

/// How to start one server process.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    /// A short name for errors (`n1`).
    pub node: NodeId,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Run inside this network namespace (`ip netns exec`, which execs: the pid stays
    /// the server's own).
    pub netns: Option<String>,
    /// Run as this user (`setpriv`, which execs too): PostgreSQL refuses to run as root.
    pub user: Option<String>,
    /// stdout and stderr go here (appended).
    pub log: PathBuf,
    pub cwd: Option<PathBuf>,
}

/// A server process whose pid is the server's own.
#[derive(Debug)]
pub struct ManagedProcess {
    spec: ProcessSpec,
    child: Option<Child>,
}

impl ManagedProcess {
    /// Starts the process (not waiting for it to be ready).
    pub fn spawn(spec: ProcessSpec) -> Result<ManagedProcess, TargetError> {
        let mut p = ManagedProcess { spec, child: None };
        p.start()?;
        Ok(p)
    }

    pub fn spec(&self) -> &ProcessSpec {
        &self.spec
    }

    /// Starts the same command again (after a kill or an exit).
    pub fn start(&mut self) -> Result<(), TargetError> {
        if self.is_running() {
            return Ok(());
        }
        let s = &self.spec;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&s.log)
            .map_err(|source| TargetError::LogDir {
                path: s.log.clone(),
                source,
            })?;
        let log2 = log.try_clone().map_err(|source| TargetError::LogDir {
            path: s.log.clone(),
            source,
        })?;
        // Build argv: [ip netns exec NS] [setpriv --reuid U --regid U --init-groups] program args
        let mut argv: Vec<String> = Vec::new();
        if let Some(ns) = &s.netns {
            argv.extend(["ip", "netns", "exec", ns].map(String::from));
        }
        if let Some(u) = &s.user {
            argv.extend(
                ["setpriv", "--reuid", u, "--regid", u, "--init-groups", "--"].map(String::from),
            );
        }
        argv.push(s.program.display().to_string());
        argv.extend(s.args.iter().cloned());
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .envs(s.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            // Own process group: a terminal's Ctrl-C goes to the runner only.
            .process_group(0)
            .kill_on_drop(true);
        if let Some(d) = &s.cwd {
            cmd.current_dir(d);
        }
        let child = cmd.spawn().map_err(|source| TargetError::Spawn {
            exe: PathBuf::from(&argv[0]),
            source,
        })?;
        self.child = Some(child);
        Ok(())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// True while the process has not exited (a stopped process is running).
    pub fn is_running(&self) -> bool {
        self.pid().is_some_and(alive)
    }

    /// The exit status if the process has exited (reaping it).
    pub fn try_exited(&mut self) -> Option<String> {
        let c = self.child.as_mut()?;
        match c.try_wait() {
            Ok(Some(st)) => Some(st.to_string()),
            _ => None,
        }
    }

    pub fn signal(&self, sig: Signal) -> Result<(), TargetError> {
        let Some(pid) = self.pid() else {
            return Err(TargetError::NotRunning(self.spec.node.clone()));
        };
        kill(Pid::from_raw(pid as i32), sig).map_err(|source| TargetError::Signal {
            node: self.spec.node.clone(),
            pid,
            signal: sig.as_str(),
            source,
        })
    }

    /// SIGCONT + SIGKILL, then wait (bounded) until it is reaped.
    pub async fn kill(&mut self) -> Result<(), TargetError> {
        if let Some(pid) = self.pid() {
            let p = Pid::from_raw(pid as i32);
            let _ = kill(p, Signal::SIGCONT);
            let _ = kill(p, Signal::SIGKILL);
        }
        self.reap(Duration::from_secs(5)).await;
        Ok(())
    }

    /// SIGCONT + SIGTERM, SIGKILL after `grace`, then reap.
    pub async fn stop(&mut self, grace: Duration) -> Result<(), TargetError> {
        let Some(pid) = self.pid() else {
            self.child = None;
            return Ok(());
        };
        let p = Pid::from_raw(pid as i32);
        let _ = kill(p, Signal::SIGCONT);
        let _ = kill(p, Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        if let Some(c) = self.child.as_mut() {
            loop {
                if matches!(c.try_wait(), Ok(Some(_)) | Err(_)) {
                    self.child = None;
                    return Ok(());
                }
                if Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        self.kill().await
    }

    async fn reap(&mut self, timeout: Duration) {
        if let Some(mut c) = self.child.take() {
            let _ = tokio::time::timeout(timeout, c.wait()).await;
        }
    }
}

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        // No server outlives its cluster, even on a panic: continue (a stopped process
        // cannot die until continued) and kill; tokio reaps the child.
        if let Some(pid) = self.pid() {
            let p = Pid::from_raw(pid as i32);
            let _ = kill(p, Signal::SIGCONT);
            let _ = kill(p, Signal::SIGKILL);
        }
    }
}

/// Whether `pid` is a live process (neither gone nor a zombie; a stopped one is live).
pub fn alive(pid: u32) -> bool {
    !matches!(
        crate::reference::cluster::proc_state(pid),
        None | Some('Z') | Some('X')
    )
}

/// Every live descendant of `pid` (one scan of `/proc`, then parent links followed), for
/// servers that fork: a crash kills them all, a pause freezes them all.
pub fn descendants(pid: u32) -> Vec<u32> {
    let parent_of: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|p| Some((p, proc_ppid(p)?)))
        .collect();
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for &(c, pp) in &parent_of {
            if pp == p && !out.contains(&c) {
                out.push(c);
                frontier.push(c);
            }
        }
    }
    out
}

/// Field 4 of `/proc/<pid>/stat`: the parent's pid (the command name may hold spaces,
/// so fields are counted after its closing parenthesis).
fn proc_ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Polls `probe` every `every` until it returns Ok or `timeout` passes; the error names the
/// last failure.
pub async fn wait_until<F, Fut, T>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut probe: F,
) -> Result<T, TargetError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match probe().await {
            Ok(t) => return Ok(t),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(TargetError::Invalid(format!(
                "{what} not ready within {} ms: {last}",
                timeout.as_millis()
            )));
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_server_names_its_debian_package() {
        let e = require_binary("schism-no-such-server", "schism-pkg")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "`schism-no-such-server` not found: install the Debian package `schism-pkg` (apt-get install schism-pkg)"
        );
        assert!(require_binary("sh", "dash").is_ok());
        assert!(require_binary("/no/such/dir/etcd", "etcd-server").is_err());
    }

    #[test]
    fn kinds_parse_and_name_their_feature() {
        for k in DbKind::ALL {
            assert_eq!(k.to_string().parse::<DbKind>(), Ok(k));
            assert_eq!(k.feature(), k.to_string());
        }
        assert_eq!("postgresql".parse::<DbKind>(), Ok(DbKind::Postgres));
        assert!(
            "mongodb"
                .parse::<DbKind>()
                .unwrap_err()
                .contains("etcd, redis")
        );
    }

    #[tokio::test]
    async fn a_managed_process_is_its_own_pid_and_dies_with_its_owner() {
        let dir = tempfile::tempdir().unwrap();
        let spec = ProcessSpec {
            node: "n1".into(),
            program: PathBuf::from("/bin/sleep"),
            args: vec!["30".into()],
            env: vec![],
            netns: None,
            user: None,
            log: dir.path().join("n1.log"),
            cwd: None,
        };
        let mut p = ManagedProcess::spawn(spec.clone()).unwrap();
        let pid = p.pid().unwrap();
        // Between fork and exec the child still shows the test's command line: wait
        // (bounded) for the exec, then it must be the server itself, not a wrapper.
        let until = Instant::now() + Duration::from_secs(5);
        let cmdline = loop {
            let c = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if c.starts_with("/bin/sleep") || Instant::now() >= until {
                break c;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        assert!(cmdline.starts_with("/bin/sleep"), "{cmdline:?}");
        p.kill().await.unwrap();
        assert!(!p.is_running());
        p.start().unwrap();
        let pid = p.pid().unwrap();
        drop(p);
        // Dropping kills it; tokio reaps it in the background.
        let until = Instant::now() + Duration::from_secs(5);
        while crate::reference::cluster::proc_state(pid).is_some_and(|s| s != 'Z')
            && Instant::now() < until
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            crate::reference::cluster::proc_state(pid).is_none_or(|s| s == 'Z'),
            "pid {pid} survived its ManagedProcess"
        );
    }
}
