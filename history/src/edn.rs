//! Jepsen/Knossos EDN histories: a small hand-written EDN reader and the mapping of
//! Jepsen op maps onto schism's `Op`.
//!
//! A file is either one collection (`[…]` or `(…)`) of op maps, or a sequence of top-level
//! op maps. The reader understands what Jepsen writes: commas as whitespace, `;` comments,
//! `#_` discards, keywords, symbols (`nil`, `true`, `false`), integers, floats, strings,
//! characters, vectors, lists, maps, sets and tagged literals (`#jepsen.history.Op{…}`,
//! `#inst "…"`: the tag is dropped, the value kept). Op maps carry `:process` (an integer
//! or `:nemesis`), `:type`, `:f`, and optionally `:value`, `:time`, `:index`, `:error`.
//!
//! Mapping: `:index` (else the op's position, counting from 0, so printed indices match
//! Knossos's), `:time` → `time_ns` (0 if absent), `:f` → `F` (`:txn`, `:acquire`, … stay
//! `F::Other`). Single-register ops (`read`, `write`, `cas`, `acquire`, `release`) get key
//! 0; txn ops have no key and keep their micro-ops as JSON (`[["read","x",null], …]`).
//! Integer vectors become `Value::List` (cas `[from to]`), anything else verbatim JSON.
//!
//! Guarantees: a syntax error or a malformed op names the file and the 1-based line where
//! the offending form starts (invalid UTF-8: the line it is on), quoting at most
//! `MAX_ERROR_CHARS` characters; indices must increase; nothing is silently dropped; a
//! leading byte-order mark is skipped. Bounded: nesting deeper than `MAX_EDN_DEPTH`, one
//! top-level form longer than `MAX_EDN_FORM_BYTES` and a file larger than `MAX_EDN_BYTES`
//! are errors, never a stack overflow or unbounded memory; each op is converted as soon as
//! its form is read, so memory holds one form's tree at a time.

use crate::{F, History, HistoryError, Key, Op, OpType, Process, ThinVec, Value};

mod stream;
use std::io::Read;
use std::path::Path;
pub use stream::EdnStream;

/// Deepest nesting of collections (the outer collection counts): Jepsen ops nest a few
/// levels; the recursive reader must not exhaust a thread's stack.
pub const MAX_EDN_DEPTH: usize = 128;
/// Longest top-level form (one op map), in bytes: the same bound as a JSON Lines line.
pub const MAX_EDN_FORM_BYTES: usize = crate::MAX_LINE_BYTES;
/// Largest EDN file, in bytes (256 MiB): EDN is read whole, unlike JSON Lines.
pub const MAX_EDN_BYTES: usize = 256 << 20;

