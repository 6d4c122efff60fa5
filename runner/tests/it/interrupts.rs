//! Never a false "valid" (issue #12): a run cut short by a signal is `unknown` in every
//! place it is recorded; empty histories are `unknown` with the reason; a signal during
//! start-up leaves nothing behind; flags that cannot work are refused before anything is
//! created; `schism report` renders a killed run; leftovers are described as they are.

use crate::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::process::Stdio;

fn spawn_test(store: &Path, name: &str, extra: &[&str]) -> std::process::Child {
    schism()
        .env("SCHISM_STATE_DIR", state_dir(store))
        .arg("test")
        .arg("--store")
        .arg(store)
        .args(["--name", name])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn schism")
}

fn signal(child: &std::process::Child, sig: Signal) {
    kill(Pid::from_raw(child.id() as i32), sig).unwrap();
}

fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn finished(child: std::process::Child) -> Output {
    let out = child.wait_with_output().unwrap();
    eprintln!(
        "--- exited {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        stdout(&out),
        stderr(&out)
    );
    out
}

/// Every live process but `runner` whose command line mentions `needle` (nodes and
/// database servers).
fn any_process_mentioning(needle: &str, runner: u32) -> Vec<String> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            let state = proc_state(pid)?;
            (pid != me && pid != runner && cmd.contains(needle) && state != 'Z' && state != 'X')
                .then(|| format!("{pid}: {cmd}"))
        })
        .collect()
}

/// The issue's reproduction: leader reads under partitions and pauses, SIGTERM at 7 s.
/// Before the fix stdout, results.json, the report, the index and a re-check all said
/// VALID.
#[test]
fn sigterm_at_7s_is_unknown_in_every_place_the_verdict_is_recorded() {
    let store = tempdir();
    let junit = store.path().join("junit.xml");
    let t0 = Instant::now();
    let child = spawn_test(
        store.path(),
        "i",
        &[
            "--reads",
            "leader",
            "--nemesis",
            "partition,pause",
            "--nemesis-interval",
            "2s",
            "--time-limit",
            "20s",
            "--seed",
            "2",
            "--junit",
            &junit.to_string_lossy(),
        ],
    );
    std::thread::sleep(Duration::from_secs(7).saturating_sub(t0.elapsed()));
    signal(&child, Signal::SIGTERM);
    let out = finished(child);
    let text = stdout(&out);
    // 1. stdout and the exit code.
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(verdict_line(&text).contains("UNKNOWN"), "{text}");
    assert!(
        text.contains("interrupted by SIGTERM"),
        "the reason: {text}"
    );
    // 2. results.json, with the reason.
    let run = only_run_dir(store.path(), "i");
    let results = json(&run.join("results.json"));
    assert_eq!(results["validity"], "unknown");
    let evidence = results["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["checker"] == "evidence")
        .expect("an evidence result");
    assert!(
        evidence["figures"]["unknown_reason"]
            .as_str()
            .unwrap()
            .contains("SIGTERM"),
        "{evidence}"
    );
    assert_eq!(json(&run.join("status.json"))["state"], "interrupted");
    // 3. the report.
    let report = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(report.contains("id=\"verdict\">UNKNOWN<"), "report verdict");
    assert!(report.contains("interrupted by SIGTERM"), "report reason");
    // 4. the index.
    let index = std::fs::read_to_string(store.path().join("index.html")).unwrap();
    assert!(
        index.contains("class=\"unknown-t\">unknown<"),
        "index verdict"
    );
    assert!(!index.contains(">valid<"), "index says valid");
    // 5. JUnit.
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("type=\"unknown\"") && xml.contains("interrupted by SIGTERM"),
        "{xml}"
    );
    // And a later check of the folder honours the interruption.
    let again = schism().arg("check").arg(&run).output().unwrap();
    assert_eq!(again.status.code(), Some(2), "{}", stdout(&again));
    assert!(verdict_line(&stdout(&again)).contains("UNKNOWN"));
    assert_no_leftovers(store.path(), &run);
}

