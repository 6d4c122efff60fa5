//! End-to-end tests of the `schism` binary against a real 3-node reference cluster.
//!
//! Every test runs the real executable with its own results store in a temp dir, so
//! tests can run in parallel. Runs are 10 s (DESIGN: size each run so its assertion holds
//! reliably); verdicts are asserted through exit codes and the printed summary.

mod check_cli;
mod cleanup;
mod errors;
mod knossos;
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

/// Pids of live processes whose command line mentions `needle` (node processes carry
/// their config path, which lies inside the test's temp store).
pub fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut out = vec![];
    let me = std::process::id();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(needle) && cmd.contains(" node ") {
            // Zombies are already dead; only count running or stopped processes.
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|s| s.split_whitespace().next())
                .unwrap_or("");
            if state != "Z" && state != "X" {
                out.push(pid);
            }
        }
    }
    out
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
