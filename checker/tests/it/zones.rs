//! The zones algorithm against the exact search: on ≥ 10,000 random small read/write
//! register histories (unique values, concurrent, with fail and indeterminate ops, reads of
//! the initial value, of values never written and of values written only later), both give the same verdict
//! and name the same first op that cannot be placed. The generator is checked to produce
//! plenty of valid and of invalid histories.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use schism_checker::{Algorithm, Options, RegisterOptions, Validity, Workload};
use schism_history::{F, History, Op, OpType, Process, Value};
use std::cell::Cell;

/// Builds one key's history from a stream of choices (so proptest can shrink it).
fn build(choices: &[u8]) -> (History, RegisterOptions) {
    let mut it = choices.iter().copied();
    let mut next = move || it.next().unwrap_or(0);
    let model = RegisterOptions {
        initial: if next() % 2 == 0 { None } else { Some(0) },
        nil_read_is_wildcard: next() % 4 == 0,
    };
    let procs = 1 + (next() % 4) as usize;
    let steps = 4 + (next() % 16) as usize;
    let mut ids: Vec<u64> = (0..procs as u64).collect();
    let mut fresh = procs as u64;
    // Per process slot: the open op's (f, value) if any.
    let mut open: Vec<Option<(F, Value)>> = vec![None; procs];
    let mut written: Vec<i64> = Vec::new();
    let mut ops: Vec<Op> = Vec::new();
    let push = |ops: &mut Vec<Op>, p: u64, kind, f: F, v: Value| {
        let i = ops.len() as u64;
        ops.push(Op::new(
            i,
            i * 1_000,
            Process::client(p),
            kind,
            f,
            Some(0),
            v,
        ));
    };
    for _ in 0..steps {
        let slot = next() as usize % procs;
        let p = ids[slot];
        match open[slot].take() {
            None => {
                if next() % 2 == 0 {
                    let v = written.len() as i64 + 1;
                    written.push(v);
                    push(&mut ops, p, OpType::Invoke, F::Write, Value::Int(v));
                    open[slot] = Some((F::Write, Value::Int(v)));
                } else {
                    push(&mut ops, p, OpType::Invoke, F::Read, Value::Null);
                    open[slot] = Some((F::Read, Value::Null));
                }
            }
            Some((f, v)) => {
                let kind = match next() % 10 {
                    0 => OpType::Fail,
                    1 => OpType::Info,
                    _ => OpType::Ok,
                };
                let value = if f == F::Read && kind == OpType::Ok {
                    // The initial value, a written value (maybe the latest), or one
                    // never written.
                    let c = next() as usize % (written.len() + 4);
                    if c == written.len() + 3 {
                        // The next value to be written: a read before its write.
                        Value::Int(written.len() as i64 + 1)
                    } else if c < written.len() {
                        Value::Int(written[c])
                    } else if c == written.len() && !written.is_empty() {
                        Value::Int(*written.last().unwrap())
                    } else if c == written.len() + 2 && next() % 4 == 0 {
                        Value::Int(99)
                    } else {
                        model.initial.map_or(Value::Null, Value::Int)
                    }
                } else {
                    v
                };
                push(&mut ops, p, kind, f, value);
                if kind == OpType::Info {
                    ids[slot] = fresh;
                    fresh += 1;
                }
            }
        }
    }
    (History::new(ops), model)
}

fn run(h: &History, model: RegisterOptions, algorithm: Algorithm) -> (Validity, Option<u64>) {
    let opts = Options {
        register: model,
        algorithm,
        workload: Some(Workload::Register),
        ..Options::default()
    };
    let r = schism_checker::check(h, &opts).expect("checkable");
    let f = &r.results[0].figures;
    let want = if algorithm == Algorithm::Zones {
        "zones"
    } else {
        "wgl"
    };
    assert!(f["algorithm"] == want || f["keys"] == 0, "{f:?}");
    (
        r.validity,
        f.get("counterexample").and_then(|c| c["op"].as_u64()),
    )
}

#[test]
fn zones_agrees_with_the_exact_search_on_10_000_random_histories() {
    let config = Config {
        cases: 10_000,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let (valid, invalid) = (Cell::new(0u32), Cell::new(0u32));
    runner
        .run(&proptest::collection::vec(any::<u8>(), 0..64), |choices| {
            let (h, model) = build(&choices);
            let (zv, zop) = run(&h, model, Algorithm::Zones);
            let (wv, wop) = run(&h, model, Algorithm::Wgl);
            if zv != wv || zop != wop {
                let lines: Vec<String> = h
                    .ops
                    .iter()
                    .map(|o| serde_json::to_string(o).unwrap())
                    .collect();
                return Err(TestCaseError::fail(format!(
                    "zones {zv:?} at {zop:?}, wgl {wv:?} at {wop:?}, {model:?}:\n{}",
                    lines.join("\n")
                )));
            }
            match wv {
                Validity::Valid => valid.set(valid.get() + 1),
                Validity::Invalid => invalid.set(invalid.get() + 1),
                Validity::Unknown => return Err(TestCaseError::fail("unknown on a tiny history")),
            }
            Ok(())
        })
        .unwrap();
    let (v, i) = (valid.get(), invalid.get());
    assert!(v + i >= 10_000);
    assert!(v >= 2_500 && i >= 2_500, "{v} valid, {i} invalid");
    eprintln!("{v} valid, {i} invalid");
}
