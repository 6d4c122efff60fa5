//! Reading a Jepsen EDN history while another process still writes it (`schism check
//! --follow`): bytes go in as they appear, op maps come out as soon as their form is
//! complete, each with its line.
//!
//! A form's end is found by a scan that knows EDN's lexical rules (strings and their
//! escapes, `;` comments, `\c` character literals, `#tag` and `#_` prefixes, bracket
//! depth); the form itself is then read by the same parser and op mapping as a whole file
//! (`read_edn_bytes`), so a history followed to its end yields exactly the ops, indices and
//! errors that reading it whole does. Both layouts are followed: a sequence of top-level op
//! maps (Jepsen's journal) and one `[…]`/`(…)` collection of them (Knossos's files).
//! Bounded: the incomplete tail kept is at most `MAX_EDN_FORM_BYTES` (then the usual
//! "longer than" error names its line), and only that tail is ever rescanned.

use super::{MAX_EDN_FORM_BYTES, Parser, to_op};
use crate::{HistoryError, Op};
use std::path::{Path, PathBuf};

/// An EDN history being followed.
#[derive(Debug)]
pub struct EdnStream {
    path: PathBuf,
    /// Bytes not yet consumed: the start of an incomplete form (or white space).
    pending: Vec<u8>,
    /// The line `pending[0]` is on.
    line: usize,
    /// Whether the first bytes (byte-order mark, opening bracket) have been seen.
    started: bool,
    /// The closing byte of the one collection the ops are in, if they are in one.
    close: Option<u8>,
    /// The collection was closed: nothing but white space may follow.
    closed: bool,
    /// Ops read so far, and the last one's index (indices must increase).
    count: u64,
    last_index: Option<u64>,
}

impl EdnStream {
    /// `path` is used in messages only.
    pub fn new(path: &Path) -> Self {
        EdnStream {
            path: path.to_owned(),
            pending: Vec::new(),
            line: 1,
            started: false,
            close: None,
            closed: false,
            count: 0,
            last_index: None,
        }
    }

