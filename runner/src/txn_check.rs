//! `schism check FILE --workload list-append|rw-register --consistency-model M`: the
//! transactional (`txn`) checker on a JSON Lines or Elle EDN history, and its closing note.
//!
//! The check itself is `analyze::analyze_txn_file`, where a `schism test --workload
//! list-append|rw-register` run's folder goes too (`analyze::analyze_file_with` sends it,
//! with the model config.json records): one code path for the end of a run and a later
//! check. Guarantees: the same budget and evidence rules as every other check — the time
//! limit and a signal stop the cycle search, giving `unknown` unless an anomaly the model
//! forbids was already proven; a run folder whose status.json says the run was cut short
//! is `unknown` unless an anomaly was proven; the replicas' dumps, when the run left
//! them, are checked for convergence as for any run; a malformed history or transaction
//! names `file:line`.

use crate::analyze::ResultsFile;

/// Checks a transactional history file or run folder (`analyze::analyze_txn_file`, where
/// the run's end finds it too).
pub use crate::analyze::analyze_txn_file;

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
        "checked {} transactions ({} committed) as {} against {}: {} dependency edges, {} cycle-search states; anomalies looked for: {}\nthis history rules out: {}{}\n",
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
        // After a budget cut some models are neither ruled out nor shown to hold.
        match list("undecided") {
            u if u.is_empty() => String::new(),
            u => format!(
                "\nnot decided (the cycle search stopped before every cycle they forbid was searched): {u}"
            ),
        },
    )
}
