//! The fault vocabulary: what a schedule asks for, and the concrete state it resolves to.
//!
//! A `Fault` is what the schedule decided (from the seed alone): a partition shape, the
//! nodes to pause or kill, a clock change. Only a target chosen by role (`Leader`,
//! `Shape::IsolateLeader`, `Shape::CutLeader`) is left open; `resolve` fills it in from
//! the node the target says leads, and turns the fault
//! into a `FaultState`: the complete set of link cuts, paused and killed nodes and clock
//! settings that should hold now. Mechanisms apply a whole `FaultState` at once, so
//! applying the same state twice changes nothing, and healing is applying
//! `FaultState::default()`. Everything here is pure: no I/O, no clock, no randomness.

use schism_history::nemesis::Event;
use schism_targets::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

/// The kinds of fault a schedule can inject (`--nemesis partition,pause,kill,clock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Partition,
    Pause,
    Kill,
    Clock,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Partition, Kind::Pause, Kind::Kill, Kind::Clock];

    /// Parses `partition,pause,kill,clock` (any subset, any order), `all`, or `none`.
    pub fn parse_list(s: &str) -> Result<Vec<Kind>, String> {
        let s = s.trim();
        if s.is_empty() || s == "none" {
            return Ok(Vec::new());
        }
        if s == "all" {
            return Ok(Kind::ALL.to_vec());
        }
        let mut kinds: Vec<Kind> = s
            .split(',')
            .map(|k| k.trim().parse())
            .collect::<Result<_, _>>()?;
        kinds.sort();
        kinds.dedup();
        Ok(kinds)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Partition => "partition",
            Kind::Pause => "pause",
            Kind::Kill => "kill",
            Kind::Clock => "clock",
        })
    }
}

impl FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "partition" => Ok(Kind::Partition),
            "pause" => Ok(Kind::Pause),
            "kill" => Ok(Kind::Kill),
            "clock" => Ok(Kind::Clock),
            other => Err(format!(
                "unknown nemesis fault {other:?}: expected partition, pause, kill, clock (any subset), all or none"
            )),
        }
    }
}

/// How the schedule picks the nodes a pause, kill or clock fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Selector {
    One,
    Minority,
    Majority,
    Leader,
    All,
}

impl Selector {
    pub const ALL: [Selector; 5] = [
        Selector::One,
        Selector::Minority,
        Selector::Majority,
        Selector::Leader,
        Selector::All,
    ];

    pub fn parse_list(s: &str) -> Result<Vec<Selector>, String> {
        let mut v: Vec<Selector> = s
            .split(',')
            .map(|x| match x.trim() {
                "one" => Ok(Selector::One),
                "minority" => Ok(Selector::Minority),
                "majority" => Ok(Selector::Majority),
                "leader" => Ok(Selector::Leader),
                "all" => Ok(Selector::All),
                other => Err(format!(
                    "unknown nemesis target {other:?}: expected one, minority, majority, leader or all"
                )),
            })
            .collect::<Result<_, _>>()?;
        v.sort();
        v.dedup();
        if v.is_empty() {
            return Err("no nemesis targets given".into());
        }
        Ok(v)
    }
}

/// Nodes a fault hits: fixed by the schedule, or whoever leads when it is applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Targets {
    Nodes(Vec<NodeId>),
    Leader,
}

/// Partition shapes (Jepsen's names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "shape", rename_all = "kebab-case")]
pub enum Shape {
    /// One node cut from all others.
    Isolate { node: NodeId },
    /// The cluster split in two: `minority` against the rest.
    Halves { minority: Vec<NodeId> },
    /// Each node hears only the next majority-minus-one nodes of `ring`: every node sees
    /// a majority, no two see the same one.
    MajoritiesRing { ring: Vec<NodeId> },
    /// Two halves that only `bridge` connects.
    Bridge {
        bridge: NodeId,
        left: Vec<NodeId>,
        right: Vec<NodeId>,
    },
    /// The node that leads when the fault is applied, cut from all others.
    IsolateLeader,
    /// The node that leads when the fault is applied loses its links (both ways) to one
    /// follower: the `pick`-th of the other nodes in cluster order (modulo their number).
    /// Everyone else still hears everyone.
    CutLeader { pick: usize },
    /// `deaf` cannot hear `from` (`from` still hears `deaf`).
    OneWay { deaf: NodeId, from: NodeId },
}

impl Shape {
    pub fn name(&self) -> &'static str {
        match self {
            Shape::Isolate { .. } => "isolate",
            Shape::Halves { .. } => "halves",
            Shape::MajoritiesRing { .. } => "majorities-ring",
            Shape::Bridge { .. } => "bridge",
            Shape::IsolateLeader => "isolate-leader",
            Shape::CutLeader { .. } => "cut-leader",
            Shape::OneWay { .. } => "one-way",
        }
    }
}

