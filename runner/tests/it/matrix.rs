//! DESIGN.md's "test the tester" matrix, end to end and over several seeds: each test runs
//! `schism matrix --rows … --seeds 3` (real node processes, real faults, the real
//! checker; the rows and their expectations are `runner/src/matrix.rs`, the one place they
//! are defined) and asserts from `matrix.json` that every row reached its rate — a weak
//! setting shows its anomaly on (at least 90% of, so with three seeds all) its seeds, a
//! safe one is valid on every seed. A few rows get a second, independent look at their
//! runs' folders (read-your-writes straight from history.jsonl, replica dumps, `schism
//! check` agreeing with the run; the no-lease rows' stale reads served by a leader a
//! partition cut off). The rows are dealt into four tests of similar length (about 2.5
//! minutes each on a loaded 2-core machine) and a fifth for the transaction rows (about
//! 2 minutes), so the suite's two test threads finish them in about 6–7 minutes; every
//! row of `schism matrix --list` is in one of them.

use super::*;
use std::collections::{HashMap, HashSet};

const SEEDS: &str = "3";

const ROUTING: [&str; 5] = [
    "lf-sync-lease",
    "lf-async-failover",
    "lf-async-any",
    "lf-async-follower",
    "lf-async-ryw",
];
const LEASE: [&str; 4] = [
    "lf-fencing-off",
    "lf-no-lease",
    "lf-sync-no-lease",
    "lf-lease",
];
const DURABILITY: [&str; 4] = ["lf-buffered", "lf-fsync", "ml-lww-skew", "ll-3-1-1"];
const TXN: [&str; 5] = [
    "lf-txn-sync",
    "lf-txn-follower",
    "lf-txn-follower-ser",
    "ml-txn-lww",
    "ll-txn",
];
const LEADERLESS: [&str; 5] = [
    "ll-sloppy",
    "ll-strict",
    "ll-no-repair",
    "ll-anti-entropy",
    "ll-quorum",
];

/// The database rows (transactions) this build lists: those of its adapters.
pub fn db_rows() -> Vec<&'static str> {
    let mut rows = vec![];
    if cfg!(feature = "postgres") {
        rows.extend([
            "pg-serializable",
            "pg-read-committed",
            "pg-repeatable-read",
            "pg-standby-reads",
        ]);
    }
    if cfg!(feature = "galera") {
        rows.push("galera-repeatable-read");
    }
    if cfg!(feature = "etcd") {
        rows.push("etcd-txn");
    }
    rows
}

/// Runs `schism matrix` on `rows`; returns its exit code, matrix.json and the folder.
fn matrix(rows: &str) -> (i32, serde_json::Value, PathBuf) {
    matrix_with(rows, &["--seeds", SEEDS])
}

/// `matrix` with other `schism matrix` flags (seeds, time limit).
pub fn matrix_with(rows: &str, flags: &[&str]) -> (i32, serde_json::Value, PathBuf) {
    let store = tempdir();
    // PostgreSQL runs as user postgres, which must enter the store (temp dirs are 0700).
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(store.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod store");
    let out = schism()
        .env("SCHISM_STATE_DIR", state_dir(store.path()))
        .arg("matrix")
        .args(flags)
        .args(["--rows", rows, "--store"])
        .arg(store.path())
        .output()
        .expect("spawn schism matrix");
    eprintln!(
        "--- schism matrix --rows {rows} exited {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        stdout(&out),
        stderr(&out)
    );
    let dirs: Vec<PathBuf> = std::fs::read_dir(store.path().join("matrix"))
        .expect("the matrix folder")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(dirs.len(), 1, "one matrix: {dirs:?}");
    let dir = dirs[0].clone();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("matrix.json")).unwrap()).unwrap();
    assert!(dir.join("matrix.html").exists(), "the page is written");
    // Keep the folder for inspection after a failure (it lives under the temp dir).
    std::mem::forget(store);
    (out.status.code().expect("exit code"), json, dir)
}

