//! The command line: `schism test`, `check`, `report`, `serve`, `compare`, `matrix`, and the
//! internal `schism node`.
//!
//! Flag names follow DESIGN.md so that scripts, docs and CI jobs stay stable. Values a
//! later version will accept (other targets, replication modes, read routings) are
//! refused with one line saying what is supported today, never silently ignored. Every
//! number and duration is checked by its parser (zero where it cannot work, negative
//! values, out-of-range ports) and `usage_error` renders any command-line error as one
//! line naming the flag ("--concurrency must be an integer from 1 to 1000, got -1").

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};
use schism_checker::txn::{ConsistencyModel, TxnWorkload};
use schism_history::Choices;
use schism_nemesis::NetChoice;
use schism_targets::db::{EtcdReads, Isolation};
use schism_targets::{
    AnyTopology, Durability, Failover, Model, ReadRouting, Replication, Resolution, Switch,
    TargetKind,
};
use schism_workloads::WorkloadKind;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// The one adapter from a domain type to a flag's value parser: clap checks the spelling
/// against the domain crate's list (and lists the choices, with their help, in `--help`
/// and in the error when it is wrong), then the type parses itself (`FromStr`).
fn choice<T: Choices>() -> impl TypedValueParser<Value = T> {
    choice_of::<T>(T::CHOICES)
}

/// `choice` restricted to some of a type's spellings (`--versioning` takes two of the
/// three conflict resolutions).
fn choice_of<T: Choices>(
    choices: &'static [(&'static str, &'static str)],
) -> impl TypedValueParser<Value = T> {
    PossibleValuesParser::new(choices.iter().map(|&(name, help)| {
        let v = PossibleValue::new(name);
        if help.is_empty() { v } else { v.help(help) }
    }))
    .try_map(|s| s.parse::<T>())
}

