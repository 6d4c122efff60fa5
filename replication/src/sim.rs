//! A deterministic in-memory harness for any `replica::Machine` (multi-leader, leaderless).
//!
//! Nodes are machines built by a caller-given constructor; the network is a seeded queue
//! that delays (so reorders), duplicates and drops messages, and can be cut between any
//! two nodes (dropped at delivery, as the nemesis drops at the receiver); each node's
//! "disk" holds the key states it asked to persist, so a crash loses its memory only and a
//! restart rebuilds the machine from that disk. Time is virtual and advances only in
//! `run_for`; each node reads it through its own clock offset (`set_clock_offset`), which
//! is how tests skew clocks. Same seed and same calls ⇒ the same deliveries at the same
//! virtual times and the same end state (`trace_hash` fingerprints the delivery order).
//! This is the seed of a future whole-cluster simulator: nothing in it is model-specific.

use super::replica::{Input, Machine, Output, Reply};
use super::versioned::{KeyState, fnv};
use crate::request::Request;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use schism_history::Key;
use std::collections::{BTreeMap, BTreeSet};

/// Virtual time starts here, so that clocks can be skewed backwards.
pub const EPOCH_NS: u64 = 1_000_000_000_000;

/// Network and clock settings.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConfig {
    pub seed: u64,
    pub nodes: usize,
    /// Each message is delayed uniformly in `[0, max_delay_ns]`.
    pub max_delay_ns: u64,
    pub drop_probability: f64,
    pub duplicate_probability: f64,
    /// Every live node gets `Input::Tick` at each multiple of this.
    pub tick_ns: u64,
}

impl NetConfig {
    pub fn new(seed: u64, nodes: usize) -> NetConfig {
        NetConfig {
            seed,
            nodes,
            max_delay_ns: 5_000_000,
            drop_probability: 0.0,
            duplicate_probability: 0.0,
            tick_ns: 10_000_000,
        }
    }
}

/// A client reply as the harness saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetReply {
    pub node: usize,
    pub req: u64,
    pub at_ns: u64,
    pub reply: Reply,
}

type Build<M> = Box<dyn Fn(usize, Vec<(Key, KeyState)>) -> M>;

struct Node<M> {
    machine: Option<M>,
    disk: BTreeMap<Key, KeyState>,
    offset_ns: i64,
}

/// A cluster of machines `n1..nN` on a simulated network.
pub struct Net<M: Machine> {
    cfg: NetConfig,
    build: Build<M>,
    rng: ChaCha8Rng,
    now_ns: u64,
    next_tick_ns: u64,
    ids: Vec<String>,
    nodes: Vec<Node<M>>,
    /// (deliver at, enqueue order) → (from, to, message).
    queue: BTreeMap<(u64, u64), (usize, usize, M::Msg)>,
    enqueued: u64,
    /// Directed cuts (from, to).
    cuts: BTreeSet<(usize, usize)>,
    replies: Vec<NetReply>,
    trace: u64,
}

impl<M: Machine> std::fmt::Debug for Net<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Net")
            .field("now_ns", &self.now_ns)
            .field("queued", &self.queue.len())
            .field("cuts", &self.cuts)
            .finish()
    }
}

impl<M: Machine> Net<M> {
    /// `build(i, disk)` makes node i's machine from what its disk holds.
    pub fn new(
        cfg: NetConfig,
        build: impl Fn(usize, Vec<(Key, KeyState)>) -> M + 'static,
    ) -> Net<M> {
        let ids = (1..=cfg.nodes).map(|i| format!("n{i}")).collect();
        let nodes = (0..cfg.nodes)
            .map(|i| Node {
                machine: Some(build(i, Vec::new())),
                disk: BTreeMap::new(),
                offset_ns: 0,
            })
            .collect();
        Net {
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            now_ns: EPOCH_NS,
            next_tick_ns: EPOCH_NS + cfg.tick_ns,
            build: Box::new(build),
            ids,
            nodes,
            queue: BTreeMap::new(),
            enqueued: 0,
            cuts: BTreeSet::new(),
            replies: Vec::new(),
            trace: 0xcbf2_9ce4_8422_2325,
            cfg,
        }
    }

    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    pub fn machine(&self, node: usize) -> Option<&M> {
        self.nodes[node].machine.as_ref()
    }

