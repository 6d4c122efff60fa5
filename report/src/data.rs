//! What the pages are drawn from: client ops paired cheaply (positions only, no value
//! clones, tolerant of malformed pairs), fault windows from nemesis ops, and per-read
//! staleness.
//!
//! Fault windows are recognised generically so that new nemesis faults appear without
//! code here: a window opens at a nemesis completion whose `f` starts with `start-` or is
//! `kill`, `pause` or a `clock-*` change other than `clock-reset`, and closes at the
//! matching `stop-…`, `restart`, `resume` or `clock-reset` (first open window of that kind,
//! preferring one about the same node). A window never closed lasts to the end of the
//! history; any other nemesis event is an instant.

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
            if op.process == Process::Nemesis {
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

/// A fault in effect from `start_ns` to `end_ns` (equal for an instant event).
#[derive(Debug, Clone, PartialEq)]
pub struct FaultWindow {
    /// The kind: `partition`, `kill`, `pause`, `clock-bump`, or the event's `f`.
    pub kind: String,
    /// A short description of the fault's details (the nemesis value), unescaped.
    pub detail: String,
    pub start_ns: u64,
    pub end_ns: u64,
    /// An instant event, not a window.
    pub instant: bool,
    /// Never closed before the history ended.
    pub open_ended: bool,
}

impl FaultWindow {
    pub fn label(&self) -> String {
        if self.detail.is_empty() {
            self.kind.clone()
        } else {
            format!("{} {}", self.kind, self.detail)
        }
    }
}

fn opens(f: &str) -> Option<String> {
    if let Some(k) = f.strip_prefix("start-") {
        return Some(k.to_owned());
    }
    match f {
        "kill" | "pause" => Some(f.to_owned()),
        _ if f.starts_with("clock-") && f != "clock-reset" => Some("clock".to_owned()),
        _ => None,
    }
}

fn closes(f: &str) -> Option<String> {
    if let Some(k) = f.strip_prefix("stop-") {
        return Some(k.to_owned());
    }
    match f {
        "restart" => Some("kill".to_owned()),
        "resume" => Some("pause".to_owned()),
        "clock-reset" => Some("clock".to_owned()),
        _ => None,
    }
}

/// The node a nemesis value is about, if it names exactly one.
fn node_of(v: &Value) -> Option<String> {
    match v {
        Value::Other(serde_json::Value::String(s)) => Some(s.clone()),
        Value::Other(serde_json::Value::Object(m)) => {
            m.get("node").and_then(|n| n.as_str()).map(str::to_owned)
        }
        _ => None,
    }
}

fn short_detail(v: &Value) -> String {
    let s = match v {
        Value::Null => return String::new(),
        Value::Other(serde_json::Value::String(s)) => s.clone(),
        other => other.to_string(),
    };
    truncate(&s, 80)
}

pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    }
}

/// Fault windows and instant events of the nemesis, in start order.
pub fn fault_windows(h: &History) -> Vec<FaultWindow> {
    let nem: Vec<&schism_history::Op> = h
        .ops
        .iter()
        .filter(|o| o.process == Process::Nemesis)
        .collect();
    // A fault takes effect at its completion; histories with invokes only use those.
    let has_completions = nem.iter().any(|o| o.kind != OpType::Invoke);
    let end = h.ops.last().map(|o| o.time_ns).unwrap_or(0);
    let mut out: Vec<FaultWindow> = Vec::new();
    let mut open: Vec<(usize, Option<String>)> = Vec::new();
    for o in nem {
        if has_completions == (o.kind == OpType::Invoke) {
            continue;
        }
        let f = o.f.as_str();
        if let Some(kind) = opens(f) {
            let display = if kind == "clock" { f.to_owned() } else { kind };
            open.push((out.len(), node_of(&o.value)));
            out.push(FaultWindow {
                kind: display,
                detail: short_detail(&o.value),
                start_ns: o.time_ns,
                end_ns: end,
                instant: false,
                open_ended: true,
            });
        } else if let Some(kind) = closes(f) {
            let node = node_of(&o.value);
            let matches = |w: &FaultWindow| {
                w.kind == kind || (kind == "clock" && w.kind.starts_with("clock-"))
            };
            let pick = open
                .iter()
                .position(|(i, n)| matches(&out[*i]) && node.is_some() && *n == node)
                .or_else(|| open.iter().position(|(i, _)| matches(&out[*i])));
            if let Some(p) = pick {
                let (i, _) = open.remove(p);
                out[i].end_ns = o.time_ns;
                out[i].open_ended = false;
            } else {
                out.push(instant(f, o));
            }
        } else {
            out.push(instant(f, o));
        }
    }
    out
}

fn instant(f: &str, o: &schism_history::Op) -> FaultWindow {
    FaultWindow {
        kind: f.to_owned(),
        detail: short_detail(&o.value),
        start_ns: o.time_ns,
        end_ns: o.time_ns,
        instant: true,
        open_ended: false,
    }
}

/// How far one ok read lagged the freshest acknowledged write on its key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stale {
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
        let (Some(key), Some(c)) = (op.key, s.complete) else {
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
    for s in &p.spans {
        if s.out != Out::Ok || !p.is_read(s) {
            continue;
        }
        let inv = &h.ops[s.invoke as usize];
        let Some(key) = inv.key else { continue };
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
            t_ns: s.start_ns,
            versions: missed.len() as u64,
            ms: oldest
                .map(|t| s.start_ns.saturating_sub(t) as f64 / 1e6)
                .unwrap_or(0.0),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use schism_history::Op;

    fn nem(i: u64, t: u64, kind: OpType, f: &str, v: serde_json::Value) -> Op {
        Op::new(
            i,
            t,
            Process::Nemesis,
            kind,
            F::parse(f),
            None,
            Value::Other(v),
        )
    }

    #[test]
    fn windows_pair_generically() {
        use serde_json::json;
        let h = History::new(vec![
            nem(0, 10, OpType::Invoke, "start-partition", json!("majority")),
            nem(1, 20, OpType::Info, "start-partition", json!("majority")),
            nem(2, 30, OpType::Info, "kill", json!({"node": "n1"})),
            nem(3, 35, OpType::Info, "kill", json!({"node": "n2"})),
            nem(4, 40, OpType::Info, "restart", json!({"node": "n2"})),
            nem(5, 50, OpType::Info, "stop-partition", json!(null)),
            nem(6, 60, OpType::Info, "shuffle-leader", json!(null)),
            nem(7, 70, OpType::Info, "clock-bump", json!({"delta_ms": 200})),
            nem(8, 80, OpType::Info, "clock-reset", json!(null)),
            nem(9, 90, OpType::Info, "pause", json!("n3")),
        ]);
        let w = fault_windows(&h);
        assert_eq!(w.len(), 6, "{w:?}");
        assert_eq!(
            (w[0].kind.as_str(), w[0].start_ns, w[0].end_ns),
            ("partition", 20, 50)
        );
        assert_eq!(
            (w[1].kind.as_str(), w[1].end_ns, w[1].open_ended),
            ("kill", 90, true)
        );
        assert_eq!((w[2].kind.as_str(), w[2].end_ns), ("kill", 40));
        assert!(w[3].instant);
        assert_eq!((w[4].kind.as_str(), w[4].end_ns), ("clock-bump", 80));
        assert!(w[5].open_ended);
    }
}
