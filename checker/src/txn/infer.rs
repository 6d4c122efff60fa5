//! From transactions to dependencies: version orders, the ww/wr/rw/process/real-time
//! edges between transactions, and the anomalies that need no cycle.
//!
//! List-append: a key's version order is its longest read; every other read must be a
//! prefix of it (else `incompatible-order`). A read of `[1 2]` depends (wr) on the
//! appender of 2 and precedes (rw) the appender of the element after 2; consecutive
//! elements give ww. Rw-register: a read of `v` depends on `v`'s writer; a transaction
//! that read `v` and then wrote `w` puts `w` right after `v` (ww from `v`'s writer, rw
//! from every other reader of `v`), and a read of nil precedes every writer of the key.
//! Process order links consecutive transactions of a process; real time is
//! `realtime`'s (a chain of completion points). Only a transaction's
//! external reads (before its own writes of the key, or its own appends stripped) make
//! edges; the others are checked for internal consistency. Failed transactions never
//! happened: they get no edges, and reading their writes is G1a.
//!
//! Guarantees: every edge is justified by one sentence (`explain_edge`); every value must
//! be written at most once per key (a history that repeats one is a `CheckError` naming
//! the op); time and memory are linear in micro-ops (plus readers × writers of a key whose
//! read returned nil, for registers).

use super::TxnWorkload;
use crate::fx::{FxHashMap, FxHashSet};
use crate::{Anomaly, AnomalyKind, CheckError};
use schism_history::txn::{MopF, MopValue, MopView, Mops, TxnHead, Txns};
use schism_history::{Key, Outcome};

pub(crate) const WW: u8 = 1;
pub(crate) const WR: u8 = 2;
pub(crate) const RW: u8 = 4;
pub(crate) const PROC: u8 = 8;
pub(crate) const RT: u8 = 16;

/// Who wrote a value of a key.
#[derive(Debug, Clone, Copy)]
struct Writer {
    txn: u32,
    /// The transaction's last write of the key (reading an earlier one is G1b).
    last: bool,
}

/// What `infer` learned: edges, the non-cyclic anomalies, and what explains edges.
pub(crate) struct Inference<'a> {
    pub(crate) txns: &'a Txns,
    pub(crate) workload: TxnWorkload,
    pub(crate) edges: Vec<(u32, u32, u8)>,
    pub(crate) found: Vec<Anomaly>,
    writers: FxHashMap<(Key, i64), Writer>,
    /// List-append: each key's version order.
    order: FxHashMap<Key, Vec<i64>>,
}

/// A transaction's name in explanations.
pub(crate) fn name(t: &TxnHead) -> String {
    format!("T{}", t.index)
}

fn committed(t: &TxnHead) -> bool {
    t.outcome != Outcome::Fail
}

/// One pass over a transaction: its external reads and its internal anomalies.
struct Scan {
    /// External reads: (micro-op position, own appends to strip from its end).
    ext: Vec<(usize, usize)>,
    problems: Vec<(AnomalyKind, Key, String)>,
}

fn scan(txns: &Txns, t: &TxnHead, w: TxnWorkload) -> Scan {
    let mut out = Scan {
        ext: Vec::new(),
        problems: Vec::new(),
    };
    // Per key: the state the transaction knows (from a read or its own writes), and for
    // lists the appends made since that read.
    let mut known: FxHashMap<Key, Option<MopView<'_>>> = FxHashMap::default();
    let mut own: FxHashMap<Key, Vec<i64>> = FxHashMap::default();
    let mops = txns.mops(t);
    for (i, m) in mops.iter().enumerate() {
        match m.f {
            MopF::Append => own.entry(m.key).or_default().push(m.written().unwrap_or(0)),
            MopF::Write => {
                known.insert(m.key, Some(m.value));
            }
            MopF::Read => {
                if let Some(p) = read_problem(mops, i, w, &mut known, &mut own, &mut out.ext) {
                    out.problems
                        .push((p.0, m.key, format!("{} {}", name(t), p.1)));
                }
            }
        }
    }
    out
}

