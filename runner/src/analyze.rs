//! Analysis shared by `schism test` and `schism check`: load a history, run the checkers
//! under a budget, compute run statistics, and render the terminal summary.
//!
//! Guarantee: the same history and settings give the same `results.json` verdict whether
//! analysed at the end of a run or later from the folder alone (the run itself re-reads
//! its history file rather than trusting memory). A verdict needs evidence: the checker's
//! `evidence` rule runs on every history (an empty one, or one where nothing was observed,
//! is `unknown`), a run folder whose `status.json` says the run was cut short is `unknown`
//! unless an anomaly was proven, and a check stopped by a signal is `unknown`.

use anyhow::{Result, bail};
use schism_checker::{
    Algorithm, CheckResult, CheckerName, CheckerSet, Model, Options, RegisterOptions, Report,
    Validity, Workload as CheckWorkload,
};
use schism_history::txn::{Txns, read_txn_file};
use schism_history::{History, read_edn_file, read_history_file};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::store;

/// Checker limits.
#[derive(Debug, Clone)]
pub struct Budget {
    pub max_states: u64,
    pub time_limit: Duration,
    /// Set from outside (a signal) to stop the checkers early: the verdict is then unknown.
    pub stop: Option<Arc<AtomicBool>>,
}

/// How `schism check` models the history (all `None`: from the file and workload).
#[derive(Debug, Clone, Default)]
pub struct ModelChoice {
    pub model: Option<Model>,
    /// `Some(None)` is an explicit nil.
    pub initial: Option<Option<i64>>,
    pub algorithm: Algorithm,
    /// Which checkers run (`schism check --checker`; `Fitting` for runs).
    pub checkers: CheckerSet,
}

/// The Knossos model an EDN history's functions call for: `txn` ⇒ multi-register,
/// `acquire`/`release` ⇒ mutex, anything else cas-register.
pub fn edn_model(h: &History) -> Model {
    let first = h
        .ops
        .iter()
        .find(|o| o.process != schism_history::Process::NEMESIS);
    match first.map(|o| o.f.as_str()) {
        Some("txn") => Model::MultiRegister,
        Some("acquire" | "release") => Model::Mutex,
        _ => Model::CasRegister,
    }
}

/// True for Jepsen/Knossos EDN histories.
pub fn is_edn(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("edn"))
}

/// Run statistics live in the checker (the `stats` checker); re-exported for callers.
pub use schism_checker::stats::{FStats, Stats};

/// What lands in `results.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResultsFile {
    pub validity: Validity,
    /// The run's one count per anomaly kind (`schism_checker::counts`): what the summary,
    /// the report, JUnit and comparisons all show.
    #[serde(default)]
    pub counts: BTreeMap<String, u64>,
    pub results: Vec<CheckResult>,
    pub stats: Stats,
    pub history_lines: u64,
    pub warnings: Vec<String>,
    pub schism_version: String,
}

/// Finds the history file for a results folder or a file path.
pub fn history_path(path: &Path) -> Result<PathBuf> {
    if path.is_dir() {
        let h = path.join(store::HISTORY);
        if !h.exists() {
            bail!(
                "{} has no {}: pass a results folder or a history.jsonl file",
                path.display(),
                store::HISTORY
            );
        }
        Ok(h)
    } else if path.exists() {
        Ok(path.to_owned())
    } else {
        bail!("{} does not exist", path.display())
    }
}

/// Reads the workload recorded in a results folder's config.json, if any.
pub fn recorded_workload(dir: &Path) -> Result<Option<CheckWorkload>> {
    // The workload the run generated (a hand-made config.json may not say).
    let workload = crate::config::RunConfig::read(dir)?.and_then(|c| c.workload);
    Ok(workload.and_then(|w| checked_as(w.kind)))
}

/// The transactional workload and consistency model a results folder's config.json
/// records (`None`: not a transactional run).
pub fn recorded_txn(
    dir: &Path,
) -> Result<
    Option<(
        schism_checker::txn::TxnWorkload,
        schism_checker::txn::ConsistencyModel,
    )>,
> {
    let Some(config) = crate::config::RunConfig::read(dir)? else {
        return Ok(None);
    };
    let Some(kind) = config.workload.and_then(|w| txn_checked_as(w.kind)) else {
        return Ok(None);
    };
    let model = config
        .test
        .and_then(|t| t.consistency_model)
        .unwrap_or(schism_checker::txn::ConsistencyModel::StrictSerializable);
    Ok(Some((kind, model)))
}

/// The transactional checker's workload of what a generator produced.
pub fn txn_checked_as(
    kind: schism_workloads::WorkloadKind,
) -> Option<schism_checker::txn::TxnWorkload> {
    use schism_checker::txn::TxnWorkload;
    match kind.txn()? {
        schism_workloads::txn::TxnKind::ListAppend => Some(TxnWorkload::ListAppend),
        schism_workloads::txn::TxnKind::RwRegister => Some(TxnWorkload::RwRegister),
    }
}

