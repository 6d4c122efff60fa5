//! Seeded, time-explicit fault schedules (like `workloads::Generator`, for faults).
//!
//! `Schedule::new` lays out the whole plan from the run's seed: quiet for one interval,
//! then a fault for one interval and healed for one interval, again and again, each fault
//! of a kind drawn from the enabled kinds with its shape, nodes and sizes drawn too; a
//! strobe is a series of clock steps inside its interval. The last change is always a
//! final heal at `end_ns`, which the runner places a quiet period before the workload's
//! time limit, so final reads see a healed cluster. `next(now_ns)` answers the next due
//! change, "nothing until `until_ns`", or done; it never reads a clock.
//!
//! Partitions follow the targets too: with every selector (the default) any shape may
//! come; otherwise each partition first draws one of the given selectors and then a shape
//! of its family — `one`: isolate a node or a one-way cut; `minority`: halves; `majority`:
//! majorities ring or bridge (every node still sees a majority); `leader`: isolate the
//! leader or cut it from one follower, dealt from a shuffled deck of three isolations and
//! one cut (so two leader partitions in a row always include an isolation); `all`: any
//! shape. So `--nemesis partition --nemesis-targets leader` only ever partitions the leader.
//!
//! Guarantees: the same spec (seed included) gives the same plan — kinds, shapes, nodes,
//! offsets and times; only a target chosen by role (`Targets::Leader`,
//! `Shape::IsolateLeader`, `Shape::CutLeader`) is left to be resolved when applied. No
//! fault is planned to start at or after `end_ns`, and every fault is followed by a heal.
//!
//! A plan can also be given explicitly: `PlanFile` is the one file format of a run's
//! fault plan (`plan.json` in every run folder, `--plan FILE` on `schism test` and
//! `schism sim`): a version, the node ids and the exact list of `Planned` changes.
//! `PlanFile::validate` refuses a plan that cannot be run as it reads (an unknown node,
//! times going backwards, no final heal at the end, a change after the time limit), and
//! `Schedule::from_planned` follows a validated plan change by change, exactly as
//! `Schedule::new` follows a drawn one.

use crate::error::NemesisError;
use crate::fault::{ClockFault, Fault, Kind, Selector, Shape, Targets};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use schism_targets::NodeId;
use serde::{Deserialize, Serialize};

/// What to plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleSpec {
    pub kinds: Vec<Kind>,
    /// How pause, kill and clock faults choose their nodes.
    pub targets: Vec<Selector>,
    pub nodes: Vec<NodeId>,
    /// A fault lasts this long, then the cluster stays healed this long.
    pub interval_ns: u64,
    /// The final heal happens at this time; no fault starts at or after it.
    pub end_ns: u64,
    pub seed: u64,
}

/// One planned change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "kebab-case")]
pub enum Change {
    Fault(Fault),
    /// Everything back to normal.
    Heal,
}

/// A change and when it is due.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Planned {
    pub at_ns: u64,
    pub change: Change,
    /// The last heal of the run.
    #[serde(default)]
    pub final_heal: bool,
}

/// The answer to `Schedule::next`.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    Change(Planned),
    Pending { until_ns: u64 },
    Done,
}

/// A planned sequence of fault changes.
#[derive(Debug, Clone)]
pub struct Schedule {
    plan: Vec<Planned>,
    pos: usize,
}

