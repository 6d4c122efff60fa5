//! Verdicts, anomalies and reports: the types every checker returns and `results.json` holds.
//!
//! Guarantees: `Validity::merge` is commutative and associative with `Invalid > Unknown >
//! Valid`, so a report's verdict never hides a failure or claims success on a partial
//! check; every type here round-trips through serde; `AnomalySink` keeps at most a fixed
//! number of anomalies per kind while counting all of them, so reports stay bounded
//! without losing the totals.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A checker's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Validity {
    Valid,
    Invalid,
    /// The checker could not decide (a budget ran out, or it was aborted).
    Unknown,
}

impl Validity {
    /// Combines two verdicts: `Invalid` beats `Unknown`, which beats `Valid`.
    #[must_use]
    pub fn merge(self, other: Validity) -> Validity {
        use Validity::{Invalid, Unknown, Valid};
        match (self, other) {
            (Invalid, _) | (_, Invalid) => Invalid,
            (Unknown, _) | (_, Unknown) => Unknown,
            (Valid, Valid) => Valid,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Validity::Valid => "valid",
            Validity::Invalid => "invalid",
            Validity::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Validity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnomalyKind {
    /// A read missed a write that had completed before the read began.
    StaleRead,
    /// An acknowledged write that no later read ever saw.
    LostWrite,
    /// Two reads of one key that cannot both be prefixes of one order.
    Divergence,
    /// A read returned a value that nothing ever wrote.
    PhantomRead,
    /// A read returned a value whose write failed.
    AbortedRead,
    /// A read returned one element twice.
    DuplicateElement,
    /// No order of the key's operations consistent with real time explains the results.
    NonLinearizable,
    /// A process read an older state after having read a newer one (rw + process order).
    MonotonicRead,
    /// A process read a state missing its own earlier write (rw + process order).
    ReadYourWrites,
    /// A process's later write is ordered before its earlier one (ww + process order).
    MonotonicWrites,
    /// A process wrote after reading a value, yet its write is ordered before that value.
    WritesFollowReads,
    /// A dependency cycle named by no other kind. Only results of older versions carry it:
    /// every cycle is now classified as one of the Adya/Elle kinds below.
    Cycle,
    /// A cycle of write-write (ww) dependencies alone: dirty write (Adya's G0).
    #[serde(rename = "G0")]
    G0,
    /// G0 that needs process order to close.
    #[serde(rename = "G0-process")]
    G0Process,
    /// G0 that needs real-time order to close.
    #[serde(rename = "G0-realtime")]
    G0Realtime,
    /// A cycle of ww and write-read (wr) dependencies with at least one wr: circular
    /// information flow (Adya's G1c).
    #[serde(rename = "G1c")]
    G1c,
    /// G1c that needs process order to close.
    #[serde(rename = "G1c-process")]
    G1cProcess,
    /// G1c that needs real-time order to close.
    #[serde(rename = "G1c-realtime")]
    G1cRealtime,
    /// A cycle with exactly one anti-dependency (rw) edge: read skew (Adya's G-single).
    #[serde(rename = "G-single")]
    GSingle,
    /// G-single that needs process order to close.
    #[serde(rename = "G-single-process")]
    GSingleProcess,
    /// G-single that needs real-time order to close.
    #[serde(rename = "G-single-realtime")]
    GSingleRealtime,
    /// A cycle with two or more rw edges: anti-dependency cycle (Adya's G2).
    #[serde(rename = "G2")]
    G2,
    /// G2 that needs process order to close.
    #[serde(rename = "G2-process")]
    G2Process,
    /// G2 that needs real-time order to close.
    #[serde(rename = "G2-realtime")]
    G2Realtime,
    /// A set element that was added (or seen) but is absent from every read at the end.
    LostElement,
    /// A counter read outside [acknowledged increments, attempted increments].
    CounterOutOfBounds,
    /// Replicas whose final states differ after quiescence.
    ReplicaDivergence,
    /// A transaction read a value written by a transaction that failed (Adya's G1a).
    #[serde(rename = "G1a")]
    G1a,
    /// A transaction read a value its writer later overwrote in the same transaction
    /// (Adya's G1b, intermediate read).
    #[serde(rename = "G1b")]
    G1b,
    /// A cycle with two or more rw edges, no two adjacent (Elle's G-nonadjacent; snapshot
    /// isolation forbids it).
    #[serde(rename = "G-nonadjacent")]
    GNonadjacent,
    #[serde(rename = "G-nonadjacent-process")]
    GNonadjacentProcess,
    #[serde(rename = "G-nonadjacent-realtime")]
    GNonadjacentRealtime,
    /// A transactional cycle with two or more rw edges, some adjacent (Adya's G2-item).
    #[serde(rename = "G2-item")]
    G2Item,
    #[serde(rename = "G2-item-process")]
    G2ItemProcess,
    #[serde(rename = "G2-item-realtime")]
    G2ItemRealtime,
    /// A transaction's read disagrees with its own earlier reads and writes of the key
    /// (Elle's internal inconsistency).
    #[serde(rename = "internal")]
    Internal,
    /// Two committed transactions read the same version of a key and both wrote it.
    LostUpdate,
    /// A committed write was applied on top of a failed transaction's write.
    DirtyUpdate,
    /// Two reads of a list-append key that are not prefixes of one another.
    IncompatibleOrder,
    /// A transaction read a value it itself writes only later.
    FutureRead,
}

impl AnomalyKind {
    pub const ALL: [AnomalyKind; 40] = [
        AnomalyKind::StaleRead,
        AnomalyKind::LostWrite,
        AnomalyKind::Divergence,
        AnomalyKind::PhantomRead,
        AnomalyKind::AbortedRead,
        AnomalyKind::DuplicateElement,
        AnomalyKind::NonLinearizable,
        AnomalyKind::MonotonicRead,
        AnomalyKind::ReadYourWrites,
        AnomalyKind::MonotonicWrites,
        AnomalyKind::WritesFollowReads,
        AnomalyKind::Cycle,
        AnomalyKind::G0,
        AnomalyKind::G0Process,
        AnomalyKind::G0Realtime,
        AnomalyKind::G1c,
        AnomalyKind::G1cProcess,
        AnomalyKind::G1cRealtime,
        AnomalyKind::GSingle,
        AnomalyKind::GSingleProcess,
        AnomalyKind::GSingleRealtime,
        AnomalyKind::G2,
        AnomalyKind::G2Process,
        AnomalyKind::G2Realtime,
        AnomalyKind::LostElement,
        AnomalyKind::CounterOutOfBounds,
        AnomalyKind::ReplicaDivergence,
        AnomalyKind::G1a,
        AnomalyKind::G1b,
        AnomalyKind::GNonadjacent,
        AnomalyKind::GNonadjacentProcess,
        AnomalyKind::GNonadjacentRealtime,
        AnomalyKind::G2Item,
        AnomalyKind::G2ItemProcess,
        AnomalyKind::G2ItemRealtime,
        AnomalyKind::Internal,
        AnomalyKind::LostUpdate,
        AnomalyKind::DirtyUpdate,
        AnomalyKind::IncompatibleOrder,
        AnomalyKind::FutureRead,
    ];

    /// The serde (kebab-case) name.
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyKind::StaleRead => "stale-read",
            AnomalyKind::LostWrite => "lost-write",
            AnomalyKind::Divergence => "divergence",
            AnomalyKind::PhantomRead => "phantom-read",
            AnomalyKind::AbortedRead => "aborted-read",
            AnomalyKind::DuplicateElement => "duplicate-element",
            AnomalyKind::NonLinearizable => "non-linearizable",
            AnomalyKind::MonotonicRead => "monotonic-read",
            AnomalyKind::ReadYourWrites => "read-your-writes",
            AnomalyKind::MonotonicWrites => "monotonic-writes",
            AnomalyKind::WritesFollowReads => "writes-follow-reads",
            AnomalyKind::Cycle => "cycle",
            AnomalyKind::G0 => "G0",
            AnomalyKind::G0Process => "G0-process",
            AnomalyKind::G0Realtime => "G0-realtime",
            AnomalyKind::G1c => "G1c",
            AnomalyKind::G1cProcess => "G1c-process",
            AnomalyKind::G1cRealtime => "G1c-realtime",
            AnomalyKind::GSingle => "G-single",
            AnomalyKind::GSingleProcess => "G-single-process",
            AnomalyKind::GSingleRealtime => "G-single-realtime",
            AnomalyKind::G2 => "G2",
            AnomalyKind::G2Process => "G2-process",
            AnomalyKind::G2Realtime => "G2-realtime",
            AnomalyKind::LostElement => "lost-element",
            AnomalyKind::CounterOutOfBounds => "counter-out-of-bounds",
            AnomalyKind::ReplicaDivergence => "replica-divergence",
            AnomalyKind::G1a => "G1a",
            AnomalyKind::G1b => "G1b",
            AnomalyKind::GNonadjacent => "G-nonadjacent",
            AnomalyKind::GNonadjacentProcess => "G-nonadjacent-process",
            AnomalyKind::GNonadjacentRealtime => "G-nonadjacent-realtime",
            AnomalyKind::G2Item => "G2-item",
            AnomalyKind::G2ItemProcess => "G2-item-process",
            AnomalyKind::G2ItemRealtime => "G2-item-realtime",
            AnomalyKind::Internal => "internal",
            AnomalyKind::LostUpdate => "lost-update",
            AnomalyKind::DirtyUpdate => "dirty-update",
            AnomalyKind::IncompatibleOrder => "incompatible-order",
            AnomalyKind::FutureRead => "future-read",
        }
    }

    /// The name of the figure counting this kind (`stale_reads`, …).
    pub fn figure_name(self) -> &'static str {
        match self {
            AnomalyKind::StaleRead => "stale_reads",
            AnomalyKind::LostWrite => "lost_writes",
            AnomalyKind::Divergence => "divergent_reads",
            AnomalyKind::PhantomRead => "phantom_reads",
            AnomalyKind::AbortedRead => "aborted_reads",
            AnomalyKind::DuplicateElement => "duplicate_elements",
            AnomalyKind::NonLinearizable => "non_linearizable_keys",
            AnomalyKind::MonotonicRead => "monotonic_read_violations",
            AnomalyKind::ReadYourWrites => "read_your_writes_violations",
            AnomalyKind::MonotonicWrites => "monotonic_writes_violations",
            AnomalyKind::WritesFollowReads => "writes_follow_reads_violations",
            AnomalyKind::Cycle => "other_cycles",
            AnomalyKind::G0 => "g0_cycles",
            AnomalyKind::G0Process => "g0_process_cycles",
            AnomalyKind::G0Realtime => "g0_realtime_cycles",
            AnomalyKind::G1c => "g1c_cycles",
            AnomalyKind::G1cProcess => "g1c_process_cycles",
            AnomalyKind::G1cRealtime => "g1c_realtime_cycles",
            AnomalyKind::GSingle => "g_single_cycles",
            AnomalyKind::GSingleProcess => "g_single_process_cycles",
            AnomalyKind::GSingleRealtime => "g_single_realtime_cycles",
            AnomalyKind::G2 => "g2_cycles",
            AnomalyKind::G2Process => "g2_process_cycles",
            AnomalyKind::G2Realtime => "g2_realtime_cycles",
            AnomalyKind::LostElement => "lost_elements",
            AnomalyKind::CounterOutOfBounds => "counter_reads_out_of_bounds",
            AnomalyKind::ReplicaDivergence => "divergent_keys",
            AnomalyKind::G1a => "g1a_reads",
            AnomalyKind::G1b => "g1b_reads",
            AnomalyKind::GNonadjacent => "g_nonadjacent_cycles",
            AnomalyKind::GNonadjacentProcess => "g_nonadjacent_process_cycles",
            AnomalyKind::GNonadjacentRealtime => "g_nonadjacent_realtime_cycles",
            AnomalyKind::G2Item => "g2_item_cycles",
            AnomalyKind::G2ItemProcess => "g2_item_process_cycles",
            AnomalyKind::G2ItemRealtime => "g2_item_realtime_cycles",
            AnomalyKind::Internal => "internal_inconsistencies",
            AnomalyKind::LostUpdate => "lost_updates",
            AnomalyKind::DirtyUpdate => "dirty_updates",
            AnomalyKind::IncompatibleOrder => "incompatible_orders",
            AnomalyKind::FutureRead => "future_reads",
        }
    }
}

