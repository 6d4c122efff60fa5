//! The public surface: workload inference, errors naming ops, serde, summaries.

use crate::common::*;
use schism_checker::{AnomalyKind, CheckError, Options, Report, Validity, Workload};
use schism_history::{F, History, Op, OpType, Process, Value};

#[test]
fn workload_is_inferred_from_functions() {
    let mut b = B::new();
    b.append(1, 0, 1);
    assert_eq!(check(&b.history()).checker, "append");
    let mut b = B::new();
    b.write(1, 0, 1);
    assert_eq!(check(&b.history()).checker, "linearizable");
    let mut b = B::new();
    b.read(1, 0, Some(3));
    assert_eq!(check(&b.history()).checker, "linearizable");
    let mut b = B::new();
    b.read_list(1, 0, &[]);
    assert_eq!(check(&b.history()).checker, "append");
}

#[test]
fn empty_history_is_valid_with_no_results() {
    let r = schism_checker::check(&History::default(), &Options::default()).unwrap();
    assert_eq!(r.validity, Validity::Valid);
    assert!(r.results.is_empty());
}

#[test]
fn nemesis_ops_are_ignored() {
    let mut b = B::new();
    b.append(1, 0, 1);
    let mut h = b.history();
    let i = h.ops.len() as u64;
    h.ops.push(Op::new(
        i,
        i,
        Process::NEMESIS,
        OpType::Invoke,
        F::parse("start-partition"),
        None,
        Value::Null,
    ));
    h.ops.push(Op::new(
        i + 1,
        i + 1,
        Process::NEMESIS,
        OpType::Info,
        F::parse("start-partition"),
        None,
        Value::Null,
    ));
    assert_valid(&check(&h));
}

fn error(h: &History, workload: Option<Workload>) -> String {
    let opts = Options {
        workload,
        ..Default::default()
    };
    let e: CheckError = schism_checker::check(h, &opts).unwrap_err();
    e.to_string()
}

#[test]
fn unusable_histories_are_one_line_errors_naming_the_op() {
    let mut b = B::new();
    b.append(1, 0, 1);
    b.inv(2, F::Incr, 0, Value::Int(1));
    assert_eq!(
        error(&b.history(), None),
        "op index 2: function \"incr\" does not belong to the append workload (read, append)"
    );

    let mut b = B::new();
    b.inv(1, F::Append, 0, Value::list(vec![1]));
    assert_eq!(
        error(&b.history(), None),
        "op index 0: append value [1] is not an integer"
    );

    let mut b = B::new();
    b.append(1, 0, 1);
    b.write(1, 0, 2);
    assert!(error(&b.history(), None).starts_with("op index 2: write mixes append and write/cas"));

    let mut b = B::new();
    b.append(1, 0, 1);
    b.append(2, 0, 1);
    assert_eq!(
        error(&b.history(), None),
        "op index 2: append of 1 to key 0 repeats the append at op index 0; append values must be unique per key"
    );

    let mut b = B::new();
    b.write(1, 0, 1);
    b.inv(1, F::Read, 0, Value::Null);
    b.ok(1, F::Read, 0, Value::list(vec![1]));
    assert_eq!(
        error(&b.history(), None),
        "op index 3: read of key 0 returned [1], not an integer or null"
    );

    let mut b = B::new();
    b.inv(1, F::Cas, 0, Value::Int(3));
    assert!(
        error(&b.history(), Some(Workload::Register))
            .starts_with("op index 0: cas value 3 is not [expected, new]")
    );

    let mut b = B::new();
    b.inv(1, F::Append, 0, Value::Int(1));
    b.inv(1, F::Append, 0, Value::Int(2));
    let e = error(&b.history(), None);
    assert!(e.starts_with("op index 1:") && !e.contains('\n'), "{e}");
}

#[test]
fn report_round_trips_through_json() {
    let mut b = B::new();
    b.append(1, 7, 1);
    b.append(1, 7, 2);
    b.read_list(2, 7, &[1, 2]);
    b.read_list(3, 7, &[1]);
    let report = schism_checker::check(&b.history(), &Options::default()).unwrap();
    let text = serde_json::to_string(&report).unwrap();
    assert!(
        text.contains(r#""validity":"invalid""#) && text.contains(r#""kind":"stale-read""#),
        "{text}"
    );
    let back: Report = serde_json::from_str(&text).unwrap();
    assert_eq!(back, report);
    let workload: Workload = serde_json::from_str("\"register\"").unwrap();
    assert_eq!(workload, Workload::Register);
}

#[test]
fn summary_lines_give_verdict_counts_and_a_first_explanation() {
    let mut b = B::new();
    b.append(1, 7, 1);
    b.append(1, 7, 2);
    b.read_list(2, 7, &[1, 2]);
    b.read_list(3, 7, &[1]);
    b.read_list(3, 7, &[1]);
    let report = schism_checker::check(&b.history(), &Options::default()).unwrap();
    let lines = report.summary_lines();
    assert_eq!(lines[0], "verdict: INVALID");
    assert_eq!(lines[1], "append: invalid (2 stale-read)");
    assert!(
        lines[2].starts_with("  stale-read: process 3 read [1] from key 7 at t=0.006s"),
        "{lines:#?}"
    );
    assert_eq!(lines.len(), 3);
    assert_eq!(AnomalyKind::StaleRead.to_string(), "stale-read");
}
