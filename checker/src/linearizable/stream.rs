//! The `linearizable` checker op by op (`crate::stream`): each key's ops are held only
//! while the key is live, and the key is checked once it is **retired**.
//!
//! A key is retired when none of its operations is open and none of its ops was seen for
//! `Options::retire_idle_ops` positions (an explicit limit: Jepsen's independent-key
//! workloads and long runs move on to fresh keys, so the ops held are those of the live
//! keys and of the keys idle for less than the window, not the history's). A retired key
//! is checked at once (`check_key`, with the whole state budget), its ops are dropped and
//! only its record is kept (`KeyResult`: figures, its anomalies, how its search ended and
//! how many states it took); at the end every key still live is checked the same way.
//!
//! `finish` adds the records up in key order (`Fold`), exactly as `check_ops` does on the
//! whole history, so the result — validity, anomalies and their order, counterexample,
//! explanations, figures — is the same. Two things a record cannot settle, and then the
//! caller reads the file again, collecting only the keys named (`replay`, `push_replay`):
//!
//! - A retired key that **reappears**: its record covered a prefix of its ops. A
//!   non-linearizable prefix would stay so, but the figures and the explanation of the
//!   whole key may differ (an indeterminate write observed later is promoted, not
//!   dropped), and a linearizable prefix says nothing. So its record is void, its later
//!   ops are ignored, and the next pass collects all its ops: memory grows only by the
//!   keys that reappear, for that pass.
//! - The **state budget**: `check_ops` gives each key what the keys before it (in key
//!   order) left, while a key retires before keys smaller than it are seen. The search is
//!   deterministic, so a search that ended within `explored` states ends the same under
//!   any budget of at least that, and one of a key already proven invalid that runs out
//!   needs nothing more. Only a key whose search would run out under the budget left to
//!   it lacks a figure (how deep it got): `Fold` asks for that one key (`Replay`), which
//!   the next pass collects and checks under exactly that budget. It happens once (the
//!   budget is spent after it), when the budget runs out at all.
//!
//! An abort (signal, time limit) ends a search as on the whole path: the verdict is
//! unknown. Never `valid` from a partial check: a key's ops are all pushed before it is
//! retired or collected, and an interrupted replay pass leaves its keys unchecked.

use super::{Counts, Fold, FoldError, KeyResult, check_key, prepare};
use crate::fx::{FxHashMap, FxHashSet};
use crate::report::CheckResult;
use crate::{CheckError, Options};
use schism_history::{History, Key, Op, OpType, Operation, Paired, Process};
use std::collections::{BTreeMap, VecDeque};

/// One key's ops held, with the position in the history and the line of each.
#[derive(Debug, Default)]
struct Held {
    at: Vec<(usize, usize)>,
    ops: Vec<Op>,
}

impl Held {
    fn push(&mut self, pos: usize, line: usize, op: &Op) {
        self.at.push((pos, line));
        self.ops.push(op.clone());
    }
}

/// A live key: its ops so far, how many are open, where it was last seen.
#[derive(Debug, Default)]
struct Live {
    ops: Held,
    open: u32,
    last: usize,
}

/// A retired key's record, with what the fold may ask of it.
#[derive(Debug)]
struct Record {
    result: KeyResult,
    /// No value is written twice to this key (`register_writes_unique`, per key).
    unique: bool,
    /// The key holds a per-op anomaly (`perop::register`; only when it has a violation).
    per_op: bool,
    /// The line of the op a zones error names.
    line: Option<usize>,
    /// Its ops by function and outcome.
    counts: Counts,
}

/// A check that could not be made, and the line of the op it names.
pub(crate) type LinError = (CheckError, Option<usize>);

/// The streamed `linearizable` check (see the module's doc).
#[derive(Debug)]
pub(crate) struct LinStream {
    opts: Options,
    live: FxHashMap<Key, Live>,
    /// (position, key) each time a key is seen: the retirement queue.
    seen: VecDeque<(usize, Key)>,
    retired: FxHashSet<Key>,
    records: BTreeMap<Key, Record>,
    /// The first op `prepare` rejects, by invoke position.
    error: Option<(usize, CheckError, Option<usize>)>,
    /// Keys whose record is void (they reappeared) or that the fold asked for.
    wanted: FxHashSet<Key>,
    /// Keys collected whole by a replay pass, held until the end.
    held: BTreeMap<Key, Held>,
    /// During a replay pass: its pairing (process → the key of its open invoke), its
    /// position, and the keys it collects.
    replay: Option<(FxHashMap<Process, Key>, usize, FxHashSet<Key>)>,
    /// A replay pass was cut short: its keys are not checked.
    partial: bool,
    /// The outcome, once the last pass is in.
    done: Option<Result<CheckResult, LinError>>,
}

