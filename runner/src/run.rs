//! `schism test`: one run from cluster start to verdict.
//!
//! Order of a run: results folder and config.json → cluster up (every node a process) →
//! workers drive the generator while one recorder writes history.jsonl → workers stop
//! (time limit, Ctrl-C, or the hard deadline) → history flushed → cluster stopped →
//! `latest` updated → history re-read and checked → results.json → summary.
//!
//! Guarantees: every node process is stopped on every exit path (normal end, error,
//! Ctrl-C/SIGTERM, panic: `ReferenceCluster` kills by pid on drop, and nodes exit when
//! the runner dies); every worker and helper task is joined or aborted before returning;
//! the run is bounded by `time_limit + final reads + HARD_DEADLINE_SLACK`.

use anyhow::{Context, Result, bail};
use schism_history::{F, Op, OpType, Process, Value};
use schism_targets::{ClusterSpec, ReadRouting, ReferenceClient, ReferenceCluster, Reply, Request};
use schism_workloads::{Generator, Next, WorkloadKind, WorkloadSpec};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::analyze::{self, Budget};
use crate::cli::{HarnessFault, Reads, TestArgs, Workload};
use crate::recorder::Recorder;
use crate::store;

/// Time allowed after the time limit for final reads and in-flight requests before
/// workers are aborted (their open ops then count as indeterminate).
const HARD_DEADLINE_SLACK: Duration = Duration::from_secs(30);
/// How often the progress line is printed.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(5);

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
    Interrupted,
    DeadlineExceeded,
}

pub async fn run_test(args: TestArgs) -> Result<i32> {
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let wspec = WorkloadSpec {
        kind: match args.workload {
            Workload::Append => WorkloadKind::Append,
            Workload::Register => WorkloadKind::Register,
        },
        keys: args.keys,
        max_writes_per_key: args.max_writes_per_key,
        read_fraction: args.read_fraction,
        rate_hz: args.rate,
        time_limit_ns: args.time_limit.as_nanos() as u64,
        final_reads: true,
        seed,
    };
    let generator = Generator::new(wspec.clone()).map_err(anyhow::Error::msg)?;
    let exe =
        std::env::current_exe().context("cannot find the schism executable to spawn nodes from")?;

    let started_at = chrono::Utc::now();
    let run_dir = store::create_run_dir(
        &args.store,
        &args.name,
        &started_at.format("%Y%m%dT%H%M%S").to_string(),
    )?;
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| run_dir.join(store::NODES));
    store::write_json(
        &run_dir.join(store::CONFIG),
        &serde_json::json!({
            "test": &args,
            "seed": seed,
            "workload": &wspec,
            "started_at": started_at.to_rfc3339(),
            "schism_version": env!("CARGO_PKG_VERSION"),
            "run_dir": run_dir,
            "data_dir": data_dir,
        }),
    )?;
    eprintln!("schism: run {} (seed {seed})", run_dir.display());

    let mut cluster = ReferenceCluster::start(ClusterSpec {
        exe,
        nodes: args.nodes as usize,
        base_port: args.base_port,
        data_dir,
        log_dir: run_dir.join(store::NODES),
        ..ClusterSpec::default()
    })
    .await?;
    eprintln!(
        "schism: {} nodes ready: {}",
        cluster.node_ids().len(),
        cluster.describe()
    );

    let drive = drive_workload(&args, &cluster, generator, &run_dir, seed).await;
    // Stop the cluster before anything else can fail: no node outlives the run.
    let stopped = cluster.stop().await;
    let ending = drive?;
    stopped?;
    store::update_latest(&args.store, &run_dir)?;

    let budget = Budget {
        max_states: args.checker_max_states,
        time_limit: args.checker_time_limit,
    };
    let dir = run_dir.clone();
    // The same checkers as a later `schism check` of the folder, so they cannot disagree.
    let results = tokio::task::spawn_blocking(move || {
        analyze::analyze_file_with(&dir, None, &budget, schism_checker::CheckerSet::Fitting)
    })
    .await
    .context("checker task panicked")??;
    store::write_json(&run_dir.join(store::RESULTS), &results)?;
    print!("{}", analyze::summary(&results));
    println!("results: {}", run_dir.display());
    let mut code = analyze::exit_code(results.validity);
    if ending != Ending::Completed {
        let why = match ending {
            Ending::Interrupted => "interrupted",
            _ => "stopped at the hard deadline",
        };
        println!("note: the run was {why}; the verdict covers the ops recorded until then");
        // A valid verdict on a cut-short run proves little: report unknown, keep invalid.
        if code == 0 {
            code = 2;
        }
    }
    Ok(code)
}

