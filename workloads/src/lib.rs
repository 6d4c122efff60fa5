//! Pure, seeded, time-explicit operation generators (Jepsen's generators, simplified).
//!
//! A `Generator` is asked `next(now_ns)` and answers with an invocation, "nothing until
//! `until_ns`" (rate limiting), or done. It never reads a clock, sleeps or does I/O: the
//! caller passes time in, so the same seed and the same sequence of calls give the same
//! ops. Guarantees: write values are unique across the whole run (so a read names its
//! writer); at most `keys` keys are active at once and a key is retired after
//! `max_writes_per_key` writes (bounding read sizes and per-key search); after the time
//! limit the generator emits one final read per key it used, then `Done`.

pub mod txn;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use schism_history::{F, Key, Value};
use serde::{Deserialize, Serialize};

/// Which workload to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadKind {
    /// Appends of unique integers to lists, and reads of whole lists (Elle's list-append).
    Append,
    /// Writes of unique integers to registers, and reads.
    Register,
    /// Transactions of appends and list reads (`txn::TxnKind::ListAppend`).
    #[serde(rename = "list-append")]
    ListAppend,
    /// Transactions of register writes and reads (`txn::TxnKind::RwRegister`).
    #[serde(rename = "rw-register")]
    RwRegister,
}

impl WorkloadKind {
    /// The transactional workload this is, if it is one.
    pub fn txn(self) -> Option<txn::TxnKind> {
        match self {
            WorkloadKind::ListAppend => Some(txn::TxnKind::ListAppend),
            WorkloadKind::RwRegister => Some(txn::TxnKind::RwRegister),
            WorkloadKind::Append | WorkloadKind::Register => None,
        }
    }
}

impl std::str::FromStr for WorkloadKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "append" => Ok(WorkloadKind::Append),
            "register" => Ok(WorkloadKind::Register),
            "list-append" => Ok(WorkloadKind::ListAppend),
            "rw-register" => Ok(WorkloadKind::RwRegister),
            other => Err(format!(
                "unknown workload {other:?}: expected append, register, list-append or rw-register"
            )),
        }
    }
}

impl std::fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WorkloadKind::Append => "append",
            WorkloadKind::Register => "register",
            WorkloadKind::ListAppend => "list-append",
            WorkloadKind::RwRegister => "rw-register",
        })
    }
}

/// `--workload`'s spellings (`schism test`), as `FromStr`, `Display` and serde write them.
impl schism_history::Choices for WorkloadKind {
    const CHOICES: &'static [(&'static str, &'static str)] = &[
        ("append", "Single-key appends and list reads"),
        ("register", "Single-key writes and reads of registers"),
        (
            "list-append",
            "Transactions of appends and list reads (Elle's list-append)",
        ),
        (
            "rw-register",
            "Transactions of register writes and reads (Elle's rw-register)",
        ),
    ];
}

/// Settings of one generator; every field is recorded in the run's config.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadSpec {
    pub kind: WorkloadKind,
    /// Keys active at once.
    pub keys: u64,
    /// Writes after which a key is retired and a fresh one takes its place.
    pub max_writes_per_key: u64,
    /// Fraction of ops that are reads, 0.0..=1.0.
    pub read_fraction: f64,
    /// Ops per second over all workers; 0 means unlimited.
    pub rate_hz: f64,
    /// No new (non-final) op is generated at or after this time.
    pub time_limit_ns: u64,
    /// Emit one read per used key after the time limit.
    pub final_reads: bool,
    /// Quiet time between the time limit and the final reads, so that replication
    /// settles and a final read that misses an acknowledged write proves it lost.
    #[serde(default)]
    pub final_read_delay_ns: u64,
    pub seed: u64,
}