    /// Takes the next bytes of the file; returns the ops whose forms they completed, each
    /// with the line its form starts on.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<(Op, usize)>, HistoryError> {
        self.pending.extend_from_slice(bytes);
        if !self.started && !self.start() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        let mut at = 0;
        loop {
            at = self.skip_blank(at);
            let Some(&c) = self.pending.get(at) else {
                break;
            };
            if self.closed {
                return Err(self.err(
                    self.line,
                    "a form follows the collection of ops: a history is one collection of op maps or a sequence of op maps",
                ));
            }
            if c == b';' {
                break; // a comment whose newline has not arrived yet
            }
            if Some(c) == self.close {
                self.closed = true;
                at += 1;
                continue;
            }
            let Some(len) = form_len(&self.pending[at..]) else {
                if self.pending.len() - at > MAX_EDN_FORM_BYTES {
                    return Err(self.err(
                        self.line,
                        format!(
                            "the form starting here is longer than {} MiB (one op map is far smaller): not a Jepsen history",
                            MAX_EDN_FORM_BYTES >> 20
                        ),
                    ));
                }
                break;
            };
            self.read_form(at, len, &mut out)?;
            at += len;
        }
        self.pending.drain(..at);
        Ok(out)
    }

    /// The file ended: an incomplete form or an unclosed collection is an error naming
    /// its line (as reading the whole file would say).
    pub fn finish(&self) -> Result<(), HistoryError> {
        let rest = self.pending.iter().any(|b| !b" \t\r\n,".contains(b));
        if rest {
            return Err(self.err(self.line, "the history ends inside this form"));
        }
        if self.close.is_some() && !self.closed {
            return Err(self.err(
                1,
                "the collection of ops opened here is never closed (the writer may not have finished)",
            ));
        }
        Ok(())
    }

    /// Ops read so far.
    pub fn ops_read(&self) -> u64 {
        self.count
    }

    /// Skips a byte-order mark and notes an opening bracket; false until a first
    /// non-blank byte has arrived.
    fn start(&mut self) -> bool {
        if self.pending.len() < 3 && b"\xEF\xBB\xBF".starts_with(&self.pending) {
            return false;
        }
        if self.pending.starts_with(b"\xEF\xBB\xBF") {
            self.pending.drain(..3);
        }
        let at = self.skip_blank(0);
        let Some(&c) = self.pending.get(at) else {
            return false;
        };
        self.close = match c {
            b'[' => Some(b']'),
            b'(' => Some(b')'),
            _ => None,
        };
        let consumed = at + usize::from(self.close.is_some());
        self.pending.drain(..consumed);
        self.started = true;
        true
    }

    /// Skips white space, commas and whole comments from `at`, counting lines (`self.line`
    /// is then the line of the returned position). A comment without its newline yet is
    /// left for later.
    fn skip_blank(&mut self, mut at: usize) -> usize {
        while let Some(&c) = self.pending.get(at) {
            match c {
                b'\n' => {
                    self.line += 1;
                    at += 1;
                }
                b' ' | b'\t' | b'\r' | b',' => at += 1,
                b';' => match self.pending[at..].iter().position(|&b| b == b'\n') {
                    Some(nl) => at += nl,
                    None => break,
                },
                _ => break,
            }
        }
        at
    }

    /// Parses the complete form `pending[at..at + len]` with the file reader's parser.
    fn read_form(
        &mut self,
        at: usize,
        len: usize,
        out: &mut Vec<(Op, usize)>,
    ) -> Result<(), HistoryError> {
        let form = &self.pending[at..at + len];
        let mut p = Parser {
            s: form,
            pos: 0,
            line: self.line,
            path: &self.path,
            depth: usize::from(self.close.is_some()),
            form_start: 0,
            form_line: self.line,
            items_are_forms: false,
        };
        let node = p.value()?;
        let lines = form.iter().filter(|&&b| b == b'\n').count();
        self.line += lines;
        let Some(node) = node else {
            return Ok(()); // a `#_` discard
        };
        let op = to_op(&self.path, &node, self.count)?;
        if let Some(prev) = self.last_index
            && op.index() <= prev
        {
            return Err(self.err(
                node.line,
                format!(
                    "index {} does not increase (the previous op had {prev}); histories must stay in recorded order",
                    op.index()
                ),
            ));
        }
        self.count += 1;
        self.last_index = Some(op.index());
        out.push((op, node.line));
        Ok(())
    }

    fn err(&self, line: usize, msg: impl AsRef<str>) -> HistoryError {
        HistoryError::malformed(&self.path, line, msg)
    }
}

/// The length of the complete form at the start of `s` (which starts at a non-blank
/// byte), or `None` if more bytes are needed to know where it ends.
fn form_len(s: &[u8]) -> Option<usize> {
    let mut i = 0;
    // Prefixes: `#_` (discard the next form) and `#tag` (a tagged literal) each need the
    // form that follows.
    loop {
        match (s.get(i), s.get(i + 1)) {
            (Some(b'#'), Some(b'_')) => i += 2,
            (Some(b'#'), Some(b'{')) => break,
            (Some(b'#'), Some(_)) => i += 1 + token_len(&s[i + 1..])?,
            (Some(b'#'), None) => return None,
            _ => break,
        }
        i += blank_len(&s[i..])?;
    }
    let c = *s.get(i)?;
    match c {
        b'[' | b'(' | b'{' | b'#' => bracketed_len(&s[i..]).map(|n| i + n),
        b'"' => string_len(&s[i..]).map(|n| i + n),
        b'\\' => {
            // A character literal: the byte after the backslash, then token bytes.
            s.get(i + 1)?;
            token_len(&s[i + 2..]).map(|n| i + 2 + n)
        }
        // A closing bracket alone: one byte, which the parser reports.
        b']' | b')' | b'}' => Some(i + 1),
        _ => token_len(&s[i..]).map(|n| i + n),
    }
}

/// Bytes of white space, commas and whole comments at the start of `s` (`None`: a
/// comment or the blank run reaches the end, so what follows is not known yet).
fn blank_len(s: &[u8]) -> Option<usize> {
    let mut i = 0;
    loop {
        match s.get(i)? {
            b' ' | b'\t' | b'\r' | b'\n' | b',' => i += 1,
            b';' => i += s[i..].iter().position(|&b| b == b'\n')?,
            _ => return Some(i),
        }
    }
}

