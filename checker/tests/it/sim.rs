//! Seeded simulations of correct stores, a tiny random history generator, and a
//! brute-force linearizability checker to cross-check the real one.

use rand::{Rng, RngExt};
use schism_checker::RegisterOptions;
use schism_history::{F, History, Op, OpType, Outcome, Process, Value};
use std::collections::BTreeMap;

/// A correct store: applies each op atomically at its linearization point.
pub trait Store {
    /// A new op on `key`: its function and invoke value.
    fn next_op(&mut self, rng: &mut dyn Rng, key: u64) -> (F, Value);
    /// Applies an op; `None` if it did not take effect (a cas that did not match).
    /// Returns the completion's value.
    fn apply(&mut self, f: &F, key: u64, v: &Value) -> Option<Value>;
}

#[derive(Debug, Clone, Copy)]
pub struct Sim {
    pub procs: usize,
    pub ops: usize,
    pub keys: u64,
    /// Probability that an op fails (and does not take effect).
    pub p_fail: f64,
    /// Probability that an op ends indeterminate (and takes effect before, after, or never).
    pub p_info: f64,
    /// Each set of `keys` keys serves this many ops per key, then fresh keys replace it
    /// (as a long run moves on), so lists stay short; 0: keys are never retired.
    pub retire_after: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fate {
    Ok,
    Fail,
    /// Takes effect before its info completion.
    InfoBefore,
    /// Takes effect at some point after its info completion (or, if the run ends, never).
    InfoLater,
    InfoNever,
}

struct Pending {
    f: F,
    key: u64,
    value: Value,
    fate: Fate,
    /// Set once the linearization point has passed: the completion value, or `None` if
    /// the op did not take effect.
    done: Option<Option<Value>>,
}

/// Runs `sim.ops` ops from `sim.procs` concurrent workers against `store`. Each op takes
/// effect at a random point inside its interval (or, for indeterminate ones, possibly
/// later or never); fail completions never take effect.
pub fn simulate(rng: &mut dyn Rng, sim: &Sim, store: &mut dyn Store) -> History {
    let mut ops: Vec<Op> = Vec::new();
    let mut emit = |p: u64, kind: OpType, f: &F, key: u64, v: Value| {
        let i = ops.len() as u64;
        ops.push(Op::new(
            i,
            i * 1000 + 17,
            Process::client(p),
            kind,
            *f,
            Some(key),
            v,
        ));
    };
    let mut process: Vec<u64> = (0..sim.procs as u64).collect();
    let mut pending: Vec<Option<Pending>> = (0..sim.procs).map(|_| None).collect();
    let mut floating: Vec<(F, u64, Value)> = Vec::new();
    let mut issued = 0usize;
    loop {
        if issued >= sim.ops && pending.iter().all(Option::is_none) {
            break;
        }
        if !floating.is_empty() && rng.random_bool(0.05) {
            let i = rng.random_range(0..floating.len());
            let (f, key, v) = floating.swap_remove(i);
            store.apply(&f, key, &v);
            continue;
        }
        let w = rng.random_range(0..sim.procs);
        let p = process[w];
        match &mut pending[w] {
            slot @ None => {
                if issued >= sim.ops {
                    continue;
                }
                issued += 1;
                let window = match sim.retire_after {
                    0 => 0,
                    n => issued as u64 / (n as u64 * sim.keys),
                };
                let key = window * sim.keys + rng.random_range(0..sim.keys);
                let (f, value) = store.next_op(rng, key);
                let x: f64 = rng.random();
                let fate = if x < sim.p_fail {
                    Fate::Fail
                } else if x < sim.p_fail + sim.p_info {
                    match rng.random_range(0..3) {
                        0 => Fate::InfoBefore,
                        1 => Fate::InfoLater,
                        _ => Fate::InfoNever,
                    }
                } else {
                    Fate::Ok
                };
                emit(p, OpType::Invoke, &f, key, value.clone());
                *slot = Some(Pending {
                    f,
                    key,
                    value,
                    fate,
                    done: None,
                });
            }
            Some(op) if op.done.is_none() => {
                op.done = Some(match op.fate {
                    Fate::Ok | Fate::InfoBefore => store.apply(&op.f, op.key, &op.value),
                    _ => None,
                });
            }
            Some(_) => {
                let op = pending[w].take().expect("matched Some");
                let result = op.done.expect("linearized");
                match (op.fate, result) {
                    (Fate::Ok, Some(v)) => emit(p, OpType::Ok, &op.f, op.key, v),
                    // A cas that did not match, or a planned failure: it did not happen.
                    (Fate::Ok | Fate::Fail, _) => {
                        emit(p, OpType::Fail, &op.f, op.key, op.value.clone())
                    }
                    (fate, _) => {
                        emit(p, OpType::Info, &op.f, op.key, op.value.clone());
                        if fate == Fate::InfoLater {
                            floating.push((op.f, op.key, op.value.clone()));
                        }
                        // Jepsen's rule: an indeterminate op retires its process.
                        process[w] += sim.procs as u64;
                    }
                }
            }
        }
    }
    History::new(ops)
}

/// A linearizable read/write/cas register per key, with unique written values.
#[derive(Debug, Default)]
pub struct Register {
    values: BTreeMap<u64, i64>,
    written: BTreeMap<u64, Vec<i64>>,
    next: i64,
}

impl Store for Register {
    fn next_op(&mut self, rng: &mut dyn Rng, key: u64) -> (F, Value) {
        match rng.random_range(0..10) {
            0..5 => (F::Read, Value::Null),
            5..8 => {
                self.next += 1;
                (F::Write, Value::Int(self.next))
            }
            _ => {
                self.next += 1;
                // Usually the current value, so that many cas succeed.
                let expected = match (self.values.get(&key), self.written.get(&key)) {
                    (Some(&v), _) if rng.random_bool(0.7) => v,
                    (_, Some(w)) if !w.is_empty() => w[rng.random_range(0..w.len())],
                    _ => -1,
                };
                (F::Cas, Value::list(vec![expected, self.next]))
            }
        }
    }

