//! MariaDB Galera (multi-primary, virtually synchronous replication) as a target.
//!
//! Provisioning follows RECIPES.md §4: one `my.cnf` per node under `data_dir/<node>/`, every
//! server started as `mariadbd --defaults-file=<that file>` (so its command line carries the
//! run folder, which the ledger's cleanup relies on), short evs timeouts (suspect 3 s) so a
//! lost member is evicted in about 3.5 s. Instead of two rsync SSTs (6–8 s each) the joiners
//! are seeded with a copy of n1's data directory taken after a clean shutdown — Galera's
//! documented "manual state transfer": the copies carry n1's `grastate.dat` (cluster uuid
//! and seqno), so n2 and n3 join with an empty IST. Provisioning is about 10 s instead of
//! 15–18 s. Servers run as root (`user = root`): runs usually live in 0700 directories
//! (temp dirs, /root) that the `mysql` user could not enter, and rsync's SST daemon drops
//! to `nobody` when started by root, so SST (needed only when IST cannot serve a rejoin)
//! uses `mariabackup` + socat, which keep the server's user. On hosts over SSH every file
//! operation and tool runs on the node's host through its `Exec`, and the seeding copy
//! travels as a gzipped tar (base64) through the control machine.
//!
//! Guarantees:
//! - a session has one connection per node, opened lazily (connect bounded by the
//!   request timeout) and dropped after any error that is not a plain SQL error;
//! - writes and reads go to the node `--reads` picks (`any`: a seeded random node per op;
//!   `leader`: n1; `follower`: n2..); every connection sets `wsrep_sync_wait = 1`, so a read
//!   first waits until its node applied everything the cluster committed before the read
//!   began (Galera's causal read; with the default 0 a read on another node can miss a
//!   write that was already acknowledged);
//! - SQL errors (certification failure / deadlock 1213, `WSREP has not yet prepared node`
//!   1047, …) and refused connections are `Fail`; a timeout or a lost connection after a
//!   write was sent (and the server's "interrupted"/"commit failed" codes) are `Unknown`;
//!   a failed read is always `Fail`;
//! - a transaction (`txn`) runs on the node `--reads` picks, as `SET TRANSACTION ISOLATION
//!   LEVEL <--isolation>`, `START TRANSACTION`, the single-op statements, `COMMIT`: errors
//!   before COMMIT was sent and a COMMIT refused by certification (1213) or a non-primary
//!   node (1047) are `Fail`; a lost connection after COMMIT was sent, a timeout then, or
//!   the interrupted/commit-failed codes are `Unknown`;
//! - kill is SIGKILL; restart starts the same command (IST rejoin), or — when no node
//!   runs — bootstraps again from the node with the highest recovered seqno
//!   (`--wsrep-recover`, then `safe_to_bootstrap: 1`);
//! - `stop` ends every server and every SST helper whose command line names this
//!   cluster's folder; dropping the cluster kills what is left. Nothing outside
//!   `data_dir` and `log_dir` is written or removed.

use crate::ReadRouting;
use crate::client::Reply;
use crate::db::{
    BoxFuture, DbCluster, DbKind, DbOptions, DbSession, DbSpec, Isolation, ManagedProcess,
    Placement, ProcessSpec, log_tail, loopback_ports, require_binary,
};
use crate::error::TargetError;
use crate::process::{put_file, read_file};
use crate::reference::NodeId;
use crate::remote::{Exec, Local, quote};
use crate::request::Request;
use crate::target::TxnReply;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use schism_history::Value;
use schism_history::txn::{MicroOp, MopF, MopValue};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The SQL account sessions use (created at install time, no password, any host: the
/// runner connects from the bridge address in netns placement).
const SQL_USER: &str = "schism";
const DB_NAME: &str = "schism";
const GALERA_LIB: &str = "/usr/lib/galera/libgalera_smm.so";
/// The longest unix socket path the kernel accepts (sun_path is 108 bytes with the NUL).
const MAX_SOCKET_PATH: usize = 107;
/// A clean shutdown of one server takes 1–2 s; after this it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// `mariadb-install-db` and `--wsrep-recover` take a few seconds each.
const TOOL_TIMEOUT: Duration = Duration::from_secs(60);
/// How often readiness is polled.
const POLL_EVERY: Duration = Duration::from_millis(200);
/// Server error codes after which a write's fate is unknown: the statement was
/// interrupted (1317), the connection killed (1927), or the commit itself failed after
/// replication may have happened (1180).
const AMBIGUOUS_WRITE_CODES: [u16; 3] = [1317, 1927, 1180];

/// Where one node listens and keeps its files.
#[derive(Debug, Clone)]
struct Node {
    id: NodeId,
    /// `data_dir/<node>`: my.cnf, data/, tmp/, the socket.
    dir: PathBuf,
    host: String,
    sql_port: u16,
    gcomm_port: u16,
    ist_port: u16,
    sst_port: u16,
    /// Where the server runs: here (inside its namespace, if any) or its host over SSH;
    /// `dir` and `log` are paths there.
    exec: Arc<dyn Exec>,
    /// The server's log on its host (`log_dir/<node>.log` here, `<run folder>/<node>.log`
    /// on a host).
    log: PathBuf,
    env: Vec<(String, String)>,
}

impl Node {
    fn cnf(&self) -> PathBuf {
        self.dir.join("my.cnf")
    }
    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }
    fn grastate(&self) -> PathBuf {
        self.data().join("grastate.dat")
    }

    /// Runs `script` on the node's host (a file operation there).
    fn sh(&self, script: &str, stdin: Option<&[u8]>) -> Result<String, TargetError> {
        self.exec
            .run(script, stdin)
            .map_err(|e| db_err(format!("{}: {e}", self.id)))
    }

    /// A text file on the node's host ("" when it does not exist).
    fn read(&self, path: &Path) -> String {
        read_file(&*self.exec, path)
    }

    /// Writes a text file on the node's host.
    fn write(&self, path: &Path, text: &str) -> Result<(), TargetError> {
        put_file(&*self.exec, path, text)
    }

    /// The last lines of the server's log.
    fn log_tail(&self, lines: usize) -> String {
        self.exec.tail(&self.log.display().to_string(), lines)
    }
}

/// One address a session connects to.
#[derive(Debug, Clone)]
struct Target {
    id: NodeId,
    host: String,
    port: u16,
}

