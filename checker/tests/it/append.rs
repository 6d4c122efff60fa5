//! Hand-written append histories: one per anomaly kind, each with a valid twin that
//! differs by one op.

use crate::common::*;
use schism_checker::AnomalyKind;
use schism_history::{F, Value};

#[test]
fn stale_read_and_its_twin() {
    // p1 appends 1 then 2; p2 sees [1,2]; p3 then begins a read and sees only [1].
    let mut b = B::new();
    b.append(1, 7, 1);
    let ack2 = b.append(1, 7, 2);
    b.read_list(2, 7, &[1, 2]);
    let stale = b.read_list(3, 7, &[1]);
    let r = check(&b.history());
    let a = assert_one(&r, AnomalyKind::StaleRead, &[stale, ack2]);
    assert_eq!(a.key, Some(7));
    assert_eq!(
        a.explanation,
        "process 3 read [1] from key 7 at t=0.006s: a stale read; it missed append 2 to key 7 by process 1, acknowledged at t=0.003s, before the read began (1 version and 3.000 ms behind)"
    );
    assert_eq!(r.figures["stale_reads"], 1);

    // Twin: p3's read begins before append 2 completes.
    assert_valid(&check(&stale_read_twin()));
}

#[test]
fn stale_read_names_the_earliest_completed_witness() {
    // Appends 2 and 3 both completed before the read; 2 (completed first) is named.
    let mut b = B::new();
    b.append(1, 0, 1);
    let ack2 = b.append(1, 0, 2);
    b.append(1, 0, 3);
    b.read_list(2, 0, &[1, 2, 3]);
    let stale = b.read_list(3, 0, &[1]);
    assert_one(&check(&b.history()), AnomalyKind::StaleRead, &[stale, ack2]);
}

#[test]
fn stale_read_witness_may_sit_later_in_the_order() {
    // Append 2 is still running when the read begins, but append 3 (later in the order)
    // has completed: the read of [1] is stale because of 3.
    let mut b = B::new();
    b.append(1, 0, 1);
    b.inv(1, F::Append, 0, Value::Int(2));
    let ack3 = b.append(2, 0, 3);
    let stale = b.read_list(3, 0, &[1]);
    b.ok(1, F::Append, 0, Value::Int(2));
    b.read_list(4, 0, &[1, 2, 3]);
    let a = assert_one(&check(&b.history()), AnomalyKind::StaleRead, &[stale, ack3]);
    assert!(
        a.explanation.contains("it missed append 3"),
        "{}",
        a.explanation
    );

    // Twin: without append 3's completion before the read, nothing is stale.
    let mut b = B::new();
    b.append(1, 0, 1);
    b.inv(1, F::Append, 0, Value::Int(2));
    b.inv(2, F::Append, 0, Value::Int(3));
    b.read_list(3, 0, &[1]);
    b.ok(2, F::Append, 0, Value::Int(3));
    b.ok(1, F::Append, 0, Value::Int(2));
    b.read_list(4, 0, &[1, 2, 3]);
    assert_valid(&check(&b.history()));
}

#[test]
fn lost_write_and_its_twin() {
    let mut b = B::new();
    b.append(1, 7, 1);
    let lost = b.append(1, 7, 2);
    // Append 3 begins after append 2 was acknowledged, and the read holds it: the order
    // went past 2 without it.
    b.append(1, 7, 3);
    let read = b.read_list(2, 7, &[1, 3]);
    let r = check(&b.history());
    let a = assert_one(&r, AnomalyKind::LostWrite, &[lost, read]);
    assert!(
        a.explanation.starts_with(
            "append 2 to key 7 by process 1, acknowledged at t=0.003s, is missing from all 1 read"
        ),
        "{}",
        a.explanation
    );
    assert_eq!(r.figures["unobserved"], 0);

    // Twin: the read holds 2 as well.
    let mut b = B::new();
    b.append(1, 7, 1);
    b.append(1, 7, 2);
    b.append(1, 7, 3);
    b.read_list(2, 7, &[1, 2, 3]);
    assert_valid(&check(&b.history()));
}

