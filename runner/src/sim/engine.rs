//! The simulated run: a reference cluster of sans-IO machines under the deterministic
//! harness (`schism_replication::sim`), simulated clients that route like the real one
//! (`schism_targets::routing::Router`), the seeded workload generator and the seeded
//! nemesis schedule, all on one virtual clock in one thread.
//!
//! What each piece stands for: a client request travels to its node and back through
//! the simulated network (its own delay range, never lost: the real runner's client
//! traffic is never dropped by a partition either); a
//! request to a killed node is refused at once (`fail`), one a killed node had already
//! received is reset (`info` for a write); a request that gets no answer within
//! `--client-timeout` is abandoned as the HTTP client abandons it; a paused node holds
//! what it receives. The nemesis applies each planned change as the real mechanism
//! orders it (kills, restarts from the node's persisted state — under buffered durability
//! what its last flush wrote, `--durability buffered` —, resumes, clocks of running
//! nodes, link cuts, pauses) and records it with the real records. The leader-follower
//! lag is sampled every 100 ms from the nodes' statuses, as the real probe does.
//!
//! Guarantees: no socket, thread, file or clock: time is the harness's; randomness comes
//! from the seed alone (the harness's network stream, the clients' delay stream, each
//! session's router, the generator, the schedule), and events at the same instant are
//! taken in a fixed order, so the same setup gives the same ops, byte for byte.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use schism_history::{F, Op, OpType};
use schism_nemesis::{Change, FaultState, Next as NemNext, Planned, Schedule, record};
use schism_replication::sim::{Sim, SimConfig};
use schism_replication::{Machine, ReadOpts, Reply as MachineReply};
use schism_targets::reference::leader_follower::LeaderFollower;
use schism_targets::reference::leaderless::Leaderless;
use schism_targets::reference::multi_leader::MultiLeader;
use schism_targets::reference::node::{Dump, KvReply};
use schism_targets::reference::{
    leader_follower_machine, leaderless_machine, multi_leader_machine,
};
use schism_targets::routing::{
    AfterRead, Conditions, Outcome as RouteOutcome, Router, Rules, Seen,
};
use schism_targets::{Durability, Model, NodeConfig, Reply, Request, Role};
use schism_workloads::{Generator, Invocation, Next};
use std::collections::BTreeMap;

const MS: u64 = 1_000_000;
/// How often the lag is sampled (the real sampler's period).
const LAG_PERIOD_NS: u64 = 100 * MS;
/// A `/status` request of the leader search gives up after this (the real client's cap).
const STATUS_TIMEOUT_NS: u64 = 150 * MS;
/// After the workload: dumps are retried this long until the replicas agree, this often.
const SETTLE_NS: u64 = 3_000 * MS;
const SETTLE_STEP_NS: u64 = 300 * MS;

/// The simulated network: between nodes, and between the clients and the nodes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NetKnobs {
    /// Each node-to-node message is delayed uniformly in `[min_delay_ns, max_delay_ns]`.
    pub min_delay_ns: u64,
    pub max_delay_ns: u64,
    /// Each client request and answer is delayed uniformly in this range.
    pub client_min_delay_ns: u64,
    pub client_max_delay_ns: u64,
    /// Node-to-node messages lost / delivered twice, each independently.
    pub loss: f64,
    pub duplicate: f64,
    /// With this probability a node-to-node message is held up by a further uniform
    /// `[0, tail_max_ns]`.
    pub tail: f64,
    pub tail_max_ns: u64,
}

/// Everything a simulated run needs, derived from the flags and the seed.
#[derive(Debug)]
pub struct Setup {
    pub seed: u64,
    pub model: Model,
    /// One per node, `n1..nN`, exactly as the real cluster would write them.
    pub configs: Vec<NodeConfig>,
    pub rules: Rules,
    pub concurrency: u64,
    pub client_timeout_ns: u64,
    pub generator: Generator,
    pub schedule: Schedule,
    pub net: NetKnobs,
    /// Sample the leader-follower lag into `lag.jsonl`.
    pub lag: bool,
    /// The run's hard deadline after its start (the real runner's).
    pub deadline_ns: u64,
    /// A failed final read is tried again until this time after the start (the real
    /// runner's rule).
    pub final_retry_until_ns: u64,
}

