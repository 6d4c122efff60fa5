//! `schism check` at scale: several histories in one process (the Knossos corpus as a
//! directory: one line per history, a summary, the worst outcome as exit code), the
//! memory bound (a file too large is refused before it is read), and `--follow` on a
//! history another process is still writing.

use crate::*;
use std::io::Write;

/// The corpus's cas-register and multi-register histories copied into a temp dir, with
/// their expected verdicts (`true`/`false`) from expected.tsv.
fn corpus_copy(into: &Path) -> Option<Vec<(PathBuf, bool)>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/knossos");
    if !dir.join("expected.tsv").is_file() {
        assert!(
            std::env::var_os("CI").is_none(),
            "the Knossos corpus is missing: expected {}",
            dir.display()
        );
        return None;
    }
    let tsv = std::fs::read_to_string(dir.join("expected.tsv")).unwrap();
    let mut out = Vec::new();
    for line in tsv
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let cols: Vec<&str> = line.split('\t').collect();
        if !(cols[0].starts_with("cas-register/") || cols[0].starts_with("multi-register/")) {
            continue;
        }
        let to = into.join(cols[0]);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(dir.join(cols[0]), &to).unwrap();
        out.push((to, cols[2] == "true"));
    }
    Some(out)
}

#[test]
fn a_directory_of_histories_is_checked_in_one_process_with_one_line_each() {
    let tmp = tempdir();
    let Some(expected) = corpus_copy(tmp.path()) else {
        return;
    };
    let out = schism().arg("check").arg(tmp.path()).output().unwrap();
    let text = stdout(&out);
    // The worst outcome: the corpus holds invalid histories.
    assert_eq!(out.status.code(), Some(1), "{text}\n{}", stderr(&out));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), expected.len() + 1, "{text}");
    for (path, valid) in &expected {
        let line = lines
            .iter()
            .find(|l| l.split_whitespace().nth(1) == Some(path.to_str().unwrap()))
            .unwrap_or_else(|| panic!("no line for {}:\n{text}", path.display()));
        let verdict = line.split_whitespace().next().unwrap();
        // Knossos's vacuous passes (no op succeeded) are unknown by the evidence rule.
        let ok = if *valid {
            matches!(verdict, "valid" | "unknown")
        } else {
            verdict == "invalid"
        };
        assert!(ok, "{}: expected valid={valid}: {line}", path.display());
    }
    let invalid = expected.iter().filter(|(_, v)| !v).count();
    let summary = lines.last().unwrap();
    assert!(
        summary.starts_with(&format!("{} histories: ", expected.len()))
            && summary.contains(&format!(", {invalid} invalid,")),
        "{summary}"
    );
    // Only valid histories: exit 0; a bad file among them makes the exit 3.
    let (valid_one, _) = expected
        .iter()
        .find(|(p, v)| *v && p.to_str().unwrap().contains("cas-register/good/"))
        .unwrap();
    let only = schism()
        .arg("check")
        .arg(valid_one)
        .arg(valid_one)
        .output()
        .unwrap();
    assert_eq!(only.status.code(), Some(0), "{}", stdout(&only));
    let bad = tmp.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"index\":0,oops}\n").unwrap();
    let mixed = schism()
        .arg("check")
        .arg(valid_one)
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(mixed.status.code(), Some(3), "{}", stdout(&mixed));
    assert!(
        stdout(&mixed).contains(&format!("{}:1: not a valid history op", bad.display())),
        "{}",
        stdout(&mixed)
    );
}

#[test]
fn a_history_too_large_for_memory_is_refused_before_it_is_read() {
    let tmp = tempdir();
    // A sparse 1 TiB file: refused from its size alone, without reading a byte.
    let huge = tmp.path().join("huge.jsonl");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(1 << 40)
        .unwrap();
    let t = Instant::now();
    let out = schism().arg("check").arg(&huge).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("needs about 2199.09 GB of memory") && err.contains("--max-memory"),
        "{err}"
    );
    assert!(t.elapsed() < Duration::from_secs(30), "refused early");
    // The flag lowers the limit for an ordinary file too.
    let small = tmp.path().join("small.jsonl");
    std::fs::write(
        &small,
        "{\"index\":0,\"time_ns\":0,\"process\":0,\"type\":\"invoke\",\"f\":\"read\",\"key\":0}\n",
    )
    .unwrap();
    let out = schism()
        .args(["check", "--max-memory", "1M"])
        .arg(&small)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the --max-memory limit"),
        "{}",
        stderr(&out)
    );
}

/// `--checker stats` streams the file through the checker, never holding it: its size
/// is no reason to refuse it (here the sparse file's first 16 MiB of zeros, not a line,
/// are the error, found without reading the rest).
#[test]
fn a_streamed_check_is_not_refused_for_the_file_size() {
    let tmp = tempdir();
    let huge = tmp.path().join("huge.jsonl");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(1 << 40)
        .unwrap();
    let out = schism()
        .args(["check", "--checker", "stats", "--max-memory", "1M"])
        .arg(&huge)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("huge.jsonl:1: line is longer than 16 MiB") && !err.contains("--max-memory"),
        "{err}"
    );
}