/// Asserts that every row ran on every seed and held at its rate; returns the rows by id.
pub fn assert_rows_hold(
    code: i32,
    json: &serde_json::Value,
    ids: &[&str],
) -> HashMap<String, serde_json::Value> {
    let rows: HashMap<String, serde_json::Value> = json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_str().unwrap().to_owned(), r.clone()))
        .collect();
    for id in ids {
        let r = rows.get(*id).unwrap_or_else(|| panic!("row {id} ran"));
        let cells: Vec<String> = r["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| format!("seed {}: {}", c["seed"], c["observed"]))
            .collect();
        let seeds = json["seeds"].as_array().map_or(0, Vec::len);
        assert!(seeds > 0, "matrix.json names its seeds");
        assert_eq!(cells.len(), seeds, "{id}: every seed ran");
        assert!(
            r["ok"].as_bool().unwrap(),
            "row {id} (expected {}) missed its rate: {}/{} held; {cells:?}",
            r["expected"],
            r["held"],
            cells.len()
        );
    }
    assert_eq!(rows.len(), ids.len(), "only the rows asked for ran");
    assert_eq!(code, 0, "every row holds, so the matrix exits 0");
    rows
}

/// The run folders of a row (from the cells' report links).
fn run_dirs(dir: &Path, row: &serde_json::Value) -> Vec<PathBuf> {
    row["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            dir.join(c["link"].as_str().unwrap())
                .parent()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// Every read by a process contains every append that process had acknowledged on that
/// key before the read began (read-your-writes), checked straight on history.jsonl.
fn ryw_violations(run: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(run.join("history.jsonl")).unwrap();
    let mut mine: HashMap<(String, u64), HashSet<i64>> = HashMap::new();
    let mut open: HashMap<String, Vec<i64>> = HashMap::new();
    let mut bad = Vec::new();
    for line in text.lines() {
        let op: serde_json::Value = serde_json::from_str(line).unwrap();
        let process = op["process"].to_string();
        if process.contains("nemesis") {
            continue;
        }
        let key = op["key"].as_u64().unwrap_or(0);
        match op["type"].as_str() {
            Some("invoke") if op["f"] == "read" => {
                let had = mine
                    .get(&(process.clone(), key))
                    .map(|s| s.iter().copied().collect())
                    .unwrap_or_default();
                open.insert(process, had);
            }
            Some("ok") if op["f"] == "append" => {
                mine.entry((process, key))
                    .or_default()
                    .insert(op["value"].as_i64().unwrap_or(0));
            }
            Some("ok") if op["f"] == "read" => {
                let seen: HashSet<i64> = op["value"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|v| v.as_i64()).collect())
                    .unwrap_or_default();
                for v in open.remove(&process).unwrap_or_default() {
                    if !seen.contains(&v) {
                        bad.push(format!(
                            "op {}: process {process} missed its own {v}",
                            op["index"]
                        ));
                    }
                }
            }
            Some("invoke") => {}
            _ => {
                open.remove(&process);
            }
        }
    }
    bad
}

#[test]
fn leader_follower_replication_and_routing_rows_hold_over_seeds() {
    let ids = ROUTING;
    let (code, json, dir) = matrix(&ids.join(","));
    let rows = assert_rows_hold(code, &json, &ids);
    // Read-your-writes, checked independently of the checker: never violated with `ryw`
    // reads; violated (the check has teeth) with reads from any node.
    for run in run_dirs(&dir, &rows["lf-async-ryw"]) {
        let bad = ryw_violations(&run);
        assert!(
            bad.is_empty(),
            "{}: {:?}",
            run.display(),
            &bad[..bad.len().min(5)]
        );
    }
    for run in run_dirs(&dir, &rows["lf-async-any"]) {
        assert!(!ryw_violations(&run).is_empty(), "{}", run.display());
    }
}

#[test]
fn leader_follower_split_brain_and_lease_rows_hold_over_seeds() {
    let ids = LEASE;
    let (code, json, dir) = matrix(&ids.join(","));
    let rows = assert_rows_hold(code, &json, &ids);
    // Every partition of the lease rows cut the leader off (`--nemesis-targets leader`),
    // and the stale reads came from the old leader after a new one was elected.
    let no_lease = ["lf-no-lease", "lf-sync-no-lease"]
        .iter()
        .flat_map(|id| run_dirs(&dir, &rows[*id]));
    for run in no_lease {
        let parts: Vec<serde_json::Value> = nemesis_ops(&run)
            .into_iter()
            .filter(|o| o["type"] == "info" && o["f"] == "start-partition")
            .collect();
        assert!(!parts.is_empty(), "{}: partitions happened", run.display());
        for p in &parts {
            let leader = p["value"]["leader"].as_str().expect("a resolved leader");
            let cuts = p["value"]["cuts"].as_array().unwrap();
            assert!(
                cuts.iter().all(|c| c[0] == leader || c[1] == leader),
                "every cut involves the leader {leader}: {p}"
            );
        }
        let logs: String = ["n1", "n2", "n3"]
            .iter()
            .map(|n| {
                std::fs::read_to_string(run.join(format!("nodes/{n}.log"))).unwrap_or_default()
            })
            .collect();
        // Some node led an epoch after the first (under load an election can take a few
        // epochs, so not necessarily epoch 2).
        let later_epoch = logs.split("leader of epoch ").skip(1).any(|rest| {
            let n: String = rest.chars().take_while(char::is_ascii_digit).collect();
            n.parse::<u64>().is_ok_and(|e| e >= 2)
        });
        assert!(later_epoch, "{}: a new leader was elected", run.display());
        // Under sync the stale reads were served by a leader some partition cut off (the old
        // leader, still serving its own clients): every commit is on a majority, so the new
        // leader has them all. (Under async the new leader also misses the writes the old
        // one acknowledged while cut off, so its reads are stale too.)
        if !run.to_string_lossy().contains("lf-sync-no-lease") {
            continue;
        }
        let deposed: HashSet<&str> = parts
            .iter()
            .filter_map(|p| p["value"]["leader"].as_str())
            .collect();
        let ops: Vec<serde_json::Value> = std::fs::read_to_string(run.join("history.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let results: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap())
                .unwrap();
        let stale_nodes: Vec<&str> = results["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["checker"] == "graph")
            .flat_map(|r| r["anomalies"].as_array().unwrap())
            .filter(|a| a["kind"] == "stale-read")
            .filter_map(|a| ops[a["ops"][0].as_u64().unwrap() as usize]["node"].as_str())
            .collect();
        assert!(!stale_nodes.is_empty(), "{}: stale reads", run.display());
        assert!(
            stale_nodes.iter().any(|n| deposed.contains(n)),
            "{}: stale reads from {stale_nodes:?}, partitioned leaders {deposed:?}",
            run.display()
        );
    }
}

/// The replica dumps the convergence checker read are in each run folder, and `schism
/// check` on a folder alone agrees with the run.
fn assert_dumps_and_check_agree(dir: &Path, rows: &HashMap<String, serde_json::Value>, id: &str) {
    let runs = run_dirs(dir, &rows[id]);
    for run in &runs {
        for n in ["n1", "n2", "n3"] {
            assert!(
                run.join(format!("nodes/{n}.dump.json")).exists(),
                "{id}: {n}"
            );
        }
    }
    let again = schism().arg("check").arg(&runs[0]).output().unwrap();
    assert_eq!(
        again.status.code(),
        rows[id]["runs"][0]["exit_code"].as_i64().map(|c| c as i32),
        "{id}: check agrees: {}",
        stdout(&again)
    );
}

#[test]
fn durability_multi_leader_and_unrepaired_rows_hold_over_seeds() {
    let ids = DURABILITY;
    let (code, json, dir) = matrix(&ids.join(","));
    let rows = assert_rows_hold(code, &json, &ids);
    assert_dumps_and_check_agree(&dir, &rows, "ml-lww-skew");
}

#[test]
fn leaderless_quorum_and_repair_rows_hold_over_seeds() {
    let ids = LEADERLESS;
    let (code, json, dir) = matrix(&ids.join(","));
    let rows = assert_rows_hold(code, &json, &ids);
    assert_dumps_and_check_agree(&dir, &rows, "ll-no-repair");
}

/// The `txn` checker's result of a run folder.
fn txn_result(run: &Path) -> serde_json::Value {
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap();
    r["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["checker"] == "txn")
        .unwrap_or_else(|| panic!("{}: a txn result", run.display()))
        .clone()
}

/// The models a run's history rules out.
fn ruled_out(run: &Path) -> Vec<String> {
    txn_result(run)["figures"]["ruled_out"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_owned())
        .collect()
}

/// Every client op of a transactional run is a `txn` with no key; every `ok` one carries
/// its micro-ops with the reads filled in (some read returned something).
fn assert_txn_history(run: &Path) {
    let text = std::fs::read_to_string(run.join("history.jsonl")).unwrap();
    let (mut ok, mut read_values) = (0, 0);
    for line in text.lines() {
        let op: serde_json::Value = serde_json::from_str(line).unwrap();
        if op["process"].as_str() == Some("nemesis") {
            continue;
        }
        assert_eq!(op["f"], "txn", "{}: {line}", run.display());
        assert!(op.get("key").is_none(), "{}: {line}", run.display());
        if op["type"] == "ok" {
            ok += 1;
            read_values += op["value"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m[0] == "r" && !m[2].is_null())
                .count();
        }
    }
    assert!(ok > 0 && read_values > 0, "{}: {ok} ok", run.display());
}

/// The transaction rows: the leader's atomic transactions hold strict serializability
/// through faults; follower reads of read-only transactions rule out strict
/// serializability but not serializability; multi-leader and leaderless nodes, which apply
/// each micro-op on its own, show lost updates and cycles. Every run's history, report
/// section and `schism check` of its folder are looked at too (the per-model end-to-end
/// test of `schism test --workload list-append|rw-register`).
#[test]
fn transaction_rows_hold_over_seeds() {
    let ids = TXN;
    let (code, json, dir) = matrix(&ids.join(","));
    let rows = assert_rows_hold(code, &json, &ids);
    for id in ids {
        for run in run_dirs(&dir, &rows[id]) {
            assert_txn_history(&run);
            let r = txn_result(&run);
            let workload = if id == "ll-txn" {
                "rw-register"
            } else {
                "list-append"
            };
            assert_eq!(r["figures"]["workload"], workload, "{id}");
            let report = std::fs::read_to_string(run.join("report.html")).unwrap();
            assert!(
                report.contains("id=\"transactions\"") && report.contains("id=\"txn-models\""),
                "{id}: the report's Transactions section"
            );
            if r["validity"] == "invalid" {
                assert!(
                    report.contains("class=\"txn-cycle\"")
                        && report.contains("<svg class=\"txn-graph\""),
                    "{id}: {}: cycles drawn",
                    run.display()
                );
            }
        }
    }
    for run in run_dirs(&dir, &rows["lf-txn-sync"]) {
        assert_eq!(ruled_out(&run), Vec::<String>::new(), "{}", run.display());
        assert_eq!(
            txn_result(&run)["figures"]["consistency_model"],
            "strict-serializable"
        );
    }
    // Follower reads: stale but consistent snapshots.
    for id in ["lf-txn-follower", "lf-txn-follower-ser"] {
        for run in run_dirs(&dir, &rows[id]) {
            let out = ruled_out(&run);
            assert!(
                out.contains(&"strict-serializable".to_owned())
                    && !out.contains(&"serializable".to_owned()),
                "{id}: {}: {out:?}",
                run.display()
            );
        }
    }
    for id in ["ml-txn-lww", "ll-txn"] {
        for run in run_dirs(&dir, &rows[id]) {
            let out = ruled_out(&run);
            assert!(
                out.contains(&"serializable".to_owned()),
                "{id}: {}: {out:?}",
                run.display()
            );
        }
    }
    // `schism check` of a folder alone takes the recorded workload and model: the same
    // verdict and counts as the run.
    for id in ["lf-txn-follower-ser", "ml-txn-lww"] {
        let run = &run_dirs(&dir, &rows[id])[0];
        let again = schism()
            .args(["check", "--json"])
            .arg(run)
            .output()
            .unwrap();
        let checked: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
        let recorded: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap())
                .unwrap();
        assert_eq!(checked["counts"], recorded["counts"], "{id}");
        assert_eq!(checked["validity"], recorded["validity"], "{id}");
    }
    // A budget cut among the process-order cycles, which serializable allows, leaves
    // serializable's verdict standing and says so; a model that forbids some of them
    // (strong-read-committed: G1c-process) is unknown. CI once saw this row `unknown`
    // at 5 M states, spent proving G0 and G1c absent; the search now needs ~60 k.
    let run = &run_dirs(&dir, &rows["lf-txn-follower-ser"])[0];
    for (model, verdict) in [
        ("serializable", "valid"),
        ("strong-read-committed", "unknown"),
    ] {
        let out = schism()
            .args(["check", "--json", "--checker-max-states", "50"])
            .args(["--consistency-model", model])
            .arg(run)
            .output()
            .unwrap();
        let checked: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let txn = checked["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["checker"] == "txn")
            .unwrap();
        assert_eq!(txn["validity"], verdict, "{model}: {}", txn["figures"]);
        let cut = txn["figures"]["cycle_search_cut"].as_str().unwrap_or("");
        assert_eq!(
            cut.contains("process-order"),
            verdict == "valid",
            "{model}: {}",
            txn["figures"]
        );
        // Models neither ruled out nor shown to hold are listed apart, in the JSON, the
        // closing note and the report's ladder; no G1c was ever seen on these runs, so
        // strong-read-committed (G1c-process, G1c-realtime) is always among them.
        let names = |k: &str| -> Vec<String> {
            txn["figures"][k]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect()
        };
        let (undecided, ruled) = (names("undecided"), names("ruled_out"));
        assert!(
            undecided.contains(&"strong-read-committed".to_owned())
                && !undecided.iter().any(|m| ruled.contains(m)),
            "{model}: {undecided:?} {ruled:?}"
        );
        let result: schism_checker::CheckResult = serde_json::from_value(txn.clone()).unwrap();
        let html = schism_report::txn_section(&[result]);
        assert!(
            html.contains("data-model=\"strong-read-committed\" data-ruled-out=\"undecided\""),
            "{html}"
        );
        assert_eq!(
            html.contains("id=\"txn-cut\""),
            verdict == "valid",
            "{html}"
        );
        let text = schism()
            .args(["check", "--checker-max-states", "50"])
            .args(["--consistency-model", model])
            .arg(run)
            .output()
            .unwrap();
        let note = stdout(&text);
        assert!(
            note.lines()
                .any(|l| l.starts_with("not decided (") && l.contains("strong-read-committed")),
            "{note}"
        );
    }
    let full = txn_result(run);
    assert!(
        full["figures"]["cycle_search_states"].as_u64().unwrap() < 1_000_000,
        "{}",
        full["figures"]
    );
}

#[test]
fn matrix_rows_are_listed_and_a_bad_filter_is_one_clear_line() {
    let out = schism().args(["matrix", "--list"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    for id in ["lf-no-lease", "lf-lease", "ll-sloppy", "ml-lww-skew"] {
        assert!(text.contains(id), "{text}");
    }
    // Every row is run by one of the tests above, once.
    let mut listed: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let mut tested: Vec<&str> = [&ROUTING[..], &LEASE, &DURABILITY, &LEADERLESS, &TXN].concat();
    // A build lists the database rows of the adapters it carries (db_txn runs them).
    tested.extend(db_rows());
    listed.sort_unstable();
    tested.sort_unstable();
    assert_eq!(listed, tested, "every matrix row is in one suite test");
    let store = tempdir();
    let out = schism()
        .args(["matrix", "--rows", "lf-nonsense", "--store"])
        .arg(store.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("matches no row") && err.contains("lf-no-lease"),
        "{err}"
    );
}
