//! Online checking: anomalies proven while a history is still growing (`schism test`'s
//! recorder, `schism check --follow`).
//!
//! The online checker holds the ops seen so far and, on each `check`, runs the offline
//! `graph` checker over that prefix (its open invocations are treated as Jepsen treats an
//! op without a completion: it may take effect at any later time, or never). It reports
//! only the per-op kinds of `ONLINE_KINDS` — a read that missed a write completed before
//! it began, a session guarantee broken by one process — whose proof uses completed ops
//! alone, so no op recorded later can undo it: an anomaly proven on a prefix is an
//! anomaly of every history that extends it, and the final offline check finds it again
//! (the agreement test feeds the runner's own histories through both) — as the same kind
//! at the same op, or, on a store that loses acknowledged writes, as the loss of the very
//! write the read missed (a later op can turn "this read missed write W" from a stale read
//! into "W was lost"; both are the same violation, counted at W). Two rules keep
//! that true where a later op could re-attribute an anomaly to a lost write: nothing more
//! is claimed once the prefix shows any lost or divergent write, nor while a write the
//! claim rests on has not been returned by any read (it may yet prove lost). The final verdict
//! is always the offline check's. Counts are of the anomalies claimed, by kind, in
//! `schism_checker::counts`' vocabulary. Bounded: past `MAX_ONLINE_OPS` ops the online checker stops (and says
//! so); a caller spaces its checks by the time the last one took (`next_delay`).

use schism_checker::{AnomalyKind, CheckerName, CheckerSet, Options, Workload};
use schism_history::{History, Op};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

/// The kinds proven online: per-op anomalies whose witnesses are completed ops.
pub const ONLINE_KINDS: [AnomalyKind; 5] = [
    AnomalyKind::StaleRead,
    AnomalyKind::MonotonicRead,
    AnomalyKind::ReadYourWrites,
    AnomalyKind::MonotonicWrites,
    AnomalyKind::WritesFollowReads,
];

/// Most ops the online checker holds; past it, online checking stops (the offline check
/// at the end still sees everything).
pub const MAX_ONLINE_OPS: usize = 5_000_000;

/// Shortest pause between two online checks.
pub const MIN_INTERVAL: Duration = Duration::from_millis(200);

/// One anomaly proven online: its kind, first witness op and explanation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Found {
    pub kind: AnomalyKind,
    pub op: u64,
    /// Every witness op (the read first, then the writes it missed or saw).
    pub ops: Vec<u64>,
    pub explanation: String,
}

/// The online checker of one growing history.
#[derive(Debug)]
pub struct OnlineChecker {
    history: History,
    workload: Option<Workload>,
    /// Ops at the last check (a check of an unchanged history is skipped).
    checked_len: usize,
    seen: BTreeSet<(AnomalyKind, u64)>,
    counts: BTreeMap<String, u64>,
    /// Why online checking stopped, if it did.
    pub stopped: Option<String>,
}

impl OnlineChecker {
    /// `workload` as the offline check will use (None: inferred from the ops).
    pub fn new(workload: Option<Workload>) -> Self {
        OnlineChecker {
            history: History::new(Vec::new()),
            workload,
            checked_len: 0,
            seen: BTreeSet::new(),
            counts: BTreeMap::new(),
            stopped: None,
        }
    }

    /// Appends one recorded op (in index order).
    pub fn push(&mut self, op: Op) {
        if self.stopped.is_some() {
            return;
        }
        if self.history.ops.len() >= MAX_ONLINE_OPS {
            self.stopped = Some(format!(
                "online checking stopped at {MAX_ONLINE_OPS} ops (the final check sees all)"
            ));
            self.history.ops = Vec::new();
            return;
        }
        self.history.ops.push(op);
    }

    pub fn len(&self) -> usize {
        self.history.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.history.ops.is_empty()
    }

    /// Checks the ops so far; returns the anomalies proven since the last call. A prefix
    /// the checker cannot analyse yet (no workload to infer, a malformed op) proves
    /// nothing: the offline check will name the problem.
    pub fn check(&mut self) -> Vec<Found> {
        if self.stopped.is_some() || self.history.ops.len() == self.checked_len {
            return Vec::new();
        }
        self.checked_len = self.history.ops.len();
        let opts = Options {
            workload: self.workload,
            checkers: CheckerSet::Only(vec![CheckerName::Graph]),
            max_anomalies_per_kind: usize::MAX,
            ..Options::default()
        };
        let Ok(report) = schism_checker::check(&self.history, &opts) else {
            return Vec::new();
        };
        let observed = observed_values(&self.history);
        // Writes already lost or divergent: the store loses acknowledged writes, and a read
        // that misses one may later be attributed to a loss rather than staleness, so from
        // then on nothing more is claimed online (the offline check counts it all).
        let unsettled: BTreeSet<Option<u64>> = report
            .results
            .iter()
            .flat_map(|r| &r.anomalies)
            .filter(|a| matches!(a.kind, AnomalyKind::LostWrite | AnomalyKind::Divergence))
            .map(|a| a.key)
            .collect();
        let mut new = Vec::new();
        for r in &report.results {
            for a in &r.anomalies {
                if !ONLINE_KINDS.contains(&a.kind)
                    || !unsettled.is_empty()
                    || !self.witness_writes_observed(&a.ops, &observed)
                {
                    continue;
                }
                let Some(&op) = a.ops.first() else { continue };
                if self.seen.insert((a.kind, op)) {
                    new.push(Found {
                        kind: a.kind,
                        op,
                        ops: a.ops.clone(),
                        explanation: a.explanation.clone(),
                    });
                }
            }
        }
        // Counts of what is claimed (every anomaly is listed: no cap), by kind name.
        self.counts = BTreeMap::new();
        for (kind, _) in &self.seen {
            *self.counts.entry(kind.to_string()).or_default() += 1;
        }
        new.sort();
        new
    }

