//! PostgreSQL 15 as a target: a primary (`n1`) and streaming standbys provisioned from the
//! installed binaries under the run's folder, sessions over `tokio-postgres`, and an
//! optional failover task that promotes the most up-to-date standby.
//!
//! Guarantees:
//! - every server is `postgres -D <data dir under the run folder> …` started directly as
//!   user `postgres` (setpriv execs), so its pid is the postmaster's own and the ledger's
//!   cleanup recognises it; one-shot tools (initdb, pg_basebackup, pg_rewind) are bounded;
//! - the configuration shared by every node lives in `postgresql.conf` (identical on all
//!   nodes, so clones and rewinds copy the right thing); what differs per node (port,
//!   listen address, socket directory) is on the server's command line, and whom a standby
//!   follows lives in its own `postgresql.auto.conf`, which this module rewrites on rejoin;
//! - writes go to the current primary; a write whose answer never came is `Unknown` (a
//!   synchronous commit that "timed out" may still commit later), a read that fails is
//!   `Fail`, and so is a write refused by a read-only server;
//! - with failover, a node that is not the primary when it restarts rejoins as a standby of
//!   the current primary (pg_rewind, or a fresh pg_basebackup clone), never as a second
//!   primary; the failover task is owned, bounded and stopped by `stop()` (or on drop);
//! - with failover, a primary that stops answering is fenced before a standby is promoted
//!   (STONITH, as Pacemaker does and as Patroni's watchdog does by resetting the node):
//!   its postmaster and every backend are SIGKILLed — a frozen (paused) tree dies too — and
//!   the promotion waits until they are gone. So a paused primary never serves again once
//!   it was replaced: the writes and reads queued on it while it was frozen end with its
//!   connections (`info`, `fail`) instead of being acknowledged by a second primary, and it
//!   is started again as a standby (pg_rewind or a clone) at the nemesis's next change;
//! - a transaction (`txn`) is `BEGIN ISOLATION LEVEL <--isolation>` … `COMMIT` on one
//!   connection (read-only ones routed like reads; on a standby SERIALIZABLE becomes
//!   REPEATABLE READ, the strongest level a hot standby runs): any error before COMMIT
//!   was sent, and an ERROR answering COMMIT (serialization failure 40001, deadlock), is
//!   `Fail`; a lost connection or timeout after COMMIT was sent is `Unknown`.
//!
//! A kill is SIGKILL of the postmaster and every backend together, as when the server's
//! machine dies. (Killing the postmaster alone leaves orphaned backends alive for a moment:
//! one waiting for the synchronous standbys then commits locally and another serves that
//! never-acknowledged write to a reader — seen as stale reads after the promotion.)

use crate::ReadRouting;
use crate::client::Reply;
use crate::db::{
    BoxFuture, DbCluster, DbKind, DbSession, DbSpec, Isolation, ManagedProcess, PauseStyle,
    Placement, ProcessSpec, loopback_ports, require_binary, wait_until,
};
use crate::error::TargetError;
use crate::reference::{NodeId, Replication};
use crate::remote::{Exec, Local, quote};
use crate::request::Request;
use crate::target::TxnReply;
use nix::sys::signal::Signal;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use schism_history::Value;
use schism_history::txn::{MicroOp, MopF, MopValue};
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

/// Where Debian's `postgresql-15` puts the server binaries.
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
const PG_PACKAGE: &str = "postgresql-15";
/// PostgreSQL refuses to run as root.
const PG_USER: &str = "postgres";
/// Inside network namespaces every node uses the default port.
const NETNS_PORT: u16 = 5432;
/// initdb, pg_basebackup and pg_rewind each get this long.
const TOOL_TIMEOUT: Duration = Duration::from_secs(60);
/// Fast shutdown gets this long before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// The failover task polls the primary this often…
const FAILOVER_POLL: Duration = Duration::from_millis(200);
/// …and promotes a standby once the primary has not answered for this long.
const FAILOVER_AFTER: Duration = Duration::from_millis(1000);
/// One probe (connect + query) of one node by the failover task.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// `pg_promote` and re-pointing a standby.
const PROMOTE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long `restart` waits for a reachable primary to rejoin a node to.
const REJOIN_WAIT: Duration = Duration::from_secs(10);
/// How long a rejoined standby gets to stream from the primary before it is re-cloned.
const REJOIN_STREAM_WAIT: Duration = Duration::from_secs(5);
/// How long the children of a killed postmaster get to exit by themselves.
const ORPHAN_WAIT: Duration = Duration::from_secs(10);
/// How long a fence waits for the killed postmaster and backends to be gone.
const FENCE_WAIT: Duration = Duration::from_secs(5);
/// `stop()` gives the failover task this long to notice before aborting it.
const TASK_STOP_WAIT: Duration = Duration::from_secs(3);
/// Unix socket paths longer than this do not fit `sockaddr_un` (108 bytes with the NUL).
const MAX_SOCKET_PATH: usize = 100;

/// Settings every node shares (appended to `postgresql.conf` of the primary before the
/// standbys are cloned from it). Timeouts are short so that a dead peer is noticed within
/// a run, and retries fast so that a re-pointed standby follows within a second.
/// `fsync = off`: the faults are process kills, not machine crashes, and written WAL
/// survives a SIGKILL in the page cache; with fsync on, every restart after a kill spent
/// about 3 s fsyncing the data directory (and pg_rewind as much again).
const SHARED_CONF: &str = "\
# schism: shared by every node
fsync = off
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
max_connections = 300
hot_standby = on
wal_log_hints = on
wal_keep_size = 512MB
synchronous_commit = on
synchronous_standby_names = ''
# Transactions that deadlock (appends to the same keys in other orders) are told so soon.
deadlock_timeout = 100ms
wal_sender_timeout = 5s
wal_receiver_timeout = 5s
wal_retrieve_retry_interval = 500ms
shared_buffers = 32MB
logging_collector = off
log_line_prefix = '%m [%p] '
";

/// How a node that is not the primary must be resynchronised before it may follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resync {
    /// It follows (or can follow) the current primary's history.
    None,
    /// It was the primary when another node was promoted: its WAL may have diverged.
    Rewind,
    /// It missed a promotion (down or unreachable): clone it afresh.
    Clone,
}

/// State the cluster, its sessions and the failover task share.
#[derive(Debug)]
struct Shared {
    ids: Vec<NodeId>,
    /// (host, port) of each node.
    addrs: Vec<(String, u16)>,
    primary: AtomicUsize,
    reads: ReadRouting,
    timeout: Duration,
    /// The level of every transaction (`--isolation`).
    isolation: Isolation,
    /// Held by the failover task while it promotes and by `restart` while it rejoins, so
    /// a node never rejoins a primary that is being replaced.
    ops: Arc<tokio::sync::Mutex<()>>,
    resync: Mutex<Vec<Resync>>,
    promotions: AtomicU64,
    /// Each node's running postmaster, for the failover task's fence (`None`: not started
    /// by this process, killed or stopped). Cleared before a kill or stop signals it, and
    /// the fence signals under the lock, so a fence never signals a reaped pid.
    postmasters: Mutex<Vec<Option<u32>>>,
    /// Each node's host (empty when attached), for the fence.
    execs: Vec<Arc<dyn Exec>>,
}

impl Shared {
    /// The nodes at `addrs`, `primary` leading, under the spec's read routing and timeout.
    fn new(
        spec: &DbSpec,
        ids: Vec<NodeId>,
        addrs: Vec<(String, u16)>,
        primary: usize,
        execs: Vec<Arc<dyn Exec>>,
    ) -> Shared {
        let n = addrs.len();
        Shared {
            ids,
            addrs,
            primary: AtomicUsize::new(primary),
            reads: spec.options.reads,
            timeout: spec.options.timeout,
            isolation: spec.options.isolation.unwrap_or(Isolation::ReadCommitted),
            ops: Arc::new(tokio::sync::Mutex::new(())),
            resync: Mutex::new(vec![Resync::None; n]),
            promotions: AtomicU64::new(0),
            postmasters: Mutex::new(vec![None; n]),
            execs,
        }
    }

    fn primary(&self) -> usize {
        self.primary.load(Ordering::SeqCst)
    }

    fn conninfo(&self, of: usize, app: &str) -> String {
        let (h, p) = &self.addrs[of];
        format!("host={h} port={p} user={PG_USER} application_name={app} connect_timeout=2")
    }

    fn set_resync(&self, node: usize, r: Resync) {
        if let Ok(mut v) = self.resync.lock() {
            v[node] = r;
        }
    }

    fn resync_of(&self, node: usize) -> Resync {
        self.resync.lock().map(|v| v[node]).unwrap_or(Resync::Clone)
    }

    fn set_postmaster(&self, node: usize, pid: Option<u32>) {
        if let Ok(mut v) = self.postmasters.lock() {
            v[node] = pid;
        }
    }
}