/// What a simulated run leaves.
#[derive(Debug)]
pub struct Outcome {
    /// The history, indexed and timed (nanoseconds since the start) in order.
    pub ops: Vec<Op>,
    /// Every live node's state dump after the final heal and the settling window.
    pub dumps: BTreeMap<String, Dump>,
    /// `lag.jsonl`'s bytes (empty: no lag sampled).
    pub lag: Vec<u8>,
    /// Simulated nanoseconds from the start to the last op.
    pub simulated_ns: u64,
    /// The workload did not end before the hard deadline (open ops stay open).
    pub deadline_exceeded: bool,
}

/// Runs one simulated test.
pub fn run(setup: Setup) -> Result<Outcome, String> {
    let configs = setup.configs.clone();
    match setup.model {
        Model::LeaderFollower => {
            let sim = harness(&setup, true, move |i, disk| {
                leader_follower_machine(&configs[i], disk)
            });
            Driver::<LeaderFollower>::new(sim, setup).run()
        }
        Model::MultiLeader => {
            let sim = harness(&setup, false, move |i, disk| {
                multi_leader_machine(&configs[i], disk)
            });
            Driver::<MultiLeader>::new(sim, setup).run()
        }
        Model::Leaderless => {
            let sim = harness(&setup, false, move |i, disk| {
                leaderless_machine(&configs[i], disk)
            });
            Driver::<Leaderless>::new(sim, setup).run()
        }
    }
}

/// The harness for `setup`: its network knobs, the shell's tick, the model's clock.
fn harness<M: Machine>(
    setup: &Setup,
    monotonic_clock: bool,
    build: impl Fn(usize, M::Durable) -> M + 'static,
) -> Sim<M> {
    let tick_ms = setup.configs.first().map_or(20, |c| c.tick_ms);
    // Buffered durability: the shell's flush timer (`Durability` and `flush_ms` as the
    // node config gives them; each model's log decides what waits for it).
    let flush_ns = setup
        .configs
        .first()
        .filter(|c| c.durability == Durability::Buffered)
        .map(|c| c.flush_ms.max(1) * MS);
    let cfg = SimConfig {
        min_delay_ns: setup.net.min_delay_ns,
        max_delay_ns: setup.net.max_delay_ns,
        drop_probability: setup.net.loss,
        duplicate_probability: setup.net.duplicate,
        tail_probability: setup.net.tail,
        tail_max_ns: setup.net.tail_max_ns,
        tick_ns: tick_ms * MS,
        monotonic_clock,
        trace: false,
        flush_ns,
        ..SimConfig::new(setup.seed, setup.configs.len())
    };
    Sim::new(cfg, build)
}

/// How a client's request ended, before it is turned into a `Reply`.
#[derive(Debug, Clone)]
enum Answer {
    /// The node's machine answered (at `time_ms` on the node's clock).
    Node { reply: MachineReply, time_ms: i64 },
    /// The node was down when the request arrived: nothing was sent.
    Refused,
    /// The node died holding the request.
    Reset,
    /// No answer within the client timeout.
    TimedOut,
}

#[derive(Debug, Clone)]
enum Ev {
    /// A worker asks the generator for its next op.
    Wake(usize),
    /// A worker's request (after any leader search) is routed and sent.
    Send(usize),
    /// A request reaches its node (what it asks travels with it: a request the client
    /// gave up on still arrives, and the node still acts on it).
    Arrive(u64, usize, Request, ReadOpts),
    /// A request's answer reaches its client.
    Back(u64, Answer),
    Timeout(u64),
    Nemesis,
    Lag,
}

