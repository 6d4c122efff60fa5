//! Writes a strict-serializable list-append history of N transactions (4 micro-ops, 1,000
//! keys, 10 processes) as JSON Lines to stdout, for end-to-end `schism check` timings:
//! `cargo run --release -p schism-checker --example gen_txn -- 1000000 > h.jsonl`.

#[path = "../benches/support/txn_history.rs"]
mod txn_history;

use std::io::Write;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let h = txn_history::list_append_history(n, 4, 1000, 10, 7);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for op in &h.ops {
        serde_json::to_writer(&mut out, op).unwrap();
        out.write_all(b"\n").unwrap();
    }
}
