//! Per-op anomalies: the one definition of each kind that blames a single op, shared by
//! the `graph` checker (which owns them), the `append` checker (stale reads) and the
//! `staleness` figures (measured for exactly these stale reads).
//!
//! Every kind is decided per key from the history directly, never from a chain through
//! another op, so one corrupted read is one anomaly:
//! - **stale read**: an ok read that misses a version of its key whose write was
//!   acknowledged before the read began. Append keys: the read is a prefix of the key's
//!   version order (its longest read) shorter than the position of such an append; or it
//!   is the first read after an acknowledged append that no read ever saw and that is
//!   not provably lost (`append::Unseen::Lagging`). Register keys (unique values): some
//!   write or cas was invoked after the write of the value read completed (or at any
//!   time, for the initial value) and acknowledged before the read began.
//! - **monotonic read** (per process and key): a read that misses a version an earlier
//!   read of the same process had seen: a shorter prefix (append), or the value of a
//!   write that completed before the earlier read's write began (register).
//! - **read your writes** (per process and key): a read that misses the process's own
//!   earlier acknowledged write: the append sits at or beyond the read's length in the
//!   version order (append), or the value read was written (completed) before the
//!   process's write began, or is the initial value (register).
//! - **monotonic writes** (per process and key, append): an append the version order
//!   puts before an earlier acknowledged append of the same process.
//! - **writes follow reads** (per process and key, append): an append the version
//!   order puts inside a state an earlier read of the same process already returned.
//!
//! A read both stale and non-monotonic is one anomaly of each kind; no kind counts an op
//! twice. Writes no read saw are `append::Unseen` (lost, lagging or unread), not stale
//! reads of every later read. Register histories have no ww order beyond real time, so
//! monotonic writes and writes-follow-reads cannot be decided per key there; cycles that
//! show them are the graph checker's G-kinds.
//!
//! Guarantees: time linear in the ops and the per-key version orders (plus, per stale
//! register read, the writes it missed), no I/O; at most one finding per kind and op;
//! findings come sorted by the offending op's invoke; each names its offending op first,
//! then the witnesses, as a cycle of the edges that prove it.

use crate::Options;
use crate::append_keys::{self, Analysis, KeyOps, Unseen};
use crate::explain::{complete_ns, did, invoke_ns, key as key_of, op_index, secs, seen, what};
use crate::fx::{FxHashMap, FxHashSet};
use crate::report::{Anomaly, AnomalyKind, CycleStep, EdgeKind};
use schism_history::{F, History, Key, Operation, Outcome, Process, Value};
use std::collections::BTreeMap;

/// One per-op anomaly.
#[derive(Debug, Clone)]
pub(crate) struct Finding {
    pub(crate) kind: AnomalyKind,
    /// Op slots and the edge leaving each: the offending op first; the last edge closes
    /// the cycle back to it.
    pub(crate) steps: Vec<(usize, EdgeKind)>,
    /// For stale reads: versions and nanoseconds behind.
    pub(crate) versions: u64,
    pub(crate) ns: u64,
    /// For stale reads: the missed write was seen by no read (lagging, or lost without
    /// proof).
    pub(crate) unseen: bool,
}

impl Finding {
    /// The offending op's slot.
    pub(crate) fn slot(&self) -> usize {
        self.steps[0].0
    }
}

/// How far behind one ok read was (zero when not stale).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lag {
    pub(crate) slot: usize,
    pub(crate) versions: u64,
    pub(crate) ns: u64,
}

/// Every per-op finding of a history, and the lag of every read measured.
#[derive(Debug, Default)]
pub(crate) struct PerOp {
    pub(crate) findings: Vec<Finding>,
    pub(crate) lags: Vec<Lag>,
}

impl PerOp {
    /// Sorts the findings; the lags too when `lags` (else they are dropped: only the
    /// `staleness` figures use them).
    fn sorted(mut self, ops: &[Operation], lags: bool) -> Self {
        // (invoke, kind) is unique: one finding per kind and op.
        self.findings
            .sort_unstable_by_key(|f| (ops[f.slot()].invoke(), f.kind));
        if lags {
            self.lags.sort_unstable_by_key(|l| ops[l.slot].invoke());
        } else {
            self.lags = Vec::new();
        }
        self
    }

    /// Per op slot: is it the offending op of some finding?
    pub(crate) fn offenders(&self, n: usize) -> Vec<bool> {
        let mut out = vec![false; n];
        for f in &self.findings {
            out[f.slot()] = true;
        }
        out
    }
}

