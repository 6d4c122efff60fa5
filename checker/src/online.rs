//! Incremental checkers: fed one recorded op at a time (invokes and completions, in
//! history order), they claim an anomaly as soon as the ops seen so far prove it, so a
//! run can show it (and stop) while it goes. Pure: no I/O, no clock; time is the ops'
//! own `time_ns` and order is their position in the feed.
//!
//! **What is claimed online**, with the definitions and kind names of `perop` (the
//! offline `graph` checker's per-op kinds, `counts`' vocabulary):
//! - register keys (unique written values): stale reads, monotonic reads and
//!   read-your-writes. Each is decided when the read completes: every write it could have
//!   missed completed before it began, so the claim is exactly the offline finding (a read
//!   of a write still open proves nothing yet, as offline: it may fail, or complete after
//!   the read began).
//! - append keys: stale reads (the read is a prefix of the key's longest read so far and
//!   an append placed at or beyond its length by that read was acknowledged before it
//!   began — decided when the read completes, or later when a read first places such an
//!   append), and the four session kinds per process and key (monotonic reads,
//!   read-your-writes, monotonic writes, writes-follow-reads), taken in each process's
//!   order once the positions of its appends are known.
//!
//! **What waits for the end**: lost writes (an append no read ever returns — a read still
//! to come may return it), stale reads that rest on an append no read has returned yet
//! (`Unseen::Lagging` offline), divergence, phantom, aborted and duplicate reads, and the
//! dependency cycles: the offline check counts them.
//!
//! Guarantees. A claim is the offline check's finding of the same kind at the same op
//! whenever the finished history keeps what the prefix showed: a register key with unique
//! values, an append key whose final longest read extends the longest read seen so far.
//! When a later read of an append key contradicts the order seen so far, the offline check
//! reports that key's divergence instead, and no further claim is made on the key; a
//! duplicate register value, a mixed workload or a malformed op stops all claims
//! (`stopped`). Every decision uses facts that no later op can change (completed ops,
//! positions in an order that only grows), and a session state that is a subset of the
//! offline one, which can only make fewer claims. At most one claim per kind and op.
//!
//! Bounded: state per live key and per (process, key); a key without ops for
//! `Limits::retire_idle_ops` positions, or beyond `Limits::max_live_keys`, is dropped (ops
//! on it later start afresh, which can only claim less); per key at most
//! `max_versions_per_key` versions (past it the key is no longer checked online),
//! `max_pending_reads_per_key` reads awaiting an append's position and
//! `max_session_queue` session events awaiting one (the oldest are given up).

use crate::RegisterOptions;
use crate::Workload;
use crate::explain::{list, secs};
use crate::fx::FxHashMap;
use crate::report::AnomalyKind;
use schism_history::{F, Key, Op, OpType, Process, Value};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Explicit bounds of the incremental checkers' memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Keys held at once; past it the least recently used is dropped.
    pub max_live_keys: usize,
    /// A key with no op for this many history positions is dropped.
    pub retire_idle_ops: u64,
    /// Versions (list length) of one append key, or ok writes of one register key.
    pub max_versions_per_key: usize,
    /// Reads of one key that wait for an acknowledged append to be placed.
    pub max_pending_reads_per_key: usize,
    /// Events of one (process, key) waiting for an append's position.
    pub max_session_queue: usize,
    /// Ops buffered while the workload is still unknown (reads only so far).
    pub max_undecided_ops: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_live_keys: 100_000,
            retire_idle_ops: 1_000_000,
            max_versions_per_key: 1 << 20,
            max_pending_reads_per_key: 10_000,
            max_session_queue: 4_096,
            max_undecided_ops: 100_000,
        }
    }
}

/// The per-op kinds claimed online (every other kind waits for the offline check).
pub const ONLINE_KINDS: [AnomalyKind; 5] = [
    AnomalyKind::StaleRead,
    AnomalyKind::MonotonicRead,
    AnomalyKind::ReadYourWrites,
    AnomalyKind::MonotonicWrites,
    AnomalyKind::WritesFollowReads,
];

/// One anomaly proven online.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Claim {
    pub kind: AnomalyKind,
    pub key: Key,
    /// The offending op first (by its completion's index, as offline), then witnesses.
    pub ops: Vec<u64>,
    pub explanation: String,
}

impl Claim {
    /// The offending op's index.
    pub fn op(&self) -> u64 {
        self.ops[0]
    }
}