/// The checker family of what a generator produced (the checker does not depend on
/// the generators).
/// (`None` for the transactional workloads, which the `txn` checker takes).
pub fn checked_as(kind: schism_workloads::WorkloadKind) -> Option<CheckWorkload> {
    match kind {
        schism_workloads::WorkloadKind::Append => Some(CheckWorkload::Append),
        schism_workloads::WorkloadKind::Register => Some(CheckWorkload::Register),
        schism_workloads::WorkloadKind::ListAppend | schism_workloads::WorkloadKind::RwRegister => {
            None
        }
    }
}

pub fn analyze_file(
    path: &Path,
    workload: Option<CheckWorkload>,
    budget: &Budget,
) -> Result<ResultsFile> {
    analyze_file_with(path, workload, budget, &ModelChoice::default())
}

/// `analyze_file` with an explicit model and checker set. A `.edn` history is read as
/// Jepsen EDN and checked with Knossos semantics: cas-register by default, initial value
/// 0, nil reads match any state.
pub fn analyze_file_with(
    path: &Path,
    workload: Option<CheckWorkload>,
    budget: &Budget,
    choice: &ModelChoice,
) -> Result<ResultsFile> {
    if is_edn(path) && path.is_file() {
        let history = read_edn_file(path)?;
        let register = RegisterOptions {
            initial: choice.initial.unwrap_or(Some(0)),
            nil_read_is_wildcard: true,
        };
        let model = choice.model.unwrap_or_else(|| edn_model(&history));
        // Knossos histories are linearizability tests: the other checkers only on request.
        let checkers = match &choice.checkers {
            CheckerSet::Fitting => CheckerSet::Primary,
            other => other.clone(),
        };
        return analyze_opts(&history, budget, Vec::new(), None, |o| {
            o.model = Some(model);
            o.register = register;
            o.algorithm = choice.algorithm;
            o.checkers = checkers;
        });
    }
    // A transactional run's folder: the `txn` checker, against the recorded model.
    if workload.is_none()
        && path.is_dir()
        && let Some((txn, model)) = recorded_txn(path)?
    {
        return analyze_txn_file(path, txn, model, budget);
    }
    let hpath = history_path(path)?;
    let workload = match workload {
        Some(w) => Some(w),
        None if path.is_dir() => recorded_workload(path)?,
        None => None,
    };
    let set = |o: &mut Options| {
        o.workload = workload;
        o.model = choice.model;
        if let Some(init) = choice.initial {
            o.register.initial = init;
        }
        o.algorithm = choice.algorithm;
        o.checkers = choice.checkers.clone();
    };
    let mut results = if streams(&set) {
        analyze_stream(path, &hpath, budget, &set)?
    } else {
        analyze_whole(path, &hpath, budget, set)?
    };
    // Replica state dumps taken after the final heal, when the run left them.
    if path.is_dir()
        && let Some(c) = crate::models::convergence_from_dir(path)?
    {
        results.validity = results.validity.merge(c.validity);
        results.results.push(c);
        results.counts = schism_checker::counts::count_map(&results.results);
    }
    Ok(results)
}

/// `analyze_opts` on a history file read whole (`read_history_file`); `path` is the file
/// or its run folder (whose status says whether the run was cut short).
fn analyze_whole(
    path: &Path,
    hpath: &Path,
    budget: &Budget,
    set: impl FnOnce(&mut Options),
) -> Result<ResultsFile> {
    let (history, warnings) = read_history_file(hpath)?;
    let warnings = warnings
        .iter()
        .map(|w| format!("{}: {w}", hpath.display()))
        .collect();
    let cut_short = if path.is_dir() {
        store::read_status(path)?.and_then(|s| s.cut_short())
    } else {
        None
    };
    analyze_opts(&history, budget, warnings, cut_short, set)
}

/// True when `analyze_file_with` checks this path op by op, never holding the history
/// (`analyze_stream`): a JSON Lines history or a run folder that is not transactional,
/// checked only by checkers that stream (`schism_checker::stream::streams`).
pub fn streamed(
    path: &Path,
    workload: Option<CheckWorkload>,
    choice: &ModelChoice,
) -> Result<bool> {
    // The choice first: a folder's config is read only when the checkers could stream.
    let could = |workload: Option<CheckWorkload>| {
        streams(&|o: &mut Options| {
            o.workload = workload;
            o.model = choice.model;
            o.checkers = choice.checkers.clone();
        })
    };
    if is_edn(path) && path.is_file() {
        return Ok(false);
    }
    let checkers_stream = could(workload)
        || (workload.is_none()
            && path.is_dir()
            && matches!(choice.checkers, CheckerSet::Primary)
            && could(recorded_workload(path)?));
    if !checkers_stream {
        return Ok(false);
    }
    Ok(!(workload.is_none() && path.is_dir() && recorded_txn(path)?.is_some()))
}