#[derive(Debug, Parser)]
#[command(
    name = "schism",
    version,
    about = "Jepsen-style fault injection and consistency checking"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one test: start a cluster, drive a workload, check the history, write results/.
    Test(Box<TestArgs>),
    /// Re-check a recorded history: a results folder, a history.jsonl file or a Jepsen .edn file.
    Check(CheckArgs),
    /// Remove what a killed run left behind: network namespaces, nft tables, stopped or
    /// orphaned node processes, cgroups, clock-shim files.
    Cleanup(CleanupArgs),
    /// Re-render report.html from a results folder alone (and the store's index.html).
    Report(ReportArgs),
    /// Browse a results store over HTTP (loopback by default).
    Serve(ServeArgs),
    /// Run a matrix of settings, several seeds each, and write one comparison page.
    Compare(CompareArgs),
    /// Run DESIGN.md's "test the tester" matrix (every row, several seeds each) on the
    /// reference cluster (and the databases' transaction rows in a build with their
    /// features): one page with what each row expects and what each seed showed.
    Matrix(MatrixArgs),
    /// A lab of SSH hosts on this machine (network namespaces, each with its own sshd),
    /// to try and test runs over SSH: `lab up`, then `test --inventory <its inventory>`.
    #[command(subcommand)]
    Lab(LabCommand),
    /// The same test as `test --target reference`, in deterministic simulation (one
    /// process, simulated time, network and clients); `--seeds A..B` sweeps many seeds.
    Sim(Box<SimArgs>),
    /// Minimise a failing run in simulation while it still shows the same anomaly kinds
    /// (fewer faults, ops, clients, keys, less time, a calmer network); writes the
    /// minimal run as a run folder with its plan.json.
    Shrink(ShrinkArgs),
    /// Run one reference node (internal: spawned by `schism test`).
    #[command(hide = true)]
    Node(NodeArgs),
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// `config.json`'s `test`: read back typed (a setting missing from an older file takes
/// its default).
#[derive(Debug, Clone, Args, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct TestArgs {
    /// The test's name: results go to <store>/<name>/<timestamp>/.
    #[arg(long, default_value = "default")]
    pub name: String,
    /// What to test.
    #[arg(long, default_value_t = TargetKind::Reference, value_parser = choice::<TargetKind>())]
    pub target: TargetKind,
    /// Audit an existing cluster instead of provisioning one: the members' client
    /// addresses, host:port,… (a database --target only; faults that need control of the
    /// processes are refused).
    #[arg(long, value_delimiter = ',')]
    pub endpoints: Vec<String>,
    /// Run the cluster on these hosts over SSH, one node per host: an inventory file
    /// (TOML: `known_hosts`, then `[[host]]` tables with address, port, user, key, sudo,
    /// dir, path), e.g. the one `schism lab up` writes.
    #[arg(long, value_name = "FILE", conflicts_with = "hosts")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory: Option<PathBuf>,
    /// Run the cluster on these hosts over SSH: [user@]address[:port],… (root, ssh's
    /// default key, keys checked against ~/.ssh/known_hosts).
    #[arg(long, value_delimiter = ',')]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Record the host key of a host never seen before (a changed key is still refused).
    #[arg(long)]
    #[serde(default, skip_serializing_if = "is_false")]
    pub accept_new_host_keys: bool,
    /// etcd: how reads are served.
    #[arg(long, default_value_t = EtcdReads::Linearizable, value_parser = choice::<EtcdReads>())]
    pub etcd_reads: EtcdReads,
    /// PostgreSQL and MariaDB Galera: the isolation level of every transaction
    /// (--workload list-append, rw-register). Default: the database's own (PostgreSQL
    /// read-committed, MariaDB repeatable-read); config.json records the level used.
    #[arg(long, value_parser = choice::<Isolation>())]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub isolation: Option<Isolation>,
    /// Replication model of the reference cluster.
    #[arg(long, default_value_t = Model::LeaderFollower, value_parser = choice::<Model>())]
    pub model: Model,
    /// Number of nodes.
    #[arg(long, default_value_t = 3, allow_negative_numbers = true, value_parser = int_in(1u16, 9))]
    pub nodes: u16,
    /// When the leader acknowledges: async, semi-sync:K (K followers hold it), sync (all do).
    #[arg(long, default_value = "async", value_parser = Replication::from_str)]
    pub replication: Replication,
    /// Multi-leader: conflict resolution (default lww).
    #[arg(long, value_parser = choice::<Resolution>())]
    pub conflict: Option<Resolution>,
    /// Leaderless: N/W/R — replicas per key, write acks, read answers (default 3/2/2).
    #[arg(long)]
    pub quorum: Option<String>,
    /// Leaderless: repair stale replicas a read found (default on).
    #[arg(long, value_parser = choice::<Switch>())]
    pub read_repair: Option<Switch>,
    /// Leaderless: sloppy quorum with hinted handoff (default off).
    #[arg(long, value_parser = choice::<Switch>())]
    pub sloppy_quorum: Option<Switch>,
    /// Leaderless: anti-entropy interval in milliseconds, 0 = off (default 0).
    #[arg(long, allow_negative_numbers = true, value_parser = int_in(0u64, u64::MAX))]
    pub anti_entropy_ms: Option<u64>,
    /// Leaderless: how versions are compared (default lww).
    #[arg(long, value_parser = choice_of::<Resolution>(Resolution::VERSIONING))]
    pub versioning: Option<Resolution>,
    /// Where reads go.
    #[arg(long, default_value_t = ReadRouting::Any, value_parser = choice::<ReadRouting>())]
    pub reads: ReadRouting,
    /// Whether a new leader is elected when the leader goes silent (default none;
    /// leader-follower, and Redis/PostgreSQL).
    #[arg(long, value_parser = choice::<Failover>())]
    pub failover: Option<Failover>,
    /// on: stale epochs are refused and a leader cut off from a majority steps down;
    /// off: a deposed leader keeps acknowledging writes (split brain). Default on;
    /// the reference leader-follower cluster only.
    #[arg(long, value_parser = choice::<Switch>())]
    pub fencing: Option<Switch>,
    /// on: the leader serves reads only while a majority confirmed it recently. Default
    /// off; the reference leader-follower cluster only.
    #[arg(long, value_parser = choice::<Switch>())]
    pub read_lease: Option<Switch>,
    /// Leader-follower: the leader ships new log entries to followers at most this often
    /// (0 = at once). A positive interval is how real asynchronous replication lags: a
    /// leader that dies takes up to this much acknowledged history with it.
    #[arg(long, default_value = "0ms", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_duration", deserialize_with = "de_duration")]
    pub ship_interval: Duration,
    /// How the log reaches the disk before an ack.
    #[arg(long, default_value_t = Durability::Fsync, value_parser = choice::<Durability>())]
    pub durability: Durability,
    /// Who replicates to whom: star | chain (leader-follower, default star);
    /// all-to-all | ring | star (multi-leader, default all-to-all).
    #[arg(long, value_parser = choice::<AnyTopology>())]
    pub topology: Option<AnyTopology>,
    /// What the clients do: single-key ops (append, register) or transactions
    /// (list-append, rw-register; checked for isolation anomalies, Elle-style).
    #[arg(long, default_value_t = WorkloadKind::Append, value_parser = choice::<WorkloadKind>())]
    pub workload: WorkloadKind,
    /// list-append, rw-register: the model the run is checked against (default
    /// strict-serializable; the report also lists every model the history rules out).
    // The transactional knobs are written only when set, so earlier config.json files
    // read back and write out byte for byte.
    #[arg(long, value_parser = choice::<ConsistencyModel>())]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consistency_model: Option<ConsistencyModel>,
    /// list-append, rw-register: fewest micro-ops per transaction (default 1).
    #[arg(long, value_parser = int_in(1usize, schism_history::txn::MAX_MICRO_OPS))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_txn_length: Option<usize>,
    /// list-append, rw-register: most micro-ops per transaction (default 4).
    #[arg(long, value_parser = int_in(1usize, schism_history::txn::MAX_MICRO_OPS))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_txn_length: Option<usize>,
    /// list-append, rw-register: how a micro-op picks among the active keys (default
    /// exponential: a few hot keys, so transactions conflict).
    #[arg(long, value_parser = choice::<schism_workloads::txn::KeyDist>())]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_dist: Option<schism_workloads::txn::KeyDist>,
    /// Keys active at once (a key is retired after --max-writes-per-key writes).
    #[arg(long, default_value_t = 8, allow_negative_numbers = true, value_parser = int_in(1u64, u64::MAX))]
    pub keys: u64,
    #[arg(long, default_value_t = 100, allow_negative_numbers = true, value_parser = int_in(1u64, u64::MAX))]
    pub max_writes_per_key: u64,
    /// Concurrent client workers.
    #[arg(long, default_value_t = 10, allow_negative_numbers = true, value_parser = int_in(1u32, 1000))]
    pub concurrency: u32,
    /// Ops per second over all workers; 0 = as fast as the cluster answers.
    #[arg(long, default_value_t = 2000.0, allow_negative_numbers = true, value_parser = number_in(0.0, 1e9))]
    pub rate: f64,
    /// End the run at the first anomaly the online checker proves (heal, stop the
    /// cluster, check the whole history offline, write the report): what a CI job wants.
    // Added after config.json's first typed form: written only when set, so an earlier
    // file reads back and writes out byte for byte.
    #[arg(long)]
    #[serde(skip_serializing_if = "is_false")]
    pub stop_on_anomaly: bool,
    /// How long the workload runs (10s, 500ms, 2m).
    #[arg(long, default_value = "30s", allow_hyphen_values = true, value_parser = positive_duration)]
    #[serde(serialize_with = "ser_duration", deserialize_with = "de_duration")]
    pub time_limit: Duration,
    /// A client request that takes longer is abandoned: a read then counts as failed,
    /// a write as indeterminate (info).
    #[arg(long, default_value = "1s", allow_hyphen_values = true, value_parser = positive_duration)]
    #[serde(serialize_with = "ser_duration", deserialize_with = "de_duration")]
    pub client_timeout: Duration,
    /// Fraction of ops that are reads.
    #[arg(long, default_value_t = 0.5, allow_negative_numbers = true, value_parser = number_in(0.0, 1.0))]
    pub read_fraction: f64,
    /// Seed for every random choice of the run (default: from the clock, and recorded).
    #[arg(long, allow_negative_numbers = true, value_parser = int_in(0u64, u64::MAX))]
    pub seed: Option<u64>,
    /// Where runs are stored.
    #[arg(long, default_value = "results")]
    pub store: PathBuf,
    /// Where node data directories go (default: <run folder>/nodes/<node>/).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// First port of the reference nodes (node i listens on base+i); default: free ports.
    #[arg(long, allow_negative_numbers = true, value_parser = int_in(1u16, u16::MAX))]
    pub base_port: Option<u16>,
    /// Upper bound on checker work (search states) before the verdict becomes unknown.
    #[arg(long, default_value_t = 5_000_000, allow_negative_numbers = true, value_parser = int_in(1u64, u64::MAX))]
    pub checker_max_states: u64,
    /// Upper bound on checker time before the verdict becomes unknown.
    #[arg(long, default_value = "2m", allow_hyphen_values = true, value_parser = positive_duration)]
    #[serde(serialize_with = "ser_duration", deserialize_with = "de_duration")]
    pub checker_time_limit: Duration,
    /// Faults to inject: any of partition,pause,kill,clock (comma-separated), all, or none.
    #[arg(long, default_value = "partition,kill", value_parser = parse_nemesis)]
    pub nemesis: String,
    /// How long each fault lasts, and how long the cluster then stays healed.
    #[arg(long, default_value = "3s", allow_hyphen_values = true, value_parser = positive_duration)]
    #[serde(serialize_with = "ser_duration", deserialize_with = "de_duration")]
    pub nemesis_interval: Duration,
    /// How pause, kill and clock faults pick nodes: any of one,minority,majority,leader,all.
    #[arg(long, default_value = "one,minority,majority,leader,all")]
    pub nemesis_targets: String,
    /// How partitions are made: netns (namespaces + nftables, needs root), local
    /// (cooperative link cuts through the nodes' admin API), auto (netns when possible).
    #[arg(long, default_value_t = NetChoice::Auto, value_parser = choice::<NetChoice>())]
    pub net: NetChoice,
    /// Inject exactly the faults of this plan file (a run folder's plan.json: times,
    /// kinds, nodes) instead of drawing them from the seed; replaces --nemesis,
    /// --nemesis-interval and --nemesis-targets.
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<PathBuf>,
    /// Also write a JUnit XML file: one test case per checker, failures carry the
    /// anomalies' explanations.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Testing the harness itself: fail (or panic) one second into the workload (or half
    /// a second after the first fault took effect), to prove that every node is stopped
    /// and every fault healed on that exit path.
    #[arg(long, value_enum, hide = true)]
    pub inject_harness_fault: Option<HarnessFault>,
}