    pub fn disk(&self, node: usize) -> &BTreeMap<Key, KeyState> {
        &self.nodes[node].disk
    }

    pub fn replies(&self) -> &[NetReply] {
        &self.replies
    }

    /// The reply to request `req`, if it came.
    pub fn reply(&self, req: u64) -> Option<&Reply> {
        self.replies.iter().find(|r| r.req == req).map(|r| &r.reply)
    }

    pub fn trace_hash(&self) -> u64 {
        self.trace
    }

    pub fn set_drop_probability(&mut self, p: f64) {
        self.cfg.drop_probability = p;
    }

    /// Node `node`'s clock reads virtual time plus `offset_ns`.
    pub fn set_clock_offset(&mut self, node: usize, offset_ns: i64) {
        self.nodes[node].offset_ns = offset_ns;
        self.mix(format!("clock {node} {offset_ns}").as_bytes());
    }

    /// Cuts every link between `a` and the other groups (both directions).
    pub fn partition(&mut self, groups: &[&[usize]]) {
        self.cuts.clear();
        for (i, g) in groups.iter().enumerate() {
            for (j, h) in groups.iter().enumerate() {
                if i != j {
                    for &a in *g {
                        for &b in *h {
                            self.cuts.insert((a, b));
                        }
                    }
                }
            }
        }
        self.mix(format!("partition {groups:?}").as_bytes());
    }

    pub fn heal(&mut self) {
        self.cuts.clear();
        self.mix(b"heal");
    }

    /// Submits a client request to `node` now (ignored if the node is down).
    pub fn client(&mut self, node: usize, req: u64, op: Request) {
        self.deliver(node, None, Input::Client { req, op });
    }

    pub fn crash(&mut self, node: usize) {
        self.nodes[node].machine = None;
        self.mix(format!("crash {node}").as_bytes());
    }

    pub fn restart(&mut self, node: usize) {
        let disk: Vec<(Key, KeyState)> = self.nodes[node]
            .disk
            .iter()
            .map(|(k, s)| (*k, s.clone()))
            .collect();
        self.nodes[node].machine = Some((self.build)(node, disk));
        self.mix(format!("restart {node}").as_bytes());
    }

    /// Advances virtual time, delivering messages and ticks as they fall due.
    pub fn run_for(&mut self, duration_ns: u64) {
        let end = self.now_ns + duration_ns;
        loop {
            let next_msg = self.queue.keys().next().map(|k| k.0);
            let tick_first = next_msg.is_none_or(|m| self.next_tick_ns <= m);
            let at = if tick_first {
                self.next_tick_ns
            } else {
                next_msg.unwrap_or(u64::MAX)
            };
            if at > end {
                break;
            }
            self.now_ns = at;
            if tick_first {
                self.next_tick_ns += self.cfg.tick_ns;
                for i in 0..self.nodes.len() {
                    self.deliver(i, None, Input::Tick);
                }
            } else if let Some((_, (from, to, msg))) = self.queue.pop_first()
                && !self.cuts.contains(&(from, to))
            {
                self.deliver(to, Some(from), Input::Peer(msg));
            }
        }
        self.now_ns = end;
    }

    fn deliver(&mut self, node: usize, from: Option<usize>, input: Input<M::Msg>) {
        if !matches!(input, Input::Tick) {
            let event = format!("{} {node} {from:?} {input:?}", self.now_ns);
            self.mix(event.as_bytes());
        }
        let now = self
            .now_ns
            .saturating_add_signed(self.nodes[node].offset_ns);
        let Some(machine) = self.nodes[node].machine.as_mut() else {
            return;
        };
        let mut out = Vec::new();
        machine.handle(now, input, &mut out);
        for o in out {
            match o {
                Output::Persist(items) => {
                    for (k, s) in items {
                        self.nodes[node].disk.insert(k, s);
                    }
                }
                Output::Reply { req, reply } => self.replies.push(NetReply {
                    node,
                    req,
                    at_ns: self.now_ns,
                    reply,
                }),
                Output::Send { to, msg } => self.send(node, &to, msg),
            }
        }
    }