impl LinStream {
    pub(crate) fn new(opts: &Options) -> Self {
        LinStream {
            opts: opts.clone(),
            live: FxHashMap::default(),
            seen: VecDeque::new(),
            retired: FxHashSet::default(),
            records: BTreeMap::new(),
            error: None,
            wanted: FxHashSet::default(),
            held: BTreeMap::new(),
            replay: None,
            partial: false,
            done: None,
        }
    }

    /// The op at `pos`, read from `line`; `done`: the operation it completes.
    pub(crate) fn push(&mut self, op: &Op, pos: usize, line: usize, done: Option<&Paired>) {
        let key = match (op.kind, done) {
            (_, Some(d)) => d.op.key(),
            (OpType::Invoke, None) if op.process != Process::NEMESIS => match op.key() {
                Some(k) => Some(k),
                None => {
                    self.note_error(pos, no_key(op), Some(line));
                    None
                }
            },
            _ => None,
        };
        if let Some(key) = key {
            if self.retired.contains(&key) {
                // It reappears: its record covered a prefix only.
                self.retired.remove(&key);
                self.records.remove(&key);
                self.wanted.insert(key);
            }
            if !self.wanted.contains(&key) {
                let live = self.live.entry(key).or_default();
                live.ops.push(pos, line, op);
                if done.is_some() {
                    live.open -= 1;
                } else {
                    live.open += 1;
                }
                live.last = pos;
                self.seen.push_back((pos, key));
            }
        }
        let window = self.opts.retire_idle_ops;
        while let Some(&(at, key)) = self.seen.front() {
            if at.saturating_add(window) > pos {
                break;
            }
            self.seen.pop_front();
            let idle = self
                .live
                .get(&key)
                .is_some_and(|l| l.open == 0 && l.last == at);
            if idle {
                let live = self.live.remove(&key).expect("live");
                self.retire(key, live.ops);
            }
        }
    }

    fn note_error(&mut self, pos: usize, e: CheckError, line: Option<usize>) {
        if self.error.as_ref().is_none_or(|(p, _, _)| pos < *p) {
            self.error = Some((pos, e, line));
        }
    }

    /// Checks a retired key with the whole budget and keeps its record.
    fn retire(&mut self, key: Key, held: Held) {
        let Held { at, ops } = held;
        let h = History::new(ops);
        let Some((key_ops, counts)) = self.key_history(&h, &at) else {
            return;
        };
        let refs: Vec<&Operation> = key_ops.iter().collect();
        let result = check_key(&h, key, &refs, &self.opts, self.opts.max_states, false);
        let line = result.error_index().and_then(|i| line_of(&h, &at, i));
        let per_op = result.has_violation() && per_op_here(&h, &key_ops, &self.opts);
        self.records.insert(
            key,
            Record {
                result,
                unique: crate::register_writes_unique(&h),
                per_op,
                line,
                counts,
            },
        );
        self.retired.insert(key);
    }

    /// The key's own history and operations, its figures counted; or `None` when
    /// `prepare` rejects an op (noted).
    fn key_history(
        &mut self,
        h: &History,
        at: &[(usize, usize)],
    ) -> Option<(Vec<Operation>, Counts)> {
        let key_ops = h.operations().expect("paired whole");
        let mut counts = Counts::default();
        match prepare(h, &key_ops, &mut counts) {
            Ok(_) => Some((key_ops, counts)),
            Err(e) => {
                let (pos, e, line) = located(h, at, e);
                self.note_error(pos, e, line);
                None
            }
        }
    }

    /// Checks the keys still live; then the keys a next pass must collect (none: `finish`
    /// has all it needs). Call again after each pass.
    pub(crate) fn replay(&mut self) -> Vec<Key> {
        if self.done.is_some() {
            return Vec::new();
        }
        for (key, live) in std::mem::take(&mut self.live) {
            self.retire(key, live.ops);
        }
        self.seen.clear();
        self.replay = None;
        // The keys a pass collected: `prepare`'s errors rank with the others.
        let held: Vec<(usize, CheckError, Option<usize>)> = self
            .held
            .values()
            .filter_map(|ops| {
                let (h, key_ops) = mini(ops);
                prepare(&h, &key_ops, &mut Counts::default())
                    .err()
                    .map(|e| located(&h, &ops.at, e))
            })
            .collect();
        for (pos, e, line) in held {
            self.note_error(pos, e, line);
        }
        if self.error.is_some() {
            return Vec::new();
        }
        let mut wanted: Vec<Key> = self
            .wanted
            .iter()
            .copied()
            .filter(|k| !self.held.contains_key(k))
            .collect();
        wanted.sort_unstable();
        if wanted.is_empty() {
            match self.fold() {
                Err((FoldError::Replay(r), _)) => {
                    self.records.remove(&r.0);
                    self.wanted.insert(r.0);
                    wanted.push(r.0);
                }
                Err((FoldError::Check(e), line)) => self.done = Some(Err((e, line))),
                Ok(r) => self.done = Some(Ok(r)),
            }
        }
        for &k in &wanted {
            self.held.insert(k, Held::default());
        }
        self.replay = (!wanted.is_empty())
            .then(|| (FxHashMap::default(), 0, wanted.iter().copied().collect()));
        wanted
    }

