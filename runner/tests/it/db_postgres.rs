//! PostgreSQL end to end: a real primary and two streaming standbys provisioned under the
//! run folder, driven by the real binary. Async replication with reads from standbys must
//! show stale reads; synchronous replication with primary reads must survive kills of the
//! primary (with automatic promotion) without losing an acknowledged write.

use super::*;
use std::os::unix::fs::PermissionsExt;

pub(crate) const PG: &[(&str, &str)] = &[
    ("/usr/lib/postgresql/15/bin/postgres", "postgresql-15"),
    ("setpriv", "util-linux"),
];

/// A store PostgreSQL (user postgres) can reach: temp dirs are created 0700. Kept (and
/// named) when the test fails: its node logs explain why.
fn pg_store() -> Kept {
    let store = tempdir();
    std::fs::set_permissions(store.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod store");
    Kept(Some(store))
}

fn pg_run(store: &Path, name: &str, extra: &[&str]) -> (Option<i32>, String, PathBuf) {
    let mut args = vec!["--name", name, "--target", "postgres"];
    args.extend_from_slice(extra);
    let out = run_test(store, &args);
    let dir = only_run_dir(store, name);
    (out.status.code(), stdout(&out), dir)
}

/// `(checker, kind)` of every anomaly in results.json.
fn anomaly_kinds(run: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(run.join("results.json")).expect("results.json");
    let v: serde_json::Value = serde_json::from_str(&text).expect("results.json is JSON");
    let mut out = Vec::new();
    for r in v["results"].as_array().into_iter().flatten() {
        for a in r["anomalies"].as_array().into_iter().flatten() {
            out.push((
                r["checker"].as_str().unwrap_or("").to_owned(),
                a["kind"].as_str().unwrap_or("").to_owned(),
            ));
        }
    }
    out
}

/// Live processes whose command line mentions `needle` (postmasters carry their data
/// directory, which lies inside the test's store).
fn postgres_left(needle: &str) -> Vec<u32> {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let left = live_pids_with(&[needle, "postgres"]);
        if left.is_empty() || Instant::now() > until {
            return left;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn async_replication_with_standby_reads_shows_stale_reads() {
    let _lock = db_lock();
    if !require_db("postgres async standby reads", PG, false) {
        return;
    }
    let store = pg_store();
    let (code, text, run) = pg_run(
        store.path(),
        "pg-async-follower",
        &[
            "--seed",
            "5",
            "--time-limit",
            "10s",
            "--nemesis",
            "none",
            "--replication",
            "async",
            "--reads",
            "follower",
        ],
    );
    assert_eq!(code, Some(1), "expected an invalid verdict: {text}");
    let kinds = anomaly_kinds(&run);
    let stale = kinds.iter().filter(|(_, k)| k == "stale-read").count();
    assert!(
        stale > 0,
        "no stale read from the standbys: {kinds:?}\n{text}"
    );
    assert!(
        !kinds.iter().any(|(_, k)| k == "lost-write"),
        "nothing was killed, yet a write was lost: {text}"
    );
    // Replication lag from pg_stat_replication, sampled through the run, and its plot.
    let lag = std::fs::read_to_string(run.join("lag.jsonl")).expect("lag.jsonl");
    let readings: Vec<serde_json::Value> = lag
        .lines()
        .skip(1)
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(lag.contains("pg_stat_replication"), "{lag:.300}");
    assert!(readings.len() > 20, "few lag readings: {}", readings.len());
    let standbys: std::collections::BTreeSet<&str> =
        readings.iter().filter_map(|r| r["node"].as_str()).collect();
    assert_eq!(standbys.len(), 2, "one line per standby: {standbys:?}");
    assert!(
        readings
            .iter()
            .all(|r| r["unit"] == "bytes" && r["behind"].as_u64().is_some())
    );
    let report = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(report.contains("id=\"plot-lag\"") && report.contains("PostgreSQL"));
    let left = postgres_left(&store.path().to_string_lossy());
    assert!(left.is_empty(), "postgres processes left: {left:?}");
}

#[test]
fn sync_replication_with_primary_reads_loses_nothing_across_promotions() {
    let _lock = db_lock();
    if !require_db("postgres sync failover", PG, false) {
        return;
    }
    let store = pg_store();
    // Kills of the primary at 3 s and 9 s, each restarted 3 s later: the first promotes
    // a standby after 1 s of silence, the deposed primary rejoins by pg_rewind.
    let (code, text, run) = pg_run(
        store.path(),
        "pg-sync-failover",
        &[
            "--seed",
            "7",
            "--time-limit",
            "20s",
            "--nemesis",
            "kill",
            "--nemesis-targets",
            "leader",
            "--nemesis-interval",
            "3s",
            "--replication",
            "sync",
            "--reads",
            "leader",
            "--failover",
            "auto",
        ],
    );
    let kinds = anomaly_kinds(&run);
    assert!(
        !kinds.iter().any(|(_, k)| k == "lost-write"),
        "an acknowledged write was lost: {kinds:?}\n{text}"
    );
    // A kill takes the postmaster and its backends down together (a crash), so nothing
    // unacknowledged can surface either: the whole run is linearizable-clean.
    assert_eq!(code, Some(0), "expected a valid run: {kinds:?}\n{text}");
    // A promoted standby served acknowledged writes.
    let history = std::fs::read_to_string(run.join("history.jsonl")).expect("history");
    let promoted_writes = history
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|op| op["type"] == "ok" && op["f"] == "append")
        .filter(|op| op["node"].as_str().is_some_and(|n| n != "n1"))
        .count();
    assert!(
        promoted_writes > 0,
        "no acknowledged write was served by a promoted standby: {text}"
    );
    let left = postgres_left(&store.path().to_string_lossy());
    assert!(left.is_empty(), "postgres processes left: {left:?}");
}

/// A store that is kept (and named) when the test panics.
struct Kept(Option<tempfile::TempDir>);

impl Kept {
    fn path(&self) -> &Path {
        self.0
            .as_ref()
            .map(tempfile::TempDir::path)
            .unwrap_or(Path::new("/nonexistent"))
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(d) = self.0.take()
        {
            eprintln!("kept the failed run's store: {}", d.keep().display());
        }
    }
}
