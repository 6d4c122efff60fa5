//! Cycle search in a history graph: Tarjan components, then one shortest cycle per
//! component, classified by its edge types with Adya's and Elle's names.
//!
//! Each non-trivial strongly connected component is one anomaly. Its witness is the
//! shortest cycle found from the component's cheapest suspect edges — rw first, then ww,
//! then wr, each in history order, at most `SUSPECTS_PER_COMPONENT` of them — by a 0-1
//! BFS back from the edge's target to its source (barrier hops free), first without
//! real-time edges and within the source's completion, then with them; a cycle that
//! needs no real time beats one that does, then the shorter wins, and a two-op cycle
//! without real time ends the search. The cycle is named by its edges: no rw edge and
//! only ww is G0, ww and wr is G1c, exactly one rw is G-single, more is G2; `-realtime`
//! when it needs real-time order, else `-process` when it needs process order.
//!
//! Guarantees: every reported cycle exists in the graph (it is reconstructed edge by
//! edge); barrier nodes are collapsed into one `realtime` (or `process`) edge; every
//! component gets a concrete cycle: the first search in a component is never cut by the
//! budget (an edge inside a component always closes a cycle, so it succeeds, at a cost
//! linear in the component), and only the further searches for a shorter one share the
//! work budget (linear in the graph size); those it skips are counted,
//! `suspect_edges_unsearched`.

use super::{BARRIER, HistoryGraph, scc};
use crate::Options;
use crate::explain::{invoke_ns, op_index, secs, what};
use crate::report::{Anomaly, AnomalyKind, AnomalySink, CycleStep, EdgeKind};
use schism_history::{History, Operation};
use std::collections::VecDeque;

const UNSEEN: u32 = u32::MAX;

