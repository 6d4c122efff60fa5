//! The Wing–Gong–Lowe search for one key of a register history.
//!
//! Calls and returns sit in a doubly linked list ordered by history position. The search
//! repeatedly linearizes the first call it can (a call that precedes every remaining
//! return and whose effect the model accepts), lifting it out of the list, and backtracks
//! when the first remaining entry is a return. Lowe's memoisation skips any configuration
//! (set of linearized ops, model state) already explored. Indeterminate ops get their
//! return at +∞: they may be linearized anywhere after their invoke or never, and the
//! search succeeds once every ok op is linearized.
//!
//! The linearized set is kept as a bitset; the memo key is a compact canonical form of
//! it: `k`, the first ok op (in invoke order) not linearized, the bitset words from `k`
//! up to the last ok op invoked before `k` returned (no later ok op can be linearized
//! while `k` is not, so the words beyond are zero), and the words of the indeterminate
//! ops. Keys are therefore a few words long, not one bit per op of the history.
//!
//! Guarantees: `Linearizable` only after finding a complete linearization; `Violation`
//! only after the whole space was explored; a spent budget or an abort returns
//! `Exhausted`/`Aborted`, never a verdict.

use crate::fx::FxHashSet;
use std::sync::atomic::{AtomicBool, Ordering};

/// A model state id that no state has: a read or cas expecting it never succeeds.
pub(crate) const IMPOSSIBLE: u32 = u32::MAX;

/// An op's effect on the register, over dense state ids (0 is nil).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Succeeds iff the state is this one.
    Read(u32),
    /// Knossos's nil read: matches any state.
    ReadAny,
    Write(u32),
    /// `[expected, new]`: succeeds (and sets `new`) iff the state is `expected`.
    Cas(u32, u32),
    /// An op of a richer model (a multi-register txn), applied by the caller's
    /// transition function: `(op id, state) -> new state`.
    Txn(u32),
}

impl Step {
    #[inline]
    pub(crate) fn apply(self, state: u32) -> Option<u32> {
        match self {
            Step::Read(s) => (s == state).then_some(state),
            Step::ReadAny => Some(state),
            Step::Write(s) => Some(s),
            Step::Cas(e, n) => (e == state).then_some(n),
            Step::Txn(_) => None,
        }
    }
}

/// One operation to linearize.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Call {
    /// History position of the invoke.
    pub invoke: usize,
    /// History position of the ok completion; `None` for indeterminate ops.
    pub ret: Option<usize>,
    /// `ret` is not the op's own completion but a deadline (the completion of an op
    /// that observed its effect); at equal positions real returns come first, so a
    /// failure is pinned on the observer.
    pub deadline: bool,
    pub step: Step,
}

/// Where the search got furthest before failing: the op it could not place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Block {
    /// Index into the `calls` given to `search`.
    pub call: usize,
    /// States the register could be in when that op's return was reached unplaced
    /// (at most `MAX_STATES_SHOWN`, `more_states` if there were others).
    pub states: Vec<u32>,
    pub more_states: bool,
    /// Ops linearized before it at the deepest such point.
    pub linearized: usize,
    /// The last few of those ops, in linearization order (indices into `calls`): the end
    /// of the longest linearizable prefix.
    pub prefix_tail: Vec<usize>,
}

/// How many ops of the longest linearizable prefix a `Block` remembers.
const PREFIX_TAIL: usize = 6;

const MAX_STATES_SHOWN: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Linearizable,
    Violation(Block),
    /// The state budget ran out; `deepest` ok ops were linearized at best.
    Exhausted {
        deepest: usize,
    },
    Aborted {
        deepest: usize,
    },
}

#[derive(Debug)]
pub(crate) struct Searched {
    pub outcome: Outcome,
    /// Configurations added to the memo.
    pub explored: u64,
}

/// The set of explored configurations. Keys of up to `INLINE` words (the common case:
/// few concurrent ops, few indeterminate ones) live inline in the table, which saves an
/// allocation per state and a pointer chase per lookup; longer keys are boxed. A key's
/// length is a function of its first word (`k`), so zero padding is unambiguous.
#[derive(Default)]
struct Memo {
    short: FxHashSet<[u64; INLINE]>,
    long: FxHashSet<Box<[u64]>>,
}

