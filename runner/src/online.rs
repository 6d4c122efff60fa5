//! Online checking: anomalies proven while a history is still growing (`schism test`'s
//! recorder, `schism check --follow`).
//!
//! A thin shell over `schism_checker::online::Incremental`, the incremental checkers:
//! each recorded op is fed to them once, as the typed op the recorder holds (no JSON round
//! trip), and an anomaly is claimed as soon as the ops so far prove it — at the op that
//! proves it, not at a later periodic check. What is claimed online and what waits for
//! the end is said there; the claims use `schism_checker::counts`' kind names and are
//! never more than the offline check confirms (the agreement tests feed the runner's own
//! histories and the checker's simulated ones through both). The final verdict is always
//! the offline check's; online claims are only printed (and, with `--stop-on-anomaly`,
//! end the run). Memory is bounded by the checker's `Limits` (per live key and session).

use schism_checker::online::{Claim, Incremental, Limits};
use schism_checker::{AnomalyKind, RegisterOptions, Workload};
use schism_history::Op;
use std::collections::BTreeMap;

pub use schism_checker::online::ONLINE_KINDS;

/// One anomaly proven online: its kind, first witness op and explanation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Found {
    pub kind: AnomalyKind,
    pub op: u64,
    pub key: u64,
    /// Every witness op (the offending op first).
    pub ops: Vec<u64>,
    pub explanation: String,
}

impl From<Claim> for Found {
    fn from(c: Claim) -> Found {
        Found {
            kind: c.kind,
            op: c.op(),
            key: c.key,
            ops: c.ops,
            explanation: c.explanation,
        }
    }
}

/// The online checker of one growing history.
#[derive(Debug)]
pub struct OnlineChecker {
    inner: Incremental,
}

impl OnlineChecker {
    /// `workload` as the offline check will use (None: inferred from the ops).
    pub fn new(workload: Option<Workload>) -> Self {
        OnlineChecker {
            inner: Incremental::new(workload, RegisterOptions::default(), Limits::default()),
        }
    }

    /// Feeds one recorded op (in index order); returns the anomalies it proved.
    pub fn push(&mut self, op: &Op) -> Vec<Found> {
        if self.inner.push(op) == 0 {
            return Vec::new();
        }
        self.inner
            .take_claims()
            .into_iter()
            .map(Found::from)
            .collect()
    }

    /// Ops fed so far.
    pub fn len(&self) -> u64 {
        self.inner.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Why online checking stopped, if it did (the offline check still sees all).
    pub fn stopped(&self) -> Option<&str> {
        self.inner.stopped()
    }

    /// Anomalies proven so far, by kind name (`schism_checker::counts`' names).
    pub fn counts(&self) -> BTreeMap<&'static str, u64> {
        self.inner
            .counts()
            .iter()
            .map(|(k, &n)| (k.as_str(), n))
            .collect()
    }

    /// `3 stale-read, 1 monotonic-read`, or `none`.
    pub fn counts_line(&self) -> String {
        let counts = self.inner.counts();
        if counts.is_empty() {
            return "none".into();
        }
        counts
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Anomalies of one kind a run prints as they are proven; the rest are counted.
pub const MAX_PRINTED_PER_KIND: usize = 10;

/// What the online checker of a run has found so far (read by the progress line).
#[derive(Debug, Default, Clone)]
pub struct OnlineStatus {
    /// `2 stale-read, 1 monotonic-read`, or `none`.
    pub counts: String,
    /// The first anomaly proven: milliseconds into the run, kind, op index.
    pub first: Option<(u64, &'static str, u64)>,
    /// Bumped at every new claim (the progress line prints at once when it changes).
    pub generation: u64,
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
        let (tx, rx) = std::sync::mpsc::channel::<Vec<Op>>();
        let status = std::sync::Arc::new(std::sync::Mutex::new(OnlineStatus {
            counts: "none".into(),
            first: None,
            generation: 0,
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

fn online_loop(
    rx: std::sync::mpsc::Receiver<Vec<Op>>,
    workload: Option<Workload>,
    stop: bool,
    cancel: tokio::sync::watch::Sender<bool>,
    start: std::time::Instant,
    status: &std::sync::Mutex<OnlineStatus>,
) {
    let mut online = OnlineChecker::new(workload);
    let mut stopped_said = false;
    let mut printed: BTreeMap<AnomalyKind, usize> = BTreeMap::new();
    // Until the run is over (the recorder closes the feed): the offline check takes it
    // from there.
    while let Ok(batch) = rx.recv() {
        let found: Vec<Found> = batch.iter().flat_map(|op| online.push(op)).collect();
        if !stopped_said && let Some(why) = online.stopped() {
            eprintln!("schism: {why}");
            stopped_said = true;
        }
        if found.is_empty() {
            continue;
        }
        let at_ms = start.elapsed().as_millis() as u64;
        for f in &found {
            let n = printed.entry(f.kind).or_insert(0);
            *n += 1;
            if *n <= MAX_PRINTED_PER_KIND {
                eprintln!(
                    "schism: online: {} at op index {}: {}",
                    f.kind, f.op, f.explanation
                );
            }
            if *n == MAX_PRINTED_PER_KIND {
                eprintln!(
                    "schism: online: further {} anomalies are only counted (progress line)",
                    f.kind
                );
            }
        }
        if let Ok(mut s) = status.lock() {
            s.counts = online.counts_line();
            s.generation += 1;
            if s.first.is_none() {
                s.first = Some((at_ms, found[0].kind.as_str(), found[0].op));
                if stop {
                    eprintln!(
                        "schism: --stop-on-anomaly: {} proven at op index {}; stopping the run",
                        found[0].kind, found[0].op
                    );
                    let _ = cancel.send(true);
                }
            }
        }
    }
}
