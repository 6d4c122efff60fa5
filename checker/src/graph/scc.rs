//! Strongly connected components by Tarjan's algorithm, iterative.
//!
//! petgraph's `TarjanScc` recurses once per node on a path, and a history graph holds
//! paths a million nodes long (the real-time chain), which would overflow the stack; this
//! is the same algorithm with an explicit call stack over any edge lists (`Successors`:
//! the history graph's rows, the transaction checker's edge arrays).
//! Guarantees: `comp[n]` is equal for two nodes exactly when they lie on a common cycle;
//! time and memory are linear in nodes plus edges.

const UNSEEN: u32 = u32::MAX;

/// Component ids per node, and the size of each component.
#[derive(Debug)]
pub(crate) struct Sccs {
    pub(crate) comp: Vec<u32>,
    pub(crate) sizes: Vec<u32>,
}

/// Outgoing edges walked one at a time with a cursor, so Tarjan's explicit call stack
/// can resume a node's edge list where it left off. Implemented by the history graph's
/// rows (`csr`), the transaction checker's compact edge arrays (`txn::cycles`) and, for
/// the tests, petgraph's `Graph`.
pub(crate) trait Successors {
    type Cursor: Copy;
    fn node_count(&self) -> usize;
    /// A cursor before `v`'s first outgoing edge.
    fn first(&self, v: u32) -> Self::Cursor;
    /// The next successor of `v` at `cursor` (advancing it), or `None` past the last.
    fn next(&self, v: u32, cursor: &mut Self::Cursor) -> Option<u32>;
}

#[cfg(test)]
impl<N, E> Successors for petgraph::Graph<N, E, petgraph::Directed, u32> {
    type Cursor = Option<petgraph::graph::EdgeIndex>;
    fn node_count(&self) -> usize {
        petgraph::Graph::node_count(self)
    }
    fn first(&self, v: u32) -> Self::Cursor {
        self.first_edge(
            petgraph::graph::NodeIndex::new(v as usize),
            petgraph::Direction::Outgoing,
        )
    }
    fn next(&self, _v: u32, cursor: &mut Self::Cursor) -> Option<u32> {
        let e = (*cursor)?;
        *cursor = self.next_edge(e, petgraph::Direction::Outgoing);
        Some(self.raw_edges()[e.index()].target().index() as u32)
    }
}

pub(crate) fn tarjan<G: Successors>(g: &G) -> Sccs {
    let n = g.node_count();
    // `index[w]` becomes `w`'s component id once its component is complete: by then
    // only `on_stack` (false) and "seen" (not `UNSEEN`) are asked of it, and ids are
    // below `n`, like indices. One array less on a graph of millions of nodes.
    let mut index = vec![UNSEEN; n];
    let mut low = vec![0u32; n];
    let mut on_stack = vec![false; n];
    let mut sizes: Vec<u32> = Vec::new();
    let mut stack: Vec<u32> = Vec::new();
    let mut calls: Vec<(u32, G::Cursor)> = Vec::new();
    let mut next = 0u32;
    for root in 0..n as u32 {
        if index[root as usize] != UNSEEN {
            continue;
        }
        index[root as usize] = next;
        low[root as usize] = next;
        next += 1;
        stack.push(root);
        on_stack[root as usize] = true;
        calls.push((root, g.first(root)));
        while let Some(&mut (v, ref mut cursor)) = calls.last_mut() {
            if let Some(w) = g.next(v, cursor) {
                if index[w as usize] == UNSEEN {
                    index[w as usize] = next;
                    low[w as usize] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w as usize] = true;
                    calls.push((w, g.first(w)));
                } else if on_stack[w as usize] {
                    low[v as usize] = low[v as usize].min(index[w as usize]);
                }
                continue;
            }
            calls.pop();
            if let Some(&(parent, _)) = calls.last() {
                low[parent as usize] = low[parent as usize].min(low[v as usize]);
            }
            if low[v as usize] == index[v as usize] {
                let id = sizes.len() as u32;
                let mut size = 0u32;
                loop {
                    let w = stack.pop().expect("v is on the stack");
                    on_stack[w as usize] = false;
                    index[w as usize] = id;
                    size += 1;
                    if w == v {
                        break;
                    }
                }
                sizes.push(size);
            }
        }
    }
    Sccs { comp: index, sizes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use petgraph::{Directed, Graph};

    #[test]
    fn finds_cycles_and_survives_long_chains() {
        let mut g: Graph<(), (), Directed, u32> = Graph::new();
        let n: Vec<_> = (0..200_000).map(|_| g.add_node(())).collect();
        for w in n.windows(2) {
            g.add_edge(w[0], w[1], ());
        }
        g.add_edge(n[10], n[5], ());
        let s = tarjan(&g);
        assert_eq!(s.comp[5], s.comp[10]);
        assert_eq!(s.comp[7], s.comp[10]);
        assert_ne!(s.comp[4], s.comp[5]);
        assert_ne!(s.comp[11], s.comp[10]);
        assert_eq!(s.sizes[s.comp[5] as usize], 6);
        assert_eq!(s.sizes.len(), 200_000 - 5);
    }
}
