//! The `txn` checker: a minimal history for every anomaly kind, reported with that kind,
//! each with a valid twin (explanations snapshot-tested); the Elle EDN fixtures that
//! `schism check` reads are generated from the same cases (`SCHISM_BLESS=1` rewrites
//! them); malformed transactions name `file:line`.

use schism_checker::txn::{ConsistencyModel, TxnOptions, TxnWorkload, check_txn};
use schism_checker::{AnomalyKind, CheckResult, Validity};
use schism_history::txn::{MicroOp, MopF, MopValue, txn_value};
use schism_history::{F, History, Op, OpType, Process};
use std::path::PathBuf;

/// One transaction of a hand-written history.
#[derive(Clone)]
pub struct T {
    pub process: u64,
    pub outcome: OpType,
    pub mops: Vec<MicroOp>,
}

pub fn ok(process: u64, mops: Vec<MicroOp>) -> T {
    T {
        process,
        outcome: OpType::Ok,
        mops,
    }
}

pub fn failed(process: u64, mops: Vec<MicroOp>) -> T {
    T {
        process,
        outcome: OpType::Fail,
        mops,
    }
}

pub fn a(k: u64, v: i64) -> MicroOp {
    MicroOp::append(k, v)
}

pub fn w(k: u64, v: i64) -> MicroOp {
    MicroOp::write(k, v)
}

/// A list read: `None` is nil.
pub fn r(k: u64, v: Option<&[i64]>) -> MicroOp {
    MicroOp {
        f: MopF::Read,
        key: k,
        value: v.map_or(MopValue::Nil, |xs| MopValue::List(xs.to_vec())),
    }
}

/// A register read.
pub fn rr(k: u64, v: Option<i64>) -> MicroOp {
    MicroOp {
        f: MopF::Read,
        key: k,
        value: v.map_or(MopValue::Nil, MopValue::Int),
    }
}

/// How the transactions overlap in time.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Timing {
    /// Every invocation before every completion: no real-time order.
    Concurrent,
    /// Each completes before the next is invoked.
    Sequential,
}

fn op(i: usize, p: u64, kind: OpType, mops: &[MicroOp]) -> Op {
    Op::new(
        i as u64,
        i as u64 * 1_000_000,
        Process::client(p),
        kind,
        F::parse("txn"),
        None,
        txn_value(mops),
    )
}

fn invoked(mops: &[MicroOp]) -> Vec<MicroOp> {
    mops.iter()
        .map(|m| match m.f {
            MopF::Read => MicroOp::read(m.key),
            _ => m.clone(),
        })
        .collect()
}

/// The history of these transactions (an `ok` completion carries the reads).
pub fn history(timing: Timing, txns: &[T]) -> History {
    let mut ops = Vec::new();
    let complete = |ops: &mut Vec<Op>, t: &T| {
        let mops = if t.outcome == OpType::Ok {
            t.mops.clone()
        } else {
            invoked(&t.mops)
        };
        ops.push(op(ops.len(), t.process, t.outcome, &mops));
    };
    match timing {
        Timing::Concurrent => {
            for t in txns {
                ops.push(op(ops.len(), t.process, OpType::Invoke, &invoked(&t.mops)));
            }
            for t in txns {
                complete(&mut ops, t);
            }
        }
        Timing::Sequential => {
            for t in txns {
                ops.push(op(ops.len(), t.process, OpType::Invoke, &invoked(&t.mops)));
                complete(&mut ops, t);
            }
        }
    }
    History::new(ops)
}

pub fn check(w: TxnWorkload, m: ConsistencyModel, h: &History) -> CheckResult {
    check_txn(h, &TxnOptions::new(w, m)).expect("checkable")
}

fn kinds(r: &CheckResult) -> Vec<AnomalyKind> {
    let mut k: Vec<_> = r.anomalies.iter().map(|a| a.kind).collect();
    k.sort();
    k.dedup();
    k
}

