//! One deterministic harness for every replication model: any `Machine` on a simulated
//! network with simulated clocks, in one thread, on virtual time.
//!
//! Nodes `n1..nN` are machines built by a caller-given constructor from what their disk
//! holds (`Machine::Durable`, the fold of every `Output::Persist` they emitted), so a
//! crash loses memory only and a restart rebuilds the machine from that disk. Under
//! buffered durability (`SimConfig::flush_ns`) a record may instead wait in the node's
//! memory (`Machine::persist_buffered`) until the node's flush timer folds it into the
//! disk, as the process shell's timer does: every `flush_ns` of real (virtual) time from
//! the node's start, stopped while it is paused and, when it missed a flush, firing at
//! once on resume and every `flush_ns` from then (tokio's `MissedTickBehavior::Delay`);
//! a crash loses what waits. The timer's phase at each start (and restart) is drawn from
//! the seed: a real process's start-up time makes it unrelated to the round times a
//! nemesis acts at (a phase of 0 would flush at the very instant of every kill). The network
//! is a seeded queue that delays each message uniformly in `[min_delay_ns, max_delay_ns]`
//! (so messages reorder), plus, rarely, a long tail (`tail_probability`, `tail_max_ns`),
//! duplicates and drops them, and honours directed link cuts: a
//! message is lost if its link is cut when it is sent or when it would arrive (a cut
//! also kills what is in flight, as the nemesis's firewall rules do). A paused node
//! (SIGSTOP) gets no ticks; what is delivered to it waits and reaches it, in order, when
//! it resumes. Each node reads virtual time through its own `SkewClock` (offset and rate),
//! which is how clocks are skewed and made to drift.
//!
//! Guarantees: time advances only in `run_for`/`run_until`/`step`; the same seed and the
//! same calls give the same deliveries at the same virtual times and the same end state
//! (`trace_hash` fingerprints every event in order). After every input the machines'
//! own `debug_assert!` invariants run, and the harness checks the cluster-wide one:
//! no two live nodes lead the same epoch (epoch ≥ 1; models without epochs report 0).
//! This is the engine of `schism sim`: clients drive it through `client`/`client_with`
//! and read `replies`, interleaving with `step` and `next_event_ns`.

use crate::clock::SkewClock;
use crate::machine::{Input, Machine, Output, ReadOpts, Reply, Role};
use crate::request::Request;
use crate::versioned::fnv;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};

/// Where virtual time starts by default, so that clocks can be skewed backwards.
pub const EPOCH_NS: u64 = 1_000_000_000_000;

/// Network and clock settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    pub seed: u64,
    pub nodes: usize,
    /// Each message is delayed uniformly in `[min_delay_ns, max_delay_ns]`.
    pub min_delay_ns: u64,
    pub max_delay_ns: u64,
    pub drop_probability: f64,
    pub duplicate_probability: f64,
    /// With this probability a message is held up by a further uniform
    /// `[0, tail_max_ns]` (a slow disk or a descheduled process: the long tail a
    /// uniform delay lacks). 0: no tail, and no random draw for it.
    pub tail_probability: f64,
    pub tail_max_ns: u64,
    /// Every live, running node gets `Input::Tick` at each multiple of this.
    pub tick_ns: u64,
    /// Virtual time at the start (every node's clock reads it, unskewed).
    pub start_ns: u64,
    /// Machines read their clock as the leader-follower process shell gives it: skewed
    /// time since the start, never decreasing (else the skewed clock itself, as the
    /// multi-leader and leaderless shells give their machines the skewed Unix time).
    pub monotonic_clock: bool,
    /// Fingerprint every event into `trace_hash` (formatting each input costs time; a
    /// caller that keeps its own record, like `schism sim`, turns it off).
    pub trace: bool,
    /// Buffered durability: records the model holds in memory reach the disk at the
    /// node's flush, every this often. `None`: each record is durable before the node
    /// acts on anything after it (fsync).
    pub flush_ns: Option<u64>,
}

