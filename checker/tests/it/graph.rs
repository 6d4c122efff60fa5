//! The graph checker on hand-written minimal histories: one per anomaly kind, each with
//! a valid twin that differs by one op. Explanations are snapshot-tested (insta).

use crate::common::*;
use schism_checker::{
    AnomalyKind, CheckResult, CheckerName, EdgeKind, Options, Validity, Workload,
};
use schism_history::{F, History, Value};

fn graph(h: &History) -> CheckResult {
    schism_checker::check_one(h, &Options::default(), CheckerName::Graph).unwrap()
}

fn graph_register(h: &History) -> CheckResult {
    let opts = Options {
        workload: Some(Workload::Register),
        ..Default::default()
    };
    schism_checker::check_one(h, &opts, CheckerName::Graph).unwrap()
}

/// The one anomaly of `r`: its kind, explanation and cycle edges.
fn only(r: &CheckResult, kind: AnomalyKind) -> (String, Vec<EdgeKind>) {
    assert_eq!(r.validity, Validity::Invalid);
    assert_eq!(kinds(r), vec![kind], "{:#?}", r.anomalies);
    let a = &r.anomalies[0];
    assert_eq!(
        a.ops,
        a.cycle.iter().map(|s| s.op).collect::<Vec<_>>(),
        "ops name the cycle"
    );
    (
        a.explanation.clone(),
        a.cycle.iter().map(|s| s.edge).collect(),
    )
}

#[test]
fn stale_read_is_rw_plus_realtime() {
    let mut b = B::new();
    b.append(1, 7, 1);
    b.append(1, 7, 2);
    b.read_list(2, 7, &[1, 2]);
    b.read_list(3, 7, &[1]);
    let (text, edges) = only(&graph(&b.history()), AnomalyKind::StaleRead);
    assert_eq!(edges, vec![EdgeKind::Rw, EdgeKind::Realtime]);
    insta::assert_snapshot!("stale_read", text);

    // Twin: the read begins before append 2 completes.
    assert_valid(&graph(&stale_read_twin()));
}

#[test]
fn monotonic_read_is_rw_plus_process_order_between_reads() {
    // Append 2 is still in flight, so neither read is stale in real time; but process 2
    // saw it and then did not.
    let mut b = B::new();
    b.append(1, 7, 1);
    b.inv(1, F::Append, 7, Value::Int(2));
    b.read_list(2, 7, &[1, 2]);
    b.read_list(2, 7, &[1]);
    b.ok(1, F::Append, 7, Value::Int(2));
    let (text, edges) = only(&graph(&b.history()), AnomalyKind::MonotonicRead);
    assert_eq!(edges, vec![EdgeKind::Rw, EdgeKind::Wr, EdgeKind::Process]);
    insta::assert_snapshot!("monotonic_read", text);

    // Twin: the reads in the other order.
    let mut b = B::new();
    b.append(1, 7, 1);
    b.inv(1, F::Append, 7, Value::Int(2));
    b.read_list(2, 7, &[1]);
    b.read_list(2, 7, &[1, 2]);
    b.ok(1, F::Append, 7, Value::Int(2));
    assert_valid(&graph(&b.history()));
}

#[test]
fn read_your_writes_is_rw_plus_process_order_from_a_write() {
    let mut b = B::new();
    b.append(1, 7, 1);
    b.read_list(1, 7, &[]);
    b.read_list(2, 7, &[1]);
    // The process's own write was acknowledged before its read began: the read is also
    // stale, once in each kind.
    let r = graph(&b.history());
    assert_eq!(
        kinds(&r),
        vec![AnomalyKind::StaleRead, AnomalyKind::ReadYourWrites]
    );
    let a = r
        .anomalies
        .iter()
        .find(|a| a.kind == AnomalyKind::ReadYourWrites)
        .unwrap();
    let (text, edges) = (
        a.explanation.clone(),
        a.cycle.iter().map(|s| s.edge).collect::<Vec<_>>(),
    );
    assert_eq!(edges, vec![EdgeKind::Rw, EdgeKind::Process]);
    insta::assert_snapshot!("read_your_writes", text);

    // Twin: the process sees its own append.
    let mut b = B::new();
    b.append(1, 7, 1);
    b.read_list(1, 7, &[1]);
    b.read_list(2, 7, &[1]);
    assert_valid(&graph(&b.history()));
}

