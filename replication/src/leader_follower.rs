//! The leader-follower replication protocol as a sans-IO state machine.
//!
//! `LeaderFollower::handle(now_ns, input, &mut outputs)` is the whole protocol: it opens no
//! socket or file, starts no thread and reads no clock, so the process shell and the
//! deterministic harness drive exactly the same logic. Every knob of the model lives here:
//! replication (`async | semi-sync:K | sync`), failover (`none | auto`), fencing, the
//! leader read lease, read-your-writes / monotonic read tokens and the topology
//! (`star | chain`); the shell only does I/O (and durability, which is how it persists).
//! Guarantees, given a shell that honours the output contract (every `Output::Persist` of a
//! `LogOp` is carried out, in order, before any later `Reply` or `Send` is acted on), each
//! checked by a `debug_assert!` after every input (`check_invariants`, exercised by the
//! harness in `crate::sim`):
//! - a leader assigns LSNs without gaps; each entry carries the leader's epoch;
//! - a write is acknowledged once it is *committed*: in the leader's own log (async), and
//!   also held by K followers (semi-sync:K) or every follower of the leader's sync set
//!   (sync), as reported by their acks of persisted positions; reads see committed entries
//!   only. The first leader's sync set is every follower; a leader elected after a
//!   failover starts it with the nodes that voted for it (a majority), and a node joins once
//!   it acknowledged this leader — as Patroni's synchronous mode drops a failed primary
//!   from the standby list. So a deposed leader cannot block its successor, and every
//!   commit is still on a majority (star topology; a chain waits for every node);
//! - with `failover auto`, a follower that hears nothing for its election timeout runs a
//!   pre-vote and then an election with a higher epoch; voters grant only to a candidate
//!   whose log is at least as up to date as theirs (last epoch, then last LSN), and ignore
//!   candidates while they still hear from a leader; a winner appends a no-op of its epoch;
//! - with fencing on, a node that sees a higher epoch steps down, followers refuse
//!   replication from older epochs and cut conflicting log suffixes (log matching on
//!   `prev_lsn`/`prev_epoch`). With fencing off a leader never learns it was deposed and
//!   followers take entries from any epoch: split brain;
//! - check-quorum (with fencing on and `failover auto`): a leader that has not heard from
//!   a majority for `check_quorum_ns` steps down. That timeout is its own, and by default
//!   longer than the followers' election timeout (as in Raft implementations, where the
//!   leader checks its quorum once per election period or two): an isolated old leader
//!   notices *after* the others elected, so for a while two nodes believe they lead. What
//!   keeps that window safe is the epoch (for writes) and the lease (for reads), not the
//!   step-down;
//! - with the read lease on, the leader serves reads only while a majority acknowledged a
//!   message it sent less than `lease_ns` ago (shorter than any election timeout); with it
//!   off, an isolated leader serves reads until check-quorum or a newer epoch deposes it;
//! - a read with `min_lsn` is served only once the node applied that far; it waits up to
//!   `read_wait_ns`, then fails naming the leader (the client redirects).

pub use crate::machine::{ClockStatus, FollowerStatus, ReadOpts, Reply, Role, Status};
use crate::machine::{DumpState, Machine};
use crate::request::Request;
use crate::settings::{Failover, NodeId, Replication, Topology};
use schism_history::txn::{MicroOp, MopF, MopValue, txn_value};
use schism_history::{Key, Value};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// What a log entry does to its key. Cas is decided at the leader and logged as a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    Write(i64),
    Append(i64),
    /// Counter add (both `add` and `incr`).
    Add(i64),
    /// A new leader's first entry: changes nothing, commits everything before it.
    Noop,
    /// A write (append) of a transaction whose next entry belongs to the same
    /// transaction: applied only together with the rest of it, so a transaction's writes
    /// become visible at once (its last write is a plain `Write`/`Append`).
    WriteMore(i64),
    AppendMore(i64),
}

impl Effect {
    /// A one-byte tag for the on-disk and wire encodings.
    pub fn tag(&self) -> u8 {
        match self {
            Effect::Write(_) => b'w',
            Effect::Append(_) => b'a',
            Effect::Add(_) => b'+',
            Effect::Noop => b'n',
            Effect::WriteMore(_) => b'W',
            Effect::AppendMore(_) => b'A',
        }
    }

    pub fn operand(&self) -> i64 {
        match *self {
            Effect::Write(v)
            | Effect::Append(v)
            | Effect::Add(v)
            | Effect::WriteMore(v)
            | Effect::AppendMore(v) => v,
            Effect::Noop => 0,
        }
    }

    /// The next entry belongs to the same transaction.
    pub fn continues(&self) -> bool {
        matches!(self, Effect::WriteMore(_) | Effect::AppendMore(_))
    }

    pub fn from_tag(tag: u8, operand: i64) -> Option<Effect> {
        match tag {
            b'w' => Some(Effect::Write(operand)),
            b'a' => Some(Effect::Append(operand)),
            b'+' => Some(Effect::Add(operand)),
            b'n' => Some(Effect::Noop),
            b'W' => Some(Effect::WriteMore(operand)),
            b'A' => Some(Effect::AppendMore(operand)),
            _ => None,
        }
    }
}

/// One replicated log entry. On the wire it is the compact array `[lsn,epoch,key,tag,operand]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "EntryWire", try_from = "EntryWire")]
pub struct Entry {
    pub lsn: u64,
    pub epoch: u64,
    pub key: Key,
    pub effect: Effect,
}

#[derive(Serialize, Deserialize)]
struct EntryWire(u64, u64, Key, u8, i64);

impl From<Entry> for EntryWire {
    fn from(e: Entry) -> Self {
        EntryWire(e.lsn, e.epoch, e.key, e.effect.tag(), e.effect.operand())
    }
}

impl TryFrom<EntryWire> for Entry {
    type Error = String;
    fn try_from(w: EntryWire) -> Result<Self, String> {
        let effect =
            Effect::from_tag(w.3, w.4).ok_or_else(|| format!("unknown effect tag {}", w.3))?;
        Ok(Entry {
            lsn: w.0,
            epoch: w.1,
            key: w.2,
            effect,
        })
    }
}

/// Node-to-node messages. `from` is inside so a message is self-describing on any transport.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "lowercase")]
pub enum PeerMessage {
    /// Leader (or, in a chain, the previous node) → follower: entries `prev_lsn+1 ..`,
    /// possibly none (a heartbeat / probe). `prev_epoch` is the epoch of entry `prev_lsn`;
    /// `commit` is the leader's commit LSN; `leader` names the leader when forwarded.
    Append {
        from: NodeId,
        epoch: u64,
        seq: u64,
        prev_lsn: u64,
        #[serde(default)]
        prev_epoch: u64,
        #[serde(default)]
        commit: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        leader: Option<NodeId>,
        entries: Vec<Entry>,
    },
    /// Follower → sender: answer to the `Append` with this `seq`; `last_lsn` is the
    /// follower's last persisted LSN that matches the sender's log; `downstream` is what
    /// the nodes after it in a chain hold.
    Ack {
        from: NodeId,
        epoch: u64,
        seq: u64,
        last_lsn: u64,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        downstream: Vec<u64>,
    },
    /// Candidate → all: vote for me in `epoch` (`pre`: would you, without changing state).
    Vote {
        from: NodeId,
        epoch: u64,
        last_lsn: u64,
        last_epoch: u64,
        #[serde(default)]
        pre: bool,
    },
    VoteReply {
        from: NodeId,
        epoch: u64,
        granted: bool,
        #[serde(default)]
        pre: bool,
    },
}

impl PeerMessage {
    pub fn from(&self) -> &str {
        match self {
            PeerMessage::Append { from, .. }
            | PeerMessage::Ack { from, .. }
            | PeerMessage::Vote { from, .. }
            | PeerMessage::VoteReply { from, .. } => from,
        }
    }
}

/// What the leader-follower machine is fed.
pub type Input = crate::machine::Input<PeerMessage>;

/// What the leader-follower machine asks its shell to do, in order.
pub type Output = crate::machine::Output<PeerMessage, LogOp>;

/// One durable change of a node's log, carried out before any later output is acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogOp {
    /// Append these entries to the log.
    Append(Vec<Entry>),
    /// Drop every entry after LSN `keep` (a conflicting suffix).
    Truncate { keep: u64 },
    /// Remember the epoch and the vote cast in it (before the vote is sent).
    Meta(Meta),
}

/// What a node's disk holds: its log and its persisted epoch and vote (`None` before the
/// first `LogOp::Meta`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogDisk {
    pub entries: Vec<Entry>,
    pub meta: Option<Meta>,
}

impl LogDisk {
    /// Folds one record in, as the log file does on disk.
    pub fn apply(&mut self, op: &LogOp) {
        match op {
            LogOp::Append(entries) => self.entries.extend_from_slice(entries),
            LogOp::Truncate { keep } => self.entries.truncate(*keep as usize),
            LogOp::Meta(meta) => self.meta = Some(meta.clone()),
        }
    }
}

/// The epoch and vote a node persisted (its `meta` file).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Meta {
    pub epoch: u64,
    pub voted_for: Option<NodeId>,
}