/// The slot of `o` in `ops` (ops are one slice).
pub(crate) fn slot_of(ops: &[Operation], o: &Operation) -> usize {
    (o as *const Operation as usize - ops.as_ptr() as usize) / size_of::<Operation>()
}

/// Per-op findings of an append history, and with `lags` every read's lag.
pub(crate) fn append(h: &History, ops: &[Operation], a: &Analysis<'_>, lags: bool) -> PerOp {
    let mut out = PerOp::default();
    for k in a.keys.values() {
        append_key(h, ops, k, lags, &mut out);
    }
    out.sorted(ops, lags)
}

fn time(h: &History, pos: usize) -> u64 {
    h.ops[pos].time_ns
}

fn append_key<'a>(h: &History, ops: &[Operation], k: &KeyOps<'a>, lags: bool, out: &mut PerOp) {
    let (order, _) = k.version_order();
    let mut pos: FxHashMap<i64, usize> =
        FxHashMap::with_capacity_and_hasher(order.len(), Default::default());
    pos.extend(order.iter().enumerate().map(|(i, &v)| (v, i)));
    // Ok appends in the order, by completion; suf[q]: the earliest-acknowledged of those
    // at positions ≥ q.
    let mut acked: Vec<(usize, usize, &Operation)> = k
        .ok_appends
        .iter()
        .filter_map(|&(o, v)| Some((o.complete()?, *pos.get(&v)?, o)))
        .collect();
    acked.sort_unstable_by_key(|x| (x.0, x.1));
    let mut suf: Vec<Option<(usize, &Operation)>> = vec![None; order.len() + 1];
    for &(c, q, o) in &acked {
        if suf[q].is_none_or(|(c0, _)| c < c0) {
            suf[q] = Some((c, o));
        }
    }
    for q in (0..order.len()).rev() {
        if let Some((c, _)) = suf[q + 1]
            && suf[q].is_none_or(|(c0, _)| c < c0)
        {
            suf[q] = suf[q + 1];
        }
    }
    // Per read: its lag (versions, ns behind), and the write it missed if stale.
    let prefix = &k.prefix;
    let mut lag: Vec<(u64, u64)> = vec![(0, 0); k.reads.len()];
    let mut missed: Vec<Option<(&Operation, bool)>> = vec![None; k.reads.len()];
    let (mut i, mut freshest) = (0usize, None::<usize>);
    for (ri, &(r, vals)) in k.reads.iter().enumerate() {
        if !prefix[ri] {
            continue; // divergent: the append checker's
        }
        while i < acked.len() && acked[i].0 < r.invoke() {
            freshest = Some(freshest.map_or(acked[i].1, |f| f.max(acked[i].1)));
            i += 1;
        }
        let versions = freshest.map_or(0, |f| (f + 1).saturating_sub(vals.len())) as u64;
        if versions > 0
            && let Some((c, w)) = suf[vals.len()]
        {
            lag[ri] = (versions, time(h, r.invoke()).saturating_sub(time(h, c)));
            missed[ri] = Some((w, false));
        }
    }
    // Acknowledged appends no read saw, not provably lost: their first later read.
    if k.ok_appends.iter().any(|(_, v)| !pos.contains_key(v)) {
        let divergent: FxHashSet<i64> = k
            .reads
            .iter()
            .zip(prefix)
            .filter(|&(_, &p)| !p)
            .flat_map(|((_, vals), _)| vals.iter().copied())
            .collect();
        let observed = |v: i64| pos.contains_key(&v) || divergent.contains(&v);
        for (a, _, fate) in append_keys::unseen(h, k, &observed) {
            let Unseen::Lagging { read: ri } = fate else {
                continue;
            };
            if missed[ri].is_none() {
                let r = k.reads[ri].0;
                lag[ri] = (1, invoke_ns(h, r).saturating_sub(complete_ns(h, a)));
                missed[ri] = Some((a, true));
            }
        }
    }
    for (ri, &(r, _)) in k.reads.iter().enumerate() {
        let (versions, ns) = lag[ri];
        if lags && (prefix[ri] || versions > 0) {
            out.lags.push(Lag {
                slot: slot_of(ops, r),
                versions,
                ns,
            });
        }
        let Some((w, unseen)) = missed[ri] else {
            continue;
        };
        out.findings.push(Finding {
            kind: AnomalyKind::StaleRead,
            steps: vec![
                (slot_of(ops, r), EdgeKind::Rw),
                (slot_of(ops, w), EdgeKind::Realtime),
            ],
            versions,
            ns,
            unseen,
        });
    }
    append_sessions(ops, k, order, prefix, &pos, out);
}

