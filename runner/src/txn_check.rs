//! `schism check FILE --workload list-append|rw-register --consistency-model M`: the
//! transactional (`txn`) checker on a JSON Lines or Elle EDN history.
//!
//! A `schism test --workload list-append|rw-register` run's folder comes here too
//! (`analyze::analyze_file_with` sends it, with the model config.json records): one code
//! path for the end of a run and a later check.
//!
//! Guarantees: the same budget and evidence rules as every other check — the time limit
//! and a signal stop the cycle search, giving `unknown` unless an anomaly the model
//! forbids was already proven; a run folder whose status.json says the run was cut short
//! is `unknown` unless an anomaly was proven; the replicas' dumps, when the run left
//! them, are checked for convergence as for any run; a malformed history or transaction
//! names `file:line`.

use crate::analyze::{Budget, ResultsFile, is_edn, stats};
use anyhow::Result;
use schism_checker::txn::{ConsistencyModel, TxnOptions, TxnWorkload, check_txn};
use schism_checker::{Report, Validity};
use schism_history::{read_edn_file, read_history_file};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Checks a transactional history file (`.edn`: Elle's format; else JSON Lines).
pub fn analyze_txn_file(
    path: &Path,
    workload: TxnWorkload,
    model: ConsistencyModel,
    budget: &Budget,
) -> Result<ResultsFile> {
    let (history, warnings) = if is_edn(path) {
        (read_edn_file(path)?, Vec::new())
    } else {
        let hpath = crate::analyze::history_path(path)?;
        let (h, w) = read_history_file(&hpath)?;
        let w = w
            .iter()
            .map(|w| format!("{}: {w}", hpath.display()))
            .collect();
        (h, w)
    };
    let abort = budget
        .stop
        .clone()
        .unwrap_or_else(|| Arc::new(AtomicBool::new(false)));
    let mut opts = TxnOptions::new(workload, model);
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
    let result = check_txn(&history, &opts);
    drop(done_tx);
    let _ = watchdog.join();
    let result = result?;
    let mut report = Report::from_results(vec![result]);
    let mut cut_short: Vec<String> = Vec::new();
    if path.is_dir()
        && let Some(why) = crate::store::read_status(path)?.and_then(|s| s.cut_short())
    {
        cut_short.push(why);
    }
    if abort.load(Ordering::Relaxed) && !timed_out.load(Ordering::Relaxed) {
        cut_short.push("the check was stopped by a signal before it finished".into());
    }
    let cut_short = (!cut_short.is_empty()).then(|| cut_short.join("; "));
    let evidence = schism_checker::check_evidence(&history, cut_short.as_deref())?;
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
        stats: stats(&history)?,
        history_lines: history.len() as u64,
        warnings,
        schism_version: env!("CARGO_PKG_VERSION").to_owned(),
    })
}

/// The closing note of a transactional check: what was checked, against which model, and
/// which models the history rules out.
pub fn closing_note(r: &ResultsFile) -> String {
    let Some(c) = r.results.iter().find(|c| c.checker == "txn") else {
        return String::new();
    };
    let fig = |k: &str| c.figures.get(k).cloned().unwrap_or_default();
    let list = |k: &str| -> String {
        fig(k)
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    let ruled = list("ruled_out");
    let kinds: Vec<&str> = schism_checker::txn::kinds()
        .into_iter()
        .map(|k| k.as_str())
        .collect();
    format!(
        "checked {} transactions ({} committed) as {} against {}: {} dependency edges, {} cycle-search states; anomalies looked for: {}\nthis history rules out: {}\n",
        fig("transactions"),
        fig("committed"),
        fig("workload").as_str().unwrap_or("?"),
        fig("consistency_model").as_str().unwrap_or("?"),
        fig("edges"),
        fig("cycle_search_states"),
        kinds.join(", "),
        if ruled.is_empty() {
            "no model".to_owned()
        } else {
            ruled
        },
    )
}