/// One case: a history showing `kind`, and its valid twin.
pub struct Case {
    pub name: &'static str,
    pub workload: TxnWorkload,
    pub kind: AnomalyKind,
    pub timing: Timing,
    pub bad: Vec<T>,
    pub good: Vec<T>,
}

fn la(name: &'static str, kind: AnomalyKind, timing: Timing, bad: Vec<T>, good: Vec<T>) -> Case {
    Case {
        name,
        workload: TxnWorkload::ListAppend,
        kind,
        timing,
        bad,
        good,
    }
}

fn reg(name: &'static str, kind: AnomalyKind, timing: Timing, bad: Vec<T>, good: Vec<T>) -> Case {
    Case {
        name,
        workload: TxnWorkload::RwRegister,
        kind,
        timing,
        bad,
        good,
    }
}

/// Every case: one per anomaly kind (list-append), plus the rw-register ones.
pub fn cases() -> Vec<Case> {
    use AnomalyKind::*;
    use Timing::*;
    let x = 1;
    let y = 2;
    let z = 3;
    let v = 4;
    vec![
        la(
            "la-G0",
            G0,
            Concurrent,
            vec![
                ok(1, vec![a(x, 1), a(y, 1)]),
                ok(2, vec![a(x, 2), a(y, 2)]),
                ok(3, vec![r(x, Some(&[1, 2])), r(y, Some(&[2, 1]))]),
            ],
            vec![
                ok(1, vec![a(x, 1), a(y, 1)]),
                ok(2, vec![a(x, 2), a(y, 2)]),
                ok(3, vec![r(x, Some(&[1, 2])), r(y, Some(&[1, 2]))]),
            ],
        ),
        la(
            "la-G1a",
            G1a,
            Concurrent,
            vec![failed(1, vec![a(x, 1)]), ok(2, vec![r(x, Some(&[1]))])],
            vec![ok(1, vec![a(x, 1)]), ok(2, vec![r(x, Some(&[1]))])],
        ),
        la(
            "la-G1b",
            G1b,
            Concurrent,
            vec![ok(1, vec![a(x, 1), a(x, 2)]), ok(2, vec![r(x, Some(&[1]))])],
            vec![
                ok(1, vec![a(x, 1), a(x, 2)]),
                ok(2, vec![r(x, Some(&[1, 2]))]),
            ],
        ),
        la(
            "la-G1c",
            G1c,
            Concurrent,
            vec![
                ok(1, vec![a(x, 1), r(y, Some(&[2]))]),
                ok(2, vec![a(y, 2), r(x, Some(&[1]))]),
            ],
            vec![
                ok(1, vec![a(x, 1), r(y, Some(&[2]))]),
                ok(2, vec![a(y, 2), r(x, None)]),
            ],
        ),
        la(
            "la-G-single",
            GSingle,
            Concurrent,
            vec![
                ok(1, vec![a(x, 1), a(y, 1)]),
                ok(2, vec![a(x, 2), r(y, None)]),
                ok(3, vec![r(x, Some(&[1, 2])), r(y, Some(&[1]))]),
            ],
            vec![
                ok(1, vec![a(x, 1), a(y, 1)]),
                ok(2, vec![a(x, 2), r(y, Some(&[1]))]),
                ok(3, vec![r(x, Some(&[1, 2])), r(y, Some(&[1]))]),
            ],
        ),
        la(
            "la-fractured-read",
            GSingle,
            Concurrent,
            vec![
                ok(1, vec![a(x, 1), a(y, 1)]),
                ok(2, vec![r(x, None), r(y, Some(&[1]))]),
                ok(3, vec![r(x, Some(&[1]))]),
            ],
            vec![
                ok(1, vec![a(x, 1), a(y, 1)]),
                ok(2, vec![r(x, Some(&[1])), r(y, Some(&[1]))]),
                ok(3, vec![r(x, Some(&[1]))]),
            ],
        ),
        la(
            "la-consistent-prefix",
            GSingle,
            Concurrent,
            vec![
                ok(1, vec![a(x, 1)]),
                ok(2, vec![r(x, Some(&[1])), a(y, 2)]),
                ok(3, vec![r(y, Some(&[2])), r(x, None)]),
            ],
            vec![
                ok(1, vec![a(x, 1)]),
                ok(2, vec![r(x, Some(&[1])), a(y, 2)]),
                ok(3, vec![r(y, Some(&[2])), r(x, Some(&[1]))]),
            ],
        ),
        la(
            "la-G-nonadjacent",
            GNonadjacent,
            Concurrent,
            vec![
                ok(1, vec![r(x, None), r(v, Some(&[4]))]),
                ok(2, vec![a(x, 1), a(y, 2)]),
                ok(3, vec![r(y, Some(&[2])), r(z, None)]),
                ok(4, vec![a(z, 3), a(v, 4)]),
                ok(5, vec![r(x, Some(&[1])), r(z, Some(&[3]))]),
            ],
            vec![
                ok(1, vec![r(x, Some(&[1])), r(v, Some(&[4]))]),
                ok(2, vec![a(x, 1), a(y, 2)]),
                ok(3, vec![r(y, Some(&[2])), r(z, None)]),
                ok(4, vec![a(z, 3), a(v, 4)]),
                ok(5, vec![r(x, Some(&[1])), r(z, Some(&[3]))]),
            ],
        ),
        la(
            "la-G2-item",
            G2Item,
            Concurrent,
            vec![
                ok(1, vec![r(x, None), r(y, None), a(x, 1)]),
                ok(2, vec![r(x, None), r(y, None), a(y, 2)]),
                ok(3, vec![r(x, Some(&[1])), r(y, Some(&[2]))]),
            ],
            vec![
                ok(1, vec![r(x, None), r(y, None), a(x, 1)]),
                ok(2, vec![r(x, Some(&[1])), r(y, None), a(y, 2)]),
                ok(3, vec![r(x, Some(&[1])), r(y, Some(&[2]))]),
            ],
        ),
        la(
            "la-G0-process",
            G0Process,
            Sequential,
            vec![
                ok(1, vec![a(x, 1)]),
                ok(1, vec![a(x, 2)]),
                ok(2, vec![r(x, Some(&[2, 1]))]),
            ],
            vec![
                ok(1, vec![a(x, 1)]),
                ok(1, vec![a(x, 2)]),
                ok(2, vec![r(x, Some(&[1, 2]))]),
            ],
        ),
        la(
            "la-G-single-realtime",
            GSingleRealtime,
            Sequential,
            vec![
                ok(1, vec![a(x, 1)]),
                ok(2, vec![r(x, None)]),
                ok(3, vec![r(x, Some(&[1]))]),
            ],
            vec![
                ok(1, vec![a(x, 1)]),
                ok(2, vec![r(x, Some(&[1]))]),
                ok(3, vec![r(x, Some(&[1]))]),
            ],
        ),
        la(
            "la-internal",
            Internal,
            Concurrent,
            vec![ok(1, vec![a(x, 1), r(x, None)])],
            vec![ok(1, vec![a(x, 1), r(x, Some(&[1]))])],
        ),
        la(
            "la-future-read",
            FutureRead,
            Concurrent,
            vec![ok(1, vec![r(x, Some(&[1])), a(x, 1)])],
            vec![ok(1, vec![r(x, None), a(x, 1)])],
        ),
        la(
            "la-duplicate-elements",
            DuplicateElement,
            Concurrent,
            vec![ok(1, vec![a(x, 1)]), ok(2, vec![r(x, Some(&[1, 1]))])],
            vec![ok(1, vec![a(x, 1)]), ok(2, vec![r(x, Some(&[1]))])],
        ),
        la(
            "la-incompatible-order",
            IncompatibleOrder,
            Concurrent,
            vec![
                ok(1, vec![a(x, 1)]),
                ok(2, vec![a(x, 2)]),
                ok(3, vec![r(x, Some(&[1, 2]))]),
                ok(4, vec![r(x, Some(&[2, 1]))]),
            ],
            vec![
                ok(1, vec![a(x, 1)]),
                ok(2, vec![a(x, 2)]),
                ok(3, vec![r(x, Some(&[1, 2]))]),
                ok(4, vec![r(x, Some(&[1]))]),
            ],
        ),
        la(
            "la-lost-update",
            LostUpdate,
            Concurrent,
            vec![
                ok(1, vec![r(x, None), a(x, 1)]),
                ok(2, vec![r(x, None), a(x, 2)]),
                ok(3, vec![r(x, Some(&[1, 2]))]),
            ],
            vec![
                ok(1, vec![r(x, None), a(x, 1)]),
                ok(2, vec![r(x, Some(&[1])), a(x, 2)]),
                ok(3, vec![r(x, Some(&[1, 2]))]),
            ],
        ),
        la(
            "la-dirty-update",
            DirtyUpdate,
            Concurrent,
            vec![
                failed(1, vec![a(x, 1)]),
                ok(2, vec![a(x, 2)]),
                ok(3, vec![r(x, Some(&[1, 2]))]),
            ],
            vec![
                ok(1, vec![a(x, 1)]),
                ok(2, vec![a(x, 2)]),
                ok(3, vec![r(x, Some(&[1, 2]))]),
            ],
        ),
        la(
            "la-phantom-read",
            PhantomRead,
            Concurrent,
            vec![ok(1, vec![a(x, 1)]), ok(2, vec![r(x, Some(&[9]))])],
            vec![ok(1, vec![a(x, 1)]), ok(2, vec![r(x, Some(&[1]))])],
        ),
        reg(
            "rr-G1a",
            G1a,
            Concurrent,
            vec![failed(1, vec![w(x, 1)]), ok(2, vec![rr(x, Some(1))])],
            vec![ok(1, vec![w(x, 1)]), ok(2, vec![rr(x, Some(1))])],
        ),
        reg(
            "rr-G1b",
            G1b,
            Concurrent,
            vec![ok(1, vec![w(x, 1), w(x, 2)]), ok(2, vec![rr(x, Some(1))])],
            vec![ok(1, vec![w(x, 1), w(x, 2)]), ok(2, vec![rr(x, Some(2))])],
        ),
        reg(
            "rr-G1c",
            G1c,
            Concurrent,
            vec![
                ok(1, vec![w(x, 1), rr(y, Some(2))]),
                ok(2, vec![w(y, 2), rr(x, Some(1))]),
            ],
            vec![
                ok(1, vec![w(x, 1), rr(y, Some(2))]),
                ok(2, vec![w(y, 2), rr(x, None)]),
            ],
        ),
        reg(
            "rr-G2-item",
            G2Item,
            Concurrent,
            vec![
                ok(1, vec![rr(x, None), rr(y, None), w(x, 1)]),
                ok(2, vec![rr(x, None), rr(y, None), w(y, 2)]),
            ],
            vec![
                ok(1, vec![rr(x, None), rr(y, None), w(x, 1)]),
                ok(2, vec![rr(x, Some(1)), rr(y, None), w(y, 2)]),
            ],
        ),
        reg(
            "rr-lost-update",
            LostUpdate,
            Concurrent,
            vec![
                ok(1, vec![rr(x, None), w(x, 1)]),
                ok(2, vec![rr(x, None), w(x, 2)]),
            ],
            vec![
                ok(1, vec![rr(x, None), w(x, 1)]),
                ok(2, vec![rr(x, Some(1)), w(x, 2)]),
            ],
        ),
        reg(
            "rr-internal",
            Internal,
            Concurrent,
            vec![ok(1, vec![w(x, 1), rr(x, Some(2))]), ok(2, vec![w(x, 2)])],
            vec![ok(1, vec![w(x, 1), rr(x, Some(1))]), ok(2, vec![w(x, 2)])],
        ),
    ]
}

