//! Writes a large valid `counter` or `set` history as JSON Lines to stdout through our
//! writer, for measuring `schism check` on files: `cargo run --release -p schism-checker
//! --example gen_counter -- counter 1000000 10 10 > /tmp/c.jsonl` (workload `counter` or
//! `set`, ops, keys, processes). Counters: `incr` of 1–5 and reads of the value at their
//! completion. Sets: `add` of unique integers, each key taking 64 elements before a
//! fresh key replaces it, and reads of the whole set at their completion. About 1% of
//! the increments and adds fail and 1% end indeterminate (applied).

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use schism_history::{F, HistoryWriter, Op, OpType, Process, Value};

/// Elements a set key takes before a fresh key replaces it.
const SET_KEY_ELEMENTS: usize = 64;

fn main() {
    let mut args = std::env::args().skip(1);
    let set = match args.next().as_deref() {
        Some("set") => true,
        Some("counter") | None => false,
        Some(other) => panic!("workload {other:?}: expected counter or set"),
    };
    let mut next =
        |default: usize| -> usize { args.next().and_then(|s| s.parse().ok()).unwrap_or(default) };
    let ops = next(1_000_000);
    let keys = next(10).max(1);
    let procs = next(10).max(1);
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let stdout = std::io::stdout();
    let mut w = HistoryWriter::new(stdout.lock());
    // Per slot: its key, the counter's value or the set's elements.
    let mut slot_key: Vec<u64> = (0..keys as u64).collect();
    let mut next_key = keys as u64;
    let mut counters = vec![0i64; keys];
    let mut sets: Vec<Vec<i64>> = vec![Vec::new(); keys];
    let mut added = vec![0usize; keys];
    let mut open: Vec<Option<(F, usize, u64, i64)>> = vec![None; procs];
    let mut next_value = 0i64;
    let mut time_ns = 0u64;
    for index in 0..ops as u64 {
        time_ns += rng.random_range(1_000..200_000);
        let p = rng.random_range(0..procs);
        let process = Process::client(p as u64);
        let op = match open[p].take() {
            None => {
                let slot = rng.random_range(0..keys);
                let key = slot_key[slot];
                let (f, v) = if rng.random_range(0..3) == 0 {
                    (F::Read, 0)
                } else if set {
                    next_value += 1;
                    (F::Add, next_value)
                } else {
                    (F::Incr, rng.random_range(1..=5))
                };
                open[p] = Some((f, slot, key, v));
                let value = if f == F::Read {
                    Value::Null
                } else {
                    Value::Int(v)
                };
                Op::new(index, time_ns, process, OpType::Invoke, f, Some(key), value)
            }
            Some((f, slot, key, v)) => {
                let live = slot_key[slot] == key;
                let roll = rng.random_range(0..100);
                let kind = match (f, roll) {
                    (F::Read, _) => OpType::Ok,
                    (_, 0) => OpType::Fail,
                    (_, 1) => OpType::Info,
                    _ => OpType::Ok,
                };
                if f != F::Read && kind != OpType::Fail && live {
                    if set {
                        sets[slot].push(v);
                        added[slot] += 1;
                    } else {
                        counters[slot] += v;
                    }
                }
                let value = match f {
                    F::Read if !live => Value::Null,
                    F::Read if set => Value::list(sets[slot].clone()),
                    F::Read => Value::Int(counters[slot]),
                    _ => Value::Int(v),
                };
                let kind = if f == F::Read && !live {
                    OpType::Fail
                } else {
                    kind
                };
                if set && added[slot] >= SET_KEY_ELEMENTS {
                    slot_key[slot] = next_key;
                    next_key += 1;
                    sets[slot].clear();
                    added[slot] = 0;
                }
                Op::new(index, time_ns, process, kind, f, Some(key), value)
            }
        };
        w.append(&op).expect("stdout");
    }
    w.flush().expect("stdout");
}
