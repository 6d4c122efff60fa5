//! Pure analyses of schism histories: the `append` checker (lists per key), the
//! `linearizable` checker (read/write/cas registers per key, by zones or exact search;
//! Knossos's multi-register and mutex models over the whole history), the `graph`
//! checker (the per-op kinds of `perop` — stale reads and session-guarantee violations,
//! each counted once at its offending op — and the remaining dependency cycles, one per
//! component, named G0/G1c/G-single/G2), `counts` (one count per kind for a report),
//! `staleness` (k- and Δ-atomicity figures), `set-full`, `counter`, `stats`,
//! `convergence` (over per-node state dumps rather than a history), and `online`: the
//! per-op kinds claimed op by op while a history is still growing; `stream`: a check op by
//! op that never holds the history, when every selected checker streams (`stats`,
//! `counter`, `set-full`). `validate` runs first
//! and names the first op that breaks the analysis' assumptions; `evidence` says whether
//! the history holds enough successful operations for `valid` to mean anything.
//!
//! Everything here is a function of its inputs: no I/O, no clock reads, and threads only
//! when the caller allows them (`Options::threads`): scoped, joined before returning, the
//! results those of one thread.
//! A time budget arrives as an abort flag the caller sets; a search budget is a count of
//! explored states. Guarantees: a verdict of `Valid` is only given after a complete
//! check; a budget that runs out or an abort yields `Unknown`, never `Valid`; every
//! anomaly names its witness ops by `Op::index` and explains itself in one sentence; a
//! history that cannot be checked at all is a `CheckError` naming the offending op.

mod append;
mod append_keys;
mod convergence;
mod counter;
pub mod counts;
mod evidence;
mod explain;
mod fx;
pub(crate) mod graph;
mod linearizable;
pub mod online;
mod opstream;
#[cfg(test)]
mod oracle;
mod perop;
mod report;
mod set_full;
mod staleness;
pub mod stats;
pub mod stream;
pub mod txn;
mod validate;

pub use convergence::{ReplicaState, check_convergence};
pub use counts::NON_LINEARIZABLE_EXPLAINED;
pub use evidence::{
    EVIDENCE, EvidenceStream, check_evidence, check_evidence_of, check_evidence_txns,
};

/// One count per kind for a report, each from its owning checker (`counts::counts`, as
/// a map): the figure to show and compare; summing every checker's figures double-counts.
pub fn counts(report: &Report) -> std::collections::BTreeMap<AnomalyKind, u64> {
    counts::counts(&report.results)
        .into_iter()
        .map(|c| (c.kind, c.count))
        .collect()
}
pub use report::{Anomaly, AnomalyKind, CheckResult, CycleStep, EdgeKind, Report, Validity};

use schism_history::{F, History, HistoryError, Operation, Value};
use serde::{Deserialize, Serialize};
use std::fmt;
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
    /// `add` of unique integers and reads of the whole set per key (Jepsen's set-full).
    Set,
    /// `incr` (or `add`) of integers and integer reads per key.
    Counter,
}

impl Workload {
    pub fn as_str(self) -> &'static str {
        match self {
            Workload::Append => "append",
            Workload::Register => "register",
            Workload::Set => "set",
            Workload::Counter => "counter",
        }
    }
}

/// One analysis of a history, selectable with `schism check --checker`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckerName {
    /// Append lists: version order from the longest read, stale reads by real time, lost
    /// writes, divergence, phantom/aborted reads, duplicates. Linear time.
    Append,
    /// Per-key linearizability of registers.
    Linearizable,
    /// The dependency graph: cycles classified as stale reads and session violations,
    /// plus the append checker's non-cycle anomalies.
    Graph,
    /// How far behind each read was, in versions and milliseconds.
    Staleness,
    /// Jepsen's set-full: lost, stale and never-read elements.
    SetFull,
    /// Counter reads within [acknowledged, attempted] increments.
    Counter,
    /// Counts and latency quantiles per function.
    Stats,
}

