//! Cycle search in a history graph: Tarjan components, then the shortest cycle through
//! each suspect edge (0-1 BFS inside the component), classified and explained.
//!
//! Guarantees: every reported cycle exists in the graph (it is reconstructed edge by
//! edge); barrier nodes are collapsed into one `realtime` (or `process`) edge; the total
//! search work is bounded (`Options`-independent, linear in the graph size), and a
//! component left without a witness is still reported, as an unexplained cycle.

use super::{BARRIER, HistoryGraph, scc};
use crate::Options;
use crate::explain::{complete_ns, invoke_ns, list, op_index, secs};
use crate::fx::FxHashSet;
use crate::report::{Anomaly, AnomalyKind, AnomalySink, CycleStep, EdgeKind};
use petgraph::Direction::Outgoing;
use petgraph::graph::NodeIndex;
use schism_history::{F, History, Operation, Value};
use std::collections::VecDeque;

const UNSEEN: u32 = u32::MAX;

/// A collapsed cycle: op slots and the edge leaving each (the last closes the cycle).
type Steps = Vec<(usize, EdgeKind)>;

/// Searches every non-trivial component; returns false if aborted.
pub(super) fn find(
    h: &History,
    ops: &[Operation],
    hg: &HistoryGraph,
    opts: &Options,
    sink: &mut AnomalySink,
    figures: &mut serde_json::Map<String, serde_json::Value>,
) -> bool {
    let g = &hg.g;
    let sccs = scc::tarjan(g);
    let mut members: Vec<Vec<u32>> = vec![Vec::new(); sccs.sizes.len()];
    let mut nontrivial = 0u64;
    for (c, &s) in sccs.sizes.iter().enumerate() {
        if s > 1 {
            nontrivial += 1;
            members[c].reserve(s as usize);
        }
    }
    figures.insert("sccs".into(), nontrivial.into());
    if nontrivial == 0 {
        figures.insert("cycles_found".into(), 0.into());
        return true;
    }
    for (n, &c) in sccs.comp.iter().enumerate() {
        if sccs.sizes[c as usize] > 1 {
            members[c as usize].push(n as u32);
        }
    }
    let n = g.node_count();
    let mut bfs = Bfs {
        dist: vec![0; n],
        parent: vec![(UNSEEN, EdgeKind::Wr); n],
        stamp: vec![0; n],
        closed: vec![0; n],
        epoch: 0,
        deque: VecDeque::new(),
    };
    let mut budget: u64 = 10_000_000u64.max(4 * (n as u64 + g.edge_count() as u64));
    let (mut found, mut unsearched, mut unexplained) = (0u64, 0u64, 0u64);
    let mut covered: FxHashSet<(u32, u32)> = FxHashSet::default();
    for (c, nodes) in members.iter().enumerate() {
        if nodes.len() < 2 {
            continue;
        }
        if opts.aborted() {
            return false;
        }
        let mut suspects: Vec<(u8, u32, u32, EdgeKind)> = Vec::new();
        for &u in nodes {
            for e in g.edges(NodeIndex::new(u as usize)) {
                use petgraph::visit::EdgeRef;
                let v = e.target().index() as u32;
                if sccs.comp[v as usize] != c as u32 {
                    continue;
                }
                let rank = match e.weight() {
                    EdgeKind::Rw => 0,
                    EdgeKind::Ww => 1,
                    EdgeKind::Wr => 2,
                    _ => continue,
                };
                suspects.push((rank, u, v, *e.weight()));
            }
        }
        suspects.sort_unstable_by_key(|s| (s.0, hg.pos[s.1 as usize], s.1, s.2));
        let mut explained = false;
        for &(_, u, v, kind) in &suspects {
            if covered.contains(&(u, v)) {
                continue;
            }
            if budget == 0 {
                unsearched += 1;
                continue;
            }
            let limit = match g[NodeIndex::new(u as usize)] {
                BARRIER => u32::MAX,
                slot => ops[slot as usize]
                    .complete
                    .map_or(hg.pos[u as usize], |p| p as u32),
            };
            // The weakest explanation first: a cycle of dependencies and process order
            // alone (a session or causal violation), then one that needs real time.
            let mut path = bfs
                .run(hg, &sccs.comp, c as u32, v, u, limit, false, &mut budget)
                .map(|p| (p, false));
            if path.is_none() {
                path = bfs
                    .run(hg, &sccs.comp, c as u32, v, u, limit, true, &mut budget)
                    .or_else(|| {
                        bfs.run(hg, &sccs.comp, c as u32, v, u, u32::MAX, true, &mut budget)
                    })
                    .map(|p| (p, true));
            }
            let Some((path, realtime)) = path else {
                continue;
            };
            // The cycle: u -kind-> v -…-> u.
            let mut nodes_edges: Vec<(u32, EdgeKind)> = vec![(u, kind)];
            nodes_edges.extend(path.iter().copied().take(path.len() - 1));
            // One report per rw edge: a cycle whose rw edges were all explained already
            // (found again through a ww or wr edge) adds nothing.
            let len = nodes_edges.len();
            let ring = |i: usize| (nodes_edges[i].0, nodes_edges[(i + 1) % len].0);
            let rws: Vec<(u32, u32)> = (0..len)
                .filter(|&i| nodes_edges[i].1 == EdgeKind::Rw)
                .map(ring)
                .collect();
            let new_rw = rws.iter().any(|e| !covered.contains(e));
            for i in 0..len {
                covered.insert(ring(i));
            }
            explained = true;
            if !rws.is_empty() && !new_rw {
                continue;
            }
            let steps = collapse(hg, ops, &nodes_edges);
            found += 1;
            let (kind, steps) = classify(ops, steps, realtime);
            sink.push_with(kind, || explain(h, ops, kind, &steps));
        }
        if !explained {
            unexplained += 1;
            let ops_in: Vec<u64> = nodes
                .iter()
                .filter(|&&n| g[NodeIndex::new(n as usize)] != BARRIER)
                .take(8)
                .map(|&n| op_index(h, &ops[g[NodeIndex::new(n as usize)] as usize]))
                .collect();
            sink.push_with(AnomalyKind::Cycle, || {
                Anomaly::new(
                    AnomalyKind::Cycle,
                    None,
                    ops_in.clone(),
                    format!(
                        "{} ops (first indices {:?}) lie on a dependency cycle that no order can satisfy; the search budget ran out before a shortest cycle was named",
                        nodes.len(),
                        ops_in
                    ),
                )
            });
        }
    }
    figures.insert("cycles_found".into(), found.into());
    figures.insert("suspect_edges_unsearched".into(), unsearched.into());
    figures.insert("sccs_unexplained".into(), unexplained.into());
    true
}