/// Whether the options `set` makes stream.
fn streams(set: &dyn Fn(&mut Options)) -> bool {
    let mut opts = Options::default();
    set(&mut opts);
    schism_checker::stream::streams(&opts)
}

/// `analyze_opts` on a history file streamed op by op (`stream_history_file` into
/// `schism_checker::stream::StreamCheck`), never held: the same `ResultsFile`, or the
/// same first error (the reader's, then validation's, pairing's, the workload's, each
/// naming `file:line`), as reading it whole. A signal (`budget.stop`) stops the reading
/// at once and the verdict is unknown, as in `analyze_opts`; the time limit cuts the
/// `linearizable` searches short, as there (its clock starts with the reading). The
/// streamed `linearizable` check may ask for more passes over the file (`replay`).
fn analyze_stream(
    path: &Path,
    hpath: &Path,
    budget: &Budget,
    set: &dyn Fn(&mut Options),
) -> Result<ResultsFile> {
    let abort = budget
        .stop
        .clone()
        .unwrap_or_else(|| Arc::new(AtomicBool::new(false)));
    let timed_out = Arc::new(AtomicBool::new(false));
    let mut opts = Options {
        max_states: budget.max_states,
        abort: Some(abort.clone()),
        ..Options::default()
    };
    set(&mut opts);
    // A signal; the time limit sets the same flag but only cuts searches short.
    let stopped = || {
        budget
            .stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
            && !timed_out.load(Ordering::Relaxed)
    };
    // The time budget becomes the searches' abort flag (`linearizable`), as in
    // `analyze_opts`; the watchdog is joined before returning.
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let limit = budget.time_limit;
    let (flag, late) = (abort.clone(), timed_out.clone());
    let watchdog = std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(limit) {
            late.store(true, Ordering::Relaxed);
            flag.store(true, Ordering::Relaxed);
        }
    });
    let mut check = schism_checker::stream::StreamCheck::new(&opts);
    let mut read = schism_history::stream_history_file(hpath, |op, line| {
        check.push(op, line);
        !stopped()
    });
    // Keys the streamed `linearizable` check needs whole again (a key that came back
    // after it was retired, or where the state budget ran out): one more pass each.
    while read.as_ref().is_ok_and(|r| !r.stopped && !stopped()) {
        if check.replay().is_empty() {
            break;
        }
        let again = schism_history::stream_history_file(hpath, |op, line| {
            check.push_replay(op, line);
            !stopped()
        });
        if again.as_ref().map_or(true, |r| r.stopped) || stopped() {
            check.replay_cut_short();
            if let Err(e) = again {
                read = Err(e);
            }
            break;
        }
    }
    drop(done_tx);
    let _ = watchdog.join();
    let read = read?;
    let warnings = read
        .warnings
        .iter()
        .map(|w| format!("{}: {w}", hpath.display()))
        .collect();
    let mut cut_short: Vec<String> = if path.is_dir() {
        store::read_status(path)?.and_then(|s| s.cut_short())
    } else {
        None
    }
    .into_iter()
    .collect();
    if read.stopped || stopped() {
        cut_short.push("the check was stopped by a signal before it finished".into());
    }
    let cut_short = (!cut_short.is_empty()).then(|| cut_short.join("; "));
    let streamed = check
        .finish(cut_short.as_deref())
        .map_err(|e| match (&e.error, e.line) {
            (schism_checker::CheckError::Op { index, msg }, Some(line)) => {
                anyhow::Error::from(schism_history::HistoryError::Malformed {
                    path: hpath.to_owned(),
                    line,
                    msg: schism_history::clip(&format!("op index {index}: {msg}")),
                })
            }
            _ => e.error.into(),
        })?;
    let mut report = streamed.report;
    if streamed.evidence.validity != Validity::Valid {
        report.validity = report.validity.merge(streamed.evidence.validity);
        report.results.push(streamed.evidence);
    }
    let stats = stats_from_report(&report).unwrap_or(streamed.stats);
    Ok(ResultsFile {
        validity: report.validity,
        counts: schism_checker::counts::count_map(&report.results),
        results: report.results,
        stats,
        history_lines: streamed.ops,
        warnings,
        schism_version: env!("CARGO_PKG_VERSION").to_owned(),
    })
}

