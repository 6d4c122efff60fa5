//! Process plumbing every target shares: a server process whose pid is its own
//! (`ManagedProcess`, started through its host's `Exec` as `echo $$; exec [setpriv …]
//! server …`: `ip netns exec`, `sh` and `setpriv` all exec, so a pause, a kill and the
//! ledger's cleanup reach the server itself, here or on a host over SSH), free loopback
//! ports, `/proc` reads (`procfs`: state, descendants), bounded waits (`wait_until`,
//! `wait_stopped`), log tails for errors, and a missing server binary named by its Debian
//! package.
//!
//! Guarantees: a `ManagedProcess` is killed when dropped (SIGCONT then SIGKILL through its
//! `Exec`, then its local child reaped), so no server outlives its cluster even on a
//! panic; every wait is bounded. Starting, signalling, stopping and reading the log are
//! one code path for every host: only the `Exec` differs.

use crate::error::TargetError;
pub use crate::procfs::{alive, descendants, log_tail, proc_state, wait_stopped};
use crate::reference::NodeId;
use crate::remote::{Exec, ExecError, quote};
use nix::sys::signal::Signal;
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Finds a server binary by name (on `PATH`) or absolute path; a missing one is one line
/// naming the Debian package.
pub fn require_binary(name: &str, package: &str) -> Result<PathBuf, TargetError> {
    let found = if name.contains('/') {
        Path::new(name).is_file().then(|| PathBuf::from(name))
    } else {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
    };
    found.ok_or_else(|| TargetError::MissingBinary {
        binary: name.to_owned(),
        package: package.to_owned(),
    })
}

/// `n` distinct free loopback ports (held open together so the kernel hands out distinct
/// ones), or `base..base+n` when a base is given and every one of them is free.
pub fn loopback_ports(n: usize, base: Option<u16>) -> Result<Vec<u16>, TargetError> {
    let ids: Vec<NodeId> = (1..=n).map(|i| format!("port{i}")).collect();
    pick_ports(&ids, base)
}

/// Creates a cluster's data and log directories (with their parents).
pub fn create_run_dirs(data_dir: &Path, log_dir: &Path) -> Result<(), TargetError> {
    std::fs::create_dir_all(data_dir).map_err(|source| TargetError::DataDir {
        path: data_dir.to_owned(),
        source,
    })?;
    std::fs::create_dir_all(log_dir).map_err(|source| TargetError::LogDir {
        path: log_dir.to_owned(),
        source,
    })
}

/// The text of `path` on `exec`'s host ("" when it does not exist): read directly on
/// this machine, through one `cat` on a host over SSH. `put_file`'s counterpart.
pub fn read_file(exec: &dyn Exec, path: &Path) -> String {
    if exec.is_local() {
        return std::fs::read_to_string(path).unwrap_or_default();
    }
    let q = quote(&path.display().to_string());
    exec.run(&format!("cat {q} 2>/dev/null; true"), None)
        .unwrap_or_default()
}

/// Writes `text` to `path` on `exec`'s host, making its folder first: directly on this
/// machine, through one command (the text as its input) on a host over SSH.
pub fn put_file(exec: &dyn Exec, path: &Path, text: &str) -> Result<(), TargetError> {
    let io = |source| TargetError::Io {
        path: path.to_owned(),
        source,
    };
    if exec.is_local() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        return std::fs::write(path, text).map_err(io);
    }
    let q = quote(&path.display().to_string());
    exec.run(
        &format!("mkdir -p \"$(dirname {q})\" && cat > {q}"),
        Some(text.as_bytes()),
    )
    .map(|_| ())
    .map_err(|e| TargetError::Invalid(format!("cannot write {}: {e}", path.display())))
}

/// Opens a process's log for appending, twice: one handle for stdout, one for stderr.
pub fn open_output_log(path: &Path) -> Result<(File, File), TargetError> {
    let err = |source| TargetError::LogDir {
        path: path.to_owned(),
        source,
    };
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(err)?;
    let log2 = log.try_clone().map_err(err)?;
    Ok((log, log2))
}

