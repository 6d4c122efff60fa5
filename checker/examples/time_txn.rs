//! Times the `txn` checker on a strict-serializable list-append history of N transactions
//! (4 micro-ops, 1,000 keys, 10 processes): wall clock and this process's CPU time per
//! check (user + system, from /proc/self/stat, which a loaded machine barely changes).
//! `cargo run --release -p schism-checker --example time_txn -- 1000000 3`.

#[path = "../benches/support/txn_history.rs"]
mod txn_history;

use schism_checker::txn::{ConsistencyModel, TxnOptions, TxnWorkload, check_txn};
use std::time::Instant;

/// User + system CPU seconds of this process (clock ticks of 10 ms).
fn cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let rounds: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(3);
    let h = txn_history::list_append_history(n, 4, 1000, 10, 7);
    let opts = TxnOptions::new(
        TxnWorkload::ListAppend,
        ConsistencyModel::StrictSerializable,
    );
    for _ in 0..rounds {
        let (t0, c0) = (Instant::now(), cpu_s());
        let r = check_txn(&h, &opts).unwrap();
        println!(
            "{n} txns: {} in {:.2} s wall, {:.2} s CPU; {} edges",
            r.validity,
            t0.elapsed().as_secs_f64(),
            cpu_s() - c0,
            r.figures["edges"]
        );
    }
}
