//! The leader-follower replication protocol as a sans-IO state machine.
//!
//! `LeaderFollower::handle(now_ns, input, &mut outputs)` is the whole protocol: it opens no
//! socket or file, starts no thread and reads no clock, so the process shell and the
//! deterministic harness drive exactly the same logic. Guarantees, given a shell that
//! honours the output contract (every `Output::Persist` is written before any output
//! after it is acted on):
//! - the leader assigns LSNs 1, 2, 3, … without gaps; each entry carries the epoch;
//! - a write is acknowledged only after its entry is persisted (async replication: the
//!   followers may not have it yet); a failed cas or a write sent to a follower changes
//!   nothing and is a definite failure;
//! - a follower appends entries strictly in LSN order, ignores duplicates, refuses gaps
//!   and acks its last LSN, so the leader rewinds to what the follower really holds (after
//!   a restart, a lost tail, or lost messages) and resends from there;
//! - one replication message per follower is in flight; when its ack arrives the leader
//!   sends everything appended meanwhile (up to `batch_max_entries`), and resends after
//!   `resend_after_ns` without an ack;
//! - reads are served from the node's applied state, so a follower may be stale.
//!
//! Roles are static for now (the config names the leader, epoch 1); epochs are already in
//! every message and entry so that failover and fencing can be added without a format change.

use super::{NodeId, Replication};
use crate::request::Request;
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
}

impl Effect {
    /// A one-byte tag for the on-disk and wire encodings.
    pub fn tag(&self) -> u8 {
        match self {
            Effect::Write(_) => b'w',
            Effect::Append(_) => b'a',
            Effect::Add(_) => b'+',
        }
    }

    pub fn operand(&self) -> i64 {
        match *self {
            Effect::Write(v) | Effect::Append(v) | Effect::Add(v) => v,
        }
    }

    pub fn from_tag(tag: u8, operand: i64) -> Option<Effect> {
        match tag {
            b'w' => Some(Effect::Write(operand)),
            b'a' => Some(Effect::Append(operand)),
            b'+' => Some(Effect::Add(operand)),
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
    /// Leader → follower: entries `prev_lsn+1 ..`, possibly none (a heartbeat / probe).
    Append {
        from: NodeId,
        epoch: u64,
        seq: u64,
        prev_lsn: u64,
        entries: Vec<Entry>,
    },
    /// Follower → leader: answer to the `Append` with this `seq`; `last_lsn` is the
    /// follower's last contiguous LSN (the leader continues from `last_lsn + 1`).
    Ack {
        from: NodeId,
        epoch: u64,
        seq: u64,
        last_lsn: u64,
    },
}

/// What the state machine is fed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A client request; `req` is an opaque id echoed in the `Output::Reply`.
    Client {
        req: u64,
        op: Request,
    },
    Peer(PeerMessage),
    /// Time passed: resend unacknowledged messages, send heartbeats.
    Tick,
}

/// The answer to a client request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientReply {
    /// It happened. `value` is the read result (Null for writes); `lsn` is the write's LSN;
    /// `applied_lsn` is how far this node's state had applied when it answered.
    Ok {
        value: Value,
        lsn: Option<u64>,
        applied_lsn: u64,
    },
    /// It certainly did not happen.
    Fail {
        error: String,
        leader: Option<NodeId>,
    },
}

/// What the state machine asks its shell to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Append these entries to the log; must be done before any later output is acted on.
    Persist(Vec<Entry>),
    Reply {
        req: u64,
        reply: ClientReply,
    },
    Send {
        to: NodeId,
        msg: PeerMessage,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Leader,
    Follower,
}

/// A snapshot for `/status` and tests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub node: NodeId,
    pub role: Role,
    pub epoch: u64,
    pub last_lsn: u64,
    pub applied_lsn: u64,
    pub leader: Option<NodeId>,
    /// Replication progress, on the leader only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub followers: Vec<FollowerStatus>,
    /// The node's injected clock (filled in by the process shell; the machine has none).
    #[serde(default)]
    pub clock: ClockStatus,
}

/// How far a node's injected clock is from real time, and how fast it runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClockStatus {
    /// Skewed time minus real time, in milliseconds (negative: the node is behind).
    pub offset_ms: f64,
    /// Skewed seconds per real second (1.0: no drift).
    pub rate: f64,
}

