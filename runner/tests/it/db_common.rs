//! What the database end-to-end tests share: results.json and history.jsonl readers, the
//! windows in which the nemesis held a fault, and a run whose server clocks are read while
//! it goes (to show that a clock fault really moved a server's clock, not only that the
//! nemesis wrote a clock file).
//!
//! The clock probe asks each node for its own time (Redis `TIME`, PostgreSQL
//! `clock_timestamp()`, MariaDB `SYSDATE(6)`) every 200 ms, and keeps the reads that fall
//! outside the real-time window of their own request by more than `SKEW_EVIDENCE_MS`:
//! a server on real time can never answer one.

use super::*;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// How far outside its request's real-time window a server's clock read must fall to
/// count as evidence of skew (every fault the schedule plans moves a clock by 100 ms or
/// more; a read answered on real time is inside the window by construction).
pub const SKEW_EVIDENCE_MS: i64 = 50;

/// results.json of a run.
pub fn results(run: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(run.join("results.json")).expect("results.json");
    serde_json::from_str(&text).expect("results.json is JSON")
}

/// Every anomaly of results.json with the checker that found it.
pub fn anomalies(run: &Path) -> Vec<(String, serde_json::Value)> {
    let mut out = vec![];
    for checker in results(run)["results"].as_array().into_iter().flatten() {
        let name = checker["checker"].as_str().unwrap_or("?");
        for a in checker["anomalies"].as_array().into_iter().flatten() {
            out.push((name.to_owned(), a.clone()));
        }
    }
    out
}

/// Anomaly counts by kind over every checker of results.json.
pub fn anomaly_counts(run: &Path) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for (_, a) in anomalies(run) {
        *counts
            .entry(a["kind"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
    }
    counts
}

/// A `lost-write`'s append: the node that acknowledged it, and when it was invoked.
#[derive(Debug, Clone)]
pub struct LostAck {
    pub node: String,
    pub invoked_ns: u64,
}

/// The append of each `lost-write` in results.json: the anomaly's first op is the
/// append's `ok` line (checker/src/append.rs), paired with its invoke by process.
pub fn lost_write_acks(run: &Path, history: &[serde_json::Value]) -> Vec<LostAck> {
    let invoked: std::collections::HashMap<u64, (u64, serde_json::Value)> = client_ops(history)
        .into_iter()
        .filter_map(|(t, done)| Some((done["index"].as_u64()?, (t, done))))
        .collect();
    let mut out = vec![];
    for (_, a) in anomalies(run) {
        if a["kind"] != "lost-write" {
            continue;
        }
        let (t, ack) = a["ops"][0]
            .as_u64()
            .and_then(|i| invoked.get(&i))
            .unwrap_or_else(|| panic!("a lost write without its ok line: {a}"));
        assert_eq!(
            ack["type"], "ok",
            "the first op of a lost write is its ok: {a}"
        );
        out.push(LostAck {
            node: ack["node"].as_str().unwrap_or("?").to_owned(),
            invoked_ns: *t,
        });
    }
    out
}

/// Every op of history.jsonl.
pub fn history(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("history.jsonl"))
        .expect("history.jsonl")
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// A fault in force: from the nemesis `info` that applied it to the `invoke` of the next
/// change, with the nodes it held (`paused`, `killed` or clock-set nodes).
#[derive(Debug, Clone)]
pub struct Held {
    pub from_ns: u64,
    pub until_ns: u64,
    pub nodes: Vec<String>,
}

/// The windows in which `field` (`paused`, `killed`, `clocks`) of the nemesis state was
/// not empty.
pub fn held(history: &[serde_json::Value], field: &str) -> Vec<Held> {
    let mut out: Vec<Held> = vec![];
    for o in history.iter().filter(|o| o["process"] == "nemesis") {
        let t = o["time_ns"].as_u64().unwrap_or_default();
        if o["type"] == "invoke" {
            if let Some(w) = out.last_mut()
                && w.until_ns == u64::MAX
            {
                w.until_ns = t;
            }
            continue;
        }
        let v = &o["value"][field];
        let nodes: Vec<String> = match v {
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|n| n.as_str().map(str::to_owned))
                .collect(),
            serde_json::Value::Object(m) => m.keys().cloned().collect(),
            _ => vec![],
        };
        if !nodes.is_empty() {
            out.push(Held {
                from_ns: t,
                until_ns: u64::MAX,
                nodes,
            });
        }
    }
    out
}

