//! The history graph's storage: edges collected in insertion order, then frozen into
//! compressed sparse rows (one offset per node, a target and a kind per edge).
//!
//! A history graph has about five edges per op (real time through barriers, process
//! order, wr/ww/rw), millions for a million-op history; petgraph's adjacency lists spend
//! 20 bytes per edge and 12 per node, these rows 4 and 8 (an edge is its target with its
//! kind in the top 3 bits, so a graph holds at most `MAX_NODES` nodes; issue #19: `graph`
//! was the peak of `schism check`). Guarantees: `out(v)` lists `v`'s outgoing edges newest
//! first, exactly the order petgraph's `Graph` walks them, so searches over either visit
//! the same nodes in the same order and report the same cycles; node ids are insertion
//! order.

use super::scc::Successors;
use crate::report::EdgeKind;

/// Most nodes a graph holds: ids take the low 29 bits of an edge.
pub(crate) const MAX_NODES: usize = (1 << 29) - 1;

const KIND_SHIFT: u32 = 29;
const KINDS: [EdgeKind; 5] = [
    EdgeKind::Wr,
    EdgeKind::Ww,
    EdgeKind::Rw,
    EdgeKind::Realtime,
    EdgeKind::Process,
];

/// An edge's target and kind in one word.
fn pack(to: u32, kind: EdgeKind) -> u32 {
    let k = kind as u32;
    debug_assert_eq!(KINDS[k as usize], kind, "KINDS in declaration order");
    (k << KIND_SHIFT) | to
}

fn unpack(e: u32) -> (u32, EdgeKind) {
    (e & MAX_NODES as u32, KINDS[(e >> KIND_SHIFT) as usize])
}

/// A graph being built: nodes (their weights) and edges in insertion order.
#[derive(Debug, Default)]
pub(crate) struct Builder {
    weight: Vec<u32>,
    /// (from, packed target and kind).
    ends: Vec<(u32, u32)>,
}

impl Builder {
    pub(crate) fn with_capacity(nodes: usize, edges: usize) -> Self {
        Builder {
            weight: Vec::with_capacity(nodes),
            ends: Vec::with_capacity(edges),
        }
    }

    /// A new node; its id. Panics past `MAX_NODES` (the graph checker refuses larger
    /// histories before building).
    pub(crate) fn add_node(&mut self, weight: u32) -> u32 {
        let id = self.weight.len();
        assert!(
            id < MAX_NODES,
            "a history graph holds at most {MAX_NODES} nodes"
        );
        self.weight.push(weight);
        id as u32
    }

    pub(crate) fn add_edge(&mut self, from: u32, to: u32, kind: EdgeKind) {
        self.ends.push((from, pack(to, kind)));
    }

    /// The rows, each node's edges newest first; the edge list is freed as it goes.
    pub(crate) fn freeze(self) -> Csr {
        let Builder { weight, ends } = self;
        let n = weight.len();
        let edges = u32::try_from(ends.len()).expect("graph edges fit u32");
        // start[v] ends as the first edge of v: count, sum to each row's end, then place
        // every edge at its row's end minus those placed after it.
        let mut start = vec![0u32; n + 1];
        for &(from, _) in &ends {
            start[from as usize] += 1;
        }
        let mut sum = 0u32;
        for s in start.iter_mut().take(n) {
            sum += *s;
            *s = sum;
        }
        start[n] = edges;
        let mut to = vec![0u32; ends.len()];
        for &(from, edge) in &ends {
            let s = &mut start[from as usize];
            *s -= 1;
            to[*s as usize] = edge;
        }
        Csr { weight, start, to }
    }
}

/// A frozen graph: `start[v]..start[v + 1]` are `v`'s edges in `to` (packed).
#[derive(Debug, Default)]
pub(crate) struct Csr {
    weight: Vec<u32>,
    start: Vec<u32>,
    to: Vec<u32>,
}

impl Csr {
    pub(crate) fn node_count(&self) -> usize {
        self.weight.len()
    }

    pub(crate) fn edge_count(&self) -> usize {
        self.to.len()
    }

    /// The node's weight (an op slot, or `BARRIER`).
    pub(crate) fn weight(&self, v: u32) -> u32 {
        self.weight[v as usize]
    }

    /// `v`'s outgoing edges, newest first: (target, kind).
    pub(crate) fn out(&self, v: u32) -> impl Iterator<Item = (u32, EdgeKind)> + '_ {
        let r = self.start[v as usize] as usize..self.start[v as usize + 1] as usize;
        self.to[r].iter().map(|&e| unpack(e))
    }
}

impl Successors for Csr {
    type Cursor = u32;
    fn node_count(&self) -> usize {
        self.weight.len()
    }
    fn first(&self, v: u32) -> u32 {
        self.start[v as usize]
    }
    fn next(&self, v: u32, cursor: &mut u32) -> Option<u32> {
        if *cursor >= self.start[v as usize + 1] {
            return None;
        }
        let (w, _) = unpack(self.to[*cursor as usize]);
        *cursor += 1;
        Some(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use petgraph::Direction::Outgoing;
    use petgraph::graph::NodeIndex;
    use petgraph::{Directed, Graph};

    /// The rows walk every node's edges in petgraph's order.
    #[test]
    fn rows_follow_petgraphs_edge_order() {
        let mut b = Builder::default();
        let mut g: Graph<u32, EdgeKind, Directed, u32> = Graph::default();
        let kinds = [EdgeKind::Wr, EdgeKind::Ww, EdgeKind::Rw, EdgeKind::Realtime];
        for i in 0..50u32 {
            assert_eq!(b.add_node(i * 3), g.add_node(i * 3).index() as u32);
        }
        let mut x = 7u64;
        for i in 0..400usize {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let (from, to) = ((x >> 33) as u32 % 50, (x >> 45) as u32 % 50);
            b.add_edge(from, to, kinds[i % 4]);
            g.add_edge(
                NodeIndex::new(from as usize),
                NodeIndex::new(to as usize),
                kinds[i % 4],
            );
        }
        let c = b.freeze();
        assert_eq!(c.edge_count(), g.edge_count());
        for v in 0..50u32 {
            assert_eq!(c.weight(v), g[NodeIndex::new(v as usize)]);
            let mut want = Vec::new();
            let mut e = g.first_edge(NodeIndex::new(v as usize), Outgoing);
            while let Some(ei) = e {
                let edge = &g.raw_edges()[ei.index()];
                want.push((edge.target().index() as u32, edge.weight));
                e = g.next_edge(ei, Outgoing);
            }
            assert_eq!(c.out(v).collect::<Vec<_>>(), want);
            let mut cur = c.first(v);
            let mut succ = Vec::new();
            while let Some(w) = c.next(v, &mut cur) {
                succ.push(w);
            }
            assert_eq!(succ, want.iter().map(|x| x.0).collect::<Vec<_>>());
        }
    }
}