/// Checks a transactional history (`.edn`: Elle's format; else JSON Lines) or run folder
/// with the `txn` checker: `schism check --workload list-append|rw-register` and the end of a
/// transactional `schism test` alike (`txn_check` has the closing note). JSON Lines are
/// read straight into compact transactions (`read_txn_file`), never into a `History`; an
/// EDN history (at most `MAX_EDN_BYTES`) is read whole, then converted.
pub fn analyze_txn_file(
    path: &Path,
    workload: schism_checker::txn::TxnWorkload,
    model: schism_checker::txn::ConsistencyModel,
    budget: &Budget,
) -> Result<ResultsFile> {
    let (txns, warnings) = if is_edn(path) {
        (Txns::from_history(&read_edn_file(path)?)?, Vec::new())
    } else {
        let hpath = history_path(path)?;
        let (t, w) = read_txn_file(&hpath)?;
        let w = w
            .iter()
            .map(|w| format!("{}: {w}", hpath.display()))
            .collect();
        (t, w)
    };
    let abort = budget
        .stop
        .clone()
        .unwrap_or_else(|| Arc::new(AtomicBool::new(false)));
    let mut opts = schism_checker::txn::TxnOptions::new(workload, model);
    opts.max_cycle_states = budget.max_states;
    opts.abort = Some(abort.clone());
    // The time limit becomes the abort flag; the watchdog is joined before returning.
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let limit = budget.time_limit;
    let flag = abort.clone();
    let timed_out = Arc::new(AtomicBool::new(false));
    let late = timed_out.clone();
    let watchdog = std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(limit) {
            late.store(true, Ordering::Relaxed);
            flag.store(true, Ordering::Relaxed);
        }
    });
    let result = schism_checker::txn::check_txns(&txns, &opts);
    drop(done_tx);
    let _ = watchdog.join();
    let result = result?;
    let mut report = Report::from_results(vec![result]);
    let mut cut_short: Vec<String> = Vec::new();
    if path.is_dir()
        && let Some(why) = store::read_status(path)?.and_then(|s| s.cut_short())
    {
        cut_short.push(why);
    }
    if abort.load(Ordering::Relaxed) && !timed_out.load(Ordering::Relaxed) {
        cut_short.push("the check was stopped by a signal before it finished".into());
    }
    let cut_short = (!cut_short.is_empty()).then(|| cut_short.join("; "));
    let evidence = schism_checker::check_evidence_txns(&txns, cut_short.as_deref());
    if evidence.validity != Validity::Valid {
        report.validity = report.validity.merge(evidence.validity);
        report.results.push(evidence);
    }
    // Replica state dumps taken after the final heal, when the run left them.
    if path.is_dir()
        && let Some(c) = crate::models::convergence_from_dir(path)?
    {
        report.validity = report.validity.merge(c.validity);
        report.results.push(c);
    }
    Ok(ResultsFile {
        validity: report.validity,
        counts: schism_checker::counts::count_map(&report.results),
        results: report.results,
        stats: schism_checker::stats::stats_txns(&txns),
        history_lines: txns.ops(),
        warnings,
        schism_version: env!("CARGO_PKG_VERSION").to_owned(),
    })
}

pub fn analyze(
    history: &History,
    workload: Option<CheckWorkload>,
    budget: &Budget,
    warnings: Vec<String>,
) -> Result<ResultsFile> {
    analyze_opts(history, budget, warnings, None, |o| o.workload = workload)
}

/// The checkers selected on the command line: none means every one that fits.
pub fn checker_set(names: &[CheckerName]) -> CheckerSet {
    if names.is_empty() {
        CheckerSet::Fitting
    } else {
        CheckerSet::Only(names.to_vec())
    }
}

/// `analyze` with the checker options adjusted by `set` (budget and abort flag are set
/// here); `cut_short` says why the history may be incomplete (an interrupted run).
pub fn analyze_opts(
    history: &History,
    budget: &Budget,
    warnings: Vec<String>,
    cut_short: Option<String>,
    set: impl FnOnce(&mut Options),
) -> Result<ResultsFile> {
    let abort = budget
        .stop
        .clone()
        .unwrap_or_else(|| Arc::new(AtomicBool::new(false)));
    let timed_out = Arc::new(AtomicBool::new(false));
    let mut opts = Options {
        max_states: budget.max_states,
        abort: Some(abort.clone()),
        // A large history is validated beside its pairing and checked by two groups of
        // checkers side by side (`Options::threads`); the results are the same.
        threads: std::thread::available_parallelism().map_or(1, |n| n.get().min(2)),
        ..Options::default()
    };
    set(&mut opts);
    // A watchdog thread turns the time budget into the checker's abort flag; it is
    // joined before returning (dropping `done_tx` wakes it at once).
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let limit = budget.time_limit;
    let (flag, late) = (abort.clone(), timed_out.clone());
    let watchdog = std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(limit) {
            late.store(true, Ordering::Relaxed);
            flag.store(true, Ordering::Relaxed);
        }
    });
    // Paired once: the checkers, the evidence rule and the statistics read the same ops.
    let checked = schism_checker::check_paired(history, &opts);
    drop(done_tx);
    let _ = watchdog.join();
    let (mut report, ops): (Report, _) = checked.map_err(|e| located(history, e))?;
    let mut cut_short: Vec<String> = cut_short.into_iter().collect();
    if abort.load(Ordering::Relaxed) && !timed_out.load(Ordering::Relaxed) {
        cut_short.push("the check was stopped by a signal before it finished".into());
    }
    let cut_short = (!cut_short.is_empty()).then(|| cut_short.join("; "));
    let evidence = schism_checker::check_evidence_of(history, &ops, cut_short.as_deref());
    if evidence.validity != Validity::Valid {
        report.validity = report.validity.merge(evidence.validity);
        report.results.push(evidence);
    }
    let stats = stats_from_report(&report)
        .unwrap_or_else(|| schism_checker::stats::stats_of(history, &ops));
    drop(ops);
    Ok(ResultsFile {
        validity: report.validity,
        counts: schism_checker::counts::count_map(&report.results),
        results: report.results,
        stats,
        history_lines: history.len() as u64,
        warnings,
        schism_version: env!("CARGO_PKG_VERSION").to_owned(),
    })
}