impl fmt::Display for AnomalyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One anomaly with its minimal witness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anomaly {
    pub kind: AnomalyKind,
    pub key: Option<u64>,
    /// `Op::index` of the witness ops, most relevant first. An operation is named by its
    /// completion (the line carrying the read value or the acknowledgement), or by its
    /// invoke when it never completed.
    pub ops: Vec<u64>,
    /// A sentence a person can follow.
    pub explanation: String,
    /// The witness cycle, for anomalies found as dependency cycles: each step is an op
    /// and the edge from it to the next step (the last step's edge closes the cycle).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cycle: Vec<CycleStep>,
}

impl Anomaly {
    /// An anomaly without a witness cycle.
    pub fn new(kind: AnomalyKind, key: Option<u64>, ops: Vec<u64>, explanation: String) -> Self {
        Anomaly {
            kind,
            key,
            ops,
            explanation,
            cycle: Vec::new(),
        }
    }
}

/// The kind of a dependency edge between two operations in a history graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EdgeKind {
    /// Write → read: the read observed the write's value.
    Wr,
    /// Write → write: version order.
    Ww,
    /// Read → write: anti-dependency; the write overwrote (came after) what the read saw.
    Rw,
    /// The first op completed before the second began (different processes).
    Realtime,
    /// The same process ran the first op, then the second.
    Process,
}