/// Checks one read against what the transaction already knows; records it as external
/// when it is the transaction's first look at the key.
fn read_problem<'a>(
    mops: Mops<'a>,
    i: usize,
    w: TxnWorkload,
    known: &mut FxHashMap<Key, Option<MopView<'a>>>,
    own: &mut FxHashMap<Key, Vec<i64>>,
    ext: &mut Vec<(usize, usize)>,
) -> Option<(AnomalyKind, String)> {
    let m = mops.get(i);
    let later = mops
        .from(i + 1)
        .iter()
        .filter(|x| x.key == m.key && x.f != MopF::Read)
        .filter_map(|x| x.written());
    let one;
    let (list, value): (&[i64], MopView<'a>) = match (m.value, w) {
        (MopView::List(xs), TxnWorkload::ListAppend) => (xs, m.value),
        (MopView::Nil, TxnWorkload::ListAppend) => (&[], MopView::List(&[])),
        (MopView::Int(v), TxnWorkload::RwRegister) => {
            one = [v];
            (&one, m.value)
        }
        (MopView::Nil, TxnWorkload::RwRegister) => (&[], MopView::Nil),
        _ => {
            return Some((
                AnomalyKind::Internal,
                format!(
                    "read key {} = {}, which is not a {} value",
                    m.key,
                    m.value,
                    w.as_str()
                ),
            ));
        }
    };
    if let Some(&v) = list.iter().find(|&&v| later.clone().any(|x| x == v)) {
        return Some((
            AnomalyKind::FutureRead,
            format!(
                "read key {} = {} which holds {v}, a value it writes only later",
                m.key, m.value
            ),
        ));
    }
    if w == TxnWorkload::ListAppend && has_duplicate(list) {
        return Some((
            AnomalyKind::DuplicateElement,
            format!(
                "read key {} = {}, which holds an element twice",
                m.key, m.value
            ),
        ));
    }
    let mine = own.remove(&m.key).unwrap_or_default();
    let prior = known.insert(m.key, Some(value)).flatten();
    let expected = match (prior, w) {
        (Some(MopView::List(p)), TxnWorkload::ListAppend) => {
            Some(MopValue::List([p, &mine].concat()))
        }
        (Some(v), _) => Some(v.to_value()),
        (None, _) => None,
    };
    match expected {
        Some(e) if e.view() != value => Some((
            AnomalyKind::Internal,
            format!(
                "read key {} = {} but its own earlier reads and writes imply {e}",
                m.key, m.value
            ),
        )),
        Some(_) => None,
        None if !list.ends_with(&mine) => Some((
            AnomalyKind::Internal,
            format!(
                "read key {} = {}, which lacks its own appends {}",
                m.key,
                m.value,
                MopValue::List(mine)
            ),
        )),
        None => {
            ext.push((i, mine.len()));
            None
        }
    }
}

/// A transaction's list reads without duplicates: (micro-op position, key, list).
fn list_reads<'a>(txns: &'a Txns, t: &TxnHead) -> Vec<(usize, Key, &'a [i64])> {
    txns.mops(t)
        .iter()
        .enumerate()
        .filter(|(_, m)| m.f == MopF::Read)
        .filter_map(|(i, m)| match m.value {
            MopView::List(xs) if !has_duplicate(xs) => Some((i, m.key, xs)),
            _ => None,
        })
        .collect()
}

fn has_duplicate(xs: &[i64]) -> bool {
    let mut seen = FxHashSet::default();
    xs.iter().any(|x| !seen.insert(*x))
}