#[test]
fn monotonic_writes_is_ww_against_process_order() {
    let mut b = B::new();
    b.append(1, 7, 1);
    b.append(1, 7, 2);
    b.read_list(2, 7, &[2, 1]);
    let (text, edges) = only(&graph(&b.history()), AnomalyKind::MonotonicWrites);
    assert_eq!(edges, vec![EdgeKind::Ww, EdgeKind::Process]);
    insta::assert_snapshot!("monotonic_writes", text);

    // Twin: the read shows the process's order.
    let mut b = B::new();
    b.append(1, 7, 1);
    b.append(1, 7, 2);
    b.read_list(2, 7, &[1, 2]);
    assert_valid(&graph(&b.history()));
}

#[test]
fn a_causal_cycle_across_keys_is_g_single_process() {
    // p1's append 1 to key 0 stays in flight throughout (no real-time order with it).
    // p2 reads it, then appends 2 to key 1; p3 sees 2 on key 1, then misses 1 on key 0.
    let mut b = B::new();
    b.inv(1, F::Append, 0, Value::Int(1));
    b.read_list(2, 0, &[1]);
    b.inv(2, F::Append, 1, Value::Int(2));
    b.read_list(3, 1, &[2]);
    b.read_list(3, 0, &[]);
    b.ok(2, F::Append, 1, Value::Int(2));
    b.ok(1, F::Append, 0, Value::Int(1));
    // No per-key kind applies (no read of key 0 by p3 saw 1 before); the cycle has one
    // rw edge and needs process order.
    let (text, edges) = only(&graph(&b.history()), AnomalyKind::GSingleProcess);
    assert_eq!(edges.iter().filter(|&&e| e == EdgeKind::Rw).count(), 1);
    assert!(!edges.contains(&EdgeKind::Realtime));
    insta::assert_snapshot!("g_single_process", text);

    // Twin: p3's second read sees append 1.
    let mut b = B::new();
    b.inv(1, F::Append, 0, Value::Int(1));
    b.read_list(2, 0, &[1]);
    b.inv(2, F::Append, 1, Value::Int(2));
    b.read_list(3, 1, &[2]);
    b.read_list(3, 0, &[1]);
    b.ok(2, F::Append, 1, Value::Int(2));
    b.ok(1, F::Append, 0, Value::Int(1));
    assert_valid(&graph(&b.history()));
}

#[test]
fn other_cycles_name_every_edge() {
    // The version order contradicts real time: append 1 completed before append 2 began,
    // by different processes, yet the read orders 2 first.
    let mut b = B::new();
    b.append(1, 7, 1);
    b.append(2, 7, 2);
    b.read_list(3, 7, &[2, 1]);
    let (text, edges) = only(&graph(&b.history()), AnomalyKind::G0Realtime);
    assert_eq!(edges.len(), 2);
    insta::assert_snapshot!("cycle", text);

    // Twin: the read shows real-time order.
    let mut b = B::new();
    b.append(1, 7, 1);
    b.append(2, 7, 2);
    b.read_list(3, 7, &[1, 2]);
    assert_valid(&graph(&b.history()));
}

#[test]
fn non_cycle_anomalies_come_from_the_append_checker() {
    // Lost write, phantom, duplicate: the graph result carries them, worded as `append`'s.
    let mut b = B::new();
    b.append(1, 7, 1);
    let lost = b.append(1, 7, 2);
    b.append(1, 7, 3);
    let read = b.read_list(2, 7, &[1, 3]);
    let r = graph(&b.history());
    let a = assert_one(&r, AnomalyKind::LostWrite, &[lost, read]);
    let append = schism_checker::check_append(&b.history(), &Options::default()).unwrap();
    assert_eq!(a.explanation, append.anomalies[0].explanation);

    let mut b = B::new();
    b.append(1, 7, 1);
    b.read_list(2, 7, &[1, 9]);
    assert_eq!(kinds(&graph(&b.history())), vec![AnomalyKind::PhantomRead]);
    let mut b = B::new();
    b.append(1, 7, 1);
    b.read_list(2, 7, &[1, 1]);
    assert!(kinds(&graph(&b.history())).contains(&AnomalyKind::DuplicateElement));
}

