//! JSON Lines writer: one op per line, each written whole.
//!
//! Guarantee: after `flush` returns, every appended op is a complete line in the
//! operating system's hands, so a runner killed later loses nothing before that point.
//! The caller decides when to flush (the runner flushes once per batch of ops, about
//! every millisecond). Between flushes the lines wait in one reused buffer, written out in
//! one write(2) at `flush` or whenever it holds `BUFFER_BYTES`.
//!
//! Lines are encoded by hand, byte for byte what `serde_json::to_writer` makes of an `Op`
//! (the unit tests compare both over every shape): the recorder writes every op of a run,
//! and serde's generic machinery was a tenth of the runner's CPU per op (BENCHMARKS.md
//! "Runner CPU per op"). Strings that need escaping, floats and anything nested in an
//! `Other` value or `meta` beyond objects, arrays, integers, strings, booleans and null
//! still go through serde_json, so the output is the same whatever the op holds.

use crate::op::OpExt;
use crate::{Op, Value};
use std::io::Write;

/// Lines gathered before they are written out even without a `flush`.
const BUFFER_BYTES: usize = 1 << 16;

#[derive(Debug)]
pub struct HistoryWriter<W: Write> {
    /// Always `Some` but inside `into_inner`.
    out: Option<W>,
    /// Encoded lines not yet written out (complete lines only).
    buf: Vec<u8>,
    written: u64,
}

impl<W: Write> HistoryWriter<W> {
    pub fn new(w: W) -> Self {
        Self {
            out: Some(w),
            buf: Vec::with_capacity(BUFFER_BYTES + 4096),
            written: 0,
        }
    }

    /// Appends one op as one line. The line is encoded in place and taken back on an
    /// error, so an error never leaves half a line behind.
    pub fn append(&mut self, op: &Op) -> std::io::Result<()> {
        let start = self.buf.len();
        if let Err(e) = encode_op(&mut self.buf, op) {
            self.buf.truncate(start);
            return Err(e.into());
        }
        self.buf.push(b'\n');
        self.written += 1;
        if self.buf.len() >= BUFFER_BYTES {
            self.write_out()?;
        }
        Ok(())
    }

    /// Writes the gathered lines out (whole: `write_all`); on an error they stay gathered.
    fn write_out(&mut self) -> std::io::Result<()> {
        if let Some(out) = &mut self.out
            && !self.buf.is_empty()
        {
            out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.write_out()?;
        match &mut self.out {
            Some(out) => out.flush(),
            None => Ok(()),
        }
    }

    /// Ops appended so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    pub fn into_inner(mut self) -> std::io::Result<W> {
        self.flush()?;
        self.out
            .take()
            .ok_or_else(|| std::io::Error::other("history writer already taken apart"))
    }
}

impl<W: Write> Drop for HistoryWriter<W> {
    /// Writes out what was appended and not flushed, errors ignored (as `BufWriter`
    /// does): callers flush to know.
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// `serde_json::to_writer(out, op)`, by hand: DESIGN.md's field order, the optional
/// fields only when present.
fn encode_op(out: &mut Vec<u8>, op: &Op) -> serde_json::Result<()> {
    out.extend_from_slice(b"{\"index\":");
    put_u64(out, op.index());
    out.extend_from_slice(b",\"time_ns\":");
    put_u64(out, op.time_ns);
    out.extend_from_slice(b",\"process\":");
    match op.process.as_client() {
        Some(p) => put_u64(out, p),
        None => out.extend_from_slice(b"\"nemesis\""),
    }
    out.extend_from_slice(b",\"type\":");
    out.extend_from_slice(match op.kind {
        crate::OpType::Invoke => b"\"invoke\"",
        crate::OpType::Ok => b"\"ok\"",
        crate::OpType::Fail => b"\"fail\"",
        crate::OpType::Info => b"\"info\"",
    });
    out.extend_from_slice(b",\"f\":");
    put_str(out, op.f.as_str())?;
    if let Some(k) = op.key() {
        out.extend_from_slice(b",\"key\":");
        put_u64(out, k);
    }
    out.extend_from_slice(b",\"value\":");
    put_value(out, &op.value)?;
    let OpExt {
        node,
        error,
        meta,
        siblings,
    } = op.ext_ref();
    if let Some(v) = node {
        out.extend_from_slice(b",\"node\":");
        put_str(out, v)?;
    }
    if let Some(v) = error {
        out.extend_from_slice(b",\"error\":");
        put_str(out, v)?;
    }
    if let Some(v) = meta {
        out.extend_from_slice(b",\"meta\":");
        put_json(out, v)?;
    }
    if let Some(vs) = siblings {
        out.extend_from_slice(b",\"siblings\":");
        put_array(out, vs.iter(), put_value)?;
    }
    out.push(b'}');
    Ok(())
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

fn put_value(out: &mut Vec<u8>, v: &Value) -> serde_json::Result<()> {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Int(i) => put_i64(out, *i),
        Value::List(xs) => put_array(out, xs.iter(), |out, &x| {
            put_i64(out, x);
            Ok(())
        })?,
        Value::Other(j) => put_json(out, j)?,
    }
    Ok(())
}

/// A JSON array: `[`, each item put by `put`, comma-separated, `]`.
fn put_array<T>(
    out: &mut Vec<u8>,
    items: impl Iterator<Item = T>,
    mut put: impl FnMut(&mut Vec<u8>, T) -> serde_json::Result<()>,
) -> serde_json::Result<()> {
    out.push(b'[');
    for (i, x) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        put(out, x)?;
    }
    out.push(b']');
    Ok(())
}

