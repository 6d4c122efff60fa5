//! The `txn` checker: Elle-class isolation checking of list-append and rw-register
//! histories of transactions (`f = "txn"`, see `schism_history::txn`).
//!
//! `infer` derives version orders and the ww/wr/rw/process/real-time dependency graph
//! and finds the anomalies that need no cycle (G1a, G1b, internal, future reads,
//! duplicate elements, incompatible orders, phantom reads, lost and dirty updates);
//! `cycles` finds, in every strongly connected component, a shortest cycle of each kind
//! (G0, G1c, G-single, G-nonadjacent, G2-item, with `-process` and `-realtime`
//! variants); `models` decides which consistency models each anomaly rules out. Elle's
//! semantics: an `info` transaction may or may not have happened (its writes count when
//! a read shows them; its reads are unknown), a `fail`ed one never did.
//!
//! Guarantees: every anomaly names its transactions by the index of their invocation
//! (`T12`) and explains every edge of a cycle in one sentence; one anomaly per cycle kind
//! per component and per offending read, counted once under the `txn` owner. The verdict
//! is `invalid` when an anomaly the chosen model forbids is proven; `unknown` when the
//! cycle search ran out of budget (or was aborted) without proving one, or when no
//! transaction committed; `valid` only after a complete search of a history with
//! committed transactions. `ruled_out` lists every model the anomalies found rule out;
//! after a budget cut, `undecided` lists the models not ruled out whose forbidden cycles
//! were not all searched.

mod cycles;
mod infer;
mod models;
mod realtime;

pub use models::{ConsistencyModel, Flavour};

use crate::report::AnomalySink;
use crate::{Anomaly, AnomalyKind, CheckError, CheckResult, CycleStep, EdgeKind, Validity};
use cycles::Cycle;
use schism_history::txn::Txns;
use schism_history::{History, Outcome};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Which transactional workload a history holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TxnWorkload {
    ListAppend,
    RwRegister,
}

impl TxnWorkload {
    pub fn as_str(self) -> &'static str {
        match self {
            TxnWorkload::ListAppend => "list-append",
            TxnWorkload::RwRegister => "rw-register",
        }
    }
}

/// How to check a transactional history.
#[derive(Debug, Clone)]
pub struct TxnOptions {
    pub workload: TxnWorkload,
    pub model: ConsistencyModel,
    /// Search states the cycle search may spend over the whole history (each costs a
    /// hash-map entry of ~16 bytes at most, so the default stays under 1 GiB).
    pub max_cycle_states: u64,
    /// Anomalies kept per kind; the rest are counted in the figures.
    pub max_anomalies_per_kind: usize,
    /// Set by the caller to stop early with `unknown`.
    pub abort: Option<Arc<AtomicBool>>,
}

impl TxnOptions {
    pub fn new(workload: TxnWorkload, model: ConsistencyModel) -> TxnOptions {
        TxnOptions {
            workload,
            model,
            max_cycle_states: 20_000_000,
            max_anomalies_per_kind: 20,
            abort: None,
        }
    }
}

/// Every kind the `txn` checker reports (its figures list each, zero or not): the kinds
/// it owns (`AnomalyKind::owners`, the one place that says which checker counts what).
pub fn kinds() -> Vec<AnomalyKind> {
    AnomalyKind::ALL
        .into_iter()
        .filter(|k| k.owners().contains(&"txn"))
        .collect()
}

/// Checks a history of transactions against `opts.model` (`check_txns` on its
/// transactions).
pub fn check_txn(h: &History, opts: &TxnOptions) -> Result<CheckResult, CheckError> {
    check_txns(&Txns::from_history(h)?, opts)
}