/// A token's length, known once a delimiter follows it.
fn token_len(s: &[u8]) -> Option<usize> {
    s.iter().position(|&c| Parser::is_delim(c))
}

/// A string's length including both quotes (`s` starts at the opening quote).
fn string_len(s: &[u8]) -> Option<usize> {
    let mut i = 1;
    loop {
        match s.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
}

/// The length of a collection (`s` starts at its opening bracket, or `#{`), skipping
/// strings, comments and character literals inside it.
fn bracketed_len(s: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = 0;
    loop {
        match *s.get(i)? {
            b'[' | b'(' | b'{' => {
                depth += 1;
                i += 1;
            }
            b']' | b')' | b'}' => {
                depth = depth.saturating_sub(1);
                i += 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            b'"' => i += string_len(&s[i..])?,
            b';' => i += s[i..].iter().position(|&b| b == b'\n')?,
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read_edn;

    const HISTORY: &str = "[{:process 4, :type :invoke, :f :write, :value 2}\n ; a comment with ] and }\n {:process 4 :type :ok, :f :write, :value 2 :error \"a ] \\\" }\"}\n #jepsen.history.Op{:type :invoke :f :read :process 1}\n #_ {:junk 1}\n {:process 1 :type :ok :f :read :value \\}}\n]\n";

    /// Feeding a history in pieces of every size gives what reading it whole gives.
    #[test]
    fn every_split_gives_the_whole_files_ops_and_lines() {
        let path = Path::new("h.edn");
        let whole = read_edn(HISTORY, path).unwrap();
        for piece in 1..=HISTORY.len() {
            let mut s = EdnStream::new(path);
            let mut got = Vec::new();
            for chunk in HISTORY.as_bytes().chunks(piece) {
                got.extend(s.push(chunk).unwrap());
            }
            s.finish().unwrap();
            let ops: Vec<Op> = got.iter().map(|(op, _)| op.clone()).collect();
            assert_eq!(ops, whole.ops, "pieces of {piece}");
            let lines: Vec<usize> = got.iter().map(|&(_, l)| l).collect();
            assert_eq!(lines, vec![1, 3, 4, 6], "pieces of {piece}");
        }
    }

    #[test]
    fn a_journal_of_top_level_maps_streams_op_by_op() {
        let mut s = EdnStream::new(Path::new("j.edn"));
        let first = s
            .push(b"{:process 0 :type :invoke :f :read :value nil}\n{:process 0 :type :ok")
            .unwrap();
        assert_eq!(
            first.len(),
            1,
            "the complete map is out, the partial one waits"
        );
        assert!(s.finish().is_err(), "the file may not end inside a form");
        let second = s.push(b" :f :read :value 3}\n").unwrap();
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].1, 2);
        s.finish().unwrap();
        assert_eq!(s.ops_read(), 2);
    }

    #[test]
    fn errors_name_the_line_as_the_whole_file_reader_does() {
        let text = "{:process 1 :type :invoke :f :read}\n\n{:process 1 :type :done :f :read}\n";
        let whole = read_edn(text, Path::new("h.edn")).unwrap_err().to_string();
        let mut s = EdnStream::new(Path::new("h.edn"));
        let e = s.push(text.as_bytes()).unwrap_err().to_string();
        assert_eq!(e, whole);
        assert!(e.starts_with("h.edn:3: op :type :done"), "{e}");
        let mut s = EdnStream::new(Path::new("h.edn"));
        let e = s
            .push(b"[{:process 1 :type :invoke :f :read}] {:process 1}")
            .unwrap_err();
        assert!(e.to_string().contains("a form follows"), "{e}");
        let mut s = EdnStream::new(Path::new("h.edn"));
        s.push(b"[{:process 1 :type :invoke :f :read}\n").unwrap();
        let e = s.finish().unwrap_err().to_string();
        assert!(e.contains("never closed"), "{e}");
    }
}
