//! Online checking: `--stop-on-anomaly` ends the default run at its first proven stale
//! read (and a run that reads from the leader alone runs its full time, valid), and the
//! online checker never claims an anomaly the offline check does not confirm — checked on
//! histories the runner itself recorded under each replication model, each fed through
//! the online checker on 50+ seeded schedules of checks.

use crate::*;
use schism_checker::{CheckerSet, Options};
use schism_runner::online::{ONLINE_KINDS, OnlineChecker};
use std::collections::BTreeSet;

fn netns_ok(what: &str) -> bool {
    require(what, schism_nemesis::netns::unavailable())
}

#[test]
fn stop_on_anomaly_ends_the_default_run_early_and_leader_reads_run_to_the_end() {
    if !netns_ok("stop-on-anomaly runs") {
        return;
    }
    let store = tempdir();
    let t = Instant::now();
    let out = run_test(
        store.path(),
        &["--stop-on-anomaly", "--time-limit", "30s", "--seed", "3"],
    );
    let wall = t.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let run = only_run_dir(store.path(), "default");
    let status: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("status.json")).unwrap()).unwrap();
    assert_eq!(status["state"], "stopped-on-anomaly", "{status}");
    let at_s = status["at_s"].as_f64().unwrap();
    assert!(at_s < 5.0, "stopped at {at_s} s of 30 s");
    assert!(
        wall < Duration::from_secs(30),
        "the whole run took {wall:?}"
    );
    assert!(run.join("report.html").is_file(), "a report is written");
    assert!(
        stderr(&out).contains("schism: online: stale-read at op index"),
        "{}",
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("--stop-on-anomaly"),
        "{}",
        stdout(&out)
    );
    // Reads from the leader alone: nothing to prove, the run goes its full time.
    let store = tempdir();
    let t = Instant::now();
    let out = run_test(
        store.path(),
        &[
            "--stop-on-anomaly",
            "--reads",
            "leader",
            "--time-limit",
            "10s",
            "--seed",
            "3",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(t.elapsed() >= Duration::from_secs(10), "ran its full time");
    assert!(stderr(&out).contains("anomalies: none"), "{}", stderr(&out));
}

/// What the offline check lists: (kind, first op) of every per-op anomaly of an online
/// kind, and every op named as the lost or divergent write of a lost-write/divergence.
type Truth = (BTreeSet<(schism_checker::AnomalyKind, u64)>, BTreeSet<u64>);

fn offline(h: &schism_history::History) -> Truth {
    let opts = Options {
        checkers: CheckerSet::Only(vec![schism_checker::CheckerName::Graph]),
        max_anomalies_per_kind: usize::MAX,
        ..Options::default()
    };
    let report = schism_checker::check(h, &opts).unwrap();
    let all: Vec<&schism_checker::Anomaly> =
        report.results.iter().flat_map(|r| &r.anomalies).collect();
    let same = all
        .iter()
        .filter(|a| ONLINE_KINDS.contains(&a.kind))
        .map(|a| (a.kind, a.ops[0]))
        .collect();
    let lost = all
        .iter()
        .filter(|a| {
            matches!(
                a.kind,
                schism_checker::AnomalyKind::LostWrite | schism_checker::AnomalyKind::Divergence
            )
        })
        .flat_map(|a| a.ops.iter().copied())
        .collect();
    (same, lost)
}

#[test]
fn the_online_checker_claims_nothing_the_offline_check_does_not_confirm() {
    let store = tempdir();
    let models: [&[&str]; 3] = [
        &["--model", "leader-follower"],
        &["--model", "multi-leader"],
        &["--model", "leaderless", "--quorum", "3/1/1"],
    ];
    let mut seeds = 0;
    for (m, model) in models.iter().enumerate() {
        let name = format!("m{m}");
        let mut args = vec![
            "--name",
            &name,
            "--time-limit",
            "4s",
            "--rate",
            "800",
            "--net",
            "local",
            "--nemesis",
            "partition",
            "--nemesis-interval",
            "1s",
            "--seed",
            "11",
        ];
        args.extend_from_slice(model);
        let out = run_test(store.path(), &args);
        assert!(matches!(out.status.code(), Some(0..=2)), "{}", stderr(&out));
        let run = only_run_dir(store.path(), &name);
        let (h, _) = schism_history::read_history_file(&run.join("history.jsonl")).unwrap();
        let truth = offline(&h);
        assert!(
            !truth.0.is_empty(),
            "{model:?}: the run proved no per-op anomaly to agree on"
        );
        // Seeded schedules: feed the ops in order, check at random points.
        for seed in 0..17u64 {
            seeds += 1;
            let mut rng = SplitMix(seed);
            let mut online = OnlineChecker::new(None);
            let mut claimed = BTreeSet::new();
            let mut next = rng.below(h.len() / 3);
            for (i, op) in h.ops.iter().enumerate() {
                online.push(op.clone());
                if i + 1 == next || i + 1 == h.len() {
                    for f in online.check() {
                        // Confirmed as the same kind at the same op, or as the loss of a
                        // write the claim says the read missed.
                        let confirmed = truth.0.contains(&(f.kind, f.op))
                            || f.ops[1..].iter().any(|w| truth.1.contains(w));
                        assert!(
                            confirmed,
                            "{model:?} seed {seed}: online {} at op {} (witnesses {:?}) after {} ops, not confirmed offline",
                            f.kind,
                            f.op,
                            f.ops,
                            i + 1
                        );
                        claimed.insert((f.kind, f.op));
                    }
                    next = i + 1 + rng.below(h.len() / 3);
                }
            }
            if m == 0 {
                // Leader-follower reads from followers: stale reads are proven online.
                assert!(
                    !claimed.is_empty(),
                    "{model:?} seed {seed}: nothing proven online"
                );
            }
        }
    }
    assert!(seeds >= 50);
}

/// A seeded stream of numbers (SplitMix64): check points of one schedule.
struct SplitMix(u64);

impl SplitMix {
    /// A number in 1..=n.
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        1 + ((z ^ (z >> 31)) % n.max(1) as u64) as usize
    }
}