/// Static settings of one node's state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineConfig {
    pub id: NodeId,
    /// Every node of the cluster, including this one.
    pub nodes: Vec<NodeId>,
    /// The leader at a fresh start (and forever with `failover none`).
    pub leader: NodeId,
    pub replication: Replication,
    pub failover: Failover,
    pub fencing: bool,
    pub read_lease: bool,
    pub topology: Topology,
    /// Most entries in one replication message.
    pub batch_max_entries: usize,
    /// Resend an unacknowledged replication message after this long.
    pub resend_after_ns: u64,
    /// Ship new entries to a follower at most this often (0: at once). Real asynchronous
    /// replication lags by batching (binlog/WAL shipping); with a positive interval a
    /// leader that dies takes up to that much acknowledged history with it.
    pub ship_interval_ns: u64,
    /// Send an empty `Append` to an idle follower this often (it also probes a follower's
    /// position after a leader restart).
    pub heartbeat_ns: u64,
    /// The shortest election timeout (node i waits `1 + i/4` times this).
    pub election_timeout_ns: u64,
    /// Check-quorum: how long a leader may go without hearing from a majority before it
    /// steps down (fencing on, failover auto). Longer than the election timeouts by
    /// default, so an isolated leader is replaced before it notices.
    pub check_quorum_ns: u64,
    /// Read lease length; must be below `election_timeout_ns`.
    pub lease_ns: u64,
    /// How long a read waits for its `min_lsn` before failing with a redirect.
    pub read_wait_ns: u64,
}

impl MachineConfig {
    pub fn new(id: &str, nodes: &[&str], leader: &str) -> MachineConfig {
        MachineConfig {
            id: id.to_owned(),
            nodes: nodes.iter().map(|n| (*n).to_owned()).collect(),
            leader: leader.to_owned(),
            replication: Replication::Async,
            failover: Failover::None,
            fencing: true,
            read_lease: false,
            topology: Topology::Star,
            batch_max_entries: 4096,
            resend_after_ns: 250_000_000,
            ship_interval_ns: 0,
            heartbeat_ns: 100_000_000,
            election_timeout_ns: 1_000_000_000,
            check_quorum_ns: 2_500_000_000,
            lease_ns: 500_000_000,
            read_wait_ns: 200_000_000,
        }
    }

    fn majority(&self) -> usize {
        self.nodes.len() / 2 + 1
    }
}

/// What `check_invariants` compares against: the state before one input.
#[derive(Debug, Clone, Copy)]
struct Checkpoint {
    epoch: u64,
    commit_lsn: u64,
}

impl Checkpoint {
    fn of(node: &LeaderFollower) -> Checkpoint {
        Checkpoint {
            epoch: node.epoch,
            commit_lsn: node.commit_lsn,
        }
    }
}

/// A key's current value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cell {
    Int(i64),
    List(Vec<i64>),
}

/// A sender's view of one node it replicates to.
#[derive(Debug, Clone)]
struct Progress {
    id: NodeId,
    /// Highest LSN the follower is known to hold.
    match_lsn: u64,
    /// First LSN to send next.
    next_lsn: u64,
    /// The unacknowledged message: (seq, sent at).
    inflight: Option<(u64, u64)>,
    last_send_ns: Option<u64>,
    /// When entries (not just a heartbeat) last went to this target: the ship interval
    /// counts from here, so heartbeats in between neither carry entries nor delay them.
    last_ship_ns: Option<u64>,
    acked: bool,
    /// Seq of the last ack taken (later progress reports reuse it).
    acked_seq: u64,
    /// When the message answered by the newest ack was sent (lease).
    ack_sent_ns: Option<u64>,
    /// When the newest ack arrived (fencing).
    ack_recv_ns: Option<u64>,
    /// In the sync set: `sync` replication waits for this follower.
    in_sync_set: bool,
    /// What the nodes after this one in a chain hold.
    downstream: Vec<u64>,
}

impl Progress {
    fn new(id: NodeId, next_lsn: u64) -> Progress {
        Progress {
            id,
            match_lsn: 0,
            next_lsn,
            inflight: None,
            last_send_ns: None,
            last_ship_ns: None,
            acked: false,
            acked_seq: 0,
            ack_sent_ns: None,
            ack_recv_ns: None,
            in_sync_set: true,
            downstream: Vec::new(),
        }
    }
}

/// A read waiting for its node to apply `min_lsn`.
#[derive(Debug, Clone)]
struct WaitingRead {
    req: u64,
    key: Key,
    min_lsn: u64,
    deadline_ns: u64,
}

/// One node of a leader-follower cluster.
#[derive(Debug)]
pub struct LeaderFollower {
    cfg: MachineConfig,
    epoch: u64,
    voted_for: Option<NodeId>,
    role: Role,
    leader: Option<NodeId>,
    /// `log[i].lsn == i + 1`.
    log: Vec<Entry>,
    commit_lsn: u64,
    applied_lsn: u64,
    state: HashMap<Key, Cell>,
    /// Whom this node replicates to (all followers on a star leader; the successor in a chain).
    progress: Vec<Progress>,
    next_seq: u64,
    /// Writes waiting to commit: (lsn, req), in LSN order (a transaction's: its last
    /// entry's LSN).
    pending: Vec<(u64, u64)>,
    /// What a waiting transaction answers once it commits (its reads filled in), by req.
    txn_values: HashMap<u64, Value>,
    waiting_reads: Vec<WaitingRead>,
    /// The first LSN of this leader's epoch (its no-op); reads wait until it commits.
    epoch_start_lsn: u64,
    became_leader_ns: u64,
    /// Last time this node heard from a current leader (or granted a vote).
    last_heard_ns: Option<u64>,
    /// Election in progress: the epoch it is for, when it started, who granted.
    election: Option<(u64, u64, Vec<NodeId>, bool)>,
    /// In a chain: who sent the last `Append` and its seq (progress reports go there).
    upstream: Option<(NodeId, u64)>,
    /// Votes, leader changes, step-downs, for the node log (the shell drains it).
    events: Vec<String>,
    /// Outputs produced while recovering (a restarted leader's new epoch and no-op); they
    /// lead the outputs of the first `handle`.
    startup: Vec<Output>,
}

impl LeaderFollower {
    /// A node resuming from the entries its log file held (empty for a fresh node) and the
    /// epoch and vote it persisted. Only the contiguous prefix `1, 2, …` is kept.
    /// A fresh node starts as the configured leader's follower (or as that leader) in
    /// epoch 1. A restarted node under `failover none` does too, the leader in a new epoch
    /// (so that followers cut any tail it lost); under `failover auto` a restarted node
    /// starts as a follower that knows no leader.
    pub fn new(cfg: MachineConfig, recovered: Vec<Entry>) -> LeaderFollower {
        Self::recover(cfg, recovered, None)
    }

    pub fn recover(
        cfg: MachineConfig,
        mut recovered: Vec<Entry>,
        meta: Option<Meta>,
    ) -> LeaderFollower {
        let contiguous = recovered
            .iter()
            .enumerate()
            .take_while(|(i, e)| e.lsn == *i as u64 + 1)
            .count();
        recovered.truncate(contiguous);
        let fresh = recovered.is_empty() && meta.is_none();
        let log_epoch = recovered.last().map_or(1, |e| e.epoch.max(1));
        let meta = meta.unwrap_or_default();
        let epoch = log_epoch.max(meta.epoch).max(1);
        let mut node = LeaderFollower {
            leader: None,
            epoch,
            voted_for: meta.voted_for,
            role: Role::Follower,
            log: Vec::with_capacity(recovered.len().max(1024)),
            commit_lsn: 0,
            applied_lsn: 0,
            state: HashMap::new(),
            progress: Vec::new(),
            next_seq: 1,
            pending: Vec::new(),
            txn_values: HashMap::new(),
            waiting_reads: Vec::new(),
            epoch_start_lsn: 0,
            became_leader_ns: 0,
            last_heard_ns: None,
            election: None,
            upstream: None,
            events: Vec::new(),
            startup: Vec::new(),
            cfg,
        };
        node.log = recovered;
        let static_roles = node.cfg.failover == Failover::None;
        if fresh || static_roles {
            node.leader = Some(node.cfg.leader.clone());
        }
        // What this node held was committed under async; under (semi-)sync a follower
        // learns the commit point from its leader, a restarted leader recommits.
        if node.cfg.replication == Replication::Async {
            node.commit_lsn = node.last_lsn();
        }
        if node.cfg.id == node.cfg.leader && (fresh || static_roles) {
            let mut out = Vec::new();
            if fresh {
                node.become_leader(0, &mut out);
            } else {
                // A new epoch, so that followers cut whatever tail this leader lost.
                node.epoch += 1;
                node.voted_for = Some(node.cfg.id.clone());
                node.become_leader(0, &mut out);
            }
            // A restarted leader's new epoch and no-op go to disk with its first outputs:
            // the caller collects them through `take_startup_outputs`.
            node.startup = out;
        } else {
            node.reset_progress();
        }
        node.apply_committed();
        node
    }

    pub fn id(&self) -> &str {
        &self.cfg.id
    }

