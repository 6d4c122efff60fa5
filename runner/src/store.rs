//! The results store: `<store>/<test-name>/<YYYYMMDDTHHMMSS>/` per run, and `<store>/latest`.
//!
//! Guarantees: a run never writes into another run's folder (a second run in the same
//! second gets a `-2` suffix); `latest` is replaced atomically (symlink, then rename) and
//! always points at a folder that exists; `status.json` says `running` from the folder's
//! first moment until the run records how it ended, so a killed run's folder says so.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// File names inside a run folder.
pub const CONFIG: &str = "config.json";
pub const HISTORY: &str = "history.jsonl";
pub const RESULTS: &str = "results.json";
pub const NODES: &str = "nodes";
pub const REPORT: &str = "report.html";
/// How the run ended (`RunStatus`); `running` until it did.
pub const STATUS: &str = "status.json";
/// Replication lag sampled during the run (one JSON line per replica per sample).
pub const LAG: &str = "lag.jsonl";
/// At the top of the store: the list of runs.
pub const INDEX: &str = "index.html";
/// Comparisons live in `<store>/compare/<name>/<timestamp>/`.
pub const COMPARE: &str = "compare";
pub const COMPARISON_HTML: &str = "comparison.html";
pub const COMPARISON_JSON: &str = "comparison.json";
/// `schism matrix` results live in `<store>/matrix/<timestamp>/`, each run in a
/// `<row>/<timestamp>/` folder inside.
pub const MATRIX: &str = "matrix";
pub const MATRIX_HTML: &str = "matrix.html";
pub const MATRIX_JSON: &str = "matrix.json";

/// True for a results store: some `<store>/<test>/<run>/` is a run folder, or a
/// comparison lives under `<store>/compare/`. Only a store gets an `index.html`.
pub fn is_store(root: &Path) -> bool {
    let subdirs = |d: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(d)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect()
    };
    subdirs(root).iter().any(|test| {
        subdirs(test).iter().any(|run| {
            is_run_dir(run)
                || (test.file_name().is_some_and(|n| n == COMPARE)
                    && subdirs(run)
                        .iter()
                        .any(|c| c.join(COMPARISON_JSON).is_file()))
        })
    })
}

/// Creates the folder of a run started at `started_at` (`<store>/<name>/<YYYYmmddTHHMMSS>`)
/// and returns its path.
pub fn create_run_dir_at(
    store: &Path,
    name: &str,
    started_at: &chrono::DateTime<chrono::Utc>,
) -> Result<PathBuf> {
    create_run_dir(store, name, &started_at.format("%Y%m%dT%H%M%S").to_string())
}

/// Creates the folder of a new run and returns its path.
pub fn create_run_dir(store: &Path, name: &str, stamp: &str) -> Result<PathBuf> {
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        bail!("--name {name:?} must be a plain folder name (no '/', not starting with '.')");
    }
    let parent = store.join(name);
    std::fs::create_dir_all(&parent).with_context(|| {
        format!(
            "cannot create results folder {} (pass a writable --store)",
            parent.display()
        )
    })?;
    for attempt in 1..100 {
        let dir = if attempt == 1 {
            parent.join(stamp)
        } else {
            parent.join(format!("{stamp}-{attempt}"))
        };
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                std::fs::create_dir(dir.join(NODES))
                    .with_context(|| format!("cannot create {}", dir.join(NODES).display()))?;
                return Ok(dir);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "cannot create run folder {} (pass a writable --store)",
                        dir.display()
                    )
                });
            }
        }
    }
    bail!(
        "too many runs named {name:?} in the same second under {}",
        parent.display()
    )
}

/// Whether `dir` is a run folder (rather than a store): it holds a run's files (what a
/// run writes first — status, config — or last — results).
pub fn is_run_dir(dir: &Path) -> bool {
    [CONFIG, HISTORY, RESULTS, STATUS]
        .iter()
        .any(|f| dir.join(f).is_file())
}

/// How a run ended, as `status.json` records it. Written as `Running` when the folder is
/// created and replaced once the workload ended, so a folder whose run was killed says so.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum RunStatus {
    Running,
    /// The workload ran to its end (the checkers may still have been stopped).
    Completed,
    /// A signal stopped the run `at_s` seconds after it started, `during` start-up or
    /// the workload.
    Interrupted {
        signal: String,
        at_s: f64,
        during: String,
    },
    /// `--stop-on-anomaly`: the online checker proved an anomaly `at_s` seconds in.
    StoppedOnAnomaly {
        at_s: f64,
        anomaly: String,
    },
    /// Workers were aborted at the hard deadline.
    DeadlineExceeded,
    /// The harness itself failed.
    HarnessError {
        error: String,
    },
}

impl RunStatus {
    /// Why the recorded history may be incomplete, if it may be.
    pub fn cut_short(&self) -> Option<String> {
        match self {
            RunStatus::Completed => None,
            RunStatus::Running => Some(
                "the run never finished (it was killed, or is still running): its history may end early".into(),
            ),
            RunStatus::Interrupted {
                signal,
                at_s,
                during,
            } => Some(format!(
                "the run was interrupted by {signal} at {at_s:.1} s, during {during}: the history covers only what happened until then"
            )),
            RunStatus::StoppedOnAnomaly { at_s, anomaly } => Some(format!(
                "the run was stopped at {at_s:.1} s by --stop-on-anomaly ({anomaly}): the history covers only what happened until then"
            )),
            RunStatus::DeadlineExceeded => Some(
                "the run was stopped at its hard deadline: the ops still open were abandoned".into(),
            ),
            RunStatus::HarnessError { error } => Some(format!(
                "the run stopped on a harness error ({error}): its history may end early"
            )),
        }
    }
}

/// Records how the run in `run_dir` ended.
pub fn write_status(run_dir: &Path, status: &RunStatus) -> Result<()> {
    write_atomic(
        &run_dir.join(STATUS),
        (serde_json::to_string_pretty(status)? + "\n").as_bytes(),
    )
}

/// The run's recorded ending; `None` for folders without one (older runs, plain histories).
pub fn read_status(run_dir: &Path) -> Result<Option<RunStatus>> {
    let path = run_dir.join(STATUS);
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .map(Some)
        .with_context(|| format!("{} is not a run status", path.display()))
}

/// Fails unless `path` (a file a flag names) can be written: its folder is created, the
/// file opened for appending (so an existing one is left as it was) and, if it did not
/// exist, removed again.
pub fn probe_writable_file(path: &Path, flag: &str) -> Result<()> {
    let existed = path.exists();
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| {
            std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(path)
        })
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot write {flag} {}: {e}; pass a writable path",
                path.display()
            )
        })?;
    if !existed {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// Points `<store>/latest` at `run_dir` (relative, so the store can be moved).
pub fn update_latest(store: &Path, run_dir: &Path) -> Result<()> {
    let rel = run_dir.strip_prefix(store).unwrap_or(run_dir);
    let tmp = store.join(format!(".latest-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(rel, &tmp)
        .with_context(|| format!("cannot create symlink {}", tmp.display()))?;
    std::fs::rename(&tmp, store.join("latest"))
        .with_context(|| format!("cannot update {}/latest", store.display()))?;
    Ok(())
}

/// Writes a file whole: to a temporary sibling, then renamed over the target, so a
/// reader (a browser, `schism serve`) never sees half a page.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text + "\n").with_context(|| format!("cannot write {}", path.display()))
}
