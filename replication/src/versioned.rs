//! Versioned values shared by the multi-leader and leaderless models: what a key holds,
//! how two replicas' copies of it merge, and how an operation rewrites it.
//!
//! A key holds a `KeyState`: one or more `Version`s (siblings). Each version carries its
//! datum, the writer's clock reading (`ts`, nanoseconds of that node's skewable clock),
//! the writing node (`origin`) and a version vector (`clock`). `merge` is a join: it is
//! commutative, associative and idempotent under every `Resolution`, so replicas that have
//! exchanged the same versions hold equal states whatever the order of delivery —
//! the property convergence rests on. Guarantees per resolution:
//! - `Lww`: one version survives, the greatest `(ts, origin, datum)`; a write stamped by a
//!   clock that is behind is silently discarded when it meets a newer-stamped one (the
//!   "lost write overwritten by an older write" anomaly of clock skew);
//! - `VersionVector`: every version not strictly dominated by another survives, so
//!   concurrent writes are kept as siblings; a write made after reading them dominates them;
//! - `Crdt`: counters are PN-counters (one `(count, sum)` per node, the higher count wins),
//!   appends go to a grow-only set ordered by the adding node's clock, plain writes are LWW.
//!
//! An operation is a read-modify-write of the state the writer sees (`apply`): an append
//! adds to the list it sees (all siblings' elements under version vectors), so under
//! `Lww` two concurrent appends on different nodes overwrite each other.

use crate::ids::NodeId;
use crate::request::Request;
use schism_history::Value;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// How concurrent versions of a key are reconciled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Resolution {
    /// Last writer wins, by the writer's own clock.
    #[default]
    Lww,
    /// Version vectors; concurrent versions are kept as siblings that reads return.
    VersionVector,
    /// Mergeable data types: counters and sets merge, registers are LWW.
    Crdt,
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Resolution::Lww => "lww",
            Resolution::VersionVector => "version-vector",
            Resolution::Crdt => "crdt",
        })
    }
}

impl Resolution {
    /// The spellings `--versioning` takes: leaderless replicas keep no CRDTs.
    pub const VERSIONING: &'static [(&'static str, &'static str)] =
        &[("lww", ""), ("version-vector", "")];
}

impl schism_history::Choices for Resolution {
    /// The spellings `--conflict` takes (multi-leader).
    const CHOICES: &'static [(&'static str, &'static str)] = &[
        (
            "lww",
            "Last writer wins, by the writing node's own (skewable) clock",
        ),
        (
            "version-vector",
            "Concurrent writes are kept as siblings that reads return",
        ),
        ("crdt", "Counters and sets merge; plain writes are LWW"),
    ];
}

impl FromStr for Resolution {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "lww" => Ok(Resolution::Lww),
            "version-vector" => Ok(Resolution::VersionVector),
            "crdt" => Ok(Resolution::Crdt),
            other => Err(format!(
                "unknown conflict resolution {other:?}: expected lww, version-vector or crdt"
            )),
        }
    }
}

/// What one version of a key holds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Datum {
    Int(i64),
    List(Vec<i64>),
    /// PN-counter: per node, (adds made there, their sum).
    Counter(BTreeMap<NodeId, (u64, i64)>),
    /// Grow-only set: element → (clock of the adding node, adding node).
    Set(BTreeMap<i64, (u64, NodeId)>),
}

impl Datum {
    /// The value a read returns.
    pub fn value(&self) -> Value {
        match self {
            Datum::Int(v) => Value::Int(*v),
            Datum::List(l) => Value::list(l.clone()),
            Datum::Counter(c) => Value::Int(c.values().fold(0i64, |s, (_, x)| s.wrapping_add(*x))),
            Datum::Set(s) => {
                let mut items: Vec<(&(u64, NodeId), &i64)> =
                    s.iter().map(|(v, a)| (a, v)).collect();
                items.sort();
                Value::list(items.into_iter().map(|(_, v)| *v).collect::<Vec<i64>>())
            }
        }
    }
}

