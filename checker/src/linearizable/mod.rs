//! The `linearizable` checker for register histories (`read`, `write`, `cas` per key).
//!
//! Linearizability is compositional (P-compositionality), so each key is checked alone.
//! Per key, values become dense state ids (0 is nil), `fail` ops are dropped (they never
//! happened), indeterminate reads are dropped (they constrain nothing), so are
//! indeterminate writes of values no op needs, and an indeterminate write that alone
//! explains a value an ok op observed is searched as if it returned when that observer
//! did (see `build` for why both are exact). An ok read of a value that no surviving
//! write or cas could have produced is reported at once as a phantom or aborted read,
//! without a search. Everything else goes to the
//! Wing–Gong–Lowe search in `wgl`.
//!
//! Each key is checked alone (`check_key`, into a `KeyResult`) and the results are added
//! up in key order (`Fold`): the state budget is shared in that order, the first unknown
//! key stops the searches of the others, the first counterexample and violations are the
//! first keys'. `stream` (the streamed check) checks each key once it is retired and folds
//! the same records at the end.
//!
//! Guarantees: `Valid` only when every key was fully searched and linearized; a spent
//! state budget or an abort gives `Unknown` with a figure naming the key and how far the
//! search got; a violation names the op that cannot be placed, how many ops linearize
//! before it, and the states the register could hold instead.

mod general;
pub(crate) mod stream;
mod wgl;
mod zones;

pub(crate) use general::{check_general, parse_txn};

use crate::explain::{complete_ns, invoke_ns, op_index, secs};
use crate::fx::{FxHashMap, FxHashSet};
use crate::report::{Anomaly, AnomalyKind, AnomalySink, CheckResult, Validity};
use crate::{Algorithm, CheckError, Options, RegisterOptions};
use schism_history::{F, History, Key, Operation, Outcome, Value};
use std::collections::BTreeMap;
use wgl::{Call, IMPOSSIBLE, Step};

const KINDS: [AnomalyKind; 3] = [
    AnomalyKind::NonLinearizable,
    AnomalyKind::PhantomRead,
    AnomalyKind::AbortedRead,
];

/// The keys holding a per-op anomaly (`perop`: stale read, monotonic read,
/// read-your-writes), computed on first use; none when written values repeat (then a
/// value does not name its write).
struct PerOpKeys(Option<FxHashSet<Key>>);

impl PerOpKeys {
    fn get(&mut self, h: &History, ops: &[Operation], opts: &Options) -> &FxHashSet<Key> {
        self.0.get_or_insert_with(|| {
            if !crate::register_writes_unique(h) {
                return FxHashSet::default();
            }
            crate::perop::register(h, ops, opts, false)
                .findings
                .iter()
                .filter_map(|f| ops[f.slot()].key())
                .collect()
        })
    }
}

/// One key, ready for the search.
struct KeyModel<'a> {
    calls: Vec<Call>,
    /// The operation behind each call.
    ops: Vec<&'a Operation>,
    /// State id → value (`None` is nil).
    values: Vec<Option<i64>>,
    initial: u32,
    /// Ok ops that read a value no surviving write could produce (index into `ops`).
    impossible: Vec<usize>,
    /// The first surviving op writing each value, to name witnesses.
    writers: FxHashMap<i64, &'a Operation>,
    /// The first failed op writing each value.
    failed_writers: FxHashMap<i64, &'a Operation>,
    /// Indeterminate writes and cas of values nobody observed, left out of the search.
    dropped: u64,
    /// Indeterminate writes and cas given the return of the first op that observed them.
    promoted: u64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    reads: u64,
    writes: u64,
    cas: u64,
    ok: u64,
    fail: u64,
    info: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.reads += o.reads;
        self.writes += o.writes;
        self.cas += o.cas;
        self.ok += o.ok;
        self.fail += o.fail;
        self.info += o.info;
    }
}

pub(crate) fn check_ops(
    h: &History,
    ops: &[Operation],
    opts: &Options,
) -> Result<CheckResult, CheckError> {
    let mut counts = Counts::default();
    let keys = prepare(h, ops, &mut counts)?;
    let mut fold = Fold::new(opts);
    // Violations on keys that carry a per-op anomaly are counted at that anomaly.
    let mut per_op_keys = PerOpKeys(None);
    for (&key, positions) in &keys {
        // One key's model at a time: the check's memory is the largest key's, not all.
        let key_ops: Vec<&Operation> = positions.iter().map(|&i| &ops[i as usize]).collect();
        let r = check_key(h, key, &key_ops, opts, fold.budget, fold.unknown.is_some());
        drop(key_ops);
        fold.add(r, &mut |k| per_op_keys.get(h, ops, opts).contains(&k))?;
    }
    Ok(fold.finish(&counts, keys.len()))
}

