//! The reader's fast path: a hand-written scanner for exactly the line shape schism's own
//! writer emits (`HistoryWriter`, i.e. `Op`'s `Serialize`), which builds the `Op` straight
//! from the bytes.
//!
//! Accepted, byte for byte: `{"index":U,"time_ns":U,"process":U|"nemesis","type":"T",
//! "f":S[,"key":U],"value":V[,"node":S][,"error":S][,"meta":M][,"siblings":[V,…]]}` and
//! nothing around it — the fields in that order, no white space, `U` a canonical
//! non-negative integer, `T` one of the four op types, `S` a string of printable ASCII
//! without escapes, `V` `null`, an integer or a list of integers, `M` an object of such
//! strings to integers, strings, `true`, `false` or `null`. Integers are taken only where
//! serde_json would read the same integer (no leading zero, no `-0`, within `u64`/`i64`,
//! within the `Op` limits). Anything else — another key order, white space, escapes,
//! non-ASCII text, floats, nested values (nemesis payloads), a byte-order mark, a
//! truncated line, an error of any kind — is `None`, and the caller parses the line with
//! serde_json as before: the fast path changes no outcome and no message, only the time
//! (the tests below check its ops against serde_json's on random, real and mutated lines).
//! A line it accepts is all ASCII, hence valid UTF-8 with nothing to trim.

use crate::{F, Op, OpExt, OpType, Process, Value};
use std::sync::Arc;
use thin_vec::ThinVec;

/// The op on this line (without its newline), or `None` when the line is not exactly in
/// the writer's shape.
pub(crate) fn parse_op(line: &[u8]) -> Option<Op> {
    let mut c = Cursor { b: line, i: 0 };
    c.lit(b"{\"index\":")?;
    let index = c.uint()?;
    c.lit(b",\"time_ns\":")?;
    let time_ns = c.uint()?;
    c.lit(b",\"process\":")?;
    let process = if c.eat(b"\"nemesis\"") {
        Process::NEMESIS
    } else {
        Process::try_client(c.uint()?).ok()?
    };
    c.lit(b",\"type\":\"")?;
    let kind = if c.eat(b"invoke\"") {
        OpType::Invoke
    } else if c.eat(b"ok\"") {
        OpType::Ok
    } else if c.eat(b"fail\"") {
        OpType::Fail
    } else if c.eat(b"info\"") {
        OpType::Info
    } else {
        return None;
    };
    c.lit(b",\"f\":")?;
    let f_name = c.string_bytes()?;
    let key = if c.eat(b",\"key\":") {
        Some(c.uint()?)
    } else {
        None
    };
    c.lit(b",\"value\":")?;
    let value = c.value()?;
    let mut ext = OpExt::default();
    if c.eat(b",\"node\":") {
        ext.node = Some(c.string()?.to_owned());
    }
    if c.eat(b",\"error\":") {
        ext.error = Some(c.string()?.to_owned());
    }
    if c.eat(b",\"meta\":") {
        ext.meta = Some(c.flat_object()?);
    }
    if c.eat(b",\"siblings\":") {
        ext.siblings = Some(c.values()?);
    }
    c.lit(b"}")?;
    if c.i != line.len() {
        return None;
    }
    // Only now, the line being whole: a new function name is interned as serde's path
    // would intern it.
    let f = match f_name {
        b"read" => F::Read,
        b"write" => F::Write,
        b"cas" => F::Cas,
        b"append" => F::Append,
        b"add" => F::Add,
        b"incr" => F::Incr,
        other => F::try_parse(std::str::from_utf8(other).ok()?).ok()?,
    };
    let mut op = Op::try_new(index, time_ns, process, kind, f, key, value).ok()?;
    if ext.node.is_some() || ext.error.is_some() || ext.meta.is_some() || ext.siblings.is_some() {
        op.with_ext(|x| *x = ext);
    }
    Some(op)
}