/// An op still open: its invoke.
#[derive(Debug, Clone)]
struct Open {
    pos: u64,
    time_ns: u64,
    f: F,
    key: Option<Key>,
    value: Value,
}

/// A completed client op, paired.
#[derive(Debug)]
struct Done {
    process: Process,
    f: F,
    key: Key,
    /// The invoke's value (what a write wrote).
    written: Value,
    /// An ok completion's value (what a read returned).
    value: Value,
    kind: OpType,
    inv_pos: u64,
    inv_time: u64,
    comp_pos: u64,
    comp_time: u64,
    /// The op's name: its completion's index.
    index: u64,
}

/// The incremental checkers of one history.
#[derive(Debug)]
pub struct Incremental {
    workload: Option<Workload>,
    register: RegisterOptions,
    limits: Limits,
    /// Position of the next op in the feed.
    pos: u64,
    open: FxHashMap<Process, Open>,
    registers: FxHashMap<Key, RegKey>,
    appends: FxHashMap<Key, AppKey>,
    /// Ops held while the workload is undecided.
    undecided: Vec<Op>,
    claims: Vec<Claim>,
    counts: BTreeMap<AnomalyKind, u64>,
    stopped: Option<String>,
}

impl Incremental {
    /// `workload` as the offline check will use it (`None`: inferred from the first
    /// write, append or non-nil read).
    pub fn new(workload: Option<Workload>, register: RegisterOptions, limits: Limits) -> Self {
        Incremental {
            workload,
            register,
            limits,
            pos: 0,
            open: FxHashMap::default(),
            registers: FxHashMap::default(),
            appends: FxHashMap::default(),
            undecided: Vec::new(),
            claims: Vec::new(),
            counts: BTreeMap::new(),
            stopped: None,
        }
    }

    /// Why online checking stopped (the offline check still sees everything).
    pub fn stopped(&self) -> Option<&str> {
        self.stopped.as_deref()
    }

    /// Claims so far, by kind.
    pub fn counts(&self) -> &BTreeMap<AnomalyKind, u64> {
        &self.counts
    }

    /// Ops fed so far.
    pub fn len(&self) -> u64 {
        self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.pos == 0
    }

    /// Keys held now (for tests of the memory bound).
    pub fn live_keys(&self) -> usize {
        self.registers.len() + self.appends.len()
    }

    /// The claims made since the last call.
    pub fn take_claims(&mut self) -> Vec<Claim> {
        std::mem::take(&mut self.claims)
    }

    /// Feeds the next op of the history (in index order). Returns how many claims it
    /// added (`take_claims` hands them out).
    pub fn push(&mut self, op: &Op) -> usize {
        let before = self.claims.len();
        if self.stopped.is_some() {
            return 0;
        }
        if self.workload.is_none() {
            self.workload = infer(op);
            if self.workload.is_none() {
                if self.undecided.len() >= self.limits.max_undecided_ops {
                    self.stop(format!(
                        "online checking stopped: no write after {} ops to tell the workload",
                        self.limits.max_undecided_ops
                    ));
                } else {
                    self.undecided.push(op.clone());
                }
                return 0;
            }
            for held in std::mem::take(&mut self.undecided) {
                self.feed(&held);
            }
        }
        self.feed(op);
        let added = self.claims.len() - before;
        for c in &self.claims[before..] {
            *self.counts.entry(c.kind).or_default() += 1;
        }
        added
    }

    fn stop(&mut self, why: String) {
        self.stopped = Some(why);
        self.registers = FxHashMap::default();
        self.appends = FxHashMap::default();
        self.open = FxHashMap::default();
        self.undecided = Vec::new();
    }

