//! Reading a JSON Lines history of transactions straight into `Txns`: no `History` of
//! JSON values is ever held.
//!
//! Lines are cut and parsed in batches on up to `available_parallelism` threads, as
//! `read_jsonl` does (the same cutter, the same bounds, the same errors for bad lines,
//! truncated last lines and indices that do not increase). Each client `txn` line is
//! deserialised by a strict fast path straight into its thread's micro-op arena; any line
//! it does not take (a nemesis op, a malformed value, an unusual spelling) is parsed as
//! an `Op` by `read_jsonl`'s parser and converted as `Txns::from_history` converts it, so
//! what is accepted and every message are exactly those of reading the history whole and
//! then pairing it. Pairing errors wait until the whole file was read, as they did then:
//! a malformed line anywhere wins over them.
//!
//! Memory: the transactions (`Txns`: 48 bytes a transaction, 24 a micro-op, 8 a read-list
//! element, reserved once from the first batch's proportions when the file's size is
//! known) plus one batch being parsed.

use super::store::{ClientOp, Pairer, Shape, client_op, needs_mops, not_txn};
use super::{MAX_MICRO_OPS, MAX_TXN_OPS, MopArena, MopF, TXN_F, Txns, parse_txn_into};
use crate::read::{
    BATCH_BYTES, Batch, LineText, ParsedLine, for_each_batch, line_text, not_increasing,
    parse_op_text, parse_parts,
};
use crate::{HistoryError, Op, OpType, Process, ReadWarning};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;
use std::io::BufRead;
use std::path::Path;

/// Reads a JSON Lines history of transactions from disk.
pub fn read_txn_file(path: &Path) -> Result<(Txns, Vec<ReadWarning>), HistoryError> {
    let f = std::fs::File::open(path).map_err(|source| HistoryError::Io {
        path: path.to_owned(),
        source,
    })?;
    let size = f.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
    read_sized(
        std::io::BufReader::with_capacity(1 << 16, f),
        path,
        crate::read::reader_threads(),
        size,
    )
}

/// Reads a JSON Lines history of transactions; `path` is only used in messages.
pub fn read_txn_jsonl<R: BufRead>(
    r: R,
    path: &Path,
) -> Result<(Txns, Vec<ReadWarning>), HistoryError> {
    read_sized(r, path, crate::read::reader_threads(), None)
}

/// `read_txn_jsonl` on at most `threads` parser threads (1: all in the caller's thread).
pub fn read_txn_jsonl_threads<R: BufRead>(
    r: R,
    path: &Path,
    threads: usize,
) -> Result<(Txns, Vec<ReadWarning>), HistoryError> {
    read_sized(r, path, threads, None)
}

fn read_sized<R: BufRead>(
    r: R,
    path: &Path,
    threads: usize,
    input_bytes: Option<u64>,
) -> Result<(Txns, Vec<ReadWarning>), HistoryError> {
    let mut sink = Sink {
        path,
        pairer: Pairer::new(Some(path.to_owned())),
        last_index: None,
        pairing_error: None,
        warnings: Vec::new(),
        done: false,
        bytes_read: 0,
        reserved: false,
    };
    for_each_batch(r, path, |batch| {
        let n = batch.lines.len();
        if n > 0 {
            let parts = parse_parts(n, threads, |range| parse_part(batch, range, path));
            for part in parts {
                sink.merge(part)?;
                if sink.done {
                    break;
                }
            }
        }
        sink.bytes_read += batch.data.len() as u64;
        if let Some(total) = input_bytes
            && batch.data.len() >= BATCH_BYTES
        {
            sink.reserve(total);
        }
        Ok(sink.done)
    })?;
    if let Some(e) = sink.pairing_error {
        return Err(e);
    }
    Ok((sink.pairer.finish(), sink.warnings))
}

/// One line, parsed by a worker thread.
enum Rec {
    Blank,
    /// An incomplete last line that does not parse (its line).
    Truncated(usize),
    /// A client txn op taken by the fast path; its micro-ops (`None`: a nil value) are a
    /// range of the part's arena.
    Txn {
        op: ClientOp,
        mops: Option<(usize, usize)>,
    },
    /// Any other op, parsed whole.
    Op {
        op: Box<Op>,
        line: usize,
    },
    Err(HistoryError),
}

/// A range of a batch's lines, parsed.
struct Part {
    recs: Vec<Rec>,
    arena: MopArena,
}