impl CheckerName {
    pub const ALL: [CheckerName; 7] = [
        CheckerName::Append,
        CheckerName::Linearizable,
        CheckerName::Graph,
        CheckerName::Staleness,
        CheckerName::SetFull,
        CheckerName::Counter,
        CheckerName::Stats,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CheckerName::Append => "append",
            CheckerName::Linearizable => "linearizable",
            CheckerName::Graph => "graph",
            CheckerName::Staleness => "staleness",
            CheckerName::SetFull => "set-full",
            CheckerName::Counter => "counter",
            CheckerName::Stats => "stats",
        }
    }

    /// Parses a name as `as_str` prints it.
    pub fn parse(s: &str) -> Option<CheckerName> {
        CheckerName::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The workloads this checker applies to.
    pub fn fits(self, w: Workload) -> bool {
        match self {
            CheckerName::Append => w == Workload::Append,
            CheckerName::Linearizable => w == Workload::Register,
            CheckerName::Graph | CheckerName::Staleness => {
                matches!(w, Workload::Append | Workload::Register)
            }
            CheckerName::SetFull => w == Workload::Set,
            CheckerName::Counter => w == Workload::Counter,
            CheckerName::Stats => true,
        }
    }
}

/// The checkers that fit a workload, in report order. The graph checker includes the
/// append checker's anomalies, so `append` is not repeated next to it.
pub fn default_checkers(w: Workload) -> Vec<CheckerName> {
    match w {
        Workload::Append => vec![
            CheckerName::Graph,
            CheckerName::Staleness,
            CheckerName::Stats,
        ],
        Workload::Register => vec![
            CheckerName::Linearizable,
            CheckerName::Graph,
            CheckerName::Staleness,
            CheckerName::Stats,
        ],
        Workload::Set => vec![CheckerName::SetFull, CheckerName::Stats],
        Workload::Counter => vec![CheckerName::Counter, CheckerName::Stats],
    }
}

/// Which checkers `check` runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CheckerSet {
    /// The workload's primary checker alone (`append`, `linearizable`, `set-full`,
    /// `counter`): the historical behaviour of `check`.
    #[default]
    Primary,
    /// Every checker that fits the workload (`default_checkers`).
    Fitting,
    /// Exactly these, in this order; one that does not fit the workload is an error.
    Only(Vec<CheckerName>),
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

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Model {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "register" => Ok(Model::Register),
            "cas-register" => Ok(Model::CasRegister),
            "multi-register" => Ok(Model::MultiRegister),
            "mutex" => Ok(Model::Mutex),
            other => Err(format!(
                "unknown model {other:?}: expected {}",
                <Self as schism_history::Choices>::expected()
            )),
        }
    }
}

/// `schism check --model`'s spellings (Knossos's model names).
impl schism_history::Choices for Model {
    const CHOICES: &'static [(&'static str, &'static str)] = &[
        ("register", ""),
        ("cas-register", ""),
        ("multi-register", ""),
        ("mutex", ""),
    ];
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

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Algorithm::Auto => "auto",
            Algorithm::Wgl => "wgl",
            Algorithm::Zones => "zones",
        })
    }
}

impl std::str::FromStr for Algorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Algorithm::Auto),
            "wgl" => Ok(Algorithm::Wgl),
            "zones" => Ok(Algorithm::Zones),
            other => Err(format!(
                "unknown algorithm {other:?}: expected auto, wgl or zones"
            )),
        }
    }
}

/// `schism check --algorithm`'s spellings.
impl schism_history::Choices for Algorithm {
    const CHOICES: &'static [(&'static str, &'static str)] =
        &[("auto", ""), ("wgl", ""), ("zones", "")];
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
    /// Which checkers to run.
    pub checkers: CheckerSet,
    /// Threads one `check` may use (1: everything on the caller's thread). With 2 or more
    /// and at least `PARALLEL_MIN_OPS` operations, validation runs beside the pairing and
    /// the checkers are split in two groups run side by side (`split`); the results are
    /// the same as on one thread, in the same order.
    pub threads: usize,
    /// Streamed `linearizable` (`stream`): positions (ops) a key with no open operation
    /// goes unseen before it is retired — checked, and its ops dropped.
    pub retire_idle_ops: usize,
}

/// Fewest paired operations for which `check` uses a second thread: below it, starting
/// a thread costs more than it saves.
pub const PARALLEL_MIN_OPS: usize = 100_000;

/// `Options::retire_idle_ops` by default: a key unseen for this many ops is taken as
/// done (Jepsen's independent keys move on); one that comes back after it costs a
/// second read of the file for that key (`linearizable::stream`).
pub const RETIRE_IDLE_OPS: usize = 100_000;

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
            checkers: CheckerSet::default(),
            threads: 1,
            retire_idle_ops: RETIRE_IDLE_OPS,
        }
    }
}

