//! A small builder for hand-written histories: one op per line, time = index in ms.

use schism_checker::{Anomaly, AnomalyKind, CheckResult, Options, Validity};
use schism_history::{F, History, Op, OpType, Process, Value};

#[derive(Debug, Default)]
pub struct B {
    ops: Vec<Op>,
}

impl B {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one line and returns its index.
    pub fn push(&mut self, p: u64, kind: OpType, f: F, key: u64, value: Value) -> u64 {
        let i = self.ops.len() as u64;
        self.ops.push(Op::new(
            i,
            i * 1_000_000,
            Process::client(p),
            kind,
            f,
            Some(key),
            value,
        ));
        i
    }

    pub fn inv(&mut self, p: u64, f: F, key: u64, value: Value) -> u64 {
        self.push(p, OpType::Invoke, f, key, value)
    }

    pub fn ok(&mut self, p: u64, f: F, key: u64, value: Value) -> u64 {
        self.push(p, OpType::Ok, f, key, value)
    }

    pub fn fail(&mut self, p: u64, f: F, key: u64, value: Value) -> u64 {
        self.push(p, OpType::Fail, f, key, value)
    }

    pub fn info(&mut self, p: u64, f: F, key: u64, value: Value) -> u64 {
        self.push(p, OpType::Info, f, key, value)
    }

    /// A whole append, returning the completion's index.
    pub fn append(&mut self, p: u64, key: u64, v: i64) -> u64 {
        self.inv(p, F::Append, key, Value::Int(v));
        self.ok(p, F::Append, key, Value::Int(v))
    }

    /// A whole list read, returning the completion's index.
    pub fn read_list(&mut self, p: u64, key: u64, vals: &[i64]) -> u64 {
        self.inv(p, F::Read, key, Value::Null);
        self.ok(p, F::Read, key, Value::list(vals.to_vec()))
    }

    pub fn write(&mut self, p: u64, key: u64, v: i64) -> u64 {
        self.inv(p, F::Write, key, Value::Int(v));
        self.ok(p, F::Write, key, Value::Int(v))
    }

    /// A whole register read (`None` is nil), returning the completion's index.
    pub fn read(&mut self, p: u64, key: u64, v: Option<i64>) -> u64 {
        self.inv(p, F::Read, key, Value::Null);
        self.ok(p, F::Read, key, v.map_or(Value::Null, Value::Int))
    }

    pub fn history(&self) -> History {
        History::new(self.ops.clone())
    }
}

pub fn cas(e: i64, n: i64) -> Value {
    Value::list(vec![e, n])
}

pub fn check(h: &History) -> CheckResult {
    check_with(h, &Options::default())
}

pub fn check_with(h: &History, opts: &Options) -> CheckResult {
    let report = schism_checker::check(h, opts).expect("the history is checkable");
    assert_eq!(report.results.len(), 1);
    assert_eq!(report.validity, report.results[0].validity);
    report.results.into_iter().next().unwrap()
}

pub fn kinds(r: &CheckResult) -> Vec<AnomalyKind> {
    r.anomalies.iter().map(|a| a.kind).collect()
}

/// Asserts the result is valid with no anomalies, showing them otherwise.
pub fn assert_valid(r: &CheckResult) {
    assert_eq!(r.validity, Validity::Valid, "{:#?}", r.anomalies);
    assert!(r.anomalies.is_empty());
}

/// Asserts exactly one anomaly, of this kind, naming these ops; returns it.
pub fn assert_one(r: &CheckResult, kind: AnomalyKind, ops: &[u64]) -> Anomaly {
    assert_eq!(r.validity, Validity::Invalid);
    assert_eq!(kinds(r), vec![kind], "{:#?}", r.anomalies);
    let a = r.anomalies[0].clone();
    assert_eq!(a.ops, ops, "{}", a.explanation);
    a
}

/// The valid twin of the basic stale read, shared by every checker that must pass it: p3's
/// read of key 7 begins before append 2 completes, so missing 2 is no anomaly.
pub fn stale_read_twin() -> History {
    let mut b = B::new();
    b.append(1, 7, 1);
    b.inv(3, F::Read, 7, Value::Null);
    b.append(1, 7, 2);
    b.ok(3, F::Read, 7, Value::list(vec![1]));
    b.read_list(2, 7, &[1, 2]);
    b.history()
}