/// How one key's search went (`check_key`), with what `Fold` needs to replay it under
/// another budget: the search is deterministic, so a search that took `explored` states
/// ends the same under any budget of at least that many, and runs out under any less.
#[derive(Debug, Clone)]
enum KeySearch {
    /// Not searched: the check was aborted before this key.
    AbortedBefore,
    /// Not searched: an earlier key left the verdict unknown.
    Skipped,
    /// Zones: the failures' records (none: linearizable), or the key is not eligible.
    Zones(Result<Vec<Failed>, (u64, String)>),
    Wgl {
        /// The budget the search was given.
        given: u64,
        explored: u64,
        outcome: WglOutcome,
    },
}

#[derive(Debug, Clone)]
enum WglOutcome {
    Linearizable,
    Violation(Failed),
    Exhausted { deepest: usize },
    Aborted { deepest: usize },
}

/// One op that cannot be placed, as the check reports it.
#[derive(Debug, Clone)]
struct Failed {
    counterexample: serde_json::Value,
    violation: serde_json::Value,
    /// `None` when the op was already reported as a phantom or aborted read.
    anomaly: Option<Anomaly>,
}

/// One key checked (`check_key`): what `Fold` adds up in key order.
#[derive(Debug, Clone)]
pub(crate) struct KeyResult {
    key: Key,
    calls: usize,
    ok_ops: usize,
    dropped: u64,
    promoted: u64,
    /// Phantom and aborted reads, in order.
    impossible: Vec<(AnomalyKind, Anomaly)>,
    /// The counterexample of an impossible read, for a search that ran out.
    impossible_counterexample: Option<serde_json::Value>,
    search: KeySearch,
}

impl KeyResult {
    /// A key left unchecked (its ops were not all read): unknown, never valid.
    pub(crate) fn unchecked(key: Key) -> Self {
        KeyResult {
            key,
            calls: 0,
            ok_ops: 0,
            dropped: 0,
            promoted: 0,
            impossible: Vec::new(),
            impossible_counterexample: None,
            search: KeySearch::AbortedBefore,
        }
    }

    /// Some op of the key cannot be placed (outside the impossible reads).
    pub(crate) fn has_violation(&self) -> bool {
        match &self.search {
            KeySearch::Zones(Ok(f)) => f.iter().any(|f| f.anomaly.is_some()),
            KeySearch::Wgl {
                outcome: WglOutcome::Violation(f),
                ..
            } => f.anomaly.is_some(),
            _ => false,
        }
    }

    /// The index of the op its error names.
    pub(crate) fn error_index(&self) -> Option<u64> {
        match &self.search {
            KeySearch::Zones(Err((index, _))) => Some(*index),
            _ => None,
        }
    }
}

/// Checks one key's ops (in invoke order) with `budget` states left; `unknown`: an
/// earlier key left the verdict unknown (only a key already proven invalid is searched).
fn check_key(
    h: &History,
    key: Key,
    key_ops: &[&Operation],
    opts: &Options,
    budget: u64,
    unknown: bool,
) -> KeyResult {
    let m = &build(key_ops, &opts.register);
    let has_impossible = !m.impossible.is_empty();
    let mut sink = Vec::new();
    if has_impossible {
        report_impossible(h, key, m, &opts.register, &mut sink);
    }
    let ok_ops = m.calls.iter().filter(|c| c.ret.is_some()).count();
    let mut r = KeyResult {
        key,
        calls: m.calls.len(),
        ok_ops,
        dropped: m.dropped,
        promoted: m.promoted,
        impossible: sink,
        impossible_counterexample: m
            .impossible
            .first()
            .map(|&i| counterexample_json(h, key, m.ops[i], 0, &[], "none")),
        search: KeySearch::Skipped,
    };
    if unknown && !has_impossible {
        return r;
    }
    if opts.aborted() {
        r.search = KeySearch::AbortedBefore;
        return r;
    }
    let eligible = zones::eligible(&m.calls, m.initial, m.values.len());
    let zones = match opts.algorithm {
        Algorithm::Wgl => false,
        Algorithm::Zones if !eligible => {
            r.search = KeySearch::Zones(Err((
                m.ops.first().map_or(0, |o| h.ops[o.invoke()].index()),
                format!(
                    "key {key} cannot be checked with zones: it needs a read/write register whose writes all have distinct values, none equal to the initial value; use the exact search"
                ),
            )));
            return r;
        }
        Algorithm::Zones => true,
        Algorithm::Auto => eligible,
    };
    if zones {
        let mut z = zones::Zones::new(&m.calls, m.initial, m.values.len());
        let failed = z
            .failures(opts.max_anomalies_per_kind.max(1))
            .into_iter()
            .enumerate()
            .map(|(n, fail)| {
                let op = m.ops[fail.call];
                let counterexample = if n == 0 {
                    let tail = prefix_by_completion(m, &fail);
                    counterexample_json(h, key, op, fail.completed_before, &tail, "zones")
                } else {
                    serde_json::Value::Null
                };
                Failed {
                    counterexample,
                    violation: serde_json::json!({
                        "key": key,
                        "op": op_index(h, op),
                        "linearized_ops": fail.completed_before,
                        "ops": m.calls.len(),
                    }),
                    anomaly: (!m.impossible.contains(&fail.call))
                        .then(|| explain_zones(h, key, m, &fail)),
                }
            })
            .collect();
        r.search = KeySearch::Zones(Ok(failed));
        return r;
    }
    // A key already proven invalid (an impossible read) only searches for an earlier
    // failing op with a slice of the budget, and never turns the verdict unknown.
    let mut given = if has_impossible {
        side_budget(budget)
    } else {
        budget
    };
    let start = given;
    let found = wgl::search(&m.calls, m.initial, &mut given, opts.abort.as_deref());
    let outcome = match found.outcome {
        wgl::Outcome::Linearizable => WglOutcome::Linearizable,
        wgl::Outcome::Violation(block) => {
            let op = m.ops[block.call];
            let tail: Vec<&Operation> = block.prefix_tail.iter().map(|&i| m.ops[i]).collect();
            WglOutcome::Violation(Failed {
                counterexample: counterexample_json(h, key, op, block.linearized, &tail, "wgl"),
                violation: serde_json::json!({
                    "key": key,
                    "op": op_index(h, op),
                    "linearized_ops": block.linearized,
                    "ops": m.calls.len(),
                }),
                anomaly: (!m.impossible.contains(&block.call))
                    .then(|| explain_block(h, key, m, &block)),
            })
        }
        wgl::Outcome::Exhausted { deepest } => WglOutcome::Exhausted { deepest },
        wgl::Outcome::Aborted { deepest } => WglOutcome::Aborted { deepest },
    };
    r.search = KeySearch::Wgl {
        given: start,
        explored: found.explored,
        outcome,
    };
    r
}

