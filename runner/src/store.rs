//! The results store: `<store>/<test-name>/<YYYYMMDDTHHMMSS>/` per run, and `<store>/latest`.
//!
//! Guarantees: a run never writes into another run's folder (a second run in the same
//! second gets a `-2` suffix); `latest` is replaced atomically (symlink, then rename) and
//! always points at a folder that exists.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// File names inside a run folder.
pub const CONFIG: &str = "config.json";
pub const HISTORY: &str = "history.jsonl";
pub const RESULTS: &str = "results.json";
pub const NODES: &str = "nodes";
pub const REPORT: &str = "report.html";
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