/// How to start one server process.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    /// A short name for errors (`n1`).
    pub node: NodeId,
    /// Where it runs: this machine (`Local`, inside a network namespace when given) or a
    /// host over SSH; every path below is on that host.
    pub exec: Arc<dyn Exec>,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Run as this user (`setpriv`, which execs too): PostgreSQL refuses to run as root.
    pub user: Option<String>,
    /// stdout and stderr go here (appended).
    pub log: PathBuf,
    pub cwd: Option<PathBuf>,
}

impl ProcessSpec {
    /// The `sh` script that starts the server through its `Exec`: it prints its own pid,
    /// then execs the server (through `setpriv` when a user is given, which execs too), so
    /// the pid printed is the server's own on its host.
    fn script(&self) -> String {
        let mut s = String::from("echo $$\n");
        if let Some(d) = &self.cwd {
            s.push_str(&format!(
                "cd {} || exit 1\n",
                quote(&d.display().to_string())
            ));
        }
        for (k, v) in &self.env {
            s.push_str(&format!("{k}={}; export {k}\n", quote(v)));
        }
        s.push_str("exec");
        if let Some(u) = &self.user {
            let u = quote(u);
            s.push_str(&format!(
                " setpriv --reuid {u} --regid {u} --init-groups --"
            ));
        }
        s.push(' ');
        s.push_str(&quote(&self.program.display().to_string()));
        for a in &self.args {
            s.push(' ');
            s.push_str(&quote(a));
        }
        s.push_str(&format!(
            " </dev/null >>{} 2>&1\n",
            quote(&self.log.display().to_string())
        ));
        s
    }
}

/// A started server: the local child that carries it (the server itself here, the SSH
/// session on a remote host: either ends when the server does), its pid on its host, and
/// its exit status once seen.
#[derive(Debug)]
struct Running {
    child: std::process::Child,
    pid: u32,
    exited: Option<std::process::ExitStatus>,
}

impl Running {
    /// Polls the child; true while the server has not exited (a stopped one has not).
    fn poll(&mut self) -> bool {
        if self.exited.is_none()
            && let Ok(Some(st)) = self.child.try_wait()
        {
            self.exited = Some(st);
        }
        self.exited.is_none()
    }
}

/// A server process whose pid is the server's own, started, signalled and stopped through
/// its host's `Exec`: the same code here and over SSH.
#[derive(Debug)]
pub struct ManagedProcess {
    spec: ProcessSpec,
    running: Mutex<Option<Running>>,
}

impl ManagedProcess {
    /// Starts the process (not waiting for it to be ready).
    pub fn spawn(spec: ProcessSpec) -> Result<ManagedProcess, TargetError> {
        let p = ManagedProcess::new(spec);
        p.start()?;
        Ok(p)
    }

    /// The process, not started yet (`start` starts it).
    pub fn new(spec: ProcessSpec) -> ManagedProcess {
        ManagedProcess {
            spec,
            running: Mutex::new(None),
        }
    }

    pub fn spec(&self) -> &ProcessSpec {
        &self.spec
    }

