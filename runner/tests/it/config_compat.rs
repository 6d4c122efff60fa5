//! A run folder written before `config.json` became the serialised run plan
//! (`fixtures/main-run`: a 2 s register run with kill faults, made by the previous
//! release's `schism test --name compat --workload register --seed 7 …`, with its history,
//! status, results and replica dumps) is still read: typed, byte for byte the same when
//! written again, and by `schism check` and `schism report` to the run's own verdict;
//! the report's settings (`fixtures/main-run/report-settings.html`: the key-settings line
//! and the settings table the previous release rendered from the untyped file) are the
//! same when rendered from the typed `RunConfig`.

use crate::{schism, stdout, tempdir, verdict_line};
use schism_runner::config::RunConfig;
use std::path::{Path, PathBuf};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/fixtures/main-run");

/// A copy of the fixture as `<store>/compat/20261201T182259`.
fn copy_fixture(store: &Path) -> PathBuf {
    let run = store.join("compat").join("20261201T182259");
    std::fs::create_dir_all(run.join("nodes")).unwrap();
    for f in [
        "config.json",
        "history.jsonl",
        "status.json",
        "results.json",
    ] {
        std::fs::copy(Path::new(FIXTURE).join(f), run.join(f)).unwrap();
    }
    for n in ["n1", "n2", "n3"] {
        let f = format!("nodes/{n}.dump.json");
        std::fs::copy(Path::new(FIXTURE).join(&f), run.join(&f)).unwrap();
    }
    run
}

#[test]
fn an_earlier_config_json_reads_typed_and_writes_back_the_same_bytes() {
    let config = RunConfig::read(Path::new(FIXTURE))
        .unwrap()
        .expect("the fixture has a config.json");
    let test = config.test.as_ref().expect("its `test` settings");
    assert_eq!(test.name, "compat");
    assert_eq!(test.workload, schism_workloads::WorkloadKind::Register);
    assert_eq!(test.model, schism_targets::Model::LeaderFollower);
    assert_eq!(test.replication, schism_targets::Replication::Async);
    assert_eq!(test.time_limit, std::time::Duration::from_secs(2));
    assert_eq!(config.seed, Some(7));
    assert_eq!(
        config.workload.as_ref().map(|w| w.kind),
        Some(schism_workloads::WorkloadKind::Register)
    );
    let nemesis = config.nemesis.as_ref().expect("the nemesis plan");
    assert_eq!(nemesis.kinds, [schism_nemesis::Kind::Kill]);
    assert!(!nemesis.plan.is_empty());
    let out = tempdir();
    config.write(out.path()).unwrap();
    assert_eq!(
        std::fs::read_to_string(out.path().join("config.json")).unwrap(),
        std::fs::read_to_string(Path::new(FIXTURE).join("config.json")).unwrap(),
        "the file format is unchanged"
    );
}

#[test]
fn check_and_report_read_an_earlier_run_folder() {
    let store = tempdir();
    let run = copy_fixture(store.path());
    let recorded: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap();
    assert_eq!(recorded["validity"], "invalid", "the fixture's own verdict");

    let out = schism().arg("check").arg(&run).output().unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_eq!(
        verdict_line(&text),
        "verdict: INVALID (8 stale-read, 5 read-your-writes)",
        "{text}"
    );
    // The register workload came from config.json: the linearizability checker ran.
    assert!(text.contains("linearizable: invalid"), "{text}");

    std::fs::remove_file(run.join("results.json")).unwrap();
    let out = schism().arg("report").arg(&run).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(
        html.contains("schism compat 20261201T182259"),
        "title from config.json"
    );
    assert!(html.contains("register"), "settings from config.json");
    let golden = std::fs::read_to_string(Path::new(FIXTURE).join("report-settings.html")).unwrap();
    for (what, start, end) in [
        ("key settings", "<p id=\"key-settings\">", "</p>"),
        ("settings table", "<table id=\"settings\">", "</table>"),
    ] {
        let before = section(&golden, start, end);
        assert_eq!(
            section(&html, start, end),
            before,
            "the report's {what} are those the previous release rendered"
        );
    }
    assert_eq!(
        section(&golden, "<table", "</table>")
            .matches("<tr>")
            .count(),
        61,
        "a header and one row per setting of the fixture"
    );
}

/// The first `start … end` of `html`, both included.
fn section<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let from = html
        .find(start)
        .unwrap_or_else(|| panic!("no {start} in the page"));
    let to = from + html[from..].find(end).expect("the section ends") + end.len();
    &html[from..to]
}