/// A version vector: events seen per node.
pub type VClock = BTreeMap<NodeId, u64>;

/// `a` ≤ `b` pointwise.
pub fn vc_leq(a: &VClock, b: &VClock) -> bool {
    a.iter().all(|(n, x)| b.get(n).copied().unwrap_or(0) >= *x)
}

/// One version of a key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Version {
    /// The writer's clock when it wrote (nanoseconds).
    pub ts: u64,
    pub origin: NodeId,
    pub datum: Datum,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub clock: VClock,
}

/// Every surviving version of a key, in canonical (sorted) order; empty = never written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyState(pub Vec<Version>);

impl KeyState {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Merges `other` into `self`; true if `self` changed.
    ///
    /// In debug builds it checks that the result absorbs both sides (merging either again
    /// changes nothing): a replica's state of a key only ever grows, which is what makes
    /// replicas that saw the same versions converge.
    pub fn merge(&mut self, other: &KeyState, res: Resolution) -> bool {
        if other.0.is_empty() {
            return false;
        }
        let merged = join(&self.0, &other.0, res);
        debug_assert!(
            join(&merged, &other.0, res) == merged && join(&merged, &self.0, res) == merged,
            "merge under {res} does not absorb its inputs: {:?} + {:?} -> {merged:?}",
            self.0,
            other.0
        );
        let changed = merged != self.0;
        self.0 = merged;
        changed
    }

    /// The one view an operation builds on: the single version, or the siblings
    /// reconciled (integers: the greatest `(ts, origin)`; lists: the union of elements, in
    /// sibling order).
    pub fn resolved(&self) -> Option<Datum> {
        match self.0.len() {
            0 => None,
            1 => Some(self.0[0].datum.clone()),
            _ => {
                if self.0.iter().all(|v| matches!(v.datum, Datum::List(_))) {
                    let mut out: Vec<i64> = Vec::new();
                    for v in &self.0 {
                        if let Datum::List(l) = &v.datum {
                            for x in l {
                                if !out.contains(x) {
                                    out.push(*x);
                                }
                            }
                        }
                    }
                    Some(Datum::List(out))
                } else {
                    self.0.iter().max().map(|v| v.datum.clone())
                }
            }
        }
    }

    /// What a read returns: the resolved value, and the siblings when there are several.
    pub fn read(&self) -> (Value, Option<Vec<Value>>) {
        let value = self.resolved().map_or(Value::Null, |d| d.value());
        let siblings = (self.0.len() > 1).then(|| self.0.iter().map(|v| v.datum.value()).collect());
        (value, siblings)
    }

    /// The version vector that dominates every sibling.
    pub fn clock(&self) -> VClock {
        let mut c = VClock::new();
        for v in &self.0 {
            for (n, x) in &v.clock {
                let e = c.entry(n.clone()).or_insert(0);
                *e = (*e).max(*x);
            }
        }
        c
    }

    /// A stable fingerprint (FNV-1a over the canonical JSON), for anti-entropy digests.
    pub fn fingerprint(&self) -> u64 {
        let text = serde_json::to_vec(self).unwrap_or_default();
        fnv(0xcbf2_9ce4_8422_2325, &text)
    }
}

pub(crate) fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// The versions that survive when two replicas' versions of a key meet.
fn join(a: &[Version], b: &[Version], res: Resolution) -> Vec<Version> {
    let mut all: Vec<Version> = a.iter().chain(b.iter()).cloned().collect();
    match res {
        Resolution::Lww => all.into_iter().max().into_iter().collect(),
        Resolution::VersionVector => {
            all.sort();
            all.dedup();
            let keep: Vec<Version> = all
                .iter()
                .filter(|v| {
                    !all.iter()
                        .any(|w| w.clock != v.clock && vc_leq(&v.clock, &w.clock))
                })
                .cloned()
                .collect();
            keep
        }
        Resolution::Crdt => {
            let mut acc: Option<Version> = None;
            for v in all {
                acc = Some(match acc {
                    None => v,
                    Some(a) => crdt_join(a, v),
                });
            }
            acc.into_iter().collect()
        }
    }
}