#[derive(Debug, Clone, Args)]
pub struct CleanupArgs {
    /// Only list what would be removed.
    #[arg(long)]
    pub dry_run: bool,
    /// Also clean these hosts over SSH without the ledger (e.g. after the control
    /// machine lost it): every node process of a schism run folder under each host's
    /// `dir`, the `inet schism` nft table, and the run folders.
    #[arg(long, value_name = "FILE")]
    pub inventory: Option<PathBuf>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum LabCommand {
    /// Create the lab: N network namespaces on a bridge, each running its own sshd with a
    /// generated host key, one generated client key, and an inventory file (its path is
    /// printed). Needs root, iproute2, nftables and openssh-server.
    Up {
        /// How many hosts.
        #[arg(long, default_value_t = 3, value_parser = int_in(1u16, 9))]
        hosts: u16,
    },
    /// Remove the lab: sshd processes (by recorded pid), namespaces, bridge, keys, files.
    Down,
    /// Print the lab's inventory path and whether every sshd runs.
    Status,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HarnessFault {
    Error,
    Panic,
}

#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// A results folder (with history.jsonl and config.json), a history file (.jsonl,
    /// .edn), or several of them / a directory of them (one line per history and a
    /// summary; the exit code is the worst outcome).
    #[arg(required = true, num_args = 1..)]
    pub paths: Vec<PathBuf>,
    /// Memory the check may use (e.g. 2G); a history whose estimated need is larger is
    /// refused before it is read. Default: the memory available now.
    #[arg(long, value_name = "SIZE", value_parser = parse_bytes)]
    pub max_memory: Option<u64>,
    /// Follow a history another process is still writing: print anomalies as they are
    /// proven, end after --quiet without growth (or Ctrl-C), then check it all.
    #[arg(long)]
    pub follow: bool,
    /// With --follow: how long the file must stay unchanged at its end to be finished.
    #[arg(long, default_value = "5s", value_parser = positive_duration, requires = "follow")]
    pub quiet: Duration,
    /// Workload of the history (default: config.json's, else inferred from the ops);
    /// list-append and rw-register check histories of transactions (JSON Lines or EDN).
    #[arg(long, value_enum)]
    pub workload: Option<CheckWorkload>,
    /// The model a transactional history is checked against (list-append, rw-register;
    /// default: the run folder's recorded model, else strict-serializable).
    #[arg(long, value_parser = choice::<ConsistencyModel>())]
    pub consistency_model: Option<ConsistencyModel>,
    /// Print results.json to stdout instead of the summary.
    #[arg(long)]
    pub json: bool,
    /// Checkers to run, comma-separated: append, linearizable, graph, staleness,
    /// set-full, counter, stats (default: every checker that fits the workload).
    #[arg(long, value_delimiter = ',', value_parser = parse_checker)]
    pub checker: Vec<schism_checker::CheckerName>,
    #[arg(long, default_value_t = 5_000_000, allow_negative_numbers = true, value_parser = int_in(1u64, u64::MAX))]
    pub checker_max_states: u64,
    #[arg(long, default_value = "2m", allow_hyphen_values = true, value_parser = positive_duration)]
    pub checker_time_limit: Duration,
    /// Also write a JUnit XML file (one test case per checker).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Linearizability model (default for .edn: multi-register for txn histories, mutex
    /// for acquire/release, else cas-register; for .jsonl: from the workload).
    /// A `.edn` file is read with Knossos semantics: nil reads match anything.
    #[arg(long, value_parser = choice::<schism_checker::Model>())]
    pub model: Option<schism_checker::Model>,
    /// Every register's value before any write: an integer or `nil`
    /// (default: 0 for .edn, as Knossos's tests use; nil otherwise).
    #[arg(long, value_parser = parse_initial)]
    pub initial: Option<Initial>,
    /// Linearizability algorithm for register keys: zones where values are unique, else
    /// the exact search (auto); or force one.
    #[arg(long, default_value_t = schism_checker::Algorithm::Auto, value_parser = choice::<schism_checker::Algorithm>())]
    pub algorithm: schism_checker::Algorithm,
}

/// `schism check --workload`: a single-object workload (the checker's `Workload`) or a
/// transactional one (`TxnWorkload`); what the history holds decides which checker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckWorkload {
    Append,
    Register,
    /// `add` of unique integers and reads of the whole set (Jepsen's set-full).
    Set,
    /// `incr` (or `add`) of integers and integer reads.
    Counter,
    ListAppend,
    RwRegister,
}

