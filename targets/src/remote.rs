//! Running commands on a host: the one interface (`Exec`) that provisioning, process
//! control and fault mechanisms use, implemented here (`Local`, optionally inside a
//! network namespace) and over SSH (`Ssh`).
//!
//! `Ssh` drives the system OpenSSH client: one master connection per host
//! (`ControlMaster`), held as a child process and reused by every command through its
//! control socket, so a run opens one TCP connection and one authentication per host
//! whatever it does (sshd's `MaxStartups` never sees a burst). Host keys are checked
//! against the inventory's `known_hosts` (`StrictHostKeyChecking=yes`; with
//! `accept_new_host_keys`, an unknown key is recorded and a changed one still refused).
//!
//! Guarantees: a transport failure (ssh's exit status 255: connection lost, master gone)
//! is retried a bounded number of times with exponential backoff, re-opening the master
//! first, and each retry is recorded (`Ssh::retries`); a command that runs and fails is
//! never retried. Every error is one line naming the host and, where the user can act,
//! the fix. Dropping an `Ssh` ends its master by pid.

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Attempts of one command on transport errors (the first try included).
pub const SSH_ATTEMPTS: u32 = 4;
/// The first backoff; it doubles after each failed attempt.
pub const SSH_BACKOFF_MS: u64 = 200;
/// How long opening a master connection may take.
pub const SSH_CONNECT_TIMEOUT_S: u64 = 5;

/// One host of an inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    /// A short name for messages and file names (`h1`); defaults to the address.
    #[serde(default)]
    pub name: String,
    pub address: String,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default = "default_user")]
    pub user: String,
    /// The private key to log in with (ssh's defaults when absent).
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// Run privileged commands through `sudo -n` (the user is not root).
    #[serde(default)]
    pub sudo: bool,
    /// Where schism keeps its binary and per-run folders on the host.
    #[serde(default = "default_dir")]
    pub dir: String,
    /// `PATH` for commands on the host (the login's own when absent).
    #[serde(default)]
    pub path: Option<String>,
}

fn default_port() -> u16 {
    22
}
fn default_user() -> String {
    "root".into()
}
fn default_dir() -> String {
    "/var/tmp/schism".into()
}

impl HostSpec {
    /// A host named by `--hosts`: `[user@]address[:port]`, root, ssh's default key.
    pub fn parse(text: &str) -> Result<HostSpec, String> {
        let (user, rest) = match text.split_once('@') {
            Some((u, r)) => (u.to_owned(), r),
            None => (default_user(), text),
        };
        let (address, port) = match rest.rsplit_once(':') {
            Some((a, p)) if !a.contains(':') => (
                a.to_owned(),
                p.parse()
                    .map_err(|_| format!("--hosts {text}: {p:?} is not a port"))?,
            ),
            _ => (rest.to_owned(), default_port()),
        };
        if address.is_empty() {
            return Err(format!("--hosts: {text:?} names no address"));
        }
        Ok(HostSpec {
            name: address.clone(),
            address,
            port,
            user,
            key: None,
            sudo: false,
            dir: default_dir(),
            path: None,
        })
    }

    /// `user@address:port`, for messages.
    pub fn target(&self) -> String {
        format!("{}@{}:{}", self.user, self.address, self.port)
    }
}

/// Errors of remote (or local) execution, one line each.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// The transport failed (ssh exited 255) after every retry.
    #[error("host {host}: {msg}")]
    Transport { host: String, msg: String },
    /// The command ran and failed.
    #[error("host {host}: `{cmd}` failed ({status}): {stderr}")]
    Failed {
        host: String,
        cmd: String,
        status: String,
        stderr: String,
    },
    #[error("host {host}: {msg}")]
    Other { host: String, msg: String },
}