/// A register history as the runner writes it, with one stale read on key 0 after
/// `before` good ops: the stale read is the line the follower must report.
fn register_lines(before: usize, after: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut i = 0u64;
    let mut op = |p: u64, kind: &str, f: &str, v: &str| {
        let l = format!(
            r#"{{"index":{i},"time_ns":{},"process":{p},"type":"{kind}","f":"{f}","key":0,"value":{v},"node":"n1"}}"#,
            i * 1000
        );
        i += 1;
        l
    };
    for n in 0..before as i64 + after as i64 {
        let v = (n + 1).to_string();
        lines.push(op(0, "invoke", "write", &v));
        lines.push(op(0, "ok", "write", &v));
        // Read the value just written; at `before`, read the previous one: stale.
        let got = if n == before as i64 {
            n.to_string()
        } else {
            v.clone()
        };
        lines.push(op(1, "invoke", "read", "null"));
        lines.push(op(1, "ok", "read", &got));
        if n == before as i64 {
            // Another process reads the missed write: it was not lost, the read was stale.
            lines.push(op(2, "invoke", "read", "null"));
            lines.push(op(2, "ok", "read", &v));
        }
    }
    lines
}

#[test]
fn follow_reports_a_stale_read_before_the_writer_finishes() {
    let tmp = tempdir();
    let path = tmp.path().join("history.jsonl");
    follow_slowly(
        &path,
        &register_lines(20, 180),
        "stale-read at op index 83",
        84,
    );
}

/// The same history as a Jepsen journal (`history.edn`: one op map per line, as Jepsen
/// writes it while a test runs): the follower reads whole forms as they arrive.
#[test]
fn follow_reads_a_jepsen_edn_journal_as_it_grows() {
    let tmp = tempdir();
    let path = tmp.path().join("history.edn");
    let edn: Vec<String> = register_lines(20, 180).iter().map(|l| edn_of(l)).collect();
    follow_slowly(&path, &edn, "stale-read at op index 83", 84);
}

/// Jepsen's own EDN (a Knossos corpus file, one collection of op maps) followed while it
/// is written: every op is read and the verdict is the corpus's.
#[test]
fn follow_of_a_knossos_file_ends_with_its_known_verdict() {
    let Some(dir) = knossos::corpus() else {
        return;
    };
    let src = dir.join("cas-register/bad/cas-failure.edn");
    let text = std::fs::read_to_string(&src).unwrap();
    let tmp = tempdir();
    let path = tmp.path().join("cas-failure.edn");
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let out = follow_with_writer(&path, &lines, &[]);
    let err = stderr(&out.output);
    let ops = schism_history::read_edn_file(&src).unwrap().ops.len();
    assert!(
        err.contains(&format!("stopped following after {ops} ops")),
        "{err}"
    );
    assert_eq!(out.output.status.code(), Some(1), "{err}");
}

/// One JSON Lines op line of `register_lines` as Jepsen's EDN op map.
fn edn_of(line: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let value = match &v["value"] {
        serde_json::Value::Null => "nil".to_owned(),
        other => other.to_string(),
    };
    format!(
        "{{:index {}, :time {}, :process {}, :type :{}, :f :{}, :value {value}}}",
        v["index"],
        v["time_ns"],
        v["process"],
        v["type"].as_str().unwrap(),
        v["f"].as_str().unwrap()
    )
}

/// What the follower printed, when, and how it ended.
struct Followed {
    seen: Vec<(Instant, String)>,
    writer_done: Instant,
    output: Output,
}

/// Starts `schism check --follow` on `path`, writes `lines` to it 20 every 100 ms, and
/// waits for the follower to end.
fn follow_with_writer(path: &Path, lines: &[String], flags: &[&str]) -> Followed {
    let mut f = std::fs::File::create(path).unwrap();
    let mut child = schism()
        .args(["check", "--follow", "--quiet", "2s"])
        .args(flags)
        .arg(path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send((Instant::now(), l));
        }
    });
    for chunk in lines.chunks(20) {
        for l in chunk {
            writeln!(f, "{l}").unwrap();
        }
        f.flush().unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    let writer_done = Instant::now();
    let output = child.wait_with_output().unwrap();
    // Every line the follower printed: the reader ends at its EOF (a `try_iter` right
    // after the exit could miss lines still in the pipe).
    reader.join().unwrap();
    Followed {
        seen: rx.try_iter().collect(),
        writer_done,
        output,
    }
}

/// A slow writer (20 lines every 100 ms, ~4 s): the follower must print `want` at line
/// `line` before the writer finishes, then the offline verdict (invalid, exit 1).
fn follow_slowly(path: &Path, lines: &[String], want: &str, line: usize) {
    let Followed {
        seen,
        writer_done,
        output: out,
    } = follow_with_writer(path, lines, &["--workload", "register"]);
    let text: Vec<&str> = seen.iter().map(|(_, l)| l.as_str()).collect();
    let stale = seen
        .iter()
        .find(|(_, l)| l.contains(want))
        .unwrap_or_else(|| panic!("no online {want}: {text:?}\n{}", stderr(&out)));
    assert!(
        stale.1.starts_with(&format!("{}:{line}: ", path.display())),
        "{}",
        stale.1
    );
    assert!(
        stale.0 < writer_done,
        "reported only after the writer finished"
    );
    // The final verdict is the offline check's: invalid, exit 1.
    assert_eq!(out.status.code(), Some(1), "{text:?}");
    assert!(
        text.iter().any(|l| l.starts_with("verdict: INVALID")),
        "{text:?}"
    );
}
