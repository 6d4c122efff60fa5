//! What a checker that streams is fed, and the replay that feeds it a whole history: each
//! client invoke as it is read (`invoke`), each operation when it completes (`complete`,
//! a `Paired`), and at the end the operations never completed, in invoke order. The
//! whole-history `counter` runs through `replay`, so its streamed and whole paths share
//! one implementation; `set-full`'s stream is replayed so in tests, against its
//! whole-history form.

use schism_history::{History, Op, Operation, Paired};

/// A checker fed a history op by op. `pos` is the op's position in the history (nemesis
/// ops included: `Operation::invoke`'s numbering); `line` the line it was read from (0 on
/// the whole path, whose errors are located by op index).
pub(crate) trait OpStream {
    /// A client invoke.
    fn invoke(&mut self, pos: usize, op: &Op, line: usize);
    /// An operation: completed (`p.op.complete()` is its position), or never completed,
    /// at the end.
    fn complete(&mut self, p: &Paired, line: usize);
}

/// The `Paired` of an operation of `h`.
fn paired(h: &History, o: &Operation) -> Paired {
    Paired {
        op: o.clone(),
        invoke_index: h.ops[o.invoke()].index(),
        invoke_ns: h.ops[o.invoke()].time_ns,
        complete_ns: o.complete().map(|c| h.ops[c].time_ns),
        complete_index: o.complete().map(|c| h.ops[c].index()),
    }
}

/// Feeds `s` the operations of `h` (`History::operations`, in invoke order) in the order
/// a stream sees them: invokes and completions by position, then the never-completed.
pub(crate) fn replay(h: &History, ops: &[Operation], s: &mut impl OpStream) {
    let mut done: Vec<(usize, usize)> = ops
        .iter()
        .enumerate()
        .filter_map(|(i, o)| o.complete().map(|c| (c, i)))
        .collect();
    done.sort_unstable();
    let mut d = done.into_iter().peekable();
    for o in ops {
        while let Some(&(c, i)) = d.peek()
            && c < o.invoke()
        {
            s.complete(&paired(h, &ops[i]), 0);
            d.next();
        }
        s.invoke(o.invoke(), &h.ops[o.invoke()], 0);
    }
    for (_, i) in d {
        s.complete(&paired(h, &ops[i]), 0);
    }
    for o in ops.iter().filter(|o| o.complete().is_none()) {
        s.complete(&paired(h, o), 0);
    }
}