/// Checks transactions (`schism_history::txn::read_txn_file` reads them straight from
/// JSON Lines) against `opts.model`.
pub fn check_txns(txns: &Txns, opts: &TxnOptions) -> Result<CheckResult, CheckError> {
    let mut inf = infer::infer(txns, opts.workload)?;
    let abort = || {
        opts.abort
            .as_ref()
            .is_some_and(|a| a.load(Ordering::Relaxed))
    };
    let (found, edges) = search(txns, &mut inf, opts.max_cycle_states, &abort);
    let mut ruled_out = std::collections::BTreeSet::new();
    let mut forbidden = false;
    let mut sink = AnomalySink::new(opts.max_anomalies_per_kind);
    for a in inf.found.iter().cloned() {
        note(&mut ruled_out, a.kind, Flavour::Plain);
        forbidden |= opts.model.forbids(a.kind, Flavour::Plain);
        sink.push_with(a.kind, || a);
    }
    for c in &found.found {
        note(&mut ruled_out, c.kind, c.flavour);
        forbidden |= opts.model.forbids(c.kind, c.flavour);
        sink.push_with(c.kind, || render(&inf, c));
    }
    let committed = txns.iter().filter(|t| t.outcome == Outcome::Ok).count();
    let mut figures = serde_json::Map::new();
    figures.insert("workload".into(), opts.workload.as_str().into());
    figures.insert("consistency_model".into(), opts.model.as_str().into());
    figures.insert("transactions".into(), txns.len().into());
    figures.insert("committed".into(), committed.into());
    figures.insert("edges".into(), edges.into());
    figures.insert("cycle_search_states".into(), found.states.into());
    figures.insert(
        "ruled_out".into(),
        ruled_out
            .iter()
            .map(|m: &ConsistencyModel| m.as_str())
            .collect::<Vec<_>>()
            .into(),
    );
    let aborted = abort();
    // Whether the budget cut a level the model forbids cycles at (or after).
    let mut open = false;
    if let Some(level) = found.cut_level {
        note_cut(&mut figures, level, opts.model, &ruled_out, aborted);
        open = model_needs_level(opts.model, level);
    }
    let validity = if forbidden {
        Validity::Invalid
    } else if aborted {
        figures.insert(
            "unknown_reason".into(),
            "the check was stopped (--checker-time-limit, or a signal) before proving or ruling out every cycle"
                .into(),
        );
        Validity::Unknown
    } else if open {
        figures.insert(
            "unknown_reason".into(),
            "the cycle search ran out of its budget (--checker-max-states) before proving or ruling out every cycle"
                .into(),
        );
        Validity::Unknown
    } else if committed == 0 {
        figures.insert(
            "unknown_reason".into(),
            "no transaction committed: nothing shows the model held".into(),
        );
        Validity::Unknown
    } else {
        Validity::Valid
    };
    let anomalies = sink.finish(&kinds(), &mut figures);
    Ok(CheckResult {
        checker: "txn".into(),
        validity,
        anomalies,
        figures,
    })
}

/// The cycles of the dependency graph and the count of edges built. Real time is a chain
/// of completion points (`realtime`): when the whole graph has no cycle no search is
/// needed; otherwise Elle's real-time edges are added inside the cyclic components and
/// every level is searched as `cycles::find_cycles` does.
fn search(
    txns: &Txns,
    inf: &mut infer::Inference<'_>,
    budget: u64,
    abort: &dyn Fn() -> bool,
) -> (cycles::Cycles, usize) {
    let chain = realtime::Chain::new(txns);
    let links = chain.links();
    let g = cycles::Csr::build(txns.len(), &inf.edges);
    let Some(comp) = realtime::cyclic_components(&g, &chain) else {
        let none = cycles::Cycles {
            found: Vec::new(),
            cut_level: None,
            states: 0,
        };
        return (none, inf.edges.len() + links);
    };
    drop(g);
    drop(chain);
    inf.edges.extend(realtime::reduction_within(txns, &comp));
    drop(comp);
    let g = cycles::Csr::build(txns.len(), &inf.edges);
    (
        cycles::find_cycles(&g, budget, abort),
        inf.edges.len() + links,
    )
}