#[test]
fn every_kind_has_a_minimal_history_and_a_valid_twin() {
    use ConsistencyModel::StrictSerializable;
    let mut covered = std::collections::BTreeSet::new();
    for c in cases() {
        let bad = check(c.workload, StrictSerializable, &history(c.timing, &c.bad));
        assert_eq!(bad.validity, Validity::Invalid, "{}: {bad:#?}", c.name);
        assert!(
            kinds(&bad).contains(&c.kind),
            "{}: {:?}",
            c.name,
            kinds(&bad)
        );
        covered.insert(c.kind);
        let good = check(c.workload, StrictSerializable, &history(c.timing, &c.good));
        assert_eq!(good.validity, Validity::Valid, "{} twin: {good:#?}", c.name);
        assert!(good.anomalies.is_empty(), "{}", c.name);
        let text: Vec<String> = bad
            .anomalies
            .iter()
            .map(|a| format!("{}: {}", a.kind, a.explanation))
            .collect();
        let ruled_out = bad.figures["ruled_out"].clone();
        insta::assert_snapshot!(
            c.name,
            format!("{}\nruled out: {ruled_out}", text.join("\n"))
        );
    }
    for k in schism_checker::txn::kinds() {
        let variant_of_covered = matches!(
            k,
            AnomalyKind::G0Realtime
                | AnomalyKind::G1cProcess
                | AnomalyKind::G1cRealtime
                | AnomalyKind::GSingleProcess
                | AnomalyKind::GNonadjacentProcess
                | AnomalyKind::GNonadjacentRealtime
                | AnomalyKind::G2ItemProcess
                | AnomalyKind::G2ItemRealtime
        );
        assert!(
            covered.contains(&k) || variant_of_covered,
            "{k} has no case"
        );
    }
}

