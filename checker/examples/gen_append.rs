//! Writes a large correct append history as JSON Lines to stdout, for measuring
//! `schism check` (time, peak memory) on files: `cargo run --release -p schism-checker
//! --example gen_append -- 1000000 15 > /tmp/h.jsonl` (ops, processes).

#[path = "../benches/support/histories.rs"]
mod histories;

use std::io::Write;

fn main() {
    let mut args = std::env::args().skip(1);
    let ops: usize = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let procs: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(15);
    let h = histories::append_history(ops, procs, 7);
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    for op in &h.ops {
        serde_json::to_writer(&mut w, op).expect("stdout");
        w.write_all(b"\n").expect("stdout");
    }
}