/// A client and the task driving its connection (aborted when dropped: no task outlives
/// its connection's owner).
struct Conn {
    client: Client,
    task: JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn connect(addr: &(String, u16), app: &str, timeout: Duration) -> Result<Conn, String> {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(&addr.0)
        .port(addr.1)
        .user(PG_USER)
        .dbname("postgres")
        .application_name(app)
        .connect_timeout(timeout);
    let (client, connection) = tokio::time::timeout(timeout, cfg.connect(NoTls))
        .await
        .map_err(|_| format!("connect timed out after {} ms", timeout.as_millis()))?
        .map_err(|e| format!("connect: {}", one_line(&e)))?;
    let task = tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(Conn { client, task })
}

/// An error as one line (db errors carry their SQLSTATE).
fn one_line(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{} ({})", d.message(), d.code().code()),
        None => e.to_string().replace('\n', " "),
    }
}

/// One node of a provisioned cluster.
#[derive(Debug)]
struct PgNode {
    id: NodeId,
    /// Its host (here, inside its namespace if any, or over SSH): every path below is
    /// there, and every file operation, tool and signal goes through it.
    exec: Arc<dyn Exec>,
    /// `<data_dir>/<node>`: owned by postgres; holds `pgdata` and the Unix socket.
    dir: PathBuf,
    pgdata: PathBuf,
    log: PathBuf,
    /// Where the log ends up in the run's folder (the same file when the node is local).
    local_log: PathBuf,
    env: Vec<(String, String)>,
    proc: Option<ManagedProcess>,
    /// Children of a killed postmaster: a new postmaster cannot start while they live.
    orphans: Vec<u32>,
}

impl PgNode {
    /// Node i's directory `<data_dir>/<id>` (on host i over SSH: `<host's run
    /// folder>/<id>`), which must hold no data directory yet, created with mode 700 and
    /// owned by postgres; not started.
    fn prepare(spec: &DbSpec, i: usize, id: &NodeId) -> Result<PgNode, TargetError> {
        let local_log = spec.log_dir.join(format!("{id}.log"));
        let (exec, dir, log) = match &spec.placement {
            Placement::Hosts(h) => {
                let run = Path::new(&h.run_dirs[i]);
                (
                    h.execs[i].clone(),
                    run.join(id),
                    run.join(format!("{id}.log")),
                )
            }
            Placement::Netns { namespaces, .. } => (
                Local::on(namespaces.get(i).cloned()),
                spec.data_dir.join(id),
                local_log.clone(),
            ),
            Placement::Loopback { .. } => {
                (Local::on(None), spec.data_dir.join(id), local_log.clone())
            }
        };
        let d = quote(&dir.display().to_string());
        let out = exec
            .run(
                &format!(
                    "if [ -e {d}/pgdata ]; then echo exists; exit 0; fi\n\
                     mkdir -p {d} && chmod 700 {d} && chown {PG_USER}:{PG_USER} {d}\n\
                     setpriv --reuid {PG_USER} --regid {PG_USER} --init-groups -- test -x {d} || echo unreachable\n"
                ),
                None,
            )
            .map_err(|e| host_err(id, e))?;
        if out.contains("exists") {
            return Err(TargetError::Invalid(format!(
                "{} already holds a PostgreSQL data directory: pass an empty --data-dir",
                dir.display()
            )));
        }
        if out.contains("unreachable") {
            return Err(TargetError::Invalid(format!(
                "PostgreSQL runs as user {PG_USER}, which cannot enter {} on {}: make every parent folder world-searchable (chmod o+x), or pass another --data-dir (on a host: its `dir` in the inventory)",
                dir.display(),
                exec.name()
            )));
        }
        Ok(PgNode {
            id: id.clone(),
            exec,
            pgdata: dir.join("pgdata"),
            dir,
            log,
            local_log,
            env: spec.env_of(i).to_vec(),
            proc: None,
            orphans: Vec::new(),
        })
    }

    /// Runs `script` on the node's host (a file operation); an error names the node.
    fn sh(&self, script: &str, stdin: Option<&[u8]>) -> Result<String, TargetError> {
        self.exec
            .run(script, stdin)
            .map_err(|e| host_err(&self.id, e))
    }

    /// Appends `text` to `name` in the node's data directory.
    fn append(&self, name: &str, text: &str) -> Result<(), TargetError> {
        let path = quote(&self.pgdata.join(name).display().to_string());
        self.sh(&format!("cat >> {path}"), Some(text.as_bytes()))
            .map(|_| ())
    }

    /// Removes `name` from the node's data directory (if there).
    fn remove(&self, name: &str) -> Result<(), TargetError> {
        let path = quote(&self.pgdata.join(name).display().to_string());
        self.sh(&format!("rm -rf {path}"), None).map(|_| ())
    }

    fn log_tail(&self, lines: usize) -> String {
        self.exec.tail(&self.log.display().to_string(), lines)
    }
}

/// A failed command on a node's host, as the node's error.
fn host_err(node: &str, e: crate::remote::ExecError) -> TargetError {
    TargetError::Node {
        node: node.to_owned(),
        msg: e.to_string(),
    }
}

/// A PostgreSQL cluster (provisioned, or attached with `--endpoints`).
pub struct PgCluster {
    shared: Arc<Shared>,
    nodes: Vec<PgNode>,
    bin: PathBuf,
    replication: Replication,
    failover: bool,
    startup_timeout: Duration,
    task: Option<(watch::Sender<bool>, JoinHandle<()>)>,
}

impl fmt::Debug for PgCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgCluster")
            .field("nodes", &self.shared.ids)
            .field("primary", &self.shared.primary())
            .finish()
    }
}

impl PgCluster {
    pub async fn open(spec: DbSpec) -> Result<Box<dyn DbCluster>, TargetError> {
        if let Some(eps) = &spec.endpoints {
            return Self::attach(&spec, eps).await;
        }
        let bin = PathBuf::from(PG_BIN);
        let n = spec.nodes.max(1);
        let ids = spec.node_ids();
        let addrs: Vec<(String, u16)> = match &spec.placement {
            Placement::Loopback { base_port } => loopback_ports(n, *base_port)?
                .into_iter()
                .map(|p| ("127.0.0.1".to_owned(), p))
                .collect(),
            Placement::Netns { addrs, .. } => addrs
                .iter()
                .take(n)
                .map(|a| (a.to_string(), NETNS_PORT))
                .collect(),
            Placement::Hosts(h) => h
                .addrs
                .iter()
                .take(n)
                .map(|a| (a.to_string(), NETNS_PORT))
                .collect(),
        };
        crate::process::create_run_dirs(&spec.data_dir, &spec.log_dir)?;
        if !matches!(spec.placement, Placement::Hosts(_)) {
            // Here: the server binaries, the user and the folder checked with the flag to
            // change (on hosts, the preflight checked the binaries).
            for tool in ["postgres", "initdb", "pg_basebackup", "pg_rewind"] {
                require_binary(&format!("{PG_BIN}/{tool}"), PG_PACKAGE)?;
            }
            require_binary("setpriv", "util-linux")?;
            let (uid, gid) = postgres_user()?;
            check_traversable(&spec.data_dir, uid, gid)?;
        }
        let nodes = ids
            .iter()
            .enumerate()
            .map(|(i, id)| PgNode::prepare(&spec, i, id))
            .collect::<Result<Vec<_>, _>>()?;
        let execs = nodes.iter().map(|n| n.exec.clone()).collect();
        let shared = Arc::new(Shared::new(&spec, ids, addrs, 0, execs));
        let mut cluster = PgCluster {
            shared,
            nodes,
            bin,
            replication: spec.options.replication,
            failover: spec.options.failover,
            startup_timeout: spec.startup_timeout,
            task: None,
        };
        // On any error the cluster is dropped, which kills whatever was started.
        cluster.provision(&spec).await?;
        if cluster.failover && n > 1 {
            let (tx, rx) = watch::channel(false);
            let handle = tokio::spawn(failover_loop(cluster.shared.clone(), rx));
            cluster.task = Some((tx, handle));
        }
        Ok(Box::new(cluster))
    }

    /// `--endpoints`: nothing is started; the primary is the node not in recovery.
    async fn attach(spec: &DbSpec, eps: &[String]) -> Result<Box<dyn DbCluster>, TargetError> {
        let mut addrs = Vec::new();
        for ep in eps {
            let (h, p) = ep
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
                .ok_or_else(|| {
                    TargetError::Invalid(format!("--endpoints {ep:?}: expected host:port"))
                })?;
            addrs.push((h, p));
        }
        let ids = spec.node_ids();
        let mut primary = None;
        for (i, a) in addrs.iter().enumerate() {
            if let Ok(c) = connect(a, "schism", spec.startup_timeout).await
                && let Ok(row) = c.client.query_one("SELECT pg_is_in_recovery()", &[]).await
                && !row.get::<_, bool>(0)
            {
                primary = Some(i);
                break;
            }
        }
        let primary = primary.ok_or_else(|| TargetError::Db {
            db: "postgres".into(),
            msg: format!("no endpoint of {} answers as a primary (pg_is_in_recovery() = false): check --endpoints", eps.join(","))
        })?;
        let c = connect(&addrs[primary], "schism", spec.startup_timeout)
            .await
            .map_err(|msg| TargetError::Db {
                db: "postgres".into(),
                msg,
            })?;
        create_tables(&c.client).await?;
        Ok(Box::new(PgCluster {
            shared: Arc::new(Shared::new(spec, ids, addrs, primary, Vec::new())),
            nodes: Vec::new(),
            bin: PathBuf::from(PG_BIN),
            replication: spec.options.replication,
            failover: false,
            startup_timeout: spec.startup_timeout,
            task: None,
        }))
    }