/// A parsed EDN value, with the line it starts on.
#[derive(Debug, Clone, PartialEq)]
enum Edn {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Keyword(String),
    Symbol(String),
    Vector(Vec<Node>),
    List(Vec<Node>),
    Set(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
struct Node {
    line: usize,
    v: Edn,
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    line: usize,
    path: &'a Path,
    /// Collections open around the current position.
    depth: usize,
    /// Where the current top-level form starts (for `MAX_EDN_FORM_BYTES`).
    form_start: usize,
    form_line: usize,
    /// True when the file is one collection whose items are the top-level forms.
    items_are_forms: bool,
}

impl<'a> Parser<'a> {
    fn err(&self, line: usize, msg: impl AsRef<str>) -> HistoryError {
        HistoryError::malformed(self.path, line, msg)
    }

    /// Marks the start of a top-level form.
    fn start_form(&mut self) {
        self.skip();
        self.form_start = self.pos;
        self.form_line = self.line;
    }

    fn check_form_size(&self) -> Result<(), HistoryError> {
        if self.pos - self.form_start > MAX_EDN_FORM_BYTES {
            return Err(self.err(
                self.form_line,
                format!(
                    "the form starting here is longer than {} MiB (one op map is far smaller): not a Jepsen history",
                    MAX_EDN_FORM_BYTES >> 20
                ),
            ));
        }
        Ok(())
    }

    /// Enters a collection opened on `line`.
    fn open(&mut self, line: usize) -> Result<(), HistoryError> {
        self.depth += 1;
        if self.depth > MAX_EDN_DEPTH {
            return Err(self.err(
                line,
                format!(
                    "collections nest deeper than {MAX_EDN_DEPTH} levels here (Jepsen ops nest a few): not a Jepsen history"
                ),
            ));
        }
        Ok(())
    }

    /// Skips whitespace, commas and comments.
    fn skip(&mut self) {
        while let Some(&c) = self.s.get(self.pos) {
            match c {
                b'\n' => {
                    self.line += 1;
                    self.pos += 1;
                }
                b' ' | b'\t' | b'\r' | b',' => self.pos += 1,
                b';' => {
                    while self.s.get(self.pos).is_some_and(|&c| c != b'\n') {
                        self.pos += 1;
                    }
                }
                _ => break,
            }
        }
    }

    fn at_end(&mut self) -> bool {
        self.skip();
        self.pos >= self.s.len()
    }

    fn is_delim(c: u8) -> bool {
        matches!(
            c,
            b' ' | b'\t'
                | b'\r'
                | b'\n'
                | b','
                | b';'
                | b'['
                | b']'
                | b'('
                | b')'
                | b'{'
                | b'}'
                | b'"'
        )
    }

    /// The token at the current position, bounded by the form's size limit.
    fn token(&mut self) -> Result<&'a str, HistoryError> {
        let start = self.pos;
        while self.s.get(self.pos).is_some_and(|&c| !Self::is_delim(c)) {
            self.pos += 1;
        }
        self.check_form_size()?;
        // Token boundaries are ASCII in a &str, so this fails only for a token that starts
        // inside a character (after a `\\` character literal took one byte of it).
        Ok(std::str::from_utf8(&self.s[start..self.pos]).unwrap_or(""))
    }

    /// Items up to the closing byte `close` (the opening byte is consumed).
    fn items(&mut self, close: u8, open_line: usize) -> Result<Vec<Node>, HistoryError> {
        let mut out = Vec::new();
        self.each_item(close, open_line, |n| {
            out.push(n);
            Ok(())
        })?;
        Ok(out)
    }

    /// Hands each item up to the closing byte `close` to `f`, so a caller can consume a
    /// long collection without holding it.
    fn each_item(
        &mut self,
        close: u8,
        open_line: usize,
        mut f: impl FnMut(Node) -> Result<(), HistoryError>,
    ) -> Result<(), HistoryError> {
        self.open(open_line)?;
        loop {
            self.skip();
            match self.s.get(self.pos) {
                None => {
                    return Err(self.err(
                        open_line,
                        format!(
                            "collection opened here is never closed (expected '{}')",
                            close as char
                        ),
                    ));
                }
                Some(&c) if c == close => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(());
                }
                Some(_) => {
                    if self.items_are_forms && self.depth == 1 {
                        self.start_form();
                    }
                    if let Some(n) = self.value()? {
                        f(n)?;
                    }
                }
            }
        }
    }