    /// True when every write among `witnesses` was returned by some successful read of
    /// the prefix: a missed write nobody has read yet may turn out lost (a different
    /// anomaly, counted at the write), so a claim waits until it has been seen.
    fn witness_writes_observed(&self, witnesses: &[u64], observed: &HashSet<(u64, i64)>) -> bool {
        witnesses.iter().all(|&index| {
            let Ok(at) = self.history.ops.binary_search_by_key(&index, |o| o.index) else {
                return false;
            };
            let op = &self.history.ops[at];
            if !op.f.is_write() {
                return true;
            }
            match (op.key, op.value.as_int()) {
                (Some(k), Some(v)) => observed.contains(&(k, v)),
                _ => false,
            }
        })
    }

    /// Anomalies proven so far, by kind (`schism_checker::counts`' names).
    pub fn counts(&self) -> &BTreeMap<String, u64> {
        &self.counts
    }

    /// `3 stale-read, 1 monotonic-read`, or `none`.
    pub fn counts_line(&self) -> String {
        if self.counts.is_empty() {
            return "none".into();
        }
        self.counts
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Every `(key, value)` a successful read returned (list elements or a register value).
fn observed_values(h: &History) -> HashSet<(u64, i64)> {
    let mut seen = HashSet::new();
    for op in &h.ops {
        if op.kind != schism_history::OpType::Ok || op.f != schism_history::F::Read {
            continue;
        }
        let Some(k) = op.key else { continue };
        match &op.value {
            schism_history::Value::List(l) => seen.extend(l.iter().map(|&v| (k, v))),
            schism_history::Value::Int(v) => {
                seen.insert((k, *v));
            }
            _ => {}
        }
    }
    seen
}

/// The pause before the next check after one that took `took`: at least
/// `MIN_INTERVAL`, and four times the check's own time, so online checking uses at
/// most about a fifth of one core however long the history grows.
pub fn next_delay(took: Duration) -> Duration {
    MIN_INTERVAL.max(took * 4)
}

/// What the online checker of a run has found so far (read by the progress line).
#[derive(Debug, Default, Clone)]
pub struct OnlineStatus {
    /// `2 stale-read, 1 monotonic-read`, or `none`.
    pub counts: String,
    /// The first anomaly proven: milliseconds into the run, kind, op index.
    pub first: Option<(u64, &'static str, u64)>,
}

/// The online checker of one `schism test` run, on its own thread.
#[derive(Debug)]
pub struct OnlineRun {
    pub status: std::sync::Arc<std::sync::Mutex<OnlineStatus>>,
    handle: std::thread::JoinHandle<()>,
}

impl OnlineRun {
    /// Starts checking what `recorder` records; with `stop`, the first proven anomaly
    /// sets `cancel` (the run then ends as a signal would end it, and heals).
    pub fn start(
        recorder: &crate::recorder::Recorder,
        workload: Option<Workload>,
        stop: bool,
        cancel: tokio::sync::watch::Sender<bool>,
        start: std::time::Instant,
    ) -> std::io::Result<OnlineRun> {
        let (tx, rx) = std::sync::mpsc::channel::<Op>();
        let status = std::sync::Arc::new(std::sync::Mutex::new(OnlineStatus {
            counts: "none".into(),
            first: None,
        }));
        let st = status.clone();
        let handle = std::thread::Builder::new()
            .name("online-checker".into())
            .spawn(move || online_loop(rx, workload, stop, cancel, start, &st))?;
        recorder.feed_online(tx);
        Ok(OnlineRun { status, handle })
    }

    /// Waits for the checker to see the feed close (the recorder finished).
    pub fn finish(self) -> OnlineStatus {
        let _ = self.handle.join();
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// The op as the history file will hold it (written, then read back): a target may hand
/// the recorder values in another in-memory shape (a read's list as verbatim JSON) that
/// the file's reader normalises; the online checker must see what the offline one sees.
fn as_written(op: Op) -> Op {
    serde_json::to_vec(&op)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(op)
}

fn online_loop(
    rx: std::sync::mpsc::Receiver<Op>,
    workload: Option<Workload>,
    stop: bool,
    cancel: tokio::sync::watch::Sender<bool>,
    start: std::time::Instant,
    status: &std::sync::Mutex<OnlineStatus>,
) {
    use std::sync::mpsc::RecvTimeoutError;
    let mut online = OnlineChecker::new(workload);
    let mut next = std::time::Instant::now() + MIN_INTERVAL;
    loop {
        let wait = next.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(wait) {
            Ok(op) => {
                online.push(as_written(op));
                while let Ok(op) = rx.try_recv() {
                    online.push(as_written(op));
                }
                if std::time::Instant::now() < next {
                    continue;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            // The run is over: the offline check takes it from here.
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let t = std::time::Instant::now();
        let found = online.check();
        next = std::time::Instant::now() + next_delay(t.elapsed());
        if found.is_empty() {
            continue;
        }
        let at_ms = start.elapsed().as_millis() as u64;
        for f in &found {
            eprintln!(
                "schism: online: {} at op index {}: {}",
                f.kind, f.op, f.explanation
            );
        }
        if let Ok(mut s) = status.lock() {
            s.counts = online.counts_line();
            if s.first.is_none() {
                s.first = Some((at_ms, found[0].kind.as_str(), found[0].op));
            }
        }
        if stop {
            eprintln!(
                "schism: --stop-on-anomaly: {} proven at op index {}; stopping the run",
                found[0].kind, found[0].op
            );
            let _ = cancel.send(true);
        }
    }
}