/// Where commands run: here, or on a host over SSH. Scripts are POSIX `sh`.
pub trait Exec: Send + Sync + std::fmt::Debug {
    /// The host's name, for messages and file names.
    fn name(&self) -> &str;
    /// Runs `script` (as root: through `sudo -n` when the host says so) and returns its
    /// stdout; a non-zero exit is `ExecError::Failed`.
    fn run(&self, script: &str, stdin: Option<&[u8]>) -> Result<String, ExecError>;
    /// Starts `script` as a long-running process whose stdout comes back through the
    /// returned local child (over SSH: one session of the master; the remote process is
    /// a child of the host's sshd).
    fn spawn(&self, script: &str) -> Result<Child, ExecError>;
    /// Copies a local file to `remote` (created with its folders, mode 0755).
    fn upload(&self, local: &Path, remote: &str) -> Result<(), ExecError> {
        let bytes = std::fs::read(local).map_err(|e| ExecError::Other {
            host: self.name().to_owned(),
            msg: format!("cannot read {}: {e}", local.display()),
        })?;
        let q = quote(remote);
        self.run(
            &format!(
                "mkdir -p \"$(dirname {q})\" && cat > {q}.part && chmod 755 {q}.part && mv {q}.part {q}"
            ),
            Some(&bytes),
        )
        .map(|_| ())
    }
    /// Copies `remote` to a local file.
    fn download(&self, remote: &str, local: &Path) -> Result<(), ExecError> {
        let out = self.run_bytes(&format!("cat {}", quote(remote)))?;
        std::fs::write(local, out).map_err(|e| ExecError::Other {
            host: self.name().to_owned(),
            msg: format!("cannot write {}: {e}", local.display()),
        })
    }
    /// Like `run` without input, keeping stdout as bytes.
    fn run_bytes(&self, script: &str) -> Result<Vec<u8>, ExecError> {
        self.run(script, None).map(String::into_bytes)
    }
    /// Whether commands run on this machine (so pids are this machine's).
    fn is_local(&self) -> bool {
        false
    }
    /// Sends `sig` to `pid` there; a SIGSTOP or SIGCONT then waits (bounded by
    /// `SIGNAL_SETTLE_MS`) until the process shows stopped, or running. A process that
    /// does not exist is an error.
    fn signal(&self, pid: u32, sig: Signal) -> Result<(), ExecError> {
        self.run(&signal_script(&[pid], sig, true), None)
            .map(|_| ())
    }
    /// Sends `sig` to each of `pids` that still exists (a process tree), then settles
    /// like `signal`; gone processes are not an error.
    fn signal_all(&self, pids: &[u32], sig: Signal) -> Result<(), ExecError> {
        if pids.is_empty() {
            return Ok(());
        }
        self.run(&signal_script(pids, sig, false), None).map(|_| ())
    }
    /// SIGCONT then SIGKILL to each of `pids` that still exists (a stopped process
    /// cannot die until continued), in one round trip; gone processes are not an error.
    fn kill_all(&self, pids: &[u32]) -> Result<(), ExecError> {
        if pids.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = pids.iter().map(u32::to_string).collect();
        let list = list.join(" ");
        self.run(
            &format!(
                "for p in {list}; do kill -s CONT $p 2>/dev/null; done; for p in {list}; do kill -s KILL $p 2>/dev/null; done; true"
            ),
            None,
        )
        .map(|_| ())
    }
    /// Every live descendant of `pid` there (servers that fork), read from `/proc`.
    fn descendants(&self, pid: u32) -> Result<Vec<u32>, ExecError> {
        let out = self.run(&descendants_script(pid), None)?;
        Ok(out
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect())
    }
    /// Which of `pids` are live processes there (neither gone nor zombies).
    fn alive(&self, pids: &[u32]) -> Vec<u32> {
        if pids.is_empty() {
            return Vec::new();
        }
        let list: Vec<String> = pids.iter().map(u32::to_string).collect();
        let script = format!(
            "for p in {}; do s=$(sed 's/.*) //' /proc/$p/stat 2>/dev/null | cut -c1); [ -n \"$s\" ] && [ \"$s\" != Z ] && [ \"$s\" != X ] && echo $p; done; true\n",
            list.join(" ")
        );
        // Unknown (the host did not answer): all of them, so a caller waits or retries.
        self.run(&script, None).map_or_else(
            |_| pids.to_vec(),
            |out| {
                out.split_whitespace()
                    .filter_map(|w| w.parse().ok())
                    .collect()
            },
        )
    }
    /// The last `lines` lines of a text file there, joined with " | " (for errors).
    fn tail(&self, path: &str, lines: usize) -> String {
        match self.run(&format!("tail -n {lines} {} 2>&1", quote(path)), None) {
            Ok(text) => {
                let t: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
                if t.is_empty() {
                    "(empty)".into()
                } else {
                    t.join(" | ")
                }
            }
            Err(e) => format!("(cannot read: {e})"),
        }
    }
}

/// How long `Exec::signal` waits for a SIGSTOP or SIGCONT to show in the process state.
pub const SIGNAL_SETTLE_MS: u64 = 1000;

