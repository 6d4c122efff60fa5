//! etcd end to end: a real 3-member etcd (Debian `etcd-server`) provisioned by schism in
//! network namespaces, real partitions (nftables) and kills, the real checker.
//!
//! - linearizable reads (etcd's default) stay valid under partitions and kills;
//! - serializable reads (`--etcd-reads serializable`) from an isolated member are stale,
//!   and the checker says so;
//! - clock faults are refused (Go reads time through the vDSO), as are kills with
//!   `--endpoints`; an attached cluster (started here, not by schism) runs valid;
//! - pauses (SIGSTOP of a follower, then of the leader) stop their member — it
//!   acknowledges nothing sent to it while stopped — and the run stays valid.
//!
//! Every test holds `db_lock` (one real cluster at a time on 2 cores) and checks that no
//! etcd process and no namespace of its run is left.

use super::*;
use std::collections::{HashMap, HashSet};
use std::process::{Child, Stdio};

const ETCD: &[(&str, &str)] = &[("etcd", "etcd-server")];

/// Live etcd processes (not zombies) whose command line mentions `needle`.
fn etcd_processes_mentioning(needle: &str) -> Vec<u32> {
    live_pids_with(&["etcd", needle])
}

/// No etcd process mentioning the store, no namespace of the run.
fn assert_nothing_left(store: &Path, run: &Path) {
    let until = Instant::now() + Duration::from_secs(5);
    let mut left = etcd_processes_mentioning(&store.to_string_lossy());
    while !left.is_empty() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
        left = etcd_processes_mentioning(&store.to_string_lossy());
    }
    assert!(left.is_empty(), "etcd processes left: {left:?}");
    if let Some(id) = run_id_of(run) {
        let ns = namespaces_with(&format!("schism-{id}"));
        assert!(ns.is_empty(), "namespaces left: {ns:?}");
    }
}

