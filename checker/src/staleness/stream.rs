//! The `staleness` checker op by op (`StalenessStream`, an `OpStream`): the figures
//! `staleness::check_ops` gives on the whole history, exactly, without holding it.
//!
//! Register keys: per key the acknowledged writes (invoke and completion positions,
//! completion time, 16 bytes each, in completion order) and per written value its last
//! writer by invoke (position and outcome); never the reads. A read's lag is measured
//! when it completes, by `perop::register`'s rule: the writes that real time forces
//! after the one whose value it returned are those acknowledged before the read began
//! whose completions lie between that write's and the read's invoke. One case is only
//! provisional: the whole path names a value's writer by its last write in invoke order,
//! and a write of the same value invoked later (or still open) makes the read 0 behind
//! (that writer completes after the read began); so a stale read of an integer keeps
//! its value and writer until such a write completes, which clears it.
//!
//! Append keys: per ok read a fixed record (its length, the stored list it is a prefix
//! of, invoke, time, index, process, whether it is a final read) and per append its
//! invoke, and for an ok one its completion and time. Lists are kept only where they
//! differ: a read that is a prefix of the current longest, or of one of the last few
//! lists read, keeps none; a read that extends such a list replaces it (the same shared list, no
//! copy); any other starts a list of its own. The valid case holds one list per key.
//! At the end the version order is the first longest read, a read is a prefix of it
//! when it is no longer than its list's common prefix with it, and the lags follow
//! `perop::append` step by step (the unseen appends' fates by suffix maxima instead of
//! scanning every later read).
//!
//! Fed a history whose workload is not known yet, it keeps both forms until the first
//! append (or write/cas) rules one out, and `finish` reads the one of the workload. Guarantees: the figures
//! and the errors of `check_ops` (the append workload's first `Analysis` error by op,
//! with its line), the same lags in the same order.

use super::{Lags, Stale};
use crate::fx::{FxHashMap, FxHashSet};
use crate::opstream::OpStream;
use crate::report::CheckResult;
use crate::{CheckError, Options, Workload};
use schism_history::{F, IntList, Key, Op, Outcome, Paired, Process, Value};
use std::collections::BTreeMap;

/// The staleness checker fed op by op (see the module's doc).
#[derive(Debug)]
pub(crate) struct StalenessStream {
    register: Option<RegisterLags>,
    append: Option<AppendReads>,
    /// The workload is inferred: both forms are kept until an op rules one out.
    infer: bool,
}

impl StalenessStream {
    /// A stream for the workload given (`None`: inferred at the end, both forms kept).
    pub(crate) fn new(opts: &Options, workload: Option<Workload>) -> Self {
        let want = |w: Workload| workload.is_none_or(|x| x == w);
        StalenessStream {
            register: want(Workload::Register).then(|| RegisterLags::new(opts)),
            append: want(Workload::Append).then(AppendReads::default),
            infer: workload.is_none(),
        }
    }

    /// The result for the history's workload; an error names its op's line.
    pub(crate) fn finish(
        self,
        workload: Workload,
        opts: &Options,
    ) -> Result<CheckResult, (CheckError, usize)> {
        let lags = match workload {
            Workload::Register => self.register.expect("register lags kept").finish(),
            Workload::Append => self.append.expect("append reads kept").finish()?,
            other => {
                // `fits` rules this out before any checker runs.
                let error = CheckError::Unsupported {
                    checker: "staleness",
                    workload: other,
                };
                return Err((error, 0));
            }
        };
        Ok(super::result(lags.figures(), opts))
    }
}

impl OpStream for StalenessStream {
    fn invoke(&mut self, pos: usize, op: &Op, line: usize) {
        if self.infer {
            // An append makes the workload append (or the history mixes workloads, an
            // error before any checker's); a write or cas makes it register.
            match op.f {
                F::Append => self.register = None,
                F::Write | F::Cas => self.append = None,
                _ => {}
            }
        }
        if let Some(a) = &mut self.append {
            a.invoke(pos, op, line);
        }
    }

    fn complete(&mut self, p: &Paired, line: usize) {
        if let Some(r) = &mut self.register {
            r.complete(p);
        }
        if let Some(a) = &mut self.append {
            a.complete(p, line);
        }
    }
}

/// A stale read's row, from its operation.
fn stale(p: &Paired, versions: u64, ns: u64) -> Stale {
    Stale {
        invoke: p.op.invoke(),
        versions,
        ns,
        index: p.complete_index.unwrap_or(p.invoke_index),
        key: p.op.key(),
        process: p.op.process,
        time_ns: p.invoke_ns,
    }
}

