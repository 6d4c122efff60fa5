//! Faults on hosts reached over SSH (or any `Exec`): partitions as nftables rules on each
//! host, and the ledger's record of what a run put on each host.
//!
//! `HostsNet::apply` rewrites each host's `inet schism` table in one `nft -f -`
//! transaction (the same script as `netns`: input drops of the cut peers' addresses
//! only), so traffic between database nodes is cut while the control machine, whose
//! address is never a node's, always reaches every node (Jepsen's rule). An empty cut set
//! leaves no table behind.
//!
//! `RemoteLeft` is what the ledger records per host before anything is created there
//! (the run's folder, the nodes' pids, whether rules may exist); `cleanup` removes it
//! over a fresh SSH connection: pids killed only if their command line still names the
//! run's folder, the table deleted, the folder removed.

use crate::error::NemesisError;
use crate::fault::FaultState;
use crate::nft;
use schism_targets::NodeId;
use schism_targets::remote::{Exec, HostSpec, Ssh, SshOptions, quote};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Partitions by nftables on each node's host.
#[derive(Debug)]
pub struct HostsNet {
    nodes: Vec<NodeId>,
    execs: Vec<Arc<dyn Exec>>,
    addrs: Vec<Ipv4Addr>,
    /// Per host, the script last applied successfully there (`None`: unknown), so a
    /// change that leaves a host's rules as they are costs no SSH round trip.
    applied: Mutex<Vec<Option<String>>>,
}

impl HostsNet {
    pub fn new(nodes: Vec<NodeId>, execs: Vec<Arc<dyn Exec>>, addrs: Vec<Ipv4Addr>) -> HostsNet {
        let applied = Mutex::new(vec![None; execs.len()]);
        HostsNet {
            nodes,
            execs,
            addrs,
            applied,
        }
    }

    fn addr_of(&self, node: &str) -> Option<Ipv4Addr> {
        self.nodes
            .iter()
            .position(|n| n == node)
            .map(|i| self.addrs[i])
    }

    /// Makes every host's rules match `state.cuts` (best effort: every host is tried,
    /// the first error returned).
    pub fn apply(&self, state: &FaultState) -> Result<(), NemesisError> {
        // All hosts at once: a partition is in force when the slowest host has it.
        let results: Vec<Result<(), NemesisError>> = std::thread::scope(|s| {
            let handles: Vec<_> = self
                .execs
                .iter()
                .enumerate()
                .map(|(i, exec)| {
                    let deaf: Vec<String> = state
                        .deaf_to(&self.nodes[i])
                        .iter()
                        .filter_map(|n| self.addr_of(n))
                        .map(|a| a.to_string())
                        .collect();
                    let script = nft::table_script(&deaf);
                    s.spawn(move || {
                        if self.last(i).as_deref() == Some(script.as_str()) {
                            return Ok(());
                        }
                        let result = exec
                            .run("nft -f -", Some(script.as_bytes()))
                            .map(|_| ())
                            .map_err(|e| NemesisError::Unsupported(format!("partition: {e}")));
                        self.remember(i, result.is_ok().then_some(script));
                        result
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(NemesisError::Unsupported(
                            "partition: a host's thread panicked".into(),
                        ))
                    })
                })
                .collect()
        });
        results.into_iter().find(Result::is_err).unwrap_or(Ok(()))
    }

    fn last(&self, i: usize) -> Option<String> {
        self.applied.lock().ok().and_then(|a| a[i].clone())
    }

    fn remember(&self, i: usize, script: Option<String>) {
        if let Ok(mut a) = self.applied.lock() {
            a[i] = script;
        }
    }

    /// Per node, the rules in force on its host (empty: none).
    pub fn rules(&self) -> Vec<(NodeId, String)> {
        self.nodes
            .iter()
            .zip(&self.execs)
            .map(|(n, e)| {
                let cmd = format!("nft list table inet {} 2>/dev/null || true", nft::TABLE);
                (n.clone(), e.run(&cmd, None).unwrap_or_default())
            })
            .collect()
    }
}

/// What a run put on one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteLeft {
    pub host: HostSpec,
    pub known_hosts: PathBuf,
    /// The run's folder on the host (removed by cleanup).
    pub run_dir: String,
    /// Node pids on the host.
    #[serde(default)]
    pub pids: Vec<u32>,
}