const INLINE: usize = 3;

impl Memo {
    #[inline]
    fn contains(&self, key: &[u64]) -> bool {
        match Self::inline(key) {
            Some(k) => self.short.contains(&k),
            None => self.long.contains(key),
        }
    }

    #[inline]
    fn insert(&mut self, key: &[u64]) {
        match Self::inline(key) {
            Some(k) => self.short.insert(k),
            None => self.long.insert(key.into()),
        };
    }

    #[inline]
    fn inline(key: &[u64]) -> Option<[u64; INLINE]> {
        (key.len() <= INLINE).then(|| {
            let mut k = [0u64; INLINE];
            k[..key.len()].copy_from_slice(key);
            k
        })
    }
}

/// Searches for a linearization of `calls` from `initial`. `budget` is decremented per
/// explored configuration and may be shared across keys.
pub(crate) fn search(
    calls: &[Call],
    initial: u32,
    budget: &mut u64,
    abort: Option<&AtomicBool>,
) -> Searched {
    search_model(calls, initial, budget, abort, &mut |_, _| None)
}

/// `search` for models with `Step::Txn` ops: `txn(op, state)` is the new state, or
/// `None` if the op cannot take effect in that state.
pub(crate) fn search_model(
    calls: &[Call],
    initial: u32,
    budget: &mut u64,
    abort: Option<&AtomicBool>,
    txn: &mut dyn FnMut(u32, u32) -> Option<u32>,
) -> Searched {
    Search::new(calls).run(initial, budget, abort, txn)
}

struct Search<'a> {
    calls: &'a [Call],
    /// Internal id → index into `calls`: ok ops in invoke order, then indeterminate ones.
    orig: Vec<usize>,
    n_ok: usize,
    ok_words: usize,
    /// For ok id k: the last ok id invoked before k's return.
    window_end: Vec<u32>,
    /// Linked list over nodes: 0 is the head, call of id i is 2i+1, its return 2i+2,
    /// and 2n+1 is the tail.
    next: Vec<u32>,
    prev: Vec<u32>,
}

impl<'a> Search<'a> {
    fn new(calls: &'a [Call]) -> Self {
        let mut orig: Vec<usize> = (0..calls.len()).collect();
        orig.sort_by_key(|&i| (calls[i].ret.is_none(), calls[i].invoke));
        let n_ok = calls.iter().filter(|c| c.ret.is_some()).count();
        let ok_invokes: Vec<usize> = orig[..n_ok].iter().map(|&i| calls[i].invoke).collect();
        let window_end = orig[..n_ok]
            .iter()
            .map(|&i| {
                let ret = calls[i].ret.expect("ok ops come first");
                (ok_invokes.partition_point(|&p| p < ret) - 1) as u32
            })
            .collect();

        let n = calls.len();
        let mut nodes: Vec<(usize, bool, u32)> = Vec::with_capacity(2 * n);
        for (id, &i) in orig.iter().enumerate() {
            let c = &calls[i];
            nodes.push((c.invoke, false, 2 * id as u32 + 1));
            nodes.push((c.ret.unwrap_or(usize::MAX), c.deadline, 2 * id as u32 + 2));
        }
        // Positions are unique except deadlines and the +∞ returns, which sort after
        // real returns and then by node number.
        nodes.sort_unstable();
        let tail = 2 * n as u32 + 1;
        let mut next = vec![tail; 2 * n + 2];
        let mut prev = vec![0u32; 2 * n + 2];
        let mut last = 0u32;
        for &(_, _, node) in &nodes {
            next[last as usize] = node;
            prev[node as usize] = last;
            last = node;
        }
        next[last as usize] = tail;
        prev[tail as usize] = last;
        Search {
            calls,
            orig,
            n_ok,
            ok_words: n_ok.div_ceil(64),
            window_end,
            next,
            prev,
        }
    }

    #[inline]
    fn bit(&self, id: usize) -> usize {
        if id < self.n_ok {
            id
        } else {
            self.ok_words * 64 + (id - self.n_ok)
        }
    }

