//! Fuzzing both readers: arbitrary bytes and structure-aware mutations of real histories
//! (JSON Lines from schism's own `HistoryWriter`, EDN from the Knossos corpus). Every
//! input goes to both readers, and a history they accept is paired too. The property:
//! no panic, no abort (a stack overflow would kill the test binary), and every rejection
//! names `file:line` and quotes at most ~200 characters.
//!
//! `SCHISM_FUZZ_CASES` sets the number of cases (default 10,000: about a second of CPU); the long
//! run of the acceptance is
//! `SCHISM_FUZZ_CASES=100000 cargo test --release -p schism-history --test it fuzz -- --nocapture`.

use crate::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use schism_history::{read_edn_bytes, read_jsonl};
use std::cell::Cell;

/// Tokens a mutation splices in: the syntax and values both formats hinge on.
const TOKENS: &[&str] = &[
    "[",
    "]",
    "{",
    "}",
    "(",
    ")",
    "#{",
    "#_",
    "#inst ",
    "#jepsen.history.Op",
    "\"",
    "\\",
    "\\newline",
    ";",
    ",",
    ":",
    "::",
    "nil",
    "null",
    "true",
    "-1",
    "0",
    "1e999",
    "-0.0",
    "18446744073709551616",
    "9223372036854775808",
    "1N",
    "2M",
    "\"nemesis\"",
    ":nemesis",
    ":invoke",
    ":ok",
    ":fail",
    ":info",
    "\"invoke\"",
    "\"ok\"",
    "\"info\"",
    "\"type\":",
    "\"index\":",
    "\"process\":",
    "\"value\":",
    ":process ",
    ":type ",
    ":index ",
    ":value ",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\n",
    "\r\n",
    "\u{FEFF}",
    "\u{10FFFF}",
    "\t",
    "é",
];

/// One mutation: what to do, where (a fraction of the input), and with what.
#[derive(Debug, Clone)]
struct Mutation {
    kind: u8,
    at: u32,
    len: u16,
    byte: u8,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    (any::<u8>(), any::<u32>(), any::<u16>(), any::<u8>()).prop_map(|(kind, at, len, byte)| {
        Mutation {
            kind,
            at,
            len,
            byte,
        }
    })
}

fn line_starts(b: &[u8]) -> Vec<usize> {
    std::iter::once(0)
        .chain(
            b.iter()
                .enumerate()
                .filter(|&(_, &c)| c == b'\n')
                .map(|(i, _)| i + 1),
        )
        .filter(|&i| i < b.len())
        .collect()
}

/// Applies `m` to `b`: byte edits, token splices, line shuffles, deep nesting, long runs.
fn apply(b: &mut Vec<u8>, m: &Mutation) {
    let pos = |n: usize| if n == 0 { 0 } else { m.at as usize % (n + 1) };
    let p = pos(b.len());
    let len = m.len as usize % 64 + 1;
    match m.kind % 14 {
        0 => {
            if let Some(x) = b.get_mut(p) {
                *x ^= 1 << (m.byte % 8);
            }
        }
        1 => b.insert(p, m.byte),
        2 => {
            let end = (p + len).min(b.len());
            b.drain(p..end);
        }
        3 | 4 => {
            let t = TOKENS[m.byte as usize % TOKENS.len()];
            b.splice(p..p, t.bytes());
        }
        5 => {
            // Replace a token-sized run with a dictionary token.
            let end = (p + len % 8).min(b.len());
            let t = TOKENS[m.byte as usize % TOKENS.len()];
            b.splice(p..end, t.bytes());
        }
        6 => {
            // Duplicate a chunk elsewhere.
            let end = (p + len * 8).min(b.len());
            let chunk = b[p..end].to_vec();
            let to = pos(b.len()).min(b.len());
            b.splice(to..to, chunk);
        }
        7 | 8 => {
            // Delete, duplicate or swap whole lines (keeps lines well-formed, breaks order).
            let starts = line_starts(b);
            if starts.len() < 2 {
                return;
            }
            let i = m.at as usize % starts.len();
            let j = (m.len as usize) % starts.len();
            let total = b.len();
            let end = |k: usize| starts.get(k + 1).copied().unwrap_or(total);
            let line_i = b[starts[i]..end(i)].to_vec();
            match m.byte % 3 {
                0 => {
                    b.drain(starts[i]..end(i));
                }
                1 => {
                    b.splice(starts[j]..starts[j], line_i);
                }
                _ => {
                    let (a, c) = if i < j { (i, j) } else { (j, i) };
                    if a != c {
                        let la = b[starts[a]..end(a)].to_vec();
                        let lc = b[starts[c]..end(c)].to_vec();
                        b.splice(starts[c]..end(c), la);
                        b.splice(starts[a]..end(a), lc);
                    }
                }
            }
        }
        9 => {
            // Deep nesting (the stack overflow came from ~9,650 levels).
            let open = [b"[".as_slice(), b"{", b"(", b"#_", b"#{", b"{:a "][m.byte as usize % 6];
            let n = m.len as usize % 600;
            let deep: Vec<u8> = open.iter().copied().cycle().take(open.len() * n).collect();
            b.splice(p..p, deep);
        }
        10 => {
            // A long run: quoted text a message might echo.
            let run = vec![b'a' + m.byte % 26; m.len as usize % 1024 * 8];
            b.splice(p..p, run);
        }
        11 => b.truncate(p),
        12 => {
            // Bytes that are never valid UTF-8, or a lone lead byte.
            let bad = [0xFF, 0xFE, 0xC0, 0xC3, 0xE2, 0x80][m.byte as usize % 6];
            b.insert(p, bad);
        }
        _ => {
            if p == 0 || m.byte & 1 == 0 {
                b.splice(0..0, *b"\xEF\xBB\xBF");
            } else {
                b.insert(p, b'\n');
            }
        }
    }
}