impl SimConfig {
    /// Loopback-like defaults: up to 5 ms of delay, no loss, a tick every 10 ms.
    pub fn new(seed: u64, nodes: usize) -> SimConfig {
        SimConfig {
            seed,
            nodes,
            min_delay_ns: 0,
            max_delay_ns: 5_000_000,
            drop_probability: 0.0,
            duplicate_probability: 0.0,
            tail_probability: 0.0,
            tail_max_ns: 0,
            tick_ns: 10_000_000,
            start_ns: EPOCH_NS,
            monotonic_clock: false,
            trace: true,
            flush_ns: None,
        }
    }
}

/// A client reply as the harness saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimReply {
    pub node: usize,
    pub req: u64,
    /// Virtual time of the reply.
    pub at_ns: u64,
    pub reply: Reply,
}

type Build<M> = Box<dyn Fn(usize, <M as Machine>::Durable) -> M>;

/// An input waiting for a paused node: (sender, input).
type Held<M> = (Option<usize>, Input<<M as Machine>::Msg>);

struct Node<M: Machine> {
    machine: Option<M>,
    disk: M::Durable,
    clock: SkewClock,
    paused: bool,
    held: Vec<Held<M>>,
    /// Buffered durability: records not yet flushed, in order.
    buffer: Vec<M::Persist>,
    /// The flush timer fires at `flush_origin_ns + k · flush_ns`, k ≥ 1.
    flush_origin_ns: u64,
    /// The flush that will write `buffer` out (`None`: nothing waits).
    flush_due_ns: Option<u64>,
    paused_at_ns: u64,
}

/// A message in flight: (from, to, message).
type Flight<M> = (usize, usize, <M as Machine>::Msg);

/// A cluster of machines `n1..nN` on a simulated network.
pub struct Sim<M: Machine> {
    cfg: SimConfig,
    build: Build<M>,
    rng: ChaCha8Rng,
    now_ns: u64,
    next_tick_ns: u64,
    ids: Vec<String>,
    nodes: Vec<Node<M>>,
    /// (deliver at, enqueue order) → message.
    queue: BTreeMap<(u64, u64), Flight<M>>,
    enqueued: u64,
    /// Directed cuts (from, to).
    cuts: BTreeSet<(usize, usize)>,
    replies: Vec<SimReply>,
    trace: u64,
    out: Vec<Output<M::Msg, M::Persist>>,
}

impl<M: Machine> std::fmt::Debug for Sim<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("now_ns", &self.now_ns)
            .field("queued", &self.queue.len())
            .field("cuts", &self.cuts)
            .finish()
    }
}

impl<M: Machine> Sim<M> {
    /// `build(i, disk)` makes node i's machine from what its disk holds (the default,
    /// empty disk at the start).
    pub fn new(cfg: SimConfig, build: impl Fn(usize, M::Durable) -> M + 'static) -> Sim<M> {
        let ids = (1..=cfg.nodes).map(|i| format!("n{i}")).collect();
        let mut clock = SkewClock::default();
        clock
            .set(i128::from(cfg.start_ns), 0, 1.0)
            .expect("rate 1 is valid");
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let nodes = (0..cfg.nodes)
            .map(|i| Node {
                machine: Some(build(i, M::Durable::default())),
                disk: M::Durable::default(),
                clock,
                paused: false,
                held: Vec::new(),
                buffer: Vec::new(),
                flush_origin_ns: flush_origin(&mut rng, cfg.start_ns, cfg.flush_ns),
                flush_due_ns: None,
                paused_at_ns: cfg.start_ns,
            })
            .collect();
        Sim {
            rng,
            now_ns: cfg.start_ns,
            next_tick_ns: cfg.start_ns + cfg.tick_ns,
            build: Box::new(build),
            ids,
            nodes,
            queue: BTreeMap::new(),
            enqueued: 0,
            cuts: BTreeSet::new(),
            replies: Vec::new(),
            trace: 0xcbf2_9ce4_8422_2325,
            out: Vec::new(),
            cfg,
        }
    }

    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    /// Node names, `n1..nN`, by index.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// Node `node`'s machine, `None` while it is crashed.
    pub fn machine(&self, node: usize) -> Option<&M> {
        self.nodes[node].machine.as_ref()
    }

    /// What `node` has persisted (what a crash cannot lose).
    pub fn disk(&self, node: usize) -> &M::Durable {
        &self.nodes[node].disk
    }

    /// Records `node` holds in memory until its next flush (buffered durability).
    pub fn buffered(&self, node: usize) -> &[M::Persist] {
        &self.nodes[node].buffer
    }