impl CheckWorkload {
    /// The transactional workload, if this is one.
    pub fn txn(self) -> Option<TxnWorkload> {
        match self {
            CheckWorkload::ListAppend => Some(TxnWorkload::ListAppend),
            CheckWorkload::RwRegister => Some(TxnWorkload::RwRegister),
            _ => None,
        }
    }

    /// The single-object workload, if this is one.
    pub fn single(self) -> Option<schism_checker::Workload> {
        match self {
            CheckWorkload::Append => Some(schism_checker::Workload::Append),
            CheckWorkload::Register => Some(schism_checker::Workload::Register),
            CheckWorkload::Set => Some(schism_checker::Workload::Set),
            CheckWorkload::Counter => Some(schism_checker::Workload::Counter),
            CheckWorkload::ListAppend | CheckWorkload::RwRegister => None,
        }
    }
}

/// `schism check --initial`: an integer, or nil.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Initial(pub Option<i64>);

fn parse_initial(s: &str) -> Result<Initial, String> {
    match s {
        "nil" | "null" => Ok(Initial(None)),
        _ => s
            .parse::<i64>()
            .map(|v| Initial(Some(v)))
            .map_err(|_| format!("{s:?} is neither an integer nor nil")),
    }
}

#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// A run folder (with config.json, history.jsonl, results.json), or a store: then
    /// every run in it that lacks a report.html gets one, and index.html is rewritten.
    pub path: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The results store to serve.
    #[arg(default_value = "results")]
    pub dir: PathBuf,
    /// Address to listen on. Loopback by default; anything else exposes your results
    /// (histories, settings) to that network.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub bind: std::net::SocketAddr,
}

