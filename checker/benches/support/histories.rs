//! A seeded generator of large, correct (linearizable) append histories for benchmarks:
//! `procs` processes, a pool of 5 active keys, each retired after 100 appends, half reads.
//! Each op takes effect at a random point between its invoke and its completion.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use schism_history::{F, History, Op, OpType, Process, Value};
use std::collections::HashMap;

/// An op in flight: function, key, invoke value, and its result once applied.
type Pending = Option<(F, u64, Value, Option<Value>)>;

pub fn append_history(ops: usize, procs: usize, seed: u64) -> History {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out: Vec<Op> = Vec::with_capacity(ops * 2);
    let mut lists: HashMap<u64, Vec<i64>> = HashMap::new();
    let mut active: Vec<u64> = (0..5).collect();
    let mut next_key = 5u64;
    let mut next_val = 0i64;
    // Per process: (f, key, value, applied result).
    let mut pending: Vec<Pending> = vec![None; procs];
    let mut issued = 0usize;
    let emit = |out: &mut Vec<Op>, p: usize, kind: OpType, f: F, key: u64, v: Value| {
        let i = out.len() as u64;
        out.push(Op::new(
            i,
            i * 1000,
            Process::client(p as u64),
            kind,
            f,
            Some(key),
            v,
        ));
    };
    while issued < ops || pending.iter().any(Option::is_some) {
        let p = rng.random_range(0..procs);
        match pending[p].take() {
            None if issued < ops => {
                issued += 1;
                let key = active[rng.random_range(0..active.len())];
                let (f, v) = if rng.random_bool(0.5) {
                    (F::Read, Value::Null)
                } else {
                    next_val += 1;
                    (F::Append, Value::Int(next_val))
                };
                emit(&mut out, p, OpType::Invoke, f, key, v.clone());
                pending[p] = Some((f, key, v, None));
            }
            None => {}
            Some((f, key, v, None)) => {
                let l = lists.entry(key).or_default();
                let result = match (&f, &v) {
                    (F::Append, Value::Int(x)) => {
                        l.push(*x);
                        // Retire the key after 100 appends (appends already in flight
                        // may still land on it).
                        if l.len() >= 100
                            && let Some(slot) = active.iter().position(|&k| k == key)
                        {
                            active[slot] = next_key;
                            next_key += 1;
                        }
                        v.clone()
                    }
                    _ => Value::list(l.clone()),
                };
                pending[p] = Some((f, key, v, Some(result)));
            }
            Some((f, key, _, Some(result))) => {
                emit(&mut out, p, OpType::Ok, f, key, result);
            }
        }
    }
    History::new(out)
}