fn parse_part(batch: &Batch, range: std::ops::Range<usize>, path: &Path) -> Part {
    let mut part = Part {
        recs: Vec::with_capacity(range.len()),
        arena: MopArena::default(),
    };
    for i in range {
        let (_, line, complete) = batch.lines[i];
        let rec = parse_rec(batch.line_bytes(i), line, complete, path, &mut part.arena);
        let stop = matches!(rec, Rec::Err(_));
        part.recs.push(rec);
        if stop {
            // Lines after an error in this part can never be used.
            break;
        }
    }
    part
}

fn parse_rec(bytes: &[u8], line: usize, complete: bool, path: &Path, arena: &mut MopArena) -> Rec {
    let text = match line_text(bytes, line, complete, path) {
        Ok(LineText::Text(t)) => t,
        Ok(LineText::Blank) => return Rec::Blank,
        Ok(LineText::Truncated) => return Rec::Truncated(line),
        Err(e) => return Rec::Err(e),
    };
    let mark = arena.mark();
    let start = arena.mops_len();
    if let Some(head) = fast(text, arena) {
        let mops = head.has_value.then(|| (start, arena.mops_len() - start));
        let op = ClientOp {
            index: head.index,
            time_ns: head.time_ns,
            process: Process::client(head.process),
            kind: head.kind,
            line,
        };
        return Rec::Txn { op, mops };
    }
    arena.truncate(mark);
    match parse_op_text(text, line, complete, path) {
        Ok(ParsedLine::Op(op)) => Rec::Op {
            op: Box::new(op),
            line,
        },
        Ok(ParsedLine::Truncated) => Rec::Truncated(line),
        Ok(ParsedLine::Blank) => Rec::Blank,
        Err(e) => Rec::Err(e),
    }
}

/// Pairs the parsed lines in order.
struct Sink<'p> {
    path: &'p Path,
    pairer: Pairer,
    last_index: Option<u64>,
    /// The first pairing error: returned once the whole file was read.
    pairing_error: Option<HistoryError>,
    warnings: Vec<ReadWarning>,
    /// A truncated last line was seen: nothing may follow.
    done: bool,
    bytes_read: u64,
    reserved: bool,
}

impl Sink<'_> {
    fn merge(&mut self, part: Part) -> Result<(), HistoryError> {
        let mut scratch = MopArena::default();
        for rec in part.recs {
            match rec {
                Rec::Blank => {}
                Rec::Truncated(line) => {
                    self.warnings.push(ReadWarning::TruncatedLastLine { line });
                    self.done = true;
                    return Ok(());
                }
                Rec::Err(e) => return Err(e),
                Rec::Txn { op, mops } => {
                    self.check_index(op.index, op.line)?;
                    if self.pairing_error.is_none() {
                        let mops = mops.map(|(s, n)| part.arena.slice(s, n));
                        let r = self.pairer.client(&op, mops);
                        self.note(r, op.index, op.line);
                    }
                }
                Rec::Op { op, line } => {
                    let index = op.index();
                    self.check_index(index, line)?;
                    if self.pairing_error.is_none() {
                        let r = self.other(*op, line, &mut scratch);
                        self.note(r, index, line);
                    }
                }
            }
        }
        Ok(())
    }

    fn check_index(&mut self, index: u64, line: usize) -> Result<(), HistoryError> {
        if let Some(prev) = self.last_index
            && index <= prev
        {
            return Err(not_increasing(self.path, line, index, prev));
        }
        self.last_index = Some(index);
        Ok(())
    }

    /// Keeps the first pairing error, located as `History::op_error` locates it.
    fn note(&mut self, r: Result<(), String>, index: u64, line: usize) {
        if let Err(msg) = r
            && self.pairing_error.is_none()
        {
            let msg = format!("op index {index}: {msg}");
            self.pairing_error = Some(HistoryError::malformed(self.path, line, msg));
        }
    }

    /// An op the fast path did not take, as `Txns::from_history` takes it.
    fn other(&mut self, op: Op, line: usize, scratch: &mut MopArena) -> Result<(), String> {
        if op.process == Process::NEMESIS {
            return self.pairer.nemesis(op);
        }
        if op.f.as_str() != TXN_F {
            return Err(not_txn(&op.f));
        }
        scratch.clear();
        let mops = if needs_mops(op.kind, op.value.is_null()) {
            parse_txn_into(&op.value, scratch)?;
            Some(scratch.all())
        } else {
            None
        };
        self.pairer.client(&client_op(&op, line), mops)
    }

    /// Reserves the whole input's transactions at the proportions read so far (once), so
    /// the arrays are not doubled, and briefly held twice, while reading.
    fn reserve(&mut self, total: u64) {
        if self.reserved || self.bytes_read == 0 {
            return;
        }
        self.reserved = true;
        let (heads, mops, elems) = self.pairer.sizes();
        let scale = |x: usize| -> usize {
            let want = x as u128 * u128::from(total) / u128::from(self.bytes_read);
            let want = want + want / 32;
            want.min(u128::from(MAX_TXN_OPS)) as usize - x
        };
        self.pairer.reserve(scale(heads), scale(mops), scale(elems));
    }
}