impl Default for ClockStatus {
    fn default() -> Self {
        ClockStatus {
            offset_ms: 0.0,
            rate: 1.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowerStatus {
    pub node: NodeId,
    pub match_lsn: u64,
    pub inflight: bool,
    /// The follower has answered at least once since this leader started.
    #[serde(default)]
    pub acked: bool,
}

/// Static settings of one node's state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineConfig {
    pub id: NodeId,
    /// Every node of the cluster, including this one.
    pub nodes: Vec<NodeId>,
    pub leader: NodeId,
    pub replication: Replication,
    /// Most entries in one replication message.
    pub batch_max_entries: usize,
    /// Resend an unacknowledged replication message after this long.
    pub resend_after_ns: u64,
    /// Send an empty `Append` to an idle follower this often (it also probes a follower's
    /// position after a leader restart).
    pub heartbeat_ns: u64,
}

impl MachineConfig {
    pub fn new(id: &str, nodes: &[&str], leader: &str) -> MachineConfig {
        MachineConfig {
            id: id.to_owned(),
            nodes: nodes.iter().map(|n| (*n).to_owned()).collect(),
            leader: leader.to_owned(),
            replication: Replication::Async,
            batch_max_entries: 4096,
            resend_after_ns: 250_000_000,
            heartbeat_ns: 100_000_000,
        }
    }
}

/// A key's current value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cell {
    Int(i64),
    List(Vec<i64>),
}

/// The leader's view of one follower.
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
    acked: bool,
}

/// One node of a leader-follower cluster.
#[derive(Debug)]
pub struct LeaderFollower {
    cfg: MachineConfig,
    epoch: u64,
    role: Role,
    leader: Option<NodeId>,
    /// `log[i].lsn == i + 1`.
    log: Vec<Entry>,
    applied_lsn: u64,
    state: HashMap<Key, Cell>,
    progress: Vec<Progress>,
    next_seq: u64,
}

impl LeaderFollower {
    /// A node resuming from the entries its log file held (empty for a fresh node).
    /// Only the contiguous prefix `1, 2, …` is kept: the storage layer already cuts a torn
    /// tail, and anything after a gap could not have been acknowledged in order.
    pub fn new(cfg: MachineConfig, mut recovered: Vec<Entry>) -> LeaderFollower {
        let contiguous = recovered
            .iter()
            .enumerate()
            .take_while(|(i, e)| e.lsn == *i as u64 + 1)
            .count();
        recovered.truncate(contiguous);
        let epoch = recovered.last().map_or(1, |e| e.epoch.max(1));
        let role = if cfg.id == cfg.leader {
            Role::Leader
        } else {
            Role::Follower
        };
        let last = recovered.len() as u64;
        let progress = match role {
            Role::Leader => cfg
                .nodes
                .iter()
                .filter(|n| **n != cfg.id)
                .map(|n| Progress {
                    id: n.clone(),
                    match_lsn: 0,
                    // Optimistic: assume the follower is up to date; its first ack says
                    // otherwise and the leader rewinds.
                    next_lsn: last + 1,
                    inflight: None,
                    last_send_ns: None,
                    acked: false,
                })
                .collect(),
            Role::Follower => Vec::new(),
        };
        let mut node = LeaderFollower {
            leader: Some(cfg.leader.clone()),
            cfg,
            epoch,
            role,
            log: Vec::with_capacity(recovered.len().max(1024)),
            applied_lsn: 0,
            state: HashMap::new(),
            progress,
            next_seq: 1,
        };
        for e in recovered {
            node.log.push(e);
            node.apply(&e);
        }
        node
    }