async fn drive_workload(
    args: &TestArgs,
    cluster: &ReferenceCluster,
    generator: Generator,
    run_dir: &Path,
    seed: u64,
) -> Result<Ending> {
    let start = Instant::now();
    let recorder = Arc::new(
        Recorder::create(&run_dir.join(store::HISTORY), start)
            .with_context(|| format!("cannot create {}", run_dir.join(store::HISTORY).display()))?,
    );
    let routing = match args.reads {
        Reads::Leader => ReadRouting::Leader,
        Reads::Any => ReadRouting::Any,
    };
    let client = Arc::new(cluster.client(routing, args.client_timeout)?);
    let generator = Arc::new(std::sync::Mutex::new(generator));
    let counters = Arc::new(Counters::default());
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let concurrency = u64::from(args.concurrency);

    let mut workers = JoinSet::new();
    for w in 0..concurrency {
        let ctx = WorkerCtx {
            worker: w,
            concurrency,
            start,
            recorder: recorder.clone(),
            client: client.clone(),
            generator: generator.clone(),
            counters: counters.clone(),
            cancel: cancel_rx.clone(),
        };
        let session = client.session(seed.wrapping_add(w.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
        workers.spawn(worker(ctx, session));
    }

    let signals = tokio::spawn(watch_signals(cancel_tx.clone(), cluster.pids()));
    let progress = tokio::spawn(progress(
        counters.clone(),
        start,
        args.time_limit,
        cancel_rx.clone(),
    ));
    let deadline = args.time_limit + args.client_timeout + HARD_DEADLINE_SLACK;
    if let Some(fault) = args.inject_harness_fault {
        tokio::time::sleep(Duration::from_secs(1)).await;
        match fault {
            HarnessFault::Error => bail!("injected harness fault (--inject-harness-fault error)"),
            HarnessFault::Panic => panic!("injected harness panic (--inject-harness-fault panic)"),
        }
    }

    let mut ending = Ending::Completed;
    let mut first_error: Option<anyhow::Error> = None;
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
    if *cancel_rx.borrow() && ending == Ending::Completed && first_error.is_none() {
        ending = Ending::Interrupted;
    }
    let _ = cancel_tx.send(true);
    signals.abort();
    let _ = signals.await;
    let _ = progress.await;

    let written = recorder
        .finish()
        .context("cannot finish writing history.jsonl")?;
    eprintln!(
        "schism: {written} history lines written in {:.1}s",
        start.elapsed().as_secs_f64()
    );
    match first_error {
        Some(e) => Err(e),
        None => Ok(ending),
    }
}

struct WorkerCtx {
    worker: u64,
    concurrency: u64,
    start: Instant,
    recorder: Arc<Recorder>,
    client: Arc<ReferenceClient>,
    generator: Arc<std::sync::Mutex<Generator>>,
    counters: Arc<Counters>,
    cancel: watch::Receiver<bool>,
}

async fn worker(mut ctx: WorkerCtx, mut session: schism_targets::Session) -> Result<()> {
    // Jepsen's process rule: after an indeterminate op, this worker continues as a new
    // process, so a process never has two ops open.
    let mut process = ctx.worker;
    loop {
        if *ctx.cancel.borrow() {
            return Ok(());
        }
        let now_ns = ctx.start.elapsed().as_nanos() as u64;
        let next = ctx
            .generator
            .lock()
            .map_err(|_| anyhow::anyhow!("generator lock poisoned"))?
            .next(now_ns);
        let inv = match next {
            Next::Done => return Ok(()),
            Next::Pending { until_ns } => {
                let wait = Duration::from_nanos(until_ns.saturating_sub(now_ns));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = ctx.cancel.changed() => {}
                }
                continue;
            }
            Next::Op(inv) => inv,
        };
        let request = match inv.f {
            F::Read => Request::Read { key: inv.key },
            F::Write => Request::Write {
                key: inv.key,
                value: inv.value.as_int().unwrap_or_default(),
            },
            F::Append => Request::Append {
                key: inv.key,
                value: inv.value.as_int().unwrap_or_default(),
            },
            ref other => bail!("the reference client cannot run f={other}"),
        };
        let is_read = inv.f == F::Read;
        let invoke = Op::new(
            0,
            0,
            Process::Client(process),
            OpType::Invoke,
            inv.f.clone(),
            Some(inv.key),
            inv.value.clone(),
        );
        let done_template = invoke.clone();
        ctx.recorder
            .record(invoke)
            .map_err(|_| anyhow::anyhow!("the history writer stopped (disk full?)"))?;
        let reply = ctx.client.invoke(&mut session, request).await;
        let mut done = done_template;
        match reply {
            Reply::Ok { value, node, meta } => {
                done.kind = OpType::Ok;
                if is_read {
                    done.value = value;
                }
                done.node = Some(node);
                done.meta = meta;
                ctx.counters.ok.fetch_add(1, Ordering::Relaxed);
            }
            Reply::Fail { node, error } => {
                done.kind = OpType::Fail;
                done.node = node;
                done.error = Some(error);
                if is_read {
                    done.value = Value::Null;
                }
                ctx.counters.fail.fetch_add(1, Ordering::Relaxed);
            }
            Reply::Unknown { node, error } => {
                // A read that may or may not have happened changed nothing: it failed.
                done.kind = if is_read { OpType::Fail } else { OpType::Info };
                done.node = node;
                done.error = Some(error);
                if is_read {
                    done.value = Value::Null;
                    ctx.counters.fail.fetch_add(1, Ordering::Relaxed);
                } else {
                    ctx.counters.info.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let retire = done.kind == OpType::Info;
        ctx.recorder
            .record(done)
            .map_err(|_| anyhow::anyhow!("the history writer stopped (disk full?)"))?;
        if retire {
            process += ctx.concurrency;
        }
    }
}

/// First SIGINT/SIGTERM: stop the workers, then check and report what was recorded.
/// Second: kill the nodes at once and exit 130.
async fn watch_signals(cancel: watch::Sender<bool>, pids: Vec<u32>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    let mut seen = 0;
    loop {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        seen += 1;
        if seen == 1 {
            eprintln!(
                "schism: interrupted; stopping workers and checking what was recorded (again to abort)"
            );
            let _ = cancel.send(true);
        } else {
            eprintln!("schism: aborted; killing nodes");
            for pid in &pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(*pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            std::process::exit(130);
        }
    }
}

async fn progress(
    counters: Arc<Counters>,
    start: Instant,
    limit: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(PROGRESS_INTERVAL) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        eprintln!(
            "schism: {:>5.1}s/{:.0}s  ok {}  fail {}  info {}",
            start.elapsed().as_secs_f64(),
            limit.as_secs_f64(),
            counters.ok.load(Ordering::Relaxed),
            counters.fail.load(Ordering::Relaxed),
            counters.info.load(Ordering::Relaxed),
        );
    }
}
