//! staleness, set-full, counter, convergence and stats on hand-written histories: one per
//! anomaly kind with a valid twin differing by one op; explanations snapshot-tested.

use crate::common::*;
use schism_checker::{
    AnomalyKind, CheckResult, CheckerName, CheckerSet, Options, Validity, Workload,
};
use schism_history::{F, History, Value};

fn one(h: &History, name: CheckerName) -> CheckResult {
    schism_checker::check_one(h, &Options::default(), name).unwrap()
}

fn add(b: &mut B, p: u64, v: i64) -> u64 {
    b.inv(p, F::Add, 0, Value::Int(v));
    b.ok(p, F::Add, 0, Value::Int(v))
}

fn read_set(b: &mut B, p: u64, vals: &[i64]) -> u64 {
    b.read_list(p, 0, vals)
}

fn incr(b: &mut B, p: u64, d: i64) -> u64 {
    b.inv(p, F::Incr, 0, Value::Int(d));
    b.ok(p, F::Incr, 0, Value::Int(d))
}

fn read_counter(b: &mut B, p: u64, v: i64) -> u64 {
    b.read(p, 0, Some(v))
}

#[test]
fn staleness_counts_versions_and_milliseconds() {
    // Appends 1, 2, 3 acknowledged at t=1, 3, 5 ms; a read beginning at t=8 ms sees [1].
    let mut b = B::new();
    b.append(1, 7, 1);
    b.append(1, 7, 2);
    b.append(1, 7, 3);
    b.read_list(2, 7, &[1, 2, 3]);
    let stale = b.read_list(3, 7, &[1]);
    let r = one(&b.history(), CheckerName::Staleness);
    assert_eq!(r.validity, Validity::Valid, "staleness only measures");
    assert_eq!(r.figures["stale_reads"], 1);
    assert_eq!(r.figures["k_atomic"], 3);
    let worst = &r.figures["worst_by_ms"][0];
    assert_eq!(worst["op"], stale);
    assert_eq!(worst["versions_behind"], 2);
    // The first missed version (2) was acknowledged at 3 ms; the read began at 8 ms.
    assert_eq!(worst["ms_behind"], 5.0);
    assert_eq!(r.figures["delta_atomic_ms"], 5.0);
    let series = &r.figures["series"];
    assert_eq!(series["rows"][0], serde_json::json!([8_000_000, 2, 5.0]));
    assert_eq!(series["omitted"], 0);
    insta::assert_snapshot!(
        "staleness_histograms",
        serde_json::to_string_pretty(&(
            &r.figures["versions_behind_histogram"],
            &r.figures["ms_behind"],
        ))
        .unwrap()
    );

    // Twin: the read begins before append 2 completes: behind by nothing.
    let mut b = B::new();
    b.append(1, 7, 1);
    b.inv(3, F::Read, 7, Value::Null);
    b.append(1, 7, 2);
    b.ok(3, F::Read, 7, Value::list(vec![1]));
    b.read_list(2, 7, &[1, 2]);
    let r = one(&b.history(), CheckerName::Staleness);
    assert_eq!(r.figures["stale_reads"], 0);
    assert_eq!(r.figures["k_atomic"], 1);
}

#[test]
fn register_staleness() {
    let mut b = B::new();
    b.write(1, 0, 1);
    b.write(1, 0, 2);
    b.write(1, 0, 3);
    b.read(2, 0, Some(1));
    let opts = Options {
        workload: Some(Workload::Register),
        ..Default::default()
    };
    let r = schism_checker::check_one(&b.history(), &opts, CheckerName::Staleness).unwrap();
    assert_eq!(r.figures["worst_by_versions"][0]["versions_behind"], 2);
    assert_eq!(r.figures["worst_by_versions"][0]["ms_behind"], 3.0);
}

#[test]
fn set_full_lost_element_and_its_twin() {
    let mut b = B::new();
    add(&mut b, 1, 1);
    add(&mut b, 1, 2);
    read_set(&mut b, 2, &[1, 2]);
    read_set(&mut b, 2, &[1]);
    let r = one(&b.history(), CheckerName::SetFull);
    assert_eq!(kinds(&r), vec![AnomalyKind::LostElement]);
    assert_eq!(r.figures["lost"], 1);
    insta::assert_snapshot!("set_full_lost", r.anomalies[0].explanation);

    let mut b = B::new();
    add(&mut b, 1, 1);
    add(&mut b, 1, 2);
    read_set(&mut b, 2, &[1, 2]);
    read_set(&mut b, 2, &[1, 2]);
    let r = one(&b.history(), CheckerName::SetFull);
    assert_valid(&r);
    assert_eq!(r.figures["stable"], 2);
}

