//! Transactions held compactly, paired: what the `txn` checker reads instead of a
//! `History` of JSON values.
//!
//! Every micro-op of every transaction lives in one arena (`MopArena`): 24 bytes each
//! (`f`, the key, an integer value or where its read list starts), and the elements of
//! every read list back to back in one shared `Vec<i64>`; a transaction is a 64-byte
//! head (`TxnHead`: invocation index, process, outcome, times, positions, its slice of
//! micro-ops). An `ok` completion's micro-ops overwrite its invocation's in place, so
//! each transaction holds one set. Nemesis ops are kept whole (they are few). Pairing
//! follows Elle's semantics (`info` may or may not have happened, `fail` never did), one
//! op at a time per process; a completion must repeat its invocation's functions, keys
//! and written values.
//!
//! Guarantees: `Txns::from_history` and the JSON Lines reader (`read_txn_jsonl`) pair
//! through the same `Pairer`, so they give the same transactions and the same errors
//! (one sentence naming the op, at `file:line` when the history came from a file);
//! positions, counts and offsets are `u32`, and a history past `MAX_TXN_OPS` ops (or
//! micro-ops) is an error saying so, never a silent wrap.

use super::{MAX_MICRO_OPS, MicroOp, MopF, MopValue, TXN_F, parse_txn_into};
use crate::{F, History, HistoryError, Key, Op, OpType, Outcome, Process, clip};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Most ops one history may hold, and most micro-ops and read-list elements over all its
/// transactions: positions and offsets are 32-bit (a history that large would not fit
/// in memory as JSON anyway).
pub const MAX_TXN_OPS: u64 = u32::MAX as u64 - 1;

/// No completion (a `u32` position).
const NONE: u32 = u32::MAX;

/// A micro-op in an arena: `v` is the written or read integer, or where a read list
/// starts in the arena's elements (`len` of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mop {
    key: Key,
    v: i64,
    len: u32,
    f: MopF,
    shape: u8,
}

const NIL: u8 = 0;
const INT: u8 = 1;
const LIST: u8 = 2;

/// What a micro-op being pushed holds (a list's elements were pushed just before).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Shape {
    Nil,
    Int(i64),
    List,
}

/// A micro-op's value, borrowed from an arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MopView<'a> {
    Nil,
    Int(i64),
    List(&'a [i64]),
}

impl MopView<'_> {
    pub fn to_value(self) -> MopValue {
        match self {
            MopView::Nil => MopValue::Nil,
            MopView::Int(v) => MopValue::Int(v),
            MopView::List(xs) => MopValue::List(xs.to_vec()),
        }
    }

    pub fn as_int(self) -> Option<i64> {
        match self {
            MopView::Int(v) => Some(v),
            _ => None,
        }
    }
}

impl MopValue {
    pub fn view(&self) -> MopView<'_> {
        match self {
            MopValue::Nil => MopView::Nil,
            MopValue::Int(v) => MopView::Int(*v),
            MopValue::List(xs) => MopView::List(xs),
        }
    }
}

/// Printed as Elle prints a micro-op's value: `nil`, `3`, `[1 2]` (`MopValue` prints through it).
impl std::fmt::Display for MopView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MopView::Nil => f.write_str("nil"),
            MopView::Int(v) => write!(f, "{v}"),
            MopView::List(xs) => {
                f.write_str("[")?;
                for (i, x) in xs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{x}")?;
                }
                f.write_str("]")
            }
        }
    }
}

/// One micro-op, borrowed from an arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MopRef<'a> {
    pub f: MopF,
    pub key: Key,
    pub value: MopView<'a>,
}

impl MopRef<'_> {
    /// The integer a write or append puts.
    pub fn written(&self) -> Option<i64> {
        match (self.f, self.value) {
            (MopF::Append | MopF::Write, MopView::Int(v)) => Some(v),
            _ => None,
        }
    }

    pub fn to_micro_op(&self) -> MicroOp {
        MicroOp {
            f: self.f,
            key: self.key,
            value: self.value.to_value(),
        }
    }
}

