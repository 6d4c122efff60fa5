//! Whole runs under faults: every fault is recorded (invoke before, info after, with the
//! exact fault), the same seed replays the same fault sequence, leader reads stay free of
//! false anomalies, a SIGKILLed runner's leftovers block the next run until `schism
//! cleanup` removes them, and partitions fall back to cooperative cuts with a notice.

use crate::cleanup::{spawn_run, wait_for_history};
use crate::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use schism_nemesis::{Change, Fault, Kind, Schedule, ScheduleSpec, Selector};

/// Runs `schism cleanup` on a test's registry even when the test fails half-way, so a
/// failing test leaves no namespace on the machine.
struct CleanupOnDrop(PathBuf);

impl Drop for CleanupOnDrop {
    fn drop(&mut self) {
        let _ = schism()
            .env("SCHISM_STATE_DIR", &self.0)
            .arg("cleanup")
            .output();
    }
}

fn all_faults_run(seed: &str) -> (Output, PathBuf, tempfile::TempDir) {
    let store = tempdir();
    let out = run_test(
        store.path(),
        &[
            "--nemesis",
            "partition,pause,kill,clock",
            "--nemesis-interval",
            "1s",
            "--time-limit",
            "12s",
            "--reads",
            "leader",
            "--seed",
            seed,
            "--name",
            "n",
        ],
    );
    let run = only_run_dir(store.path(), "n");
    (out, run, store)
}

/// The nemesis invokes with the field that may legitimately differ removed: nothing
/// (targets chosen by role appear as "leader" in the invoke; whom they hit is in the info).
fn invokes(run: &Path) -> Vec<(String, serde_json::Value)> {
    nemesis_ops(run)
        .into_iter()
        .filter(|o| o["type"] == "invoke")
        .map(|o| (o["f"].as_str().unwrap().to_owned(), o["value"].clone()))
        .collect()
}

#[test]
fn all_faults_are_recorded_and_the_same_seed_replays_them() {
    let a = std::thread::spawn(|| all_faults_run("77"));
    let (out_b, run_b, store_b) = all_faults_run("77");
    let (out_a, run_a, store_a) = a.join().unwrap();
    for (out, run, store) in [(&out_a, &run_a, &store_a), (&out_b, &run_b, &store_b)] {
        let code = out.status.code().unwrap();
        assert!(
            code == 0 || code == 2,
            "leader reads under faults must not be invalid: {}",
            verdict_line(&stdout(out))
        );
        let ops = nemesis_ops(run);
        // Every change: an invoke, then an info, in order.
        let mut open = None;
        for o in &ops {
            match o["type"].as_str() {
                Some("invoke") => assert!(open.replace(o["f"].clone()).is_none(), "{o}"),
                Some("info") => {
                    assert_eq!(open.take(), Some(o["f"].clone()));
                    assert!(o.get("error").is_none(), "a fault failed: {o}");
                    assert!(o["value"]["cuts"].is_array() && o["value"]["net"].is_string());
                }
                other => panic!("unexpected nemesis op type {other:?}"),
            }
        }
        assert!(open.is_none());
        // What config.json planned is exactly what the history recorded.
        let cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap())
                .unwrap();
        let plan = cfg["nemesis"]["plan"].as_array().unwrap();
        assert_eq!(
            invokes(run).len(),
            plan.len(),
            "one invoke per planned change"
        );
        let last = ops.last().unwrap();
        assert_eq!(last["f"], "heal");
        assert_eq!(last["value"]["final"], true);
        assert_no_leftovers(store.path(), run);
    }
    assert_eq!(
        invokes(&run_a),
        invokes(&run_b),
        "the same seed must give the same faults"
    );
    let kinds: std::collections::BTreeSet<String> =
        invokes(&run_a).into_iter().map(|(f, _)| f).collect();
    assert!(
        kinds.len() >= 3,
        "seed 77 exercises several kinds: {kinds:?}"
    );
}

/// A seed whose first fault (runner's spec: `--nemesis pause,partition --nemesis-targets
/// all --nemesis-interval 1s --time-limit 20s`) is a pause of every node.
fn seed_that_pauses_first() -> u64 {
    let nodes: Vec<String> = (1..=3).map(|i| format!("n{i}")).collect();
    (1..200)
        .find(|&seed| {
            let s = Schedule::new(&ScheduleSpec {
                kinds: vec![Kind::Partition, Kind::Pause],
                targets: vec![Selector::All],
                nodes: nodes.clone(),
                interval_ns: 1_000_000_000,
                end_ns: 19_000_000_000,
                seed,
            })
            .unwrap();
            matches!(s.plan()[0].change, Change::Fault(Fault::Pause { .. }))
        })
        .expect("some seed pauses first")
}