#[test]
fn set_full_stale_element_and_its_twin() {
    let mut b = B::new();
    add(&mut b, 1, 1);
    read_set(&mut b, 2, &[]);
    read_set(&mut b, 2, &[1]);
    let r = one(&b.history(), CheckerName::SetFull);
    assert_eq!(kinds(&r), vec![AnomalyKind::StaleRead]);
    insta::assert_snapshot!("set_full_stale", r.anomalies[0].explanation);

    // Twin: the empty read begins before the add is acknowledged.
    let mut b = B::new();
    b.inv(1, F::Add, 0, Value::Int(1));
    read_set(&mut b, 2, &[]);
    b.ok(1, F::Add, 0, Value::Int(1));
    read_set(&mut b, 2, &[1]);
    let r = one(&b.history(), CheckerName::SetFull);
    assert_valid(&r);
    assert_eq!(r.figures["stable"], 1);
}

#[test]
fn set_full_never_read_phantom_and_duplicates() {
    let mut b = B::new();
    read_set(&mut b, 2, &[]);
    add(&mut b, 1, 1);
    let r = one(&b.history(), CheckerName::SetFull);
    assert_valid(&r);
    assert_eq!(r.figures["never_read"], 1);

    let mut b = B::new();
    add(&mut b, 1, 1);
    read_set(&mut b, 2, &[1, 9]);
    let r = one(&b.history(), CheckerName::SetFull);
    assert_eq!(kinds(&r), vec![AnomalyKind::PhantomRead]);
    insta::assert_snapshot!("set_full_phantom", r.anomalies[0].explanation);

    let mut b = B::new();
    add(&mut b, 1, 1);
    read_set(&mut b, 2, &[1, 1]);
    let r = one(&b.history(), CheckerName::SetFull);
    assert_eq!(kinds(&r), vec![AnomalyKind::DuplicateElement]);
}

#[test]
fn counter_bounds_and_their_twins() {
    // Too low: 2 and 3 were acknowledged before the read began.
    let mut b = B::new();
    incr(&mut b, 1, 2);
    incr(&mut b, 1, 3);
    read_counter(&mut b, 2, 4);
    let r = one(&b.history(), CheckerName::Counter);
    assert_eq!(kinds(&r), vec![AnomalyKind::CounterOutOfBounds]);
    insta::assert_snapshot!("counter_too_low", r.anomalies[0].explanation);
    // Twin: the second increment is still in flight, so 2..=5 are all possible.
    let mut b = B::new();
    incr(&mut b, 1, 2);
    b.inv(1, F::Incr, 0, Value::Int(3));
    read_counter(&mut b, 2, 4);
    assert!(one(&b.history(), CheckerName::Counter).anomalies.is_empty());

    // Too high: only 2 was ever attempted before the read ended.
    let mut b = B::new();
    incr(&mut b, 1, 2);
    read_counter(&mut b, 2, 5);
    incr(&mut b, 1, 3);
    let r = one(&b.history(), CheckerName::Counter);
    insta::assert_snapshot!("counter_too_high", r.anomalies[0].explanation);
    // Twin: the increment of 3 began before the read ended (indeterminate: it may count).
    let mut b = B::new();
    incr(&mut b, 1, 2);
    b.inv(1, F::Incr, 0, Value::Int(3));
    read_counter(&mut b, 2, 5);
    b.info(1, F::Incr, 0, Value::Int(3));
    assert_valid(&one(&b.history(), CheckerName::Counter));
}

#[test]
fn fitting_checkers_per_workload_and_stats() {
    let mut b = B::new();
    b.append(1, 7, 1);
    b.read_list(2, 7, &[1]);
    let opts = Options {
        checkers: CheckerSet::Fitting,
        ..Default::default()
    };
    let r = schism_checker::check(&b.history(), &opts).unwrap();
    let names: Vec<&str> = r.results.iter().map(|r| r.checker.as_str()).collect();
    assert_eq!(names, ["graph", "staleness", "stats"]);
    let stats = &r.results[2].figures;
    assert_eq!(stats["ops"], 2);
    assert_eq!(stats["by_f"]["append"]["ok"], 1);
    assert_eq!(stats["by_f"]["read"]["latency_ms_p50"], 1.0);

    let mut b = B::new();
    add(&mut b, 1, 1);
    assert_eq!(
        schism_checker::check(&b.history(), &opts).unwrap().results[0].checker,
        "set-full"
    );
    let mut b = B::new();
    incr(&mut b, 1, 1);
    assert_eq!(
        schism_checker::check(&b.history(), &opts).unwrap().results[0].checker,
        "counter"
    );
    // A checker that does not fit is a clear error.
    let only = Options {
        checkers: CheckerSet::Only(vec![CheckerName::SetFull]),
        ..Default::default()
    };
    let mut b = B::new();
    b.append(1, 7, 1);
    let e = schism_checker::check(&b.history(), &only).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the set-full checker does not apply to append histories"
    );
}