/// Clock faults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "clock", rename_all = "kebab-case")]
pub enum ClockFault {
    /// Add `delta_ms` to the targets' offsets (negative: back in time).
    Bump { targets: Targets, delta_ms: i64 },
    /// Set the targets' offsets to exactly `offset_ms` (one step of a strobe).
    Strobe { targets: Targets, offset_ms: i64 },
    /// Make the targets' clocks run at `rate` (1.0 is real speed).
    Drift { targets: Targets, rate: f64 },
    /// Every clock back to real time.
    Reset,
}

/// One fault the schedule asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "kebab-case")]
pub enum Fault {
    Partition(Shape),
    Pause { targets: Targets },
    Kill { targets: Targets },
    Clock(ClockFault),
}

impl Fault {
    pub fn kind(&self) -> Kind {
        match self {
            Fault::Partition(_) => Kind::Partition,
            Fault::Pause { .. } => Kind::Pause,
            Fault::Kill { .. } => Kind::Kill,
            Fault::Clock(_) => Kind::Clock,
        }
    }

    /// The history's event for this fault (its `f`; the vocabulary is
    /// `schism_history::nemesis::Event`, which the report reads).
    pub fn event(&self) -> Event {
        match self {
            Fault::Partition(_) => Event::StartPartition,
            Fault::Pause { .. } => Event::StartPause,
            Fault::Kill { .. } => Event::StartKill,
            Fault::Clock(ClockFault::Bump { .. }) => Event::BumpClock,
            Fault::Clock(ClockFault::Strobe { .. }) => Event::StrobeClock,
            Fault::Clock(ClockFault::Drift { .. }) => Event::DriftClock,
            Fault::Clock(ClockFault::Reset) => Event::ResetClock,
        }
    }

    /// The history's `f` for this fault (`start-partition`, `start-pause`, …).
    pub fn f(&self) -> &'static str {
        self.event().as_str()
    }

    /// Whether resolving needs to know the leader.
    pub fn needs_leader(&self) -> bool {
        match self {
            Fault::Partition(s) => matches!(s, Shape::IsolateLeader | Shape::CutLeader { .. }),
            Fault::Pause { targets } | Fault::Kill { targets } => *targets == Targets::Leader,
            Fault::Clock(
                ClockFault::Bump { targets, .. }
                | ClockFault::Strobe { targets, .. }
                | ClockFault::Drift { targets, .. },
            ) => *targets == Targets::Leader,
            Fault::Clock(ClockFault::Reset) => false,
        }
    }
}

/// A node's clock setting.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClockSetting {
    pub offset_ms: i64,
    pub rate: f64,
}

impl Default for ClockSetting {
    fn default() -> Self {
        ClockSetting {
            offset_ms: 0,
            rate: 1.0,
        }
    }
}

/// Everything that should be broken right now. `Default` is the healed cluster.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultState {
    /// Directed cuts `(receiver, sender)`: `receiver` drops what `sender` sends it.
    pub cuts: BTreeSet<(NodeId, NodeId)>,
    /// For symmetric partitions, the groups that can talk among themselves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<Vec<NodeId>>,
    pub paused: BTreeSet<NodeId>,
    pub killed: BTreeSet<NodeId>,
    /// Nodes whose clock is not real time.
    pub clocks: BTreeMap<NodeId, ClockSetting>,
}

impl FaultState {
    pub fn is_healed(&self) -> bool {
        self.cuts.is_empty()
            && self.paused.is_empty()
            && self.killed.is_empty()
            && self.clocks.is_empty()
    }

    /// The senders `node` must not hear from.
    pub fn deaf_to(&self, node: &str) -> Vec<NodeId> {
        self.cuts
            .iter()
            .filter(|(r, _)| r == node)
            .map(|(_, s)| s.clone())
            .collect()
    }

    /// The node's clock setting (real time unless set).
    pub fn clock(&self, node: &str) -> ClockSetting {
        self.clocks.get(node).copied().unwrap_or_default()
    }
}

/// Cuts every link between different groups, both ways.
pub fn cuts_between(groups: &[Vec<NodeId>]) -> BTreeSet<(NodeId, NodeId)> {
    let mut cuts = BTreeSet::new();
    for (i, a) in groups.iter().enumerate() {
        for (j, b) in groups.iter().enumerate() {
            if i == j {
                continue;
            }
            for r in a {
                for s in b {
                    if r != s {
                        cuts.insert((r.clone(), s.clone()));
                    }
                }
            }
        }
    }
    cuts
}

