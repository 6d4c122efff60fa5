//! What differs between the models the one node shell hosts, declared once per model in
//! its `Hosted` impl: how the machine is built from the config and the disk, which `Store`
//! keeps its log, which clock it reads (leader-follower: skewed time since start, never
//! decreasing; the others: skewed Unix time, so LWW stamps move with clock faults), the
//! shape of `/replicate`, how an indeterminate write is answered (leader-follower:
//! `unknown: true`; the others: HTTP 503), and which queued peer messages later ones make
//! useless (`coalesce`).

use super::NodeId;
use super::config::NodeConfig;
use super::context::NodeClock;
use super::leader_follower::{LeaderFollower, PeerMessage};
use super::leaderless::{Leaderless, LlConfig};
use super::multi_leader::{MlConfig, MultiLeader};
use super::storage::{EntryStore, StateLog, Store};
use crate::error::TargetError;
use schism_replication::Machine;

/// A model as the shell hosts it: what the shell needs beyond `Machine`.
pub(super) trait Hosted: Machine + Send + 'static {
    type Store: Store<Self>;
    /// `/replicate` carries a JSON array of messages (else one message per request).
    const BATCHED_WIRE: bool;
    /// A `Reply::Unknown` is answered with HTTP 503 (else HTTP 200 and `unknown: true`).
    const UNKNOWN_AS_UNAVAILABLE: bool;

    /// Refuses settings the model cannot run with, before anything starts.
    fn validate(_config: &NodeConfig) -> Result<(), TargetError> {
        Ok(())
    }

    /// The model's settings, for the node log's first line.
    fn describe(config: &NodeConfig) -> String;

    /// The machine, resuming from what its disk held.
    fn build(config: &NodeConfig, disk: Self::Durable) -> Self;

    /// The machine's `now`.
    fn now_ns(clock: &NodeClock) -> u64;

    /// Drops queued messages to one peer that later ones make useless.
    fn coalesce(_batch: &mut Vec<Self::Msg>) {}
}

impl Hosted for LeaderFollower {
    type Store = EntryStore;
    const BATCHED_WIRE: bool = false;
    const UNKNOWN_AS_UNAVAILABLE: bool = false;

    fn describe(c: &NodeConfig) -> String {
        format!(
            "leader {}, replication {}, durability {}, failover {}, fencing {}, read lease {}, topology {}",
            c.leader,
            c.replication,
            c.durability,
            c.failover,
            if c.fencing { "on" } else { "off" },
            if c.read_lease { "on" } else { "off" },
            c.topology,
        )
    }

    fn build(config: &NodeConfig, disk: Self::Durable) -> Self {
        LeaderFollower::from_disk(config.machine_config(), disk)
    }

    fn now_ns(clock: &NodeClock) -> u64 {
        clock.machine_ns()
    }

    fn coalesce(batch: &mut Vec<Self::Msg>) {
        coalesce(batch);
    }
}

/// The settings line of the two replica models.
fn describe_replica(c: &NodeConfig) -> String {
    format!(
        "settings {}, durability {}",
        serde_json::to_string(&c.replica).unwrap_or_default(),
        c.durability
    )
}

const MS: u64 = 1_000_000;

/// The timing both replica models take from the node config: a peer is suspected after
/// four missed heartbeats.
struct ReplicaTiming {
    nodes: Vec<NodeId>,
    resend_after_ns: u64,
    heartbeat_ns: u64,
    suspect_after_ns: u64,
}

impl ReplicaTiming {
    fn of(config: &NodeConfig) -> ReplicaTiming {
        ReplicaTiming {
            nodes: config.peers.keys().cloned().collect(),
            resend_after_ns: config.resend_after_ms * MS,
            heartbeat_ns: config.heartbeat_ms * MS,
            suspect_after_ns: 4 * config.heartbeat_ms * MS,
        }
    }
}

impl Hosted for MultiLeader {
    type Store = StateLog;
    const BATCHED_WIRE: bool = true;
    const UNKNOWN_AS_UNAVAILABLE: bool = true;

    fn describe(c: &NodeConfig) -> String {
        describe_replica(c)
    }

