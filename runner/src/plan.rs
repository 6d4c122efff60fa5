//! The run plan: a `schism test` invocation turned, once, into everything a run needs and
//! validated as a whole before anything is created.
//!
//! `RunPlan::new` is the one place where the flags are checked against each other: the
//! workload, the replication mode against the node count, the model's knobs (`models`),
//! the faults against the target's declared capabilities, the knobs a database does not
//! have, and the nemesis schedule — drawn from the seed, or read from `--plan FILE` (then
//! the fault kinds checked against the target are the plan's, and the flags that only
//! shape a drawn schedule are refused). Every error is one line naming the flag to fix, and the
//! binary turns it into exit code 3. `schism test` builds one plan; `schism compare` builds
//! the plan of every cell of its matrix before the first run starts, so a bad combination
//! fails at once instead of mid-matrix. Building a plan creates nothing and starts nothing
//! (it only asks whether namespaces and a C compiler are available).

use anyhow::{Result, bail};
use schism_nemesis::{
    CapabilitiesCheck, Kind, Net, NetChoice, PlanFile, Schedule, ScheduleSpec, Selector,
};
use schism_targets::db::{DbKind, Isolation};
use schism_targets::target::{Capabilities, FaultEnv};
use schism_targets::{Model, ReadRouting, ReplicaSettings};
use schism_workloads::{Generator, TxnShape, WorkloadSpec};

use crate::cli::TestArgs;
use crate::models;

/// Quiet time after the time limit (faults already healed) before the final reads, so
/// that replication settles; a final read that misses an acknowledged write proves it lost.
pub const FINAL_READ_QUIET: std::time::Duration = std::time::Duration::from_secs(1);

/// How long after the quiet period a final read that failed is tried again (Jepsen's
/// final reads retry until they succeed): a cluster that needs a few seconds to elect a
/// leader after the final heal is still observed recovering, instead of the run being
/// `unknown` for want of a read after the heal. Bounded so a cluster that never recovers
/// still ends the run.
pub const FINAL_READ_RETRY: std::time::Duration = std::time::Duration::from_secs(10);

/// Pause between two tries of one final read.
pub const FINAL_READ_BACKOFF: std::time::Duration = std::time::Duration::from_millis(200);

/// Time allowed after the final reads' retries for in-flight requests before workers are
/// aborted (their open ops then count as indeterminate).
pub const HARD_DEADLINE_SLACK: std::time::Duration = std::time::Duration::from_secs(30);

/// The run time (since the workload started) until which a failed final read is tried
/// again: `schism test` and `schism sim` alike.
pub fn final_retry_until(args: &TestArgs) -> std::time::Duration {
    args.time_limit + FINAL_READ_QUIET + FINAL_READ_RETRY
}

/// The run's hard deadline after the workload started: the final reads' retries, one
/// client timeout and the slack.
pub fn hard_deadline(args: &TestArgs) -> std::time::Duration {
    final_retry_until(args) + args.client_timeout + HARD_DEADLINE_SLACK
}

/// A validated run: the arguments and what was derived from them.
#[derive(Debug)]
pub struct RunPlan {
    pub args: TestArgs,
    /// `--seed`, or one taken from the clock (and recorded).
    pub seed: u64,
    pub workload: WorkloadSpec,
    pub generator: Generator,
    pub model: Model,
    pub replica: ReplicaSettings,
    /// The database adapter; `None` for the reference cluster.
    pub db_kind: Option<DbKind>,
    pub kinds: Vec<Kind>,
    /// How partitions are made (`None`: plain loopback) and the notice saying why.
    pub net: Option<Net>,
    pub net_notice: String,
    /// `n1`…: `--nodes` of them, or one per `--endpoints` address.
    pub node_ids: Vec<String>,
    /// A quiet period between the final heal and the end of the workload.
    pub quiet_ns: u64,
    pub schedule: Schedule,
    /// The hosts of a run over SSH (`--inventory`/`--hosts`), one node each.
    pub hosts: Option<crate::hosts::Hosts>,
}