impl Schedule {
    pub fn new(spec: &ScheduleSpec) -> Result<Schedule, String> {
        if spec.interval_ns == 0 && !spec.kinds.is_empty() {
            return Err("the nemesis interval must be positive".into());
        }
        if spec.nodes.is_empty() {
            return Err("a schedule needs at least one node".into());
        }
        let mut plan = Vec::new();
        if spec.kinds.is_empty() {
            return Ok(Schedule { plan, pos: 0 });
        }
        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed ^ 0x6e65_6d65_7369_7321);
        let kinds: Vec<Kind> = spec
            .kinds
            .iter()
            .copied()
            .filter(|k| *k != Kind::Partition || spec.nodes.len() >= 2)
            .collect();
        let targets = if spec.targets.is_empty() {
            Selector::ALL.to_vec()
        } else {
            spec.targets.clone()
        };
        let iv = spec.interval_ns;
        let mut t = iv;
        let mut leader_deck = LeaderDeck::default();
        while !kinds.is_empty() && t.saturating_add(iv) <= spec.end_ns {
            let kind = kinds[rng.random_range(0..kinds.len())];
            let faults = draw_faults(
                &mut rng,
                kind,
                (&targets, &spec.nodes),
                &mut leader_deck,
                (t, iv),
            );
            plan.extend(faults.into_iter().map(|(at_ns, f)| Planned {
                at_ns,
                change: Change::Fault(f),
                final_heal: false,
            }));
            plan.push(Planned {
                at_ns: t + iv,
                change: Change::Heal,
                final_heal: false,
            });
            t += 2 * iv;
        }
        plan.push(Planned {
            at_ns: spec.end_ns,
            change: Change::Heal,
            final_heal: true,
        });
        Ok(Schedule { plan, pos: 0 })
    }

    /// Follows an explicit plan (validated by `PlanFile::validate`) change by change.
    pub fn from_planned(plan: Vec<Planned>) -> Schedule {
        Schedule { plan, pos: 0 }
    }

    /// The whole plan (for config.json and tests).
    pub fn plan(&self) -> &[Planned] {
        &self.plan
    }

    /// The next change due at `now_ns`, or when the next one is due, or done.
    pub fn next(&mut self, now_ns: u64) -> Next {
        match self.plan.get(self.pos) {
            None => Next::Done,
            Some(p) if p.at_ns <= now_ns => {
                self.pos += 1;
                Next::Change(p.clone())
            }
            Some(p) => Next::Pending { until_ns: p.at_ns },
        }
    }
}

/// `plan.json`: a run's fault plan, exactly as it is (or was) run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanFile {
    /// The format's version (`PlanFile::VERSION`).
    pub version: u32,
    /// The cluster's node ids, in cluster order (`n1`…).
    pub nodes: Vec<NodeId>,
    /// Every change and when it is due (since the workload started), in time order; the
    /// last is the final heal.
    pub changes: Vec<Planned>,
}

impl PlanFile {
    pub const VERSION: u32 = 1;
    /// The file's name in a run folder.
    pub const FILE: &'static str = "plan.json";

    pub fn new(nodes: &[NodeId], changes: &[Planned]) -> PlanFile {
        PlanFile {
            version: PlanFile::VERSION,
            nodes: nodes.to_vec(),
            changes: changes.to_vec(),
        }
    }