/// The script that signals `pids` (by name: `kill -s STOP`) and, for SIGSTOP/SIGCONT,
/// polls `/proc/<pid>/stat` until each shows the new state; `strict`: a failed `kill`
/// fails the script.
fn signal_script(pids: &[u32], sig: Signal, strict: bool) -> String {
    let name = sig.as_str().trim_start_matches("SIG");
    let list: Vec<String> = pids.iter().map(u32::to_string).collect();
    let list = list.join(" ");
    let fail = if strict { "exit 1" } else { "true" };
    let mut s = format!("for p in {list}; do kill -s {name} $p 2>/dev/null || {fail}; done\n");
    let want = match sig {
        Signal::SIGSTOP => Some("= T"),
        Signal::SIGCONT => Some("!= T"),
        _ => None,
    };
    if let Some(want) = want {
        let polls = SIGNAL_SETTLE_MS / 10;
        s.push_str(&format!(
            "for p in {list}; do i=0; while [ $i -lt {polls} ]; do s=$(sed 's/.*) //' /proc/$p/stat 2>/dev/null | cut -c1); [ -z \"$s\" ] && break; [ \"$s\" = t ] && s=T; [ \"$s\" {want} ] && break; sleep 0.01; i=$((i+1)); done; done\n"
        ));
    }
    s.push_str("true\n");
    s
}

/// The script that prints every descendant of `pid` (parent links from `/proc`, one
/// `cat` of every stat file: a process that exits meanwhile is skipped).
fn descendants_script(pid: u32) -> String {
    let awk = r#"{ l = $0; sub(/.*\) /, "", l); split(l, a, " "); par[$1] = a[2] }
END { n = 1; q[1] = root; out = ""; while (n > 0) { p = q[n]; n--; for (c in par) if (par[c] == p) { out = out " " c; n++; q[n] = c } } print out }"#;
    format!(
        "cat /proc/[0-9]*/stat 2>/dev/null | awk -v root={pid} {}\n",
        quote(awk)
    )
}

/// `text` as one single-quoted `sh` word.
pub fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// Runs `cmd` to completion, feeding `stdin`.
fn output(mut cmd: Command, stdin: Option<&[u8]>) -> std::io::Result<Output> {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A command that exits without reading its input is judged by its status.
        let _ = pipe.write_all(bytes);
    }
    child.wait_with_output()
}

fn one_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().replace('\n', " | ")
}

/// Commands run on this machine, inside network namespace `netns` when given.
#[derive(Debug, Clone)]
pub struct Local {
    pub name: String,
    pub netns: Option<String>,
}

impl Local {
    fn command(&self, script: &str) -> Command {
        let mut c = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "sh", "-c", script]);
                c
            }
            None => {
                let mut c = Command::new("sh");
                c.args(["-c", script]);
                c
            }
        };
        c.stdin(Stdio::null());
        c
    }
}

impl Exec for Local {
    fn name(&self) -> &str {
        &self.name
    }

    fn run(&self, script: &str, stdin: Option<&[u8]>) -> Result<String, ExecError> {
        let out = output(self.command(script), stdin).map_err(|e| ExecError::Other {
            host: self.name.clone(),
            msg: format!("cannot run sh: {e}"),
        })?;
        if !out.status.success() {
            return Err(ExecError::Failed {
                host: self.name.clone(),
                cmd: script.to_owned(),
                status: out.status.to_string(),
                stderr: one_line(&out.stderr),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn upload(&self, local: &Path, remote: &str) -> Result<(), ExecError> {
        let err = |e: std::io::Error| ExecError::Other {
            host: self.name.clone(),
            msg: format!("cannot copy {} to {remote}: {e}", local.display()),
        };
        if let Some(parent) = Path::new(remote).parent() {
            std::fs::create_dir_all(parent).map_err(err)?;
        }
        std::fs::copy(local, remote).map(|_| ()).map_err(err)
    }

    fn is_local(&self) -> bool {
        true
    }

    /// Here a signal is a system call, not a shell (faster; the same semantics).
    fn signal(&self, pid: u32, sig: Signal) -> Result<(), ExecError> {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).map_err(|e| {
            ExecError::Failed {
                host: self.name.clone(),
                cmd: format!("kill -s {} {pid}", sig.as_str()),
                status: "error".into(),
                stderr: e.to_string(),
            }
        })?;
        settle(pid, sig);
        Ok(())
    }

    fn signal_all(&self, pids: &[u32], sig: Signal) -> Result<(), ExecError> {
        for &p in pids {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p as i32), sig);
        }
        for &p in pids {
            settle(p, sig);
        }
        Ok(())
    }

    fn kill_all(&self, pids: &[u32]) -> Result<(), ExecError> {
        for sig in [Signal::SIGCONT, Signal::SIGKILL] {
            for &p in pids {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p as i32), sig);
            }
        }
        Ok(())
    }

    fn descendants(&self, pid: u32) -> Result<Vec<u32>, ExecError> {
        Ok(crate::procfs::descendants(pid))
    }

    fn alive(&self, pids: &[u32]) -> Vec<u32> {
        pids.iter()
            .copied()
            .filter(|&p| crate::procfs::alive(p))
            .collect()
    }

    fn tail(&self, path: &str, lines: usize) -> String {
        crate::procfs::log_tail(Path::new(path), lines)
    }

    fn spawn(&self, script: &str) -> Result<Child, ExecError> {
        use std::os::unix::process::CommandExt;
        self.command(script)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| ExecError::Other {
                host: self.name.clone(),
                msg: format!("cannot run sh: {e}"),
            })
    }
}