/// Records every write; a value written twice to one key is an error naming the op.
fn writers(txns: &Txns) -> Result<FxHashMap<(Key, i64), Writer>, CheckError> {
    let mut out: FxHashMap<(Key, i64), Writer> = FxHashMap::default();
    for (id, t) in txns.iter().enumerate() {
        let mops = txns.mops(t);
        for (i, m) in mops.iter().enumerate() {
            let Some(v) = m.written() else { continue };
            let last = !mops
                .from(i + 1)
                .iter()
                .any(|x| x.key == m.key && x.f != MopF::Read);
            let w = Writer {
                txn: id as u32,
                last,
            };
            if let Some(prev) = out.insert((m.key, v), w) {
                return Err(CheckError::History(txns.op_error(
                    t,
                    format!(
                        "{m} writes {v} to key {}, which T{} also writes: transactional checking needs unique values per key",
                        m.key, txns[prev.txn as usize].index
                    ),
                )));
            }
        }
    }
    Ok(out)
}

/// Infers every edge and non-cyclic anomaly of a history's transactions.
pub(crate) fn infer(txns: &Txns, workload: TxnWorkload) -> Result<Inference<'_>, CheckError> {
    let mut inf = Inference {
        txns,
        workload,
        edges: Vec::with_capacity(txns.len() * 4),
        found: Vec::new(),
        writers: writers(txns)?,
        order: FxHashMap::default(),
    };
    // External reads as (transaction, micro-op, appends to strip): no copies of lists.
    let mut ext: Vec<(u32, u32, u32)> = Vec::new();
    for (id, t) in txns.iter().enumerate() {
        if t.outcome != Outcome::Ok {
            continue;
        }
        let s = scan(txns, t, workload);
        for (kind, key, why) in s.problems {
            inf.found
                .push(Anomaly::new(kind, Some(key), vec![t.index], why));
        }
        ext.extend(
            s.ext
                .into_iter()
                .map(|(i, strip)| (id as u32, i as u32, strip as u32)),
        );
    }
    match workload {
        TxnWorkload::ListAppend => inf.list_append(&ext),
        TxnWorkload::RwRegister => inf.rw_register(&ext),
    }
    inf.process_edges();
    Ok(inf)
}

impl<'a> Inference<'a> {
    fn push(&mut self, kind: AnomalyKind, key: Key, ops: Vec<u64>, why: String) {
        self.found.push(Anomaly::new(kind, Some(key), ops, why));
    }

    /// The committed (not failed) writer of a value.
    fn writer(&self, key: Key, v: i64) -> Option<Writer> {
        self.writers
            .get(&(key, v))
            .copied()
            .filter(|w| committed(&self.txns[w.txn as usize]))
    }

    /// Checks a read's elements: never written (phantom) or written by a failed
    /// transaction (G1a). True when the read names only committed writes.
    fn check_elements(&mut self, reader: u32, key: Key, xs: &[i64], shown: MopView<'_>) -> bool {
        let txns = self.txns;
        let r = &txns[reader as usize];
        for &x in xs {
            match self.writers.get(&(key, x)).copied() {
                None => {
                    let why = format!(
                        "{} read key {key} = {shown}, but no transaction wrote {x}",
                        name(r)
                    );
                    self.push(AnomalyKind::PhantomRead, key, vec![r.index], why);
                    return false;
                }
                Some(w) if !committed(&txns[w.txn as usize]) => {
                    let wt = &txns[w.txn as usize];
                    let holds = match shown {
                        MopView::List(_) => format!(", which holds {x},"),
                        _ => String::new(),
                    };
                    let why = format!(
                        "{} read key {key} = {shown}{holds} written by {} which failed",
                        name(r),
                        name(wt)
                    );
                    self.push(AnomalyKind::G1a, key, vec![r.index, wt.index], why);
                    return false;
                }
                Some(_) => {}
            }
        }
        true
    }