    /// Where the process runs.
    pub fn exec(&self) -> &Arc<dyn Exec> {
        &self.spec.exec
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn exec_err(&self, e: ExecError) -> TargetError {
        TargetError::Node {
            node: self.spec.node.clone(),
            msg: e.to_string(),
        }
    }

    /// Starts the same command again (after a kill or an exit).
    pub fn start(&self) -> Result<(), TargetError> {
        if self.is_running() {
            return Ok(());
        }
        let mut child = self
            .spec
            .exec
            .spawn(&self.spec.script())
            .map_err(|e| self.exec_err(e))?;
        // The first line is the pid (`echo $$` before the exec).
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            // Over SSH a round trip: the runtime's other tasks go on meanwhile.
            crate::remote::blocking(|| {
                std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line)
            })
            .ok();
        }
        let Ok(pid) = line.trim().parse::<u32>() else {
            let _ = child.kill();
            let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
            return Err(TargetError::Node {
                node: self.spec.node.clone(),
                msg: format!(
                    "{} on {} did not start ({status}): {}",
                    self.spec.program.display(),
                    self.spec.exec.name(),
                    self.log_tail(5)
                ),
            });
        };
        *self.lock() = Some(Running {
            child,
            pid,
            exited: None,
        });
        Ok(())
    }

    /// The server's pid on its host while it has not been seen to exit.
    pub fn pid(&self) -> Option<u32> {
        self.lock()
            .as_ref()
            .filter(|r| r.exited.is_none())
            .map(|r| r.pid)
    }

    /// `pid` when the process runs on this machine (the ledger's local pids).
    pub fn local_pid(&self) -> Option<u32> {
        self.pid().filter(|_| self.spec.exec.is_local())
    }

    /// True while the process has not exited (a stopped process is running).
    pub fn is_running(&self) -> bool {
        self.lock().as_mut().is_some_and(Running::poll)
    }

    /// The exit status if the process has exited.
    pub fn try_exited(&mut self) -> Option<String> {
        let mut g = self.lock();
        let r = g.as_mut()?;
        r.poll();
        r.exited.map(|s| s.to_string())
    }

    /// Waits (bounded) until the process exits; its status, or `None` if it still runs
    /// after `timeout` (for one-shot tools started like servers).
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let mut g = self.lock();
                let r = g.as_mut()?;
                if !r.poll() {
                    return r.exited;
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The last `lines` lines of the process's log (on its host), for errors.
    pub fn log_tail(&self, lines: usize) -> String {
        self.spec
            .exec
            .tail(&self.spec.log.display().to_string(), lines)
    }

    /// Copies the log to `local` when the process ran on another host (best effort: a
    /// note in its place says why not).
    pub fn fetch_log(&self, local: &Path) {
        if self.spec.exec.is_local() {
            return;
        }
        if let Err(e) = self
            .spec
            .exec
            .download(&self.spec.log.display().to_string(), local)
        {
            let _ = std::fs::write(local, format!("(log not downloaded: {e})\n"));
        }
    }

    pub fn signal(&self, sig: Signal) -> Result<(), TargetError> {
        let Some(pid) = self.pid() else {
            return Err(TargetError::NotRunning(self.spec.node.clone()));
        };
        self.spec
            .exec
            .signal(pid, sig)
            .map_err(|e| self.exec_err(e))
    }

    /// The server and every descendant (servers that fork) on its host.
    pub fn tree(&self) -> Vec<u32> {
        let Some(pid) = self.pid() else {
            return Vec::new();
        };
        let mut tree = vec![pid];
        tree.extend(self.spec.exec.descendants(pid).unwrap_or_default());
        tree
    }

    /// SIGCONT + SIGKILL, then wait (bounded) until it is reaped.
    pub async fn kill(&mut self) -> Result<(), TargetError> {
        self.kill_with(&[]).await
    }

    /// Like `kill`, taking `others` on the same host down in the same instant (a
    /// server's children: a crash of the whole tree, in one round trip over SSH).
    pub async fn kill_with(&mut self, others: &[u32]) -> Result<(), TargetError> {
        let mut all: Vec<u32> = self.pid().into_iter().collect();
        all.extend_from_slice(others);
        let _ = self.spec.exec.kill_all(&all);
        self.reap(Duration::from_secs(5)).await;
        Ok(())
    }

    /// SIGCONT + SIGTERM, SIGKILL after `grace`, then reap.
    pub async fn stop(&mut self, grace: Duration) -> Result<(), TargetError> {
        let Some(pid) = self.pid() else {
            *self.lock() = None;
            return Ok(());
        };
        let _ = self.spec.exec.signal(pid, Signal::SIGCONT);
        let _ = self.spec.exec.signal(pid, Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if !self.is_running() {
                *self.lock() = None;
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.kill().await
    }

    /// Waits (bounded) until the carrying child ends, then forgets the process.
    async fn reap(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.is_running() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if let Some(mut r) = self.lock().take()
            && r.exited.is_none()
        {
            // Still there (uninterruptible sleep, or an SSH session that lingers): end
            // the local child; SIGKILL has been sent to the server.
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
    }
}

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        // No server outlives its cluster, even on a panic: continue (a stopped process
        // cannot die until continued) and kill, then reap the local child.
        if let Some(mut r) = self.lock().take() {
            if r.poll() {
                let _ = self.spec.exec.kill_all(&[r.pid]);
                if !self.spec.exec.is_local() {
                    let _ = r.child.kill();
                }
            }
            let _ = r.child.wait();
        }
    }
}

/// Polls `probe` every `every` until it returns Ok or `timeout` passes; the error names the
/// last failure.
pub async fn wait_until<F, Fut, T>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut probe: F,
) -> Result<T, TargetError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match probe().await {
            Ok(t) => return Ok(t),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(TargetError::Invalid(format!(
                "{what} not ready within {} ms: {last}",
                timeout.as_millis()
            )));
        }
        tokio::time::sleep(every).await;
    }
}

