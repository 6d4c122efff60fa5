//! `schism check` on hand-made files: validation names the first violation (exit 3),
//! explicit zones refuses repeated values, and a time budget ends a hard cas search
//! `unknown` (exit 2).

use crate::*;
use std::io::Write;

fn write_lines(path: &Path, lines: &[String]) {
    let mut f = std::fs::File::create(path).unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

fn line(i: u64, p: u64, kind: &str, f: &str, value: &str) -> String {
    format!(
        r#"{{"index":{i},"time_ns":{},"process":{p},"type":"{kind}","f":"{f}","key":0,"value":{value}}}"#,
        i * 1000
    )
}

#[test]
fn validation_names_the_first_violation_by_index() {
    let dir = tempdir();
    let path = dir.path().join("h.jsonl");
    // index 2: an unknown function for the register model; index 4: a double invoke.
    write_lines(
        &path,
        &[
            line(0, 1, "invoke", "write", "1"),
            line(1, 1, "ok", "write", "1"),
            line(2, 2, "invoke", "incr", "1"),
            line(3, 3, "invoke", "read", "null"),
            line(4, 3, "invoke", "read", "null"),
        ],
    );
    let out = schism()
        .args(["check", "--model", "register"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("op index 2: function \"incr\" does not belong to the register model"),
        "{err}"
    );
}

#[test]
fn zones_refuses_repeated_values_but_the_exact_search_accepts_them() {
    let dir = tempdir();
    let path = dir.path().join("h.jsonl");
    write_lines(
        &path,
        &[
            line(0, 1, "invoke", "write", "1"),
            line(1, 1, "ok", "write", "1"),
            line(2, 1, "invoke", "write", "1"),
            line(3, 1, "ok", "write", "1"),
            line(4, 2, "invoke", "read", "null"),
            line(5, 2, "ok", "read", "1"),
        ],
    );
    let out = schism()
        .args(["check", "--algorithm", "zones"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("op index 2: write of 1 to key 0 repeats the write at op index 0"),
        "{}",
        stderr(&out)
    );
    let out = schism().arg("check").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

/// A register history whose cas search is hard: 60 waves of 16 concurrent writes, each
/// wave inside one cas (also used to interrupt a long check).
pub fn write_slow_cas_history(path: &Path) {
    let mut lines = Vec::new();
    let mut i = 0;
    let mut push = |p: u64, kind: &str, f: &str, v: String| {
        lines.push(line(i, p, kind, f, &v));
        i += 1;
    };
    for wave in 0..60i64 {
        let cas = format!("[{},{}]", wave * 100 + 3, wave * 100 + 99);
        push(16, "invoke", "cas", cas.clone());
        for p in 0..16 {
            push(p, "invoke", "write", (wave * 100 + p as i64).to_string());
        }
        for p in 0..16 {
            push(p, "ok", "write", (wave * 100 + p as i64).to_string());
        }
        push(16, "ok", "cas", cas);
    }
    push(99, "invoke", "read", "null".into());
    push(99, "ok", "read", "0".into());
    write_lines(path, &lines);
}

#[test]
fn a_time_budget_ends_a_hard_cas_search_unknown() {
    let dir = tempdir();
    let path = dir.path().join("h.jsonl");
    write_slow_cas_history(&path);
    let t = Instant::now();
    let out = schism()
        // The linearizability search alone: the final read is also a stale read, which the
        // per-op checkers prove at once (invalid beats unknown); this test is about the budget.
        .args([
            "check",
            "--checker",
            "linearizable",
            "--checker-time-limit",
            "300ms",
            "--checker-max-states",
            "1000000000",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("aborted (time budget)"),
        "{}",
        stdout(&out)
    );
    // Generous: the point is that the abort is honoured, not how fast.
    assert!(t.elapsed() < Duration::from_secs(30));
}