/// What one process has done to one key so far.
#[derive(Default, Clone, Copy)]
struct Session {
    /// The longest earlier read (append) or the earlier read whose write began last
    /// (register): (length or writer's invoke, read slot, writer slot).
    read: Option<(usize, usize, usize)>,
    /// The process's own earlier acknowledged write furthest in the order (append) or
    /// begun last (register): (position or invoke, slot).
    own: Option<(usize, usize)>,
}

fn finding(kind: AnomalyKind, steps: Vec<(usize, EdgeKind)>) -> Finding {
    Finding {
        kind,
        steps,
        versions: 0,
        ns: 0,
        unseen: false,
    }
}

fn append_sessions(
    ops: &[Operation],
    k: &KeyOps<'_>,
    order: &[i64],
    prefix: &[bool],
    pos: &FxHashMap<i64, usize>,
    out: &mut PerOp,
) {
    let mut sessions: FxHashMap<Process, Session> = FxHashMap::default();
    let (mut ri, mut ai) = (0usize, 0usize);
    loop {
        let next_read = k.reads.get(ri).map(|r| r.0.invoke());
        let next_append = k.ok_appends.get(ai).map(|a| a.0.invoke());
        let read_first = match (next_read, next_append) {
            (None, None) => break,
            (Some(r), Some(a)) => r < a,
            (r, _) => r.is_some(),
        };
        if read_first {
            let (r, vals) = k.reads[ri];
            ri += 1;
            if !prefix[ri - 1] {
                continue;
            }
            let s = sessions.entry(r.process).or_default();
            let (len, rs) = (vals.len(), slot_of(ops, r));
            if let Some((m, r1, _)) = s.read
                && m > len
                && let Some(w) = (len..m)
                    .filter_map(|q| k.appends.get(&order[q]))
                    .find(|w| w.outcome != Outcome::Fail)
            {
                out.findings.push(finding(
                    AnomalyKind::MonotonicRead,
                    vec![
                        (rs, EdgeKind::Rw),
                        (slot_of(ops, w), EdgeKind::Wr),
                        (r1, EdgeKind::Process),
                    ],
                ));
            }
            if let Some((p, a)) = s.own
                && p >= len
            {
                out.findings.push(finding(
                    AnomalyKind::ReadYourWrites,
                    vec![(rs, EdgeKind::Rw), (a, EdgeKind::Process)],
                ));
            }
            if s.read.is_none_or(|(m, _, _)| len > m) {
                s.read = Some((len, rs, rs));
            }
        } else {
            let (a, v) = k.ok_appends[ai];
            ai += 1;
            let Some(&p) = pos.get(&v) else { continue };
            let s = sessions.entry(a.process).or_default();
            let slot = slot_of(ops, a);
            if let Some((p1, a1)) = s.own
                && p1 > p
            {
                out.findings.push(finding(
                    AnomalyKind::MonotonicWrites,
                    vec![(slot, EdgeKind::Ww), (a1, EdgeKind::Process)],
                ));
            }
            if let Some((len, r1, _)) = s.read
                && len > p
            {
                out.findings.push(finding(
                    AnomalyKind::WritesFollowReads,
                    vec![(slot, EdgeKind::Wr), (r1, EdgeKind::Process)],
                ));
            }
            if s.own.is_none_or(|(p1, _)| p > p1) {
                s.own = Some((p, slot));
            }
        }
    }
}

/// The version a register read returned.
#[derive(Clone, Copy)]
enum Version {
    Initial,
    /// Written by this op (slot); `done` is its completion position, `None` when
    /// indeterminate (it forces nothing after it).
    Write {
        slot: usize,
        done: Option<usize>,
    },
}

/// One register key's ok writes (and cas) in invoke order: slots and history positions
/// in 32 bits (`MAX_POSITION`), 16 bytes a write.
#[derive(Default)]
struct RegKey {
    slots: Vec<u32>,
    inv: Vec<u32>,
    /// suf[i]: the earliest completion among writes i.., and its index (`u32::MAX`:
    /// none completes).
    suf: Vec<(u32, u32)>,
}

/// A register history's value → writer index (every write and cas, any outcome; the last
/// of a value written twice), as `register` built it, for the graph checker to reuse.
pub(crate) struct Writers {
    pub(crate) of: FxHashMap<(Key, i64), usize>,
    /// The first write (in slot order) of a value its key was already written, and the
    /// earlier write's slot.
    pub(crate) first_twice: Option<(usize, usize)>,
}

/// Per-op findings of a register history with unique written values, and with `lags`
/// every read's lag.
pub(crate) fn register(h: &History, ops: &[Operation], opts: &Options, lags: bool) -> PerOp {
    register_writers(h, ops, opts, lags).0
}