/// The budget of a key already proven invalid: a slice of what is left.
fn side_budget(budget: u64) -> u64 {
    budget.min((budget / 10).max(100_000))
}

/// A key's result that depends on the keys before it and cannot be had from its record:
/// its search ran out of a budget it would not have had (the caller checks it again).
#[derive(Debug)]
pub(crate) struct Replay(pub(crate) Key);

/// The check's outcome, added up key by key in key order (`check_ops`, or the streamed
/// check at its end): the shared state budget, the first unknown key, the first
/// counterexample, the first violations and the anomalies in key order.
pub(crate) struct Fold<'o> {
    opts: &'o Options,
    sink: AnomalySink,
    budget: u64,
    explored: u64,
    unknown: Option<String>,
    unknown_key: Option<Key>,
    checked: u64,
    skipped: u64,
    violations: Vec<serde_json::Value>,
    largest: (u64, usize),
    dropped: u64,
    promoted: u64,
    by_zones: u64,
    by_wgl: u64,
    counterexample: Option<serde_json::Value>,
    explained: u64,
}

/// A key's result could not be added: the check's error, or a replay to ask for.
#[derive(Debug)]
pub(crate) enum FoldError {
    Check(CheckError),
    Replay(Replay),
}

impl From<FoldError> for CheckError {
    fn from(e: FoldError) -> Self {
        match e {
            FoldError::Check(e) => e,
            // `check_ops` gives each key the budget it folds with: never replayed.
            FoldError::Replay(r) => unreachable!("key {} replayed on the whole path", r.0),
        }
    }
}

impl<'o> Fold<'o> {
    pub(crate) fn new(opts: &'o Options) -> Self {
        Fold {
            opts,
            sink: AnomalySink::new(opts.max_anomalies_per_kind),
            budget: opts.max_states,
            explored: 0,
            unknown: None,
            unknown_key: None,
            checked: 0,
            skipped: 0,
            violations: Vec::new(),
            largest: (0, 0),
            dropped: 0,
            promoted: 0,
            by_zones: 0,
            by_wgl: 0,
            counterexample: None,
            explained: 0,
        }
    }

    fn failed(
        &mut self,
        f: Failed,
        first: bool,
        has_impossible: bool,
        per_op: &mut dyn FnMut(Key) -> bool,
        key: Key,
    ) {
        if first && self.counterexample.is_none() {
            self.counterexample = Some(f.counterexample);
        }
        if self.violations.len() < self.opts.max_anomalies_per_kind {
            self.violations.push(f.violation);
        }
        if let Some(a) = f.anomaly {
            self.explained += u64::from(has_impossible || per_op(key));
            self.sink.push_with(AnomalyKind::NonLinearizable, || a);
        }
    }