/// A 3-node (or n-node) Galera cluster provisioned under the run folder, or attached to.
#[derive(Debug)]
pub struct GaleraCluster {
    nodes: Vec<Node>,
    procs: Vec<Option<ManagedProcess>>,
    mariadbd: PathBuf,
    log_dir: PathBuf,
    options: DbOptions,
    startup_timeout: Duration,
    /// Attached with `--endpoints`: nothing to start or kill.
    attached: Option<Vec<Target>>,
    /// `stop` ran (and swept the helpers): dropping has nothing left to do.
    stopped: bool,
}

impl GaleraCluster {
    pub async fn open(spec: DbSpec) -> Result<Box<dyn DbCluster>, TargetError> {
        if let Some(eps) = &spec.endpoints {
            return Ok(Box::new(Self::attach(&spec, eps).await?));
        }
        let mut c = Self::plan(&spec)?;
        c.provision().await?;
        Ok(Box::new(c))
    }

    /// `--endpoints host:port,…`: an existing cluster with a passwordless `schism` user.
    async fn attach(spec: &DbSpec, eps: &[String]) -> Result<GaleraCluster, TargetError> {
        let mut targets = Vec::new();
        for (i, ep) in eps.iter().enumerate() {
            let (host, port) = ep
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
                .ok_or_else(|| {
                    TargetError::Invalid(format!(
                        "endpoint {ep:?} is not host:port (e.g. 10.0.0.1:3306)"
                    ))
                })?;
            targets.push(Target {
                id: format!("n{}", i + 1),
                host,
                port,
            });
        }
        let first = &targets[0];
        // No database named: setup_sql creates it on a cluster that lacks it.
        let mut conn = connect_to(first, spec.options.timeout, false, None)
            .await
            .map_err(|e| db_err(format!("cannot connect to {}:{} as user `{SQL_USER}`: {e}; create it (CREATE USER schism@'%'; GRANT ALL ON schism.* TO schism@'%')", first.host, first.port)))?;
        for sql in setup_sql(false) {
            conn.query_drop(sql)
                .await
                .map_err(|e| db_err(format!("setting up {DB_NAME}.kv: {e}")))?;
        }
        Ok(GaleraCluster {
            nodes: Vec::new(),
            procs: Vec::new(),
            mariadbd: PathBuf::new(),
            log_dir: spec.log_dir.clone(),
            options: spec.options.clone(),
            startup_timeout: spec.startup_timeout,
            attached: Some(targets),
            stopped: false,
        })
    }

    /// Checks the binaries and decides every node's addresses and folders.
    fn plan(spec: &DbSpec) -> Result<GaleraCluster, TargetError> {
        // On hosts over SSH the binaries are the hosts' own, found on their PATH (the
        // preflight checked they are there; the provider library is checked below).
        let remote = matches!(spec.placement, Placement::Hosts(_));
        let mariadbd = if remote {
            PathBuf::from("mariadbd")
        } else {
            require_binary("mariadb-install-db", "mariadb-server")?;
            require_binary(GALERA_LIB, "galera-4")?;
            require_binary("mariadbd", "mariadb-server")?
        };
        let n = spec.nodes;
        if n == 0 {
            return Err(TargetError::Invalid("galera needs at least 1 node".into()));
        }
        let ids = spec.node_ids();
        let mut nodes = Vec::with_capacity(n);
        match &spec.placement {
            Placement::Loopback { base_port } => {
                // Four ports per node (SQL, gcomm, IST, SST): they all share 127.0.0.1.
                let ports = loopback_ports(4 * n, *base_port)?;
                for (i, id) in ids.iter().enumerate() {
                    nodes.push(Node {
                        id: id.clone(),
                        dir: spec.data_dir.join(id),
                        host: "127.0.0.1".into(),
                        sql_port: ports[4 * i],
                        gcomm_port: ports[4 * i + 1],
                        ist_port: ports[4 * i + 2],
                        sst_port: ports[4 * i + 3],
                        exec: Local::on(None),
                        log: spec.log_dir.join(format!("{id}.log")),
                        env: spec.env_of(i).to_vec(),
                    });
                }
            }
            Placement::Netns { namespaces, addrs } => {
                if namespaces.len() < n || addrs.len() < n {
                    return Err(TargetError::Invalid(format!(
                        "netns placement has {} namespaces and {} addresses for {n} nodes",
                        namespaces.len(),
                        addrs.len()
                    )));
                }
                for (i, id) in ids.iter().enumerate() {
                    nodes.push(Node {
                        id: id.clone(),
                        dir: spec.data_dir.join(id),
                        host: addrs[i].to_string(),
                        sql_port: 3306,
                        gcomm_port: 4567,
                        ist_port: 4568,
                        sst_port: 4444,
                        exec: Local::on(Some(namespaces[i].clone())),
                        log: spec.log_dir.join(format!("{id}.log")),
                        env: spec.env_of(i).to_vec(),
                    });
                }
            }
            Placement::Hosts(h) => {
                if h.execs.len() < n || h.addrs.len() < n || h.run_dirs.len() < n {
                    return Err(TargetError::Invalid(format!(
                        "galera: {n} nodes need {n} hosts, got {}",
                        h.execs.len()
                    )));
                }
                for (i, id) in ids.iter().enumerate() {
                    let dir = PathBuf::from(&h.run_dirs[i]);
                    nodes.push(Node {
                        id: id.clone(),
                        dir: dir.join(id),
                        host: h.addrs[i].to_string(),
                        sql_port: 3306,
                        gcomm_port: 4567,
                        ist_port: 4568,
                        sst_port: 4444,
                        exec: h.execs[i].clone(),
                        log: dir.join(format!("{id}.log")),
                        env: spec.env_of(i).to_vec(),
                    });
                }
            }
        }
        for node in &nodes {
            let sock = node.dir.join("mysqld.sock");
            if sock.as_os_str().len() > MAX_SOCKET_PATH {
                return Err(TargetError::Invalid(format!(
                    "{} is longer than a unix socket path may be ({MAX_SOCKET_PATH} bytes): pass a shorter --data-dir or --store",
                    sock.display()
                )));
            }
        }
        Ok(GaleraCluster {
            procs: nodes.iter().map(|_| None).collect(),
            nodes,
            mariadbd,
            log_dir: spec.log_dir.clone(),
            options: spec.options.clone(),
            startup_timeout: spec.startup_timeout,
            attached: None,
            stopped: false,
        })
    }

