//! The nemesis's vocabulary in a history: the event names it writes, the whole-state
//! value of its `info` completions, the faults a state holds, their human labels, and
//! the fault windows of a history.
//!
//! Defined once here so the writer (the runner's nemesis loop) and every reader (the
//! report, the progress line) agree. A window is derived from the recorded states alone:
//! a fault opens when an `info` state contains it and closes at the first later `info`
//! state that does not (a `heal` is such a state), so windows never depend on pairing
//! event names. A fault is one partition (its cut set), a paused or killed node, or a
//! node whose clock is not real time; the nodes one event adds together form one window
//! (`pause n2 n3`), closed when the last of them is back. A clock strobe is one fault
//! whatever its steps: a step that happens to set real time does not close its window.
//! Pure: no I/O, no clock.

use crate::{History, Op, OpType, Process, Value};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The `f` of a nemesis op: one per change the schedule can make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Event {
    StartPartition,
    StartPause,
    StartKill,
    BumpClock,
    StrobeClock,
    DriftClock,
    ResetClock,
    Heal,
}

impl Event {
    pub const ALL: [Event; 8] = [
        Event::StartPartition,
        Event::StartPause,
        Event::StartKill,
        Event::BumpClock,
        Event::StrobeClock,
        Event::DriftClock,
        Event::ResetClock,
        Event::Heal,
    ];

    /// The name written as the op's `f`.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::StartPartition => "start-partition",
            Event::StartPause => "start-pause",
            Event::StartKill => "start-kill",
            Event::BumpClock => "bump-clock",
            Event::StrobeClock => "strobe-clock",
            Event::DriftClock => "drift-clock",
            Event::ResetClock => "reset-clock",
            Event::Heal => "heal",
        }
    }

    pub fn parse(f: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|e| e.as_str() == f)
    }
}

/// A node's clock as an `info` state records it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClockRecord {
    #[serde(default)]
    pub offset_ms: i64,
    #[serde(default = "one")]
    pub rate: f64,
}

fn one() -> f64 {
    1.0
}

/// The whole fault state an `info` completion records (what holds after the change),
/// with the fields of the change itself that labels use (`shape`, `leader`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StateRecord {
    /// Directed cuts `(receiver, sender)`.
    #[serde(default)]
    pub cuts: Vec<(String, String)>,
    /// For symmetric partitions, the groups that can talk among themselves.
    #[serde(default)]
    pub groups: Vec<Vec<String>>,
    #[serde(default)]
    pub paused: BTreeSet<String>,
    #[serde(default)]
    pub killed: BTreeSet<String>,
    #[serde(default)]
    pub clocks: BTreeMap<String, ClockRecord>,
    /// The partition shape of the change (`isolate-leader`, `halves`, …), if it was one.
    #[serde(default)]
    pub shape: Option<String>,
    /// The node that led when the change was applied.
    #[serde(default)]
    pub leader: Option<String>,
    /// A majorities ring's order.
    #[serde(default)]
    pub ring: Vec<String>,
    /// A bridge partition's bridge node.
    #[serde(default)]
    pub bridge: Option<String>,
}

impl StateRecord {
    /// The state an op records: `Some` only for a nemesis `info` that applied (no error)
    /// and carries the whole state (`cuts` and `killed` present).
    pub fn of(op: &Op) -> Option<StateRecord> {
        if op.process != Process::NEMESIS || op.kind != OpType::Info || op.error().is_some() {
            return None;
        }
        let Value::Other(v) = &op.value else {
            return None;
        };
        let obj = v.as_object()?;
        if !obj.contains_key("cuts") || !obj.contains_key("killed") {
            return None;
        }
        serde_json::from_value((**v).clone()).ok()
    }

    /// The faults this state holds.
    pub fn faults(&self) -> BTreeSet<Fault> {
        let mut out = BTreeSet::new();
        if !self.cuts.is_empty() {
            let mut cuts = self.cuts.clone();
            cuts.sort();
            out.insert(Fault::Partition(cuts));
        }
        out.extend(self.paused.iter().cloned().map(Fault::Pause));
        out.extend(self.killed.iter().cloned().map(Fault::Kill));
        out.extend(self.clocks.keys().cloned().map(Fault::Clock));
        out
    }
}

