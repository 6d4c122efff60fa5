//! `schism test`: one run from cluster start to verdict.
//!
//! Order of a run: signal handlers (SIGINT, SIGTERM, SIGHUP) → every flag, path and port
//! validated and leftovers of a killed run refused, before anything is created → results
//! folder, `status.json` ("running"), an empty history and config.json and plan.json (the nemesis
//! plan, drawn or `--plan`) → ledger entry → network namespaces if partitions use them → cluster up (every
//! node a process, each written to the ledger as it appears) → workers drive the generator
//! while the nemesis follows its schedule, one recorder writing both to history.jsonl →
//! final heal, quiet period, final reads → workers stop (time limit, a signal, or the hard
//! deadline) → heal → history flushed → cluster stopped → `status.json` says how the run
//! ended → ledger cleaned → `latest` updated → history re-read and checked → results.json →
//! report.html and the store's index.html → summary (and `--junit`).
//!
//! Guarantees: every node process is stopped and every fault undone on every exit path:
//! normal end and a signal at any time, start-up included (start-up is abandoned and what
//! it spawned killed; the nemesis heals and records it), harness error (an explicit heal
//! of the whole state), panic (`ReferenceCluster` kills by pid on drop, the `Ledger` drop
//! removes namespaces, cgroups and files and kills recorded pids), a second signal (every
//! process the runner started is killed and the ledger cleans before exit), SIGKILL (nodes
//! exit when the runner dies; `schism cleanup` removes the rest, and the next run refuses
//! to start until then). A run cut short is `unknown` wherever it is recorded (stdout,
//! results.json, report, index, JUnit, and a later `schism check`), unless an anomaly was
//! proven. Every worker and helper task is joined or aborted before returning; the run is
//! bounded by `plan::hard_deadline` (time limit, quiet period, final-read retries, a client
//! timeout and a slack).

use anyhow::{Context, Result, bail};
use schism_history::{F, Op, OpType, Process, Value};
use schism_nemesis::{
    Change, Kind, Ledger, Mechanism, Nemesis, Net, Netns, Next as NemNext, Schedule,
    TargetMechanism,
};
use schism_targets::reference::cluster::{HostsPlacement, NetnsPlacement};
use schism_targets::target::TxnReply;
use schism_targets::{
    ClusterSpec, Failover, ReferenceCluster, Reply, Request, Switch, TargetCluster, TargetSession,
    Topology,
};
use schism_workloads::{Generator, Invocation, Next};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::analyze::{self, Budget};
use crate::cli::{HarnessFault, TestArgs};
use crate::config::{NemesisConfig, RunConfig};
use crate::models;
use crate::plan::{FINAL_READ_BACKOFF, RunPlan};
use crate::recorder::Recorder;
use crate::signals::Interrupts;
use crate::store::{self, RunStatus};

/// How often the progress line is printed when stderr is not a terminal.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(5);
/// The port every node listens on inside its own network namespace.
const NETNS_PORT: u16 = 7000;
/// How long a database cluster may take to be ready (Galera's two state transfers take
/// 15–18 s on a 2-core machine; RECIPES.md §4).
const DB_STARTUP_TIMEOUT: Duration = Duration::from_secs(120);
/// How often the progress task looks for new online anomalies.
const PROGRESS_POLL: Duration = Duration::from_millis(250);
/// How often the single progress line is redrawn on a terminal.
const PROGRESS_INTERVAL_TTY: Duration = Duration::from_millis(500);
/// How often, during start-up, the processes the runner started are written to the ledger.
const STARTUP_TRACK_INTERVAL: Duration = Duration::from_millis(100);

/// Live counters for the progress line.
#[derive(Debug, Default)]
struct Counters {
    ok: AtomicU64,
    fail: AtomicU64,
    info: AtomicU64,
}

/// How a run ended before analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Completed,
    /// A signal came before the workload began.
    StartInterrupted,
    Interrupted,
    DeadlineExceeded,
    /// `--stop-on-anomaly`: the online checker proved `kind` at op `op`, `at_ms` in.
    StoppedOnAnomaly {
        at_ms: u64,
        kind: &'static str,
        op: u64,
    },
}

/// What a finished run leaves behind.
#[derive(Debug)]
pub struct RunOutcome {
    /// The exit code (0 valid, 1 invalid, 2 unknown).
    pub code: i32,
    pub run_dir: std::path::PathBuf,
    pub results: analyze::ResultsFile,
}

pub async fn run_test(args: TestArgs) -> Result<i32> {
    Ok(run_test_outcome(args).await?.code)
}

