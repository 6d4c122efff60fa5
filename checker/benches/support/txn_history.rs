//! A strict-serializable list-append history of transactions for benchmarks: the
//! workloads' transaction generator run on an in-memory store by `procs` concurrent
//! processes, each transaction applied atomically between its invocation and completion.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use schism_history::txn::{MicroOp, MopF, MopValue, txn_value};
use schism_history::{F, History, Key, Op, OpType, Process};
use schism_workloads::txn::{KeyDist, TxnGenerator, TxnKind, TxnSpec};
use std::collections::HashMap;

/// A process's invoked transaction and, once applied, its completed micro-ops.
type InFlight = (Vec<MicroOp>, Option<Vec<MicroOp>>);

fn op(i: usize, p: u64, kind: OpType, mops: &[MicroOp]) -> Op {
    Op::new(
        i as u64,
        i as u64 * 1000,
        Process::client(p),
        kind,
        F::parse("txn"),
        None,
        txn_value(mops),
    )
}

fn apply(mops: &[MicroOp], state: &mut HashMap<Key, Vec<i64>>) -> Vec<MicroOp> {
    mops.iter()
        .map(|m| match m.f {
            MopF::Read => {
                let cur = state.get(&m.key).cloned().unwrap_or_default();
                MicroOp {
                    value: if cur.is_empty() {
                        MopValue::Nil
                    } else {
                        MopValue::List(cur)
                    },
                    ..m.clone()
                }
            }
            _ => {
                state.entry(m.key).or_default().push(m.written().unwrap());
                m.clone()
            }
        })
        .collect()
}

/// `txns` transactions of exactly `len` micro-ops over `keys` active keys (each retired
/// after 16 appends), half reads, on `procs` processes, then a final read of every key.
pub fn list_append_history(txns: usize, len: usize, keys: u64, procs: u64, seed: u64) -> History {
    let mut g = TxnGenerator::new(TxnSpec {
        kind: TxnKind::ListAppend,
        keys,
        min_len: len,
        max_len: len,
        max_writes_per_key: 16,
        read_fraction: 0.5,
        key_dist: KeyDist::Uniform,
        seed,
    })
    .unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut ops = Vec::with_capacity(txns * 2 + 2 * 1024);
    let mut state: HashMap<Key, Vec<i64>> = HashMap::new();
    let mut open: Vec<Option<InFlight>> = vec![None; procs as usize];
    let mut started = 0;
    while started < txns || open.iter().any(Option::is_some) {
        let p = rng.random_range(0..procs);
        let slot = &mut open[p as usize];
        match slot.take() {
            None if started < txns => {
                let mops = g.next_txn();
                ops.push(op(ops.len(), p, OpType::Invoke, &mops));
                started += 1;
                *slot = Some((mops, None));
            }
            None => {}
            Some((mops, None)) => {
                let done = apply(&mops, &mut state);
                *slot = Some((mops, Some(done)));
            }
            Some((_, Some(done))) => ops.push(op(ops.len(), p, OpType::Ok, &done)),
        }
    }
    // Final reads of the keys still growing (retired keys were read whole already).
    let mut live: Vec<Key> = state.keys().copied().collect();
    live.sort_unstable();
    for k in live.into_iter().rev().take(keys as usize) {
        let mops = vec![MicroOp::read(k)];
        ops.push(op(ops.len(), 0, OpType::Invoke, &mops));
        let done = apply(&mops, &mut state);
        ops.push(op(ops.len(), 0, OpType::Ok, &done));
    }
    History::new(ops)
}