    /// Install n1, bootstrap it once (so it has a cluster uuid), stop it cleanly, seed the
    /// other data directories with a copy, then bootstrap n1 again and join the others.
    async fn provision(&mut self) -> Result<(), TargetError> {
        let deadline = Instant::now() + self.startup_timeout;
        std::fs::create_dir_all(&self.log_dir).map_err(|source| TargetError::LogDir {
            path: self.log_dir.clone(),
            source,
        })?;
        for node in &self.nodes {
            if node.exec.is_local() {
                for d in [node.data(), node.dir.join("tmp")] {
                    std::fs::create_dir_all(&d)
                        .map_err(|source| TargetError::DataDir { path: d, source })?;
                }
            } else {
                // The provider library is a file, not a command: checked here, per host.
                let out = node.sh(
                    &format!(
                        "mkdir -p {} {}; [ -f {GALERA_LIB} ] || echo missing",
                        q(&node.data()),
                        q(&node.dir.join("tmp"))
                    ),
                    None,
                )?;
                if out.contains("missing") {
                    return Err(TargetError::MissingBinary {
                        binary: format!("{GALERA_LIB} on host {}", node.exec.name()),
                        package: "galera-4".into(),
                    });
                }
            }
            let cnf = render_cnf(node, &self.nodes);
            node.write(&node.cnf(), &cnf)?;
        }
        self.install_first().await?;
        // First start: n1 creates the cluster's uuid and writes it to grastate.dat on a
        // clean shutdown.
        self.start(0, true)?;
        self.wait_synced(0, deadline).await?;
        if self.nodes.len() > 1 {
            if let Some(mut p) = self.procs[0].take() {
                p.stop(Duration::from_secs(30)).await?;
            }
            // Packed once for every joiner on another host.
            let mut packed = None;
            for i in 1..self.nodes.len() {
                let (from, to) = (&self.nodes[0], &self.nodes[i]);
                if from.exec.is_local() && to.exec.is_local() {
                    copy_data_dir(&from.data(), &to.data())?;
                } else {
                    if packed.is_none() {
                        packed = Some(pack_data_dir(from)?);
                    }
                    unpack_data_dir(to, packed.as_deref().unwrap_or_default())?;
                }
                set_safe_to_bootstrap(to, false)?;
            }
            self.start(0, true)?;
            self.wait_synced(0, deadline).await?;
            // One at a time: a donor serves one state transfer at a time, and joining
            // members change the view the next one joins.
            for i in 1..self.nodes.len() {
                self.start(i, false)?;
                self.wait_synced(i, deadline).await?;
            }
        }
        Ok(())
    }

    /// `mariadb-install-db` for n1, with the schism user, database and table.
    async fn install_first(&self) -> Result<(), TargetError> {
        let n1 = &self.nodes[0];
        let extra = n1.dir.join("setup.sql");
        // Bootstrap mode runs with grant tables off; FLUSH PRIVILEGES turns them on so that
        // CREATE USER works.
        let mut sql = String::from("FLUSH PRIVILEGES;\n");
        for s in setup_sql(true) {
            sql.push_str(&s);
            sql.push_str(";\n");
        }
        n1.write(&extra, &sql)?;
        let log = n1.dir.join("install.log");
        let args = vec![
            format!("--defaults-file={}", n1.cnf().display()),
            "--user=root".into(),
            "--auth-root-authentication-method=normal".into(),
            "--skip-test-db".into(),
            format!("--extra-file={}", extra.display()),
        ];
        run_tool(n1, "mariadb-install-db", &args, &log).await
    }

    /// Starts node `i`'s server (`--wsrep-new-cluster` when bootstrapping).
    fn start(&mut self, i: usize, bootstrap: bool) -> Result<(), TargetError> {
        let node = &self.nodes[i];
        let mut args = vec![format!("--defaults-file={}", node.cnf().display())];
        if bootstrap {
            args.push("--wsrep-new-cluster".into());
        }
        let p = ManagedProcess::spawn(ProcessSpec {
            node: node.id.clone(),
            program: self.mariadbd.clone(),
            args,
            env: node.env.clone(),
            exec: node.exec.clone(),
            user: None,
            log: node.log.clone(),
            cwd: Some(node.dir.clone()),
        })?;
        self.procs[i] = Some(p);
        Ok(())
    }

    fn log_of(&self, i: usize) -> PathBuf {
        self.nodes[i].log.clone()
    }