    fn feed(&mut self, op: &Op) {
        let pos = self.pos;
        self.pos += 1;
        if pos % RETIRE_SWEEP_EVERY == RETIRE_SWEEP_EVERY - 1 {
            self.retire(pos);
        }
        if op.process == Process::NEMESIS || self.stopped.is_some() {
            return;
        }
        if op.kind == OpType::Invoke {
            let open = Open {
                pos,
                time_ns: op.time_ns,
                f: op.f,
                key: op.key(),
                value: normalise(&op.value),
            };
            if let Some(key) = op.key()
                && op.f == F::Append
                && self.workload == Some(Workload::Append)
            {
                self.append_key(key, pos).invoked(&open, op.process);
            }
            if let Some(key) = op.key()
                && self.workload == Some(Workload::Register)
                && let Some(v) = written(&op.f, &open.value)
            {
                let k = self.register_key(key, pos);
                if k.writes.contains_key(&v) {
                    self.stop(format!(
                        "online checking stopped: value {v} is written to key {key} twice (op index {}); the graph checker needs unique values",
                        op.index()
                    ));
                    return;
                }
                k.writes.insert(
                    v,
                    RegWrite {
                        inv_pos: pos,
                        status: Status::Pending,
                        process: op.process,
                    },
                );
            }
            self.open.insert(op.process, open);
            return;
        }
        // A completion without an open invoke is the offline check's error to name.
        let Some(inv) = self.open.remove(&op.process) else {
            return;
        };
        let Some(key) = inv.key else { return };
        if inv.f != op.f {
            return;
        }
        let done = Done {
            process: op.process,
            f: inv.f,
            key,
            written: inv.value,
            value: normalise(&op.value),
            kind: op.kind,
            inv_pos: inv.pos,
            inv_time: inv.time_ns,
            comp_pos: pos,
            comp_time: op.time_ns,
            index: op.index(),
        };
        match self.workload {
            Some(Workload::Register) => self.register_done(&done),
            Some(Workload::Append) => self.append_done(&done),
            _ => {}
        }
    }

    /// Drops idle keys, then the least recently used past the bound.
    fn retire(&mut self, now: u64) {
        let idle = self.limits.retire_idle_ops;
        self.registers
            .retain(|_, k| now.saturating_sub(k.last_pos) < idle);
        self.appends
            .retain(|_, k| now.saturating_sub(k.last_pos) < idle);
        let max = self.limits.max_live_keys;
        if self.registers.len() > max {
            let mut last: Vec<u64> = self.registers.values().map(|k| k.last_pos).collect();
            last.sort_unstable();
            let cut = last[self.registers.len() - max];
            self.registers.retain(|_, k| k.last_pos >= cut);
        }
        if self.appends.len() > max {
            let mut last: Vec<u64> = self.appends.values().map(|k| k.last_pos).collect();
            last.sort_unstable();
            let cut = last[self.appends.len() - max];
            self.appends.retain(|_, k| k.last_pos >= cut);
        }
    }

    fn register_key(&mut self, key: Key, pos: u64) -> &mut RegKey {
        let k = self.registers.entry(key).or_default();
        k.last_pos = pos;
        k
    }

    fn append_key(&mut self, key: Key, pos: u64) -> &mut AppKey {
        let k = self.appends.entry(key).or_default();
        k.last_pos = pos;
        k
    }
}

/// Keys are swept for retirement once per this many ops.
const RETIRE_SWEEP_EVERY: u64 = 4_096;

/// The workload an op reveals, as `check` infers it.
fn infer(op: &Op) -> Option<Workload> {
    if op.process == Process::NEMESIS {
        return None;
    }
    match (&op.f, op.kind, &normalise(&op.value)) {
        (F::Append, _, _) => Some(Workload::Append),
        (F::Write | F::Cas, _, _) => Some(Workload::Register),
        (F::Read, OpType::Ok, Value::List(_)) => Some(Workload::Append),
        (F::Read, OpType::Ok, Value::Int(_)) => Some(Workload::Register),
        _ => None,
    }
}

/// The value as the history file's reader gives it back: a target may hand the recorder
/// a list or number as verbatim JSON, which the reader parses into `List`/`Int`.
fn normalise(v: &Value) -> Value {
    let Value::Other(j) = v else {
        return v.clone();
    };
    match &**j {
        serde_json::Value::Number(n) => n.as_i64().map_or_else(|| v.clone(), Value::Int),
        serde_json::Value::Array(items) => items
            .iter()
            .map(serde_json::Value::as_i64)
            .collect::<Option<Vec<i64>>>()
            .map_or_else(|| v.clone(), Value::list),
        serde_json::Value::Null => Value::Null,
        _ => v.clone(),
    }
}

/// The value a register write or cas writes.
fn written(f: &F, v: &Value) -> Option<i64> {
    match (f, v) {
        (F::Write, Value::Int(v)) => Some(*v),
        (F::Cas, Value::List(l)) if l.len() == 2 => Some(l[1]),
        _ => None,
    }
}

/// How a write ended, as far as the feed has shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Pending,
    Ok { pos: u64, time_ns: u64, index: u64 },
    Fail,
    Info { index: u64 },
}