    fn list_append(&mut self, ext: &[(u32, u32, u32)]) {
        self.infer_orders();
        self.dirty_updates();
        let mut keys: Vec<Key> = self.order.keys().copied().collect();
        keys.sort_unstable();
        for k in keys {
            let order = std::mem::take(self.order.get_mut(&k).expect("listed"));
            for pair in order.windows(2) {
                if let (Some(a), Some(b)) = (self.writer(k, pair[0]), self.writer(k, pair[1]))
                    && a.txn != b.txn
                {
                    self.edges.push((a.txn, b.txn, WW));
                }
            }
            self.order.insert(k, order);
        }
        // Per key, the first position of its order holding a phantom or failed append: a
        // read that is a prefix of the order is clean when shorter (no lookup per element).
        let mut first_bad: FxHashMap<Key, usize> = FxHashMap::default();
        for (&k, order) in &self.order {
            let bad = order.iter().position(|&x| {
                self.writers
                    .get(&(k, x))
                    .is_none_or(|w| !committed(&self.txns[w.txn as usize]))
            });
            first_bad.insert(k, bad.unwrap_or(usize::MAX));
        }
        let mut lost: FxHashMap<(Key, Option<i64>), Vec<u32>> = FxHashMap::default();
        let txns = self.txns;
        for &(r, i, strip) in ext {
            let m = txns.mops(&txns[r as usize]).get(i as usize);
            let (k, v) = (m.key, m.value);
            let xs: &[i64] = match v {
                MopView::List(l) => &l[..l.len() - strip as usize],
                _ => &[],
            };
            let order = self.order.get(&k).map(Vec::as_slice).unwrap_or(&[]);
            let clean = order.len() >= xs.len()
                && order[..xs.len()] == *xs
                && first_bad.get(&k).is_none_or(|&p| p >= xs.len());
            if !clean && !self.check_elements(r, k, xs, v) {
                continue;
            }
            let appends = txns
                .mops(&txns[r as usize])
                .iter()
                .any(|m| m.key == k && m.f == MopF::Append);
            if appends {
                lost.entry((k, xs.last().copied())).or_default().push(r);
            }
            if let Some(&last) = xs.last() {
                self.wr_edge(r, k, last, v);
            }
            let order = self.order.get(&k).map(Vec::as_slice).unwrap_or(&[]);
            if order.len() > xs.len() && order[..xs.len()] == xs[..] {
                let next = order[xs.len()];
                if let Some(b) = self.writer(k, next)
                    && b.txn != r
                {
                    self.edges.push((r, b.txn, RW));
                }
            }
        }
        self.lost_updates(lost);
    }

    /// A wr edge from the writer of `v` to reader `r`, or G1b when `v` was not its
    /// writer's last write of the key.
    fn wr_edge(&mut self, r: u32, k: Key, v: i64, shown: MopView<'_>) {
        let Some(w) = self.writer(k, v) else { return };
        if w.txn == r {
            return;
        }
        if !w.last {
            let txns = self.txns;
            let (rt, wt) = (&txns[r as usize], &txns[w.txn as usize]);
            let why = format!(
                "{} read key {k} = {shown}, an intermediate state: {} wrote {v} and then wrote key {k} again",
                name(rt),
                name(wt)
            );
            let ops = vec![rt.index, wt.index];
            self.push(AnomalyKind::G1b, k, ops, why);
        }
        self.edges.push((w.txn, r, WR));
    }

