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
            } else if let Some((_, (from, to, msg))) = self.queue.pop_first() {
                if !self.cuts.contains(&(from, to)) {
                    self.deliver(to, Some(from), Input::Peer(msg));
                }
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