/// One run; returns its exit code, folder and results.
pub async fn run_test_outcome(mut args: TestArgs) -> Result<RunOutcome> {
    // Signals first: from here on SIGINT, SIGTERM or SIGHUP stop the run cleanly, so no
    // resource created below is ever left behind by one.
    let interrupts = Interrupts::install()?;
    // Every path absolute before anything uses it (runs built by `schism compare` come
    // here without passing through `main`).
    args.resolve_paths()?;
    // Every flag checked against the others, and the faults against the target, before
    // anything is created.
    let RunPlan {
        args,
        seed,
        workload: wspec,
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
    } = RunPlan::new(args)?;
    let exe =
        std::env::current_exe().context("cannot find the schism executable to spawn nodes from")?;
    // Leftovers of a killed run, and paths and ports, before anything starts.
    if hosts.is_none() {
        preflight_paths_and_ports(&args, db_kind, net)?;
    }
    let registry = schism_nemesis::ledger::registry_dir();
    schism_nemesis::ledger::refuse_leftovers(&registry)?;

    let started = Instant::now();
    let started_at = chrono::Utc::now();
    let run_dir = store::create_run_dir_at(&args.store, &args.name, &started_at)?;
    // "running" until the run ends, and an empty history: a run killed from here on is
    // re-checked as cut short, never as a valid empty run.
    store::write_status(&run_dir, &RunStatus::Running)?;
    std::fs::write(run_dir.join(store::HISTORY), b"")
        .with_context(|| format!("cannot write {}", run_dir.join(store::HISTORY).display()))?;
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| run_dir.join(store::NODES));
    // The plan as it is run, read back typed by `check`, `report` and the index.
    RunConfig {
        seed: Some(seed),
        workload: Some(wspec),
        model,
        replica: (model != schism_targets::Model::LeaderFollower).then_some(replica),
        started_at: Some(started_at.to_rfc3339()),
        schism_version: Some(env!("CARGO_PKG_VERSION").to_owned()),
        run_dir: Some(run_dir.clone()),
        data_dir: Some(data_dir.clone()),
        nemesis: Some(NemesisConfig {
            kinds: kinds.clone(),
            net,
            quiet_ms: quiet_ns / 1_000_000,
            plan: schedule.plan().to_vec(),
        }),
        test: Some(args.clone()),
        sim: None,
    }
    .write(&run_dir)?;
    // The faults as scheduled, as a plan file: `--plan` re-runs exactly these (on real
    // processes or in `schism sim`).
    store::write_json(
        &run_dir.join(schism_nemesis::PlanFile::FILE),
        &schism_nemesis::PlanFile::new(&node_ids, schedule.plan()),
    )?;
    eprintln!("schism: run {} (seed {seed})", run_dir.display());
    if !net_notice.is_empty() {
        eprintln!("schism: {net_notice}");
    }

    // Declared before the cluster so that on unwinding the nodes die first, then the
    // ledger removes namespaces, cgroups and files.
    let run_id = run_id(&run_dir, seed);
    let ledger = Arc::new(Ledger::create(&registry, &run_id, &run_dir)?);
    interrupts.set_ledger(ledger.clone());
    let ending = run_cluster(
        &args,
        &interrupts,
        &run_dir,
        &ledger,
        RunParts {
            exe,
            data_dir,
            model,
            replica,
            generator,
            schedule,
            net,
            db_kind,
            kinds: &kinds,
            node_ids: &node_ids,
            seed,
            run_id: &run_id,
            hosts: hosts.as_ref(),
        },
    )
    .await;
    let status = status_of(&ending, &interrupts, started);
    let status_written = store::write_status(&run_dir, &status);
    let cleaned = ledger.finish();
    if cleaned.iter().any(|l| l.starts_with("could not")) {
        eprintln!("schism: warning: cleanup: {}", cleaned.join("; "));
    }
    let ending = ending?;
    status_written?;
    store::update_latest(&args.store, &run_dir)?;

    let (results, junit) = check_and_publish(&args, &interrupts, &run_dir).await?;
    if let Some(why) = cut_short(&ending) {
        println!("note: the run was {why}; the verdict covers the ops recorded until then");
    }
    junit?;
    Ok(RunOutcome {
        code: analyze::exit_code(results.validity),
        run_dir,
        results,
    })
}

/// Why a run that did not complete ended, in the words of the note under its verdict.
fn cut_short(ending: &Ending) -> Option<&'static str> {
    match ending {
        Ending::Completed => None,
        Ending::Interrupted | Ending::StartInterrupted => Some("interrupted"),
        Ending::StoppedOnAnomaly { .. } => {
            Some("stopped at the first anomaly proven online (--stop-on-anomaly)")
        }
        Ending::DeadlineExceeded => Some("stopped at the hard deadline"),
    }
}

/// How the run ended, as `status.json` records it.
fn status_of(ending: &Result<Ending>, interrupts: &Interrupts, started: Instant) -> RunStatus {
    match ending {
        Ok(Ending::Completed) => RunStatus::Completed,
        Ok(Ending::DeadlineExceeded) => RunStatus::DeadlineExceeded,
        Ok(Ending::StoppedOnAnomaly { at_ms, kind, op }) => RunStatus::StoppedOnAnomaly {
            at_s: *at_ms as f64 / 1e3,
            anomaly: format!("{kind} at op index {op}"),
        },
        Ok(e @ (Ending::Interrupted | Ending::StartInterrupted)) => {
            let caught = interrupts.caught();
            RunStatus::Interrupted {
                signal: caught.map_or("a signal", |c| c.signal).to_owned(),
                at_s: caught
                    .map_or(started.elapsed(), |c| c.at.duration_since(started))
                    .as_secs_f64(),
                during: if *e == Ending::StartInterrupted {
                    "start-up, before the workload began".into()
                } else {
                    "the workload".into()
                },
            }
        }
        Err(e) => RunStatus::HarnessError {
            error: format!("{e:#}"),
        },
    }
}

/// The run folder checked by the same checkers as a later `schism check` of it (so they
/// cannot disagree: status.json tells both whether the run was cut short), then its
/// results, report, index and JUnit file written. The JUnit outcome comes back apart, so
/// that the verdict is printed even when that file could not be written.
async fn check_and_publish(
    args: &TestArgs,
    interrupts: &Interrupts,
    run_dir: &Path,
) -> Result<(analyze::ResultsFile, Result<()>)> {
    let budget = Budget {
        max_states: args.checker_max_states,
        time_limit: args.checker_time_limit,
        stop: Some(interrupts.enter_checking()),
    };
    let dir = run_dir.to_path_buf();
    let results = tokio::task::spawn_blocking(move || {
        analyze::analyze_file_with(
            &dir,
            None,
            &budget,
            &analyze::ModelChoice {
                checkers: schism_checker::CheckerSet::Fitting,
                ..Default::default()
            },
        )
    })
    .await
    .context("checker task panicked")??;
    let (dir, store_root) = (run_dir.to_path_buf(), args.store.clone());
    let junit_path = args.junit.clone();
    let suite = args.name.clone();
    tokio::task::spawn_blocking(move || {
        let junit = junit_path.as_deref().map(|p| (p, suite.as_str()));
        crate::reporting::publish(&dir, &store_root, junit, &results, &[])
            .map(|junit| (results, junit))
    })
    .await
    .context("report task panicked")?
}