/// An acknowledged register write: invoke and completion positions, completion time.
#[derive(Debug, Clone, Copy)]
struct Acked {
    invoke: u32,
    done: u32,
    done_ns: u64,
}

/// A value's last writer by invoke so far: its invoke position, and its completion
/// position if it was acknowledged (else `NOT_ACKED`): 8 bytes, as there is one per
/// value written.
#[derive(Debug, Clone, Copy)]
struct Writer {
    invoke: u32,
    done: u32,
}

/// `Writer::done` of a write not acknowledged (failed or indeterminate).
const NOT_ACKED: u32 = u32::MAX;

/// `perop::register`'s lags, measured as reads complete.
#[derive(Debug)]
struct RegisterLags {
    initial: Option<i64>,
    nil_wildcard: bool,
    /// Per key its acknowledged writes, in completion order.
    acked: FxHashMap<Key, Vec<Acked>>,
    writers: FxHashMap<(Key, i64), Writer>,
    lags: Lags,
    /// Stale reads of an integer a later writer of it would clear: per (key, value) the
    /// read's index in `lags.stale` and the invoke of the writer it was measured
    /// against (`None`: the initial value).
    provisional: FxHashMap<(Key, i64), Vec<Provisional>>,
    /// Stale reads cleared (0 behind after all), by index in `lags.stale`.
    cleared: FxHashSet<usize>,
}

/// A stale read of an integer: its index in `Lags::stale`, and the invoke of the writer
/// it was measured against (`None`: the initial value).
#[derive(Debug, Clone, Copy)]
struct Provisional {
    stale: usize,
    by: Option<u32>,
}

/// The value a register op writes (`perop::register`'s `written`).
fn written(f: F, value: &Value) -> Option<i64> {
    match (f, value) {
        (F::Write, Value::Int(v)) => Some(*v),
        (F::Cas, Value::List(l)) if l.len() == 2 => Some(l[1]),
        _ => None,
    }
}

/// The version a register read returned.
enum Version {
    /// The initial value; `Some(v)`: read as the integer `v` (a later writer of `v`
    /// clears it).
    Initial(Option<i64>),
    /// The value `v`, written by an acknowledged write invoked at `invoke`, completed at
    /// `done`.
    Write { v: i64, invoke: u32, done: u32 },
}

impl RegisterLags {
    fn new(opts: &Options) -> Self {
        RegisterLags {
            initial: opts.register.initial,
            nil_wildcard: opts.register.nil_read_is_wildcard,
            acked: FxHashMap::default(),
            writers: FxHashMap::default(),
            lags: Lags::default(),
            provisional: FxHashMap::default(),
            cleared: FxHashSet::default(),
        }
    }

    fn complete(&mut self, p: &Paired) {
        let o = &p.op;
        let Some(key) = o.key() else { return };
        if let Some(v) = written(o.f, &o.value) {
            self.write(p, key, v);
        } else if o.f == F::Read && o.outcome == Outcome::Ok {
            self.read(p, key);
        }
    }

    fn write(&mut self, p: &Paired, key: Key, v: i64) {
        let o = &p.op;
        let invoke = o.invoke() as u32;
        let done = o.complete().filter(|_| o.outcome == Outcome::Ok);
        if let (Some(done), Some(done_ns)) = (done, p.complete_ns) {
            self.acked.entry(key).or_default().push(Acked {
                invoke,
                done: done as u32,
                done_ns,
            });
        }
        let w = self.writers.entry((key, v)).or_insert(Writer {
            invoke,
            done: NOT_ACKED,
        });
        if w.invoke > invoke {
            return; // a later writer of the value is known already
        }
        *w = Writer {
            invoke,
            done: done.map_or(NOT_ACKED, |d| d as u32),
        };
        // It completes after every read measured so far began: those it now names the
        // writer of are 0 behind.
        if let Some(reads) = self.provisional.get_mut(&(key, v)) {
            reads.retain(|r| {
                let clear = r.by.is_none_or(|b| b < invoke);
                if clear {
                    self.cleared.insert(r.stale);
                }
                !clear
            });
        }
    }

    /// The version an ok read returned (`None`: it measures 0 behind).
    fn version(&self, key: Key, value: &Value) -> Option<Version> {
        match value {
            Value::Null if self.nil_wildcard => None,
            Value::Null => Some(Version::Initial(None)),
            &Value::Int(v) => match self.writers.get(&(key, v)) {
                Some(w) => (w.done != NOT_ACKED).then_some(Version::Write {
                    v,
                    invoke: w.invoke,
                    done: w.done,
                }),
                None if self.initial == Some(v) => Some(Version::Initial(Some(v))),
                None => None,
            },
            _ => None,
        }
    }