/// Printed as `MicroOp` prints: `[append 1 2]`.
impl std::fmt::Display for MopRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{} {} {}]", self.f.as_str(), self.key, self.value)
    }
}

/// Where an arena stood (to roll back a micro-op or a transaction that failed to parse).
#[derive(Debug, Clone, Copy)]
pub struct ArenaMark {
    mops: usize,
    elems: usize,
}

/// Micro-ops back to back, and their read lists' elements back to back.
#[derive(Debug, Clone, Default)]
pub struct MopArena {
    mops: Vec<Mop>,
    elems: Vec<i64>,
}

impl MopArena {
    pub fn mark(&self) -> ArenaMark {
        ArenaMark {
            mops: self.mops.len(),
            elems: self.elems.len(),
        }
    }

    pub fn truncate(&mut self, m: ArenaMark) {
        self.mops.truncate(m.mops);
        self.elems.truncate(m.elems);
    }

    pub fn clear(&mut self) {
        self.mops.clear();
        self.elems.clear();
    }

    pub(crate) fn push_elem(&mut self, x: i64) {
        self.elems.push(x);
    }

    /// Appends a micro-op; a `Shape::List` owns the elements pushed since `mark`.
    pub(crate) fn push_mop(
        &mut self,
        f: MopF,
        key: Key,
        value: Shape,
        mark: ArenaMark,
    ) -> Result<(), String> {
        let (shape, v, len) = match value {
            Shape::Nil => (NIL, 0, 0),
            Shape::Int(v) => (INT, v, 0),
            Shape::List => (LIST, mark.elems as i64, self.elems.len() - mark.elems),
        };
        if f != MopF::Read && shape != INT {
            return Err(format!("{} needs an integer value", f.as_str()));
        }
        if self.mops.len() as u64 >= MAX_TXN_OPS || self.elems.len() as u64 >= MAX_TXN_OPS {
            return Err(format!(
                "the history holds more than {MAX_TXN_OPS} micro-ops or read-list elements, the transactional reader's limit"
            ));
        }
        self.mops.push(Mop {
            key,
            v,
            len: len as u32,
            f,
            shape,
        });
        Ok(())
    }

    /// Appends a micro-op borrowed from anywhere (its list copied).
    fn push_ref(&mut self, m: MopRef<'_>) -> Result<(), String> {
        let mark = self.mark();
        let shape = match m.value {
            MopView::Nil => Shape::Nil,
            MopView::Int(v) => Shape::Int(v),
            MopView::List(xs) => {
                self.elems.extend_from_slice(xs);
                Shape::List
            }
        };
        self.push_mop(m.f, m.key, shape, mark)
    }

    /// Every micro-op of the arena.
    pub fn all(&self) -> Mops<'_> {
        self.slice(0, self.mops.len())
    }

    /// `len` micro-ops from `start`.
    pub fn slice(&self, start: usize, len: usize) -> Mops<'_> {
        Mops {
            mops: &self.mops[start..start + len],
            elems: &self.elems,
        }
    }

    pub(crate) fn mops_len(&self) -> usize {
        self.mops.len()
    }

    pub(crate) fn elems_len(&self) -> usize {
        self.elems.len()
    }

    fn reserve(&mut self, mops: usize, elems: usize) {
        self.mops.reserve(mops);
        self.elems.reserve(elems);
    }
}

/// A run of micro-ops (one transaction's), borrowed from an arena.
#[derive(Debug, Clone, Copy)]
pub struct Mops<'a> {
    mops: &'a [Mop],
    elems: &'a [i64],
}

impl<'a> Mops<'a> {
    pub fn len(&self) -> usize {
        self.mops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.mops.is_empty()
    }

    pub fn get(&self, i: usize) -> MopRef<'a> {
        let m = &self.mops[i];
        let value = match m.shape {
            NIL => MopView::Nil,
            INT => MopView::Int(m.v),
            _ => MopView::List(&self.elems[m.v as usize..m.v as usize + m.len as usize]),
        };
        MopRef {
            f: m.f,
            key: m.key,
            value,
        }
    }

    /// The micro-ops from position `i` on.
    pub fn from(&self, i: usize) -> Mops<'a> {
        Mops {
            mops: &self.mops[i.min(self.mops.len())..],
            elems: self.elems,
        }
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = MopRef<'a>> + Clone + 'a {
        let this = *self;
        (0..self.mops.len()).map(move |i| this.get(i))
    }
}