impl WorkloadSpec {
    pub fn validate(&self) -> Result<(), String> {
        if self.keys == 0 {
            return Err("--keys must be at least 1".into());
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
        if !(self.rate_hz >= 0.0 && self.rate_hz.is_finite()) {
            return Err(format!(
                "--rate {} must be a non-negative number",
                self.rate_hz
            ));
        }
        Ok(())
    }
}

/// How the transactions of a `list-append` or `rw-register` workload are shaped (the
/// rest of `txn::TxnSpec` comes from the `WorkloadSpec`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TxnShape {
    /// Micro-ops per transaction, `min_len..=max_len`.
    pub min_len: usize,
    pub max_len: usize,
    pub key_dist: txn::KeyDist,
}

impl Default for TxnShape {
    /// Elle's defaults: 1–4 micro-ops, most transactions on a few hot keys.
    fn default() -> Self {
        TxnShape {
            min_len: 1,
            max_len: 4,
            key_dist: txn::KeyDist::Exponential,
        }
    }
}

/// One operation to invoke. A transaction is `f = "txn"` with its micro-ops as the value
/// (`schism_history::txn::txn_value`) and `key` 0 (unused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub f: F,
    pub key: Key,
    pub value: Value,
    /// Part of the final-read phase (after the time limit).
    pub is_final: bool,
}

impl Invocation {
    /// A transaction (`f = "txn"`).
    pub fn is_txn(&self) -> bool {
        self.f.as_str() == schism_history::txn::TXN_F
    }

    fn txn(mops: &[schism_history::txn::MicroOp], is_final: bool) -> Invocation {
        Invocation {
            f: F::parse(schism_history::txn::TXN_F),
            key: 0,
            value: schism_history::txn::txn_value(mops),
            is_final,
        }
    }
}

/// What the generator says when asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Op(Invocation),
    /// Nothing may start before this time (rate limit).
    Pending {
        until_ns: u64,
    },
    /// No more ops, ever.
    Done,
}

/// How many ops the rate limiter lets through at once after a stall, so that a worker
/// that fell behind does not fire a burst of thousands of ops in one instant.
const RATE_BURST_OPS: u64 = 16;

#[derive(Debug)]
struct ActiveKey {
    key: Key,
    writes: u64,
}

/// A seeded generator for one run, shared by all workers (the caller serializes access).
#[derive(Debug)]
pub struct Generator {
    spec: WorkloadSpec,
    rng: ChaCha8Rng,
    active: Vec<ActiveKey>,
    next_key: Key,
    next_value: i64,
    interval_ns: u64,
    next_due_ns: u64,
    /// Keys handed out so far, for the final reads; `final_cursor` walks it.
    used_keys: u64,
    final_cursor: u64,
    generated: u64,
    /// Transactional workloads: the transaction generator (keys, values, micro-ops).
    txn: Option<txn::TxnGenerator>,
}

impl Generator {
    pub fn new(spec: WorkloadSpec) -> Result<Self, String> {
        Self::with_shape(spec, TxnShape::default())
    }

    /// A generator whose transactions (list-append, rw-register) take this shape.
    pub fn with_shape(spec: WorkloadSpec, shape: TxnShape) -> Result<Self, String> {
        spec.validate()?;
        let txn = match spec.kind.txn() {
            None => None,
            Some(kind) => Some(txn::TxnGenerator::new(txn::TxnSpec {
                kind,
                keys: spec.keys,
                min_len: shape.min_len,
                max_len: shape.max_len,
                max_writes_per_key: spec.max_writes_per_key,
                read_fraction: spec.read_fraction,
                key_dist: shape.key_dist,
                seed: spec.seed,
            })?),
        };
        let active = (0..spec.keys)
            .map(|k| ActiveKey { key: k, writes: 0 })
            .collect();
        let interval_ns = if spec.rate_hz > 0.0 {
            (1e9 / spec.rate_hz).max(1.0) as u64
        } else {
            0
        };
        Ok(Self {
            rng: ChaCha8Rng::seed_from_u64(spec.seed),
            next_key: spec.keys,
            used_keys: spec.keys,
            active,
            next_value: 1,
            interval_ns,
            next_due_ns: 0,
            final_cursor: 0,
            generated: 0,
            txn,
            spec,
        })
    }