    /// The disk itself, to damage it while the node is down (a torn tail).
    pub fn disk_mut(&mut self, node: usize) -> &mut M::Durable {
        self.mix(format!("disk {node} touched").as_bytes());
        &mut self.nodes[node].disk
    }

    pub fn replies(&self) -> &[SimReply] {
        &self.replies
    }

    /// Removes and returns the replies so far (a driver that consumes them as they come).
    pub fn take_replies(&mut self) -> Vec<SimReply> {
        std::mem::take(&mut self.replies)
    }

    /// Whether the node is stopped (SIGSTOP) now.
    pub fn is_paused(&self, node: usize) -> bool {
        self.nodes[node].paused
    }

    /// The node's status as its machine reports it at the clock it reads (`None`: crashed).
    pub fn status(&mut self, node: usize) -> Option<crate::machine::Status> {
        let now = self.machine_now(node);
        self.machine(node).map(|m| m.status(now))
    }

    /// The `now` node `node`'s machine is given (see `SimConfig::monotonic_clock`).
    fn machine_now(&mut self, node: usize) -> u64 {
        if self.cfg.monotonic_clock {
            let (real, origin) = (i128::from(self.now_ns), i128::from(self.cfg.start_ns));
            self.nodes[node].clock.machine_ns(real, origin)
        } else {
            self.clock_ns(node)
        }
    }

    /// The first reply to request `req`, if it came.
    pub fn reply(&self, req: u64) -> Option<&Reply> {
        self.replies.iter().find(|r| r.req == req).map(|r| &r.reply)
    }

    /// A fingerprint of every event so far, in order.
    pub fn trace_hash(&self) -> u64 {
        self.trace
    }

    pub fn set_drop_probability(&mut self, p: f64) {
        self.cfg.drop_probability = p;
    }

    pub fn set_duplicate_probability(&mut self, p: f64) {
        self.cfg.duplicate_probability = p;
    }

    /// From now on node `node`'s clock reads virtual time plus `offset_ns`, advancing
    /// `rate` times as fast (a bump, or a strobe/drift with `rate != 1`).
    pub fn set_clock(&mut self, node: usize, offset_ns: i64, rate: f64) -> Result<(), String> {
        let now = i128::from(self.now_ns);
        self.nodes[node]
            .clock
            .set(now, i128::from(offset_ns), rate)?;
        self.mix(format!("clock {node} {offset_ns} {rate}").as_bytes());
        Ok(())
    }

    /// `set_clock` at rate 1.
    pub fn set_clock_offset(&mut self, node: usize, offset_ns: i64) {
        self.set_clock(node, offset_ns, 1.0)
            .expect("rate 1 is valid");
    }

    /// What node `node`'s clock reads now.
    pub fn clock_ns(&self, node: usize) -> u64 {
        let t = self.nodes[node].clock.now_ns(i128::from(self.now_ns));
        t.clamp(0, i128::from(u64::MAX)) as u64
    }

    /// Drops what `from` sends to `to` (one direction).
    pub fn cut(&mut self, from: usize, to: usize) {
        self.cuts.insert((from, to));
        self.mix(format!("cut {from} {to}").as_bytes());
    }

    /// Cuts every link between nodes of different groups, both ways (replacing any cuts).
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

    /// Cuts every link between `node` and the others, both ways.
    pub fn isolate(&mut self, node: usize) {
        for other in (0..self.nodes.len()).filter(|o| *o != node) {
            self.cuts.insert((node, other));
            self.cuts.insert((other, node));
        }
        self.mix(format!("isolate {node}").as_bytes());
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.cuts.clear();
        self.mix(b"heal");
    }

    /// Submits a client request to `node` now (lost if the node is down; held while it
    /// is paused).
    pub fn client(&mut self, node: usize, req: u64, op: Request) {
        self.deliver(node, None, Input::Client { req, op });
    }

    /// A client request with read conditions.
    pub fn client_with(&mut self, node: usize, req: u64, op: Request, opts: ReadOpts) {
        self.deliver(node, None, Input::ClientWith { req, op, opts });
    }