    /// Adds the next key (in key order); `per_op(key)`: the key holds a per-op anomaly.
    pub(crate) fn add(
        &mut self,
        r: KeyResult,
        per_op: &mut dyn FnMut(Key) -> bool,
    ) -> Result<(), FoldError> {
        let key = r.key;
        self.dropped += r.dropped;
        self.promoted += r.promoted;
        if r.calls > self.largest.1 {
            self.largest = (key, r.calls);
        }
        let has_impossible = !r.impossible.is_empty();
        for (kind, a) in r.impossible {
            self.sink.push_with(kind, || a);
        }
        if self.unknown.is_some() && !has_impossible {
            self.skipped += 1;
            return Ok(());
        }
        match r.search {
            KeySearch::Skipped => unreachable!("key {key} skipped although nothing was unknown"),
            KeySearch::AbortedBefore => {
                if !has_impossible {
                    self.unknown = Some(format!("aborted before key {key}"));
                    self.unknown_key = Some(key);
                    self.skipped += 1;
                }
            }
            KeySearch::Zones(found) => {
                let failed = found
                    .map_err(|(index, msg)| FoldError::Check(CheckError::Op { index, msg }))?;
                self.by_zones += 1;
                self.checked += 1;
                for (n, f) in failed.into_iter().enumerate() {
                    self.failed(f, n == 0, has_impossible, per_op, key);
                }
            }
            KeySearch::Wgl {
                given,
                explored,
                outcome,
            } => {
                self.by_wgl += 1;
                let avail = if has_impossible {
                    side_budget(self.budget)
                } else {
                    self.budget
                };
                // The same search under `avail`: the recorded one when it was given
                // exactly that, or ended within it; else it runs out after `avail` states,
                // where only how deep it got is not in the record (`Replay`). An abort
                // (time) is kept as it came.
                let (outcome, explored) = match outcome {
                    WglOutcome::Aborted { .. } => (outcome, explored.min(avail)),
                    WglOutcome::Linearizable | WglOutcome::Violation(_)
                        if given == avail || explored <= avail =>
                    {
                        (outcome, explored)
                    }
                    _ if given == avail => (outcome, explored),
                    _ if has_impossible => (WglOutcome::Exhausted { deepest: 0 }, avail),
                    _ => return Err(FoldError::Replay(Replay(key))),
                };
                self.budget -= explored;
                self.explored += explored;
                match outcome {
                    WglOutcome::Linearizable => self.checked += 1,
                    WglOutcome::Violation(f) => {
                        self.checked += 1;
                        self.failed(f, true, has_impossible, per_op, key);
                    }
                    WglOutcome::Exhausted { .. } | WglOutcome::Aborted { .. } if has_impossible => {
                        self.checked += 1;
                        if self.counterexample.is_none() {
                            self.counterexample = r.impossible_counterexample;
                        }
                    }
                    WglOutcome::Exhausted { deepest } | WglOutcome::Aborted { deepest } => {
                        let why = if matches!(outcome, WglOutcome::Exhausted { .. }) {
                            format!(
                                "the search budget of {} states ran out",
                                self.opts.max_states
                            )
                        } else {
                            "the check was aborted (time budget)".to_owned()
                        };
                        self.unknown = Some(format!(
                            "{why} on key {key} after linearizing at best {deepest} of its {} ok operations",
                            r.ok_ops
                        ));
                        self.unknown_key = Some(key);
                        self.skipped += 1;
                    }
                }
            }
        }
        Ok(())
    }

