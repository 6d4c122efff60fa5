//! `Options::threads`: a large history checked on two threads (validation beside the
//! pairing, `graph` beside the other checkers) gives the report of one thread — valid,
//! invalid, and a history that fails validation alike.

#[path = "../../benches/support/histories.rs"]
mod histories;
#[path = "../../benches/support/register.rs"]
mod register;

use schism_checker::{CheckerSet, Options, PARALLEL_MIN_OPS, Validity, check, check_paired};
use schism_history::{F, History, OpType, Value};

fn both(h: &History) {
    let one = Options {
        checkers: CheckerSet::Fitting,
        ..Options::default()
    };
    let two = Options {
        threads: 2,
        ..one.clone()
    };
    match (check_paired(h, &one), check_paired(h, &two)) {
        (Ok((a, ops_a)), Ok((b, ops_b))) => {
            assert!(ops_a.len() >= PARALLEL_MIN_OPS, "{} ops", ops_a.len());
            assert_eq!(ops_a, ops_b);
            assert_eq!(
                serde_json::to_string(&a).unwrap(),
                serde_json::to_string(&b).unwrap()
            );
            assert!(a.results.len() >= 3, "{:?}", a.results.len());
        }
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        (a, b) => panic!(
            "{:?} vs {:?}",
            a.map(|r| r.0.validity),
            b.map(|r| r.0.validity)
        ),
    }
}

#[test]
fn two_threads_report_what_one_thread_reports() {
    let valid = register::generate(7, PARALLEL_MIN_OPS + 5_000, 10, 10, false);
    both(&valid);
    // One ok read in 500 returns the previous value written to its key instead.
    let mut stale = valid.clone();
    let mut last: std::collections::HashMap<u64, (i64, i64)> = Default::default();
    let mut reads = 0;
    for op in stale.ops.iter_mut() {
        let key = op.key().unwrap_or(0);
        match (op.kind, op.f, &op.value) {
            (OpType::Invoke, F::Write, Value::Int(v)) => {
                let e = last.entry(key).or_insert((*v, *v));
                *e = (e.1, *v);
            }
            (OpType::Ok, F::Read, Value::Int(_)) => {
                reads += 1;
                if reads % 500 == 0
                    && let Some(&(older, _)) = last.get(&key)
                {
                    op.value = Value::Int(older);
                }
            }
            _ => {}
        }
    }
    assert_eq!(
        check(&stale, &Options::default()).unwrap().validity,
        Validity::Invalid
    );
    both(&stale);
    // A write of a string: validation's error, whichever thread finds it.
    let mut broken = valid.clone();
    let at = broken.ops.len() / 2;
    if let Some(op) = broken.ops[at..]
        .iter_mut()
        .find(|o| o.f == F::Write && o.kind == OpType::Invoke)
    {
        op.value = Value::other(serde_json::json!("x"));
    }
    both(&broken);
    both(&histories::append_history(PARALLEL_MIN_OPS + 5_000, 10, 3));
}
