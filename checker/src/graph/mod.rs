//! The `graph` checker: a dependency graph of the history and the cycles in it.
//!
//! Nodes are operations (ok ops, and indeterminate writes some read observed); edges are
//! write→read (wr), version order (ww), anti-dependency (rw), real time and process
//! order. For append histories the version order of a key is its longest read (shared
//! with the `append` checker, which also supplies lost writes, divergence, phantom and
//! aborted reads and duplicates: one place for each concept). For registers with unique
//! values only the order real time forces is used: write A precedes write B when A
//! completed before B began, linked to B's minimal such successors, so no edge is a guess.
//!
//! Real time is encoded without quadratic blow-up by *barrier* nodes: each run of
//! completions in the history gets one barrier, barriers form a chain in history order,
//! every op links to the barrier of its completion and the latest barrier links to every
//! op invoked after it. Then A reaches B through barriers exactly when A completed before
//! B began, with O(ops) edges. Barriers never appear in reported cycles: a path through
//! them is one `realtime` edge (or `process` when both ends belong to one process).
//!
//! Anomalies are counted at their cause. First the per-op kinds (`perop`: stale reads,
//! monotonic reads, read-your-writes, monotonic writes, writes-follow-reads) are decided
//! directly, once per offending op; those offending ops are left out of the graph, so
//! that no other op is blamed for a chain through them (an innocent read on another key
//! whose only cycle runs through a stale read is not a second stale read: that cycle is
//! the stale read's). Every remaining non-trivial strongly connected component is one
//! anomaly, named by the edges of the shortest cycle found in it (G0, G1c, G-single, G2,
//! with `-process` / `-realtime` variants; see `cycles`).
//!
//! Guarantees: every edge is implied by the history under the checked model (real-time
//! order respected), so every cycle is a real violation and a valid verdict means no
//! per-op anomaly and an acyclic graph; every component is reported with one concrete
//! cycle (never "a cycle exists"); `suspect_edges_unsearched` counts the further searches
//! for a shorter cycle that the work budget skipped.

mod csr;
mod cycles;
pub(crate) mod scc;

use crate::append_keys::{Analysis, KeyOps};
use crate::explain::{complete_ns, op_index, secs};
use crate::fx::FxHashMap;
use crate::perop::{self, slot_of};
use crate::report::{Anomaly, AnomalyKind, AnomalySink, CheckResult, EdgeKind, Validity};
use crate::{CheckError, Options, Workload};
use csr::{Builder, Csr};
use schism_history::{F, History, Key, Operation, Outcome, Process, Value};
use std::collections::BTreeMap;

/// Node weight of a barrier (every other node holds its op's slot in `ops`).
pub(crate) const BARRIER: u32 = u32::MAX;
const NONE: u32 = u32::MAX;

/// Every kind the graph checker reports: the kinds it owns (`AnomalyKind::owners`, the
/// one place that says which checker counts what), less the legacy `cycle` — components
/// are named G0…G2 now.
fn kinds() -> Vec<AnomalyKind> {
    AnomalyKind::ALL
        .into_iter()
        .filter(|k| *k != AnomalyKind::Cycle && k.owners().contains(&"graph"))
        .collect()
}

/// The dependency graph of one history.
#[derive(Debug)]
pub(crate) struct HistoryGraph {
    /// Node weights are op slots in `ops`, or `BARRIER`.
    pub(crate) g: Csr,
    /// Per node: the history position of its invoke (ops) or creation (barriers).
    pub(crate) pos: Vec<u32>,
    /// Number of op nodes (barriers excluded).
    op_nodes: usize,
}

/// A `HistoryGraph` being built: nodes and real-time edges first, then the data edges.
struct GraphBuilder {
    b: Builder,
    pos: Vec<u32>,
    node_of: Vec<u32>,
}

impl GraphBuilder {
    /// The graph of the `included` ops: nodes, real-time barriers and process order, then
    /// the edges `data` adds. Both run twice (`Builder`: counted, then placed), so `data`
    /// must add the same edges each time.
    fn build(
        ops: &[Operation],
        included: &[bool],
        mut data: impl FnMut(&mut GraphBuilder),
    ) -> HistoryGraph {
        let n_inc = included.iter().filter(|&&b| b).count();
        let mut hg = GraphBuilder {
            b: Builder::with_capacity(2 * n_inc),
            pos: Vec::with_capacity(2 * n_inc),
            node_of: vec![NONE; ops.len()],
        };
        // The included ops' invokes are in slot order (`ops` is in invoke order); their
        // ok completions, sorted by history position (once for both passes), are merged
        // in: every event in history order. An indeterminate op may take effect at any
        // time after its invoke: its `info` line orders nothing after it.
        let mut done: Vec<u32> = (0..ops.len())
            .filter(|&s| {
                included[s] && ops[s].outcome == Outcome::Ok && ops[s].complete().is_some()
            })
            .map(|s| s as u32)
            .collect();
        done.sort_unstable_by_key(|&s| ops[s as usize].complete());
        hg.realtime(ops, included, &done);
        data(&mut hg);
        hg.b.start_filling();
        hg.realtime(ops, included, &done);
        drop(done);
        data(&mut hg);
        hg.finish()
    }