    /// One value; `None` for a `#_` discard that consumed a form.
    fn value(&mut self) -> Result<Option<Node>, HistoryError> {
        self.skip();
        self.check_form_size()?;
        let line = self.line;
        let Some(&c) = self.s.get(self.pos) else {
            return Err(self.err(line, "unexpected end of file"));
        };
        let v = match c {
            b'[' => {
                self.pos += 1;
                Edn::Vector(self.items(b']', line)?)
            }
            b'(' => {
                self.pos += 1;
                Edn::List(self.items(b')', line)?)
            }
            b'{' => {
                self.pos += 1;
                let items = self.items(b'}', line)?;
                if items.len() % 2 != 0 {
                    return Err(self.err(line, "map has an odd number of forms"));
                }
                let mut pairs = Vec::with_capacity(items.len() / 2);
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    pairs.push((k, v));
                }
                Edn::Map(pairs)
            }
            b']' | b')' | b'}' => {
                return Err(self.err(line, format!("unexpected '{}'", c as char)));
            }
            b'"' => {
                self.pos += 1;
                let mut s = String::new();
                loop {
                    let Some(&c) = self.s.get(self.pos) else {
                        return Err(self.err(line, "string opened here is never closed"));
                    };
                    self.check_form_size()?;
                    self.pos += 1;
                    match c {
                        b'"' => break,
                        b'\\' => {
                            let e = self.s.get(self.pos).copied().unwrap_or(b'\\');
                            self.pos += 1;
                            s.push(match e {
                                b'n' => '\n',
                                b't' => '\t',
                                b'r' => '\r',
                                other => other as char,
                            });
                        }
                        b'\n' => {
                            self.line += 1;
                            s.push('\n');
                        }
                        _ => {
                            // Copy a whole UTF-8 sequence.
                            let start = self.pos - 1;
                            let mut end = self.pos;
                            while self.s.get(end).is_some_and(|&b| b & 0xC0 == 0x80) {
                                end += 1;
                            }
                            s.push_str(std::str::from_utf8(&self.s[start..end]).unwrap_or("?"));
                            self.pos = end;
                        }
                    }
                }
                Edn::Str(s)
            }
            b'#' => {
                self.pos += 1;
                match self.s.get(self.pos) {
                    Some(b'{') => {
                        self.pos += 1;
                        Edn::Set(self.items(b'}', line)?)
                    }
                    Some(b'_') => {
                        self.pos += 1;
                        // `#_#_#_…` recurses like nesting does.
                        self.open(line)?;
                        self.value()?;
                        self.depth -= 1;
                        return Ok(None);
                    }
                    _ => {
                        // A tagged literal: drop the tag, keep the value.
                        let tag = self.token()?;
                        if tag.is_empty() {
                            return Err(self.err(line, "'#' is not followed by a tag"));
                        }
                        self.open(line)?;
                        let tagged = self.value()?;
                        self.depth -= 1;
                        return match tagged {
                            Some(n) => Ok(Some(Node { line, v: n.v })),
                            None => Err(self.err(line, format!("tag #{tag} has no value"))),
                        };
                    }
                }
            }
            b'\\' => {
                self.pos += 1;
                let t = self.token()?;
                let ch = match t {
                    "newline" => "\n".to_owned(),
                    "space" => " ".to_owned(),
                    "tab" => "\t".to_owned(),
                    "" => {
                        let c = self.s.get(self.pos).copied().unwrap_or(b' ');
                        self.pos += 1;
                        (c as char).to_string()
                    }
                    other => other.to_owned(),
                };
                Edn::Str(ch)
            }
            b':' => {
                self.pos += 1;
                let t = self.token()?;
                if t.is_empty() {
                    return Err(self.err(line, "':' is not followed by a keyword name"));
                }
                Edn::Keyword(t.to_owned())
            }
            _ => {
                let t = self.token()?;
                if t.is_empty() {
                    return Err(self.err(line, format!("unexpected character {:?}", c as char)));
                }
                atom(t).ok_or_else(|| self.err(line, format!("cannot read {t:?}")))?
            }
        };
        Ok(Some(Node { line, v }))
    }
}

/// A number or a symbol.
fn atom(t: &str) -> Option<Edn> {
    let first = t.as_bytes()[0];
    let numeric = first.is_ascii_digit()
        || ((first == b'-' || first == b'+') && t.len() > 1 && t.as_bytes()[1].is_ascii_digit());
    if !numeric {
        return Some(match t {
            "nil" => Edn::Nil,
            "true" => Edn::Bool(true),
            "false" => Edn::Bool(false),
            s => Edn::Symbol(s.to_owned()),
        });
    }
    let int = t.strip_suffix('N').unwrap_or(t);
    if let Ok(i) = int.parse::<i64>() {
        return Some(Edn::Int(i));
    }
    t.strip_suffix('M')
        .unwrap_or(t)
        .parse::<f64>()
        .ok()
        .map(Edn::Float)
}

/// Verbatim JSON of an EDN value (keywords and symbols become strings).
fn to_json(v: &Edn) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Edn::Nil => J::Null,
        Edn::Bool(b) => J::Bool(*b),
        Edn::Int(i) => J::from(*i),
        Edn::Float(f) => J::from(*f),
        Edn::Str(s) | Edn::Keyword(s) | Edn::Symbol(s) => J::String(s.clone()),
        Edn::Vector(xs) | Edn::List(xs) | Edn::Set(xs) => {
            J::Array(xs.iter().map(|n| to_json(&n.v)).collect())
        }
        Edn::Map(kv) => J::Object(
            kv.iter()
                .map(|(k, v)| {
                    let key = match &k.v {
                        Edn::Str(s) | Edn::Keyword(s) | Edn::Symbol(s) => s.clone(),
                        other => to_json(other).to_string(),
                    };
                    (key, to_json(&v.v))
                })
                .collect(),
        ),
    }
}

