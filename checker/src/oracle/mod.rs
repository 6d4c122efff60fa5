//! Test oracle: the `counter` checker as it was before it streamed (each read judged
//! over the whole history) and `set-full`'s whole-history form, against which the
//! streaming ones (`CounterStream`, `SetStream`) are compared on random histories; and
//! `staleness`'s figures as computed before it streamed (`staleness`).

mod counter;
mod staleness;

use crate::Options;
use proptest::prelude::*;
use schism_history::{F, History, Op, OpType, Process, Value};

/// A random history of `incr`/`read` (counter) or `add`/`read` (set) by a few processes
/// on a few keys, with every outcome and ops left open at the end.
fn history(set: bool, steps: &[(u8, u8, u8, u8, i16)]) -> History {
    let mut ops = Vec::new();
    let mut open: Vec<Option<(F, u64, Value)>> = vec![None; 4];
    let mut total = [0i64; 3];
    let mut added: Vec<Vec<i64>> = vec![Vec::new(); 3];
    let mut next = 1i64;
    for (i, &(p, k, what, out, x)) in steps.iter().enumerate() {
        let p = usize::from(p % 4);
        let key = u64::from(k % 3);
        let t = i as u64 * 1000;
        let idx = ops.len() as u64;
        match open[p].take() {
            None => {
                let (f, v) = match (set, what % 3) {
                    (false, 0) => (F::Read, Value::Null),
                    (false, _) => (F::Incr, Value::Int(i64::from(x % 5))),
                    (true, 0) => (F::Read, Value::Null),
                    (true, _) => {
                        next += 1;
                        (F::Add, Value::Int(next))
                    }
                };
                if let (F::Add, Value::Int(v)) = (f, &v) {
                    added[key as usize].push(*v);
                }
                if let (F::Incr, Value::Int(d)) = (f, &v) {
                    total[key as usize] += d;
                }
                ops.push(Op::new(
                    idx,
                    t,
                    Process::client(p as u64),
                    OpType::Invoke,
                    f,
                    Some(key),
                    v.clone(),
                ));
                open[p] = Some((f, key, v));
            }
            Some((f, key, v)) => {
                let kind = match out % 5 {
                    0 => OpType::Fail,
                    1 => OpType::Info,
                    _ => OpType::Ok,
                };
                let value = match (f, kind) {
                    (F::Read, OpType::Ok) if set => {
                        let a = &added[key as usize];
                        let mut l: Vec<i64> = a
                            .iter()
                            .enumerate()
                            .filter(|(j, _)| (*j as i64 + i64::from(x)) % 4 != 0)
                            .map(|(_, v)| *v)
                            .collect();
                        if x % 17 == 0 {
                            l.push(1000 + i64::from(x));
                        }
                        if x % 13 == 0 && !l.is_empty() {
                            l.push(l[0]);
                        }
                        Value::list(l)
                    }
                    (F::Read, OpType::Ok) => Value::Int(total[key as usize] - i64::from(x % 4)),
                    (F::Read, _) => Value::Null,
                    _ => v,
                };
                ops.push(Op::new(
                    idx,
                    t,
                    Process::client(p as u64),
                    kind,
                    f,
                    Some(key),
                    value,
                ));
            }
        }
    }
    History::new(ops)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]
    #[test]
    fn streaming_counter_and_set_full_match_the_whole_history_checkers(
        steps in proptest::collection::vec((any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>(), any::<i16>()), 0..120),
        limit in 0usize..4,
    ) {
        let opts = Options { max_anomalies_per_kind: limit, ..Options::default() };
        let h = history(false, &steps);
        let ops = h.operations().unwrap();
        let new = crate::counter::check_ops(&h, &ops, &opts).unwrap();
        let old = counter::check_ops(&h, &ops, &opts).unwrap();
        prop_assert_eq!(new, old);
        let h = history(true, &steps);
        let ops = h.operations().unwrap();
        let new = crate::set_full::check_ops_streamed(&h, &ops, &opts).unwrap();
        let old = crate::set_full::check_ops(&h, &ops, &opts).unwrap();
        prop_assert_eq!(new, old);
    }
}
