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
pub use pair::{Operation, Outcome};
pub use read::{
    BATCH_BYTES, HistoryError, MAX_LINE_BYTES, ParsedLine, ReadWarning, parse_line,
    read_history_file, read_jsonl, read_jsonl_threads,
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

/// Where a read history's ops came from: `(index, 1-based line)` in increasing index order,
/// 8 bytes an op (indices fit 32 bits by `MAX_INDEX`; a line past `u32::MAX` is recorded as
/// `u32::MAX`, see `located`).
#[derive(Debug, Default)]
struct Origin {
    path: PathBuf,
    lines: Vec<(u32, u32)>,
}

/// One op's `(index, line)` as `Origin` stores it.
pub(crate) fn located(op: &Op, line: usize) -> (u32, u32) {
    (op.index32(), u32::try_from(line).unwrap_or(u32::MAX))
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
        let lines = ops.iter().zip(lines).map(|(o, l)| located(o, l)).collect();
        Self::from_located(ops, path, lines)
    }

    /// A history read from `path`; `lines[i]` is `(ops[i].index, its 1-based line)`.
    pub(crate) fn from_located(ops: Vec<Op>, path: &Path, lines: Vec<(u32, u32)>) -> Self {
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
        let at = o
            .lines
            .binary_search_by_key(&index, |&(i, _)| u64::from(i))
            .ok()?;
        Some((o.path.as_path(), o.lines[at].1 as usize))
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
