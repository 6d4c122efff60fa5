//! The reference cluster: built-in replicated key-value stores that schism tests itself on.
//!
//! Each model's protocol is a sans-IO state machine (`leader_follower`, `multi_leader`,
//! `leaderless`; the latter two share `versioned` values and the `replica` vocabulary),
//! driven either by a deterministic in-memory harness (`sim`, `simnet`, used by unit tests)
//! or by a process shell (`node`, and `replica_node` for the two newer models: one OS
//! process per node, HTTP on loopback, a log on disk).
//! `cluster` starts, signals and stops those processes for the runner. The settings
//! below are shared by all of them and parse from the runner's flag spellings.

pub mod clock;
pub mod cluster;
pub mod leader_follower;
pub mod leaderless;
pub mod multi_leader;
pub mod node;
pub mod replica;
pub mod replica_node;
pub mod sim;
pub mod simnet;
pub mod storage;
pub mod versioned;

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Node names (`n1`, `n2`, …).
pub type NodeId = String;

/// Which replication model a node runs (`leader_follower`, `multi_leader`, `leaderless`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Model {
    #[default]
    LeaderFollower,
    MultiLeader,
    Leaderless,
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Model::LeaderFollower => f.write_str("leader-follower"),
            Model::MultiLeader => f.write_str("multi-leader"),
            Model::Leaderless => f.write_str("leaderless"),
        }
    }
}

/// When the leader acknowledges a write. Only `async` exists so far: reply at once,
/// replicate in the background (a failover may lose acknowledged writes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Replication {
    #[default]
    Async,
}

impl fmt::Display for Replication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Replication::Async => f.write_str("async"),
        }
    }
}

impl FromStr for Replication {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "async" => Ok(Replication::Async),
            "sync" => Err(
                "replication `sync` is not implemented by the reference cluster yet (use async)"
                    .into(),
            ),
            s if s.starts_with("semi-sync") => Err(format!(
                "replication `{s}` is not implemented by the reference cluster yet (use async)"
            )),
            other => Err(format!(
                "unknown replication mode {other:?}: expected async, semi-sync:K or sync"
            )),
        }
    }
}

impl TryFrom<String> for Replication {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Replication> for String {
    fn from(r: Replication) -> String {
        r.to_string()
    }
}

/// How a node's log reaches the disk before it replies or acks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// write(2) only: survives a process kill, not a machine crash.
    #[default]
    Buffered,
    /// write(2) then fdatasync once per batch of entries.
    Fsync,
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Durability::Buffered => "buffered",
            Durability::Fsync => "fsync",
        })
    }
}

impl FromStr for Durability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "buffered" => Ok(Durability::Buffered),
            "fsync" => Ok(Durability::Fsync),
            other => Err(format!(
                "unknown durability {other:?}: expected fsync or buffered"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_from_flag_spellings() {
        assert_eq!("async".parse::<Replication>(), Ok(Replication::Async));
        assert!(
            "semi-sync:2"
                .parse::<Replication>()
                .unwrap_err()
                .contains("not implemented")
        );
        assert!(
            "bogus"
                .parse::<Replication>()
                .unwrap_err()
                .contains("expected async")
        );
        assert_eq!("fsync".parse::<Durability>(), Ok(Durability::Fsync));
        assert_eq!(
            serde_json::to_string(&Replication::Async).unwrap(),
            r#""async""#
        );
        assert_eq!(
            serde_json::to_string(&Model::LeaderFollower).unwrap(),
            r#""leader-follower""#
        );
    }
}
