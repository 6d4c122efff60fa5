//! The multi-leader replication protocol as a sans-IO state machine.
//!
//! Every node accepts writes. A write is a read-modify-write of this node's own copy of
//! the key (`versioned::apply`), stamped with this node's clock (`now_ns`, which the shell
//! takes from the skewable clock) and merged into its store under the configured conflict
//! resolution. Changes travel as whole key states (`Push`) to the node's downstream peers
//! (`Topology::downstream`): all-to-all sends only the node's own writes; ring and star
//! forward whatever changed the receiver's state, except back to the sender.
//! Guarantees, given a shell that honours the output contract of `replica`:
//! - a write is acknowledged only after it is persisted here; under `MlReplication::Sync`
//!   also only after every direct downstream peer that is reachable (heard from within
//!   `suspect_after_ns`) has acknowledged a push holding it; a peer that becomes
//!   unreachable while a write waits stops being waited for (the write degrades to async);
//! - a key stays marked for a peer until the peer acknowledges a push carrying a state at
//!   least as new, so every change reaches every downstream peer once links heal (one push
//!   in flight per peer, resent after `resend_after_ns`; an idle peer gets an empty push
//!   every `heartbeat_ns`, which doubles as the reachability probe);
//! - merges are joins, so once every change has been delivered every replica holds the
//!   same state: multi-leader clusters converge after heal under every resolution;
//! - under `Lww` a write stamped earlier than the version it meets is discarded even though
//!   it was acknowledged (lost writes under clock skew and under concurrent appends).
//!
//! It reads no clock, opens nothing and spawns nothing.

use crate::machine::{DumpState, FollowerStatus, Input, Machine, Reply, Role, Status};
use crate::replica::{MlReplication, Output, ReplicaSettings, dump_states, persist_states};
use crate::request::Request;
use crate::settings::NodeId;
use crate::versioned::{KeyState, Resolution, apply};
use schism_history::{Key, Value};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Static settings of one multi-leader node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MlConfig {
    pub id: NodeId,
    /// Every node, in cluster order (the first is the star's hub).
    pub nodes: Vec<NodeId>,
    pub settings: ReplicaSettings,
    pub resend_after_ns: u64,
    pub heartbeat_ns: u64,
    /// A peer not heard from for this long is unreachable (sync writes stop waiting for it).
    pub suspect_after_ns: u64,
    /// Most keys in one push.
    pub batch_max_keys: usize,
}

impl MlConfig {
    pub fn new(id: &str, nodes: &[NodeId], settings: ReplicaSettings) -> MlConfig {
        MlConfig {
            id: id.to_owned(),
            nodes: nodes.to_vec(),
            settings,
            resend_after_ns: 250_000_000,
            heartbeat_ns: 100_000_000,
            suspect_after_ns: 400_000_000,
            batch_max_keys: 256,
        }
    }
}

/// Node-to-node messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "lowercase")]
pub enum MlMsg {
    /// Whole states of changed keys (none: a heartbeat).
    Push {
        from: NodeId,
        seq: u64,
        items: Vec<(Key, KeyState)>,
    },
    Ack {
        from: NodeId,
        seq: u64,
    },
}

#[derive(Debug, Clone)]
struct Inflight {
    seq: u64,
    sent_ns: u64,
    /// (key, change number of the state sent).
    items: Vec<(Key, u64)>,
}

#[derive(Debug, Clone)]
struct Peer {
    id: NodeId,
    downstream: bool,
    /// Keys to send, with the change number that made them dirty.
    dirty: BTreeMap<Key, u64>,
    inflight: Option<Inflight>,
    last_send_ns: Option<u64>,
    last_heard_ns: Option<u64>,
    /// Highest change number of each key the peer acknowledged.
    acked: BTreeMap<Key, u64>,
}

#[derive(Debug, Clone)]
struct SyncWait {
    req: u64,
    key: Key,
    change: u64,
    waiting: BTreeSet<NodeId>,
}

