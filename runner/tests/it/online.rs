//! Online checking: `--stop-on-anomaly` ends the default run at its first proven stale
//! read (and a run that reads from the leader alone runs its full time, valid), and the
//! online checker never claims an anomaly the offline check does not confirm — checked on
//! histories the runner itself recorded under each replication model, whole and cut at
//! 50+ seeded points (each prefix against its own offline check).

use crate::*;
use schism_checker::AnomalyKind;
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

/// What the offline check of `h` lists: (kind, first op) of every anomaly, and the keys
/// that diverged (where an append key's order seen online was later contradicted).
type Truth = (BTreeSet<(AnomalyKind, u64)>, BTreeSet<u64>);

fn offline(h: &schism_history::History) -> Truth {
    let opts = Options {
        checkers: CheckerSet::Only(vec![schism_checker::CheckerName::Graph]),
        max_anomalies_per_kind: usize::MAX,
        ..Options::default()
    };
    let report = schism_checker::check(h, &opts).unwrap();
    let all: Vec<&schism_checker::Anomaly> =
        report.results.iter().flat_map(|r| &r.anomalies).collect();
    let found = all.iter().map(|a| (a.kind, a.ops[0])).collect();
    let diverged = all
        .iter()
        .filter(|a| a.kind == AnomalyKind::Divergence)
        .filter_map(|a| a.key)
        .collect();
    (found, diverged)
}

/// Feeds `ops` through the online checker; every claim must be in `truth`. Returns them.
fn replay(ops: &[schism_history::Op], truth: &Truth, what: &str) -> BTreeSet<(AnomalyKind, u64)> {
    let mut online = OnlineChecker::new(None);
    let mut claimed = BTreeSet::new();
    for (i, op) in ops.iter().enumerate() {
        for f in online.push(op) {
            assert!(ONLINE_KINDS.contains(&f.kind));
            // Confirmed as the same kind at the same op, or by the key's divergence.
            assert!(
                truth.0.contains(&(f.kind, f.op)) || truth.1.contains(&f.key),
                "{what}: online {} at op {} (witnesses {:?}) after {} ops, not confirmed offline: {}",
                f.kind,
                f.op,
                f.ops,
                i + 1,
                f.explanation
            );
            claimed.insert((f.kind, f.op));
        }
    }
    claimed
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
        let claimed = replay(&h.ops, &truth, &format!("{model:?}"));
        if m == 0 {
            // Leader-follower reads from followers: stale reads are proven online, and the
            // progress line shows them at once (its periodic line comes only every 5 s).
            assert!(!claimed.is_empty(), "{model:?}: nothing proven online");
            let early = stderr(&out).lines().any(|l| {
                let secs = l
                    .strip_prefix("schism:")
                    .and_then(|r| r.trim_start().split('s').next())
                    .and_then(|t| t.parse::<f64>().ok());
                secs.is_some_and(|t| t < 4.5)
                    && l.contains("anomalies: ")
                    && l.contains("stale-read")
            });
            assert!(
                early,
                "no progress line with online anomalies: {}",
                stderr(&out)
            );
        }
        // Runs stopped at seeded points (as --stop-on-anomaly or a signal stops them):
        // each prefix's claims hold for the offline check of that prefix.
        let mut rng = SplitMix(m as u64);
        for seed in 0..17u64 {
            seeds += 1;
            let cut = rng.below(h.len());
            let prefix = schism_history::History::new(h.ops[..cut].to_vec());
            replay(
                &prefix.ops,
                &offline(&prefix),
                &format!("{model:?} seed {seed}, cut after {cut} ops"),
            );
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