    /// The next op of a replay pass (`replay` named its keys), read from `line`.
    pub(crate) fn push_replay(&mut self, op: &Op, line: usize) {
        let Some((open, pos, keys)) = &mut self.replay else {
            return;
        };
        let at = *pos;
        *pos += 1;
        let key = match op.kind {
            _ if op.process == Process::NEMESIS => None,
            OpType::Invoke => {
                let k = op.key();
                if let Some(k) = k {
                    open.insert(op.process, k);
                }
                k
            }
            _ => open.remove(&op.process),
        };
        if let Some(ops) = key
            .filter(|k| keys.contains(k))
            .and_then(|k| self.held.get_mut(&k))
        {
            ops.push(at, line, op);
        }
    }

    /// A replay pass was cut short (a signal): the keys it collected are left unchecked.
    pub(crate) fn replay_cut_short(&mut self) {
        self.partial = true;
    }

    /// The records and the held keys added up in key order; a failure names the line of
    /// the op of its error, if any.
    fn fold(&self) -> Result<CheckResult, (FoldError, Option<usize>)> {
        let mut keys: BTreeMap<Key, Option<&Held>> =
            self.records.keys().map(|&k| (k, None)).collect();
        keys.extend(self.held.iter().map(|(&k, ops)| (k, Some(ops))));
        let minis: FxHashMap<Key, (History, Vec<Operation>)> =
            self.held.iter().map(|(&k, ops)| (k, mini(ops))).collect();
        let mut counts = Counts::default();
        for r in self.records.values() {
            counts.add(&r.counts);
        }
        for (h, key_ops) in minis.values() {
            prepare(h, key_ops, &mut counts).map_err(|e| (FoldError::Check(e), None))?;
        }
        let unique = self.records.values().all(|r| r.unique)
            && minis
                .values()
                .all(|(h, _)| crate::register_writes_unique(h));
        let mut fold = Fold::new(&self.opts);
        let n = keys.len();
        for (key, held) in keys {
            match held {
                Some(ops) => {
                    let (h, key_ops) = &minis[&key];
                    let refs: Vec<&Operation> = key_ops.iter().collect();
                    let r = if self.partial {
                        KeyResult::unchecked(key)
                    } else {
                        check_key(
                            h,
                            key,
                            &refs,
                            &self.opts,
                            fold.budget,
                            fold.unknown.is_some(),
                        )
                    };
                    let line = r.error_index().and_then(|i| line_of(h, &ops.at, i));
                    let per_op = unique && r.has_violation() && per_op_here(h, key_ops, &self.opts);
                    fold.add(r, &mut |_| per_op).map_err(|e| (e, line))?;
                }
                None => {
                    let rec = &self.records[&key];
                    let per_op = unique && rec.per_op;
                    fold.add(rec.result.clone(), &mut |_| per_op)
                        .map_err(|e| (e, rec.line))?;
                }
            }
        }
        Ok(fold.finish(&counts, n))
    }

    /// The check's result (after `replay` returned no key).
    pub(crate) fn finish(mut self) -> Result<CheckResult, LinError> {
        if let Some((_, e, line)) = self.error.take() {
            return Err((e, line));
        }
        match self.done.take() {
            Some(done) => done,
            None => unreachable!("finish before replay named no key"),
        }
    }
}

/// A key's own history (its ops, in order) and its operations.
fn mini(held: &Held) -> (History, Vec<Operation>) {
    let h = History::new(held.ops.clone());
    let key_ops = h.operations().expect("paired whole");
    (h, key_ops)
}

/// `prepare`'s error, ranked by the position of the op it names, and that op's line.
fn located(
    h: &History,
    at: &[(usize, usize)],
    e: CheckError,
) -> (usize, CheckError, Option<usize>) {
    let found = match &e {
        CheckError::Op { index, .. } => h.ops.iter().position(|o| o.index() == *index),
        _ => None,
    };
    let found = found.map(|i| at[i]);
    (found.map_or(0, |a| a.0), e, found.map(|a| a.1))
}

/// `prepare`'s error for an op with no key.
fn no_key(op: &Op) -> CheckError {
    CheckError::Op {
        index: op.index(),
        msg: format!("{} has no key", op.f),
    }
}

fn line_of(h: &History, at: &[(usize, usize)], index: u64) -> Option<usize> {
    let i = h.ops.iter().position(|o| o.index() == index)?;
    Some(at[i].1)
}

/// True when the key (its own history) holds a per-op anomaly: `PerOpKeys` for one key.
fn per_op_here(h: &History, ops: &[Operation], opts: &Options) -> bool {
    crate::register_writes_unique(h)
        && !crate::perop::register(h, ops, opts, false)
            .findings
            .is_empty()
}
