//! Consistency models and the anomalies each forbids, after Adya, Cerone et al. and Elle
//! (its `consistency-model` namespace: each model forbids some anomalies directly and
//! everything the models it implies forbid).
//!
//! `read-uncommitted` (PL-1) forbids G0 and what no database may show at all: internal
//! inconsistency, duplicate elements, reads of values never written. `read-committed`
//! (PL-2) adds G1a, G1b, G1c and the non-cyclic anomalies that imply them (incompatible
//! orders, dirty updates, future reads). `read-atomic` adds fractured reads (a G-single
//! cycle of two transactions: one read sees a transaction's write, another read of the
//! same transaction misses it); `causal` adds every G-single cycle whose other edges are
//! write-read or process order (the consistent-prefix anomaly: a reader sees an answer
//! without the question it answers; and its session form) and the `-process` variants of
//! G0 and G1c; `repeatable-read` (Adya's PL-2.99) forbids every item anti-dependency cycle
//! and lost updates; `snapshot-isolation` G-single, G-nonadjacent and lost updates;
//! `serializable` every cycle of data dependencies. Elle's strong variants add the cycles
//! that need process order (`strong-session-…`: a process must observe its own past) or
//! real-time order (`strong-…`: every transaction must observe what completed before it
//! began): `strong-session-read-uncommitted` G0-process, `strong-session-read-committed`
//! G1c-process, `strong-session-snapshot-isolation` G-single- and G-nonadjacent-process,
//! `strong-session-serializable` G2-item-process; `strong-read-uncommitted` G0-realtime,
//! `strong-read-committed` G1c-realtime, `strong-snapshot-isolation` G-single- and
//! G-nonadjacent-realtime, `strict-serializable` (Elle's `strong-serializable`) every
//! cycle. A `-process` cycle is also a `-realtime` one (a process runs one transaction at
//! a time), so each `strong-…` model implies its `strong-session-…` twin. Guarantees:
//! `forbids` is monotone along `implies` (a model forbids all its weaker models forbid).

use crate::AnomalyKind;
use serde::{Deserialize, Serialize};

/// A consistency model a transactional history can be checked against, weakest first
/// within each family (the order `ruled_out` lists them in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConsistencyModel {
    ReadUncommitted,
    ReadCommitted,
    ReadAtomic,
    Causal,
    RepeatableRead,
    SnapshotIsolation,
    Serializable,
    StrongSessionReadUncommitted,
    StrongSessionReadCommitted,
    StrongSessionSnapshotIsolation,
    StrongSessionSerializable,
    StrongReadUncommitted,
    StrongReadCommitted,
    StrongSnapshotIsolation,
    StrictSerializable,
}

impl ConsistencyModel {
    pub const ALL: [ConsistencyModel; 15] = [
        ConsistencyModel::ReadUncommitted,
        ConsistencyModel::ReadCommitted,
        ConsistencyModel::ReadAtomic,
        ConsistencyModel::Causal,
        ConsistencyModel::RepeatableRead,
        ConsistencyModel::SnapshotIsolation,
        ConsistencyModel::Serializable,
        ConsistencyModel::StrongSessionReadUncommitted,
        ConsistencyModel::StrongSessionReadCommitted,
        ConsistencyModel::StrongSessionSnapshotIsolation,
        ConsistencyModel::StrongSessionSerializable,
        ConsistencyModel::StrongReadUncommitted,
        ConsistencyModel::StrongReadCommitted,
        ConsistencyModel::StrongSnapshotIsolation,
        ConsistencyModel::StrictSerializable,
    ];

    pub fn as_str(self) -> &'static str {
        use ConsistencyModel::*;
        match self {
            ReadUncommitted => "read-uncommitted",
            ReadCommitted => "read-committed",
            ReadAtomic => "read-atomic",
            Causal => "causal",
            RepeatableRead => "repeatable-read",
            SnapshotIsolation => "snapshot-isolation",
            Serializable => "serializable",
            StrongSessionReadUncommitted => "strong-session-read-uncommitted",
            StrongSessionReadCommitted => "strong-session-read-committed",
            StrongSessionSnapshotIsolation => "strong-session-snapshot-isolation",
            StrongSessionSerializable => "strong-session-serializable",
            StrongReadUncommitted => "strong-read-uncommitted",
            StrongReadCommitted => "strong-read-committed",
            StrongSnapshotIsolation => "strong-snapshot-isolation",
            StrictSerializable => "strict-serializable",
        }
    }

    /// A model by name (Elle's `strong-serializable` is `strict-serializable`).
    pub fn parse(s: &str) -> Option<ConsistencyModel> {
        ConsistencyModel::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

impl std::fmt::Display for ConsistencyModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ConsistencyModel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ConsistencyModel::parse(s).ok_or_else(|| {
            format!(
                "unknown consistency model {s:?}: expected {}",
                <Self as schism_history::Choices>::expected()
            )
        })
    }
}

