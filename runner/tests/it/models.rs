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
