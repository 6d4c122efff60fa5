//! Hand-written register histories: the classic linearizability examples.

use crate::common::*;
use schism_checker::{Algorithm, AnomalyKind, Options, RegisterOptions, Validity};
use schism_history::{F, Value};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// The exact search, even where zones would apply.
fn wgl() -> Options {
    Options {
        algorithm: Algorithm::Wgl,
        ..Options::default()
    }
}

#[test]
fn zones_names_the_stale_read_and_the_newer_write() {
    let mut b = B::new();
    let ack1 = b.write(1, 3, 1);
    let ack2 = b.write(1, 3, 2);
    let stale = b.read(2, 3, Some(1));
    let r = check(&b.history());
    assert_eq!(r.figures["algorithm"], "zones");
    let a = assert_one(&r, AnomalyKind::NonLinearizable, &[stale, ack2, ack1]);
    assert!(
        a.explanation.starts_with(
            "read of key 3 by process 2 (index 5) at t=0.004s returned 1 cannot be placed: the 2 operations of key 3 that completed before it linearize"
        ),
        "{}",
        a.explanation
    );
    assert!(
        a.explanation
            .contains("it is stale: write of 2 to key 3 by process 1 (index 3)"),
        "{}",
        a.explanation
    );
    assert_eq!(r.figures["counterexample"]["op"], stale);
    assert_eq!(r.figures["counterexample"]["prefix_tail"][1], ack2);
}

#[test]
fn read_of_an_old_value_after_a_later_write_completed() {
    let mut b = B::new();
    b.write(1, 3, 1);
    let ack2 = b.write(1, 3, 2);
    let stale = b.read(2, 3, Some(1));
    let r = check_with(&b.history(), &wgl());
    assert_eq!(r.figures["algorithm"], "wgl");
    let a = assert_one(&r, AnomalyKind::NonLinearizable, &[stale, ack2]);
    assert_eq!(a.key, Some(3));
    assert!(
        a.explanation.starts_with(
            "read of key 3 by process 2 (index 5) at t=0.004s returned 1, but no order"
        ),
        "{}",
        a.explanation
    );
    assert!(
        a.explanation.contains("leaves the register at 2"),
        "{}",
        a.explanation
    );
    assert!(
        a.explanation.contains("2 operations linearize before it"),
        "{}",
        a.explanation
    );
    assert_eq!(r.figures["violations"][0]["linearized_ops"], 2);

    // Twin: the read begins before the second write completes.
    let mut b = B::new();
    b.write(1, 3, 1);
    b.inv(2, F::Read, 3, Value::Null);
    b.write(1, 3, 2);
    b.ok(2, F::Read, 3, Value::Int(1));
    assert_valid(&check(&b.history()));
}

#[test]
fn concurrent_write_and_read_are_valid_either_way() {
    for seen in [None, Some(1)] {
        let mut b = B::new();
        b.inv(1, F::Write, 0, Value::Int(1));
        b.inv(2, F::Read, 0, Value::Null);
        b.ok(2, F::Read, 0, seen.map_or(Value::Null, Value::Int));
        b.ok(1, F::Write, 0, Value::Int(1));
        assert_valid(&check(&b.history()));
    }
}

#[test]
fn nil_read_after_a_completed_write_is_invalid() {
    let mut b = B::new();
    b.write(1, 0, 1);
    let r = b.read(2, 0, None);
    assert_one(&check(&b.history()), AnomalyKind::NonLinearizable, &[r, 1]);
}

#[test]
fn indeterminate_write_may_take_effect_later() {
    let mut b = B::new();
    b.inv(1, F::Write, 0, Value::Int(1));
    b.info(1, F::Write, 0, Value::Int(1));
    b.read(2, 0, None);
    b.read(2, 0, Some(1));
    b.read(3, 0, Some(1));
    assert_valid(&check(&b.history()));
}

#[test]
fn indeterminate_write_read_before_its_invoke_is_invalid() {
    let mut b = B::new();
    let r = b.read(2, 0, Some(1));
    b.inv(1, F::Write, 0, Value::Int(1));
    b.info(1, F::Write, 0, Value::Int(1));
    assert_one(&check(&b.history()), AnomalyKind::NonLinearizable, &[r]);

    // Twin: the write was invoked before the read completed.
    let mut b = B::new();
    b.inv(2, F::Read, 0, Value::Null);
    b.inv(1, F::Write, 0, Value::Int(1));
    b.ok(2, F::Read, 0, Value::Int(1));
    b.info(1, F::Write, 0, Value::Int(1));
    assert_valid(&check(&b.history()));
}