/// One transaction: its invocation paired with its completion. 64 bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct TxnHead {
    /// `Op::index` of the invocation (how anomalies name it).
    pub index: u64,
    /// `time_ns` of the invocation and of the completion (0 without one).
    pub invoke_ns: u64,
    pub complete_ns: u64,
    pub process: Process,
    invoke_pos: u32,
    complete_pos: u32,
    mops_start: u32,
    /// The invocation's 1-based line in the file it came from (0: not from a file).
    line: u32,
    mops_len: u16,
    pub outcome: Outcome,
}

impl TxnHead {
    /// Positions of the invocation and completion among the history's ops (nemesis ops
    /// counted): real-time order.
    pub fn invoke_pos(&self) -> usize {
        self.invoke_pos as usize
    }

    pub fn complete_pos(&self) -> Option<usize> {
        (self.complete_pos != NONE).then_some(self.complete_pos as usize)
    }
}

/// Every transaction of a history, in invocation order, with the history's nemesis ops.
#[derive(Debug, Clone, Default)]
pub struct Txns {
    heads: Vec<TxnHead>,
    arena: MopArena,
    /// Nemesis ops with their positions among all ops.
    nemesis: Vec<(u32, Op)>,
    /// Ops in the history (client and nemesis).
    ops: u64,
    path: Option<PathBuf>,
}

impl std::ops::Index<usize> for Txns {
    type Output = TxnHead;
    fn index(&self, i: usize) -> &TxnHead {
        &self.heads[i]
    }
}

impl Txns {
    pub fn len(&self) -> usize {
        self.heads.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heads.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, TxnHead> {
        self.heads.iter()
    }

    /// A transaction's micro-ops: the completion's when `ok` (reads filled in), else the
    /// invocation's.
    pub fn mops(&self, t: &TxnHead) -> Mops<'_> {
        self.arena
            .slice(t.mops_start as usize, usize::from(t.mops_len))
    }

    /// Ops in the history, client and nemesis (its lines, without blank ones).
    pub fn ops(&self) -> u64 {
        self.ops
    }

    /// The nemesis ops, each with its position among all ops.
    pub fn nemesis(&self) -> &[(u32, Op)] {
        &self.nemesis
    }

    /// An error about a transaction: `file:line` of its invocation when the history came
    /// from a file, else its index alone (as `History::op_error`).
    pub fn op_error(&self, t: &TxnHead, msg: String) -> HistoryError {
        match &self.path {
            Some(path) if t.line > 0 => HistoryError::malformed(
                path,
                t.line as usize,
                format!("op index {}: {msg}", t.index),
            ),
            _ => HistoryError::Inconsistent {
                index: t.index,
                msg: clip(&msg),
            },
        }
    }

    /// The transactions of a history held in memory (as the JSON Lines reader pairs them);
    /// any client op whose `f` is not `txn` is an error naming it.
    pub fn from_history(h: &History) -> Result<Txns, HistoryError> {
        let path = h.locate_path().map(Path::to_owned);
        let mut p = Pairer::new(path);
        let mut scratch = MopArena::default();
        for op in &h.ops {
            let fail = |msg: String| h.op_error(op.index(), msg);
            if op.process == Process::NEMESIS {
                p.nemesis(op.clone()).map_err(fail)?;
                continue;
            }
            if op.f.as_str() != TXN_F {
                return Err(fail(not_txn(&op.f)));
            }
            scratch.clear();
            let mops = if needs_mops(op.kind, op.value.is_null()) {
                parse_txn_into(&op.value, &mut scratch).map_err(fail)?;
                Some(scratch.all())
            } else {
                None
            };
            let line = if op.kind == OpType::Invoke {
                h.locate(op.index()).map_or(0, |(_, l)| l)
            } else {
                0
            };
            p.client(&client_op(op, line), mops).map_err(fail)?;
        }
        Ok(p.finish())
    }