/// Suspect edges searched per component, at most: the bound by design.
pub(crate) const SUSPECTS_PER_COMPONENT: usize = 16;

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
    // The non-trivial components' ids, increasing, and their members (a list per
    // component of the graph would take 24 bytes a node: every node of a valid history
    // is a component of its own).
    let ids: Vec<u32> = (0..sccs.sizes.len() as u32)
        .filter(|&c| sccs.sizes[c as usize] > 1)
        .collect();
    let mut members: Vec<Vec<u32>> = ids
        .iter()
        .map(|&c| Vec::with_capacity(sccs.sizes[c as usize] as usize))
        .collect();
    let nontrivial = ids.len() as u64;
    figures.insert("sccs".into(), nontrivial.into());
    figures.insert("cycles_found".into(), 0.into());
    figures.insert("suspect_edges_unsearched".into(), 0.into());
    figures.insert("sccs_unexplained".into(), 0.into());
    if nontrivial == 0 {
        return true;
    }
    for (n, &c) in sccs.comp.iter().enumerate() {
        if sccs.sizes[c as usize] > 1 {
            let at = ids.binary_search(&c).expect("a non-trivial component");
            members[at].push(n as u32);
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
    let (mut found, mut unsearched) = (0u64, 0u64);
    for (&c, nodes) in ids.iter().zip(&members) {
        if opts.aborted() {
            return false;
        }
        let suspects = suspects(hg, &sccs.comp, c, nodes);
        let mut best: Option<(bool, usize, Steps)> = None;
        for &(u, v, kind) in suspects.iter().take(SUSPECTS_PER_COMPONENT) {
            if best.as_ref().is_some_and(|b| !b.0 && b.1 <= 2) {
                break; // nothing is shorter
            }
            // The first search of a component is never cut short: it names a cycle.
            let mut unbounded = u64::MAX;
            let work = if best.is_none() {
                &mut unbounded
            } else if budget == 0 {
                unsearched += 1;
                continue;
            } else {
                &mut budget
            };
            let Some(path) = shortest_back(&mut bfs, hg, ops, &sccs.comp, c, u, v, work) else {
                unsearched += u64::from(budget == 0);
                continue;
            };
            // The cycle: u -kind-> v -…-> u.
            let mut ring: Vec<(u32, EdgeKind)> = vec![(u, kind)];
            ring.extend(path.iter().copied().take(path.len() - 1));
            let steps = collapse(hg, ops, &ring);
            let realtime = steps.iter().any(|s| s.1 == EdgeKind::Realtime);
            if best
                .as_ref()
                .is_none_or(|b| (realtime, steps.len()) < (b.0, b.1))
            {
                best = Some((realtime, steps.len(), steps));
            }
        }
        let Some((_, _, steps)) = best else {
            // Unreachable (an edge inside a component closes a cycle, and the first
            // search is unbounded); kept so that a component is never dropped.
            debug_assert!(false, "component {c} without a cycle");
            sink.push_with(AnomalyKind::Cycle, || {
                let ids: Vec<u64> = nodes
                    .iter()
                    .filter(|&&x| g.weight(x) != BARRIER)
                    .take(8)
                    .map(|&x| op_index(h, &ops[g.weight(x) as usize]))
                    .collect();
                Anomaly::new(
                    AnomalyKind::Cycle,
                    None,
                    ids.clone(),
                    format!("ops {ids:?} lie on a dependency cycle no order can satisfy"),
                )
            });
            continue;
        };
        found += 1;
        let kind = classify(&steps);
        let size = nodes.iter().filter(|&&x| g.weight(x) != BARRIER).count();
        sink.push_with(kind, || explain(h, ops, kind, &steps, size));
    }
    figures.insert("cycles_found".into(), found.into());
    figures.insert("suspect_edges_unsearched".into(), unsearched.into());
    true
}

/// The rw, ww and wr edges inside component `c`, cheapest first (rw, ww, wr), each
/// class in history order.
fn suspects(hg: &HistoryGraph, comp: &[u32], c: u32, nodes: &[u32]) -> Vec<(u32, u32, EdgeKind)> {
    let mut out: Vec<(u8, u32, u32, EdgeKind)> = Vec::new();
    for &u in nodes {
        for (v, kind) in hg.g.out(u) {
            if comp[v as usize] != c {
                continue;
            }
            let rank = match kind {
                EdgeKind::Rw => 0,
                EdgeKind::Ww => 1,
                EdgeKind::Wr => 2,
                _ => continue,
            };
            out.push((rank, u, v, kind));
        }
    }
    out.sort_unstable_by_key(|s| (s.0, hg.pos[s.1 as usize], s.1, s.2));
    out.into_iter().map(|(_, u, v, k)| (u, v, k)).collect()
}

/// The shortest path from `v` back to `u` inside component `c`: without real-time
/// edges and within `u`'s completion, then with real-time edges within it, then
/// anywhere in the component.
#[allow(clippy::too_many_arguments)]
fn shortest_back(
    bfs: &mut Bfs,
    hg: &HistoryGraph,
    ops: &[Operation],
    comp: &[u32],
    c: u32,
    u: u32,
    v: u32,
    budget: &mut u64,
) -> Option<Vec<(u32, EdgeKind)>> {
    let limit = match hg.g.weight(u) {
        BARRIER => u32::MAX,
        slot => ops[slot as usize]
            .complete()
            .map_or(hg.pos[u as usize], |p| p as u32),
    };
    bfs.run(hg, comp, c, v, u, limit, false, budget)
        .or_else(|| bfs.run(hg, comp, c, v, u, u32::MAX, false, budget))
        .or_else(|| bfs.run(hg, comp, c, v, u, limit, true, budget))
        .or_else(|| bfs.run(hg, comp, c, v, u, u32::MAX, true, budget))
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
            let from_barrier = g.weight(x) == BARRIER;
            let w = u32::from(!from_barrier);
            for (y, kind) in g.out(x) {
                if comp[y as usize] != c
                    || hg.pos[y as usize] > limit
                    || (!realtime && kind == EdgeKind::Realtime)
                {
                    continue;
                }
                let nd = dx + w;
                if self.stamp[y as usize] == epoch && self.dist[y as usize] <= nd {
                    continue;
                }
                self.stamp[y as usize] = epoch;
                self.dist[y as usize] = nd;
                self.parent[y as usize] = (x, kind);
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
        let w = hg.g.weight(n);
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

/// The Adya/Elle name of a cycle from its edges.
fn classify(steps: &Steps) -> AnomalyKind {
    use AnomalyKind::*;
    let rw = steps.iter().filter(|s| s.1 == EdgeKind::Rw).count();
    let wr = steps.iter().any(|s| s.1 == EdgeKind::Wr);
    let realtime = steps.iter().any(|s| s.1 == EdgeKind::Realtime);
    let process = steps.iter().any(|s| s.1 == EdgeKind::Process);
    let names = match (rw, wr) {
        (0, false) => [G0, G0Process, G0Realtime],
        (0, true) => [G1c, G1cProcess, G1cRealtime],
        (1, _) => [GSingle, GSingleProcess, GSingleRealtime],
        _ => [G2, G2Process, G2Realtime],
    };
    if realtime {
        names[2]
    } else if process {
        names[1]
    } else {
        names[0]
    }
}

/// What a cycle kind means, for its explanation.
fn meaning(kind: AnomalyKind) -> &'static str {
    use AnomalyKind::*;
    match kind {
        G0 | G0Process | G0Realtime => "write-write dependencies alone (G0, dirty write)",
        G1c | G1cProcess | G1cRealtime => {
            "write-write and write-read dependencies (G1c, circular information flow)"
        }
        GSingle | GSingleProcess | GSingleRealtime => {
            "exactly one anti-dependency (G-single, read skew)"
        }
        _ => "two or more anti-dependencies (G2)",
    }
}

fn explain(
    h: &History,
    ops: &[Operation],
    kind: AnomalyKind,
    steps: &Steps,
    size: usize,
) -> Anomaly {
    let closed = match kind.as_str() {
        s if s.ends_with("-realtime") => ", closed by real-time order",
        s if s.ends_with("-process") => ", closed by process order",
        _ => "",
    };
    let mut s = format!(
        "{kind}: a dependency cycle no order can satisfy, of {}{closed}; the shortest found among the {size} ops of its strongly connected component: ",
        meaning(kind)
    );
    let last = steps.len() - 1;
    for (i, &(slot, e)) in steps.iter().enumerate() {
        let x = &ops[slot];
        s.push_str(&format!(
            "{} (process {}, t={}) -{e}-> ",
            what(x),
            x.process,
            secs(invoke_ns(h, x))
        ));
        if i == last {
            s.push_str("back to the first");
        }
    }
    let ids: Vec<u64> = steps.iter().map(|&(x, _)| op_index(h, &ops[x])).collect();
    Anomaly {
        kind,
        key: ops[steps[0].0].key(),
        ops: ids.clone(),
        explanation: s,
        cycle: ids
            .iter()
            .zip(steps)
            .map(|(&op, &(_, edge))| CycleStep { op, edge })
            .collect(),
    }
}