#[test]
fn register_stale_read_and_its_twin() {
    let mut b = B::new();
    b.write(1, 0, 1);
    b.write(1, 0, 2);
    b.read(2, 0, Some(1));
    let (text, edges) = only(&graph_register(&b.history()), AnomalyKind::StaleRead);
    assert_eq!(edges, vec![EdgeKind::Rw, EdgeKind::Realtime]);
    insta::assert_snapshot!("register_stale_read", text);

    // Twin: the read begins before write 2 completes.
    let mut b = B::new();
    b.write(1, 0, 1);
    b.inv(1, F::Write, 0, Value::Int(2));
    b.read(2, 0, Some(1));
    b.ok(1, F::Write, 0, Value::Int(2));
    assert_valid(&graph_register(&b.history()));
}

#[test]
fn register_monotonic_read_and_nil_reads() {
    // Write 2 is in flight: p2 sees it, then sees 1 again.
    let mut b = B::new();
    b.write(1, 0, 1);
    b.inv(1, F::Write, 0, Value::Int(2));
    b.read(2, 0, Some(2));
    b.read(2, 0, Some(1));
    b.ok(1, F::Write, 0, Value::Int(2));
    let (text, _) = only(&graph_register(&b.history()), AnomalyKind::MonotonicRead);
    insta::assert_snapshot!("register_monotonic_read", text);

    // A nil read after an acknowledged write is stale; before it, fine.
    let mut b = B::new();
    b.write(1, 0, 1);
    b.read(2, 0, None);
    only(&graph_register(&b.history()), AnomalyKind::StaleRead);
    let mut b = B::new();
    b.read(2, 0, None);
    b.write(1, 0, 1);
    b.read(2, 0, Some(1));
    assert_valid(&graph_register(&b.history()));
}

#[test]
fn register_phantom_read() {
    let mut b = B::new();
    b.write(1, 0, 1);
    b.read(2, 0, Some(5));
    assert_eq!(
        kinds(&graph_register(&b.history())),
        vec![AnomalyKind::PhantomRead]
    );
}

#[test]
fn anomalies_serialize_their_cycle() {
    let mut b = B::new();
    b.append(1, 7, 1);
    b.append(1, 7, 2);
    b.read_list(3, 7, &[1]);
    b.read_list(2, 7, &[1, 2]);
    let r = graph(&b.history());
    let json = serde_json::to_value(&r.anomalies[0]).unwrap();
    assert_eq!(json["cycle"][0]["edge"], "rw");
    assert_eq!(json["kind"], "stale-read");
}

#[test]
fn writes_follow_reads_is_a_write_inside_a_state_already_read() {
    // p2 reads [1,2] and only then appends 2: its write sits inside a state its earlier
    // read returned.
    let mut b = B::new();
    b.append(1, 7, 1);
    b.read_list(2, 7, &[1, 2]);
    b.append(2, 7, 2);
    let (text, edges) = only(&graph(&b.history()), AnomalyKind::WritesFollowReads);
    assert_eq!(edges, vec![EdgeKind::Wr, EdgeKind::Process]);
    insta::assert_snapshot!("writes_follow_reads", text);

    // Twin: the read comes after the append.
    let mut b = B::new();
    b.append(1, 7, 1);
    b.append(2, 7, 2);
    b.read_list(2, 7, &[1, 2]);
    assert_valid(&graph(&b.history()));
}

#[test]
fn an_innocent_read_is_not_blamed_for_a_chain_through_a_stale_read() {
    // p4's read of key 874 is stale (it misses append 78, acknowledged before it began).
    // p3's read of key 878 misses append 2, which was still in flight when it began: not
    // stale. Yet through the stale read it lies on a real-time cycle: p3's read -rw->
    // append 2 -realtime-> p4's read -rw-> append 78 -realtime-> p3's read. That cycle is
    // the stale read's; p3's read is not a second stale read.
    let mut b = B::new();
    b.append(1, 874, 78);
    b.append(5, 878, 1);
    b.inv(2, F::Append, 878, Value::Int(2));
    b.read_list(3, 878, &[1]);
    b.ok(2, F::Append, 878, Value::Int(2));
    let stale = b.read_list(4, 874, &[]);
    b.read_list(6, 878, &[1, 2]);
    b.read_list(6, 874, &[78]);
    let r = graph(&b.history());
    assert_eq!(
        kinds(&r),
        vec![AnomalyKind::StaleRead],
        "{:#?}",
        r.anomalies
    );
    assert_eq!(r.anomalies[0].ops[0], stale);
    let report = schism_checker::Report::from_results(vec![r]);
    assert_eq!(
        schism_checker::counts(&report),
        [(AnomalyKind::StaleRead, 1)].into()
    );
}