    /// Version orders from the longest read of each key; reads that are not prefixes of
    /// it are incompatible orders.
    fn infer_orders(&mut self) {
        let mut longest: FxHashMap<Key, (u32, usize)> = FxHashMap::default();
        let txns = self.txns;
        let reads = |t| list_reads(txns, t);
        for (id, t) in self.txns.iter().enumerate() {
            if t.outcome != Outcome::Ok {
                continue;
            }
            for (i, k, xs) in reads(t) {
                let e = longest.entry(k).or_insert((id as u32, i));
                if xs.len() > self.list_at(*e).len() {
                    *e = (id as u32, i);
                }
            }
        }
        let mut bad: Vec<Anomaly> = Vec::new();
        for t in self.txns.iter() {
            if t.outcome != Outcome::Ok {
                continue;
            }
            for (_, k, xs) in reads(t) {
                let at = longest[&k];
                let long = self.list_at(at);
                if !long.starts_with(xs) {
                    let lt = &self.txns[at.0 as usize];
                    bad.push(Anomaly::new(
                        AnomalyKind::IncompatibleOrder,
                        Some(k),
                        vec![t.index, lt.index],
                        format!(
                            "{} read key {k} = {} and {} read {}: neither is a prefix of the other, so no single order of key {k}'s appends explains both",
                            name(t),
                            MopView::List(xs),
                            name(lt),
                            MopView::List(long)
                        ),
                    ));
                }
            }
        }
        self.found.extend(bad);
        for (k, at) in longest {
            let order = self.list_at(at).to_vec();
            self.order.insert(k, order);
        }
    }