    #[inline]
    fn lift(&mut self, call: u32) {
        for node in [call, call + 1] {
            let (p, n) = (self.prev[node as usize], self.next[node as usize]);
            self.next[p as usize] = n;
            self.prev[n as usize] = p;
        }
    }

    /// Exactly undoes `lift` (dancing links: reinsert in reverse order).
    #[inline]
    fn unlift(&mut self, call: u32) {
        for node in [call + 1, call] {
            let (p, n) = (self.prev[node as usize], self.next[node as usize]);
            self.next[p as usize] = node;
            self.prev[n as usize] = node;
        }
    }

    /// The first ok id at or after `from` that is not linearized (`n_ok` if none).
    fn next_unset(&self, bits: &[u64], from: usize) -> usize {
        if from >= self.n_ok {
            return self.n_ok;
        }
        let mut w = from / 64;
        let mut word = !bits[w] & (!0u64 << (from % 64));
        loop {
            if word != 0 {
                return (w * 64 + word.trailing_zeros() as usize).min(self.n_ok);
            }
            w += 1;
            if w >= self.ok_words {
                return self.n_ok;
            }
            word = !bits[w];
        }
    }

    /// The canonical memo key of (linearized set, state); see the module docs.
    fn key(&self, buf: &mut Vec<u64>, bits: &[u64], k: usize, state: u32) {
        buf.clear();
        buf.push(((k as u64) << 32) | u64::from(state));
        if k < self.n_ok {
            let hi = self.window_end[k] as usize / 64;
            buf.extend_from_slice(&bits[k / 64..=hi]);
            #[cfg(debug_assertions)]
            if self.n_ok <= 2048 {
                let end = self.window_end[k] as usize;
                for id in end + 1..self.n_ok {
                    debug_assert_eq!(
                        bits[id / 64] >> (id % 64) & 1,
                        0,
                        "op {id} linearized beyond the window of {k}"
                    );
                }
            }
        }
        buf.extend_from_slice(&bits[self.ok_words..]);
    }

    fn tail(&self, stack: &[(u32, u32, usize)]) -> Vec<usize> {
        stack[stack.len().saturating_sub(PREFIX_TAIL)..]
            .iter()
            .map(|&(node, _, _)| self.orig[((node - 1) / 2) as usize])
            .collect()
    }

