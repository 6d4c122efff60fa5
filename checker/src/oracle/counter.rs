use crate::explain::{invoke_ns, op_index, secs};
use crate::report::{Anomaly, AnomalyKind, AnomalySink, CheckResult, Validity};
use crate::{CheckError, Options};
use schism_history::{F, History, Key, Operation, Outcome, Value};
use std::collections::BTreeMap;

#[derive(Default)]
struct KeyCounter<'a> {
    /// (completion position, delta) of ok increments, sorted.
    acked: Vec<(usize, i64)>,
    /// (invoke position, delta) of ok and indeterminate increments, sorted.
    attempted: Vec<(usize, i64)>,
    reads: Vec<(&'a Operation, i64)>,
}

/// Prefix sums of (delta, positive part, negative part).
fn prefix(v: &[(usize, i64)]) -> Vec<(i128, i128, i128)> {
    let mut out = Vec::with_capacity(v.len() + 1);
    let mut acc = (0i128, 0i128, 0i128);
    out.push(acc);
    for &(_, d) in v {
        let d = i128::from(d);
        acc = (acc.0 + d, acc.1 + d.max(0), acc.2 + d.min(0));
        out.push(acc);
    }
    out
}

#[allow(dead_code)]
pub(crate) fn check_ops(
    h: &History,
    ops: &[Operation],
    opts: &Options,
) -> Result<CheckResult, CheckError> {
    let mut keys: BTreeMap<Key, KeyCounter<'_>> = BTreeMap::new();
    let (mut incr_ok, mut incr_fail, mut incr_info) = (0u64, 0u64, 0u64);
    for o in ops {
        let index = h.ops[o.invoke()].index();
        let k = keys.entry(o.key().unwrap_or(0)).or_default();
        match (&o.f, &o.value) {
            (F::Incr | F::Add, Value::Int(d)) => match o.outcome {
                Outcome::Ok => {
                    incr_ok += 1;
                    k.acked.push((o.complete().expect("ok ops complete"), *d));
                    k.attempted.push((o.invoke(), *d));
                }
                Outcome::Info => {
                    incr_info += 1;
                    k.attempted.push((o.invoke(), *d));
                }
                Outcome::Fail => incr_fail += 1,
            },
            (F::Incr | F::Add, v) => {
                return Err(CheckError::Op {
                    index,
                    msg: format!("{} value {v} is not an integer", o.f),
                });
            }
            (F::Read, _) if o.outcome != Outcome::Ok => {}
            (F::Read, Value::Int(v)) => k.reads.push((o, *v)),
            (F::Read, v) => {
                return Err(CheckError::Op {
                    index: op_index(h, o),
                    msg: format!("counter read returned {v}, not an integer"),
                });
            }
            (f, _) => {
                return Err(CheckError::Op {
                    index,
                    msg: format!(
                        "function {:?} does not belong to the counter workload (incr, add, read)",
                        f.as_str()
                    ),
                });
            }
        }
    }
    let mut sink = AnomalySink::new(opts.max_anomalies_per_kind);
    let mut reads = 0u64;
    for (&key, k) in keys.iter_mut() {
        if opts.aborted() {
            let mut figures = serde_json::Map::new();
            figures.insert("unknown_reason".into(), "aborted".into());
            return Ok(CheckResult {
                checker: "counter".into(),
                validity: Validity::Unknown,
                anomalies: Vec::new(),
                figures,
            });
        }
        k.acked.sort_unstable();
        k.attempted.sort_unstable();
        let acked = prefix(&k.acked);
        let attempted = prefix(&k.attempted);
        for &(r, v) in &k.reads {
            reads += 1;
            let done = r.complete().expect("ok reads complete");
            let c = k.acked.partition_point(|&(p, _)| p < r.invoke());
            let a = k.attempted.partition_point(|&(p, _)| p < done);
            let certain = acked[c];
            // Possible = attempted before the read ended minus the certain ones (every
            // certain increment was invoked before it completed, hence before `done`).
            let pos = attempted[a].1 - certain.1;
            let neg = attempted[a].2 - certain.2;
            let lower = certain.0 + neg;
            let upper = certain.0 + pos;
            let v128 = i128::from(v);
            if v128 < lower || v128 > upper {
                sink.push_with(AnomalyKind::CounterOutOfBounds, || {
                    let side = if v128 < lower {
                        format!(
                            "below {lower}: increments acknowledged before it began sum to {}",
                            certain.0
                        )
                    } else {
                        format!(
                            "above {upper}: all increments attempted before it ended sum to at most {upper}"
                        )
                    };
                    Anomaly::new(
                        AnomalyKind::CounterOutOfBounds,
                        Some(key),
                        vec![op_index(h, r)],
                        format!(
                            "process {} read {v} from counter {key} at t={}, which must lie within [{lower}, {upper}]; it is {side}",
                            r.process,
                            secs(invoke_ns(h, r)),
                        ),
                    )
                });
            }
        }
    }
    let mut figures = serde_json::Map::new();
    figures.insert("keys".into(), keys.len().into());
    figures.insert("reads".into(), reads.into());
    figures.insert("incr_ok".into(), incr_ok.into());
    figures.insert("incr_fail".into(), incr_fail.into());
    figures.insert("incr_info".into(), incr_info.into());
    let found = !sink.is_empty();
    let anomalies = sink.finish(&[AnomalyKind::CounterOutOfBounds], &mut figures);
    Ok(CheckResult {
        checker: "counter".into(),
        validity: if found {
            Validity::Invalid
        } else {
            Validity::Valid
        },
        anomalies,
        figures,
    })
}