/// Client ops as (invoke time, completion) pairs: a process has one op open at a time.
pub fn client_ops(history: &[serde_json::Value]) -> Vec<(u64, serde_json::Value)> {
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

/// What a node's paused windows show: ops sent to it while it was stopped (invoked after
/// the pause took effect, before the heal began), and how many of those it acknowledged
/// before the heal (a stopped process answers nothing; an op it answers after resuming
/// is fine).
pub fn ops_sent_to_paused_nodes(history: &[serde_json::Value]) -> (usize, usize) {
    let windows = held(history, "paused");
    let (mut sent, mut acked) = (0, 0);
    for (invoked, done) in client_ops(history) {
        let node = done["node"].as_str().unwrap_or_default();
        let completed = done["time_ns"].as_u64().unwrap_or_default();
        for w in &windows {
            if invoked > w.from_ns && invoked < w.until_ns && w.nodes.iter().any(|n| n == node) {
                sent += 1;
                if done["type"] == "ok" && completed < w.until_ns {
                    acked += 1;
                }
            }
        }
    }
    (sent, acked)
}

/// One server clock read that no server on real time could have answered.
#[derive(Debug, Clone)]
pub struct Skewed {
    pub node: String,
    /// How far outside the request's real-time window the answer was (negative: behind).
    pub off_ms: i64,
}

/// A finished run whose server clocks were read while it went.
pub struct ProbedRun {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// `(node, host:port)` from the `ready:` line.
    pub nodes: Vec<(String, String)>,
    /// Clock reads taken (every node, every round), and those showing skew.
    pub reads: usize,
    pub skewed: Vec<Skewed>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `(node, host:port)` pairs of a `schism: <db> ready: …` line: each `nN` token and the
/// first address after it.
pub fn nodes_of_ready_line(line: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = vec![];
    let mut last: Option<String> = None;
    for tok in line.split(|c: char| c.is_whitespace() || c == ',' || c == ';') {
        if tok.len() > 1 && tok.starts_with('n') && tok[1..].chars().all(|c| c.is_ascii_digit()) {
            last = Some(tok.to_owned());
        } else if tok.parse::<std::net::SocketAddrV4>().is_ok()
            && let Some(n) = last.take()
            && !out.iter().any(|(m, _)| *m == n)
        {
            out.push((n, tok.to_owned()));
        }
    }
    out
}

/// Runs `schism test` like `run_test`, reading every node's clock with `read_ms` (server
/// time in ms since the epoch, `None` when it did not answer) from the moment the cluster
/// is ready until the run ends.
pub fn run_test_reading_clocks(
    store: &Path,
    extra: &[&str],
    read_ms: fn(&str) -> Option<i64>,
) -> ProbedRun {
    let mut child = schism()
        .env("SCHISM_STATE_DIR", state_dir(store))
        .arg("test")
        .arg("--store")
        .arg(store)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn schism");
    let mut out_pipe = child.stdout.take().expect("stdout");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        s
    });
    let stop = Arc::new(AtomicBool::new(false));
    let found: Arc<Mutex<(usize, Vec<Skewed>)>> = Arc::default();
    let mut probers = vec![];
    let mut nodes = vec![];
    let mut err = String::new();
    let began = Instant::now();
    for line in BufReader::new(child.stderr.take().expect("stderr"))
        .lines()
        .map_while(Result::ok)
    {
        eprintln!("[{:.1}s] {line}", began.elapsed().as_secs_f64());
        if probers.is_empty() && line.contains(" ready: ") {
            nodes = nodes_of_ready_line(&line);
            // One reader per node: a paused node's slow answer delays no other.
            for (node, addr) in nodes.clone() {
                let (stop, found) = (stop.clone(), found.clone());
                probers.push(std::thread::spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        let before = now_ms();
                        if let Some(server) = read_ms(&addr) {
                            let after = now_ms();
                            let off = if server > after {
                                server - after
                            } else if server < before {
                                server - before
                            } else {
                                0
                            };
                            let mut f = found.lock().unwrap();
                            f.0 += 1;
                            if off.abs() > SKEW_EVIDENCE_MS {
                                f.1.push(Skewed {
                                    node: node.clone(),
                                    off_ms: off,
                                });
                            }
                        }
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }));
            }
        }
        err.push_str(&line);
        err.push('\n');
    }
    let status = child.wait().expect("wait for schism");
    eprintln!("[{:.1}s] schism exited", began.elapsed().as_secs_f64());
    stop.store(true, Ordering::SeqCst);
    for p in probers {
        p.join().expect("clock prober");
    }
    let stdout = out_reader.join().unwrap_or_default();
    eprintln!(
        "--- schism test {extra:?} exited {:?}\nstdout:\n{stdout}",
        status.code()
    );
    let (reads, skewed) = std::mem::take(&mut *found.lock().unwrap());
    ProbedRun {
        code: status.code(),
        stdout,
        stderr: err,
        nodes,
        reads,
        skewed,
    }
}

