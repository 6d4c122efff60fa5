//! Reader throughput on one file, in one run (BENCHMARKS.md, "History reader"):
//! `cargo run --release -p schism-history --example reader_speed -- FILE`. Prints MB/s for
//! counting lines (what `wc -l` does), a plain `serde_json::Value` parse of every line,
//! serde_json's typed parse of every line into an `Op` (the reader's path before its fast
//! path, and still its fallback), then serde_json typed against `parse_line` (fast path
//! first) on the lines already in memory and split (as BENCHMARKS.md's parser comparison
//! measured parsers), then the reader on one thread, on every core, and on every core as
//! `schism check` reads a file (its lines cut on a thread of their own). An optional
//! second argument runs only the rows whose name holds it (`reader_speed FILE 'of a file'`
//! under a profiler). The file is read from the page cache each time (run it twice; the
//! first warms the cache).

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::time::Instant;

fn open(path: &Path) -> BufReader<std::fs::File> {
    BufReader::with_capacity(1 << 16, std::fs::File::open(path).expect("open FILE"))
}

fn count_lines(path: &Path) -> usize {
    let mut r = open(path);
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0;
    loop {
        let got = r.read(&mut buf).expect("read");
        if got == 0 {
            return n;
        }
        n += buf[..got].iter().filter(|&&b| b == b'\n').count();
    }
}

fn value_parse(path: &Path) -> usize {
    let mut n = 0;
    for line in open(path).lines() {
        let line = line.expect("read");
        if !line.trim().is_empty() {
            let v: serde_json::Value = serde_json::from_str(&line).expect("json");
            n += usize::from(!v.is_null());
        }
    }
    n
}

fn typed_parse(path: &Path) -> usize {
    let mut n = 0;
    for line in open(path).lines() {
        let line = line.expect("read");
        if !line.trim().is_empty() {
            let op: schism_history::Op = serde_json::from_str(&line).expect("op");
            n += usize::from(op.index() < u64::MAX);
        }
    }
    n
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: reader_speed FILE [ROW]");
    // Only the rows whose name holds this text (for a profiler), else all.
    let only = args.next().unwrap_or_default();
    let path = Path::new(&path);
    let mb = std::fs::metadata(path).expect("stat").len() as f64 / 1e6;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let time = |name: &str, f: &dyn Fn() -> usize| {
        if !name.contains(&only) {
            return;
        }
        let t = Instant::now();
        let n = f();
        let s = t.elapsed().as_secs_f64();
        println!(
            "{name:<40} {n:>9} lines/ops {s:>7.3} s {:>8.1} MB/s",
            mb / s
        );
    };
    println!("{} ({mb:.1} MB, {cores} cores)", path.display());
    time("count newlines (wc -l)", &|| count_lines(path));
    time("serde_json::Value per line", &|| value_parse(path));
    time("serde_json typed Op per line", &|| typed_parse(path));
    // As BENCHMARKS.md's parser comparison measured parsers: the file in memory, its
    // lines split beforehand, one thread.
    let data = std::fs::read(path).expect("read FILE");
    let lines: Vec<&[u8]> = data
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    time("in memory: serde_json typed Op per line", &|| {
        lines
            .iter()
            .map(|l| serde_json::from_slice::<schism_history::Op>(l).expect("op"))
            .filter(|op| op.index() < u64::MAX)
            .count()
    });
    time("in memory: parse_line (fast path first)", &|| {
        lines
            .iter()
            .enumerate()
            .map(|(i, l)| schism_history::parse_line(l, i + 1, true, path).expect("op"))
            .filter(|p| matches!(p, schism_history::ParsedLine::Op(_)))
            .count()
    });
    drop(lines);
    drop(data);
    time("schism reader, 1 thread", &|| {
        schism_history::read_jsonl_threads(open(path), path, 1)
            .expect("history")
            .0
            .len()
    });
    time(&format!("schism reader, {cores} threads"), &|| {
        schism_history::read_jsonl(open(path), path)
            .expect("history")
            .0
            .len()
    });
    time(
        &format!("schism reader of a file, {cores} threads"),
        &|| {
            schism_history::read_history_file(path)
                .expect("history")
                .0
                .len()
        },
    );
}