impl Status {
    /// How the completion `d` ended the write.
    fn of(d: &Done) -> Status {
        match d.kind {
            OpType::Ok => Status::Ok {
                pos: d.comp_pos,
                time_ns: d.comp_time,
                index: d.index,
            },
            OpType::Fail => Status::Fail,
            _ => Status::Info { index: d.index },
        }
    }

    /// The index naming the op (its completion's, as offline), if it completed.
    fn index(self) -> Option<u64> {
        match self {
            Status::Ok { index, .. } | Status::Info { index } => Some(index),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------- registers

#[derive(Debug)]
struct RegWrite {
    inv_pos: u64,
    status: Status,
    process: Process,
}

/// What one process has done to one register key.
#[derive(Debug, Default, Clone, Copy)]
struct RegSession {
    /// The earlier read whose writer began last: (writer's invoke, read index, writer index).
    read: Option<(u64, u64, u64)>,
    /// The process's last ok write: (invoke, index).
    own: Option<(u64, u64)>,
}

#[derive(Debug, Default)]
struct RegKey {
    last_pos: u64,
    writes: FxHashMap<i64, RegWrite>,
    /// Ok writes by invoke position: (completion position, time, index, value).
    ok: BTreeMap<u64, (u64, u64, u64, i64)>,
    sessions: FxHashMap<Process, RegSession>,
    /// Past `max_versions_per_key`: no longer checked.
    oversized: bool,
}

/// The version a register read returned, as far as it is settled.
enum RegVersion {
    Initial,
    /// Written by an op that completed ok (at `done`) or indeterminately (`None`).
    Write {
        inv: u64,
        index: u64,
        done: Option<u64>,
    },
}

impl Incremental {
    fn register_done(&mut self, d: &Done) {
        let limits = self.limits;
        let opts = self.register;
        let k = self.register_key(d.key, d.comp_pos);
        if k.oversized {
            return;
        }
        if let Some(v) = written(&d.f, &d.written) {
            k.write_done(d, v, limits);
            return;
        }
        if d.f != F::Read || d.kind != OpType::Ok {
            return;
        }
        let Some(version) = k.version(&d.value, opts) else {
            return;
        };
        let precedes = |inv: u64| match version {
            RegVersion::Initial => true,
            RegVersion::Write { done, .. } => done.is_some_and(|c| c < inv),
        };
        let mut claims: Vec<Claim> = k.stale(d, &version).into_iter().collect();
        let s = k.sessions.entry(d.process).or_default();
        if let Some((inv, index)) = s.own
            && precedes(inv)
        {
            claims.push(Claim {
                kind: AnomalyKind::ReadYourWrites,
                key: d.key,
                ops: vec![d.index, index],
                explanation: format!(
                    "process {} wrote to key {} (op index {index}), then read {} at t={}: a read-your-writes violation; the read missed its own write",
                    d.process,
                    d.key,
                    d.value,
                    secs(d.inv_time)
                ),
            });
        }
        if let Some((inv, r1, w1)) = s.read
            && precedes(inv)
        {
            claims.push(Claim {
                kind: AnomalyKind::MonotonicRead,
                key: d.key,
                ops: vec![d.index, w1, r1],
                explanation: format!(
                    "process {} read key {} at op index {r1}, then {} at t={}: a monotonic-read violation; the second read missed the write (op index {w1}) the first had already seen",
                    d.process,
                    d.key,
                    d.value,
                    secs(d.inv_time)
                ),
            });
        }
        if let RegVersion::Write { inv, index, .. } = version
            && s.read.is_none_or(|(i, _, _)| inv > i)
        {
            s.read = Some((inv, d.index, index));
        }
        claims.sort_by_key(|c| c.kind);
        self.claims.extend(claims);
    }
}

impl RegKey {
    /// A write or cas of `v` completed.
    fn write_done(&mut self, d: &Done, v: i64, limits: Limits) {
        let Some(w) = self.writes.get_mut(&v) else {
            return; // invoked before its key was dropped: nothing to rely on
        };
        w.status = Status::of(d);
        if d.kind != OpType::Ok {
            return;
        }
        self.ok
            .insert(d.inv_pos, (d.comp_pos, d.comp_time, d.index, v));
        self.sessions.entry(d.process).or_default().own = Some((d.inv_pos, d.index));
        if self.ok.len() > limits.max_versions_per_key {
            self.oversized = true;
            self.writes = FxHashMap::default();
            self.ok = BTreeMap::new();
            self.sessions = FxHashMap::default();
        }
    }

    /// The version an ok read returned, when it is settled enough to reason from.
    fn version(&self, value: &Value, opts: RegisterOptions) -> Option<RegVersion> {
        match value {
            Value::Null if opts.nil_read_is_wildcard => None,
            Value::Null => Some(RegVersion::Initial),
            Value::Int(v) => {
                // No writer: phantom, the initial value, or a writer dropped with its
                // key — the offline check decides.
                let w = self.writes.get(v)?;
                match w.status {
                    Status::Ok { pos, index, .. } => Some(RegVersion::Write {
                        inv: w.inv_pos,
                        index,
                        done: Some(pos),
                    }),
                    Status::Info { index } => Some(RegVersion::Write {
                        inv: w.inv_pos,
                        index,
                        done: None,
                    }),
                    // A write still open may yet fail (an aborted read) or complete
                    // after this read began; a failed one is the offline check's.
                    Status::Pending | Status::Fail => None,
                }
            }
            _ => None,
        }
    }

    /// The stale-read claim of read `d`: an ok write begun after the version read was
    /// acknowledged, and acknowledged before the read began (every such write has
    /// completed by now, so this is final).
    fn stale(&self, d: &Done, version: &RegVersion) -> Option<Claim> {
        let after = match *version {
            RegVersion::Initial => 0,
            RegVersion::Write { done, .. } => done?,
        };
        if after >= d.inv_pos {
            return None;
        }
        let mut versions = 0u64;
        let mut first: Option<(u64, u64, u64, i64)> = None;
        for (_, &(c, t, index, v)) in self.ok.range(after..d.inv_pos) {
            if c < d.inv_pos {
                versions += 1;
                if first.is_none_or(|f| c < f.0) {
                    first = Some((c, t, index, v));
                }
            }
        }
        let (_, t, index, v) = first?;
        Some(Claim {
            kind: AnomalyKind::StaleRead,
            key: d.key,
            ops: vec![d.index, index],
            explanation: format!(
                "process {} read {} from key {} at t={}: a stale read; it missed write {v} to key {} by process {}, acknowledged at t={}, before the read began ({versions} version{} and {:.3} ms behind)",
                d.process,
                d.value,
                d.key,
                secs(d.inv_time),
                d.key,
                self.writes[&v].process,
                secs(t),
                if versions == 1 { "" } else { "s" },
                d.inv_time.saturating_sub(t) as f64 / 1e6
            ),
        })
    }
}

// ---------------------------------------------------------------- append

#[derive(Debug)]
struct App {
    process: Process,
    status: Status,
    /// Position in the key's order, once a read placed it.
    at: Option<u32>,
}

/// A read awaiting the position of an append acknowledged before it began.
#[derive(Debug, Clone, Copy)]
struct PendingRead {
    inv_pos: u64,
    inv_time: u64,
    len: u32,
    index: u64,
    process: Process,
}

/// One event of a (process, key) session, in the process's order.
#[derive(Debug, Clone, Copy)]
enum Event {
    Read {
        len: u32,
        index: u64,
        time_ns: u64,
    },
    Append {
        value: i64,
        index: u64,
        time_ns: u64,
    },
}

#[derive(Debug, Default)]
struct AppSession {
    /// The longest earlier read: (length, index).
    read: Option<(u32, u64)>,
    /// The own ok append furthest in the order: (position, index).
    own: Option<(u32, u64)>,
    /// Events not yet decided: the first is an append whose position is unknown.
    queue: VecDeque<Event>,
}

#[derive(Debug, Default)]
struct AppKey {
    last_pos: u64,
    appends: FxHashMap<i64, App>,
    /// The longest ok read so far: the key's version order as far as it is known.
    order: Vec<i64>,
    /// Per order position: the ok append's completion, as `comp << POS_BITS | position`.
    acked: MinTree,
    /// Ok appends no read has placed yet: (completion position, value).
    unplaced: BTreeSet<(u64, i64)>,
    /// Reads not (yet) stale that an unplaced append acknowledged before they began may
    /// still prove stale, by (invoke position, index).
    pending: BTreeMap<(u64, u64), PendingRead>,
    sessions: FxHashMap<Process, AppSession>,
    /// Reads of the key disagree (or it outgrew the bounds): no more claims on it.
    given_up: bool,
}

const POS_BITS: u32 = 24;
const POS_MASK: u64 = (1 << POS_BITS) - 1;

impl AppKey {
    fn invoked(&mut self, o: &Open, process: Process) {
        if self.given_up {
            return;
        }
        if let Value::Int(v) = o.value {
            self.appends.entry(v).or_insert(App {
                process,
                status: Status::Pending,
                at: None,
            });
        }
    }

    fn give_up(&mut self) {
        self.given_up = true;
        self.appends = FxHashMap::default();
        self.order = Vec::new();
        self.acked = MinTree::default();
        self.unplaced = BTreeSet::new();
        self.pending = BTreeMap::new();
        self.sessions = FxHashMap::default();
    }
}

impl Incremental {
    fn append_done(&mut self, d: &Done) {
        let limits = self.limits;
        let k = self.append_key(d.key, d.comp_pos);
        if k.given_up {
            return;
        }
        let mut claims = Vec::new();
        match d.f {
            F::Append => {
                let Value::Int(v) = d.written else { return };
                let a = k.appends.entry(v).or_insert(App {
                    process: d.process,
                    status: Status::Pending,
                    at: None,
                });
                a.status = Status::of(d);
                if d.kind != OpType::Ok {
                    return;
                }
                match a.at {
                    Some(q) => k
                        .acked
                        .set(q as usize, d.comp_pos << POS_BITS | u64::from(q)),
                    None => {
                        k.unplaced.insert((d.comp_pos, v));
                    }
                }
                k.session_event(
                    d.process,
                    d.key,
                    Event::Append {
                        value: v,
                        index: d.index,
                        time_ns: d.inv_time,
                    },
                    limits,
                    &mut claims,
                );
            }
            F::Read if d.kind == OpType::Ok => {
                let vals: &[i64] = match &d.value {
                    Value::List(l) => l,
                    Value::Null => &[],
                    _ => return,
                };
                if !k.observe(vals, limits, &mut claims, d.key) {
                    return;
                }
                let r = PendingRead {
                    inv_pos: d.inv_pos,
                    inv_time: d.inv_time,
                    len: vals.len() as u32,
                    index: d.index,
                    process: d.process,
                };
                if let Some(c) = k.stale_claim(&r, d.key) {
                    claims.push(c);
                } else if k.unplaced.first().is_some_and(|&(c, _)| c < d.inv_pos) {
                    if k.pending.len() >= limits.max_pending_reads_per_key {
                        k.pending.pop_first();
                    }
                    k.pending.insert((r.inv_pos, r.index), r);
                }
                k.session_event(
                    d.process,
                    d.key,
                    Event::Read {
                        len: r.len,
                        index: d.index,
                        time_ns: d.inv_time,
                    },
                    limits,
                    &mut claims,
                );
            }
            _ => return,
        }
        self.claims.extend(claims);
    }
}

impl AppKey {
    /// Takes in an ok read's list: extends the order, places new appends, and re-decides
    /// what waited for them. False when the read contradicts the order (the key is given
    /// up: the offline check reports the divergence).
    fn observe(&mut self, vals: &[i64], limits: Limits, claims: &mut Vec<Claim>, key: Key) -> bool {
        let common = self.order.len().min(vals.len());
        if self.order[..common] != vals[..common] {
            self.give_up();
            return false;
        }
        if vals.len() <= self.order.len() {
            return true;
        }
        if vals.len() > limits.max_versions_per_key {
            self.give_up();
            return false;
        }
        let from = self.order.len();
        let mut placed_ok = false;
        let mut earliest_ack = u64::MAX;
        let mut placed_by: Vec<Process> = Vec::new();
        for (q, &v) in vals.iter().enumerate().skip(from) {
            self.order.push(v);
            let Some(a) = self.appends.get_mut(&v) else {
                continue; // phantom (or dropped with its key): never a witness
            };
            if a.at.is_some() {
                // The value twice in one list: a duplicate, the offline check's.
                self.give_up();
                return false;
            }
            a.at = Some(q as u32);
            if let Status::Ok { pos, .. } = a.status {
                self.acked.set(q, pos << POS_BITS | q as u64);
                self.unplaced.remove(&(pos, v));
                placed_ok = true;
                earliest_ack = earliest_ack.min(pos);
                placed_by.push(a.process);
            }
        }
        if placed_ok {
            self.recheck_pending(earliest_ack, key, claims);
            placed_by.sort_unstable();
            placed_by.dedup();
            for p in placed_by {
                self.drain_session(p, key, claims);
            }
        }
        true
    }

    /// Pending reads that newly placed appends prove stale: those that began after the
    /// earliest of them was acknowledged (it now sits at or beyond their length). Reads
    /// that no unplaced append can prove stale any more are dropped.
    fn recheck_pending(&mut self, earliest_ack: u64, key: Key, claims: &mut Vec<Claim>) {
        let proven = self.pending.split_off(&(earliest_ack + 1, 0));
        for r in proven.values() {
            claims.extend(self.stale_claim(r, key));
        }
        let oldest_unplaced = self.unplaced.first().map_or(u64::MAX, |&(c, _)| c);
        while let Some(e) = self.pending.first_entry() {
            if e.key().0 > oldest_unplaced {
                break;
            }
            e.remove();
        }
    }

    /// The stale-read claim of a read that is a prefix of the order, if the order already
    /// holds an append at or beyond its length acknowledged before it began.
    fn stale_claim(&self, r: &PendingRead, key: Key) -> Option<Claim> {
        let len = r.len as usize;
        // The read is a prefix of the order (else the key was given up).
        let vals = &self.order[..len];
        let bound = r.inv_pos << POS_BITS;
        let first = self.acked.min_from(len, self.order.len());
        if first >= bound {
            return None;
        }
        let q = (first & POS_MASK) as usize;
        let freshest = self.acked.rightmost_below(bound)?;
        let versions = (freshest + 1).saturating_sub(len);
        let w = &self.appends[&self.order[q]];
        let Status::Ok { time_ns, index, .. } = w.status else {
            return None;
        };
        Some(Claim {
            kind: AnomalyKind::StaleRead,
            key,
            ops: vec![r.index, index],
            explanation: format!(
                "process {} read {} from key {key} at t={}: a stale read; it missed append {} to key {key} by process {}, acknowledged at t={}, before the read began ({versions} version{} and {:.3} ms behind)",
                r.process,
                list(vals),
                secs(r.inv_time),
                self.order[q],
                w.process,
                secs(time_ns),
                if versions == 1 { "" } else { "s" },
                r.inv_time.saturating_sub(time_ns) as f64 / 1e6
            ),
        })
    }

    fn session_event(
        &mut self,
        p: Process,
        key: Key,
        e: Event,
        limits: Limits,
        claims: &mut Vec<Claim>,
    ) {
        let s = self.sessions.entry(p).or_default();
        if s.queue.len() >= limits.max_session_queue {
            // Giving up an event only shrinks what the session knows: fewer claims.
            s.queue.pop_front();
        }
        s.queue.push_back(e);
        self.drain_session(p, key, claims);
    }

    /// Decides the session's events in order while their positions are known.
    fn drain_session(&mut self, p: Process, key: Key, claims: &mut Vec<Claim>) {
        let Some(mut s) = self.sessions.remove(&p) else {
            return;
        };
        while let Some(&e) = s.queue.front() {
            match e {
                Event::Read {
                    len,
                    index,
                    time_ns,
                } => {
                    if let Some((m, r1)) = s.read
                        && m > len
                        && let Some(w) = self.order[len as usize..m as usize]
                            .iter()
                            .filter_map(|v| self.appends.get(v))
                            .find_map(|a| a.status.index())
                    {
                        claims.push(session_claim(
                            key,
                            AnomalyKind::MonotonicRead,
                            p,
                            vec![index, w, r1],
                            time_ns,
                        ));
                    }
                    if let Some((q, a)) = s.own
                        && q >= len
                    {
                        claims.push(session_claim(
                            key,
                            AnomalyKind::ReadYourWrites,
                            p,
                            vec![index, a],
                            time_ns,
                        ));
                    }
                    if s.read.is_none_or(|(m, _)| len > m) {
                        s.read = Some((len, index));
                    }
                }
                Event::Append {
                    value,
                    index,
                    time_ns,
                } => {
                    let Some(q) = self.appends.get(&value).and_then(|a| a.at) else {
                        break; // waits for a read to place it
                    };
                    if let Some((q1, a1)) = s.own
                        && q1 > q
                    {
                        claims.push(session_claim(
                            key,
                            AnomalyKind::MonotonicWrites,
                            p,
                            vec![index, a1],
                            time_ns,
                        ));
                    }
                    if let Some((len, r1)) = s.read
                        && len > q
                    {
                        claims.push(session_claim(
                            key,
                            AnomalyKind::WritesFollowReads,
                            p,
                            vec![index, r1],
                            time_ns,
                        ));
                    }
                    if s.own.is_none_or(|(q1, _)| q > q1) {
                        s.own = Some((q, index));
                    }
                }
            }
            s.queue.pop_front();
        }
        self.sessions.insert(p, s);
    }
}

/// A session anomaly of an append key, explained in the offline sentences' terms.
fn session_claim(key: Key, kind: AnomalyKind, p: Process, ops: Vec<u64>, time_ns: u64) -> Claim {
    let (op, w) = (ops[0], ops[1]);
    let explanation = match kind {
        AnomalyKind::MonotonicRead => format!(
            "process {p} read key {key} at op index {}, then again at t={} (op index {op}): a monotonic-read violation; the second read missed the append at op index {w}, which the first had already seen",
            ops[2],
            secs(time_ns)
        ),
        AnomalyKind::ReadYourWrites => format!(
            "process {p} appended to key {key} (op index {w}), then read it at t={} (op index {op}): a read-your-writes violation; the read missed its own write",
            secs(time_ns)
        ),
        AnomalyKind::MonotonicWrites => format!(
            "process {p} appended to key {key} (op index {w}), then again at t={} (op index {op}), but the version order puts the second append before the first: a monotonic-writes violation",
            secs(time_ns)
        ),
        _ => format!(
            "process {p} read key {key} (op index {w}), then appended to it at t={} (op index {op}), but the version order puts that append inside the state the read had already returned: a writes-follow-reads violation",
            secs(time_ns)
        ),
    };
    Claim {
        kind,
        key,
        ops,
        explanation,
    }
}

/// A min segment tree over order positions that grows by doubling; empty slots hold
/// `u64::MAX`.
#[derive(Debug, Default)]
struct MinTree {
    /// Leaves: `cap`; node `i` has children `2i`, `2i+1`; leaves at `cap..2cap`.
    t: Vec<u64>,
    cap: usize,
}

impl MinTree {
    fn set(&mut self, i: usize, v: u64) {
        if i >= self.cap {
            let mut cap = self.cap.max(16);
            while cap <= i {
                cap *= 2;
            }
            let mut t = vec![u64::MAX; 2 * cap];
            if self.cap > 0 {
                t[cap..cap + self.cap].copy_from_slice(&self.t[self.cap..]);
            }
            for n in (1..cap).rev() {
                t[n] = t[2 * n].min(t[2 * n + 1]);
            }
            self.t = t;
            self.cap = cap;
        }
        let mut n = self.cap + i;
        self.t[n] = v;
        while n > 1 {
            n /= 2;
            self.t[n] = self.t[2 * n].min(self.t[2 * n + 1]);
        }
    }

    /// The least value over `[l, r)` (and `u64::MAX` when empty).
    fn min_from(&self, l: usize, r: usize) -> u64 {
        let r = r.min(self.cap);
        if l >= r {
            return u64::MAX;
        }
        let (mut l, mut r) = (l + self.cap, r + self.cap);
        let mut m = u64::MAX;
        while l < r {
            if l & 1 == 1 {
                m = m.min(self.t[l]);
                l += 1;
            }
            if r & 1 == 1 {
                r -= 1;
                m = m.min(self.t[r]);
            }
            l /= 2;
            r /= 2;
        }
        m
    }

    /// The last position whose value is below `bound`.
    fn rightmost_below(&self, bound: u64) -> Option<usize> {
        if self.cap == 0 || self.t[1] >= bound {
            return None;
        }
        let mut n = 1;
        while n < self.cap {
            n = if self.t[2 * n + 1] < bound {
                2 * n + 1
            } else {
                2 * n
            };
        }
        Some(n - self.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_tree_grows_and_answers() {
        let mut t = MinTree::default();
        t.set(3, 30);
        t.set(40, 5);
        t.set(7, 70);
        assert_eq!(t.min_from(0, 41), 5);
        assert_eq!(t.min_from(0, 40), 30);
        assert_eq!(t.min_from(4, 40), 70);
        assert_eq!(t.min_from(8, 40), u64::MAX);
        assert_eq!(t.rightmost_below(31), Some(40));
        assert_eq!(t.rightmost_below(4), None);
        assert_eq!(t.rightmost_below(71), Some(40));
        t.set(40, 100);
        assert_eq!(t.rightmost_below(71), Some(7));
    }
}