    pub fn spec(&self) -> &WorkloadSpec {
        &self.spec
    }

    /// Ops generated so far.
    pub fn generated(&self) -> u64 {
        self.generated
    }

    pub fn next(&mut self, now_ns: u64) -> Next {
        if now_ns >= self.spec.time_limit_ns {
            return self.next_final(now_ns);
        }
        if self.interval_ns > 0 {
            let floor = now_ns.saturating_sub(self.interval_ns * RATE_BURST_OPS);
            self.next_due_ns = self.next_due_ns.max(floor);
            if now_ns < self.next_due_ns {
                return Next::Pending {
                    until_ns: self.next_due_ns.min(self.spec.time_limit_ns),
                };
            }
            self.next_due_ns += self.interval_ns;
        }
        self.generated += 1;
        if let Some(t) = &mut self.txn {
            return Next::Op(Invocation::txn(&t.next_txn(), false));
        }
        let slot = self.rng.random_range(0..self.active.len());
        let key = self.active[slot].key;
        if self.rng.random_bool(self.spec.read_fraction) {
            return Next::Op(Invocation {
                f: F::Read,
                key,
                value: Value::Null,
                is_final: false,
            });
        }
        let value = self.next_value;
        self.next_value += 1;
        let a = &mut self.active[slot];
        a.writes += 1;
        if a.writes >= self.spec.max_writes_per_key {
            // Retire the key: later ops go to a fresh one. Reads of the retired key
            // stop, except the final read.
            *a = ActiveKey {
                key: self.next_key,
                writes: 0,
            };
            self.next_key += 1;
            self.used_keys += 1;
        }
        let f = match self.spec.kind {
            WorkloadKind::Register | WorkloadKind::RwRegister => F::Write,
            WorkloadKind::Append | WorkloadKind::ListAppend => F::Append,
        };
        Next::Op(Invocation {
            f,
            key,
            value: Value::Int(value),
            is_final: false,
        })
    }

