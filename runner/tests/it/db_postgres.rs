//! PostgreSQL end to end: a real primary and two streaming standbys provisioned under the
//! run folder, driven by the real binary. Async replication with reads from standbys must
//! show stale reads; synchronous replication with primary reads must survive kills of the
//! primary (with automatic promotion) without losing an acknowledged write; a paused
//! primary is fenced before a standby is promoted, so the writes queued on it are never
//! acknowledged (valid), and a clock fault moves the server's `clock_timestamp()`; a run
//! attached with `--endpoints` to a primary and standby started by the test is valid.

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
    db_common::anomalies(run)
        .into_iter()
        .map(|(checker, a)| (checker, a["kind"].as_str().unwrap_or("").to_owned()))
        .collect()
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
    // A standby that has connected but not yet reported a replay LSN (the first 100 ms)
    // has a row with a null position: the sampler writes `behind: null` (unknown), never
    // a made-up number. Every reading is in bytes, and every known position has its gap.
    assert!(readings.iter().all(|r| r["unit"] == "bytes"), "{lag:.300}");
    assert!(
        readings
            .iter()
            .all(|r| r["position"].is_null() || r["behind"].as_u64().is_some()),
        "a known position without its gap: {lag:.300}"
    );
    let known = readings
        .iter()
        .filter(|r| r["behind"].as_u64().is_some())
        .count();
    assert!(known > 20, "few lag readings with a known gap: {known}");
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

/// A PostgreSQL server's `clock_timestamp()` in ms since the epoch (psql, 2 s at most).
fn pg_time_ms(addr: &str) -> Option<i64> {
    let (host, port) = addr.rsplit_once(':')?;
    db_common::command_ms(
        "psql",
        &[
            "-h",
            host,
            "-p",
            port,
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-Atc",
            "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
        ],
    )
}

