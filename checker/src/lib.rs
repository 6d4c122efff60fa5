//! Pure analyses of schism histories: the `append` checker (lists per key), the
//! `linearizable` checker (read/write/cas registers per key, by zones or exact search;
//! Knossos's multi-register and mutex models over the whole history), and `convergence`
//! (replica dumps taken after the final heal). `validate` runs first and names the first
//! op that breaks the analysis' assumptions.
//!
//! Everything here is a function of its inputs: no I/O, no threads, no clock reads.
//! A time budget arrives as an abort flag the caller sets; a search budget is a count of
//! explored states. Guarantees: a verdict of `Valid` is only given after a complete
//! check; a budget that runs out or an abort yields `Unknown`, never `Valid`; every
//! anomaly names its witness ops by `Op::index` and explains itself in one sentence; a
//! history that cannot be checked at all is a `CheckError` naming the offending op.

mod append;
mod convergence;
mod explain;
mod fx;
mod linearizable;
mod report;
mod validate;

pub use convergence::{ReplicaState, check_convergence};
pub use report::{Anomaly, AnomalyKind, CheckResult, Report, Validity};

use schism_history::{F, History, HistoryError, Operation, Value};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Which family of operations a history holds, hence which checker applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// `append` and list-valued `read` per key.
    Append,
    /// `read`, `write` and `cas` on integer registers per key.
    Register,
}

impl Workload {
    pub fn as_str(self) -> &'static str {
        match self {
            Workload::Append => "append",
            Workload::Register => "register",
        }
    }
}

/// The register model's semantics. Knossos histories need both knobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RegisterOptions {
    /// Every key's value before any write; `None` is nil (reads return `null`).
    pub initial: Option<i64>,
    /// Knossos semantics: an ok read that returned nil is consistent with any state.
    pub nil_read_is_wildcard: bool,
}

/// The sequential specification a linearizability check uses (Knossos's model names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Model {
    /// `read`/`write` per key.
    Register,
    /// `read`/`write`/`cas [expected new]` per key.
    CasRegister,
    /// `txn` of `[read|write register value]` micro-ops over named registers, atomically.
    MultiRegister,
    /// `acquire` (fails when held) and `release` (fails when free) of one lock.
    Mutex,
}

impl Model {
    pub fn as_str(self) -> &'static str {
        match self {
            Model::Register => "register",
            Model::CasRegister => "cas-register",
            Model::MultiRegister => "multi-register",
            Model::Mutex => "mutex",
        }
    }
}

/// Which linearizability algorithm checks read/write register keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    /// Zones where a key is a read/write register with unique values, else the search.
    #[default]
    Auto,
    /// The exact Wing–Gong–Lowe search everywhere.
    Wgl,
    /// The zones algorithm; histories it cannot decide are rejected by validation.
    Zones,
}

/// How to check.
#[derive(Debug, Clone)]
pub struct Options {
    /// `None` infers it from the functions in the history: `append` ⇒ Append,
    /// `write`/`cas` ⇒ Register.
    pub workload: Option<Workload>,
    /// Linearizability search budget: explored states summed over all keys.
    pub max_states: u64,
    /// Set by the caller (for instance on a timer) to stop early with `Unknown`.
    pub abort: Option<Arc<AtomicBool>>,
    /// Anomalies kept per kind; the rest are only counted in the figures.
    pub max_anomalies_per_kind: usize,
    pub register: RegisterOptions,
    /// `None`: from the workload (`Register` histories use the cas-register model).
    /// `MultiRegister` and `Mutex` check the whole history as one object.
    pub model: Option<Model>,
    pub algorithm: Algorithm,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            workload: None,
            // A valid history costs about 7 states per op, so this covers histories of
            // a million ops; the memo of one key peaks near 65 bytes per state, so a
            // single pathological key stays under 1 GiB.
            max_states: 10_000_000,
            abort: None,
            max_anomalies_per_kind: 20,
            register: RegisterOptions::default(),
            model: None,
            algorithm: Algorithm::Auto,
        }
    }
}

impl Options {
    pub(crate) fn aborted(&self) -> bool {
        self.abort
            .as_ref()
            .is_some_and(|a| a.load(Ordering::Relaxed))
    }
}

/// The history cannot be checked at all.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// Invokes and completions do not pair up.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// One op does not fit the workload (unknown function, missing key, bad value, …).
    #[error("op index {index}: {msg}")]
    Op { index: u64, msg: String },
}

/// Runs the checker for the history's workload and merges the verdicts.
pub fn check(history: &History, opts: &Options) -> Result<Report, CheckError> {
    validate::validate(history, opts)?;
    let ops = history.operations()?;
    if let Some(m @ (Model::MultiRegister | Model::Mutex)) = opts.model {
        let r = linearizable::check_general(history, &ops, opts, m)?;
        return Ok(Report::from_results(vec![r]));
    }
    let workload = match opts.workload {
        Some(w) => w,
        None if opts.model.is_some() => Workload::Register,
        None => match infer_workload(history, &ops)? {
            Some(w) => w,
            // No client operation at all: nothing can be wrong.
            None => return Ok(Report::from_results(Vec::new())),
        },
    };
    let result = match workload {
        Workload::Append => append::check_ops(history, &ops, opts)?,
        Workload::Register => linearizable::check_ops(history, &ops, opts)?,
    };
    Ok(Report::from_results(vec![result]))
}

/// The `append` checker alone.
pub fn check_append(history: &History, opts: &Options) -> Result<CheckResult, CheckError> {
    append::check_ops(history, &history.operations()?, opts)
}

/// The `linearizable` register checker alone.
pub fn check_linearizable(history: &History, opts: &Options) -> Result<CheckResult, CheckError> {
    validate::validate(history, opts)?;
    let ops = history.operations()?;
    match opts.model {
        Some(m @ (Model::MultiRegister | Model::Mutex)) => {
            linearizable::check_general(history, &ops, opts, m)
        }
        _ => linearizable::check_ops(history, &ops, opts),
    }
}

/// Infers the workload from the functions used; `None` when there are no client ops.
fn infer_workload(history: &History, ops: &[Operation]) -> Result<Option<Workload>, CheckError> {
    let mut append: Option<&Operation> = None;
    let mut register: Option<&Operation> = None;
    let mut list_read = false;
    let mut scalar_read = false;
    for o in ops {
        match o.f {
            F::Append => append = append.or(Some(o)),
            F::Write | F::Cas => register = register.or(Some(o)),
            F::Read => match o.value {
                Value::List(_) => list_read = true,
                Value::Int(_) => scalar_read = true,
                _ => {}
            },
            _ => {}
        }
    }
    match (append, register) {
        (Some(a), Some(r)) => {
            let later = if a.invoke > r.invoke { a } else { r };
            Err(CheckError::Op {
                index: history.ops[later.invoke].index,
                msg: format!(
                    "{} mixes append and write/cas operations; pass the workload explicitly",
                    later.f
                ),
            })
        }
        (Some(_), None) => Ok(Some(Workload::Append)),
        (None, Some(_)) => Ok(Some(Workload::Register)),
        (None, None) if list_read => Ok(Some(Workload::Append)),
        (None, None) if scalar_read => Ok(Some(Workload::Register)),
        // Only nil reads, unknown functions or nothing: the append checker reports an
        // unknown function clearly, and is trivially valid on reads alone.
        (None, None) if ops.is_empty() => Ok(None),
        (None, None) => Ok(Some(Workload::Append)),
    }
}