/// One node of a multi-leader cluster.
#[derive(Debug)]
pub struct MultiLeader {
    cfg: MlConfig,
    store: BTreeMap<Key, KeyState>,
    /// Change number of each key's current state here.
    changes: BTreeMap<Key, u64>,
    change_no: u64,
    /// This node's own version-vector counter.
    counter: u64,
    peers: Vec<Peer>,
    next_seq: u64,
    waits: Vec<SyncWait>,
}

impl MultiLeader {
    /// A node resuming from the key states its disk held. Everything it holds is marked
    /// for every downstream peer: it cannot know what they received before the crash.
    pub fn new(cfg: MlConfig, recovered: Vec<(Key, KeyState)>) -> MultiLeader {
        let down = cfg.settings.topology.downstream(&cfg.id, &cfg.nodes);
        let peers = cfg
            .nodes
            .iter()
            .filter(|n| **n != cfg.id)
            .map(|n| Peer {
                id: n.clone(),
                downstream: down.contains(n),
                dirty: BTreeMap::new(),
                inflight: None,
                last_send_ns: None,
                last_heard_ns: None,
                acked: BTreeMap::new(),
            })
            .collect();
        let mut node = MultiLeader {
            cfg,
            store: BTreeMap::new(),
            changes: BTreeMap::new(),
            change_no: 0,
            counter: 0,
            peers,
            next_seq: 1,
            waits: Vec::new(),
        };
        for (key, state) in recovered {
            let res = node.cfg.settings.conflict;
            node.store.entry(key).or_default().merge(&state, res);
        }
        let keys: Vec<Key> = node.store.keys().copied().collect();
        for key in keys {
            node.counter = node.counter.max(
                node.store[&key]
                    .clock()
                    .get(&node.cfg.id)
                    .copied()
                    .unwrap_or(0),
            );
            node.bump(key, None);
        }
        node
    }

    fn res(&self) -> Resolution {
        self.cfg.settings.conflict
    }

    pub fn read(&self, key: Key) -> (Value, Option<Vec<Value>>) {
        self.store
            .get(&key)
            .map_or((Value::Null, None), KeyState::read)
    }

    fn status_snapshot(&self) -> Status {
        Status {
            node: self.cfg.id.clone(),
            role: Role::Leader,
            epoch: 0,
            last_lsn: self.change_no,
            applied_lsn: self.change_no,
            commit_lsn: self.change_no,
            lease: false,
            leader: None,
            followers: self
                .peers
                .iter()
                .filter(|p| p.downstream)
                .map(|p| FollowerStatus {
                    node: p.id.clone(),
                    match_lsn: 0,
                    inflight: p.inflight.is_some(),
                    acked: p.last_heard_ns.is_some(),
                })
                .collect(),
            clock: Default::default(),
        }
    }

    /// Records a change of `key` and marks it for the downstream peers (except `from`).
    fn bump(&mut self, key: Key, from: Option<&str>) {
        self.change_no += 1;
        self.changes.insert(key, self.change_no);
        let forward = from.is_none() || self.cfg.settings.topology.forwards();
        if !forward {
            return;
        }
        for p in &mut self.peers {
            if p.downstream && Some(p.id.as_str()) != from {
                p.dirty.insert(key, self.change_no);
            }
        }
    }

    fn reachable(&self, p: &Peer, now_ns: u64) -> bool {
        p.last_heard_ns
            .is_some_and(|t| now_ns.saturating_sub(t) < self.cfg.suspect_after_ns)
    }