    /// The node loses its memory (and whatever waited for it while paused); its disk
    /// stays. Messages to it are lost while it is down.
    pub fn crash(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        n.machine = None;
        n.paused = false;
        n.held.clear();
        n.buffer.clear();
        n.flush_due_ns = None;
        self.mix(format!("crash {node}").as_bytes());
    }

    /// Rebuilds the node from its disk, like a process restart.
    pub fn restart(&mut self, node: usize) {
        let disk = self.nodes[node].disk.clone();
        self.nodes[node].machine = Some((self.build)(node, disk));
        self.nodes[node].flush_origin_ns =
            flush_origin(&mut self.rng, self.now_ns, self.cfg.flush_ns);
        self.mix(format!("restart {node}").as_bytes());
    }

    /// Stops the node's process (SIGSTOP): no ticks, and its inputs wait.
    pub fn pause(&mut self, node: usize) {
        self.nodes[node].paused = true;
        self.nodes[node].paused_at_ns = self.now_ns;
        self.mix(format!("pause {node}").as_bytes());
    }

    /// Continues a paused node (SIGCONT): what waited is delivered now, in order.
    pub fn resume(&mut self, node: usize) {
        self.nodes[node].paused = false;
        self.mix(format!("resume {node}").as_bytes());
        if let Some(every) = self.cfg.flush_ns {
            let n = &mut self.nodes[node];
            if next_flush(n.flush_origin_ns, n.paused_at_ns, every) <= self.now_ns {
                n.flush_origin_ns = self.now_ns;
                self.flush(node);
            }
        }
        for (from, input) in std::mem::take(&mut self.nodes[node].held) {
            self.deliver(node, from, input);
        }
    }

    /// Live nodes whose status says they lead, with their epochs.
    pub fn leaders(&self) -> Vec<(usize, u64)> {
        (0..self.nodes.len())
            .filter_map(|i| self.machine(i).map(|m| (i, m.status(self.clock_ns(i)))))
            .filter(|(_, st)| st.role == Role::Leader)
            .map(|(i, st)| (i, st.epoch))
            .collect()
    }

    /// Advances virtual time by `duration_ns`, delivering messages and ticks as they fall due.
    pub fn run_for(&mut self, duration_ns: u64) {
        self.run_until(self.now_ns + duration_ns);
    }

    /// Delivers every event due at or before `end_ns`, then sets the time to `end_ns`.
    pub fn run_until(&mut self, end_ns: u64) {
        while self.next_event_ns() <= end_ns {
            self.step();
        }
        self.now_ns = self.now_ns.max(end_ns);
    }

    /// When the next message, tick or flush falls due.
    pub fn next_event_ns(&self) -> u64 {
        let next_msg = self.queue.keys().next().map_or(u64::MAX, |k| k.0);
        let next_flush = self.next_flush().map_or(u64::MAX, |(at, _)| at);
        next_msg.min(self.next_tick_ns).min(next_flush)
    }

