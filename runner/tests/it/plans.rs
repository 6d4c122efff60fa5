//! Explicit fault plans and shrinking: `schism test --plan FILE` injects exactly the
//! planned faults into a real cluster (the history's nemesis events match the plan in
//! kind, nodes and time), a plan file makes `schism sim` deterministic and is refused
//! with one line when it cannot run, and `schism shrink` turns a failing simulated run
//! of a weak matrix row into one no bigger that still fails with the same kind.

use crate::*;
use schism_nemesis::{Change, PlanFile, record};

/// Partition, pause, kill and clock, one second each, healed in between; the final heal
/// at 8 s of a 10 s run.
const PLAN: &str = r#"{"version":1,"nodes":["n1","n2","n3"],"changes":[
{"at_ns":1000000000,"change":{"change":"fault","fault":"partition","shape":"isolate","node":"n1"}},
{"at_ns":2000000000,"change":{"change":"heal"}},
{"at_ns":3000000000,"change":{"change":"fault","fault":"pause","targets":{"nodes":["n2"]}}},
{"at_ns":4000000000,"change":{"change":"heal"}},
{"at_ns":5000000000,"change":{"change":"fault","fault":"kill","targets":{"nodes":["n3"]}}},
{"at_ns":6000000000,"change":{"change":"heal"}},
{"at_ns":7000000000,"change":{"change":"fault","fault":"clock","clock":"bump","targets":{"nodes":["n1"]},"delta_ms":500}},
{"at_ns":8000000000,"change":{"change":"heal"},"final_heal":true}]}"#;

fn plan_file(dir: &Path) -> PathBuf {
    let path = dir.join("plan.json");
    std::fs::write(&path, PLAN).unwrap();
    path
}

/// Acceptance: the real cluster gets exactly the planned faults — one invoke per planned
/// change, the same event, the same fault (kind, shape, nodes), at its planned time.
#[test]
fn a_plan_file_drives_the_real_cluster_exactly() {
    let store = tempdir();
    let plan = plan_file(store.path());
    let out = run_test(
        store.path(),
        &[
            "--plan",
            plan.to_str().unwrap(),
            "--time-limit",
            "10s",
            "--reads",
            "leader",
            "--seed",
            "3",
            "--name",
            "p",
        ],
    );
    let code = out.status.code().unwrap();
    assert!(code == 0 || code == 2, "{}", verdict_line(&stdout(&out)));
    let run = only_run_dir(store.path(), "p");
    let planned = PlanFile::read(&plan).unwrap();
    // The run folder's plan.json is the plan it was given.
    assert_eq!(PlanFile::read(&run.join("plan.json")).unwrap(), planned);
    let invokes: Vec<serde_json::Value> = nemesis_ops(&run)
        .into_iter()
        .filter(|o| o["type"] == "invoke")
        .collect();
    assert_eq!(invokes.len(), planned.changes.len(), "{invokes:?}");
    for (p, o) in planned.changes.iter().zip(&invokes) {
        assert_eq!(o["f"], record::event(&p.change).as_str(), "{o}");
        assert_eq!(o["value"], record::invoke_value(p), "{o}");
        let t = o["time_ns"].as_u64().unwrap();
        assert!(
            t >= p.at_ns && t < p.at_ns + 1_500_000_000,
            "{} planned at {} ns, applied at {t} ns",
            o["f"],
            p.at_ns
        );
        // Each fault took effect (its info follows, without an error).
        if matches!(p.change, Change::Fault(_)) {
            let info = nemesis_ops(&run)
                .into_iter()
                .find(|i| i["type"] == "info" && i["value"]["at_ms"] == o["value"]["at_ms"])
                .expect("an info per invoke");
            assert!(info.get("error").is_none(), "{info}");
        }
    }
    assert_no_leftovers(store.path(), &run);
}