    fn apply(&mut self, f: &F, key: u64, v: &Value) -> Option<Value> {
        match (f, v) {
            (F::Read, _) => Some(
                self.values
                    .get(&key)
                    .map_or(Value::Null, |&x| Value::Int(x)),
            ),
            (F::Write, Value::Int(x)) => {
                self.values.insert(key, *x);
                self.written.entry(key).or_default().push(*x);
                Some(v.clone())
            }
            (F::Cas, Value::List(l)) => {
                if self.values.get(&key) == Some(&l[0]) {
                    self.values.insert(key, l[1]);
                    self.written.entry(key).or_default().push(l[1]);
                    Some(v.clone())
                } else {
                    None
                }
            }
            _ => unreachable!("register ops only"),
        }
    }
}

/// A linearizable list-append store.
#[derive(Debug, Default)]
pub struct Lists {
    lists: BTreeMap<u64, Vec<i64>>,
    next: i64,
}

impl Store for Lists {
    fn next_op(&mut self, rng: &mut dyn Rng, _key: u64) -> (F, Value) {
        if rng.random_bool(0.5) {
            (F::Read, Value::Null)
        } else {
            self.next += 1;
            (F::Append, Value::Int(self.next))
        }
    }

    fn apply(&mut self, f: &F, key: u64, v: &Value) -> Option<Value> {
        let l = self.lists.entry(key).or_default();
        match (f, v) {
            (F::Read, _) => Some(Value::list(l.clone())),
            (F::Append, Value::Int(x)) => {
                l.push(*x);
                Some(v.clone())
            }
            _ => unreachable!("append ops only"),
        }
    }
}

/// A random, usually non-linearizable, single-key register history of at most `max_ops`
/// ops over the values 1..=3 (not unique), for cross-checking.
/// With `unique`, writes and cas write fresh values and reads return one of the values
/// invoked so far (or nil), as a store with unique values would.
pub fn tiny_random(rng: &mut dyn Rng, max_ops: usize, unique: bool) -> History {
    let procs = rng.random_range(1..=3usize);
    let n = rng.random_range(1..=max_ops);
    let mut ops: Vec<Op> = Vec::new();
    let mut open: Vec<Option<(F, Value)>> = vec![None; procs];
    let mut process: Vec<u64> = (0..procs as u64).collect();
    let mut issued = 0;
    let mut fresh = 0i64;
    let mut invoked: Vec<i64> = Vec::new();
    let mut value = |rng: &mut dyn Rng, invoked: &mut Vec<i64>| {
        if unique {
            fresh += 1;
            invoked.push(fresh);
            fresh
        } else {
            rng.random_range(1..=3i64)
        }
    };
    let seen = |rng: &mut dyn Rng, invoked: &[i64]| {
        if unique {
            if invoked.is_empty() || rng.random_bool(0.2) {
                None
            } else {
                Some(invoked[rng.random_range(0..invoked.len())])
            }
        } else {
            match rng.random_range(0..4) {
                0 => None,
                k => Some(k),
            }
        }
    };
    while issued < n || open.iter().any(Option::is_some) {
        let w = rng.random_range(0..procs);
        let i = ops.len() as u64;
        let p = Process::client(process[w]);
        match open[w].take() {
            None if issued < n => {
                issued += 1;
                let (f, v) = match rng.random_range(0..3) {
                    0 => (F::Read, Value::Null),
                    1 => (F::Write, Value::Int(value(rng, &mut invoked))),
                    _ => {
                        let expected = seen(rng, &invoked).unwrap_or(0);
                        (
                            F::Cas,
                            Value::list(vec![expected, value(rng, &mut invoked)]),
                        )
                    }
                };
                ops.push(Op::new(i, i, p, OpType::Invoke, f, Some(0), v.clone()));
                open[w] = Some((f, v));
            }
            None => {}
            Some((f, v)) => {
                // Sometimes leave an op open to the end: it never completes.
                if issued >= n && rng.random_bool(0.2) {
                    continue;
                }
                let x: f64 = rng.random();
                let (kind, value) = if x < 0.65 {
                    let value = if f == F::Read {
                        seen(rng, &invoked).map_or(Value::Null, Value::Int)
                    } else {
                        v
                    };
                    (OpType::Ok, value)
                } else if x < 0.8 {
                    (OpType::Fail, v)
                } else {
                    process[w] += procs as u64;
                    (OpType::Info, v)
                };
                ops.push(Op::new(i, i, p, kind, f, Some(0), value));
            }
        }
    }
    History::new(ops)
}

/// Brute force: is there an order of the ok ops plus any subset of the indeterminate ones,
/// consistent with real time, that the register model accepts? Single key; tiny only.
pub fn brute_linearizable(h: &History, model: RegisterOptions) -> bool {
    let ops: Vec<_> = h
        .operations()
        .expect("well-formed")
        .into_iter()
        .filter(|o| o.outcome != Outcome::Fail && !(o.f == F::Read && o.outcome == Outcome::Info))
        .collect();
    assert!(ops.len() <= 10, "brute force is for tiny histories");
    let ret = |i: usize| {
        if ops[i].outcome == Outcome::Ok {
            ops[i].complete().unwrap()
        } else {
            usize::MAX
        }
    };
    let step = |state: Option<i64>, i: usize| -> Option<Option<i64>> {
        match (&ops[i].f, &ops[i].value) {
            (F::Read, Value::Null) if model.nil_read_is_wildcard => Some(state),
            (F::Read, Value::Null) => state.is_none().then_some(state),
            (F::Read, Value::Int(v)) => (state == Some(*v)).then_some(state),
            (F::Write, Value::Int(v)) => Some(Some(*v)),
            (F::Cas, Value::List(l)) => (state == Some(l[0])).then_some(Some(l[1])),
            other => panic!("unexpected op {other:?}"),
        }
    };
    fn dfs(
        used: u32,
        state: Option<i64>,
        n: usize,
        must: u32,
        ok_before: &dyn Fn(usize, u32) -> bool,
        step: &dyn Fn(Option<i64>, usize) -> Option<Option<i64>>,
    ) -> bool {
        if used & must == must {
            return true;
        }
        (0..n).any(|i| {
            used & (1 << i) == 0
                && ok_before(i, used)
                && step(state, i).is_some_and(|s| dfs(used | (1 << i), s, n, must, ok_before, step))
        })
    }
    let n = ops.len();
    let must: u32 = (0..n)
        .filter(|&i| ops[i].outcome == Outcome::Ok)
        .map(|i| 1 << i)
        .sum();
    // Every ok op that returned before i was invoked must already be placed.
    let ok_before = |i: usize, used: u32| {
        (0..n).all(|j| ret(j) >= ops[i].invoke() || used & (1 << j) != 0 || must & (1 << j) == 0)
    };
    dfs(0, model.initial, n, must, &ok_before, &step)
}