/// One fault a state holds (the unit a window is made of).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// A partition, identified by its complete set of directed cuts.
    Partition(Vec<(String, String)>),
    Pause(String),
    Kill(String),
    /// The node's clock is not real time.
    Clock(String),
}

/// The kind of a fault window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WindowKind {
    Partition,
    Pause,
    Kill,
    Clock,
}

impl WindowKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WindowKind::Partition => "partition",
            WindowKind::Pause => "pause",
            WindowKind::Kill => "kill",
            WindowKind::Clock => "clock",
        }
    }
}

/// A fault in effect from `start_ns` (the `info` time of the state that first held it)
/// to `end_ns` (the `info` time of the first later state without it).
#[derive(Debug, Clone, PartialEq)]
pub struct FaultWindow {
    pub kind: WindowKind,
    /// A human label: `partition n1 | n2 n3`, `isolate leader n1`, `kill n1`,
    /// `pause n2 n3`, `clock n2 +250 ms`, `clock n3 drift ×1.05`.
    pub label: String,
    /// The nodes the fault is about (for a partition, every node on a cut).
    pub nodes: Vec<String>,
    pub start_ns: u64,
    pub end_ns: u64,
    /// No later state ended it: it lasts to the end of the history.
    pub open_ended: bool,
}

impl FaultWindow {
    pub fn contains(&self, t_ns: u64) -> bool {
        t_ns >= self.start_ns && t_ns <= self.end_ns
    }
}

/// One open window while replaying states.
#[derive(Debug, Clone)]
struct Open {
    window: FaultWindow,
    facts: BTreeSet<Fault>,
}

/// Replays nemesis `info` states in order and keeps the windows: what the report
/// draws and what the progress line names while a run goes on.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    current: BTreeSet<Fault>,
    open: Vec<Open>,
    closed: Vec<FaultWindow>,
}

impl Tracker {
    pub fn new() -> Tracker {
        Tracker::default()
    }

    /// Feeds one op; only nemesis `info` ops carrying a whole state change anything.
    pub fn observe(&mut self, op: &Op) {
        if let Some(state) = StateRecord::of(op) {
            self.apply(op.time_ns, Event::parse(op.f.as_str()), &state);
        }
    }

    /// Moves to `state`, recorded at `t_ns` by `event`.
    pub fn apply(&mut self, t_ns: u64, event: Option<Event>, state: &StateRecord) {
        let mut next = state.faults();
        // A strobe is one fault whose steps swing the clock, real time included: a step
        // back to real time does not end it; the next other change does.
        if event == Some(Event::StrobeClock) {
            next.extend(
                self.current
                    .iter()
                    .filter(|f| matches!(f, Fault::Clock(_)))
                    .cloned(),
            );
        }
        // Close every window none of whose faults still holds; drop the gone ones from
        // windows that keep some.
        let mut i = 0;
        while i < self.open.len() {
            self.open[i].facts.retain(|f| next.contains(f));
            if self.open[i].facts.is_empty() {
                let mut o = self.open.remove(i);
                o.window.end_ns = t_ns;
                o.window.open_ended = false;
                self.closed.push(o.window);
            } else {
                i += 1;
            }
        }
        // Faults new in this state: one window per kind (one change adds one kind).
        let new: Vec<&Fault> = next.iter().filter(|f| !self.current.contains(f)).collect();
        let mut by_kind: BTreeMap<WindowKind, Vec<&Fault>> = BTreeMap::new();
        for f in new {
            by_kind.entry(kind_of(f)).or_default().push(f);
        }
        for (kind, facts) in by_kind {
            let window = FaultWindow {
                kind,
                label: label(kind, &facts, state, event),
                nodes: nodes_of(&facts),
                start_ns: t_ns,
                end_ns: t_ns,
                open_ended: true,
            };
            self.open.push(Open {
                window,
                facts: facts.into_iter().cloned().collect(),
            });
        }
        self.current = next;
    }

    /// Labels of the faults in effect now, in the order they began.
    pub fn active_labels(&self) -> Vec<String> {
        self.open.iter().map(|o| o.window.label.clone()).collect()
    }