/// A worker's op in progress.
#[derive(Debug)]
struct Open {
    /// The invoke, copied: the completion is built from it.
    template: Op,
    request: Request,
    is_read: bool,
    /// Where the current attempt went, with which conditions, and whether it is the
    /// read-your-writes retry.
    node: usize,
    cond: Conditions,
    retry: bool,
    /// A final read's invocation, tried again if it does not succeed.
    final_read: Option<Invocation>,
}

#[derive(Debug)]
struct Worker {
    process: u64,
    router: Router,
    /// Ask who leads before the next request, at the latest at this virtual time.
    refresh_at: Option<u64>,
    open: Option<Open>,
    /// A final read that failed, to be tried again at the next wake.
    final_retry: Option<Invocation>,
    done: bool,
}

/// A request on the wire.
#[derive(Debug)]
struct Pending {
    worker: usize,
    node: usize,
    /// It reached the node (which may answer, or die holding it).
    delivered: bool,
    /// Its answer is on its way back.
    answered: bool,
}

struct Driver<M: Machine> {
    sim: Sim<M>,
    ids: Vec<String>,
    start_ns: u64,
    /// The clients' network (delays of requests and answers).
    rng: ChaCha8Rng,
    net: NetKnobs,
    rules: Rules,
    concurrency: u64,
    timeout_ns: u64,
    deadline_ns: u64,
    final_retry_until_ns: u64,
    generator: Generator,
    schedule: Schedule,
    queue: BTreeMap<(u64, u64), Ev>,
    seq: u64,
    workers: Vec<Worker>,
    pending: BTreeMap<u64, Pending>,
    next_req: u64,
    ops: Vec<Op>,
    fault: FaultState,
    last_was_heal: bool,
    nemesis_done: bool,
    lag: Option<(Vec<u8>, crate::lag::Seen)>,
}

impl<M: Machine> Driver<M> {
    fn new(sim: Sim<M>, setup: Setup) -> Driver<M> {
        let start_ns = sim.now_ns();
        let workers = (0..setup.concurrency)
            .map(|w| Worker {
                process: w,
                // The k-th session is bound to node k mod n, as the real client deals them.
                router: Router::new(
                    crate::run::worker_seed(setup.seed, w),
                    w as usize % setup.rules.nodes,
                ),
                refresh_at: None,
                open: None,
                final_retry: None,
                done: false,
            })
            .collect();
        let lag = setup.lag.then(|| {
            let header = serde_json::json!({
                "method": "each node's /status: the leader's last LSN minus the node's applied LSN (entries)",
                "period_ms": LAG_PERIOD_NS / MS,
            });
            (format!("{header}\n").into_bytes(), crate::lag::Seen::default())
        });
        Driver {
            ids: sim.ids().to_vec(),
            sim,
            start_ns,
            rng: ChaCha8Rng::seed_from_u64(setup.seed ^ 0x5eed_c11e_0000_0001),
            net: setup.net,
            rules: setup.rules,
            concurrency: setup.concurrency,
            timeout_ns: setup.client_timeout_ns,
            deadline_ns: setup.deadline_ns,
            final_retry_until_ns: setup.final_retry_until_ns,
            generator: setup.generator,
            schedule: setup.schedule,
            queue: BTreeMap::new(),
            seq: 0,
            workers,
            pending: BTreeMap::new(),
            next_req: 0,
            ops: Vec::new(),
            fault: FaultState::default(),
            last_was_heal: true,
            nemesis_done: false,
            lag,
        }
    }

    fn now(&self) -> u64 {
        self.sim.now_ns()
    }

    fn at(&mut self, t: u64, ev: Ev) {
        self.seq += 1;
        self.queue.insert((t, self.seq), ev);
    }

    /// One client-to-node (or node-to-client) message's delay.
    fn delay(&mut self) -> u64 {
        self.rng
            .random_range(self.net.client_min_delay_ns..=self.net.client_max_delay_ns)
    }

