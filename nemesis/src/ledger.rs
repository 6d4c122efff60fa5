//! The ledger: a write-ahead record of every system resource a run creates, and the
//! cleanup that removes them.
//!
//! Before the nemesis creates a network namespace, a cgroup or a shim file, or after the
//! runner starts a node process, the ledger writes it to two places: the run's own
//! `nemesis-state.json` and a machine-wide registry entry `<registry>/<run-id>.json`
//! (default `/run/schism/leftovers` as root, `$TMPDIR/schism-<uid>/leftovers` otherwise,
//! `$SCHISM_STATE_DIR` overrides). An entry whose owner process is gone (pid dead or
//! reused, checked by start time) is a leftover of a killed run.
//!
//! Guarantees: `cleanup_record` removes everything a record lists and is idempotent —
//! stopped or orphaned node processes (only pids whose command line still names the
//! run, plus any process inside the run's namespaces) are continued and killed, cgroups
//! thawed and removed, namespaces deleted (with their nft tables and veths), files
//! removed. Dropping a `Ledger` runs it for its own record and deletes the entry, so every
//! exit path that unwinds cleans up; `schism cleanup` runs it for leftovers. An entry that
//! cannot be read is never skipped: it blocks the next run like a leftover, and cleanup
//! removes what its name points at (the run id's namespaces and veth). Leftovers are
//! described by what still exists, not by what a record once listed.

use crate::error::NemesisError;
use crate::sys;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What one run created.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub run_id: String,
    pub owner_pid: u32,
    /// The owner's start time (clock ticks since boot), to tell a reused pid apart.
    pub owner_start: u64,
    pub run_dir: PathBuf,
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Interfaces in the root namespace (the veth into the run's bridge).
    #[serde(default)]
    pub root_links: Vec<String>,
    #[serde(default)]
    pub cgroups: Vec<PathBuf>,
    #[serde(default)]
    pub files: Vec<PathBuf>,
    /// Node processes; cleanup kills one only if its command line contains `pid_marker`.
    #[serde(default)]
    pub pids: Vec<u32>,
    #[serde(default)]
    pub pid_marker: String,
    /// What the run put on hosts reached over SSH.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remote: Vec<crate::hosts::RemoteLeft>,
}

impl Record {
    /// Whether the process that wrote this record is still alive.
    pub fn owner_alive(&self) -> bool {
        matches!(sys::proc_stat(self.owner_pid), Some((state, start)) if start == self.owner_start && state != 'Z')
    }

    /// A short list of what is left: namespace names, cgroups, live pids, files (only
    /// those that exist: a start refused half-way recorded more than it created).
    pub fn describe(&self) -> String {
        let existing = namespaces_now();
        let mut parts: Vec<String> = self
            .namespaces
            .iter()
            .filter(|n| existing.contains(n))
            .cloned()
            .collect();
        parts.extend(self.root_links.iter().filter(|l| link_exists(l)).cloned());
        parts.extend(
            self.cgroups
                .iter()
                .filter(|c| c.exists())
                .map(|c| c.display().to_string()),
        );
        parts.extend(self.live_pids().into_iter().map(|p| format!("pid {p}")));
        parts.extend(
            self.files
                .iter()
                .filter(|f| f.exists())
                .map(|f| f.display().to_string()),
        );
        parts.extend(self.remote.iter().map(|r| {
            format!(
                "on host {} ({}): folder {}, pids {:?}, nft table",
                r.host.name,
                r.host.target(),
                r.run_dir,
                r.pids
            )
        }));
        if parts.is_empty() {
            format!("registry entry of run {}", self.run_id)
        } else {
            parts.join(" ")
        }
    }

    fn live_pids(&self) -> Vec<u32> {
        self.pids
            .iter()
            .copied()
            .filter(|p| {
                matches!(sys::proc_stat(*p), Some((s, _)) if s != 'Z' && s != 'X')
                    && !self.pid_marker.is_empty()
                    && sys::proc_cmdline(*p).is_some_and(|c| c.contains(&self.pid_marker))
            })
            .collect()
    }
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// The network namespaces that exist now (none when `ip` is missing).
fn namespaces_now() -> Vec<String> {
    sys::run("ip", &["netns", "list"], None)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// The machine-wide registry directory.
pub fn registry_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SCHISM_STATE_DIR") {
        return PathBuf::from(d);
    }
    if sys::is_root() {
        PathBuf::from("/run/schism/leftovers")
    } else {
        std::env::temp_dir()
            .join(format!("schism-{}", nix::unistd::geteuid()))
            .join("leftovers")
    }
}

/// Every registry entry in `dir` (unreadable ones are reported as errors).
pub fn records(dir: &Path) -> Vec<(PathBuf, Result<Record, String>)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "json") {
            let r = std::fs::read(&p)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()));
            out.push((p, r));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Entries whose owner is gone.