impl RemoteLeft {
    /// The cleanup script: kill the run's processes — its recorded pids, and any process
    /// whose command line names the run's folder (a server started before its pid reached
    /// the ledger: a runner killed while provisioning) —, drop the table, remove the
    /// folder. The folder's name is assembled at run time and given to `grep` as its
    /// input, so no command line of the script's (nor, on a lab, the SSH session here
    /// carrying it) ever holds it.
    pub fn script(&self) -> String {
        let dir = quote(&self.run_dir);
        let slashed = format!("{}/", self.run_dir.trim_end_matches('/'));
        let (head, tail) = slashed.split_at(slashed.len() - 1);
        let pids: Vec<String> = self.pids.iter().map(u32::to_string).collect();
        format!(
            "for p in {pids}; do if [ -r /proc/$p/cmdline ] && tr '\\0' ' ' </proc/$p/cmdline | grep -qF {dir}; then kill -CONT $p; kill -KILL $p && echo \"killed pid $p\"; fi; done\n\
             a={head}; b={tail}\n\
             for f in $(printf '%s%s\\n' \"$a\" \"$b\" | grep -alF -f - /proc/[0-9]*/cmdline 2>/dev/null); do p=${{f#/proc/}}; p=${{p%/cmdline}}; [ \"$p\" = $$ ] && continue; kill -CONT $p 2>/dev/null; kill -KILL $p 2>/dev/null && echo \"killed pid $p\"; done\n\
             nft delete table inet {table} 2>/dev/null && echo 'deleted nft table inet {table}'\n\
             if [ -d {dir} ]; then rm -rf {dir} && echo \"removed folder $(echo {dir})\"; fi\ntrue\n",
            pids = if pids.is_empty() {
                "''".to_owned()
            } else {
                pids.join(" ")
            },
            head = quote(head),
            tail = quote(tail),
            table = nft::TABLE,
        )
    }

    /// Connects (checking the recorded host key) and removes what the run left; one line
    /// per thing done.
    pub fn cleanup(&self, control_dir: &Path, log_dir: &Path) -> Vec<String> {
        let opts = SshOptions {
            known_hosts: self.known_hosts.clone(),
            accept_new_host_keys: false,
            control_dir: control_dir.to_owned(),
            log_dir: log_dir.to_owned(),
        };
        let name = self.host.name.clone();
        let result =
            Ssh::connect(self.host.clone(), opts).and_then(|ssh| ssh.run(&self.script(), None));
        match result {
            Ok(out) => out
                .lines()
                .filter(|l| !l.is_empty())
                .map(|l| format!("host {name}: {l}"))
                .collect(),
            Err(e) => vec![format!("could not clean host {name}: {e}")],
        }
    }
}

/// The cleanup script for a host whose ledger is lost: every server started from a run
/// folder under `runs_dir` (a reference node `<exe> node --config <runs_dir>/…`, an etcd
/// member `--data-dir <runs_dir>/…`, a postmaster `postgres -D <runs_dir>/…`, a Redis
/// server or sentinel `redis-server|redis-sentinel <runs_dir>/…`, a MariaDB server
/// `mariadbd --defaults-file=<runs_dir>/…`), the table, and every run folder there. The
/// patterns are assembled at run time, so the script's own command line (and, on a lab,
/// the SSH session here carrying it) never matches them.
pub fn sweep_script(runs_dir: &str) -> String {
    let dir = quote(&format!("{}/", runs_dir.trim_end_matches('/')));
    format!(
        "a='node --conf'; b='--data-di'; c='postgres -'; r='redis-'; m='--defaults-fil'\n\
         p1=\"${{a}}ig \"{dir}; p2=\"${{b}}r \"{dir}; p3=\"${{c}}D \"{dir}\n\
         p4=\"${{r}}server \"{dir}; p5=\"${{r}}sentinel \"{dir}; p6=\"${{m}}e=\"{dir}\n\
         for f in /proc/[0-9]*/cmdline; do p=${{f#/proc/}}; p=${{p%/cmdline}}; cmd=$(tr '\\0' ' ' <\"$f\" 2>/dev/null); case \"$cmd\" in *\"$p1\"*|*\"$p2\"*|*\"$p3\"*|*\"$p4\"*|*\"$p5\"*|*\"$p6\"*) kill -CONT $p 2>/dev/null; kill -KILL $p 2>/dev/null && echo \"killed pid $p\";; esac; done\n\
         nft delete table inet {table} 2>/dev/null && echo 'deleted nft table inet {table}'\n\
         for d in {dir}*; do [ -d \"$d\" ] && rm -rf \"$d\" && echo \"removed folder $d\"; done\ntrue\n",
        table = nft::TABLE,
    )
}