    fn send(&mut self, from: usize, to: &str, msg: M::Msg) {
        let Some(to) = self.ids.iter().position(|id| id == to) else {
            return;
        };
        if self.rng.random_bool(self.cfg.drop_probability) {
            return;
        }
        let copies = if self.rng.random_bool(self.cfg.duplicate_probability) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = self.rng.random_range(0..=self.cfg.max_delay_ns);
            self.enqueued += 1;
            self.queue.insert(
                (self.now_ns + delay, self.enqueued),
                (from, to, msg.clone()),
            );
        }
    }

    fn mix(&mut self, event: &[u8]) {
        self.trace = fnv(self.trace, event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::leaderless::{Leaderless, LlConfig};
    use crate::reference::multi_leader::{MlConfig, MultiLeader};
    use crate::reference::replica::{MlReplication, Quorum, ReplicaSettings, Topology};
    use crate::reference::versioned::Resolution;
    use schism_history::Value;

    const MS: u64 = 1_000_000;

    fn ids(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("n{i}")).collect()
    }

    fn ml(cfg: NetConfig, s: ReplicaSettings) -> Net<MultiLeader> {
        let nodes = ids(cfg.nodes);
        Net::new(cfg, move |i, disk| {
            MultiLeader::new(MlConfig::new(&nodes[i], &nodes, s), disk)
        })
    }

    fn ll(cfg: NetConfig, s: ReplicaSettings) -> Net<Leaderless> {
        let nodes = ids(cfg.nodes);
        Net::new(cfg, move |i, disk| {
            Leaderless::new(LlConfig::new(&nodes[i], &nodes, s), disk)
        })
    }

    fn dumps<M: Machine>(net: &Net<M>, n: usize) -> Vec<crate::reference::replica::DumpState> {
        (0..n)
            .map(|i| {
                let mut d = net.machine(i).unwrap().dump();
                d.extra = serde_json::Value::Null;
                d
            })
            .collect()
    }

    /// Writes at every node of a lossy, duplicating, reordering network, then heals.
    fn ml_lossy(seed: u64, s: ReplicaSettings) -> Net<MultiLeader> {
        let mut cfg = NetConfig::new(seed, 3);
        cfg.drop_probability = 0.2;
        cfg.duplicate_probability = 0.1;
        let mut net = ml(cfg, s);
        for v in 1..=120i64 {
            let op = match s.conflict {
                Resolution::Crdt if v % 2 == 0 => Request::Add { key: 2, value: v },
                _ => Request::Append {
                    key: (v % 3) as u64,
                    value: v,
                },
            };
            net.client((v % 3) as usize, v as u64, op);
            if v % 4 == 0 {
                net.run_for(MS);
            }
        }
        net.set_drop_probability(0.0);
        net.run_for(3_000 * MS);
        net
    }

    #[test]
    fn multi_leader_converges_under_every_topology_and_resolution() {
        for topology in [Topology::AllToAll, Topology::Ring, Topology::Star] {
            for conflict in [Resolution::Lww, Resolution::VersionVector, Resolution::Crdt] {
                for ml_replication in [MlReplication::Async, MlReplication::Sync] {
                    let s = ReplicaSettings {
                        topology,
                        conflict,
                        ml_replication,
                        ..ReplicaSettings::default()
                    };
                    let net = ml_lossy(11, s);
                    let d = dumps(&net, 3);
                    assert_eq!(d[0], d[1], "{s:?}");
                    assert_eq!(d[1], d[2], "{s:?}");
                    assert_eq!(net.replies().len(), 120, "{s:?}: every write answered");
                }
            }
        }
    }

    #[test]
    fn multi_leader_crdt_counter_loses_no_add() {
        let s = ReplicaSettings {
            conflict: Resolution::Crdt,
            ..ReplicaSettings::default()
        };
        let net = ml_lossy(5, s);
        let expected: i64 = (2..=120).step_by(2).sum();
        for i in 0..3 {
            assert_eq!(net.machine(i).unwrap().local_read(2), Value::Int(expected));
        }
    }

    #[test]
    fn multi_leader_same_seed_same_outcome() {
        let s = ReplicaSettings::default();
        let (a, b, c) = (ml_lossy(42, s), ml_lossy(42, s), ml_lossy(43, s));
        assert_eq!(a.trace_hash(), b.trace_hash());
        assert_eq!(dumps(&a, 3), dumps(&b, 3));
        assert_eq!(a.replies(), b.replies());
        assert_ne!(a.trace_hash(), c.trace_hash());
    }

    #[test]
    fn multi_leader_lww_with_a_slow_clock_loses_an_acknowledged_append() {
        let mut net = ml(NetConfig::new(1, 3), ReplicaSettings::default());
        net.set_clock_offset(1, -(5_000 * MS as i64));
        net.client(0, 1, Request::Append { key: 1, value: 1 });
        net.run_for(100 * MS);
        // n2 sees [1] and appends 2 — stamped 5 s before n1's append.
        net.client(1, 2, Request::Append { key: 1, value: 2 });
        assert!(matches!(net.reply(2), Some(Reply::Ok { .. })));
        net.run_for(1_000 * MS);
        for i in 0..3 {
            assert_eq!(net.machine(i).unwrap().local_read(1), Value::List(vec![1]));
        }
    }

    #[test]
    fn multi_leader_version_vectors_keep_partitioned_appends_as_siblings() {
        let s = ReplicaSettings {
            conflict: Resolution::VersionVector,
            ..ReplicaSettings::default()
        };
        let mut net = ml(NetConfig::new(2, 3), s);
        net.client(0, 1, Request::Append { key: 1, value: 1 });
        net.run_for(100 * MS);
        net.partition(&[&[0], &[1, 2]]);
        net.client(0, 2, Request::Append { key: 1, value: 2 });
        net.client(1, 3, Request::Append { key: 1, value: 3 });
        net.run_for(100 * MS);
        net.heal();
        net.run_for(1_000 * MS);
        net.client(2, 4, Request::Read { key: 1 });
        let Some(Reply::Ok { value, siblings }) = net.reply(4) else {
            panic!("{:?}", net.reply(4));
        };
        assert_eq!(*value, Value::List(vec![1, 2, 3]));
        assert_eq!(
            siblings.clone().unwrap(),
            vec![Value::List(vec![1, 2]), Value::List(vec![1, 3])]
        );
        // A write on top of the siblings resolves them everywhere.
        net.client(0, 5, Request::Append { key: 1, value: 4 });
        net.run_for(1_000 * MS);
        let d = dumps(&net, 3);
        assert!(d.iter().all(|x| x == &d[0] && x.siblings.is_empty()));
        assert_eq!(d[0].state[&1], Value::List(vec![1, 2, 3, 4]));
    }

    fn quorum(n: usize, w: usize, r: usize) -> ReplicaSettings {
        ReplicaSettings {
            quorum: Quorum { n, w, r },
            ..ReplicaSettings::default()
        }
    }

    #[test]
    fn leaderless_1_1_reads_are_stale_and_quorums_are_not() {
        let mut net = ll(NetConfig::new(3, 3), quorum(3, 1, 1));
        net.run_for(200 * MS);
        net.client(0, 1, Request::Write { key: 1, value: 7 });
        assert!(
            matches!(net.reply(1), Some(Reply::Ok { .. })),
            "W=1: acknowledged locally"
        );
        net.client(1, 2, Request::Read { key: 1 });
        assert!(
            matches!(
                net.reply(2),
                Some(Reply::Ok {
                    value: Value::Null,
                    ..
                })
            ),
            "R=1 at another replica: stale"
        );
        let mut net = ll(NetConfig::new(3, 3), quorum(3, 2, 2));
        net.run_for(200 * MS);
        net.client(0, 1, Request::Write { key: 1, value: 7 });
        net.run_for(20 * MS);
        assert!(matches!(net.reply(1), Some(Reply::Ok { .. })));
        for node in 0..3 {
            net.client(node, 10 + node as u64, Request::Read { key: 1 });
            net.run_for(20 * MS);
            assert!(
                matches!(
                    net.reply(10 + node as u64),
                    Some(Reply::Ok {
                        value: Value::Int(7),
                        ..
                    })
                ),
                "node {node}: {:?}",
                net.reply(10 + node as u64)
            );
        }
    }

    #[test]
    fn leaderless_write_without_quorum_is_unknown_and_read_fails() {
        let mut net = ll(NetConfig::new(4, 3), quorum(3, 2, 2));
        net.run_for(200 * MS);
        net.partition(&[&[0], &[1, 2]]);
        net.client(0, 1, Request::Append { key: 1, value: 1 });
        net.client(0, 2, Request::Write { key: 2, value: 1 });
        net.run_for(1_000 * MS);
        assert!(
            matches!(net.reply(1), Some(Reply::Fail { .. })),
            "its read phase failed"
        );
        assert!(
            matches!(net.reply(2), Some(Reply::Unknown { .. })),
            "{:?}",
            net.reply(2)
        );
    }

    /// Five nodes 3/2/2 with sloppy quorum, split 2|3: a write on one side is invisible on
    /// the other although W+R>N; after the heal, hints reach the owners.
    #[test]
    fn leaderless_sloppy_quorum_reads_stale_across_a_partition_then_hands_off() {
        let mut s = quorum(3, 2, 2);
        s.sloppy_quorum = true;
        let mut net = ll(NetConfig::new(5, 5), s);
        net.run_for(300 * MS);
        net.partition(&[&[0, 1], &[2, 3, 4]]);
        net.run_for(1_000 * MS);
        net.client(0, 1, Request::Write { key: 9, value: 1 });
        net.run_for(50 * MS);
        assert!(
            matches!(net.reply(1), Some(Reply::Ok { .. })),
            "{:?}",
            net.reply(1)
        );
        net.client(3, 2, Request::Read { key: 9 });
        net.run_for(50 * MS);
        assert!(
            matches!(
                net.reply(2),
                Some(Reply::Ok {
                    value: Value::Null,
                    ..
                })
            ),
            "stale despite W+R>N: {:?}",
            net.reply(2)
        );
        net.heal();
        net.run_for(2_000 * MS);
        let owners = net.machine(0).unwrap().owners(9);
        let holding = ids(5)
            .iter()
            .enumerate()
            .filter(|(i, id)| {
                owners.contains(id)
                    && net.machine(*i).unwrap().dump().state.get(&9) == Some(&Value::Int(1))
            })
            .count();
        assert!(holding >= 2, "the W stand-ins handed their hints to owners");
    }

    /// With read repair and anti-entropy off a replica that missed a write stays behind
    /// after the heal; anti-entropy repairs it; a quorum read with read repair does too.
    #[test]
    fn leaderless_repair_knobs_decide_convergence() {
        let run = |s: ReplicaSettings, read_after: bool| {
            let mut net = ll(NetConfig::new(6, 3), s);
            net.run_for(300 * MS);
            net.partition(&[&[0, 1], &[2]]);
            net.client(0, 1, Request::Write { key: 1, value: 5 });
            net.run_for(500 * MS);
            net.heal();
            net.run_for(500 * MS);
            if read_after {
                net.client(2, 2, Request::Read { key: 1 });
            }
            net.run_for(1_000 * MS);
            net.machine(2).unwrap().dump().state.get(&1).cloned()
        };
        let mut off = quorum(3, 2, 2);
        off.read_repair = false;
        assert_eq!(run(off, false), None, "nothing repairs n3");
        assert_eq!(
            run(off, true),
            None,
            "a read without repair changes nothing"
        );
        let mut ae = off;
        ae.anti_entropy_ms = 100;
        assert_eq!(run(ae, false), Some(Value::Int(5)));
        let rr = quorum(3, 2, 3);
        assert_eq!(run(rr, true), Some(Value::Int(5)));
    }

    #[test]
    fn leaderless_same_seed_same_outcome_and_restart_from_disk() {
        let go = |seed| {
            let mut cfg = NetConfig::new(seed, 3);
            cfg.drop_probability = 0.1;
            cfg.duplicate_probability = 0.1;
            let mut s = quorum(3, 2, 2);
            s.versioning = Resolution::VersionVector;
            s.anti_entropy_ms = 50;
            let mut net = ll(cfg, s);
            net.run_for(300 * MS);
            for v in 1..=60i64 {
                net.client(
                    (v % 3) as usize,
                    v as u64,
                    Request::Append {
                        key: (v % 2) as u64,
                        value: v,
                    },
                );
                net.run_for(MS);
                if v == 30 {
                    net.crash(2);
                }
                if v == 45 {
                    net.restart(2);
                }
            }
            net.set_drop_probability(0.0);
            net.run_for(3_000 * MS);
            net
        };
        let (a, b, c) = (go(8), go(8), go(9));
        assert_eq!(a.trace_hash(), b.trace_hash());
        assert_eq!(a.replies(), b.replies());
        assert_eq!(dumps(&a, 3), dumps(&b, 3));
        assert_ne!(a.trace_hash(), c.trace_hash());
        let d = dumps(&a, 3);
        assert_eq!(d[0], d[2], "anti-entropy brought the restarted node back");
        assert_eq!(d[0], d[1]);
    }
}