/// `wait_until` for a process that must stay up meanwhile: each poll fails with
/// "exited (status)" once `process` has exited, else asks `probe`.
pub async fn wait_until_alive<F, Fut>(
    what: &str,
    timeout: Duration,
    every: Duration,
    process: &mut ManagedProcess,
    mut probe: F,
) -> Result<(), TargetError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    wait_until(what, timeout, every, || {
        let exited = process.try_exited();
        let probed = probe();
        async move {
            if let Some(status) = exited {
                return Err(format!("exited ({status})"));
            }
            probed.await
        }
    })
    .await
}

/// Checks `base_port..` are free, or asks the kernel for free ports.
pub fn pick_ports(ids: &[NodeId], base_port: Option<u16>) -> Result<Vec<u16>, TargetError> {
    match base_port {
        Some(base) => ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let port = u16::try_from(usize::from(base) + i).map_err(|_| {
                    TargetError::Invalid(format!("base port {base} + {i} is beyond 65535"))
                })?;
                let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
                match TcpListener::bind(addr) {
                    Ok(_) => Ok(port),
                    Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                        Err(TargetError::PortInUse {
                            addr,
                            node: id.clone(),
                        })
                    }
                    Err(source) => Err(TargetError::Bind {
                        addr,
                        node: id.clone(),
                        source,
                    }),
                }
            })
            .collect(),
        None => {
            // Hold all listeners at once so the kernel hands out distinct ports.
            let listeners = ids
                .iter()
                .map(|id| {
                    let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));
                    TcpListener::bind(addr).map_err(|source| TargetError::Bind {
                        addr,
                        node: id.clone(),
                        source,
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            listeners
                .iter()
                .zip(ids)
                .map(|(l, id)| {
                    l.local_addr()
                        .map(|a| a.port())
                        .map_err(|source| TargetError::Bind {
                            addr: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)),
                            node: id.clone(),
                            source,
                        })
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_server_names_its_debian_package() {
        let e = require_binary("schism-no-such-server", "schism-pkg")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "`schism-no-such-server` not found: install the Debian package `schism-pkg` (apt-get install schism-pkg)"
        );
        assert!(require_binary("sh", "dash").is_ok());
        assert!(require_binary("/no/such/dir/etcd", "etcd-server").is_err());
    }

    #[tokio::test]
    async fn a_managed_process_is_its_own_pid_and_dies_with_its_owner() {
        let dir = tempfile::tempdir().unwrap();
        let spec = ProcessSpec {
            node: "n1".into(),
            exec: crate::remote::Local::on(None),
            program: PathBuf::from("/bin/sleep"),
            args: vec!["30".into()],
            env: vec![],
            user: None,
            log: dir.path().join("n1.log"),
            cwd: None,
        };
        let mut p = ManagedProcess::spawn(spec.clone()).unwrap();
        assert_eq!(p.local_pid(), p.pid());
        let pid = p.pid().unwrap();
        // Between fork and exec the child still shows the test's command line: wait
        // (bounded) for the exec, then it must be the server itself, not a wrapper.
        let until = Instant::now() + Duration::from_secs(5);
        let cmdline = loop {
            let c = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if c.starts_with("/bin/sleep") || Instant::now() >= until {
                break c;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        assert!(cmdline.starts_with("/bin/sleep"), "{cmdline:?}");
        p.kill().await.unwrap();
        assert!(!p.is_running());
        p.start().unwrap();
        let pid = p.pid().unwrap();
        drop(p);
        // Dropping kills and reaps it.
        let until = Instant::now() + Duration::from_secs(5);
        while proc_state(pid).is_some_and(|s| s != 'Z') && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            proc_state(pid).is_none_or(|s| s == 'Z'),
            "pid {pid} survived its ManagedProcess"
        );
    }
}