/// SIGINT, SIGTERM and SIGHUP from the first instant: during start-up (namespaces being
/// created, nodes spawning) the run stops, records `unknown`, and leaves no namespace,
/// veth, registry entry or process.
#[test]
fn a_signal_during_start_up_leaves_nothing_behind() {
    if !require("start-up signal test", schism_nemesis::netns::unavailable()) {
        return;
    }
    for (sig, after_ms) in [
        (Signal::SIGTERM, 100),
        (Signal::SIGINT, 250),
        (Signal::SIGHUP, 400),
    ] {
        let store = tempdir();
        let child = spawn_test(
            store.path(),
            "s",
            // Leader reads: no anomaly can be proven, so on a fast machine where start-up
            // already ended the verdict is still `unknown`, never `invalid`.
            &[
                "--nemesis",
                "partition",
                "--net",
                "netns",
                "--reads",
                "leader",
                "--time-limit",
                "10s",
            ],
        );
        std::thread::sleep(Duration::from_millis(after_ms));
        signal(&child, sig);
        let out = finished(child);
        assert_eq!(out.status.code(), Some(2), "{sig} at {after_ms} ms");
        let run = only_run_dir(store.path(), "s");
        let status = json(&run.join("status.json"));
        assert_eq!(status["state"], "interrupted", "{sig}: {status}");
        assert_eq!(status["signal"], sig.as_str(), "{status}");
        if after_ms == 100 {
            // Namespaces alone take longer than this: the signal came during start-up.
            assert!(
                status["during"].as_str().unwrap().contains("start-up"),
                "{status}"
            );
        }
        assert!(verdict_line(&stdout(&out)).contains("UNKNOWN"));
        assert_no_leftovers(store.path(), &run);
        let left = any_process_mentioning(&store.path().to_string_lossy(), 0);
        assert!(left.is_empty(), "{sig}: processes left: {left:?}");
        // The registry holds no entry (assert_no_leftovers) and `cleanup` finds nothing.
        let clean = schism()
            .env("SCHISM_STATE_DIR", state_dir(store.path()))
            .arg("cleanup")
            .output()
            .unwrap();
        assert!(
            stdout(&clean).contains("nothing to clean up"),
            "{}",
            stdout(&clean)
        );
    }
}

/// A database can take long to start (PostgreSQL: initdb, then three servers): a signal
/// during that start stops it and kills every server.
#[cfg(feature = "postgres")]
#[test]
fn a_signal_while_a_database_starts_kills_every_server() {
    if !require_db("postgres start-up signal", db_postgres::PG, false) {
        return;
    }
    let _db = db_lock();
    let store = tempdir();
    let child = spawn_test(
        store.path(),
        "pg",
        &[
            "--target",
            "postgres",
            "--nemesis",
            "none",
            "--time-limit",
            "10s",
        ],
    );
    // Wait until the first server runs (after initdb: the primary, then the standbys'
    // base backups follow), then interrupt.
    let until = Instant::now() + Duration::from_secs(60);
    let server_up = || {
        any_process_mentioning(&store.path().to_string_lossy(), child.id())
            .iter()
            .any(|c| !c.contains("initdb") && !c.contains("--single") && c.contains(" -D "))
    };
    while !server_up() {
        assert!(Instant::now() < until, "no postgres process ever started");
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(&child, Signal::SIGTERM);
    let out = finished(child);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("starting postgres"),
        "{}",
        stderr(&out)
    );
    assert!(
        !stderr(&out).contains("ready"),
        "the signal came during start-up"
    );
    let run = only_run_dir(store.path(), "pg");
    assert_eq!(json(&run.join("status.json"))["state"], "interrupted");
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let left = any_process_mentioning(&store.path().to_string_lossy(), 0);
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < until, "servers left: {left:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_no_leftovers(store.path(), &run);
}

