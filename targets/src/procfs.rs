//! Reads of this machine's `/proc` and files that the process plumbing (`process`) and
//! the local `Exec` (`remote::Local`) share: whether a pid lives, a process's
//! descendants, its state letter, a bounded wait for a stop or a continue to show, and a
//! log's last lines. No process is started or signalled here.
//!
//! Guarantees: every read tolerates a process that exits meanwhile (it is then gone, not
//! an error), and every wait is bounded.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::{Duration, Instant};

/// Whether `pid` is a live process (neither gone nor a zombie; a stopped one is live).
pub fn alive(pid: u32) -> bool {
    !matches!(proc_state(pid), None | Some('Z') | Some('X'))
}

/// Every live descendant of `pid` (one scan of `/proc`, then parent links followed), for
/// servers that fork: a crash kills them all, a pause freezes them all.
pub fn descendants(pid: u32) -> Vec<u32> {
    let parent_of: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|p| Some((p, proc_ppid(p)?)))
        .collect();
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for &(c, pp) in &parent_of {
            if pp == p && !out.contains(&c) {
                out.push(c);
                frontier.push(c);
            }
        }
    }
    out
}

/// Field 4 of `/proc/<pid>/stat`: the parent's pid (the command name may hold spaces,
/// so fields are counted after its closing parenthesis).
fn proc_ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The last `lines` non-empty lines of a log file, joined with " | " (for errors).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let read = || -> std::io::Result<String> {
        let mut f = File::open(path)?;
        let len = f.metadata()?.len();
        f.seek(SeekFrom::Start(len.saturating_sub(4096)))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    };
    match read() {
        Ok(text) => {
            let tail: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
            let tail = &tail[tail.len().saturating_sub(lines)..];
            if tail.is_empty() {
                "(empty)".to_owned()
            } else {
                tail.join(" | ")
            }
        }
        Err(e) => format!("(cannot read: {e})"),
    }
}

/// How long `pause`/`resume` wait for the kernel to show the new process state.
const SIGNAL_SETTLE_LIMIT: Duration = Duration::from_millis(500);

/// Waits (bounded by `SIGNAL_SETTLE_LIMIT`) until `/proc/<pid>/stat` shows the process
/// stopped (`T`/`t`) or, with `stopped == false`, not stopped. A process that is gone ends
/// the wait at once: the caller's next signal reports that.
pub fn wait_stopped(pid: u32, stopped: bool) {
    let until = Instant::now() + SIGNAL_SETTLE_LIMIT;
    loop {
        let Some(state) = proc_state(pid) else {
            return;
        };
        if matches!(state, 'T' | 't') == stopped || Instant::now() >= until {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The state letter of `/proc/<pid>/stat` (`R`, `S`, `T`, `Z`, …), None if there is no
/// such process.
pub fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')')
        .next()
        .and_then(|r| r.split_whitespace().next())
        .and_then(|s| s.chars().next())
}