struct Bfs {
    dist: Vec<u32>,
    parent: Vec<(u32, EdgeKind)>,
    stamp: Vec<u32>,
    closed: Vec<u32>,
    epoch: u32,
    deque: VecDeque<u32>,
}

impl Bfs {
    /// Shortest path (ops counted, barrier hops free) from `from` to `to` inside
    /// component `c`, visiting only nodes at history positions ≤ `limit`, and using
    /// real-time edges only when `realtime`. Returns the
    /// path as (node, edge to the next node) from `from`, ending with (`to`, _).
    #[allow(clippy::too_many_arguments)]
    fn run(
        &mut self,
        hg: &HistoryGraph,
        comp: &[u32],
        c: u32,
        from: u32,
        to: u32,
        limit: u32,
        realtime: bool,
        budget: &mut u64,
    ) -> Option<Vec<(u32, EdgeKind)>> {
        let g = &hg.g;
        self.epoch += 1;
        let epoch = self.epoch;
        self.deque.clear();
        self.stamp[from as usize] = epoch;
        self.dist[from as usize] = 0;
        self.parent[from as usize] = (UNSEEN, EdgeKind::Wr);
        self.deque.push_back(from);
        while let Some(x) = self.deque.pop_front() {
            if x == to {
                let mut path = vec![(to, EdgeKind::Wr)];
                let mut cur = to;
                while cur != from {
                    let (p, k) = self.parent[cur as usize];
                    path.push((p, k));
                    cur = p;
                }
                path.reverse();
                return Some(path);
            }
            if self.closed[x as usize] == epoch {
                continue;
            }
            self.closed[x as usize] = epoch;
            if *budget == 0 {
                return None;
            }
            *budget -= 1;
            let dx = self.dist[x as usize];
            let from_barrier = g[NodeIndex::new(x as usize)] == BARRIER;
            let w = u32::from(!from_barrier);
            let mut e = g.first_edge(NodeIndex::new(x as usize), Outgoing);
            while let Some(ei) = e {
                e = g.next_edge(ei, Outgoing);
                let edge = &g.raw_edges()[ei.index()];
                let y = edge.target().index() as u32;
                if comp[y as usize] != c
                    || hg.pos[y as usize] > limit
                    || (!realtime && edge.weight == EdgeKind::Realtime)
                {
                    continue;
                }
                let nd = dx + w;
                if self.stamp[y as usize] == epoch && self.dist[y as usize] <= nd {
                    continue;
                }
                self.stamp[y as usize] = epoch;
                self.dist[y as usize] = nd;
                self.parent[y as usize] = (x, edge.weight);
                if w == 0 {
                    self.deque.push_front(y);
                } else {
                    self.deque.push_back(y);
                }
            }
        }
        None
    }
}