    /// The check's result over `keys` keys.
    fn finish(self, counts: &Counts, keys: usize) -> CheckResult {
        let mut figures = serde_json::Map::new();
        figures.insert("keys".into(), keys.into());
        figures.insert("reads".into(), counts.reads.into());
        figures.insert("writes".into(), counts.writes.into());
        figures.insert("cas".into(), counts.cas.into());
        figures.insert("ok".into(), counts.ok.into());
        figures.insert("fail".into(), counts.fail.into());
        figures.insert("info".into(), counts.info.into());
        figures.insert("info_unobserved_dropped".into(), self.dropped.into());
        figures.insert("info_observed_promoted".into(), self.promoted.into());
        figures.insert("explored_states".into(), self.explored.into());
        figures.insert(
            "algorithm".into(),
            match (self.by_zones, self.by_wgl) {
                (0, 0) => "none",
                (_, 0) => "zones",
                (0, _) => "wgl",
                _ => "zones+wgl",
            }
            .into(),
        );
        figures.insert("keys_zones".into(), self.by_zones.into());
        figures.insert("keys_wgl".into(), self.by_wgl.into());
        if let Some(c) = self.counterexample {
            figures.insert("counterexample".into(), c);
        }
        figures.insert("keys_checked".into(), self.checked.into());
        figures.insert("keys_unchecked".into(), self.skipped.into());
        figures.insert("largest_key".into(), self.largest.0.into());
        figures.insert("largest_key_ops".into(), self.largest.1.into());
        if !self.violations.is_empty() {
            figures.insert("violations".into(), self.violations.into());
        }
        figures.insert(
            crate::NON_LINEARIZABLE_EXPLAINED.into(),
            self.explained.into(),
        );
        let found = !self.sink.is_empty();
        let anomalies = self.sink.finish(&KINDS, &mut figures);
        let validity = if found {
            Validity::Invalid
        } else if self.unknown.is_some() {
            Validity::Unknown
        } else {
            Validity::Valid
        };
        if let Some(why) = self.unknown {
            figures.insert("unknown_reason".into(), why.into());
            figures.insert("unknown_key".into(), self.unknown_key.into());
        }
        CheckResult {
            checker: "linearizable".into(),
            validity,
            anomalies,
            figures,
        }
    }
}
/// Validates every op and groups the ops by key, as positions in `ops` (4 bytes an op;
/// `check_ops` builds one key's model at a time).
fn prepare(
    h: &History,
    ops: &[Operation],
    counts: &mut Counts,
) -> Result<BTreeMap<Key, Vec<u32>>, CheckError> {
    let mut by_key: BTreeMap<Key, Vec<u32>> = BTreeMap::new();
    for (at, o) in ops.iter().enumerate() {
        let bad = |msg: String| CheckError::Op {
            index: h.ops[o.invoke()].index(),
            msg,
        };
        let Some(key) = o.key() else {
            return Err(bad(format!("{} has no key", o.f)));
        };
        match (&o.f, &o.value) {
            (F::Write, Value::Int(_)) => counts.writes += 1,
            (F::Write, v) => return Err(bad(format!("write value {v} is not an integer"))),
            (F::Cas, Value::List(l)) if l.len() == 2 => counts.cas += 1,
            (F::Cas, v) => {
                return Err(bad(format!(
                    "cas value {v} is not [expected, new] (two integers)"
                )));
            }
            (F::Read, Value::Int(_) | Value::Null) => counts.reads += 1,
            (F::Read, _) if o.outcome != Outcome::Ok => counts.reads += 1,
            (F::Read, v) => {
                return Err(CheckError::Op {
                    index: op_index(h, o),
                    msg: format!("read of key {key} returned {v}, not an integer or null"),
                });
            }
            (f, _) => {
                return Err(bad(format!(
                    "function {:?} does not belong to the register workload (read, write, cas)",
                    f.as_str()
                )));
            }
        }
        match o.outcome {
            Outcome::Ok => counts.ok += 1,
            Outcome::Fail => counts.fail += 1,
            Outcome::Info => counts.info += 1,
        }
        // Paired operations are at most half the history's ops, whose indices are 32-bit.
        let at = u32::try_from(at).expect("at most u32::MAX operations");
        by_key.entry(key).or_default().push(at);
    }
    Ok(by_key)
}

/// The value a write or cas would store.
fn written(o: &Operation) -> Option<i64> {
    match (&o.f, &o.value) {
        (F::Write, Value::Int(v)) => Some(*v),
        (F::Cas, Value::List(l)) => Some(l[1]),
        _ => None,
    }
}

