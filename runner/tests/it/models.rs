//! The "test the tester" matrix rows of the multi-leader and leaderless reference models,
//! each on a real cluster with real processes, plus controls that are actually correct:
//! - multi-leader, LWW, clock skew ⇒ lost writes (overwritten by an older write), and the
//!   replicas still converge after the heal;
//! - leaderless 3/1/1, no faults ⇒ stale reads;
//! - leaderless 5 nodes, 3/2/2, sloppy quorum, partitions ⇒ reads of stale values although
//!   W+R>N (register workload: each shows up as a non-linearizable read); the same run
//!   with a strict quorum is linearizable (the control: quorums with LWW stamps from
//!   synchronised clocks and blocking read repair; anti-entropy on in both, so that replicas
//!   cut off during a partition converge afterwards);
//! - leaderless with read repair and anti-entropy off, a node killed ⇒ replicas still
//!   diverge after the heal; with anti-entropy on they converge;
//! - leaderless 3/2/2, register, no faults ⇒ valid.
//!
//! Each run is 10–12 s of workload with a fixed seed.

use crate::*;

/// Runs one test; returns its exit code, stdout and results.json.
fn run_full(name: &str, flags: &[&str]) -> (i32, String, serde_json::Value) {
    let store = tempdir();
    let mut all = vec!["--name", name, "--rate", "500"];
    all.extend_from_slice(flags);
    let out = run_test(store.path(), &all);
    let code = out.status.code().expect("exit code");
    let text = stdout(&out);
    let dir = only_run_dir(store.path(), name);
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert!(
        cfg["replica"].is_object(),
        "config.json records the model's settings"
    );
    for n in ["n1", "n2", "n3"] {
        assert!(
            dir.join(format!("nodes/{n}.dump.json")).exists(),
            "{n}'s dump is in the results"
        );
    }
    // `schism check` on the folder alone agrees (dumps included).
    let again = schism().arg("check").arg(&dir).output().unwrap();
    assert_eq!(again.status.code(), Some(code), "check: {}", stdout(&again));
    let results =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    (code, text, results)
}

fn run(name: &str, flags: &[&str]) -> (i32, String) {
    let (code, text, _) = run_full(name, flags);
    (code, text)
}

#[test]
fn multi_leader_lww_under_clock_skew_loses_writes_and_still_converges() {
    let (code, text) = run(
        "ml-lww-skew",
        &[
            "--model",
            "multi-leader",
            "--conflict",
            "lww",
            "--nemesis",
            "clock",
            "--nemesis-interval",
            "2s",
            "--time-limit",
            "10s",
            "--seed",
            "3",
        ],
    );
    assert_eq!(code, 1, "{}", verdict_line(&text));
    assert!(text.contains("lost-write"), "{text}");
    assert!(text.contains("convergence: valid"), "{text}");
}

#[test]
fn leaderless_3_1_1_reads_stale() {
    let (code, text) = run(
        "ll-311",
        &[
            "--model",
            "leaderless",
            "--quorum",
            "3/1/1",
            "--nemesis",
            "none",
            "--time-limit",
            "10s",
            "--seed",
            "1",
        ],
    );
    assert_eq!(code, 1, "{}", verdict_line(&text));
    assert!(text.contains("stale-read"), "{text}");
}

fn sloppy(on: &str) -> (i32, String, serde_json::Value) {
    run_full(
        &format!("ll-sloppy-{on}"),
        &[
            "--model",
            "leaderless",
            "--nodes",
            "5",
            "--quorum",
            "3/2/2",
            "--sloppy-quorum",
            on,
            // A replica cut off without a stand-in misses writes; anti-entropy brings it
            // back after the heal (it cannot cross a partition, so stale reads remain).
            "--anti-entropy-ms",
            "200",
            "--workload",
            "register",
            "--nemesis",
            "partition",
            "--nemesis-interval",
            "2s",
            "--time-limit",
            "12s",
            "--seed",
            "1",
        ],
    )
}

#[test]
fn leaderless_sloppy_quorum_reads_stale_values_across_a_partition_despite_w_plus_r_over_n() {
    let (code, text, results) = sloppy("on");
    assert_eq!(code, 1, "{}", verdict_line(&text));
    assert!(text.contains("non-linearizable"), "{text}");
    let reads = results["results"][0]["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["explanation"].as_str().unwrap().starts_with("read "))
        .count();
    assert!(reads > 0, "a witness is a read of a stale value: {results}");
    assert!(
        text.contains("convergence: valid"),
        "hints were handed off: {text}"
    );
}

#[test]
fn leaderless_strict_quorum_under_the_same_partitions_is_linearizable() {
    let (code, text, _) = sloppy("off");
    assert_eq!(code, 0, "{text}");
}

fn no_repair(anti_entropy_ms: &str) -> (i32, String) {
    run(
        &format!("ll-ae-{anti_entropy_ms}"),
        &[
            "--model",
            "leaderless",
            "--quorum",
            "3/2/2",
            "--read-repair",
            "off",
            "--anti-entropy-ms",
            anti_entropy_ms,
            "--workload",
            "register",
            "--nemesis",
            "kill",
            "--nemesis-targets",
            "one",
            "--nemesis-interval",
            "2s",
            "--time-limit",
            "10s",
            "--seed",
            "2",
        ],
    )
}

#[test]
fn leaderless_without_read_repair_or_anti_entropy_replicas_diverge_after_heal() {
    let (code, text) = no_repair("0");
    assert_eq!(code, 1, "{}", verdict_line(&text));
    assert!(text.contains("convergence: invalid"), "{text}");
    assert!(text.contains("still differ"), "{text}");
}

#[test]
fn leaderless_with_anti_entropy_converges_after_heal() {
    let (_, text) = no_repair("100");
    assert!(text.contains("convergence: valid"), "{text}");
}

#[test]
fn leaderless_strict_quorum_without_faults_is_linearizable() {
    let (code, text) = run(
        "ll-control",
        &[
            "--model",
            "leaderless",
            "--quorum",
            "3/2/2",
            "--workload",
            "register",
            "--nemesis",
            "none",
            "--time-limit",
            "10s",
            "--seed",
            "4",
        ],
    );
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("convergence: valid"), "{text}");
}

#[test]
fn model_knobs_are_validated_with_one_clear_line() {
    for (flags, want) in [
        (
            &["--model", "leaderless", "--quorum", "3/4/1"][..],
            "W=4 > N=3",
        ),
        (
            &["--model", "leaderless", "--quorum", "5/2/2"][..],
            "N=5 > 3 nodes",
        ),
        (&["--model", "leaderless", "--quorum", "three"][..], "N/W/R"),
        (
            &["--model", "multi-leader", "--quorum", "3/2/2"][..],
            "--quorum applies to --model leaderless only",
        ),
        (
            &["--model", "leaderless", "--conflict", "crdt"][..],
            "--conflict applies to --model multi-leader only",
        ),
        (
            &["--model", "leaderless", "--replication", "sync"][..],
            "--replication does not apply to --model leaderless",
        ),
        (
            &["--topology", "ring"][..],
            "--topology ring applies to --model multi-leader only",
        ),
        (
            &["--model", "multi-leader", "--topology", "chain"][..],
            "--topology chain applies to --model leader-follower only",
        ),
        (&["--replication", "semi-sync:3"][..], "semi-sync"),
    ] {
        let store = tempdir();
        let out = run_test(store.path(), flags);
        assert_eq!(out.status.code(), Some(3), "{flags:?}");
        assert!(stderr(&out).contains(want), "{flags:?}: {}", stderr(&out));
    }
}