/// After a SIGSTOP or SIGCONT, waits (bounded) until the process shows it.
fn settle(pid: u32, sig: Signal) {
    match sig {
        Signal::SIGSTOP => crate::procfs::wait_stopped(pid, true),
        Signal::SIGCONT => crate::procfs::wait_stopped(pid, false),
        _ => {}
    }
}

impl Local {
    /// This machine, inside network namespace `netns` when given.
    pub fn on(netns: Option<String>) -> std::sync::Arc<dyn Exec> {
        std::sync::Arc::new(Local {
            name: netns.clone().unwrap_or_else(|| "localhost".into()),
            netns,
        })
    }
}

/// How to check host keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshOptions {
    /// The known_hosts file keys are checked against (and recorded in).
    pub known_hosts: PathBuf,
    /// Record the key of a host never seen (a changed key is refused regardless).
    pub accept_new_host_keys: bool,
    /// Folder of the control sockets (short: a socket path has at most 107 bytes).
    pub control_dir: PathBuf,
    /// A string every local ssh process carries on its command line (the ledger's
    /// marker: the run folder), as ssh's log file `-E <marker>/ssh-<host>.log`.
    pub log_dir: PathBuf,
}

/// One host over SSH: a master connection and the commands multiplexed over it.
#[derive(Debug)]
pub struct Ssh {
    host: HostSpec,
    opts: SshOptions,
    control: PathBuf,
    master: Mutex<Option<Child>>,
    retries: Mutex<Vec<String>>,
}

impl Ssh {
    /// Opens the master connection (bounded by `SSH_CONNECT_TIMEOUT_S`); an error names
    /// the host and the fix (unreachable, host key, login refused).
    pub fn connect(host: HostSpec, opts: SshOptions) -> Result<Ssh, ExecError> {
        let _ = std::fs::create_dir_all(&opts.control_dir);
        let _ = std::fs::create_dir_all(&opts.log_dir);
        let control = opts.control_dir.join(format!(
            "{}-{}.sock",
            std::process::id(),
            sanitize(&host.name)
        ));
        let ssh = Ssh {
            host,
            opts,
            control,
            master: Mutex::new(None),
            retries: Mutex::new(Vec::new()),
        };
        ssh.open_master()?;
        Ok(ssh)
    }

    pub fn host(&self) -> &HostSpec {
        &self.host
    }