    fn record(&mut self, mut op: Op) {
        op.set_index(self.ops.len() as u64);
        op.time_ns = self.now() - self.start_ns;
        self.ops.push(op);
    }

    fn run(mut self) -> Result<Outcome, String> {
        let t0 = self.now();
        for w in 0..self.workers.len() {
            self.at(t0, Ev::Wake(w));
        }
        self.at(t0, Ev::Nemesis);
        if self.lag.is_some() {
            self.at(t0, Ev::Lag);
        }
        let deadline = t0 + self.deadline_ns;
        let mut deadline_exceeded = false;
        while !(self.workers.iter().all(|w| w.done) && self.nemesis_done) {
            let mine = self.queue.keys().next().map_or(u64::MAX, |k| k.0);
            let theirs = self.sim.next_event_ns();
            if mine.min(theirs) > deadline {
                deadline_exceeded = true;
                break;
            }
            if theirs < mine {
                self.sim.step();
                self.collect_replies();
                continue;
            }
            let Some(((t, _), ev)) = self.queue.pop_first() else {
                break;
            };
            self.sim.run_until(t);
            self.collect_replies();
            self.handle(ev)?;
        }
        let simulated_ns = self.ops.last().map_or(0, |o| o.time_ns);
        let dumps = self.settle();
        Ok(Outcome {
            ops: self.ops,
            dumps,
            lag: self.lag.map(|(bytes, _)| bytes).unwrap_or_default(),
            simulated_ns,
            deadline_exceeded,
        })
    }

    fn handle(&mut self, ev: Ev) -> Result<(), String> {
        match ev {
            Ev::Wake(w) => self.wake(w)?,
            Ev::Send(w) => {
                let is_write = self.workers[w].open.as_ref().is_some_and(|o| !o.is_read);
                let (node, cond) = self.workers[w].router.route(&self.rules, is_write);
                self.send(w, node, cond, false);
            }
            Ev::Arrive(req, node, op, opts) => self.arrive(req, node, op, opts),
            Ev::Back(req, answer) => self.back(req, answer),
            Ev::Timeout(req) => {
                if self.pending.get(&req).is_some_and(|p| !p.answered) {
                    self.back(req, Answer::TimedOut);
                }
            }
            Ev::Nemesis => self.nemesis()?,
            Ev::Lag => self.sample_lag(),
        }
        Ok(())
    }

    /// The worker's next op from the shared generator (or a wait, or its end).
    fn wake(&mut self, w: usize) -> Result<(), String> {
        if self.workers[w].done || self.workers[w].open.is_some() {
            return Ok(());
        }
        let now = self.now();
        let next = match self.workers[w].final_retry.take() {
            Some(inv) => Next::Op(inv),
            None => self.generator.next(now - self.start_ns),
        };
        let inv = match next {
            Next::Done => {
                self.workers[w].done = true;
                if self.workers.iter().all(|w| w.done) {
                    self.finish_nemesis()?;
                }
                return Ok(());
            }
            Next::Pending { until_ns } => {
                self.at(self.start_ns + until_ns, Ev::Wake(w));
                return Ok(());
            }
            Next::Op(inv) => inv,
        };
        let request = crate::run::request_of(&inv).map_err(|e| e.to_string())?;
        let (invoke, template) = crate::run::invoke_op(self.workers[w].process, &inv);
        self.record(invoke);
        self.workers[w].open = Some(Open {
            template,
            request,
            is_read: inv.f == F::Read,
            node: 0,
            cond: Conditions::default(),
            retry: false,
            final_read: inv.is_final.then(|| inv.clone()),
        });
        // Leader discovery first, when due, as the real client asks `/status` first.
        let due = self.workers[w].refresh_at.is_none_or(|t| now >= t);
        if self.rules.discover_leader && due {
            let took = self.refresh(w);
            self.at(now + took, Ev::Send(w));
        } else {
            self.handle(Ev::Send(w))?;
        }
        Ok(())
    }

