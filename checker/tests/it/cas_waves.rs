//! The cas history that no exact search can refute within a budget, shared by the budget
//! tests and the linearizability benchmark (`#[path]`-included there), so the two measure
//! the same thing.

use schism_history::{F, History, Op, OpType, Process, Value};

/// Waves of 16 concurrent writes and a cas each, then a read of the very first value:
/// refuting it means trying every order of every wave. (Also the benchmark's budget buster.)
pub fn cas_waves(waves: i64) -> History {
    let mut ops = Vec::new();
    let mut push = |p: u64, kind, f: F, v: Value| {
        let i = ops.len() as u64;
        ops.push(Op::new(
            i,
            i * 1000,
            Process::client(p),
            kind,
            f,
            Some(0),
            v,
        ));
    };
    for wave in 0..waves {
        let cas = Value::list(vec![wave * 100 + 3, wave * 100 + 99]);
        push(16, OpType::Invoke, F::Cas, cas.clone());
        for p in 0..16u64 {
            push(
                p,
                OpType::Invoke,
                F::Write,
                Value::Int(wave * 100 + p as i64),
            );
        }
        for p in 0..16u64 {
            push(p, OpType::Ok, F::Write, Value::Int(wave * 100 + p as i64));
        }
        push(16, OpType::Ok, F::Cas, cas);
    }
    push(99, OpType::Invoke, F::Read, Value::Null);
    push(99, OpType::Ok, F::Read, Value::Int(0));
    History::new(ops)
}