#[test]
fn missing_value_without_a_later_one_is_stale_not_lost() {
    // The read misses acknowledged append 2 but holds nothing newer: a lagging replica
    // would look the same, so it is a stale read, not proof of loss.
    let mut b = B::new();
    b.append(1, 7, 1);
    let acked = b.append(1, 7, 2);
    let read = b.read_list(2, 7, &[1]);
    let r = check(&b.history());
    let a = assert_one(&r, AnomalyKind::StaleRead, &[read, acked]);
    assert!(
        a.explanation.contains("no read ever saw 2"),
        "{}",
        a.explanation
    );
    assert_eq!(r.figures["lost_writes"], 0);

    // Twin: the read begins before append 2 completes, so it proves nothing.
    let mut b = B::new();
    b.append(1, 7, 1);
    b.inv(1, F::Append, 7, Value::Int(2));
    b.read_list(2, 7, &[1]);
    b.ok(1, F::Append, 7, Value::Int(2));
    let r = check(&b.history());
    assert_valid(&r);
    assert_eq!(r.figures["unobserved"], 1);
}

#[test]
fn final_read_missing_an_acknowledged_append_proves_it_lost() {
    // The final read (after the time limit and a quiet period) misses append 2: lost.
    let mut b = B::new();
    b.append(1, 7, 1);
    let lost = b.append(1, 7, 2);
    let read = b.read_list(2, 7, &[1]);
    let mut h = b.history();
    let invoke = h.ops.iter().position(|o| o.index() == read).unwrap() - 1;
    h.ops[invoke].set_meta(Some(serde_json::json!({ "final": true })));
    let r = check(&h);
    let a = assert_one(&r, AnomalyKind::LostWrite, &[lost, read]);
    assert!(
        a.explanation.contains("including the final read"),
        "{}",
        a.explanation
    );

    // Twin: the same read, not a final one, is only stale (see the test above).
    let r = check(&b.history());
    assert_eq!(r.figures["lost_writes"], 0);
    assert_eq!(r.figures["stale_reads"], 1);
}

#[test]
fn divergence_and_its_twin() {
    let mut b = B::new();
    b.append(1, 7, 1);
    b.append(1, 7, 2);
    let longest = b.read_list(2, 7, &[1, 2]);
    b.append(1, 7, 3);
    let odd = b.read_list(3, 7, &[1, 3]);
    let a = assert_one(
        &check(&b.history()),
        AnomalyKind::Divergence,
        &[odd, longest],
    );
    assert!(
        a.explanation
            .contains("element 2 is 3 there but 2 in the longest read"),
        "{}",
        a.explanation
    );

    let mut b = B::new();
    b.append(1, 7, 1);
    b.append(1, 7, 2);
    b.read_list(2, 7, &[1, 2]);
    b.append(1, 7, 3);
    b.read_list(3, 7, &[1, 2, 3]);
    assert_valid(&check(&b.history()));
}

#[test]
fn phantom_read_and_its_twin() {
    let mut b = B::new();
    b.append(1, 7, 1);
    let read = b.read_list(2, 7, &[1, 99]);
    let a = assert_one(&check(&b.history()), AnomalyKind::PhantomRead, &[read]);
    assert!(
        a.explanation
            .contains("99, which no append to key 7 ever wrote"),
        "{}",
        a.explanation
    );

    let mut b = B::new();
    b.append(1, 7, 1);
    b.read_list(2, 7, &[1]);
    assert_valid(&check(&b.history()));
}

#[test]
fn a_phantom_is_reported_once_with_the_first_read_and_a_count() {
    let mut b = B::new();
    b.append(1, 7, 1);
    b.read_list(2, 7, &[1]);
    let first = b.read_list(3, 7, &[1, 99]);
    b.read_list(2, 7, &[1, 99]);
    b.append(1, 7, 2);
    b.read_list(4, 7, &[1, 99, 2]);
    let r = check(&b.history());
    let a = assert_one(&r, AnomalyKind::PhantomRead, &[first]);
    assert!(
        a.explanation
            .ends_with("it contains 99, which no append to key 7 ever wrote (3 reads in all)"),
        "{}",
        a.explanation
    );
    assert_eq!(r.figures["phantom_reads"], 1);
}