pub fn leftovers(dir: &Path) -> Vec<(PathBuf, Record)> {
    records(dir)
        .into_iter()
        .filter_map(|(p, r)| r.ok().map(|r| (p, r)))
        .filter(|(_, r)| !r.owner_alive())
        .collect()
}

/// Entries that cannot be read, with the reason.
pub fn unreadable(dir: &Path) -> Vec<(PathBuf, String)> {
    records(dir)
        .into_iter()
        .filter_map(|(p, r)| r.err().map(|e| (p, e)))
        .collect()
}

/// What an unreadable entry `<registry>/<run-id>.json` stands for: the resources named
/// after its run id (the owner is unknown, so it counts as gone).
pub fn record_from_name(entry: &Path) -> Record {
    let run_id = entry
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prefix = format!("schism-{run_id}-");
    Record {
        namespaces: namespaces_now()
            .into_iter()
            .filter(|n| !run_id.is_empty() && n.starts_with(&prefix))
            .collect(),
        root_links: vec![format!("sch{run_id}")],
        run_id,
        ..Record::default()
    }
}

/// Fails naming the leftovers if a killed run left any, or an entry cannot be read.
pub fn refuse_leftovers(dir: &Path) -> Result<(), NemesisError> {
    let mut what: Vec<String> = leftovers(dir).iter().map(|(_, r)| r.describe()).collect();
    what.extend(
        unreadable(dir)
            .iter()
            .map(|(p, e)| format!("unreadable registry entry {} ({e})", p.display())),
    );
    if what.is_empty() {
        return Ok(());
    }
    Err(NemesisError::Leftovers(what.join(", ")))
}

/// Removes everything `record` lists; returns one line per thing removed. Best effort:
/// it goes on after a failure and reports it in the returned lines.
pub fn cleanup_record(record: &Record) -> Vec<String> {
    let mut done = Vec::new();
    // Processes first: a stopped process must be continued before it can act on anything,
    // and killing it releases its namespace and cgroup.
    let mut pids = record.live_pids();
    for ns in &record.namespaces {
        if let Ok(out) = sys::run("ip", &["netns", "pids", ns], None) {
            pids.extend(out.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
    }
    pids.sort_unstable();
    pids.dedup();
    for pid in pids {
        if pid == std::process::id() {
            continue;
        }
        let p = Pid::from_raw(pid as i32);
        let _ = kill(p, Signal::SIGCONT);
        if kill(p, Signal::SIGKILL).is_ok() {
            done.push(format!("killed pid {pid}"));
        }
    }
    for cg in &record.cgroups {
        if cg.exists() {
            match sys::remove_cgroup(cg) {
                Ok(()) => done.push(format!("removed cgroup {}", cg.display())),
                Err(e) => done.push(format!("could not remove cgroup {}: {e}", cg.display())),
            }
        }
    }
    let existing = sys::run("ip", &["netns", "list"], None).unwrap_or_default();
    let existing: Vec<&str> = existing
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for ns in &record.namespaces {
        if existing.contains(&ns.as_str()) {
            match sys::run("ip", &["netns", "del", ns], None) {
                Ok(_) => done.push(format!("deleted network namespace {ns}")),
                Err(e) => done.push(format!("could not delete network namespace {ns}: {e}")),
            }
        }
    }
    for l in &record.root_links {
        if link_exists(l) {
            match sys::run("ip", &["link", "del", l], None) {
                Ok(_) => done.push(format!("deleted interface {l}")),
                // A veth goes with its peer's namespace, possibly just now.
                Err(_) if !link_exists(l) => done.push(format!("deleted interface {l}")),
                Err(e) => done.push(format!("could not delete interface {l}: {e}")),
            }
        }
    }
    for f in &record.files {
        if f.exists() && std::fs::remove_file(f).is_ok() {
            done.push(format!("removed {}", f.display()));
        }
    }
    // Hosts over SSH last: their nodes' sessions here are gone by now.
    let control = crate::hosts::control_dir();
    let log_dir = if record.run_dir.is_dir() {
        record.run_dir.clone()
    } else {
        control.clone()
    };
    // In parallel: each is a fresh connection (a second or more on a loaded machine).
    let per_host: Vec<Vec<String>> = std::thread::scope(|s| {
        let handles: Vec<_> = record
            .remote
            .iter()
            .map(|r| s.spawn(|| r.cleanup(&control, &log_dir)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| vec!["a host's cleanup panicked".into()])
            })
            .collect()
    });
    done.extend(per_host.into_iter().flatten());
    // The control sockets of a killed owner's master connections (named `<pid>-<host>`).
    if !record.remote.is_empty() {
        let prefix = format!("{}-", record.owner_pid);
        for e in std::fs::read_dir(&control).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(&prefix)
                && name.ends_with(".sock")
                && std::fs::remove_file(e.path()).is_ok()
            {
                done.push(format!("removed {}", e.path().display()));
            }
        }
    }
    done
}

