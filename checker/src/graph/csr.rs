//! The history graph's storage: compressed sparse rows (one offset per node, a target
//! and a kind per edge), laid out by adding the same nodes and edges twice — counted,
//! then placed.
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

/// A graph being built in two passes over the same nodes and edges, in the same order:
/// the first (counting) records the nodes and counts each node's edges, the second
/// (filling, after `start_filling`) places every edge in its row. No edge list is held:
/// 4 bytes an edge at the peak, where a list of (from, edge) pairs laid out afterwards
/// held 8 + 4 (issue #19).
#[derive(Debug, Default)]
pub(crate) struct Builder {
    weight: Vec<u32>,
    /// Counting: each node's edge count. Filling: each row's next free slot from its end
    /// (edges are placed from a row's end backwards, so the newest comes first).
    start: Vec<u32>,
    to: Vec<u32>,
    /// The filling pass: the next node's id (nodes are re-added in the same order).
    filling: Option<u32>,
}

impl Builder {
    pub(crate) fn with_capacity(nodes: usize) -> Self {
        Builder {
            weight: Vec::with_capacity(nodes),
            start: Vec::with_capacity(nodes + 1),
            to: Vec::new(),
            filling: None,
        }
    }

    /// True in the second pass.
    pub(crate) fn is_filling(&self) -> bool {
        self.filling.is_some()
    }

    /// A new node; its id. Panics past `MAX_NODES` (the graph checker refuses larger
    /// histories before building). In the filling pass, the same node again.
    pub(crate) fn add_node(&mut self, weight: u32) -> u32 {
        if let Some(next) = &mut self.filling {
            let id = *next;
            debug_assert_eq!(self.weight[id as usize], weight, "the same nodes twice");
            *next += 1;
            return id;
        }
        let id = self.weight.len();
        assert!(
            id < MAX_NODES,
            "a history graph holds at most {MAX_NODES} nodes"
        );
        self.weight.push(weight);
        self.start.push(0);
        id as u32
    }

    pub(crate) fn add_edge(&mut self, from: u32, to: u32, kind: EdgeKind) {
        let s = &mut self.start[from as usize];
        if self.filling.is_some() {
            *s -= 1;
            self.to[*s as usize] = pack(to, kind);
        } else {
            *s += 1;
        }
    }

    /// Ends the counting pass: the rows are sized; the same nodes and edges, added again
    /// in the same order, fill them.
    pub(crate) fn start_filling(&mut self) {
        assert!(self.filling.is_none(), "one counting pass");
        let mut sum = 0u32;
        for s in &mut self.start {
            sum = sum.checked_add(*s).expect("graph edges fit u32");
            *s = sum;
        }
        self.start.push(sum);
        self.to = vec![0; sum as usize];
        self.filling = Some(0);
    }

    /// The rows, each node's edges newest first.
    pub(crate) fn freeze(self) -> Csr {
        let Builder {
            weight,
            start,
            to,
            filling,
        } = self;
        assert_eq!(
            filling,
            Some(weight.len() as u32),
            "the filling pass added every node again"
        );
        debug_assert!(
            start.windows(2).all(|w| w[0] <= w[1]) && start.first().is_none_or(|&s| s == 0),
            "every edge placed again"
        );
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
        for pass in 0..2 {
            if pass == 1 {
                b.start_filling();
            }
            for i in 0..50u32 {
                let id = b.add_node(i * 3);
                if pass == 0 {
                    assert_eq!(id, g.add_node(i * 3).index() as u32);
                }
            }
            let mut x = 7u64;
            for i in 0..400usize {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let (from, to) = ((x >> 33) as u32 % 50, (x >> 45) as u32 % 50);
                b.add_edge(from, to, kinds[i % 4]);
                if pass == 0 {
                    g.add_edge(
                        NodeIndex::new(from as usize),
                        NodeIndex::new(to as usize),
                        kinds[i % 4],
                    );
                }
            }
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
