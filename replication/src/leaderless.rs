//! The leaderless (Dynamo-style) replication protocol as a sans-IO state machine.
//!
//! Each key belongs on N nodes: the ring walk starting at a hash of the key (its
//! preference list). The node a client contacts coordinates the request:
//! - a read asks the key's replicas (`Get`) and answers after R of them replied, with the
//!   merge of their states (siblings under version vectors). With read repair on, replicas
//!   that answered with an older state are sent the merge (`Put`) and the read answers only
//!   after they acknowledged it (blocking read repair, as Cassandra's quorum reads), so a
//!   quorum read is seen by every later quorum read;
//! - a write is a read-modify-write: a quorum read (R) gives the state it builds on
//!   (`versioned::apply`, stamped with the coordinator's clock), then the new state goes to
//!   the replicas and the write is acknowledged after W acks. A blind LWW `write` skips the
//!   read. No quorum in `request_timeout_ns`: a read fails; a write whose `Put`s went out is
//!   `Unknown` (some replicas may hold it), one that never got past its read fails;
//! - sloppy quorum: the request goes to the first N *reachable* nodes of the ring walk (a
//!   peer is reachable if heard from within `suspect_after_ns`; every node pings every
//!   peer each `heartbeat_ns`); a stand-in for an unreachable owner keeps the data as a
//!   hint (in memory; lost if the stand-in is killed) and hands it off when the owner is
//!   reachable again. Without it, requests go to the N owners whatever their state;
//! - anti-entropy (interval > 0): each interval a node sends a peer a digest of the keys
//!   both replicate (16 buckets, each a hash over its keys' states); mismatching buckets
//!   are exchanged both ways and merged.
//!
//! Guarantees: every replica persists a merged state before acknowledging it; merges are
//! joins (see `versioned`), so replicas that exchanged the same versions are equal; with
//! read repair and anti-entropy both off nothing repairs a replica that missed a write.
//!
//! It reads no clock, opens nothing and spawns nothing.

use crate::machine::{DumpState, FollowerStatus, Input, Machine, Reply, Role, Status};
use crate::replica::{Output, ReplicaSettings, dump_states, persist_states};
use crate::request::Request;
use crate::settings::NodeId;
use crate::versioned::{KeyState, Resolution, apply, fnv};
use schism_history::{Key, Value};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

const BUCKETS: u64 = 16;

/// Key states in a message.
type Items = Vec<(Key, KeyState)>;

/// Static settings of one leaderless node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlConfig {
    pub id: NodeId,
    pub nodes: Vec<NodeId>,
    pub settings: ReplicaSettings,
    pub request_timeout_ns: u64,
    pub heartbeat_ns: u64,
    pub suspect_after_ns: u64,
    pub resend_after_ns: u64,
}

impl LlConfig {
    pub fn new(id: &str, nodes: &[NodeId], settings: ReplicaSettings) -> LlConfig {
        LlConfig {
            id: id.to_owned(),
            nodes: nodes.to_vec(),
            settings,
            request_timeout_ns: 500_000_000,
            heartbeat_ns: 100_000_000,
            suspect_after_ns: 400_000_000,
            resend_after_ns: 250_000_000,
        }
    }
}

/// Node-to-node messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "lowercase")]
pub enum LlMsg {
    /// Store this state of `key` (for `hint`, a stand-in keeps it for that owner).
    Put {
        from: NodeId,
        id: u64,
        key: Key,
        state: KeyState,
        hint: Option<NodeId>,
    },
    PutAck {
        from: NodeId,
        id: u64,
    },
    Get {
        from: NodeId,
        id: u64,
        key: Key,
    },
    GetReply {
        from: NodeId,
        id: u64,
        state: KeyState,
    },
    Ping {
        from: NodeId,
    },
    Pong {
        from: NodeId,
    },
    /// Anti-entropy: one hash per bucket of the keys both nodes replicate.
    Digest {
        from: NodeId,
        buckets: Vec<u64>,
    },
    /// Anti-entropy: the sender's keys in `buckets`; `answer`: send yours back.
    Sync {
        from: NodeId,
        buckets: Vec<u64>,
        items: Vec<(Key, KeyState)>,
        answer: bool,
    },
    /// Hinted handoff: data kept for the receiver while it was unreachable.
    Handoff {
        from: NodeId,
        seq: u64,
        items: Vec<(Key, KeyState)>,
    },
    HandoffAck {
        from: NodeId,
        seq: u64,
    },
}