/// Anomaly kinds over every checker of results.json, with their op indices.
fn anomalies(res: &serde_json::Value) -> Vec<(String, Vec<u64>)> {
    res["results"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["anomalies"].as_array().cloned().unwrap_or_default())
        .map(|a| {
            let ops = a["ops"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(serde_json::Value::as_u64)
                .collect();
            (a["kind"].as_str().unwrap_or("").to_owned(), ops)
        })
        .collect()
}

/// Nemesis completions that changed something: nodes killed or a partition in force.
fn effective_faults(run: &Path) -> Vec<serde_json::Value> {
    nemesis_ops(run)
        .into_iter()
        .filter(|op| op["type"] == "info" && op["f"] != "heal")
        .filter(|op| {
            let v = &op["value"];
            v["killed"].as_array().is_some_and(|k| !k.is_empty())
                || v["cuts"].as_array().is_some_and(|c| !c.is_empty())
        })
        .collect()
}

#[test]
fn db_etcd_linearizable_reads_are_valid_under_partitions_and_kills() {
    let _lock = db_lock();
    if !require_db("etcd under partitions", ETCD, true) {
        return;
    }
    let store = tempdir();
    let out = run_test(
        store.path(),
        &[
            "--name",
            "etcd-lin",
            "--target",
            "etcd",
            // Seed 4 plans a bridge partition (3 s), then a kill of the raft leader (3 s).
            "--seed",
            "4",
            "--nemesis",
            "partition,kill",
            "--nemesis-interval",
            "3s",
            "--time-limit",
            "15s",
            "--reads",
            "any",
            "--rate",
            "200",
            "--concurrency",
            "5",
            "--client-timeout",
            "2s",
        ],
    );
    let text = stdout(&out);
    let run = only_run_dir(store.path(), "etcd-lin");
    assert_nothing_left(store.path(), &run);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    assert!(verdict_line(&text).contains("VALID"), "{text}");
    let res = db_common::results(&run);
    assert_eq!(res["validity"], "valid", "{res}");
    let faults = effective_faults(&run);
    for kind in ["start-partition", "start-kill"] {
        assert!(
            faults.iter().any(|op| op["f"] == kind),
            "no {kind} took effect: {:?}",
            nemesis_ops(&run)
        );
    }
    // The workload made progress: acknowledged appends and reads.
    assert!(
        res["stats"]["by_f"]["append"]["ok"].as_u64().unwrap_or(0) > 100,
        "{res}"
    );
    assert!(
        res["stats"]["by_f"]["read"]["ok"].as_u64().unwrap_or(0) > 100,
        "{res}"
    );
}

#[test]
fn db_etcd_serializable_reads_from_a_partitioned_member_are_stale() {
    let _lock = db_lock();
    if !require_db("etcd with a partitioned member", ETCD, true) {
        return;
    }
    let store = tempdir();
    let out = run_test(
        store.path(),
        &[
            "--name",
            "etcd-ser",
            "--target",
            "etcd",
            "--seed",
            "1",
            "--etcd-reads",
            "serializable",
            "--nemesis",
            "partition",
            "--nemesis-interval",
            "5s",
            "--time-limit",
            "15s",
            "--reads",
            "any",
            "--rate",
            "200",
            "--concurrency",
            "5",
        ],
    );
    let text = stdout(&out);
    let run = only_run_dir(store.path(), "etcd-ser");
    assert_nothing_left(store.path(), &run);
    assert_eq!(out.status.code(), Some(1), "{text}\n{}", stderr(&out));
    let res = db_common::results(&run);
    let found = anomalies(&res);
    let stale: Vec<&Vec<u64>> = found
        .iter()
        .filter(|(k, _)| k == "stale-read")
        .map(|(_, ops)| ops)
        .collect();
    assert!(!stale.is_empty(), "no stale read: {text}");

    // At least one stale read came from a member that was cut off at the time.
    let history = std::fs::read_to_string(run.join("history.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = history
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let by_index: HashMap<u64, &serde_json::Value> = lines
        .iter()
        .filter_map(|op| Some((op["index"].as_u64()?, op)))
        .collect();
    // Windows [start, end) in which each node sat in a minority group.
    let mut windows: Vec<(String, u64, u64)> = vec![];
    let mut open: Vec<(String, u64)> = vec![];
    for op in lines
        .iter()
        .filter(|op| op["process"] == "nemesis" && op["type"] == "info")
    {
        let t = op["time_ns"].as_u64().unwrap_or(0);
        for (n, since) in open.drain(..) {
            windows.push((n, since, t));
        }
        if op["f"] == "start-partition"
            && let Some(groups) = op["value"]["groups"].as_array()
        {
            for g in groups.iter().filter_map(|g| g.as_array()) {
                if g.len() * 2 < 3 {
                    open.extend(g.iter().filter_map(|n| Some((n.as_str()?.to_owned(), t))));
                }
            }
        }
    }
    assert!(
        !windows.is_empty(),
        "no member was isolated: {:?}",
        nemesis_ops(&run)
    );
    let isolated_stale: HashSet<u64> = stale
        .iter()
        .flat_map(|ops| ops.iter())
        .filter_map(|i| by_index.get(i))
        .filter(|op| op["f"] == "read")
        .filter(|op| {
            let (node, t) = (
                op["node"].as_str().unwrap_or(""),
                op["time_ns"].as_u64().unwrap_or(0),
            );
            windows
                .iter()
                .any(|(n, a, b)| n == node && *a <= t && t < *b)
        })
        .filter_map(|op| op["index"].as_u64())
        .collect();
    assert!(
        !isolated_stale.is_empty(),
        "no stale read was served by the isolated member during its partition ({} stale reads, windows {windows:?})",
        stale.len()
    );
}

#[test]
fn db_etcd_clock_faults_are_refused() {
    let _lock = db_lock();
    if !require_db("etcd clock refusal", ETCD, false) {
        return;
    }
    let store = tempdir();
    let out = run_test(
        store.path(),
        &[
            "--name",
            "etcd-clock",
            "--target",
            "etcd",
            "--nemesis",
            "clock",
            "--time-limit",
            "5s",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected: {err}");
    assert!(
        lines[0].contains("vDSO") && lines[0].contains("Go"),
        "{err}"
    );
    assert!(etcd_processes_mentioning(&store.path().to_string_lossy()).is_empty());
}

#[test]
fn db_etcd_kills_are_refused_with_endpoints() {
    let store = tempdir();
    let out = run_test(
        store.path(),
        &[
            "--name",
            "etcd-ep-kill",
            "--target",
            "etcd",
            "--endpoints",
            "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3",
            "--nemesis",
            "kill",
            "--time-limit",
            "5s",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("--endpoints") && err.contains("kill"), "{err}");
}

/// Three etcd members started by this test (not by schism), killed on drop.
struct OwnCluster {
    children: Vec<Child>,
    endpoints: Vec<String>,
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_ports(n: usize) -> Vec<u16> {
    // Held together so the kernel hands out distinct ports.
    let held: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

fn start_own_cluster(dir: &Path) -> OwnCluster {
    let ports = free_ports(6);
    let peers: Vec<String> = (0..3)
        .map(|i| format!("e{i}=http://127.0.0.1:{}", ports[2 * i + 1]))
        .collect();
    let mut cluster = OwnCluster {
        children: vec![],
        endpoints: vec![],
    };
    for i in 0..3 {
        let client = format!("http://127.0.0.1:{}", ports[2 * i]);
        let peer = format!("http://127.0.0.1:{}", ports[2 * i + 1]);
        let log = std::fs::File::create(dir.join(format!("e{i}.log"))).unwrap();
        let child = Command::new("etcd")
            .args(["--name", &format!("e{i}")])
            .args([
                "--data-dir",
                &dir.join(format!("e{i}")).display().to_string(),
            ])
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &peers.join(",")])
            .args(["--initial-cluster-state", "new", "--logger=zap"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn etcd");
        cluster.children.push(child);
        cluster
            .endpoints
            .push(format!("127.0.0.1:{}", ports[2 * i]));
    }
    cluster
}

#[test]
fn db_etcd_attached_with_endpoints_runs_valid() {
    let _lock = db_lock();
    if !require_db("etcd attached with --endpoints", ETCD, false) {
        return;
    }
    let store = tempdir();
    let own = tempdir();
    let cluster = start_own_cluster(own.path());
    let endpoints = cluster.endpoints.join(",");
    let out = run_test(
        store.path(),
        &[
            "--name",
            "etcd-attached",
            "--target",
            "etcd",
            "--endpoints",
            &endpoints,
            "--nemesis",
            "none",
            "--time-limit",
            "10s",
            "--rate",
            "200",
            "--concurrency",
            "5",
        ],
    );
    let text = stdout(&out);
    // Our members are still ours: schism must not have stopped them.
    let alive = etcd_processes_mentioning(&own.path().to_string_lossy()).len();
    drop(cluster);
    assert_eq!(alive, 3, "schism stopped members it did not start");
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    let run = only_run_dir(store.path(), "etcd-attached");
    assert_eq!(db_common::results(&run)["validity"], "valid");
    assert!(etcd_processes_mentioning(&own.path().to_string_lossy()).is_empty());
}

#[test]
fn db_etcd_pauses_take_effect_and_linearizable_reads_stay_valid() {
    let _lock = db_lock();
    if !require_db("etcd under pauses", ETCD, false) {
        return;
    }
    let store = tempdir();
    let started = Instant::now();
    // Seed 14 pauses the follower n2 at 2 s and the raft leader at 6 s, 2 s each (SIGSTOP).
    let out = run_test(
        store.path(),
        &[
            "--name",
            "etcd-pause",
            "--target",
            "etcd",
            "--seed",
            "14",
            "--nemesis",
            "pause",
            "--nemesis-interval",
            "2s",
            "--time-limit",
            "10s",
            "--reads",
            "any",
            "--rate",
            "200",
            "--concurrency",
            "5",
            // Short, so that each worker sends a stopped member several ops per pause.
            "--client-timeout",
            "500ms",
        ],
    );
    let took = started.elapsed();
    let text = stdout(&out);
    let run = only_run_dir(store.path(), "etcd-pause");
    assert_nothing_left(store.path(), &run);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    let res = db_common::results(&run);
    assert_eq!(res["validity"], "valid", "{res}");
    // The pauses really stopped their members: ops sent to a member while it was stopped
    // got no acknowledgement from it.
    let history = db_common::history(&run);
    let pauses = db_common::held(&history, "paused");
    assert!(pauses.len() >= 2, "fewer than two pauses: {pauses:?}");
    let (sent, acked) = db_common::ops_sent_to_paused_nodes(&history);
    assert!(sent > 0, "no op reached a paused member");
    assert_eq!(
        acked, 0,
        "paused members acknowledged {acked} of {sent} ops"
    );
    assert!(
        res["stats"]["by_f"]["append"]["ok"].as_u64().unwrap_or(0) > 100,
        "{res}"
    );
    eprintln!(
        "etcd pause: {} s, {} pauses ({:?}), {sent} ops sent to a stopped member, none acknowledged",
        took.as_secs(),
        pauses.len(),
        pauses.iter().map(|p| p.nodes.clone()).collect::<Vec<_>>()
    );
}