/// Refuses, before anything is created, paths and ports the run could not use: an
/// unusable `--data-dir` or `--junit` path, a `--base-port` range beyond 65535 or busy.
fn preflight_paths_and_ports(
    args: &TestArgs,
    db_kind: Option<schism_targets::db::DbKind>,
    net: Option<Net>,
) -> Result<()> {
    if let Some(dir) = &args.data_dir {
        std::fs::create_dir_all(dir)
            .and_then(|()| {
                let probe = dir.join(format!(".schism-probe-{}", std::process::id()));
                std::fs::write(&probe, b"")?;
                std::fs::remove_file(&probe)
            })
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot create or write {}: {e}; pass a writable --data-dir",
                    dir.display()
                )
            })?;
    }
    if let Some(path) = &args.junit {
        store::probe_writable_file(path, "--junit")?;
    }
    let Some(base) = args.base_port else {
        return Ok(());
    };
    // Inside network namespaces every node has its own address and uses the port itself.
    if net == Some(Net::Netns) {
        if db_kind.is_some() {
            bail!(
                "--base-port applies to clusters on 127.0.0.1: with network namespaces every member listens on its own address"
            );
        }
        return Ok(());
    }
    // Ports per node, as the adapters take them from the base: etcd client + peer, Redis
    // server + Sentinel, Galera SQL + gcomm + IST + SST.
    use schism_targets::db::DbKind;
    let per_node = match db_kind {
        None | Some(DbKind::Postgres) => 1,
        Some(DbKind::Etcd | DbKind::Redis) => 2,
        Some(DbKind::Galera) => 4,
    };
    let count = usize::from(args.nodes) * per_node;
    let last = usize::from(base) + count - 1;
    if last > usize::from(u16::MAX) {
        bail!(
            "--base-port {base} leaves too few ports: this run needs {count} ({base}..{last}), beyond 65535; pass at most {}",
            usize::from(u16::MAX) + 1 - count
        );
    }
    for port in base..=last as u16 {
        match std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, port)) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => bail!(
                "127.0.0.1:{port} is already in use: pass another --base-port (this run needs {count} ports from {base}) or stop what listens there"
            ),
            Err(e) => bail!("cannot listen on 127.0.0.1:{port}: {e}; pass another --base-port"),
        }
    }
    Ok(())
}

/// What `run_cluster` needs beyond the arguments.
struct RunParts<'a> {
    exe: std::path::PathBuf,
    data_dir: std::path::PathBuf,
    model: schism_targets::Model,
    replica: schism_targets::ReplicaSettings,
    generator: Generator,
    schedule: Schedule,
    net: Option<Net>,
    db_kind: Option<schism_targets::db::DbKind>,
    kinds: &'a [Kind],
    node_ids: &'a [String],
    seed: u64,
    run_id: &'a str,
    hosts: Option<&'a crate::hosts::Hosts>,
}

/// Namespaces (if partitions use them), then the cluster and the workload; a signal during
/// start-up abandons it (what was spawned is killed when its owner drops).
async fn run_cluster(
    args: &TestArgs,
    interrupts: &Interrupts,
    run_dir: &Path,
    ledger: &Arc<Ledger>,
    p: RunParts<'_>,
) -> Result<Ending> {
    if interrupts.is_cancelled() {
        return Ok(Ending::StartInterrupted);
    }
    let netns = match p.net {
        Some(Net::Netns) => Some(Netns::create(ledger, p.run_id, p.node_ids)?),
        _ => None,
    };
    if interrupts.is_cancelled() {
        return Ok(Ending::StartInterrupted);
    }
    // Hosts over SSH: every host connected and checked, then the binary and the run's
    // folder on each (recorded in the ledger first).
    let provisioned = match p.hosts {
        Some(h) => {
            eprintln!(
                "schism: hosts over SSH: {}",
                h.specs
                    .iter()
                    .map(|s| format!("{} ({})", s.name, s.target()))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let (ports, mut binaries) = crate::hosts::Plan::needs(
                p.db_kind,
                args.base_port.unwrap_or(NETNS_PORT),
                args.failover == Some(Failover::Auto),
            );
            if p.db_kind.is_some() && p.kinds.contains(&Kind::Clock) {
                // The clock shim is compiled on each host.
                binaries.push(("cc".into(), "gcc".into()));
            }
            let plan = crate::hosts::Plan {
                accept_new_host_keys: args.accept_new_host_keys,
                run_dir,
                run_id: p.run_id,
                ports,
                binaries,
                upload_exe: p.db_kind.is_none(),
                partitions: p.kinds.contains(&Kind::Partition),
            };
            let prov = tokio::task::block_in_place(|| crate::hosts::provision(h, &plan, ledger))?;
            // The master connections: a SIGKILLed runner's are found and ended by cleanup.
            ledger.set_pids(prov.ssh.iter().filter_map(|s| s.master_pid()).collect())?;
            Some(prov)
        }
        None => None,
    };
    let hosts_net = match (p.hosts, &provisioned) {
        (Some(h), Some(prov)) => Some(schism_nemesis::hosts::HostsNet::new(
            p.node_ids.to_vec(),
            prov.execs(),
            h.addrs.clone(),
        )),
        _ => None,
    };
    if interrupts.is_cancelled() {
        return Ok(Ending::StartInterrupted);
    }
    let shared = Shared {
        args,
        run_dir,
        ledger,
        hosts: provisioned.as_ref().zip(p.hosts),
        hosts_net: hosts_net.as_ref(),
        netns: netns.as_ref(),
        net: p.net,
        kinds: p.kinds,
        node_ids: p.node_ids,
        seed: p.seed,
        run_id: p.run_id,
        interrupts,
    };
    let ending = run_target(&shared, p).await;
    if let Some(prov) = &provisioned {
        record_retries(run_dir, &prov.retries());
    }
    ending
}

/// Transport failures that were retried go to `ssh-retries.log` in the run folder and
/// to the terminal: recorded, not fatal.
fn record_retries(run_dir: &Path, retries: &[String]) {
    if retries.is_empty() {
        return;
    }
    for r in retries {
        eprintln!("schism: warning: {r}");
    }
    let path = run_dir.join("ssh-retries.log");
    if let Err(e) = std::fs::write(&path, retries.join("\n") + "\n") {
        eprintln!("schism: warning: cannot write {}: {e}", path.display());
    }
}

/// Runs a start-up step until it finishes or a signal cancels the run (`None`); meanwhile
/// every process the runner starts for this run is written to the ledger as soon as it
/// exists, so that even a SIGKILL during a long start-up leaves nothing `schism cleanup`
/// cannot find.
async fn starting<T>(
    shared: &Shared<'_>,
    step: impl Future<Output = Result<T>>,
) -> Result<Option<T>> {
    let mut cancel = shared.interrupts.cancelled();
    let track = async {
        loop {
            record_children(shared.ledger);
            tokio::time::sleep(STARTUP_TRACK_INTERVAL).await;
        }
    };
    tokio::select! {
        r = step => r.map(Some),
        _ = cancel.wait_for(|c| *c) => Ok(None),
        _ = track => Ok(None),
    }
}

/// Records in the ledger every live descendant of the runner whose command line names the
/// run (its nodes and servers; not the short-lived `ip`/`nft` commands).
fn record_children(ledger: &Ledger) {
    let record = ledger.record();
    let new: Vec<u32> = schism_targets::db::descendants(std::process::id())
        .into_iter()
        .filter(|p| !record.pids.contains(p))
        .filter(|&p| {
            schism_nemesis::sys::proc_cmdline(p).is_some_and(|c| c.contains(&record.pid_marker))
        })
        .collect();
    if !new.is_empty()
        && let Err(e) = ledger.set_pids(new)
    {
        eprintln!("schism: warning: ledger: {e}");
    }
}

/// What both kinds of run share once the results folder and the ledger exist.
struct Shared<'a> {
    args: &'a TestArgs,
    run_dir: &'a Path,
    ledger: &'a Arc<Ledger>,
    /// Hosts over SSH, provisioned.
    hosts: Option<(&'a crate::hosts::Provisioned, &'a crate::hosts::Hosts)>,
    hosts_net: Option<&'a schism_nemesis::hosts::HostsNet>,
    netns: Option<&'a Netns>,
    net: Option<Net>,
    kinds: &'a [Kind],
    /// `n1`…: `--nodes` of them, or one per `--endpoints` address.
    node_ids: &'a [String],
    seed: u64,
    run_id: &'a str,
    interrupts: &'a Interrupts,
}