#[derive(Debug, Clone)]
enum Phase {
    Read(BTreeMap<NodeId, KeyState>),
    Repair(KeyState, BTreeSet<NodeId>),
    Write(BTreeSet<NodeId>),
}

#[derive(Debug, Clone)]
struct Pending {
    req: u64,
    op: Request,
    /// (node, owner it stands in for).
    targets: Vec<(NodeId, Option<NodeId>)>,
    phase: Phase,
    deadline_ns: u64,
}

#[derive(Debug, Clone, Default)]
struct PeerInfo {
    last_heard_ns: Option<u64>,
    last_ping_ns: Option<u64>,
    /// Handoff in flight: (seq, sent at, what was sent).
    handoff: Option<(u64, u64, Items)>,
}

/// One node of a leaderless cluster.
#[derive(Debug)]
pub struct Leaderless {
    cfg: LlConfig,
    store: BTreeMap<Key, KeyState>,
    /// Data kept for unreachable owners: owner → key → state.
    hinted: BTreeMap<NodeId, BTreeMap<Key, KeyState>>,
    peers: BTreeMap<NodeId, PeerInfo>,
    pending: BTreeMap<u64, Pending>,
    next_id: u64,
    counter: u64,
    changes: u64,
    last_anti_entropy_ns: u64,
    ae_cursor: usize,
}