/// Empty inputs are not evidence: each is `unknown` (exit 2) with the reason. (A file
/// holding only a byte-order mark is never valid either: the readers' BOM handling makes
/// it empty, or it is refused.)
#[test]
fn empty_histories_are_unknown_with_the_reason() {
    let dir = tempdir();
    for (name, bytes) in [
        ("bom.jsonl", &b"\xEF\xBB\xBF"[..]),
        ("bom.edn", b"\xEF\xBB\xBF[]"),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let out = schism().arg("check").arg(&p).output().unwrap();
        assert!(
            matches!(out.status.code(), Some(2 | 3)),
            "{name}: {}",
            stdout(&out)
        );
    }
    let cases: [(&str, &[u8]); 3] = [
        ("empty.jsonl", b""),
        ("blank.jsonl", b"  \n\n\t\n"),
        ("empty.edn", b"[]"),
    ];
    let mut paths: Vec<PathBuf> = cases
        .iter()
        .map(|(name, bytes)| {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            p
        })
        .collect();
    paths.push(PathBuf::from("/dev/null"));
    for p in &paths {
        let out = schism().arg("check").arg(p).output().unwrap();
        let text = stdout(&out);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{}: {text}{}",
            p.display(),
            stderr(&out)
        );
        assert!(
            verdict_line(&text).contains("UNKNOWN"),
            "{}: {text}",
            p.display()
        );
        assert!(
            text.contains("no client operation"),
            "{}: {text}",
            p.display()
        );
    }
}

/// A history written by our own recorder in which nothing succeeded, or no read did:
/// `unknown`, never `valid`.
#[test]
fn histories_without_successful_reads_or_writes_are_unknown() {
    use schism_history::{F, Op, OpType, Process, Value};
    let dir = tempdir();
    let path = dir.path().join("h.jsonl");
    let write = |ops: &[(u64, OpType, F, Value)]| {
        let rec = schism_runner::recorder::Recorder::create(&path, Instant::now()).unwrap();
        for (p, kind, f, v) in ops {
            rec.record(Op::new(
                0,
                0,
                Process::client(*p),
                *kind,
                *f,
                Some(1),
                v.clone(),
            ))
            .unwrap();
        }
        rec.finish().unwrap();
    };
    let check = || {
        let out = schism().arg("check").arg(&path).output().unwrap();
        (out.status.code(), stdout(&out))
    };
    write(&[
        (0, OpType::Invoke, F::Append, Value::Int(1)),
        (0, OpType::Fail, F::Append, Value::Int(1)),
        (1, OpType::Invoke, F::Read, Value::Null),
        (1, OpType::Fail, F::Read, Value::Null),
    ]);
    let (code, text) = check();
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("no operation succeeded"), "{text}");
    write(&[
        (0, OpType::Invoke, F::Append, Value::Int(1)),
        (0, OpType::Ok, F::Append, Value::Int(1)),
    ]);
    let (code, text) = check();
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("no read succeeded"), "{text}");
    write(&[
        (0, OpType::Invoke, F::Append, Value::Int(1)),
        (0, OpType::Ok, F::Append, Value::Int(1)),
        (1, OpType::Invoke, F::Read, Value::Null),
        (1, OpType::Ok, F::Read, Value::list(vec![1])),
    ]);
    let (code, text) = check();
    assert_eq!(code, Some(0), "with evidence the verdict stands: {text}");
}

/// A signal while `schism check` runs stops the check: `unknown`, still printed.
#[test]
fn ctrl_c_during_a_check_stops_it_with_unknown() {
    let dir = tempdir();
    let path = dir.path().join("slow.jsonl");
    check_cli::write_slow_cas_history(&path);
    let child = schism()
        // The linearizability search alone (the per-op checkers prove the final read
        // stale at once, and a proven anomaly outranks the stop).
        .args([
            "check",
            "--checker",
            "linearizable",
            "--checker-time-limit",
            "5m",
            "--checker-max-states",
        ])
        .arg("100000000000")
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let t = Instant::now();
    signal(&child, Signal::SIGINT);
    let out = finished(child);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("stopped by a signal"),
        "{}",
        stdout(&out)
    );
    // Generous: the point is that the signal is honoured, not how fast.
    assert!(t.elapsed() < Duration::from_secs(30));
}