    fn read(&mut self, p: &Paired, key: Key) {
        let (versions, first) = match (self.version(key, &p.op.value), self.acked.get(&key)) {
            (Some(version), Some(acked)) => behind(acked, &version, p.op.invoke()),
            _ => (0, None),
        };
        let Some(first) = first.filter(|_| versions > 0) else {
            self.lags.push(0, 0, || unreachable!("not behind"));
            return;
        };
        let ns = p.invoke_ns.saturating_sub(first.done_ns);
        let i = self.lags.stale.len();
        self.lags.push(versions, ns, || stale(p, versions, ns));
        let by = match self.version(key, &p.op.value) {
            Some(Version::Write { v, invoke, .. }) => Some((v, Some(invoke))),
            Some(Version::Initial(Some(v))) => Some((v, None)),
            _ => None,
        };
        if let Some((v, by)) = by {
            self.provisional
                .entry((key, v))
                .or_default()
                .push(Provisional { stale: i, by });
        }
    }

    fn finish(mut self) -> Lags {
        if !self.cleared.is_empty() {
            let stale = std::mem::take(&mut self.lags.stale);
            self.lags.stale = stale
                .into_iter()
                .enumerate()
                .filter(|(i, _)| !self.cleared.contains(i))
                .map(|(_, s)| s)
                .collect();
        }
        self.lags
    }
}

/// How many acknowledged writes of `acked` (completion order) a read begun at `invoke`
/// missed, having returned `version`, and the first of them acknowledged.
fn behind(acked: &[Acked], version: &Version, invoke: usize) -> (u64, Option<Acked>) {
    // Acknowledged before the read began.
    let end = acked.partition_point(|a| (a.done as usize) < invoke);
    match *version {
        Version::Initial(_) => (end as u64, acked.first().copied().filter(|_| end > 0)),
        Version::Write { done, .. } => {
            // Those invoked after the version read was acknowledged complete after it.
            // (None when the version read was acknowledged after the read began.)
            let start = acked.partition_point(|a| a.done <= done).min(end);
            let mut missed = acked[start..end].iter().filter(|a| a.invoke > done);
            let first = missed.next().copied();
            (first.map_or(0, |_| 1 + missed.count() as u64), first)
        }
    }
}

/// No list: an empty read (or nil).
const NO_LIST: u32 = u32::MAX;

/// How many recent lists a read is compared with, besides the longest.
const RECENT: usize = 4;

/// One ok append read, without its list.
#[derive(Debug, Clone, Copy)]
struct Read {
    /// The list (in `AppendKey::lists`) it is a prefix of, or `NO_LIST` when empty.
    list: u32,
    len: u32,
    invoke: u32,
    process: Process,
    invoke_ns: u64,
    index: u64,
    final_read: bool,
}

/// One append: invoke position, index and line (to name it in an error), and
/// completion position and time when ok.
#[derive(Debug, Clone, Copy)]
struct Append {
    invoke: u32,
    index: u64,
    line: usize,
    acked: Option<(u32, u64)>,
}

/// One append key's reads and appends (see the module's doc).
#[derive(Debug)]
struct AppendKey {
    lists: Vec<IntList>,
    /// The first longest read so far: (list, length, invoke).
    longest: Option<(u32, u32, u32)>,
    /// The lists the last reads were prefixes of, the latest first (`NO_LIST`: none):
    /// reads alternating between a few diverging replicas share their lists.
    recent: [u32; RECENT],
    reads: Vec<Read>,
    /// Every append by value (the earliest by invoke, for a value appended twice).
    appends: FxHashMap<i64, Append>,
}

/// An `Analysis` error: the invoke position of the op it is found at, the error, its line.
type Found = (usize, CheckError, usize);

/// The append workload's reads and appends, per key, and `Analysis::new`'s first error.
#[derive(Debug, Default)]
struct AppendReads {
    keys: BTreeMap<Key, AppendKey>,
    /// Open reads marked final, and open appends' invoke lines, by invoke position.
    finals: FxHashSet<usize>,
    lines: FxHashMap<usize, usize>,
    error: Option<Found>,
}

impl AppendReads {
    fn fail(&mut self, pos: usize, error: CheckError, line: usize) {
        if !self.failed_before(pos) {
            self.error = Some((pos, error, line));
        }
    }