fn mix(key: Key) -> u64 {
    // splitmix64: spreads consecutive keys over the ring.
    let mut z = key.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Leaderless {
    pub fn new(cfg: LlConfig, recovered: Vec<(Key, KeyState)>) -> Leaderless {
        let peers = cfg
            .nodes
            .iter()
            .filter(|n| **n != cfg.id)
            .map(|n| (n.clone(), PeerInfo::default()))
            .collect();
        let mut node = Leaderless {
            cfg,
            store: BTreeMap::new(),
            hinted: BTreeMap::new(),
            peers,
            pending: BTreeMap::new(),
            next_id: 1,
            counter: 0,
            changes: 0,
            last_anti_entropy_ns: 0,
            ae_cursor: 0,
        };
        let res = node.res();
        for (key, state) in recovered {
            node.store.entry(key).or_default().merge(&state, res);
        }
        node.counter = node
            .store
            .values()
            .filter_map(|s| s.clock().get(&node.cfg.id).copied())
            .max()
            .unwrap_or(0);
        node
    }

    fn res(&self) -> Resolution {
        self.cfg.settings.versioning
    }

    /// The ring walk for `key`: every node, starting at the key's position.
    pub fn walk(&self, key: Key) -> Vec<NodeId> {
        let m = self.cfg.nodes.len();
        let start = (mix(key) % m as u64) as usize;
        (0..m)
            .map(|i| self.cfg.nodes[(start + i) % m].clone())
            .collect()
    }

    /// The N nodes `key` belongs on.
    pub fn owners(&self, key: Key) -> Vec<NodeId> {
        let mut w = self.walk(key);
        w.truncate(self.cfg.settings.quorum.n);
        w
    }

    fn alive(&self, node: &str, now_ns: u64) -> bool {
        node == self.cfg.id
            || self.peers.get(node).is_some_and(|p| {
                p.last_heard_ns
                    .is_some_and(|t| now_ns.saturating_sub(t) < self.cfg.suspect_after_ns)
            })
    }

    /// Where a request for `key` goes, and for whom each stand-in holds it.
    fn targets(&self, key: Key, now_ns: u64) -> Vec<(NodeId, Option<NodeId>)> {
        let owners = self.owners(key);
        if !self.cfg.settings.sloppy_quorum {
            return owners.into_iter().map(|o| (o, None)).collect();
        }
        let n = self.cfg.settings.quorum.n;
        let chosen: Vec<NodeId> = self
            .walk(key)
            .into_iter()
            .filter(|x| self.alive(x, now_ns))
            .take(n)
            .collect();
        let mut missing = owners.iter().filter(|o| !chosen.contains(o)).cloned();
        let mut out: Vec<(NodeId, Option<NodeId>)> = chosen
            .iter()
            .map(|c| {
                if owners.contains(c) {
                    (c.clone(), None)
                } else {
                    (c.clone(), missing.next())
                }
            })
            .collect();
        // Fewer than N reachable: the owners nobody stands in for are tried anyway.
        for o in missing {
            if out.len() >= n {
                break;
            }
            out.push((o, None));
        }
        out
    }

    /// This node's copy of `key`, including what it keeps for others.
    fn local_view(&self, key: Key) -> KeyState {
        let mut s = self.store.get(&key).cloned().unwrap_or_default();
        for h in self.hinted.values() {
            if let Some(x) = h.get(&key) {
                s.merge(x, self.res());
            }
        }
        s
    }

    /// Merges `state` here (as a stand-in for `hint`, or as a replica); persists changes.
    fn store_state(
        &mut self,
        key: Key,
        state: &KeyState,
        hint: Option<&NodeId>,
        out: &mut Vec<Output<LlMsg>>,
    ) {
        let res = self.res();
        match hint {
            Some(owner) if *owner != self.cfg.id => {
                self.hinted
                    .entry(owner.clone())
                    .or_default()
                    .entry(key)
                    .or_default()
                    .merge(state, res);
            }
            _ => {
                let mine = self.store.entry(key).or_default();
                if mine.merge(state, res) {
                    self.changes += 1;
                    out.push(Output::Persist(vec![(key, mine.clone())]));
                }
            }
        }
    }

    fn on_client(&mut self, now_ns: u64, req: u64, op: Request, out: &mut Vec<Output<LlMsg>>) {
        let id = self.next_id;
        self.next_id += 1;
        let key = op.key();
        let targets = self.targets(key, now_ns);
        let blind = matches!(op, Request::Write { .. }) && self.res() == Resolution::Lww;
        let mut p = Pending {
            req,
            op,
            targets: targets.clone(),
            phase: Phase::Read(BTreeMap::new()),
            deadline_ns: now_ns + self.cfg.request_timeout_ns,
        };
        if blind {
            let mut c = self.counter;
            match apply(
                &KeyState::default(),
                &op,
                &self.cfg.id,
                now_ns,
                &mut c,
                self.res(),
            ) {
                Ok(v) => {
                    self.counter = c;
                    p.phase = Phase::Write(BTreeSet::new());
                    self.pending.insert(id, p);
                    self.send_puts(id, &KeyState(vec![v]), out);
                }
                Err(error) => out.push(Output::Reply {
                    req,
                    reply: Reply::fail(error),
                }),
            }
            self.progress(id, now_ns, out);
            return;
        }
        self.pending.insert(id, p);
        for (t, _) in &targets {
            if *t == self.cfg.id {
                let view = self.local_view(key);
                if let Some(Pending {
                    phase: Phase::Read(replies),
                    ..
                }) = self.pending.get_mut(&id)
                {
                    replies.insert(t.clone(), view);
                }
            } else {
                out.push(Output::Send {
                    to: t.clone(),
                    msg: LlMsg::Get {
                        from: self.cfg.id.clone(),
                        id,
                        key,
                    },
                });
            }
        }
        self.progress(id, now_ns, out);
    }

    /// Sends `state` to every target of request `id` (the local one is stored at once).
    fn send_puts(&mut self, id: u64, state: &KeyState, out: &mut Vec<Output<LlMsg>>) {
        let Some(p) = self.pending.get(&id) else {
            return;
        };
        let key = p.op.key();
        let targets = p.targets.clone();
        let mut local = false;
        for (t, hint) in &targets {
            if *t == self.cfg.id {
                self.store_state(key, state, hint.as_ref(), out);
                local = true;
            } else {
                out.push(Output::Send {
                    to: t.clone(),
                    msg: LlMsg::Put {
                        from: self.cfg.id.clone(),
                        id,
                        key,
                        state: state.clone(),
                        hint: hint.clone(),
                    },
                });
            }
        }
        if local
            && let Some(Pending {
                phase: Phase::Write(acks),
                ..
            }) = self.pending.get_mut(&id)
        {
            acks.insert(self.cfg.id.clone());
        }
    }

    /// Moves request `id` on as far as the answers so far allow.
    fn progress(&mut self, id: u64, now_ns: u64, out: &mut Vec<Output<LlMsg>>) {
        let q = self.cfg.settings.quorum;
        let res = self.res();
        let Some(p) = self.pending.get(&id) else {
            return;
        };
        let req = p.req;
        let op = p.op;
        let key = op.key();
        match &p.phase {
            Phase::Read(replies) if replies.len() >= q.r => {
                let mut merged = KeyState::default();
                for s in replies.values() {
                    merged.merge(s, res);
                }
                if let Request::Read { .. } = op {
                    let stale = self.stale_replicas(replies, &merged);
                    let hints: BTreeMap<NodeId, Option<NodeId>> =
                        p.targets.iter().cloned().collect();
                    self.repair(id, key, merged, stale, &hints, out);
                    return;
                }
                self.write_after_read(id, op, now_ns, merged, out);
            }
            Phase::Repair(merged, waiting) if waiting.is_empty() => {
                let reply = read_reply(merged);
                self.finish(id, reply, out);
            }
            Phase::Write(acks) if acks.len() >= q.w => {
                self.finish(id, Reply::ok(Value::Null), out);
            }
            _ => {}
        }
        let _ = req;
    }

    /// The replicas whose answer differs from the merged state (none without read repair).
    fn stale_replicas(
        &self,
        replies: &BTreeMap<NodeId, KeyState>,
        merged: &KeyState,
    ) -> BTreeSet<NodeId> {
        if !self.cfg.settings.read_repair {
            return BTreeSet::new();
        }
        replies
            .iter()
            .filter(|(_, s)| *s != merged)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Writes the merged state back to the stale replicas; the read is answered once
    /// they acknowledged (at once when none is stale).
    fn repair(
        &mut self,
        id: u64,
        key: Key,
        merged: KeyState,
        stale: BTreeSet<NodeId>,
        hints: &BTreeMap<NodeId, Option<NodeId>>,
        out: &mut Vec<Output<LlMsg>>,
    ) {
        let mut waiting = BTreeSet::new();
        for n in stale {
            let hint = hints.get(&n).cloned().flatten();
            if n == self.cfg.id {
                self.store_state(key, &merged, hint.as_ref(), out);
            } else {
                out.push(Output::Send {
                    to: n.clone(),
                    msg: LlMsg::Put {
                        from: self.cfg.id.clone(),
                        id,
                        key,
                        state: merged.clone(),
                        hint,
                    },
                });
                waiting.insert(n);
            }
        }
        if waiting.is_empty() {
            self.finish(id, read_reply(&merged), out);
        } else if let Some(p) = self.pending.get_mut(&id) {
            p.phase = Phase::Repair(merged, waiting);
        }
    }

    /// A write's read phase reached R: apply the op to what it saw and send the puts.
    fn write_after_read(
        &mut self,
        id: u64,
        op: Request,
        now_ns: u64,
        merged: KeyState,
        out: &mut Vec<Output<LlMsg>>,
    ) {
        let res = self.res();
        let mut c = self.counter;
        match apply(&merged, &op, &self.cfg.id, now_ns, &mut c, res) {
            Err(error) => self.finish(id, Reply::fail(error), out),
            Ok(v) => {
                self.counter = c;
                let mut next = merged;
                next.merge(&KeyState(vec![v]), res);
                if let Some(p) = self.pending.get_mut(&id) {
                    p.phase = Phase::Write(BTreeSet::new());
                }
                self.send_puts(id, &next, out);
                self.progress(id, now_ns, out);
            }
        }
    }

    fn finish(&mut self, id: u64, reply: Reply, out: &mut Vec<Output<LlMsg>>) {
        if let Some(p) = self.pending.remove(&id) {
            out.push(Output::Reply { req: p.req, reply });
        }
    }

    fn heard(&mut self, from: &str, now_ns: u64) {
        if let Some(p) = self.peers.get_mut(from) {
            p.last_heard_ns = Some(now_ns);
        }
    }

    /// This node's keys in `buckets` that `peer` also replicates.
    fn shared_items(&self, peer: &str, buckets: Option<&[u64]>) -> Vec<(Key, KeyState)> {
        self.store
            .iter()
            .filter(|(k, _)| buckets.is_none_or(|b| b.contains(&(**k % BUCKETS))))
            .filter(|(k, _)| {
                let o = self.owners(**k);
                o.iter().any(|x| x == peer) && o.contains(&self.cfg.id)
            })
            .map(|(k, s)| (*k, s.clone()))
            .collect()
    }

    fn digest(&self, peer: &str) -> Vec<u64> {
        let mut b = vec![0u64; BUCKETS as usize];
        for (k, s) in self.shared_items(peer, None) {
            let slot = &mut b[(k % BUCKETS) as usize];
            *slot = fnv(*slot ^ mix(k), &s.fingerprint().to_le_bytes());
        }
        b
    }

    fn on_peer(&mut self, now_ns: u64, msg: LlMsg, out: &mut Vec<Output<LlMsg>>) {
        let me = self.cfg.id.clone();
        self.heard(Self::sender(&msg), now_ns);
        match msg {
            LlMsg::Put {
                from,
                id,
                key,
                state,
                hint,
            } => {
                self.store_state(key, &state, hint.as_ref(), out);
                out.push(Output::Send {
                    to: from,
                    msg: LlMsg::PutAck { from: me, id },
                });
            }
            LlMsg::PutAck { from, id } => {
                match self.pending.get_mut(&id).map(|p| &mut p.phase) {
                    Some(Phase::Write(acks)) => {
                        acks.insert(from);
                    }
                    Some(Phase::Repair(_, waiting)) => {
                        waiting.remove(&from);
                    }
                    _ => return,
                }
                self.progress(id, now_ns, out);
            }
            LlMsg::Get { from, id, key } => {
                let state = self.local_view(key);
                out.push(Output::Send {
                    to: from,
                    msg: LlMsg::GetReply {
                        from: me,
                        id,
                        state,
                    },
                });
            }
            LlMsg::GetReply { from, id, state } => {
                if let Some(Pending {
                    phase: Phase::Read(replies),
                    ..
                }) = self.pending.get_mut(&id)
                {
                    replies.insert(from, state);
                    self.progress(id, now_ns, out);
                }
            }
            LlMsg::Ping { from } => out.push(Output::Send {
                to: from,
                msg: LlMsg::Pong { from: me },
            }),
            LlMsg::Pong { .. } => {}
            msg @ (LlMsg::Digest { .. } | LlMsg::Sync { .. }) => self.on_anti_entropy(msg, out),
            msg @ (LlMsg::Handoff { .. } | LlMsg::HandoffAck { .. }) => self.on_handoff(msg, out),
        }
    }

    /// Anti-entropy: answer a digest with the buckets that differ, take a sync.
    fn on_anti_entropy(&mut self, msg: LlMsg, out: &mut Vec<Output<LlMsg>>) {
        let me = self.cfg.id.clone();
        match msg {
            LlMsg::Digest { from, buckets } => {
                let mine = self.digest(&from);
                let differ: Vec<u64> = (0..BUCKETS)
                    .filter(|b| mine.get(*b as usize) != buckets.get(*b as usize))
                    .collect();
                if !differ.is_empty() {
                    let items = self.shared_items(&from, Some(&differ));
                    out.push(Output::Send {
                        to: from,
                        msg: LlMsg::Sync {
                            from: me,
                            buckets: differ,
                            items,
                            answer: true,
                        },
                    });
                }
            }
            LlMsg::Sync {
                from,
                buckets,
                items,
                answer,
            } => {
                for (k, s) in &items {
                    if self.owners(*k).contains(&me) {
                        self.store_state(*k, s, None, out);
                    }
                }
                if answer {
                    let items = self.shared_items(&from, Some(&buckets));
                    out.push(Output::Send {
                        to: from,
                        msg: LlMsg::Sync {
                            from: me,
                            buckets,
                            items,
                            answer: false,
                        },
                    });
                }
            }
            _ => {}
        }
    }

    /// Hinted hand-off: take hinted states, and forget hints once their owner acknowledged.
    fn on_handoff(&mut self, msg: LlMsg, out: &mut Vec<Output<LlMsg>>) {
        let me = self.cfg.id.clone();
        match msg {
            LlMsg::Handoff { from, seq, items } => {
                for (k, s) in &items {
                    self.store_state(*k, s, None, out);
                }
                out.push(Output::Send {
                    to: from,
                    msg: LlMsg::HandoffAck { from: me, seq },
                });
            }
            LlMsg::HandoffAck { from, seq } => {
                let sent = match self.peers.get_mut(&from) {
                    Some(p) if p.handoff.as_ref().is_some_and(|h| h.0 == seq) => {
                        p.handoff.take().map(|h| h.2).unwrap_or_default()
                    }
                    _ => return,
                };
                if let Some(h) = self.hinted.get_mut(&from) {
                    for (k, s) in sent {
                        if h.get(&k) == Some(&s) {
                            h.remove(&k);
                        }
                    }
                    if h.is_empty() {
                        self.hinted.remove(&from);
                    }
                }
            }
            _ => {}
        }
    }

    fn on_tick(&mut self, now_ns: u64, out: &mut Vec<Output<LlMsg>>) {
        self.time_out_requests(now_ns, out);
        // Probe peers.
        let me = self.cfg.id.clone();
        for (id, p) in &mut self.peers {
            if p.last_ping_ns
                .is_none_or(|t| now_ns.saturating_sub(t) >= self.cfg.heartbeat_ns)
            {
                p.last_ping_ns = Some(now_ns);
                out.push(Output::Send {
                    to: id.clone(),
                    msg: LlMsg::Ping { from: me.clone() },
                });
            }
        }
        self.hand_off_hints(now_ns, out);
        // Anti-entropy with the next reachable peer.
        let every = self.cfg.settings.anti_entropy_ms * 1_000_000;
        if every > 0 && now_ns.saturating_sub(self.last_anti_entropy_ns) >= every {
            self.last_anti_entropy_ns = now_ns;
            let peers: Vec<NodeId> = self
                .peers
                .keys()
                .filter(|p| self.alive(p, now_ns))
                .cloned()
                .collect();
            if !peers.is_empty() {
                self.ae_cursor = (self.ae_cursor + 1) % peers.len();
                let peer = peers[self.ae_cursor].clone();
                let buckets = self.digest(&peer);
                out.push(Output::Send {
                    to: peer,
                    msg: LlMsg::Digest { from: me, buckets },
                });
            }
        }
    }

    /// Answers every request past its deadline: a read certainly failed, a write may or
    /// may not have happened.
    fn time_out_requests(&mut self, now_ns: u64, out: &mut Vec<Output<LlMsg>>) {
        let q = self.cfg.settings.quorum;
        let late: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| now_ns >= p.deadline_ns)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            let Some(p) = self.pending.get(&id) else {
                continue;
            };
            let reply = match &p.phase {
                Phase::Read(r) => Reply::fail(format!(
                    "read quorum not reached: {} of R={} replicas answered",
                    r.len(),
                    q.r
                )),
                Phase::Repair(..) => Reply::fail("read repair not acknowledged in time".into()),
                Phase::Write(a) => Reply::Unknown {
                    error: format!("write quorum not reached: {} of W={} acks", a.len(), q.w),
                },
            };
            self.finish(id, reply, out);
        }
    }

    /// Hands hints off to owners that are back (resending an unacknowledged hand-off).
    fn hand_off_hints(&mut self, now_ns: u64, out: &mut Vec<Output<LlMsg>>) {
        let me = self.cfg.id.clone();
        let owners: Vec<NodeId> = self.hinted.keys().cloned().collect();
        for owner in owners {
            if !self.alive(&owner, now_ns) {
                continue;
            }
            let resend = self.cfg.resend_after_ns;
            let due = self.peers.get(&owner).is_some_and(|p| {
                p.handoff
                    .as_ref()
                    .is_none_or(|h| now_ns.saturating_sub(h.1) >= resend)
            });
            if !due {
                continue;
            }
            let items: Vec<(Key, KeyState)> = self.hinted[&owner]
                .iter()
                .map(|(k, s)| (*k, s.clone()))
                .collect();
            let seq = self.next_id;
            self.next_id += 1;
            if let Some(p) = self.peers.get_mut(&owner) {
                p.handoff = Some((seq, now_ns, items.clone()));
            }
            out.push(Output::Send {
                to: owner,
                msg: LlMsg::Handoff {
                    from: me.clone(),
                    seq,
                    items,
                },
            });
        }
    }
}

