//! Redis end to end: a real primary with two asynchronous replicas (and, for failover,
//! three Sentinels), driven by the real binary; each test asserts on `results.json`.
//!
//! - Replica reads are stale even without faults: with two hot keys and 20 workers, the
//!   replicas' lag (well under a millisecond) is enough for reads to miss acknowledged
//!   appends. No fault is injected, so nothing but the replication lag can cause it.
//! - Pausing the primary until Sentinel fails over loses acknowledged writes: writes sent
//!   during the pause wait (the client timeout outlasts the pause, as with a client that
//!   sets none) and the old primary acknowledges them when it resumes; it is then demoted
//!   and resynchronised from the new primary, which never had them.
//! - `WAIT 2` after every write, reads from the primary, no faults: valid.
//! - Without failover, a killed primary restarts from its append-only file with every
//!   append it acknowledged; a clock fault moves the server's own `TIME`.
//! - Attached with `--endpoints` to a primary and replica started by the test: valid, and
//!   every fault refused in one line naming `--endpoints`.

use super::*;
use std::collections::BTreeMap;

const REDIS: &[(&str, &str)] = &[("redis-server", "redis-server")];
const REDIS_SENTINEL: &[(&str, &str)] = &[
    ("redis-server", "redis-server"),
    ("redis-sentinel", "redis-sentinel"),
];

/// Runs one Redis test; returns the exit code and the anomaly counts by kind over all
/// checkers in results.json. Asserts that no Redis process of the run is left.
fn redis_run(name: &str, extra: &[&str]) -> (Option<i32>, BTreeMap<String, usize>, String) {
    let store = tempdir();
    let mut args = vec!["--name", name, "--target", "redis"];
    args.extend_from_slice(extra);
    let out = run_test(store.path(), &args);
    let text = stdout(&out);
    assert!(
        matches!(out.status.code(), Some(0..=2)),
        "the harness failed: {}",
        stderr(&out)
    );
    let dir = only_run_dir(store.path(), name);
    let results: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("results.json")).expect("results.json"),
    )
    .expect("results.json is JSON");
    let mut counts = BTreeMap::new();
    for checker in results["results"].as_array().expect("results[]") {
        for a in checker["anomalies"].as_array().into_iter().flatten() {
            let kind = a["kind"].as_str().unwrap_or("?").to_owned();
            *counts.entry(kind).or_default() += 1;
        }
    }
    // Replication lag from every node's INFO replication, sampled through the run.
    let lag = std::fs::read_to_string(dir.join("lag.jsonl")).expect("lag.jsonl");
    assert!(lag.contains("INFO replication"), "{lag:.200}");
    let readings = lag
        .lines()
        .skip(1)
        .filter(|l| l.contains("\"unit\":\"bytes\""))
        .count();
    assert!(readings > 20, "few lag readings: {readings}");
    let left = redis_processes_mentioning(&store.path().to_string_lossy());
    assert!(left.is_empty(), "redis processes left: {left:?}");
    (out.status.code(), counts, text)
}

/// Live (not zombie) redis-server / redis-sentinel processes whose command line (their
/// config path) lies under `needle`.
fn redis_processes_mentioning(needle: &str) -> Vec<u32> {
    live_pids_with(&["redis-", needle])
}