/// EDN text of a value, for `:error`.
fn to_edn_text(v: &Edn) -> String {
    let seq = |xs: &[Node], o: &str, c: &str| {
        let inner: Vec<String> = xs.iter().map(|n| to_edn_text(&n.v)).collect();
        format!("{o}{}{c}", inner.join(" "))
    };
    match v {
        Edn::Nil => "nil".into(),
        Edn::Bool(b) => b.to_string(),
        Edn::Int(i) => i.to_string(),
        Edn::Float(f) => f.to_string(),
        Edn::Str(s) => format!("{s:?}"),
        Edn::Keyword(s) => format!(":{s}"),
        Edn::Symbol(s) => s.clone(),
        Edn::Vector(xs) => seq(xs, "[", "]"),
        Edn::List(xs) => seq(xs, "(", ")"),
        Edn::Set(xs) => seq(xs, "#{", "}"),
        Edn::Map(kv) => {
            let inner: Vec<String> = kv
                .iter()
                .map(|(k, v)| format!("{} {}", to_edn_text(&k.v), to_edn_text(&v.v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

/// `Value` of an op's `:value`.
fn to_value(v: &Edn) -> Value {
    match v {
        Edn::Nil => Value::Null,
        Edn::Int(i) => Value::Int(*i),
        Edn::Vector(xs) | Edn::List(xs) if xs.iter().all(|n| matches!(n.v, Edn::Int(_))) => {
            Value::list(
                xs.iter()
                    .map(|n| match n.v {
                        Edn::Int(i) => i,
                        _ => unreachable!("checked above"),
                    })
                    .collect::<ThinVec<i64>>(),
            )
        }
        other => Value::other(to_json(other)),
    }
}

/// Functions on the single register (or lock) of a Knossos history: they get key 0.
fn single_object(f: &F) -> bool {
    matches!(f, F::Read | F::Write | F::Cas)
        || matches!(f, F::Other(s) if s == "acquire" || s == "release")
}

/// Reads a Jepsen EDN history from text; `path` is only used in messages.
pub fn read_edn(text: &str, path: &Path) -> Result<History, HistoryError> {
    read_edn_bytes(text.as_bytes(), path)
}

/// Reads a Jepsen EDN history from bytes (a leading byte-order mark is skipped; invalid
/// UTF-8 is an error naming its line); `path` is only used in messages.
pub fn read_edn_bytes(bytes: &[u8], path: &Path) -> Result<History, HistoryError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.len() > MAX_EDN_BYTES {
        return Err(HistoryError::malformed(
            path,
            line_at(bytes, MAX_EDN_BYTES),
            too_large(),
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        HistoryError::malformed(
            path,
            line_at(bytes, e.valid_up_to()),
            "not valid UTF-8: not a Jepsen history",
        )
    })?;
    let mut p = Parser {
        s: text.as_bytes(),
        pos: 0,
        line: 1,
        path,
        depth: 0,
        form_start: 0,
        form_line: 1,
        items_are_forms: false,
    };
    let mut ops = Ops::default();
    p.start_form();
    match p.s.get(p.pos) {
        // One collection of op maps: each op is converted as soon as it is read.
        Some(&open @ (b'[' | b'(')) => {
            let open_line = p.line;
            p.pos += 1;
            let close = if open == b'[' { b']' } else { b')' };
            p.items_are_forms = true;
            p.each_item(close, open_line, |node| ops.push(path, node))?;
            while !p.at_end() {
                p.start_form();
                if let Some(n) = p.value()? {
                    return Err(p.err(
                        n.line,
                        format!(
                            "a form follows the collection of ops opened on line {open_line}: a history is one collection of op maps or a sequence of op maps"
                        ),
                    ));
                }
            }
        }
        // A sequence of top-level op maps.
        _ => {
            while !p.at_end() {
                p.start_form();
                if let Some(n) = p.value()? {
                    ops.push(path, n)?;
                }
            }
        }
    }
    Ok(History::from_file(ops.ops, path, ops.lines))
}

/// Ops converted so far, with their lines.
#[derive(Default)]
struct Ops {
    ops: Vec<Op>,
    lines: Vec<usize>,
}

impl Ops {
    fn push(&mut self, path: &Path, node: Node) -> Result<(), HistoryError> {
        let op = to_op(path, &node, self.ops.len() as u64)?;
        if let Some(prev) = self.ops.last()
            && op.index() <= prev.index()
        {
            return Err(HistoryError::malformed(
                path,
                node.line,
                format!(
                    "index {} does not increase (the previous op had {}); histories must stay in recorded order",
                    op.index(),
                    prev.index()
                ),
            ));
        }
        self.ops.push(op);
        self.lines.push(node.line);
        Ok(())
    }
}

/// The 1-based line of byte offset `at`.
fn line_at(bytes: &[u8], at: usize) -> usize {
    1 + bytes[..at.min(bytes.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

fn too_large() -> String {
    format!(
        "the EDN history is larger than {} MiB (EDN is read whole); convert it to JSON Lines",
        MAX_EDN_BYTES >> 20
    )
}

fn to_op(path: &Path, node: &Node, pos: u64) -> Result<Op, HistoryError> {
    let line = node.line;
    let p = OpErr { path };
    let Edn::Map(kv) = &node.v else {
        return Err(p.err(
            line,
            format!(
                "expected an op map {{:process … :type … :f …}}, found {}",
                short(&to_edn_text(&node.v))
            ),
        ));
    };
    let get = |name: &str| {
        kv.iter()
            .find(|(k, _)| matches!(&k.v, Edn::Keyword(s) if s == name))
            .map(|(_, v)| v)
    };
    let kw = |name: &str| -> Result<&str, HistoryError> {
        match get(name).map(|n| &n.v) {
            Some(Edn::Keyword(s)) => Ok(s),
            Some(other) => Err(p.err(
                line,
                format!("op :{name} {} is not a keyword", to_edn_text(other)),
            )),
            None => Err(p.err(line, format!("op has no :{name}"))),
        }
    };
    let process = match get("process").map(|n| &n.v) {
        Some(Edn::Int(i)) => {
            let i =
                u64::try_from(*i).map_err(|_| p.err(line, format!("process {i} is negative")))?;
            Process::try_client(i).map_err(|e| p.err(line, e.to_string()))?
        }
        Some(Edn::Keyword(s)) if s == "nemesis" => Process::NEMESIS,
        Some(other) => {
            return Err(p.err(
                line,
                format!(
                    "process {} is neither an integer nor :nemesis",
                    to_edn_text(other)
                ),
            ));
        }
        None => return Err(p.err(line, "op has no :process")),
    };
    let kind = match kw("type")? {
        "invoke" => OpType::Invoke,
        "ok" => OpType::Ok,
        "fail" => OpType::Fail,
        "info" => OpType::Info,
        other => {
            return Err(p.err(
                line,
                format!("op :type :{other} is not one of :invoke :ok :fail :info"),
            ));
        }
    };
    let f = F::try_parse(kw("f")?).map_err(|e| p.err(line, e.to_string()))?;
    let index = match get("index").map(|n| &n.v) {
        None => pos,
        Some(Edn::Int(i)) if *i >= 0 => *i as u64,
        Some(other) => {
            return Err(p.err(
                line,
                format!(
                    "op :index {} is not a non-negative integer",
                    to_edn_text(other)
                ),
            ));
        }
    };
    let time_ns = match get("time").map(|n| &n.v) {
        None => 0,
        Some(Edn::Int(i)) => (*i).max(0) as u64,
        Some(other) => {
            return Err(p.err(
                line,
                format!("op :time {} is not an integer", to_edn_text(other)),
            ));
        }
    };
    let value = get("value").map_or(Value::Null, |n| to_value(&n.v));
    let key: Option<Key> = (process != Process::NEMESIS && single_object(&f)).then_some(0);
    let mut op = Op::try_new(index, time_ns, process, kind, f, key, value)
        .map_err(|e| p.err(line, e.to_string()))?;
    op.set_error(get("error").map(|n| to_edn_text(&n.v)));
    Ok(op)
}

fn short(s: &str) -> String {
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s.to_owned()
    }
}

/// Errors about one op map.
struct OpErr<'a> {
    path: &'a Path,
}

impl OpErr<'_> {
    fn err(&self, line: usize, msg: impl AsRef<str>) -> HistoryError {
        HistoryError::malformed(self.path, line, msg)
    }
}

/// Reads a Jepsen EDN history file (at most `MAX_EDN_BYTES`).
pub fn read_edn_file(path: &Path) -> Result<History, HistoryError> {
    let f = std::fs::File::open(path).map_err(|source| HistoryError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut bytes = Vec::new();
    // Three bytes more for a byte-order mark, one more to see that the limit is passed.
    f.take(MAX_EDN_BYTES as u64 + 4)
        .read_to_end(&mut bytes)
        .map_err(|source| HistoryError::ReadFailed {
            path: path.to_owned(),
            line: line_at(&bytes, bytes.len()),
            source,
        })?;
    read_edn_bytes(&bytes, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(s: &str) -> Result<History, HistoryError> {
        read_edn(s, Path::new("h.edn"))
    }

    #[test]
    fn one_vector_with_comments_and_missing_commas() {
        let h = read(
            "[{:process 4, :type :invoke, :f :write, :value 2}\n ; a comment\n {:process 22  :type :ok, :f :write, :value 2}]",
        )
        .unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h.ops[1].index(), 1);
        assert_eq!(h.ops[1].process, Process::client(22));
        assert_eq!(h.ops[1].kind, OpType::Ok);
        assert_eq!(h.ops[1].key(), Some(0));
        assert_eq!(h.ops[1].value, Value::Int(2));
    }

    #[test]
    fn list_of_maps_and_top_level_maps() {
        let a = read("({:type :invoke, :f :cas, :value [1 4], :process 101, :time 99})").unwrap();
        assert_eq!(a.ops[0].value, Value::list(vec![1, 4]));
        assert_eq!(a.ops[0].time_ns, 99);
        let b = read(
            "{:type :invoke :f :read :value nil :process 0}\n{:type :ok :f :read :value 3 :process 0}\n",
        )
        .unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(b.ops[1].value, Value::Int(3));
    }

    #[test]
    fn txn_nemesis_error_and_tagged_records() {
        let h = read(
            "[{:type :invoke,\n :f :txn,\n :value [[:read :x nil] [:write :y 2]],\n :process 3}\n {:process :nemesis :type :info :f :kill :value {:n1 \"x\"}}\n #jepsen.history.Op{:index 7 :type :fail :f :release :process 1 :error :not-held}]",
        )
        .unwrap();
        assert_eq!(h.ops[0].f, F::parse("txn"));
        assert_eq!(h.ops[0].key(), None);
        assert_eq!(
            serde_json::to_string(&h.ops[0].value).unwrap(),
            r#"[["read","x",null],["write","y",2]]"#
        );
        assert_eq!(h.ops[1].process, Process::NEMESIS);
        assert_eq!(h.ops[1].key(), None);
        assert_eq!(h.ops[2].index(), 7);
        assert_eq!(h.ops[2].error(), Some(":not-held"));
        assert_eq!(h.ops[2].key(), Some(0));
    }

    #[test]
    fn errors_name_the_line() {
        let e = read("[{:process 1 :type :invoke :f :read}\n\n {:process 1 :type :done :f :read}]")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("h.edn:3: op :type :done"), "{e}");
        let e = read("[{:process 1 :type :invoke :f :read}\n {:process 1 :type :ok").unwrap_err();
        assert!(e.to_string().starts_with("h.edn:2:"), "{e}");
        let e = read("[{:type :ok :f :read}]").unwrap_err().to_string();
        assert!(e.contains("no :process"), "{e}");
        let e = read("[{:process -1 :type :ok :f :read}]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("negative"), "{e}");
        let e = read("[1 2]").unwrap_err().to_string();
        assert!(e.contains("expected an op map"), "{e}");
    }
}
