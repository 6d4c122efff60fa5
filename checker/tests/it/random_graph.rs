//! Seeded random histories through the graph checker: simulated correct stores (append
//! lists and registers) give no anomaly; an injected monotonic-read or stale read is found.

use crate::sim::{Lists, Register, Sim, simulate};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use schism_checker::{AnomalyKind, CheckerName, Options, Validity, Workload};
use schism_history::{F, History, Outcome, Value};

fn sim(rng: &mut ChaCha8Rng) -> Sim {
    Sim {
        procs: rng.random_range(1..=10),
        ops: rng.random_range(10..=500),
        keys: rng.random_range(1..=4),
        p_fail: 0.05,
        p_info: rng.random_range(0.0..0.15),
        retire_after: 0,
    }
}

fn graph(h: &History, w: Workload) -> schism_checker::CheckResult {
    let opts = Options {
        workload: Some(w),
        max_anomalies_per_kind: usize::MAX,
        ..Default::default()
    };
    schism_checker::check_one(h, &opts, CheckerName::Graph).unwrap()
}

#[test]
fn correct_append_stores_have_no_cycles() {
    for seed in 0..150 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let s = sim(&mut rng);
        let h = simulate(&mut rng, &s, &mut Lists::default());
        let r = graph(&h, Workload::Append);
        assert_eq!(
            r.validity,
            Validity::Valid,
            "seed {seed} {s:?}: {:#?}",
            r.anomalies
        );
        let st =
            schism_checker::check_one(&h, &Options::default(), CheckerName::Staleness).unwrap();
        assert_eq!(st.figures["stale_reads"], 0, "seed {seed}");
    }
}

#[test]
fn correct_register_stores_have_no_cycles() {
    for seed in 0..150 {
        let mut rng = ChaCha8Rng::seed_from_u64(900 + seed);
        let s = sim(&mut rng);
        let h = simulate(&mut rng, &s, &mut Register::default());
        let r = graph(&h, Workload::Register);
        assert_eq!(
            r.validity,
            Validity::Valid,
            "seed {seed} {s:?}: {:#?}",
            r.anomalies
        );
    }
}

/// Makes a later ok read of some process return a shorter prefix than an earlier ok read
/// of the same process and key had returned. Returns false if no such pair exists.
fn inject_monotonic_read(rng: &mut ChaCha8Rng, h: &mut History) -> bool {
    let ops = h.operations().unwrap();
    let reads: Vec<_> = ops
        .iter()
        .filter(|o| o.f == F::Read && o.outcome == Outcome::Ok)
        .collect();
    let mut pairs = Vec::new();
    for (i, a) in reads.iter().enumerate() {
        let Value::List(la) = &a.value else { continue };
        if la.is_empty() {
            continue;
        }
        if let Some(b) = reads[i + 1..]
            .iter()
            .find(|b| b.process == a.process && b.key() == a.key())
        {
            pairs.push((la.len(), b.complete().unwrap()));
        }
    }
    if pairs.is_empty() {
        return false;
    }
    let (len, at) = pairs[rng.random_range(0..pairs.len())];
    let Value::List(lb) = &h.ops[at].value else {
        unreachable!()
    };
    h.ops[at].value = Value::list(lb[..len - 1].to_vec());
    true
}

#[test]
fn an_injected_monotonic_read_is_always_found() {
    let mut tried = 0;
    for seed in 0..150 {
        let mut rng = ChaCha8Rng::seed_from_u64(7000 + seed);
        let s = sim(&mut rng);
        let mut h = simulate(&mut rng, &s, &mut Lists::default());
        if !inject_monotonic_read(&mut rng, &mut h) {
            continue;
        }
        tried += 1;
        let r = graph(&h, Workload::Append);
        assert_eq!(r.validity, Validity::Invalid, "seed {seed}");
        let k: Vec<_> = r.anomalies.iter().map(|a| a.kind).collect();
        assert!(
            k.iter().any(|k| matches!(
                k,
                AnomalyKind::MonotonicRead | AnomalyKind::StaleRead | AnomalyKind::ReadYourWrites
            )),
            "seed {seed}: {:#?}",
            r.anomalies
        );
        // Every cycle names its ops, and every explanation is one line.
        for a in &r.anomalies {
            assert!(!a.explanation.contains('\n'));
            if !a.cycle.is_empty() {
                assert_eq!(a.ops.len(), a.cycle.len());
            }
        }
    }
    assert!(tried > 50, "{tried}");
}

#[test]
fn an_injected_stale_read_is_found_by_the_graph_and_measured() {
    let mut tried = 0;
    for seed in 0..150 {
        let mut rng = ChaCha8Rng::seed_from_u64(8000 + seed);
        let s = sim(&mut rng);
        let mut h = simulate(&mut rng, &s, &mut Lists::default());
        // The last ok read of some key becomes empty although an append to it was
        // acknowledged before the read began.
        let ops = h.operations().unwrap();
        let Some(r) = ops.iter().rev().find(|r| {
            r.f == F::Read
                && r.outcome == Outcome::Ok
                && ops.iter().any(|a| {
                    a.f == F::Append
                        && a.key() == r.key()
                        && a.outcome == Outcome::Ok
                        && a.complete().unwrap() < r.invoke()
                })
        }) else {
            continue;
        };
        tried += 1;
        h.ops[r.complete().unwrap()].value = Value::list(vec![]);
        let g = graph(&h, Workload::Append);
        assert_eq!(g.validity, Validity::Invalid, "seed {seed}");
        let st =
            schism_checker::check_one(&h, &Options::default(), CheckerName::Staleness).unwrap();
        // Unless the missed append was never observed at all (then it has no place in the
        // version order and the read is named stale without a measurable lag), the read is
        // measured as behind.
        if g.anomalies.iter().any(|a| {
            a.kind == AnomalyKind::StaleRead && !a.explanation.contains("no read ever saw")
        }) {
            assert!(
                st.figures["stale_reads"].as_u64().unwrap() >= 1,
                "seed {seed}"
            );
        }
    }
    assert!(tried > 50, "{tried}");
}