/// The head of a client txn line the fast path took.
struct FastHead {
    index: u64,
    time_ns: u64,
    process: u64,
    kind: OpType,
    /// False when the value is nil or absent.
    has_value: bool,
}

/// A client `txn` op whose value is nil or well-formed micro-ops (pushed to `arena`), or
/// `None` for anything else (the caller then parses the line as an `Op`).
fn fast(text: &str, arena: &mut MopArena) -> Option<FastHead> {
    let mut de = serde_json::Deserializer::from_str(text);
    let head = LineSeed { arena }.deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(head)
}

/// An op line's fields (`Op`'s, any other ignored as `Op` ignores them).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    Index,
    TimeNs,
    Process,
    Type,
    F,
    Key,
    Value,
    Node,
    Error,
    Meta,
    Siblings,
    Other,
}

impl<'de> de::Deserialize<'de> for Field {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Field, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
                Ok(match v {
                    "index" => Field::Index,
                    "time_ns" => Field::TimeNs,
                    "process" => Field::Process,
                    "type" => Field::Type,
                    "f" => Field::F,
                    "key" => Field::Key,
                    "value" => Field::Value,
                    "node" => Field::Node,
                    "error" => Field::Error,
                    "meta" => Field::Meta,
                    "siblings" => Field::Siblings,
                    _ => Field::Other,
                })
            }
        }
        d.deserialize_str(V)
    }
}

/// A string, unused (`node`, `error`).
struct AnyStr;

impl<'de> de::Deserialize<'de> for AnyStr {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<AnyStr, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = AnyStr;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<AnyStr, E> {
                Ok(AnyStr)
            }
        }
        d.deserialize_str(V)
    }
}

/// A list of anything, unused (`siblings`).
struct AnySeq;

impl<'de> de::Deserialize<'de> for AnySeq {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<AnySeq, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AnySeq;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AnySeq, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(AnySeq)
            }
        }
        d.deserialize_seq(V)
    }
}

/// `f` of a transaction: `"txn"` and nothing else.
struct TxnName;

impl<'de> de::Deserialize<'de> for TxnName {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<TxnName, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = TxnName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"txn\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TxnName, E> {
                if v == TXN_F {
                    Ok(TxnName)
                } else {
                    Err(E::custom("not a txn"))
                }
            }
        }
        d.deserialize_str(V)
    }
}

/// A micro-op's function name.
struct MopFName(MopF);

impl<'de> de::Deserialize<'de> for MopFName {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<MopFName, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = MopFName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("append, r or w")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<MopFName, E> {
                MopF::parse(v)
                    .map(MopFName)
                    .ok_or_else(|| E::custom("not a micro-op function"))
            }
        }
        d.deserialize_str(V)
    }
}

/// A whole op line, its micro-ops pushed to the arena.
struct LineSeed<'a> {
    arena: &'a mut MopArena,
}