    /// Every window, in start order; those still open end at `end_ns`.
    pub fn finish(self, end_ns: u64) -> Vec<FaultWindow> {
        let mut all = self.closed;
        all.extend(self.open.into_iter().map(|mut o| {
            o.window.end_ns = end_ns.max(o.window.start_ns);
            o.window
        }));
        all.sort_by(|a, b| a.start_ns.cmp(&b.start_ns).then(a.label.cmp(&b.label)));
        all
    }
}

/// The fault windows of a history (see the module doc): from its nemesis `info` states,
/// in start order. A window no state closed ends at the history's last op.
pub fn fault_windows(h: &History) -> Vec<FaultWindow> {
    let mut t = Tracker::new();
    let mut end = 0;
    for op in &h.ops {
        end = end.max(op.time_ns);
        t.observe(op);
    }
    t.finish(end)
}

fn kind_of(f: &Fault) -> WindowKind {
    match f {
        Fault::Partition(_) => WindowKind::Partition,
        Fault::Pause(_) => WindowKind::Pause,
        Fault::Kill(_) => WindowKind::Kill,
        Fault::Clock(_) => WindowKind::Clock,
    }
}

fn nodes_of(facts: &[&Fault]) -> Vec<String> {
    let mut nodes = BTreeSet::new();
    for f in facts {
        match f {
            Fault::Partition(cuts) => {
                for (r, s) in cuts {
                    nodes.insert(r.clone());
                    nodes.insert(s.clone());
                }
            }
            Fault::Pause(n) | Fault::Kill(n) | Fault::Clock(n) => {
                nodes.insert(n.clone());
            }
        }
    }
    nodes.into_iter().collect()
}

/// `n1 n2 n3`.
fn join(nodes: &[String]) -> String {
    nodes.join(" ")
}

/// The human label of a window made of `facts` (all of `kind`), opened by `state`.
fn label(kind: WindowKind, facts: &[&Fault], state: &StateRecord, event: Option<Event>) -> String {
    let nodes = nodes_of(facts);
    match kind {
        WindowKind::Partition => partition_label(state),
        WindowKind::Pause => format!("pause {}", join(&nodes)),
        WindowKind::Kill => format!("kill {}", join(&nodes)),
        WindowKind::Clock => {
            // Nodes with the same setting share a phrase: `clock n2 n3 +250 ms`.
            let mut by_setting: Vec<(String, Vec<String>)> = Vec::new();
            for n in &nodes {
                let c = state.clocks.get(n).copied().unwrap_or(ClockRecord {
                    offset_ms: 0,
                    rate: 1.0,
                });
                let phrase = clock_phrase(c, event);
                match by_setting.iter_mut().find(|(p, _)| *p == phrase) {
                    Some((_, v)) => v.push(n.clone()),
                    None => by_setting.push((phrase, vec![n.clone()])),
                }
            }
            let parts: Vec<String> = by_setting
                .into_iter()
                .map(|(p, ns)| format!("{} {p}", join(&ns)))
                .collect();
            format!("clock {}", parts.join(", "))
        }
    }
}

fn clock_phrase(c: ClockRecord, event: Option<Event>) -> String {
    let mut parts = Vec::new();
    if c.offset_ms != 0 {
        let strobe = if event == Some(Event::StrobeClock) {
            "strobe "
        } else {
            ""
        };
        parts.push(format!("{strobe}{:+} ms", c.offset_ms));
    }
    if c.rate != 1.0 {
        parts.push(format!("drift ×{}", trim_rate(c.rate)));
    }
    if parts.is_empty() {
        parts.push("real time".into());
    }
    parts.join(" ")
}

fn trim_rate(r: f64) -> String {
    let s = format!("{r:.4}");
    let s = s.trim_end_matches('0');
    s.trim_end_matches('.').to_owned()
}