/// The statistics the `stats` checker already computed when it ran (its figures are the
/// serialised `Stats`): taken back only when they serialise to exactly those figures.
fn stats_from_report(report: &Report) -> Option<Stats> {
    let figures = &report
        .results
        .iter()
        .find(|r| r.checker == "stats")?
        .figures;
    let figures = serde_json::Value::Object(figures.clone());
    let stats: Stats = serde_json::from_value(figures.clone()).ok()?;
    (serde_json::to_value(&stats).ok()? == figures).then_some(stats)
}

/// A checker error about one op, with the `file:line` the op was read from prefixed
/// when the history came from a file (the checker knows only op indices).
fn located(history: &History, e: schism_checker::CheckError) -> anyhow::Error {
    if let schism_checker::CheckError::Op { index, msg } = &e
        && history.locate(*index).is_some()
    {
        return history.op_error(*index, msg.clone()).into();
    }
    e.into()
}

/// Counts, throughput and latency quantiles per `f` (the checker's `stats`).
pub fn stats(history: &History) -> Result<Stats> {
    Ok(schism_checker::stats::stats(history)?)
}

/// Exit code of a verdict (DESIGN.md): 0 valid, 1 invalid, 2 unknown.
pub fn exit_code(v: Validity) -> i32 {
    match v {
        Validity::Valid => 0,
        Validity::Invalid => 1,
        Validity::Unknown => 2,
    }
}

pub fn validity_word(v: Validity) -> &'static str {
    match v {
        Validity::Valid => "VALID",
        Validity::Invalid => "INVALID",
        Validity::Unknown => "UNKNOWN",
    }
}