/// Cleans every leftover in `dir` and removes its entry; returns what was done.
pub fn cleanup_leftovers(dir: &Path) -> Vec<String> {
    let mut done = Vec::new();
    for (path, record) in leftovers(dir) {
        done.push(format!(
            "run {} ({}):",
            record.run_id,
            record.run_dir.display()
        ));
        done.extend(
            cleanup_record(&record)
                .into_iter()
                .map(|l| format!("  {l}")),
        );
        let _ = std::fs::remove_file(&path);
    }
    for (path, err) in unreadable(dir) {
        let record = record_from_name(&path);
        done.push(format!(
            "unreadable registry entry {} ({err}): removing what run {} is named for",
            path.display(),
            record.run_id
        ));
        done.extend(
            cleanup_record(&record)
                .into_iter()
                .map(|l| format!("  {l}")),
        );
        match std::fs::remove_file(&path) {
            Ok(()) => done.push(format!("  removed {}", path.display())),
            Err(e) => done.push(format!("  could not remove {}: {e}", path.display())),
        }
    }
    done
}

/// The live record of this run. Dropping it cleans up everything it lists.
#[derive(Debug)]
pub struct Ledger {
    entry: PathBuf,
    local: PathBuf,
    record: Mutex<Record>,
    /// Held while cleaning up, so that an abort (a second signal) racing the run's own
    /// cleanup waits for it instead of tripping over half-removed resources.
    finishing: Mutex<()>,
}

impl Ledger {
    /// Starts the record of run `run_id` (whose files live in `run_dir`) in `registry`.
    pub fn create(registry: &Path, run_id: &str, run_dir: &Path) -> Result<Ledger, NemesisError> {
        std::fs::create_dir_all(registry).map_err(|e| NemesisError::io(registry, e))?;
        let me = std::process::id();
        let record = Record {
            run_id: run_id.to_owned(),
            owner_pid: me,
            owner_start: sys::proc_stat(me).map(|s| s.1).unwrap_or(0),
            run_dir: run_dir.to_owned(),
            pid_marker: run_dir.display().to_string(),
            ..Record::default()
        };
        let ledger = Ledger {
            entry: registry.join(format!("{run_id}.json")),
            local: run_dir.join("nemesis-state.json"),
            record: Mutex::new(record),
            finishing: Mutex::new(()),
        };
        ledger.update(|_| {})?;
        Ok(ledger)
    }

    /// A copy of the record as it stands.
    pub fn record(&self) -> Record {
        self.record.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// The registry entry's path.
    pub fn entry_path(&self) -> &Path {
        &self.entry
    }

    /// Changes the record and writes it to both places before returning.
    pub fn update(&self, f: impl FnOnce(&mut Record)) -> Result<(), NemesisError> {
        let mut r = self.record.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut r);
        let text = serde_json::to_vec_pretty(&*r).unwrap_or_default();
        for path in [&self.entry, &self.local] {
            let tmp = path.with_extension("json.tmp");
            std::fs::write(&tmp, &text).map_err(|e| NemesisError::io(&tmp, e))?;
            std::fs::rename(&tmp, path).map_err(|e| NemesisError::io(path, e))?;
        }
        Ok(())
    }

    /// Records the node processes now running.
    pub fn set_pids(&self, pids: Vec<u32>) -> Result<(), NemesisError> {
        self.update(|r| {
            for p in pids {
                if !r.pids.contains(&p) {
                    r.pids.push(p);
                }
            }
        })
    }

    /// Records what the run is about to put on a host (before it does).
    pub fn add_remote(&self, left: crate::hosts::RemoteLeft) -> Result<(), NemesisError> {
        self.update(|r| r.remote.push(left))
    }

    /// Records node pids on remote host `i` (in the order hosts were added).
    pub fn set_remote_pids(&self, pids: &[(usize, u32)]) -> Result<(), NemesisError> {
        self.update(|r| {
            for &(i, p) in pids {
                if let Some(h) = r.remote.get_mut(i)
                    && !h.pids.contains(&p)
                {
                    h.pids.push(p);
                }
            }
        })
    }

    /// Cleans up everything recorded and removes the registry entry; returns what it did.
    pub fn finish(&self) -> Vec<String> {
        let _one_at_a_time = self.finishing.lock().unwrap_or_else(|p| p.into_inner());
        let record = self.record();
        let done = cleanup_record(&record);
        let _ = std::fs::remove_file(&self.entry);
        done
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}