    fn on_client(&mut self, now_ns: u64, req: u64, op: Request, out: &mut Vec<Output<MlMsg>>) {
        let key = op.key();
        if let Request::Read { .. } = op {
            let (value, siblings) = self.read(key);
            out.push(Output::Reply {
                req,
                reply: Reply::Ok {
                    value,
                    siblings,
                    lsn: None,
                    applied_lsn: None,
                },
            });
            return;
        }
        let seen = self.store.get(&key).cloned().unwrap_or_default();
        let res = self.res();
        let version = match apply(&seen, &op, &self.cfg.id, now_ns, &mut self.counter, res) {
            Ok(v) => v,
            Err(error) => {
                out.push(Output::Reply {
                    req,
                    reply: Reply::fail(error),
                });
                return;
            }
        };
        let state = self.store.entry(key).or_default();
        let changed = state.merge(&KeyState(vec![version]), res);
        let ok = Reply::ok(Value::Null);
        if !changed {
            // LWW: stamped older than what is here, so it is discarded — yet acknowledged,
            // as an LWW store does.
            out.push(Output::Reply { req, reply: ok });
            return;
        }
        out.push(Output::Persist(vec![(key, state.clone())]));
        self.bump(key, None);
        match self.cfg.settings.ml_replication {
            MlReplication::Async => out.push(Output::Reply { req, reply: ok }),
            MlReplication::Sync => {
                let waiting: BTreeSet<NodeId> = self
                    .peers
                    .iter()
                    .filter(|p| p.downstream && self.reachable(p, now_ns))
                    .map(|p| p.id.clone())
                    .collect();
                if waiting.is_empty() {
                    out.push(Output::Reply { req, reply: ok });
                } else {
                    self.waits.push(SyncWait {
                        req,
                        key,
                        change: self.change_no,
                        waiting,
                    });
                }
            }
        }
        for i in 0..self.peers.len() {
            if self.peers[i].downstream && self.peers[i].inflight.is_none() {
                self.send_push(i, now_ns, out);
            }
        }
    }

    fn send_push(&mut self, i: usize, now_ns: u64, out: &mut Vec<Output<MlMsg>>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let p = &self.peers[i];
        let mut items = Vec::new();
        let mut sent = Vec::new();
        for key in p.dirty.keys().take(self.cfg.batch_max_keys) {
            if let Some(state) = self.store.get(key) {
                items.push((*key, state.clone()));
                sent.push((*key, self.changes.get(key).copied().unwrap_or(0)));
            }
        }
        let p = &mut self.peers[i];
        p.inflight = Some(Inflight {
            seq,
            sent_ns: now_ns,
            items: sent,
        });
        p.last_send_ns = Some(now_ns);
        out.push(Output::Send {
            to: p.id.clone(),
            msg: MlMsg::Push {
                from: self.cfg.id.clone(),
                seq,
                items,
            },
        });
    }

    fn heard(&mut self, from: &str, now_ns: u64) -> Option<usize> {
        let i = self.peers.iter().position(|p| p.id == from)?;
        self.peers[i].last_heard_ns = Some(now_ns);
        Some(i)
    }

    fn on_push(
        &mut self,
        now_ns: u64,
        from: NodeId,
        seq: u64,
        items: Vec<(Key, KeyState)>,
        out: &mut Vec<Output<MlMsg>>,
    ) {
        self.heard(&from, now_ns);
        let res = self.res();
        let mut persist = Vec::new();
        for (key, state) in items {
            let mine = self.store.entry(key).or_default();
            if mine.merge(&state, res) {
                persist.push((key, mine.clone()));
                self.bump(key, Some(&from));
            }
        }
        if !persist.is_empty() {
            out.push(Output::Persist(persist));
        }
        out.push(Output::Send {
            to: from,
            msg: MlMsg::Ack {
                from: self.cfg.id.clone(),
                seq,
            },
        });
        if self.cfg.settings.topology.forwards() {
            for i in 0..self.peers.len() {
                let p = &self.peers[i];
                if p.downstream && p.inflight.is_none() && !p.dirty.is_empty() {
                    self.send_push(i, now_ns, out);
                }
            }
        }
    }

