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
    let (text, edges) = only(&graph(&b.history()), AnomalyKind::ReadYourWrites);
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
    assert_eq!(edges, vec![EdgeKind::Process, EdgeKind::Ww]);
    insta::assert_snapshot!("monotonic_writes", text);

    // Twin: the read shows the process's order.
    let mut b = B::new();
    b.append(1, 7, 1);
    b.append(1, 7, 2);
    b.read_list(2, 7, &[1, 2]);
    assert_valid(&graph(&b.history()));
}

#[test]
fn writes_follow_reads_is_a_causal_cycle() {
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
    let (text, edges) = only(&graph(&b.history()), AnomalyKind::WritesFollowReads);
    assert_eq!(
        edges,
        vec![
            EdgeKind::Process,
            EdgeKind::Wr,
            EdgeKind::Process,
            EdgeKind::Rw,
            EdgeKind::Wr
        ]
    );
    insta::assert_snapshot!("writes_follow_reads", text);

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
    let (text, edges) = only(&graph(&b.history()), AnomalyKind::Cycle);
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
