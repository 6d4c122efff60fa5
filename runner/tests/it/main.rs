//! End-to-end tests of the `schism` binary against a real 3-node reference cluster.
//!
//! Every test runs the real executable with its own results store in a temp dir, so
//! tests can run in parallel. Runs are 10 s (DESIGN: size each run so its assertion holds
//! reliably); verdicts are asserted through exit codes and the printed summary.

mod browser;
mod check_cli;
mod check_many;
mod cleanup;
mod compare_replication;
mod config_compat;
#[cfg(any(
    feature = "etcd",
    feature = "redis",
    feature = "postgres",
    feature = "galera"
))]
mod db_common;
#[cfg(feature = "etcd")]
mod db_etcd;
#[cfg(feature = "galera")]
mod db_galera;
#[cfg(feature = "postgres")]
mod db_postgres;
#[cfg(feature = "redis")]
mod db_redis;
#[cfg(any(feature = "etcd", feature = "postgres", feature = "galera"))]
mod db_txn;
mod errors;
mod faults;
mod final_reads;
mod hostile_input;
mod interrupts;
mod knossos;
mod matrix;
mod models;
mod nemesis_runs;
mod online;
mod paths;
mod plans;
mod readme;
mod reports;
mod serve;
mod sim;
mod ssh_lab;
mod txn_check;
mod txn_check_models;
mod txn_read;
mod verdicts;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub fn schism() -> Command {
    Command::new(env!("CARGO_BIN_EXE_schism"))
}

/// Runs `schism test` with a temp store and the given extra flags.
pub fn run_test(store: &Path, extra: &[&str]) -> Output {
    let out = schism()
        .env("SCHISM_STATE_DIR", state_dir(store))
        .arg("test")
        .arg("--store")
        .arg(store)
        .args(extra)
        .output()
        .expect("spawn schism");
    eprintln!(
        "--- schism test {extra:?} exited {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The `verdict:` line of a summary.
pub fn verdict_line(text: &str) -> String {
    text.lines()
        .find(|l| l.starts_with("verdict:"))
        .unwrap_or("<no verdict line>")
        .to_owned()
}

/// Every other live process (not a zombie) whose command line contains each of `words`,
/// with that command line (NULs as spaces). Servers and nodes carry their config or data
/// path, which lies inside the test's temp store.
pub fn live_commands_with(words: &[&str]) -> Vec<(u32, String)> {
    let me = std::process::id();
    let mut out = vec![];
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if pid != me
            && words.iter().all(|w| cmd.contains(w))
            && !matches!(proc_state(pid), None | Some('Z' | 'X'))
        {
            out.push((pid, cmd));
        }
    }
    out
}

/// The pids of `live_commands_with(words)`.
pub fn live_pids_with(words: &[&str]) -> Vec<u32> {
    live_commands_with(words)
        .into_iter()
        .map(|(pid, _)| pid)
        .collect()
}

/// Pids of live node processes whose command line mentions `needle`.
pub fn processes_mentioning(needle: &str) -> Vec<u32> {
    live_pids_with(&[needle, " node "])
}

/// Waits up to `limit` for no node process mentioning `needle` to remain.
pub fn wait_no_nodes(needle: &str, limit: Duration) -> Vec<u32> {
    let until = Instant::now() + limit;
    loop {
        let left = processes_mentioning(needle);
        if left.is_empty() || Instant::now() > until {
            return left;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The single run folder under `<store>/<name>/`.
pub fn only_run_dir(store: &Path, name: &str) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(store.join(name))
        .expect("test folder")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(
        dirs.len(),
        1,
        "expected one run in {}: {dirs:?}",
        store.join(name).display()
    );
    dirs[0].clone()
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("schism-it-")
        .tempdir()
        .expect("tempdir")
}

/// The leftover registry of runs in `store` (each test keeps its own, so that one test's
/// deliberately killed run does not stop another test's runs).
pub fn state_dir(store: &Path) -> PathBuf {
    store.join("state")
}

/// Whether a test that needs `missing` may go on: under `CI` it fails naming the missing
/// piece; otherwise it skips with a notice.
pub fn require(what: &str, missing: Option<String>) -> bool {
    match missing {
        None => true,
        Some(why) => {
            if std::env::var_os("CI").is_some() {
                panic!("{what} cannot run here: {why} (CI must provide it; see .ci/run)");
            }
            eprintln!("SKIPPED {what}: {why}");
            false
        }
    }
}

/// Network namespace names that contain `needle`.
pub fn namespaces_with(needle: &str) -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output();
    out.map(|o| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| n.contains(needle))
            .map(str::to_owned)
            .collect()
    })
    .unwrap_or_default()
}

/// The process state letter of `pid` (`T` = stopped), if it exists.
pub fn proc_state(pid: u32) -> Option<char> {
    schism_nemesis::sys::proc_stat(pid).map(|s| s.0)
}

/// The nemesis lines of a history file, as JSON.
pub fn nemesis_ops(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("history.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("\"process\":\"nemesis\""))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The run id recorded in a run folder's nemesis-state.json.
pub fn run_id_of(run: &Path) -> Option<String> {
    let text = std::fs::read_to_string(run.join("nemesis-state.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["run_id"].as_str().map(str::to_owned)
}

/// Asserts that nothing of run `run` remains: no namespace, no node process (stopped
/// or not), no registry entry.
pub fn assert_no_leftovers(store: &Path, run: &Path) {
    if let Some(id) = run_id_of(run) {
        let ns = namespaces_with(&format!("schism-{id}"));
        assert!(ns.is_empty(), "namespaces left: {ns:?}");
        assert!(
            !Path::new("/sys/class/net")
                .join(format!("sch{id}"))
                .exists(),
            "root veth left"
        );
    }
    let left = wait_no_nodes(&store.to_string_lossy(), Duration::from_secs(3));
    assert!(left.is_empty(), "node processes left: {left:?}");
    let reg: Vec<_> = std::fs::read_dir(state_dir(store))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(reg.is_empty(), "registry entries left: {reg:?}");
}

/// Serializes the real-database runs of this binary: each provisions a whole cluster,
/// and on a 2-core machine two at once would make their timing (elections, failovers,
/// state transfers) unlike what the tests are sized for.
pub fn db_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether a test of `what` may go on: each `(binary, Debian package)` must be installed,
/// and network namespaces usable when `netns` is asked. Under `CI` a missing piece fails
/// the test naming it; elsewhere the test is skipped with a notice.
pub fn require_db(what: &str, binaries: &[(&str, &str)], netns: bool) -> bool {
    for (bin, pkg) in binaries {
        if let Err(e) = schism_targets::db::require_binary(bin, pkg) {
            return require(what, Some(e.to_string()));
        }
    }
    if netns {
        return require(what, schism_nemesis::netns::unavailable());
    }
    true
}