    fn on_ack(&mut self, now_ns: u64, from: &str, seq: u64, out: &mut Vec<Output<MlMsg>>) {
        let Some(i) = self.heard(from, now_ns) else {
            return;
        };
        let p = &mut self.peers[i];
        if p.inflight.as_ref().map(|f| f.seq) != Some(seq) {
            return;
        }
        let Some(done) = p.inflight.take() else {
            return;
        };
        for (key, change) in done.items {
            if p.dirty.get(&key).is_some_and(|c| *c <= change) {
                p.dirty.remove(&key);
            }
            let a = p.acked.entry(key).or_insert(0);
            *a = (*a).max(change);
        }
        let id = p.id.clone();
        let acked = p.acked.clone();
        for w in &mut self.waits {
            if acked.get(&w.key).is_some_and(|c| *c >= w.change) {
                w.waiting.remove(&id);
            }
        }
        self.release(out);
        if !self.peers[i].dirty.is_empty() {
            self.send_push(i, now_ns, out);
        }
    }

    /// Replies to the sync writes that wait for nobody any more.
    fn release(&mut self, out: &mut Vec<Output<MlMsg>>) {
        self.waits.retain(|w| {
            if w.waiting.is_empty() {
                out.push(Output::Reply {
                    req: w.req,
                    reply: Reply::ok(Value::Null),
                });
                false
            } else {
                true
            }
        });
    }

    fn on_tick(&mut self, now_ns: u64, out: &mut Vec<Output<MlMsg>>) {
        let unreachable: Vec<NodeId> = self
            .peers
            .iter()
            .filter(|p| !self.reachable(p, now_ns))
            .map(|p| p.id.clone())
            .collect();
        for w in &mut self.waits {
            for id in &unreachable {
                w.waiting.remove(id);
            }
        }
        self.release(out);
        for i in 0..self.peers.len() {
            let p = &self.peers[i];
            if !p.downstream {
                continue;
            }
            let due = match &p.inflight {
                Some(f) => now_ns.saturating_sub(f.sent_ns) >= self.cfg.resend_after_ns,
                None => {
                    !p.dirty.is_empty()
                        || p.last_send_ns
                            .is_none_or(|t| now_ns.saturating_sub(t) >= self.cfg.heartbeat_ns)
                }
            };
            if due {
                self.send_push(i, now_ns, out);
            }
        }
    }
}

impl Machine for MultiLeader {
    type Msg = MlMsg;
    type Persist = Vec<(Key, KeyState)>;
    type Durable = BTreeMap<Key, KeyState>;

    fn persist(disk: &mut BTreeMap<Key, KeyState>, record: &Vec<(Key, KeyState)>) {
        persist_states(disk, record);
    }

    fn handle(&mut self, now_ns: u64, input: Input<MlMsg>, out: &mut Vec<Output<MlMsg>>) {
        match input {
            Input::Client { req, op } | Input::ClientWith { req, op, .. } => {
                self.on_client(now_ns, req, op, out)
            }
            Input::Txn { req, .. } => out.push(Output::Reply {
                req,
                reply: Reply::fail(crate::machine::NO_TXN.into()),
            }),
            Input::Peer(MlMsg::Push { from, seq, items }) => {
                self.on_push(now_ns, from, seq, items, out);
            }
            Input::Peer(MlMsg::Ack { from, seq }) => self.on_ack(now_ns, &from, seq, out),
            Input::Tick => self.on_tick(now_ns, out),
        }
    }

    fn sender(msg: &MlMsg) -> &str {
        match msg {
            MlMsg::Push { from, .. } | MlMsg::Ack { from, .. } => from,
        }
    }

    fn dump(&self) -> DumpState {
        let mut d = dump_states(&self.store);
        d.extra = serde_json::json!({
            "changes": self.change_no,
            "pending": self.peers.iter().filter(|p| p.downstream)
                .map(|p| (p.id.clone(), p.dirty.len())).collect::<BTreeMap<_, _>>(),
            "sync_waits": self.waits.len(),
        });
        d
    }

    fn local_read(&self, key: Key) -> Value {
        self.read(key).0
    }