    /// Polls node `i` until it says `Synced`; fails early when its server exits.
    async fn wait_synced(&mut self, i: usize, deadline: Instant) -> Result<(), TargetError> {
        let target = self.target(i);
        loop {
            if let Some(p) = self.procs[i].as_mut()
                && let Some(status) = p.try_exited()
            {
                self.procs[i] = None;
                return Err(TargetError::NodeExited {
                    node: target.id.clone(),
                    status,
                    log: self.log_of(i),
                    tail: self.nodes[i].log_tail(5),
                });
            }
            let last = match state_comment(&target).await {
                Ok(s) if s == "Synced" => return Ok(()),
                Ok(s) => format!("wsrep_local_state_comment = {s}"),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(TargetError::StartupTimeout {
                    node: target.id.clone(),
                    timeout_ms: self.startup_timeout.as_millis() as u64,
                    last_error: last,
                    log: self.log_of(i),
                });
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    fn target(&self, i: usize) -> Target {
        let n = &self.nodes[i];
        Target {
            id: n.id.clone(),
            host: n.host.clone(),
            port: n.sql_port,
        }
    }

    fn targets(&self) -> Vec<Target> {
        match &self.attached {
            Some(t) => t.clone(),
            None => (0..self.nodes.len()).map(|i| self.target(i)).collect(),
        }
    }

    fn index(&self, node: &str) -> Result<usize, TargetError> {
        self.nodes
            .iter()
            .position(|n| n.id == node)
            .ok_or_else(|| TargetError::UnknownNode(node.to_owned()))
    }

    fn running(&self, i: usize) -> bool {
        self.procs[i]
            .as_ref()
            .is_some_and(ManagedProcess::is_running)
    }

    /// The seqno a stopped node's data holds: grastate.dat's, or — after a crash, when it
    /// says -1 — the one `--wsrep-recover` finds in InnoDB.
    async fn recovered_seqno(&self, i: usize) -> Result<i64, TargetError> {
        let node = &self.nodes[i];
        let text = node.read(&node.grastate());
        if let Some(s) = grastate_seqno(&text)
            && s >= 0
        {
            return Ok(s);
        }
        let log = node.dir.join("recover.log");
        node.sh(&format!("rm -f {}", q(&log)), None)?;
        let args = vec![
            format!("--defaults-file={}", node.cnf().display()),
            "--wsrep-recover".into(),
            format!("--log-error={}", log.display()),
        ];
        let program = self.mariadbd.display().to_string();
        run_tool(node, &program, &args, &node.dir.join("recover.out")).await?;
        let out = node.read(&log);
        recovered_position(&out).ok_or_else(|| {
            db_err(format!(
                "{}: --wsrep-recover found no position; see {}",
                node.id,
                log.display()
            ))
        })
    }

    async fn restart_node(&mut self, i: usize) -> Result<(), TargetError> {
        if self.running(i) {
            return Ok(());
        }
        let deadline = Instant::now() + self.startup_timeout;
        let others = (0..self.nodes.len()).any(|j| j != i && self.running(j));
        if others {
            self.start(i, false)?;
            return self.wait_synced(i, deadline).await;
        }
        // No member runs: the cluster must be bootstrapped again, from the most advanced
        // stopped node (ties go to the node asked for), or committed writes are lost.
        let mut best = (i, self.recovered_seqno(i).await?);
        for j in 0..self.nodes.len() {
            if j != i {
                let s = self.recovered_seqno(j).await?;
                if s > best.1 {
                    best = (j, s);
                }
            }
        }
        set_safe_to_bootstrap(&self.nodes[best.0], true)?;
        self.start(best.0, true)?;
        self.wait_synced(best.0, deadline).await?;
        if best.0 != i {
            self.start(i, false)?;
            self.wait_synced(i, deadline).await?;
        }
        Ok(())
    }

    /// SIGKILLs processes (SST scripts, socat, mariabackup) left behind by servers that
    /// died: those whose command line names the folder of node `only` (all nodes when
    /// None). Per node, so that killing n3 leaves n1's donor script for n2 alone.
    fn signal(&self, node: &str, sig: Signal) -> Result<(), TargetError> {
        let i = self.index(node)?;
        // A server that does not run is left alone.
        match self.procs[i].as_ref().filter(|p| p.pid().is_some()) {
            Some(p) => p.signal(sig),
            None => Ok(()),
        }
    }

    fn kill_helpers(&self, only: Option<usize>) {
        if self.attached.is_some() {
            return;
        }
        let remote: Vec<&Node> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, n)| only.is_none_or(|o| o == *i) && !n.exec.is_local())
            .map(|(_, n)| n)
            .collect();
        for n in remote {
            let servers: Vec<u32> = self
                .procs
                .iter()
                .flatten()
                .filter_map(ManagedProcess::pid)
                .collect();
            let _ = n.exec.run(&helpers_script(&n.dir, &servers), None);
        }
        let needles: Vec<String> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, n)| only.is_none_or(|o| o == *i) && n.exec.is_local())
            .map(|(_, n)| format!("{}/", n.dir.display()))
            .collect();
        if needles.is_empty() {
            return;
        }
        let servers: Vec<u32> = self.pids();
        let me = std::process::id();
        let Ok(rd) = std::fs::read_dir("/proc") else {
            return;
        };
        for entry in rd.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if pid == me || servers.contains(&pid) {
                continue;
            }
            let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let cmd = String::from_utf8_lossy(&cmd);
            if needles.iter().any(|n| cmd.contains(n.as_str())) {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
        }
    }
}

impl DbCluster for GaleraCluster {
    fn kind(&self) -> crate::target::TargetKind {
        DbKind::Galera.into()
    }

    fn node_ids(&self) -> Vec<NodeId> {
        self.targets().into_iter().map(|t| t.id).collect()
    }

    fn describe(&self) -> String {
        let nodes: Vec<String> = self
            .targets()
            .iter()
            .map(|t| format!("{} at {}:{}", t.id, t.host, t.port))
            .collect();
        format!(
            "multi-primary, {}; reads and writes to {} node, wsrep_sync_wait = 1",
            nodes.join(", "),
            match self.options.reads {
                ReadRouting::Leader => "the n1",
                ReadRouting::Follower => "a random non-n1",
                _ => "a random",
            }
        )
    }

    fn managed(&self) -> bool {
        self.attached.is_none()
    }

    fn pids(&self) -> Vec<u32> {
        self.procs
            .iter()
            .flatten()
            .filter(|p| p.is_running())
            .filter_map(ManagedProcess::local_pid)
            .collect()
    }

    /// Servers on hosts over SSH: node i's on host i.
    fn remote_pids(&self) -> Vec<(usize, u32)> {
        self.procs
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let p = p.as_ref()?;
                p.local_pid().is_none().then_some((i, p.pid()?))
            })
            .collect()
    }

    /// SIGSTOP through the server's host (here or over SSH), settled; a server that
    /// does not run is left alone.
    fn pause(&mut self, node: &str) -> Result<(), TargetError> {
        self.signal(node, Signal::SIGSTOP)
    }

    fn resume(&mut self, node: &str) -> Result<(), TargetError> {
        self.signal(node, Signal::SIGCONT)
    }

    fn pid(&self, node: &str) -> Option<u32> {
        let i = self.index(node).ok()?;
        self.procs[i].as_ref().filter(|p| p.is_running())?.pid()
    }

    fn is_running(&self, node: &str) -> bool {
        self.index(node).is_ok_and(|i| self.running(i))
    }

    fn kill<'a>(&'a mut self, node: &'a str) -> BoxFuture<'a, Result<(), TargetError>> {
        Box::pin(async move {
            let i = self.index(node)?;
            if let Some(mut p) = self.procs[i].take() {
                p.kill().await?;
            }
            // An SST in flight leaves its script and streamer behind; they die with it.
            self.kill_helpers(Some(i));
            Ok(())
        })
    }

    fn restart<'a>(&'a mut self, node: &'a str) -> BoxFuture<'a, Result<(), TargetError>> {
        Box::pin(async move {
            let i = self.index(node)?;
            self.restart_node(i).await
        })
    }

    /// Every member accepts writes; the node `--reads leader` routes to (n1) is reported
    /// while it runs, so "leader"-targeted faults hit the node that serves those runs.
    fn leader(&self) -> BoxFuture<'_, Option<NodeId>> {
        Box::pin(async move {
            match &self.attached {
                Some(t) => t.first().map(|t| t.id.clone()),
                None => self.running(0).then(|| self.nodes[0].id.clone()),
            }
        })
    }

    fn session(&self, seed: u64) -> Box<dyn DbSession> {
        let targets = Arc::new(self.targets());
        Box::new(GaleraSession {
            conns: targets.iter().map(|_| None).collect(),
            targets,
            rng: ChaCha8Rng::seed_from_u64(seed),
            routing: self.options.reads,
            timeout: self.options.timeout,
            isolation: self.options.isolation.unwrap_or(Isolation::RepeatableRead),
        })
    }

    fn stop(&mut self) -> BoxFuture<'_, Result<(), TargetError>> {
        Box::pin(async move {
            // All at once: a member that stays alone may wait for its peers otherwise.
            let mut set = tokio::task::JoinSet::new();
            for (p, node) in self.procs.iter_mut().zip(&self.nodes) {
                if let Some(mut p) = p.take() {
                    // A server on another host: its log comes into the run's folder.
                    let local = self.log_dir.join(format!("{}.log", node.id));
                    set.spawn(async move {
                        let stopped = p.stop(STOP_GRACE).await;
                        p.fetch_log(&local);
                        stopped
                    });
                }
            }
            let mut first_err = None;
            while let Some(r) = set.join_next().await {
                if let Ok(Err(e)) = r
                    && first_err.is_none()
                {
                    first_err = Some(e);
                }
            }
            self.kill_helpers(None);
            self.stopped = true;
            first_err.map_or(Ok(()), Err)
        })
    }
}