impl RunPlan {
    /// Validates `args` as a whole; the error names the flag to fix.
    pub fn new(mut args: TestArgs) -> Result<RunPlan> {
        let seed = args.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
        let hosts = crate::hosts::load(args.inventory.as_deref(), &args.hosts)?;
        if let Some(h) = &hosts {
            // One node per host.
            args.nodes = u16::try_from(h.specs.len())
                .ok()
                .filter(|n| (1..=9).contains(n))
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "the inventory names {} hosts: a cluster has 1 to 9 nodes, one per host",
                        h.specs.len()
                    )
                })?;
        }
        let workload = workload_spec(&args, seed);
        let shape = txn_shape(&args)?;
        let generator =
            Generator::with_shape(workload.clone(), shape).map_err(anyhow::Error::msg)?;
        args.replication
            .validate(args.nodes as usize)
            .map_err(anyhow::Error::msg)?;
        let (model, replica) = models::settings(&args)?;
        let db_kind = args.target.db();
        if args.workload.txn().is_some()
            && let Some(kind) = db_kind
            && let Some(why) = Capabilities::db(
                kind,
                &FaultEnv {
                    managed: args.endpoints.is_empty(),
                    have_netns: true,
                    have_shim: true,
                },
            )
            .transactions
        {
            bail!(
                "--workload {} cannot run on --target {kind}: {why}",
                args.workload
            );
        }
        if args.isolation.is_some() && args.workload.txn().is_none() && db_kind.is_some() {
            bail!(
                "--isolation applies to the transactional workloads only (single-key ops run as autocommit statements): add --workload list-append or rw-register"
            );
        }
        // The level transactions run at, recorded (config.json, the report's settings)
        // even when the database's default was left in force.
        if args.workload.txn().is_some()
            && let Some(kind) = db_kind
        {
            args.isolation = args.isolation.or(Isolation::default_for(kind));
        }
        let node_count = if args.endpoints.is_empty() {
            usize::from(args.nodes)
        } else {
            args.endpoints.len()
        };
        let node_ids: Vec<String> = (1..=node_count).map(|i| format!("n{i}")).collect();
        // Faults: refuse what the target cannot take before anything starts.
        let (kinds, selectors, fixed) = nemesis_choice(&args, &node_ids)?;
        let (net, net_notice) = match (db_kind, &hosts) {
            (None, Some(_)) => hosts_net(&args, &kinds)?,
            (Some(kind), Some(_)) => hosts_db_net(&args, kind, &kinds)?,
            (None, None) => reference_net(&args, &kinds)?,
            (Some(kind), None) => db_net(&args, kind, &kinds)?,
        };
        let (schedule, quiet_ns) = match fixed {
            Some(file) => fixed_schedule(&args, file),
            None => schedule(&args, kinds.clone(), selectors, &node_ids, seed)?,
        };
        Ok(RunPlan {
            args,
            seed,
            workload,
            generator,
            model,
            replica,
            db_kind,
            kinds,
            net,
            net_notice,
            node_ids,
            quiet_ns,
            schedule,
            hosts,
        })
    }
}

/// The workload a run's flags and seed ask for (`schism test` and `schism sim` alike).
pub fn workload_spec(args: &TestArgs, seed: u64) -> WorkloadSpec {
    WorkloadSpec {
        kind: args.workload,
        keys: args.keys,
        max_writes_per_key: args.max_writes_per_key,
        read_fraction: args.read_fraction,
        rate_hz: args.rate,
        time_limit_ns: args.time_limit.as_nanos() as u64,
        final_reads: true,
        final_read_delay_ns: FINAL_READ_QUIET.as_nanos() as u64,
        seed,
    }
}

/// The fault kinds and selectors a run's flags ask for, or (with `--plan FILE`) the
/// plan's kinds and the plan itself, validated against the run's nodes and time limit
/// (`schism test` and `schism sim` alike). With `--plan`, the flags that shape a drawn
/// schedule are refused: they would be silently ignored.
pub fn nemesis_choice(
    args: &TestArgs,
    node_ids: &[String],
) -> Result<(Vec<Kind>, Vec<Selector>, Option<PlanFile>)> {
    let Some(path) = &args.plan else {
        let kinds = Kind::parse_list(&args.nemesis).map_err(anyhow::Error::msg)?;
        let selectors = Selector::parse_list(&args.nemesis_targets).map_err(anyhow::Error::msg)?;
        return Ok((kinds, selectors, None));
    };
    let defaults = TestArgs::default();
    for (flag, given) in [
        ("--nemesis", args.nemesis != defaults.nemesis),
        (
            "--nemesis-interval",
            args.nemesis_interval != defaults.nemesis_interval,
        ),
        (
            "--nemesis-targets",
            args.nemesis_targets != defaults.nemesis_targets,
        ),
    ] {
        if given {
            bail!(
                "{flag} cannot be combined with --plan: the plan file fixes every fault (drop {flag}, or drop --plan to draw faults from the seed)"
            );
        }
    }
    let file = PlanFile::read(path)?;
    file.validate(
        &path.display().to_string(),
        node_ids,
        args.time_limit.as_nanos() as u64,
    )?;
    Ok((file.kinds(), Selector::ALL.to_vec(), Some(file)))
}

