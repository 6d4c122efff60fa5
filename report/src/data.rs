//! What the pages are drawn from: client ops paired cheaply (positions only, no value
//! clones, tolerant of malformed pairs), fault windows (from the nemesis's recorded
//! whole states, by `schism_history::nemesis`, the vocabulary the nemesis writes with),
//! and per-read staleness.

use schism_history::{F, History, OpType, Process, Value};
use std::collections::HashMap;

/// Outcome of a client op.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Out {
    Ok,
    Fail,
    Info,
}

impl Out {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Out::Ok => "ok",
            Out::Fail => "fail",
            Out::Info => "info",
        }
    }
}

/// One client op: positions in `History::ops` and its times.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Span {
    pub invoke: u32,
    pub complete: Option<u32>,
    pub start_ns: u64,
    /// Completion time; `None` when the op never completed.
    pub end_ns: Option<u64>,
    pub out: Out,
    /// Index into `Pairs::fs`.
    pub f: u16,
}

/// Client ops of a history, in invoke order.
#[derive(Debug, Default)]
pub(crate) struct Pairs {
    pub spans: Vec<Span>,
    /// Distinct function names, in order of first appearance.
    pub fs: Vec<String>,
    /// For every history position, the span it belongs to (`u32::MAX` for none).
    pub span_of: Vec<u32>,
    pub end_ns: u64,
}

impl Pairs {
    pub(crate) fn build(h: &History) -> Pairs {
        let mut p = Pairs {
            span_of: vec![u32::MAX; h.ops.len()],
            ..Pairs::default()
        };
        let mut open: HashMap<Process, u32> = HashMap::new();
        let mut f_ids: HashMap<String, u16> = HashMap::new();
        for (pos, op) in h.ops.iter().enumerate() {
            p.end_ns = p.end_ns.max(op.time_ns);
            if op.process == Process::NEMESIS {
                continue;
            }
            if op.kind == OpType::Invoke {
                let name = op.f.as_str();
                let f = match f_ids.get(name) {
                    Some(&f) => f,
                    None => {
                        let f = p.fs.len().min(u16::MAX as usize) as u16;
                        p.fs.push(name.to_owned());
                        f_ids.insert(name.to_owned(), f);
                        f
                    }
                };
                let id = p.spans.len() as u32;
                p.spans.push(Span {
                    invoke: pos as u32,
                    complete: None,
                    start_ns: op.time_ns,
                    end_ns: None,
                    out: Out::Info,
                    f,
                });
                p.span_of[pos] = id;
                open.insert(op.process, id);
            } else if let Some(id) = open.remove(&op.process) {
                let s = &mut p.spans[id as usize];
                s.complete = Some(pos as u32);
                s.end_ns = Some(op.time_ns);
                s.out = match op.kind {
                    OpType::Ok => Out::Ok,
                    OpType::Fail => Out::Fail,
                    _ => Out::Info,
                };
                p.span_of[pos] = id;
            }
        }
        p
    }

    pub(crate) fn latency_ns(&self, s: &Span) -> Option<u64> {
        s.end_ns.map(|e| e.saturating_sub(s.start_ns))
    }

    pub(crate) fn is_read(&self, s: &Span) -> bool {
        self.fs[s.f as usize] == "read"
    }
}

pub use schism_history::nemesis::{FaultWindow, fault_windows};

pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    }
}

/// How far one ok read lagged the freshest acknowledged write on its key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stale {
    /// The read (index into `Pairs::spans`).
    pub span: u32,
    /// Invoke time of the read.
    pub t_ns: u64,
    /// Acknowledged writes (before the read began) that the read did not reflect.
    pub versions: u64,
    /// How long before the read began the oldest write it missed had been acknowledged.
    pub ms: f64,
}

/// Staleness of every ok read of an append or register history (reads of keys with
/// no acknowledged write before them are fresh by definition).
///
/// Append: a read of a list of length `n` misses the acknowledged appends not in it;
/// register (unique values): a read of value `v` misses the writes acknowledged after
/// `v`'s write was acknowledged. Both compare against writes acknowledged before the read's
/// invoke, so a positive figure is a real-time violation, never concurrency.
pub(crate) fn staleness(h: &History, p: &Pairs) -> Vec<Stale> {
    // Acknowledged writes per key: (completion position, completion time, value).
    let mut acks: HashMap<u64, Vec<(u32, u64, i64)>> = HashMap::new();
    for s in &p.spans {
        if s.out != Out::Ok {
            continue;
        }
        let op = &h.ops[s.invoke as usize];
        let (Some(key), Some(c)) = (op.key(), s.complete) else {
            continue;
        };
        if let (F::Append | F::Write, Value::Int(v)) = (&op.f, &op.value) {
            acks.entry(key)
                .or_default()
                .push((c, s.end_ns.unwrap_or(0), *v));
        }
    }
    for v in acks.values_mut() {
        v.sort_unstable();
    }
    let mut out = Vec::new();
    for (span, s) in p.spans.iter().enumerate() {
        if s.out != Out::Ok || !p.is_read(s) {
            continue;
        }
        let inv = &h.ops[s.invoke as usize];
        let Some(key) = inv.key() else { continue };
        let Some(list) = acks.get(&key) else { continue };
        // Writes acknowledged before the read was invoked.
        let before = list.partition_point(|a| a.0 < s.invoke);
        if before == 0 {
            continue;
        }
        let Some(c) = s.complete else { continue };
        let value = &h.ops[c as usize].value;
        let missed: Vec<&(u32, u64, i64)> = match value {
            Value::List(seen) => {
                let seen: std::collections::HashSet<i64> = seen.iter().copied().collect();
                list[..before]
                    .iter()
                    .filter(|a| !seen.contains(&a.2))
                    .collect()
            }
            Value::Int(v) => match list[..before].iter().position(|a| a.2 == *v) {
                Some(at) => list[at + 1..before].iter().collect(),
                // Written later, or by a write not acknowledged yet: fresh.
                None if list.iter().any(|a| a.2 == *v) => Vec::new(),
                None => list[..before].iter().collect(),
            },
            Value::Null => list[..before].iter().collect(),
            _ => Vec::new(),
        };
        let oldest = missed.iter().map(|a| a.1).min();
        out.push(Stale {
            span: span as u32,
            t_ns: s.start_ns,
            versions: missed.len() as u64,
            ms: oldest
                .map(|t| s.start_ns.saturating_sub(t) as f64 / 1e6)
                .unwrap_or(0.0),
        });
    }
    out
}

/// The `q` quantile (nearest rank) of an ascending slice; `None` when it is empty.
pub(crate) fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((sorted.len() - 1) as f64 * q).round() as usize;
    Some(sorted[rank.min(sorted.len() - 1)])
}

/// Sorts ascending, NaN-safe (total order).
pub(crate) fn sort(v: &mut [f64]) {
    v.sort_unstable_by(f64::total_cmp);
}