impl EdgeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EdgeKind::Wr => "wr",
            EdgeKind::Ww => "ww",
            EdgeKind::Rw => "rw",
            EdgeKind::Realtime => "realtime",
            EdgeKind::Process => "process",
        }
    }
}

impl fmt::Display for EdgeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One step of a witness cycle: an op (by `Op::index`) and the edge leaving it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CycleStep {
    pub op: u64,
    pub edge: EdgeKind,
}

/// The outcome of one checker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// `"append"`, `"linearizable"`.
    pub checker: String,
    pub validity: Validity,
    pub anomalies: Vec<Anomaly>,
    /// Counts and other facts (`reads`, `stale_reads`, `unknown_reason`, …).
    pub figures: serde_json::Map<String, serde_json::Value>,
}

/// Every checker's result and their merged verdict (`results.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub validity: Validity,
    pub results: Vec<CheckResult>,
}

impl Report {
    /// A report whose verdict is the merge of its results' (valid when there are none).
    pub fn from_results(results: Vec<CheckResult>) -> Report {
        let validity = results
            .iter()
            .fold(Validity::Valid, |v, r| v.merge(r.validity));
        Report { validity, results }
    }

    /// A few lines for the terminal: the verdict, each checker's verdict with its
    /// anomaly counts (total, including those not kept), and the first explanation of
    /// each kind.
    pub fn summary_lines(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "verdict: {}",
            self.validity.as_str().to_uppercase()
        )];
        for r in &self.results {
            let mut counts: Vec<String> = Vec::new();
            for kind in AnomalyKind::ALL {
                let kept = r.anomalies.iter().filter(|a| a.kind == kind).count() as u64;
                let total = r
                    .figures
                    .get(kind.figure_name())
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or(0)
                    .max(kept);
                if total > 0 {
                    counts.push(format!("{total} {kind}"));
                }
            }
            let mut line = format!("{}: {}", r.checker, r.validity);
            if !counts.is_empty() {
                line.push_str(&format!(" ({})", counts.join(", ")));
            }
            if let Some(why) = r
                .figures
                .get("unknown_reason")
                .and_then(serde_json::Value::as_str)
            {
                line.push_str(&format!(" — {why}"));
            }
            lines.push(line);
            for kind in AnomalyKind::ALL {
                if let Some(a) = r.anomalies.iter().find(|a| a.kind == kind) {
                    lines.push(format!("  {kind}: {}", a.explanation));
                }
            }
        }
        lines
    }
}