    fn list_at(&self, (txn, mop): (u32, usize)) -> &'a [i64] {
        let txns = self.txns;
        match txns.mops(&txns[txn as usize]).get(mop).value {
            MopView::List(xs) => xs,
            _ => &[],
        }
    }

    /// A committed append ordered after a failed transaction's append.
    fn dirty_updates(&mut self) {
        let mut keys: Vec<Key> = self.order.keys().copied().collect();
        keys.sort_unstable();
        for k in keys {
            let order = &self.order[&k];
            let mut failed: Option<(i64, u32)> = None;
            let mut hit = None;
            for &x in order {
                let Some(w) = self.writers.get(&(k, x)) else {
                    continue;
                };
                let t = &self.txns[w.txn as usize];
                match (failed, committed(t)) {
                    (None, false) => failed = Some((x, w.txn)),
                    (Some(f), true) => {
                        hit = Some((f, x, w.txn));
                        break;
                    }
                    _ => {}
                }
            }
            if let Some(((fx, ft), x, t)) = hit {
                let txns = self.txns;
                let (ft, t) = (&txns[ft as usize], &txns[t as usize]);
                let why = format!(
                    "key {k}'s order puts {}'s append {x} after {fx}, appended by {} which failed: a committed write built on an aborted one",
                    name(t),
                    name(ft)
                );
                let ops = vec![ft.index, t.index];
                self.push(AnomalyKind::DirtyUpdate, k, ops, why);
            }
        }
    }

    fn lost_updates(&mut self, lost: FxHashMap<(Key, Option<i64>), Vec<u32>>) {
        let mut groups: Vec<_> = lost.into_iter().filter(|(_, ts)| ts.len() > 1).collect();
        groups.sort_unstable();
        for ((k, v), ts) in groups {
            let names: Vec<String> = ts.iter().map(|&t| name(&self.txns[t as usize])).collect();
            let version = v.map_or("its initial state".to_owned(), |v| {
                let by = self
                    .writers
                    .get(&(k, v))
                    .map(|w| format!(" ({}'s write)", name(&self.txns[w.txn as usize])))
                    .unwrap_or_default();
                format!("the version ending in {v}{by}")
            });
            let why = format!(
                "{} each read key {k} at {version} and each wrote key {k}: all but one of their updates is lost",
                names.join(", ")
            );
            let ops = ts.iter().map(|&t| self.txns[t as usize].index).collect();
            self.push(AnomalyKind::LostUpdate, k, ops, why);
        }
    }

    fn rw_register(&mut self, ext: &[(u32, u32, u32)]) {
        let txns = self.txns;
        let ext: Vec<(u32, Key, MopView<'_>)> = ext
            .iter()
            .map(|&(r, i, _)| {
                let m = txns.mops(&txns[r as usize]).get(i as usize);
                (r, m.key, m.value)
            })
            .collect();
        // Transactions that read a version and then wrote the key: its successors.
        let mut succ: FxHashMap<(Key, Option<i64>), Vec<u32>> = FxHashMap::default();
        let mut by_key: FxHashMap<Key, Vec<u32>> = FxHashMap::default();
        for (&(k, _), w) in &self.writers {
            if committed(&self.txns[w.txn as usize]) && w.last {
                by_key.entry(k).or_default().push(w.txn);
            }
        }
        for ts in by_key.values_mut() {
            ts.sort_unstable();
        }
        for &(r, k, v) in &ext {
            let ver = v.written_int();
            if let Some(x) = ver
                && !self.check_elements(r, k, &[x], v)
            {
                continue;
            }
            let writes = txns
                .mops(&txns[r as usize])
                .iter()
                .any(|m| m.key == k && m.f == MopF::Write);
            if writes {
                succ.entry((k, ver)).or_default().push(r);
            }
            if let Some(x) = ver {
                self.wr_edge(r, k, x, v);
            }
        }
        for &(r, k, v) in &ext {
            let ver = v.written_int();
            let next = match ver {
                None => by_key.get(&k),
                Some(_) => succ.get(&(k, ver)),
            };
            for &t in next.into_iter().flatten() {
                if t != r {
                    self.edges.push((r, t, RW));
                }
            }
        }
        let mut versions: Vec<_> = succ.iter().collect();
        versions.sort_unstable();
        for (&(k, ver), ts) in versions {
            if let Some(x) = ver
                && let Some(w) = self.writer(k, x)
            {
                for &t in ts {
                    if t != w.txn {
                        self.edges.push((w.txn, t, WW));
                    }
                }
            }
        }
        self.lost_updates(succ);
    }

    /// Process order: consecutive transactions of a process (real time is
    /// `realtime`'s).
    fn process_edges(&mut self) {
        let mut last: FxHashMap<schism_history::Process, u32> = FxHashMap::default();
        for (id, t) in self.txns.iter().enumerate() {
            if !committed(t) {
                continue;
            }
            if let Some(&p) = last.get(&t.process) {
                self.edges.push((p, id as u32, PROC));
            }
            // An indeterminate transaction may take effect later: nothing is ordered
            // after it by its process.
            if t.outcome == Outcome::Ok {
                last.insert(t.process, id as u32);
            }
        }
    }

    /// One sentence saying why `a` precedes `b` by an edge of kind `bit`.
    pub(crate) fn explain_edge(&self, a: u32, b: u32, bit: u8) -> String {
        let (ta, tb) = (&self.txns[a as usize], &self.txns[b as usize]);
        let (na, nb) = (name(ta), name(tb));
        match bit {
            PROC => format!("{na} and {nb} ran on process {}, {na} first", ta.process),
            RT => format!("{na} completed before {nb} was invoked"),
            WW => self.explain_ww(a, b),
            WR => self.explain_wr(a, b),
            _ => self.explain_rw(a, b),
        }
        .trim_end()
        .to_owned()
    }

    /// A transaction's external reads, own appends stripped (for explanations).
    fn ext_reads(&self, t: u32) -> Vec<(Key, MopValue)> {
        let txn = &self.txns[t as usize];
        let mops = self.txns.mops(txn);
        scan(self.txns, txn, self.workload)
            .ext
            .into_iter()
            .map(|(i, strip)| {
                let m = mops.get(i);
                let v = match (m.value, self.workload) {
                    (MopView::List(l), _) => MopValue::List(l[..l.len() - strip].to_vec()),
                    (MopView::Nil, TxnWorkload::ListAppend) => MopValue::List(Vec::new()),
                    (other, _) => other.to_value(),
                };
                (m.key, v)
            })
            .collect()
    }

    fn explain_wr(&self, a: u32, b: u32) -> String {
        let (na, nb) = (name(&self.txns[a as usize]), name(&self.txns[b as usize]));
        for (k, v) in self.ext_reads(b) {
            let last = match &v {
                MopValue::List(xs) => xs.last().copied(),
                other => other.written_int(),
            };
            if let Some(x) = last
                && self.writers.get(&(k, x)).is_some_and(|w| w.txn == a)
            {
                let what = match self.workload {
                    TxnWorkload::ListAppend => format!("which ends with {na}'s append {x}"),
                    TxnWorkload::RwRegister => format!("{na}'s write"),
                };
                return format!(
                    "{nb} read key {k} = {}, {what}, so {na} precedes {nb}",
                    shown(&v)
                );
            }
        }
        format!("{nb} read a value {na} wrote")
    }

    fn explain_ww(&self, a: u32, b: u32) -> String {
        let (na, nb) = (name(&self.txns[a as usize]), name(&self.txns[b as usize]));
        match self.workload {
            TxnWorkload::ListAppend => {
                for m in self.txns.mops(&self.txns[a as usize]).iter() {
                    let (Some(x), Some(order)) = (m.written(), self.order.get(&m.key)) else {
                        continue;
                    };
                    if let Some(p) = order.iter().position(|&y| y == x)
                        && let Some(&y) = order.get(p + 1)
                        && self.writers.get(&(m.key, y)).is_some_and(|w| w.txn == b)
                    {
                        return format!(
                            "{nb} appended {y} right after {na}'s append {x} in key {}'s order, so {na} precedes {nb}",
                            m.key
                        );
                    }
                }
            }
            TxnWorkload::RwRegister => {
                for (k, v) in self.ext_reads(b) {
                    if let Some(x) = v.written_int()
                        && self.writers.get(&(k, x)).is_some_and(|w| w.txn == a)
                    {
                        return format!(
                            "{nb} read key {k} = {x} ({na}'s write) and then wrote key {k}, so {na}'s version precedes {nb}'s"
                        );
                    }
                }
            }
        }
        format!("{nb} overwrote a version {na} wrote")
    }

    fn explain_rw(&self, a: u32, b: u32) -> String {
        let (na, nb) = (name(&self.txns[a as usize]), name(&self.txns[b as usize]));
        for (k, v) in self.ext_reads(a) {
            match (&v, self.workload) {
                (MopValue::List(xs), TxnWorkload::ListAppend) => {
                    let Some(order) = self.order.get(&k) else {
                        continue;
                    };
                    if let Some(&next) = order.get(xs.len())
                        && self.writers.get(&(k, next)).is_some_and(|w| w.txn == b)
                    {
                        return format!(
                            "{na} read key {k} = {} which did not include {nb}'s append {next}, so {na} precedes {nb}",
                            shown(&v)
                        );
                    }
                }
                _ => {
                    let ver = v.written_int();
                    let overwrote = self.txns.mops(&self.txns[b as usize]).iter().find_map(|m| {
                        (m.key == k && m.f == MopF::Write)
                            .then(|| m.written())
                            .flatten()
                    });
                    let Some(w) = overwrote else { continue };
                    let follows = ver.is_none()
                        || self
                            .ext_reads(b)
                            .iter()
                            .any(|(k2, v2)| *k2 == k && v2.written_int() == ver);
                    if follows {
                        return format!(
                            "{na} read key {k} = {v} and {nb} wrote the next version {w}, so {na} precedes {nb}"
                        );
                    }
                }
            }
        }
        format!("{na} missed a write of {nb}")
    }
}

/// A read value as Elle prints it: an empty list is nil.
fn shown(v: &MopValue) -> String {
    match v {
        MopValue::List(xs) if xs.is_empty() => "nil".into(),
        other => other.to_string(),
    }
}

trait IntValue {
    fn written_int(&self) -> Option<i64>;
}

impl IntValue for MopValue {
    fn written_int(&self) -> Option<i64> {
        match self {
            MopValue::Int(v) => Some(*v),
            _ => None,
        }
    }
}

impl IntValue for MopView<'_> {
    fn written_int(&self) -> Option<i64> {
        self.as_int()
    }
}
