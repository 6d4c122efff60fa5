//! A reference node's configuration: `NodeConfig` (the JSON file the runner writes and
//! `schism node --config FILE` reads, every knob with a serde default so older files still
//! load), its validation, and the JSON bodies of the admin API (`ClockRequest`,
//! `LinksRequest`). Pure data: no I/O beyond reading and writing that one file.

use super::leader_follower::MachineConfig;
use super::{Durability, Failover, Model, NodeId, Replication, Topology};
use crate::error::TargetError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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

    pub(super) fn machine_config(&self) -> MachineConfig {
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

#[cfg(test)]
mod tests {
    use super::*;

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