/// `schism check --consistency-model`'s spellings, weakest first.
impl schism_history::Choices for ConsistencyModel {
    const CHOICES: &'static [(&'static str, &'static str)] = &[
        ("read-uncommitted", ""),
        ("read-committed", ""),
        ("read-atomic", ""),
        ("causal", ""),
        ("repeatable-read", ""),
        ("snapshot-isolation", ""),
        ("serializable", ""),
        (
            "strong-session-read-uncommitted",
            "read-uncommitted, and no G0 closed by process order",
        ),
        (
            "strong-session-read-committed",
            "read-committed, and a process never reads around its own past",
        ),
        (
            "strong-session-snapshot-isolation",
            "snapshot-isolation, and a process sees its own past",
        ),
        (
            "strong-session-serializable",
            "serializable, and a process sees its own past",
        ),
        (
            "strong-read-uncommitted",
            "read-uncommitted, and no G0 closed by real time",
        ),
        (
            "strong-read-committed",
            "read-committed, and no G1c closed by real time",
        ),
        (
            "strong-snapshot-isolation",
            "snapshot-isolation, and a snapshot holds everything completed before it began",
        ),
        ("strict-serializable", "serializable in real-time order"),
    ];
}

impl ConsistencyModel {
    /// The models this one implies directly (a history satisfying it satisfies them).
    pub fn implies(self) -> &'static [ConsistencyModel] {
        use ConsistencyModel::*;
        match self {
            ReadUncommitted => &[],
            ReadCommitted => &[ReadUncommitted],
            ReadAtomic => &[ReadCommitted],
            Causal => &[ReadAtomic, StrongSessionReadCommitted],
            RepeatableRead => &[ReadCommitted],
            SnapshotIsolation => &[ReadAtomic],
            Serializable => &[RepeatableRead, SnapshotIsolation],
            StrongSessionReadUncommitted => &[ReadUncommitted],
            StrongSessionReadCommitted => &[ReadCommitted, StrongSessionReadUncommitted],
            StrongSessionSnapshotIsolation => {
                &[SnapshotIsolation, StrongSessionReadCommitted, Causal]
            }
            StrongSessionSerializable => &[Serializable, StrongSessionSnapshotIsolation],
            StrongReadUncommitted => &[StrongSessionReadUncommitted],
            StrongReadCommitted => &[StrongSessionReadCommitted, StrongReadUncommitted],
            StrongSnapshotIsolation => &[StrongSessionSnapshotIsolation, StrongReadCommitted],
            StrictSerializable => &[StrongSessionSerializable, StrongSnapshotIsolation],
        }
    }

    /// The anomalies this model forbids beyond those of the models it implies.
    fn forbids_directly(self, kind: AnomalyKind, flavour: Flavour) -> bool {
        use AnomalyKind::*;
        use ConsistencyModel::*;
        match self {
            ReadUncommitted => matches!(kind, G0 | Internal | DuplicateElement | PhantomRead),
            ReadCommitted => matches!(
                kind,
                G1a | G1b | G1c | IncompatibleOrder | DirtyUpdate | FutureRead
            ),
            ReadAtomic => kind == GSingle && flavour == Flavour::FracturedRead,
            Causal => matches!(kind, GSingle | GSingleProcess) && flavour.is_causal(),
            RepeatableRead => matches!(kind, GSingle | GNonadjacent | G2Item | LostUpdate),
            SnapshotIsolation => matches!(kind, GSingle | GNonadjacent | LostUpdate),
            Serializable => kind == G2,
            StrongSessionReadUncommitted => kind == G0Process,
            StrongSessionReadCommitted => kind == G1cProcess,
            StrongSessionSnapshotIsolation => matches!(kind, GSingleProcess | GNonadjacentProcess),
            StrongSessionSerializable => matches!(kind, G2ItemProcess | G2Process),
            StrongReadUncommitted => kind == G0Realtime,
            StrongReadCommitted => kind == G1cRealtime,
            StrongSnapshotIsolation => matches!(kind, GSingleRealtime | GNonadjacentRealtime),
            StrictSerializable => matches!(kind, G2ItemRealtime | G2Realtime),
        }
    }

    /// Whether an anomaly of `kind` (with its flavour) rules this model out.
    pub fn forbids(self, kind: AnomalyKind, flavour: Flavour) -> bool {
        self.forbids_directly(kind, flavour)
            || self.implies().iter().any(|m| m.forbids(kind, flavour))
    }
}

