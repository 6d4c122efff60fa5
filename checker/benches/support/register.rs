//! A seeded generator of large, valid register histories for benchmarks: a simulated
//! correct register store where every op takes effect at its completion (indeterminate
//! writes may take effect or not), so the histories are linearizable by construction.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use schism_history::{F, History, Op, OpType, Process, Value};

/// A valid register history: `ops` operations over `keys` keys by `procs` processes, each
/// op open while others run (concurrency = `procs`). With `cas`, a third of the writes are
/// cas ops and values repeat (a Knossos-style cas register).
pub fn generate(seed: u64, ops: usize, keys: u64, procs: usize, cas: bool) -> History {
    generate_rotating(seed, ops, keys, procs, cas, 0)
}

/// `generate`, where with `per_key` > 0 the `keys` keys in use move on to fresh ones
/// after about `per_key` ops each (Jepsen's independent keys): `keys * per_key` ops go
/// to keys `0..keys`, the next as many to keys `keys..2 * keys`, and so on.
pub fn generate_rotating(
    seed: u64,
    ops: usize,
    keys: u64,
    procs: usize,
    cas: bool,
    per_key: usize,
) -> History {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let group = (keys as usize).saturating_mul(per_key);
    let groups = if per_key == 0 { 1 } else { ops.div_ceil(group) };
    let mut state: Vec<Option<i64>> = vec![None; keys as usize * groups.max(1)];
    let mut open: Vec<Option<(F, u64, Value)>> = vec![None; procs];
    let mut pid: Vec<u64> = (0..procs as u64).collect();
    let mut next_pid = procs as u64;
    let mut out: Vec<Op> = Vec::with_capacity(ops * 2 + procs);
    let mut next_value = 1i64;
    let mut started = 0usize;
    let push = |out: &mut Vec<Op>, p: u64, kind, f: F, key: u64, v: Value| {
        let i = out.len() as u64;
        out.push(Op::new(
            i,
            i * 10_000,
            Process::client(p),
            kind,
            f,
            Some(key),
            v,
        ));
    };
    while started < ops || open.iter().any(Option::is_some) {
        let slot = rng.random_range(0..procs);
        let p = pid[slot];
        match open[slot].take() {
            None if started < ops => {
                let base = if per_key == 0 {
                    0
                } else {
                    (started / group) as u64 * keys
                };
                let key = base + rng.random_range(0..keys);
                let (f, v) = if rng.random_bool(0.5) {
                    (F::Read, Value::Null)
                } else if cas && rng.random_bool(0.4) {
                    let e = rng.random_range(0..5);
                    (F::Cas, Value::list(vec![e, rng.random_range(0..5)]))
                } else if cas {
                    (F::Write, Value::Int(rng.random_range(0..5)))
                } else {
                    next_value += 1;
                    (F::Write, Value::Int(next_value))
                };
                push(&mut out, p, OpType::Invoke, f, key, v.clone());
                open[slot] = Some((f, key, v));
                started += 1;
            }
            None => {}
            Some((f, key, v)) => {
                let k = key as usize;
                let roll: f64 = rng.random();
                match f {
                    F::Read => {
                        let got = state[k].map_or(Value::Null, Value::Int);
                        push(&mut out, p, OpType::Ok, f, key, got);
                    }
                    F::Write if roll < 0.01 => {
                        // Indeterminate: took effect or not.
                        if rng.random_bool(0.5) {
                            state[k] = v.as_int();
                        }
                        push(&mut out, p, OpType::Info, f, key, v);
                        pid[slot] = next_pid;
                        next_pid += 1;
                    }
                    F::Write => {
                        state[k] = v.as_int();
                        push(&mut out, p, OpType::Ok, f, key, v);
                    }
                    _ => {
                        let l = v.as_list().unwrap().to_vec();
                        if state[k] == Some(l[0]) {
                            state[k] = Some(l[1]);
                            push(&mut out, p, OpType::Ok, f, key, v);
                        } else {
                            push(&mut out, p, OpType::Fail, f, key, v);
                        }
                    }
                }
            }
        }
    }
    History::new(out)
}