#[test]
fn the_model_decides_the_verdict() {
    use ConsistencyModel::*;
    let find = |n: &str| cases().into_iter().find(|c| c.name == n).unwrap();
    let verdict = |n: &str, m| {
        let c = find(n);
        check(c.workload, m, &history(c.timing, &c.bad)).validity
    };
    // Write skew: allowed by snapshot isolation, not by serializability.
    assert_eq!(verdict("la-G2-item", SnapshotIsolation), Validity::Valid);
    assert_eq!(verdict("la-G2-item", Serializable), Validity::Invalid);
    assert_eq!(verdict("la-G2-item", RepeatableRead), Validity::Invalid);
    // A fractured read breaks read atomic; plain read skew with a ww edge does not.
    assert_eq!(verdict("la-fractured-read", ReadAtomic), Validity::Invalid);
    assert_eq!(verdict("la-fractured-read", ReadCommitted), Validity::Valid);
    assert_eq!(verdict("la-G-single", ReadAtomic), Validity::Valid);
    assert_eq!(verdict("la-G-single", SnapshotIsolation), Validity::Invalid);
    // Consistent prefix is causal's anomaly.
    assert_eq!(verdict("la-consistent-prefix", Causal), Validity::Invalid);
    assert_eq!(verdict("la-consistent-prefix", ReadAtomic), Validity::Valid);
    // A stale read is fine for serializability, not for strict serializability.
    assert_eq!(
        verdict("la-G-single-realtime", Serializable),
        Validity::Valid
    );
    assert_eq!(
        verdict("la-G-single-realtime", StrictSerializable),
        Validity::Invalid
    );
    assert_eq!(verdict("la-G1a", ReadCommitted), Validity::Invalid);
}