    /// initdb the primary, start it, create the tables, clone and start the standbys,
    /// then switch on the asked replication mode.
    async fn provision(&mut self, spec: &DbSpec) -> Result<(), TargetError> {
        let deadline = Instant::now() + spec.startup_timeout;
        self.init_primary(spec).await?;
        self.start(0)?;
        self.wait_ready(0, deadline, Some(false)).await?;
        {
            let c = self.connect_node(0, deadline).await?;
            create_tables(&c.client).await?;
        }
        // Clone the standbys one after the other (each asks for a fast checkpoint).
        for i in 1..self.nodes.len() {
            self.clone_from_primary(i, true).await?;
            self.nodes[i].append("postgresql.conf", &self.sync_conf())?;
            self.start(i)?;
        }
        for i in 1..self.nodes.len() {
            self.wait_ready(i, deadline, Some(true)).await?;
        }
        if self.nodes.len() > 1 {
            self.switch_on_replication(deadline).await?;
        }
        Ok(())
    }

    /// initdb the first node's data directory and add the run's settings (and, in
    /// network namespaces, trust for the run's /24).
    async fn init_primary(&self, spec: &DbSpec) -> Result<(), TargetError> {
        let n1 = &self.nodes[0];
        let initdb = self.bin.join("initdb");
        run_tool(
            n1,
            &initdb,
            &[
                "-D",
                &n1.pgdata.display().to_string(),
                "-U",
                PG_USER,
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
        )
        .await?;
        n1.append("postgresql.conf", SHARED_CONF)?;
        // In namespaces the runner connects from the bridge gateway (.254), standbys from
        // their own addresses: trust the run's /24. On hosts, each host's /24 (a lab's
        // bridge is the control machine's own).
        let addrs: &[std::net::Ipv4Addr] = match &spec.placement {
            Placement::Netns { addrs, .. } => &addrs[..addrs.len().min(1)],
            Placement::Hosts(h) => &h.addrs,
            Placement::Loopback { .. } => &[],
        };
        let mut nets: Vec<String> = addrs
            .iter()
            .map(|a| {
                let o = a.octets();
                format!("{}.{}.{}.0/24", o[0], o[1], o[2])
            })
            .collect();
        nets.dedup();
        for net in nets {
            n1.append(
                "pg_hba.conf",
                &format!("host all all {net} trust\nhost replication all {net} trust\n"),
            )?;
        }
        Ok(())
    }

    /// Once every standby streams, the primary takes the asked replication mode.
    async fn switch_on_replication(&self, deadline: Instant) -> Result<(), TargetError> {
        let standbys = self.nodes.len() - 1;
        {
            let c = self.connect_node(0, deadline).await?;
            let budget = deadline.saturating_duration_since(Instant::now());
            wait_until(
                "postgres streaming replication",
                budget,
                Duration::from_millis(100),
                || async {
                    let row = c
                        .client
                        .query_one(
                            "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
                            &[],
                        )
                        .await
                        .map_err(|e| one_line(&e))?;
                    let k: i64 = row.get(0);
                    if k as usize >= standbys {
                        Ok(())
                    } else {
                        Err(format!("{k} of {standbys} standbys streaming"))
                    }
                },
            )
            .await?;
            self.nodes[0].append("postgresql.conf", &self.sync_conf())?;
            c.client
                .batch_execute("SELECT pg_reload_conf()")
                .await
                .map_err(|e| self.db_err(0, &format!("reload: {}", one_line(&e))))?;
        }
        Ok(())
    }

    fn sync_conf(&self) -> String {
        sync_conf(self.replication, &self.shared.ids)
    }

    fn db_err(&self, i: usize, msg: &str) -> TargetError {
        TargetError::Node {
            node: self.shared.ids[i].clone(),
            msg: format!("{msg}; see {}", self.nodes[i].log.display()),
        }
    }

    async fn connect_node(&self, i: usize, deadline: Instant) -> Result<Conn, TargetError> {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(500));
        connect(&self.shared.addrs[i], "schism", left)
            .await
            .map_err(|e| self.db_err(i, &e))
    }

    /// Starts node `i`'s postmaster (not waiting for it).
    fn start(&mut self, i: usize) -> Result<(), TargetError> {
        let (host, port) = self.shared.addrs[i].clone();
        let node = &mut self.nodes[i];
        let sock = node.dir.display().to_string();
        // A socket path that does not fit sockaddr_un would stop the server: TCP only then.
        let sock = if sock.len() + ".s.PGSQL.65535".len() < MAX_SOCKET_PATH {
            sock
        } else {
            String::new()
        };
        let args = vec![
            "-D".to_owned(),
            node.pgdata.display().to_string(),
            "-p".to_owned(),
            port.to_string(),
            "-c".to_owned(),
            format!("listen_addresses={host}"),
            "-c".to_owned(),
            format!("unix_socket_directories={sock}"),
        ];
        let ps = ProcessSpec {
            node: node.id.clone(),
            program: self.bin.join("postgres"),
            args,
            env: node.env.clone(),
            exec: node.exec.clone(),
            user: Some(PG_USER.to_owned()),
            log: node.log.clone(),
            cwd: Some(node.dir.clone()),
        };
        match node.proc.as_mut() {
            Some(p) => p.start()?,
            None => node.proc = Some(ManagedProcess::spawn(ps)?),
        }
        let pid = node.proc.as_ref().and_then(ManagedProcess::pid);
        self.shared.set_postmaster(i, pid);
        Ok(())
    }