impl Drop for GaleraCluster {
    fn drop(&mut self) {
        // Servers die with their ManagedProcess; their SST helpers are found by path.
        for p in self.procs.iter_mut() {
            drop(p.take());
        }
        if !self.stopped {
            self.kill_helpers(None);
        }
    }
}

/// One worker's connections: one per node, opened on first use.
struct GaleraSession {
    targets: Arc<Vec<Target>>,
    conns: Vec<Option<Conn>>,
    rng: ChaCha8Rng,
    routing: ReadRouting,
    timeout: Duration,
    /// The level of every transaction (`--isolation`).
    isolation: Isolation,
}

/// What one statement came back with.
enum Outcome {
    Done(Value),
    /// The server refused it (a definite SQL error): the connection stays usable.
    Refused(mysql_async::ServerError),
    /// The connection broke.
    Broken(String),
}

impl GaleraSession {
    /// Node `i`'s connection, opened if there is none (single ops and transactions alike).
    async fn connect(&mut self, i: usize) -> Result<(), String> {
        if self.conns[i].is_none() {
            self.conns[i] = Some(connect(&self.targets[i], self.timeout, true).await?);
        }
        Ok(())
    }

    fn pick(&mut self) -> usize {
        let n = self.targets.len();
        match self.routing {
            ReadRouting::Leader => 0,
            ReadRouting::Follower if n > 1 => 1 + self.rng.random_range(0..n - 1),
            _ => self.rng.random_range(0..n),
        }
    }

    async fn run(&mut self, req: Request) -> Reply {
        let sql = match statement(&req) {
            Some(s) => s,
            None => {
                return Reply::Fail {
                    node: None,
                    error: format!("galera: {} is not supported", req.f()),
                };
            }
        };
        let is_write = req.is_write();
        let i = self.pick();
        let node = self.targets[i].id.clone();
        let started = Instant::now();
        // Nothing was sent: certainly did not happen.
        if let Err(e) = self.connect(i).await {
            return Reply::Fail {
                node: Some(node),
                error: format!("connect: {e}"),
            };
        }
        let left = self.timeout.saturating_sub(started.elapsed());
        let Some(conn) = self.conns[i].as_mut() else {
            return Reply::Fail {
                node: Some(node),
                error: "no connection".into(),
            };
        };
        let outcome = match tokio::time::timeout(left, execute(conn, &req, &sql)).await {
            Ok(o) => o,
            Err(_) => Outcome::Broken(format!("timed out after {} ms", self.timeout.as_millis())),
        };
        match outcome {
            Outcome::Done(value) => Reply::Ok {
                value,
                node,
                meta: None,
                siblings: None,
            },
            Outcome::Refused(e) => {
                let error = format!("{} ({}): {}", e.code, e.state, e.message);
                let ambiguous = AMBIGUOUS_WRITE_CODES.contains(&e.code);
                if ambiguous && is_write {
                    self.conns[i] = None;
                }
                Reply::uncertain(ambiguous, is_write, Some(node), error)
            }
            Outcome::Broken(error) => {
                // A connection in an unknown state is never reused.
                self.conns[i] = None;
                Reply::uncertain(true, is_write, Some(node), error)
            }
        }
    }
}

/// Why a transaction stopped short of a certain commit.
enum TxnStop {
    /// The server refused a statement (before COMMIT) or the COMMIT (`at_commit`).
    Refused {
        e: mysql_async::ServerError,
        at_commit: bool,
    },
    /// The connection broke (or answered nonsense).
    Broken { error: String, at_commit: bool },
}

impl TxnStop {
    fn of(e: mysql_async::Error, at_commit: bool) -> TxnStop {
        match e {
            mysql_async::Error::Server(e) => TxnStop::Refused { e, at_commit },
            e => TxnStop::Broken {
                error: e.to_string(),
                at_commit,
            },
        }
    }
}

/// Runs `mops` in one InnoDB transaction at `level`: `SET TRANSACTION ISOLATION LEVEL …`,
/// `START TRANSACTION`, the single-op statements (an append rewrites the row's JSON list
/// in place, a write replaces it, a read selects it), `COMMIT`. `committing` is set just
/// before COMMIT is sent.
async fn exec_txn(
    conn: &mut Conn,
    level: Isolation,
    mut mops: Vec<MicroOp>,
    committing: &std::sync::atomic::AtomicBool,
) -> Result<Vec<MicroOp>, TxnStop> {
    let before = |e| TxnStop::of(e, false);
    conn.query_drop(format!("SET TRANSACTION ISOLATION LEVEL {}", level.sql()))
        .await
        .map_err(before)?;
    conn.query_drop("START TRANSACTION").await.map_err(before)?;
    for m in &mut mops {
        let req = match (m.f, &m.value) {
            (MopF::Read, _) => Request::Read { key: m.key },
            (MopF::Append, MopValue::Int(v)) => Request::Append {
                key: m.key,
                value: *v,
            },
            (MopF::Write, MopValue::Int(v)) => Request::Write {
                key: m.key,
                value: *v,
            },
            // parse_txn admits no other shape.
            _ => continue,
        };
        let Some(sql) = statement(&req) else { continue };
        if m.f != MopF::Read {
            conn.query_drop(sql).await.map_err(before)?;
            continue;
        }
        let text = conn.query_first::<String, _>(sql).await.map_err(before)?;
        m.value = match text.map(|t| parse_value(&t)) {
            None => MopValue::Nil,
            Some(Ok(Value::List(xs))) => MopValue::List(xs.to_vec()),
            Some(Ok(Value::Int(x))) => MopValue::Int(x),
            Some(Ok(other)) => {
                return Err(TxnStop::Broken {
                    error: format!("key {} holds {other}", m.key),
                    at_commit: false,
                });
            }
            Some(Err(error)) => {
                return Err(TxnStop::Broken {
                    error,
                    at_commit: false,
                });
            }
        };
    }
    committing.store(true, std::sync::atomic::Ordering::SeqCst);
    conn.query_drop("COMMIT")
        .await
        .map_err(|e| TxnStop::of(e, true))?;
    Ok(mops)
}

