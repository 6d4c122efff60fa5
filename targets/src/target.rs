//! The one interface of a target: what the runner and the nemesis see of the reference
//! cluster and of every database alike.
//!
//! A target is a `TargetCluster` (the nodes, their pids, kill, restart, pause, resume,
//! leader, stop, optional clock and link controls, optional state dumps and lag probe) and
//! one `TargetSession` per worker (`Request -> Reply`). `TargetKind` names a target and
//! `Capabilities` declares, per target and before anything starts, which faults it can
//! take and why not: the run plan refuses a fault a target cannot take with one line
//! naming the flag, and the nemesis's one mechanism refuses to apply such a state.
//!
//! The traits are object-safe (`BoxFuture`), so the runner holds a `Box<dyn
//! TargetCluster>` whatever it tests, and a new target is one new implementation.

pub use crate::api::BoxFuture;
use crate::api::{ReadRouting, Reply};
use crate::error::TargetError;
use crate::lag::LagProbe;
use crate::reference::NodeId;
use crate::request::Request;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use schism_history::txn::MicroOp;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

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

/// What is tested: the built-in reference cluster or one of the databases (`--target`;
/// parses itself with `FromStr`, and is written as its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum TargetKind {
    Reference,
    Db(DbKind),
}

impl TargetKind {
    /// The database adapter, `None` for the reference cluster.
    pub fn db(self) -> Option<DbKind> {
        match self {
            TargetKind::Reference => None,
            TargetKind::Db(kind) => Some(kind),
        }
    }
}

impl FromStr for TargetKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "reference" => Ok(TargetKind::Reference),
            other => other.parse::<DbKind>().map(TargetKind::Db).map_err(|_| {
                format!(
                    "unknown target {other:?}: expected reference, etcd, redis, postgres or galera"
                )
            }),
        }
    }
}

impl schism_history::Choices for TargetKind {
    const CHOICES: &'static [(&'static str, &'static str)] = &[
        (
            "reference",
            "The built-in reference cluster (`--model`, `--replication`, …)",
        ),
        (
            "etcd",
            "etcd (Debian `etcd-server`) through its JSON gateway; feature `etcd`",
        ),
        (
            "redis",
            "Redis primary + replicas (+ Sentinel with `--failover auto`); feature `redis`",
        ),
        (
            "postgres",
            "PostgreSQL primary + streaming standbys; feature `postgres`",
        ),
        ("galera", "MariaDB Galera multi-primary; feature `galera`"),
    ];
}

impl TryFrom<String> for TargetKind {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<TargetKind> for String {
    fn from(kind: TargetKind) -> String {
        kind.to_string()
    }
}

impl From<DbKind> for TargetKind {
    fn from(kind: DbKind) -> TargetKind {
        TargetKind::Db(kind)
    }
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetKind::Reference => f.write_str("reference"),
            TargetKind::Db(kind) => kind.fmt(f),
        }
    }
}

/// How a node is paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseStyle {
    /// SIGSTOP the server's pid (single-process servers), through `TargetCluster::pause`.
    Signal,
    /// Freeze the whole process tree in a cgroup (servers that fork, such as PostgreSQL,
    /// whose backends each call setsid and so escape a process-group signal).
    Tree,
}

/// What the machine and the run give a target's faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultEnv {
    /// schism provisioned the cluster (false with `--endpoints`).
    pub managed: bool,
    /// Network namespaces and nftables can be used (root, iproute2, nftables).
    pub have_netns: bool,
    /// The LD_PRELOAD clock shim can be built (a C compiler).
    pub have_shim: bool,
}

/// What a target can take. `None` means supported; `Some(reason)` means refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    pub target: String,
    pub partition: Option<String>,
    pub pause: Option<String>,
    pub kill: Option<String>,
    pub clock: Option<String>,
    /// Transactions (`--workload list-append|rw-register`); not a fault, but declared here
    /// so a run's plan refuses a workload the target cannot run before anything starts.
    #[serde(default)]
    pub transactions: Option<String>,
}

impl Capabilities {
    /// Every fault.
    fn all(target: &str) -> Capabilities {
        Capabilities {
            target: target.into(),
            partition: None,
            pause: None,
            kill: None,
            clock: None,
            transactions: None,
        }
    }

    /// The reference cluster takes every fault: partitions through namespaces or its
    /// nodes' cooperative link cuts, clocks through its admin API.
    pub fn reference() -> Capabilities {
        Capabilities::all("reference")
    }

    /// A Go server such as etcd: everything but clock skew (RECIPES.md §6).
    pub fn go_binary(name: &str) -> Capabilities {
        Capabilities {
            clock: Some(format!(
                "{name} is a Go binary: Go reads the clock through the vDSO, not libc, so no LD_PRELOAD shim can skew it, and a time namespace only offsets monotonic clocks at creation"
            )),
            ..Capabilities::all(name)
        }
    }