    /// An error is found at an op invoked before `pos` (no need to word another).
    fn failed_before(&self, pos: usize) -> bool {
        self.error.as_ref().is_some_and(|(p, _, _)| *p < pos)
    }

    fn invoke(&mut self, pos: usize, op: &Op, line: usize) {
        if self.failed_before(pos) {
            return;
        }
        let index = op.index();
        let bad = |msg: String| CheckError::Op { index, msg };
        if !matches!(op.f, F::Append | F::Read) {
            let msg = format!(
                "function {:?} does not belong to the append workload (read, append)",
                op.f.as_str()
            );
            return self.fail(pos, bad(msg), line);
        }
        if op.key().is_none() {
            return self.fail(pos, bad(format!("{} has no key", op.f)), line);
        }
        if op.f == F::Append {
            self.lines.insert(pos, line);
        }
        let final_read = op
            .meta()
            .and_then(|m| m.get("final"))
            .and_then(serde_json::Value::as_bool)
            == Some(true);
        if op.f == F::Read && final_read {
            self.finals.insert(pos);
        }
    }

    fn complete(&mut self, p: &Paired, line: usize) {
        let o = &p.op;
        let pos = o.invoke();
        let final_read = self.finals.remove(&pos);
        let invoke_line = self.lines.remove(&pos).unwrap_or(line);
        let Some(key) = o.key().filter(|_| matches!(o.f, F::Append | F::Read)) else {
            return; // an error at its invoke
        };
        match o.f {
            F::Append => self.append(p, key, invoke_line),
            _ if o.outcome != Outcome::Ok => {}
            _ => {
                let list = match &o.value {
                    Value::List(l) => Some(l),
                    Value::Null => None,
                    _ if self.failed_before(pos) => return,
                    other => {
                        let msg =
                            format!("read of key {key} returned {other}, not a list of integers");
                        let index = p.complete_index.unwrap_or(p.invoke_index);
                        return self.fail(pos, CheckError::Op { index, msg }, line);
                    }
                };
                self.keys.entry(key).or_default().read(p, list, final_read);
            }
        }
    }

    fn append(&mut self, p: &Paired, key: Key, line: usize) {
        let o = &p.op;
        let pos = o.invoke();
        let Value::Int(v) = o.value else {
            let msg = format!("append value {} is not an integer", o.value);
            let error = CheckError::Op {
                index: p.invoke_index,
                msg,
            };
            return self.fail(pos, error, line);
        };
        let acked = o
            .complete()
            .zip(p.complete_ns)
            .filter(|_| o.outcome == Outcome::Ok)
            .map(|(c, ns)| (c as u32, ns));
        let me = Append {
            invoke: pos as u32,
            index: p.invoke_index,
            line,
            acked,
        };
        let k = self.keys.entry(key).or_default();
        let Some(other) = k.appends.get(&v).copied() else {
            k.appends.insert(v, me);
            return;
        };
        // A value appended twice: `Analysis` fails at the second append by invoke,
        // naming the first. The earliest stays (the first error is at the second
        // earliest, naming the earliest, whichever order they complete in).
        let (first, second) = if me.invoke < other.invoke {
            k.appends.insert(v, me);
            (me, other)
        } else {
            (other, me)
        };
        let msg = format!(
            "append of {v} to key {key} repeats the append at op index {}; append values must be unique per key",
            first.index
        );
        let error = CheckError::Op {
            index: second.index,
            msg,
        };
        self.fail(second.invoke as usize, error, second.line);
    }

    /// The lags of every key, or the first error.
    fn finish(self) -> Result<Lags, (CheckError, usize)> {
        if let Some((_, e, line)) = self.error {
            return Err((e, line));
        }
        let mut lags = Lags::default();
        for (key, k) in self.keys {
            k.lags(key, &mut lags);
        }
        Ok(lags)
    }
}

impl Default for AppendKey {
    fn default() -> Self {
        AppendKey {
            lists: Vec::new(),
            longest: None,
            recent: [NO_LIST; RECENT],
            reads: Vec::new(),
            appends: FxHashMap::default(),
        }
    }
}