/// The same plan and seed give the same simulated history, byte for byte; a plan with
/// --nemesis, or one that cannot run, is refused with one line naming the fix.
#[test]
fn a_plan_file_in_simulation_is_deterministic_and_checked() {
    let dir = tempdir();
    let plan = plan_file(dir.path());
    let sha = |name: &str| {
        let out = schism()
            .args(["sim", "--time-limit", "10s", "--seed", "5", "--rate", "500"])
            .args(["--name", name, "--plan", plan.to_str().unwrap(), "--store"])
            .arg(dir.path())
            .output()
            .unwrap();
        let text = stdout(&out);
        assert!(matches!(out.status.code(), Some(0..=2)), "{}", stderr(&out));
        text.lines()
            .find_map(|l| l.strip_prefix("history sha256: "))
            .expect("the sha256 is printed")
            .to_owned()
    };
    assert_eq!(sha("a"), sha("b"));
    let recorded = PlanFile::read(&only_run_dir(dir.path(), "a").join("plan.json")).unwrap();
    assert_eq!(recorded, PlanFile::read(&plan).unwrap());
    for (flags, named) in [
        (
            &["--nemesis", "kill"][..],
            "--nemesis cannot be combined with --plan",
        ),
        (&["--time-limit", "5s"][..], "after the time limit"),
        (&["--nodes", "5"][..], "set --nodes 3"),
    ] {
        let out = schism()
            .args(["sim", "--plan", plan.to_str().unwrap()])
            .args(flags)
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(3), "{flags:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{flags:?}: {err}");
        assert!(err.contains(named), "{flags:?} should say {named}: {err}");
    }
}

/// Acceptance: a failing simulated run of a weak row (ll-no-repair: a kill leaves a
/// replica behind) shrinks to a run that still fails with replica-divergence and is no
/// bigger: no more faults, ops or simulated time.
#[test]
fn shrink_keeps_the_kind_and_never_grows() {
    let store = tempdir();
    let row = schism_runner::matrix::ROWS
        .iter()
        .find(|r| r.id == "ll-no-repair")
        .unwrap();
    let out = schism()
        .arg("sim")
        .args(row.argv())
        .args([
            "--time-limit",
            row.time_limit,
            "--seed",
            "1",
            "--name",
            "nr",
        ])
        .arg("--store")
        .arg(store.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let input = only_run_dir(store.path(), "nr");
    let shrunk = schism()
        .arg("shrink")
        .arg(&input)
        .args(["--max-attempts", "40", "--time-budget", "40s"])
        .output()
        .unwrap();
    let text = stdout(&shrunk);
    assert_eq!(shrunk.status.code(), Some(1), "{text}\n{}", stderr(&shrunk));
    assert!(
        stderr(&shrunk).contains("shrink attempt"),
        "progress on stderr"
    );
    let output = only_run_dir(store.path(), "nr-shrunk");
    let results = |dir: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap()
    };
    let (a, b) = (results(&input), results(&output));
    assert_eq!(b["validity"], "invalid");
    assert!(
        b["counts"]["replica-divergence"].as_u64() > Some(0),
        "{}",
        b["counts"]
    );
    let plan = |dir: &Path| PlanFile::read(&dir.join("plan.json")).unwrap();
    assert!(plan(&output).fault_count() <= plan(&input).fault_count());
    assert!(
        plan(&output).fault_count() >= 1,
        "divergence needs the kill"
    );
    assert!(b["history_lines"].as_u64() <= a["history_lines"].as_u64());
    let config = |dir: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap()
    };
    let limit = |dir: &Path| {
        schism_runner::cli::parse_duration(config(dir)["test"]["time_limit"].as_str().unwrap())
            .unwrap()
    };
    assert!(limit(&output) <= limit(&input));
    // The printed sizes, and a replay command that names the plan.
    assert!(text.contains("fault events"), "{text}");
    let replay = text
        .lines()
        .find_map(|l| l.strip_prefix("replay on real processes: "))
        .expect("a replay command");
    assert!(
        replay.contains("--plan") && replay.contains("--model leaderless"),
        "{replay}"
    );
    // The printed command re-runs it: the same history.
    let again = text
        .lines()
        .find_map(|l| l.strip_prefix("re-run in simulation: "))
        .expect("a re-run command");
    let rerun = schism()
        .arg("sim")
        .args(again.split_whitespace().skip(2))
        .arg("--store")
        .arg(store.path())
        .args(["--name", "again"])
        .output()
        .unwrap();
    let sha = |t: &str| {
        t.lines()
            .find_map(|l| l.strip_prefix("history sha256: "))
            .map(str::to_owned)
    };
    assert!(sha(&text).is_some(), "{text}");
    assert_eq!(sha(&stdout(&rerun)), sha(&text), "{}", stderr(&rerun));
}