    /// A database, given how it is started.
    pub fn db(kind: DbKind, env: &FaultEnv) -> Capabilities {
        let target = kind.to_string();
        if !env.managed {
            let why = "with --endpoints schism does not control the processes or the network of the cluster; drop --endpoints to let schism provision one".to_owned();
            return Capabilities {
                target,
                partition: Some(why.clone()),
                pause: Some(why.clone()),
                kill: Some(why.clone()),
                clock: Some(why),
                transactions: transactions(kind),
            };
        }
        let mut caps = if kind == DbKind::Etcd {
            Capabilities::go_binary("etcd")
        } else {
            Capabilities::all(&target)
        };
        caps.transactions = transactions(kind);
        if !env.have_netns {
            caps.partition = Some(format!(
                "partitions of {kind} need network namespaces (root, iproute2, nftables): a userspace proxy cannot cut every peer link (RECIPES.md §5b)"
            ));
        }
        if !env.have_shim && caps.clock.is_none() {
            caps.clock = Some("the LD_PRELOAD clock shim could not be built: install gcc".into());
        }
        caps
    }

    /// The declared capabilities of any target.
    pub fn of(kind: TargetKind, env: &FaultEnv) -> Capabilities {
        match kind {
            TargetKind::Reference => Capabilities::reference(),
            TargetKind::Db(kind) => Capabilities::db(kind, env),
        }
    }
}

/// A running (or attached) cluster of one target.
pub trait TargetCluster: Send + Sync + fmt::Debug {
    fn kind(&self) -> TargetKind;
    /// The nodes, in order (`n1`, `n2`, …).
    fn node_ids(&self) -> Vec<NodeId>;
    /// One line for the terminal: who is where, who leads.
    fn describe(&self) -> String;
    /// False with `--endpoints`: nothing here can be killed, paused or restarted.
    fn managed(&self) -> bool;
    /// Pids of every running server process (the ledger kills these after a crash).
    fn pids(&self) -> Vec<u32>;
    /// Server pids on other hosts: (host index, pid there), for the ledger.
    fn remote_pids(&self) -> Vec<(usize, u32)> {
        Vec::new()
    }
    /// The server's own pid on `node`, if it runs.
    fn pid(&self, node: &str) -> Option<u32>;
    fn is_running(&self, node: &str) -> bool;
    /// Whether the target itself knows the node paused (the reference cluster tracks its
    /// SIGSTOPs); `false` when the target does not track it (the nemesis does).
    fn is_paused(&self, _node: &str) -> bool {
        false
    }
    fn pause_style(&self) -> PauseStyle {
        PauseStyle::Signal
    }
    /// SIGSTOP the node's server and wait (bounded) until the kernel shows it stopped
    /// (`PauseStyle::Signal`; a `Tree` is frozen by the nemesis's cgroup instead).
    fn pause(&mut self, node: &str) -> Result<(), TargetError> {
        signal_and_settle(self.pid(node), node, Signal::SIGSTOP, true)
    }
    /// SIGCONT (harmless on a running process) and wait until it runs.
    fn resume(&mut self, node: &str) -> Result<(), TargetError> {
        signal_and_settle(self.pid(node), node, Signal::SIGCONT, false)
    }
    /// SIGKILL the node's server (data kept), and reap it.
    fn kill<'a>(&'a mut self, node: &'a str) -> BoxFuture<'a, Result<(), TargetError>>;
    /// Start the node's server again with the same data (rejoining as the target needs),
    /// waiting until it answers.
    fn restart<'a>(&'a mut self, node: &'a str) -> BoxFuture<'a, Result<(), TargetError>>;
    /// The node that currently leads (primary, raft leader), as the cluster says.
    fn leader(&self) -> BoxFuture<'_, Option<NodeId>>;
    /// Sets the node's clock through the target's own API (real time + `offset_ms`,
    /// running at `rate`); `None`: the target has none, and clock faults go through the
    /// LD_PRELOAD shim's files.
    fn set_clock<'a>(
        &'a self,
        _node: &'a str,
        _offset_ms: f64,
        _rate: f64,
    ) -> Option<BoxFuture<'a, Result<(), TargetError>>> {
        None
    }
    /// Cooperative link cuts: the node drops replication traffic from `cut` (`None`: the
    /// target has none, and partitions need network namespaces).
    fn set_links<'a>(
        &'a self,
        _node: &'a str,
        _cut: &'a [NodeId],
    ) -> Option<BoxFuture<'a, Result<(), TargetError>>> {
        None
    }
    /// The node's whole state as JSON, for the convergence check (`None`: the target
    /// cannot dump its state).
    fn dump<'a>(
        &'a self,
        _node: &'a str,
    ) -> Option<BoxFuture<'a, Result<serde_json::Value, TargetError>>> {
        None
    }
    /// A session for one worker; `seed` derives from the run's seed and the worker.
    fn session(&self, seed: u64) -> Box<dyn TargetSession>;
    /// One session per seed, sharing what can be shared (the reference cluster: one
    /// connection pool). A database adapter took the read routing and the timeout when it
    /// was opened and ignores them here.
    fn sessions(
        &self,
        seeds: &[u64],
        _reads: ReadRouting,
        _timeout: Duration,
    ) -> Result<Vec<Box<dyn TargetSession>>, TargetError> {
        Ok(seeds.iter().map(|&s| self.session(s)).collect())
    }
    /// A probe of replication lag with its own connections (`None`: the target cannot
    /// tell, and the report says so).
    fn lag_probe(&self) -> Option<Box<dyn LagProbe>> {
        None
    }
    /// Stop every process (SIGCONT, SIGTERM, then SIGKILL after a grace period) and any
    /// helper task, and copy logs into the log folder. Idempotent.
    fn stop(&mut self) -> BoxFuture<'_, Result<(), TargetError>>;
}