/// Collects anomalies, counting all and keeping a bounded, representative set per kind:
/// the first `limit` found, and beyond those a sample spread over the history — at most
/// `limit` more, the earliest in each bucket of op indices (buckets double in width when
/// more than `limit` are occupied, so the sample stays even whatever the length) — plus
/// the worst (longest witness) one. The earliest anomaly of a kind is always kept, and a
/// burst of anomalies late in a run cannot crowd out those of an earlier fault.
#[derive(Debug)]
pub(crate) struct AnomalySink {
    limit: usize,
    kept: Vec<Anomaly>,
    counts: BTreeMap<AnomalyKind, u64>,
    spread: BTreeMap<AnomalyKind, Spread>,
}

/// The sample of one kind beyond its first `limit`.
#[derive(Debug)]
struct Spread {
    width: u64,
    by_bucket: BTreeMap<u64, (u64, Anomaly)>,
    worst: Option<(usize, Anomaly)>,
}

/// An anomaly's place in the history: its earliest witness op.
fn first_op(a: &Anomaly) -> u64 {
    a.ops
        .iter()
        .chain(a.cycle.iter().map(|s| &s.op))
        .copied()
        .min()
        .unwrap_or(u64::MAX)
}

/// How large an anomaly's witness is (longest cycle, most ops).
fn size(a: &Anomaly) -> usize {
    a.cycle.len().max(a.ops.len())
}

