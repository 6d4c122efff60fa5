//! No node process outlives a run, however it ends; a SIGKILLed runner leaves a history
//! that `schism check` reads (at most the last line lost).

use crate::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::process::Stdio;

pub fn spawn_run(store: &Path, extra: &[&str]) -> std::process::Child {
    schism()
        .env("SCHISM_STATE_DIR", state_dir(store))
        .arg("test")
        .arg("--store")
        .arg(store)
        .args(["--name", "c", "--time-limit", "20s"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn schism")
}

/// Waits until the run's history has at least `lines` lines.
pub fn wait_for_history(store: &Path, lines: usize) -> PathBuf {
    wait_for_history_in(store, "c", lines)
}

/// Waits until the history of run `name` has at least `lines` lines.
pub fn wait_for_history_in(store: &Path, name: &str, lines: usize) -> PathBuf {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(entries) = std::fs::read_dir(store.join(name)) {
            for e in entries.flatten() {
                let h = e.path().join("history.jsonl");
                if std::fs::read_to_string(&h)
                    .map(|t| t.lines().count() >= lines)
                    .unwrap_or(false)
                {
                    return e.path();
                }
            }
        }
        assert!(
            Instant::now() < until,
            "history never reached {lines} lines"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sigkilled_runner_leaves_a_readable_history_and_no_nodes() {
    let store = tempdir();
    let mut child = spawn_run(store.path(), &["--nemesis", "none"]);
    let run = wait_for_history(store.path(), 2000);
    assert!(
        !processes_mentioning(&store.path().to_string_lossy()).is_empty(),
        "nodes should be running"
    );
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    let _ = child.wait();
    // Nodes notice their parent is gone and exit by themselves.
    let left = wait_no_nodes(&store.path().to_string_lossy(), Duration::from_secs(5));
    assert!(
        left.is_empty(),
        "node processes outlived a SIGKILLed runner: {left:?}"
    );
    let out = schism().arg("check").arg(&run).output().unwrap();
    let code = out.status.code().unwrap();
    assert!(
        code == 0 || code == 1 || code == 2,
        "check failed on a killed run: {}",
        stderr(&out)
    );
    assert!(stdout(&out).contains("verdict:"));
}

#[test]
fn sigint_heals_faults_stops_nodes_and_still_reports() {
    let store = tempdir();
    let child = spawn_run(
        store.path(),
        &[
            "--reads",
            "leader",
            "--nemesis",
            "pause,partition,clock",
            "--nemesis-interval",
            "1s",
        ],
    );
    let run = wait_for_history(store.path(), 1000);
    // Interrupt while a fault is in force.
    let until = Instant::now() + Duration::from_secs(15);
    while !nemesis_ops(&run)
        .iter()
        .any(|o| o["type"] == "info" && o["f"] != "heal")
    {
        assert!(Instant::now() < until, "no fault took effect");
        std::thread::sleep(Duration::from_millis(50));
    }
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = stdout(&out);
    // Interrupted: a valid verdict is downgraded to unknown (2).
    assert_eq!(
        out.status.code(),
        Some(2),
        "stdout: {text}\nstderr: {}",
        stderr(&out)
    );
    assert!(text.contains("interrupted"), "{text}");
    assert!(run.join("results.json").exists());
    let ops = nemesis_ops(&run);
    let last = ops.last().expect("nemesis ops");
    assert_eq!(
        (last["f"].as_str(), last["type"].as_str()),
        (Some("heal"), Some("info")),
        "the interrupted run heals and records it: {last}"
    );
    assert_no_leftovers(store.path(), &run);
}

#[test]
fn harness_error_and_panic_heal_and_stop_every_node() {
    for fault in ["error", "panic"] {
        let store = tempdir();
        let out = run_test(
            store.path(),
            &[
                "--name",
                "c",
                "--time-limit",
                "20s",
                "--inject-harness-fault",
                fault,
                "--nemesis",
                "pause,partition",
                "--nemesis-targets",
                "all",
                "--nemesis-interval",
                "1s",
            ],
        );
        assert_eq!(
            out.status.code(),
            Some(3),
            "{fault}: harness failure must exit 3"
        );
        assert!(
            stderr(&out).contains("schism: error:"),
            "{fault}: {}",
            stderr(&out)
        );
        let run = only_run_dir(store.path(), "c");
        // The failure struck while a fault was in force.
        let ops = nemesis_ops(&run);
        assert!(
            ops.iter().any(|o| o["type"] == "info" && o["f"] != "heal"),
            "{fault}: no fault was in force: {ops:?}"
        );
        assert_no_leftovers(store.path(), &run);
        // What was recorded before the failure is still there and readable.
        let check = schism().arg("check").arg(&run).output().unwrap();
        assert_ne!(check.status.code(), Some(3), "{}", stderr(&check));
    }
}