#[test]
fn value_appended_to_another_key_is_a_phantom() {
    let mut b = B::new();
    b.append(1, 1, 5);
    let read = b.read_list(2, 2, &[5]);
    assert_one(&check(&b.history()), AnomalyKind::PhantomRead, &[read]);
}

#[test]
fn aborted_read_and_its_twin() {
    let mut b = B::new();
    b.append(1, 7, 1);
    b.inv(1, F::Append, 7, Value::Int(2));
    let failed = b.fail(1, F::Append, 7, Value::Int(2));
    let read = b.read_list(2, 7, &[1, 2]);
    let a = assert_one(
        &check(&b.history()),
        AnomalyKind::AbortedRead,
        &[read, failed],
    );
    assert!(
        a.explanation.contains("failed at t=0.003s"),
        "{}",
        a.explanation
    );

    // Twin: the append was indeterminate, so it may have happened.
    let mut b = B::new();
    b.append(1, 7, 1);
    b.inv(1, F::Append, 7, Value::Int(2));
    b.info(1, F::Append, 7, Value::Int(2));
    b.read_list(2, 7, &[1, 2]);
    assert_valid(&check(&b.history()));
}

#[test]
fn duplicate_element_and_its_twin() {
    let mut b = B::new();
    b.append(1, 7, 1);
    b.append(1, 7, 2);
    let read = b.read_list(2, 7, &[1, 2, 1]);
    let r = check(&b.history());
    // [1,2,1] is itself the longest read, so only the duplicate is wrong.
    let a = assert_one(&r, AnomalyKind::DuplicateElement, &[read]);
    assert!(
        a.explanation.contains("contains 1 twice"),
        "{}",
        a.explanation
    );

    let mut b = B::new();
    b.append(1, 7, 1);
    b.append(1, 7, 2);
    b.read_list(2, 7, &[1, 2]);
    assert_valid(&check(&b.history()));
}

#[test]
fn indeterminate_appends_may_appear_or_not() {
    let mut b = B::new();
    b.inv(1, F::Append, 7, Value::Int(1));
    b.info(1, F::Append, 7, Value::Int(1));
    b.read_list(2, 7, &[]);
    b.inv(3, F::Append, 7, Value::Int(2));
    b.info(3, F::Append, 7, Value::Int(2));
    b.read_list(2, 7, &[2]);
    // And one never completed at all.
    b.inv(4, F::Append, 7, Value::Int(3));
    let r = check(&b.history());
    assert_valid(&r);
    assert_eq!(r.figures["appends_info"], 3);
}

#[test]
fn failed_and_indeterminate_reads_are_ignored() {
    let mut b = B::new();
    b.append(1, 7, 1);
    b.inv(2, F::Read, 7, Value::Null);
    b.fail(2, F::Read, 7, Value::Null);
    b.inv(3, F::Read, 7, Value::Null);
    b.info(3, F::Read, 7, Value::Null);
    b.read_list(2, 7, &[1]);
    let r = check(&b.history());
    assert_valid(&r);
    assert_eq!(r.figures["reads"], 1);
    assert_eq!(r.figures["reads_not_ok"], 2);
}

#[test]
fn anomalies_are_bounded_per_kind_but_all_counted() {
    let mut b = B::new();
    b.append(1, 0, 1);
    b.read_list(2, 0, &[1]);
    for i in 0..30 {
        b.read_list(3, 0, &[]);
        let _ = i;
    }
    let opts = schism_checker::Options {
        max_anomalies_per_kind: 5,
        ..Default::default()
    };
    let r = check_with(&b.history(), &opts);
    // The first five, a sample of the rest spread over the history (at most five) and
    // the worst.
    assert!(
        (5..=11).contains(&r.anomalies.len()),
        "{}",
        r.anomalies.len()
    );
    assert_eq!(r.figures["stale_reads"], 30);
    assert_eq!(
        r.figures["anomalies_omitted"],
        30 - r.anomalies.len() as u64
    );
}