/// Whether a database runs schism's transactions (`None`: it does).
fn transactions(kind: DbKind) -> Option<String> {
    match kind {
        DbKind::Redis => Some(
            "redis has no transactions with reads inside them (MULTI queues commands and returns their results only at EXEC); use --target etcd, postgres or galera".into(),
        ),
        DbKind::Etcd | DbKind::Postgres | DbKind::Galera => None,
    }
}

/// What a transaction came back with (Jepsen's ok / fail / info).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnReply {
    /// It committed: the same micro-ops in the same order, each read's value filled in
    /// (`MopValue::Nil` for a key never written).
    Ok(Vec<MicroOp>),
    /// It certainly did not commit (aborted, refused, never sent).
    Fail { error: String },
    /// It may or may not have committed (a timeout, a lost connection during commit).
    Unknown { error: String },
}

impl TxnReply {
    /// A transaction that did not commit: `Unknown` if it may have, else `Fail`.
    pub fn not_committed(unknown: bool, error: String) -> TxnReply {
        if unknown {
            TxnReply::Unknown { error }
        } else {
            TxnReply::Fail { error }
        }
    }
}

/// One worker's connection(s) to the cluster.
pub trait TargetSession: Send {
    fn invoke(&mut self, req: Request) -> BoxFuture<'_, Reply>;

    /// Runs one transaction of micro-ops (`schism_history::txn`: append, w, r) as the
    /// target's semantics dictate. A target that does not run transactions refuses each
    /// one; the run's plan refuses the workload before anything starts (see
    /// `Capabilities`), so this default is never what a user sees.
    fn txn(&mut self, mops: Vec<MicroOp>) -> BoxFuture<'_, TxnReply> {
        drop(mops);
        Box::pin(async {
            TxnReply::Fail {
                error: "this target does not run transactions".into(),
            }
        })
    }
}

/// Sends `sig` to `pid` (a node not running is left alone) and waits until `/proc`
/// shows it stopped (or not).
fn signal_and_settle(
    pid: Option<u32>,
    node: &str,
    sig: Signal,
    stopped: bool,
) -> Result<(), TargetError> {
    let Some(pid) = pid else {
        return Ok(());
    };
    kill(Pid::from_raw(pid as i32), sig).map_err(|source| TargetError::Signal {
        node: node.to_owned(),
        pid,
        signal: sig.as_str(),
        source,
    })?;
    crate::process::wait_stopped(pid, stopped);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn capabilities_are_declared_per_target() {
        let env = FaultEnv {
            managed: true,
            have_netns: true,
            have_shim: true,
        };
        assert_eq!(
            Capabilities::of(TargetKind::Reference, &env),
            Capabilities::reference()
        );
        let etcd = Capabilities::of(DbKind::Etcd.into(), &env);
        assert!(etcd.clock.as_deref().is_some_and(|w| w.contains("vDSO")));
        assert!(etcd.partition.is_none() && etcd.kill.is_none());
        let pg = Capabilities::db(
            DbKind::Postgres,
            &FaultEnv {
                have_netns: false,
                ..env
            },
        );
        assert!(
            pg.partition
                .as_deref()
                .is_some_and(|w| w.contains("namespaces"))
        );
        let attached = Capabilities::db(
            DbKind::Redis,
            &FaultEnv {
                managed: false,
                ..env
            },
        );
        assert!(
            attached
                .kill
                .as_deref()
                .is_some_and(|w| w.contains("--endpoints"))
        );
        assert_eq!(TargetKind::from(DbKind::Galera).to_string(), "galera");
        for name in ["reference", "etcd", "redis", "postgres", "galera"] {
            let kind: TargetKind = name.parse().unwrap();
            assert_eq!(kind.to_string(), name);
            assert_eq!(serde_json::to_value(kind).unwrap(), name);
        }
        assert!("mongodb".parse::<TargetKind>().is_err());
    }
}