    /// Waits until node `i` answers, and (when given) is or is not in recovery.
    async fn wait_ready(
        &mut self,
        i: usize,
        deadline: Instant,
        in_recovery: Option<bool>,
    ) -> Result<(), TargetError> {
        let addr = self.shared.addrs[i].clone();
        loop {
            if let Some(p) = self.nodes[i].proc.as_mut()
                && let Some(status) = p.try_exited()
            {
                return Err(TargetError::NodeExited {
                    node: self.nodes[i].id.clone(),
                    status,
                    log: self.nodes[i].log.clone(),
                    tail: self.nodes[i].log_tail(5),
                });
            }
            let last = match probe(&addr, PROBE_TIMEOUT).await {
                Ok(r) if in_recovery.is_none_or(|want| want == r) => return Ok(()),
                Ok(r) => format!("pg_is_in_recovery() = {r}"),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(TargetError::Node {
                    node: self.nodes[i].id.clone(),
                    msg: format!(
                        "not ready within the startup budget ({last}); see {} (last lines: {})",
                        self.nodes[i].log.display(),
                        self.nodes[i].log_tail(3)
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Replaces node `i`'s data with a fresh base backup of the current primary, set up
    /// to follow it (`create_slot`: pg_basebackup creates the slot).
    async fn clone_from_primary(&mut self, i: usize, create_slot: bool) -> Result<(), TargetError> {
        let p = self.shared.primary();
        let node = &self.nodes[i];
        node.sh(
            &format!("rm -rf {}", quote(&node.pgdata.display().to_string())),
            None,
        )?;
        let slot = slot_name(&node.id);
        let conninfo = self.shared.conninfo(p, &node.id);
        let pgdata = node.pgdata.display().to_string();
        let mut args = vec![
            "-D",
            &pgdata,
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "--no-sync",
            "-S",
            &slot,
            "-d",
            &conninfo,
        ];
        if create_slot {
            args.push("-C");
        }
        run_tool(node, &self.bin.join("pg_basebackup"), &args).await?;
        self.write_standby_conf(i, p)?;
        Ok(())
    }

    /// Makes node `i` (stopped) a standby of node `p`: its own `postgresql.auto.conf`
    /// (which clones and rewinds copy from the source) and `standby.signal`.
    fn write_standby_conf(&self, i: usize, p: usize) -> Result<(), TargetError> {
        let node = &self.nodes[i];
        let auto = format!(
            "# Written by schism: whom this standby follows.\nprimary_conninfo = '{}'\nprimary_slot_name = '{}'\n",
            self.shared.conninfo(p, &node.id),
            slot_name(&node.id)
        );
        let d = |name: &str| quote(&node.pgdata.join(name).display().to_string());
        let (auto_conf, signal) = (d("postgresql.auto.conf"), d("standby.signal"));
        node.sh(
            &format!(
                "cat > {auto_conf} && : > {signal} && chown {PG_USER}:{PG_USER} {auto_conf} {signal}"
            ),
            Some(auto.as_bytes()),
        )
        .map(|_| ())
    }

    /// Waits (bounded) until the children of node `i`'s killed postmaster are gone,
    /// SIGKILLing what is left: a new postmaster refuses to start while they live.
    async fn reap_orphans(&mut self, i: usize) {
        let orphans = std::mem::take(&mut self.nodes[i].orphans);
        let exec = self.nodes[i].exec.clone();
        let deadline = Instant::now() + ORPHAN_WAIT;
        loop {
            let alive = exec.alive(&orphans);
            if alive.is_empty() {
                return;
            }
            if Instant::now() >= deadline {
                let _ = exec.kill_all(&alive);
                tokio::time::sleep(Duration::from_millis(200)).await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Ensures replication slot `slot` on the current primary.
    async fn ensure_slot(&self, p: usize, node: &str) -> Result<(), String> {
        let c = connect(&self.shared.addrs[p], "schism", PROBE_TIMEOUT).await?;
        ensure_slot(&c.client, &slot_name(node)).await
    }

    async fn checkpoint(&self, p: usize) -> Result<(), String> {
        let c = connect(&self.shared.addrs[p], "schism", PROBE_TIMEOUT).await?;
        tokio::time::timeout(PROMOTE_TIMEOUT, c.client.batch_execute("CHECKPOINT"))
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|e| one_line(&e))
    }

    /// Waits (bounded) until primary `p` streams to standby `i`.
    async fn wait_streaming(&self, p: usize, i: usize) -> Result<(), String> {
        let id = self.shared.ids[i].clone();
        let addr = self.shared.addrs[p].clone();
        let what = format!("{id} streaming from {}", self.shared.ids[p]);
        wait_until(&what, REJOIN_STREAM_WAIT, Duration::from_millis(100), || {
            let (id, addr) = (id.clone(), addr.clone());
            async move {
                let c = connect(&addr, "schism", PROBE_TIMEOUT).await?;
                let row = c
                    .client
                    .query_opt(
                        "SELECT 1 FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming'",
                        &[&id],
                    )
                    .await
                    .map_err(|e| one_line(&e))?;
                row.map(|_| ()).ok_or_else(|| "not streaming".to_owned())
            }
        })
        .await
        .map_err(|e| e.to_string())
    }

    /// Restart under failover of a node that is not the primary: rejoin it.
    async fn rejoin(&mut self, i: usize) -> Result<(), TargetError> {
        let (_g, primary) = self.lock_with_primary(i).await;
        let Some(p) = primary else {
            return self.start_unjoined(i).await;
        };
        let id = self.shared.ids[i].clone();
        let began = Instant::now();
        let _ = self.ensure_slot(p, &id).await;
        let resync = self.shared.resync_of(i);
        match resync {
            Resync::None => self.write_standby_conf(i, p)?,
            Resync::Rewind => self.rewind_or_clone(i, p).await?,
            Resync::Clone => self.clone_from_primary(i, false).await?,
        }
        self.start(i)?;
        self.wait_ready(i, Instant::now() + self.startup_timeout, Some(true))
            .await?;
        if let Err(e) = self.wait_streaming(p, i).await {
            if resync == Resync::Clone {
                return Err(self.db_err(i, &format!("rejoined by a fresh clone, yet {e}")));
            }
            // It cannot follow (its history diverged in a way the step above missed):
            // clone it afresh rather than leave a standby that never catches up.
            eprintln!("schism: postgres: {e}: re-cloning {id}");
            self.reclone(i).await?;
        }
        self.shared.set_resync(i, Resync::None);
        if resync != Resync::None {
            eprintln!(
                "schism: postgres: {id} rejoined {} as a standby ({}) in {} ms",
                self.shared.ids[p],
                if resync == Resync::Rewind {
                    "pg_rewind"
                } else {
                    "re-cloned"
                },
                began.elapsed().as_millis()
            );
        }
        Ok(())
    }

    /// Takes the operations lock once a primary other than `i` answers as a primary
    /// (waiting up to `REJOIN_WAIT` without holding the lock, so failover can act); with
    /// `None` when `i` is the primary itself or none answered in time.
    async fn lock_with_primary(
        &self,
        i: usize,
    ) -> (tokio::sync::OwnedMutexGuard<()>, Option<usize>) {
        let until = Instant::now() + REJOIN_WAIT;
        loop {
            let g = self.shared.ops.clone().lock_owned().await;
            let p = self.shared.primary();
            if p == i {
                return (g, None);
            }
            if matches!(probe(&self.shared.addrs[p], PROBE_TIMEOUT).await, Ok(false)) {
                return (g, Some(p));
            }
            drop(g);
            if Instant::now() >= until {
                return (self.shared.ops.clone().lock_owned().await, None);
            }
            tokio::time::sleep(FAILOVER_POLL).await;
        }
    }

    /// Starts `i` with no primary to rejoin: as is if it is the primary (promoted
    /// meanwhile, or the primary was restarted), else as a standby (never a second
    /// primary) that stays marked and is resynchronised at its next restart.
    async fn start_unjoined(&mut self, i: usize) -> Result<(), TargetError> {
        if self.shared.primary() != i {
            eprintln!(
                "schism: postgres: no reachable primary to rejoin {} to: starting it as a standby as is",
                self.shared.ids[i]
            );
            self.nodes[i].remove("standby.signal")?;
            self.write_standby_conf(i, self.shared.primary())?;
        }
        self.start(i)?;
        self.wait_ready(i, Instant::now() + self.startup_timeout, None)
            .await
    }

    /// Rewinds `i` onto primary `p`'s timeline with pg_rewind, or clones it afresh when
    /// that fails.
    async fn rewind_or_clone(&mut self, i: usize, p: usize) -> Result<(), TargetError> {
        // A promoted server's control file names its new timeline only after its
        // first checkpoint: without one, pg_rewind sees "the same timeline" and
        // rewinds nothing (and the node then cannot follow).
        if let Err(e) = self.checkpoint(p).await {
            eprintln!(
                "schism: postgres: CHECKPOINT on {} before pg_rewind: {e}",
                self.shared.ids[p]
            );
        }
        let source = format!(
            "host={} port={} user={PG_USER} dbname=postgres connect_timeout=2",
            self.shared.addrs[p].0, self.shared.addrs[p].1
        );
        let node = &self.nodes[i];
        node.remove("standby.signal")?;
        let rewound = run_tool(
            node,
            &self.bin.join("pg_rewind"),
            &[
                "-D",
                &node.pgdata.display().to_string(),
                "--no-sync",
                "--source-server",
                &source,
            ],
        )
        .await;
        match rewound {
            Ok(()) => self.write_standby_conf(i, p),
            Err(e) => {
                let id = &self.shared.ids[i];
                eprintln!("schism: postgres: pg_rewind of {id} failed ({e}): cloning it");
                self.clone_from_primary(i, false).await
            }
        }
    }

    /// Stops `i`, clones it afresh from the primary and starts it again.
    async fn reclone(&mut self, i: usize) -> Result<(), TargetError> {
        self.shared.set_postmaster(i, None);
        if let Some(proc) = self.nodes[i].proc.as_mut() {
            let _ = proc.signal(Signal::SIGINT);
            proc.stop(STOP_GRACE).await?;
        }
        self.clone_from_primary(i, false).await?;
        self.start(i)?;
        self.wait_ready(i, Instant::now() + self.startup_timeout, Some(true))
            .await
    }
}

impl DbCluster for PgCluster {
    fn kind(&self) -> crate::target::TargetKind {
        DbKind::Postgres.into()
    }

    fn node_ids(&self) -> Vec<NodeId> {
        self.shared.ids.clone()
    }

    fn describe(&self) -> String {
        let p = self.shared.primary();
        let nodes: Vec<String> = self
            .shared
            .ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let (h, port) = &self.shared.addrs[i];
                let role = if i == p { "primary" } else { "standby" };
                format!("{id} {role} {h}:{port}")
            })
            .collect();
        let k = self.replication.required_followers(self.shared.ids.len());
        format!(
            "{}; replication {} (synchronous standbys: {k}); failover {}",
            nodes.join(", "),
            self.replication,
            if self.failover { "auto" } else { "none" }
        )
    }

    fn managed(&self) -> bool {
        !self.nodes.is_empty()
    }

    fn pids(&self) -> Vec<u32> {
        self.nodes
            .iter()
            .filter_map(|n| n.proc.as_ref().filter(|p| p.is_running())?.local_pid())
            .collect()
    }

    /// Postmasters on hosts over SSH: node i runs on host i.
    fn remote_pids(&self) -> Vec<(usize, u32)> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| !n.exec.is_local())
            .filter_map(|(i, n)| Some((i, n.proc.as_ref().filter(|p| p.is_running())?.pid()?)))
            .collect()
    }

    fn pid(&self, node: &str) -> Option<u32> {
        let n = self.nodes.iter().find(|n| n.id == node)?;
        n.proc.as_ref().filter(|p| p.is_running())?.pid()
    }

    fn is_running(&self, node: &str) -> bool {
        self.nodes
            .iter()
            .find(|n| n.id == node)
            .and_then(|n| n.proc.as_ref())
            .is_some_and(ManagedProcess::is_running)
    }

    /// Here, a freezer cgroup takes the whole tree at once; on a host over SSH, SIGSTOP
    /// of the postmaster and every backend (`pause`): the postmaster stops first, so no
    /// new backend forks meanwhile.
    fn pause_style(&self) -> PauseStyle {
        if self.nodes.iter().all(|n| n.exec.is_local()) {
            PauseStyle::Tree
        } else {
            PauseStyle::Signal
        }
    }

    fn pause(&mut self, node: &str) -> Result<(), TargetError> {
        self.signal_tree(node, Signal::SIGSTOP)
    }

    fn resume(&mut self, node: &str) -> Result<(), TargetError> {
        self.signal_tree(node, Signal::SIGCONT)
    }

    fn kill<'a>(&'a mut self, node: &'a str) -> BoxFuture<'a, Result<(), TargetError>> {
        Box::pin(async move {
            let i = self.index(node)?;
            self.shared.set_postmaster(i, None);
            let n = &mut self.nodes[i];
            if let Some(p) = n.proc.as_mut() {
                // A kill is a crash of the whole server: the postmaster and every backend
                // die together, as when its machine dies. Killing the postmaster alone
                // lets its orphaned backends live on for a moment — one waiting for the
                // standbys then commits locally, and another serves that unreplicated
                // write to a reader — which is not the fault a user asks for.
                let backends: Vec<u32> = p.tree().into_iter().skip(1).collect();
                p.kill_with(&backends).await?;
                n.orphans.extend(backends);
            }
            Ok(())
        })
    }

    fn restart<'a>(&'a mut self, node: &'a str) -> BoxFuture<'a, Result<(), TargetError>> {
        Box::pin(async move {
            let i = self.index(node)?;
            if self.is_running(node) {
                return Ok(());
            }
            // Reap a fenced postmaster: while its zombie holds the pid in postmaster.pid,
            // pg_rewind's crash recovery takes it for a live server and refuses.
            if let Some(p) = self.nodes[i].proc.as_mut() {
                let _ = p.try_exited();
            }
            self.reap_orphans(i).await;
            if self.failover && self.shared.primary() != i {
                return self.rejoin(i).await;
            }
            let _g = self.shared.ops.clone().lock_owned().await;
            self.start(i)?;
            self.wait_ready(i, Instant::now() + self.startup_timeout, None)
                .await
        })
    }

    fn leader(&self) -> BoxFuture<'_, Option<NodeId>> {
        Box::pin(async move { self.shared.ids.get(self.shared.primary()).cloned() })
    }

    fn session(&self, seed: u64) -> Box<dyn DbSession> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = self.shared.ids.len();
        let sticky = rng.random_range(0..n);
        Box::new(PgSession {
            shared: self.shared.clone(),
            conns: (0..n).map(|_| None).collect(),
            rng,
            sticky,
        })
    }

    fn lag_probe(&self) -> Option<Box<dyn crate::lag::LagProbe>> {
        Some(Box::new(PgLag {
            shared: self.shared.clone(),
            conn: None,
        }))
    }

    fn stop(&mut self) -> BoxFuture<'_, Result<(), TargetError>> {
        Box::pin(async move {
            if let Some((tx, mut handle)) = self.task.take() {
                let _ = tx.send(true);
                if tokio::time::timeout(TASK_STOP_WAIT, &mut handle)
                    .await
                    .is_err()
                {
                    handle.abort();
                    let _ = handle.await;
                }
            }
            for i in 0..self.nodes.len() {
                self.shared.set_postmaster(i, None);
            }
            let mut first = Ok(());
            for n in &mut self.nodes {
                if let Some(mut p) = n.proc.take() {
                    n.orphans.extend(p.tree().into_iter().skip(1));
                    // SIGINT = fast shutdown (SIGTERM would wait for clients to leave).
                    let _ = p.signal(Signal::SIGINT);
                    if let Err(e) = p.stop(STOP_GRACE).await
                        && first.is_ok()
                    {
                        first = Err(e);
                    }
                }
                if !n.orphans.is_empty() {
                    let _ = n.exec.kill_all(&n.alive_orphans());
                    n.orphans.clear();
                }
                if !n.exec.is_local() {
                    // The server's log (and its tools') into the run's folder.
                    if let Err(e) = n.exec.download(&n.log.display().to_string(), &n.local_log) {
                        let _ =
                            std::fs::write(&n.local_log, format!("(log not downloaded: {e})\n"));
                    }
                }
            }
            first
        })
    }
}

impl PgNode {
    /// The orphans still alive (those whose pids were not reused are the only ones a
    /// signal should reach: a pid that died may be another process's by now).
    fn alive_orphans(&self) -> Vec<u32> {
        self.exec.alive(&self.orphans)
    }
}

impl PgCluster {
    /// Signals node's postmaster and every backend on its host (a pause by SIGSTOP, a
    /// resume by SIGCONT), the postmaster first.
    fn signal_tree(&self, node: &str, sig: Signal) -> Result<(), TargetError> {
        let i = self.index(node)?;
        let n = &self.nodes[i];
        let Some(p) = n.proc.as_ref() else {
            return Err(TargetError::NotRunning(node.to_owned()));
        };
        // The tree in one read and one signalling round trip (two over SSH).
        n.exec
            .signal_all(&p.tree(), sig)
            .map_err(|e| host_err(node, e))
    }