/// Any target: start (or attach to) the cluster, drive the workload and the nemesis,
/// collect replica dumps where the target has them, stop every process and undo every
/// fault.
async fn run_target(shared: &Shared<'_>, p: RunParts<'_>) -> Result<Ending> {
    // Clock faults on a target without a clock API of its own: the shim, and one clock
    // file per node, before any server starts.
    let mut clocks = std::collections::BTreeMap::new();
    let mut node_env = vec![Vec::new(); shared.node_ids.len()];
    if p.db_kind.is_some() && shared.kinds.contains(&Kind::Clock) {
        match shared.hosts {
            // Node i on host i: the shim compiled there, its file in that host's run folder.
            Some((prov, _)) => {
                let execs = prov.execs();
                for (i, n) in shared.node_ids.iter().enumerate() {
                    let dir = format!("{}/shim", prov.run_dirs[i]);
                    let exec = execs[i].clone();
                    let (lib, file) = tokio::task::block_in_place(|| {
                        let lib = schism_nemesis::shim::build_on(&*exec, &dir)?;
                        let file = schism_nemesis::shim::ClockFile::create_on(
                            exec.clone(),
                            &format!("{dir}/{n}.clock"),
                        )?;
                        Ok::<_, schism_nemesis::NemesisError>((lib, file))
                    })?;
                    node_env[i] = schism_nemesis::shim::env(&lib, file.path());
                    clocks.insert(n.clone(), file);
                }
            }
            None => {
                let dir = shared.run_dir.join("shim");
                let lib = schism_nemesis::shim::build(&dir)?;
                for (i, n) in shared.node_ids.iter().enumerate() {
                    let file = schism_nemesis::shim::ClockFile::create(
                        shared.ledger,
                        &dir.join(format!("{n}.clock")),
                    )?;
                    node_env[i] = schism_nemesis::shim::env(&lib, file.path());
                    clocks.insert(n.clone(), file);
                }
            }
        }
    }
    let Some(mut cluster) = start_cluster(shared, &p, node_env).await? else {
        return Ok(Ending::StartInterrupted);
    };
    shared.ledger.set_pids(cluster.pids())?;
    shared.ledger.set_remote_pids(&cluster.remote_pids())?;
    match p.db_kind {
        None => eprintln!(
            "schism: {} nodes ready: {}",
            cluster.node_ids().len(),
            cluster.describe()
        ),
        Some(kind) => eprintln!("schism: {kind} ready: {}", cluster.describe()),
    }
    let args = shared.args;
    let seeds: Vec<u64> = (0..u64::from(args.concurrency))
        .map(|w| worker_seed(shared.seed, w))
        .collect();
    let sessions = cluster.sessions(&seeds, args.reads, args.client_timeout)?;
    let lag = cluster.lag_probe();
    // Partitions by namespaces, else the reference nodes' cooperative cuts.
    let net = shared.net.unwrap_or(match p.db_kind {
        None => Net::Local,
        Some(_) => Net::Netns,
    });
    let drive = {
        let mut mech = TargetMechanism::new(&mut *cluster, net, shared.netns, Some(shared.ledger))?
            .with_clock_files(clocks, shared.run_id);
        if let Some(h) = shared.hosts_net {
            mech = mech.with_hosts_net(h);
        }
        let drive = drive_workload(
            args,
            &mut mech,
            net,
            sessions,
            lag,
            p.generator,
            p.schedule,
            shared.run_dir,
            shared.interrupts,
        )
        .await;
        if drive.is_err()
            && !shared.kinds.is_empty()
            && let Err(e) = Nemesis::new().heal(&mut mech).await
        {
            // The nemesis loop heals on its way out; after an error it may not have run
            // to its end, so the empty state is made to hold once more (idempotent).
            eprintln!("schism: warning: healing after the error: {e}");
        }
        for e in mech.release() {
            eprintln!("schism: warning: {e}");
        }
        drive
    };
    if drive.is_ok() {
        // After the final heal and quiet period: every replica's state, for convergence.
        if let Err(e) = models::collect_dumps(&*cluster, shared.run_dir).await {
            eprintln!("schism: warning: state dumps: {e:#}");
        }
    }
    // Stop the cluster before anything else can fail: no process outlives the run.
    let stopped = cluster.stop().await;
    drop(cluster);
    let ending = drive?;
    stopped?;
    Ok(ending)
}