/// A position in a line.
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// Consumes `s` if the line continues with it.
    #[inline(always)]
    fn eat(&mut self, s: &[u8]) -> bool {
        if self.b[self.i..].starts_with(s) {
            self.i += s.len();
            true
        } else {
            false
        }
    }

    /// Consumes `s`, which must come next.
    #[inline(always)]
    fn lit(&mut self, s: &[u8]) -> Option<()> {
        self.eat(s).then_some(())
    }

    /// A non-negative integer as serde_json reads one into a `u64`: digits, no leading
    /// zero, no overflow. What follows is the caller's to check (a `.` or `e` there makes
    /// it a float, which no caller accepts).
    #[inline(always)]
    fn uint(&mut self) -> Option<u64> {
        let first = self.peek()?;
        if !first.is_ascii_digit() {
            return None;
        }
        self.i += 1;
        let mut v = u64::from(first - b'0');
        while let Some(d) = self.peek().filter(u8::is_ascii_digit) {
            if v == 0 {
                // A leading zero: serde_json rejects it.
                return None;
            }
            v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
            self.i += 1;
        }
        Some(v)
    }

    /// A negative integer's magnitude, as a `u64` (after the `-`), or a non-negative one.
    #[inline(always)]
    fn signed(&mut self) -> Option<(bool, u64)> {
        let negative = self.eat(b"-");
        let m = self.uint()?;
        // serde_json reads `-0` as the float -0.0.
        if negative && m == 0 {
            return None;
        }
        Some((negative, m))
    }

    /// An integer that `Value` holds as `Value::Int` (serde_json gives larger positive
    /// ones as `u64`, which `Value` keeps verbatim).
    #[inline(always)]
    fn int(&mut self) -> Option<i64> {
        match self.signed()? {
            (false, m) => i64::try_from(m).ok(),
            (true, m) => 0i64.checked_sub_unsigned(m),
        }
    }

    /// A string of printable ASCII without escapes, quotes included.
    fn string(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.string_bytes()?).ok()
    }

    /// `string`'s bytes (all printable ASCII).
    #[inline(always)]
    fn string_bytes(&mut self) -> Option<&'a [u8]> {
        self.lit(b"\"")?;
        let start = self.i;
        loop {
            match self.peek()? {
                b'"' => break,
                b'\\' => return None,
                0x20..=0x7e => self.i += 1,
                _ => return None,
            }
        }
        let s = &self.b[start..self.i];
        self.i += 1;
        Some(s)
    }

    /// `null`, an integer or a list of integers.
    fn value(&mut self) -> Option<Value> {
        match self.peek()? {
            b'n' => {
                self.lit(b"null")?;
                Some(Value::Null)
            }
            b'[' => self.int_list(),
            _ => self.int().map(Value::Int),
        }
    }

    /// `[]` or `[I,I,…]`, held at exactly its length as serde's path holds it.
    fn int_list(&mut self) -> Option<Value> {
        self.lit(b"[")?;
        if self.eat(b"]") {
            return Some(Value::list(ThinVec::new()));
        }
        let rest = &self.b[self.i..];
        let end = rest.iter().position(|&b| b == b']')?;
        let n = 1 + rest[..end].iter().filter(|&&b| b == b',').count();
        let mut ints = ThinVec::with_capacity(n);
        loop {
            ints.push(self.int()?);
            if self.eat(b"]") {
                return Some(Value::List(Arc::new(ints)));
            }
            self.lit(b",")?;
        }
    }

    /// `[V,…]` of `value`s (`siblings`).
    fn values(&mut self) -> Option<Vec<Value>> {
        self.lit(b"[")?;
        let mut out = Vec::new();
        if self.eat(b"]") {
            return Some(out);
        }
        loop {
            out.push(self.value()?);
            if self.eat(b"]") {
                return Some(out);
            }
            self.lit(b",")?;
        }
    }

    /// An object of plain keys to scalars, as `serde_json::Value` holds it (`meta`).
    fn flat_object(&mut self) -> Option<serde_json::Value> {
        self.lit(b"{")?;
        let mut map = serde_json::Map::new();
        if !self.eat(b"}") {
            loop {
                let key = self.string()?;
                self.lit(b":")?;
                let v = self.scalar()?;
                // A repeated key keeps the last value, as serde_json's `Value` does.
                map.insert(key.to_owned(), v);
                if self.eat(b"}") {
                    break;
                }
                self.lit(b",")?;
            }
        }
        Some(serde_json::Value::Object(map))
    }

    /// An integer, string, `true`, `false` or `null`, as `serde_json::Value`.
    fn scalar(&mut self) -> Option<serde_json::Value> {
        use serde_json::Value as J;
        Some(match self.peek()? {
            b'"' => J::String(self.string()?.to_owned()),
            b't' => {
                self.lit(b"true")?;
                J::Bool(true)
            }
            b'f' => {
                self.lit(b"false")?;
                J::Bool(false)
            }
            b'n' => {
                self.lit(b"null")?;
                J::Null
            }
            _ => match self.signed()? {
                (false, m) => J::from(m),
                (true, m) => J::from(0i64.checked_sub_unsigned(m)?),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::{HistoryError, ParsedLine, parse_line, parse_line_serde};
    use crate::{HistoryWriter, MAX_CLIENT, MAX_INDEX, MAX_KEY};
    use proptest::prelude::*;
    use std::path::Path;

    /// What serde's path makes of a line the fast path took.
    fn serde_op(line: &[u8]) -> Op {
        match parse_line_serde(line, 1, true, Path::new("h.jsonl")) {
            Ok(ParsedLine::Op(op)) => op,
            other => panic!(
                "serde path: {other:?} for {}",
                String::from_utf8_lossy(line)
            ),
        }
    }

    /// A line's outcome through the reader, comparable: the op, or what else it was.
    #[derive(Debug, PartialEq)]
    enum Outcome {
        Op(Op),
        Blank,
        Truncated,
        Err(String),
    }

    fn outcome(r: Result<ParsedLine, HistoryError>) -> Outcome {
        match r {
            Ok(ParsedLine::Op(op)) => Outcome::Op(op),
            Ok(ParsedLine::Blank) => Outcome::Blank,
            Ok(ParsedLine::Truncated) => Outcome::Truncated,
            Err(e) => Outcome::Err(e.to_string()),
        }
    }

    /// The reader (fast path first) and serde's path agree on this line, whole or as
    /// an unfinished last line; returns whether the fast path took it.
    fn agree(line: &[u8], n: usize) -> bool {
        let path = Path::new("h.jsonl");
        for complete in [true, false] {
            let fast = outcome(parse_line(line, n, complete, path));
            let slow = outcome(parse_line_serde(line, n, complete, path));
            assert_eq!(
                fast,
                slow,
                "line {n} (complete: {complete}): {}",
                String::from_utf8_lossy(line)
            );
        }
        parse_op(line).is_some()
    }

    fn written(ops: &[Op]) -> Vec<u8> {
        let mut w = HistoryWriter::new(Vec::new());
        for op in ops {
            w.append(op).unwrap();
        }
        w.into_inner().unwrap()
    }

    /// Printable ASCII without `"` and `\`: what the fast path takes in a string.
    const PLAIN: &str = "[ !#-\\[\\]-~]{0,12}";

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(Value::Int),
            proptest::collection::vec(any::<i64>(), 0..12).prop_map(Value::list),
        ]
    }

    fn scalar() -> impl Strategy<Value = serde_json::Value> {
        prop_oneof![
            any::<i64>().prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            any::<bool>().prop_map(serde_json::Value::from),
            Just(serde_json::Value::Null),
            PLAIN.prop_map(serde_json::Value::from),
        ]
    }

    /// Any op the fast path is meant to take: every client function, a few nemesis
    /// names, every limit's extremes, every optional field.
    fn op() -> impl Strategy<Value = Op> {
        let f = prop_oneof![
            Just(F::Read),
            Just(F::Write),
            Just(F::Cas),
            Just(F::Append),
            Just(F::Add),
            Just(F::Incr),
            prop_oneof![
                Just("start-partition"),
                Just("heal"),
                Just(""),
                Just("odd name (1)")
            ]
            .prop_map(F::parse),
        ];
        let kind = prop_oneof![
            Just(OpType::Invoke),
            Just(OpType::Ok),
            Just(OpType::Fail),
            Just(OpType::Info),
        ];
        let process = prop_oneof![
            Just(Process::NEMESIS),
            (0..=MAX_CLIENT).prop_map(Process::client),
            (0..20u64).prop_map(Process::client),
        ];
        let head = (
            prop_oneof![0..=MAX_INDEX, 0..1000u64],
            any::<u64>(),
            process,
            kind,
            f,
            proptest::option::of(prop_oneof![0..=MAX_KEY, 0..10u64]),
            value(),
        );
        let ext = (
            proptest::option::of(PLAIN),
            proptest::option::of(PLAIN),
            proptest::option::of(proptest::collection::btree_map(PLAIN, scalar(), 0..4)),
            proptest::option::of(proptest::collection::vec(value(), 0..4)),
        );
        (head, ext).prop_map(
            |((index, time_ns, process, kind, f, key, value), (node, error, meta, siblings))| {
                let mut op = Op::new(index, time_ns, process, kind, f, key, value);
                op.set_node(node);
                op.set_error(error);
                op.set_meta(meta.map(|m| serde_json::Value::Object(m.into_iter().collect())));
                op.set_siblings(siblings);
                op
            },
        )
    }

    proptest! {
        /// (a) Every line our writer writes takes the fast path, and gives serde's op.
        #[test]
        fn written_lines_take_the_fast_path(ops in proptest::collection::vec(op(), 1..20)) {
            let text = written(&ops);
            for (i, line) in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()).enumerate() {
                let fast = parse_op(line);
                prop_assert!(fast.is_some(), "fell back on {}", String::from_utf8_lossy(line));
                prop_assert_eq!(fast.as_ref(), Some(&serde_op(line)));
                prop_assert_eq!(fast.as_ref(), Some(&ops[i]));
                agree(line, i + 1);
            }
        }

        /// Ops with any text (escapes, non-ASCII, control characters) and any value:
        /// the reader's outcome is serde's, whichever path it took.
        #[test]
        fn any_written_line_reads_as_before(
            ops in proptest::collection::vec(op(), 1..6),
            node in ".{0,8}",
            f in "\\PC{0,6}",
            other in prop_oneof![
                Just(serde_json::json!({"groups": [["n1"], ["n2", "n3"]]})),
                Just(serde_json::json!(1.5)),
                Just(serde_json::json!(u64::MAX)),
                Just(serde_json::json!([1, "x", 3])),
                ".{0,6}".prop_map(serde_json::Value::from),
            ],
        ) {
            let mut ops = ops;
            ops[0].set_node(Some(node));
            ops[0].f = F::parse(&f);
            ops[0].value = Value::other(other);
            let text = written(&ops);
            for (i, line) in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()).enumerate() {
                agree(line, i + 1);
            }
        }
    }

    fn fixture(rel: &str) -> Vec<u8> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Lines of real runs of our runner: `tests/data/run-lines.jsonl` holds two lines of
    /// each shape seen in seven `schism test --time-limit 5s`/`8s` runs (append and
    /// register; no nemesis, partition, kill, pause, clock; leader-follower and
    /// multi-leader with version vectors: `fail` and `info` with errors, `meta`,
    /// `siblings`, nemesis events), and the runner's own fixture run.
    fn real_lines() -> Vec<Vec<u8>> {
        let mut lines = Vec::new();
        for rel in [
            "tests/data/run-lines.jsonl",
            "../runner/tests/it/fixtures/main-run/history.jsonl",
        ] {
            let text = fixture(rel);
            lines.extend(
                text.split(|&b| b == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(<[u8]>::to_vec),
            );
        }
        lines
    }

    /// (b) Every client op of real runs takes the fast path and gives serde's op; a
    /// nemesis op takes it unless its value is an object.
    #[test]
    fn real_run_lines_take_the_fast_path() {
        let lines = real_lines();
        assert!(lines.len() > 400, "{}", lines.len());
        let mut taken = 0;
        for (i, line) in lines.iter().enumerate() {
            let text = String::from_utf8_lossy(line);
            let fast = parse_op(line);
            if let Some(op) = &fast {
                assert_eq!(op, &serde_op(line), "{text}");
                taken += 1;
            } else {
                let op = serde_op(line);
                assert!(
                    op.process.is_nemesis() && op.value.as_json().is_some(),
                    "fell back on {text}"
                );
            }
            agree(line, i + 1);
        }
        assert!(taken > lines.len() * 9 / 10, "{taken} of {}", lines.len());
    }

    /// Textual changes to a line: each one either keeps the line in the writer's shape
    /// or must send it to serde's path.
    fn mutations(line: &[u8]) -> Vec<Vec<u8>> {
        let s = String::from_utf8_lossy(line).into_owned();
        let mut out: Vec<String> = vec![
            format!(" {s}"),
            format!("{s} "),
            format!("{s}\r"),
            format!("\u{feff}{s}"),
            s.replacen(':', ": ", 1),
            s.replacen(',', " ,", 1),
            s.replacen(",\"", ",\n\"", 1),
            s.replacen("{\"index\"", "{\"x\":1,\"index\"", 1),
            s.replacen('}', ",\"x\":[1,{}]}", 1),
            s.replacen(",\"time_ns\"", ",\"index\":3,\"time_ns\"", 1),
            s.replacen("\"type\":\"", "\"type\":\"x", 1),
            s.replacen("\"ok\"", "\"OK\"", 1),
            s.replacen("\"invoke\"", "\"inv\\u006fke\"", 1),
            s.replacen("\"f\":\"", "\"f\":\"\\\"", 1),
            s.replacen("\"f\":\"", "\"f\":\"\u{e9}", 1),
            s.replacen("\"n", "\"\\u006e", 1),
            s.replacen("\"n", "\"\u{1}", 1),
            s.replacen("\"value\":", "\"value\":-0", 1),
            s.replacen("\"value\":", "\"value\":0", 1),
            s.replacen("\"value\":null", "\"value\":1.0", 1),
            s.replacen("\"value\":null", "\"value\":[]", 1),
            s.replacen("\"value\":null", "\"value\":nul", 1),
            s.replacen("\"index\":", "\"index\":0", 1),
            s.replacen("\"index\":", "\"index\":-", 1),
            s.replacen("\"index\":", "\"index\":99999999999999999999", 1),
            s.replacen("\"index\":", "\"index\":4294967296", 1),
            s.replacen("\"time_ns\":", "\"time_ns\":1e", 1),
            s.replacen("\"process\":", "\"process\":4294967295", 1),
            s.replacen("\"process\":", "\"process\":-", 1),
            s.replacen("\"key\":", "\"key\":null,\"k\":", 1),
            s.replacen("\"key\":", "\"key\":4294967295", 1),
            s.replacen(",\"key\":", ",\"key\":null}", 1),
            s.replacen("\"meta\":{", "\"meta\":{\"a\":{},", 1),
            s.replacen("\"meta\":{", "\"meta\":{\"a\":-0,", 1),
            s.replacen("\"meta\":{", "\"meta\":{\"a\":1.5,", 1),
            s.replacen("\"meta\":{", "\"meta\":{\"lsn\":-9223372036854775808,", 1),
            s.replacen("\"meta\":{", "\"meta\":{\"lsn\":-9223372036854775809,", 1),
            s.replacen("\"meta\":{", "\"meta\":{\"lsn\":18446744073709551615,", 1),
            s.replacen("\"meta\":{", "\"meta\":{\"lsn\":18446744073709551616,", 1),
            s.replacen("\"meta\":", "\"meta\":null,\"m\":", 1),
            s.replacen("\"node\":", "\"node\":null,\"n\":", 1),
            s.replacen("\"siblings\":[", "\"siblings\":[null,", 1),
            s.replacen("\"siblings\":[", "\"siblings\":[[1,-2],", 1),
            s.replacen('[', "[9223372036854775808,", 1),
            s.replacen('[', "[-9223372036854775808,", 1),
            s.replacen('[', "[-9223372036854775809,", 1),
            s.replacen('[', "[1,]", 1),
            s.replacen('[', "[\"1\",", 1),
            s.replacen('}', "}}", 1),
            format!("{s}{s}"),
        ];
        // Two neighbouring fields swapped.
        let fields: Vec<&str> = s
            .trim_start_matches('{')
            .trim_end_matches('}')
            .split(",\"")
            .collect();
        if fields.len() > 2 {
            let mut swapped = fields.clone();
            swapped.swap(1, 2);
            out.push(format!("{{{}}}", swapped.join(",\"")));
        }
        let mut out: Vec<Vec<u8>> = out.into_iter().map(String::into_bytes).collect();
        // Every cut, as a killed writer leaves the last line.
        out.extend((0..line.len()).map(|n| line[..n].to_vec()));
        // Invalid UTF-8.
        let mut bad = line.to_vec();
        bad.insert(line.len() / 2, 0xff);
        out.push(bad);
        out
    }

    /// (c) Mutated lines read exactly as serde's path reads them: the same op, or the
    /// same blank, truncated, or error message naming the same line.
    #[test]
    fn mutated_lines_read_as_before() {
        let mut lines = real_lines();
        lines.truncate(80);
        let generated = [
            r#"{"index":0,"time_ns":0,"process":0,"type":"invoke","f":"cas","key":0,"value":[0,-1]}"#,
            r#"{"index":7,"time_ns":9,"process":"nemesis","type":"info","f":"heal","value":null,"error":"x"}"#,
        ];
        lines.extend(generated.iter().map(|l| l.as_bytes().to_vec()));
        let mut checked = 0;
        for (i, line) in lines.iter().enumerate() {
            for m in mutations(line) {
                agree(&m, i + 1);
                // Line 1 is where a byte-order mark counts.
                agree(&m, 1);
                checked += 1;
            }
        }
        assert!(checked > 10_000, "{checked}");
    }

    #[test]
    fn extremes_and_near_misses() {
        let take = [
            r#"{"index":4294967295,"time_ns":18446744073709551615,"process":4294967294,"type":"fail","f":"x","key":4294967294,"value":-9223372036854775808}"#,
            r#"{"index":0,"time_ns":0,"process":0,"type":"ok","f":"read","value":[]}"#,
            r#"{"index":1,"time_ns":1,"process":1,"type":"ok","f":"read","value":9223372036854775807,"meta":{}}"#,
            r#"{"index":1,"time_ns":1,"process":1,"type":"ok","f":"read","value":null,"meta":{"a":1,"a":"2"},"siblings":[]}"#,
        ];
        for line in take {
            let op = parse_op(line.as_bytes()).unwrap_or_else(|| panic!("fell back on {line}"));
            assert_eq!(op, serde_op(line.as_bytes()), "{line}");
        }
        let leave = [
            r#"{"index":4294967296,"time_ns":0,"process":0,"type":"ok","f":"read","value":null}"#,
            r#"{"index":0,"time_ns":18446744073709551616,"process":0,"type":"ok","f":"read","value":null}"#,
            r#"{"index":0,"time_ns":0,"process":4294967295,"type":"ok","f":"read","value":null}"#,
            r#"{"index":0,"time_ns":0,"process":0,"type":"ok","f":"read","key":4294967295,"value":null}"#,
            r#"{"index":0,"time_ns":0,"process":0,"type":"ok","f":"read","value":9223372036854775808}"#,
            r#"{"index":0,"time_ns":0,"process":0,"type":"ok","f":"read","value":-0}"#,
            r#"{"index":0,"time_ns":0,"process":0,"type":"ok","f":"read","value":[1,2.0]}"#,
            r#"{"index":0,"time_ns":0,"process":0,"type":"ok","f":"read","value":null,"meta":{"a":[]}}"#,
            r#"{"index":0,"time_ns":0,"process":0,"type":"ok","f":"read","value":null} "#,
            r#"{"index":00,"time_ns":0,"process":0,"type":"ok","f":"read","value":null}"#,
        ];
        for line in leave {
            assert!(parse_op(line.as_bytes()).is_none(), "took {line}");
            agree(line.as_bytes(), 1);
        }
    }
}