/// Real histories to mutate: our writer's JSON Lines (small and mid-sized) and the
/// smaller Knossos EDN files.
fn seeds() -> Vec<Vec<u8>> {
    let mut out = vec![written_history(3), written_history(40)];
    if let Some(dir) = knossos_dir() {
        for f in [
            "cas-register/bad/immediate-failure.edn",
            "cas-register/bad/rethink-fail-minimal.edn",
            "cas-register/bad/bad-analysis.edn",
            "cas-register/good/memstress3-0.edn",
            "multi-register/good/multi-register.edn",
            "mutex/bad/etcd.edn",
        ] {
            let bytes = std::fs::read(dir.join(f)).unwrap();
            // Long files are cut to their first lines: mutations land near the front.
            let cut: Vec<u8> = bytes
                .split_inclusive(|&b| b == b'\n')
                .take(60)
                .flatten()
                .copied()
                .collect();
            out.push(cut);
        }
    }
    out
}

/// Tallies of one fuzz run.
#[derive(Default)]
struct Tally {
    cases: Cell<u64>,
    accepted: Cell<u64>,
    rejected: Cell<u64>,
}

impl Tally {
    fn add(c: &Cell<u64>) {
        c.set(c.get() + 1);
    }
}

/// Feeds `input` to a reader; `Ok` histories are paired as well.
fn check_reader(
    t: &Tally,
    path: &Path,
    read: impl FnOnce() -> Result<schism_history::History, schism_history::HistoryError>,
) -> Result<(), TestCaseError> {
    let result = read().and_then(|h| h.operations().map(|_| h));
    match result {
        Ok(_) => Tally::add(&t.accepted),
        Err(e) => {
            Tally::add(&t.rejected);
            let e = e.to_string();
            let located = std::panic::catch_unwind(|| assert_located(&e, path));
            prop_assert!(
                located.is_ok(),
                "error without {}:line: {e}",
                path.display()
            );
        }
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("SCHISM_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

#[test]
fn both_readers_survive_fuzzed_input_and_always_name_file_and_line() {
    let seeds = seeds();
    let tally = Tally::default();
    let jsonl = Path::new("fuzz.jsonl");
    let edn = Path::new("fuzz.edn");
    let strategy = prop_oneof![
        // Arbitrary bytes.
        1 => proptest::collection::vec(any::<u8>(), 0..512),
        // Mutations of real histories.
        4 => (0..seeds.len(), proptest::collection::vec(mutation(), 1..8)).prop_map({
            let seeds = seeds.clone();
            move |(s, ms)| {
                let mut b = seeds[s].clone();
                for m in &ms {
                    apply(&mut b, m);
                }
                b
            }
        }),
    ];
    let config = Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |input| {
        Tally::add(&tally.cases);
        check_reader(&tally, jsonl, || {
            read_jsonl(input.as_slice(), jsonl).map(|(h, _)| h)
        })?;
        check_reader(&tally, edn, || read_edn_bytes(&input, edn))
    });
    if let Err(e) = result {
        panic!("after {} inputs: {e}", tally.cases.get());
    }
    eprintln!(
        "fuzz: {} inputs, {} reader runs: {} accepted, {} rejected, each naming file:line; 0 panics, 0 aborts",
        tally.cases.get(),
        tally.accepted.get() + tally.rejected.get(),
        tally.accepted.get(),
        tally.rejected.get()
    );
}