    fn reserve(&mut self, heads: usize, mops: usize, elems: usize) {
        self.heads.reserve(heads);
        self.arena.reserve(mops, elems);
    }
}

/// Whether an op's micro-ops are read: an invocation's always (a nil value is an error),
/// an `ok` completion's when it carries them; failed and indeterminate completions keep
/// their invocation's.
pub(crate) fn needs_mops(kind: OpType, null: bool) -> bool {
    kind == OpType::Invoke || (kind == OpType::Ok && !null)
}

pub(crate) fn not_txn(f: &F) -> String {
    format!("f {f} is not txn: a transactional workload records only txn ops")
}

/// What pairing needs of a client op besides its micro-ops.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientOp {
    pub(crate) index: u64,
    pub(crate) time_ns: u64,
    pub(crate) process: Process,
    pub(crate) kind: OpType,
    /// 1-based line (0: unknown).
    pub(crate) line: usize,
}

pub(crate) fn client_op(op: &Op, line: usize) -> ClientOp {
    ClientOp {
        index: op.index(),
        time_ns: op.time_ns,
        process: op.process,
        kind: op.kind,
        line,
    }
}

/// Pairs ops into `Txns` as they come, in history order.
pub(crate) struct Pairer {
    txns: Txns,
    open: HashMap<Process, u32>,
}

impl Pairer {
    pub(crate) fn new(path: Option<PathBuf>) -> Pairer {
        Pairer {
            txns: Txns {
                path,
                ..Txns::default()
            },
            open: HashMap::new(),
        }
    }

    /// The next op's position.
    fn position(&mut self) -> Result<u32, String> {
        if self.txns.ops >= MAX_TXN_OPS {
            return Err(format!(
                "the history holds more than {MAX_TXN_OPS} ops, the transactional reader's limit"
            ));
        }
        self.txns.ops += 1;
        Ok((self.txns.ops - 1) as u32)
    }

    pub(crate) fn nemesis(&mut self, op: Op) -> Result<(), String> {
        let pos = self.position()?;
        self.txns.nemesis.push((pos, op));
        Ok(())
    }

    /// A client txn op; `mops` is `None` when its value is nil.
    pub(crate) fn client(&mut self, op: &ClientOp, mops: Option<Mops<'_>>) -> Result<(), String> {
        let pos = self.position()?;
        if op.kind == OpType::Invoke {
            return self.invoke(op, pos, mops);
        }
        let Some(i) = self.open.remove(&op.process) else {
            return Err(format!(
                "a completion of process {} without an open invocation",
                op.process
            ));
        };
        let outcome = match op.kind {
            OpType::Ok => Outcome::Ok,
            OpType::Fail => Outcome::Fail,
            _ => Outcome::Info,
        };
        let t = &mut self.txns.heads[i as usize];
        t.complete_pos = pos;
        t.complete_ns = op.time_ns;
        t.outcome = outcome;
        let (start, len) = (t.mops_start as usize, usize::from(t.mops_len));
        if let (Outcome::Ok, Some(done)) = (outcome, mops) {
            matches_invocation(self.txns.arena.slice(start, len), done)?;
            // The completion's values replace the invocation's, in place.
            let tail = self.txns.arena.mark();
            for m in done.iter() {
                self.txns.arena.push_ref(m)?;
            }
            let arena = &mut self.txns.arena;
            arena.mops.copy_within(tail.mops.., start);
            arena.mops.truncate(tail.mops);
        }
        Ok(())
    }