#[test]
fn write_that_never_completed_counts_as_indeterminate() {
    let mut b = B::new();
    b.inv(1, F::Write, 0, Value::Int(1));
    b.read(2, 0, Some(1));
    b.read(2, 0, Some(1));
    assert_valid(&check(&b.history()));
}

#[test]
fn read_of_a_failed_write_is_invalid() {
    let mut b = B::new();
    b.inv(1, F::Write, 0, Value::Int(1));
    let failed = b.fail(1, F::Write, 0, Value::Int(1));
    let r = b.read(2, 0, Some(1));
    let a = assert_one(&check(&b.history()), AnomalyKind::AbortedRead, &[r, failed]);
    assert!(
        a.explanation.contains("failed at t=0.001s"),
        "{}",
        a.explanation
    );

    let mut b = B::new();
    b.inv(1, F::Write, 0, Value::Int(1));
    b.info(1, F::Write, 0, Value::Int(1));
    b.read(2, 0, Some(1));
    assert_valid(&check(&b.history()));
}

#[test]
fn read_of_a_never_written_value_is_a_phantom() {
    let mut b = B::new();
    b.write(1, 0, 1);
    let r = b.read(2, 0, Some(42));
    let a = assert_one(&check(&b.history()), AnomalyKind::PhantomRead, &[r]);
    assert!(
        a.explanation
            .contains("returned 42, which no write or cas of key 0 ever wrote"),
        "{}",
        a.explanation
    );
}

#[test]
fn cas_success_and_failure() {
    // write 1; cas 1→2 ok; read 2: valid.
    let mut b = B::new();
    b.write(1, 0, 1);
    b.inv(1, F::Cas, 0, cas(1, 2));
    b.ok(1, F::Cas, 0, cas(1, 2));
    b.read(2, 0, Some(2));
    assert_valid(&check(&b.history()));

    // write 1; cas 1→2 ok; read 1: invalid (an ok cas must have taken effect).
    let mut b = B::new();
    b.write(1, 0, 1);
    b.inv(1, F::Cas, 0, cas(1, 2));
    b.ok(1, F::Cas, 0, cas(1, 2));
    let r = b.read(2, 0, Some(1));
    assert_eq!(check(&b.history()).anomalies[0].ops[0], r);

    // write 3; write 1; cas 3→4 fails; read 1: valid (failed ops never happened).
    let mut b = B::new();
    b.write(1, 0, 3);
    b.write(1, 0, 1);
    b.inv(2, F::Cas, 0, cas(3, 4));
    b.fail(2, F::Cas, 0, cas(3, 4));
    b.read(2, 0, Some(1));
    assert_valid(&check(&b.history()));

    // An ok cas whose expected value the register cannot hold when it runs.
    let mut b = B::new();
    b.write(1, 0, 1);
    b.write(1, 0, 2);
    b.inv(2, F::Cas, 0, cas(1, 5));
    let c = b.ok(2, F::Cas, 0, cas(1, 5));
    let r = check(&b.history());
    let a = assert_one(&r, AnomalyKind::NonLinearizable, &[c, 3]);
    assert!(
        a.explanation
            .starts_with("cas of key 0 from 1 to 5 by process 2"),
        "{}",
        a.explanation
    );

    // Twin: the cas began before the write of 2 completed, so it may come first.
    let mut b = B::new();
    b.write(1, 0, 1);
    b.inv(2, F::Cas, 0, cas(1, 5));
    b.write(1, 0, 2);
    b.ok(2, F::Cas, 0, cas(1, 5));
    assert_valid(&check(&b.history()));
}

#[test]
fn indeterminate_cas_may_or_may_not_apply() {
    for seen in [1, 2] {
        let mut b = B::new();
        b.write(1, 0, 1);
        b.inv(2, F::Cas, 0, cas(1, 2));
        b.info(2, F::Cas, 0, cas(1, 2));
        b.read(3, 0, Some(seen));
        b.read(3, 0, Some(seen));
        assert_valid(&check(&b.history()));
    }
    // After a later write of 3 the cas can no longer apply (it expects 1), so 2 can
    // only be read if the cas came before the write, which the write then overwrote.
    for (seen, valid) in [(3, true), (2, false)] {
        let mut b = B::new();
        b.write(1, 0, 1);
        b.inv(2, F::Cas, 0, cas(1, 2));
        b.info(2, F::Cas, 0, cas(1, 2));
        b.write(1, 0, 3);
        b.read(3, 0, Some(seen));
        let r = check(&b.history());
        assert_eq!(
            r.validity == Validity::Valid,
            valid,
            "saw {seen}: {:#?}",
            r.anomalies
        );
    }
}