    fn index(&self, node: &str) -> Result<usize, TargetError> {
        if self.nodes.is_empty() {
            return Err(TargetError::Invalid(
                "an attached cluster (--endpoints) cannot be killed or restarted".into(),
            ));
        }
        self.shared
            .ids
            .iter()
            .position(|n| n == node)
            .ok_or_else(|| TargetError::UnknownNode(node.to_owned()))
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if let Some((_, handle)) = self.task.take() {
            handle.abort();
        }
        // ManagedProcess kills each postmaster on drop; their children follow by
        // themselves, but a child of a killed one may linger: end it too.
        for n in &mut self.nodes {
            if let Some(p) = n.proc.as_ref() {
                n.orphans.extend(p.tree().into_iter().skip(1));
            }
            let _ = n.exec.kill_all(&n.alive_orphans());
        }
    }
}

/// `synchronous_standby_names` for every node: the list names every node, so that it
/// stays right whoever is promoted (a server never counts itself); K standbys must flush
/// each commit (`semi-sync:K`; sync = all of them).
fn sync_conf(replication: Replication, ids: &[NodeId]) -> String {
    let k = replication.required_followers(ids.len());
    if k == 0 {
        "synchronous_standby_names = ''\n".to_owned()
    } else {
        format!(
            "synchronous_standby_names = 'ANY {k} ({})'\n",
            ids.join(", ")
        )
    }
}

/// The replication slot of a node on whichever node is primary.
fn slot_name(node: &str) -> String {
    format!("slot_{node}")
}

/// The uid and gid of user `postgres` (from /etc/passwd: the package creates it).
fn postgres_user() -> Result<(u32, u32), TargetError> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 3 && f[0] == PG_USER)
                .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
                .flatten()
        })
        .ok_or_else(|| TargetError::MissingBinary {
            binary: format!("user {PG_USER}"),
            package: PG_PACKAGE.to_owned(),
        })
}

/// Fails with one line naming `--data-dir` when user postgres cannot reach `dir`.
fn check_traversable(dir: &Path, uid: u32, gid: u32) -> Result<(), TargetError> {
    let dir = dir.canonicalize().map_err(|source| TargetError::DataDir {
        path: dir.to_owned(),
        source,
    })?;
    for a in dir.ancestors() {
        let Ok(m) = std::fs::metadata(a) else {
            continue;
        };
        let mode = m.mode();
        let ok = if m.uid() == uid {
            mode & 0o100 != 0
        } else if m.gid() == gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        if !ok {
            return Err(TargetError::Invalid(format!(
                "PostgreSQL runs as user {PG_USER}, which cannot enter {} (mode {:o}): pass a --data-dir whose parents are all world-searchable (or chmod o+x {})",
                a.display(),
                mode & 0o7777,
                a.display()
            )));
        }
    }
    Ok(())
}

/// Runs a PostgreSQL tool on the node's host as user postgres (bounded by
/// `TOOL_TIMEOUT`), its output appended to the node's log: started like a server (a
/// `ManagedProcess`, so it dies with its owner) and waited for.
async fn run_tool(node: &PgNode, tool: &Path, args: &[&str]) -> Result<(), TargetError> {
    let name = tool
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut p = ManagedProcess::spawn(ProcessSpec {
        node: node.id.clone(),
        exec: node.exec.clone(),
        program: tool.to_owned(),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        env: Vec::new(),
        user: Some(PG_USER.to_owned()),
        log: node.log.clone(),
        cwd: None,
    })?;
    match p.wait_exit(TOOL_TIMEOUT).await {
        Some(status) if status.success() => Ok(()),
        Some(status) => Err(TargetError::Node {
            node: node.id.clone(),
            msg: format!("{name} failed ({status}): {}", node.log_tail(3)),
        }),
        None => {
            let _ = p.kill().await;
            Err(TargetError::Node {
                node: node.id.clone(),
                msg: format!(
                    "{name} did not finish within {} s; see {}",
                    TOOL_TIMEOUT.as_secs(),
                    node.log.display()
                ),
            })
        }
    }
}