impl Options {
    /// True when this check of `ops` paired operations runs on two threads.
    fn parallel(&self, ops: usize) -> bool {
        self.threads >= 2 && ops >= PARALLEL_MIN_OPS
    }

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
    /// A checker was asked for a workload it does not apply to.
    #[error("the {checker} checker does not apply to {} histories", workload.as_str())]
    Unsupported {
        checker: &'static str,
        workload: Workload,
    },
}

/// Runs the checker for the history's workload and merges the verdicts.
pub fn check(history: &History, opts: &Options) -> Result<Report, CheckError> {
    check_paired(history, opts).map(|(report, _)| report)
}

/// `check`, and the paired operations it checked (`History::operations`), for a caller
/// that goes on with them (`check_evidence_of`, `stats::stats_of`) instead of pairing the
/// history again.
pub fn check_paired(
    history: &History,
    opts: &Options,
) -> Result<(Report, Vec<Operation>), CheckError> {
    // Validation and pairing both only read the history: side by side on a large one.
    // Validation's error wins, as when it runs first.
    let ops = if opts.parallel(history.len() / 2) {
        std::thread::scope(|s| {
            let valid = s.spawn(|| validate::validate(history, opts));
            let ops = history.operations();
            valid.join().expect("validation thread")?;
            Ok::<_, CheckError>(ops?)
        })?
    } else {
        validate::validate(history, opts)?;
        history.operations()?
    };
    let report = check_ops(history, &ops, opts)?;
    Ok((report, ops))
}

fn check_ops(history: &History, ops: &[Operation], opts: &Options) -> Result<Report, CheckError> {
    if let Some(m @ (Model::MultiRegister | Model::Mutex)) = opts.model {
        let r = linearizable::check_general(history, ops, opts, m)?;
        return Ok(Report::from_results(vec![r]));
    }
    let workload = match opts.workload {
        Some(w) => w,
        None if opts.model.is_some() => Workload::Register,
        None => match infer_workload(history, ops)? {
            Some(w) => w,
            // No client operation at all: nothing can be wrong.
            None => return Ok(Report::from_results(Vec::new())),
        },
    };
    let names = match &opts.checkers {
        CheckerSet::Primary => vec![primary(workload)],
        CheckerSet::Fitting => {
            let mut names = default_checkers(workload);
            // The graph and staleness checkers name a read's writer by its value; with
            // repeated write values (Knossos-style histories) they do not fit, and only the
            // linearizability search (which needs no unique values) applies.
            if workload == Workload::Register && !register_writes_unique(history) {
                names.retain(|n| !matches!(n, CheckerName::Graph | CheckerName::Staleness));
            }
            names
        }
        CheckerSet::Only(list) => list.clone(),
    };
    // The checkers before the first that does not fit run (its error comes after theirs,
    // as when they run in order); the first error in name order wins.
    let fitting = names
        .iter()
        .position(|n| !n.fits(workload))
        .unwrap_or(names.len());
    let (main, side) = split(&names[..fitting], workload);
    let mut results: Vec<Option<Result<CheckResult, CheckError>>> =
        (0..fitting).map(|_| None).collect();
    let run_group = |group: &[usize]| {
        let has = |n: CheckerName| group.iter().any(|&i| names[i] == n);
        let mut shared = Shared::new(has(CheckerName::Staleness), has(CheckerName::Graph));
        let mut out = Vec::with_capacity(group.len());
        for &i in group {
            let r = run_one(history, ops, opts, workload, names[i], &mut shared);
            let stop = r.is_err();
            out.push((i, r));
            if stop {
                break;
            }
        }
        out
    };
    let done = if !side.is_empty() && !main.is_empty() && opts.parallel(ops.len()) {
        std::thread::scope(|s| {
            let other = s.spawn(|| run_group(&side));
            let mut done = run_group(&main);
            done.extend(other.join().expect("checker thread"));
            done
        })
    } else {
        let mut all = main;
        all.extend(side);
        all.sort_unstable();
        run_group(&all)
    };
    for (i, r) in done {
        results[i] = Some(r);
    }
    let mut out = Vec::with_capacity(fitting);
    for r in results {
        match r {
            Some(r) => out.push(r?),
            // A checker is left unrun only after an earlier one of its group failed, and
            // that error, earlier in name order, has returned above: a partial report
            // must never come out as a complete one.
            None => unreachable!("a checker was not run although none before it failed"),
        }
    }
    if let Some(name) = names.get(fitting) {
        return Err(CheckError::Unsupported {
            checker: name.as_str(),
            workload,
        });
    }
    Ok(Report::from_results(out))
}