impl GaleraSession {
    /// One transaction on the node `--reads` picks (Galera is multi-primary: `any` spreads
    /// transactions over every node, which is where certification conflicts show). Any
    /// error before COMMIT was sent is `Fail` (the transaction is rolled back); COMMIT
    /// refused by certification (1213 deadlock, 40001) or by a non-primary node (1047) is
    /// `Fail`; a lost connection, a timeout after COMMIT was sent, or the server's
    /// interrupted/commit-failed codes are `Unknown`. The whole transaction gets
    /// `--client-timeout`.
    async fn run_txn(&mut self, mops: Vec<MicroOp>) -> TxnReply {
        let i = self.pick();
        let node = self.targets[i].id.clone();
        let started = Instant::now();
        if let Err(e) = self.connect(i).await {
            return TxnReply::Fail {
                error: format!("{node}: connect: {e}"),
            };
        }
        let left = self.timeout.saturating_sub(started.elapsed());
        let Some(conn) = self.conns[i].as_mut() else {
            return TxnReply::Fail {
                error: format!("{node}: no connection"),
            };
        };
        let committing = std::sync::atomic::AtomicBool::new(false);
        let outcome =
            tokio::time::timeout(left, exec_txn(conn, self.isolation, mops, &committing)).await;
        let (error, unknown, keep) = match outcome {
            Ok(Ok(mops)) => return TxnReply::Ok(mops),
            Ok(Err(TxnStop::Refused { e, at_commit })) => {
                let error = format!("{} ({}): {}", e.code, e.state, e.message);
                let ambiguous = at_commit && AMBIGUOUS_WRITE_CODES.contains(&e.code);
                // A refused statement may leave the transaction open: roll it back.
                let rolled = !ambiguous
                    && tokio::time::timeout(self.timeout, conn.query_drop("ROLLBACK"))
                        .await
                        .is_ok_and(|r| r.is_ok());
                (error, ambiguous, rolled)
            }
            Ok(Err(TxnStop::Broken { error, at_commit })) => (error, at_commit, false),
            Err(_) => (
                format!("timed out after {} ms", self.timeout.as_millis()),
                committing.load(std::sync::atomic::Ordering::SeqCst),
                false,
            ),
        };
        if !keep {
            // A connection in an unknown state is never reused; closing it rolls back
            // whatever it left open.
            self.conns[i] = None;
        }
        TxnReply::not_committed(unknown, format!("{node}: {error}"))
    }
}

impl DbSession for GaleraSession {
    fn invoke(&mut self, req: Request) -> BoxFuture<'_, Reply> {
        Box::pin(self.run(req))
    }

    fn txn(&mut self, mops: Vec<MicroOp>) -> BoxFuture<'_, TxnReply> {
        Box::pin(self.run_txn(mops))
    }
}

/// The one statement for a request (values are integers, so formatting them in is safe),
/// or None when unsupported. Appends keep a JSON array (`[1,2]`), registers a bare integer,
/// so a read tells the two apart.
fn statement(req: &Request) -> Option<String> {
    match *req {
        Request::Read { key } => Some(format!("SELECT v FROM kv WHERE k = {key}")),
        Request::Write { key, value } => Some(format!(
            "INSERT INTO kv (k, v) VALUES ({key}, '{value}') ON DUPLICATE KEY UPDATE v = VALUES(v)"
        )),
        Request::Append { key, value } => Some(format!(
            "INSERT INTO kv (k, v) VALUES ({key}, '[{value}]') \
             ON DUPLICATE KEY UPDATE v = CONCAT(LEFT(v, CHAR_LENGTH(v) - 1), ',', {value}, ']')"
        )),
        _ => None,
    }
}

async fn execute(conn: &mut Conn, req: &Request, sql: &str) -> Outcome {
    let r = if matches!(req, Request::Read { .. }) {
        conn.query_first::<String, _>(sql)
            .await
            .map(|v| v.map_or(Ok(Value::Null), |s| parse_value(&s)))
    } else {
        conn.query_drop(sql).await.map(|()| Ok(Value::Null))
    };
    match r {
        Ok(Ok(v)) => Outcome::Done(v),
        Ok(Err(e)) => Outcome::Refused(mysql_async::ServerError {
            code: 0,
            message: e,
            state: "schism".into(),
        }),
        Err(mysql_async::Error::Server(e)) => Outcome::Refused(e),
        Err(e) => Outcome::Broken(e.to_string()),
    }
}

/// `[1,2,3]` → List, `7` → Int.
fn parse_value(s: &str) -> Result<Value, String> {
    let s = s.trim();
    if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        inner
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(|p| p.trim().parse::<i64>())
            .collect::<Result<Vec<_>, _>>()
            .map(Value::list)
            .map_err(|e| format!("unreadable list {s:?}: {e}"))
    } else {
        s.parse::<i64>()
            .map(Value::Int)
            .map_err(|e| format!("unreadable value {s:?}: {e}"))
    }
}

/// Opens one connection to the test database (bounded by `timeout`); `causal` sets
/// `wsrep_sync_wait = 1`.
async fn connect(t: &Target, timeout: Duration, causal: bool) -> Result<Conn, String> {
    connect_to(t, timeout, causal, Some(DB_NAME)).await
}

/// Opens one connection, to database `db` or to none (before the database exists: an
/// attached cluster may not have it yet).
async fn connect_to(
    t: &Target,
    timeout: Duration,
    causal: bool,
    db: Option<&str>,
) -> Result<Conn, String> {
    let mut init = Vec::new();
    if causal {
        init.push("SET SESSION wsrep_sync_wait = 1".to_owned());
    }
    let opts = OptsBuilder::default()
        .ip_or_hostname(t.host.clone())
        .tcp_port(t.port)
        .user(Some(SQL_USER))
        .db_name(db)
        // Never switch to the unix socket: every client path goes over the network.
        .prefer_socket(false)
        .init(init);
    match tokio::time::timeout(timeout, Conn::new(opts)).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no connection within {} ms", timeout.as_millis())),
    }
}

