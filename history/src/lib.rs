//! The vocabulary of schism: operations, processes, histories, and the JSON Lines format.
//!
//! A history is the ordered record of every invocation and completion a run saw, in the
//! order one recorder assigned them (`index`). This crate defines the op types, a writer
//! that appends whole lines, a streaming reader that names the line of a malformed entry
//! and tolerates a truncated last line, and the pairing of invocations with completions
//! (`History::operations`), imports Jepsen/Knossos EDN histories (`read_edn`), and holds the
//! nemesis's vocabulary: its event names, recorded states, fault labels and windows
//! (`nemesis`). It does no networking, spawns nothing and reads no clock.
//!
//! Both readers are bounded (`MAX_LINE_BYTES`, `MAX_EDN_DEPTH`, `MAX_EDN_FORM_BYTES`,
//! `MAX_EDN_BYTES`), accept a leading byte-order mark, and reject bad input (invalid
//! UTF-8 included) with one error naming `file:line` that quotes at most
//! `MAX_ERROR_CHARS` characters; a history read from a file keeps each op's line, so
//! later errors about an op (pairing, checker) can name it too (`History::locate`).

pub mod choices;
mod edn;
pub mod nemesis;
mod op;
mod pair;
mod read;
pub mod txn;
mod write;

pub use choices::Choices;
pub use edn::{
    EdnStream, MAX_EDN_BYTES, MAX_EDN_DEPTH, MAX_EDN_FORM_BYTES, read_edn, read_edn_bytes,
    read_edn_file,
};
pub use op::{
    F, IntList, Key, LimitError, MAX_CLIENT, MAX_F_NAMES, MAX_INDEX, MAX_KEY, Op, OpExt, OpType,
    Process, Sym, ThinVec, Value,
};
pub use pair::{MAX_POSITION, Operation, Outcome, Paired, Pairing};
pub use read::{
    BATCH_BYTES, HistoryError, MAX_LINE_BYTES, ParsedLine, ReadWarning, Streamed, parse_line,
    read_history_file, read_jsonl, read_jsonl_threads, stream_history_file,
};
pub use write::HistoryWriter;

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A whole history held in memory: ops in recorded order.
///
/// A history read from a file also remembers where each op came from (`locate`), so an
/// error found later about "op index N" can name the file and line.
#[derive(Debug, Clone, Default)]
pub struct History {
    pub ops: Vec<Op>,
    origin: Option<Arc<Origin>>,
}

/// Where a read history's ops came from: runs of ops whose index and 1-based line both
/// go up by one from op to op (a history written by schism is one run: a blank line or a
/// gap in the indices starts the next), 12 bytes a run where a pair per op took 8 bytes an
/// op. Indices fit 32 bits by `MAX_INDEX`; a line past `u32::MAX` is recorded as
/// `u32::MAX` (see `Lines::push`).
#[derive(Debug, Default)]
struct Origin {
    path: PathBuf,
    lines: Lines,
}

/// `(index, line)` of each op read, in increasing index order, as runs.
#[derive(Debug, Default)]
pub(crate) struct Lines {
    pub(crate) runs: Vec<LineRun>,
}

/// Ops `index .. index + len` on lines `line .. line + len`.
#[derive(Debug, Clone, Copy)]
struct LineRun {
    index: u32,
    pub(crate) line: u32,
    pub(crate) len: u32,
}

impl Lines {
    /// Records that the op `op` (its index above every one recorded) is on `line`.
    pub(crate) fn push(&mut self, op: &Op, line: usize) {
        let (index, line) = (op.index32(), u32::try_from(line).unwrap_or(u32::MAX));
        if let Some(last) = self.runs.last_mut()
            && last.index.checked_add(last.len) == Some(index)
            && last.line.checked_add(last.len) == Some(line)
            && line != u32::MAX
        {
            last.len += 1;
            return;
        }
        self.runs.push(LineRun {
            index,
            line,
            len: 1,
        });
    }

    /// Records `other`'s ops after these (its indices above every one recorded), as
    /// pushing them one by one would.
    pub(crate) fn append(&mut self, other: Lines) {
        let mut runs = other.runs.into_iter();
        let Some(first) = runs.next() else {
            return;
        };
        match self.runs.last_mut() {
            Some(last)
                if last.index.checked_add(last.len) == Some(first.index)
                    && last.line.checked_add(last.len) == Some(first.line)
                    && first.line != u32::MAX =>
            {
                last.len += first.len;
            }
            _ => self.runs.push(first),
        }
        self.runs.extend(runs);
    }