/// The checkers of one `check` (positions in `names`) in two groups that share nothing
/// and can run side by side: `graph` — with `staleness` on a register history, which
/// shares its per-op pass (`Shared`) — and every other checker. Each group keeps the
/// names' order.
fn split(names: &[CheckerName], w: Workload) -> (Vec<usize>, Vec<usize>) {
    let with_graph = |n: CheckerName| {
        n == CheckerName::Graph || (n == CheckerName::Staleness && w == Workload::Register)
    };
    (0..names.len()).partition(|&i| with_graph(names[i]))
}

/// What two checkers of one `check` derive alike, derived once: a register history's
/// per-op findings (`graph`) and read lags (`staleness`), both `perop::register`'s, and
/// its value → writer index (`graph`, which would build the same map again). The
/// lags become the staleness figures at once (kilobytes, where the lags are 24 bytes a
/// read), so the graph checker's peak does not hold them.
pub(crate) struct Shared {
    /// The `staleness` checker runs too: keep its figures.
    staleness: bool,
    register: Option<perop::PerOp>,
    /// The `graph` checker runs too: keep the value → writer index for it.
    graph: bool,
    writers: Option<perop::Writers>,
    figures: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Shared {
    pub(crate) fn new(staleness: bool, graph: bool) -> Self {
        Shared {
            staleness,
            register: None,
            graph,
            writers: None,
            figures: None,
        }
    }

    fn compute(&mut self, h: &History, ops: &[Operation], opts: &Options) {
        if self.register.is_none() {
            let (mut per_op, writers) = perop::register_writers(h, ops, opts, self.staleness);
            if self.graph {
                self.writers = Some(writers);
            }
            if self.staleness {
                let lags = std::mem::take(&mut per_op.lags);
                self.figures = Some(staleness::of_lags(h, ops, lags));
            }
            self.register = Some(per_op);
        }
    }

    /// `perop::register`'s findings, computed on first use.
    pub(crate) fn register(
        &mut self,
        h: &History,
        ops: &[Operation],
        opts: &Options,
    ) -> &perop::PerOp {
        self.compute(h, ops, opts);
        self.register.as_ref().expect("computed")
    }

    /// `perop::register`'s value → writer index, taken (once; `None` after, or when no
    /// `graph` checker was announced).
    pub(crate) fn take_writers(&mut self) -> Option<perop::Writers> {
        self.writers.take()
    }

    /// The staleness figures of a register history, taken (computed if not yet, keeping
    /// the per-op findings for a `graph` checker that runs after: one pass either way).
    pub(crate) fn take_staleness(
        &mut self,
        h: &History,
        ops: &[Operation],
        opts: &Options,
    ) -> serde_json::Map<String, serde_json::Value> {
        self.compute(h, ops, opts);
        match self.figures.take() {
            Some(f) => f,
            None => staleness::of_lags(h, ops, perop::register(h, ops, opts, true).lags),
        }
    }
}

/// The checker `CheckerSet::Primary` runs for a workload.
pub(crate) fn primary(w: Workload) -> CheckerName {
    match w {
        Workload::Append => CheckerName::Append,
        Workload::Register => CheckerName::Linearizable,
        Workload::Set => CheckerName::SetFull,
        Workload::Counter => CheckerName::Counter,
    }
}

fn run_one(
    h: &History,
    ops: &[Operation],
    opts: &Options,
    w: Workload,
    name: CheckerName,
    shared: &mut Shared,
) -> Result<CheckResult, CheckError> {
    match name {
        CheckerName::Append => append::check_ops(h, ops, opts),
        CheckerName::Linearizable => linearizable::check_ops(h, ops, opts),
        CheckerName::Graph => graph::check_ops(h, ops, opts, w, shared),
        CheckerName::Staleness => staleness::check_ops(h, ops, opts, w, shared),
        CheckerName::SetFull => set_full::check_ops(h, ops, opts),
        CheckerName::Counter => counter::check_ops(h, ops, opts),
        CheckerName::Stats => stats::check_ops(h, ops),
    }
}

/// The `graph` checker alone (append or register histories; inferred unless given).
pub fn check_graph(history: &History, opts: &Options) -> Result<CheckResult, CheckError> {
    check_one(history, opts, CheckerName::Graph)
}

/// The `staleness` figures alone.
pub fn check_staleness(history: &History, opts: &Options) -> Result<CheckResult, CheckError> {
    check_one(history, opts, CheckerName::Staleness)
}

/// One named checker; its workload from `opts` or inferred (append when there are no ops).
pub fn check_one(
    history: &History,
    opts: &Options,
    name: CheckerName,
) -> Result<CheckResult, CheckError> {
    let ops = history.operations()?;
    let w = match opts.workload {
        Some(w) => w,
        None => infer_workload(history, &ops)?.unwrap_or(Workload::Append),
    };
    if !name.fits(w) {
        return Err(CheckError::Unsupported {
            checker: name.as_str(),
            workload: w,
        });
    }
    run_one(
        history,
        &ops,
        opts,
        w,
        name,
        &mut Shared::new(name == CheckerName::Staleness, name == CheckerName::Graph),
    )
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
    let mut inferred = Inferred::default();
    let mut append: Option<&Operation> = None;
    let mut register: Option<&Operation> = None;
    for o in ops {
        inferred.note(o);
        match o.f {
            F::Append => append = append.or(Some(o)),
            F::Write | F::Cas => register = register.or(Some(o)),
            _ => {}
        }
    }
    if let (Some(a), Some(r)) = (append, register) {
        let later = if a.invoke() > r.invoke() { a } else { r };
        return Err(CheckError::Op {
            index: history.ops[later.invoke()].index(),
            msg: format!(
                "{} mixes append and write/cas operations; pass the workload explicitly",
                later.f
            ),
        });
    }
    Ok(inferred.workload())
}

/// What `infer_workload` reads of the operations, noted one by one (the streamed check
/// notes them as they complete).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Inferred {
    any: bool,
    append: bool,
    register: bool,
    list_read: bool,
    scalar_read: bool,
    add: bool,
    incr: bool,
}