fn crdt_join(a: Version, b: Version) -> Version {
    match (&a.datum, &b.datum) {
        (Datum::Counter(x), Datum::Counter(y)) => {
            let mut c = x.clone();
            for (n, e) in y {
                let slot = c.entry(n.clone()).or_insert(*e);
                if e.0 > slot.0 {
                    *slot = *e;
                }
            }
            let (ts, origin) = (a.ts.max(b.ts), a.origin.clone().max(b.origin.clone()));
            Version {
                ts,
                origin,
                datum: Datum::Counter(c),
                clock: VClock::new(),
            }
        }
        (Datum::Set(x), Datum::Set(y)) => {
            let mut s = x.clone();
            for (v, t) in y {
                let slot = s.entry(*v).or_insert_with(|| t.clone());
                if t < slot {
                    *slot = t.clone();
                }
            }
            let (ts, origin) = (a.ts.max(b.ts), a.origin.clone().max(b.origin.clone()));
            Version {
                ts,
                origin,
                datum: Datum::Set(s),
                clock: VClock::new(),
            }
        }
        _ => a.max(b),
    }
}

/// Builds the version a write makes at `node`, whose clock reads `ts`, on top of `seen`
/// (the state the writer sees). `counter` is the node's own version-vector counter,
/// bumped here. Errors are definite failures (cas mismatch, wrong type) that write nothing.
pub fn apply(
    seen: &KeyState,
    op: &Request,
    node: &str,
    ts: u64,
    counter: &mut u64,
    res: Resolution,
) -> Result<Version, String> {
    let base = seen.resolved();
    let datum = match (*op, &base) {
        (Request::Read { .. }, _) => return Err("a read is not a write".into()),
        (Request::Write { value, .. }, _) => Datum::Int(value),
        (Request::Cas { key, expected, new }, b) => match b.as_ref().map(Datum::value) {
            Some(Value::Int(v)) if v == expected => Datum::Int(new),
            Some(Value::Int(v)) => {
                return Err(format!("cas failed: key {key} is {v}, not {expected}"));
            }
            None => return Err(format!("cas failed: key {key} is nil, not {expected}")),
            Some(_) => return Err(format!("cas failed: key {key} holds a list")),
        },
        (Request::Append { key, value }, b) => match (res, b) {
            (Resolution::Crdt, Some(Datum::Set(s))) => {
                let mut s = s.clone();
                s.entry(value).or_insert_with(|| (ts, node.to_owned()));
                Datum::Set(s)
            }
            (Resolution::Crdt, None) => {
                Datum::Set([(value, (ts, node.to_owned()))].into_iter().collect())
            }
            (_, Some(Datum::List(l))) => {
                let mut l = l.clone();
                l.push(value);
                Datum::List(l)
            }
            (_, None) => Datum::List(vec![value]),
            _ => return Err(format!("key {key} holds an integer, cannot append")),
        },
        (Request::Add { key, value } | Request::Incr { key, value }, b) => match (res, b) {
            (Resolution::Crdt, Some(Datum::Counter(c))) => {
                let mut c = c.clone();
                let e = c.entry(node.to_owned()).or_insert((0, 0));
                *e = (e.0 + 1, e.1.wrapping_add(value));
                Datum::Counter(c)
            }
            (Resolution::Crdt, None) => {
                Datum::Counter([(node.to_owned(), (1, value))].into_iter().collect())
            }
            (_, Some(Datum::Int(x))) => Datum::Int(x.wrapping_add(value)),
            (_, None) => Datum::Int(value),
            _ => return Err(format!("key {key} holds a list, cannot add")),
        },
    };
    let clock = if res == Resolution::VersionVector {
        let mut c = seen.clock();
        let mine = c.entry(node.to_owned()).or_insert(0);
        *counter = (*counter).max(*mine) + 1;
        *mine = *counter;
        c
    } else {
        VClock::new()
    };
    Ok(Version {
        ts,
        origin: node.to_owned(),
        datum,
        clock,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(seen: &KeyState, op: Request, node: &str, ts: u64, res: Resolution) -> KeyState {
        let mut c = 0;
        let v = apply(seen, &op, node, ts, &mut c, res).unwrap();
        let mut s = seen.clone();
        s.merge(&KeyState(vec![v]), res);
        s
    }

    #[test]
    fn lww_keeps_the_newest_stamp_even_over_a_later_write() {
        let r = Resolution::Lww;
        let a = write(
            &KeyState::default(),
            Request::Append { key: 1, value: 1 },
            "n1",
            100,
            r,
        );
        // n2's clock is behind: its append, made after seeing [1], is stamped 50.
        let b = write(&a, Request::Append { key: 1, value: 2 }, "n2", 50, r);
        assert_eq!(b.read().0, Value::list(vec![1]), "the older stamp loses");
    }

    #[test]
    fn version_vectors_keep_concurrent_siblings_and_a_later_write_resolves_them() {
        let r = Resolution::VersionVector;
        let base = write(
            &KeyState::default(),
            Request::Append { key: 1, value: 1 },
            "n1",
            1,
            r,
        );
        let x = write(&base, Request::Append { key: 1, value: 2 }, "n1", 2, r);
        let y = write(&base, Request::Append { key: 1, value: 3 }, "n2", 2, r);
        let mut m = x.clone();
        assert!(m.merge(&y, r));
        let mut m2 = y.clone();
        m2.merge(&x, r);
        assert_eq!(m, m2, "merge commutes");
        assert_eq!(m.0.len(), 2);
        let (value, siblings) = m.read();
        assert_eq!(value, Value::list(vec![1, 2, 3]));
        assert_eq!(siblings.unwrap().len(), 2);
        let z = write(&m, Request::Append { key: 1, value: 4 }, "n3", 3, r);
        assert_eq!(z.0.len(), 1);
        assert_eq!(z.read().0, Value::list(vec![1, 2, 3, 4]));
        assert!(
            !z.clone().merge(&m, r),
            "the resolved version dominates both siblings"
        );
    }

    #[test]
    fn crdt_counters_and_sets_merge() {
        let r = Resolution::Crdt;
        let e = KeyState::default();
        let a = write(&e, Request::Add { key: 1, value: 5 }, "n1", 1, r);
        let b = write(&e, Request::Add { key: 1, value: 7 }, "n2", 1, r);
        let mut m = a.clone();
        m.merge(&b, r);
        assert_eq!(m.read().0, Value::Int(12));
        let s1 = write(&e, Request::Append { key: 2, value: 1 }, "n1", 10, r);
        let s2 = write(&e, Request::Append { key: 2, value: 2 }, "n2", 5, r);
        let mut s = s1.clone();
        s.merge(&s2, r);
        assert_eq!(
            s.read().0,
            Value::list(vec![2, 1]),
            "ordered by the adders' clocks"
        );
        assert!(!s.clone().merge(&s1, r), "idempotent");
    }

    #[test]
    fn cas_and_type_errors_are_definite() {
        let r = Resolution::Lww;
        let a = write(
            &KeyState::default(),
            Request::Write { key: 1, value: 3 },
            "n1",
            1,
            r,
        );
        let mut c = 0;
        let op = Request::Cas {
            key: 1,
            expected: 4,
            new: 5,
        };
        assert!(
            apply(&a, &op, "n1", 2, &mut c, r)
                .unwrap_err()
                .contains("is 3, not 4")
        );
        let op = Request::Append { key: 1, value: 9 };
        assert!(apply(&a, &op, "n1", 2, &mut c, r).is_err());
    }
}