#[test]
fn indeterminate_write_needed_by_an_indeterminate_cas_is_kept() {
    // Reading 2 requires the cas to apply, which requires the write of 1 to apply first.
    let mut b = B::new();
    b.inv(1, F::Write, 0, Value::Int(1));
    b.info(1, F::Write, 0, Value::Int(1));
    b.inv(2, F::Cas, 0, cas(1, 2));
    b.info(2, F::Cas, 0, cas(1, 2));
    b.read(3, 0, Some(2));
    assert_valid(&check(&b.history()));

    // Twin: the read of 2 completes before the write of 1 is even invoked.
    let mut b = B::new();
    b.inv(2, F::Cas, 0, cas(1, 2));
    b.info(2, F::Cas, 0, cas(1, 2));
    let r = b.read(3, 0, Some(2));
    b.inv(1, F::Write, 0, Value::Int(1));
    b.info(1, F::Write, 0, Value::Int(1));
    assert_one(&check(&b.history()), AnomalyKind::NonLinearizable, &[r]);
}

#[test]
fn keys_are_independent() {
    let mut b = B::new();
    b.write(1, 0, 1);
    b.write(1, 1, 2);
    b.read(2, 0, Some(1));
    b.read(2, 1, Some(2));
    let r = check(&b.history());
    assert_valid(&r);
    assert_eq!(r.figures["keys"], 2);
    assert_eq!(r.figures["keys_checked"], 2);
}

#[test]
fn initial_value_and_nil_wildcard_are_model_options() {
    let mut b = B::new();
    b.read(2, 0, Some(5));
    let h = b.history();
    assert_eq!(check(&h).validity, Validity::Invalid);
    let opts = Options {
        register: RegisterOptions {
            initial: Some(5),
            ..Default::default()
        },
        ..Default::default()
    };
    assert_valid(&check_with(&h, &opts));

    let mut b = B::new();
    b.write(1, 0, 1);
    b.read(2, 0, None);
    let h = b.history();
    assert_eq!(check(&h).validity, Validity::Invalid);
    let wildcard = Options {
        register: RegisterOptions {
            nil_read_is_wildcard: true,
            ..Default::default()
        },
        ..Default::default()
    };
    assert_valid(&check_with(&h, &wildcard));
    // With an initial value and no wildcard, nil can never be read.
    let opts = Options {
        workload: Some(schism_checker::Workload::Register),
        register: RegisterOptions {
            initial: Some(0),
            ..Default::default()
        },
        ..Default::default()
    };
    let mut b = B::new();
    b.read(2, 0, None);
    assert_eq!(
        kinds(&check_with(&b.history(), &opts)),
        vec![AnomalyKind::PhantomRead]
    );
}

/// Many concurrent writes and reads: a search with a lot of room.
fn wide_history() -> schism_history::History {
    let mut b = B::new();
    for p in 0..12 {
        b.inv(p, F::Write, 0, Value::Int(p as i64));
    }
    for p in 0..12 {
        b.ok(p, F::Write, 0, Value::Int(p as i64));
    }
    for p in 0..12 {
        b.inv(p, F::Write, 0, Value::Int(100 + p as i64));
    }
    for p in 0..12 {
        b.ok(p, F::Write, 0, Value::Int(100 + p as i64));
    }
    b.read(20, 0, Some(0));
    b.history()
}

#[test]
fn spent_budget_is_unknown_never_valid() {
    let h = wide_history();
    let opts = Options {
        max_states: 10,
        ..wgl()
    };
    let r = check_with(&h, &opts);
    assert_eq!(r.validity, Validity::Unknown);
    assert!(r.anomalies.is_empty());
    let why = r.figures["unknown_reason"].as_str().unwrap();
    assert!(
        why.contains("budget of 10 states ran out on key 0"),
        "{why}"
    );
    assert_eq!(r.figures["unknown_key"], 0);

    // With room, the same history is found invalid (the final read sees an old value).
    assert_eq!(check(&h).validity, Validity::Invalid);
}

#[test]
fn spent_budget_on_a_valid_history_is_still_unknown() {
    let mut b = B::new();
    for p in 0..8 {
        b.inv(p, F::Write, 0, Value::Int(p as i64));
    }
    for p in 0..8 {
        b.ok(p, F::Write, 0, Value::Int(p as i64));
    }
    let opts = Options {
        max_states: 3,
        ..wgl()
    };
    assert_eq!(check_with(&b.history(), &opts).validity, Validity::Unknown);
    assert_valid(&check(&b.history()));
}

#[test]
fn abort_flag_is_unknown() {
    let opts = Options {
        abort: Some(Arc::new(AtomicBool::new(true))),
        ..wgl()
    };
    let r = check_with(&wide_history(), &opts);
    assert_eq!(r.validity, Validity::Unknown);
    assert!(
        r.figures["unknown_reason"]
            .as_str()
            .unwrap()
            .contains("aborted")
    );
}