/// `register`, and its value → writer index.
pub(crate) fn register_writers(
    h: &History,
    ops: &[Operation],
    opts: &Options,
    lags: bool,
) -> (PerOp, Writers) {
    let written = |o: &Operation| match (&o.f, &o.value) {
        (F::Write, Value::Int(v)) => Some(*v),
        (F::Cas, Value::List(l)) if l.len() == 2 => Some(l[1]),
        _ => None,
    };
    // Sized once: growing a map of millions of writes rehashes it with the old and the
    // new table both held.
    let writes = ops.iter().filter(|o| written(o).is_some()).count();
    let mut writer: FxHashMap<(Key, i64), usize> =
        FxHashMap::with_capacity_and_hasher(writes, Default::default());
    let mut first_twice = None;
    let mut keys: BTreeMap<Key, RegKey> = BTreeMap::new();
    for (slot, o) in ops.iter().enumerate() {
        let (Some(key), Some(v)) = (o.key(), written(o)) else {
            continue;
        };
        if let Some(prev) = writer.insert((key, v), slot)
            && first_twice.is_none()
        {
            first_twice = Some((slot, prev));
        }
        if o.outcome == Outcome::Ok {
            let k = keys.entry(key).or_default();
            k.slots.push(slot as u32);
            k.inv.push(o.invoke() as u32);
        }
    }
    for k in keys.values_mut() {
        k.suf = vec![(u32::MAX, u32::MAX); k.slots.len() + 1];
        for i in (0..k.slots.len()).rev() {
            let done = ops[k.slots[i] as usize]
                .complete()
                .map_or(u32::MAX, |c| c as u32);
            k.suf[i] = if done < k.suf[i + 1].0 {
                (done, i as u32)
            } else {
                k.suf[i + 1]
            };
        }
    }
    let mut out = PerOp::default();
    let mut sessions: FxHashMap<(Process, Key), Session> = FxHashMap::default();
    for (slot, o) in ops.iter().enumerate() {
        let Some(key) = o.key() else { continue };
        if o.outcome != Outcome::Ok {
            continue;
        }
        if written(o).is_some() {
            let s = sessions.entry((o.process, key)).or_default();
            s.own = Some((o.invoke(), slot));
            continue;
        }
        if o.f != F::Read {
            continue;
        }
        let version = match &o.value {
            Value::Null if opts.register.nil_read_is_wildcard => None,
            Value::Null => Some(Version::Initial),
            Value::Int(v) => match writer.get(&(key, *v)) {
                Some(&w) if ops[w].outcome == Outcome::Ok => Some(Version::Write {
                    slot: w,
                    done: ops[w].complete(),
                }),
                Some(&w) if ops[w].outcome == Outcome::Info => Some(Version::Write {
                    slot: w,
                    done: None,
                }),
                // Aborted (reported by the graph and linearizability checkers).
                Some(_) => None,
                None if opts.register.initial == Some(*v) => Some(Version::Initial),
                None => None, // phantom
            },
            _ => None,
        };
        let Some(version) = version else {
            out.lags.push(Lag {
                slot,
                versions: 0,
                ns: 0,
            });
            continue;
        };
        // Does the version read precede a write begun at `inv`, in every order?
        let precedes = |inv: usize| match version {
            Version::Initial => true,
            Version::Write { done, .. } => done.is_some_and(|d| d < inv),
        };
        register_lag(h, ops, keys.get(&key), slot, &version, &mut out);
        let s = sessions.entry((o.process, key)).or_default();
        if let Some((inv, w)) = s.own
            && precedes(inv)
        {
            out.findings.push(finding(
                AnomalyKind::ReadYourWrites,
                vec![(slot, EdgeKind::Rw), (w, EdgeKind::Process)],
            ));
        }
        if let Some((inv, r1, w1)) = s.read
            && precedes(inv)
        {
            out.findings.push(finding(
                AnomalyKind::MonotonicRead,
                vec![
                    (slot, EdgeKind::Rw),
                    (w1, EdgeKind::Wr),
                    (r1, EdgeKind::Process),
                ],
            ));
        }
        if let Version::Write { slot: w, .. } = version {
            let inv = ops[w].invoke();
            if s.read.is_none_or(|(i, _, _)| inv > i) {
                s.read = Some((inv, slot, w));
            }
        }
    }
    let writers = Writers {
        of: writer,
        first_twice,
    };
    (out.sorted(ops, lags), writers)
}