    /// The earliest flush due on a running node: (when, node).
    fn next_flush(&self) -> Option<(u64, usize)> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| !n.paused)
            .filter_map(|(i, n)| n.flush_due_ns.map(|at| (at, i)))
            .min()
    }

    /// Delivers the next event (flushes, then ticks, then messages due at the same instant).
    pub fn step(&mut self) {
        if let Some((at, node)) = self.next_flush() {
            let next_msg = self.queue.keys().next().map_or(u64::MAX, |k| k.0);
            if at <= self.next_tick_ns && at <= next_msg {
                self.now_ns = at;
                self.flush(node);
                return;
            }
        }
        let next_msg = self.queue.keys().next().map(|k| k.0);
        if next_msg.is_none_or(|m| self.next_tick_ns <= m) {
            self.now_ns = self.next_tick_ns;
            self.next_tick_ns += self.cfg.tick_ns;
            for i in 0..self.nodes.len() {
                if !self.nodes[i].paused {
                    self.deliver(i, None, Input::Tick);
                }
            }
        } else if let Some(((at, _), (from, to, msg))) = self.queue.pop_first() {
            self.now_ns = at;
            if !self.cuts.contains(&(from, to)) {
                self.deliver(to, Some(from), Input::Peer(msg));
            }
        }
    }

    fn deliver(&mut self, node: usize, from: Option<usize>, input: Input<M::Msg>) {
        if self.nodes[node].machine.is_some() && self.nodes[node].paused {
            self.nodes[node].held.push((from, input));
            return;
        }
        if self.cfg.trace && !matches!(input, Input::Tick) {
            let event = format!("{} {node} {from:?} {input:?}", self.now_ns);
            self.mix(event.as_bytes());
        }
        let now = self.machine_now(node);
        let Some(machine) = self.nodes[node].machine.as_mut() else {
            return;
        };
        let mut out = std::mem::take(&mut self.out);
        machine.handle(now, input, &mut out);
        for o in out.drain(..) {
            match o {
                Output::Persist(record) => self.persist(node, &record),
                Output::Reply { req, reply } => self.replies.push(SimReply {
                    node,
                    req,
                    at_ns: self.now_ns,
                    reply,
                }),
                Output::Send { to, msg } => self.send(node, &to, msg),
            }
        }
        self.out = out;
        if cfg!(debug_assertions) {
            self.check_election_safety();
        }
    }

    /// Makes `record` durable now, or (buffered) as the model's log holds it until the
    /// node's next flush.
    fn persist(&mut self, node: usize, record: &M::Persist) {
        let n = &mut self.nodes[node];
        let Some(every) = self.cfg.flush_ns else {
            M::persist(&mut n.disk, record);
            return;
        };
        M::persist_buffered(&mut n.disk, &mut n.buffer, record);
        if n.buffer.is_empty() {
            n.flush_due_ns = None;
        } else if n.flush_due_ns.is_none() {
            n.flush_due_ns = Some(next_flush(n.flush_origin_ns, self.now_ns, every));
        }
    }

    /// The node's flush: what its memory held reaches its disk.
    fn flush(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        n.flush_due_ns = None;
        for record in n.buffer.drain(..) {
            M::persist(&mut n.disk, &record);
        }
        self.mix(format!("flush {node}").as_bytes());
    }

    /// No two live nodes lead the same epoch (epoch 0: a model without leaders).
    fn check_election_safety(&self) {
        let mut leaders = self.leaders();
        leaders.retain(|(_, epoch)| *epoch > 0);
        leaders.sort_by_key(|(_, epoch)| *epoch);
        for w in leaders.windows(2) {
            debug_assert!(
                w[0].1 != w[1].1,
                "n{} and n{} both lead epoch {}",
                w[0].0 + 1,
                w[1].0 + 1,
                w[0].1
            );
        }
    }

    fn send(&mut self, from: usize, to: &str, msg: M::Msg) {
        let Some(to) = self.ids.iter().position(|id| id == to) else {
            return;
        };
        if self.cuts.contains(&(from, to)) || self.rng.random_bool(self.cfg.drop_probability) {
            return;
        }
        let copies = if self.rng.random_bool(self.cfg.duplicate_probability) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut delay = self
                .rng
                .random_range(self.cfg.min_delay_ns..=self.cfg.max_delay_ns);
            if self.cfg.tail_probability > 0.0 && self.rng.random_bool(self.cfg.tail_probability) {
                delay += self.rng.random_range(0..=self.cfg.tail_max_ns);
            }
            self.enqueued += 1;
            self.queue.insert(
                (self.now_ns + delay, self.enqueued),
                (from, to, msg.clone()),
            );
        }
    }

    fn mix(&mut self, event: &[u8]) {
        if self.cfg.trace {
            self.trace = fnv(self.trace, event);
        }
    }
}

/// The first firing after `t` of a timer that fires every `every_ns` from `origin_ns`.
fn next_flush(origin_ns: u64, t: u64, every_ns: u64) -> u64 {
    let every_ns = every_ns.max(1);
    origin_ns + (t.saturating_sub(origin_ns) / every_ns + 1) * every_ns
}

/// When a flush timer started at `now_ns` counts from: `now_ns` less a phase drawn in
/// `[0, every_ns)` (no draw without buffered durability, so other runs keep their stream).
fn flush_origin(rng: &mut ChaCha8Rng, now_ns: u64, flush_ns: Option<u64>) -> u64 {
    match flush_ns {
        Some(every_ns) if every_ns > 1 => now_ns.saturating_sub(rng.random_range(0..every_ns)),
        _ => now_ns,
    }
}