/// Starts the reference cluster or provisions (attaches to) a database, raced against
/// signals (`None`: a signal came first, and what was spawned is killed on drop).
async fn start_cluster(
    shared: &Shared<'_>,
    p: &RunParts<'_>,
    node_env: Vec<Vec<(String, String)>>,
) -> Result<Option<Box<dyn TargetCluster>>> {
    let args = shared.args;
    let log_dir = shared.run_dir.join(store::NODES);
    let Some(kind) = p.db_kind else {
        let spec = ClusterSpec {
            exe: p.exe.clone(),
            nodes: args.nodes as usize,
            base_port: args.base_port,
            data_dir: p.data_dir.clone(),
            log_dir,
            netns: shared.netns.map(|n| NetnsPlacement {
                namespaces: n.namespaces.clone(),
                addrs: n.addrs.clone(),
                port: args.base_port.unwrap_or(NETNS_PORT),
            }),
            hosts: shared.hosts.map(|(prov, h)| HostsPlacement {
                execs: prov.execs(),
                addrs: h.addrs.clone(),
                port: args.base_port.unwrap_or(NETNS_PORT),
                exes: prov.exes.clone(),
                run_dirs: prov.run_dirs.clone(),
            }),
            replication: args.replication,
            durability: args.durability,
            failover: args.failover.unwrap_or_default(),
            fencing: args.fencing.is_none_or(Switch::on),
            read_lease: args.read_lease.is_some_and(Switch::on),
            // Validated by the plan (`models::settings`): only star or chain get here.
            topology: args
                .topology
                .and_then(|t| t.leader_follower().ok())
                .unwrap_or(Topology::Star),
            model: p.model,
            replica: p.replica,
            ship_interval_ms: args.ship_interval.as_millis() as u64,
            ..ClusterSpec::default()
        };
        return starting(shared, async {
            Ok(Box::new(ReferenceCluster::start(spec).await?) as Box<dyn TargetCluster>)
        })
        .await;
    };
    use schism_targets::db::{DbOptions, DbSpec, Placement};
    let spec = DbSpec {
        kind,
        nodes: usize::from(args.nodes),
        data_dir: p.data_dir.clone(),
        log_dir,
        placement: match (shared.netns, shared.hosts) {
            (_, Some((prov, h))) => Placement::Hosts(HostsPlacement {
                execs: prov.execs(),
                addrs: h.addrs.clone(),
                port: args.base_port.unwrap_or(NETNS_PORT),
                exes: prov.exes.clone(),
                run_dirs: prov.run_dirs.clone(),
            }),
            (Some(ns), None) => Placement::Netns {
                namespaces: ns.namespaces.clone(),
                addrs: ns.addrs.clone(),
            },
            (None, None) => Placement::Loopback {
                base_port: args.base_port,
            },
        },
        node_env,
        endpoints: (!args.endpoints.is_empty()).then(|| args.endpoints.clone()),
        options: DbOptions {
            replication: args.replication,
            reads: args.reads,
            failover: args.failover == Some(Failover::Auto),
            etcd_reads: args.etcd_reads,
            timeout: args.client_timeout,
            isolation: args.isolation,
        },
        startup_timeout: DB_STARTUP_TIMEOUT,
    };
    eprintln!("schism: starting {kind} ({} nodes)", shared.node_ids.len());
    starting(shared, async { Ok(schism_targets::db::open(spec).await?) }).await
}

/// A short id for names of system resources (namespaces, veths): 6 hex digits.
fn run_id(run_dir: &Path, seed: u64) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let text = format!(
        "{}:{}:{seed}:{:?}",
        run_dir.display(),
        std::process::id(),
        std::time::SystemTime::now()
    );
    for b in text.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    format!("{:06x}", h & 0xff_ffff)
}