#[test]
fn sigkilled_runner_leftovers_block_the_next_run_until_cleanup() {
    if !require(
        "the leftovers test (namespaces)",
        schism_nemesis::netns::unavailable(),
    ) {
        return;
    }
    let store = tempdir();
    let _guard = CleanupOnDrop(state_dir(store.path()));
    let seed = seed_that_pauses_first().to_string();
    let mut child = spawn_run(
        store.path(),
        &[
            "--nemesis",
            "pause,partition",
            "--nemesis-targets",
            "all",
            "--nemesis-interval",
            "1s",
            "--seed",
            &seed,
        ],
    );
    let run = wait_for_history(store.path(), 10);
    let until = Instant::now() + Duration::from_secs(15);
    while !nemesis_ops(&run)
        .iter()
        .any(|o| o["type"] == "info" && o["f"] == "start-pause")
    {
        assert!(Instant::now() < until, "the pause never took effect");
        std::thread::sleep(Duration::from_millis(50));
    }
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    let _ = child.wait();
    // The namespaces stay. (Stopped nodes usually die with the runner: each is its own
    // process group, and the kernel sends SIGHUP + SIGCONT to a stopped process group that
    // its parent's death orphans; whatever survives is cleanup's to kill.)
    let id = run_id_of(&run).expect("run id");
    assert!(!namespaces_with(&format!("schism-{id}")).is_empty());

    // A new run refuses to start, naming the leftovers and the fix.
    let out = run_test(store.path(), &["--time-limit", "2s", "--name", "again"]);
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(
        err.contains("leftovers of a killed run")
            && err.contains(&format!("schism-{id}-n1"))
            && err.contains("schism cleanup"),
        "{err}"
    );

    let clean = schism()
        .env("SCHISM_STATE_DIR", state_dir(store.path()))
        .arg("cleanup")
        .output()
        .unwrap();
    assert_eq!(clean.status.code(), Some(0), "{}", stderr(&clean));
    assert!(
        stdout(&clean).contains("deleted network namespace"),
        "{}",
        stdout(&clean)
    );
    assert_no_leftovers(store.path(), &run);
    let again = schism()
        .env("SCHISM_STATE_DIR", state_dir(store.path()))
        .arg("cleanup")
        .output()
        .unwrap();
    assert!(stdout(&again).contains("nothing to clean up"));
}

#[test]
fn without_nft_partitions_fall_back_to_cooperative_cuts_and_netns_is_refused() {
    // A PATH with `ip` but no `nft` (as on a machine without nftables, or without root
    // for `--net local`): auto falls back with a one-line notice, netns is refused.
    let tools = tempdir();
    if let Some(ip) = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .iter()
        .find(|p| Path::new(p).exists())
    {
        std::os::unix::fs::symlink(ip, tools.path().join("ip")).unwrap();
    }
    let path = format!("{}:/usr/bin:/bin", tools.path().display());
    let store = tempdir();
    let run = |extra: &[&str]| {
        schism()
            .env("SCHISM_STATE_DIR", state_dir(store.path()))
            .env("PATH", &path)
            .arg("test")
            .arg("--store")
            .arg(store.path())
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&[
        "--nemesis",
        "partition",
        "--net",
        "netns",
        "--time-limit",
        "2s",
    ]);
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(err.contains("--net netns cannot be used"), "{err}");
    assert!(err.contains("nftables") || err.contains("root"), "{err}");

    let out = run(&[
        "--nemesis",
        "partition",
        "--nemesis-interval",
        "1s",
        "--time-limit",
        "5s",
        "--reads",
        "leader",
        "--name",
        "local",
    ]);
    let err = stderr(&out);
    let notices: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("cooperative link cuts"))
        .collect();
    assert_eq!(notices.len(), 1, "{err}");
    let code = out.status.code().unwrap();
    assert!(code == 0 || code == 2, "{}", stdout(&out));
    let run_dir = only_run_dir(store.path(), "local");
    let ops = nemesis_ops(&run_dir);
    assert!(
        ops.iter()
            .any(|o| o["f"] == "start-partition" && o["value"]["net"] == "local"),
        "{ops:?}"
    );

    let out = run(&["--nemesis", "partition,flood", "--time-limit", "2s"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("unknown nemesis fault \"flood\""));
}
