//! `schism sim`: the same test as `schism test --target reference`, in deterministic
//! simulation — the three models' state machines under one harness on virtual time, a
//! simulated network and simulated clients — writing the same run folder, checked by the
//! same checkers; and `--seeds A..B`, a sweep of many such runs on every core.
//!
//! The flags are `schism test`'s (`TestArgs`, flattened) plus the simulated network's
//! (`--sim-delay MIN..MAX` between nodes and `--sim-client-delay MIN..MAX` between
//! clients and nodes, uniform, which also sets how much messages reorder;
//! `--sim-delay-tail P:MAX`, the rare long delay; `--sim-loss`, `--sim-duplicate`). A flag the simulator cannot honour (a database
//! target, ports, data directories, network namespaces, …) is
//! refused with one line naming it. Everything else derives exactly as for `schism test`:
//! the workload and nemesis schedule from the seed (`plan::workload_spec`,
//! `plan::schedule`) — or the faults of `--plan FILE` for every seed (`SimPlan::fixed`) —, the model's settings (`models::settings`), every node's config as
//! the real cluster writes it.
//!
//! Guarantees: the same seed and flags give a byte-identical `history.jsonl` (its sha256
//! is printed); a run folder is what `schism test` writes (`config.json` with a `sim`
//! section, `plan.json`, `status.json`, `history.jsonl`, `lag.jsonl`, the state dumps, `results.json`,
//! `report.html`), so `schism check` and `schism report` read it unchanged; the exit code
//! is `test`'s (0 valid, 1 invalid, 2 unknown, 3 refused flags).

pub mod engine;
pub mod sweep;

use anyhow::{Context, Result, bail};

use schism_history::{HistoryWriter, Op};
use schism_nemesis::{Kind, NetChoice, PlanFile, Selector};
use schism_targets::routing::Rules;
use schism_targets::{Failover, Model, NodeConfig, ReplicaSettings, Topology};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::analyze;
use crate::cli::TestArgs;
use crate::config::{NemesisConfig, RunConfig, SimNetConfig};
use crate::plan;
use crate::store::{self, RunStatus};

pub use engine::NetKnobs;

pub use crate::cli::{DelayRange, SeedRange, SimArgs, Tail};

/// A validated simulation: what every seed shares.
#[derive(Debug, Clone)]
pub struct SimPlan {
    pub args: SimArgs,
    pub model: Model,
    pub replica: ReplicaSettings,
    pub kinds: Vec<Kind>,
    pub selectors: Vec<Selector>,
    pub node_ids: Vec<String>,
    pub configs: Vec<NodeConfig>,
    pub net: NetKnobs,
    /// `--plan FILE` (or a plan `schism shrink` made): these faults for every seed
    /// instead of a schedule drawn from each seed.
    pub fixed: Option<PlanFile>,
}

impl SimPlan {
    /// Validates the flags as `schism test` does, and refuses what the simulator cannot
    /// honour; each error one line naming the flag.
    pub fn new(args: SimArgs) -> Result<SimPlan> {
        let t = &args.test;
        refuse_unsimulated(t, &args)?;
        t.replication
            .validate(usize::from(t.nodes))
            .map_err(anyhow::Error::msg)?;
        let (model, replica) = crate::models::settings(t)?;
        let node_ids: Vec<String> = (1..=usize::from(t.nodes))
            .map(|i| format!("n{i}"))
            .collect();
        let (kinds, selectors, fixed) = plan::nemesis_choice(t, &node_ids)?;
        // The workload and the schedule are checked once here (every seed shares them).
        schism_workloads::Generator::new(plan::workload_spec(t, 0)).map_err(anyhow::Error::msg)?;
        plan::schedule(t, kinds.clone(), selectors.clone(), &node_ids, 0)?;
        let configs = node_configs(t, &node_ids, model, replica)?;
        let net = NetKnobs {
            min_delay_ns: args.sim_delay.min.as_nanos() as u64,
            max_delay_ns: args.sim_delay.max.as_nanos() as u64,
            client_min_delay_ns: args.sim_client_delay.min.as_nanos() as u64,
            client_max_delay_ns: args.sim_client_delay.max.as_nanos() as u64,
            tail: args.sim_delay_tail.probability,
            tail_max_ns: args.sim_delay_tail.max.as_nanos() as u64,
            loss: args.sim_loss,
            duplicate: args.sim_duplicate,
        };
        Ok(SimPlan {
            args,
            model,
            replica,
            kinds,
            selectors,
            node_ids,
            configs,
            net,
            fixed,
        })
    }

    /// The fault schedule of one seed (the fixed plan, if any) and the quiet period
    /// after its final heal.
    pub fn schedule(&self, seed: u64) -> Result<(schism_nemesis::Schedule, u64)> {
        match &self.fixed {
            Some(file) => Ok(plan::fixed_schedule(&self.args.test, file.clone())),
            None => plan::schedule(
                &self.args.test,
                self.kinds.clone(),
                self.selectors.clone(),
                &self.node_ids,
                seed,
            ),
        }
    }

