//! The settings every reference model and shell share, each parsing from the runner's
//! flag spelling (`FromStr`) and serialising as it (serde), with one clear line on error.
//! Pure data: nothing here does I/O.

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

/// When the leader acknowledges a write (leader-follower).
/// `async`: once its own log has it; `semi-sync:K`: once K followers hold it too;
/// `sync`: once every follower holds it. "Hold" means persisted (under the node's
/// `Durability`) and acknowledged back to the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Replication {
    #[default]
    Async,
    SemiSync(u32),
    Sync,
}

impl Replication {
    /// Followers that must hold an entry before it is acknowledged, in a cluster of `nodes`.
    pub fn required_followers(&self, nodes: usize) -> usize {
        let followers = nodes.saturating_sub(1);
        match *self {
            Replication::Async => 0,
            Replication::SemiSync(k) => (k as usize).min(followers),
            Replication::Sync => followers,
        }
    }

    /// Checks the mode against the cluster size: `semi-sync:K` needs 1 ≤ K < nodes.
    pub fn validate(&self, nodes: usize) -> Result<(), String> {
        match *self {
            Replication::SemiSync(k) if k == 0 || k as usize >= nodes => Err(format!(
                "--replication semi-sync:{k} needs 1 <= K < nodes ({nodes} nodes: K at most {})",
                nodes.saturating_sub(1)
            )),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Replication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Replication::Async => f.write_str("async"),
            Replication::SemiSync(k) => write!(f, "semi-sync:{k}"),
            Replication::Sync => f.write_str("sync"),
        }
    }
}

impl FromStr for Replication {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "async" => Ok(Replication::Async),
            "sync" => Ok(Replication::Sync),
            s if s.starts_with("semi-sync:") => s["semi-sync:".len()..]
                .parse::<u32>()
                .map(Replication::SemiSync)
                .map_err(|_| {
                    format!(
                        "replication {s:?}: K in semi-sync:K must be a number, e.g. semi-sync:1"
                    )
                }),
            "semi-sync" => {
                Err("replication `semi-sync` needs a count: semi-sync:K (e.g. semi-sync:1)".into())
            }
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
    /// Entries wait in an in-memory buffer that is written to the file only every
    /// `flush_ms` (default 50 ms): a SIGKILL loses the unwritten tail, acknowledged or not.
    Buffered,
    /// write(2) then fdatasync once per batch of entries, before any reply or ack.
    #[default]
    Fsync,
}

/// Whether a leader-follower cluster elects a new leader when the leader goes silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Failover {
    /// The configured leader (n1) leads forever; while it is down, writes fail.
    #[default]
    None,
    /// Heartbeats, elections with epochs; the most up-to-date follower wins.
    Auto,
}

impl fmt::Display for Failover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Failover::None => "none",
            Failover::Auto => "auto",
        })
    }
}

impl FromStr for Failover {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Failover::None),
            "auto" => Ok(Failover::Auto),
            other => Err(format!("unknown failover {other:?}: expected none or auto")),
        }
    }
}

/// Who replicates to whom in a leader-follower cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Topology {
    /// The leader sends to every follower.
    #[default]
    Star,
    /// The leader sends to the next node, which forwards to the next (n1 → n2 → n3 …,
    /// rotated to start at the current leader).
    Chain,
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Topology::Star => "star",
            Topology::Chain => "chain",
        })
    }
}

impl FromStr for Topology {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "star" => Ok(Topology::Star),
            "chain" => Ok(Topology::Chain),
            other => Err(format!(
                "unknown topology {other:?}: expected star or chain"
            )),
        }
    }
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
        assert_eq!(
            "semi-sync:2".parse::<Replication>(),
            Ok(Replication::SemiSync(2))
        );
        assert_eq!("sync".parse::<Replication>(), Ok(Replication::Sync));
        assert!(
            Replication::SemiSync(3)
                .validate(3)
                .unwrap_err()
                .contains("K < nodes")
        );
        assert!(Replication::SemiSync(0).validate(3).is_err());
        assert!(Replication::SemiSync(2).validate(3).is_ok());
        assert_eq!(Replication::Sync.required_followers(3), 2);
        assert_eq!(
            serde_json::to_string(&Replication::SemiSync(1)).unwrap(),
            r#""semi-sync:1""#
        );
        assert_eq!("auto".parse::<Failover>(), Ok(Failover::Auto));
        assert_eq!("chain".parse::<Topology>(), Ok(Topology::Chain));
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