    /// The transport failures that were retried, one line each.
    pub fn retries(&self) -> Vec<String> {
        self.retries.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// The pid of the local master process (the ledger records it).
    pub fn master_pid(&self) -> Option<u32> {
        self.master
            .lock()
            .ok()
            .and_then(|m| m.as_ref().map(Child::id))
    }

    /// Options every ssh invocation shares: host-key checking, key, port, log file.
    fn base(&self) -> Command {
        let mut c = Command::new("ssh");
        let strict = if self.opts.accept_new_host_keys {
            "accept-new"
        } else {
            "yes"
        };
        c.arg("-o")
            .arg(format!("StrictHostKeyChecking={strict}"))
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                self.opts.known_hosts.display()
            ))
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "GlobalKnownHostsFile=/dev/null",
            ])
            .arg("-o")
            .arg(format!("ConnectTimeout={SSH_CONNECT_TIMEOUT_S}"))
            .args(["-o", "ServerAliveInterval=2", "-o", "ServerAliveCountMax=3"])
            .arg("-S")
            .arg(&self.control)
            .arg("-E")
            .arg(self.log_path())
            .arg("-p")
            .arg(self.host.port.to_string())
            .arg("-l")
            .arg(&self.host.user);
        if let Some(key) = &self.host.key {
            c.arg("-i").arg(key).args(["-o", "IdentitiesOnly=yes"]);
        }
        c
    }

    /// ssh's own log (`-E`): where its errors go instead of stderr.
    fn log_path(&self) -> PathBuf {
        self.opts
            .log_dir
            .join(format!("ssh-{}.log", sanitize(&self.host.name)))
    }

    /// What ssh logged from byte `from` on, as one line.
    fn log_since(&self, from: u64) -> String {
        let bytes = std::fs::read(self.log_path()).unwrap_or_default();
        let from = usize::try_from(from).unwrap_or(0).min(bytes.len());
        one_line(&bytes[from..])
    }

    fn log_len(&self) -> u64 {
        std::fs::metadata(self.log_path()).map_or(0, |m| m.len())
    }

    /// Starts the master (`ssh -M -N`) and waits until its socket answers.
    fn open_master(&self) -> Result<(), ExecError> {
        let mut guard = self.master.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(mut old) = guard.take() {
            let _ = old.kill();
            let _ = old.wait();
        }
        let _ = std::fs::remove_file(&self.control);
        let log_from = self.log_len();
        let mut cmd = self.base();
        cmd.args(["-M", "-N", "-o", "ControlPersist=no"])
            .arg(&self.host.address)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| ExecError::Other {
            host: self.host.name.clone(),
            msg: format!("cannot run `ssh` ({e}): install the Debian package openssh-client"),
        })?;
        let deadline = Instant::now() + Duration::from_secs(SSH_CONNECT_TIMEOUT_S + 2);
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                let out = child.wait_with_output().ok();
                let stderr = out.map(|o| one_line(&o.stderr)).unwrap_or_default();
                let logged = self.log_since(log_from);
                return Err(self.diagnose(format!("{logged} {stderr}").trim()));
            }
            if self.control.exists() && self.check_master() {
                *guard = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ExecError::Transport {
                    host: self.host.name.clone(),
                    msg: format!(
                        "{} did not complete the SSH handshake within {} s: check that sshd runs there and the address is right",
                        self.host.target(),
                        SSH_CONNECT_TIMEOUT_S + 2
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn check_master(&self) -> bool {
        let mut c = self.base();
        c.args(["-O", "check"]).arg(&self.host.address);
        output(c, None).is_ok_and(|o| o.status.success())
    }

    /// The one line (host + fix) for a connection that failed with `stderr`.
    fn diagnose(&self, stderr: &str) -> ExecError {
        let h = &self.host;
        let kh = self.opts.known_hosts.display();
        let msg = if stderr.contains("IDENTIFICATION HAS CHANGED")
            || stderr.contains("Host key verification failed")
            || stderr.contains("No ED25519 host key is known")
            || stderr.contains("host key is known")
        {
            if stderr.contains("CHANGED") {
                let name = if h.port == 22 {
                    h.address.clone()
                } else {
                    format!("[{}]:{}", h.address, h.port)
                };
                format!(
                    "the host key of {} changed (refused): if the host was reinstalled, remove its old line with `ssh-keygen -f {kh} -R '{name}'` and connect again",
                    h.target()
                )
            } else {
                format!(
                    "the host key of {} is not in {kh} (refused): add it (`ssh-keyscan -p {} {} >> {kh}`, after checking it) or pass --accept-new-host-keys",
                    h.target(),
                    h.port,
                    h.address
                )
            }
        } else if stderr.contains("Permission denied") {
            format!(
                "{} refused the login: add the public key of {} to ~{}/.ssh/authorized_keys there",
                h.target(),
                h.key
                    .as_ref()
                    .map_or("your ssh key".into(), |k| k.display().to_string()),
                h.user
            )
        } else {
            format!(
                "{} is unreachable ({stderr}): check the address and port, and that sshd runs there (Debian package openssh-server)",
                h.target()
            )
        };
        ExecError::Transport {
            host: h.name.clone(),
            msg,
        }
    }

    /// The remote command line: `PATH`, then `sudo -n` when asked.
    fn remote(&self, script: &str) -> String {
        let script = match &self.host.path {
            Some(p) => format!("PATH={}; export PATH; {script}", quote(p)),
            None => script.to_owned(),
        };
        if self.host.sudo {
            format!("sudo -n sh -c {}", quote(&script))
        } else {
            format!("sh -c {}", quote(&script))
        }
    }

    fn session(&self, script: &str) -> Command {
        let mut c = self.base();
        c.args(["-o", "ControlMaster=no", "-T"])
            .arg(&self.host.address)
            .arg("--")
            .arg(self.remote(script));
        c
    }

    /// Re-opens the master if it exited (connection lost), recording that as a transient
    /// failure; without this, ssh would silently open a second connection.
    fn ensure_master(&self) {
        let gone = {
            let mut guard = self.master.lock().unwrap_or_else(|p| p.into_inner());
            match guard.as_mut().map(Child::try_wait) {
                Some(Ok(None)) => None,
                Some(Ok(Some(status))) => Some(status.to_string()),
                Some(Err(e)) => Some(e.to_string()),
                None => Some("no master connection".into()),
            }
        };
        if let Some(why) = gone {
            if let Ok(mut r) = self.retries.lock() {
                r.push(format!(
                    "host {}: transient SSH failure: the master connection ended ({why}); re-opened and retried",
                    self.host.name
                ));
            }
            let _ = self.open_master();
        }
    }

    /// Records a retried transport failure and re-opens the master if it is gone.
    fn note_retry(&self, attempt: u32, stderr: &str) {
        let line = format!(
            "host {}: transient SSH failure (attempt {attempt} of {SSH_ATTEMPTS}): {stderr}; retried",
            self.host.name
        );
        if let Ok(mut r) = self.retries.lock() {
            r.push(line);
        }
        if !self.check_master() {
            let _ = self.open_master();
        }
    }
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Runs `f`, which blocks on the network, without stalling an async runtime: on a
/// multi-threaded runtime's worker the worker hands its other tasks (the workload's
/// clients, a failover task) to another thread meanwhile (`block_in_place`); elsewhere
/// (a plain thread, a current-thread runtime) it simply runs.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

impl Ssh {
    /// `run`'s body: the command with its retries, blocking this thread.
    fn run_here(&self, script: &str, stdin: Option<&[u8]>) -> Result<String, ExecError> {
        let mut backoff = Duration::from_millis(SSH_BACKOFF_MS);
        let mut last = String::new();
        for attempt in 1..=SSH_ATTEMPTS {
            self.ensure_master();
            let log_from = self.log_len();
            let out = output(self.session(script), stdin).map_err(|e| ExecError::Other {
                host: self.host.name.clone(),
                msg: format!("cannot run `ssh` ({e}): install the Debian package openssh-client"),
            })?;
            if out.status.code() == Some(255) {
                // The transport failed (ssh reserves 255 for its own errors, which it
                // writes to its log).
                last = format!("{} {}", self.log_since(log_from), one_line(&out.stderr))
                    .trim()
                    .to_owned();
                if attempt < SSH_ATTEMPTS {
                    self.note_retry(attempt, &last);
                    std::thread::sleep(backoff);
                    backoff *= 2;
                }
                continue;
            }
            if !out.status.success() {
                return Err(ExecError::Failed {
                    host: self.host.name.clone(),
                    cmd: script.to_owned(),
                    status: out.status.to_string(),
                    stderr: one_line(&out.stderr),
                });
            }
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        Err(ExecError::Transport {
            host: self.host.name.clone(),
            msg: format!(
                "SSH failed {SSH_ATTEMPTS} times ({last}): check the host and its network"
            ),
        })
    }
}

impl Exec for Ssh {
    fn name(&self) -> &str {
        &self.host.name
    }

    /// Blocks for a round trip (or several, with retries): see `blocking`.
    fn run(&self, script: &str, stdin: Option<&[u8]>) -> Result<String, ExecError> {
        blocking(|| self.run_here(script, stdin))
    }

    /// Streams the file through one session (never held in memory whole), retried like
    /// any command on transport errors.
    fn upload(&self, local: &Path, remote: &str) -> Result<(), ExecError> {
        let q = quote(remote);
        let script = format!(
            "mkdir -p \"$(dirname {q})\" && cat > {q}.part && chmod 755 {q}.part && mv {q}.part {q}"
        );
        let mut backoff = Duration::from_millis(SSH_BACKOFF_MS);
        for attempt in 1..=SSH_ATTEMPTS {
            self.ensure_master();
            let file = std::fs::File::open(local).map_err(|e| ExecError::Other {
                host: self.host.name.clone(),
                msg: format!("cannot read {}: {e}", local.display()),
            })?;
            let mut cmd = self.session(&script);
            cmd.stdin(Stdio::from(file))
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            let out = cmd.output().map_err(|e| ExecError::Other {
                host: self.host.name.clone(),
                msg: format!("cannot run `ssh` ({e}): install the Debian package openssh-client"),
            })?;
            match out.status.code() {
                Some(0) => return Ok(()),
                Some(255) if attempt < SSH_ATTEMPTS => {
                    self.note_retry(attempt, &one_line(&out.stderr));
                    std::thread::sleep(backoff);
                    backoff *= 2;
                }
                _ => {
                    return Err(ExecError::Failed {
                        host: self.host.name.clone(),
                        cmd: format!("upload {} to {remote}", local.display()),
                        status: out.status.to_string(),
                        stderr: one_line(&out.stderr),
                    });
                }
            }
        }
        unreachable!("the last attempt returns")
    }

    fn spawn(&self, script: &str) -> Result<Child, ExecError> {
        use std::os::unix::process::CommandExt;
        self.ensure_master();
        self.session(script)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| ExecError::Other {
                host: self.host.name.clone(),
                msg: format!("cannot run `ssh` ({e}): install the Debian package openssh-client"),
            })
    }
}

impl Drop for Ssh {
    fn drop(&mut self) {
        let mut guard = self.master.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(mut m) = guard.take() {
            let _ = m.kill();
            let _ = m.wait();
        }
        let _ = std::fs::remove_file(&self.control);
    }
}

/// What a host lacks for a run, checked before it starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    /// Binaries with the Debian package that provides each.
    pub binaries: Vec<(String, String)>,
    /// TCP ports that must be free on the host.
    pub ports: Vec<u16>,
}

/// Checks one host: privileges (root, or `sudo -n`), binaries, free ports. Returns the
/// first problem as one line naming the host and the fix.
pub fn preflight(exec: &dyn Exec, needs: &Needs) -> Result<(), ExecError> {
    let host = exec.name().to_owned();
    let fail = |msg: String| ExecError::Other {
        host: host.clone(),
        msg,
    };
    // One round trip: the uid first, then one line per problem.
    let mut script = String::from("id -u\n");
    for (bin, pkg) in &needs.binaries {
        // Names of binaries and packages are words: refuse anything else.
        let word = |w: &str| {
            w.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.+".contains(c))
        };
        // A binary may be an absolute path (`/usr/lib/postgresql/15/bin/postgres`).
        if !word(&bin.replace('/', "")) || !word(pkg) {
            return Err(fail(format!(
                "{bin:?} / {pkg:?} is not a binary / package name"
            )));
        }
        script.push_str(&format!(
            "command -v {bin} >/dev/null 2>&1 || echo 'missing {bin} {pkg}'\n"
        ));
    }
    for port in &needs.ports {
        script.push_str(&format!(
            "if command -v ss >/dev/null 2>&1 && [ -n \"$(ss -Hltn 'sport = :{port}')\" ]; then echo \"busy {port}\"; fi\n"
        ));
    }
    script.push_str("true\n");
    let out = match exec.run(&script, None) {
        Ok(out) => out,
        Err(ExecError::Failed { stderr, .. }) => {
            return Err(fail(format!(
                "cannot become root there ({stderr}): install sudo (Debian package sudo) and allow this user passwordless sudo, or log in as root"
            )));
        }
        Err(e) => return Err(e),
    };
    let uid = out.lines().next().unwrap_or("").trim();
    if uid != "0" {
        return Err(fail(format!(
            "commands run as uid {uid} there, not root: log in as root or set `sudo = true` for this host"
        )));
    }
    for line in out.lines().skip(1) {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["missing", bin, pkg] => {
                return Err(fail(format!(
                    "`{bin}` not found there: install the Debian package {pkg} (apt-get install {pkg})"
                )));
            }
            ["busy", port] => {
                return Err(fail(format!(
                    "port {port} is in use there: stop what listens on it or pass another --base-port"
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn here() -> Local {
        Local {
            name: "here".into(),
            netns: None,
        }
    }

    #[test]
    fn hosts_flag_parses_user_address_and_port() {
        let h = HostSpec::parse("admin@db1:2222").unwrap();
        assert_eq!(
            (h.user.as_str(), h.address.as_str(), h.port),
            ("admin", "db1", 2222)
        );
        let h = HostSpec::parse("10.0.0.5").unwrap();
        assert_eq!((h.user.as_str(), h.port, h.sudo), ("root", 22, false));
        assert!(
            HostSpec::parse("db1:ssh")
                .unwrap_err()
                .contains("not a port")
        );
        assert!(HostSpec::parse("root@").is_err());
    }

    #[test]
    fn quoted_words_survive_the_shell() {
        let nasty = "it's a \"test\" $HOME `x` \\ ;";
        let out = here()
            .run(&format!("printf %s {}", quote(nasty)), None)
            .unwrap();
        assert_eq!(out, nasty);
    }

    #[test]
    fn local_exec_runs_copies_and_spawns() {
        let dir = tempfile::tempdir().unwrap();
        let h = here();
        assert_eq!(h.run("cat", Some(b"in")).unwrap(), "in");
        let e = h.run("echo oops >&2; exit 3", None).unwrap_err();
        assert!(
            matches!(&e, ExecError::Failed { stderr, .. } if stderr == "oops"),
            "{e}"
        );
        let src = dir.path().join("a");
        std::fs::write(&src, b"payload").unwrap();
        let remote = dir.path().join("x/y/b").display().to_string();
        h.upload(&src, &remote).unwrap();
        let back = dir.path().join("c");
        h.download(&remote, &back).unwrap();
        assert_eq!(std::fs::read(&back).unwrap(), b"payload");
        let mut child = h.spawn("echo $$; exec sleep 5").unwrap();
        let mut first = [0u8; 64];
        let n = child.stdout.as_mut().unwrap().read(&mut first).unwrap();
        let pid: u32 = String::from_utf8_lossy(&first[..n]).trim().parse().unwrap();
        assert_eq!(pid, child.id(), "the spawned script execs in place");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// `Exec`'s own scripts (what runs over SSH) run here: every method `Local`
    /// overrides with system calls is left to the trait's default.
    #[derive(Debug)]
    struct ScriptsOnly(Local);

    impl Exec for ScriptsOnly {
        fn name(&self) -> &str {
            "scripts"
        }
        fn run(&self, script: &str, stdin: Option<&[u8]>) -> Result<String, ExecError> {
            self.0.run(script, stdin)
        }
        fn spawn(&self, script: &str) -> Result<Child, ExecError> {
            self.0.spawn(script)
        }
    }

    #[test]
    fn the_remote_scripts_signal_find_children_and_tell_the_living() {
        let h = ScriptsOnly(here());
        let mut tree = Command::new("sh")
            .args(["-c", "sleep 30 & sleep 31 & wait"])
            .spawn()
            .unwrap();
        let root = tree.id();
        let until = Instant::now() + Duration::from_secs(5);
        let mut kids = Vec::new();
        while kids.len() < 2 && Instant::now() < until {
            kids = h.descendants(root).unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
        kids.sort_unstable();
        let mut read_here = crate::procfs::descendants(root);
        read_here.sort_unstable();
        assert_eq!(kids, read_here, "the script reads /proc as we do");
        assert_eq!(kids.len(), 2, "{kids:?}");
        h.signal(kids[0], Signal::SIGSTOP).unwrap();
        assert_eq!(
            crate::procfs::proc_state(kids[0]),
            Some('T'),
            "settled stopped"
        );
        h.signal(kids[0], Signal::SIGCONT).unwrap();
        assert_ne!(
            crate::procfs::proc_state(kids[0]),
            Some('T'),
            "settled running"
        );
        let mut all = vec![root];
        all.extend(&kids);
        assert_eq!(h.alive(&all), all);
        h.signal_all(&kids, Signal::SIGSTOP).unwrap();
        h.kill_all(&all).unwrap();
        tree.wait().unwrap();
        let until = Instant::now() + Duration::from_secs(5);
        while !h.alive(&kids).is_empty() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(h.alive(&all).is_empty(), "killed, stopped ones too");
        assert!(
            h.signal(root, Signal::SIGCONT).is_err(),
            "a gone pid is an error"
        );
        assert!(
            h.signal_all(&all, Signal::SIGCONT).is_ok(),
            "not for a tree"
        );
    }

    #[test]
    fn preflight_names_the_missing_binary_and_its_package() {
        let needs = Needs {
            binaries: vec![
                ("sh".into(), "dash".into()),
                ("no-such-tool-x".into(), "pkg-x".into()),
            ],
            ports: Vec::new(),
        };
        let h = here();
        match preflight(&h, &needs) {
            // Not root here: that is refused first, naming sudo.
            Err(e) if h.run("id -u", None).unwrap().trim() != "0" => {
                assert!(e.to_string().contains("sudo"), "{e}")
            }
            Err(e) => assert!(
                e.to_string().contains("`no-such-tool-x` not found there")
                    && e.to_string().contains("apt-get install pkg-x"),
                "{e}"
            ),
            Ok(()) => panic!("a missing binary passed the preflight"),
        }
        let bad = Needs {
            binaries: vec![("x; rm -rf /".into(), "p".into())],
            ports: Vec::new(),
        };
        assert!(preflight(&h, &bad).is_err());
    }
}