    /// The engine's setup for one seed.
    pub fn setup(&self, seed: u64) -> Result<engine::Setup> {
        let t = &self.args.test;
        let generator = schism_workloads::Generator::new(plan::workload_spec(t, seed))
            .map_err(anyhow::Error::msg)?;
        let (schedule, _) = self.schedule(seed)?;
        let deadline = plan::hard_deadline(t);
        Ok(engine::Setup {
            seed,
            model: self.model,
            configs: self.configs.clone(),
            rules: Rules {
                routing: t.reads,
                write_any: self.model != Model::LeaderFollower,
                discover_leader: t.failover == Some(Failover::Auto),
                nodes: self.node_ids.len(),
                initial_leader: 0,
            },
            concurrency: u64::from(t.concurrency),
            client_timeout_ns: (t.client_timeout.as_millis().max(1) as u64) * 1_000_000,
            generator,
            schedule,
            net: self.net,
            lag: self.model == Model::LeaderFollower,
            deadline_ns: deadline.as_nanos() as u64,
            final_retry_until_ns: plan::final_retry_until(t).as_nanos() as u64,
        })
    }
}

/// One line naming the first flag the simulator cannot honour.
fn refuse_unsimulated(t: &TestArgs, args: &SimArgs) -> Result<()> {
    if t.workload.txn().is_some() {
        bail!(
            "--workload {}: schism sim does not simulate transactions yet; run it with schism test (the reference cluster runs them)",
            t.workload
        );
    }
    if t.target != schism_targets::TargetKind::Reference {
        bail!(
            "--target {}: schism sim simulates the reference cluster only; test a database with schism test",
            t.target
        );
    }
    let refused: [(&str, bool, &str); 6] = [
        (
            "--endpoints",
            !t.endpoints.is_empty(),
            "there is no existing cluster in a simulation",
        ),
        (
            "--data-dir",
            t.data_dir.is_some(),
            "simulated nodes keep their disk in memory",
        ),
        (
            "--base-port",
            t.base_port.is_some(),
            "simulated nodes listen on no port",
        ),
        (
            "--net netns",
            t.net == NetChoice::Netns,
            "the simulated network cuts links itself (use auto or local)",
        ),
        (
            "--stop-on-anomaly",
            t.stop_on_anomaly,
            "a simulated run is checked after it ends (it takes seconds)",
        ),
        (
            "--inject-harness-fault",
            t.inject_harness_fault.is_some(),
            "there are no processes to leave behind in a simulation",
        ),
    ];
    if let Some((flag, _, why)) = refused.iter().find(|(_, given, _)| *given) {
        bail!("{flag} cannot be simulated: {why}");
    }
    if t.rate == 0.0 && args.sim_client_delay.min.is_zero() {
        bail!(
            "--rate 0 (as fast as the cluster answers) needs a positive minimum --sim-client-delay, else simulated time would not advance"
        );
    }
    if args.seeds.is_some() && t.junit.is_some() {
        bail!("--junit applies to one run; a sweep (--seeds) writes no run folders");
    }
    Ok(())
}

/// Every node's config, as `ReferenceCluster::start` writes it for these flags (the
/// addresses are placeholders: a simulated node has none).
fn node_configs(
    t: &TestArgs,
    ids: &[String],
    model: Model,
    replica: ReplicaSettings,
) -> Result<Vec<NodeConfig>> {
    let nowhere: SocketAddr = ([127, 0, 0, 1], 0).into();
    let peers: BTreeMap<String, SocketAddr> = ids.iter().map(|id| (id.clone(), nowhere)).collect();
    ids.iter()
        .map(|id| {
            let mut cfg = NodeConfig::new(id, peers.clone(), &ids[0], PathBuf::new())?;
            cfg.replication = t.replication;
            cfg.durability = t.durability;
            cfg.failover = t.failover.unwrap_or_default();
            cfg.fencing = t.fencing.is_none_or(schism_targets::Switch::on);
            cfg.read_lease = t.read_lease.is_some_and(schism_targets::Switch::on);
            // Validated by the plan (`models::settings`): only star or chain get here.
            cfg.topology = t
                .topology
                .and_then(|t| t.leader_follower().ok())
                .unwrap_or(Topology::Star);
            cfg.model = model;
            cfg.replica = replica;
            cfg.ship_interval_ms = t.ship_interval.as_millis() as u64;
            cfg.validate()?;
            Ok(cfg)
        })
        .collect()
}

/// `schism sim`: one run (a run folder), or a sweep with `--seeds`.
pub fn run_sim(mut args: SimArgs) -> Result<i32> {
    args.test.resolve_paths()?;
    let seeds = args.seeds;
    let plan = SimPlan::new(args)?;
    match seeds {
        Some(range) => sweep::run(&plan, range),
        None => run_one(&plan).map(|(code, _)| code),
    }
}