    fn run(
        mut self,
        initial: u32,
        budget: &mut u64,
        abort: Option<&AtomicBool>,
        txn: &mut dyn FnMut(u32, u32) -> Option<u32>,
    ) -> Searched {
        let n = self.calls.len();
        let words = self.ok_words + (n - self.n_ok).div_ceil(64);
        let mut bits = vec![0u64; words];
        let mut cache = Memo::default();
        let mut buf: Vec<u64> = Vec::with_capacity(16);
        // (call node, state before it, k before it)
        let mut stack: Vec<(u32, u32, usize)> = Vec::new();
        let mut state = initial;
        let mut k = 0usize;
        let mut ok_left = self.n_ok;
        let mut deepest = 0usize;
        let mut best: Option<(usize, Block)> = None;
        let mut explored = 0u64;
        let mut steps = 0u64;
        let mut entry = self.next[0];

        let outcome = loop {
            if ok_left == 0 {
                break Outcome::Linearizable;
            }
            steps += 1;
            if steps.is_multiple_of(4096) && abort.is_some_and(|a| a.load(Ordering::Relaxed)) {
                break Outcome::Aborted { deepest };
            }
            let id = ((entry - 1) / 2) as usize;
            let call = &self.calls[self.orig[id]];
            if entry % 2 == 1 {
                // A call: try to linearize it now.
                let applied = match call.step {
                    Step::Txn(op) => txn(op, state),
                    step => step.apply(state),
                };
                if let Some(new_state) = applied {
                    let b = self.bit(id);
                    bits[b / 64] |= 1 << (b % 64);
                    let new_k = if id == k {
                        self.next_unset(&bits, k + 1)
                    } else {
                        k
                    };
                    self.key(&mut buf, &bits, new_k, new_state);
                    if !cache.contains(&buf) {
                        if *budget == 0 {
                            break Outcome::Exhausted { deepest };
                        }
                        *budget -= 1;
                        explored += 1;
                        cache.insert(&buf);
                        stack.push((entry, state, k));
                        state = new_state;
                        k = new_k;
                        if id < self.n_ok {
                            ok_left -= 1;
                            deepest = deepest.max(self.n_ok - ok_left);
                        }
                        self.lift(entry);
                        entry = self.next[0];
                        continue;
                    }
                    bits[b / 64] &= !(1 << (b % 64));
                }
                entry = self.next[entry as usize];
            } else {
                // The first remaining entry is a return: this op cannot be placed here.
                debug_assert!(
                    id < self.n_ok,
                    "an indeterminate return is only reached once all ok ops are placed"
                );
                let pos = call.ret.unwrap_or(usize::MAX);
                match &mut best {
                    Some((p, b)) if *p == pos => {
                        if stack.len() > b.linearized {
                            b.linearized = stack.len();
                            b.prefix_tail = self.tail(&stack);
                        }
                        if !b.states.contains(&state) {
                            if b.states.len() < MAX_STATES_SHOWN {
                                b.states.push(state);
                            } else {
                                b.more_states = true;
                            }
                        }
                    }
                    Some((p, _)) if *p > pos => {}
                    _ => {
                        let block = Block {
                            call: self.orig[id],
                            states: vec![state],
                            more_states: false,
                            linearized: stack.len(),
                            prefix_tail: self.tail(&stack),
                        };
                        best = Some((pos, block));
                    }
                }
                let Some((node, st, kk)) = stack.pop() else {
                    let (_, block) = best.expect("a block was just recorded");
                    break Outcome::Violation(block);
                };
                let pid = ((node - 1) / 2) as usize;
                let b = self.bit(pid);
                bits[b / 64] &= !(1 << (b % 64));
                self.unlift(node);
                state = st;
                k = kk;
                if pid < self.n_ok {
                    ok_left += 1;
                }
                entry = self.next[node as usize];
            }
        };
        Searched { outcome, explored }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(invoke: usize, ret: usize, step: Step) -> Call {
        Call {
            invoke,
            ret: Some(ret),
            deadline: false,
            step,
        }
    }

    fn run(calls: &[Call]) -> Outcome {
        let mut budget = u64::MAX;
        search(calls, 0, &mut budget, None).outcome
    }

    #[test]
    fn sequential_write_then_read() {
        assert_eq!(
            run(&[ok(0, 1, Step::Write(1)), ok(2, 3, Step::Read(1))]),
            Outcome::Linearizable
        );
        let Outcome::Violation(b) = run(&[ok(0, 1, Step::Write(1)), ok(2, 3, Step::Read(0))])
        else {
            panic!("expected a violation")
        };
        assert_eq!(b.call, 1);
        assert_eq!(b.states, vec![1]);
        assert_eq!(b.linearized, 1);
    }

    #[test]
    fn concurrent_read_may_see_either() {
        for r in [0, 1] {
            assert_eq!(
                run(&[ok(0, 3, Step::Write(1)), ok(1, 2, Step::Read(r))]),
                Outcome::Linearizable
            );
        }
    }

    #[test]
    fn indeterminate_write_may_happen_late_or_never() {
        let info = Call {
            invoke: 0,
            ret: None,
            deadline: false,
            step: Step::Write(1),
        };
        assert_eq!(
            run(&[info, ok(1, 2, Step::Read(0)), ok(3, 4, Step::Read(1))]),
            Outcome::Linearizable
        );
        assert!(matches!(
            run(&[ok(1, 2, Step::Read(1)), Call { invoke: 3, ..info }]),
            Outcome::Violation(_)
        ));
    }

    #[test]
    fn budget_runs_out() {
        let calls: Vec<Call> = (0..20)
            .map(|i| ok(i, 100 + i, Step::Write(i as u32)))
            .collect();
        let mut budget = 5;
        let s = search(&calls, 0, &mut budget, None);
        assert!(matches!(s.outcome, Outcome::Exhausted { .. }));
        assert_eq!(s.explored, 5);
    }
}
