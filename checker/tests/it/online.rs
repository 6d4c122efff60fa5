//! The incremental checkers against the offline `graph` checker, on seeded histories of
//! simulated stores (correct ones, and ones that serve stale reads, reorder appends or
//! diverge): every claim made online — on the whole history and on a prefix cut at a
//! seeded point — is a finding of the offline check of that same history, of the same kind
//! at the same op, or (append keys) the key's divergence. Register stale reads are exact:
//! online and offline name the same reads.

use crate::sim::{Lists, Register, Sim, Store, simulate};
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use schism_checker::online::{Claim, Incremental, Limits};
use schism_checker::{
    AnomalyKind, CheckerName, CheckerSet, Options, RegisterOptions, Workload, check,
};
use schism_history::{F, History, OpType, Value};
use std::collections::{BTreeMap, BTreeSet};

/// A list store that sometimes slips an append in before the last element (so reads can
/// diverge and version orders disagree with real time).
#[derive(Default)]
struct Reordering(Lists, BTreeMap<u64, Vec<i64>>);

impl Store for Reordering {
    fn next_op(&mut self, rng: &mut dyn Rng, key: u64) -> (F, Value) {
        self.0.next_op(rng, key)
    }

    fn apply(&mut self, f: &F, key: u64, v: &Value) -> Option<Value> {
        let l = self.1.entry(key).or_default();
        match (f, v) {
            (F::Append, Value::Int(x)) => {
                if l.len() >= 2 && x % 7 == 0 {
                    let at = l.len() - 1;
                    l.insert(at, *x);
                } else {
                    l.push(*x);
                }
                Some(v.clone())
            }
            _ => Some(Value::list(l.clone())),
        }
    }
}

fn sim(rng: &mut ChaCha8Rng) -> Sim {
    Sim {
        procs: rng.random_range(2..=8),
        ops: rng.random_range(50..=600),
        keys: rng.random_range(1..=3),
        p_fail: 0.05,
        p_info: rng.random_range(0.0..0.1),
        retire_after: rng.random_range(0..=1) * 40,
    }
}

/// Makes about one ok read in `every` stale: an append read loses 1..=3 trailing
/// elements, a register read returns an earlier value of its key (or nil).
fn make_stale(rng: &mut ChaCha8Rng, h: &mut History, every: u32) {
    let mut written: BTreeMap<u64, Vec<i64>> = BTreeMap::new();
    for op in h.ops.iter_mut() {
        let key = op.key().unwrap_or(0);
        match (op.kind, &op.f) {
            (OpType::Invoke, F::Write) => {
                if let Value::Int(v) = op.value {
                    written.entry(key).or_default().push(v);
                }
            }
            (OpType::Ok, F::Read) if rng.random_range(0..every) == 0 => match &mut op.value {
                Value::List(l) if !l.is_empty() => {
                    let n = rng.random_range(1..=3usize.min(l.len()));
                    let len = l.len();
                    std::sync::Arc::make_mut(l).truncate(len - n);
                }
                Value::Int(_) => {
                    let w = written.get(&key).map(Vec::as_slice).unwrap_or(&[]);
                    op.value = if w.len() < 2 || rng.random_bool(0.2) {
                        Value::Null
                    } else {
                        Value::Int(w[rng.random_range(0..w.len() - 1)])
                    };
                }
                _ => {}
            },
            _ => {}
        }
    }
}

/// The offline graph checker's findings: (kind, first op) and the keys that diverged.
fn offline(h: &History, w: Workload) -> (BTreeSet<(AnomalyKind, u64)>, BTreeSet<u64>) {
    let opts = Options {
        workload: Some(w),
        checkers: CheckerSet::Only(vec![CheckerName::Graph]),
        max_anomalies_per_kind: usize::MAX,
        ..Options::default()
    };
    let report = check(h, &opts).unwrap();
    let all: Vec<_> = report.results.iter().flat_map(|r| &r.anomalies).collect();
    (
        all.iter().map(|a| (a.kind, a.ops[0])).collect(),
        all.iter()
            .filter(|a| a.kind == AnomalyKind::Divergence)
            .filter_map(|a| a.key)
            .collect(),
    )
}

fn online(h: &History, w: Workload, upto: usize) -> Vec<Claim> {
    let mut c = Incremental::new(Some(w), RegisterOptions::default(), Limits::default());
    for op in &h.ops[..upto] {
        c.push(op);
    }
    assert_eq!(c.stopped(), None);
    c.take_claims()
}

fn assert_confirmed(h: &History, w: Workload, claims: &[Claim], what: &str) {
    let (found, diverged) = offline(h, w);
    for c in claims {
        assert!(
            found.contains(&(c.kind, c.op())) || diverged.contains(&c.key),
            "{what}: online {} at op {} ({:?}) is not an offline finding: {}",
            c.kind,
            c.op(),
            c.ops,
            c.explanation
        );
    }
}