/// `wsrep_local_state_comment` of one node (one short-lived connection).
async fn state_comment(t: &Target) -> Result<String, String> {
    let mut conn = connect(t, Duration::from_secs(2), false).await?;
    let row = tokio::time::timeout(
        Duration::from_secs(2),
        conn.query_first::<(String, String), _>("SHOW STATUS LIKE 'wsrep_local_state_comment'"),
    )
    .await
    .map_err(|_| "status query timed out".to_owned())?
    .map_err(|e| e.to_string())?;
    let _ = tokio::time::timeout(Duration::from_secs(1), conn.disconnect()).await;
    row.map(|(_, v)| v)
        .ok_or_else(|| "no wsrep status (is wsrep on?)".into())
}

/// The statements that create the user (install only), database and table.
fn setup_sql(with_user: bool) -> Vec<String> {
    let mut v = Vec::new();
    if with_user {
        v.push(format!("CREATE USER '{SQL_USER}'@'%' IDENTIFIED BY ''"));
        v.push(format!("GRANT ALL ON *.* TO '{SQL_USER}'@'%'"));
    }
    v.push(format!("CREATE DATABASE IF NOT EXISTS {DB_NAME}"));
    v.push(format!(
        "CREATE TABLE IF NOT EXISTS {DB_NAME}.kv (k BIGINT PRIMARY KEY, v TEXT NOT NULL) ENGINE=InnoDB"
    ));
    v
}

/// One node's my.cnf.
fn render_cnf(node: &Node, all: &[Node]) -> String {
    let members: Vec<String> = all
        .iter()
        .map(|n| format!("{}:{}", n.host, n.gcomm_port))
        .collect();
    let d = node.dir.display();
    let h = &node.host;
    format!(
        "# Written by schism for node {id}; started as mariadbd --defaults-file=<this file>.
[mysqld]
# root: run folders are often 0700 (temp dirs, /root) and the mysql user could not enter them.
user = root
datadir = {d}/data
tmpdir = {d}/tmp
socket = {d}/mysqld.sock
pid-file = {d}/mysqld.pid
bind-address = {h}
port = {sql}
skip-name-resolve
performance_schema = OFF
binlog_format = ROW
default_storage_engine = InnoDB
innodb_autoinc_lock_mode = 2
innodb_buffer_pool_size = 64M
innodb_log_file_size = 16M
innodb_flush_log_at_trx_commit = 2
wsrep_on = ON
wsrep_provider = {lib}
wsrep_cluster_name = schism
wsrep_node_name = {id}
wsrep_cluster_address = gcomm://{members}
wsrep_node_address = {h}:{gcomm}
wsrep_node_incoming_address = {h}:{sql}
# Short evs timeouts (RECIPES §4): a silent member is evicted after about 3.5 s.
wsrep_provider_options = \"gmcast.listen_addr=tcp://{h}:{gcomm};ist.recv_addr={h}:{ist};gcache.size=64M;evs.suspect_timeout=PT3S;evs.inactive_timeout=PT6S;evs.install_timeout=PT6S\"
# mariabackup keeps the server's user; rsync's daemon would drop from root to nobody.
wsrep_sst_method = mariabackup
wsrep_sst_auth = root:
wsrep_sst_receive_address = {h}:{sst}

[sst]
tmpdir = {d}/tmp

[client]
socket = {d}/mysqld.sock
user = root
",
        id = node.id,
        sql = node.sql_port,
        gcomm = node.gcomm_port,
        ist = node.ist_port,
        sst = node.sst_port,
        lib = GALERA_LIB,
        members = members.join(","),
    )
}

fn db_err(msg: String) -> TargetError {
    TargetError::Db {
        db: "galera".into(),
        msg,
    }
}

/// Runs a helper program to completion on `node`'s host (bounded), its output to `log`
/// there.
async fn run_tool(
    node: &Node,
    program: &str,
    args: &[String],
    log: &Path,
) -> Result<(), TargetError> {
    if !node.exec.is_local() {
        let mut cmd = format!("timeout {} {}", TOOL_TIMEOUT.as_secs(), quote(program));
        for a in args {
            cmd.push(' ');
            cmd.push_str(&quote(a));
        }
        return match node
            .exec
            .run(&format!("{cmd} </dev/null >{} 2>&1", q(log)), None)
        {
            Ok(_) => Ok(()),
            Err(e) => Err(db_err(format!(
                "{program} on {} failed ({e}); last lines of {}: {}",
                node.exec.name(),
                log.display(),
                node.exec.tail(&log.display().to_string(), 5)
            ))),
        };
    }
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args);
    let out = std::fs::File::create(log).map_err(|source| TargetError::Io {
        path: log.to_owned(),
        source,
    })?;
    let err = out.try_clone().map_err(|source| TargetError::Io {
        path: log.to_owned(),
        source,
    })?;
    cmd.stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|source| TargetError::Spawn {
        exe: PathBuf::from(program),
        source,
    })?;
    match tokio::time::timeout(TOOL_TIMEOUT, child.wait()).await {
        Ok(Ok(st)) if st.success() => Ok(()),
        Ok(Ok(st)) => Err(db_err(format!(
            "{program} failed ({st}); last lines of {}: {}",
            log.display(),
            log_tail(log, 5)
        ))),
        Ok(Err(e)) => Err(db_err(format!("{program}: {e}"))),
        Err(_) => {
            let _ = child.kill().await;
            Err(db_err(format!(
                "{program} did not finish within {} s; see {}",
                TOOL_TIMEOUT.as_secs(),
                log.display()
            )))
        }
    }
}

/// A path as one quoted `sh` word.
fn q(path: &Path) -> String {
    quote(&path.display().to_string())
}

/// Kills, on a node's host, the processes (SST scripts, socat, mariabackup) whose command
/// line names the node's folder, except `servers`. The folder is assembled at run time and
/// given to `grep` as its input, so no command line of the script's ever holds it.
fn helpers_script(dir: &Path, servers: &[u32]) -> String {
    let d = format!("{}/", dir.display());
    let (head, tail) = d.split_at(d.len() - 1);
    let keep: Vec<String> = servers.iter().map(u32::to_string).collect();
    format!(
        "a={}; b={}; keep=' {} '\n\
         for f in $(printf '%s%s\\n' \"$a\" \"$b\" | grep -alF -f - /proc/[0-9]*/cmdline 2>/dev/null); do p=${{f#/proc/}}; p=${{p%/cmdline}}; [ \"$p\" = $$ ] && continue; case \"$keep\" in *\" $p \"*) continue;; esac; kill -CONT $p 2>/dev/null; kill -KILL $p 2>/dev/null; done; true\n",
        quote(head),
        quote(tail),
        keep.join(" ")
    )
}

