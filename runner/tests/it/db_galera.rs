//! MariaDB Galera end to end (root + network namespaces): three primaries under
//! partitions. What must hold: no acknowledged append is lost; a member cut off from the
//! others acknowledges nothing that was sent to it after the cut took effect (it stalls
//! until evicted, about 3.5 s, then refuses with 1047); the majority keeps serving; the
//! run leaves no mariadbd, helper or namespace behind. About 40 s: ~13 s provisioning,
//! a 20 s workload, final reads, stop. Pauses and clock faults (the LD_PRELOAD shim, seen
//! in the server's `SYSDATE(6)`) lose no write either, and a run attached with
//! `--endpoints` to a one-member cluster started by the test is valid.

use super::*;

/// Every live (non-zombie) process whose command line mentions `needle`.
fn live_processes_mentioning(needle: &str) -> Vec<(u32, String)> {
    live_commands_with(&[needle])
}

/// One partition as the history records it: when the cut was in force (the nemesis
/// `info`), when the heal began, and the isolated side.
struct Window {
    cut_ns: u64,
    heal_ns: u64,
    minority: Vec<String>,
}

fn partitions(history: &[serde_json::Value]) -> Vec<Window> {
    let mut out: Vec<Window> = vec![];
    for o in history.iter().filter(|o| o["process"] == "nemesis") {
        let t = o["time_ns"].as_u64().unwrap_or_default();
        if o["f"] == "start-partition" && o["type"] == "info" {
            let minority = o["value"]["minority"]
                .as_array()
                .or_else(|| o["value"]["groups"][0].as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|n| n.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            out.push(Window {
                cut_ns: t,
                heal_ns: u64::MAX,
                minority,
            });
        } else if o["f"] == "heal"
            && o["type"] == "invoke"
            && let Some(w) = out.last_mut()
            && w.heal_ns == u64::MAX
        {
            w.heal_ns = t;
        }
    }
    out
}

/// Client ops as (invoke time, completion) pairs: a process has one op open at a time.
fn client_ops(history: &[serde_json::Value]) -> Vec<(u64, serde_json::Value)> {
    let mut open = std::collections::HashMap::new();
    let mut out = vec![];
    for o in history.iter().filter(|o| o["process"] != "nemesis") {
        let p = o["process"].to_string();
        if o["type"] == "invoke" {
            open.insert(p, o["time_ns"].as_u64().unwrap_or_default());
        } else if let Some(t) = open.remove(&p) {
            out.push((t, o.clone()));
        }
    }
    out
}

#[test]
fn galera_primaries_under_partitions_lose_no_write_and_the_minority_acknowledges_nothing() {
    let _db = db_lock();
    if !require_db(
        "galera under partitions",
        &[
            ("mariadbd", "mariadb-server"),
            ("mariadb-install-db", "mariadb-server"),
            // mariabackup + socat serve only full state transfers, which this run never
            // needs (joiners are seeded, rejoins use IST).
            ("/usr/lib/galera/libgalera_smm.so", "galera-4"),
        ],
        true,
    ) {
        return;
    }
    let store = tempdir();
    let name = "galera-partition";
    let started = Instant::now();
    let out = run_test(
        store.path(),
        &[
            "--name",
            name,
            "--target",
            "galera",
            "--reads",
            "any",
            "--nemesis",
            "partition",
            // A cut lasts one interval: 7 s leaves the majority ≥ 2 s of service after the
            // eviction (suspect timeout 3 s, plus the view change, slower on a loaded box).
            "--nemesis-interval",
            "7s",
            "--time-limit",
            "20s",
            "--seed",
            "7",
        ],
    );
    let took = started.elapsed();
    assert!(
        matches!(out.status.code(), Some(0..=2)),
        "the harness failed: {}",
        stderr(&out)
    );
    let run = only_run_dir(store.path(), name);

    // No acknowledged write was lost.
    let results = db_common::results(&run);
    let checkers = results["results"].as_array().expect("results");
    let lost: Vec<&serde_json::Value> = checkers
        .iter()
        .flat_map(|c| c["anomalies"].as_array().into_iter().flatten())
        .filter(|a| a["kind"] == "lost-write")
        .collect();
    assert!(lost.is_empty(), "lost writes: {lost:?}");
    let graph = checkers
        .iter()
        .find(|c| c["checker"] == "graph")
        .expect("graph checker");
    assert_eq!(graph["figures"]["lost_writes"], 0, "{graph}");
    assert!(
        graph["figures"]["appends_ok"].as_u64().unwrap_or(0) > 1000,
        "too little traffic to mean anything: {graph}"
    );

    // The isolated member acknowledged nothing sent to it once the cut was in force; it
    // was sent some (so this is not vacuous), and the majority kept committing after the
    // eviction (3 s suspect timeout plus the view change after the cut).
    let history: Vec<serde_json::Value> = std::fs::read_to_string(run.join("history.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let windows = partitions(&history);
    assert!(!windows.is_empty(), "no partition happened");
    let ops = client_ops(&history);
    let (mut sent_to_minority, mut majority_ok_after_eviction) = (0, 0);
    for w in &windows {
        for (invoked, done) in &ops {
            let node = done["node"].as_str().unwrap_or_default();
            let completed = done["time_ns"].as_u64().unwrap_or_default();
            if *invoked <= w.cut_ns || completed >= w.heal_ns {
                continue;
            }
            if w.minority.iter().any(|m| m == node) {
                sent_to_minority += 1;
                assert_ne!(
                    done["type"],
                    "ok",
                    "the isolated {node} acknowledged an op {} ms after the cut: {done}",
                    (invoked - w.cut_ns) / 1_000_000
                );
            } else if done["type"] == "ok" && *invoked > w.cut_ns + 1_000_000_000 {
                // Invoked well after the cut and acknowledged before the heal: the group
                // could commit it only once it had evicted the unreachable member.
                majority_ok_after_eviction += 1;
            }
        }
    }
    assert!(sent_to_minority > 0, "no op reached an isolated member");
    assert!(
        majority_ok_after_eviction > 0,
        "the majority served nothing after evicting the minority"
    );

    // Nothing left: no server or SST helper, no namespace, no registry entry.
    let left = live_processes_mentioning(&store.path().to_string_lossy());
    assert!(left.is_empty(), "processes left: {left:?}");
    assert_no_leftovers(store.path(), &run);
    eprintln!(
        "galera partition run: {} s in all, {} partitions, {sent_to_minority} ops sent to an isolated member (none acknowledged), {majority_ok_after_eviction} majority acks after eviction",
        took.as_secs(),
        windows.len()
    );
}

pub(crate) const GALERA: &[(&str, &str)] = &[
    ("mariadbd", "mariadb-server"),
    ("mariadb-install-db", "mariadb-server"),
    ("mariadb", "mariadb-client"),
    ("/usr/lib/galera/libgalera_smm.so", "galera-4"),
];

/// A MariaDB server's `SYSDATE(6)` in ms since the epoch (the mariadb client, 2 s at most).
fn mariadb_time_ms(addr: &str) -> Option<i64> {
    let (host, port) = addr.rsplit_once(':')?;
    db_common::command_ms(
        "mariadb",
        &[
            "-h",
            host,
            "-P",
            port,
            "-u",
            "schism",
            "--connect-timeout=1",
            "-N",
            "-B",
            "-e",
            "SELECT CAST(UNIX_TIMESTAMP(SYSDATE(6)) * 1000 AS SIGNED)",
        ],
    )
}

#[test]
fn galera_pauses_and_clock_faults_take_effect_and_lose_no_write() {
    let _db = db_lock();
    if !require_db("galera pause and clock faults", GALERA, false) {
        return;
    }
    let store = tempdir();
    let name = "galera-pause-clock";
    // Seed 4 pauses n1 (SIGSTOP) at 2 s for 2 s, and sets its clock 2.3 s ahead (the
    // LD_PRELOAD shim) at 6 s for 2 s.
    let started = Instant::now();
    let run = db_common::run_test_reading_clocks(
        store.path(),
        &[
            "--name",
            name,
            "--target",
            "galera",
            "--reads",
            "any",
            "--nemesis",
            "pause,clock",
            "--nemesis-targets",
            "one",
            "--nemesis-interval",
            "2s",
            "--time-limit",
            "10s",
            "--seed",
            "4",
            // Short, and many workers, so that the stopped member is sent several ops.
            "--client-timeout",
            "1s",
            "--concurrency",
            "10",
        ],
        mariadb_time_ms,
    );
    let took = started.elapsed();
    assert!(
        matches!(run.code, Some(0..=2)),
        "the harness failed: {}",
        run.stderr
    );
    let dir = only_run_dir(store.path(), name);
    let counts = db_common::anomaly_counts(&dir);
    assert!(!counts.contains_key("lost-write"), "{counts:?}");
    let res = db_common::results(&dir);
    let graph = res["results"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["checker"] == "graph")
        .expect("graph checker");
    assert_eq!(graph["figures"]["lost_writes"], 0, "{graph}");
    assert!(
        graph["figures"]["appends_ok"].as_u64().unwrap_or(0) > 500,
        "too little traffic to mean anything: {graph}"
    );
    let history = db_common::history(&dir);
    let pauses = db_common::held(&history, "paused");
    assert!(!pauses.is_empty(), "no pause took effect");
    let (sent, acked) = db_common::ops_sent_to_paused_nodes(&history);
    assert!(sent > 0, "no op reached a paused member");
    assert_eq!(
        acked, 0,
        "paused members acknowledged {acked} of {sent} ops"
    );
    db_common::assert_clock_skew_seen(&run, &history);
    let left = live_processes_mentioning(&store.path().to_string_lossy());
    assert!(left.is_empty(), "processes left: {left:?}");
    assert_no_leftovers(store.path(), &dir);
    eprintln!(
        "galera pause+clock: {} s, verdict {:?}, anomalies {counts:?}, {sent} ops sent to a stopped member (none acknowledged), {} skewed clock reads of {}",
        took.as_secs(),
        res["validity"],
        run.skewed.len(),
        run.reads
    );
}

#[test]
fn galera_attached_with_endpoints_runs_valid_and_refuses_faults() {
    let _db = db_lock();
    if !require_db("galera attached with --endpoints", GALERA, false) {
        return;
    }
    let started = Instant::now();
    db_common::assert_faults_refused_with_endpoints(
        "galera",
        "127.0.0.1:1,127.0.0.1:2",
        "kill,pause,clock",
    );
    // A one-member Galera cluster (wsrep on, bootstrapped by an empty gcomm://) started
    // here, not by schism, with the passwordless `schism` user an attached run needs.
    let own = tempdir();
    let d = own.path();
    let ports = db_common::free_ports(2);
    let cnf = d.join("my.cnf");
    std::fs::create_dir_all(d.join("tmp")).unwrap();
    std::fs::write(
        &cnf,
        format!(
            "[mysqld]\nuser = root\ndatadir = {d}/data\ntmpdir = {d}/tmp\nsocket = {d}/mysqld.sock\n\
             pid-file = {d}/mysqld.pid\nbind-address = 127.0.0.1\nport = {sql}\nskip-name-resolve\n\
             performance_schema = OFF\nbinlog_format = ROW\ndefault_storage_engine = InnoDB\n\
             innodb_autoinc_lock_mode = 2\ninnodb_buffer_pool_size = 64M\n\
             innodb_flush_log_at_trx_commit = 2\nwsrep_on = ON\n\
             wsrep_provider = /usr/lib/galera/libgalera_smm.so\nwsrep_cluster_name = own\n\
             wsrep_node_name = g1\nwsrep_cluster_address = gcomm://\n\
             wsrep_provider_options = \"gmcast.listen_addr=tcp://127.0.0.1:{gcomm}\"\n\
             [client]\nsocket = {d}/mysqld.sock\nuser = root\n",
            d = d.display(),
            sql = ports[0],
            gcomm = ports[1],
        ),
    )
    .unwrap();
    let setup = d.join("setup.sql");
    std::fs::write(
        &setup,
        "FLUSH PRIVILEGES;\nCREATE USER 'schism'@'%' IDENTIFIED BY '';\nGRANT ALL ON *.* TO 'schism'@'%';\n",
    )
    .unwrap();
    let st = Command::new("mariadb-install-db")
        .arg(format!("--defaults-file={}", cnf.display()))
        .args([
            "--user=root",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ])
        .arg(format!("--extra-file={}", setup.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("mariadb-install-db");
    assert!(st.success(), "mariadb-install-db failed");
    let server = db_common::OwnProcess::spawn(
        Command::new("mariadbd").arg(format!("--defaults-file={}", cnf.display())),
        &d.join("mariadbd.log"),
    );
    let endpoint = format!("127.0.0.1:{}", ports[0]);
    db_common::wait_for("own galera member", Duration::from_secs(30), || {
        mariadb_time_ms(&endpoint).is_some()
    });
    let store = tempdir();
    let out = run_test(
        store.path(),
        &[
            "--name",
            "galera-attached",
            "--target",
            "galera",
            "--endpoints",
            &endpoint,
            "--nemesis",
            "none",
            "--time-limit",
            "8s",
        ],
    );
    let needle = d.to_string_lossy().into_owned();
    let alive = live_processes_mentioning(&needle).len();
    drop(server);
    assert_eq!(alive, 1, "schism stopped the server it did not start");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let run = only_run_dir(store.path(), "galera-attached");
    let res = db_common::results(&run);
    assert_eq!(res["validity"], "valid", "{res}");
    let left = live_processes_mentioning(&needle);
    assert!(left.is_empty(), "own mariadbd left: {left:?}");
    eprintln!("galera attached: {} s", started.elapsed().as_secs());
}