    /// Reads and parses `path` (not yet validated against a run: see `validate`).
    pub fn read(path: &std::path::Path) -> Result<PlanFile, NemesisError> {
        let err = |msg: String| NemesisError::Plan {
            path: path.display().to_string(),
            msg,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
        serde_json::from_str(&text).map_err(|e| {
            err(format!(
                "line {}, column {}: not a fault plan ({e}); write {{\"version\": 1, \"nodes\": [...], \"changes\": [...]}} as a run folder's plan.json has it",
                e.line(),
                e.column()
            ))
        })
    }

    /// The kinds of fault the plan injects (for capability checks and the network).
    pub fn kinds(&self) -> Vec<Kind> {
        let mut kinds: Vec<Kind> = self
            .changes
            .iter()
            .filter_map(|p| match &p.change {
                Change::Fault(f) => Some(f.kind()),
                Change::Heal => None,
            })
            .collect();
        kinds.sort();
        kinds.dedup();
        kinds
    }

    /// How many fault changes (not heals) the plan makes.
    pub fn fault_count(&self) -> usize {
        self.changes
            .iter()
            .filter(|p| matches!(p.change, Change::Fault(_)))
            .count()
    }

    /// Checks that the plan can be run on a cluster of `nodes` whose workload ends at
    /// `time_limit_ns`; the error is one line (`source: what is wrong`).
    pub fn validate(
        &self,
        source: &str,
        nodes: &[NodeId],
        time_limit_ns: u64,
    ) -> Result<(), NemesisError> {
        self.check(nodes, time_limit_ns)
            .map_err(|msg| NemesisError::Plan {
                path: source.to_owned(),
                msg,
            })
    }

    fn check(&self, nodes: &[NodeId], time_limit_ns: u64) -> Result<(), String> {
        if self.version != PlanFile::VERSION {
            return Err(format!(
                "version {} is not supported (this schism reads version {})",
                self.version,
                PlanFile::VERSION
            ));
        }
        if self.nodes != nodes {
            return Err(format!(
                "the plan is for nodes {} but the run has {} (set --nodes {})",
                self.nodes.join(","),
                nodes.join(","),
                self.nodes.len()
            ));
        }
        let mut prev = 0;
        for (i, p) in self.changes.iter().enumerate() {
            let at = format!("change {} (at {} ms)", i + 1, p.at_ns / 1_000_000);
            if p.at_ns < prev {
                return Err(format!(
                    "{at}: times must not go backwards (the change before is at {} ms)",
                    prev / 1_000_000
                ));
            }
            prev = p.at_ns;
            if p.at_ns > time_limit_ns {
                return Err(format!(
                    "{at}: after the time limit ({} ms): raise --time-limit or drop the change",
                    time_limit_ns / 1_000_000
                ));
            }
            if let Change::Fault(f) = &p.change {
                for n in fault_nodes(f) {
                    if !self.nodes.contains(n) {
                        return Err(format!(
                            "{at}: unknown node {n:?} (the plan's nodes are {})",
                            self.nodes.join(",")
                        ));
                    }
                }
                if fault_nodes(f).is_empty() && fault_needs_nodes(f) {
                    return Err(format!("{at}: the {} fault names no node", f.f()));
                }
                if f.kind() == Kind::Partition && self.nodes.len() < 2 {
                    return Err(format!("{at}: a partition needs at least two nodes"));
                }
            }
            let last = i + 1 == self.changes.len();
            if p.final_heal != last || (last && p.change != Change::Heal) {
                return Err(if last {
                    format!(
                        "{at}: the last change must be the final heal ({{\"at_ns\": …, \"change\": {{\"change\": \"heal\"}}, \"final_heal\": true}})"
                    )
                } else {
                    format!("{at}: only the last change may be the final heal")
                });
            }
        }
        // An empty plan is a run without faults (`--nemesis none`): nothing to heal.
        Ok(())
    }
}

/// Every node a fault names (none for a target chosen by role).
pub fn fault_nodes(f: &Fault) -> Vec<&NodeId> {
    match f {
        Fault::Partition(shape) => match shape {
            Shape::Isolate { node } => vec![node],
            Shape::Halves { minority } => minority.iter().collect(),
            Shape::MajoritiesRing { ring } => ring.iter().collect(),
            Shape::Bridge {
                bridge,
                left,
                right,
            } => std::iter::once(bridge).chain(left).chain(right).collect(),
            Shape::IsolateLeader | Shape::CutLeader { .. } => Vec::new(),
            Shape::OneWay { deaf, from } => vec![deaf, from],
        },
        Fault::Pause { targets } | Fault::Kill { targets } => named_by(targets),
        Fault::Clock(
            ClockFault::Bump { targets: t, .. }
            | ClockFault::Strobe { targets: t, .. }
            | ClockFault::Drift { targets: t, .. },
        ) => named_by(t),
        Fault::Clock(ClockFault::Reset) => Vec::new(),
    }
}

fn named_by(t: &Targets) -> Vec<&NodeId> {
    match t {
        Targets::Nodes(v) => v.iter().collect(),
        Targets::Leader => Vec::new(),
    }
}

/// Whether a fault with no node named does nothing (an empty node list, not a role).
fn fault_needs_nodes(f: &Fault) -> bool {
    match f {
        Fault::Partition(s) => matches!(s, Shape::Halves { .. } | Shape::MajoritiesRing { .. }),
        Fault::Pause { targets } | Fault::Kill { targets } => *targets != Targets::Leader,
        Fault::Clock(
            ClockFault::Bump { targets, .. }
            | ClockFault::Strobe { targets, .. }
            | ClockFault::Drift { targets, .. },
        ) => *targets != Targets::Leader,
        Fault::Clock(ClockFault::Reset) => false,
    }
}

/// A random permutation of `nodes` (Fisher–Yates on the seeded RNG).
fn shuffled(rng: &mut ChaCha8Rng, nodes: &[NodeId]) -> Vec<NodeId> {
    let mut v = nodes.to_vec();
    for i in (1..v.len()).rev() {
        let j = rng.random_range(0..=i);
        v.swap(i, j);
    }
    v
}

fn sorted(mut v: Vec<NodeId>) -> Vec<NodeId> {
    v.sort_by(|a, b| (a.len(), a).cmp(&(b.len(), b)));
    v
}

fn pick_targets(rng: &mut ChaCha8Rng, selectors: &[Selector], nodes: &[NodeId]) -> Targets {
    let n = nodes.len();
    let count = match selectors[rng.random_range(0..selectors.len())] {
        Selector::Leader => return Targets::Leader,
        Selector::One => 1,
        Selector::Minority => ((n - 1) / 2).max(1),
        Selector::Majority => n / 2 + 1,
        Selector::All => n,
    };
    Targets::Nodes(sorted(
        shuffled(rng, nodes).into_iter().take(count).collect(),
    ))
}

/// Leader partition shapes in a fixed mix, random order: `deal` answers "isolate" three
/// times in four and "cut from one follower" once, never twice in a row (a fresh deck
/// after a cut starts with an isolation).
#[derive(Debug, Default)]
struct LeaderDeck {
    /// `true`: isolate; dealt from the end.
    cards: Vec<bool>,
    last_was_cut: bool,
}

impl LeaderDeck {
    fn deal(&mut self, rng: &mut ChaCha8Rng) -> bool {
        if self.cards.is_empty() {
            self.cards = vec![true, true, true, false];
            for i in (1..self.cards.len()).rev() {
                self.cards.swap(i, rng.random_range(0..=i));
            }
            if self.last_was_cut && self.cards.last() == Some(&false) {
                self.cards.swap(0, 3);
            }
        }
        let isolate = self.cards.pop().unwrap_or(true);
        self.last_was_cut = !isolate;
        isolate
    }
}

/// The fault (or, for a strobe, the clock steps) of one interval of `kind`, starting at
/// `t` and `iv` long, as (time, fault), its nodes chosen by the `targets` selectors.
fn draw_faults(
    rng: &mut ChaCha8Rng,
    kind: Kind,
    (targets, nodes): (&[Selector], &[NodeId]),
    deck: &mut LeaderDeck,
    (t, iv): (u64, u64),
) -> Vec<(u64, Fault)> {
    match kind {
        Kind::Partition => vec![(
            t,
            Fault::Partition(partition_shape(rng, targets, nodes, deck)),
        )],
        Kind::Pause => vec![(
            t,
            Fault::Pause {
                targets: pick_targets(rng, targets, nodes),
            },
        )],
        Kind::Kill => vec![(
            t,
            Fault::Kill {
                targets: pick_targets(rng, targets, nodes),
            },
        )],
        Kind::Clock => {
            let who = pick_targets(rng, targets, nodes);
            clock_faults(rng, who, t, iv)
        }
    }
}

/// One clock fault for the interval starting at `t` (`iv` long), as (time, fault): a
/// bump by 100 ms – 5 s either way, a strobe (steps between an offset of 200 ms – 2 s and
/// none, every sixth of the interval, at least every 100 ms), or a drift at a drawn rate.
fn clock_faults(rng: &mut ChaCha8Rng, who: Targets, t: u64, iv: u64) -> Vec<(u64, Fault)> {
    match rng.random_range(0..3u8) {
        0 => {
            let size = rng.random_range(100..=5_000i64);
            let delta_ms = if rng.random_bool(0.5) { size } else { -size };
            let bump = ClockFault::Bump {
                targets: who,
                delta_ms,
            };
            vec![(t, Fault::Clock(bump))]
        }
        1 => {
            let offset_ms = rng.random_range(200..=2_000i64);
            let period = (iv / 6).max(100_000_000);
            let mut steps = Vec::new();
            let mut s = t;
            let mut on = true;
            while s < t + iv {
                let strobe = ClockFault::Strobe {
                    targets: who.clone(),
                    offset_ms: if on { offset_ms } else { 0 },
                };
                steps.push((s, Fault::Clock(strobe)));
                on = !on;
                s += period;
            }
            steps
        }
        _ => {
            let rates = [0.5, 0.8, 1.25, 2.0];
            let rate = rates[rng.random_range(0..rates.len())];
            vec![(t, Fault::Clock(ClockFault::Drift { targets: who, rate }))]
        }
    }
}

/// A partition shape of the family of a selector drawn from `selectors` (see the module
/// doc); every selector given means every shape, drawn as `shape` does. Leader shapes are
/// dealt from a shuffled deck of three isolations and one cut (refilled when empty), so a
/// plan's mix is fixed and only the order is random: any two leader partitions in a row
/// include an isolation of the leader.
fn partition_shape(
    rng: &mut ChaCha8Rng,
    selectors: &[Selector],
    nodes: &[NodeId],
    leader_deck: &mut LeaderDeck,
) -> Shape {
    let every = Selector::ALL.iter().all(|s| selectors.contains(s));
    let selector = match selectors {
        _ if every => Selector::All,
        [only] => *only,
        _ => selectors[rng.random_range(0..selectors.len())],
    };
    let n = nodes.len();
    match selector {
        Selector::All => shape(rng, nodes),
        Selector::Leader => {
            if n <= 2 || leader_deck.deal(rng) {
                Shape::IsolateLeader
            } else {
                Shape::CutLeader {
                    pick: rng.random_range(0..n - 1),
                }
            }
        }
        Selector::One => {
            let order = shuffled(rng, nodes);
            if rng.random_bool(0.5) {
                Shape::Isolate {
                    node: order[0].clone(),
                }
            } else {
                Shape::OneWay {
                    deaf: order[0].clone(),
                    from: order[1].clone(),
                }
            }
        }
        Selector::Minority => Shape::Halves {
            minority: sorted(shuffled(rng, nodes)[..n / 2].to_vec()),
        },
        Selector::Majority if n >= 3 => {
            let order = shuffled(rng, nodes);
            if rng.random_bool(0.5) {
                Shape::MajoritiesRing { ring: order }
            } else {
                let half = (n - 1) / 2;
                Shape::Bridge {
                    bridge: order[0].clone(),
                    left: sorted(order[1..=half].to_vec()),
                    right: sorted(order[half + 1..].to_vec()),
                }
            }
        }
        Selector::Majority => Shape::Halves {
            minority: sorted(shuffled(rng, nodes)[..n / 2].to_vec()),
        },
    }
}

fn shape(rng: &mut ChaCha8Rng, nodes: &[NodeId]) -> Shape {
    let n = nodes.len();
    let mut shapes = vec![0u8, 1, 4, 5]; // isolate, halves, isolate-leader, one-way
    if n >= 3 {
        shapes.extend([2, 3]); // majorities ring, bridge
    }
    let order = shuffled(rng, nodes);
    match shapes[rng.random_range(0..shapes.len())] {
        0 => Shape::Isolate {
            node: order[0].clone(),
        },
        1 => Shape::Halves {
            minority: sorted(order[..n / 2].to_vec()),
        },
        2 => Shape::MajoritiesRing { ring: order },
        3 => {
            let half = (n - 1) / 2;
            Shape::Bridge {
                bridge: order[0].clone(),
                left: sorted(order[1..=half].to_vec()),
                right: sorted(order[half + 1..].to_vec()),
            }
        }
        4 => Shape::IsolateLeader,
        _ => Shape::OneWay {
            deaf: order[0].clone(),
            from: order[1].clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(seed: u64, kinds: &[Kind]) -> ScheduleSpec {
        ScheduleSpec {
            kinds: kinds.to_vec(),
            targets: Selector::ALL.to_vec(),
            nodes: vec!["n1".into(), "n2".into(), "n3".into()],
            interval_ns: 1_000_000_000,
            end_ns: 20_000_000_000,
            seed,
        }
    }

    #[test]
    fn same_seed_same_plan_other_seed_other_plan() {
        let a = Schedule::new(&spec(7, &Kind::ALL)).unwrap();
        let b = Schedule::new(&spec(7, &Kind::ALL)).unwrap();
        let c = Schedule::new(&spec(8, &Kind::ALL)).unwrap();
        assert_eq!(a.plan(), b.plan());
        assert_ne!(a.plan(), c.plan());
    }

    #[test]
    fn faults_alternate_with_heals_and_end_healed() {
        let s = Schedule::new(&spec(3, &Kind::ALL)).unwrap();
        let plan = s.plan();
        let last = plan.last().unwrap();
        assert!(last.final_heal && last.change == Change::Heal && last.at_ns == 20_000_000_000);
        assert!(plan.windows(2).all(|w| w[0].at_ns <= w[1].at_ns));
        for p in plan {
            if matches!(p.change, Change::Fault(_)) {
                assert!(p.at_ns < 20_000_000_000);
            }
        }
        // Every kind shows up over enough seeds, and a fault's window ends in a heal.
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..20 {
            let s = Schedule::new(&spec(seed, &Kind::ALL)).unwrap();
            let mut open = false;
            for p in s.plan() {
                match &p.change {
                    Change::Fault(f) => {
                        seen.insert(f.kind());
                        open = true;
                    }
                    Change::Heal => open = false,
                }
            }
            assert!(!open);
        }
        assert_eq!(seen.len(), 4);
    }

    #[test]
    fn next_is_time_explicit() {
        let mut s = Schedule::new(&spec(1, &[Kind::Kill])).unwrap();
        assert_eq!(
            s.next(0),
            Next::Pending {
                until_ns: 1_000_000_000
            }
        );
        let Next::Change(first) = s.next(1_000_000_000) else {
            panic!("a kill is due at 1 s");
        };
        assert!(matches!(first.change, Change::Fault(Fault::Kill { .. })));
        let mut n = 1;
        while let Next::Change(_) = s.next(u64::MAX) {
            n += 1;
        }
        assert_eq!(n, s.plan().len());
        assert_eq!(s.next(u64::MAX), Next::Done);
    }

    /// The partitions of a plan.
    fn shapes(spec: &ScheduleSpec) -> Vec<Shape> {
        Schedule::new(spec)
            .unwrap()
            .plan()
            .iter()
            .filter_map(|p| match &p.change {
                Change::Fault(Fault::Partition(s)) => Some(s.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn partitions_follow_the_targets() {
        let mut isolated = 0;
        let mut all = 0;
        for seed in 0..50 {
            let mut s = spec(seed, &[Kind::Partition]);
            s.targets = vec![Selector::Leader];
            for shape in shapes(&s) {
                all += 1;
                match shape {
                    Shape::IsolateLeader => isolated += 1,
                    Shape::CutLeader { .. } => {}
                    other => panic!("seed {seed}: {other:?} does not involve the leader"),
                }
            }
            s.targets = vec![Selector::Minority];
            assert!(
                shapes(&s)
                    .iter()
                    .all(|x| matches!(x, Shape::Halves { minority } if minority.len() == 1))
            );
            s.targets = vec![Selector::One, Selector::Majority];
            assert!(shapes(&s).iter().all(|x| matches!(
                x,
                Shape::Isolate { .. }
                    | Shape::OneWay { .. }
                    | Shape::MajoritiesRing { .. }
                    | Shape::Bridge { .. }
            )));
        }
        // Never two cuts in a row: any two consecutive leader partitions isolate it once.
        for seed in 0..50 {
            let mut s = spec(seed, &[Kind::Partition]);
            s.targets = vec![Selector::Leader];
            let v = shapes(&s);
            assert!(
                v.windows(2).all(|w| w.contains(&Shape::IsolateLeader)),
                "seed {seed}: {v:?}"
            );
        }
        // Mostly the leader is isolated; sometimes it only loses one follower.
        assert!(
            isolated * 10 > all * 6 && isolated < all,
            "{isolated}/{all}"
        );
        // The default (every selector) keeps drawing from every shape, as before.
        let every: Vec<&str> = (0..50)
            .flat_map(|seed| shapes(&spec(seed, &[Kind::Partition])))
            .map(|s| s.name())
            .collect();
        for name in [
            "isolate",
            "halves",
            "majorities-ring",
            "bridge",
            "isolate-leader",
        ] {
            assert!(every.contains(&name), "{name}");
        }
    }

    #[test]
    fn plan_files_round_trip_and_refuse_what_cannot_run() {
        let sp = spec(5, &Kind::ALL);
        let s = Schedule::new(&sp).unwrap();
        let file = PlanFile::new(&sp.nodes, s.plan());
        let json = serde_json::to_string(&file).unwrap();
        let back: PlanFile = serde_json::from_str(&json).unwrap();
        assert_eq!(back, file);
        back.validate("p", &sp.nodes, 20_000_000_000).unwrap();
        assert_eq!(
            Schedule::from_planned(back.changes.clone()).plan(),
            s.plan()
        );
        let err = |f: &PlanFile| {
            f.validate("plan.json", &sp.nodes, 20_000_000_000)
                .unwrap_err()
                .to_string()
        };
        let kill = |node: &str, at_ns| Planned {
            at_ns,
            change: Change::Fault(Fault::Kill {
                targets: Targets::Nodes(vec![node.into()]),
            }),
            final_heal: false,
        };
        let heal = |at_ns, final_heal| Planned {
            at_ns,
            change: Change::Heal,
            final_heal,
        };
        let bad = PlanFile::new(&sp.nodes, &[kill("n7", 1), heal(2, true)]);
        assert!(err(&bad).contains("unknown node \"n7\""), "{}", err(&bad));
        let bad = PlanFile::new(&sp.nodes, &[kill("n1", 5), heal(2, true)]);
        assert!(err(&bad).contains("backwards"), "{}", err(&bad));
        let bad = PlanFile::new(&sp.nodes, &[kill("n1", 5), heal(6, false)]);
        assert!(err(&bad).contains("final heal"), "{}", err(&bad));
        let bad = PlanFile::new(
            &sp.nodes,
            &[kill("n1", 30_000_000_000), heal(31_000_000_000, true)],
        );
        assert!(err(&bad).contains("after the time limit"), "{}", err(&bad));
        let bad = PlanFile::new(&sp.nodes[..2], &[heal(1, true)]);
        assert!(err(&bad).contains("--nodes 2"), "{}", err(&bad));
        assert!(err(&bad).starts_with("plan.json: "), "{}", err(&bad));
    }

    #[test]
    fn no_kinds_means_no_changes() {
        let mut s = Schedule::new(&spec(1, &[])).unwrap();
        assert_eq!(s.next(0), Next::Done);
    }
}
