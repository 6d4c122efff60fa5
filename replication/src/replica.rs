//! The vocabulary shared by the multi-leader and leaderless models: their settings (each
//! parses from its command-line spelling and validates with one clear line) and the shape
//! of their durable records (a key's whole state; the disk image is the last state of
//! every key). Both implement `crate::Machine`.

use crate::ids::NodeId;
use crate::machine::DumpState;
use crate::versioned::{KeyState, Resolution};
use schism_history::Key;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Who replicates to whom in a multi-leader cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Topology {
    /// Every node sends its own writes to every other node.
    #[default]
    AllToAll,
    /// n1 → n2 → … → nN → n1; each node forwards what it learns to its successor.
    Ring,
    /// n1 is the hub: leaves send to the hub, the hub forwards to every other leaf.
    Star,
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Topology::AllToAll => "all-to-all",
            Topology::Ring => "ring",
            Topology::Star => "star",
        })
    }
}

impl FromStr for Topology {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "all-to-all" => Ok(Topology::AllToAll),
            "ring" => Ok(Topology::Ring),
            "star" => Ok(Topology::Star),
            other => Err(format!(
                "unknown topology {other:?}: expected all-to-all, ring or star"
            )),
        }
    }
}

impl Topology {
    /// The peers `me` sends changes to (`nodes` in cluster order; `nodes[0]` is the hub).
    pub fn downstream(self, me: &str, nodes: &[NodeId]) -> Vec<NodeId> {
        let i = nodes.iter().position(|n| n == me).unwrap_or(0);
        match self {
            Topology::AllToAll => nodes.iter().filter(|n| *n != me).cloned().collect(),
            Topology::Ring if nodes.len() > 1 => vec![nodes[(i + 1) % nodes.len()].clone()],
            Topology::Star if i == 0 => nodes[1..].to_vec(),
            Topology::Star => vec![nodes[0].clone()],
            Topology::Ring => Vec::new(),
        }
    }

    /// Whether a node passes on what it learned from a peer (all-to-all: no, the writer
    /// already sent it to everyone).
    pub fn forwards(self) -> bool {
        self != Topology::AllToAll
    }
}

/// When a multi-leader node acknowledges a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MlReplication {
    /// At once; peers learn of it later.
    #[default]
    Async,
    /// After every direct downstream peer that is reachable (heard from within the
    /// suspicion timeout) has persisted it; unreachable peers are not waited for.
    Sync,
}

impl fmt::Display for MlReplication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MlReplication::Async => "async",
            MlReplication::Sync => "sync",
        })
    }
}

/// Leaderless quorum sizes: N replicas per key, W acks per write, R answers per read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Quorum {
    pub n: usize,
    pub w: usize,
    pub r: usize,
}

impl Default for Quorum {
    fn default() -> Self {
        Quorum { n: 3, w: 2, r: 2 }
    }
}

impl fmt::Display for Quorum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.n, self.w, self.r)
    }
}

impl FromStr for Quorum {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split('/').collect();
        let nums: Option<Vec<usize>> = parts.iter().map(|p| p.trim().parse().ok()).collect();
        match nums.as_deref() {
            Some(&[n, w, r]) => {
                let q = Quorum { n, w, r };
                q.check()?;
                Ok(q)
            }
            _ => Err(format!(
                "quorum {s:?} is not N/W/R: write e.g. 3/2/2 (N replicas, W write acks, R read answers)"
            )),
        }
    }
}

impl TryFrom<String> for Quorum {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Quorum> for String {
    fn from(q: Quorum) -> String {
        q.to_string()
    }
}

impl Quorum {
    fn check(&self) -> Result<(), String> {
        if self.n == 0 || self.w == 0 || self.r == 0 {
            return Err(format!("quorum {self}: N, W and R must each be at least 1"));
        }
        if self.w > self.n {
            return Err(format!(
                "quorum {self}: W={} > N={}: a write cannot be acknowledged by more replicas than hold the key (use W <= N)",
                self.w, self.n
            ));
        }
        if self.r > self.n {
            return Err(format!(
                "quorum {self}: R={} > N={}: a read cannot be answered by more replicas than hold the key (use R <= N)",
                self.r, self.n
            ));
        }
        Ok(())
    }