/// Drops barrier nodes: an op followed by barriers is one realtime edge, relabelled
/// `process` when both ends belong to the same process.
fn collapse(hg: &HistoryGraph, ops: &[Operation], path: &[(u32, EdgeKind)]) -> Steps {
    let mut steps: Steps = Vec::new();
    for &(n, k) in path {
        let w = hg.g[NodeIndex::new(n as usize)];
        if w != BARRIER {
            steps.push((w as usize, k));
        }
    }
    let len = steps.len();
    for i in 0..len {
        let next = steps[(i + 1) % len].0;
        if steps[i].1 == EdgeKind::Realtime && ops[steps[i].0].process == ops[next].process {
            steps[i].1 = EdgeKind::Process;
        }
    }
    steps
}

fn is_read(o: &Operation) -> bool {
    o.f == F::Read
}

/// The anomaly a cycle shows, with the cycle rotated to start at its telling op.
///
/// A cycle that needs real time and has an rw edge is a stale read. Cycles of dependencies
/// and process order alone are session or causal violations: when process order appears
/// in more than one run (two sessions) and one process read then wrote, writes-follow-reads;
/// else an rw edge reached by process order is a monotonic read when that run of process
/// order starts at a read, read-your-writes when it starts at a write; without rw, ww plus
/// process order is writes-follow-reads (read→write) or monotonic writes (write→write).
/// Anything else is a plain `cycle`.
fn classify(ops: &[Operation], mut steps: Steps, realtime: bool) -> (AnomalyKind, Steps) {
    let len = steps.len();
    let kind_at = |steps: &Steps, i: usize| steps[i % len].1;
    let rw: Vec<usize> = (0..len).filter(|&i| steps[i].1 == EdgeKind::Rw).collect();
    // Process edges from a read to a write, and from a write to a write.
    let po = |steps: &Steps, read_src: bool| {
        (0..len).find(|&i| {
            steps[i].1 == EdgeKind::Process
                && is_read(&ops[steps[i].0]) == read_src
                && !is_read(&ops[steps[(i + 1) % len].0])
        })
    };
    if realtime {
        if !rw.is_empty() {
            // Rotate to an rw edge whose source was reached by real time, if any.
            let i = rw
                .iter()
                .copied()
                .find(|&i| kind_at(&steps, i + len - 1) == EdgeKind::Realtime)
                .unwrap_or(rw[0]);
            steps.rotate_left(i);
            return (AnomalyKind::StaleRead, steps);
        }
        return (AnomalyKind::Cycle, steps);
    }
    // Runs of consecutive process-order edges: one run means one process's session.
    let runs = (0..len)
        .filter(|&i| {
            steps[i].1 == EdgeKind::Process && kind_at(&steps, i + len - 1) != EdgeKind::Process
        })
        .count();
    let session_rw = rw
        .iter()
        .copied()
        .find(|&i| kind_at(&steps, i + len - 1) == EdgeKind::Process);
    if runs > 1
        && let Some(i) = po(&steps, true)
    {
        steps.rotate_left(i);
        return (AnomalyKind::WritesFollowReads, steps);
    }
    if let Some(i) = session_rw {
        // The first op of the process-order run that leads to the rw source.
        let mut j = i + len - 1;
        while kind_at(&steps, j + len - 1) == EdgeKind::Process && (j + len - 1) % len != i {
            j += len - 1;
        }
        let first = &ops[steps[j % len].0];
        steps.rotate_left(i);
        let kind = if is_read(first) {
            AnomalyKind::MonotonicRead
        } else {
            AnomalyKind::ReadYourWrites
        };
        return (kind, steps);
    }
    if rw.is_empty()
        && let Some(i) = po(&steps, true)
    {
        steps.rotate_left(i);
        return (AnomalyKind::WritesFollowReads, steps);
    }
    if rw.is_empty()
        && let Some(i) = po(&steps, false)
    {
        steps.rotate_left(i);
        return (AnomalyKind::MonotonicWrites, steps);
    }
    (AnomalyKind::Cycle, steps)
}