#[test]
fn info_transactions_may_or_may_not_have_happened() {
    let info = |process, mops| T {
        process,
        outcome: OpType::Info,
        mops,
    };
    let x = 1;
    // Seen: its append happened (not an aborted read); unseen: it did not.
    for reads in [Some(&[1][..]), None] {
        let h = history(
            Timing::Sequential,
            &[info(1, vec![a(x, 1)]), ok(2, vec![r(x, reads)])],
        );
        let res = check(
            TxnWorkload::ListAppend,
            ConsistencyModel::StrictSerializable,
            &h,
        );
        assert_eq!(res.validity, Validity::Valid, "{reads:?}: {res:#?}");
    }
    // A failed one never happened: reading its append is G1a.
    let h = history(
        Timing::Sequential,
        &[failed(1, vec![a(x, 1)]), ok(2, vec![r(x, Some(&[1]))])],
    );
    let res = check(TxnWorkload::ListAppend, ConsistencyModel::ReadCommitted, &h);
    assert_eq!(kinds(&res), [AnomalyKind::G1a]);
}

#[test]
fn a_tiny_budget_is_unknown_yet_names_a_cycle() {
    let c = cases()
        .into_iter()
        .find(|c| c.name == "la-G2-item")
        .unwrap();
    let mut o = TxnOptions::new(c.workload, ConsistencyModel::SnapshotIsolation);
    o.max_cycle_states = 1;
    let r = check_txn(&history(c.timing, &c.bad), &o).unwrap();
    assert_eq!(r.validity, Validity::Unknown);
    assert!(!r.anomalies.is_empty());
    assert!(!r.anomalies[0].cycle.is_empty());
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/txn")
}

