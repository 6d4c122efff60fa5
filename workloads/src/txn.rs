//! Pure, seeded generators of transactions: Elle's list-append and rw-register.
//!
//! `TxnGenerator::next_txn` returns a transaction of `min_len..=max_len` micro-ops over
//! the active keys (chosen uniformly or with an exponential skew), in the history
//! vocabulary of `schism_history::txn`. Guarantees: every appended or written value is
//! unique per key (values count up from 1 across the whole run, so a read names its
//! writer); at most `keys` keys are active at once and a key is retired for a fresh one
//! after `max_writes_per_key` writes, bounding list sizes; `final_reads` reads every key
//! ever used, one read-only transaction per key. No clock, no I/O: the same spec gives
//! the same transactions.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use schism_history::Key;
use schism_history::txn::MicroOp;
use serde::{Deserialize, Serialize};

/// Which transactional workload to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TxnKind {
    /// `append` and `r` of lists (Elle's list-append).
    ListAppend,
    /// `w` and `r` of registers (Elle's rw-register).
    RwRegister,
}

/// How keys are chosen among the active ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyDist {
    Uniform,
    /// Key `i` of the active ones with probability ∝ 2^-i: most transactions meet on a
    /// few hot keys, which makes conflicts (and anomalies) likely.
    Exponential,
}

impl std::str::FromStr for KeyDist {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "uniform" => Ok(KeyDist::Uniform),
            "exponential" => Ok(KeyDist::Exponential),
            other => Err(format!(
                "unknown key distribution {other:?}: expected uniform or exponential"
            )),
        }
    }
}

impl std::fmt::Display for KeyDist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyDist::Uniform => "uniform",
            KeyDist::Exponential => "exponential",
        })
    }
}

/// `--key-dist`'s spellings.
impl schism_history::Choices for KeyDist {
    const CHOICES: &'static [(&'static str, &'static str)] = &[
        ("uniform", "Every active key alike"),
        (
            "exponential",
            "Key i with probability ∝ 2^-i: conflicts on a few hot keys",
        ),
    ];
}

/// Settings of one transaction generator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TxnSpec {
    pub kind: TxnKind,
    /// Keys active at once.
    pub keys: u64,
    pub min_len: usize,
    pub max_len: usize,
    /// Writes after which a key is retired.
    pub max_writes_per_key: u64,
    /// Fraction of micro-ops that are reads, 0.0..=1.0.
    pub read_fraction: f64,
    pub key_dist: KeyDist,
    pub seed: u64,
}

impl TxnSpec {
    pub fn validate(&self) -> Result<(), String> {
        if self.keys == 0 {
            return Err("--keys must be at least 1".into());
        }
        if self.min_len == 0 || self.min_len > self.max_len {
            return Err(format!(
                "transaction length {}..={} must be at least 1 and not empty",
                self.min_len, self.max_len
            ));
        }
        if self.max_len > schism_history::txn::MAX_MICRO_OPS {
            return Err(format!(
                "transaction length {} exceeds the limit of {}",
                self.max_len,
                schism_history::txn::MAX_MICRO_OPS
            ));
        }
        if self.max_writes_per_key == 0 {
            return Err("max writes per key must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.read_fraction) {
            return Err(format!(
                "read fraction {} must lie in 0..=1",
                self.read_fraction
            ));
        }
        Ok(())
    }
}

/// A seeded transaction generator.
#[derive(Debug)]
pub struct TxnGenerator {
    spec: TxnSpec,
    rng: ChaCha8Rng,
    /// Active keys with their write counts.
    active: Vec<(Key, u64)>,
    next_key: Key,
    next_value: i64,
}

impl TxnGenerator {
    pub fn new(spec: TxnSpec) -> Result<TxnGenerator, String> {
        spec.validate()?;
        let active = (0..spec.keys).map(|k| (k, 0)).collect();
        Ok(TxnGenerator {
            rng: ChaCha8Rng::seed_from_u64(spec.seed),
            next_key: spec.keys,
            active,
            spec,
            next_value: 1,
        })
    }

    /// The next transaction's micro-ops (reads carry nil: they are invocations).
    pub fn next_txn(&mut self) -> Vec<MicroOp> {
        let len = self.rng.random_range(self.spec.min_len..=self.spec.max_len);
        let mut mops = Vec::with_capacity(len);
        for _ in 0..len {
            let slot = self.pick_slot();
            let key = self.active[slot].0;
            if self.rng.random_bool(self.spec.read_fraction) {
                mops.push(MicroOp::read(key));
                continue;
            }
            let v = self.next_value;
            self.next_value += 1;
            mops.push(match self.spec.kind {
                TxnKind::ListAppend => MicroOp::append(key, v),
                TxnKind::RwRegister => MicroOp::write(key, v),
            });
            self.active[slot].1 += 1;
            if self.active[slot].1 >= self.spec.max_writes_per_key {
                // Retired: later micro-ops of this transaction go to the fresh key.
                self.active[slot] = (self.next_key, 0);
                self.next_key += 1;
            }
        }
        mops
    }

    /// Keys used so far (`0..keys_used()`).
    pub fn keys_used(&self) -> u64 {
        self.next_key
    }

    /// One read-only transaction per key ever used, in key order.
    pub fn final_reads(&self) -> Vec<Vec<MicroOp>> {
        (0..self.next_key).map(|k| vec![MicroOp::read(k)]).collect()
    }

    fn pick_slot(&mut self) -> usize {
        let n = self.active.len();
        match self.spec.key_dist {
            KeyDist::Uniform => self.rng.random_range(0..n),
            KeyDist::Exponential => {
                let mut i = 0;
                while i + 1 < n && self.rng.random_bool(0.5) {
                    i += 1;
                }
                i
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schism_history::txn::MopF;
    use std::collections::HashSet;

    fn spec(kind: TxnKind) -> TxnSpec {
        TxnSpec {
            kind,
            keys: 3,
            min_len: 1,
            max_len: 4,
            max_writes_per_key: 5,
            read_fraction: 0.5,
            key_dist: KeyDist::Exponential,
            seed: 7,
        }
    }

    #[test]
    fn unique_values_bounded_keys_seeded() {
        for kind in [TxnKind::ListAppend, TxnKind::RwRegister] {
            let mut g = TxnGenerator::new(spec(kind)).unwrap();
            let mut seen = HashSet::new();
            let mut writes_per_key = std::collections::HashMap::<Key, u64>::new();
            for _ in 0..500 {
                let t = g.next_txn();
                assert!((1..=4).contains(&t.len()));
                for m in t {
                    if let Some(v) = m.written() {
                        assert!(seen.insert((m.key, v)));
                        *writes_per_key.entry(m.key).or_default() += 1;
                        let want = if kind == TxnKind::ListAppend {
                            MopF::Append
                        } else {
                            MopF::Write
                        };
                        assert_eq!(m.f, want);
                    }
                }
            }
            assert!(writes_per_key.values().all(|&n| n <= 5));
            assert_eq!(g.final_reads().len() as u64, g.next_key);
            let mut a = TxnGenerator::new(spec(kind)).unwrap();
            let mut b = TxnGenerator::new(spec(kind)).unwrap();
            assert_eq!(a.next_txn(), b.next_txn());
        }
    }
}