#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// The comparison's name (default: the matrix file's `name`, else `compare`): the
    /// page goes to <store>/compare/<name>/<timestamp>/, runs to <store>/<name>-<setting>/.
    #[arg(long)]
    pub name: Option<String>,
    /// A `schism test` flag and the values to try, e.g. `replication=sync,semi-sync:1,async`.
    /// Repeat for a matrix (every combination is run).
    #[arg(long, value_name = "FLAG=V1,V2,...")]
    pub vary: Vec<String>,
    /// A TOML file with `name`, `seeds` or `seed_list`, `args` (shared flags) and a
    /// `[vary]` table of flag = [values]; command-line options add to it.
    #[arg(long, value_name = "FILE")]
    pub matrix: Option<PathBuf>,
    /// Seeds per setting (1, 2, … N).
    #[arg(long, conflicts_with = "seed_list")]
    pub seeds: Option<u64>,
    /// Explicit seeds, e.g. `7,8,9`.
    #[arg(long, value_delimiter = ',')]
    pub seed_list: Vec<u64>,
    /// Where runs and the comparison are stored.
    #[arg(long, default_value = "results")]
    pub store: PathBuf,
    /// Flags every run shares, after `--`: e.g. `-- --time-limit 20s --nemesis kill`.
    #[arg(last = true)]
    pub test_args: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct MatrixArgs {
    /// Seeds per row (1, 2, … N).
    #[arg(long, default_value_t = 5)]
    pub seeds: u64,
    /// Every run's workload time limit (default: each row's own, 6–30 s).
    #[arg(long, value_parser = parse_duration)]
    pub time_limit: Option<Duration>,
    /// Rows to run, comma-separated parts of their ids (e.g. `lf-no-lease,ll-`); default all.
    #[arg(long)]
    pub rows: Option<String>,
    /// Only list the rows (id, expected outcome, configuration, faults).
    #[arg(long)]
    pub list: bool,
    /// Where the matrix goes: <store>/matrix/<timestamp>/ (matrix.html, matrix.json, runs).
    #[arg(long, default_value = "results")]
    pub store: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct NodeArgs {
    /// The node's JSON configuration, written by `schism test`.
    #[arg(long)]
    pub config: PathBuf,
}

impl Cli {
    /// Makes every path given on the command line absolute (see [`absolute`]); `main`
    /// calls this once, before any command runs.
    pub fn resolve_paths(&mut self) -> anyhow::Result<()> {
        match &mut self.command {
            Command::Test(args) => args.resolve_paths(),
            Command::Check(args) => {
                for p in &mut args.paths {
                    absolute(p)?;
                }
                absolute_opt(&mut args.junit)
            }
            Command::Cleanup(args) => absolute_opt(&mut args.inventory),
            Command::Lab(_) => Ok(()),
            Command::Report(args) => absolute(&mut args.path),
            Command::Serve(args) => absolute(&mut args.dir),
            Command::Compare(args) => {
                absolute(&mut args.store)?;
                absolute_opt(&mut args.matrix)
            }
            Command::Matrix(args) => absolute(&mut args.store),
            Command::Node(args) => absolute(&mut args.config),
            Command::Sim(args) => args.test.resolve_paths(),
            Command::Shrink(args) => {
                absolute(&mut args.run_dir)?;
                absolute_opt(&mut args.store)
            }
        }
    }
}

impl TestArgs {
    /// Makes `--store`, `--data-dir`, `--plan` and `--junit` absolute. Called where a run's settings
    /// are validated (`run::run_test_outcome`), so runs that `schism compare` builds get
    /// it too; a path already absolute is left as it is.
    pub fn resolve_paths(&mut self) -> anyhow::Result<()> {
        absolute(&mut self.store)?;
        absolute_opt(&mut self.data_dir)?;
        absolute_opt(&mut self.plan)?;
        absolute_opt(&mut self.inventory)?;
        absolute_opt(&mut self.junit)
    }
}

/// Replaces a user-given path by its absolute form against the working directory
/// (lexically: symlinks are kept and the path need not exist yet). Databases are started
/// in their node folder, so a relative path handed to them would be resolved a second
/// time from there; resolving once, here, means no component ever sees a relative path.
pub fn absolute(path: &mut PathBuf) -> anyhow::Result<()> {
    if path.is_absolute() {
        return Ok(());
    }
    *path = absolute_of(path)?;
    Ok(())
}

fn absolute_opt(path: &mut Option<PathBuf>) -> anyhow::Result<()> {
    match path {
        Some(p) => absolute(p),
        None => Ok(()),
    }
}

fn absolute_of(path: &Path) -> anyhow::Result<PathBuf> {
    if path.as_os_str().is_empty() {
        anyhow::bail!("an empty path was given: name a file or folder (e.g. --store results)");
    }
    std::path::absolute(path).map_err(|e| {
        anyhow::anyhow!(
            "cannot make {} absolute ({e}): run schism from a folder that still exists",
            path.display()
        )
    })
}

/// Parses a checker name (`graph`, `set-full`, …).
pub fn parse_checker(s: &str) -> Result<schism_checker::CheckerName, String> {
    schism_checker::CheckerName::parse(s.trim()).ok_or_else(|| {
        let names: Vec<&str> = schism_checker::CheckerName::ALL
            .iter()
            .map(|c| c.as_str())
            .collect();
        format!("unknown checker {s:?}; choose from {}", names.join(", "))
    })
}

/// `1.5G`, `800M`, `64k`, or plain bytes (powers of 1024).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        None => (t, 1u64),
        Some((at, _)) => {
            let unit = t[at..].to_ascii_lowercase();
            let mult = match unit.trim_end_matches('b').trim_end_matches('i') {
                "" => 1,
                "k" => 1 << 10,
                "m" => 1 << 20,
                "g" => 1 << 30,
                "t" => 1 << 40,
                _ => return Err(format!("{s:?}: use a size such as 800M or 2G")),
            };
            (&t[..at], mult)
        }
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?}: use a size such as 800M or 2G"))?;
    if !(v > 0.0 && v.is_finite()) {
        return Err(format!("{s:?}: must be more than zero"));
    }
    Ok((v * mult as f64) as u64)
}

