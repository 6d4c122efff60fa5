//! Seeded random register histories: simulated correct stores are always valid, their
//! mutations always invalid, and the search agrees with brute force on tiny histories.

use crate::common::check_with;
use crate::sim::{Register, Sim, brute_linearizable, simulate, tiny_random};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use schism_checker::{AnomalyKind, Options, RegisterOptions, Validity};
use schism_history::{F, History, OpType, Outcome, Value};

fn random_sim(rng: &mut ChaCha8Rng) -> Sim {
    Sim {
        procs: rng.random_range(1..=10),
        ops: rng.random_range(10..=400),
        keys: rng.random_range(1..=3),
        p_fail: 0.05,
        p_info: rng.random_range(0.0..0.15),
        retire_after: 0,
    }
}

#[test]
fn simulated_correct_registers_are_valid() {
    for seed in 0..150 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let sim = random_sim(&mut rng);
        let h = simulate(&mut rng, &sim, &mut Register::default());
        let r = check_with(&h, &Options::default());
        assert_eq!(
            r.validity,
            Validity::Valid,
            "seed {seed} {sim:?}: {:#?}",
            r.anomalies
        );
    }
}

/// Positions of ok read completions.
fn ok_reads(h: &History) -> Vec<usize> {
    h.operations()
        .unwrap()
        .into_iter()
        .filter(|o| o.f == F::Read && o.outcome == Outcome::Ok)
        .filter_map(|o| o.complete())
        .collect()
}

#[test]
fn a_read_of_a_never_written_value_is_always_found() {
    let mut tried = 0;
    for seed in 0..100 {
        let mut rng = ChaCha8Rng::seed_from_u64(1000 + seed);
        let sim = random_sim(&mut rng);
        let mut h = simulate(&mut rng, &sim, &mut Register::default());
        let reads = ok_reads(&h);
        if reads.is_empty() {
            continue;
        }
        tried += 1;
        let pos = reads[rng.random_range(0..reads.len())];
        h.ops[pos].value = Value::Int(1_000_000_007);
        let r = check_with(&h, &Options::default());
        assert_eq!(r.validity, Validity::Invalid, "seed {seed}");
        assert!(
            r.anomalies
                .iter()
                .any(|a| a.kind == AnomalyKind::PhantomRead && a.ops[0] == h.ops[pos].index()),
            "seed {seed}: {:#?}",
            r.anomalies
        );
    }
    assert!(tried > 80);
}

/// Makes one ok read return the value of a write W1 although a later write W2 (which began
/// after W1 completed) completed before the read began: never linearizable with unique
/// values, and only the search can tell (the value was written).
fn inject_stale_read(rng: &mut ChaCha8Rng, h: &mut History) -> Option<usize> {
    let ops = h.operations().unwrap();
    let writes: Vec<_> = ops
        .iter()
        .filter(|o| matches!(o.f, F::Write | F::Cas) && o.outcome == Outcome::Ok)
        .collect();
    let mut candidates = Vec::new();
    for r in ops
        .iter()
        .filter(|o| o.f == F::Read && o.outcome == Outcome::Ok)
    {
        for w2 in writes
            .iter()
            .filter(|w| w.key() == r.key() && w.complete().unwrap() < r.invoke())
        {
            for w1 in writes
                .iter()
                .filter(|w| w.key() == r.key() && w.complete().unwrap() < w2.invoke())
            {
                candidates.push((r.complete().unwrap(), w1.value.clone()));
            }
        }
        if candidates.len() > 200 {
            break;
        }
    }
    if candidates.is_empty() {
        return None;
    }
    let (pos, v) = candidates.swap_remove(rng.random_range(0..candidates.len()));
    h.ops[pos].value = match v {
        Value::List(l) => Value::Int(l[1]),
        v => v,
    };
    Some(pos)
}