#[test]
fn redis_replica_reads_are_stale() {
    let _lock = db_lock();
    if !require_db("redis replica reads", REDIS, true) {
        return;
    }
    // Replication lag alone on idle loopback is a race (RECIPES saw 4 stale reads in
    // 20,000; a loaded CI machine saw none in 10 s). A partition makes it certain, as in
    // Jepsen: every partition of three nodes cuts the primary off from some replica, and
    // the runner still reaches that replica, which serves its old state for seconds.
    let (code, counts, text) = redis_run(
        "redis-stale",
        &[
            "--seed",
            "2",
            "--workload",
            "append",
            "--reads",
            "follower",
            "--keys",
            "2",
            "--concurrency",
            "20",
            "--time-limit",
            "10s",
            "--nemesis",
            "partition",
            "--nemesis-interval",
            "3s",
        ],
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(
        counts.get("stale-read").copied().unwrap_or(0) > 0,
        "no stale read in {counts:?}\n{text}"
    );
}

#[test]
fn redis_sentinel_failover_after_pausing_the_primary_loses_acknowledged_writes() {
    let _lock = db_lock();
    if !require_db("redis sentinel failover", REDIS_SENTINEL, false) {
        return;
    }
    // Quiet 4 s, the primary paused 4 s (Sentinel switches after ~2 s), healed 4 s, the
    // new primary paused 4 s, healed: two failovers, each with writes the old primary
    // acknowledges on resuming and then drops.
    let (code, counts, text) = redis_run(
        "redis-failover",
        &[
            "--seed",
            "1",
            "--workload",
            "append",
            "--failover",
            "auto",
            "--reads",
            "leader",
            "--time-limit",
            "20s",
            "--nemesis",
            "pause",
            "--nemesis-targets",
            "leader",
            "--nemesis-interval",
            "4s",
            "--client-timeout",
            "10s",
        ],
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(
        counts.get("lost-write").copied().unwrap_or(0) > 0,
        "no lost write in {counts:?}\n{text}"
    );
}

#[test]
fn redis_wait_for_every_replica_with_primary_reads_is_valid() {
    let _lock = db_lock();
    if !require_db("redis sync replication", REDIS, false) {
        return;
    }
    let (code, counts, text) = redis_run(
        "redis-sync",
        &[
            "--seed",
            "3",
            "--workload",
            "append",
            "--replication",
            "sync",
            "--reads",
            "leader",
            "--time-limit",
            "10s",
            "--nemesis",
            "none",
        ],
    );
    assert_eq!(code, Some(0), "{counts:?}\n{text}");
    assert!(counts.is_empty(), "{counts:?}\n{text}");
}

/// A Redis server's `TIME` in ms since the epoch (raw RESP over TCP, 1 s timeouts).
pub(crate) fn redis_time_ms(addr: &str) -> Option<i64> {
    use std::io::{Read, Write};
    let sa: std::net::SocketAddr = addr.parse().ok()?;
    let mut s = std::net::TcpStream::connect_timeout(&sa, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    s.write_all(b"TIME\r\n").ok()?;
    // *2 $n secs $m usecs: five CRLF-terminated lines.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 128];
    while buf.windows(2).filter(|w| w == b"\r\n").count() < 5 {
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.split("\r\n").collect();
    let secs: i64 = lines.get(2)?.parse().ok()?;
    let usecs: i64 = lines.get(4)?.parse().ok()?;
    Some(secs * 1000 + usecs / 1000)
}

#[test]
fn redis_without_failover_keeps_acknowledged_writes_across_kills_and_takes_clock_faults() {
    let _lock = db_lock();
    if !require_db("redis kill and clock faults", REDIS, false) {
        return;
    }
    let store = tempdir();
    let name = "redis-kill-clock";
    // Seed 12 kills the primary at 2 s (restarted at 4 s) and sets its clock 4.1 s back
    // at 6 s (real time again at 8 s); no
    // Sentinel, so the primary stays n1 and comes back from its append-only file.
    let started = Instant::now();
    let run = db_common::run_test_reading_clocks(
        store.path(),
        &[
            "--name",
            name,
            "--target",
            "redis",
            "--workload",
            "append",
            "--failover",
            "none",
            "--reads",
            "leader",
            "--seed",
            "12",
            "--nemesis",
            "kill,clock",
            "--nemesis-targets",
            "leader",
            "--nemesis-interval",
            "2s",
            "--time-limit",
            "10s",
        ],
        redis_time_ms,
    );
    let took = started.elapsed();
    let dir = only_run_dir(store.path(), name);
    let counts = db_common::anomaly_counts(&dir);
    assert_eq!(
        run.code,
        Some(0),
        "{counts:?}\n{}\n{}",
        run.stdout,
        run.stderr
    );
    assert!(counts.is_empty(), "{counts:?}");
    let history = db_common::history(&dir);

    // The primary was really killed and restarted, and what it had acknowledged before
    // the kill was all there when it answered again: for every key, the first read the
    // restarted primary served holds every append acknowledged before the kill.
    let kills = db_common::held(&history, "killed");
    assert!(
        kills.iter().any(|k| k.nodes == ["n1"]),
        "the primary was never killed: {kills:?}"
    );
    let ops = db_common::client_ops(&history);
    let mut checked = 0;
    for k in &kills {
        let mut acked: BTreeMap<u64, Vec<i64>> = BTreeMap::new();
        for (_, done) in &ops {
            if done["type"] == "ok"
                && done["f"] == "append"
                && done["time_ns"].as_u64().unwrap_or(u64::MAX) < k.from_ns
                && let (Some(key), Some(v)) = (done["key"].as_u64(), done["value"].as_i64())
            {
                acked.entry(key).or_default().push(v);
            }
        }
        for (key, values) in &acked {
            let first_read = ops.iter().find(|(invoked, done)| {
                *invoked > k.until_ns
                    && done["type"] == "ok"
                    && done["f"] == "read"
                    && done["node"] == "n1"
                    && done["key"].as_u64() == Some(*key)
            });
            let Some((_, read)) = first_read else {
                continue;
            };
            let seen: Vec<i64> = read["value"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(serde_json::Value::as_i64)
                .collect();
            let lost: Vec<&i64> = values.iter().filter(|v| !seen.contains(v)).collect();
            assert!(
                lost.is_empty(),
                "key {key}: appends {lost:?} acknowledged before the kill are missing from the restarted primary's read {read}"
            );
            checked += values.len();
        }
    }
    assert!(
        checked > 100,
        "too few acknowledged appends were read back after a restart: {checked}"
    );

    // The clock fault moved the server's own clock (its TIME), not only the shim's file.
    db_common::assert_clock_skew_seen(&run, &history);
    let left = redis_processes_mentioning(&store.path().to_string_lossy());
    assert!(left.is_empty(), "redis processes left: {left:?}");
    assert_no_leftovers(store.path(), &dir);
    eprintln!(
        "redis kill+clock: {} s, {checked} acknowledged appends read back after restarts, {} skewed clock reads of {}",
        took.as_secs(),
        run.skewed.len(),
        run.reads
    );
}

/// Live redis-server processes whose command line mentions `needle`.
fn own_redis_alive(needle: &str) -> usize {
    redis_processes_mentioning(needle).len()
}

#[test]
fn redis_attached_with_endpoints_runs_valid_and_refuses_faults() {
    let _lock = db_lock();
    if !require_db("redis attached with --endpoints", REDIS, false) {
        return;
    }
    let started = Instant::now();
    db_common::assert_faults_refused_with_endpoints(
        "redis",
        "127.0.0.1:1,127.0.0.1:2",
        "kill,pause,clock",
    );
    // A primary and a replica started here, not by schism.
    let own = tempdir();
    let ports = db_common::free_ports(2);
    let server = |port: u16, replica_of: Option<u16>| {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--set-proc-title", "no", "--protected-mode", "no"])
            .args(["--dir", &own.path().display().to_string()]);
        if let Some(p) = replica_of {
            cmd.args(["--replicaof", "127.0.0.1", &p.to_string()]);
        }
        db_common::OwnProcess::spawn(&mut cmd, &own.path().join(format!("r{port}.log")))
    };
    let primary = server(ports[0], None);
    let replica = server(ports[1], Some(ports[0]));
    db_common::wait_for("own redis replica", Duration::from_secs(10), || {
        Command::new("redis-cli")
            .args(["-p", &ports[1].to_string(), "info", "replication"])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("master_link_status:up"))
    });
    let endpoints = format!("127.0.0.1:{},127.0.0.1:{}", ports[0], ports[1]);
    let store = tempdir();
    let out = run_test(
        store.path(),
        &[
            "--name",
            "redis-attached",
            "--target",
            "redis",
            "--endpoints",
            &endpoints,
            "--workload",
            "append",
            "--reads",
            "leader",
            "--nemesis",
            "none",
            "--time-limit",
            "8s",
        ],
    );
    let needle = own.path().to_string_lossy().into_owned();
    let alive = own_redis_alive(&needle);
    drop((primary, replica));
    assert_eq!(alive, 2, "schism stopped servers it did not start");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let run = only_run_dir(store.path(), "redis-attached");
    let res = db_common::results(&run);
    assert_eq!(res["validity"], "valid", "{res}");
    assert!(
        res["stats"]["by_f"]["append"]["ok"].as_u64().unwrap_or(0) > 100,
        "{res}"
    );
    assert_eq!(own_redis_alive(&needle), 0, "own redis servers left");
    eprintln!("redis attached: {} s", started.elapsed().as_secs());
}