/// A signal while a streamed check reads (`--checker stats`: op by op, never holding the
/// history) stops the reading at the next op: `unknown`, naming the signal, still
/// printed. The history comes through a FIFO from a writer (our `HistoryWriter`) that
/// would go on for far longer than the test: only a check that honours the signal ends
/// it, and the writer then sees its reader gone.
#[test]
fn ctrl_c_during_a_streamed_check_stops_the_reading_with_unknown() {
    use schism_history::{F, HistoryWriter, Op, OpType, Process, Value};
    let dir = tempdir();
    let fifo = dir.path().join("history.jsonl");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let child = schism()
        .args(["check", "--checker", "stats"])
        .arg(&fifo)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // 30 M ops (~3 GB) is far more than the test waits for; the writer stops when the
    // check closes the FIFO (EPIPE: Rust ignores SIGPIPE).
    const MAX_OPS: u64 = 30_000_000;
    let writer = std::thread::spawn(move || {
        let mut w = HistoryWriter::new(std::io::BufWriter::new(
            std::fs::OpenOptions::new().write(true).open(&fifo).unwrap(),
        ));
        for i in 0..MAX_OPS {
            let (kind, p) = (
                if i % 2 == 0 {
                    OpType::Invoke
                } else {
                    OpType::Ok
                },
                (i / 2) % 10,
            );
            let v = Value::Int((i / 2) as i64);
            let op = Op::new(
                i,
                i * 1000,
                Process::client(p),
                kind,
                F::Write,
                Some(p % 3),
                v,
            );
            if w.append(&op).is_err() {
                return i;
            }
        }
        let _ = w.flush();
        MAX_OPS
    });
    std::thread::sleep(Duration::from_millis(1500));
    let t = Instant::now();
    signal(&child, Signal::SIGINT);
    let out = finished(child);
    let written = writer.join().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("stopped by a signal"),
        "{}",
        stdout(&out)
    );
    assert!(written < MAX_OPS, "the check read the whole history");
    // Generous: the point is that the signal is honoured, not how fast.
    assert!(t.elapsed() < Duration::from_secs(30));
}

