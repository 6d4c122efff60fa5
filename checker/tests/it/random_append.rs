//! Seeded random append histories: simulated correct stores are always valid, and an
//! injected stale read is always found.

use crate::common::check_with;
use crate::sim::{Lists, Sim, simulate};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use schism_checker::{AnomalyKind, Options, Validity};
use schism_history::{F, History, Outcome, Value};

fn random_sim(rng: &mut ChaCha8Rng) -> Sim {
    Sim {
        procs: rng.random_range(1..=10),
        ops: rng.random_range(10..=600),
        keys: rng.random_range(1..=4),
        p_fail: 0.05,
        p_info: rng.random_range(0.0..0.15),
        retire_after: 0,
    }
}

#[test]
fn simulated_correct_stores_are_valid() {
    for seed in 0..200 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let sim = random_sim(&mut rng);
        let h = simulate(&mut rng, &sim, &mut Lists::default());
        let r = check_with(&h, &Options::default());
        assert_eq!(r.checker, "append");
        assert_eq!(
            r.validity,
            Validity::Valid,
            "seed {seed} {sim:?}: {:#?}",
            r.anomalies
        );
    }
}

/// Drops the last 1..=3 elements of one ok read whose last append completed before the
/// read began (and which another read also shows, so the key's order keeps it). Returns
/// the read's completion position and the expected witness: among the dropped elements,
/// the ok append that completed earliest before the read began.
fn inject_stale_read(rng: &mut ChaCha8Rng, h: &mut History) -> Option<(usize, usize)> {
    let ops = h.operations().unwrap();
    let append_of = |key, v: i64| {
        ops.iter()
            .find(|a| a.f == F::Append && a.key() == key && a.value == Value::Int(v))
            .expect("the store only returns appended values")
    };
    let mut candidates = Vec::new();
    for r in ops
        .iter()
        .filter(|o| o.f == F::Read && o.outcome == Outcome::Ok)
    {
        let Value::List(l) = &r.value else { continue };
        let Some(&last) = l.last() else { continue };
        let a = append_of(r.key(), last);
        let shown_elsewhere = ops.iter().any(|o| {
            o.f == F::Read
                && o.key() == r.key()
                && o.invoke() != r.invoke()
                && o.outcome == Outcome::Ok
                && matches!(&o.value, Value::List(m) if m.len() >= l.len())
        });
        if shown_elsewhere && a.outcome == Outcome::Ok && a.complete().unwrap() < r.invoke() {
            candidates.push((r, l.clone()));
        }
    }
    if candidates.is_empty() {
        return None;
    }
    let (r, l) = &candidates[rng.random_range(0..candidates.len())];
    let keep = l.len() - rng.random_range(1..=3usize.min(l.len()));
    let witness = l[keep..]
        .iter()
        .map(|&v| append_of(r.key(), v))
        .filter(|a| a.outcome == Outcome::Ok && a.complete().unwrap() < r.invoke())
        .map(|a| a.complete().unwrap())
        .min()
        .expect("the last element qualifies");
    let read = r.complete().unwrap();
    h.ops[read].value = Value::list(l[..keep].to_vec());
    Some((read, witness))
}

#[test]
fn an_injected_stale_read_is_always_found() {
    let mut tried = 0;
    for seed in 0..200 {
        let mut rng = ChaCha8Rng::seed_from_u64(5000 + seed);
        let sim = random_sim(&mut rng);
        let mut h = simulate(&mut rng, &sim, &mut Lists::default());
        let Some((read, witness)) = inject_stale_read(&mut rng, &mut h) else {
            continue;
        };
        tried += 1;
        let opts = Options {
            max_anomalies_per_kind: usize::MAX,
            ..Default::default()
        };
        let r = check_with(&h, &opts);
        assert_eq!(r.validity, Validity::Invalid, "seed {seed}");
        // Exactly the injected anomaly, naming the read and the append it missed.
        assert_eq!(r.anomalies.len(), 1, "seed {seed}: {:#?}", r.anomalies);
        let a = &r.anomalies[0];
        assert_eq!(a.kind, AnomalyKind::StaleRead);
        assert_eq!(
            a.ops,
            vec![h.ops[read].index(), h.ops[witness].index()],
            "seed {seed}"
        );
    }
    assert!(tried > 100, "{tried}");
}