/// The one table: a register (`reg`, `v` = one element) or an append list per key.
async fn create_tables(c: &Client) -> Result<(), TargetError> {
    c.batch_execute(
        "CREATE TABLE IF NOT EXISTS kv (k bigint PRIMARY KEY, v bigint[] NOT NULL, reg boolean NOT NULL)",
    )
    .await
    .map_err(|e| TargetError::Db {
        db: "postgres".into(),
        msg: format!("creating table kv: {}", one_line(&e)),
    })
}

async fn ensure_slot(c: &Client, slot: &str) -> Result<(), String> {
    let q = async {
        let exists = c
            .query_opt(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await?;
        if exists.is_none() {
            c.query_one("SELECT pg_create_physical_replication_slot($1)", &[&slot])
                .await?;
        }
        Ok::<(), tokio_postgres::Error>(())
    };
    match tokio::time::timeout(PROBE_TIMEOUT, q).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("creating slot {slot}: {}", one_line(&e))),
        Err(_) => Err(format!("creating slot {slot}: timed out")),
    }
}

/// Connects and asks `pg_is_in_recovery()`, all within `timeout`.
async fn probe(addr: &(String, u16), timeout: Duration) -> Result<bool, String> {
    let q = async {
        let c = connect(addr, "schism-probe", timeout).await?;
        let row = c
            .client
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .map_err(|e| one_line(&e))?;
        Ok(row.get::<_, bool>(0))
    };
    tokio::time::timeout(timeout, q)
        .await
        .map_err(|_| format!("no answer within {} ms", timeout.as_millis()))?
}

/// Polls the primary every `FAILOVER_POLL`; once it has not answered as a primary for
/// `FAILOVER_AFTER`, promotes the standby with the most WAL and re-points the others.
/// Ends when `stop` says so (or is dropped); every step is bounded by a timeout.
async fn failover_loop(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut last_ok = Instant::now();
    let mut probe_conn: Option<(usize, Conn)> = None;
    let mut pending: Vec<usize> = Vec::new();
    let mut last_error = String::new();
    loop {
        tokio::select! {
            r = stop.changed() => if r.is_err() || *stop.borrow() { return },
            () = tokio::time::sleep(FAILOVER_POLL) => {}
        }
        let p = shared.primary();
        if primary_answers(&shared, p, &mut probe_conn).await {
            last_ok = Instant::now();
        }
        if !pending.is_empty() {
            let mut still = Vec::new();
            for i in pending {
                if i != shared.primary() && repoint(&shared, shared.primary(), i).await.is_err() {
                    still.push(i);
                }
            }
            pending = still;
        }
        if last_ok.elapsed() < FAILOVER_AFTER {
            continue;
        }
        let guard = tokio::select! {
            g = shared.ops.clone().lock_owned() => g,
            _ = stop.changed() => return,
        };
        // Restart may have brought it back meanwhile.
        if shared.primary() != p
            || matches!(probe(&shared.addrs[p], PROBE_TIMEOUT).await, Ok(false))
        {
            last_ok = Instant::now();
            continue;
        }
        match promote(&shared, p).await {
            Ok((new, left)) => {
                eprintln!(
                    "schism: postgres failover: {} unreachable for {} ms, promoted {}",
                    shared.ids[p],
                    last_ok.elapsed().as_millis(),
                    shared.ids[new]
                );
                pending = left;
                probe_conn = None;
                last_ok = Instant::now();
                last_error.clear();
            }
            Err(e) => {
                if e != last_error {
                    eprintln!("schism: postgres failover: cannot promote yet: {e}");
                    last_error = e;
                }
            }
        }
        drop(guard);
    }
}

/// Whether node `p` answers as a primary, on a probe connection kept between polls.
async fn primary_answers(shared: &Shared, p: usize, conn: &mut Option<(usize, Conn)>) -> bool {
    if conn
        .as_ref()
        .is_some_and(|(i, c)| *i != p || c.client.is_closed())
    {
        *conn = None;
    }
    if conn.is_none() {
        match connect(&shared.addrs[p], "schism-failover", PROBE_TIMEOUT).await {
            Ok(c) => *conn = Some((p, c)),
            Err(_) => return false,
        }
    }
    let Some((_, c)) = conn.as_ref() else {
        return false;
    };
    let q = c.client.query_one("SELECT pg_is_in_recovery()", &[]);
    match tokio::time::timeout(PROBE_TIMEOUT, q).await {
        Ok(Ok(row)) => !row.get::<_, bool>(0),
        _ => {
            *conn = None;
            false
        }
    }
}

/// Promotes the standby with the most WAL received (ties: the lowest node), publishes
/// it, and re-points the other standbys; returns it and the standbys still to re-point.
/// The standby that received the most WAL (one not in recovery wins outright: someone
/// else promoted it), and the standbys that did not answer.
async fn most_advanced_standby(shared: &Shared, old: usize) -> (Option<(usize, i64)>, Vec<usize>) {
    let mut best: Option<(usize, i64)> = None;
    let mut unreachable = Vec::new();
    for i in (0..shared.ids.len()).filter(|&i| i != old) {
        let q = async {
            let c = connect(&shared.addrs[i], "schism-failover", PROBE_TIMEOUT).await?;
            let row = c
                .client
                .query_one(
                    "SELECT pg_is_in_recovery(), COALESCE(pg_wal_lsn_diff(GREATEST(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), '0/0'), 0)::bigint",
                    &[],
                )
                .await
                .map_err(|e| one_line(&e))?;
            Ok::<(bool, i64), String>((row.get(0), row.get(1)))
        };
        match tokio::time::timeout(PROBE_TIMEOUT, q).await {
            Ok(Ok((true, lsn))) => {
                if best.is_none_or(|(_, b)| lsn > b) {
                    best = Some((i, lsn));
                }
            }
            // Not in recovery: a standby promoted by someone else; take it as is.
            Ok(Ok((false, _))) => {
                best = Some((i, i64::MAX));
            }
            _ => unreachable.push(i),
        }
    }
    (best, unreachable)
}

async fn promote(shared: &Shared, old: usize) -> Result<(usize, Vec<usize>), String> {
    let (best, unreachable) = most_advanced_standby(shared, old).await;
    let (new, _) =
        best.ok_or_else(|| format!("{} is down and no standby answers", shared.ids[old]))?;
    // Fence first: the old primary must never serve again once another node is primary.
    if let Some(how) = fence(shared, old).await? {
        eprintln!(
            "schism: postgres failover: fenced {} ({how}) before promoting {}",
            shared.ids[old], shared.ids[new]
        );
    }
    let c = connect(&shared.addrs[new], "schism-failover", PROBE_TIMEOUT).await?;
    let promoted = tokio::time::timeout(
        PROMOTE_TIMEOUT,
        c.client.query_one(
            "SELECT CASE WHEN pg_is_in_recovery() THEN pg_promote(true, 10) ELSE true END",
            &[],
        ),
    )
    .await
    .map_err(|_| format!("pg_promote on {} timed out", shared.ids[new]))?
    .map_err(|e| format!("pg_promote on {}: {}", shared.ids[new], one_line(&e)))?;
    if !promoted.get::<_, bool>(0) {
        return Err(format!("pg_promote on {} did not finish", shared.ids[new]));
    }
    shared.primary.store(new, Ordering::SeqCst);
    // Its control file names the new timeline only after a checkpoint (pg_rewind of the
    // deposed primary reads it): request one now rather than wait for the next.
    let _ = tokio::time::timeout(PROMOTE_TIMEOUT, c.client.batch_execute("CHECKPOINT")).await;
    shared.promotions.fetch_add(1, Ordering::SeqCst);
    shared.set_resync(old, Resync::Rewind);
    for &u in &unreachable {
        shared.set_resync(u, Resync::Clone);
    }
    // The deposed primary gets its slot now, for its rejoin.
    let _ = ensure_slot(&c.client, &slot_name(&shared.ids[old])).await;
    let mut left = Vec::new();
    for i in (0..shared.ids.len()).filter(|&i| i != old && i != new) {
        if repoint(shared, new, i).await.is_err() {
            left.push(i);
        }
    }
    Ok((new, left))
}