/// A finer reading of a G-single cycle that decides the weaker models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Flavour {
    #[default]
    Plain,
    /// Two transactions: one read of the reader sees the writer, another misses it.
    FracturedRead,
    /// The rw edge closes a chain of write-read edges: the reader saw an answer without
    /// the question it answers (a causality violation).
    ConsistentPrefix,
    /// The rw edge closes a chain of write-read and process edges, at least one of them
    /// process order: the reader missed a write its own process had made or seen before
    /// (read-your-writes, monotonic reads, writes-follow-reads: a causality violation).
    SessionOrder,
}

impl Flavour {
    /// The G-single flavours that break causal consistency.
    pub fn is_causal(self) -> bool {
        matches!(
            self,
            Flavour::FracturedRead | Flavour::ConsistentPrefix | Flavour::SessionOrder
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AnomalyKind::*;
    use ConsistencyModel::*;

    /// Every model a model implies, itself excluded.
    fn weaker(m: ConsistencyModel) -> Vec<ConsistencyModel> {
        let mut out: Vec<ConsistencyModel> = Vec::new();
        let mut todo = m.implies().to_vec();
        while let Some(w) = todo.pop() {
            if !out.contains(&w) {
                out.push(w);
                todo.extend_from_slice(w.implies());
            }
        }
        out
    }

    #[test]
    fn the_hierarchy_is_acyclic_and_forbids_monotonically() {
        for m in ConsistencyModel::ALL {
            assert!(!weaker(m).contains(&m), "{m} implies itself");
            for w in weaker(m) {
                for k in AnomalyKind::ALL {
                    for f in [
                        Flavour::Plain,
                        Flavour::FracturedRead,
                        Flavour::ConsistentPrefix,
                        Flavour::SessionOrder,
                    ] {
                        assert!(!w.forbids(k, f) || m.forbids(k, f), "{w} {m} {k} {f:?}");
                    }
                }
            }
        }
        assert_eq!(
            weaker(StrictSerializable).len(),
            ConsistencyModel::ALL.len() - 1
        );
        assert_eq!(weaker(ReadUncommitted), []);
    }

    /// The models an anomaly rules out, as Elle's `anomalies->impossible-models` has them.
    fn ruled_out(k: AnomalyKind, f: Flavour) -> Vec<&'static str> {
        ConsistencyModel::ALL
            .into_iter()
            .filter(|m| m.forbids(k, f))
            .map(ConsistencyModel::as_str)
            .collect()
    }

    #[test]
    fn session_and_realtime_variants_rule_out_their_strong_models() {
        let p = Flavour::Plain;
        assert_eq!(
            ruled_out(G0Process, p),
            [
                "causal",
                "strong-session-read-uncommitted",
                "strong-session-read-committed",
                "strong-session-snapshot-isolation",
                "strong-session-serializable",
                "strong-read-uncommitted",
                "strong-read-committed",
                "strong-snapshot-isolation",
                "strict-serializable"
            ]
        );
        assert_eq!(
            ruled_out(G0Realtime, p),
            [
                "strong-read-uncommitted",
                "strong-read-committed",
                "strong-snapshot-isolation",
                "strict-serializable"
            ]
        );
        assert_eq!(
            ruled_out(GSingleProcess, p),
            [
                "strong-session-snapshot-isolation",
                "strong-session-serializable",
                "strong-snapshot-isolation",
                "strict-serializable"
            ]
        );
        assert_eq!(
            ruled_out(G2ItemProcess, p),
            ["strong-session-serializable", "strict-serializable"]
        );
        assert_eq!(ruled_out(G2ItemRealtime, p), ["strict-serializable"]);
        assert_eq!(
            ruled_out(GNonadjacentRealtime, p),
            ["strong-snapshot-isolation", "strict-serializable"]
        );
        // A session-order G-single also breaks causal consistency.
        assert!(ruled_out(GSingleProcess, Flavour::SessionOrder).contains(&"causal"));
        // Lost update: Bailis' repeatable read and snapshot isolation forbid it.
        assert_eq!(
            ruled_out(LostUpdate, p)[..3],
            ["repeatable-read", "snapshot-isolation", "serializable"]
        );
        assert_eq!(ruled_out(G0, p).len(), ConsistencyModel::ALL.len());
    }

    #[test]
    fn names_read_back() {
        for m in ConsistencyModel::ALL {
            assert_eq!(ConsistencyModel::parse(m.as_str()), Some(m));
        }
        let names: Vec<&str> = <ConsistencyModel as schism_history::Choices>::CHOICES
            .iter()
            .map(|c| c.0)
            .collect();
        let all: Vec<&str> = ConsistencyModel::ALL.iter().map(|m| m.as_str()).collect();
        assert_eq!(names, all);
    }
}