/// `process 3`.
pub(crate) fn who(_h: &History, o: &Operation) -> String {
    format!("process {}", o.process)
}

fn key(o: &Operation) -> u64 {
    o.key.unwrap_or(0)
}

/// What a read returned: `[1,2]`, `3`, `nil`.
fn seen(o: &Operation) -> String {
    match &o.value {
        Value::List(l) => list(l),
        other => other.to_string(),
    }
}

/// A noun for a write: `append 2 to key 7`, `write 3 to key 1`, `cas 2→3 on key 1`.
fn what(o: &Operation) -> String {
    match (&o.f, &o.value) {
        (F::Cas, Value::List(l)) if l.len() == 2 => {
            format!("cas {}→{} on key {}", l[0], l[1], key(o))
        }
        (F::Read, _) => format!("the read of key {} that saw {}", key(o), seen(o)),
        (f, v) => format!("{f} {v} to key {}", key(o)),
    }
}

/// A verb phrase: `appended 2 to key 7`, `wrote 3 to key 1`, `read [1] from key 7`.
fn did(o: &Operation) -> String {
    match (&o.f, &o.value) {
        (F::Append, v) => format!("appended {v} to key {}", key(o)),
        (F::Write, v) => format!("wrote {v} to key {}", key(o)),
        (F::Read, _) => format!("read {} from key {}", seen(o), key(o)),
        _ => format!("ran {}", what(o)),
    }
}

/// Whether read `r` saw write `w` itself.
fn saw(r: &Operation, w: &Operation) -> bool {
    if r.key != w.key {
        return false;
    }
    match (&r.value, &w.f, &w.value) {
        (Value::List(l), F::Append, Value::Int(x)) => l.contains(x),
        (Value::Int(v), F::Write, Value::Int(x)) => v == x,
        (Value::Int(v), F::Cas, Value::List(c)) => c.get(1) == Some(v),
        _ => false,
    }
}

/// The first step of the run of process-order edges that ends at step 0.
fn run_start(steps: &Steps) -> usize {
    let mut j = steps.len() - 1;
    while j > 1 && steps[j - 1].1 == EdgeKind::Process {
        j -= 1;
    }
    j
}