/// `nodes` without `these`, in order.
fn rest(nodes: &[NodeId], these: &[NodeId]) -> Vec<NodeId> {
    nodes
        .iter()
        .filter(|n| !these.contains(n))
        .cloned()
        .collect()
}

/// Turns `fault` into the state that should hold after it, starting from `current`.
/// `leader` is asked only if the fault targets the leader; with no leader known such a
/// fault resolves to nothing and says so in the error.
pub fn resolve(
    fault: &Fault,
    nodes: &[NodeId],
    leader: Option<&str>,
    current: &FaultState,
) -> Result<FaultState, String> {
    let the_leader = || -> Result<NodeId, String> {
        leader
            .map(str::to_owned)
            .ok_or_else(|| "no node names a leader".to_owned())
    };
    let targets_of = |t: &Targets| -> Result<Vec<NodeId>, String> {
        match t {
            Targets::Nodes(v) => Ok(v.clone()),
            Targets::Leader => Ok(vec![the_leader()?]),
        }
    };
    let mut next = current.clone();
    match fault {
        Fault::Partition(shape) => {
            (next.groups, next.cuts) = partition(shape, nodes, the_leader)?;
        }
        Fault::Pause { targets } => {
            for n in targets_of(targets)? {
                if !next.killed.contains(&n) {
                    next.paused.insert(n);
                }
            }
        }
        Fault::Kill { targets } => {
            for n in targets_of(targets)? {
                next.paused.remove(&n);
                next.killed.insert(n);
            }
        }
        Fault::Clock(ClockFault::Bump { targets, delta_ms }) => {
            for n in targets_of(targets)? {
                let c = next.clocks.entry(n).or_default();
                c.offset_ms = c.offset_ms.saturating_add(*delta_ms);
            }
        }
        Fault::Clock(ClockFault::Strobe { targets, offset_ms }) => {
            for n in targets_of(targets)? {
                next.clocks.entry(n).or_default().offset_ms = *offset_ms;
            }
        }
        Fault::Clock(ClockFault::Drift { targets, rate }) => {
            for n in targets_of(targets)? {
                next.clocks.entry(n).or_default().rate = *rate;
            }
        }
        Fault::Clock(ClockFault::Reset) => next.clocks.clear(),
    }
    next.clocks.retain(|_, c| *c != ClockSetting::default());
    Ok(next)
}

/// Directed cuts: (receiver, sender) pairs whose traffic is dropped.
type Cuts = BTreeSet<(NodeId, NodeId)>;

/// The groups and directed cuts a partition `shape` makes of `nodes`.
fn partition(
    shape: &Shape,
    nodes: &[NodeId],
    the_leader: impl Fn() -> Result<NodeId, String>,
) -> Result<(Vec<Vec<NodeId>>, Cuts), String> {
    let between = |g: Vec<Vec<NodeId>>| {
        let c = cuts_between(&g);
        (g, c)
    };
    Ok(match shape {
        Shape::Isolate { node } => between(vec![
            vec![node.clone()],
            rest(nodes, std::slice::from_ref(node)),
        ]),
        Shape::IsolateLeader => {
            let l = the_leader()?;
            between(vec![vec![l.clone()], rest(nodes, &[l])])
        }
        Shape::CutLeader { pick } => {
            let l = the_leader()?;
            let others = rest(nodes, std::slice::from_ref(&l));
            let c = match others.get(pick % others.len().max(1)) {
                Some(peer) => [(l.clone(), peer.clone()), (peer.clone(), l)]
                    .into_iter()
                    .collect(),
                None => BTreeSet::new(),
            };
            (Vec::new(), c)
        }
        Shape::Halves { minority } => between(vec![minority.clone(), rest(nodes, minority)]),
        Shape::Bridge {
            bridge,
            left,
            right,
        } => {
            let mut c = cuts_between(&[left.clone(), right.clone()]);
            c.retain(|(r, s)| r != bridge && s != bridge);
            let mut l = left.clone();
            l.push(bridge.clone());
            let mut r = right.clone();
            r.push(bridge.clone());
            (vec![l, r], c)
        }
        Shape::MajoritiesRing { ring } => (Vec::new(), majorities_ring(ring)),
        Shape::OneWay { deaf, from } => (
            Vec::new(),
            [(deaf.clone(), from.clone())].into_iter().collect(),
        ),
    })
}

