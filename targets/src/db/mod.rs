//! External databases as targets: what an adapter is given (`DbSpec`, `DbOptions`,
//! `Placement`) and `open`, which provisions one.
//!
//! An adapter brings two things: a `DbCluster` (provision a local cluster from the
//! installed binaries under the run's folder — or, with `--endpoints`, attach to an
//! existing one — then kill, restart, find the leader, stop) and `DbSession`s (one per
//! worker, owning its connections, turning a `Request` into a `Reply`). These are
//! `target::TargetCluster` and `target::TargetSession` — the interface the reference
//! cluster implements too — under the names the adapters were written against; the
//! process plumbing they share is `crate::process`. The runner and the nemesis only ever
//! see the target traits, so a new database is one new module.
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
//! - every network address is on loopback, inside the run's own namespaces, or a host's
//!   own address given by the inventory (`Placement::Hosts`).
//!
//! Adapters sit behind cargo features (`etcd`, `redis`, `postgres`, `galera`;
//! `all-targets` for all) so the default build compiles no database client.

use crate::api::ReadRouting;
use crate::error::TargetError;
use crate::reference::{NodeId, Replication};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

// What the adapters implement and use, under the names they were written against.
pub use crate::process::{
    ManagedProcess, ProcessSpec, alive, descendants, log_tail, loopback_ports, require_binary,
    wait_until,
};
pub use crate::target::{
    BoxFuture, DbKind, PauseStyle, TargetCluster as DbCluster, TargetSession as DbSession,
};

#[cfg(feature = "etcd")]
pub mod etcd;
#[cfg(feature = "galera")]
pub mod galera;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;

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
    /// Node i on host i over SSH (its `Exec`) at the host's address, on the database's
    /// default ports, its files under that host's run folder; the clients run here and
    /// reach the hosts' addresses. `port` and `exes` are the reference cluster's only.
    Hosts(crate::reference::cluster::HostsPlacement),
}

/// `--etcd-reads` (parses itself with `FromStr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EtcdReads {
    /// Through the raft leader (quorum read): the default.
    #[default]
    Linearizable,
    /// Served from the contacted member's local state: possibly stale.
    Serializable,
}

impl EtcdReads {
    pub fn as_str(self) -> &'static str {
        match self {
            EtcdReads::Linearizable => "linearizable",
            EtcdReads::Serializable => "serializable",
        }
    }
}

impl std::fmt::Display for EtcdReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for EtcdReads {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "linearizable" => Ok(EtcdReads::Linearizable),
            "serializable" => Ok(EtcdReads::Serializable),
            other => Err(format!(
                "unknown etcd read mode {other:?}: expected linearizable or serializable"
            )),
        }
    }
}

impl schism_history::Choices for EtcdReads {
    const CHOICES: &'static [(&'static str, &'static str)] = &[
        (
            "linearizable",
            "Quorum reads through the raft leader (etcd's default)",
        ),
        (
            "serializable",
            "Each member answers from its local state (possibly stale)",
        ),
    ];
}

/// `--isolation`: the level PostgreSQL and MariaDB Galera run each transaction at (the
/// txn workloads; single-op requests are autocommit statements). `None` in `DbOptions`
/// means the database's own default (`Isolation::default_for`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    ReadCommitted,
    RepeatableRead,
    Serializable,
}

impl Isolation {
    pub const ALL: [Isolation; 3] = [
        Isolation::ReadCommitted,
        Isolation::RepeatableRead,
        Isolation::Serializable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "read-committed",
            Isolation::RepeatableRead => "repeatable-read",
            Isolation::Serializable => "serializable",
        }
    }

    /// The SQL spelling (`ISOLATION LEVEL …`), the same in PostgreSQL and MariaDB.
    pub fn sql(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "READ COMMITTED",
            Isolation::RepeatableRead => "REPEATABLE READ",
            Isolation::Serializable => "SERIALIZABLE",
        }
    }

    /// What a session gets when it asks for nothing: PostgreSQL's `default_transaction_isolation`
    /// is read committed, InnoDB's `transaction_isolation` repeatable read; the other
    /// targets have no levels (`None`).
    pub fn default_for(kind: DbKind) -> Option<Isolation> {
        match kind {
            DbKind::Postgres => Some(Isolation::ReadCommitted),
            DbKind::Galera => Some(Isolation::RepeatableRead),
            DbKind::Etcd | DbKind::Redis => None,
        }
    }
}

impl std::fmt::Display for Isolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Isolation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Isolation::ALL
            .into_iter()
            .find(|i| i.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown isolation level {s:?}: expected read-committed, repeatable-read or serializable"
                )
            })
    }
}

impl schism_history::Choices for Isolation {
    const CHOICES: &'static [(&'static str, &'static str)] = &[
        (
            "read-committed",
            "Each statement sees what committed before it began (PostgreSQL's default)",
        ),
        (
            "repeatable-read",
            "One snapshot per transaction (snapshot isolation in PostgreSQL; InnoDB's default)",
        ),
        (
            "serializable",
            "As if one at a time (PostgreSQL's SSI; InnoDB locks every read)",
        ),
    ];
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
    /// Per-request timeout: after it, a read fails and a write is `Unknown`; a
    /// transaction gets it as a whole.
    pub timeout: Duration,
    /// PostgreSQL and Galera transactions (`None`: the database's default).
    pub isolation: Option<Isolation>,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            replication: Replication::Async,
            reads: ReadRouting::Leader,
            failover: false,
            etcd_reads: EtcdReads::Linearizable,
            timeout: Duration::from_secs(1),
            isolation: None,
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