#[test]
fn an_overwritten_value_read_later_is_always_found() {
    let mut tried = 0;
    for seed in 0..100 {
        let mut rng = ChaCha8Rng::seed_from_u64(2000 + seed);
        let sim = random_sim(&mut rng);
        let mut h = simulate(&mut rng, &sim, &mut Register::default());
        let Some(pos) = inject_stale_read(&mut rng, &mut h) else {
            continue;
        };
        tried += 1;
        let r = check_with(&h, &Options::default());
        assert_eq!(r.validity, Validity::Invalid, "seed {seed}: read at {pos}");
        assert!(
            r.anomalies
                .iter()
                .all(|a| a.kind == AnomalyKind::NonLinearizable),
            "{:#?}",
            r.anomalies
        );
    }
    assert!(tried > 50, "only {tried} histories had a candidate");
}

#[test]
fn search_agrees_with_brute_force_on_tiny_histories() {
    cross_check(0, false);
}

#[test]
fn search_agrees_with_brute_force_on_tiny_unique_value_histories() {
    cross_check(100_000, true);
}

fn cross_check(seed0: u64, unique: bool) {
    let (mut valid, mut invalid) = (0, 0);
    for seed in seed0..seed0 + 4000 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let h = tiny_random(&mut rng, 6, unique);
        let model = RegisterOptions {
            initial: if rng.random_bool(0.3) {
                Some(rng.random_range(1..=3))
            } else {
                None
            },
            nil_read_is_wildcard: rng.random_bool(0.3),
        };
        let expected = brute_linearizable(&h, model);
        let opts = Options {
            register: model,
            workload: Some(schism_checker::Workload::Register),
            ..Default::default()
        };
        let r = check_with(&h, &opts);
        let got = r.validity == Validity::Valid;
        assert_eq!(
            got,
            expected,
            "seed {seed} {model:?}: search says {:?}, brute force says {expected}\n{}\n{:#?}",
            r.validity,
            h.ops
                .iter()
                .map(|o| format!("{} {} {:?} {}", o.index(), o.process, o.kind, o.value))
                .collect::<Vec<_>>()
                .join("\n"),
            r.anomalies
        );
        assert_ne!(r.validity, Validity::Unknown);
        if expected { valid += 1 } else { invalid += 1 }
    }
    assert!(
        valid > 400 && invalid > 400,
        "valid {valid}, invalid {invalid}"
    );
}

#[test]
fn the_search_itself_agrees_with_brute_force_on_reads_of_written_values() {
    // Histories where every read returns a value some non-failed op wrote, so no
    // shortcut applies and the search alone decides.
    let mut checked = 0;
    for seed in 0..6000u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(10_000 + seed);
        let unique = rng.random_bool(0.5);
        let h = tiny_random(&mut rng, 7, unique);
        let ops = h.operations().unwrap();
        let written: Vec<i64> = ops
            .iter()
            .filter(|o| o.outcome != Outcome::Fail)
            .filter_map(|o| match (&o.f, &o.value) {
                (F::Write, Value::Int(v)) => Some(*v),
                (F::Cas, Value::List(l)) => Some(l[1]),
                _ => None,
            })
            .collect();
        let shortcut = ops.iter().any(|o| {
            o.outcome == Outcome::Ok
                && match (&o.f, &o.value) {
                    (F::Read, Value::Int(v)) => !written.contains(v),
                    (F::Cas, Value::List(l)) => !written.contains(&l[0]),
                    _ => false,
                }
        });
        if shortcut || h.ops.iter().all(|o| o.kind != OpType::Ok) {
            continue;
        }
        checked += 1;
        let expected = brute_linearizable(&h, RegisterOptions::default());
        let r = check_with(
            &h,
            &Options {
                workload: Some(schism_checker::Workload::Register),
                ..Default::default()
            },
        );
        assert_eq!(
            r.validity == Validity::Valid,
            expected,
            "seed {seed}: {:#?}",
            r.anomalies
        );
        if !expected {
            assert_eq!(r.anomalies[0].kind, AnomalyKind::NonLinearizable);
        }
    }
    assert!(checked > 1000, "{checked}");
}