    pub fn config(&self) -> &MachineConfig {
        &self.cfg
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn leader(&self) -> Option<&str> {
        self.leader.as_deref()
    }

    pub fn last_lsn(&self) -> u64 {
        self.log.len() as u64
    }

    pub fn commit_lsn(&self) -> u64 {
        self.commit_lsn
    }

    pub fn applied_lsn(&self) -> u64 {
        self.applied_lsn
    }

    pub fn log(&self) -> &[Entry] {
        &self.log
    }

    /// Notable events since the last call (elections, step-downs, truncations).
    pub fn take_events(&mut self) -> Vec<String> {
        std::mem::take(&mut self.events)
    }

    /// The value a read of `key` returns here now.
    pub fn read(&self, key: Key) -> Value {
        match self.state.get(&key) {
            None => Value::Null,
            Some(Cell::Int(v)) => Value::Int(*v),
            Some(Cell::List(v)) => Value::list(v.clone()),
        }
    }

    /// Whether the leader holds a read lease at `now_ns`.
    pub fn has_lease(&self, now_ns: u64) -> bool {
        if self.role != Role::Leader || self.commit_lsn < self.epoch_start_lsn {
            return false;
        }
        // A lease counts from when the acknowledged message was *sent*: the follower
        // heard from this leader no earlier than that, and will not vote for anyone else
        // for an election timeout (> lease_ns) after it heard.
        let fresh =
            |t: Option<u64>| t.is_some_and(|t| now_ns.saturating_sub(t) < self.cfg.lease_ns);
        let counted = 1 + self
            .progress
            .iter()
            .filter(|p| fresh(p.ack_sent_ns))
            .map(|p| 1 + p.downstream.len())
            .sum::<usize>();
        counted >= self.cfg.majority()
    }

    pub fn status(&self) -> Status {
        Status {
            node: self.cfg.id.clone(),
            role: self.role,
            epoch: self.epoch,
            last_lsn: self.last_lsn(),
            applied_lsn: self.applied_lsn,
            leader: self.leader.clone(),
            commit_lsn: self.commit_lsn,
            lease: false,
            followers: self
                .progress
                .iter()
                .map(|p| FollowerStatus {
                    node: p.id.clone(),
                    match_lsn: p.match_lsn,
                    inflight: p.inflight.is_some(),
                    acked: p.acked,
                })
                .collect(),
            clock: ClockStatus::default(),
        }
    }

    /// `status` with the lease evaluated at `now_ns`.
    pub fn status_at(&self, now_ns: u64) -> Status {
        let mut st = self.status();
        st.lease = self.cfg.read_lease && self.has_lease(now_ns);
        st
    }

    /// Every key's current value here, in key order (for convergence checks).
    pub fn dump(&self) -> std::collections::BTreeMap<Key, Value> {
        self.state.keys().map(|k| (*k, self.read(*k))).collect()
    }

    /// Convenience for tests: `handle` into a fresh vector.
    pub fn step(&mut self, now_ns: u64, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        self.handle(now_ns, input, &mut out);
        out
    }

    /// A node resuming from what its disk holds (see `recover`).
    pub fn from_disk(cfg: MachineConfig, disk: LogDisk) -> LeaderFollower {
        Self::recover(cfg, disk.entries, disk.meta)
    }

    /// Feeds one input; appends the resulting outputs to `out` in the order they must be
    /// carried out. In debug builds, checks the model's invariants afterwards.
    pub fn handle(&mut self, now_ns: u64, input: Input, out: &mut Vec<Output>) {
        let before = Checkpoint::of(self);
        let first = out.len();
        self.dispatch(now_ns, input, out);
        if cfg!(debug_assertions) {
            self.check_invariants(&before, &out[first..]);
        }
    }

    /// The invariants the header promises, checked against the state before one input
    /// and the outputs it produced.
    fn check_invariants(&self, before: &Checkpoint, outs: &[Output]) {
        let id = &self.cfg.id;
        debug_assert!(
            self.epoch >= before.epoch,
            "{id}: epoch went back from {} to {}",
            before.epoch,
            self.epoch
        );
        let truncated = outs
            .iter()
            .any(|o| matches!(o, Output::Persist(LogOp::Truncate { .. })));
        debug_assert!(
            truncated || self.commit_lsn >= before.commit_lsn,
            "{id}: commit LSN went back from {} to {} without a truncation",
            before.commit_lsn,
            self.commit_lsn
        );
        debug_assert!(
            self.applied_lsn <= self.commit_lsn && self.applied_lsn <= self.last_lsn(),
            "{id}: applied LSN {} beyond commit {} or log end {}",
            self.applied_lsn,
            self.commit_lsn,
            self.last_lsn()
        );
        debug_assert!(
            self.log.last().is_none_or(|e| e.lsn == self.last_lsn()),
            "{id}: log LSNs have a gap"
        );
        if self.cfg.fencing {
            debug_assert!(
                self.last_epoch() <= self.epoch,
                "{id}: holds an entry of epoch {} beyond its own epoch {}",
                self.last_epoch(),
                self.epoch
            );
        }
        for lsn in outs.iter().filter_map(|o| match o {
            Output::Reply { reply, .. } => reply.write_lsn(),
            _ => None,
        }) {
            // A fenced (stepped-down) node never acknowledges: every write ack comes from
            // the leader, for an entry it holds and has committed.
            debug_assert!(
                self.role == Role::Leader && lsn <= self.commit_lsn && lsn <= self.last_lsn(),
                "{id}: acknowledged LSN {lsn} as {:?} with commit {}",
                self.role,
                self.commit_lsn
            );
        }
    }

    fn dispatch(&mut self, now_ns: u64, input: Input, out: &mut Vec<Output>) {
        out.append(&mut self.startup);
        if self.last_heard_ns.is_none() {
            self.last_heard_ns = Some(now_ns);
        }
        match input {
            Input::Client { req, op } => self.on_client(now_ns, req, op, ReadOpts::default(), out),
            Input::ClientWith { req, op, opts } => self.on_client(now_ns, req, op, opts, out),
            Input::Txn { req, mops, opts } => self.on_txn(now_ns, req, mops, opts, out),
            Input::Peer(PeerMessage::Append {
                from,
                epoch,
                seq,
                prev_lsn,
                prev_epoch,
                commit,
                leader,
                entries,
            }) => {
                let leader = leader.unwrap_or_else(|| from.clone());
                self.on_append(
                    now_ns,
                    from,
                    leader,
                    epoch,
                    seq,
                    (prev_lsn, prev_epoch),
                    commit,
                    entries,
                    out,
                )
            }
            Input::Peer(PeerMessage::Ack {
                from,
                epoch,
                seq,
                last_lsn,
                downstream,
            }) => self.on_ack(now_ns, &from, epoch, seq, last_lsn, downstream, out),
            Input::Peer(PeerMessage::Vote {
                from,
                epoch,
                last_lsn,
                last_epoch,
                pre,
            }) => self.on_vote(now_ns, from, epoch, (last_epoch, last_lsn), pre, out),
            Input::Peer(PeerMessage::VoteReply {
                from,
                epoch,
                granted,
                pre,
            }) => self.on_vote_reply(now_ns, from, epoch, granted, pre, out),
            Input::Tick => self.on_tick(now_ns, out),
        }
        self.serve_waiting_reads(now_ns, out);
    }

    fn fail(&self, req: u64, error: String, out: &mut Vec<Output>) {
        out.push(Output::Reply {
            req,
            reply: Reply::Fail {
                error,
                leader: self.leader.clone(),
            },
        });
    }

    fn not_leader(&self) -> String {
        match &self.leader {
            Some(l) if *l != self.cfg.id => format!("not leader; leader is {l}"),
            _ => "not leader; no leader known".to_owned(),
        }
    }

    fn on_client(
        &mut self,
        now_ns: u64,
        req: u64,
        op: Request,
        opts: ReadOpts,
        out: &mut Vec<Output>,
    ) {
        if let Request::Read { key } = op {
            if let Some(error) = self.read_refusal(now_ns, opts) {
                return self.fail(req, error, out);
            }
            if self.applied_lsn < opts.min_lsn {
                self.waiting_reads.push(WaitingRead {
                    req,
                    key,
                    min_lsn: opts.min_lsn,
                    deadline_ns: now_ns.saturating_add(self.cfg.read_wait_ns),
                });
                return;
            }
            let reply = Reply::Ok {
                value: self.read(key),
                siblings: None,
                lsn: None,
                applied_lsn: Some(self.applied_lsn),
            };
            out.push(Output::Reply { req, reply });
            return;
        }
        if self.role != Role::Leader {
            return self.fail(req, self.not_leader(), out);
        }
        let effect = match self.decide(op) {
            Ok(effect) => effect,
            Err(error) => return self.fail(req, error, out),
        };
        let entry = Entry {
            lsn: self.last_lsn() + 1,
            epoch: self.epoch,
            key: op.key(),
            effect,
        };
        self.log.push(entry);
        out.push(Output::Persist(LogOp::Append(vec![entry])));
        self.pending.push((entry.lsn, req));
        self.advance_commit(out);
        // Replicate at once where nothing is in flight (the rest goes with the next ack).
        self.send_due(now_ns, false, out);
    }

    /// Why this node may not serve a read (or a read-only transaction) now: it is not
    /// the leader and the client asked for one, or it leads without a read lease.
    fn read_refusal(&self, now_ns: u64, opts: ReadOpts) -> Option<String> {
        if opts.leader_only && self.role != Role::Leader {
            return Some(self.not_leader());
        }
        if self.role == Role::Leader && self.cfg.read_lease && !self.has_lease(now_ns) {
            return Some("leader holds no read lease (cannot reach a majority)".into());
        }
        None
    }

    /// A transaction: read-only ones are served like reads (from this node's applied
    /// state, under the same conditions), so follower reads see a consistent snapshot
    /// that may be stale; any other runs at the leader against the head of its log (every
    /// logged entry, as a cas decides), its reads seeing its own earlier writes, and is
    /// logged as one group of entries that is persisted, replicated, committed and
    /// applied whole, then acknowledged with its reads filled in.
    fn on_txn(
        &mut self,
        now_ns: u64,
        req: u64,
        mut mops: Vec<MicroOp>,
        opts: ReadOpts,
        out: &mut Vec<Output>,
    ) {
        let writes = mops.iter().filter(|m| m.f != MopF::Read).count();
        if writes == 0 {
            if let Some(error) = self.read_refusal(now_ns, opts) {
                return self.fail(req, error, out);
            }
            if self.applied_lsn < opts.min_lsn {
                let error = format!(
                    "behind: applied LSN {} < {} requested",
                    self.applied_lsn, opts.min_lsn
                );
                return self.fail(req, error, out);
            }
            for m in &mut mops {
                m.value = mop_value(self.state.get(&m.key));
            }
            let reply = Reply::Ok {
                value: txn_value(&mops),
                siblings: None,
                lsn: None,
                applied_lsn: Some(self.applied_lsn),
            };
            return out.push(Output::Reply { req, reply });
        }
        if self.role != Role::Leader {
            return self.fail(req, self.not_leader(), out);
        }
        let mut cells: HashMap<Key, Option<Cell>> = HashMap::new();
        let mut effects = Vec::with_capacity(writes);
        for m in &mut mops {
            let cell = cells.entry(m.key).or_insert_with(|| self.head_cell(m.key));
            let effect = match (m.f, &m.value) {
                (MopF::Read, _) => {
                    m.value = mop_value(cell.as_ref());
                    continue;
                }
                (MopF::Write, MopValue::Int(v)) => Effect::Write(*v),
                (MopF::Append, MopValue::Int(v)) => match cell {
                    Some(Cell::Int(_)) => {
                        let e = format!("key {} holds an integer, cannot append", m.key);
                        return self.fail(req, e, out);
                    }
                    _ => Effect::Append(*v),
                },
                _ => return self.fail(req, format!("malformed micro-op {m}"), out),
            };
            apply_effect(cell, effect);
            effects.push((m.key, effect));
        }
        let n = effects.len();
        let entries: Vec<Entry> = effects
            .into_iter()
            .enumerate()
            .map(|(i, (key, effect))| Entry {
                lsn: self.last_lsn() + 1 + i as u64,
                epoch: self.epoch,
                key,
                effect: if i + 1 < n {
                    match effect {
                        Effect::Write(v) => Effect::WriteMore(v),
                        Effect::Append(v) => Effect::AppendMore(v),
                        other => other,
                    }
                } else {
                    effect
                },
            })
            .collect();
        self.log.extend_from_slice(&entries);
        let last = self.last_lsn();
        out.push(Output::Persist(LogOp::Append(entries)));
        self.pending.push((last, req));
        self.txn_values.insert(req, txn_value(&mops));
        self.advance_commit(out);
        self.send_due(now_ns, false, out);
    }

    fn serve_waiting_reads(&mut self, now_ns: u64, out: &mut Vec<Output>) {
        if self.waiting_reads.is_empty() {
            return;
        }
        let waiting = std::mem::take(&mut self.waiting_reads);
        for w in waiting {
            if self.applied_lsn >= w.min_lsn {
                out.push(Output::Reply {
                    req: w.req,
                    reply: Reply::Ok {
                        value: self.read(w.key),
                        siblings: None,
                        lsn: None,
                        applied_lsn: Some(self.applied_lsn),
                    },
                });
            } else if now_ns >= w.deadline_ns {
                let error = format!(
                    "behind: applied LSN {} < {} requested; {}",
                    self.applied_lsn,
                    w.min_lsn,
                    match &self.leader {
                        Some(l) => format!("leader is {l}"),
                        None => "no leader known".into(),
                    }
                );
                self.fail(w.req, error, out);
            } else {
                self.waiting_reads.push(w);
            }
        }
    }

    /// The value of `key` after every logged entry (committed or not): what a cas sees.
    fn head_cell(&self, key: Key) -> Option<Cell> {
        let mut cell = self.state.get(&key).cloned();
        for e in &self.log[self.applied_lsn as usize..] {
            if e.key == key {
                apply_effect(&mut cell, e.effect);
            }
        }
        cell
    }

    fn decide(&self, op: Request) -> Result<Effect, String> {
        let cell = self.head_cell(op.key());
        match op {
            Request::Read { .. } => Err("a read is not a write".to_owned()),
            Request::Write { value, .. } => Ok(Effect::Write(value)),
            Request::Cas { key, expected, new } => match cell {
                Some(Cell::Int(v)) if v == expected => Ok(Effect::Write(new)),
                Some(Cell::Int(v)) => Err(format!("cas failed: key {key} is {v}, not {expected}")),
                Some(Cell::List(_)) => Err(format!("cas failed: key {key} holds a list")),
                None => Err(format!("cas failed: key {key} is nil, not {expected}")),
            },
            Request::Append { key, value } => match cell {
                Some(Cell::Int(_)) => Err(format!("key {key} holds an integer, cannot append")),
                _ => Ok(Effect::Append(value)),
            },
            Request::Add { key, value } | Request::Incr { key, value } => match cell {
                Some(Cell::List(_)) => Err(format!("key {key} holds a list, cannot add")),
                _ => Ok(Effect::Add(value)),
            },
        }
    }

    /// Applies committed entries to the state.
    fn apply_committed(&mut self) {
        let mut upto = self.commit_lsn.min(self.last_lsn());
        // A transaction is applied whole or not at all: stop before a group whose last
        // entry is not committed (or not here) yet.
        while upto > self.applied_lsn && self.log[upto as usize - 1].effect.continues() {
            upto -= 1;
        }
        while self.applied_lsn < upto {
            let e = self.log[self.applied_lsn as usize];
            let mut cell = self.state.remove(&e.key);
            apply_effect(&mut cell, e.effect);
            if let Some(c) = cell {
                self.state.insert(e.key, c);
            }
            self.applied_lsn = e.lsn;
        }
    }

    /// Cuts the log after `keep`, rebuilding the state if applied entries went.
    fn truncate(&mut self, keep: u64, out: &mut Vec<Output>) {
        if keep >= self.last_lsn() {
            return;
        }
        self.events.push(format!(
            "epoch {}: cutting log entries {}..={} (conflict with the leader)",
            self.epoch,
            keep + 1,
            self.last_lsn()
        ));
        self.log.truncate(keep as usize);
        out.push(Output::Persist(LogOp::Truncate { keep }));
        if self.applied_lsn > keep {
            self.state.clear();
            self.applied_lsn = 0;
            self.commit_lsn = self.commit_lsn.min(keep);
            self.apply_committed();
        }
        self.commit_lsn = self.commit_lsn.min(keep);
    }

    fn persist_meta(&self, out: &mut Vec<Output>) {
        out.push(Output::Persist(LogOp::Meta(Meta {
            epoch: self.epoch,
            voted_for: self.voted_for.clone(),
        })));
    }

    /// Adopts a higher epoch as a follower (fencing: whoever sees a newer epoch steps down).
    fn adopt_epoch(&mut self, epoch: u64, leader: Option<NodeId>, out: &mut Vec<Output>) {
        if self.role == Role::Leader {
            self.events.push(format!(
                "epoch {} is over: saw epoch {epoch}; stepping down",
                self.epoch
            ));
        }
        self.epoch = epoch;
        self.voted_for = None;
        self.persist_meta(out);
        self.step_down(leader, out);
    }

    fn step_down(&mut self, leader: Option<NodeId>, out: &mut Vec<Output>) {
        self.role = Role::Follower;
        self.election = None;
        self.leader = leader;
        self.txn_values.clear();
        for (_, req) in std::mem::take(&mut self.pending) {
            out.push(Output::Reply {
                req,
                reply: Reply::Unknown {
                    error: "the leader stepped down before the write committed".into(),
                },
            });
        }
        self.reset_progress();
    }

    fn become_leader(&mut self, now_ns: u64, out: &mut Vec<Output>) {
        let fresh = self.log.is_empty() && self.epoch == 1;
        self.role = Role::Leader;
        self.leader = Some(self.cfg.id.clone());
        self.election = None;
        self.became_leader_ns = now_ns;
        self.events.push(format!(
            "leader of epoch {} with log up to LSN {}",
            self.epoch,
            self.last_lsn()
        ));
        if fresh {
            self.epoch_start_lsn = 0;
        } else {
            // A no-op of the new epoch: once it commits, so does everything before it.
            self.persist_meta(out);
            // A transaction this log holds only part of was never applied here, and the
            // no-op must not close it: its entries go (under async its leader may have
            // acknowledged it; losing it is what an async failover does, applying half
            // of it would not be).
            let mut keep = self.last_lsn();
            while keep > 0 && self.log[keep as usize - 1].effect.continues() {
                keep -= 1;
            }
            self.truncate(keep, out);
            let entry = Entry {
                lsn: self.last_lsn() + 1,
                epoch: self.epoch,
                key: 0,
                effect: Effect::Noop,
            };
            self.log.push(entry);
            out.push(Output::Persist(LogOp::Append(vec![entry])));
            self.epoch_start_lsn = entry.lsn;
        }
        self.reset_progress();
        self.advance_commit(out);
    }

    /// Whom this node sends to, given its role and the leader it knows.
    fn reset_progress(&mut self) {
        let next = self.last_lsn() + 1;
        let targets: Vec<NodeId> = match (self.cfg.topology, self.role) {
            (Topology::Star, Role::Leader) => self
                .cfg
                .nodes
                .iter()
                .filter(|n| **n != self.cfg.id)
                .cloned()
                .collect(),
            (Topology::Star, _) => Vec::new(),
            (Topology::Chain, Role::Candidate) => Vec::new(),
            (Topology::Chain, _) => self.chain_successor().into_iter().collect(),
        };
        // Optimistic: assume the follower is up to date; its first ack says otherwise.
        self.progress = targets
            .into_iter()
            .map(|id| Progress::new(id, next))
            .collect();
    }

    /// The next node after this one in the chain that starts at the current leader.
    fn chain_successor(&self) -> Option<NodeId> {
        let leader = self.leader.as_ref()?;
        let n = self.cfg.nodes.len();
        let l = self.cfg.nodes.iter().position(|x| x == leader)?;
        let me = self.cfg.nodes.iter().position(|x| *x == self.cfg.id)?;
        let rank = (me + n - l) % n;
        (rank + 1 < n).then(|| self.cfg.nodes[(me + 1) % n].clone())
    }

    /// Commits what enough followers hold, applies it, acknowledges waiting writes.
    fn advance_commit(&mut self, out: &mut Vec<Output>) {
        if self.role != Role::Leader {
            return;
        }
        let required = self
            .cfg
            .replication
            .required_followers(self.cfg.nodes.len());
        let last = self.last_lsn();
        let sync_set =
            self.cfg.replication == Replication::Sync && self.cfg.topology == Topology::Star;
        let mut held: Vec<u64> = Vec::with_capacity(self.cfg.nodes.len());
        for p in self.progress.iter().filter(|p| !sync_set || p.in_sync_set) {
            held.push(p.match_lsn);
            held.extend(p.downstream.iter().copied());
        }
        let required = if sync_set { held.len() } else { required };
        held.sort_unstable_by(|a, b| b.cmp(a));
        let candidate = if required == 0 {
            last
        } else {
            held.get(required - 1).copied().unwrap_or(0).min(last)
        };
        // Only an entry of this epoch commits by counting (and with it all before it).
        if candidate > self.commit_lsn && self.log[candidate as usize - 1].epoch == self.epoch {
            self.commit_lsn = candidate;
            self.apply_committed();
            let upto = self.commit_lsn;
            let done = self.pending.partition_point(|(lsn, _)| *lsn <= upto);
            for (lsn, req) in self.pending.drain(..done) {
                out.push(Output::Reply {
                    req,
                    reply: Reply::Ok {
                        value: self.txn_values.remove(&req).unwrap_or(Value::Null),
                        siblings: None,
                        lsn: Some(lsn),
                        applied_lsn: Some(upto),
                    },
                });
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_append(
        &mut self,
        now_ns: u64,
        from: NodeId,
        leader: NodeId,
        epoch: u64,
        seq: u64,
        (prev_lsn, prev_epoch): (u64, u64),
        commit: u64,
        entries: Vec<Entry>,
        out: &mut Vec<Output>,
    ) {
        if epoch < self.epoch {
            if self.cfg.fencing {
                // A deposed leader: tell it the newer epoch and take nothing from it.
                out.push(self.ack(from, seq, self.last_lsn()));
                return;
            }
            return self.append_unfenced(from, seq, prev_lsn, entries, out);
        }
        if epoch > self.epoch {
            self.adopt_epoch(epoch, Some(leader.clone()), out);
        }
        if self.role == Role::Leader {
            // Another leader in this very epoch cannot be (one vote per epoch); refuse.
            out.push(self.ack(from, seq, self.last_lsn()));
            return;
        }
        if self.role == Role::Candidate {
            self.step_down(Some(leader.clone()), out);
        }
        // A leader is heard: a pre-vote this node started is over (else its timer would
        // keep running from the pre-vote, not from the leader's last message).
        if self.election.as_ref().is_some_and(|e| e.3) {
            self.election = None;
        }
        self.last_heard_ns = Some(now_ns);
        if self.leader.as_deref() != Some(leader.as_str()) {
            self.leader = Some(leader);
            self.reset_progress();
        }
        self.upstream = Some((from.clone(), seq));
        let last = self.last_lsn();
        if prev_lsn > last {
            // A gap: nothing taken, the ack makes the sender rewind.
            out.push(self.ack(from, seq, last));
            return;
        }
        if prev_lsn > 0 && self.log[prev_lsn as usize - 1].epoch != prev_epoch && prev_epoch != 0 {
            // Log matching fails at prev_lsn: this entry and all after it conflict.
            self.truncate(prev_lsn - 1, out);
            out.push(self.ack(from, seq, self.last_lsn()));
            return;
        }
        self.take_entries(now_ns, (from, seq), prev_lsn, commit, entries, out);
    }

    /// Fencing off, an `Append` from an older epoch: nobody checks epochs; a follower
    /// takes whatever extends its log.
    fn append_unfenced(
        &mut self,
        from: NodeId,
        seq: u64,
        prev_lsn: u64,
        entries: Vec<Entry>,
        out: &mut Vec<Output>,
    ) {
        if self.role == Role::Leader {
            return;
        }
        let last = self.last_lsn();
        if prev_lsn <= last {
            let fresh: Vec<Entry> = entries.into_iter().filter(|e| e.lsn > last).collect();
            self.append_contiguous(fresh, out);
            if self.cfg.replication == Replication::Async {
                self.commit_lsn = self.last_lsn();
                self.apply_committed();
            }
        }
        out.push(self.ack(from, seq, self.last_lsn()));
    }

    /// Takes the entries of an `Append` that passed log matching at `prev_lsn`, commits
    /// what the sender committed and this log matches, acks, and forwards in a chain.
    fn take_entries(
        &mut self,
        now_ns: u64,
        (from, seq): (NodeId, u64),
        prev_lsn: u64,
        commit: u64,
        entries: Vec<Entry>,
        out: &mut Vec<Output>,
    ) {
        // Skip what is already here (same LSN and epoch); cut at the first conflict.
        let sent_upto = prev_lsn + entries.len() as u64;
        let mut fresh = Vec::with_capacity(entries.len());
        for e in entries {
            if e.lsn <= self.last_lsn() {
                if self.log[e.lsn as usize - 1].epoch == e.epoch {
                    continue;
                }
                self.truncate(e.lsn - 1, out);
            }
            fresh.push(e);
        }
        self.append_contiguous(fresh, out);
        // What is verified to match the sender's log (anything after may still conflict).
        let matched = sent_upto.min(self.last_lsn());
        // Only what matches the sender's log counts as committed here.
        let commit = commit.min(matched).min(self.last_lsn());
        if commit > self.commit_lsn {
            self.commit_lsn = commit;
        }
        self.apply_committed();
        out.push(self.ack(from, seq, matched));
        // In a chain, pass it on.
        self.send_due(now_ns, false, out);
    }

    /// Appends entries that continue the log exactly (stops at the first gap).
    fn append_contiguous(&mut self, entries: Vec<Entry>, out: &mut Vec<Output>) {
        let mut taken = Vec::with_capacity(entries.len());
        for e in entries {
            if e.lsn != self.last_lsn() + 1 {
                break;
            }
            self.log.push(e);
            taken.push(e);
        }
        if !taken.is_empty() {
            out.push(Output::Persist(LogOp::Append(taken)));
        }
    }

    fn ack(&self, to: NodeId, seq: u64, last_lsn: u64) -> Output {
        let mut downstream = Vec::new();
        for p in &self.progress {
            downstream.push(p.match_lsn);
            downstream.extend(p.downstream.iter().copied());
        }
        Output::Send {
            to,
            msg: PeerMessage::Ack {
                from: self.cfg.id.clone(),
                epoch: self.epoch,
                seq,
                last_lsn,
                downstream,
            },
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_ack(
        &mut self,
        now_ns: u64,
        from: &str,
        epoch: u64,
        seq: u64,
        last_lsn: u64,
        downstream: Vec<u64>,
        out: &mut Vec<Output>,
    ) {
        if epoch > self.epoch {
            if !self.cfg.fencing && self.role == Role::Leader {
                // Fencing off: the leader never learns it was deposed.
                return;
            }
            self.adopt_epoch(epoch, None, out);
            return;
        }
        let last = self.last_lsn();
        let Some(i) = self.progress.iter().position(|p| p.id == from) else {
            return;
        };
        let p = &mut self.progress[i];
        let changed_downstream = p.downstream != downstream;
        match p.inflight {
            // Only the ack of the message in flight moves the match: an older one may
            // predate a rewind.
            Some((s, sent_ns)) if s == seq => {
                p.inflight = None;
                p.acked = true;
                p.in_sync_set = true;
                p.acked_seq = seq;
                p.ack_sent_ns = Some(sent_ns);
                p.ack_recv_ns = Some(now_ns);
                // The follower's word is the truth, even when it went backwards (lost tail).
                p.match_lsn = last_lsn.min(last);
                p.next_lsn = p.match_lsn + 1;
                p.downstream = downstream;
            }
            // A chain node's later progress report for the message it already acked.
            _ if seq == p.acked_seq && seq != 0 => p.downstream = downstream,
            _ => return,
        }
        if self.role == Role::Leader {
            self.advance_commit(out);
        } else if changed_downstream && let Some((up, up_seq)) = self.upstream.clone() {
            out.push(self.ack(up, up_seq, self.last_lsn()));
        }
        let p = &self.progress[i];
        if p.next_lsn <= last && p.inflight.is_none() && self.shippable(i, now_ns) {
            self.send_append(i, now_ns, out);
        }
    }

    /// Whether new entries may go to target `i` now (the ship interval has passed since
    /// the last send, or there is none).
    fn shippable(&self, i: usize, now_ns: u64) -> bool {
        self.cfg.ship_interval_ns == 0
            || self.progress[i]
                .last_ship_ns
                .is_none_or(|t| now_ns.saturating_sub(t) >= self.cfg.ship_interval_ns)
    }

    fn my_rank(&self) -> u64 {
        self.cfg
            .nodes
            .iter()
            .position(|n| *n == self.cfg.id)
            .unwrap_or(0) as u64
    }

    fn election_timeout(&self) -> u64 {
        self.cfg.election_timeout_ns + self.my_rank() * self.cfg.election_timeout_ns / 4
    }

    fn last_epoch(&self) -> u64 {
        self.log.last().map_or(0, |e| e.epoch)
    }

    /// Whether this leader heard from a majority (itself included) within `window_ns`, or
    /// became leader less than `window_ns` ago.
    fn majority_heard_within(&self, now_ns: u64, window_ns: u64) -> bool {
        let fresh = |t: Option<u64>| t.is_some_and(|t| now_ns.saturating_sub(t) < window_ns);
        let counted = 1 + self
            .progress
            .iter()
            .filter(|p| fresh(p.ack_recv_ns))
            .map(|p| 1 + p.downstream.len())
            .sum::<usize>();
        counted >= self.cfg.majority() || now_ns.saturating_sub(self.became_leader_ns) < window_ns
    }

    /// Whether this node would hear a candidate now: not while it hears from a leader.
    fn hears_a_leader(&self, now_ns: u64) -> bool {
        match self.role {
            Role::Leader => self.majority_heard_within(now_ns, self.cfg.election_timeout_ns),
            _ => {
                self.leader.is_some()
                    && self
                        .last_heard_ns
                        .is_some_and(|t| now_ns.saturating_sub(t) < self.cfg.election_timeout_ns)
            }
        }
    }

    fn on_vote(
        &mut self,
        now_ns: u64,
        from: NodeId,
        epoch: u64,
        their_last: (u64, u64),
        pre: bool,
        out: &mut Vec<Output>,
    ) {
        let up_to_date = their_last >= (self.last_epoch(), self.last_lsn());
        let reply = |granted: bool, epoch: u64| Output::Send {
            to: from.clone(),
            msg: PeerMessage::VoteReply {
                from: String::new(),
                epoch,
                granted,
                pre,
            },
        };
        let deaf = self.cfg.failover == Failover::None
            || (self.role == Role::Leader && !self.cfg.fencing)
            || self.hears_a_leader(now_ns);
        if pre {
            let granted = !deaf && epoch > self.epoch && up_to_date;
            out.push(self.named(reply(granted, self.epoch)));
            return;
        }
        if deaf || epoch < self.epoch {
            out.push(self.named(reply(false, self.epoch)));
            return;
        }
        if epoch > self.epoch {
            self.adopt_epoch(epoch, None, out);
        }
        let free = self.voted_for.as_ref().is_none_or(|v| *v == from);
        let granted = free && up_to_date && self.role == Role::Follower;
        if granted {
            self.voted_for = Some(from.clone());
            self.persist_meta(out);
            self.last_heard_ns = Some(now_ns);
            self.events.push(format!("epoch {epoch}: voted for {from}"));
        }
        out.push(self.named(reply(granted, self.epoch)));
    }

    /// Fills in `from` of a reply built before `self` could be borrowed.
    fn named(&self, mut o: Output) -> Output {
        if let Output::Send {
            msg: PeerMessage::VoteReply { from, .. },
            ..
        } = &mut o
        {
            *from = self.cfg.id.clone();
        }
        o
    }

    fn on_vote_reply(
        &mut self,
        now_ns: u64,
        from: NodeId,
        epoch: u64,
        granted: bool,
        pre: bool,
        out: &mut Vec<Output>,
    ) {
        if !pre && epoch > self.epoch {
            if self.role == Role::Leader && !self.cfg.fencing {
                return;
            }
            self.adopt_epoch(epoch, None, out);
            return;
        }
        let majority = self.cfg.majority();
        let Some((for_epoch, _, votes, is_pre)) = self.election.as_mut() else {
            return;
        };
        if *is_pre != pre || !granted {
            return;
        }
        if !pre && epoch != *for_epoch {
            return;
        }
        if !votes.contains(&from) {
            votes.push(from);
        }
        if votes.len() < majority {
            return;
        }
        if pre {
            self.start_election(now_ns, false, out);
        } else if self.role == Role::Candidate {
            let voters = votes.clone();
            self.become_leader(now_ns, out);
            // The sync set starts with the voters; the others join once they ack.
            for p in &mut self.progress {
                p.in_sync_set = voters.contains(&p.id);
            }
            self.send_due(now_ns, true, out);
        }
    }

    /// Starts a pre-vote (no state change) or a real election in a new epoch.
    fn start_election(&mut self, now_ns: u64, pre: bool, out: &mut Vec<Output>) {
        let epoch = self.epoch + 1;
        if !pre {
            self.epoch = epoch;
            self.role = Role::Candidate;
            self.leader = None;
            self.voted_for = Some(self.cfg.id.clone());
            self.progress.clear();
            self.persist_meta(out);
            self.events.push(format!(
                "epoch {epoch}: standing for election with log up to LSN {} (epoch {})",
                self.last_lsn(),
                self.last_epoch()
            ));
        }
        self.last_heard_ns = Some(now_ns);
        self.election = Some((epoch, now_ns, vec![self.cfg.id.clone()], pre));
        if self.cfg.majority() <= 1 {
            if pre {
                return self.start_election(now_ns, false, out);
            }
            self.become_leader(now_ns, out);
            return;
        }
        for n in self.cfg.nodes.iter().filter(|n| **n != self.cfg.id) {
            out.push(Output::Send {
                to: n.clone(),
                msg: PeerMessage::Vote {
                    from: self.cfg.id.clone(),
                    epoch,
                    last_lsn: self.last_lsn(),
                    last_epoch: self.last_epoch(),
                    pre,
                },
            });
        }
    }

    fn on_tick(&mut self, now_ns: u64, out: &mut Vec<Output>) {
        if self.cfg.failover == Failover::Auto {
            match self.role {
                Role::Leader => {
                    if self.cfg.fencing
                        && !self.majority_heard_within(now_ns, self.cfg.check_quorum_ns)
                    {
                        self.events.push(format!(
                            "epoch {}: no majority heard for {} ms (check-quorum); stepping down",
                            self.epoch,
                            self.cfg.check_quorum_ns / 1_000_000
                        ));
                        self.step_down(None, out);
                    }
                }
                _ => {
                    let since = self
                        .election
                        .as_ref()
                        .map(|e| e.1)
                        .or(self.last_heard_ns)
                        .unwrap_or(now_ns);
                    if now_ns.saturating_sub(since) >= self.election_timeout() {
                        if self.role == Role::Follower && self.leader.is_some() {
                            self.events.push(format!(
                                "epoch {}: leader {} silent; pre-vote",
                                self.epoch,
                                self.leader.as_deref().unwrap_or("?")
                            ));
                            self.leader = None;
                        }
                        self.start_election(now_ns, true, out);
                    }
                }
            }
        }
        self.send_due(now_ns, true, out);
    }

    /// Sends to every target that is due: new entries with nothing in flight, and with
    /// `timers` also resends and heartbeats.
    fn send_due(&mut self, now_ns: u64, timers: bool, out: &mut Vec<Output>) {
        if self.role == Role::Candidate || (self.role == Role::Follower && self.leader.is_none()) {
            return;
        }
        let last = self.last_lsn();
        for i in 0..self.progress.len() {
            let p = &self.progress[i];
            let due = match p.inflight {
                Some((_, sent_ns)) => {
                    timers && now_ns.saturating_sub(sent_ns) >= self.cfg.resend_after_ns
                }
                None => {
                    (p.next_lsn <= last && self.shippable(i, now_ns))
                        || (timers
                            && p.last_send_ns
                                .is_none_or(|t| now_ns.saturating_sub(t) >= self.cfg.heartbeat_ns))
                }
            };
            if due {
                // A heartbeat or resend inside the ship interval goes out empty: it
                // probes the follower's position without shipping early.
                let ship = self.shippable(i, now_ns);
                self.send_append_with(i, now_ns, ship, out);
            }
        }
    }

    fn send_append(&mut self, i: usize, now_ns: u64, out: &mut Vec<Output>) {
        self.send_append_with(i, now_ns, true, out);
    }

    /// Sends target `i` an `Append` from its `next_lsn`: with `ship`, up to
    /// `batch_max_entries` entries; without, none (a heartbeat or position probe).
    fn send_append_with(&mut self, i: usize, now_ns: u64, ship: bool, out: &mut Vec<Output>) {
        let last = self.last_lsn();
        let seq = self.next_seq;
        self.next_seq += 1;
        let p = &mut self.progress[i];
        p.next_lsn = p.next_lsn.clamp(1, last + 1);
        let from_idx = (p.next_lsn - 1) as usize;
        let to_idx = if ship {
            (from_idx + self.cfg.batch_max_entries).min(self.log.len())
        } else {
            from_idx
        };
        p.inflight = Some((seq, now_ns));
        p.last_send_ns = Some(now_ns);
        if ship && to_idx > from_idx {
            p.last_ship_ns = Some(now_ns);
        }
        let prev_lsn = p.next_lsn - 1;
        let prev_epoch = if prev_lsn == 0 {
            0
        } else {
            self.log[prev_lsn as usize - 1].epoch
        };
        let forwarded = self.role != Role::Leader;
        out.push(Output::Send {
            to: p.id.clone(),
            msg: PeerMessage::Append {
                from: self.cfg.id.clone(),
                epoch: self.epoch,
                seq,
                prev_lsn,
                prev_epoch,
                commit: self.commit_lsn,
                leader: if forwarded { self.leader.clone() } else { None },
                entries: self.log[from_idx..to_idx].to_vec(),
            },
        });
    }
}

/// A cell as a micro-op read returns it.
fn mop_value(cell: Option<&Cell>) -> MopValue {
    match cell {
        None => MopValue::Nil,
        Some(Cell::Int(v)) => MopValue::Int(*v),
        Some(Cell::List(v)) => MopValue::List(v.clone()),
    }
}

/// What one effect does to a key's cell.
impl Machine for LeaderFollower {
    type Msg = PeerMessage;
    type Persist = LogOp;
    type Durable = LogDisk;

    fn persist(disk: &mut LogDisk, record: &LogOp) {
        disk.apply(record);
    }

    /// As the node's log file does under buffered durability: appends wait in memory for
    /// the flush; a truncation cuts the buffer, or, reaching below what was written, the
    /// file (and drops the whole buffer); the epoch and vote (`meta.json`) are written and
    /// synced at once, whatever the durability.
    fn persist_buffered(disk: &mut LogDisk, buffer: &mut Vec<LogOp>, record: &LogOp) {
        match record {
            LogOp::Append(_) => buffer.push(record.clone()),
            LogOp::Truncate { keep } if *keep < disk.entries.len() as u64 => {
                buffer.clear();
                disk.apply(record);
            }
            LogOp::Truncate { keep } => {
                let mut room = (*keep - disk.entries.len() as u64) as usize;
                buffer.retain_mut(|op| match op {
                    LogOp::Append(entries) => {
                        entries.truncate(room);
                        room -= entries.len();
                        !entries.is_empty()
                    }
                    _ => true,
                });
            }
            LogOp::Meta(_) => disk.apply(record),
        }
    }

    fn handle(&mut self, now_ns: u64, input: Input, out: &mut Vec<Output>) {
        LeaderFollower::handle(self, now_ns, input, out);
    }

    fn sender(msg: &PeerMessage) -> &str {
        msg.from()
    }

    fn dump(&self) -> DumpState {
        DumpState {
            state: LeaderFollower::dump(self),
            ..DumpState::default()
        }
    }

    fn status(&self, now_ns: u64) -> Status {
        self.status_at(now_ns)
    }

    fn local_read(&self, key: Key) -> Value {
        self.read(key)
    }

    fn take_events(&mut self) -> Vec<String> {
        LeaderFollower::take_events(self)
    }
}

fn apply_effect(cell: &mut Option<Cell>, effect: Effect) {
    match effect {
        Effect::Noop => {}
        Effect::Write(v) | Effect::WriteMore(v) => *cell = Some(Cell::Int(v)),
        Effect::Append(v) | Effect::AppendMore(v) => match cell {
            Some(Cell::List(list)) => list.push(v),
            // The leader refuses such appends, so only a foreign log gets here; the list
            // wins so that every replica applies the same entry the same way.
            _ => *cell = Some(Cell::List(vec![v])),
        },
        Effect::Add(v) => match cell {
            Some(Cell::Int(x)) => *x = x.wrapping_add(v),
            _ => *cell = Some(Cell::Int(v)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader() -> LeaderFollower {
        LeaderFollower::new(MachineConfig::new("n1", &["n1", "n2"], "n1"), Vec::new())
    }

    /// n2's ack at epoch 1.
    fn ack_from_n2(seq: u64, last_lsn: u64) -> Input {
        Input::Peer(PeerMessage::Ack {
            from: "n2".into(),
            epoch: 1,
            seq,
            last_lsn,
            downstream: Vec::new(),
        })
    }

    fn client(req: u64, op: Request) -> Input {
        Input::Client { req, op }
    }

    fn reply_of(out: &[Output]) -> &Reply {
        out.iter()
            .find_map(|o| match o {
                Output::Reply { reply, .. } => Some(reply),
                _ => None,
            })
            .unwrap()
    }

    #[test]
    fn write_persists_before_reply_then_replicates() {
        let mut n = leader();
        let out = n.step(0, client(9, Request::Append { key: 1, value: 5 }));
        assert!(
            matches!(&out[0], Output::Persist(LogOp::Append(e)) if e.len() == 1 && e[0].lsn == 1)
        );
        assert!(matches!(
            &out[1],
            Output::Reply {
                req: 9,
                reply: Reply::Ok { lsn: Some(1), .. }
            }
        ));
        assert!(
            matches!(&out[2], Output::Send { to, msg: PeerMessage::Append { entries, .. } } if to == "n2" && entries.len() == 1)
        );
        // Second write while the first message is in flight: no new message yet.
        let out = n.step(1, client(10, Request::Append { key: 1, value: 6 }));
        assert_eq!(out.len(), 2);
        // The ack releases everything appended meanwhile in one batch.
        let out = n.step(2, ack_from_n2(1, 1));
        assert!(
            matches!(&out[0], Output::Send { msg: PeerMessage::Append { prev_lsn: 1, entries, .. }, .. } if entries.len() == 1 && entries[0].lsn == 2)
        );
        assert_eq!(n.read(1), Value::list(vec![5, 6]));
    }

    #[test]
    fn failed_cas_writes_nothing() {
        let mut n = leader();
        n.step(0, client(1, Request::Write { key: 3, value: 10 }));
        let out = n.step(
            1,
            client(
                2,
                Request::Cas {
                    key: 3,
                    expected: 11,
                    new: 12,
                },
            ),
        );
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(
            matches!(reply_of(&out), Reply::Fail { error, .. } if error.contains("is 10, not 11"))
        );
        assert_eq!(n.last_lsn(), 1);
        let out = n.step(
            2,
            client(
                3,
                Request::Cas {
                    key: 3,
                    expected: 10,
                    new: 12,
                },
            ),
        );
        assert!(matches!(reply_of(&out), Reply::Ok { lsn: Some(2), .. }));
        assert_eq!(n.read(3), Value::Int(12));
        let out = n.step(
            3,
            client(
                4,
                Request::Cas {
                    key: 4,
                    expected: 0,
                    new: 1,
                },
            ),
        );
        assert!(matches!(reply_of(&out), Reply::Fail { .. }));
        assert_eq!(n.last_lsn(), 2);
    }

    #[test]
    fn follower_refuses_writes_and_serves_reads() {
        let mut f = LeaderFollower::new(MachineConfig::new("n2", &["n1", "n2"], "n1"), Vec::new());
        let out = f.step(0, client(1, Request::Write { key: 1, value: 1 }));
        assert_eq!(out.len(), 1);
        assert!(
            matches!(reply_of(&out), Reply::Fail { error, leader: Some(l) } if error == "not leader; leader is n1" && l == "n1")
        );
        let out = f.step(0, client(2, Request::Read { key: 1 }));
        assert!(matches!(
            reply_of(&out),
            Reply::Ok {
                value: Value::Null,
                ..
            }
        ));
    }

    #[test]
    fn follower_skips_duplicates_and_refuses_gaps() {
        let mut f = LeaderFollower::new(MachineConfig::new("n2", &["n1", "n2"], "n1"), Vec::new());
        let e = |lsn| Entry {
            lsn,
            epoch: 1,
            key: 1,
            effect: Effect::Append(lsn as i64),
        };
        let app = |seq, prev_lsn, entries: Vec<Entry>| {
            Input::Peer(PeerMessage::Append {
                from: "n1".into(),
                epoch: 1,
                seq,
                prev_lsn,
                prev_epoch: 0,
                commit: 100,
                leader: None,
                entries,
            })
        };
        let out = f.step(0, app(1, 0, vec![e(1), e(2)]));
        assert!(matches!(
            &out[1],
            Output::Send {
                msg: PeerMessage::Ack {
                    last_lsn: 2,
                    seq: 1,
                    ..
                },
                ..
            }
        ));
        // A gap: nothing taken, ack says 2.
        let out = f.step(0, app(2, 3, vec![e(4)]));
        assert_eq!(out.len(), 1);
        assert!(matches!(
            &out[0],
            Output::Send {
                msg: PeerMessage::Ack { last_lsn: 2, .. },
                ..
            }
        ));
        // Overlap: only 3 is new.
        let out = f.step(0, app(3, 1, vec![e(2), e(3)]));
        assert!(
            matches!(&out[0], Output::Persist(LogOp::Append(v)) if v.len() == 1 && v[0].lsn == 3)
        );
        assert_eq!(f.read(1), Value::list(vec![1, 2, 3]));
    }

    #[test]
    fn ship_interval_batches_new_entries() {
        let mut cfg = MachineConfig::new("n1", &["n1", "n2"], "n1");
        cfg.ship_interval_ns = 50_000_000;
        let mut n = LeaderFollower::new(cfg, Vec::new());
        let sends = |out: &[Output]| {
            out.iter()
                .filter_map(|o| match o {
                    Output::Send {
                        msg: PeerMessage::Append { entries, .. },
                        ..
                    } => Some(entries.len()),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        let append = |n: &mut LeaderFollower, now_ns, req: u64| {
            n.step(
                now_ns,
                client(
                    req,
                    Request::Append {
                        key: 1,
                        value: req as i64,
                    },
                ),
            )
        };
        // The first entry ships at once (nothing was sent yet) and is acknowledged.
        assert_eq!(sends(&append(&mut n, 0, 1)), vec![1]);
        n.step(1_000, ack_from_n2(1, 1));
        // Within the interval new entries wait, on writes, acks and ticks alike …
        assert!(sends(&append(&mut n, 10_000_000, 2)).is_empty());
        assert!(sends(&append(&mut n, 20_000_000, 3)).is_empty());
        assert!(sends(&n.step(30_000_000, Input::Tick)).is_empty());
        let late_ack = n.step(40_000_000, ack_from_n2(1, 1));
        assert!(sends(&late_ack).is_empty());
        // … and leave together once it has passed.
        assert_eq!(sends(&n.step(50_000_000, Input::Tick)), vec![2]);
    }

    #[test]
    fn heartbeats_inside_the_ship_interval_go_out_empty() {
        let mut cfg = MachineConfig::new("n1", &["n1", "n2"], "n1");
        cfg.ship_interval_ns = 250_000_000; // longer than the 100 ms heartbeat
        let mut n = LeaderFollower::new(cfg, Vec::new());
        let appends = |out: &[Output]| {
            out.iter()
                .filter_map(|o| match o {
                    Output::Send {
                        msg: PeerMessage::Append { entries, seq, .. },
                        ..
                    } => Some((*seq, entries.len())),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        let ack = |n: &mut LeaderFollower, now_ns, seq, last_lsn| {
            n.step(now_ns, ack_from_n2(seq, last_lsn))
        };
        let write = |v: i64| client(v as u64, Request::Append { key: 1, value: v });
        assert_eq!(appends(&n.step(0, write(1))), vec![(1, 1)]);
        ack(&mut n, 1_000, 1, 1);
        assert!(appends(&n.step(10_000_000, write(2))).is_empty());
        // The heartbeat is due at 100 ms but the shipment only at 250 ms: it goes out
        // empty, and its ack does not ship either.
        assert_eq!(appends(&n.step(120_000_000, Input::Tick)), vec![(2, 0)]);
        assert!(appends(&ack(&mut n, 121_000_000, 2, 1)).is_empty());
        assert!(appends(&n.step(200_000_000, Input::Tick)).is_empty());
        // From the last shipment, not the last heartbeat: 250 ms after t = 0.
        assert_eq!(appends(&n.step(250_000_000, Input::Tick)), vec![(3, 1)]);
    }

    #[test]
    fn leader_rewinds_on_a_lower_ack_and_resends_on_timeout() {
        let mut n = leader();
        for i in 0..3 {
            n.step(
                0,
                client(
                    i,
                    Request::Append {
                        key: 1,
                        value: i as i64,
                    },
                ),
            );
        }
        // Follower claims only LSN 0 (it lost everything).
        let out = n.step(1, ack_from_n2(1, 0));
        assert!(
            matches!(&out[0], Output::Send { msg: PeerMessage::Append { prev_lsn: 0, entries, seq: 2, .. }, .. } if entries.len() == 3)
        );
        // No ack: nothing before the resend timeout, a resend after it.
        assert!(n.step(1_000, Input::Tick).is_empty());
        let out = n.step(300_000_000, Input::Tick);
        assert!(matches!(
            &out[0],
            Output::Send {
                msg: PeerMessage::Append {
                    prev_lsn: 0,
                    seq: 3,
                    ..
                },
                ..
            }
        ));
        // The stale ack of seq 2 is ignored.
        assert!(n.step(300_000_001, ack_from_n2(2, 3)).is_empty());
        assert!(n.status().followers[0].inflight);
    }

    #[test]
    fn recovery_keeps_the_contiguous_prefix() {
        let e = |lsn| Entry {
            lsn,
            epoch: 1,
            key: 2,
            effect: Effect::Add(1),
        };
        let n = LeaderFollower::new(
            MachineConfig::new("n1", &["n1"], "n1"),
            vec![e(1), e(2), e(4)],
        );
        // A restarted leader starts a new epoch with a no-op.
        assert_eq!(n.last_lsn(), 3);
        assert_eq!(n.epoch(), 2);
        assert_eq!(n.read(2), Value::Int(2));
    }

    fn txn(req: u64, mops: Vec<MicroOp>) -> Input {
        Input::Txn {
            req,
            mops,
            opts: ReadOpts::default(),
        }
    }

    fn list(xs: &[i64]) -> MopValue {
        MopValue::List(xs.to_vec())
    }

    #[test]
    fn a_transaction_sees_its_own_writes_and_commits_as_one_group() {
        // Sync: nothing commits until n2 acks.
        let mut cfg = MachineConfig::new("n1", &["n1", "n2"], "n1");
        cfg.replication = Replication::Sync;
        let mut n = LeaderFollower::new(cfg, Vec::new());
        n.step(0, client(1, Request::Append { key: 1, value: 1 }));
        let mops = vec![
            MicroOp::read(1),
            MicroOp::append(1, 2),
            MicroOp::read(1),
            MicroOp::append(2, 3),
        ];
        let out = n.step(1, txn(2, mops));
        // One persisted group of two entries, the first continuing into the second.
        assert!(out.iter().any(|o| matches!(o, Output::Persist(LogOp::Append(e))
            if e.len() == 2 && e[0].effect == Effect::AppendMore(2) && e[1].effect == Effect::Append(3))));
        assert!(!out.iter().any(|o| matches!(o, Output::Reply { .. })));
        // n2 holds the first entry of the group only: the first write commits, the
        // transaction does not, and nothing of it is visible.
        n.step(2, ack_from_n2(1, 2));
        assert_eq!(n.read(1), Value::list(vec![1]));
        assert_eq!(n.read(2), Value::Null);
        let out = n.step(3, ack_from_n2(2, 3));
        let Reply::Ok { value, lsn, .. } = reply_of(&out) else {
            panic!("{out:?}")
        };
        assert_eq!(*lsn, Some(3));
        let done = schism_history::txn::parse_txn(value).unwrap();
        // Reads ran against the head of the log (the pending append 1) and saw the
        // transaction's own earlier append.
        assert_eq!(done[0].value, list(&[1]));
        assert_eq!(done[2].value, list(&[1, 2]));
        assert_eq!(n.read(1), Value::list(vec![1, 2]));
        assert_eq!(n.read(2), Value::list(vec![3]));
        // A read-only transaction is served from the applied state.
        let out = n.step(4, txn(3, vec![MicroOp::read(1), MicroOp::read(2)]));
        let Reply::Ok { value, .. } = reply_of(&out) else {
            panic!("{out:?}")
        };
        let done = schism_history::txn::parse_txn(value).unwrap();
        assert_eq!(
            (done[0].value.clone(), done[1].value.clone()),
            (list(&[1, 2]), list(&[3]))
        );
    }

    #[test]
    fn a_follower_applies_only_whole_transactions_and_a_new_leader_cuts_a_partial_one() {
        let e = |lsn, key, effect| Entry {
            lsn,
            epoch: 1,
            key,
            effect,
        };
        let mut cfg = MachineConfig::new("n2", &["n1", "n2"], "n1");
        cfg.failover = Failover::Auto;
        let mut f = LeaderFollower::new(cfg.clone(), Vec::new());
        f.step(
            0,
            Input::Peer(PeerMessage::Append {
                from: "n1".into(),
                epoch: 1,
                seq: 1,
                prev_lsn: 0,
                prev_epoch: 0,
                commit: 100,
                leader: None,
                entries: vec![e(1, 1, Effect::Append(1)), e(2, 1, Effect::AppendMore(2))],
            }),
        );
        // The group's second entry has not arrived: only the first transaction shows.
        assert_eq!(f.read(1), Value::list(vec![1]));
        assert_eq!(f.applied_lsn(), 1);
        // Recovered from disk and elected, it cuts the partial group before its no-op.
        let mut disk = LogDisk::default();
        disk.apply(&LogOp::Append(f.log().to_vec()));
        let mut n = LeaderFollower::from_disk(cfg, disk);
        let mut out = Vec::new();
        n.become_leader(0, &mut out);
        assert!(
            out.iter()
                .any(|o| matches!(o, Output::Persist(LogOp::Truncate { keep: 1 })))
        );
        assert_eq!(n.log()[1].effect, Effect::Noop);
        assert_eq!(n.read(1), Value::list(vec![1]));
    }

    #[test]
    fn followers_refuse_write_transactions_and_the_wire_keeps_groups() {
        let mut f = LeaderFollower::new(MachineConfig::new("n2", &["n1", "n2"], "n1"), Vec::new());
        let out = f.step(0, txn(1, vec![MicroOp::append(1, 1)]));
        assert!(matches!(reply_of(&out), Reply::Fail { leader: Some(l), .. } if l == "n1"));
        for effect in [Effect::AppendMore(7), Effect::WriteMore(-3)] {
            let e = Entry {
                lsn: 1,
                epoch: 1,
                key: 2,
                effect,
            };
            let text = serde_json::to_string(&e).unwrap();
            assert_eq!(serde_json::from_str::<Entry>(&text).unwrap(), e);
            assert!(effect.continues());
        }
    }

    #[test]
    fn entry_wire_form_is_compact() {
        let e = Entry {
            lsn: 3,
            epoch: 1,
            key: 7,
            effect: Effect::Append(42),
        };
        let text = serde_json::to_string(&e).unwrap();
        assert_eq!(text, "[3,1,7,97,42]");
        assert_eq!(serde_json::from_str::<Entry>(&text).unwrap(), e);
    }
}