    /// Validates against the cluster size.
    pub fn check_nodes(&self, nodes: usize) -> Result<(), String> {
        self.check()?;
        if self.n > nodes {
            return Err(format!(
                "quorum {self}: N={} > {nodes} nodes: each key needs N distinct replicas (use --nodes {} or a smaller N)",
                self.n, self.n
            ));
        }
        Ok(())
    }
}

/// The settings of the multi-leader and leaderless models, as the node config holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReplicaSettings {
    pub topology: Topology,
    /// Multi-leader only (leader-follower has its own `replication`).
    pub ml_replication: MlReplication,
    /// Multi-leader conflict resolution.
    pub conflict: Resolution,
    pub quorum: Quorum,
    pub read_repair: bool,
    pub sloppy_quorum: bool,
    /// 0 = off.
    pub anti_entropy_ms: u64,
    /// Leaderless versioning (`lww` or `version-vector`).
    pub versioning: Resolution,
}

impl Default for ReplicaSettings {
    fn default() -> Self {
        ReplicaSettings {
            topology: Topology::AllToAll,
            ml_replication: MlReplication::Async,
            conflict: Resolution::Lww,
            quorum: Quorum::default(),
            read_repair: true,
            sloppy_quorum: false,
            anti_entropy_ms: 0,
            versioning: Resolution::Lww,
        }
    }
}

impl ReplicaSettings {
    /// Checks the settings for a leaderless cluster of `nodes` nodes.
    pub fn check_leaderless(&self, nodes: usize) -> Result<(), String> {
        self.quorum.check_nodes(nodes)?;
        if self.versioning == Resolution::Crdt {
            return Err(
                "versioning `crdt` is for multi-leader (--conflict crdt); leaderless takes lww or version-vector"
                    .into(),
            );
        }
        Ok(())
    }
}

/// What a multi-leader or leaderless machine asks its shell to do; `Persist` holds the
/// keys' whole new states (later records of a key replace earlier ones).
pub type Output<M> = crate::machine::Output<M, Vec<(Key, KeyState)>>;

/// The dump of a store of key states: each key's read value, and its siblings if any.
pub fn dump_states<'a>(store: impl IntoIterator<Item = (&'a Key, &'a KeyState)>) -> DumpState {
    let mut d = DumpState::default();
    for (key, state) in store {
        let (value, siblings) = state.read();
        d.state.insert(*key, value);
        if let Some(s) = siblings {
            d.siblings.insert(*key, s);
        }
    }
    d
}

/// Folds persisted key states into a disk image (later records of a key replace earlier ones).
pub fn persist_states(disk: &mut BTreeMap<Key, KeyState>, items: &[(Key, KeyState)]) {
    for (k, s) in items {
        disk.insert(*k, s.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_parses_and_refuses_clearly() {
        assert_eq!("3/2/2".parse::<Quorum>(), Ok(Quorum { n: 3, w: 2, r: 2 }));
        assert!("3/4/1".parse::<Quorum>().unwrap_err().contains("W=4 > N=3"));
        assert!("3/1/5".parse::<Quorum>().unwrap_err().contains("R=5 > N=3"));
        assert!("3/2".parse::<Quorum>().unwrap_err().contains("N/W/R"));
        assert!("0/1/1".parse::<Quorum>().is_err());
        assert!(
            Quorum { n: 5, w: 2, r: 2 }
                .check_nodes(3)
                .unwrap_err()
                .contains("N=5 > 3 nodes")
        );
    }

    #[test]
    fn topologies_name_their_downstream_peers() {
        let nodes: Vec<NodeId> = ["n1", "n2", "n3"].iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(Topology::AllToAll.downstream("n2", &nodes), ["n1", "n3"]);
        assert_eq!(Topology::Ring.downstream("n3", &nodes), ["n1"]);
        assert_eq!(Topology::Star.downstream("n1", &nodes), ["n2", "n3"]);
        assert_eq!(Topology::Star.downstream("n3", &nodes), ["n1"]);
        assert_eq!("ring".parse::<Topology>(), Ok(Topology::Ring));
        assert!("mesh".parse::<Topology>().is_err());
    }
}