#[test]
fn a_paused_primary_is_fenced_before_a_standby_is_promoted_and_clocks_skew() {
    let _lock = db_lock();
    if !require_db(
        "postgres pause and clock faults",
        &[PG[0], PG[1], ("psql", "postgresql-client-15")],
        false,
    ) {
        return;
    }
    let store = pg_store();
    let name = "pg-fence";
    // Seed 2 sets the primary n1's clock 1.3 s back at 4 s for 4 s, and pauses the
    // primary (n1) at 12 s for 4 s (the failover task fences it about 2 s into the
    // pause: 4 s leave a margin before the thaw); the heal at 16 s restarts the fenced n1
    // as a standby. Async replication and a client timeout longer than the pause: the
    // writes queued on the frozen n1 would be acknowledged by it when it thaws — after a
    // standby was promoted, so lost — unless it is fenced first.
    let started = Instant::now();
    let run = db_common::run_test_reading_clocks(
        store.path(),
        &[
            "--name",
            name,
            "--target",
            "postgres",
            "--seed",
            "2",
            "--time-limit",
            "20s",
            "--nemesis",
            "pause,clock",
            "--nemesis-targets",
            "leader",
            "--nemesis-interval",
            "4s",
            "--replication",
            "async",
            "--reads",
            "leader",
            "--failover",
            "auto",
            "--client-timeout",
            "10s",
        ],
        pg_time_ms,
    );
    let took = started.elapsed();
    let dir = only_run_dir(store.path(), name);
    let kinds = anomaly_kinds(&dir);
    let history = db_common::history(&dir);

    // n1 (the primary) was paused; the failover task fenced it before promoting.
    let pauses = db_common::held(&history, "paused");
    let pause_at = pauses
        .iter()
        .find(|p| p.nodes == ["n1"])
        .unwrap_or_else(|| panic!("the primary was never paused: {pauses:?}"))
        .from_ns;
    // The fence leaves one loss possible: with async replication, what n1 committed in
    // the last instant before it froze and never shipped is not on the promoted standby
    // (README, "A paused PostgreSQL primary is fenced"): a lost write if n1 acknowledged
    // it, and reads that saw it before the pause disagree with later ones (the kinds the
    // reference cluster's async failover row shows). So the run is valid, or invalid by
    // those kinds only, with every lost append sent to n1 before its pause (and answered
    // by it: a reply sent just before the freeze may be recorded a moment after it); n1
    // answering an op sent after would be the unfenced primary, which this test is about.
    const ASYNC_LOSS: [&str; 5] = [
        "lost-write",
        "divergence",
        "stale-read",
        "monotonic-read",
        "read-your-writes",
    ];
    let lost = db_common::lost_write_acks(&dir, &history);
    let only_async_losses = kinds.iter().all(|(_, k)| ASYNC_LOSS.contains(&k.as_str()))
        && lost
            .iter()
            .all(|l| l.node == "n1" && l.invoked_ns < pause_at);
    assert!(
        run.code == Some(0) || (run.code == Some(1) && only_async_losses),
        "expected a valid run, or only what async replication loses: appends sent to n1 \
         before its pause at {pause_at} ns; got exit {:?}, {kinds:?}, lost {lost:?}\n{}\n{}",
        run.code,
        run.stdout,
        run.stderr
    );
    // Ops were waiting on the frozen primary (so the fence mattered), and none of them
    // was acknowledged: they ended with its connections.
    let (sent, acked) = db_common::ops_sent_to_paused_nodes(&history);
    assert!(sent > 0, "no op was waiting on the paused primary");
    assert_eq!(
        acked, 0,
        "the paused primary acknowledged {acked} of {sent} ops"
    );
    // Nothing but a promoted standby served what was sent once n1 was paused, until n1
    // rejoined as a standby (reads go to the primary, so n1 serves nothing sent after the
    // pause at all). By invocation: a reply n1 sent just before the freeze may be recorded
    // a moment after it.
    let served_by_n1_after: Vec<serde_json::Value> = db_common::client_ops(&history)
        .into_iter()
        .filter(|(invoked, done)| {
            *invoked > pause_at && done["type"] == "ok" && done["node"] == "n1"
        })
        .map(|(_, done)| done)
        .collect();
    assert!(
        served_by_n1_after.is_empty(),
        "the deposed primary n1 acknowledged ops sent after it was paused: {:?}",
        &served_by_n1_after[..served_by_n1_after.len().min(3)]
    );
    let promoted_ok = history
        .iter()
        .filter(|o| o["type"] == "ok" && o["f"] == "append")
        .filter(|o| o["node"].as_str().is_some_and(|n| n != "n1"))
        .count();
    assert!(
        promoted_ok > 100,
        "the promoted standby served {promoted_ok} appends"
    );
    assert!(
        run.stderr.contains("rejoined") || run.stderr.contains("re-cloning"),
        "the fenced n1 never rejoined as a standby:\n{}",
        run.stderr
    );
    db_common::assert_clock_skew_seen(&run, &history);
    let left = postgres_left(&store.path().to_string_lossy());
    assert!(left.is_empty(), "postgres processes left: {left:?}");
    eprintln!(
        "pg fence: {} s, {sent} ops waiting on the paused primary (none acknowledged), {promoted_ok} appends on promoted standbys, {} lost in the async window, {} skewed clock reads of {}",
        took.as_secs(),
        lost.len(),
        run.skewed.len(),
        run.reads
    );
}

/// Runs a PostgreSQL tool (or the server) as user postgres.
fn as_postgres(tool: &str) -> Command {
    let mut c = Command::new("setpriv");
    c.args([
        "--reuid",
        "postgres",
        "--regid",
        "postgres",
        "--init-groups",
        "--",
    ])
    .arg(format!("/usr/lib/postgresql/15/bin/{tool}"));
    c
}

/// An empty directory owned by postgres (mode 0700), as initdb and pg_basebackup want.
fn pg_owned_dir(path: &Path) {
    std::fs::create_dir_all(path).expect("mkdir");
    let st = Command::new("chown")
        .args(["postgres:postgres", &path.display().to_string()])
        .status()
        .expect("chown");
    assert!(st.success(), "chown {}", path.display());
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).expect("chmod");
}