/// `history.jsonl`'s bytes, as the recorder writes them.
pub fn history_bytes(ops: &[Op]) -> Result<Vec<u8>> {
    let mut w = HistoryWriter::new(Vec::with_capacity(ops.len() * 96));
    for op in ops {
        w.append(op)?;
    }
    w.flush()?;
    Ok(w.into_inner()?)
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One simulated run into a new run folder; returns the exit code and the folder.
pub fn run_one(plan: &SimPlan) -> Result<(i32, PathBuf)> {
    let args = &plan.args.test;
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let setup = plan.setup(seed)?;
    let started_at = chrono::Utc::now();
    let run_dir = store::create_run_dir_at(&args.store, &args.name, &started_at)?;
    store::write_status(&run_dir, &RunStatus::Running)?;
    let mut recorded_args = args.clone();
    recorded_args.seed = Some(seed);
    write_config(plan, &run_dir, seed, &setup, &recorded_args, &started_at)?;
    store::write_json(
        &run_dir.join(PlanFile::FILE),
        &PlanFile::new(&plan.node_ids, setup.schedule.plan()),
    )?;
    eprintln!("schism: simulated run {} (seed {seed})", run_dir.display());
    let wall = std::time::Instant::now();
    let outcome = engine::run(setup).map_err(anyhow::Error::msg)?;
    let history = history_bytes(&outcome.ops)?;
    store::write_atomic(&run_dir.join(store::HISTORY), &history)?;
    if !outcome.lag.is_empty() {
        store::write_atomic(&run_dir.join(store::LAG), &outcome.lag)?;
    }
    let nodes = run_dir.join(store::NODES);
    std::fs::create_dir_all(&nodes)
        .with_context(|| format!("cannot create {}", nodes.display()))?;
    for (id, d) in &outcome.dumps {
        store::write_json(&nodes.join(format!("{id}.dump.json")), d)?;
    }
    let status = if outcome.deadline_exceeded {
        RunStatus::DeadlineExceeded
    } else {
        RunStatus::Completed
    };
    store::write_status(&run_dir, &status)?;
    store::update_latest(&args.store, &run_dir)?;
    eprintln!(
        "schism: {} history lines, {:.1} simulated s in {:.2} s",
        outcome.ops.len(),
        outcome.simulated_ns as f64 / 1e9,
        wall.elapsed().as_secs_f64()
    );
    // The same checkers as `schism test` and a later `schism check` of the folder.
    let results = analyze::analyze_file_with(
        &run_dir,
        None,
        &budget(args),
        &analyze::ModelChoice {
            checkers: schism_checker::CheckerSet::Fitting,
            ..Default::default()
        },
    )?;
    let junit = crate::reporting::publish(
        &run_dir,
        &args.store,
        args.junit.as_deref().map(|p| (p, args.name.as_str())),
        &results,
        &[format!("history sha256: {}", sha256_hex(&history))],
    )?;
    if outcome.deadline_exceeded {
        println!(
            "note: the run was stopped at the hard deadline; the verdict covers the ops recorded until then"
        );
    }
    junit?;
    Ok((analyze::exit_code(results.validity), run_dir))
}

/// The checkers' budget from the flags.
fn budget(args: &TestArgs) -> analyze::Budget {
    analyze::Budget {
        max_states: args.checker_max_states,
        time_limit: args.checker_time_limit,
        stop: None,
    }
}

/// `config.json`: `schism test`'s fields, and a `sim` section with the network knobs.
fn write_config(
    plan: &SimPlan,
    run_dir: &Path,
    seed: u64,
    setup: &engine::Setup,
    args: &TestArgs,
    started_at: &chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    let t = &plan.args.test;
    let (_, quiet_ns) = plan.schedule(seed)?;
    let config = RunConfig {
        seed: Some(seed),
        workload: Some(plan::workload_spec(t, seed)),
        model: plan.model,
        replica: (plan.model != Model::LeaderFollower).then_some(plan.replica),
        started_at: Some(started_at.to_rfc3339()),
        schism_version: Some(env!("CARGO_PKG_VERSION").to_owned()),
        run_dir: Some(run_dir.to_owned()),
        data_dir: None,
        nemesis: Some(NemesisConfig {
            kinds: plan.kinds.clone(),
            net: None,
            quiet_ms: quiet_ns / 1_000_000,
            plan: setup.schedule.plan().to_vec(),
        }),
        test: Some(args.clone()),
        sim: Some(SimNetConfig {
            delay_min_us: plan.net.min_delay_ns / 1_000,
            delay_max_us: plan.net.max_delay_ns / 1_000,
            client_delay_min_us: plan.net.client_min_delay_ns / 1_000,
            client_delay_max_us: plan.net.client_max_delay_ns / 1_000,
            delay_tail_probability: plan.net.tail,
            delay_tail_max_us: plan.net.tail_max_ns / 1_000,
            loss: plan.net.loss,
            duplicate: plan.net.duplicate,
        }),
    };
    config.write(run_dir)
}