    /// Nodes for the included ops, then real-time barriers and process order; `done`:
    /// the included ok ops that complete, by completion.
    fn realtime(&mut self, ops: &[Operation], included: &[bool], done: &[u32]) {
        let first = !self.b.is_filling();
        let GraphBuilder { b: g, pos, node_of } = self;
        let mut invokes = (0..ops.len()).filter(|&s| included[s]).peekable();
        let mut done = done.iter().copied().peekable();
        let mut barrier: Option<u32> = None;
        let mut fresh = false;
        let mut last_of: FxHashMap<Process, u32> = FxHashMap::default();
        loop {
            let next_invoke = invokes.peek().map(|&s| ops[s].invoke());
            let next_done = done.peek().and_then(|&s| ops[s as usize].complete());
            let invoke = match (next_invoke, next_done) {
                (None, None) => break,
                (Some(i), Some(c)) => i < c,
                (i, _) => i.is_some(),
            };
            if invoke {
                let slot = invokes.next().expect("peeked");
                let p = ops[slot].invoke();
                let n = g.add_node(slot as u32);
                if first {
                    pos.push(p as u32);
                    node_of[slot] = n;
                }
                if let Some(b) = barrier {
                    g.add_edge(b, n, EdgeKind::Realtime);
                    fresh = false;
                }
                if let Some(prev) = last_of.insert(ops[slot].process, n) {
                    g.add_edge(prev, n, EdgeKind::Process);
                }
            } else {
                let slot = done.next().expect("peeked") as usize;
                let p = ops[slot].complete().expect("ok ops complete");
                let b = match barrier {
                    Some(b) if fresh => b,
                    prev => {
                        let b = g.add_node(BARRIER);
                        if first {
                            pos.push(p as u32);
                        }
                        if let Some(prev) = prev {
                            g.add_edge(prev, b, EdgeKind::Realtime);
                        }
                        barrier = Some(b);
                        fresh = true;
                        b
                    }
                };
                g.add_edge(node_of[slot], b, EdgeKind::Realtime);
            }
        }
    }

    fn node(&self, slot: usize) -> Option<u32> {
        match self.node_of[slot] {
            NONE => None,
            n => Some(n),
        }
    }

    fn edge(&mut self, from: usize, to: usize, kind: EdgeKind) {
        if let (Some(a), Some(b)) = (self.node(from), self.node(to))
            && a != b
        {
            self.b.add_edge(a, b, kind);
        }
    }

    /// The frozen graph; the per-slot index is dropped.
    fn finish(self) -> HistoryGraph {
        HistoryGraph {
            g: self.b.freeze(),
            pos: self.pos,
            op_nodes: self.node_of.iter().filter(|&&n| n != NONE).count(),
        }
    }
}