fn explain(h: &History, ops: &[Operation], kind: AnomalyKind, steps: &Steps) -> Anomaly {
    let o = |i: usize| &ops[steps[i % steps.len()].0];
    let last = steps.len() - 1;
    let t = |x: &Operation| secs(invoke_ns(h, x));
    let done = |x: &Operation| secs(complete_ns(h, x));
    let explanation = match kind {
        AnomalyKind::StaleRead => {
            let (r, w, a) = (o(0), o(1), o(last));
            let tail = if std::ptr::eq(a, w) {
                format!("acknowledged at t={}, before the read began", done(a))
            } else {
                format!(
                    "which precedes {} by process {}, acknowledged at t={}, before the read began",
                    what(a),
                    a.process,
                    done(a)
                )
            };
            format!(
                "process {} read {} from key {} at t={}: a stale read; it missed {}, {tail}",
                r.process,
                seen(r),
                key(r),
                t(r),
                what(w)
            )
        }
        AnomalyKind::MonotonicRead => {
            let (r2, w, r1) = (o(0), o(1), o(run_start(steps)));
            let second = if r1.key == r2.key {
                format!("then {} at t={}", seen(r2), t(r2))
            } else {
                format!("then {} from key {} at t={}", seen(r2), key(r2), t(r2))
            };
            let tail = if saw(r1, w) {
                "which the first had already seen"
            } else {
                "which precedes what the first had already seen"
            };
            format!(
                "process {} read {} from key {} at t={}, {second}: a monotonic-read violation; the second read missed {}, {tail}",
                r1.process,
                seen(r1),
                key(r1),
                t(r1),
                what(w)
            )
        }
        AnomalyKind::ReadYourWrites => {
            let (r, w, mine) = (o(0), o(1), o(run_start(steps)));
            let missed = if std::ptr::eq(w, mine) {
                "its own write".to_string()
            } else {
                format!("{}, which precedes its own write", what(w))
            };
            format!(
                "process {} {} (acknowledged at t={}), then read {} from key {} at t={}: a read-your-writes violation; the read missed {missed}",
                r.process,
                did(mine),
                done(mine),
                seen(r),
                key(r),
                t(r)
            )
        }
        AnomalyKind::MonotonicWrites => {
            let (a, b) = (o(0), o(1));
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
        AnomalyKind::WritesFollowReads => {
            let (r, b) = (o(0), o(1));
            let a = o(last);
            let tail = match steps.iter().position(|s| s.1 == EdgeKind::Rw) {
                Some(i) => {
                    let q = o(i);
                    format!(
                        "yet process {} saw {} and then read {} from key {} at t={}, missing {}: a writes-follow-reads (causal) violation",
                        q.process,
                        what(b),
                        seen(q),
                        key(q),
                        t(q),
                        what(a)
                    )
                }
                None => format!(
                    "but the version order puts {} before {}: a writes-follow-reads violation",
                    what(b),
                    what(a)
                ),
            };
            format!(
                "process {} read {} from key {} at t={} (seeing {}), then {} at t={}, {tail}",
                r.process,
                seen(r),
                key(r),
                t(r),
                what(a),
                did(b),
                t(b),
            )
        }
        _ => {
            let mut s = String::from("a dependency cycle no order can satisfy: ");
            for (i, &(slot, e)) in steps.iter().enumerate() {
                let x = &ops[slot];
                s.push_str(&format!(
                    "{} (process {}, t={}) -{e}-> ",
                    what(x),
                    x.process,
                    t(x)
                ));
                if i == last {
                    s.push_str("back to the first");
                }
            }
            s
        }
    };
    let op_ids: Vec<u64> = steps.iter().map(|&(s, _)| op_index(h, &ops[s])).collect();
    let k = o(0).key;
    Anomaly {
        kind,
        key: k,
        ops: op_ids.clone(),
        explanation,
        cycle: op_ids
            .iter()
            .zip(steps)
            .map(|(&op, &(_, edge))| CycleStep { op, edge })
            .collect(),
    }
}