    /// The line of the op with this index, if one was recorded.
    fn line_of(&self, index: u64) -> Option<usize> {
        let index = u32::try_from(index).ok()?;
        let after = self.runs.partition_point(|r| r.index <= index);
        let run = self.runs.get(after.checked_sub(1)?)?;
        let offset = index - run.index;
        (offset < run.len).then(|| (run.line + offset) as usize)
    }
}

/// Two histories are equal when their ops are; where they were read from does not matter.
impl PartialEq for History {
    fn eq(&self, other: &Self) -> bool {
        self.ops == other.ops
    }
}

impl History {
    pub fn new(ops: Vec<Op>) -> Self {
        Self { ops, origin: None }
    }

    /// A history read from `path`; `lines[i]` is the line of `ops[i]` (indices increase).
    pub(crate) fn from_file(ops: Vec<Op>, path: &Path, lines: Vec<usize>) -> Self {
        let mut located = Lines::default();
        for (o, l) in ops.iter().zip(lines) {
            located.push(o, l);
        }
        Self::from_located(ops, path, located)
    }

    /// A history read from `path`, with the lines its ops were read from.
    pub(crate) fn from_located(ops: Vec<Op>, path: &Path, lines: Lines) -> Self {
        Self {
            ops,
            origin: Some(Arc::new(Origin {
                path: path.to_owned(),
                lines,
            })),
        }
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The file and 1-based line the op with this `index` was read from, when the
    /// history came from a file.
    pub fn locate(&self, index: u64) -> Option<(&Path, usize)> {
        let o = self.origin.as_deref()?;
        Some((o.path.as_path(), o.lines.line_of(index)?))
    }

    /// The file the history was read from, if any.
    pub(crate) fn locate_path(&self) -> Option<&Path> {
        self.origin.as_deref().map(|o| o.path.as_path())
    }

    /// An error about the op with this `index`: `file:line` when the history came from a
    /// file, else the index alone.
    pub fn op_error(&self, index: u64, msg: String) -> HistoryError {
        match self.locate(index) {
            Some((path, line)) => {
                HistoryError::malformed(path, line, format!("op index {index}: {msg}"))
            }
            None => HistoryError::Inconsistent {
                index,
                msg: clip(&msg),
            },
        }
    }
}

/// Longest message part (after `file:line:`) of a reader error, in characters: errors
/// quote input, and a history line can be megabytes long.
pub const MAX_ERROR_CHARS: usize = 200;

/// `msg` cut to `MAX_ERROR_CHARS` characters (an ellipsis marks the cut).
pub fn clip(msg: &str) -> String {
    match msg.char_indices().nth(MAX_ERROR_CHARS) {
        None => msg.to_owned(),
        Some((cut, _)) => format!("{}…", &msg[..cut]),
    }
}

#[cfg(test)]
mod origin_tests {
    use super::*;
    use crate::{F, OpType, Process, Value};

    fn op(index: u64) -> Op {
        Op::new(
            index,
            index,
            Process::client(1),
            OpType::Invoke,
            F::Read,
            Some(1),
            Value::Null,
        )
    }

    #[test]
    fn lines_are_found_across_gaps_and_blank_lines() {
        // Indices 0..3 on lines 1..3, a blank line, 3..5 on 5..6, then index 9 on line 7.
        let at = [(0, 1), (1, 2), (2, 3), (3, 5), (4, 6), (9, 7)];
        let ops: Vec<Op> = at.iter().map(|&(i, _)| op(i)).collect();
        let h = History::from_file(
            ops,
            Path::new("h.jsonl"),
            at.iter().map(|&(_, l)| l).collect(),
        );
        let runs = h.origin.as_deref().expect("read").lines.runs.len();
        assert_eq!(runs, 3);
        for (i, l) in at {
            assert_eq!(h.locate(i), Some((Path::new("h.jsonl"), l)), "index {i}");
        }
        for missing in [5, 8, 10, u64::from(u32::MAX) + 1] {
            assert_eq!(h.locate(missing), None, "index {missing}");
        }
    }
}