impl Spread {
    fn insert(&mut self, limit: usize, a: Anomaly) {
        let at = first_op(&a);
        if self.worst.as_ref().is_none_or(|(s, _)| size(&a) > *s) {
            self.worst = Some((size(&a), a.clone()));
        }
        let slot = self.by_bucket.entry(at / self.width);
        match slot {
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert((at, a));
            }
            std::collections::btree_map::Entry::Occupied(mut o) => {
                if at < o.get().0 {
                    o.insert((at, a));
                }
            }
        }
        while self.by_bucket.len() > limit.max(1) {
            self.width = self.width.saturating_mul(2);
            let old = std::mem::take(&mut self.by_bucket);
            for (_, (at, a)) in old {
                let e = self
                    .by_bucket
                    .entry(at / self.width)
                    .or_insert((at, a.clone()));
                if at < e.0 {
                    *e = (at, a);
                }
            }
        }
    }
}

impl AnomalySink {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit,
            kept: Vec::new(),
            counts: BTreeMap::new(),
            spread: BTreeMap::new(),
        }
    }

    /// Counts an anomaly; `make` only runs when it may be kept (the first `limit` of a
    /// kind, then for the spread sample).
    pub(crate) fn push_with(&mut self, kind: AnomalyKind, make: impl FnOnce() -> Anomaly) {
        let n = self.counts.entry(kind).or_insert(0);
        *n += 1;
        if self.limit == 0 {
            return;
        }
        let a = make();
        debug_assert_eq!(a.kind, kind);
        if *n as usize <= self.limit {
            self.kept.push(a);
        } else {
            self.spread
                .entry(kind)
                .or_insert_with(|| Spread {
                    width: 64,
                    by_bucket: BTreeMap::new(),
                    worst: None,
                })
                .insert(self.limit, a);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// The kept anomalies (per kind: the first found, then the spread sample in history
    /// order, then the worst if not already kept); writes a count per kind (zero
    /// included, for the kinds this checker looks for) and the number omitted into
    /// `figures`.
    pub(crate) fn finish(
        mut self,
        kinds: &[AnomalyKind],
        figures: &mut serde_json::Map<String, serde_json::Value>,
    ) -> Vec<Anomaly> {
        for &k in kinds {
            figures.insert(
                k.figure_name().into(),
                self.counts.get(&k).copied().unwrap_or(0).into(),
            );
        }
        for (_, sp) in std::mem::take(&mut self.spread) {
            for (_, (_, a)) in sp.by_bucket {
                if !self.kept.contains(&a) {
                    self.kept.push(a);
                }
            }
            if let Some((_, a)) = sp.worst
                && !self.kept.contains(&a)
            {
                self.kept.push(a);
            }
        }
        let total: u64 = self.counts.values().sum();
        figures.insert(
            "anomalies_omitted".into(),
            (total - self.kept.len() as u64).into(),
        );
        self.kept
    }
}

/// `AnomalySink` fed out of order, for a checker that streams: each anomaly comes with
/// its place `K` in the order the whole-history checker pushes them (distinct per
/// anomaly), and `finish` gives exactly what `AnomalySink` gives for the same anomalies
/// pushed in that order (the first `limit` of each kind, the spread sample of the rest —
/// whose buckets do not depend on the order —, the worst). It holds at most `2·limit + 2`
/// anomalies per kind, whatever the number pushed.
#[derive(Debug)]
pub(crate) struct OrderedSink<K: Ord + Clone> {
    limit: usize,
    counts: BTreeMap<AnomalyKind, u64>,
    /// Per kind, the `limit + 1` first in order.
    first: BTreeMap<AnomalyKind, BTreeMap<K, Anomaly>>,
    /// Per kind, the spread sample of those past the first `limit + 1`.
    rest: BTreeMap<AnomalyKind, OrderedSpread<K>>,
}

/// `Spread` where ties go to the earliest in order (`K`), as `Spread` gives them to the
/// first pushed.
#[derive(Debug)]
struct OrderedSpread<K> {
    width: u64,
    by_bucket: BTreeMap<u64, (u64, K, Anomaly)>,
    worst: Option<(usize, K, Anomaly)>,
}

impl<K: Ord + Clone> OrderedSpread<K> {
    fn insert(&mut self, limit: usize, k: K, a: Anomaly) {
        let at = first_op(&a);
        if self
            .worst
            .as_ref()
            .is_none_or(|(s, wk, _)| size(&a) > *s || (size(&a) == *s && k < *wk))
        {
            self.worst = Some((size(&a), k.clone(), a.clone()));
        }
        let put = |m: &mut BTreeMap<u64, (u64, K, Anomaly)>, b: u64, e: (u64, K, Anomaly)| match m
            .entry(b)
        {
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(e);
            }
            std::collections::btree_map::Entry::Occupied(mut o) => {
                if (e.0, &e.1) < (o.get().0, &o.get().1) {
                    o.insert(e);
                }
            }
        };
        put(&mut self.by_bucket, at / self.width, (at, k, a));
        while self.by_bucket.len() > limit.max(1) {
            self.width = self.width.saturating_mul(2);
            let old = std::mem::take(&mut self.by_bucket);
            for (_, e) in old {
                put(&mut self.by_bucket, e.0 / self.width, e);
            }
        }
    }
}

