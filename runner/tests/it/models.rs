//! The replication models' knobs at the command line: a knob given for another model, or
//! a value outside its range, is refused with one clear line (exit 3) before anything
//! starts. What each knob *does* is the matrix's job (`matrix.rs`: every row of DESIGN.md's
//! "test the tester" matrix, over several seeds).

use crate::*;

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

/// `schism compare` builds and validates the run plan of every cell before the first run:
/// a quorum that cannot work in one cell refuses the whole matrix at once, with one line
/// naming that cell, and nothing is run or written.
#[test]
fn compare_refuses_a_bad_cell_before_any_run() {
    let store = tempdir();
    let out = schism()
        .env("SCHISM_STATE_DIR", state_dir(store.path()))
        .args(["compare", "--vary", "quorum=3/2/2,3/4/2", "--store"])
        .arg(store.path())
        .args(["--", "--model", "leaderless"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("setting quorum=3/4/2 cannot run") && err.contains("W=4 > N=3"),
        "{err}"
    );
    assert!(!err.contains("compare run"), "no run started: {err}");
    let left: Vec<_> = std::fs::read_dir(store.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != "state")
        .collect();
    assert!(left.is_empty(), "nothing written to the store: {left:?}");
}