    /// The leader search: every node's `/status` (a paused node times out, a down one
    /// refuses), then the router's pick. Returns how long it took.
    fn refresh(&mut self, w: usize) -> u64 {
        let mut answers = Vec::with_capacity(self.ids.len());
        let mut took = 0;
        for i in 0..self.ids.len() {
            if self.sim.is_paused(i) {
                took = took.max(STATUS_TIMEOUT_NS.min(self.timeout_ns));
                answers.push(None);
                continue;
            }
            let rtt = self.delay() + self.delay();
            let seen = self.sim.status(i).map(|st| Seen {
                leads: st.role == Role::Leader,
                epoch: st.epoch,
                names: st
                    .leader
                    .as_ref()
                    .and_then(|l| self.ids.iter().position(|id| id == l)),
            });
            if seen.is_some() {
                took = took.max(rtt);
            }
            answers.push(seen);
        }
        let jitter_ms = self.workers[w].router.follow(&answers);
        self.workers[w].refresh_at = Some(self.now() + took + jitter_ms * MS);
        took
    }

    /// One attempt of the worker's request to `node`.
    fn send(&mut self, w: usize, node: usize, cond: Conditions, retry: bool) {
        if let Some(open) = self.workers[w].open.as_mut() {
            open.node = node;
            open.cond = cond;
            open.retry = retry;
        }
        let req = self.next_req;
        self.next_req += 1;
        self.pending.insert(
            req,
            Pending {
                worker: w,
                node,
                delivered: false,
                answered: false,
            },
        );
        let Some(op) = self.workers[w].open.as_ref().map(|o| o.request) else {
            return;
        };
        let opts = ReadOpts {
            min_lsn: cond.min_lsn,
            leader_only: cond.leader_only,
        };
        let now = self.now();
        let d = self.delay();
        self.at(now + d, Ev::Arrive(req, node, op, opts));
        self.at(now + self.timeout_ns, Ev::Timeout(req));
    }

    fn arrive(&mut self, req: u64, node: usize, op: Request, opts: ReadOpts) {
        if self.sim.machine(node).is_none() {
            // Nothing was sent on a connection that never opened.
            if let Some(p) = self.pending.get_mut(&req).filter(|p| !p.answered) {
                p.answered = true;
                let d = self.delay();
                self.at(self.now() + d, Ev::Back(req, Answer::Refused));
            }
            return;
        }
        if let Some(p) = self.pending.get_mut(&req) {
            p.delivered = true;
        }
        self.sim.client_with(node, req, op, opts);
        self.collect_replies();
    }

    /// Sends every answer the machines gave back towards its client.
    fn collect_replies(&mut self) {
        for r in self.sim.take_replies() {
            let Some(p) = self.pending.get_mut(&r.req) else {
                continue;
            };
            if p.answered {
                continue;
            }
            p.answered = true;
            let time_ms = (self.sim.clock_ns(r.node) / MS) as i64;
            let d = self.delay();
            self.at(
                r.at_ns + d,
                Ev::Back(
                    r.req,
                    Answer::Node {
                        reply: r.reply,
                        time_ms,
                    },
                ),
            );
        }
    }

    /// An answer reaches its client: the routing rules decide what follows.
    fn back(&mut self, req: u64, answer: Answer) {
        let Some(p) = self.pending.remove(&req) else {
            return;
        };
        let w = p.worker;
        let Some(open) = self.workers[w].open.as_ref() else {
            return;
        };
        let (reply, hint) = self.client_reply(p.node, !open.is_read, answer);
        let outcome = RouteOutcome {
            ok: matches!(reply, Reply::Ok { .. }),
            lsn: meta_u64(&reply, "lsn"),
            applied: meta_u64(&reply, "applied"),
            hint: hint.and_then(|h| self.ids.iter().position(|id| *id == h)),
        };
        let (is_read, node, cond, retry) = (open.is_read, open.node, open.cond, open.retry);
        let rules = self.rules;
        let router = &mut self.workers[w].router;
        let refresh_now = if !is_read {
            router.after_write(&rules, &outcome)
        } else if retry {
            router.after_final_read(&outcome);
            false
        } else {
            match router.after_read(&rules, node, cond, &outcome) {
                AfterRead::Done { refresh_now } => refresh_now,
                AfterRead::Retry(node, cond) => {
                    self.send(w, node, cond, true);
                    return;
                }
            }
        };
        if refresh_now {
            self.workers[w].refresh_at = Some(self.now());
        }
        self.complete(w, reply);
    }