/// Where cleanup's SSH control sockets go (short paths).
pub fn control_dir() -> PathBuf {
    if crate::sys::is_root() {
        PathBuf::from("/run/schism/ssh")
    } else {
        std::env::temp_dir().join(format!("schism-ssh-{}", nix::unistd::geteuid()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Child, Command};
    use std::time::{Duration, Instant};

    /// A process whose command line is `sh -c 'sleep 30' <args…>`.
    fn stand_in(args: &[String]) -> Child {
        Command::new("sh")
            .args(["-c", "sleep 30"])
            .args(args)
            .spawn()
            .unwrap()
    }

    /// Whether `c` ends within 5 s (it is killed otherwise).
    fn ends(c: &mut Child) -> bool {
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if c.try_wait().unwrap().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        false
    }

    /// Runs a cleanup script here, without `nft` on its PATH (this machine's own tables
    /// are never touched by a test); its output.
    fn run_here(script: &str) -> String {
        let out = Command::new("sh")
            .args(["-c", script])
            .env("PATH", "/bin")
            .output()
            .unwrap();
        assert!(out.status.success(), "the script itself survived: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn a_hosts_cleanup_kills_what_names_the_run_folder_and_nothing_else() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().join("runs/abc");
        std::fs::create_dir_all(&run).unwrap();
        let run_dir = run.display().to_string();
        // A server whose pid never reached the ledger, and one of another run.
        let mut ours = stand_in(&["redis-server".into(), format!("{run_dir}/n1/redis.conf")]);
        let mut other = stand_in(&[
            "redis-server".into(),
            format!("{}/runs/abd/n1/redis.conf", tmp.path().display()),
        ]);
        let left = RemoteLeft {
            host: HostSpec::parse("127.0.0.1").unwrap(),
            known_hosts: tmp.path().join("known_hosts"),
            run_dir: run_dir.clone(),
            pids: Vec::new(),
        };
        let script = left.script();
        assert!(
            !script.contains(&format!("{run_dir}/")),
            "the script names the folder whole: it would match itself"
        );
        let out = run_here(&script);
        assert!(ends(&mut ours), "the unrecorded server survived: {out}");
        assert!(out.contains(&format!("killed pid {}", ours.id())), "{out}");
        assert!(!run.exists() && out.contains("removed folder"), "{out}");
        assert!(!ends_now(&mut other), "another run's server was killed");
        let _ = other.kill();
        let _ = other.wait();
    }

    /// Whether `c` has already ended.
    fn ends_now(c: &mut Child) -> bool {
        std::thread::sleep(Duration::from_millis(100));
        c.try_wait().unwrap().is_some()
    }

    #[test]
    fn the_sweep_knows_every_database_server_of_a_run_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let runs = tmp.path().join("runs");
        std::fs::create_dir_all(runs.join("lost")).unwrap();
        let r = format!("{}/lost", runs.display());
        let mut servers: Vec<Child> = [
            vec!["redis-server".to_owned(), format!("{r}/n1/redis.conf")],
            vec!["redis-sentinel".to_owned(), format!("{r}/n1/sentinel.conf")],
            vec![
                "mariadbd".to_owned(),
                format!("--defaults-file={r}/n1/my.cnf"),
            ],
            vec![
                "postgres".to_owned(),
                "-D".to_owned(),
                format!("{r}/n1/pgdata"),
            ],
            vec![
                "etcd".to_owned(),
                "--data-dir".to_owned(),
                format!("{r}/n1"),
            ],
        ]
        .iter()
        .map(|a| stand_in(a))
        .collect();
        // Not a server: it only mentions the folder.
        let mut bystander = stand_in(&["tail".to_owned(), format!("{r}/n1.log")]);
        let out = run_here(&sweep_script(&runs.display().to_string()));
        for s in &mut servers {
            assert!(ends(s), "a server survived the sweep: {out}");
        }
        assert!(!ends_now(&mut bystander), "the sweep killed a bystander");
        let _ = bystander.kill();
        let _ = bystander.wait();
        assert!(!runs.join("lost").exists(), "{out}");
    }
}
