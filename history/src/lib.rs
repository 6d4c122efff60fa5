//! The vocabulary of schism: operations, processes, histories, and the JSON Lines format.
//!
//! A history is the ordered record of every invocation and completion a run saw, in the
//! order one recorder assigned them (`index`). This crate defines the op types, a writer
//! that appends whole lines, a streaming reader that names the line of a malformed entry
//! and tolerates a truncated last line, and the pairing of invocations with completions
//! (`History::operations`), imports Jepsen/Knossos EDN histories (`read_edn`), and holds the
//! nemesis's vocabulary: its event names, recorded states, fault labels and windows (`nemesis`). It does no networking, spawns nothing and reads no clock.

mod edn;
pub mod nemesis;
mod op;
mod pair;
mod read;
mod write;

pub use edn::{read_edn, read_edn_file};
pub use op::{F, Key, Op, OpType, Process, Value};
pub use pair::{Operation, Outcome};
pub use read::{HistoryError, ReadWarning, read_history_file, read_jsonl};
pub use write::HistoryWriter;

/// A whole history held in memory: ops in recorded order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    pub ops: Vec<Op>,
}

impl History {
    pub fn new(ops: Vec<Op>) -> Self {
        Self { ops }
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}
