//! The replication model of a run: turning the model flags into the reference cluster's
//! settings (refusing, with one line, a knob that does not apply or a value that cannot
//! work), and the end-of-run convergence step — fetching every node's state dump after the
//! final heal and quiet period into `nodes/<id>.dump.json` and comparing them.
//!
//! Guarantees: a flag is never silently ignored (a multi-leader knob on a leaderless run is
//! an error); dumps are retried for a short settling window so that a cluster still
//! draining its last messages is not reported as divergent, and the files written are the
//! last dumps taken; `convergence_from_dir` reads only the results folder, so `schism
//! check` reaches the same verdict as the run.

use anyhow::{Result, bail};
use schism_checker::{CheckResult, ReplicaState, check_convergence};
use schism_targets::reference::node::Dump;
use schism_targets::{Model, Quorum, ReplicaSettings, Replication, TargetCluster};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::cli::TestArgs;
use crate::store;

/// How long dumps may take to agree after the workload ended.
const SETTLE: Duration = Duration::from_secs(3);
const SETTLE_STEP: Duration = Duration::from_millis(300);

/// The model and its settings from the flags; errors name the flag to fix.
pub fn settings(args: &TestArgs) -> Result<(Model, ReplicaSettings)> {
    let mut s = ReplicaSettings::default();
    let model = args.model;
    let ml_flags = [("--conflict", args.conflict.is_some())];
    let ll_flags = [
        ("--quorum", args.quorum.is_some()),
        ("--read-repair", args.read_repair.is_some()),
        ("--sloppy-quorum", args.sloppy_quorum.is_some()),
        ("--anti-entropy-ms", args.anti_entropy_ms.is_some()),
        ("--versioning", args.versioning.is_some()),
    ];
    let refuse = |flags: &[(&str, bool)], owner: &str| -> Result<()> {
        if let Some((f, _)) = flags.iter().find(|(_, given)| *given) {
            bail!("{f} applies to --model {owner} only (this run is --model {model})");
        }
        Ok(())
    };
    if model != Model::LeaderFollower {
        let lf_flags = [
            ("--failover", args.failover.is_some()),
            ("--fencing", args.fencing.is_some()),
            ("--read-lease", args.read_lease.is_some()),
        ];
        refuse(&lf_flags, "leader-follower")?;
        if matches!(
            args.reads,
            schism_targets::ReadRouting::Leader | schism_targets::ReadRouting::Follower
        ) {
            bail!(
                "--reads {} needs a leader, and --model {model} has none: use any, ryw or sticky",
                args.reads
            );
        }
    }
    if model != Model::LeaderFollower && !args.ship_interval.is_zero() {
        bail!(
            "--ship-interval applies to --model leader-follower only (this run is --model {model})"
        );
    }
    if model != Model::MultiLeader {
        refuse(&ml_flags, "multi-leader")?;
    }
    if model != Model::Leaderless {
        refuse(&ll_flags, "leaderless")?;
    }
    match model {
        Model::LeaderFollower => {}
        Model::Leaderless if args.replication == Replication::Async => {}
        Model::Leaderless => bail!(
            "--replication does not apply to --model leaderless: use --quorum N/W/R (W = write acks)"
        ),
        Model::MultiLeader => {
            s.ml_replication = args
                .replication
                .multi_leader()
                .map_err(anyhow::Error::msg)?;
        }
    }
    match (model, args.topology) {
        (_, None) => {}
        (Model::MultiLeader, Some(t)) => {
            s.topology = t.multi_leader().map_err(anyhow::Error::msg)?
        }
        // The shell takes it from the flag (`run::start_cluster`); checked here.
        (Model::LeaderFollower, Some(t)) => {
            t.leader_follower().map_err(anyhow::Error::msg)?;
        }
        (Model::Leaderless, Some(_)) => {
            bail!("--topology does not apply to --model leaderless (every key has N replicas)")
        }
    }
    if let Some(c) = args.conflict {
        s.conflict = c;
    }
    if let Some(q) = &args.quorum {
        s.quorum = q
            .parse::<Quorum>()
            .map_err(|e| anyhow::anyhow!("--quorum: {e}"))?;
    }
    if let Some(v) = args.read_repair {
        s.read_repair = v.on();
    }
    if let Some(v) = args.sloppy_quorum {
        s.sloppy_quorum = v.on();
    }
    if let Some(ms) = args.anti_entropy_ms {
        s.anti_entropy_ms = ms;
    }
    if let Some(v) = args.versioning {
        s.versioning = v;
    }
    if model == Model::Leaderless {
        s.check_leaderless(usize::from(args.nodes))
            .map_err(|e| anyhow::anyhow!("--quorum: {e}"))?;
    }
    Ok((model, s))
}

pub(crate) fn replica_state(d: &Dump) -> ReplicaState {
    ReplicaState {
        state: d.state.clone(),
        siblings: d.siblings.clone(),
        owners: d.owners.clone(),
    }
}

/// Fetches every node's dump until they agree or the settling window ends, then writes
/// the last ones to `nodes/<id>.dump.json`. A node that cannot be reached is reported
/// and left out (its absence is visible in the results). A target that cannot dump its
/// state (the databases) leaves no dumps.
pub async fn collect_dumps(cluster: &dyn TargetCluster, run_dir: &Path) -> Result<()> {
    let ids = cluster.node_ids();
    if ids.first().is_none_or(|id| cluster.dump(id).is_none()) {
        return Ok(());
    }
    let dir = run_dir.join(store::NODES);
    std::fs::create_dir_all(&dir)?;
    let deadline = Instant::now() + SETTLE;
    loop {
        let mut dumps = BTreeMap::new();
        for id in &ids {
            let Some(dump) = cluster.dump(id) else {
                continue;
            };
            match dump.await.map(serde_json::from_value::<Dump>) {
                Ok(Ok(d)) => {
                    dumps.insert(id.clone(), d);
                }
                Ok(Err(e)) => eprintln!("schism: warning: unreadable state dump from {id}: {e}"),
                Err(e) => eprintln!("schism: warning: no state dump from {id}: {e}"),
            }
        }
        let states: BTreeMap<String, ReplicaState> = dumps
            .iter()
            .map(|(id, d)| (id.clone(), replica_state(d)))
            .collect();
        let converged = check_convergence(&states, 1).anomalies.is_empty();
        if converged || Instant::now() >= deadline {
            for (id, d) in &dumps {
                store::write_json(&dir.join(format!("{id}.dump.json")), d)?;
            }
            return Ok(());
        }
        tokio::time::sleep(SETTLE_STEP).await;
    }
}

/// The convergence check over the dumps a run left in its folder (`None`: there are none).
pub fn convergence_from_dir(run_dir: &Path) -> Result<Option<CheckResult>> {
    let dir = run_dir.join(store::NODES);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(None);
    };
    let mut states = BTreeMap::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(id) = name.strip_suffix(".dump.json") else {
            continue;
        };
        let text = std::fs::read(e.path())?;
        let d: Dump = serde_json::from_slice(&text)
            .map_err(|err| anyhow::anyhow!("{}: unreadable dump: {err}", e.path().display()))?;
        states.insert(id.to_owned(), replica_state(&d));
    }
    if states.is_empty() {
        return Ok(None);
    }
    Ok(Some(check_convergence(&states, 20)))
}