/// An integer flag's parser: in `lo..=hi`, else an error in words ("must be a positive
/// integer, got -1"), which `usage_error` prefixes with the flag.
fn int_in<T>(lo: T, hi: T) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static
where
    T: FromStr + PartialOrd + Copy + std::fmt::Display + Send + Sync + 'static,
{
    move |s: &str| {
        let what = if hi.to_string().len() >= 10 {
            if lo.to_string() == "0" {
                "must be a non-negative integer".to_owned()
            } else if lo.to_string() == "1" {
                "must be a positive integer".to_owned()
            } else {
                format!("must be an integer of at least {lo}")
            }
        } else {
            format!("must be an integer from {lo} to {hi}")
        };
        match s.trim().parse::<T>() {
            Ok(v) if v >= lo && v <= hi => Ok(v),
            _ => Err(format!("{what}, got {s}")),
        }
    }
}

/// A number flag's parser: finite and in `lo..=hi`.
fn number_in(lo: f64, hi: f64) -> impl Fn(&str) -> Result<f64, String> + Clone + Send + Sync {
    move |s: &str| match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (lo..=hi).contains(&v) => Ok(v),
        _ => Err(format!("must be a number from {lo} to {hi}, got {s}")),
    }
}

/// A duration that must be longer than zero (a time limit, a timeout, a budget).
pub fn positive_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err(format!("must be longer than 0 (e.g. 10s, 500ms), got {s}"));
    }
    Ok(d)
}

/// `--nemesis`: a non-empty list (`none` says no faults explicitly).
fn parse_nemesis(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err(
            "is empty: give any of partition,pause,kill,clock (comma-separated), all, or none"
                .into(),
        );
    }
    schism_nemesis::Kind::parse_list(s)?;
    Ok(s.to_owned())
}

/// One line for a command-line error, naming the flag: `--concurrency must be a positive
/// integer, got -1` rather than clap's usage block.
pub fn usage_error(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() == ErrorKind::ValueValidation
        && let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg)
        && let Some(source) = std::error::Error::source(e)
    {
        let flag = arg.split_whitespace().next().unwrap_or(arg);
        let why = source.to_string();
        // "must …" and "is …" complete a sentence about the flag; anything else follows a colon.
        return if why.starts_with("must ") || why.starts_with("is ") {
            format!("{flag} {why}")
        } else {
            format!("{flag}: {why}")
        };
    }
    let text = e.to_string();
    let first = text
        .lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ");
    let tip = match e.get(ContextKind::ValidValue) {
        Some(ContextValue::Strings(values)) if !values.is_empty() => {
            format!(" (possible values: {})", values.join(", "))
        }
        _ => text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("tip:"))
            .map(|t| format!(" ({t})"))
            .unwrap_or_default(),
    };
    format!("{first}{tip}; see --help")
}