/// Asserts that the probe saw a skewed clock, only on nodes the nemesis set a clock on.
pub fn assert_clock_skew_seen(run: &ProbedRun, history: &[serde_json::Value]) {
    let clocked: Vec<String> = held(history, "clocks")
        .into_iter()
        .flat_map(|w| w.nodes)
        .collect();
    assert!(
        !clocked.is_empty(),
        "the nemesis set no clock: {:?}",
        history
            .iter()
            .filter(|o| o["process"] == "nemesis")
            .collect::<Vec<_>>()
    );
    assert!(run.reads > 20, "few clock reads: {}", run.reads);
    assert!(
        !run.skewed.is_empty(),
        "no server clock read was off real time by more than {SKEW_EVIDENCE_MS} ms ({} reads of {:?}); the nemesis set clocks on {clocked:?}",
        run.reads,
        run.nodes
    );
    for s in &run.skewed {
        assert!(
            clocked.contains(&s.node),
            "{} read {} ms off real time, but the nemesis never set its clock (it set {clocked:?})",
            s.node,
            s.off_ms
        );
    }
}

/// Runs `program args…` under `timeout 2` and parses its trimmed stdout as an integer.
pub fn command_ms(program: &str, args: &[&str]) -> Option<i64> {
    let out = Command::new("timeout")
        .arg("2")
        .arg(program)
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Polls `ready` every 100 ms for up to `limit`; panics naming `what` when it never holds.
pub fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let until = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < until, "{what} not ready within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Distinct free loopback ports.
pub fn free_ports(n: usize) -> Vec<u16> {
    // Held together so the kernel hands out distinct ports.
    let held: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// Asserts that a run attached with `--endpoints` refuses `faults`, before starting,
/// with one line naming `--endpoints`.
pub fn assert_faults_refused_with_endpoints(target: &str, endpoints: &str, faults: &str) {
    let store = tempdir();
    let out = run_test(
        store.path(),
        &[
            "--name",
            "attached-faults",
            "--target",
            target,
            "--endpoints",
            endpoints,
            "--nemesis",
            faults,
            "--time-limit",
            "5s",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected: {err}");
    assert!(lines[0].contains("--endpoints"), "{err}");
}

/// A process this test started, stopped by its pid when dropped (SIGTERM, or `stop_signal`,
/// then SIGKILL after 10 s), with every descendant it left.
pub struct OwnProcess {
    pub child: std::process::Child,
    pub stop_signal: nix::sys::signal::Signal,
}

impl OwnProcess {
    pub fn spawn(cmd: &mut Command, log: &Path) -> OwnProcess {
        let log = std::fs::File::create(log).expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn");
        OwnProcess {
            child,
            stop_signal: nix::sys::signal::Signal::SIGTERM,
        }
    }
}

impl Drop for OwnProcess {
    fn drop(&mut self) {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        let pid = self.child.id();
        let tree = schism_targets::process::descendants(pid);
        let _ = kill(Pid::from_raw(pid as i32), self.stop_signal);
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        for p in tree {
            let _ = kill(Pid::from_raw(p as i32), Signal::SIGKILL);
        }
    }
}