impl Inferred {
    pub(crate) fn note(&mut self, o: &Operation) {
        self.any = true;
        match o.f {
            F::Append => self.append = true,
            F::Write | F::Cas => self.register = true,
            F::Add => self.add = true,
            F::Incr => self.incr = true,
            F::Read => match o.value {
                Value::List(_) => self.list_read = true,
                Value::Int(_) => self.scalar_read = true,
                _ => {}
            },
            _ => {}
        }
    }

    /// The workload, for operations that do not mix append and write/cas.
    pub(crate) fn workload(&self) -> Option<Workload> {
        if !self.append && !self.register && (self.add || self.incr) {
            // `incr`, or `add` with integer reads, is a counter; `add` with list reads a set.
            return Some(if self.incr || (self.scalar_read && !self.list_read) {
                Workload::Counter
            } else {
                Workload::Set
            });
        }
        match (self.append, self.register) {
            (true, _) => Some(Workload::Append),
            (false, true) => Some(Workload::Register),
            _ if self.list_read => Some(Workload::Append),
            _ if self.scalar_read => Some(Workload::Register),
            // Only nil reads, unknown functions or nothing: the append checker reports an
            // unknown function clearly, and is trivially valid on reads alone.
            _ if !self.any => None,
            _ => Some(Workload::Append),
        }
    }
}

/// True when no key of a register history is written (or cas-set) to the same value twice.
pub(crate) fn register_writes_unique(h: &History) -> bool {
    let mut seen: fx::FxHashSet<(u64, i64)> = fx::FxHashSet::default();
    h.ops.iter().all(|op| {
        if op.kind != schism_history::OpType::Invoke {
            return true;
        }
        let written = match (&op.f, &op.value) {
            (F::Write, Value::Int(v)) => Some(*v),
            (F::Cas, Value::List(pair)) if pair.len() == 2 => Some(pair[1]),
            _ => None,
        };
        written.is_none_or(|v| seen.insert((op.key().unwrap_or(0), v)))
    })
}