    /// The client's `Reply` for an answer, and the leader a refusal named: what the node
    /// shell renders and the HTTP client reads back (leader-follower answers an unknown
    /// outcome in the body, the other models with HTTP 503).
    fn client_reply(&self, node: usize, is_write: bool, answer: Answer) -> (Reply, Option<String>) {
        let id = self.ids[node].clone();
        let uncertain = |error: String| Reply::uncertain(true, is_write, Some(id.clone()), error);
        match answer {
            Answer::Node { reply, time_ms } => match reply {
                MachineReply::Ok {
                    value,
                    siblings,
                    lsn,
                    applied_lsn,
                } => {
                    let mut meta = serde_json::Map::new();
                    if let Some(lsn) = lsn {
                        meta.insert("lsn".into(), lsn.into());
                    } else if let Some(applied) = applied_lsn {
                        meta.insert("applied".into(), applied.into());
                    }
                    meta.insert("time_ms".into(), time_ms.into());
                    let ok = Reply::Ok {
                        value,
                        node: id,
                        meta: Some(serde_json::Value::Object(meta)),
                        siblings,
                    };
                    (ok, None)
                }
                MachineReply::Fail { error, leader } => (
                    Reply::Fail {
                        node: Some(id),
                        error,
                    },
                    leader,
                ),
                MachineReply::Unknown { error } if self.rules.write_any => {
                    let body = KvReply {
                        ok: false,
                        node: id.clone(),
                        value: schism_history::Value::Null,
                        lsn: None,
                        applied: None,
                        error: Some(error),
                        leader: None,
                        unknown: false,
                        time_ms: Some(time_ms),
                        siblings: None,
                    };
                    let text = serde_json::to_string(&body).unwrap_or_default();
                    (
                        uncertain(format!("HTTP 503 Service Unavailable: {text}")),
                        None,
                    )
                }
                MachineReply::Unknown { error } => (
                    Reply::Unknown {
                        node: Some(id),
                        error,
                    },
                    None,
                ),
            },
            Answer::Refused => (
                Reply::Fail {
                    node: Some(id.clone()),
                    error: format!("connection refused: {id} is down"),
                },
                None,
            ),
            Answer::Reset => (
                uncertain(format!("connection reset: {id} was killed")),
                None,
            ),
            Answer::TimedOut => (
                uncertain(format!(
                    "operation timed out after {} ms",
                    self.timeout_ns / MS
                )),
                None,
            ),
        }
    }

    /// Records the op's completion; the worker goes on (as a new process after `info`).
    fn complete(&mut self, w: usize, reply: Reply) {
        let Some(open) = self.workers[w].open.take() else {
            return;
        };
        let mut done = open.template;
        crate::run::complete(&mut done, open.is_read, reply);
        let kind = done.kind;
        self.record(done);
        if kind == OpType::Info {
            self.workers[w].process += self.concurrency;
        }
        let now = self.now();
        let retry_final = open
            .final_read
            .filter(|_| kind != OpType::Ok && now - self.start_ns < self.final_retry_until_ns);
        let wake_at = match retry_final {
            Some(inv) => {
                self.workers[w].final_retry = Some(inv);
                now + crate::plan::FINAL_READ_BACKOFF.as_nanos() as u64
            }
            None => now,
        };
        self.at(wake_at, Ev::Wake(w));
    }