fn build<'a>(ops: &[&'a Operation], model: &RegisterOptions) -> KeyModel<'a> {
    let mut values: Vec<Option<i64>> = vec![None];
    let mut ids: FxHashMap<i64, u32> = FxHashMap::default();
    let mut intern = |v: i64, values: &mut Vec<Option<i64>>| {
        *ids.entry(v).or_insert_with(|| {
            values.push(Some(v));
            (values.len() - 1) as u32
        })
    };
    let initial = model.initial.map_or(0, |v| intern(v, &mut values));
    let mut writers: FxHashMap<i64, &'a Operation> = FxHashMap::default();
    let mut failed_writers: FxHashMap<i64, &'a Operation> = FxHashMap::default();
    for &o in ops {
        if let Some(v) = written(o) {
            if o.outcome == Outcome::Fail {
                failed_writers.entry(v).or_insert(o);
            } else {
                intern(v, &mut values);
                writers.entry(v).or_insert(o);
            }
        }
    }
    let id_of = |v: i64| ids.get(&v).copied().unwrap_or(IMPOSSIBLE);
    // Nil is a reachable state only when the register starts nil (nothing writes nil).
    let nil = if model.initial.is_none() {
        0
    } else {
        IMPOSSIBLE
    };

    // Which indeterminate writes (and cas) matter. A value is *needed* if an ok op
    // observes it (an ok read returns it, an ok cas expects it), or if an indeterminate
    // cas expects it while writing a needed value. An indeterminate write of a value that
    // is not needed can be left out: take any valid order that includes such writes and
    // delete them all; every op that observes the register saw a needed value, written by
    // an op that is kept, and no deleted write can sit between that op and its writer
    // (the observer would have seen the deleted write's value instead), so the order
    // stays valid, and "never took effect" is allowed for them.
    let mut sources: FxHashMap<i64, u32> = FxHashMap::default();
    let mut must_by: FxHashMap<i64, usize> = FxHashMap::default();
    let mut info_cas: Vec<(i64, i64)> = Vec::new();
    for &o in ops {
        if o.outcome == Outcome::Fail {
            continue;
        }
        if let Some(v) = written(o) {
            *sources.entry(v).or_default() += 1;
        }
        let seen = match (&o.f, &o.value) {
            (F::Read, Value::Int(v)) => Some(*v),
            (F::Cas, Value::List(l)) if o.outcome == Outcome::Ok => Some(l[0]),
            (F::Cas, Value::List(l)) => {
                info_cas.push((l[0], l[1]));
                None
            }
            _ => None,
        };
        if let (Outcome::Ok, Some(v), Some(done)) = (o.outcome, seen, o.complete()) {
            let by = must_by.entry(v).or_insert(done);
            *by = (*by).min(done);
        }
    }
    let mut needed: FxHashSet<i64> = must_by.keys().copied().collect();
    let mut by_new: FxHashMap<i64, Vec<i64>> = FxHashMap::default();
    for &(e, n) in &info_cas {
        by_new.entry(n).or_default().push(e);
    }
    let mut work: Vec<i64> = needed.iter().copied().collect();
    while let Some(v) = work.pop() {
        for &e in by_new.get(&v).map_or(&[][..], Vec::as_slice) {
            if needed.insert(e) {
                work.push(e);
            }
        }
    }
    // An indeterminate write that is the only possible source of a value an ok op
    // observed (directly, or through a chain of indeterminate cas that are themselves the
    // only sources of their values) must have taken effect before that observer returned.
    // It then behaves exactly like an ok op returning at that point: every op invoked
    // later follows the observer, hence follows it. Giving it that return keeps it out of
    // the unbounded "may happen any time" tail that makes indeterminate ops expensive.
    let unique = |v: i64| sources.get(&v) == Some(&1) && model.initial != Some(v);
    for _round in 0..64 {
        let mut changed = false;
        for &(e, n) in &info_cas {
            if let Some(&by) = must_by.get(&n).filter(|_| unique(n)) {
                let d = must_by.entry(e).or_insert(usize::MAX);
                if by < *d {
                    *d = by;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    let (mut dropped, mut promoted) = (0u64, 0u64);

    let mut calls = Vec::with_capacity(ops.len());
    let mut kept: Vec<&'a Operation> = Vec::with_capacity(ops.len());
    let mut impossible = Vec::new();
    for &o in ops {
        if o.outcome == Outcome::Fail {
            continue;
        }
        let ok = o.outcome == Outcome::Ok;
        let step = match (&o.f, &o.value) {
            // An indeterminate read returned nothing, so it constrains nothing.
            (F::Read, _) if !ok => continue,
            (F::Read, Value::Null) if model.nil_read_is_wildcard => Step::ReadAny,
            (F::Read, Value::Null) => Step::Read(nil),
            (F::Read, Value::Int(v)) => Step::Read(id_of(*v)),
            (F::Write, Value::Int(v)) => Step::Write(id_of(*v)),
            (F::Cas, Value::List(l)) => Step::Cas(id_of(l[0]), id_of(l[1])),
            _ => unreachable!("validated in prepare"),
        };
        if !ok && written(o).is_some_and(|v| !needed.contains(&v)) {
            dropped += 1;
            continue;
        }
        let expects_impossible = matches!(step, Step::Read(IMPOSSIBLE) | Step::Cas(IMPOSSIBLE, _));
        if expects_impossible && !ok {
            // An indeterminate cas expecting an unreachable state can only have failed.
            continue;
        }
        if expects_impossible {
            impossible.push(kept.len());
        }
        let ret = if ok {
            o.complete()
        } else {
            written(o)
                .filter(|&v| unique(v))
                .and_then(|v| must_by.get(&v).copied())
                .filter(|&by| by > o.invoke())
        };
        promoted += u64::from(!ok && ret.is_some());
        calls.push(Call {
            invoke: o.invoke(),
            ret,
            deadline: !ok && ret.is_some(),
            step,
        });
        kept.push(o);
    }
    KeyModel {
        calls,
        ops: kept,
        values,
        initial,
        impossible,
        writers,
        failed_writers,
        dropped,
        promoted,
    }
}

/// `(index 14) at t=3.104s`, without the time when the history has none.
fn whence(h: &History, o: &Operation) -> String {
    let at = invoke_ns(h, o);
    if at == 0 && complete_ns(h, o) == 0 {
        format!("(index {})", op_index(h, o))
    } else {
        format!("(index {}) at t={}", op_index(h, o), secs(at))
    }
}

fn describe(h: &History, key: Key, o: &Operation) -> String {
    let at = whence(h, o);
    match (&o.f, &o.value) {
        (F::Read, v) => format!(
            "read of key {key} by process {} {at} returned {v}",
            o.process
        ),
        (F::Cas, Value::List(l)) => {
            format!(
                "cas of key {key} from {} to {} by process {} {at}",
                l[0], l[1], o.process
            )
        }
        (f, v) => format!("{f} of {v} to key {key} by process {} {at}", o.process),
    }
}

/// `write 0 by process 9 (index 8), then read 0 by process 19 (index 11)`.
fn short_ops(h: &History, ops: &[&Operation]) -> String {
    ops.iter()
        .map(|o| match (&o.f, &o.value) {
            (F::Cas, Value::List(l)) => format!(
                "cas {}→{} by process {} (index {})",
                l[0],
                l[1],
                o.process,
                op_index(h, o)
            ),
            (f, v) => format!(
                "{f} {v} by process {} (index {})",
                o.process,
                op_index(h, o)
            ),
        })
        .collect::<Vec<_>>()
        .join(", then ")
}

/// The last few ops that completed before the failing one (zones' linearizable prefix).
fn prefix_by_completion<'a>(m: &KeyModel<'a>, fail: &zones::Failure) -> Vec<&'a Operation> {
    let Some(end) = m.calls[fail.call].ret else {
        return Vec::new();
    };
    let mut before: Vec<(usize, usize)> = m
        .calls
        .iter()
        .enumerate()
        .filter_map(|(i, c)| match c.ret {
            Some(r) if !c.deadline && r < end => Some((r, i)),
            _ => None,
        })
        .collect();
    before.sort_unstable();
    before[before.len().saturating_sub(3)..]
        .iter()
        .map(|&(_, i)| m.ops[i])
        .collect()
}

fn counterexample_json(
    h: &History,
    key: Key,
    op: &Operation,
    linearized: usize,
    tail: &[&Operation],
    algorithm: &str,
) -> serde_json::Value {
    serde_json::json!({
        "key": key,
        "op": op_index(h, op),
        "process": op.process.to_string(),
        "f": op.f.as_str(),
        "value": op.value,
        "linearized_ops": linearized,
        "prefix_tail": tail.iter().map(|o| op_index(h, o)).collect::<Vec<_>>(),
        "algorithm": algorithm,
    })
}

/// A later write that had completed before `read` began, although it began after the
/// write of the value `read` returned had completed: the classic stale-read witness.
fn newer_write<'a>(m: &KeyModel<'a>, read: usize) -> Option<(usize, usize)> {
    let Step::Read(v) = m.calls[read].step else {
        return None;
    };
    let rc = &m.calls[read];
    // The write of v (or the start of history for the initial value).
    let w_done = if v == m.initial {
        Some(0)
    } else {
        m.calls
            .iter()
            .position(|c| c.step == Step::Write(v))
            .and_then(|w| {
                let c = &m.calls[w];
                c.ret.filter(|_| !c.deadline).map(|r| r + 1)
            })
    }?;
    let w = m
        .calls
        .iter()
        .enumerate()
        .find_map(|(i, c)| match (c.step, c.ret) {
            (Step::Write(u), Some(r))
                if u != v && !c.deadline && c.invoke >= w_done && r < rc.invoke =>
            {
                Some(i)
            }
            _ => None,
        })?;
    let wv = m.calls.iter().position(|c| c.step == Step::Write(v));
    Some((w, wv.unwrap_or(usize::MAX)))
}

