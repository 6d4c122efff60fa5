//! Final reads retry until they succeed (Jepsen's final reads do): a leader that is
//! stopped (real SIGSTOP) from mid-run until after the final reads began makes
//! every first final read fail; the run still ends with an ok final read of every key,
//! and the verdict rests on them instead of being `unknown` for want of a read after the
//! faults.

use super::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};

/// Resumes the stopped node on every exit path, so a failed assertion leaves no
/// stopped process behind.
struct Resume(Option<u32>);

impl Drop for Resume {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGCONT);
        }
    }
}

/// Every history line so far (a partial last line is skipped).
fn lines_of(path: &Path) -> Vec<serde_json::Value> {
    let Ok(f) = std::fs::File::open(path) else {
        return vec![];
    };
    BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect()
}

fn is_final_invoke(op: &serde_json::Value) -> bool {
    op["type"] == "invoke" && op["meta"]["final"] == true
}

/// The pid of node n1 of the run in `store`, once it runs.
fn n1_pid(store: &Path, limit: Duration) -> Option<u32> {
    let until = Instant::now() + limit;
    let needle = format!("{}/", store.display());
    while Instant::now() < until {
        for pid in processes_mentioning(&needle) {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmd).contains("/nodes/n1/") {
                return Some(pid);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Waits until `pred` holds for the history so far; false after `limit`.
fn wait_history(
    store: &Path,
    limit: Duration,
    pred: impl Fn(&[serde_json::Value]) -> bool,
) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if let Ok(run) = std::panic::catch_unwind(|| only_run_dir(store, "fr"))
            && pred(&lines_of(&run.join("history.jsonl")))
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn final_reads_are_retried_until_the_leader_answers() {
    let store = tempdir();
    let child = schism()
        .env("SCHISM_STATE_DIR", state_dir(store.path()))
        .args(["test", "--store"])
        .arg(store.path())
        .args([
            "--name",
            "fr",
            "--model",
            "leader-follower",
            "--failover",
            "none",
            "--reads",
            "leader",
            "--nemesis",
            "none",
            "--time-limit",
            "6s",
            "--rate",
            "200",
            "--seed",
            "1",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn schism");
    let pid = n1_pid(store.path(), Duration::from_secs(60)).expect("node n1 never ran");
    let mut resume = Resume(None);
    // Stop the leader half-way (an op at ≥ 3 s of the 6 s run): a window of 4 s before
    // the final reads start (after the 1 s quiet period) holds on a loaded machine.
    let limit_reached = |h: &[serde_json::Value]| {
        h.iter()
            .any(|o| o["time_ns"].as_u64().unwrap_or(0) >= 3_000_000_000)
    };
    assert!(wait_history(
        store.path(),
        Duration::from_secs(60),
        limit_reached
    ));
    kill(Pid::from_raw(pid as i32), Signal::SIGSTOP)
        .expect("SIGSTOP n1 (the run ended before the test caught up with it?)");
    resume.0 = Some(pid);
    // Resume once some key's final read was tried twice (its first try failed).
    let retried = |h: &[serde_json::Value]| {
        let mut tries: BTreeMap<u64, usize> = BTreeMap::new();
        for o in h.iter().filter(|o| is_final_invoke(o)) {
            *tries.entry(o["key"].as_u64().unwrap_or(0)).or_default() += 1;
        }
        tries.values().any(|&n| n >= 2)
    };
    let saw_retry = wait_history(store.path(), Duration::from_secs(15), retried);
    drop(resume);
    let out = child.wait_with_output().expect("schism test");
    let text = stdout(&out);
    eprintln!("{text}\n{}", stderr(&out));
    assert!(
        saw_retry,
        "no final read was tried a second time while n1 was stopped"
    );
    assert_eq!(out.status.code(), Some(0), "{}", verdict_line(&text));

    let history = lines_of(&only_run_dir(store.path(), "fr").join("history.jsonl"));
    // Every key with a final read ends with an ok one (the last try of each key).
    let mut last: BTreeMap<u64, String> = BTreeMap::new();
    let mut open: BTreeMap<u64, u64> = BTreeMap::new();
    for o in &history {
        let key = o["key"].as_u64().unwrap_or(0);
        let process = o["process"].as_u64().unwrap_or(u64::MAX);
        if is_final_invoke(o) {
            open.insert(process, key);
        } else if o["type"] != "invoke"
            && let Some(k) = open.remove(&process)
        {
            last.insert(k, o["type"].as_str().unwrap_or("?").to_owned());
        }
    }
    assert!(!last.is_empty(), "no final read recorded");
    let failed: Vec<_> = last.iter().filter(|(_, t)| *t != "ok").collect();
    assert!(
        failed.is_empty(),
        "final reads whose last try failed: {failed:?}"
    );
}
