//! Timings, printed rather than asserted. Run in release:
//! `cargo test --release -p schism-checker --test it perf -- --ignored --nocapture`

use crate::sim::{Lists, Register, Sim, simulate};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use schism_checker::{Options, Validity};
use schism_history::{F, Outcome, Value};
use std::time::Instant;

#[test]
#[ignore = "a timing, run in release with --nocapture"]
fn perf_register_20k_ops_10_processes_one_key() {
    for (p_info, label) in [(0.0, "no info"), (0.01, "1% info"), (0.05, "5% info")] {
        let mut rng = ChaCha8Rng::seed_from_u64(42);
        let sim = Sim {
            procs: 10,
            ops: 20_000,
            keys: 1,
            p_fail: 0.02,
            p_info,
        };
        let h = simulate(&mut rng, &sim, &mut Register::default());
        let t = Instant::now();
        let r = schism_checker::check(&h, &Options::default()).unwrap();
        let took = t.elapsed();
        let res = &r.results[0];
        println!(
            "register 20k ops, 10 procs, 1 key, {label}: {:?} in {:.1} ms, {} explored states ({} info, {} dropped, {} promoted)",
            r.validity,
            took.as_secs_f64() * 1e3,
            res.figures["explored_states"],
            res.figures["info"],
            res.figures["info_unobserved_dropped"],
            res.figures["info_observed_promoted"],
        );
        assert_eq!(r.validity, Validity::Valid);

        // The same history with one late read made stale: the failing search.
        let mut h = h;
        let ops = h.operations().unwrap();
        let late = ops
            .iter()
            .rev()
            .find(|o| o.f == F::Read && o.outcome == Outcome::Ok && o.complete.is_some())
            .unwrap();
        let first_write = ops
            .iter()
            .find(|o| o.f == F::Write && o.outcome == Outcome::Ok)
            .unwrap();
        h.ops[late.complete.unwrap()].value = first_write.value.clone();
        let t = Instant::now();
        let r = schism_checker::check(&h, &Options::default()).unwrap();
        println!(
            "  with a stale read near the end: {:?} in {:.1} ms, {} explored states",
            r.validity,
            t.elapsed().as_secs_f64() * 1e3,
            r.results[0].figures["explored_states"]
        );
    }
}

#[test]
#[ignore = "a timing, run in release with --nocapture"]
fn perf_append_200k_ops() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let sim = Sim {
        procs: 10,
        ops: 200_000,
        keys: 100,
        p_fail: 0.02,
        p_info: 0.02,
    };
    let h = simulate(&mut rng, &sim, &mut Lists::default());
    let t = Instant::now();
    let r = schism_checker::check(&h, &Options::default()).unwrap();
    println!(
        "append 200k ops, 100 keys: {:?} in {:.1} ms",
        r.validity,
        t.elapsed().as_secs_f64() * 1e3
    );
    assert_eq!(r.validity, Validity::Valid);
    let _ = Value::Null;
}

#[test]
#[ignore = "a timing, run in release with --nocapture"]
fn perf_default_budget_exhaustion() {
    // Waves of 16 concurrent writes nobody reads, then a read of an old value: the
    // search must try every order of every wave before giving up.
    use crate::common::B;
    let mut b = B::new();
    for wave in 0..40i64 {
        for p in 0..16u64 {
            b.inv(p, F::Write, 0, Value::Int(wave * 100 + p as i64));
        }
        for p in 0..16u64 {
            b.ok(p, F::Write, 0, Value::Int(wave * 100 + p as i64));
        }
    }
    b.read(99, 0, Some(0));
    for max_states in [10_000, 100_000, 1_000_000, Options::default().max_states] {
        let t = Instant::now();
        let r = schism_checker::check(
            &b.history(),
            &Options {
                max_states,
                ..Default::default()
            },
        )
        .unwrap();
        println!(
            "budget exhaustion: {:?} in {:.1} ms: {}",
            r.validity,
            t.elapsed().as_secs_f64() * 1e3,
            r.results[0].figures["unknown_reason"]
        );
    }
}
