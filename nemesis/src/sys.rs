//! Running system tools (`ip`, `nft`, `cc`) and reading `/proc`, with errors that name
//! the command and its stderr, and removing a cgroup (shared by `cgroup::Freezer` and the
//! ledger's cleanup, so neither imports the other). Nothing here decides what to change.

use crate::error::NemesisError;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The Debian package that provides a tool, for "install X" messages.
pub(crate) fn package_of(tool: &'static str) -> &'static str {
    match tool {
        "ip" => "iproute2",
        "nft" => "nftables",
        "cc" => "gcc",
        "ssh" | "ssh-keygen" => "openssh-client",
        _ => tool,
    }
}

/// Whether `tool` can be run (found on PATH).
pub fn have(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

/// Runs `tool args…` (feeding `stdin` if given) and returns its stdout; a non-zero exit
/// is an error carrying the command line and its stderr.
pub(crate) fn run(
    tool: &'static str,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<String, NemesisError> {
    let line = format!("{tool} {}", args.join(" "));
    let mut cmd = Command::new(tool);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            NemesisError::MissingTool {
                tool,
                package: package_of(tool),
            }
        } else {
            NemesisError::Command {
                cmd: line.clone(),
                msg: e.to_string(),
            }
        }
    })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .map_err(|e| NemesisError::Command {
                cmd: line.clone(),
                msg: format!("cannot write its input: {e}"),
            })?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| NemesisError::Command {
            cmd: line.clone(),
            msg: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(NemesisError::Command {
            cmd: line,
            msg: String::from_utf8_lossy(&out.stderr)
                .trim()
                .replace('\n', " | "),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A process's state letter (`R`, `S`, `T`, `Z`, …) and start time (clock ticks since
/// boot) from `/proc/<pid>/stat`, or `None` if it does not exist.
pub fn proc_stat(pid: u32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    // Field 22 of stat is starttime; fields[0] here is field 3.
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

/// A process's command line with NULs as spaces.
pub fn proc_cmdline(pid: u32) -> Option<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .ok()
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
}

/// The direct children of a process (from `/proc/<pid>/task/*/children`).
pub fn run_children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(t.path().join("children")) {
            out.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    out
}

/// Thaws cgroup `path`, moves its processes to the hierarchy's root and removes it.
pub fn remove_cgroup(path: &Path) -> Result<(), NemesisError> {
    if !path.exists() {
        return Ok(());
    }
    let _ = std::fs::write(path.join("cgroup.freeze"), "0");
    let parent_procs = path
        .parent()
        .map(|p| p.join("cgroup.procs"))
        .ok_or_else(|| NemesisError::io(path, std::io::Error::other("cgroup has no parent")))?;
    let until = Instant::now() + Duration::from_secs(2);
    loop {
        let pids: Vec<String> = std::fs::read_to_string(path.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        for p in &pids {
            let _ = std::fs::write(&parent_procs, p);
        }
        match std::fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(_) if Instant::now() < until => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(NemesisError::io(path, e)),
        }
    }
}