/// One session per worker, each seeded from the run's seed and the worker's number.
pub(crate) fn worker_seed(seed: u64, worker: u64) -> u64 {
    seed.wrapping_add(worker.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

async fn drive_workload<M: Mechanism>(
    args: &TestArgs,
    mech: &mut M,
    net: Net,
    sessions: Vec<Box<dyn TargetSession>>,
    lag: Option<Box<dyn schism_targets::lag::LagProbe>>,
    generator: Generator,
    schedule: Schedule,
    run_dir: &Path,
    interrupts: &Interrupts,
) -> Result<Ending> {
    let start = Instant::now();
    let recorder = Arc::new(
        Recorder::create(&run_dir.join(store::HISTORY), start)
            .with_context(|| format!("cannot create {}", run_dir.join(store::HISTORY).display()))?,
    );
    let generator = Arc::new(std::sync::Mutex::new(generator));
    let counters = Arc::new(Counters::default());
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let concurrency = u64::from(args.concurrency);

    // Online checking: anomalies proven while the run goes (and the end of it, with
    // --stop-on-anomaly). Fed from the first op on, before any worker starts.
    // (Transactions are checked when the run is over: no online checker.)
    let (online, online_status) = start_online(args, &recorder, &cancel_tx, start)?;
    assert_eq!(sessions.len() as u64, concurrency, "one session per worker");
    let mut workers = JoinSet::new();
    for (w, session) in (0..concurrency).zip(sessions) {
        let ctx = WorkerCtx {
            worker: w,
            concurrency,
            start,
            recorder: recorder.clone(),
            generator: generator.clone(),
            counters: counters.clone(),
            cancel: cancel_rx.clone(),
            final_retry_until_ns: crate::plan::final_retry_until(args).as_nanos() as u64,
        };
        workers.spawn(worker(ctx, session));
    }

    // A signal (handled from the start of the run) cancels the workers like an error does.
    let signals = {
        let mut caught = interrupts.cancelled();
        let cancel = cancel_tx.clone();
        tokio::spawn(async move {
            if caught.wait_for(|c| *c).await.is_ok() {
                let _ = cancel.send(true);
            }
        })
    };
    let progress = tokio::spawn(progress(
        counters.clone(),
        recorder.clone(),
        start,
        args.time_limit,
        cancel_rx.clone(),
        online_status,
    ));
    // Replication lag, sampled on the run clock until the workers are done.
    let lag_sampler = lag.map(|probe| {
        tokio::spawn(crate::lag::sample(
            probe,
            run_dir.to_owned(),
            start,
            cancel_rx.clone(),
        ))
    });
    let deadline = crate::plan::hard_deadline(args);
    let inject = injected_harness_fault(args.inject_harness_fault, start + inject_at(&schedule));
    let (nemesis_stop_tx, nemesis_stop_rx) = watch::channel(false);
    let nemesis = nemesis_loop(
        schedule,
        mech,
        net,
        recorder.clone(),
        start,
        cancel_rx.clone(),
        nemesis_stop_rx,
    );

    let mut ending = Ending::Completed;
    let mut first_error: Option<anyhow::Error> = None;
    let join_workers = async {
        let joined = tokio::time::timeout(deadline, async {
            while let Some(res) = workers.join_next().await {
                match res {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        first_error.get_or_insert(e);
                        let _ = cancel_tx.send(true);
                    }
                    Err(join) => {
                        first_error.get_or_insert(anyhow::anyhow!("a worker panicked: {join}"));
                        let _ = cancel_tx.send(true);
                    }
                }
            }
        })
        .await;
        if joined.is_err() {
            ending = Ending::DeadlineExceeded;
            workers.abort_all();
            while workers.join_next().await.is_some() {}
        }
        // Workers are done: the nemesis stops too (healing on its way out).
        let _ = nemesis_stop_tx.send(true);
    };
    let injected = tokio::select! {
        r = inject => Some(r.err().unwrap_or_else(|| anyhow::anyhow!("injected harness fault"))),
        (_, n) = async { tokio::join!(join_workers, nemesis) } => {
            if let Err(e) = n {
                first_error.get_or_insert(e);
            }
            None
        }
    };
    if let Some(e) = injected {
        // The workers are aborted and the history flushed; the caller heals and stops.
        let _ = cancel_tx.send(true);
        workers.abort_all();
        while workers.join_next().await.is_some() {}
        stop_background(signals, progress, lag_sampler).await;
        let _ = recorder.finish();
        if let Some(online) = online {
            online.finish();
        }
        return Err(e);
    }
    let stopped_early = *cancel_rx.borrow();
    let _ = cancel_tx.send(true);
    stop_background(signals, progress, lag_sampler).await;

    let written = recorder.finish();
    let online = online.map(|o| o.finish()).unwrap_or_default();
    if stopped_early && ending == Ending::Completed && first_error.is_none() {
        ending = match online.first {
            Some((at_ms, kind, op)) if args.stop_on_anomaly && interrupts.caught().is_none() => {
                Ending::StoppedOnAnomaly { at_ms, kind, op }
            }
            _ => Ending::Interrupted,
        };
    }
    let written = written.context("cannot finish writing history.jsonl")?;
    eprintln!(
        "schism: {written} history lines written in {:.1}s",
        start.elapsed().as_secs_f64()
    );
    match first_error {
        Some(e) => Err(e),
        None => Ok(ending),
    }
}

/// The online checker of the run's workload, fed from the first op on, and the status
/// the progress line shows (transactions are checked when the run is over: no online
/// checker, and the status says so).
#[allow(clippy::type_complexity)]
fn start_online(
    args: &TestArgs,
    recorder: &Arc<Recorder>,
    cancel_tx: &watch::Sender<bool>,
    start: Instant,
) -> Result<(
    Option<crate::online::OnlineRun>,
    Arc<std::sync::Mutex<crate::online::OnlineStatus>>,
)> {
    let Some(workload) = analyze::checked_as(args.workload) else {
        let status = crate::online::OnlineStatus {
            counts: "checked when the run ends".into(),
            ..Default::default()
        };
        return Ok((None, Arc::new(std::sync::Mutex::new(status))));
    };
    let online = crate::online::OnlineRun::start(
        recorder,
        Some(workload),
        args.stop_on_anomaly,
        cancel_tx.clone(),
        start,
    )
    .context("cannot start the online checker")?;
    let status = online.status.clone();
    Ok((Some(online), status))
}

/// When the injected harness fault strikes: while the first fault is in force.
fn inject_at(schedule: &Schedule) -> Duration {
    schedule
        .plan()
        .iter()
        .find(|p| matches!(p.change, Change::Fault(_)))
        .map(|p| Duration::from_nanos(p.at_ns) + Duration::from_millis(500))
        .unwrap_or(Duration::from_secs(1))
}

/// `--inject-harness-fault`: an error or a panic of the harness at `at`; never resolves
/// without one.
async fn injected_harness_fault(fault: Option<HarnessFault>, at: Instant) -> Result<()> {
    let Some(fault) = fault else {
        return std::future::pending().await;
    };
    tokio::time::sleep_until(at.into()).await;
    match fault {
        HarnessFault::Error => bail!("injected harness fault (--inject-harness-fault error)"),
        HarnessFault::Panic => panic!("injected harness panic (--inject-harness-fault panic)"),
    }
}

/// Stops the run's background tasks once the workers are done: the signal watcher is
/// aborted, the progress line and the lag sampler (cancelled already) are awaited.
async fn stop_background(
    signals: tokio::task::JoinHandle<()>,
    progress: tokio::task::JoinHandle<()>,
    lag_sampler: Option<tokio::task::JoinHandle<()>>,
) {
    signals.abort();
    let _ = signals.await;
    let _ = progress.await;
    if let Some(l) = lag_sampler {
        let _ = l.await;
    }
}

struct WorkerCtx {
    worker: u64,
    concurrency: u64,
    start: Instant,
    recorder: Arc<Recorder>,
    generator: Arc<std::sync::Mutex<Generator>>,
    counters: Arc<Counters>,
    cancel: watch::Receiver<bool>,
    /// A final read that did not succeed is tried again until this run time.
    final_retry_until_ns: u64,
}

async fn worker(mut ctx: WorkerCtx, mut session: Box<dyn TargetSession>) -> Result<()> {
    // Jepsen's process rule: after an indeterminate op, this worker continues as a new
    // process, so a process never has two ops open.
    let mut process = ctx.worker;
    let mut retry: Option<Invocation> = None;
    loop {
        if *ctx.cancel.borrow() {
            return Ok(());
        }
        let now_ns = ctx.start.elapsed().as_nanos() as u64;
        let next = match retry.take() {
            Some(inv) => Next::Op(inv),
            None => ctx
                .generator
                .lock()
                .map_err(|_| anyhow::anyhow!("generator lock poisoned"))?
                .next(now_ns),
        };
        let inv = match next {
            Next::Done => return Ok(()),
            Next::Pending { until_ns } => {
                let wait = Duration::from_nanos(until_ns.saturating_sub(now_ns));
                pause(&mut ctx.cancel, wait).await;
                continue;
            }
            Next::Op(inv) => inv,
        };
        let done = invoke_one(&ctx, session.as_mut(), process, &inv).await?;
        if done == OpType::Info {
            process += ctx.concurrency;
        }
        if inv.is_final
            && done != OpType::Ok
            && (ctx.start.elapsed().as_nanos() as u64) < ctx.final_retry_until_ns
        {
            pause(&mut ctx.cancel, FINAL_READ_BACKOFF).await;
            retry = Some(inv);
        }
    }
}

/// Sleeps for `wait`, or less if the run is cancelled meanwhile.
async fn pause(cancel: &mut watch::Receiver<bool>, wait: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(wait) => {}
        _ = cancel.changed() => {}
    }
}