impl<K: Ord + Clone> OrderedSink<K> {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit,
            counts: BTreeMap::new(),
            first: BTreeMap::new(),
            rest: BTreeMap::new(),
        }
    }

    /// Counts an anomaly at place `k`; `make` only runs when it may be kept.
    pub(crate) fn push_with(&mut self, kind: AnomalyKind, k: K, make: impl FnOnce() -> Anomaly) {
        *self.counts.entry(kind).or_insert(0) += 1;
        if self.limit == 0 {
            return;
        }
        let first = self.first.entry(kind).or_default();
        if first.len() > self.limit && first.last_key_value().is_some_and(|(last, _)| k > *last) {
            self.spread(kind, k, make());
            return;
        }
        first.insert(k, make());
        if first.len() > self.limit + 1 {
            let (k, a) = first.pop_last().expect("over the limit");
            self.spread(kind, k, a);
        }
    }

    fn spread(&mut self, kind: AnomalyKind, k: K, a: Anomaly) {
        self.rest
            .entry(kind)
            .or_insert_with(|| OrderedSpread {
                width: 64,
                by_bucket: BTreeMap::new(),
                worst: None,
            })
            .insert(self.limit, k, a);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// As `AnomalySink::finish`.
    pub(crate) fn finish(
        mut self,
        kinds: &[AnomalyKind],
        figures: &mut serde_json::Map<String, serde_json::Value>,
    ) -> Vec<Anomaly> {
        for &k in kinds {
            figures.insert(
                k.figure_name().into(),
                self.counts.get(&k).copied().unwrap_or(0).into(),
            );
        }
        // The `limit + 1`-th of a kind is the first of its rest, as in push order.
        let mut kept: Vec<(K, Anomaly)> = Vec::new();
        for (kind, mut first) in std::mem::take(&mut self.first) {
            if first.len() > self.limit {
                let (k, a) = first.pop_last().expect("over the limit");
                self.spread(kind, k, a);
            }
            kept.extend(first);
        }
        kept.sort_by(|x, y| x.0.cmp(&y.0));
        let mut kept: Vec<Anomaly> = kept.into_iter().map(|(_, a)| a).collect();
        for (_, sp) in std::mem::take(&mut self.rest) {
            for (_, (_, _, a)) in sp.by_bucket {
                if !kept.contains(&a) {
                    kept.push(a);
                }
            }
            if let Some((_, _, a)) = sp.worst
                && !kept.contains(&a)
            {
                kept.push(a);
            }
        }
        let total: u64 = self.counts.values().sum();
        figures.insert(
            "anomalies_omitted".into(),
            (total - kept.len() as u64).into(),
        );
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_prefers_invalid_then_unknown() {
        use Validity::*;
        let all = [Valid, Invalid, Unknown];
        for a in all {
            for b in all {
                assert_eq!(a.merge(b), b.merge(a));
                let expect = if a == Invalid || b == Invalid {
                    Invalid
                } else if a == Unknown || b == Unknown {
                    Unknown
                } else {
                    Valid
                };
                assert_eq!(a.merge(b), expect);
            }
        }
    }

    #[test]
    fn serde_names() {
        assert_eq!(
            serde_json::to_string(&Validity::Unknown).unwrap(),
            "\"unknown\""
        );
        for k in AnomalyKind::ALL {
            assert_eq!(
                serde_json::to_value(k).unwrap(),
                serde_json::Value::String(k.as_str().into())
            );
        }
    }

    #[test]
    fn sink_bounds_and_counts() {
        let mut s = AnomalySink::new(2);
        for i in 0..5 {
            s.push_with(AnomalyKind::StaleRead, || {
                Anomaly::new(AnomalyKind::StaleRead, None, vec![i], String::new())
            });
        }
        let mut fig = serde_json::Map::new();
        let kept = s.finish(&[AnomalyKind::StaleRead, AnomalyKind::LostWrite], &mut fig);
        // The first two, then a sample of the rest (at most two) spread over the history.
        assert!(kept.len() <= 2 + 2 + 1, "{kept:?}");
        assert_eq!(
            kept[..2].iter().map(|a| a.ops[0]).collect::<Vec<_>>(),
            [0, 1]
        );
        assert_eq!(fig["stale_reads"], 5);
        assert_eq!(fig["lost_writes"], 0);
        assert_eq!(fig["anomalies_omitted"], 5 - kept.len() as u64);
    }

    #[test]
    fn sink_keeps_the_earliest_and_anomalies_of_every_part_of_the_history() {
        let mut s = AnomalySink::new(3);
        // Found late-first (as a per-key pass may): 1000 anomalies at descending ops.
        for i in (0..1000u64).rev() {
            s.push_with(AnomalyKind::StaleRead, || {
                Anomaly::new(AnomalyKind::StaleRead, None, vec![i * 10], String::new())
            });
        }
        let kept = s.finish(&[AnomalyKind::StaleRead], &mut serde_json::Map::new());
        let ops: Vec<u64> = kept.iter().map(|a| a.ops[0]).collect();
        assert!(ops.contains(&0), "the earliest is kept: {ops:?}");
        assert!(ops.iter().any(|&o| (2500..7500).contains(&o)), "{ops:?}");
        assert!(kept.len() <= 3 + 3 + 1);
    }
}
