//! Small formatting helpers shared by the checkers' explanations.
//!
//! Guarantees: times print as seconds since the run started with millisecond precision
//! (`t=3.104s`); long lists are shortened in the middle so one explanation stays one line.

use schism_history::{F, History, Operation, Value};

/// `3.104s` from nanoseconds.
pub(crate) fn secs(ns: u64) -> String {
    format!("{:.3}s", ns as f64 / 1e9)
}

/// When the operation began.
pub(crate) fn invoke_ns(h: &History, o: &Operation) -> u64 {
    h.ops[o.invoke()].time_ns
}

/// When it completed, or when it began if it never did.
pub(crate) fn complete_ns(h: &History, o: &Operation) -> u64 {
    h.ops[o.complete().unwrap_or(o.invoke())].time_ns
}

/// The `Op::index` naming an operation: its completion, else its invoke.
pub(crate) fn op_index(h: &History, o: &Operation) -> u64 {
    h.ops[o.complete().unwrap_or(o.invoke())].index()
}

/// `[1,2,3]`, or `[1,2,3,4,…,97,98,99,100]` past 12 elements.
pub(crate) fn list(v: &[i64]) -> String {
    let join = |s: &[i64]| s.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    if v.len() <= 12 {
        format!("[{}]", join(v))
    } else {
        format!("[{},…,{}]", join(&v[..4]), join(&v[v.len() - 4..]))
    }
}

/// `2 elements`, `1 element`.
pub(crate) fn elements(n: usize) -> String {
    if n == 1 {
        "1 element".into()
    } else {
        format!("{n} elements")
    }
}

/// `process 3`.
pub(crate) fn who(_h: &History, o: &Operation) -> String {
    format!("process {}", o.process)
}

pub(crate) fn key(o: &Operation) -> u64 {
    o.key().unwrap_or(0)
}

/// What a read returned: `[1,2]`, `3`, `nil`.
pub(crate) fn seen(o: &Operation) -> String {
    match &o.value {
        Value::List(l) => list(l),
        other => other.to_string(),
    }
}

/// A noun for a write: `append 2 to key 7`, `write 3 to key 1`, `cas 2→3 on key 1`.
pub(crate) fn what(o: &Operation) -> String {
    match (&o.f, &o.value) {
        (F::Cas, Value::List(l)) if l.len() == 2 => {
            format!("cas {}→{} on key {}", l[0], l[1], key(o))
        }
        (F::Read, _) => format!("the read of key {} that saw {}", key(o), seen(o)),
        (f, v) => format!("{f} {v} to key {}", key(o)),
    }
}

/// A verb phrase: `appended 2 to key 7`, `wrote 3 to key 1`, `read [1] from key 7`.
pub(crate) fn did(o: &Operation) -> String {
    match (&o.f, &o.value) {
        (F::Append, v) => format!("appended {v} to key {}", key(o)),
        (F::Write, v) => format!("wrote {v} to key {}", key(o)),
        (F::Read, _) => format!("read {} from key {}", seen(o), key(o)),
        _ => format!("ran {}", what(o)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(secs(3_104_000_000), "3.104s");
        assert_eq!(list(&[1, 2]), "[1,2]");
        assert_eq!(
            list(&(1..=20).collect::<Vec<_>>()),
            "[1,2,3,4,…,17,18,19,20]"
        );
        assert_eq!(elements(1), "1 element");
    }
}