impl<'de> DeserializeSeed<'de> for LineSeed<'_> {
    type Value = FastHead;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<FastHead, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for LineSeed<'_> {
    type Value = FastHead;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a txn op")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FastHead, A::Error> {
        let (mut index, mut time_ns, mut process, mut kind) = (None, None, None, None);
        let (mut is_txn, mut has_value) = (false, false);
        let mut seen = 0u16;
        while let Some(field) = map.next_key::<Field>()? {
            let bit = 1u16 << field as u8;
            if field != Field::Other && seen & bit != 0 {
                return Err(de::Error::custom("duplicate field"));
            }
            seen |= bit;
            match field {
                Field::Index => index = Some(map.next_value::<u64>()?),
                Field::TimeNs => time_ns = Some(map.next_value::<u64>()?),
                Field::Process => process = Some(map.next_value::<u64>()?),
                Field::Type => kind = Some(map.next_value::<OpType>()?),
                Field::F => {
                    map.next_value::<TxnName>()?;
                    is_txn = true;
                }
                Field::Key => {
                    map.next_value::<Option<u64>>()?;
                }
                Field::Value => {
                    has_value = map.next_value_seed(ValueSeed {
                        arena: &mut *self.arena,
                    })?;
                }
                Field::Node | Field::Error => {
                    map.next_value::<Option<AnyStr>>()?;
                }
                Field::Siblings => {
                    map.next_value::<Option<AnySeq>>()?;
                }
                Field::Meta | Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        match (index, time_ns, process, kind, is_txn) {
            (Some(index), Some(time_ns), Some(process), Some(kind), true)
                // A process beyond the limit takes the slow path, which names it.
                if process <= crate::MAX_CLIENT =>
            {
                Ok(FastHead {
                index,
                time_ns,
                process,
                kind,
                has_value,
            })
            }
            _ => Err(de::Error::custom("not a client txn op")),
        }
    }
}

/// A transaction's value: nil (`false`) or its micro-ops, pushed to the arena (`true`).
struct ValueSeed<'a> {
    arena: &'a mut MopArena,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = bool;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("nil or a list of micro-ops")
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_none<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        let mut n = 0usize;
        while seq
            .next_element_seed(MopSeed {
                arena: &mut *self.arena,
            })?
            .is_some()
        {
            n += 1;
            if n > MAX_MICRO_OPS {
                return Err(de::Error::custom("too many micro-ops"));
            }
        }
        Ok(true)
    }
}

/// One micro-op `[f key value]`, pushed to the arena.
struct MopSeed<'a> {
    arena: &'a mut MopArena,
}

impl<'de> DeserializeSeed<'de> for MopSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for MopSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[f key value]")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let missing = || de::Error::custom("expected [f key value]");
        let MopFName(f) = seq.next_element()?.ok_or_else(missing)?;
        let key: u64 = seq.next_element()?.ok_or_else(missing)?;
        let mark = self.arena.mark();
        let value = seq
            .next_element_seed(MopValueSeed {
                arena: &mut *self.arena,
            })?
            .ok_or_else(missing)?;
        if seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(missing());
        }
        self.arena
            .push_mop(f, key, value, mark)
            .map_err(de::Error::custom)
    }
}

/// A micro-op's value: nil, an integer, or a list of integers (pushed to the arena).
struct MopValueSeed<'a> {
    arena: &'a mut MopArena,
}

impl<'de> DeserializeSeed<'de> for MopValueSeed<'_> {
    type Value = Shape;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Shape, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MopValueSeed<'_> {
    type Value = Shape;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("nil, an integer or a list of integers")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Shape, E> {
        Ok(Shape::Nil)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Shape, E> {
        Ok(Shape::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Shape, E> {
        i64::try_from(v)
            .map(Shape::Int)
            .map_err(|_| E::custom("out of range"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
        while let Some(x) = seq.next_element::<i64>()? {
            self.arena.push_elem(x);
        }
        Ok(Shape::List)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::{MicroOp, txn_value};
    use crate::{F, HistoryWriter};

    /// What the runner writes takes the fast path (else every line would be parsed twice).
    #[test]
    fn written_lines_take_the_fast_path() {
        let mut w = HistoryWriter::new(Vec::new());
        let mops = [MicroOp::append(3, 4), MicroOp::read(3)];
        let mut op = Op::new(
            7,
            9,
            Process::client(2),
            OpType::Ok,
            F::parse("txn"),
            Some(0),
            txn_value(&mops),
        );
        op.set_node(Some("n1".into()));
        op.set_meta(Some(serde_json::json!({"lsn": 5})));
        w.append(&op).unwrap();
        let line = String::from_utf8(w.into_inner().unwrap()).unwrap();
        let mut arena = MopArena::default();
        let head = fast(line.trim(), &mut arena).expect("fast path");
        assert_eq!((head.index, head.time_ns, head.process), (7, 9, 2));
        assert_eq!(arena.all().len(), 2);
        assert_eq!(arena.all().get(0).to_micro_op(), mops[0]);
        let nemesis = line.replace("\"process\":2", "\"process\":\"nemesis\"");
        assert!(fast(&nemesis, &mut MopArena::default()).is_none());
    }
}
