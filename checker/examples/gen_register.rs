//! Writes a large valid register history as JSON Lines to stdout, for measuring `schism
//! check` and the reader on files: `cargo run --release -p schism-checker --example
//! gen_register -- 1000000 10 10 > /tmp/r.jsonl` (ops, keys, processes).

#[path = "../benches/support/register.rs"]
mod register;

use std::io::Write;

fn main() {
    let mut args = std::env::args().skip(1);
    let mut next =
        |default: usize| -> usize { args.next().and_then(|s| s.parse().ok()).unwrap_or(default) };
    let ops = next(1_000_000);
    let keys = next(10) as u64;
    let procs = next(10);
    let h = register::generate(2, ops, keys, procs, false);
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    for op in &h.ops {
        serde_json::to_writer(&mut w, op).expect("stdout");
        w.write_all(b"\n").expect("stdout");
    }
}