    fn build(config: &NodeConfig, disk: Self::Durable) -> Self {
        let t = ReplicaTiming::of(config);
        let mut cfg = MlConfig::new(&config.id, &t.nodes, config.replica);
        (cfg.resend_after_ns, cfg.heartbeat_ns) = (t.resend_after_ns, t.heartbeat_ns);
        cfg.suspect_after_ns = t.suspect_after_ns;
        MultiLeader::new(cfg, disk.into_iter().collect())
    }

    fn now_ns(clock: &NodeClock) -> u64 {
        clock.unix_ns()
    }
}

impl Hosted for Leaderless {
    type Store = StateLog;
    const BATCHED_WIRE: bool = true;
    const UNKNOWN_AS_UNAVAILABLE: bool = true;

    fn validate(config: &NodeConfig) -> Result<(), TargetError> {
        config
            .replica
            .check_leaderless(config.peers.len())
            .map_err(TargetError::Invalid)
    }

    fn describe(c: &NodeConfig) -> String {
        describe_replica(c)
    }

    fn build(config: &NodeConfig, disk: Self::Durable) -> Self {
        let t = ReplicaTiming::of(config);
        let mut cfg = LlConfig::new(&config.id, &t.nodes, config.replica);
        (cfg.resend_after_ns, cfg.heartbeat_ns) = (t.resend_after_ns, t.heartbeat_ns);
        cfg.suspect_after_ns = t.suspect_after_ns;
        cfg.request_timeout_ns = (config.peer_timeout_ms / 2).max(50) * MS;
        Leaderless::new(cfg, disk.into_iter().collect())
    }

    fn now_ns(clock: &NodeClock) -> u64 {
        clock.unix_ns()
    }
}

/// Drops every message that a later message in `batch` makes useless: in leader-follower,
/// the leader only accepts the ack of its newest `Append`, and a newer `Append` starts no
/// later than an older one, so of each kind only the last one matters — unless the epoch
/// changed in between (an older-epoch message is then kept; it may matter to fencing).
/// Votes are always kept.
pub(super) fn coalesce(batch: &mut Vec<PeerMessage>) {
    let last_append = batch
        .iter()
        .rposition(|m| matches!(m, PeerMessage::Append { .. }));
    let last_ack = batch
        .iter()
        .rposition(|m| matches!(m, PeerMessage::Ack { .. }));
    let epoch_of = |i: Option<usize>, b: &[PeerMessage]| match i.map(|i| &b[i]) {
        Some(PeerMessage::Append { epoch, .. } | PeerMessage::Ack { epoch, .. }) => *epoch,
        _ => 0,
    };
    let (append_epoch, ack_epoch) = (epoch_of(last_append, batch), epoch_of(last_ack, batch));
    let mut i = 0;
    batch.retain(|m| {
        let keep = match m {
            PeerMessage::Append { epoch, .. } => Some(i) == last_append || *epoch != append_epoch,
            PeerMessage::Ack { epoch, .. } => Some(i) == last_ack || *epoch != ack_epoch,
            PeerMessage::Vote { .. } | PeerMessage::VoteReply { .. } => true,
        };
        i += 1;
        keep
    });
}

/// The machines a node with `config` runs, resumed from `disk`, built exactly as the
/// process shell builds them (same timers, same settings): what `schism sim` puts under
/// the deterministic harness.
pub fn leader_follower_machine(
    config: &NodeConfig,
    disk: <LeaderFollower as Machine>::Durable,
) -> LeaderFollower {
    <LeaderFollower as Hosted>::build(config, disk)
}

/// See `leader_follower_machine`.
pub fn multi_leader_machine(
    config: &NodeConfig,
    disk: <MultiLeader as Machine>::Durable,
) -> MultiLeader {
    <MultiLeader as Hosted>::build(config, disk)
}

/// See `leader_follower_machine`.
pub fn leaderless_machine(
    config: &NodeConfig,
    disk: <Leaderless as Machine>::Durable,
) -> Leaderless {
    <Leaderless as Hosted>::build(config, disk)
}