fn pg_server(dir: &Path, port: u16) -> db_common::OwnProcess {
    let mut cmd = as_postgres("postgres");
    cmd.args(["-D", &dir.display().to_string(), "-p", &port.to_string()])
        .args(["-c", "listen_addresses=127.0.0.1"])
        .args(["-c", "unix_socket_directories="])
        .args(["-c", "fsync=off"]);
    let mut p = db_common::OwnProcess::spawn(&mut cmd, &dir.with_extension("log"));
    // SIGINT: fast shutdown (SIGTERM would wait for clients to leave).
    p.stop_signal = nix::sys::signal::Signal::SIGINT;
    p
}

fn pg_answers(port: u16) -> bool {
    db_common::command_ms(
        "psql",
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-Atc",
            "SELECT 1",
        ],
    ) == Some(1)
}

#[test]
fn postgres_attached_with_endpoints_runs_valid_and_refuses_faults() {
    let _lock = db_lock();
    if !require_db(
        "postgres attached with --endpoints",
        &[PG[0], PG[1], ("psql", "postgresql-client-15")],
        false,
    ) {
        return;
    }
    let started = Instant::now();
    db_common::assert_faults_refused_with_endpoints(
        "postgres",
        "127.0.0.1:1,127.0.0.1:2",
        "kill,pause,clock",
    );
    // A primary and a streaming standby started here, not by schism.
    let own = pg_store();
    let (p1, p2) = (own.path().join("p1"), own.path().join("p2"));
    let ports = db_common::free_ports(2);
    pg_owned_dir(&p1);
    let st = as_postgres("initdb")
        .args(["-D", &p1.display().to_string(), "-U", "postgres"])
        .args([
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("initdb");
    assert!(st.success(), "initdb failed");
    let primary = pg_server(&p1, ports[0]);
    db_common::wait_for("own postgres primary", Duration::from_secs(20), || {
        pg_answers(ports[0])
    });
    pg_owned_dir(&p2);
    let st = as_postgres("pg_basebackup")
        .args(["-D", &p2.display().to_string(), "-R", "-X", "stream"])
        .args(["-c", "fast", "--no-sync"])
        .args([
            "-d",
            &format!("host=127.0.0.1 port={} user=postgres", ports[0]),
        ])
        .status()
        .expect("pg_basebackup");
    assert!(st.success(), "pg_basebackup failed");
    let standby = pg_server(&p2, ports[1]);
    db_common::wait_for("own postgres standby", Duration::from_secs(20), || {
        pg_answers(ports[1])
    });
    let endpoints = format!("127.0.0.1:{},127.0.0.1:{}", ports[0], ports[1]);
    let store = pg_store();
    let out = run_test(
        store.path(),
        &[
            "--name",
            "pg-attached",
            "--target",
            "postgres",
            "--endpoints",
            &endpoints,
            "--reads",
            "leader",
            "--nemesis",
            "none",
            "--time-limit",
            "8s",
        ],
    );
    let needle = own.path().to_string_lossy().into_owned();
    let alive = live_pids_with(&[&needle, "postgres"]).len();
    drop((standby, primary));
    assert!(alive >= 2, "schism stopped servers it did not start");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let run = only_run_dir(store.path(), "pg-attached");
    let res = db_common::results(&run);
    assert_eq!(res["validity"], "valid", "{res}");
    let oks: u64 = ["read", "append", "write", "cas"]
        .iter()
        .map(|f| res["stats"]["by_f"][f]["ok"].as_u64().unwrap_or(0))
        .sum();
    assert!(oks > 100, "{res}");
    let left = postgres_left(&needle);
    assert!(left.is_empty(), "own postgres processes left: {left:?}");
    eprintln!("pg attached: {} s", started.elapsed().as_secs());
}