/// The client request an invocation asks for (`schism test` and `schism sim` alike).
pub(crate) fn request_of(inv: &Invocation) -> Result<Request> {
    Ok(match inv.f {
        F::Read => Request::Read { key: inv.key },
        F::Write => Request::Write {
            key: inv.key,
            value: inv.value.as_int().unwrap_or_default(),
        },
        F::Append => Request::Append {
            key: inv.key,
            value: inv.value.as_int().unwrap_or_default(),
        },
        ref other => bail!("the client cannot run f={other}"),
    })
}

/// The `invoke` op of an invocation by `process`, and the copy its completion is made
/// from (`schism test` and `schism sim` alike).
pub(crate) fn invoke_op(process: u64, inv: &Invocation) -> (Op, Op) {
    let mut invoke = Op::new(
        0,
        0,
        Process::client(process),
        OpType::Invoke,
        inv.f,
        Some(inv.key),
        inv.value.clone(),
    );
    let template = invoke.clone();
    if inv.is_final {
        // The checker treats a final read (after the quiet period) that misses an
        // acknowledged write as proof that the write was lost.
        invoke.set_meta(Some(serde_json::json!({ "final": true })));
    }
    (invoke, template)
}

/// Records the invocation, sends it, records its completion; returns how it completed.
async fn invoke_one(
    ctx: &WorkerCtx,
    session: &mut dyn TargetSession,
    process: u64,
    inv: &Invocation,
) -> Result<OpType> {
    if inv.is_txn() {
        return invoke_txn(ctx, session, process, inv).await;
    }
    let request = request_of(inv)?;
    let (invoke, done_template) = invoke_op(process, inv);
    ctx.recorder
        .record(invoke)
        .map_err(|_| anyhow::anyhow!("the history writer stopped (disk full?)"))?;
    let reply = session.invoke(request).await;
    let mut done = done_template;
    complete(&mut done, inv.f == F::Read, reply);
    record_completion(ctx, done)
}

/// `invoke_one` for a transaction: the invocation (`f: "txn"`, no key, its micro-ops with
/// reads nil), `TargetSession::txn`, the completion (`txn_completion`).
async fn invoke_txn(
    ctx: &WorkerCtx,
    session: &mut dyn TargetSession,
    process: u64,
    inv: &Invocation,
) -> Result<OpType> {
    let mops = schism_history::txn::parse_txn(&inv.value).map_err(anyhow::Error::msg)?;
    let (invoke, template) = invoke_op(process, inv);
    let (invoke, template) = (without_key(invoke), without_key(template));
    ctx.recorder
        .record(invoke)
        .map_err(|_| anyhow::anyhow!("the history writer stopped (disk full?)"))?;
    let read_only = mops.iter().all(|m| m.f == schism_history::txn::MopF::Read);
    let reply = session.txn(mops).await;
    let done = txn_completion(template, read_only, reply);
    record_completion(ctx, done)
}