/// Elle's EDN form of a history.
pub fn to_edn(h: &History) -> String {
    let mut out = String::from("[\n");
    for o in &h.ops {
        let mops = schism_history::txn::parse_txn(&o.value).unwrap();
        let mops: Vec<String> = mops
            .iter()
            .map(|m| format!("[:{} {} {}]", m.f.as_str(), m.key, m.value))
            .collect();
        let kind = match o.kind {
            OpType::Invoke => "invoke",
            OpType::Ok => "ok",
            OpType::Fail => "fail",
            OpType::Info => "info",
        };
        out.push_str(&format!(
            " {{:type :{kind}, :f :txn, :value [{}], :process {}, :time {}, :index {}}}\n",
            mops.join(" "),
            o.process,
            o.time_ns,
            o.index()
        ));
    }
    out.push_str("]\n");
    out
}

/// The fixtures `schism check` is tested on: `<case>.edn` (shows the kind in its name)
/// and `<case>.valid.edn`, generated from `cases()`.
#[test]
fn edn_fixtures_are_current_and_read_back() {
    let dir = fixtures();
    let bless = std::env::var_os("SCHISM_BLESS").is_some();
    for c in cases() {
        for (suffix, txns) in [("edn", &c.bad), ("valid.edn", &c.good)] {
            let h = history(c.timing, txns);
            let text = to_edn(&h);
            let path = dir.join(format!("{}.{suffix}", c.name));
            if bless {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &text).unwrap();
            }
            let on_disk = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e} (SCHISM_BLESS=1 writes it)", path.display()));
            assert_eq!(
                on_disk,
                text,
                "{} is stale: SCHISM_BLESS=1 rewrites it",
                path.display()
            );
            let back = schism_history::read_edn(&text, &path).unwrap();
            assert_eq!(back.ops.len(), h.ops.len());
            let a = check(c.workload, ConsistencyModel::StrictSerializable, &back);
            let b = check(c.workload, ConsistencyModel::StrictSerializable, &h);
            assert_eq!(a.validity, b.validity, "{}", path.display());
            assert_eq!(kinds(&a), kinds(&b), "{}", path.display());
        }
    }
}

#[test]
fn malformed_transactions_name_file_and_line() {
    let text = "[{:type :invoke, :f :txn, :value [[:append 1 2]], :process 0}\n {:type :ok, :f :txn, :value [[:append 1 2] [:r]], :process 0}]\n";
    let h = schism_history::read_edn(text, std::path::Path::new("h.edn")).unwrap();
    let e = check_txn(
        &h,
        &TxnOptions::new(TxnWorkload::ListAppend, ConsistencyModel::Serializable),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("h.edn:2"), "{e}");
    let json = r#"{"index":0,"time_ns":0,"process":0,"type":"invoke","f":"txn","value":[["append",1,2],["x",1,null]]}"#;
    let (h, _) =
        schism_history::read_jsonl(json.as_bytes(), std::path::Path::new("h.jsonl")).unwrap();
    let e = check_txn(
        &h,
        &TxnOptions::new(TxnWorkload::ListAppend, ConsistencyModel::Serializable),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("h.jsonl:1") && e.contains("micro-op 2"), "{e}");
}