/// Parses `10s`, `500ms`, `2m`, `1h`, `250us`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.starts_with('-') {
        return Err(format!("must not be negative, got {s}"));
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration: write e.g. 10s, 500ms, 2m"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1e3,
        "us" => n / 1e6,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?}; use ms, s, m or h")),
    };
    if !secs.is_finite() || !(0.0..=7.0 * 86400.0).contains(&secs) {
        return Err(format!("{s:?} is out of range (0 to 7 days)"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A duration as `config.json` writes it (`30000ms`).
pub fn duration_text(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&duration_text(*d))
}

/// Reads what `ser_duration` wrote (`30000ms`), or any duration `parse_duration` takes.
fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = <String as serde::Deserialize>::deserialize(d)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

impl Default for TestArgs {
    /// Every flag at its default, as `schism test` with no flags parses it.
    fn default() -> Self {
        #[derive(Parser)]
        struct Defaults {
            #[command(flatten)]
            test: TestArgs,
        }
        Defaults::parse_from(["schism"]).test
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `test_flags` gives back flags that parse to the same settings.
    #[test]
    fn test_flags_round_trip() {
        let argv = [
            "schism",
            "test",
            "--model",
            "leaderless",
            "--quorum",
            "3/2/2",
            "--rate",
            "7",
            "--time-limit",
            "4750ms",
            "--read-repair",
            "off",
            "--concurrency",
            "2",
            "--seed",
            "9",
            "--plan",
            "/tmp/p.json",
            "--stop-on-anomaly",
            "--sloppy-quorum",
            "on",
        ];
        let Ok(Cli {
            command: Command::Test(args),
        }) = Cli::try_parse_from(argv)
        else {
            panic!("the flags parse");
        };
        let flags = test_flags(&args);
        let again = ["schism", "test"]
            .into_iter()
            .map(str::to_owned)
            .chain(flags.iter().cloned());
        let Ok(Cli {
            command: Command::Test(back),
        }) = Cli::try_parse_from(again)
        else {
            panic!("{flags:?} do not parse");
        };
        assert_eq!(
            serde_json::to_value(&*back).unwrap(),
            serde_json::to_value(&*args).unwrap(),
            "{flags:?}"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(
            parse_duration("ten")
                .unwrap_err()
                .contains("not a duration")
        );
        assert!(parse_duration("5d").unwrap_err().contains("unknown unit"));
    }

    #[test]
    fn sizes_parse_in_powers_of_1024() {
        assert_eq!(parse_bytes("2G"), Ok(2 << 30));
        assert_eq!(parse_bytes("800M"), Ok(800 << 20));
        assert_eq!(parse_bytes("1.5gib"), Ok(3 << 29));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert!(parse_bytes("0").is_err());
        assert!(parse_bytes("lots").is_err());
    }

    #[test]
    fn relative_paths_become_absolute_once() {
        let cwd = std::env::current_dir().unwrap();
        let mut cli =
            Cli::try_parse_from(["schism", "test", "--data-dir", "d", "--junit", "/j.xml"])
                .unwrap();
        cli.resolve_paths().unwrap();
        let Command::Test(args) = &cli.command else {
            panic!("not a test command");
        };
        assert_eq!(args.store, cwd.join("results"));
        assert_eq!(args.data_dir.as_deref(), Some(cwd.join("d").as_path()));
        assert_eq!(args.junit.as_deref(), Some(Path::new("/j.xml")));
        let mut again = args.clone();
        again.resolve_paths().unwrap();
        assert_eq!(again.store, args.store);
        let mut empty = PathBuf::new();
        assert!(
            absolute(&mut empty)
                .unwrap_err()
                .to_string()
                .contains("empty path")
        );
    }

    /// Every spelling a domain crate lists for a flag is one its type parses, and the
    /// type displays it back the same way (what `config.json` and messages show).
    #[test]
    fn every_listed_spelling_parses_and_displays_back() {
        fn all<T: Choices + std::fmt::Display>(choices: &[(&str, &str)]) {
            for &(name, _) in choices {
                let v: T = name.parse().unwrap();
                assert_eq!(v.to_string(), name);
            }
        }
        all::<Model>(Model::CHOICES);
        all::<Resolution>(Resolution::CHOICES);
        all::<Resolution>(Resolution::VERSIONING);
        all::<Switch>(Switch::CHOICES);
        all::<AnyTopology>(AnyTopology::CHOICES);
        all::<WorkloadKind>(WorkloadKind::CHOICES);
        all::<TargetKind>(TargetKind::CHOICES);
        all::<ReadRouting>(ReadRouting::CHOICES);
        all::<Failover>(Failover::CHOICES);
        all::<Durability>(Durability::CHOICES);
        all::<EtcdReads>(EtcdReads::CHOICES);
        all::<Isolation>(Isolation::CHOICES);
        all::<NetChoice>(NetChoice::CHOICES);
        all::<ConsistencyModel>(ConsistencyModel::CHOICES);
        all::<schism_checker::Model>(schism_checker::Model::CHOICES);
        all::<schism_checker::Algorithm>(schism_checker::Algorithm::CHOICES);
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}

/// `schism sim`'s flags: `schism test`'s, the simulated network's, and the sweep's.
#[derive(Debug, Clone, Args)]
pub struct SimArgs {
    #[command(flatten)]
    pub test: TestArgs,
    /// Sweep seeds A..B (inclusive) on every core: one line per failing seed, a summary
    /// table, no run folders. Conflicts with --seed.
    #[arg(long, value_name = "A..B", value_parser = parse_seeds, conflicts_with = "seed")]
    pub seeds: Option<SeedRange>,
    /// Delay of every simulated node-to-node message (replication, votes, heartbeats:
    /// the network plus the peer's HTTP and disk), uniform in MIN..MAX; the wider the
    /// range, the more messages overtake each other.
    #[arg(long, value_name = "MIN..MAX", default_value = "100us..2ms", value_parser = parse_delays)]
    pub sim_delay: DelayRange,
    /// Delay of every simulated client request and answer (one way), uniform in MIN..MAX.
    #[arg(long, value_name = "MIN..MAX", default_value = "50us..500us", value_parser = parse_delays)]
    pub sim_client_delay: DelayRange,
    /// The delay's long tail: with probability P a node-to-node message is held up by a
    /// further uniform 0..MAX (a slow disk, a descheduled process), as P:MAX.
    #[arg(long, value_name = "P:MAX", default_value = "0.01:50ms", value_parser = parse_tail)]
    pub sim_delay_tail: Tail,
    /// Probability that a node-to-node message is lost.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true, value_parser = probability)]
    pub sim_loss: f64,
    /// Probability that a node-to-node message is delivered twice.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true, value_parser = probability)]
    pub sim_duplicate: f64,
    /// Sweep threads (default: every core).
    #[arg(long, allow_negative_numbers = true, value_parser = jobs)]
    pub jobs: Option<usize>,
}

/// `schism shrink`'s flags.
#[derive(Debug, Clone, Args)]
pub struct ShrinkArgs {
    /// The failing run's folder (simulated or real: results/<name>/<timestamp>).
    pub run_dir: PathBuf,
    /// Anomaly kinds that must still show, comma-separated (each may be alternatives
    /// joined by `|`, e.g. lost-write|divergence); default: every kind the run counted.
    #[arg(long, value_delimiter = ',')]
    pub kind: Vec<String>,
    /// At most this many simulated runs.
    #[arg(long, default_value_t = 400, allow_negative_numbers = true, value_parser = int_in(1u64, u64::MAX))]
    pub max_attempts: u64,
    /// Stop searching after this long (wall time) and keep the smallest run found.
    #[arg(long, default_value = "60s", allow_hyphen_values = true, value_parser = positive_duration)]
    pub time_budget: Duration,
    /// Never propose a run shorter than this: a reproducer of a few milliseconds is
    /// faithful in simulation but too short to replay on real processes, whose first
    /// requests alone take that long.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub min_time_limit: Duration,
    /// For a real run: simulate it with its seed and up to this many seeds in all until
    /// one shows the kinds.
    #[arg(long, default_value_t = 20, allow_negative_numbers = true, value_parser = int_in(1u64, 10_000))]
    pub seeds: u64,
    /// Store for the minimal run (default: the input run's store), as
    /// <store>/<name>-shrunk/<timestamp>/.
    #[arg(long)]
    pub store: Option<PathBuf>,
}

/// The `schism test` flags that give `args` (every setting that differs from its
/// default, `--seed` and `--plan` included; `--store` and `--name` left out), in the
/// order of `config.json`'s keys.
pub fn test_flags(args: &TestArgs) -> Vec<String> {
    let (Ok(serde_json::Value::Object(given)), Ok(serde_json::Value::Object(defaults))) = (
        serde_json::to_value(args),
        serde_json::to_value(TestArgs::default()),
    ) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (key, v) in &given {
        if matches!(key.as_str(), "store" | "name") || defaults.get(key) == Some(v) {
            continue;
        }
        let flag = format!("--{}", key.replace('_', "-"));
        match v {
            serde_json::Value::Null | serde_json::Value::Bool(false) => {}
            serde_json::Value::Bool(true) => out.push(flag),
            serde_json::Value::String(s) => out.extend([flag, s.clone()]),
            serde_json::Value::Array(a) => out.extend([
                flag,
                a.iter()
                    .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join(","),
            ]),
            other => out.extend([flag, other.to_string()]),
        }
    }
    out
}

/// The `schism sim` flags that give `args`: `test_flags` and every simulated-network
/// knob.
pub fn sim_flags(args: &SimArgs) -> Vec<String> {
    let us = |d: Duration| format!("{}us", d.as_micros());
    let mut out = test_flags(&args.test);
    out.extend([
        "--sim-delay".into(),
        format!("{}..{}", us(args.sim_delay.min), us(args.sim_delay.max)),
        "--sim-client-delay".into(),
        format!(
            "{}..{}",
            us(args.sim_client_delay.min),
            us(args.sim_client_delay.max)
        ),
        "--sim-delay-tail".into(),
        format!(
            "{}:{}",
            args.sim_delay_tail.probability,
            us(args.sim_delay_tail.max)
        ),
        "--sim-loss".into(),
        args.sim_loss.to_string(),
        "--sim-duplicate".into(),
        args.sim_duplicate.to_string(),
    ]);
    out
}

/// `--seeds A..B`, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedRange {
    pub first: u64,
    pub last: u64,
}

/// `--sim-delay MIN..MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DelayRange {
    pub min: Duration,
    pub max: Duration,
}

fn parse_seeds(s: &str) -> Result<SeedRange, String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("must be a range A..B of seeds (e.g. 1..1000), got {s}"))?;
    let num = |x: &str| {
        x.trim()
            .trim_start_matches('=')
            .parse::<u64>()
            .map_err(|_| format!("must be a range A..B of non-negative integers, got {s}"))
    };
    let (first, last) = (num(a)?, num(b)?);
    if last < first {
        return Err(format!("must go upwards (A ≤ B), got {s}"));
    }
    Ok(SeedRange { first, last })
}

fn parse_delays(s: &str) -> Result<DelayRange, String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("must be a range MIN..MAX (e.g. 100us..2ms), got {s}"))?;
    let (min, max) = (parse_duration(a)?, parse_duration(b)?);
    if max < min {
        return Err(format!("must have MIN ≤ MAX, got {s}"));
    }
    if max > Duration::from_secs(60) {
        return Err(format!("must be at most 60s, got {s}"));
    }
    Ok(DelayRange { min, max })
}

/// `--sim-delay-tail P:MAX`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tail {
    pub probability: f64,
    pub max: Duration,
}

fn parse_tail(s: &str) -> Result<Tail, String> {
    let (p, d) = s
        .split_once(':')
        .ok_or_else(|| format!("must be P:MAX (e.g. 0.01:50ms, or 0:0 for none), got {s}"))?;
    let probability = probability(p)?;
    let max = parse_duration(d)?;
    if max > Duration::from_secs(60) {
        return Err(format!("must have MAX at most 60s, got {s}"));
    }
    Ok(Tail { probability, max })
}

fn probability(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(p) if (0.0..1.0).contains(&p) => Ok(p),
        _ => Err(format!("must be a probability from 0 to below 1, got {s}")),
    }
}

fn jobs(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=1024).contains(&n) => Ok(n),
        _ => Err(format!("must be an integer from 1 to 1024, got {s}")),
    }
}