fn explain_zones(h: &History, key: Key, m: &KeyModel<'_>, fail: &zones::Failure) -> Anomaly {
    let o = m.ops[fail.call];
    let mut ops = vec![op_index(h, o)];
    let show = |s: u32| m.values[s as usize].map_or_else(|| "nil".to_owned(), |v| v.to_string());
    let prefix = prefix_by_completion(m, fail);
    let prefix_text = if prefix.is_empty() {
        String::new()
    } else {
        format!(
            " (the longest linearizable prefix ends with {})",
            short_ops(h, &prefix)
        )
    };
    let why = if let Some((w, wv)) = newer_write(m, fail.call) {
        let later = m.ops[w];
        ops.push(op_index(h, later));
        let then = if wv == usize::MAX {
            "the register started with it".to_owned()
        } else {
            ops.push(op_index(h, m.ops[wv]));
            format!("its write {} had completed", whence(h, m.ops[wv]))
        };
        format!(
            "it is stale: {} had completed before the read began, and began after {then}, so the read should have seen {} or a later value",
            describe(h, key, later),
            later.value
        )
    } else {
        match &fail.conflict {
            zones::Conflict::NoWriter { .. } => {
                "no write of that value had begun before the read ended".to_owned()
            }
            zones::Conflict::ReadBeforeWrite { write, .. } => {
                ops.push(op_index(h, m.ops[*write]));
                format!(
                    "the read ended before {} began",
                    describe(h, key, m.ops[*write])
                )
            }
            zones::Conflict::Overlap { a, b } => format!(
                "values {} and {} each had to stay in the register over overlapping stretches of time (each was written, then read by an operation that began after some operation of its value had ended)",
                show(*a),
                show(*b)
            ),
            zones::Conflict::Inside { inner, outer } => format!(
                "value {} was written and read entirely while value {} had to stay in the register",
                show(*inner),
                show(*outer)
            ),
        }
    };
    let explanation = format!(
        "{} cannot be placed: the {} operations of key {key} that completed before it linearize{prefix_text}, but no order consistent with real time extends to it: {why}",
        describe(h, key, o),
        fail.completed_before
    );
    ops.dedup();
    Anomaly {
        cycle: Vec::new(),
        kind: AnomalyKind::NonLinearizable,
        key: Some(key),
        ops,
        explanation,
    }
}