/// STONITH for a primary that stopped answering: SIGKILL its postmaster and every backend
/// (a process frozen in a cgroup dies too), then wait until they are gone. `Ok(None)`:
/// nothing of it ran. Killed like this it restarts at the nemesis's next change, as a
/// standby (its resync mark is set by the promotion).
async fn fence(shared: &Shared, node: usize) -> Result<Option<String>, String> {
    let Some(exec) = shared.execs.get(node) else {
        return Ok(None);
    };
    let killed: Vec<u32> = {
        let pms = shared
            .postmasters
            .lock()
            .map_err(|_| "poisoned lock".to_owned())?;
        let Some(pm) = pms[node].filter(|&p| !exec.alive(&[p]).is_empty()) else {
            return Ok(None);
        };
        let tree: Vec<u32> = std::iter::once(pm)
            .chain(exec.descendants(pm).unwrap_or_default())
            .collect();
        exec.kill_all(&tree)
            .map_err(|e| format!("fencing {}: {e}", shared.ids[node]))?;
        tree
    };
    let until = Instant::now() + FENCE_WAIT;
    loop {
        let left = exec.alive(&killed);
        if left.is_empty() {
            break;
        }
        if Instant::now() >= until {
            return Err(format!(
                "fencing {}: processes {left:?} still alive {} ms after SIGKILL",
                shared.ids[node],
                FENCE_WAIT.as_millis()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(Some(format!(
        "SIGKILL of its postmaster {} and {} backends",
        killed[0],
        killed.len() - 1
    )))
}

/// Points the running standby `i` at primary `p` (its slot first), reloading its config.
async fn repoint(shared: &Shared, p: usize, i: usize) -> Result<(), String> {
    let id = &shared.ids[i];
    let pc = connect(&shared.addrs[p], "schism-failover", PROBE_TIMEOUT).await?;
    ensure_slot(&pc.client, &slot_name(id)).await?;
    let c = connect(&shared.addrs[i], "schism-failover", PROBE_TIMEOUT).await?;
    let q = async {
        let row = c
            .client
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .map_err(|e| one_line(&e))?;
        if !row.get::<_, bool>(0) {
            return Err(format!("{id} is not a standby"));
        }
        // ALTER SYSTEM cannot run inside a (multi-statement) transaction: one at a time.
        for sql in [
            format!(
                "ALTER SYSTEM SET primary_conninfo = '{}'",
                shared.conninfo(p, id)
            ),
            format!("ALTER SYSTEM SET primary_slot_name = '{}'", slot_name(id)),
            "SELECT pg_reload_conf()".to_owned(),
        ] {
            c.client
                .batch_execute(&sql)
                .await
                .map_err(|e| one_line(&e))?;
        }
        Ok(())
    };
    tokio::time::timeout(PROMOTE_TIMEOUT, q)
        .await
        .map_err(|_| format!("re-pointing {id} timed out"))?
}

/// A session's prepared statements on one connection.
struct Stmts {
    read: tokio_postgres::Statement,
    write: tokio_postgres::Statement,
    append: tokio_postgres::Statement,
    cas: tokio_postgres::Statement,
}

struct SessionConn {
    conn: Conn,
    stmts: Stmts,
}

/// One worker's connections: at most one per node, opened lazily, dropped after an error
/// that may have left it unusable (and after every timeout: the request is still on it).
/// Replication lag from the primary's `pg_stat_replication`: per standby, the WAL bytes
/// between the primary's current LSN and the standby's replay LSN, and PostgreSQL's own
/// write/flush/replay lag (as extra figures; the ms figure is the sampler's age of the
/// oldest unreplayed byte). One query per sample on one connection to the primary
/// (reconnected when the primary changes); a standby not streaming has no row, so no
/// reading.
struct PgLag {
    shared: Arc<Shared>,
    conn: Option<(usize, Conn)>,
}

const LAG_SQL: &str = "SELECT application_name, \
     pg_wal_lsn_diff(replay_lsn, '0/0')::bigint, \
     pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint, \
     (extract(epoch from replay_lag) * 1000)::float8, \
     (extract(epoch from write_lag) * 1000)::float8, \
     (extract(epoch from flush_lag) * 1000)::float8 \
     FROM pg_stat_replication";

impl crate::lag::LagProbe for PgLag {
    fn sample(&mut self) -> BoxFuture<'_, Vec<crate::lag::LagReading>> {
        Box::pin(async move {
            let p = self.shared.primary();
            if self.conn.as_ref().is_none_or(|(at, _)| *at != p) {
                self.conn = connect(
                    &self.shared.addrs[p],
                    "schism-lag",
                    crate::lag::PROBE_TIMEOUT,
                )
                .await
                .ok()
                .map(|c| (p, c));
            }
            let Some((_, conn)) = &self.conn else {
                return Vec::new();
            };
            let rows = match tokio::time::timeout(
                crate::lag::PROBE_TIMEOUT,
                conn.client.query(LAG_SQL, &[]),
            )
            .await
            {
                Ok(Ok(rows)) => rows,
                _ => {
                    self.conn = None;
                    return Vec::new();
                }
            };
            let source = self.shared.ids.get(p).cloned();
            rows.iter()
                .filter_map(|r| {
                    let node: String = r.try_get(0).ok()?;
                    let replayed: Option<i64> = r.try_get(1).ok()?;
                    let current: Option<i64> = r.try_get(2).ok()?;
                    let ms = |i: usize| r.try_get::<_, Option<f64>>(i).ok().flatten();
                    let mut lags_ms = Vec::new();
                    if let Some(r) = ms(3) {
                        lags_ms.push(("replay", r));
                    }
                    if let Some(w) = ms(4) {
                        lags_ms.push(("write", w));
                    }
                    if let Some(f) = ms(5) {
                        lags_ms.push(("flush", f));
                    }
                    let (pos, cur) = (replayed.map(|x| x as u64), current.map(|x| x as u64));
                    let behind = pos.zip(cur).map(|(a, b)| b.saturating_sub(a));
                    Some(crate::lag::LagReading {
                        node,
                        source: source.clone(),
                        position: pos,
                        source_position: cur,
                        behind,
                        unit: "bytes",
                        // PostgreSQL's replay lag describes the last WAL the standby
                        // answered for, so it stays small while a cut standby falls
                        // behind (and is NULL once idle): the sampler's age of the
                        // oldest unreplayed byte is the ms figure; replay lag is kept
                        // alongside.
                        behind_ms: None,
                        lags_ms,
                    })
                })
                .collect()
        })
    }

    fn method(&self) -> String {
        "the primary's pg_stat_replication: WAL bytes from each standby's replay LSN to the primary's current LSN (PostgreSQL's write/flush/replay lag are kept in lag.jsonl)".into()
    }
}

struct PgSession {
    shared: Arc<Shared>,
    conns: Vec<Option<SessionConn>>,
    rng: ChaCha8Rng,
    sticky: usize,
}

/// Why a request did not return a value.
enum ExecError {
    /// Certainly not applied (a cas whose expected value differed).
    Definite(String),
    Pg(tokio_postgres::Error),
}

impl From<tokio_postgres::Error> for ExecError {
    fn from(e: tokio_postgres::Error) -> Self {
        ExecError::Pg(e)
    }
}

async fn open_session_conn(addr: &(String, u16), timeout: Duration) -> Result<SessionConn, String> {
    let conn = connect(addr, "schism", timeout).await?;
    let c = &conn.client;
    let prep = async {
        tokio::try_join!(
            c.prepare("SELECT v, reg FROM kv WHERE k = $1"),
            c.prepare(
                "INSERT INTO kv (k, v, reg) VALUES ($1, ARRAY[$2::bigint], true) \
                 ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v, reg = true"
            ),
            c.prepare(
                "INSERT INTO kv (k, v, reg) VALUES ($1, ARRAY[$2::bigint], false) \
                 ON CONFLICT (k) DO UPDATE SET v = kv.v || EXCLUDED.v"
            ),
            c.prepare(
                "UPDATE kv SET v = ARRAY[$3::bigint] WHERE k = $1 AND reg AND v = ARRAY[$2::bigint]"
            ),
        )
    };
    let (read, write, append, cas) = tokio::time::timeout(timeout, prep)
        .await
        .map_err(|_| {
            format!(
                "preparing statements timed out after {} ms",
                timeout.as_millis()
            )
        })?
        .map_err(|e| format!("preparing statements: {}", one_line(&e)))?;
    Ok(SessionConn {
        conn,
        stmts: Stmts {
            read,
            write,
            append,
            cas,
        },
    })
}

async fn exec(sc: &SessionConn, req: Request) -> Result<Value, ExecError> {
    let c = &sc.conn.client;
    let s = &sc.stmts;
    match req {
        Request::Read { key } => {
            let k = key as i64;
            let row = c.query_opt(&s.read, &[&k]).await?;
            Ok(match row {
                None => Value::Null,
                Some(row) => {
                    let v: Vec<i64> = row.get(0);
                    let reg: bool = row.get(1);
                    if reg {
                        v.first().map_or(Value::Null, |&x| Value::Int(x))
                    } else {
                        Value::list(v)
                    }
                }
            })
        }
        Request::Write { key, value } => {
            c.execute(&s.write, &[&(key as i64), &value]).await?;
            Ok(Value::Null)
        }
        Request::Append { key, value } => {
            c.execute(&s.append, &[&(key as i64), &value]).await?;
            Ok(Value::Null)
        }
        Request::Cas { key, expected, new } => {
            let n = c.execute(&s.cas, &[&(key as i64), &expected, &new]).await?;
            if n == 1 {
                Ok(Value::Null)
            } else {
                Err(ExecError::Definite(format!(
                    "cas: the value is not {expected}"
                )))
            }
        }
        Request::Add { .. } | Request::Incr { .. } => Err(ExecError::Definite(
            "not supported by the postgres adapter".into(),
        )),
    }
}

impl PgSession {
    /// Node `i`'s connection, opened again if it was closed or never opened (single ops
    /// and transactions alike).
    async fn connect(&mut self, i: usize, timeout: Duration) -> Result<(), String> {
        if self.conns[i]
            .as_ref()
            .is_some_and(|c| c.conn.client.is_closed())
        {
            self.conns[i] = None;
        }
        if self.conns[i].is_none() {
            self.conns[i] = Some(open_session_conn(&self.shared.addrs[i], timeout).await?);
        }
        Ok(())
    }

    fn read_node(&mut self) -> usize {
        let n = self.shared.ids.len();
        let p = self.shared.primary();
        match self.shared.reads {
            ReadRouting::Leader | ReadRouting::Ryw => p,
            ReadRouting::Any => self.rng.random_range(0..n),
            ReadRouting::Follower if n > 1 => (p + 1 + self.rng.random_range(0..n - 1)) % n,
            ReadRouting::Follower => p,
            ReadRouting::Sticky => self.sticky,
        }
    }

    async fn run(&mut self, req: Request) -> Reply {
        if matches!(req, Request::Add { .. } | Request::Incr { .. }) {
            return Reply::Fail {
                node: None,
                error: format!("{} is not supported by the postgres adapter", req.f()),
            };
        }
        let write = req.is_write();
        let i = if write {
            self.shared.primary()
        } else {
            self.read_node()
        };
        let node = self.shared.ids[i].clone();
        let timeout = self.shared.timeout;
        // Nothing was sent yet: a failed connect is a definite failure.
        if let Err(error) = self.connect(i, timeout).await {
            return Reply::Fail {
                node: Some(node),
                error,
            };
        }
        let Some(sc) = self.conns[i].as_ref() else {
            return Reply::Fail {
                node: Some(node),
                error: "no connection".into(),
            };
        };
        let outcome = tokio::time::timeout(timeout, exec(sc, req)).await;
        match outcome {
            Ok(Ok(value)) => Reply::Ok {
                value,
                node,
                meta: None,
                siblings: None,
            },
            Ok(Err(ExecError::Definite(error))) => Reply::Fail {
                node: Some(node),
                error,
            },
            Ok(Err(ExecError::Pg(e))) => {
                let error = one_line(&e);
                // An ERROR rolled the statement back (errors after a commit are PANICs);
                // FATAL or a lost connection leave a write's fate unknown.
                let rolled_back = e.as_db_error().is_some_and(|d| d.severity() == "ERROR");
                if !rolled_back || e.code() == Some(&SqlState::READ_ONLY_SQL_TRANSACTION) {
                    self.conns[i] = None;
                }
                Reply::uncertain(!rolled_back, write, Some(node), error)
            }
            Err(_) => {
                // The request is still on that connection: never reuse it.
                self.conns[i] = None;
                let error = format!("timed out after {} ms", timeout.as_millis());
                Reply::uncertain(true, write, Some(node), error)
            }
        }
    }
}

/// How a transaction ended without committing for sure.
enum TxnError {
    /// Before COMMIT was sent: the server rolls it back (or already did).
    Before(tokio_postgres::Error),
    /// The COMMIT itself answered with an error.
    Commit(tokio_postgres::Error),
}

/// Runs `mops` in one transaction at `level` on `sc`: `BEGIN ISOLATION LEVEL …`, one
/// statement per micro-op (the single-op statements: an append is `v || [x]` on the row,
/// a write replaces it, a read selects it), `COMMIT`. `committing` is set just before
/// COMMIT is sent, so a caller that gives up meanwhile knows whether the fate is open.
async fn exec_txn(
    sc: &SessionConn,
    level: Isolation,
    mut mops: Vec<MicroOp>,
    committing: &std::sync::atomic::AtomicBool,
) -> Result<Vec<MicroOp>, TxnError> {
    let c = &sc.conn.client;
    let s = &sc.stmts;
    c.batch_execute(&format!("BEGIN ISOLATION LEVEL {}", level.sql()))
        .await
        .map_err(TxnError::Before)?;
    for m in &mut mops {
        let k = m.key as i64;
        let done = match (m.f, &m.value) {
            (MopF::Read, _) => c.query_opt(&s.read, &[&k]).await.map(|row| {
                m.value = match row {
                    None => MopValue::Nil,
                    Some(row) => {
                        let v: Vec<i64> = row.get(0);
                        if row.get::<_, bool>(1) {
                            v.first().map_or(MopValue::Nil, |&x| MopValue::Int(x))
                        } else {
                            MopValue::List(v)
                        }
                    }
                };
            }),
            (MopF::Append, MopValue::Int(v)) => c.execute(&s.append, &[&k, v]).await.map(drop),
            (MopF::Write, MopValue::Int(v)) => c.execute(&s.write, &[&k, v]).await.map(drop),
            // parse_txn admits no other shape; nothing was changed yet.
            _ => continue,
        };
        done.map_err(TxnError::Before)?;
    }
    committing.store(true, Ordering::SeqCst);
    c.batch_execute("COMMIT").await.map_err(TxnError::Commit)?;
    Ok(mops)
}

impl PgSession {
    /// One transaction: read-only ones go where `--reads` sends reads (a standby cannot
    /// run SERIALIZABLE, so there it runs at REPEATABLE READ, as PostgreSQL's own hint
    /// says), the others to the primary. An error before COMMIT was sent is `Fail` (the
    /// server rolls the transaction back); an ERROR answering COMMIT (a serialization
    /// failure, 40001) is `Fail`; a lost connection or a timeout after COMMIT was sent is
    /// `Unknown`. The whole transaction gets `--client-timeout`.
    async fn run_txn(&mut self, mops: Vec<MicroOp>) -> TxnReply {
        let read_only = mops.iter().all(|m| m.f == MopF::Read);
        let p = self.shared.primary();
        let i = if read_only { self.read_node() } else { p };
        let level = match self.shared.isolation {
            Isolation::Serializable if i != p => Isolation::RepeatableRead,
            l => l,
        };
        let node = self.shared.ids[i].clone();
        let timeout = self.shared.timeout;
        if let Err(e) = self.connect(i, timeout).await {
            return TxnReply::Fail {
                error: format!("{node}: {e}"),
            };
        }
        let Some(sc) = self.conns[i].as_ref() else {
            return TxnReply::Fail {
                error: format!("{node}: no connection"),
            };
        };
        let committing = std::sync::atomic::AtomicBool::new(false);
        let outcome = tokio::time::timeout(timeout, exec_txn(sc, level, mops, &committing)).await;
        let (error, unknown, keep) = match outcome {
            Ok(Ok(mops)) => return TxnReply::Ok(mops),
            Ok(Err(TxnError::Before(e))) => {
                // A plain ERROR left the connection in an aborted transaction: roll it
                // back and keep it; anything else (FATAL, a lost connection) drops it.
                let plain = e.as_db_error().is_some_and(|d| d.severity() == "ERROR");
                let rolled = plain
                    && tokio::time::timeout(timeout, sc.conn.client.batch_execute("ROLLBACK"))
                        .await
                        .is_ok_and(|r| r.is_ok());
                (one_line(&e), false, rolled)
            }
            Ok(Err(TxnError::Commit(e))) => {
                // An ERROR answering COMMIT means it rolled back (40001 and the like);
                // errors after a commit are PANICs, which end the connection.
                let plain = e.as_db_error().is_some_and(|d| d.severity() == "ERROR");
                (format!("commit: {}", one_line(&e)), !plain, plain)
            }
            Err(_) => (
                format!("timed out after {} ms", timeout.as_millis()),
                committing.load(Ordering::SeqCst),
                false,
            ),
        };
        if !keep {
            // Dropping the connection ends its backend's transaction if still open.
            self.conns[i] = None;
        }
        TxnReply::not_committed(unknown, format!("{node}: {error}"))
    }
}

impl DbSession for PgSession {
    fn invoke(&mut self, req: Request) -> BoxFuture<'_, Reply> {
        Box::pin(self.run(req))
    }

    fn txn(&mut self, mops: Vec<MicroOp>) -> BoxFuture<'_, TxnReply> {
        Box::pin(self.run_txn(mops))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procfs::descendants;
    use std::os::unix::fs::PermissionsExt;

    fn ids() -> Vec<NodeId> {
        vec!["n1".into(), "n2".into(), "n3".into()]
    }

    #[test]
    fn replication_modes_map_to_synchronous_standby_names() {
        assert_eq!(
            sync_conf(Replication::Async, &ids()),
            "synchronous_standby_names = ''\n"
        );
        assert_eq!(
            sync_conf(Replication::SemiSync(1), &ids()),
            "synchronous_standby_names = 'ANY 1 (n1, n2, n3)'\n"
        );
        assert_eq!(
            sync_conf(Replication::Sync, &ids()),
            "synchronous_standby_names = 'ANY 2 (n1, n2, n3)'\n"
        );
    }

    #[test]
    fn an_unsearchable_parent_is_named_with_the_flag_to_change() {
        let dir = tempfile::Builder::new()
            .prefix("schism-pg-")
            .tempdir()
            .unwrap();
        let inner = dir.path().join("nodes");
        std::fs::create_dir(&inner).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        // A uid and gid that own nothing here: only the "other" bits count.
        let err = check_traversable(&inner, 54_321, 54_321)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--data-dir"), "{err}");
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
        assert!(!err.contains('\n'), "{err}");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        check_traversable(&inner, 54_321, 54_321).unwrap();
    }

    #[test]
    fn children_of_a_process_are_found_through_proc() {
        let me = std::process::id();
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        assert!(descendants(me).contains(&child.id()));
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
