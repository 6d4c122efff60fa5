//! Real-time order in O(1) edges per transaction, and the exact transitive reduction of
//! it only where a cycle search needs it.
//!
//! T1 precedes T2 in real time when T1 completed (`ok`) before T2 was invoked. Elle links
//! each transaction from the frontier of transactions that completed most recently before
//! its invocation: that is the transitive reduction (Hasse diagram) of the order, and it
//! still holds about `concurrency` edges per transaction (10 of the 10.7 edges per
//! transaction of a 10-process history). Here the order is a chain of completion points
//! instead: each `ok` transaction links to the point of its completion, each point to the
//! next, and the last point before an invocation to the transaction invoked — T1 reaches
//! T2 through the chain exactly when T1 completed before T2 was invoked, so reachability
//! between transactions, and with it every strongly connected component, is the same as
//! with Elle's edges, at three links per transaction, stored as two arrays (no edge list).
//!
//! The chain decides whether the whole graph has a cycle at all (one Tarjan pass over
//! transactions plus points). Only when it does are Elle's edges materialised, and only
//! between transactions of one cyclic component (`reduction_within`): a component holds
//! every transaction between two of its members, so these are exactly the edges Elle's
//! frontier gives inside it, and the shortest-cycle search over them finds the same
//! cycles, with the same explanations ("T1 completed before T2 was invoked"), as over
//! the whole frontier. Edges between components are on no cycle and are left out.
//!
//! Guarantees: a failed transaction is ordered with nothing; an indeterminate one
//! follows the transactions that completed before its invocation and precedes none; time
//! and memory are linear in transactions (plus the frontier's edges inside cyclic
//! components).

use super::cycles::Csr;
use super::infer::RT;
use crate::fx::FxHashMap;
use crate::graph::scc::{Successors, tarjan};
use schism_history::Outcome;
use schism_history::txn::Txns;

const NO_POINT: u32 = u32::MAX;

/// The completion points of a history's transactions.
pub(crate) struct Chain {
    /// Each transaction's completion point, or `NO_POINT` (not `ok`, or failed).
    point: Vec<u32>,
    /// Per point: the first transaction invoked after it (transactions are in
    /// invocation order, so those invoked before the next point follow contiguously).
    after: Vec<u32>,
    /// Which transactions count (not failed).
    committed: Vec<bool>,
}

impl Chain {
    pub(crate) fn new(txns: &Txns) -> Chain {
        let committed: Vec<bool> = txns.iter().map(|t| t.outcome != Outcome::Fail).collect();
        let mut done: Vec<(usize, u32)> = txns
            .iter()
            .enumerate()
            .filter(|(_, t)| t.outcome == Outcome::Ok)
            .filter_map(|(id, t)| Some((t.complete_pos()?, id as u32)))
            .collect();
        done.sort_unstable();
        let mut point = vec![NO_POINT; txns.len()];
        let mut after = Vec::with_capacity(done.len());
        let mut next = 0usize;
        for (rank, &(pos, id)) in done.iter().enumerate() {
            point[id as usize] = rank as u32;
            while next < txns.len() && txns[next].invoke_pos() < pos {
                next += 1;
            }
            after.push(next as u32);
        }
        Chain {
            point,
            after,
            committed,
        }
    }

    fn points(&self) -> usize {
        self.after.len()
    }

    /// The transactions a point links to: invoked after it, before the next point.
    fn range(&self, p: usize) -> std::ops::Range<u32> {
        let end = self
            .after
            .get(p + 1)
            .copied()
            .unwrap_or(self.point.len() as u32);
        self.after[p]..end
    }

    /// Links of the chain: transaction → point, point → point, point → transaction.
    pub(crate) fn links(&self) -> usize {
        let to_points = self.point.iter().filter(|&&p| p != NO_POINT).count();
        let between = self.points().saturating_sub(1);
        let from_points = (0..self.points())
            .map(|p| {
                self.range(p)
                    .filter(|&t| self.committed[t as usize])
                    .count()
            })
            .sum::<usize>();
        to_points + between + from_points
    }
}

/// The dependency graph (`g`: data and process edges) with the chain: nodes `0..n` are
/// transactions, `n..n + points` completion points.
struct WithChain<'a> {
    g: &'a Csr,
    chain: &'a Chain,
}

impl Successors for WithChain<'_> {
    /// The position in the node's successor list.
    type Cursor = u32;

    fn node_count(&self) -> usize {
        self.g.nodes() + self.chain.points()
    }

    fn first(&self, _v: u32) -> u32 {
        0
    }

    fn next(&self, v: u32, at: &mut u32) -> Option<u32> {
        let n = self.g.nodes() as u32;
        if v < n {
            let out = self.g.out_targets(v);
            if let Some(&w) = out.get(*at as usize) {
                *at += 1;
                return Some(w);
            }
            let p = self.chain.point[v as usize];
            if *at as usize == out.len() && p != NO_POINT {
                *at += 1;
                return Some(n + p);
            }
            return None;
        }
        // A point: first the next point, then the transactions it links to.
        let p = (v - n) as usize;
        if *at == 0 {
            *at = 1;
            if p + 1 < self.chain.points() {
                return Some(v + 1);
            }
        }
        let r = self.chain.range(p);
        loop {
            let t = r.start + (*at - 1);
            if t >= r.end {
                return None;
            }
            *at += 1;
            if self.chain.committed[t as usize] {
                return Some(t);
            }
        }
    }
}