fn report_impossible(
    h: &History,
    key: Key,
    m: &KeyModel<'_>,
    model: &RegisterOptions,
    sink: &mut Vec<(AnomalyKind, Anomaly)>,
) {
    for &i in &m.impossible {
        let o = m.ops[i];
        let wanted = match (&o.f, &o.value) {
            (F::Cas, Value::List(l)) => Some(l[0]),
            (_, Value::Int(v)) => Some(*v),
            _ => None,
        };
        let what = if o.f == F::Cas {
            "expected"
        } else {
            "returned"
        };
        let failed = wanted.and_then(|v| m.failed_writers.get(&v));
        let kind = if failed.is_some() {
            AnomalyKind::AbortedRead
        } else {
            AnomalyKind::PhantomRead
        };
        sink.push({
            let mut ops = vec![op_index(h, o)];
            let why = match (wanted, failed) {
                (Some(v), Some(w)) => {
                    ops.push(op_index(h, w));
                    format!(
                        "{what} {v}, whose only write (by process {}) failed at t={} (it certainly did not happen)",
                        w.process,
                        secs(complete_ns(h, w))
                    )
                }
                (Some(v), None) => format!("{what} {v}, which no write or cas of key {key} ever wrote"),
                (None, _) => format!(
                    "returned nil although key {key} starts at {} and nothing writes nil",
                    model.initial.map_or_else(|| "nil".to_owned(), |v| v.to_string())
                ),
            };
            (kind, Anomaly { kind, key: Some(key), ops, explanation: format!("{}: it {why}", describe(h, key, o)), cycle: Vec::new() })
        });
    }
}

fn explain_block(h: &History, key: Key, m: &KeyModel<'_>, b: &wgl::Block) -> Anomaly {
    let o = m.ops[b.call];
    let show = |s: u32| m.values[s as usize].map_or_else(|| "nil".to_owned(), |v| v.to_string());
    let mut states: Vec<String> = b.states.iter().map(|&s| show(s)).collect();
    if b.more_states {
        states.push("others".into());
    }
    let states = match states.len() {
        1 => states.remove(0),
        _ => {
            let last = states.pop().expect("two or more");
            format!("{} or {last}", states.join(", "))
        }
    };
    let mut ops = vec![op_index(h, o)];
    let tail: Vec<&Operation> = b.prefix_tail.iter().map(|&i| m.ops[i]).collect();
    let prefix_text = match tail.last() {
        Some(last) => {
            ops.push(op_index(h, last));
            let shown = &tail[tail.len().saturating_sub(3)..];
            format!(
                " (the longest linearizable prefix ends with {})",
                short_ops(h, shown)
            )
        }
        None => String::new(),
    };
    for &s in &b.states {
        if let Some(w) = m.values[s as usize].and_then(|v| m.writers.get(&v)) {
            ops.push(op_index(h, w));
        }
    }
    let call = &m.calls[b.call];
    let done_ns = call
        .ret
        .map_or_else(|| complete_ns(h, o), |p| h.ops[p].time_ns);
    let done = secs(done_ns);
    let done_at = if done_ns == 0 {
        String::new()
    } else {
        format!(" at t={done}")
    };
    let by_completion = match (call.deadline, done_ns) {
        (true, 0) => "before an operation that needs its effect completed".to_owned(),
        (true, _) => format!("by t={done}, when an operation that needs its effect had completed"),
        (false, 0) => "by its completion".to_owned(),
        (false, _) => format!("by its completion at t={done}"),
    };
    ops.dedup();
    let explanation = match o.f {
        F::Read => format!(
            "{}, but no order of key {key}'s operations consistent with real time allows it: {} operations linearize before it{prefix_text}, and every such order leaves the register at {states} when it completed{done_at}",
            describe(h, key, o),
            b.linearized
        ),
        _ => format!(
            "{} cannot be placed: {} operations linearize before it{prefix_text}, but no order consistent with real time extends to it {by_completion} (the register could hold {states} then)",
            describe(h, key, o),
            b.linearized
        ),
    };
    Anomaly {
        kind: AnomalyKind::NonLinearizable,
        key: Some(key),
        ops,
        explanation,
        cycle: Vec::new(),
    }
}