fn read_reply(state: &KeyState) -> Reply {
    let (value, siblings) = state.read();
    Reply::Ok {
        value,
        siblings,
        lsn: None,
        applied_lsn: None,
    }
}

impl Machine for Leaderless {
    type Msg = LlMsg;
    type Persist = Vec<(Key, KeyState)>;
    type Durable = BTreeMap<Key, KeyState>;

    fn persist(disk: &mut BTreeMap<Key, KeyState>, record: &Vec<(Key, KeyState)>) {
        persist_states(disk, record);
    }

    fn handle(&mut self, now_ns: u64, input: Input<LlMsg>, out: &mut Vec<Output<LlMsg>>) {
        match input {
            Input::Client { req, op } | Input::ClientWith { req, op, .. } => {
                self.on_client(now_ns, req, op, out)
            }
            Input::Txn { req, .. } => out.push(Output::Reply {
                req,
                reply: Reply::fail(crate::machine::NO_TXN.into()),
            }),
            Input::Peer(msg) => self.on_peer(now_ns, msg, out),
            Input::Tick => self.on_tick(now_ns, out),
        }
    }

    fn sender(msg: &LlMsg) -> &str {
        match msg {
            LlMsg::Put { from, .. }
            | LlMsg::PutAck { from, .. }
            | LlMsg::Get { from, .. }
            | LlMsg::GetReply { from, .. }
            | LlMsg::Ping { from }
            | LlMsg::Pong { from }
            | LlMsg::Digest { from, .. }
            | LlMsg::Sync { from, .. }
            | LlMsg::Handoff { from, .. }
            | LlMsg::HandoffAck { from, .. } => from,
        }
    }

