//! The settings every reference model and shell share, each parsing from the runner's
//! flag spelling (`FromStr`) and serialising as it (serde), with one clear line on error.
//! The named ones list their spellings and help once (`schism_history::Choices`): the
//! runner's flags, `--help` and `config.json` all take them from here. Pure data: nothing
//! here does I/O.

use crate::replica::{MlReplication, Topology as MlTopology};
use schism_history::Choices;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Node names (`n1`, `n2`, …).
pub use crate::ids::NodeId;

/// Which replication model a node runs (`leader_follower`, `multi_leader`, `leaderless`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Model {
    #[default]
    LeaderFollower,
    MultiLeader,
    Leaderless,
}

impl Choices for Model {
    const CHOICES: &'static [(&'static str, &'static str)] = &[
        ("leader-follower", ""),
        (
            "multi-leader",
            "Every node takes writes and replicates them to its peers (`--topology`, `--conflict`)",
        ),
        (
            "leaderless",
            "Dynamo-style quorums, the contacted node coordinates (`--quorum`, `--read-repair`, …)",
        ),
    ];
}

impl FromStr for Model {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "leader-follower" => Ok(Model::LeaderFollower),
            "multi-leader" => Ok(Model::MultiLeader),
            "leaderless" => Ok(Model::Leaderless),
            other => Err(format!(
                "unknown model {other:?}: expected {}",
                Model::expected()
            )),
        }
    }
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

    /// The multi-leader mode (`async` or `sync`; `semi-sync:K` counts followers, which a
    /// multi-leader cluster has none of), or one line naming the flag.
    pub fn multi_leader(self) -> Result<MlReplication, String> {
        match self {
            Replication::Async => Ok(MlReplication::Async),
            Replication::Sync => Ok(MlReplication::Sync),
            Replication::SemiSync(_) => Err(
                "--replication semi-sync:K applies to --model leader-follower only (use async or sync)"
                    .into(),
            ),
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

impl Choices for Failover {
    const CHOICES: &'static [(&'static str, &'static str)] = &[
        ("none", "n1 leads forever; while it is down writes fail"),
        (
            "auto",
            "Heartbeats and elections with epochs; the most up-to-date follower wins",
        ),
    ];
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

impl Choices for Durability {
    const CHOICES: &'static [(&'static str, &'static str)] = &[
        ("fsync", "write + fdatasync before any ack"),
        (
            "buffered",
            "In-memory buffer written out every 50 ms: kill -9 loses the unwritten tail",
        ),
    ];
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

/// An `on` / `off` setting (`--fencing`, `--read-lease`, `--read-repair`,
/// `--sloppy-quorum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Switch {
    On,
    Off,
}

impl Switch {
    pub fn on(self) -> bool {
        self == Switch::On
    }
}

impl Choices for Switch {
    const CHOICES: &'static [(&'static str, &'static str)] = &[("on", ""), ("off", "")];
}

impl fmt::Display for Switch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.on() { "on" } else { "off" })
    }
}

impl FromStr for Switch {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "on" => Ok(Switch::On),
            "off" => Ok(Switch::Off),
            other => Err(format!("{other:?} is neither on nor off")),
        }
    }
}

/// `--topology` as the user spells it, before the model gives it a meaning: every
/// topology of either model (leader-follower's `Topology`, multi-leader's `MlTopology`).
/// `leader_follower` and `multi_leader` take it to the model's own type or refuse it with
/// one line naming the flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnyTopology {
    Star,
    Chain,
    AllToAll,
    Ring,
}

impl AnyTopology {
    /// The leader-follower topology (star or chain).
    pub fn leader_follower(self) -> Result<Topology, String> {
        match self {
            AnyTopology::Star => Ok(Topology::Star),
            AnyTopology::Chain => Ok(Topology::Chain),
            other => Err(format!(
                "--topology {other} applies to --model multi-leader only (leader-follower: star or chain)"
            )),
        }
    }

    /// The multi-leader topology (all-to-all, ring or star).
    pub fn multi_leader(self) -> Result<MlTopology, String> {
        match self {
            AnyTopology::AllToAll => Ok(MlTopology::AllToAll),
            AnyTopology::Ring => Ok(MlTopology::Ring),
            AnyTopology::Star => Ok(MlTopology::Star),
            AnyTopology::Chain => Err(
                "--topology chain applies to --model leader-follower only (multi-leader: all-to-all, ring or star)"
                    .into(),
            ),
        }
    }
}

impl Choices for AnyTopology {
    const CHOICES: &'static [(&'static str, &'static str)] = &[
        (
            "star",
            "The leader (leader-follower) or a hub (multi-leader) sends to every other node",
        ),
        (
            "chain",
            "Leader-follower: n1 → n2 → n3 …, each node forwarding to the next",
        ),
        (
            "all-to-all",
            "Multi-leader: every node sends to every other (the multi-leader default)",
        ),
        (
            "ring",
            "Multi-leader: each node sends to the next in a ring",
        ),
    ];
}

impl fmt::Display for AnyTopology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AnyTopology::Star => "star",
            AnyTopology::Chain => "chain",
            AnyTopology::AllToAll => "all-to-all",
            AnyTopology::Ring => "ring",
        })
    }
}

impl FromStr for AnyTopology {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "star" => Ok(AnyTopology::Star),
            "chain" => Ok(AnyTopology::Chain),
            "all-to-all" => Ok(AnyTopology::AllToAll),
            "ring" => Ok(AnyTopology::Ring),
            other => Err(format!(
                "unknown topology {other:?}: expected {}",
                AnyTopology::expected()
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

    /// Every named setting reads back what it displays and serialises, for each of its
    /// listed spellings, and an unknown spelling names the accepted ones.
    #[test]
    fn named_settings_round_trip() {
        fn round_trip<T>()
        where
            T: Choices
                + fmt::Display
                + Serialize
                + for<'de> Deserialize<'de>
                + PartialEq
                + fmt::Debug,
        {
            for &(name, _) in T::CHOICES {
                let v: T = name.parse().unwrap();
                assert_eq!(v.to_string(), name);
                assert_eq!(serde_json::to_string(&v).unwrap(), format!("{name:?}"));
                assert_eq!(serde_json::from_str::<T>(&format!("{name:?}")).unwrap(), v);
            }
            let err = "bogus".parse::<T>().unwrap_err();
            let last = T::CHOICES.last().unwrap().0;
            assert!(err.contains(last), "{err}");
        }
        round_trip::<Model>();
        round_trip::<Failover>();
        round_trip::<Durability>();
        round_trip::<Switch>();
        round_trip::<AnyTopology>();
        round_trip::<crate::Resolution>();
        assert_eq!(Replication::Sync.multi_leader(), Ok(MlReplication::Sync));
        assert!(Replication::SemiSync(1).multi_leader().is_err());
        assert_eq!(AnyTopology::Chain.leader_follower(), Ok(Topology::Chain));
        assert_eq!(AnyTopology::Ring.multi_leader(), Ok(MlTopology::Ring));
        assert!(
            AnyTopology::Chain
                .multi_leader()
                .unwrap_err()
                .starts_with("--topology chain applies to --model leader-follower")
        );
        assert!(
            AnyTopology::AllToAll
                .leader_follower()
                .unwrap_err()
                .starts_with("--topology all-to-all applies to --model multi-leader")
        );
    }
}