/// A JSON string: as is between quotes when nothing in it needs escaping (the common
/// case: node names, function names, error texts), else serde_json's escaping.
fn put_str(out: &mut Vec<u8>, s: &str) -> serde_json::Result<()> {
    if s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        return serde_json::to_writer(&mut *out, s);
    }
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
    Ok(())
}

/// A verbatim JSON value (`meta`, `Other`): integers and plain strings by hand, floats
/// and escaped strings by serde_json.
fn put_json(out: &mut Vec<u8>, v: &serde_json::Value) -> serde_json::Result<()> {
    use serde_json::Value as J;
    match v {
        J::Null => out.extend_from_slice(b"null"),
        J::Bool(true) => out.extend_from_slice(b"true"),
        J::Bool(false) => out.extend_from_slice(b"false"),
        J::Number(n) => {
            if let Some(u) = n.as_u64() {
                put_u64(out, u);
            } else if let Some(i) = n.as_i64() {
                put_i64(out, i);
            } else {
                serde_json::to_writer(&mut *out, n)?;
            }
        }
        J::String(s) => put_str(out, s)?,
        J::Array(xs) => put_array(out, xs.iter(), put_json)?,
        J::Object(m) => {
            out.push(b'{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                put_str(out, k)?;
                out.push(b':');
                put_json(out, x)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{F, OpType, Process, Value, read_jsonl};

    #[test]
    fn written_history_reads_back_identically() {
        let mut w = HistoryWriter::new(Vec::new());
        let ops: Vec<Op> = (0..10)
            .map(|i| {
                Op::new(
                    i,
                    i * 7,
                    Process::client(i % 3),
                    OpType::Invoke,
                    F::Append,
                    Some(i % 2),
                    Value::Int(i as i64),
                )
            })
            .collect();
        for op in &ops {
            w.append(op).unwrap();
        }
        w.flush().unwrap();
        let bytes = w.into_inner().unwrap();
        let (h, warn) = read_jsonl(bytes.as_slice(), std::path::Path::new("mem")).unwrap();
        assert!(warn.is_empty());
        assert_eq!(h.ops, ops);
    }

    /// Ops of every shape the encoder distinguishes (and some it hands to serde_json).
    fn shapes() -> Vec<Op> {
        use serde_json::json;
        let op = |i: u64, p: Process, kind, f, key, value| {
            Op::new(i, i * 1_000_003, p, kind, f, key, value)
        };
        let c = Process::client;
        let mut ops = vec![
            op(0, c(0), OpType::Invoke, F::Read, Some(3), Value::Null),
            op(
                1,
                c(7),
                OpType::Ok,
                F::Read,
                Some(0),
                Value::list(vec![1, -2, i64::MAX, i64::MIN]),
            ),
            op(
                2,
                c(u64::from(u32::MAX) - 1),
                OpType::Fail,
                F::Write,
                None,
                Value::Int(-5),
            ),
            op(
                3,
                Process::NEMESIS,
                OpType::Info,
                F::parse("start-partition"),
                None,
                Value::other(
                    json!({"cuts": [["n1", "n2"], ["n3"]], "x": 1.5, "t": true, "f": false, "n": null}),
                ),
            ),
            op(
                4,
                c(1),
                OpType::Info,
                F::Append,
                Some(u64::from(u32::MAX) - 1),
                Value::list(Vec::new()),
            ),
            op(
                5,
                c(2),
                OpType::Ok,
                F::Cas,
                Some(1),
                Value::other(json!("quote \" back \\ nl \n tab \t ctl \u{1} é ✓ \u{7f}")),
            ),
            op(
                6,
                c(2),
                OpType::Ok,
                F::parse("weird \"name\"\n"),
                Some(1),
                Value::other(json!(-0.0)),
            ),
            op(
                u64::from(u32::MAX),
                c(3),
                OpType::Ok,
                F::Incr,
                Some(2),
                Value::other(json!(u64::MAX)),
            ),
            op(
                8,
                c(3),
                OpType::Ok,
                F::Add,
                Some(2),
                Value::other(json!([1e300, -1, "s", {}])),
            ),
        ];
        let mut full = op(
            9,
            c(4),
            OpType::Ok,
            F::Read,
            Some(5),
            Value::list(vec![4, 5]),
        );
        full.set_node(Some("n2".into()));
        full.set_meta(Some(
            json!({"applied": 23, "time_ms": 1796226001705_i64, "neg": -3, "f": 0.25}),
        ));
        full.set_siblings(Some(vec![Value::list(vec![1]), Value::Int(2), Value::Null]));
        ops.push(full);
        let mut failed = op(10, c(4), OpType::Fail, F::Append, Some(5), Value::Int(9));
        failed.set_node(Some("n\"1".into()));
        failed.set_error(Some("timeout: no answer within 1000 ms\r\n\u{0}".into()));
        ops.push(failed);
        let mut plain_err = op(11, c(4), OpType::Info, F::Append, Some(5), Value::Int(9));
        plain_err.set_error(Some("HTTP 503 Service Unavailable: {\"ok\":false}".into()));
        plain_err.set_meta(Some(json!([])));
        ops.push(plain_err);
        ops
    }

    #[test]
    fn dropping_the_writer_writes_out_what_was_appended() {
        let mut out = Vec::new();
        let op = &shapes()[1];
        HistoryWriter::new(&mut out).append(op).unwrap();
        let mut expected = serde_json::to_vec(op).unwrap();
        expected.push(b'\n');
        assert_eq!(out, expected);
    }

    #[test]
    fn lines_are_byte_for_byte_serde_json() {
        for op in shapes() {
            let mut ours = Vec::new();
            encode_op(&mut ours, &op).unwrap();
            let theirs = serde_json::to_vec(&op).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&theirs),
                "{op:?}"
            );
        }
    }

    #[test]
    fn every_line_reaches_the_output_at_flush_and_large_batches_go_out_before() {
        let ops = shapes();
        let mut w = HistoryWriter::new(Vec::new());
        let mut expected = Vec::new();
        for op in ops.iter().cycle().take(2000) {
            w.append(op).unwrap();
            serde_json::to_writer(&mut expected, op).unwrap();
            expected.push(b'\n');
        }
        // More than BUFFER_BYTES appended: the complete lines before went out already.
        let out = w.out.as_ref().unwrap();
        assert!(!out.is_empty() && out.len() < expected.len());
        assert_eq!(out[..], expected[..out.len()]);
        assert_eq!(out.last(), Some(&b'\n'));
        w.flush().unwrap();
        assert_eq!(w.written(), 2000);
        assert_eq!(w.into_inner().unwrap(), expected);
    }

    proptest::proptest! {
        /// Any strings (escapes, control characters, non-ASCII) and integers: the same
        /// bytes as serde_json.
        #[test]
        fn any_strings_and_integers_encode_as_serde_json(
            node in ".*", error in "\\PC*|[\\x00-\\x7f]*", t in proptest::prelude::any::<u64>(),
            v in proptest::prelude::any::<i64>(), xs in proptest::collection::vec(proptest::prelude::any::<i64>(), 0..8),
            m in proptest::prelude::any::<i64>(),
        ) {
            let mut op = Op::new(1, t, Process::client(2), OpType::Ok, F::Read, Some(3), Value::list(xs));
            op.set_node(Some(node.clone()));
            op.set_error(Some(error));
            op.set_meta(Some(serde_json::json!({ node: m, "v": v })));
            let mut ours = Vec::new();
            encode_op(&mut ours, &op).unwrap();
            proptest::prop_assert_eq!(ours, serde_json::to_vec(&op).unwrap());
        }
    }
}