    pub fn id(&self) -> &str {
        &self.cfg.id
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn last_lsn(&self) -> u64 {
        self.log.len() as u64
    }

    pub fn applied_lsn(&self) -> u64 {
        self.applied_lsn
    }

    pub fn log(&self) -> &[Entry] {
        &self.log
    }

    /// The value a read of `key` returns here now.
    pub fn read(&self, key: Key) -> Value {
        match self.state.get(&key) {
            None => Value::Null,
            Some(Cell::Int(v)) => Value::Int(*v),
            Some(Cell::List(v)) => Value::List(v.clone()),
        }
    }

    pub fn status(&self) -> Status {
        Status {
            node: self.cfg.id.clone(),
            role: self.role,
            epoch: self.epoch,
            last_lsn: self.last_lsn(),
            applied_lsn: self.applied_lsn,
            leader: self.leader.clone(),
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

    /// Feeds one input; appends the resulting outputs to `out` in the order they must be
    /// carried out.
    pub fn handle(&mut self, now_ns: u64, input: Input, out: &mut Vec<Output>) {
        match input {
            Input::Client { req, op } => self.on_client(now_ns, req, op, out),
            Input::Peer(PeerMessage::Append {
                from,
                epoch,
                seq,
                prev_lsn,
                entries,
            }) => self.on_append(from, epoch, seq, prev_lsn, &entries, out),
            Input::Peer(PeerMessage::Ack {
                from,
                epoch,
                seq,
                last_lsn,
            }) => self.on_ack(now_ns, &from, epoch, seq, last_lsn, out),
            Input::Tick => self.on_tick(now_ns, out),
        }
    }

    fn on_client(&mut self, now_ns: u64, req: u64, op: Request, out: &mut Vec<Output>) {
        if let Request::Read { key } = op {
            let reply = ClientReply::Ok {
                value: self.read(key),
                lsn: None,
                applied_lsn: self.applied_lsn,
            };
            out.push(Output::Reply { req, reply });
            return;
        }
        if self.role != Role::Leader {
            let error = match &self.leader {
                Some(l) => format!("not leader; leader is {l}"),
                None => "not leader; no leader known".to_owned(),
            };
            out.push(Output::Reply {
                req,
                reply: ClientReply::Fail {
                    error,
                    leader: self.leader.clone(),
                },
            });
            return;
        }
        let effect = match self.decide(op) {
            Ok(effect) => effect,
            Err(error) => {
                out.push(Output::Reply {
                    req,
                    reply: ClientReply::Fail {
                        error,
                        leader: self.leader.clone(),
                    },
                });
                return;
            }
        };
        let entry = Entry {
            lsn: self.last_lsn() + 1,
            epoch: self.epoch,
            key: op.key(),
            effect,
        };
        self.log.push(entry);
        self.apply(&entry);
        out.push(Output::Persist(vec![entry]));
        match self.cfg.replication {
            // Async: acknowledge as soon as the leader's own log has it.
            Replication::Async => out.push(Output::Reply {
                req,
                reply: ClientReply::Ok {
                    value: Value::Null,
                    lsn: Some(entry.lsn),
                    applied_lsn: self.applied_lsn,
                },
            }),
        }
        for i in 0..self.progress.len() {
            if self.progress[i].inflight.is_none() {
                self.send_append(i, now_ns, out);
            }
        }
    }

    /// Evaluates a write against the current state: the effect to log, or why it fails.
    fn decide(&self, op: Request) -> Result<Effect, String> {
        let cell = self.state.get(&op.key());
        match op {
            Request::Read { .. } => Err("a read is not a write".to_owned()),
            Request::Write { value, .. } => Ok(Effect::Write(value)),
            Request::Cas { key, expected, new } => match cell {
                Some(Cell::Int(v)) if *v == expected => Ok(Effect::Write(new)),
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

    fn apply(&mut self, e: &Entry) {
        debug_assert_eq!(e.lsn, self.applied_lsn + 1, "entries apply in LSN order");
        let cell = self.state.entry(e.key);
        match e.effect {
            Effect::Write(v) => {
                cell.insert_entry(Cell::Int(v));
            }
            Effect::Append(v) => match cell.or_insert_with(|| Cell::List(Vec::new())) {
                Cell::List(list) => list.push(v),
                // The leader refuses such appends, so only a foreign log gets here; the
                // list wins so that every replica applies the same entry the same way.
                c @ Cell::Int(_) => *c = Cell::List(vec![v]),
            },
            Effect::Add(v) => match cell.or_insert(Cell::Int(0)) {
                Cell::Int(x) => *x = x.wrapping_add(v),
                c @ Cell::List(_) => *c = Cell::Int(v),
            },
        }
        self.applied_lsn = e.lsn;
    }

    fn on_append(
        &mut self,
        from: NodeId,
        epoch: u64,
        seq: u64,
        prev_lsn: u64,
        entries: &[Entry],
        out: &mut Vec<Output>,
    ) {
        if epoch < self.epoch {
            // A deposed leader: tell it the newer epoch and take nothing from it.
            out.push(self.ack(from, seq));
            return;
        }
        if epoch > self.epoch {
            self.epoch = epoch;
            self.role = Role::Follower;
            self.progress.clear();
        }
        if self.role == Role::Leader {
            // Two leaders in one epoch cannot happen with static roles; refuse the entries.
            out.push(self.ack(from, seq));
            return;
        }
        self.leader = Some(from.clone());
        let last = self.last_lsn();
        if prev_lsn <= last {
            let fresh: Vec<Entry> = entries
                .iter()
                .skip_while(|e| e.lsn <= last)
                .scan(last, |expect, e| {
                    // Stop at the first gap inside a batch rather than log out of order.
                    (e.lsn == *expect + 1).then(|| {
                        *expect = e.lsn;
                        *e
                    })
                })
                .collect();
            if !fresh.is_empty() {
                for e in &fresh {
                    self.log.push(*e);
                    self.apply(e);
                }
                out.push(Output::Persist(fresh));
            }
        }
        // On a gap (prev_lsn > last) nothing is taken; the ack makes the leader rewind.
        out.push(self.ack(from, seq));
    }

    fn ack(&self, to: NodeId, seq: u64) -> Output {
        Output::Send {
            to,
            msg: PeerMessage::Ack {
                from: self.cfg.id.clone(),
                epoch: self.epoch,
                seq,
                last_lsn: self.last_lsn(),
            },
        }
    }

    fn on_ack(
        &mut self,
        now_ns: u64,
        from: &str,
        epoch: u64,
        seq: u64,
        last_lsn: u64,
        out: &mut Vec<Output>,
    ) {
        if epoch > self.epoch {
            self.epoch = epoch;
            self.role = Role::Follower;
            self.leader = None;
            self.progress.clear();
            return;
        }
        if self.role != Role::Leader {
            return;
        }
        let last = self.last_lsn();
        let Some(i) = self.progress.iter().position(|p| p.id == from) else {
            return;
        };
        let p = &mut self.progress[i];
        // Only the ack of the message in flight counts: an older one may predate a rewind.
        if p.inflight.map(|(s, _)| s) != Some(seq) {
            return;
        }
        p.inflight = None;
        p.acked = true;
        // The follower's word is the truth, even when it went backwards (lost tail).
        p.match_lsn = last_lsn.min(last);
        p.next_lsn = p.match_lsn + 1;
        if p.next_lsn <= last {
            self.send_append(i, now_ns, out);
        }
    }

    fn on_tick(&mut self, now_ns: u64, out: &mut Vec<Output>) {
        if self.role != Role::Leader {
            return;
        }
        let last = self.last_lsn();
        for i in 0..self.progress.len() {
            let p = &self.progress[i];
            let due = match p.inflight {
                Some((_, sent_ns)) => now_ns.saturating_sub(sent_ns) >= self.cfg.resend_after_ns,
                None => {
                    p.next_lsn <= last
                        || p.last_send_ns
                            .is_none_or(|t| now_ns.saturating_sub(t) >= self.cfg.heartbeat_ns)
                }
            };
            if due {
                self.send_append(i, now_ns, out);
            }
        }
    }

    fn send_append(&mut self, i: usize, now_ns: u64, out: &mut Vec<Output>) {
        let last = self.last_lsn();
        let seq = self.next_seq;
        self.next_seq += 1;
        let p = &mut self.progress[i];
        p.next_lsn = p.next_lsn.clamp(1, last + 1);
        let from_idx = (p.next_lsn - 1) as usize;
        let to_idx = (from_idx + self.cfg.batch_max_entries).min(self.log.len());
        p.inflight = Some((seq, now_ns));
        p.last_send_ns = Some(now_ns);
        out.push(Output::Send {
            to: p.id.clone(),
            msg: PeerMessage::Append {
                from: self.cfg.id.clone(),
                epoch: self.epoch,
                seq,
                prev_lsn: p.next_lsn - 1,
                entries: self.log[from_idx..to_idx].to_vec(),
            },
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader() -> LeaderFollower {
        LeaderFollower::new(MachineConfig::new("n1", &["n1", "n2"], "n1"), Vec::new())
    }

    fn reply_of(out: &[Output]) -> &ClientReply {
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
        let out = n.step(
            0,
            Input::Client {
                req: 9,
                op: Request::Append { key: 1, value: 5 },
            },
        );
        assert!(matches!(&out[0], Output::Persist(e) if e.len() == 1 && e[0].lsn == 1));
        assert!(matches!(
            &out[1],
            Output::Reply {
                req: 9,
                reply: ClientReply::Ok { lsn: Some(1), .. }
            }
        ));
        assert!(
            matches!(&out[2], Output::Send { to, msg: PeerMessage::Append { entries, .. } } if to == "n2" && entries.len() == 1)
        );
        // Second write while the first message is in flight: no new message yet.
        let out = n.step(
            1,
            Input::Client {
                req: 10,
                op: Request::Append { key: 1, value: 6 },
            },
        );
        assert_eq!(out.len(), 2);
        // The ack releases everything appended meanwhile in one batch.
        let out = n.step(
            2,
            Input::Peer(PeerMessage::Ack {
                from: "n2".into(),
                epoch: 1,
                seq: 1,
                last_lsn: 1,
            }),
        );
        assert!(
            matches!(&out[0], Output::Send { msg: PeerMessage::Append { prev_lsn: 1, entries, .. }, .. } if entries.len() == 1 && entries[0].lsn == 2)
        );
        assert_eq!(n.read(1), Value::List(vec![5, 6]));
    }

    #[test]
    fn failed_cas_writes_nothing() {
        let mut n = leader();
        n.step(
            0,
            Input::Client {
                req: 1,
                op: Request::Write { key: 3, value: 10 },
            },
        );
        let out = n.step(
            1,
            Input::Client {
                req: 2,
                op: Request::Cas {
                    key: 3,
                    expected: 11,
                    new: 12,
                },
            },
        );
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(
            matches!(reply_of(&out), ClientReply::Fail { error, .. } if error.contains("is 10, not 11"))
        );
        assert_eq!(n.last_lsn(), 1);
        let out = n.step(
            2,
            Input::Client {
                req: 3,
                op: Request::Cas {
                    key: 3,
                    expected: 10,
                    new: 12,
                },
            },
        );
        assert!(matches!(
            reply_of(&out),
            ClientReply::Ok { lsn: Some(2), .. }
        ));
        assert_eq!(n.read(3), Value::Int(12));
        let out = n.step(
            3,
            Input::Client {
                req: 4,
                op: Request::Cas {
                    key: 4,
                    expected: 0,
                    new: 1,
                },
            },
        );
        assert!(matches!(reply_of(&out), ClientReply::Fail { .. }));
        assert_eq!(n.last_lsn(), 2);
    }

    #[test]
    fn follower_refuses_writes_and_serves_reads() {
        let mut f = LeaderFollower::new(MachineConfig::new("n2", &["n1", "n2"], "n1"), Vec::new());
        let out = f.step(
            0,
            Input::Client {
                req: 1,
                op: Request::Write { key: 1, value: 1 },
            },
        );
        assert_eq!(out.len(), 1);
        assert!(
            matches!(reply_of(&out), ClientReply::Fail { error, leader: Some(l) } if error == "not leader; leader is n1" && l == "n1")
        );
        let out = f.step(
            0,
            Input::Client {
                req: 2,
                op: Request::Read { key: 1 },
            },
        );
        assert!(matches!(
            reply_of(&out),
            ClientReply::Ok {
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
        assert!(matches!(&out[0], Output::Persist(v) if v.len() == 1 && v[0].lsn == 3));
        assert_eq!(f.read(1), Value::List(vec![1, 2, 3]));
    }

    #[test]
    fn leader_rewinds_on_a_lower_ack_and_resends_on_timeout() {
        let mut n = leader();
        for i in 0..3 {
            n.step(
                0,
                Input::Client {
                    req: i,
                    op: Request::Append {
                        key: 1,
                        value: i as i64,
                    },
                },
            );
        }
        // Follower claims only LSN 0 (it lost everything).
        let out = n.step(
            1,
            Input::Peer(PeerMessage::Ack {
                from: "n2".into(),
                epoch: 1,
                seq: 1,
                last_lsn: 0,
            }),
        );
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
        assert!(
            n.step(
                300_000_001,
                Input::Peer(PeerMessage::Ack {
                    from: "n2".into(),
                    epoch: 1,
                    seq: 2,
                    last_lsn: 3
                })
            )
            .is_empty()
        );
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
        assert_eq!(n.last_lsn(), 2);
        assert_eq!(n.read(2), Value::Int(2));
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