/// Flags that cannot work are refused in one line before the run folder exists.
#[test]
fn bad_flags_are_refused_before_anything_is_created() {
    let store = tempdir();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port().to_string();
    let file = store.path().join("plain-file");
    std::fs::write(&file, "x").unwrap();
    let under_file = file.join("sub");
    let under = under_file.to_string_lossy().into_owned();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--time-limit", "0"],
            "--time-limit must be longer than 0",
        ),
        (
            vec!["--client-timeout", "0s"],
            "--client-timeout must be longer than 0",
        ),
        (
            vec!["--checker-max-states", "0"],
            "--checker-max-states must be a positive integer",
        ),
        (vec!["--nemesis="], "--nemesis is empty"),
        (
            vec!["--concurrency", "-1"],
            "--concurrency must be an integer from 1 to 1000, got -1",
        ),
        (
            vec!["--keys", "-3"],
            "--keys must be a positive integer, got -3",
        ),
        (
            vec!["--time-limit", "-5s"],
            "--time-limit must not be negative",
        ),
        (
            vec!["--base-port", "0"],
            "--base-port must be an integer from 1 to 65535",
        ),
        (
            vec!["--base-port", "65535", "--net", "local"],
            "leaves too few ports",
        ),
        (
            vec![
                "--net",
                "local",
                "--nemesis",
                "none",
                "--base-port",
                &busy_port,
            ],
            "already in use",
        ),
        (vec!["--junit", &under], "cannot write --junit"),
        (vec!["--data-dir", &under], "--data-dir"),
        (
            vec!["--model", "multi-leader", "--failover", "auto"],
            "--failover applies to --model leader-follower only",
        ),
        (
            vec!["--model", "leaderless", "--fencing", "off"],
            "--fencing applies to --model leader-follower only",
        ),
        (
            vec!["--model", "multi-leader", "--read-lease", "on"],
            "--read-lease applies to --model leader-follower only",
        ),
        (
            vec!["--model", "leaderless", "--reads", "leader"],
            "--reads leader needs a leader",
        ),
    ];
    for (flags, expect) in cases {
        let out = run_test(store.path(), &flags);
        assert_eq!(out.status.code(), Some(3), "{flags:?}");
        let err = stderr(&out);
        let lines: Vec<&str> = err
            .lines()
            .filter(|l| l.starts_with("schism: error:"))
            .collect();
        assert_eq!(lines.len(), 1, "{flags:?}: one error line: {err}");
        assert!(lines[0].contains(expect), "{flags:?}: {}", lines[0]);
        assert!(
            !store.path().join("default").exists(),
            "{flags:?} created the run folder"
        );
    }
    // `check` refuses a zero budget too.
    let out = schism()
        .args(["check", "--checker-max-states", "0", "/dev/null"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    drop(busy);
}

/// `--net local --base-port P` with free ports runs (the refusal above is about the range).
/// And `schism report` of a killed run's folder renders it by checking its history, as
/// `unknown`, without writing an index into the run folder.
#[test]
fn report_renders_a_killed_run_from_its_history() {
    let store = tempdir();
    let child = spawn_test(
        store.path(),
        "k",
        // Leader reads: nothing would be invalid, so the verdict rests on the evidence.
        &[
            "--reads",
            "leader",
            "--nemesis",
            "none",
            "--time-limit",
            "20s",
        ],
    );
    let run = cleanup::wait_for_history_in(store.path(), "k", 500);
    signal(&child, Signal::SIGKILL);
    let _ = finished(child);
    let _ = wait_no_nodes(&store.path().to_string_lossy(), Duration::from_secs(5));
    assert!(!run.join("results.json").exists());
    let out = schism().arg("report").arg(&run).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(
        report.contains("id=\"verdict\">UNKNOWN<"),
        "a killed run is unknown"
    );
    assert!(report.contains("never finished"), "the reason is shown");
    assert!(
        !run.join("index.html").exists(),
        "stray index.html in the run folder"
    );
    assert!(!run.join("results.json").exists(), "report only renders");
    // A later check agrees.
    let out = schism().arg("check").arg(&run).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    // The registry entry the killed runner left is a leftover; cleanup removes it.
    let clean = schism()
        .env("SCHISM_STATE_DIR", state_dir(store.path()))
        .arg("cleanup")
        .output()
        .unwrap();
    assert_eq!(clean.status.code(), Some(0));
}

/// A start refused for leftovers names only what exists, and an unreadable registry entry
/// is reported (and cleaned), not ignored.
#[test]
fn leftovers_are_described_as_they_are_and_corrupt_entries_reported() {
    let store = tempdir();
    let reg = state_dir(store.path());
    std::fs::create_dir_all(&reg).unwrap();
    // A dead owner that recorded namespaces it never created.
    let ghost = serde_json::json!({
        "run_id": "ffff01",
        "owner_pid": 999_999_999u32,
        "owner_start": 1,
        "run_dir": store.path().join("gone"),
        "namespaces": ["schism-ffff01-br", "schism-ffff01-n1"],
        "root_links": ["schffff01"],
    });
    std::fs::write(reg.join("ffff01.json"), ghost.to_string()).unwrap();
    std::fs::write(reg.join("ffff02.json"), "{ not json").unwrap();
    let out = run_test(store.path(), &["--time-limit", "2s", "--nemesis", "none"]);
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(err.contains("leftovers"), "{err}");
    assert!(
        !err.contains("schism-ffff01-n1"),
        "names a namespace that never existed: {err}"
    );
    assert!(
        err.contains("unreadable registry entry") && err.contains("ffff02.json"),
        "{err}"
    );
    let clean = schism()
        .env("SCHISM_STATE_DIR", &reg)
        .arg("cleanup")
        .output()
        .unwrap();
    assert_eq!(clean.status.code(), Some(0));
    assert!(
        stdout(&clean).contains("unreadable registry entry"),
        "{}",
        stdout(&clean)
    );
    let left: Vec<_> = std::fs::read_dir(&reg).unwrap().flatten().collect();
    assert!(left.is_empty(), "{left:?}");
}