/// An explicit plan's schedule, and the quiet period between its final heal and the end
/// of the workload (the whole run when it has no fault).
pub fn fixed_schedule(args: &TestArgs, file: PlanFile) -> (Schedule, u64) {
    let time_limit_ns = args.time_limit.as_nanos() as u64;
    let end_ns = file.changes.last().map_or(0, |p| p.at_ns);
    (
        Schedule::from_planned(file.changes),
        time_limit_ns.saturating_sub(end_ns),
    )
}

/// The shape of a transactional workload's transactions; the transactional knobs are
/// refused with a single-key workload, and `--stop-on-anomaly` with a transactional one
/// (transactions are checked once the run is over, not online).
pub fn txn_shape(args: &TestArgs) -> Result<TxnShape> {
    let knobs = [
        ("--consistency-model", args.consistency_model.is_some()),
        ("--min-txn-length", args.min_txn_length.is_some()),
        ("--max-txn-length", args.max_txn_length.is_some()),
        ("--key-dist", args.key_dist.is_some()),
    ];
    if args.workload.txn().is_none() {
        if let Some((flag, _)) = knobs.iter().find(|(_, given)| *given) {
            bail!(
                "{flag} applies to the transactional workloads only: add --workload list-append or rw-register (this run is --workload {})",
                args.workload
            );
        }
        return Ok(TxnShape::default());
    }
    if args.stop_on_anomaly {
        bail!(
            "--stop-on-anomaly needs the online checker, which checks single-key workloads only: drop it for --workload {} (its transactions are checked when the run ends)",
            args.workload
        );
    }
    let d = TxnShape::default();
    let min_len = args.min_txn_length.unwrap_or(d.min_len);
    let max_len = args.max_txn_length.unwrap_or(d.max_len.max(min_len));
    if min_len > max_len {
        bail!("--min-txn-length {min_len} exceeds --max-txn-length {max_len}");
    }
    Ok(TxnShape {
        min_len,
        max_len,
        key_dist: args.key_dist.unwrap_or(d.key_dist),
    })
}

/// The nemesis schedule drawn from the seed, and the quiet period between its final heal
/// and the end of the workload (`schism test` and `schism sim` alike).
pub fn schedule(
    args: &TestArgs,
    kinds: Vec<Kind>,
    targets: Vec<Selector>,
    node_ids: &[String],
    seed: u64,
) -> Result<(Schedule, u64)> {
    let time_limit_ns = args.time_limit.as_nanos() as u64;
    let interval_ns = args.nemesis_interval.as_nanos() as u64;
    let quiet_ns = interval_ns.min(time_limit_ns / 4);
    let schedule = Schedule::new(&ScheduleSpec {
        kinds,
        targets,
        nodes: node_ids.to_vec(),
        interval_ns,
        end_ns: time_limit_ns.saturating_sub(quiet_ns),
        seed,
    })
    .map_err(anyhow::Error::msg)?;
    Ok((schedule, quiet_ns))
}

/// On hosts over SSH, partitions are nftables rules on each host.
fn hosts_net(args: &TestArgs, kinds: &[Kind]) -> Result<(Option<Net>, String)> {
    if !args.endpoints.is_empty() {
        bail!("--endpoints and --inventory/--hosts exclude each other: pass one of them");
    }
    if args.net != NetChoice::Auto {
        bail!(
            "--net {}: on hosts over SSH partitions are nftables rules on each host; drop --net",
            args.net
        );
    }
    Capabilities::reference().check(kinds)?;
    Ok(if kinds.contains(&Kind::Partition) {
        (
            Some(Net::Hosts),
            "partitions: nftables on each host over SSH (the control machine keeps reaching every node)".into(),
        )
    } else {
        (None, String::new())
    })
}