fn partition_label(state: &StateRecord) -> String {
    match state.shape.as_deref() {
        Some("isolate-leader") => {
            let node = state
                .groups
                .iter()
                .find(|g| g.len() == 1)
                .and_then(|g| g.first())
                .or(state.leader.as_ref());
            match node {
                Some(n) => format!("isolate leader {n}"),
                None => "isolate leader".into(),
            }
        }
        Some("majorities-ring") if !state.ring.is_empty() => {
            format!("partition majorities ring {}", join(&state.ring))
        }
        Some("one-way") if state.cuts.len() == 1 => {
            let (deaf, from) = &state.cuts[0];
            format!("partition one-way {deaf} deaf to {from}")
        }
        Some("bridge") if state.groups.len() == 2 => {
            let b = state.bridge.clone().unwrap_or_default();
            let side = |g: &Vec<String>| -> String {
                join(&g.iter().filter(|n| **n != b).cloned().collect::<Vec<_>>())
            };
            format!(
                "partition {} | {} bridged by {b}",
                side(&state.groups[0]),
                side(&state.groups[1])
            )
        }
        _ if !state.groups.is_empty() => {
            let groups: Vec<String> = state.groups.iter().map(|g| join(g)).collect();
            format!("partition {}", groups.join(" | "))
        }
        _ => {
            let cuts: Vec<String> = state.cuts.iter().map(|(r, s)| format!("{r}←{s}")).collect();
            format!("partition cuts {}", cuts.join(" "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::F;
    use serde_json::json;

    fn info(t: u64, event: Event, v: serde_json::Value) -> Op {
        Op::new(
            0,
            t,
            Process::NEMESIS,
            OpType::Info,
            F::parse(event.as_str()),
            None,
            Value::other(v),
        )
    }

    fn healed() -> serde_json::Value {
        json!({"cuts": [], "groups": [], "paused": [], "killed": [], "clocks": {}})
    }

    #[test]
    fn windows_from_states() {
        let h = History::new(vec![
            info(
                10,
                Event::StartPartition,
                json!({"fault": "partition", "shape": "isolate-leader", "leader": "n1",
                    "cuts": [["n1","n2"],["n1","n3"],["n2","n1"],["n3","n1"]],
                    "groups": [["n1"],["n2","n3"]], "paused": [], "killed": [], "clocks": {}}),
            ),
            info(20, Event::Heal, healed()),
            info(
                30,
                Event::StartPause,
                json!({"cuts": [], "paused": ["n2","n3"], "killed": [], "clocks": {}}),
            ),
            info(
                35,
                Event::StartKill,
                json!({"cuts": [], "paused": ["n2"], "killed": ["n3"], "clocks": {}}),
            ),
            info(40, Event::Heal, healed()),
            info(
                50,
                Event::DriftClock,
                json!({"cuts": [], "paused": [], "killed": [], "clocks": {"n3": {"offset_ms": 0, "rate": 1.05}}}),
            ),
            info(
                60,
                Event::BumpClock,
                json!({"cuts": [], "paused": [], "killed": [], "clocks": {"n2": {"offset_ms": 250, "rate": 1.0}, "n3": {"offset_ms": 0, "rate": 1.05}}}),
            ),
        ]);
        let w = fault_windows(&h);
        let got: Vec<(&str, u64, u64, bool)> = w
            .iter()
            .map(|w| (w.label.as_str(), w.start_ns, w.end_ns, w.open_ended))
            .collect();
        assert_eq!(
            got,
            vec![
                ("isolate leader n1", 10, 20, false),
                ("pause n2 n3", 30, 40, false),
                ("kill n3", 35, 40, false),
                ("clock n3 drift ×1.05", 50, 60, true),
                ("clock n2 +250 ms", 60, 60, true),
            ]
        );
        assert!(w.iter().all(|w| !w.label.contains('{')));
    }

    #[test]
    fn a_strobe_is_one_window() {
        let strobe = |t, off: i64| {
            let clocks = if off == 0 {
                json!({})
            } else {
                json!({"n1": {"offset_ms": off, "rate": 1.0}})
            };
            info(
                t,
                Event::StrobeClock,
                json!({"cuts": [], "paused": [], "killed": [], "clocks": clocks}),
            )
        };
        let h = History::new(vec![
            strobe(10, 500),
            strobe(20, 0),
            strobe(30, 500),
            info(40, Event::Heal, healed()),
        ]);
        let w = fault_windows(&h);
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!((w[0].start_ns, w[0].end_ns), (10, 40));
        assert_eq!(w[0].label, "clock n1 strobe +500 ms");
    }

    #[test]
    fn events_round_trip() {
        for e in Event::ALL {
            assert_eq!(Event::parse(e.as_str()), Some(e));
        }
        assert_eq!(Event::parse("stop-partition"), None);
    }
}