impl AppendKey {
    fn read(&mut self, p: &Paired, list: Option<&IntList>, final_read: bool) {
        let len = list.map_or(0, |l| l.len()) as u32;
        let id = match list.filter(|l| !l.is_empty()) {
            None => NO_LIST,
            Some(l) => self.place(l),
        };
        let invoke = p.op.invoke() as u32;
        // The first longest by invoke, whatever order the reads complete in.
        if self
            .longest
            .is_none_or(|(_, n, i)| len > n || (len == n && invoke < i))
        {
            self.longest = Some((id, len, invoke));
        }
        self.reads.push(Read {
            list: id,
            len,
            invoke,
            process: p.op.process,
            invoke_ns: p.invoke_ns,
            index: p.complete_index.unwrap_or(p.invoke_index),
            final_read,
        });
    }

    /// The list a read of `l` is a prefix of: the longest read's or a recent read's
    /// (extended to `l` when `l` extends it), else a new one.
    fn place(&mut self, l: &IntList) -> u32 {
        let longest = self.longest.map_or(NO_LIST, |x| x.0);
        let recent = self.recent;
        for id in std::iter::once(longest).chain(recent) {
            let Some(have) = self.lists.get(id as usize) else {
                continue;
            };
            let n = have.len().min(l.len());
            if have[..n] != l[..n] {
                continue;
            }
            if have.len() < l.len() {
                // Every read of it so far is a prefix of `l` too.
                self.lists[id as usize] = l.clone();
            }
            self.touch(id);
            return id;
        }
        self.lists.push(l.clone());
        let id = (self.lists.len() - 1) as u32;
        self.touch(id);
        id
    }

    /// `id` becomes the most recent list.
    fn touch(&mut self, id: u32) {
        let at = self
            .recent
            .iter()
            .position(|&r| r == id)
            .unwrap_or(RECENT - 1);
        self.recent.copy_within(0..at, 1);
        self.recent[0] = id;
    }

    /// The version order (the first longest read) and, per read in invoke order,
    /// whether it is a prefix of it.
    fn order(&self) -> (&[i64], Vec<bool>) {
        let order: &[i64] = match self.longest {
            Some((id, len, _)) if id != NO_LIST => &self.lists[id as usize][..len as usize],
            _ => &[],
        };
        let common: Vec<usize> = self
            .lists
            .iter()
            .map(|l| l.iter().zip(order).take_while(|(a, b)| a == b).count())
            .collect();
        let prefix = self
            .reads
            .iter()
            .map(|r| r.list == NO_LIST || r.len as usize <= common[r.list as usize])
            .collect();
        (order, prefix)
    }

    /// This key's lags into `out` (`perop::append`'s, step by step).
    fn lags(mut self, key: Key, out: &mut Lags) {
        self.reads.sort_unstable_by_key(|r| r.invoke);
        let (order, prefix) = self.order();
        let mut pos: FxHashMap<i64, usize> =
            FxHashMap::with_capacity_and_hasher(order.len(), Default::default());
        pos.extend(order.iter().enumerate().map(|(i, &v)| (v, i)));
        let mut lag = self.prefix_lags(order, &prefix, &pos);
        self.unseen_lags(&prefix, &pos, &mut lag);
        for (r, (&p, &(versions, ns))) in self.reads.iter().zip(prefix.iter().zip(&lag)) {
            if p || versions > 0 {
                out.push(versions, ns, || Stale {
                    invoke: r.invoke as usize,
                    versions,
                    ns,
                    index: r.index,
                    key: Some(key),
                    process: r.process,
                    time_ns: r.invoke_ns,
                });
            }
        }
    }

    /// Per read: (versions, ns) behind the freshest append in the order acknowledged
    /// before it began (prefix reads only; `(0, 0)` else).
    fn prefix_lags(
        &self,
        order: &[i64],
        prefix: &[bool],
        pos: &FxHashMap<i64, usize>,
    ) -> Vec<(u64, u64)> {
        // Ok appends in the order, by completion; suf[q]: the earliest-acknowledged of
        // those at positions ≥ q (completion position and time).
        let mut acked: Vec<(u32, usize, u64)> = self
            .appends
            .iter()
            .filter_map(|(v, a)| {
                let (done, ns) = a.acked?;
                Some((done, *pos.get(v)?, ns))
            })
            .collect();
        acked.sort_unstable_by_key(|x| (x.0, x.1));
        let mut suf: Vec<Option<(u32, u64)>> = vec![None; order.len() + 1];
        for &(c, q, ns) in &acked {
            if suf[q].is_none_or(|(c0, _)| c < c0) {
                suf[q] = Some((c, ns));
            }
        }
        for q in (0..order.len()).rev() {
            if let Some((c, _)) = suf[q + 1]
                && suf[q].is_none_or(|(c0, _)| c < c0)
            {
                suf[q] = suf[q + 1];
            }
        }
        let mut lag = vec![(0, 0); self.reads.len()];
        let (mut i, mut freshest) = (0usize, None::<usize>);
        for (ri, r) in self.reads.iter().enumerate() {
            if !prefix[ri] {
                continue;
            }
            while i < acked.len() && acked[i].0 < r.invoke {
                freshest = Some(freshest.map_or(acked[i].1, |f| f.max(acked[i].1)));
                i += 1;
            }
            let versions = freshest.map_or(0, |f| (f + 1).saturating_sub(r.len as usize)) as u64;
            if versions > 0
                && let Some((_, ns)) = suf[r.len as usize]
            {
                lag[ri] = (versions, r.invoke_ns.saturating_sub(ns));
            }
        }
        lag
    }