/// The lag of one register read, and its stale-read finding.
fn register_lag(
    h: &History,
    ops: &[Operation],
    k: Option<&RegKey>,
    slot: usize,
    version: &Version,
    out: &mut PerOp,
) {
    let o = &ops[slot];
    let after = match *version {
        Version::Initial => None,
        Version::Write { done: Some(d), .. } => Some(d),
        Version::Write { done: None, .. } => {
            out.lags.push(Lag {
                slot,
                versions: 0,
                ns: 0,
            });
            return;
        }
    };
    let Some(k) = k else {
        out.lags.push(Lag {
            slot,
            versions: 0,
            ns: 0,
        });
        return;
    };
    // The writes begun after the version read was acknowledged and before this read
    // began; those acknowledged before it began were missed.
    let j = after.map_or(0, |c| k.inv.partition_point(|&i| (i as usize) < c));
    let end = j + k.inv[j..].partition_point(|&i| (i as usize) < o.invoke());
    let versions = (j..end)
        .filter(|&i| {
            ops[k.slots[i] as usize]
                .complete()
                .is_some_and(|c| c < o.invoke())
        })
        .count() as u64;
    let mut ns = 0;
    if versions > 0 {
        let (c, i) = k.suf[j];
        ns = time(h, o.invoke()).saturating_sub(time(h, c as usize));
        let mut f = finding(
            AnomalyKind::StaleRead,
            vec![
                (slot, EdgeKind::Rw),
                (k.slots[i as usize] as usize, EdgeKind::Realtime),
            ],
        );
        f.versions = versions;
        f.ns = ns;
        out.findings.push(f);
    }
    out.lags.push(Lag { slot, versions, ns });
}

/// The anomaly of a finding: its explanation, ops and witness cycle.
pub(crate) fn explain(h: &History, ops: &[Operation], f: &Finding) -> Anomaly {
    let o = |i: usize| &ops[f.steps[i].0];
    let t = |x: &Operation| secs(invoke_ns(h, x));
    let done = |x: &Operation| secs(complete_ns(h, x));
    let explanation = match f.kind {
        AnomalyKind::StaleRead => {
            let (r, w) = (o(0), o(1));
            let behind = if f.unseen {
                format!(
                    "; no read ever saw {}: lost, or never replicated to the nodes read",
                    w.value
                )
            } else {
                format!(
                    " ({} version{} and {:.3} ms behind)",
                    f.versions,
                    if f.versions == 1 { "" } else { "s" },
                    f.ns as f64 / 1e6
                )
            };
            format!(
                "process {} read {} from key {} at t={}: a stale read; it missed {} by process {}, acknowledged at t={}, before the read began{behind}",
                r.process,
                seen(r),
                key_of(r),
                t(r),
                what(w),
                w.process,
                done(w)
            )
        }
        AnomalyKind::MonotonicRead => {
            let (r2, w, r1) = (o(0), o(1), o(2));
            format!(
                "process {} read {} from key {} at t={}, then {} at t={}: a monotonic-read violation; the second read missed {}, which the first had already seen",
                r1.process,
                seen(r1),
                key_of(r1),
                t(r1),
                seen(r2),
                t(r2),
                what(w)
            )
        }
        AnomalyKind::ReadYourWrites => {
            let (r, mine) = (o(0), o(1));
            format!(
                "process {} {} (acknowledged at t={}), then read {} from key {} at t={}: a read-your-writes violation; the read missed its own write",
                r.process,
                did(mine),
                done(mine),
                seen(r),
                key_of(r),
                t(r)
            )
        }
        AnomalyKind::MonotonicWrites => {
            let (b, a) = (o(0), o(1));
            format!(
                "process {} {} at t={}, then {} at t={}, but the version order puts {} before {}: a monotonic-writes violation",
                a.process,
                did(a),
                t(a),
                did(b),
                t(b),
                what(b),
                what(a)
            )
        }
        _ => {
            let (b, r) = (o(0), o(1));
            format!(
                "process {} read {} from key {} at t={}, then {} at t={}, but the version order puts that write inside the state the read had already returned: a writes-follow-reads violation",
                r.process,
                seen(r),
                key_of(r),
                t(r),
                did(b),
                t(b)
            )
        }
    };
    let ids: Vec<u64> = f.steps.iter().map(|&(s, _)| op_index(h, &ops[s])).collect();
    Anomaly {
        kind: f.kind,
        key: o(0).key(),
        ops: ids.clone(),
        explanation,
        cycle: ids
            .iter()
            .zip(&f.steps)
            .map(|(&op, &(_, edge))| CycleStep { op, edge })
            .collect(),
    }
}