/// Records a search cut at `level`: the models neither ruled out nor shown to hold
/// (`undecided`), and, when the budget (not an abort) cut a level the model allows, where
/// it stopped (`cycle_search_cut`: the verdict stands on the levels searched whole).
fn note_cut(
    figures: &mut serde_json::Map<String, serde_json::Value>,
    level: usize,
    model: ConsistencyModel,
    ruled_out: &std::collections::BTreeSet<ConsistencyModel>,
    aborted: bool,
) {
    let undecided: Vec<&str> = ConsistencyModel::ALL
        .into_iter()
        .filter(|m| !ruled_out.contains(m) && model_needs_level(*m, level))
        .map(|m| m.as_str())
        .collect();
    figures.insert("undecided".into(), undecided.into());
    if !aborted && !model_needs_level(model, level) {
        let cut = format!(
            "the cycle search ran out of its budget (--checker-max-states) among the {} cycles, which {} allows; every cycle it forbids was searched for",
            cycles::LEVEL_NAMES[level],
            model.as_str()
        );
        figures.insert("cycle_search_cut".into(), cut.into());
    }
}

/// Whether `model` forbids some cycle searched for at `level` or later (the search goes
/// level by level, so a budget cut at `level` leaves only those unsearched). A model that
/// forbids none of them, e.g. serializable's plain cycles against a cut among the
/// process-order ones, keeps its verdict from the levels searched completely.
fn model_needs_level(model: ConsistencyModel, level: usize) -> bool {
    (level..cycles::LEVEL_NAMES.len())
        .any(|l| cycles::searched_at(l).any(|(k, f)| model.forbids(k, f)))
}

/// Adds every model an anomaly rules out.
fn note(out: &mut std::collections::BTreeSet<ConsistencyModel>, k: AnomalyKind, f: Flavour) {
    out.extend(
        ConsistencyModel::ALL
            .into_iter()
            .filter(|m| m.forbids(k, f)),
    );
}

fn edge_kind(bit: u8) -> EdgeKind {
    match bit {
        infer::WW => EdgeKind::Ww,
        infer::WR => EdgeKind::Wr,
        infer::RW => EdgeKind::Rw,
        infer::PROC => EdgeKind::Process,
        _ => EdgeKind::Realtime,
    }
}

/// A cycle as an anomaly: its transactions, and one sentence per edge.
fn render(inf: &infer::Inference<'_>, c: &Cycle) -> Anomaly {
    let n = c.steps.len();
    let names: Vec<String> = c
        .steps
        .iter()
        .map(|&(t, _)| infer::name(&inf.txns[t as usize]))
        .collect();
    let reasons: Vec<String> = (0..n)
        .map(|i| {
            let (a, bit) = c.steps[i];
            let b = c.steps[(i + 1) % n].0;
            inf.explain_edge(a, b, bit)
        })
        .collect();
    // The anti-dependency that closes a causal G-single: its reader missed its writer.
    let rw = (0..n).find(|&i| c.steps[i].1 == infer::RW).unwrap_or(0);
    let (reader, writer) = (&names[rw], &names[(rw + 1) % n]);
    let what = match c.flavour {
        Flavour::FracturedRead => format!(
            " — a fractured read: {reader} saw some of {writer}'s writes but not all"
        ),
        Flavour::ConsistentPrefix => " — a consistent-prefix (causal) violation: a transaction saw an answer without the question it answers".into(),
        Flavour::SessionOrder => format!(
            " — a session (causal) violation: {reader} missed {writer}'s write, which its own process had already made or seen"
        ),
        Flavour::Plain => String::new(),
    };
    let explanation = format!(
        "{} cycle {} → {}{what}: {}.",
        c.kind,
        names.join(" → "),
        names[0],
        reasons.join("; ")
    );
    let mut a = Anomaly::new(
        c.kind,
        None,
        c.steps
            .iter()
            .map(|&(t, _)| inf.txns[t as usize].index)
            .collect(),
        explanation,
    );
    a.cycle = c
        .steps
        .iter()
        .map(|&(t, bit)| CycleStep {
            op: inf.txns[t as usize].index,
            edge: edge_kind(bit),
        })
        .collect();
    a
}