/// The component of each transaction that lies on a cycle of the whole graph (data,
/// process and real-time edges), or `None` when the graph has no cycle at all.
pub(crate) fn cyclic_components(g: &Csr, chain: &Chain) -> Option<Vec<u32>> {
    let s = tarjan(&WithChain { g, chain });
    let n = g.nodes();
    let mut txns_in = vec![0u32; s.sizes.len()];
    for &c in &s.comp[..n] {
        txns_in[c as usize] += 1;
    }
    // Every cycle holds two transactions at least (a point never leads back to the
    // transaction that completed at or after it).
    if txns_in.iter().all(|&k| k < 2) {
        return None;
    }
    Some(
        s.comp[..n]
            .iter()
            .map(|&c| {
                if txns_in[c as usize] >= 2 {
                    c
                } else {
                    NO_POINT
                }
            })
            .collect(),
    )
}

/// Elle's real-time edges (the frontier of the latest completions before each
/// invocation) between transactions of one cyclic component (`comp`, from
/// `cyclic_components`; `NO_POINT` for transactions on no cycle).
pub(crate) fn reduction_within(txns: &Txns, comp: &[u32]) -> Vec<(u32, u32, u8)> {
    let mut events: Vec<(usize, bool, u32)> = Vec::new();
    for (id, t) in txns.iter().enumerate() {
        if t.outcome == Outcome::Fail || comp[id] == NO_POINT {
            continue;
        }
        events.push((t.invoke_pos(), false, id as u32));
        if t.outcome == Outcome::Ok
            && let Some(c) = t.complete_pos()
        {
            events.push((c, true, id as u32));
        }
    }
    events.sort_unstable();
    let mut edges = Vec::new();
    let mut frontier: Vec<u32> = Vec::new();
    let mut preds: FxHashMap<u32, Vec<u32>> = FxHashMap::default();
    for (_, done, id) in events {
        if !done {
            for &a in &frontier {
                if comp[a as usize] == comp[id as usize] {
                    edges.push((a, id, RT));
                }
            }
            preds.insert(id, frontier.clone());
        } else {
            let before = preds.remove(&id).unwrap_or_default();
            frontier.retain(|a| !before.contains(a));
            frontier.push(id);
        }
    }
    edges
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::infer::{PROC, RW, WR, WW};
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use schism_history::txn::txn_value;
    use schism_history::{F, History, Op, OpType, Process};

    /// `n` transactions on 4 processes, randomly interleaved; ok, failed, indeterminate
    /// (completed `info` or never completed).
    fn random_txns(rng: &mut ChaCha8Rng, n: usize) -> Txns {
        let mut ops = Vec::new();
        let mut busy = [false; 4];
        let mut started = 0;
        while started < n || (busy.iter().any(|&b| b) && rng.random_range(0..8) > 0) {
            let p = rng.random_range(0..4);
            let kind = match (busy[p], rng.random_range(0..10)) {
                (false, _) if started < n => {
                    started += 1;
                    OpType::Invoke
                }
                (false, _) => continue,
                (true, 0) => OpType::Fail,
                (true, 1) => OpType::Info,
                (true, _) => OpType::Ok,
            };
            busy[p] = kind == OpType::Invoke;
            let i = ops.len() as u64;
            let value = txn_value(&[]);
            let f = F::parse("txn");
            ops.push(Op::new(
                i,
                i,
                Process::client(p as u64),
                kind,
                f,
                None,
                value,
            ));
        }
        Txns::from_history(&History::new(ops)).unwrap()
    }

    struct All<'a>(&'a Csr);

    impl Successors for All<'_> {
        type Cursor = u32;
        fn node_count(&self) -> usize {
            self.0.nodes()
        }
        fn first(&self, _v: u32) -> u32 {
            0
        }
        fn next(&self, v: u32, at: &mut u32) -> Option<u32> {
            let w = self.0.out_targets(v).get(*at as usize).copied();
            *at += 1;
            w
        }
    }

    /// The chain gives the components Elle's frontier edges give, and inside them
    /// exactly the frontier's edges.
    #[test]
    fn the_chain_has_the_frontiers_components_and_edges() {
        let mut rng = ChaCha8Rng::seed_from_u64(18);
        let mut cyclic = 0;
        for _ in 0..400 {
            let n = rng.random_range(2..14);
            let txns = random_txns(&mut rng, n);
            let n = txns.len();
            let data: Vec<(u32, u32, u8)> = (0..rng.random_range(0..n))
                .map(|_| {
                    let kind = [WW, WR, RW, PROC][rng.random_range(0..4)];
                    (
                        rng.random_range(0..n) as u32,
                        rng.random_range(0..n) as u32,
                        kind,
                    )
                })
                .filter(|&(a, b, _)| {
                    a != b
                        && txns[a as usize].outcome != Outcome::Fail
                        && txns[b as usize].outcome != Outcome::Fail
                })
                .collect();
            let frontier = reduction_within(&txns, &vec![0; n]);
            let full = Csr::build(n, &[data.clone(), frontier.clone()].concat());
            let want = tarjan(&All(&full));
            let on_cycle = |a: usize| want.sizes[want.comp[a] as usize] > 1;
            let chain = Chain::new(&txns);
            let got = cyclic_components(&Csr::build(n, &data), &chain);
            let Some(comp) = got else {
                assert!((0..n).all(|a| !on_cycle(a)));
                continue;
            };
            cyclic += 1;
            for a in 0..n {
                assert_eq!(comp[a] != NO_POINT, on_cycle(a), "{a}");
                for b in 0..n {
                    if on_cycle(a) && on_cycle(b) {
                        assert_eq!(comp[a] == comp[b], want.comp[a] == want.comp[b]);
                    }
                }
            }
            let inside: Vec<_> = frontier
                .into_iter()
                .filter(|&(a, b, _)| {
                    comp[a as usize] != NO_POINT && comp[a as usize] == comp[b as usize]
                })
                .collect();
            assert_eq!(reduction_within(&txns, &comp), inside);
        }
        assert!(cyclic > 50, "{cyclic}");
    }
}