    fn invoke(&mut self, op: &ClientOp, pos: u32, mops: Option<Mops<'_>>) -> Result<(), String> {
        if let Some(&prev) = self.open.get(&op.process) {
            return Err(format!(
                "process {} invokes again while its op at index {} is still open (a process runs one op at a time)",
                op.process, self.txns.heads[prev as usize].index
            ));
        }
        let Some(mops) = mops else {
            return Err("a txn needs a list of micro-ops as its value, found nil".into());
        };
        if mops.len() > MAX_MICRO_OPS {
            return Err(format!(
                "a txn of {} micro-ops is longer than the limit of {MAX_MICRO_OPS}",
                mops.len()
            ));
        }
        let id = self.txns.heads.len() as u32;
        let start = self.txns.arena.mops_len() as u32;
        for m in mops.iter() {
            self.txns.arena.push_ref(m)?;
        }
        self.txns.heads.push(TxnHead {
            index: op.index,
            invoke_ns: op.time_ns,
            complete_ns: 0,
            process: op.process,
            invoke_pos: pos,
            complete_pos: NONE,
            mops_start: start,
            line: u32::try_from(op.line).unwrap_or(0),
            mops_len: mops.len() as u16,
            outcome: Outcome::Info,
        });
        self.open.insert(op.process, id);
        Ok(())
    }

    /// Transactions, micro-ops and list elements so far.
    pub(crate) fn sizes(&self) -> (usize, usize, usize) {
        let a = &self.txns.arena;
        (self.txns.heads.len(), a.mops_len(), a.elems_len())
    }

    pub(crate) fn reserve(&mut self, heads: usize, mops: usize, elems: usize) {
        self.txns.reserve(heads, mops, elems);
    }

    pub(crate) fn finish(self) -> Txns {
        self.txns
    }
}

fn matches_invocation(invoked: Mops<'_>, done: Mops<'_>) -> Result<(), String> {
    if invoked.len() != done.len() {
        return Err(format!(
            "the completion has {} micro-ops but its invocation had {}",
            done.len(),
            invoked.len()
        ));
    }
    for (i, (a, b)) in invoked.iter().zip(done.iter()).enumerate() {
        let same = a.f == b.f && a.key == b.key && (a.f == MopF::Read || a.value == b.value);
        if !same {
            return Err(format!(
                "micro-op {} completed as {b} but was invoked as {a}",
                i + 1
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::txn_value;

    fn op(i: u64, p: u64, kind: OpType, mops: &[MicroOp]) -> Op {
        Op::new(
            i,
            i * 10,
            Process::client(p),
            kind,
            F::parse(TXN_F),
            None,
            txn_value(mops),
        )
    }

    #[test]
    fn completions_overwrite_invocations_in_place() {
        let read = |v: Vec<i64>| MicroOp {
            f: MopF::Read,
            key: 1,
            value: MopValue::List(v),
        };
        let h = History::new(vec![
            op(
                0,
                1,
                OpType::Invoke,
                &[MicroOp::append(1, 5), MicroOp::read(1)],
            ),
            op(1, 2, OpType::Invoke, &[MicroOp::read(1)]),
            op(2, 1, OpType::Ok, &[MicroOp::append(1, 5), read(vec![5])]),
            op(3, 2, OpType::Fail, &[MicroOp::read(1)]),
        ]);
        let t = Txns::from_history(&h).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t.arena.mops_len(), 3);
        let m: Vec<MicroOp> = t.mops(&t[0]).iter().map(|m| m.to_micro_op()).collect();
        assert_eq!(m, [MicroOp::append(1, 5), read(vec![5])]);
        assert_eq!((t[0].complete_pos(), t[0].outcome), (Some(2), Outcome::Ok));
        assert_eq!(t[1].outcome, Outcome::Fail);
        assert_eq!(t.mops(&t[1]).get(0).value, MopView::Nil);
        assert_eq!(size_of::<TxnHead>(), 48);
        assert_eq!(size_of::<Mop>(), 24);
    }

    #[test]
    fn a_changed_completion_is_an_error() {
        let h = History::new(vec![
            op(0, 1, OpType::Invoke, &[MicroOp::append(1, 5)]),
            op(1, 1, OpType::Ok, &[MicroOp::append(1, 6)]),
        ]);
        let e = Txns::from_history(&h).unwrap_err().to_string();
        assert!(e.contains("completed as [append 1 6]"), "{e}");
    }
}
