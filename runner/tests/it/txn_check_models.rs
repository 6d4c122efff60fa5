//! `schism check --consistency-model` with Elle's session and strong models, on the EDN
//! histories built for the `-process` and `-realtime` variants: each is valid under the
//! model just below the one it breaks and invalid under that one, and the closing note
//! lists the session models it rules out.

use crate::*;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../checker/tests/data/txn")
        .join(name)
}

/// `schism check` of a fixture under a model: exit code and summary.
fn check_under(name: &str, model: &str) -> (Option<i32>, String) {
    let out = schism()
        .args(["check", "--workload", "list-append"])
        .args(["--consistency-model", model])
        .arg(fixture(name))
        .output()
        .unwrap();
    (out.status.code(), stdout(&out))
}

#[test]
fn session_models_separate_the_process_and_realtime_variants() {
    // (fixture, a model it satisfies, the model it breaks)
    let cases = [
        (
            "la-G1c-process.edn",
            "serializable",
            "strong-session-read-committed",
        ),
        (
            "la-G-single-process.edn",
            "snapshot-isolation",
            "strong-session-snapshot-isolation",
        ),
        (
            "la-G2-item-process.edn",
            "strong-session-snapshot-isolation",
            "strong-session-serializable",
        ),
        (
            "la-G-single-realtime.edn",
            "strong-session-serializable",
            "strong-snapshot-isolation",
        ),
        (
            "la-G2-item-realtime.edn",
            "strong-snapshot-isolation",
            "strict-serializable",
        ),
    ];
    for (name, holds, breaks) in cases {
        let (code, text) = check_under(name, holds);
        assert_eq!(code, Some(0), "{name} under {holds}: {text}");
        let (code, text) = check_under(name, breaks);
        assert_eq!(code, Some(1), "{name} under {breaks}: {text}");
        let ruled = text
            .lines()
            .find_map(|l| l.strip_prefix("this history rules out: "))
            .unwrap_or_else(|| panic!("{name}: {text}"));
        assert!(ruled.split(", ").any(|m| m == breaks), "{name}: {ruled}");
        assert!(!ruled.split(", ").any(|m| m == holds), "{name}: {ruled}");
    }
}
