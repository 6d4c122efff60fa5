//! Writes a large valid register history as JSON Lines to stdout, for measuring `schism
//! check` and the reader on files: `cargo run --release -p schism-checker --example
//! gen_register -- 1000000 10 10 > /tmp/r.jsonl` (ops, keys, processes). A fourth
//! argument rotates the keys: `1000000 10 10 1000` uses keys 0..10 for 10,000 ops, then
//! keys 10..20, and so on (1,000 keys of about 1,000 ops each).

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
    let per_key = next(0);
    let h = if per_key == 0 {
        register::generate(2, ops, keys, procs, false)
    } else {
        register::generate_rotating(2, ops, keys, procs, false, per_key)
    };
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    for op in &h.ops {
        serde_json::to_writer(&mut w, op).expect("stdout");
        w.write_all(b"\n").expect("stdout");
    }
}