    /// The lag of the first read after an acknowledged append no read saw, when that
    /// append is not provably lost (`append_keys::unseen`'s `Lagging`): 1 version.
    fn unseen_lags(&self, prefix: &[bool], pos: &FxHashMap<i64, usize>, lag: &mut [(u64, u64)]) {
        let mut ok: Vec<(u32, i64, u32, u64)> = self
            .appends
            .iter()
            .filter(|(v, _)| !pos.contains_key(v))
            .filter_map(|(&v, a)| a.acked.map(|(done, ns)| (a.invoke, v, done, ns)))
            .collect();
        if ok.is_empty() {
            return;
        }
        ok.sort_unstable_by_key(|a| a.0);
        // The values divergent reads hold: per list, the longest divergent read of it.
        let mut divergent_len = vec![0usize; self.lists.len()];
        for (r, _) in self.reads.iter().zip(prefix).filter(|(_, p)| !**p) {
            let n = &mut divergent_len[r.list as usize];
            *n = (*n).max(r.len as usize);
        }
        let divergent: FxHashSet<i64> = self
            .lists
            .iter()
            .zip(&divergent_len)
            .flat_map(|(l, &n)| l[..n].iter().copied())
            .collect();
        let (latest, final_after) = self.suffixes();
        for (_, v, done, ns) in ok {
            if divergent.contains(&v) {
                continue;
            }
            let first = self.reads.partition_point(|r| r.invoke < done);
            if first == self.reads.len()
                || latest[first].is_some_and(|i| i > done)
                || final_after[first]
            {
                continue; // unread, or lost
            }
            // Unless it missed a version already (behind in the order, or an earlier
            // unseen append).
            if lag[first].0 == 0 {
                lag[first] = (1, self.reads[first].invoke_ns.saturating_sub(ns));
            }
        }
    }

    /// Per read (invoke order), over it and every later read: the latest invoke of an
    /// append of a value they hold, and whether one is a final read.
    fn suffixes(&self) -> (Vec<Option<u32>>, Vec<bool>) {
        // Per list, per length: the latest invoke of an append among its first values.
        let latest_of: Vec<Vec<Option<u32>>> = self
            .lists
            .iter()
            .map(|l| {
                let mut m = None::<u32>;
                l.iter()
                    .map(|w| {
                        if let Some(a) = self.appends.get(w) {
                            m = Some(m.map_or(a.invoke, |x| x.max(a.invoke)));
                        }
                        m
                    })
                    .collect()
            })
            .collect();
        let n = self.reads.len();
        let mut latest = vec![None; n + 1];
        let mut final_after = vec![false; n + 1];
        for (ri, r) in self.reads.iter().enumerate().rev() {
            let mine = match r.list {
                NO_LIST => None,
                id => latest_of[id as usize][r.len as usize - 1],
            };
            latest[ri] = mine.max(latest[ri + 1]);
            final_after[ri] = r.final_read || final_after[ri + 1];
        }
        (latest, final_after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(v: Vec<i64>) -> IntList {
        let Value::List(l) = Value::list(v) else {
            unreachable!("a list")
        };
        l
    }

    /// Reads alternating between three diverging replicas, each a few versions behind
    /// now and then, keep three lists (each extended in place), not one per read.
    #[test]
    fn diverging_replicas_share_their_lists() {
        let mut k = AppendKey::default();
        for n in 1..60i64 {
            for branch in 0..3i64 {
                let behind = (n + branch) % 3;
                let l: Vec<i64> = (1..=n - behind).map(|x| x * 10 + branch).collect();
                if !l.is_empty() {
                    k.place(&list(l));
                }
            }
        }
        assert_eq!(k.lists.len(), 3);
    }
}