    /// The schedule's next changes, as the real nemesis loop follows it.
    fn nemesis(&mut self) -> Result<(), String> {
        if self.nemesis_done {
            return Ok(());
        }
        loop {
            match self.schedule.next(self.now() - self.start_ns) {
                NemNext::Done => return self.finish_nemesis(),
                NemNext::Pending { until_ns } => {
                    self.at(self.start_ns + until_ns, Ev::Nemesis);
                    return Ok(());
                }
                NemNext::Change(p) => {
                    self.apply_and_record(&p)?;
                    self.last_was_heal = matches!(p.change, Change::Heal);
                }
            }
        }
    }

    /// The nemesis stops: a final recorded heal unless the last change was one.
    fn finish_nemesis(&mut self) -> Result<(), String> {
        if self.nemesis_done {
            return Ok(());
        }
        self.nemesis_done = true;
        if !self.fault.is_healed() || !self.last_was_heal {
            let heal = Planned {
                at_ns: self.now() - self.start_ns,
                change: Change::Heal,
                final_heal: true,
            };
            self.apply_and_record(&heal)?;
        }
        Ok(())
    }

    /// One planned change: resolved against the leader the running nodes name, applied,
    /// and recorded as the real nemesis records it (`invoke`, then `info` with the state).
    fn apply_and_record(&mut self, planned: &Planned) -> Result<(), String> {
        let event = record::event(&planned.change);
        self.record(record::op(
            OpType::Invoke,
            event,
            record::invoke_value(planned),
        ));
        let (next, leader) = match &planned.change {
            Change::Heal => (Ok(FaultState::default()), None),
            Change::Fault(fault) => {
                let leader = fault.needs_leader().then(|| self.leader());
                let next = schism_nemesis::fault::resolve(
                    fault,
                    &self.ids,
                    leader.as_deref(),
                    &self.fault,
                );
                (next, leader)
            }
        };
        let info = match next.and_then(|state| {
            self.fault = state.clone();
            self.apply(&state).map(|()| state)
        }) {
            Ok(state) => {
                let applied = schism_nemesis::Applied { state, leader };
                let value =
                    record::info_value(planned, &applied, &[("net", serde_json::json!("sim"))]);
                record::op(OpType::Info, event, value)
            }
            Err(e) => {
                let mut info = record::op(OpType::Info, event, record::invoke_value(planned));
                info.set_error(Some(e));
                info
            }
        };
        self.record(info);
        Ok(())
    }

