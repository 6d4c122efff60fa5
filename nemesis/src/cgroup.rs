//! Pausing whole process trees with the cgroup-v2 freezer (RECIPES.md §7).
//!
//! A `Freezer` is a cgroup of its own under the cgroup2 hierarchy (`/sys/fs/cgroup/unified`
//! here, or `/sys/fs/cgroup` where cgroup2 is mounted there); the freezer needs no
//! controller. `freeze` writes `cgroup.freeze` and waits until `cgroup.events` says
//! `frozen 1`, so when it returns every process of the tree is stopped; `thaw` undoes it.
//! Single processes are paused with SIGSTOP instead (see `mechanism`), since a frozen
//! process shows no `T` state and a SIGSTOP is all one process needs.
//!
//! Guarantees: the cgroup is in the ledger before it is created; `remove_dir` (used by
//! `Freezer::remove` and by cleanup) thaws it, moves its processes back to the root
//! cgroup and removes the directory. The `memory` and other v1 hierarchies are never touched.

use crate::error::NemesisError;
use crate::ledger::Ledger;
pub use crate::sys::remove_cgroup as remove_dir;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The cgroup2 mount to use, if there is one.
pub fn root() -> Option<PathBuf> {
    ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.join("cgroup.procs").exists() && p.join("cgroup.subtree_control").exists())
}

/// A cgroup whose processes can be frozen together.
#[derive(Debug)]
pub struct Freezer {
    path: PathBuf,
}

fn write(path: &Path, text: &str) -> Result<(), NemesisError> {
    std::fs::write(path, text).map_err(|e| NemesisError::io(path, e))
}

impl Freezer {
    /// Creates cgroup `name` (recorded in the ledger first).
    pub fn create(ledger: &Ledger, name: &str) -> Result<Freezer, NemesisError> {
        let root = root().ok_or_else(|| {
            NemesisError::Unsupported(
                "no cgroup2 hierarchy is mounted: cannot freeze process trees".into(),
            )
        })?;
        let path = root.join(name);
        ledger.update(|r| r.cgroups.push(path.clone()))?;
        std::fs::create_dir(&path).map_err(|e| NemesisError::io(&path, e))?;
        Ok(Freezer { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Moves a process (not its existing children) into the cgroup; children it forks
    /// later are born inside.
    pub fn add(&self, pid: u32) -> Result<(), NemesisError> {
        write(&self.path.join("cgroup.procs"), &pid.to_string())
    }

    /// The processes inside.
    pub fn pids(&self) -> Vec<u32> {
        std::fs::read_to_string(self.path.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Whether `cgroup.events` reports the whole cgroup frozen.
    pub fn is_frozen(&self) -> bool {
        frozen(&self.path)
    }

    pub fn freeze(&self) -> Result<(), NemesisError> {
        set_frozen(&self.path, true)
    }

    pub fn thaw(&self) -> Result<(), NemesisError> {
        set_frozen(&self.path, false)
    }

    /// Thaws, moves the processes out and removes the cgroup.
    pub fn remove(self) -> Result<(), NemesisError> {
        remove_dir(&self.path)
    }
}

fn frozen(path: &Path) -> bool {
    std::fs::read_to_string(path.join("cgroup.events"))
        .unwrap_or_default()
        .lines()
        .any(|l| l.trim() == "frozen 1")
}

fn set_frozen(path: &Path, on: bool) -> Result<(), NemesisError> {
    write(&path.join("cgroup.freeze"), if on { "1" } else { "0" })?;
    let until = Instant::now() + Duration::from_secs(2);
    while frozen(path) != on {
        if Instant::now() > until {
            return Err(NemesisError::Command {
                cmd: format!("echo {} > {}/cgroup.freeze", u8::from(on), path.display()),
                msg: "the cgroup did not reach the state within 2 s".into(),
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}