/// The seeding copy of a data directory when a node is on another host: a gzipped tar
/// of `from`'s data (without what is per node: the gcache, the last view, the pid file)
/// as base64 text, carried through this machine to each joiner (the hosts need not reach
/// each other by SSH).
fn pack_data_dir(from: &Node) -> Result<String, TargetError> {
    from.sh(
        &format!(
            "tar -C {} --exclude=./galera.cache --exclude=./gvwstate.dat --exclude=./mysqld.pid -czf - . | base64",
            q(&from.data())
        ),
        None,
    )
}

/// Unpacks `pack_data_dir`'s text into `to`'s data directory.
fn unpack_data_dir(to: &Node, packed: &str) -> Result<(), TargetError> {
    to.sh(
        &format!(
            "mkdir -p {d} && base64 -d | tar -C {d} -xzf -",
            d = q(&to.data())
        ),
        Some(packed.as_bytes()),
    )
    .map(|_| ())
}

/// Copies a cleanly shut down data directory (Galera's manual state transfer), leaving
/// out what is per-node: the gcache ring buffer, the last view, pid files.
fn copy_data_dir(from: &Path, to: &Path) -> Result<(), TargetError> {
    const SKIP: [&str; 3] = ["galera.cache", "gvwstate.dat", "mysqld.pid"];
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| TargetError::Io { path, source }
    };
    std::fs::create_dir_all(to).map_err(io(to))?;
    // Bounded: a data directory is two levels deep (schemas hold files only).
    let mut stack = vec![(from.to_owned(), to.to_owned(), 0u32)];
    while let Some((src, dst, depth)) = stack.pop() {
        for entry in std::fs::read_dir(&src).map_err(io(&src))? {
            let entry = entry.map_err(io(&src))?;
            let name = entry.file_name();
            if SKIP.iter().any(|s| name == *s) {
                continue;
            }
            let ty = entry.file_type().map_err(io(&entry.path()))?;
            let target = dst.join(&name);
            if ty.is_dir() && depth < 8 {
                std::fs::create_dir_all(&target).map_err(io(&target))?;
                stack.push((entry.path(), target, depth + 1));
            } else if ty.is_file() {
                std::fs::copy(entry.path(), &target).map_err(io(&target))?;
            }
        }
    }
    Ok(())
}

/// Rewrites `safe_to_bootstrap:` in a node's grastate.dat.
fn set_safe_to_bootstrap(node: &Node, safe: bool) -> Result<(), TargetError> {
    let path = node.grastate();
    let text = if node.exec.is_local() {
        std::fs::read_to_string(&path).map_err(|source| TargetError::Io {
            path: path.clone(),
            source,
        })?
    } else {
        node.sh(&format!("cat {}", q(&path)), None)?
    };
    let mut out = String::new();
    let mut seen = false;
    for line in text.lines() {
        if line.starts_with("safe_to_bootstrap:") {
            out.push_str(&format!("safe_to_bootstrap: {}\n", u8::from(safe)));
            seen = true;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !seen {
        out.push_str(&format!("safe_to_bootstrap: {}\n", u8::from(safe)));
    }
    node.write(&path, &out)
}

/// `seqno:` of a grastate.dat.
fn grastate_seqno(text: &str) -> Option<i64> {
    text.lines()
        .find_map(|l| l.strip_prefix("seqno:"))
        .and_then(|s| s.trim().parse().ok())
}

/// The seqno in `WSREP: Recovered position: <uuid>:<seqno>` of a `--wsrep-recover` log.
fn recovered_position(log: &str) -> Option<i64> {
    log.lines()
        .filter_map(|l| l.split("Recovered position:").nth(1))
        .filter_map(|p| p.trim().rsplit(':').next()?.trim().parse().ok())
        .next_back()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_as_lists_or_ints() {
        assert_eq!(parse_value("[1,2,3]"), Ok(Value::list(vec![1, 2, 3])));
        assert_eq!(parse_value("[]"), Ok(Value::list(vec![])));
        assert_eq!(parse_value("7"), Ok(Value::Int(7)));
        assert!(parse_value("[1,x]").is_err());
    }

    #[test]
    fn grastate_and_recovery_positions_are_read() {
        let g = "# GALERA saved state\nversion: 2.1\nuuid:    6bfe-11f1\nseqno:   42\nsafe_to_bootstrap: 0\n";
        assert_eq!(grastate_seqno(g), Some(42));
        assert_eq!(grastate_seqno("seqno:   -1\n"), Some(-1));
        let log = "2026-11-22 [Note] WSREP: Recovered position: 6bfe7103-e63e-11f1-8a8f-cf84da6ebd8f:18\n";
        assert_eq!(recovered_position(log), Some(18));
        assert_eq!(recovered_position("nothing"), None);
    }

    #[test]
    fn appends_build_a_json_array_in_one_statement() {
        let s = statement(&Request::Append { key: 3, value: 9 }).unwrap();
        assert!(s.contains("VALUES (3, '[9]')") && s.contains("ON DUPLICATE KEY UPDATE"));
        assert!(
            statement(&Request::Cas {
                key: 1,
                expected: 1,
                new: 2
            })
            .is_none()
        );
    }

    #[test]
    fn safe_to_bootstrap_is_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let node = Node {
            id: "n1".into(),
            dir: dir.path().to_owned(),
            host: "127.0.0.1".into(),
            sql_port: 3306,
            gcomm_port: 4567,
            ist_port: 4568,
            sst_port: 4444,
            exec: Local::on(None),
            log: dir.path().join("n1.log"),
            env: Vec::new(),
        };
        let p = node.grastate();
        std::fs::create_dir_all(node.data()).unwrap();
        std::fs::write(&p, "uuid: x\nseqno: 5\nsafe_to_bootstrap: 0\n").unwrap();
        set_safe_to_bootstrap(&node, true).unwrap();
        let t = std::fs::read_to_string(&p).unwrap();
        assert!(t.contains("safe_to_bootstrap: 1") && t.contains("seqno: 5"));
    }
}