    fn status(&self, _now_ns: u64) -> Status {
        self.status_snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica::Topology;

    fn nodes() -> Vec<NodeId> {
        vec!["n1".into(), "n2".into()]
    }

    fn node(id: &str, s: ReplicaSettings) -> MultiLeader {
        MultiLeader::new(MlConfig::new(id, &nodes(), s), Vec::new())
    }

    #[test]
    fn async_write_persists_replies_then_pushes() {
        let mut n = node("n1", ReplicaSettings::default());
        let mut out = Vec::new();
        let op = Request::Append { key: 1, value: 5 };
        n.handle(10, Input::Client { req: 1, op }, &mut out);
        assert!(matches!(&out[0], Output::Persist(v) if v.len() == 1));
        assert!(matches!(
            &out[1],
            Output::Reply {
                req: 1,
                reply: Reply::Ok { .. }
            }
        ));
        assert!(
            matches!(&out[2], Output::Send { to, msg: MlMsg::Push { items, .. } } if to == "n2" && items.len() == 1)
        );
    }

    /// What `n` outputs for `input` at `now_ns`.
    fn step(n: &mut MultiLeader, now_ns: u64, input: Input<MlMsg>) -> Vec<Output<MlMsg>> {
        let mut out = Vec::new();
        n.handle(now_ns, input, &mut out);
        out
    }

    fn write(req: u64, value: i64) -> Input<MlMsg> {
        let op = Request::Write { key: 1, value };
        Input::Client { req, op }
    }

    fn ack_from_n2(seq: u64) -> Input<MlMsg> {
        Input::Peer(MlMsg::Ack {
            from: "n2".into(),
            seq,
        })
    }

    fn replied(out: &[Output<MlMsg>], req: u64) -> bool {
        out.iter()
            .any(|o| matches!(o, Output::Reply { req: r, reply: Reply::Ok { .. } } if *r == req))
    }

    #[test]
    fn sync_write_waits_for_a_reachable_peer_only() {
        let s = ReplicaSettings {
            ml_replication: MlReplication::Sync,
            ..ReplicaSettings::default()
        };
        let mut n = node("n1", s);
        // n2 never heard from: unreachable, so the write is acknowledged at once.
        assert!(replied(&step(&mut n, 0, write(1, 1)), 1));
        step(&mut n, 1, ack_from_n2(1));
        let out = step(&mut n, 2, write(2, 2));
        assert!(
            !out.iter().any(|o| matches!(o, Output::Reply { .. })),
            "{out:?}"
        );
        let seq = out
            .iter()
            .find_map(|o| match o {
                Output::Send {
                    msg: MlMsg::Push { seq, .. },
                    ..
                } => Some(*seq),
                _ => None,
            })
            .unwrap();
        assert!(replied(&step(&mut n, 3, ack_from_n2(seq)), 2));
        // A peer that goes silent stops being waited for.
        let out = step(&mut n, 4, write(3, 3));
        assert!(!out.iter().any(|o| matches!(o, Output::Reply { .. })));
        assert!(replied(&step(&mut n, 1_000_000_000, Input::Tick), 3));
    }

    #[test]
    fn ring_forwards_changes_but_not_back_to_the_sender() {
        let ids: Vec<NodeId> = vec!["n1".into(), "n2".into(), "n3".into()];
        let s = ReplicaSettings {
            topology: Topology::Ring,
            ..ReplicaSettings::default()
        };
        let mut n2 = MultiLeader::new(MlConfig::new("n2", &ids, s), Vec::new());
        let mut st = KeyState::default();
        let mut c = 0;
        let v = apply(
            &st,
            &Request::Write { key: 1, value: 7 },
            "n1",
            5,
            &mut c,
            Resolution::Lww,
        )
        .unwrap();
        st.merge(&KeyState(vec![v]), Resolution::Lww);
        let mut out = Vec::new();
        n2.handle(
            0,
            Input::Peer(MlMsg::Push {
                from: "n1".into(),
                seq: 1,
                items: vec![(1, st)],
            }),
            &mut out,
        );
        assert!(out.iter().any(|o| matches!(o, Output::Send { to, msg: MlMsg::Push { items, .. } } if to == "n3" && items.len() == 1)));
        assert!(
            out.iter()
                .any(|o| matches!(o, Output::Send { to, msg: MlMsg::Ack { .. } } if to == "n1"))
        );
        assert_eq!(n2.local_read(1), Value::Int(7));
    }
}