/// Counts a completion by its type and records it.
fn record_completion(ctx: &WorkerCtx, done: Op) -> Result<OpType> {
    let kind = done.kind;
    let counter = match kind {
        OpType::Ok => &ctx.counters.ok,
        OpType::Info => &ctx.counters.info,
        _ => &ctx.counters.fail,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    ctx.recorder
        .record(done)
        .map_err(|_| anyhow::anyhow!("the history writer stopped (disk full?)"))?;
    Ok(kind)
}

fn without_key(mut op: Op) -> Op {
    op.set_key(None);
    op
}

/// A transaction's completion from its invocation's copy: `ok` with the micro-ops as
/// they ran (reads filled in, `txn_value`), `fail` (certainly not committed), or `info`
/// (may have committed); a read-only transaction whose fate is unknown changed nothing,
/// so it is `fail`, as for single reads.
pub(crate) fn txn_completion(mut done: Op, read_only: bool, reply: TxnReply) -> Op {
    match reply {
        TxnReply::Ok(mops) => {
            done.kind = OpType::Ok;
            done.value = schism_history::txn::txn_value(&mops);
        }
        TxnReply::Fail { error } => {
            done.kind = OpType::Fail;
            done.set_error(Some(error));
        }
        TxnReply::Unknown { error } => {
            done.kind = if read_only {
                OpType::Fail
            } else {
                OpType::Info
            };
            done.set_error(Some(error));
        }
    }
    done
}

/// Turns `done` (a copy of the invoke) into the completion the reply stands for: `ok`
/// (a read's value and siblings, the node, its meta), `fail`, or `info` for a write whose
/// fate is unknown (a read that may or may not have happened changed nothing: `fail`).
pub(crate) fn complete(done: &mut Op, is_read: bool, reply: Reply) {
    match reply {
        Reply::Ok {
            value,
            node,
            meta,
            siblings,
        } => {
            done.kind = OpType::Ok;
            if is_read {
                done.value = value;
            }
            // The optional fields in one go: one box per op, none made and dropped.
            done.with_ext(|x| {
                x.node = Some(node);
                x.meta = meta;
                if is_read {
                    x.siblings = siblings;
                }
            });
        }
        Reply::Fail { node, error } => {
            done.kind = OpType::Fail;
            done.set_node(node);
            done.set_error(Some(error));
            if is_read {
                done.value = Value::Null;
            }
        }
        Reply::Unknown { node, error } => {
            // A read that may or may not have happened changed nothing: it failed.
            done.kind = if is_read { OpType::Fail } else { OpType::Info };
            done.set_node(node);
            done.set_error(Some(error));
            if is_read {
                done.value = Value::Null;
            }
        }
    }
}

/// Follows the schedule until it is done, the run is cancelled, or the workers are
/// done; records every change as a nemesis `invoke` before and an `info` after it took
/// effect (with the exact state: cuts, groups, paused, killed, clocks), and heals on the
/// way out if anything is still in force.
async fn nemesis_loop<M: Mechanism>(
    mut schedule: Schedule,
    mech: &mut M,
    net: Net,
    recorder: Arc<Recorder>,
    start: Instant,
    mut cancel: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    let mut nemesis = Nemesis::new();
    // A change whose resulting state happens to be empty (a clock strobe at offset 0)
    // still leaves a fault "in progress": always close with a recorded heal unless the
    // last change already was one.
    let mut last_was_heal = true;
    loop {
        if *cancel.borrow() || *stop.borrow() {
            break;
        }
        let now_ns = start.elapsed().as_nanos() as u64;
        let planned = match schedule.next(now_ns) {
            NemNext::Done => break,
            NemNext::Pending { until_ns } => {
                let wait = Duration::from_nanos(until_ns.saturating_sub(now_ns));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = cancel.changed() => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            NemNext::Change(p) => p,
        };
        apply_and_record(&mut nemesis, mech, &recorder, &planned, net).await?;
        last_was_heal = matches!(planned.change, Change::Heal);
    }
    if !nemesis.state().is_healed() || !last_was_heal {
        let heal = schism_nemesis::Planned {
            at_ns: start.elapsed().as_nanos() as u64,
            change: Change::Heal,
            final_heal: true,
        };
        apply_and_record(&mut nemesis, mech, &recorder, &heal, net).await?;
    }
    Ok(())
}

async fn apply_and_record<M: Mechanism>(
    nemesis: &mut Nemesis,
    mech: &mut M,
    recorder: &Recorder,
    planned: &schism_nemesis::Planned,
    net: Net,
) -> Result<()> {
    use schism_nemesis::record;
    let event = record::event(&planned.change);
    let f = event.as_str();
    let invoke = record::op(OpType::Invoke, event, record::invoke_value(planned));
    recorder
        .record(invoke)
        .map_err(|_| anyhow::anyhow!("the history writer stopped (disk full?)"))?;
    let result = nemesis.change(mech, &planned.change).await;
    let info = match result {
        Ok(applied) => {
            let value = record::info_value(planned, &applied, &[("net", serde_json::json!(net))]);
            record::op(OpType::Info, event, value)
        }
        Err(e) => {
            eprintln!("schism: nemesis {f} failed: {e}");
            let mut info = record::op(OpType::Info, event, record::invoke_value(planned));
            info.set_error(Some(e.to_string()));
            info
        }
    };
    let failed = info.error().is_some();
    recorder
        .record(info)
        .map_err(|_| anyhow::anyhow!("the history writer stopped (disk full?)"))?;
    if !failed {
        let now = recorder.active_faults();
        eprintln!(
            "schism: nemesis {f} at {:.1}s: {}",
            recorder.now_ns() as f64 / 1e9,
            if now.is_empty() {
                "healed".to_owned()
            } else {
                now.join(", ")
            }
        );
    }
    Ok(())
}

/// The progress line: elapsed/limit, ops recorded, ok/fail/info, active faults. On a
/// terminal one line redrawn in place (`\r`); otherwise a plain line every few seconds.
async fn progress(
    counters: Arc<Counters>,
    recorder: Arc<Recorder>,
    start: Instant,
    limit: Duration,
    mut stop: watch::Receiver<bool>,
    online: Arc<std::sync::Mutex<crate::online::OnlineStatus>>,
) {
    use std::io::{IsTerminal, Write};
    let tty = std::io::stderr().is_terminal();
    let every = if tty {
        PROGRESS_INTERVAL_TTY
    } else {
        PROGRESS_INTERVAL
    };
    let line = || {
        let faults = recorder.active_faults();
        format!(
            "schism: {:>5.1}s/{:.0}s  ops {}  ok {}  fail {}  info {}  fault: {}  anomalies: {}",
            start.elapsed().as_secs_f64(),
            limit.as_secs_f64(),
            recorder.recorded(),
            counters.ok.load(Ordering::Relaxed),
            counters.fail.load(Ordering::Relaxed),
            counters.info.load(Ordering::Relaxed),
            if faults.is_empty() {
                "none".to_owned()
            } else {
                faults.join(", ")
            },
            online.lock().map(|o| o.counts.clone()).unwrap_or_default()
        )
    };
    // Woken often enough that a new online anomaly shows within ~1 s of its proof; a plain
    // line is printed every `every`, or at once when the anomalies changed.
    let mut seen_generation = 0;
    let mut last_line = Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(PROGRESS_POLL) => {}
            _ = stop.changed() => {
                if tty {
                    // Leave the last state on screen, then move to a fresh line.
                    eprint!("\r{}\x1b[K\n", line());
                }
                return;
            }
        }
        if *stop.borrow() {
            if tty {
                eprint!("\r{}\x1b[K\n", line());
            }
            return;
        }
        let generation = online.lock().map(|o| o.generation).unwrap_or_default();
        if last_line.elapsed() < every && generation == seen_generation {
            continue;
        }
        seen_generation = generation;
        last_line = Instant::now();
        if tty {
            eprint!("\r{}\x1b[K", line());
            let _ = std::io::stderr().flush();
        } else {
            eprintln!("{}", line());
        }
    }
}