/// Each node of `ring` hears only the majority - 1 nodes after it.
fn majorities_ring(ring: &[NodeId]) -> Cuts {
    let n = ring.len();
    let hears = n / 2; // majority - 1
    let mut c = BTreeSet::new();
    for (i, r) in ring.iter().enumerate() {
        let heard: Vec<&NodeId> = (1..=hears).map(|k| &ring[(i + k) % n]).collect();
        for s in ring {
            if s != r && !heard.contains(&s) {
                c.insert((r.clone(), s.clone()));
            }
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<NodeId> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    fn cut(r: &str, s: &str) -> (NodeId, NodeId) {
        (r.to_owned(), s.to_owned())
    }

    #[test]
    fn kinds_parse() {
        assert_eq!(
            Kind::parse_list("kill, partition,kill").unwrap(),
            vec![Kind::Partition, Kind::Kill]
        );
        assert!(Kind::parse_list("none").unwrap().is_empty());
        assert_eq!(Kind::parse_list("all").unwrap().len(), 4);
        assert!(Kind::parse_list("flood").unwrap_err().contains("flood"));
    }

    /// What a partition of n1, n2, n3 with nothing else faulty resolves to.
    fn partitioned(shape: Shape, leader: Option<&str>) -> Result<FaultState, String> {
        let nodes = ids(&["n1", "n2", "n3"]);
        resolve(
            &Fault::Partition(shape),
            &nodes,
            leader,
            &FaultState::default(),
        )
    }

    #[test]
    fn shapes_resolve_to_cuts() {
        let iso = partitioned(Shape::IsolateLeader, Some("n1")).unwrap();
        assert_eq!(iso.groups, vec![ids(&["n1"]), ids(&["n2", "n3"])]);
        assert_eq!(iso.cuts.len(), 4);
        assert!(iso.cuts.contains(&cut("n2", "n1")) && iso.cuts.contains(&cut("n1", "n3")));
        assert!(!iso.cuts.contains(&cut("n2", "n3")));
        assert_eq!(iso.deaf_to("n1"), ids(&["n2", "n3"]));

        let ring = partitioned(
            Shape::MajoritiesRing {
                ring: ids(&["n2", "n1", "n3"]),
            },
            None,
        )
        .unwrap();
        // n2 hears n1, n1 hears n3, n3 hears n2.
        assert_eq!(
            ring.cuts,
            [cut("n2", "n3"), cut("n1", "n2"), cut("n3", "n1")]
                .into_iter()
                .collect()
        );

        let bridge = partitioned(
            Shape::Bridge {
                bridge: "n2".into(),
                left: ids(&["n1"]),
                right: ids(&["n3"]),
            },
            None,
        )
        .unwrap();
        assert_eq!(
            bridge.cuts,
            [cut("n1", "n3"), cut("n3", "n1")].into_iter().collect()
        );

        let one_way = partitioned(
            Shape::OneWay {
                deaf: "n1".into(),
                from: "n2".into(),
            },
            None,
        )
        .unwrap();
        assert_eq!(one_way.cuts, [cut("n1", "n2")].into_iter().collect());
        assert!(
            partitioned(Shape::IsolateLeader, None)
                .unwrap_err()
                .contains("leader")
        );
        // Cut the leader (whoever it is when applied) from one follower, both ways.
        let cut_leader = Shape::CutLeader { pick: 1 };
        assert!(Fault::Partition(cut_leader.clone()).needs_leader());
        let c = partitioned(cut_leader.clone(), Some("n2")).unwrap();
        assert_eq!(
            c.cuts,
            [cut("n2", "n3"), cut("n3", "n2")].into_iter().collect()
        );
        let c = partitioned(cut_leader.clone(), Some("n3")).unwrap();
        assert_eq!(
            c.cuts,
            [cut("n3", "n2"), cut("n2", "n3")].into_iter().collect()
        );
        assert!(
            partitioned(cut_leader, None)
                .unwrap_err()
                .contains("leader")
        );
    }

    #[test]
    fn processes_and_clocks_accumulate_and_heal() {
        let nodes = ids(&["n1", "n2", "n3"]);
        let s = resolve(
            &Fault::Pause {
                targets: Targets::Nodes(ids(&["n2"])),
            },
            &nodes,
            None,
            &FaultState::default(),
        )
        .unwrap();
        let s = resolve(
            &Fault::Kill {
                targets: Targets::Leader,
            },
            &nodes,
            Some("n2"),
            &s,
        )
        .unwrap();
        assert!(s.paused.is_empty(), "a killed node is no longer paused");
        assert_eq!(s.killed, ["n2".to_owned()].into_iter().collect());
        let bump = Fault::Clock(ClockFault::Bump {
            targets: Targets::Nodes(ids(&["n1"])),
            delta_ms: 500,
        });
        let s = resolve(&bump, &nodes, None, &s).unwrap();
        let s = resolve(&bump, &nodes, None, &s).unwrap();
        assert_eq!(s.clock("n1").offset_ms, 1000);
        let s = resolve(&Fault::Clock(ClockFault::Reset), &nodes, None, &s).unwrap();
        assert!(s.clocks.is_empty());
        assert!(!s.is_healed());
        assert!(FaultState::default().is_healed());
    }
}