    fn next_final(&mut self, now_ns: u64) -> Next {
        if let Some(t) = &self.txn {
            self.used_keys = t.keys_used();
        }
        if !self.spec.final_reads || self.final_cursor >= self.used_keys {
            return Next::Done;
        }
        let start_ns = self
            .spec
            .time_limit_ns
            .saturating_add(self.spec.final_read_delay_ns);
        if now_ns < start_ns {
            return Next::Pending { until_ns: start_ns };
        }
        let key = self.final_cursor;
        self.final_cursor += 1;
        if self.txn.is_some() {
            return Next::Op(Invocation::txn(
                &[schism_history::txn::MicroOp::read(key)],
                true,
            ));
        }
        Next::Op(Invocation {
            f: F::Read,
            key,
            value: Value::Null,
            is_final: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn spec(kind: WorkloadKind) -> WorkloadSpec {
        WorkloadSpec {
            kind,
            keys: 3,
            max_writes_per_key: 5,
            read_fraction: 0.5,
            rate_hz: 0.0,
            time_limit_ns: 1_000_000,
            final_reads: true,
            final_read_delay_ns: 0,
            seed: 7,
        }
    }

    fn drain(g: &mut Generator, step_ns: u64) -> Vec<(u64, Invocation)> {
        let mut out = vec![];
        let mut now = 0;
        for _ in 0..1_000_000 {
            match g.next(now) {
                Next::Op(i) => out.push((now, i)),
                Next::Pending { until_ns } => {
                    assert!(until_ns > now);
                    now = until_ns;
                    continue;
                }
                Next::Done => return out,
            }
            now += step_ns;
        }
        panic!("generator never finished");
    }

    #[test]
    fn same_seed_same_ops_and_values_unique() {
        let a = drain(
            &mut Generator::new(spec(WorkloadKind::Append)).unwrap(),
            1000,
        );
        let b = drain(
            &mut Generator::new(spec(WorkloadKind::Append)).unwrap(),
            1000,
        );
        assert_eq!(a, b);
        let mut seen = HashSet::new();
        for (_, i) in a.iter().filter(|(_, i)| i.f == F::Append) {
            assert!(seen.insert(i.value.as_int().unwrap()), "duplicate value");
        }
        assert!(seen.len() > 100);
        let mut other = spec(WorkloadKind::Append);
        other.seed = 8;
        assert_ne!(a, drain(&mut Generator::new(other).unwrap(), 1000));
    }

    #[test]
    fn keys_rotate_and_final_reads_cover_every_key() {
        let ops = drain(
            &mut Generator::new(spec(WorkloadKind::Register)).unwrap(),
            1000,
        );
        let mut writes_per_key = std::collections::HashMap::new();
        for (_, i) in &ops {
            if i.f == F::Write {
                *writes_per_key.entry(i.key).or_insert(0u64) += 1;
            }
        }
        assert!(writes_per_key.values().all(|&w| w <= 5));
        let finals: Vec<Key> = ops
            .iter()
            .filter(|(_, i)| i.is_final)
            .map(|(_, i)| i.key)
            .collect();
        let used: HashSet<Key> = ops
            .iter()
            .filter(|(_, i)| !i.is_final)
            .map(|(_, i)| i.key)
            .collect();
        assert!(writes_per_key.len() > 3, "keys never rotated");
        for k in used {
            assert!(finals.contains(&k), "key {k} has no final read");
        }
    }

    #[test]
    fn rate_limit_spaces_ops() {
        let mut s = spec(WorkloadKind::Append);
        s.rate_hz = 1000.0; // one op per ms
        s.time_limit_ns = 100_000_000;
        s.final_reads = false;
        let ops = drain(&mut Generator::new(s).unwrap(), 0);
        // 100 ms at 1000/s: about 100 ops, the first burst bounded.
        assert!((95..=120).contains(&ops.len()), "{} ops", ops.len());
    }

    #[test]
    fn final_reads_wait_for_the_quiet_period() {
        let mut s = spec(WorkloadKind::Append);
        s.final_read_delay_ns = 500_000;
        let mut g = Generator::new(s).unwrap();
        assert_eq!(
            g.next(1_000_000),
            Next::Pending {
                until_ns: 1_500_000
            }
        );
        match g.next(1_500_000) {
            Next::Op(i) => assert!(i.is_final && i.f == F::Read),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn transactions_are_rate_limited_and_end_with_final_reads() {
        let mut s = spec(WorkloadKind::ListAppend);
        s.rate_hz = 1000.0;
        s.time_limit_ns = 50_000_000;
        let ops = drain(&mut Generator::new(s).unwrap(), 0);
        assert!(ops.iter().all(|(_, i)| i.is_txn()));
        let (finals, txns): (Vec<_>, Vec<_>) = ops.iter().partition(|(_, i)| i.is_final);
        assert!((45..=70).contains(&txns.len()), "{} txns", txns.len());
        let mut keys = HashSet::new();
        for (_, i) in &txns {
            let mops = schism_history::txn::parse_txn(&i.value).unwrap();
            assert!((1..=4).contains(&mops.len()));
            keys.extend(mops.iter().map(|m| m.key));
        }
        let read: HashSet<Key> = finals
            .iter()
            .map(|(_, i)| {
                let m = schism_history::txn::parse_txn(&i.value).unwrap();
                assert_eq!(m.len(), 1);
                assert_eq!(m[0].f, schism_history::txn::MopF::Read);
                m[0].key
            })
            .collect();
        assert!(keys.is_subset(&read), "a used key has no final read");
    }

    #[test]
    fn bad_specs_are_refused() {
        let mut s = spec(WorkloadKind::Append);
        s.keys = 0;
        assert!(Generator::new(s).unwrap_err().contains("--keys"));
    }
}