/// The few lines printed at the end of a run or a check.
pub fn summary(r: &ResultsFile) -> String {
    let mut out = String::new();
    // One count per kind, each from the checker that owns it (schism_checker::counts).
    let owned = schism_checker::counts::counts(&r.results);
    let counts: Vec<String> = owned
        .iter()
        .map(|c| format!("{} {}", c.count, c.kind))
        .collect();
    out.push_str(&format!(
        "verdict: {}{}\n",
        validity_word(r.validity),
        if counts.is_empty() {
            String::new()
        } else {
            format!(" ({})", counts.join(", "))
        }
    ));
    for c in &r.results {
        out.push_str(&format!(
            "  {}: {}",
            c.checker,
            validity_word(c.validity).to_lowercase()
        ));
        let mine: Vec<String> = owned
            .iter()
            .filter(|k| k.checker == c.checker)
            .map(|k| format!("{} {}", k.count, k.kind))
            .collect();
        if !mine.is_empty() {
            out.push_str(&format!(" ({})", mine.join(", ")));
        } else if matches!(c.checker.as_str(), "staleness" | "stats") {
            out.push_str(" (a measurement: figures, not anomalies)");
        }
        if let Some(why) = c.figures.get("unknown_reason").and_then(|v| v.as_str()) {
            out.push_str(&format!(" — {why}"));
        }
        out.push('\n');
        let mut shown: BTreeMap<String, usize> = BTreeMap::new();
        for a in &c.anomalies {
            if !schism_checker::counts::is_counted(c, a, &r.results) {
                continue;
            }
            let n = shown.entry(a.kind.as_str().to_owned()).or_default();
            if *n < 2 {
                out.push_str(&format!("    - {}\n", a.explanation));
            }
            *n += 1;
        }
    }
    let s = &r.stats;
    out.push_str(&format!(
        "ops: {} (ok {}, fail {}, info {}) over {:.1}s, {:.0} ok/s",
        s.ops, s.ok, s.fail, s.info, s.duration_s, s.ok_per_s
    ));
    for (f, fs) in &s.by_f {
        out.push_str(&format!(
            "; {f} p50 {:.2}ms p99 {:.2}ms",
            fs.latency_ms_p50, fs.latency_ms_p99
        ));
    }
    out.push('\n');
    for w in &r.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use schism_history::{F, HistoryWriter, Op, OpType, Process, Value};
    use std::io::Write;

    /// One step of a generated history: who acts, what, and the twists that break it.
    type Step = (u8, u8, i64, u8);

    /// A history our writer produces from `steps`: processes invoke and complete
    /// register, append, set or counter ops (which, by `mode`), with a nemesis healing
    /// now and then; `twist`s add the mistakes validation and pairing must name
    /// (orphan completions, double invokes, mismatched `f`, bad and repeated values).
    fn generate(steps: &[Step], mode: u8, clean: bool, shape: u8) -> Vec<Op> {
        let mut ops = Vec::new();
        let mut open: [Option<(F, Value)>; 6] = Default::default();
        let mut time_ns = 0u64;
        let mut next_value = 1i64;
        // Rotating register keys read and cas the last value written to the key invoked
        // (mostly linearizable: the search has work to do, and a small budget runs out).
        let mut last: std::collections::HashMap<u64, i64> = Default::default();
        // And append reads return a prefix of the values appended to the key invoked, a
        // few behind (stale reads for `staleness`), now and then one dropped (divergent).
        let mut appended: std::collections::HashMap<u64, Vec<i64>> = Default::default();
        let mut open_key: [u64; 6] = [0; 6];
        for (i, &(who, what, value, twist)) in steps.iter().enumerate() {
            time_ns += 1 + (value.unsigned_abs() % 5_000_000);
            let index = ops.len() as u64;
            // Three keys throughout; or keys that move on every 25 steps (retired in
            // the stream), some coming back later (`shape` 2).
            let key_id = match shape % 3 {
                0 => u64::from(what % 3),
                1 => (i / 25) as u64,
                _ if what % 16 == 3 => (i / 25 / 2) as u64,
                _ => (i / 25) as u64,
            };
            let key = Some(key_id);
            if who % 16 == 15 {
                let payload = serde_json::json!({"final": twist % 2 == 0});
                let (f, v) = if what % 2 == 0 {
                    ("heal", Value::other(payload))
                } else {
                    ("partition", Value::Null)
                };
                ops.push(Op::new(
                    index,
                    time_ns,
                    Process::NEMESIS,
                    OpType::Info,
                    F::parse(f),
                    None,
                    v,
                ));
                continue;
            }
            let p = usize::from(who % 6);
            let process = Process::client(p as u64);
            let twist = if clean || twist < 240 { 0 } else { twist - 239 };
            match (open[p].take(), twist) {
                (Some((f, v)), t) if t != 2 => {
                    let kind = match what % 8 {
                        0 => OpType::Fail,
                        1 => OpType::Info,
                        _ => OpType::Ok,
                    };
                    let f = if t == 3 { F::parse("write") } else { f };
                    let v = match (f, kind) {
                        (F::Read, OpType::Ok)
                            if !shape.is_multiple_of(3)
                                && mode.is_multiple_of(4)
                                && value % 4 != 0 =>
                        {
                            Value::Int(last.get(&open_key[p]).copied().unwrap_or(0))
                        }
                        (F::Read, OpType::Ok)
                            if !shape.is_multiple_of(3) && mode % 4 == 1 && value % 4 != 0 =>
                        {
                            let l = appended.get(&open_key[p]).map_or(&[][..], Vec::as_slice);
                            let n = l.len().saturating_sub((value.unsigned_abs() % 3) as usize);
                            let mut r = l[..n].to_vec();
                            if value % 13 == 0 && r.len() > 1 {
                                r.remove(0);
                            }
                            Value::list(r)
                        }
                        (F::Read, OpType::Ok) => match mode % 4 {
                            0 => Value::Int(value % 50),
                            1 => Value::list(vec![1, 2, value % 7]),
                            // The latest few elements added, some left out.
                            2 => Value::list(
                                (next_value.saturating_sub(8)..next_value)
                                    .filter(|x| (x + value) % 5 != 0)
                                    .collect::<Vec<i64>>(),
                            ),
                            _ => Value::Int(value % 11),
                        },
                        (F::Read, _) => Value::Null,
                        _ => v,
                    };
                    ops.push(Op::new(index, time_ns, process, kind, f, key, v));
                }
                (o, t) => {
                    if t == 1 && o.is_none() {
                        // An orphan completion.
                        ops.push(Op::new(
                            index,
                            time_ns,
                            process,
                            OpType::Ok,
                            F::Read,
                            key,
                            Value::Int(0),
                        ));
                        continue;
                    }
                    let expected = match shape % 3 {
                        0 => value % 5,
                        _ => last.get(&key_id).copied().unwrap_or(0),
                    };
                    let (f, v) = match (mode % 4, what % 3) {
                        (_, 0) => ("read", Value::Null),
                        (0, 1) => ("write", Value::Int(next_value)),
                        (0, _) => ("cas", Value::list(vec![expected, next_value])),
                        (1, _) => ("append", Value::Int(next_value)),
                        (2, _) => ("add", Value::Int(next_value)),
                        (_, _) => ("incr", Value::Int(1 + value % 3)),
                    };
                    let (f, v) = match t {
                        4 => ("write", Value::Int(next_value)),
                        5 => ("append", Value::Int(next_value)),
                        6 => (f, Value::Int(1)),
                        7 => (f, Value::list(vec![1, 2, 3])),
                        8 => ("frobnicate", v),
                        _ => (f, v),
                    };
                    if let "write" | "cas" = f {
                        last.insert(key_id, next_value);
                    }
                    if f == "append" {
                        appended.entry(key_id).or_default().push(next_value);
                    }
                    open_key[p] = key_id;
                    next_value += 1;
                    let f = F::parse(f);
                    if i % 97 == 96 {
                        // A keyless op now and then.
                        ops.push(Op::new(
                            index,
                            time_ns,
                            process,
                            OpType::Invoke,
                            f,
                            None,
                            v.clone(),
                        ));
                    } else {
                        ops.push(Op::new(
                            index,
                            time_ns,
                            process,
                            OpType::Invoke,
                            f,
                            key,
                            v.clone(),
                        ));
                    }
                    open[p] = Some((f, v));
                }
            }
        }
        ops
    }

    /// The history file: the ops through our writer, then what a damaged file holds.
    fn write_file(path: &Path, ops: &[Op], damage: u8) {
        let mut w = HistoryWriter::new(std::fs::File::create(path).unwrap());
        for o in ops {
            w.append(o).unwrap();
        }
        w.flush().unwrap();
        let mut f = w.into_inner().unwrap();
        let next = ops.len();
        match damage % 8 {
            1 => f.write_all(br#"{"index":99999,"time_ns":1,"proc"#).unwrap(),
            2 => f.write_all(b"{\"index\":oops}\n").unwrap(),
            3 => writeln!(
                f,
                r#"{{"index":{},"time_ns":1,"process":0,"type":"invoke","f":"read","key":1,"value":null}}"#,
                next.saturating_sub(2)
            )
            .unwrap(),
            4 => f.write_all(b"\n\n").unwrap(),
            _ => {}
        }
    }

    fn outcome(r: Result<ResultsFile>) -> Result<String, String> {
        r.map(|r| serde_json::to_string_pretty(&r).unwrap() + &summary(&r))
            .map_err(|e| format!("{e:#}"))
    }

    /// The checker choices that stream, each with the workloads it streams with.
    fn choices() -> Vec<(ModelChoice, Vec<Option<CheckWorkload>>)> {
        use CheckWorkload::{Append, Counter, Register, Set};
        let stats = CheckerSet::Only(vec![CheckerName::Stats]);
        let only = |names: Vec<CheckerName>| ModelChoice {
            checkers: CheckerSet::Only(names),
            ..ModelChoice::default()
        };
        let any = vec![None, Some(Register), Some(Append), Some(Counter), Some(Set)];
        let registerish = vec![None, Some(Register), Some(Append)];
        let lin = CheckerSet::Only(vec![CheckerName::Linearizable]);
        let staleness = vec![
            (
                only(vec![CheckerName::Staleness]),
                vec![None, Some(Register), Some(Append)],
            ),
            (
                ModelChoice {
                    checkers: CheckerSet::Only(vec![CheckerName::Stats, CheckerName::Staleness]),
                    initial: Some(Some(0)),
                    ..ModelChoice::default()
                },
                vec![None, Some(Register), Some(Append)],
            ),
            (
                ModelChoice {
                    checkers: CheckerSet::Only(vec![
                        CheckerName::Staleness,
                        CheckerName::Linearizable,
                        CheckerName::Staleness,
                    ]),
                    model: Some(Model::CasRegister),
                    ..ModelChoice::default()
                },
                vec![None, Some(Register)],
            ),
        ];
        let mut all = vec![
            (
                ModelChoice {
                    checkers: stats.clone(),
                    ..ModelChoice::default()
                },
                any.clone(),
            ),
            (
                ModelChoice {
                    checkers: CheckerSet::Only(vec![CheckerName::Stats, CheckerName::Stats]),
                    algorithm: Algorithm::Zones,
                    ..ModelChoice::default()
                },
                any.clone(),
            ),
            (
                ModelChoice {
                    checkers: stats,
                    model: Some(Model::CasRegister),
                    initial: Some(Some(1)),
                    ..ModelChoice::default()
                },
                any.clone(),
            ),
            (only(vec![CheckerName::Counter]), vec![Some(Counter)]),
            (
                only(vec![CheckerName::Stats, CheckerName::Counter]),
                vec![Some(Counter)],
            ),
            (only(vec![CheckerName::SetFull]), vec![Some(Set)]),
            (
                only(vec![CheckerName::SetFull, CheckerName::Stats]),
                vec![Some(Set)],
            ),
            (
                ModelChoice {
                    checkers: CheckerSet::Primary,
                    ..ModelChoice::default()
                },
                vec![Some(Counter), Some(Set)],
            ),
            (
                ModelChoice {
                    checkers: CheckerSet::Fitting,
                    ..ModelChoice::default()
                },
                vec![Some(Counter), Some(Set)],
            ),
            (
                ModelChoice {
                    checkers: lin.clone(),
                    ..ModelChoice::default()
                },
                any,
            ),
            (
                ModelChoice {
                    checkers: CheckerSet::Only(vec![CheckerName::Stats, CheckerName::Linearizable]),
                    model: Some(Model::Register),
                    algorithm: Algorithm::Zones,
                    ..ModelChoice::default()
                },
                registerish.clone(),
            ),
            (
                ModelChoice {
                    checkers: lin,
                    model: Some(Model::CasRegister),
                    algorithm: Algorithm::Wgl,
                    initial: Some(Some(0)),
                },
                registerish,
            ),
            (
                ModelChoice {
                    checkers: CheckerSet::Primary,
                    model: Some(Model::CasRegister),
                    initial: Some(None),
                    ..ModelChoice::default()
                },
                vec![None, Some(Register)],
            ),
        ];
        all.extend(staleness);
        all
    }

    fn compare(steps: &[Step], mode: u8, damage: u8, clean: bool, shape: u8) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        write_file(&path, &generate(steps, mode, clean, shape), damage);
        for (choice, workloads) in choices() {
            let lin = !matches!(&choice.checkers, CheckerSet::Only(l) if !l.contains(&CheckerName::Linearizable));
            // A budget that runs out on larger keys, for the linearizable check.
            let budgets: &[u64] = if lin { &[1_000_000, 60] } else { &[1_000_000] };
            for &max_states in budgets {
                let budget = Budget {
                    max_states,
                    time_limit: Duration::from_secs(3600),
                    stop: None,
                };
                for &workload in &workloads {
                    let set = |o: &mut Options| {
                        o.workload = workload;
                        o.model = choice.model;
                        if let Some(init) = choice.initial {
                            o.register.initial = init;
                        }
                        o.algorithm = choice.algorithm;
                        o.checkers = choice.checkers.clone();
                        // Keys idle for 24 ops retire (some come back).
                        o.retire_idle_ops = 24;
                    };
                    assert!(streams(&set), "{choice:?} {workload:?}");
                    assert!(streamed(&path, workload, &choice).unwrap());
                    let whole = outcome(analyze_whole(&path, &path, &budget, set));
                    let stream = outcome(analyze_stream(&path, &path, &budget, &set));
                    assert_eq!(stream, whole, "{choice:?} {workload:?} {max_states}");
                    let via = outcome(analyze_file_with(&path, workload, &budget, &choice));
                    assert_eq!(via, whole);
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]
        /// The streamed check gives the whole-history check's results, summary and
        /// errors (`file:line` included) on valid and broken histories of every workload.
        #[test]
        fn streaming_matches_the_whole_history(
            steps in proptest::collection::vec((0u8..=255, 0u8..=255, -1000i64..1000, 0u8..=255), 0..400),
            mode in 0u8..5,
            damage in 0u8..8,
            clean in proptest::bool::weighted(0.4),
            shape in 0u8..3,
        ) {
            compare(&steps, mode, damage, clean, shape);
        }

        /// Register histories whose keys move on (retired in the stream) and come back:
        /// the streamed `linearizable` check replays them, and the small budget.
        #[test]
        fn streaming_matches_the_whole_history_with_retired_keys(
            steps in proptest::collection::vec((0u8..=255, 0u8..=255, -1000i64..1000, 0u8..=255), 0..400),
            shape in 1u8..3,
        ) {
            compare(&steps, 0, 0, true, shape);
        }
    }

    /// Empty, nemesis-only and clean histories, and a history past one reader batch.
    #[test]
    fn streaming_matches_the_whole_history_at_the_edges() {
        compare(&[], 0, 0, true, 0);
        compare(&[(15, 0, 5, 0), (15, 1, 5, 0)], 0, 0, true, 0);
        let long: Vec<Step> = (0..60_000u32)
            .map(|i| ((i % 5) as u8, (i % 7) as u8, i64::from(i % 1000), 0))
            .collect();
        for mode in 0..4 {
            compare(&long, mode, 0, true, 0);
        }
        // Register keys that move on and come back, past one reader batch.
        compare(&long, 0, 0, true, 2);
    }
}