    /// The leader most running, unpaused nodes name, else the one the cluster started with.
    fn leader(&mut self) -> String {
        let mut votes: BTreeMap<String, usize> = BTreeMap::new();
        for i in 0..self.ids.len() {
            if self.sim.is_paused(i) {
                continue;
            }
            if let Some(l) = self.sim.status(i).and_then(|st| st.leader) {
                *votes.entry(l).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .max_by_key(|(_, v)| *v)
            .map(|(l, _)| l)
            .unwrap_or_else(|| self.ids[self.rules.initial_leader].clone())
    }

    /// Makes `state` hold, in the real mechanism's order.
    fn apply(&mut self, state: &FaultState) -> Result<(), String> {
        let n = self.ids.len();
        let mut first: Option<String> = None;
        // 1. Kills; what the node held is reset.
        for i in 0..n {
            if state.killed.contains(&self.ids[i]) && self.sim.machine(i).is_some() {
                self.sim.crash(i);
                self.reset_requests_at(i);
            }
        }
        // 2. Restarts from what the disk holds.
        for i in 0..n {
            if !state.killed.contains(&self.ids[i]) && self.sim.machine(i).is_none() {
                self.sim.restart(i);
            }
        }
        // 3. Resumes.
        for i in 0..n {
            if !state.paused.contains(&self.ids[i]) && self.sim.is_paused(i) {
                self.sim.resume(i);
                self.collect_replies();
            }
        }
        // 4. Clocks of the nodes that can answer (each set anew from now, as the admin
        //    API does), then the link cuts (receiver, sender).
        for i in 0..n {
            if self.sim.machine(i).is_none() || self.sim.is_paused(i) {
                continue;
            }
            let c = state.clock(&self.ids[i]);
            if let Err(e) = self
                .sim
                .set_clock(i, c.offset_ms.saturating_mul(MS as i64), c.rate)
            {
                first.get_or_insert(format!("clock of {}: {e}", self.ids[i]));
            }
        }
        self.sim.heal();
        for (receiver, sender) in &state.cuts {
            let (Some(r), Some(s)) = (
                self.ids.iter().position(|id| id == receiver),
                self.ids.iter().position(|id| id == sender),
            ) else {
                continue;
            };
            self.sim.cut(s, r);
        }
        // 5. Pauses last.
        for i in 0..n {
            if state.paused.contains(&self.ids[i])
                && self.sim.machine(i).is_some()
                && !self.sim.is_paused(i)
            {
                self.sim.pause(i);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// A killed node's received, unanswered requests: their connections reset.
    fn reset_requests_at(&mut self, node: usize) {
        let now = self.now();
        let reset: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.node == node && p.delivered && !p.answered)
            .map(|(req, _)| *req)
            .collect();
        for req in reset {
            if let Some(p) = self.pending.get_mut(&req) {
                p.answered = true;
            }
            let d = self.delay();
            self.at(now + d, Ev::Back(req, Answer::Reset));
        }
    }

    /// One lag sample (leader-follower): the statuses of the nodes that answer.
    fn sample_lag(&mut self) {
        if self.workers.iter().all(|w| w.done) {
            return;
        }
        let mut answers = Vec::new();
        for i in 0..self.ids.len() {
            if self.sim.is_paused(i) {
                continue;
            }
            if let Some(st) = self.sim.status(i) {
                answers.push((self.ids[i].clone(), st));
            }
        }
        let readings = schism_targets::lag::readings(&answers);
        let t_ms = (self.now() - self.start_ns) as f64 / 1e6;
        if let Some((bytes, seen)) = self.lag.as_mut() {
            // Writing into memory cannot fail.
            let _ = crate::lag::write_readings(bytes, seen, t_ms, &readings);
        }
        let next = self.now() + LAG_PERIOD_NS;
        self.at(next, Ev::Lag);
    }

    /// After the workload: every live node's dump, retried until the replicas agree or
    /// the settling window ends (the real runner's rule).
    fn settle(&mut self) -> BTreeMap<String, Dump> {
        let until = self.now() + SETTLE_NS;
        loop {
            let dumps = self.dumps();
            let states = dumps
                .iter()
                .map(|(id, d)| (id.clone(), crate::models::replica_state(d)))
                .collect();
            let converged = schism_checker::check_convergence(&states, 1)
                .anomalies
                .is_empty();
            if converged || self.now() >= until {
                return dumps;
            }
            self.sim.run_for(SETTLE_STEP_NS);
            self.sim.take_replies();
        }
    }

    fn dumps(&mut self) -> BTreeMap<String, Dump> {
        let mut out = BTreeMap::new();
        for i in 0..self.ids.len() {
            if self.sim.is_paused(i) {
                continue;
            }
            let Some(status) = self.sim.status(i) else {
                continue;
            };
            let Some(d) = self.sim.machine(i).map(|m| m.dump()) else {
                continue;
            };
            out.insert(
                self.ids[i].clone(),
                Dump {
                    status,
                    state: d.state,
                    drop_from: Default::default(),
                    drop_to: Default::default(),
                    siblings: d.siblings,
                    owners: d.owners,
                    extra: d.extra,
                },
            );
        }
        out
    }
}

fn meta_u64(reply: &Reply, field: &str) -> u64 {
    match reply {
        Reply::Ok { meta: Some(m), .. } => m.get(field).and_then(|v| v.as_u64()).unwrap_or(0),
        _ => 0,
    }
}