#[test]
fn online_claims_are_confirmed_offline_on_many_seeded_histories() {
    let mut claimed: BTreeMap<AnomalyKind, usize> = BTreeMap::new();
    let mut histories = 0;
    for seed in 0..60u64 {
        for (w, n) in [
            (Workload::Append, 0),
            (Workload::Append, 1),
            (Workload::Register, 2),
        ] {
            let mut rng = ChaCha8Rng::seed_from_u64(seed * 3 + n);
            let s = sim(&mut rng);
            let mut h = match n {
                0 => simulate(&mut rng, &s, &mut Lists::default()),
                1 => simulate(&mut rng, &s, &mut Reordering::default()),
                _ => simulate(&mut rng, &s, &mut Register::default()),
            };
            if seed % 4 != 0 {
                make_stale(&mut rng, &mut h, 12);
            }
            histories += 1;
            let what = format!("seed {seed} {w:?} store {n} {s:?}");
            let claims = online(&h, w, h.ops.len());
            assert_confirmed(&h, w, &claims, &what);
            for c in &claims {
                *claimed.entry(c.kind).or_default() += 1;
            }
            if seed % 4 == 0 && n != 1 {
                assert!(claims.is_empty(), "{what}: a correct store: {claims:#?}");
            }
            if w == Workload::Register {
                // Register stale reads are decided at the read: exactly the offline ones.
                let (found, _) = offline(&h, w);
                let off: BTreeSet<u64> = found
                    .iter()
                    .filter(|(k, _)| *k == AnomalyKind::StaleRead)
                    .map(|&(_, op)| op)
                    .collect();
                let on: BTreeSet<u64> = claims
                    .iter()
                    .filter(|c| c.kind == AnomalyKind::StaleRead)
                    .map(Claim::op)
                    .collect();
                assert_eq!(on, off, "{what}");
            }
            // A run stopped early: the prefix's claims hold for the prefix's own check.
            let cut = rng.random_range(1..=h.ops.len());
            let prefix = History::new(h.ops[..cut].to_vec());
            let claims = online(&prefix, w, cut);
            assert_confirmed(&prefix, w, &claims, &format!("{what}, cut at {cut}"));
        }
    }
    eprintln!("claimed online over {histories} histories: {claimed:?}");
    assert!(histories >= 150);
    for kind in [
        AnomalyKind::StaleRead,
        AnomalyKind::MonotonicRead,
        AnomalyKind::ReadYourWrites,
    ] {
        assert!(
            claimed.get(&kind).is_some_and(|&n| n > 0),
            "no {kind} claimed online: {claimed:?}"
        );
    }
}

#[test]
fn memory_stays_bounded_as_keys_retire() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let s = Sim {
        procs: 5,
        ops: 40_000,
        keys: 2,
        p_fail: 0.0,
        p_info: 0.0,
        retire_after: 50,
    };
    let h = simulate(&mut rng, &s, &mut Lists::default());
    let limits = Limits {
        retire_idle_ops: 2_000,
        max_live_keys: 8,
        ..Limits::default()
    };
    let mut c = Incremental::new(Some(Workload::Append), RegisterOptions::default(), limits);
    let mut most = 0;
    for op in &h.ops {
        c.push(op);
        most = most.max(c.live_keys());
    }
    let keys: BTreeSet<u64> = h.ops.iter().filter_map(|o| o.key()).collect();
    assert!(keys.len() > 300, "{}", keys.len());
    assert!(most <= 60, "{most} live keys of {}", keys.len());
    assert!(c.take_claims().is_empty());
}

#[test]
fn the_workload_is_inferred_and_a_repeated_register_value_stops_claims() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let s = Sim {
        procs: 3,
        ops: 200,
        keys: 1,
        p_fail: 0.0,
        p_info: 0.0,
        retire_after: 0,
    };
    let mut h = simulate(&mut rng, &s, &mut Register::default());
    make_stale(&mut rng, &mut h, 3);
    let mut c = Incremental::new(None, RegisterOptions::default(), Limits::default());
    for op in &h.ops {
        c.push(op);
    }
    assert!(!c.take_claims().is_empty());
    // The same value written twice: the graph checker does not apply; nothing is claimed.
    let mut c = Incremental::new(None, RegisterOptions::default(), Limits::default());
    let mut dup = h.ops.clone();
    let writes: Vec<usize> = (0..dup.len())
        .filter(|&i| dup[i].kind == OpType::Invoke && dup[i].f == F::Write)
        .collect();
    let v = dup[writes[0]].value.clone();
    dup[writes[1]].value = v;
    for op in &dup {
        c.push(op);
    }
    assert!(c.stopped().unwrap().contains("twice"), "{:?}", c.stopped());
}

/// A read that misses an acknowledged append nobody has read yet is claimed stale when a
/// later read first returns that append — at that later op, not before, not at the end.
#[test]
fn a_stale_read_is_claimed_when_a_later_read_places_the_write_it_missed() {
    use schism_history::{Op, Process};
    let ops = [
        (1, OpType::Invoke, F::Append, Value::Int(1)),
        (1, OpType::Ok, F::Append, Value::Int(1)),
        (2, OpType::Invoke, F::Read, Value::Null),
        (2, OpType::Ok, F::Read, Value::list(vec![])),
        (3, OpType::Invoke, F::Read, Value::Null),
        (3, OpType::Ok, F::Read, Value::list(vec![1])),
    ];
    let h = History::new(
        ops.into_iter()
            .enumerate()
            .map(|(i, (p, kind, f, v))| {
                Op::new(
                    i as u64,
                    i as u64 * 1000,
                    Process::client(p),
                    kind,
                    f,
                    Some(0),
                    v,
                )
            })
            .collect(),
    );
    let mut c = Incremental::new(None, RegisterOptions::default(), Limits::default());
    let added: Vec<usize> = h.ops.iter().map(|op| c.push(op)).collect();
    assert_eq!(added, [0, 0, 0, 0, 0, 1]);
    let claims = c.take_claims();
    assert_eq!(claims[0].kind, AnomalyKind::StaleRead);
    assert_eq!(claims[0].ops, [3, 1]);
    assert_confirmed(&h, Workload::Append, &claims, "hand-made");
    let (found, _) = offline(&h, Workload::Append);
    assert!(found.contains(&(AnomalyKind::StaleRead, 3)));
}