/// A database on hosts over SSH (every target): partitions are nftables rules on each
/// host; clock faults go through the LD_PRELOAD shim compiled on each host, so only the C
/// servers take them (etcd, a Go binary, is refused by its capabilities: Go reads the
/// clock through the vDSO), never by setting a host's system clock.
fn hosts_db_net(args: &TestArgs, kind: DbKind, kinds: &[Kind]) -> Result<(Option<Net>, String)> {
    if !kind.compiled() {
        bail!(
            "this schism was built without the `{f}` feature: rebuild with `cargo build --release --features {f}` (or `--features all-targets`)",
            f = kind.feature()
        );
    }
    Capabilities::db(
        kind,
        &FaultEnv {
            managed: true,
            have_netns: true,
            have_shim: true,
        },
    )
    .check(kinds)?;
    hosts_net(args, kinds)
}

/// The reference cluster takes every fault; partitions are namespaces or cooperative cuts.
fn reference_net(args: &TestArgs, kinds: &[Kind]) -> Result<(Option<Net>, String)> {
    if args.isolation.is_some() {
        bail!(
            "--isolation applies to --target postgres and galera only: the reference cluster has no isolation levels (its models dictate what a transaction sees)"
        );
    }
    if !args.endpoints.is_empty() {
        bail!(
            "--endpoints needs a database --target (etcd, redis, postgres or galera): schism always provisions the reference cluster itself"
        );
    }
    Capabilities::reference().check(kinds)?;
    Ok(schism_nemesis::choose_net(args.net, kinds)?)
}

/// Refuses what a database target cannot do; returns how its partitions are made
/// (namespaces, or none) and a notice for the terminal.
fn db_net(args: &TestArgs, kind: DbKind, kinds: &[Kind]) -> Result<(Option<Net>, String)> {
    if !kind.compiled() {
        bail!(
            "this schism was built without the `{f}` feature: rebuild with `cargo build --release --features {f}` (or `--features all-targets`)",
            f = kind.feature()
        );
    }
    // Knobs of the reference cluster that a database does not have.
    for (flag, given) in [
        ("--fencing", args.fencing.is_some()),
        ("--read-lease", args.read_lease.is_some()),
        ("--model", args.model != Model::LeaderFollower),
    ] {
        if given {
            bail!("{flag} applies to --target reference only (this run is --target {kind})");
        }
    }
    if args.isolation.is_some() && Isolation::default_for(kind).is_none() {
        bail!(
            "--isolation applies to --target postgres and galera only ({kind} has no isolation levels to choose: etcd's Txn is serializable)"
        );
    }
    if args.failover.is_some() && !matches!(kind, DbKind::Redis | DbKind::Postgres) {
        bail!(
            "--failover applies to --target reference, redis and postgres only ({kind} has no failover to switch: etcd elects its own leader, galera has no primary)"
        );
    }
    if matches!(args.reads, ReadRouting::Ryw | ReadRouting::Sticky) {
        bail!(
            "--reads {} exists only for the reference cluster; with --target {kind} use leader, any or follower",
            args.reads
        );
    }
    let managed = args.endpoints.is_empty();
    let env = FaultEnv {
        managed,
        have_netns: schism_nemesis::netns::unavailable().is_none(),
        have_shim: schism_nemesis::sys::have("cc"),
    };
    Capabilities::db(kind, &env).check(kinds)?;
    let wants_netns = kinds.contains(&Kind::Partition) || args.net == NetChoice::Netns;
    if args.net == NetChoice::Local && kinds.contains(&Kind::Partition) {
        bail!(
            "--net local (cooperative link cuts) exists only for the reference cluster: partitions of {kind} use network namespaces (--net netns or auto)"
        );
    }
    if wants_netns && managed {
        if let Some(why) = schism_nemesis::netns::unavailable() {
            bail!("--net netns cannot be used: {why}");
        }
        Ok((
            Some(Net::Netns),
            format!("{kind}: every member in its own network namespace; partitions with nftables"),
        ))
    } else {
        Ok((None, String::new()))
    }
}
