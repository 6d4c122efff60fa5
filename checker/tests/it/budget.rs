//! Budgets on cas histories: an exact search that cannot finish within its state budget,
//! or whose abort flag is raised, ends `unknown` — never `valid` — having explored no more
//! states than allowed, and says why.

use schism_checker::{Options, Validity};
use schism_history::{F, History, Op, OpType, Process, Value};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// Waves of 16 concurrent writes and a cas each, then a read of the very first value:
/// refuting it means trying every order of every wave. (Also used by the benchmarks.)
pub fn cas_waves(waves: i64) -> History {
    let mut ops = Vec::new();
    let mut push = |p: u64, kind, f: F, v: Value| {
        let i = ops.len() as u64;
        ops.push(Op::new(
            i,
            i * 1000,
            Process::Client(p),
            kind,
            f,
            Some(0),
            v,
        ));
    };
    for wave in 0..waves {
        let cas = Value::List(vec![wave * 100 + 3, wave * 100 + 99]);
        push(16, OpType::Invoke, F::Cas, cas.clone());
        for p in 0..16u64 {
            push(
                p,
                OpType::Invoke,
                F::Write,
                Value::Int(wave * 100 + p as i64),
            );
        }
        for p in 0..16u64 {
            push(p, OpType::Ok, F::Write, Value::Int(wave * 100 + p as i64));
        }
        push(16, OpType::Ok, F::Cas, cas);
    }
    push(99, OpType::Invoke, F::Read, Value::Null);
    push(99, OpType::Ok, F::Read, Value::Int(0));
    History::new(ops)
}

#[test]
fn a_cas_search_over_budget_is_unknown_within_the_budget() {
    let h = cas_waves(40);
    for max_states in [1_000u64, 50_000] {
        let opts = Options {
            max_states,
            ..Options::default()
        };
        let r = schism_checker::check(&h, &opts).unwrap();
        let res = &r.results[0];
        assert_eq!(r.validity, Validity::Unknown, "{:?}", res.figures);
        assert_eq!(res.figures["algorithm"], "wgl");
        assert!(res.figures["explored_states"].as_u64().unwrap() <= max_states);
        let why = res.figures["unknown_reason"].as_str().unwrap();
        assert!(
            why.contains(&format!("budget of {max_states} states ran out on key 0")),
            "{why}"
        );
    }
}

#[test]
fn a_raised_abort_flag_ends_a_cas_search_unknown() {
    let opts = Options {
        abort: Some(Arc::new(AtomicBool::new(true))),
        ..Options::default()
    };
    let r = schism_checker::check(&cas_waves(40), &opts).unwrap();
    assert_eq!(r.validity, Validity::Unknown);
    assert!(
        r.results[0].figures["unknown_reason"]
            .as_str()
            .unwrap()
            .contains("aborted")
    );
}

#[test]
fn the_same_shape_small_enough_is_decided() {
    // Two waves fit the default budget: the read of the first value is refuted (one
    // wave would be valid: its write of 0 may take effect last).
    let r = schism_checker::check(&cas_waves(2), &Options::default()).unwrap();
    assert_eq!(r.validity, Validity::Invalid);
}
