//! Consistency models and the anomalies each forbids, after Adya, Cerone et al. and Elle.
//!
//! Every model forbids the read-committed set (G0, G1a, G1b, G1c and the non-cyclic
//! integrity anomalies: internal, duplicate elements, incompatible orders, future and
//! phantom reads, dirty updates). `read-atomic` adds fractured reads (a G-single cycle of
//! two transactions: one read sees a transaction's write, another read of the same
//! transaction misses it); `causal` adds the consistent-prefix anomaly (a G-single cycle
//! whose other edges are all write-read or process order: a reader sees an answer without
//! the question it answers) and session order (the `-process` variants of G0 and G1c);
//! `repeatable-read` (Adya's PL-2.99) forbids every item anti-dependency cycle;
//! `snapshot-isolation` forbids G-single, G-nonadjacent and lost updates;
//! `serializable` every cycle of data dependencies and lost updates; `strict-serializable`
//! also the cycles that need process or real-time order. Guarantees: `forbids` is
//! monotone along `read-committed ≤ read-atomic ≤ causal` and `read-committed ≤
//! repeatable-read, snapshot-isolation ≤ serializable ≤ strict-serializable`.

use crate::AnomalyKind;
use serde::{Deserialize, Serialize};

/// A consistency model a transactional history can be checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConsistencyModel {
    ReadCommitted,
    ReadAtomic,
    Causal,
    RepeatableRead,
    SnapshotIsolation,
    Serializable,
    StrictSerializable,
}

impl ConsistencyModel {
    pub const ALL: [ConsistencyModel; 7] = [
        ConsistencyModel::ReadCommitted,
        ConsistencyModel::ReadAtomic,
        ConsistencyModel::Causal,
        ConsistencyModel::RepeatableRead,
        ConsistencyModel::SnapshotIsolation,
        ConsistencyModel::Serializable,
        ConsistencyModel::StrictSerializable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConsistencyModel::ReadCommitted => "read-committed",
            ConsistencyModel::ReadAtomic => "read-atomic",
            ConsistencyModel::Causal => "causal",
            ConsistencyModel::RepeatableRead => "repeatable-read",
            ConsistencyModel::SnapshotIsolation => "snapshot-isolation",
            ConsistencyModel::Serializable => "serializable",
            ConsistencyModel::StrictSerializable => "strict-serializable",
        }
    }

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
        ("read-committed", ""),
        ("read-atomic", ""),
        ("causal", ""),
        ("repeatable-read", ""),
        ("snapshot-isolation", ""),
        ("serializable", ""),
        ("strict-serializable", ""),
    ];
}

impl ConsistencyModel {
    /// Whether an anomaly of `kind` (with its flavour) rules this model out.
    pub fn forbids(self, kind: AnomalyKind, flavour: Flavour) -> bool {
        use AnomalyKind::*;
        use ConsistencyModel::*;
        let rc = matches!(
            kind,
            G0 | G1a
                | G1b
                | G1c
                | Internal
                | DuplicateElement
                | IncompatibleOrder
                | FutureRead
                | PhantomRead
                | DirtyUpdate
        );
        if rc {
            return true;
        }
        let fractured = flavour == Flavour::FracturedRead;
        let causal_violation = fractured || flavour == Flavour::ConsistentPrefix;
        match self {
            ReadCommitted => false,
            ReadAtomic => fractured && kind == GSingle,
            Causal => {
                (causal_violation && matches!(kind, GSingle | GSingleProcess))
                    || matches!(kind, G0Process | G1cProcess)
            }
            RepeatableRead => matches!(kind, GSingle | GNonadjacent | G2Item),
            SnapshotIsolation => matches!(kind, GSingle | GNonadjacent | LostUpdate),
            Serializable => matches!(kind, GSingle | GNonadjacent | G2Item | LostUpdate),
            StrictSerializable => true,
        }
    }
}

/// A finer reading of a G-single cycle that decides the weaker models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Flavour {
    #[default]
    Plain,
    /// Two transactions: one read of the reader sees the writer, another misses it.
    FracturedRead,
    /// The rw edge closes a chain of write-read (and process) edges: the reader saw an
    /// answer without the question it answers (a causality violation).
    ConsistentPrefix,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotone() {
        use ConsistencyModel::*;
        let chains = [
            [ReadCommitted, ReadAtomic, Causal, Causal],
            [
                ReadCommitted,
                RepeatableRead,
                Serializable,
                StrictSerializable,
            ],
            [
                ReadCommitted,
                SnapshotIsolation,
                Serializable,
                StrictSerializable,
            ],
        ];
        let flavours = [
            Flavour::Plain,
            Flavour::FracturedRead,
            Flavour::ConsistentPrefix,
        ];
        for chain in chains {
            for w in chain.windows(2) {
                for k in AnomalyKind::ALL {
                    for f in flavours {
                        if w[0].forbids(k, f) {
                            assert!(w[1].forbids(k, f), "{w:?} {k} {f:?}");
                        }
                    }
                }
            }
        }
    }
}