/// Builds the graph of an append history from its per-key analysis, without the ops
/// `masked` (the offenders of per-op anomalies).
fn build_append(ops: &[Operation], a: &Analysis<'_>, masked: &[bool]) -> HistoryGraph {
    let mut included: Vec<bool> = ops
        .iter()
        .zip(masked)
        .map(|(o, &m)| o.outcome == Outcome::Ok && !m)
        .collect();
    let orders: Vec<(&[i64], &KeyOps<'_>)> =
        a.keys.values().map(|k| (k.version_order().0, k)).collect();
    // Indeterminate appends that some read observed took effect: they are versions.
    for (order, k) in &orders {
        for v in order.iter() {
            if let Some(&w) = k.appends.get(v)
                && w.outcome == Outcome::Info
                && !masked[slot_of(ops, w)]
            {
                included[slot_of(ops, w)] = true;
            }
        }
    }
    GraphBuilder::build(ops, &included, |hg| {
        for &(order, k) in &orders {
            // The writer of each order position, if it is a node (phantoms and aborted
            // appends are not: the append checker reports them; nor are masked appends, so
            // the ww chain runs past them).
            let writer: Vec<Option<usize>> = order
                .iter()
                .map(|v| {
                    k.appends
                        .get(v)
                        .map(|w| slot_of(ops, w))
                        .filter(|&w| hg.node(w).is_some())
                })
                .collect();
            // next[q]: the first writer at position ≥ q.
            let mut next: Vec<Option<usize>> = vec![None; order.len() + 1];
            for q in (0..order.len()).rev() {
                next[q] = writer[q].or(next[q + 1]);
            }
            let mut prev: Option<usize> = None;
            for w in writer.iter().flatten() {
                if let Some(p) = prev {
                    hg.edge(p, *w, EdgeKind::Ww);
                }
                prev = Some(*w);
            }
            for (&(r, vals), &prefix) in k.reads.iter().zip(&k.prefix) {
                if !prefix {
                    continue; // divergent: reported by the append checker
                }
                let rs = slot_of(ops, r);
                if let Some(w) = writer[..vals.len()].iter().rev().flatten().next() {
                    hg.edge(*w, rs, EdgeKind::Wr);
                }
                if let Some(w) = next[vals.len()] {
                    hg.edge(rs, w, EdgeKind::Rw);
                }
            }
        }
    })
}

/// One register key's writes (ok, or indeterminate but observed), in invoke order.
struct RegKey {
    writes: Vec<u32>,
    reads: Vec<u32>,
}

/// Builds the graph of a register history (unique written values).
fn build_register(
    h: &History,
    ops: &[Operation],
    opts: &Options,
    sink: &mut AnomalySink,
    masked: &[bool],
    writers: Option<perop::Writers>,
) -> Result<HistoryGraph, CheckError> {
    // Value → its write (any outcome), per key; and the ops by key.
    let written = |o: &Operation| -> Option<i64> {
        match (&o.f, &o.value) {
            (F::Write, Value::Int(v)) => Some(*v),
            (F::Cas, Value::List(l)) if l.len() == 2 => Some(l[1]),
            _ => None,
        }
    };
    // `perop::register`'s index, or one built here the same way.
    let perop::Writers {
        of: writer,
        first_twice,
    } = writers.unwrap_or_else(|| perop::register_writers(h, ops, opts, false).1);
    let mut keys: BTreeMap<Key, RegKey> = BTreeMap::new();
    for (slot, o) in ops.iter().enumerate() {
        // Only an error names the op: its history line is not touched otherwise.
        let index = || h.ops[o.invoke()].index();
        let Some(key) = o.key() else {
            return Err(CheckError::Op {
                index: index(),
                msg: format!("{} has no key", o.f),
            });
        };
        match o.f {
            F::Write | F::Cas => {
                let Some(v) = written(o) else {
                    return Err(CheckError::Op {
                        index: index(),
                        msg: format!("{} value {} is not of the register workload", o.f, o.value),
                    });
                };
                if let Some((_, prev)) = first_twice.filter(|&(s, _)| s == slot) {
                    return Err(CheckError::Op {
                        index: index(),
                        msg: format!(
                            "value {v} is written to key {key} twice (also at op index {}); the graph checker needs unique values",
                            h.ops[ops[prev].invoke()].index()
                        ),
                    });
                }
                keys.entry(key).or_insert_with(|| RegKey {
                    writes: Vec::new(),
                    reads: Vec::new(),
                });
            }
            F::Read => {}
            _ => {
                return Err(CheckError::Op {
                    index: index(),
                    msg: format!(
                        "function {:?} does not belong to the register workload (read, write, cas)",
                        o.f.as_str()
                    ),
                });
            }
        }
    }
    // What each op read: a read's value, a cas's expected value.
    let read_value = |o: &Operation| -> Option<Option<i64>> {
        match (&o.f, &o.value) {
            (F::Read, Value::Int(v)) => Some(Some(*v)),
            (F::Read, Value::Null) if !opts.register.nil_read_is_wildcard => Some(None),
            (F::Cas, Value::List(l)) if l.len() == 2 => Some(Some(l[0])),
            _ => None,
        }
    };
    let mut included: Vec<bool> = ops
        .iter()
        .zip(masked)
        .map(|(o, &m)| o.outcome == Outcome::Ok && !m)
        .collect();
    let mut observed: Vec<bool> = vec![false; ops.len()];
    // The writer of what each op read (`NONE`: no write wrote it): ok ops' here, with
    // one look-up each; an indeterminate op that turns out included gets its own below.
    // The value index is then freed before the graph is laid out.
    let mut source: Vec<u32> = vec![NONE; ops.len()];
    for (slot, o) in ops.iter().enumerate() {
        if o.outcome != Outcome::Ok {
            continue;
        }
        let Some(Some(v)) = read_value(o) else {
            continue;
        };
        let key = o.key().expect("checked above");
        match writer.get(&(key, v)) {
            Some(&w) if ops[w].outcome == Outcome::Fail => {
                source[slot] = w as u32;
                let (r, w) = (&ops[slot], &ops[w]);
                sink.push_with(AnomalyKind::AbortedRead, || {
                    Anomaly::new(
                        AnomalyKind::AbortedRead,
                        Some(key),
                        vec![op_index(h, r), op_index(h, w)],
                        format!(
                            "{} read {v} from key {key}, whose write by process {} failed at t={} (it certainly did not happen)",
                            crate::explain::who(h, r),
                            w.process,
                            secs(complete_ns(h, w))
                        ),
                    )
                });
            }
            Some(&w) => {
                source[slot] = w as u32;
                observed[w] = true;
                if ops[w].outcome == Outcome::Info {
                    included[w] = true;
                }
            }
            None if opts.register.initial == Some(v) => {}
            None => {
                let r = &ops[slot];
                sink.push_with(AnomalyKind::PhantomRead, || {
                    Anomaly::new(
                        AnomalyKind::PhantomRead,
                        Some(key),
                        vec![op_index(h, r)],
                        format!(
                            "{} read {v} from key {key}, which no write ever wrote",
                            crate::explain::who(h, r)
                        ),
                    )
                });
            }
        }
    }
    for (slot, o) in ops.iter().enumerate() {
        if !included[slot] {
            continue;
        }
        let key = o.key().expect("checked above");
        let k = keys.entry(key).or_insert_with(|| RegKey {
            writes: Vec::new(),
            reads: Vec::new(),
        });
        if written(o).is_some() {
            k.writes.push(slot as u32);
        }
        if read_value(o).is_some() {
            k.reads.push(slot as u32);
        }
    }
    for (slot, o) in ops.iter().enumerate() {
        if o.outcome == Outcome::Ok {
            continue; // looked up above
        }
        if let (true, Some(Some(v))) = (included[slot], read_value(o))
            && let Some(&w) = writer.get(&(o.key().expect("checked above"), v))
        {
            source[slot] = w as u32;
        }
    }
    drop((writer, observed));
    // Each key's edges, derived once for both passes of the build: per write that
    // completes, its range of minimal successors; per read, its writer (`NONE`: the
    // initial value) and the range of writes forced after what it read.
    let mut plans: Vec<RegPlan> = Vec::with_capacity(keys.len());
    for k in keys.values() {
        // Writes in invoke order; an indeterminate write never completes.
        let inv: Vec<usize> = k.writes.iter().map(|&w| ops[w as usize].invoke()).collect();
        let done: Vec<usize> = k
            .writes
            .iter()
            .map(|&w| match ops[w as usize].outcome {
                Outcome::Ok => ops[w as usize].complete().unwrap_or(usize::MAX),
                _ => usize::MAX,
            })
            .collect();
        let mut sufmin = vec![usize::MAX; inv.len() + 1];
        for i in (0..inv.len()).rev() {
            sufmin[i] = done[i].min(sufmin[i + 1]);
        }
        // The minimal writes forced after a version that completed at `after`: those
        // invoked after it and before the earliest completion among them.
        let successors = |after: Option<usize>| -> (u32, u32) {
            let j = after.map_or(0, |c| inv.partition_point(|&i| i < c));
            let m = sufmin[j];
            let end = j + inv[j..].partition_point(|&i| i < m);
            (j as u32, end as u32)
        };
        let mut plan = RegPlan {
            writes: Vec::with_capacity(k.writes.len()),
            reads: Vec::with_capacity(k.reads.len()),
        };
        for (i, &w) in k.writes.iter().enumerate() {
            if done[i] == usize::MAX {
                continue;
            }
            let (j, end) = successors(Some(done[i]));
            plan.writes.push((w, j, end));
        }
        for &r in &k.reads {
            let r = r as usize;
            let o = &ops[r];
            let v = read_value(o).expect("reads hold read values");
            let (wr, version_done) = match v {
                None => (NONE, None),
                Some(v) => match Some(source[r] as usize).filter(|_| source[r] != NONE) {
                    Some(w) if included[w] => match ops[w].outcome {
                        Outcome::Ok => (w as u32, ops[w].complete()),
                        // Indeterminate: it forces nothing after it.
                        _ => {
                            plan.reads.push((r as u32, w as u32, 0, 0));
                            continue;
                        }
                    },
                    Some(_) => continue,
                    None if opts.register.initial == Some(v) => (NONE, None),
                    None => continue,
                },
            };
            let (j, end) = successors(version_done);
            plan.reads.push((r as u32, wr, j, end));
        }
        plans.push(plan);
    }
    drop(source);
    let writes: Vec<&[u32]> = keys.values().map(|k| k.writes.as_slice()).collect();
    Ok(GraphBuilder::build(ops, &included, |hg| {
        for (plan, writes) in plans.iter().zip(&writes) {
            for &(w, j, end) in &plan.writes {
                for &s in &writes[j as usize..end as usize] {
                    hg.edge(w as usize, s as usize, EdgeKind::Ww);
                }
            }
            for &(r, w, j, end) in &plan.reads {
                if w != NONE {
                    hg.edge(w as usize, r as usize, EdgeKind::Wr);
                }
                for &s in &writes[j as usize..end as usize] {
                    hg.edge(r as usize, s as usize, EdgeKind::Rw);
                }
            }
        }
    }))
}

/// One register key's edges, planned once for both passes of the graph's build.
struct RegPlan {
    /// Per write that completes: (slot, its minimal successors as a range of the key's
    /// writes).
    writes: Vec<(u32, u32, u32)>,
    /// Per read that takes edges: (slot, writer slot or `NONE`, the range of writes
    /// forced after what it read).
    reads: Vec<(u32, u32, u32, u32)>,
}

/// The graph checker on paired ops of an append or register history.
pub(crate) fn check_ops(
    h: &History,
    ops: &[Operation],
    opts: &Options,
    workload: Workload,
    shared: &mut crate::Shared,
) -> Result<CheckResult, CheckError> {
    let mut sink = AnomalySink::new(opts.max_anomalies_per_kind);
    let mut figures = serde_json::Map::new();
    let mut aborted = false;
    // Nodes are the ops and at most one barrier per op.
    if let Some(o) = ops.get(csr::MAX_NODES / 2) {
        return Err(CheckError::Op {
            index: h.ops[o.invoke()].index(),
            msg: format!(
                "the graph checker holds at most {} operations; check a shorter history, or pick other checkers with --checker",
                csr::MAX_NODES / 2
            ),
        });
    }
    let appended: perop::PerOp;
    let (hg, per_op) = match workload {
        Workload::Append => {
            let mut a = Analysis::new(h, ops)?;
            aborted |= a.check_keys(h, opts, &mut sink).is_some();
            a.figures(&mut figures);
            appended = perop::append(h, ops, &a, false);
            let hg = build_append(ops, &a, &appended.offenders(ops.len()));
            (hg, &appended)
        }
        Workload::Register => {
            let masked = shared.register(h, ops, opts).offenders(ops.len());
            let writers = shared.take_writers();
            let hg = build_register(h, ops, opts, &mut sink, &masked, writers)?;
            (hg, shared.register(h, ops, opts))
        }
        other => {
            return Err(CheckError::Unsupported {
                checker: "graph",
                workload: other,
            });
        }
    };
    for f in &per_op.findings {
        sink.push_with(f.kind, || perop::explain(h, ops, f));
    }
    figures.insert(
        "per_op_offenders".into(),
        per_op
            .offenders(ops.len())
            .iter()
            .filter(|&&m| m)
            .count()
            .into(),
    );
    figures.insert("graph_ops".into(), hg.op_nodes.into());
    figures.insert(
        "graph_barriers".into(),
        (hg.g.node_count() - hg.op_nodes).into(),
    );
    figures.insert("graph_edges".into(), hg.g.edge_count().into());
    let outcome = if aborted || opts.aborted() {
        None
    } else {
        Some(cycles::find(h, ops, &hg, opts, &mut sink, &mut figures))
    };
    let found = !sink.is_empty();
    let anomalies = sink.finish(&kinds(), &mut figures);
    let validity = match outcome {
        _ if found => Validity::Invalid,
        None => {
            figures.insert("unknown_reason".into(), "aborted".into());
            Validity::Unknown
        }
        Some(false) => {
            figures.insert(
                "unknown_reason".into(),
                "aborted during the cycle search".into(),
            );
            Validity::Unknown
        }
        Some(true) => Validity::Valid,
    };
    Ok(CheckResult {
        checker: "graph".into(),
        validity,
        anomalies,
        figures,
    })
}