    fn dump(&self) -> DumpState {
        let mut d = dump_states(&self.store);
        for key in self.store.keys() {
            d.owners.insert(*key, self.owners(*key));
        }
        d.extra = serde_json::json!({
            "changes": self.changes,
            "hinted": self.hinted.iter().map(|(o, h)| (o.clone(), h.len())).collect::<BTreeMap<_, _>>(),
            "pending_requests": self.pending.len(),
        });
        d
    }

    fn local_read(&self, key: Key) -> Value {
        self.local_view(key).read().0
    }

    fn status(&self, _now_ns: u64) -> Status {
        Status {
            node: self.cfg.id.clone(),
            role: Role::Leader,
            epoch: 0,
            last_lsn: self.changes,
            applied_lsn: self.changes,
            commit_lsn: self.changes,
            lease: false,
            leader: None,
            followers: self
                .peers
                .iter()
                .map(|(id, p)| FollowerStatus {
                    node: id.clone(),
                    match_lsn: 0,
                    inflight: false,
                    acked: p.last_heard_ns.is_some(),
                })
                .collect(),
            clock: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica::Quorum;

    fn ids(n: usize) -> Vec<NodeId> {
        (1..=n).map(|i| format!("n{i}")).collect()
    }

    #[test]
    fn owners_are_n_consecutive_nodes_of_the_walk() {
        let s = ReplicaSettings {
            quorum: Quorum { n: 3, w: 2, r: 2 },
            ..ReplicaSettings::default()
        };
        let l = Leaderless::new(LlConfig::new("n1", &ids(5), s), Vec::new());
        for key in 0..20 {
            let o = l.owners(key);
            assert_eq!(o.len(), 3);
            let set: BTreeSet<_> = o.iter().collect();
            assert_eq!(set.len(), 3);
        }
    }

    #[test]
    fn sloppy_targets_replace_unreachable_owners_with_hinted_stand_ins() {
        let s = ReplicaSettings {
            quorum: Quorum { n: 3, w: 2, r: 2 },
            sloppy_quorum: true,
            ..ReplicaSettings::default()
        };
        let mut l = Leaderless::new(LlConfig::new("n1", &ids(5), s), Vec::new());
        for p in ["n2", "n3", "n4", "n5"] {
            l.heard(p, 0);
        }
        let key = (0..100)
            .find(|k| !l.owners(*k).contains(&"n1".to_owned()))
            .unwrap();
        assert!(l.targets(key, 1).iter().all(|(_, h)| h.is_none()));
        // The first owner goes silent: a stand-in holds its data as a hint.
        let gone = l.owners(key)[0].clone();
        if let Some(p) = l.peers.get_mut(&gone) {
            p.last_heard_ns = None;
        }
        let t = l.targets(key, 1);
        assert_eq!(t.len(), 3);
        assert!(!t.iter().any(|(n, _)| *n == gone));
        assert!(t.iter().any(|(_, h)| h.as_ref() == Some(&gone)), "{t:?}");
    }
}
