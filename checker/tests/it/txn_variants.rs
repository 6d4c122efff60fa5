//! The `-process` and `-realtime` variants of every cycle kind, and the session models
//! they separate: for each variant a minimal list-append history whose cycle closes only
//! through process (resp. real-time) order, reported with exactly that kind, and its
//! valid twin; explanations snapshot-tested; Elle EDN fixtures generated from the same
//! cases (`SCHISM_BLESS=1` rewrites them) for `schism check`. Then, for every consistency
//! model, a history that separates it from its neighbours (valid under the weaker ones,
//! invalid under it).
//!
//! The histories are laid out event by event (invocations and completions), so a
//! `-process` case can order one process's transactions without ordering the others in
//! real time, and a `-realtime` case can order two processes' transactions.

use crate::txn::{T, a, check, ok, r, to_edn};
use schism_checker::txn::{ConsistencyModel, TxnWorkload};
use schism_checker::{AnomalyKind, CheckResult, Validity};
use schism_history::txn::{MicroOp, MopF, txn_value};
use schism_history::{F, History, Op, OpType, Process};
use std::path::PathBuf;

/// One event of a laid-out history: the invocation or completion of transaction `i`.
#[derive(Clone, Copy)]
enum Ev {
    I(usize),
    C(usize),
}
use Ev::{C, I};

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

/// The history of `txns` with invocations and completions in the order of `events`.
fn laid_out(txns: &[T], events: &[Ev]) -> History {
    let mut ops = Vec::new();
    for &e in events {
        let (t, kind, mops) = match e {
            I(i) => {
                let t = &txns[i];
                let invoked: Vec<MicroOp> = t
                    .mops
                    .iter()
                    .map(|m| match m.f {
                        MopF::Read => MicroOp::read(m.key),
                        _ => m.clone(),
                    })
                    .collect();
                (t, OpType::Invoke, invoked)
            }
            C(i) => (&txns[i], txns[i].outcome, txns[i].mops.clone()),
        };
        ops.push(op(ops.len(), t.process, kind, &mops));
    }
    History::new(ops)
}

/// Transactions one after another.
fn sequential(n: usize) -> Vec<Ev> {
    (0..n).flat_map(|i| [I(i), C(i)]).collect()
}

/// A variant's case: the history showing `kind`, its valid twin, and their layout.
struct Case {
    name: &'static str,
    kind: AnomalyKind,
    events: Vec<Ev>,
    bad: Vec<T>,
    good: Vec<T>,
}

fn case(name: &'static str, kind: AnomalyKind, events: Vec<Ev>, bad: Vec<T>, good: Vec<T>) -> Case {
    Case {
        name,
        kind,
        events,
        bad,
        good,
    }
}

/// Every variant the `txn` checker's base cases (`crate::txn::cases`) leave out.
fn cases() -> Vec<Case> {
    use AnomalyKind::*;
    let (x, y, z) = (1, 2, 3);
    // T0 then T1 on one process (or, for -realtime, two processes with T0 done before
    // T1 begins); T2 and T3 overlap everything; the last transaction reads every key
    // (Elle's version orders come from reads: an append never read has no place in one).
    let around = vec![I(2), I(3), I(0), C(0), I(1), C(1), C(2), C(3), I(4), C(4)];
    let around3 = vec![I(2), I(0), C(0), I(1), C(1), C(2), I(3), C(3)];
    // G-nonadjacent: T0 -p/rt-> T1 -rw(y)-> T2 -wr(z)-> T3 -rw(x)-> T0.
    let nonadjacent = |p1: u64, x_seen: Option<&[i64]>| {
        vec![
            ok(1, vec![a(x, 1)]),
            ok(p1, vec![r(y, None)]),
            ok(2, vec![a(y, 2), a(z, 3)]),
            ok(3, vec![r(z, Some(&[3])), r(x, x_seen)]),
            ok(
                9,
                vec![r(x, Some(&[1])), r(y, Some(&[2])), r(z, Some(&[3]))],
            ),
        ]
    };
    // G2-item: T0 -p/rt-> T1 -rw(y)-> T2 -rw(x)-> T0.
    let g2 = |p1: u64, x_seen: Option<&[i64]>| {
        vec![
            ok(1, vec![a(x, 1)]),
            ok(p1, vec![r(y, None)]),
            ok(2, vec![a(y, 2), r(x, x_seen)]),
            ok(9, vec![r(x, Some(&[1])), r(y, Some(&[2]))]),
        ]
    };
    vec![
        case(
            "la-G0-realtime",
            G0Realtime,
            vec![I(2), I(0), C(0), I(1), C(1), C(2)],
            vec![
                ok(1, vec![a(x, 1)]),
                ok(2, vec![a(x, 2)]),
                ok(3, vec![r(x, Some(&[2, 1]))]),
            ],
            vec![
                ok(1, vec![a(x, 1)]),
                ok(2, vec![a(x, 2)]),
                ok(3, vec![r(x, Some(&[1, 2]))]),
            ],
        ),
        case(
            "la-G1c-process",
            G1cProcess,
            sequential(2),
            vec![ok(1, vec![r(x, Some(&[1]))]), ok(1, vec![a(x, 1)])],
            vec![ok(1, vec![r(x, None)]), ok(1, vec![a(x, 1)])],
        ),
        case(
            "la-G1c-realtime",
            G1cRealtime,
            sequential(2),
            vec![ok(1, vec![r(x, Some(&[1]))]), ok(2, vec![a(x, 1)])],
            vec![ok(1, vec![r(x, None)]), ok(2, vec![a(x, 1)])],
        ),
        case(
            "la-G-single-process",
            GSingleProcess,
            sequential(3),
            vec![
                ok(1, vec![a(x, 1)]),
                ok(1, vec![r(x, None)]),
                ok(2, vec![r(x, Some(&[1]))]),
            ],
            vec![
                ok(1, vec![a(x, 1)]),
                ok(1, vec![r(x, Some(&[1]))]),
                ok(2, vec![r(x, Some(&[1]))]),
            ],
        ),
        case(
            "la-G-nonadjacent-process",
            GNonadjacentProcess,
            around.clone(),
            nonadjacent(1, None),
            nonadjacent(1, Some(&[1])),
        ),
        case(
            "la-G-nonadjacent-realtime",
            GNonadjacentRealtime,
            around,
            nonadjacent(4, None),
            nonadjacent(4, Some(&[1])),
        ),
        case(
            "la-G2-item-process",
            G2ItemProcess,
            around3.clone(),
            g2(1, None),
            g2(1, Some(&[1])),
        ),
        case(
            "la-G2-item-realtime",
            G2ItemRealtime,
            around3,
            g2(4, None),
            g2(4, Some(&[1])),
        ),
    ]
}

fn cycle_kinds(r: &CheckResult) -> Vec<AnomalyKind> {
    let mut k: Vec<_> = r.anomalies.iter().map(|a| a.kind).collect();
    k.sort();
    k.dedup();
    k
}

#[test]
fn every_variant_has_a_minimal_history_reported_with_exactly_its_kind() {
    use ConsistencyModel::StrictSerializable;
    let w = TxnWorkload::ListAppend;
    for c in cases() {
        let bad = check(w, StrictSerializable, &laid_out(&c.bad, &c.events));
        assert_eq!(bad.validity, Validity::Invalid, "{}: {bad:#?}", c.name);
        assert_eq!(cycle_kinds(&bad), [c.kind], "{}: {bad:#?}", c.name);
        // The cycle needs its process or real-time edge: the data edges alone are
        // serializable.
        let ser = check(
            w,
            ConsistencyModel::Serializable,
            &laid_out(&c.bad, &c.events),
        );
        assert_eq!(ser.validity, Validity::Valid, "{}: {ser:#?}", c.name);
        let good = check(w, StrictSerializable, &laid_out(&c.good, &c.events));
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
}

/// With the base cases, every kind the `txn` checker reports has a case.
#[test]
fn every_txn_kind_has_a_case() {
    let mut covered: Vec<AnomalyKind> = cases().iter().map(|c| c.kind).collect();
    covered.extend(crate::txn::cases().iter().map(|c| c.kind));
    for k in schism_checker::txn::kinds() {
        assert!(covered.contains(&k), "{k} has no minimal history");
    }
}

/// The base cases report their kind alone, but for what it implies in their history:
/// Elle's dirty update implies G1a (the failed append is seen in the read that shows the
/// order); a lost update forms a cycle with one (list-append) or two (rw-register: a nil
/// read precedes every writer) anti-dependencies once the key's order is known.
#[test]
fn base_cases_report_exactly_their_kind_or_what_it_implies() {
    use AnomalyKind::*;
    for c in crate::txn::cases() {
        let h = crate::txn::history(c.timing, &c.bad);
        let got = cycle_kinds(&check(c.workload, ConsistencyModel::StrictSerializable, &h));
        let want: Vec<AnomalyKind> = match c.name {
            "la-dirty-update" => vec![G1a, DirtyUpdate],
            "la-lost-update" => vec![GSingle, LostUpdate],
            "rr-lost-update" => vec![G2Item, LostUpdate],
            _ => vec![c.kind],
        };
        assert_eq!(got, want, "{}", c.name);
    }
}

/// For every model, a case valid under the models just below it and invalid under it.
#[test]
fn each_model_is_separated_from_its_neighbours() {
    use ConsistencyModel::*;
    let mut histories: Vec<(&str, TxnWorkload, History)> = Vec::new();
    for c in cases() {
        histories.push((c.name, TxnWorkload::ListAppend, laid_out(&c.bad, &c.events)));
    }
    for c in crate::txn::cases() {
        let h = crate::txn::history(c.timing, &c.bad);
        histories.push((c.name, c.workload, h));
    }
    let verdict = |name: &str, m: ConsistencyModel| {
        let (_, w, h) = histories
            .iter()
            .find(|(n, _, _)| *n == name)
            .unwrap_or_else(|| panic!("{name}"));
        check(*w, m, h).validity
    };
    // (history, the models it satisfies, the model it breaks)
    let table: [(&str, &[ConsistencyModel], ConsistencyModel); 15] = [
        ("la-duplicate-elements", &[], ReadUncommitted),
        (
            "la-G1c",
            &[ReadUncommitted, StrongReadUncommitted],
            ReadCommitted,
        ),
        ("la-fractured-read", &[StrongReadCommitted], ReadAtomic),
        (
            "la-consistent-prefix",
            &[ReadAtomic, StrongReadCommitted],
            Causal,
        ),
        ("la-G2-item", &[SnapshotIsolation, Causal], RepeatableRead),
        ("la-G-single", &[ReadAtomic, Causal], SnapshotIsolation),
        (
            "la-G2-item",
            &[SnapshotIsolation, StrongSessionSnapshotIsolation],
            Serializable,
        ),
        (
            "la-G0-process",
            &[ReadUncommitted],
            StrongSessionReadUncommitted,
        ),
        (
            "la-G1c-process",
            &[ReadCommitted, StrongSessionReadUncommitted],
            StrongSessionReadCommitted,
        ),
        (
            "la-G-single-process",
            &[SnapshotIsolation, StrongSessionReadCommitted],
            StrongSessionSnapshotIsolation,
        ),
        (
            "la-G2-item-process",
            &[Serializable, StrongSessionSnapshotIsolation],
            StrongSessionSerializable,
        ),
        (
            "la-G0-realtime",
            &[StrongSessionReadUncommitted, StrongSessionSerializable],
            StrongReadUncommitted,
        ),
        (
            "la-G1c-realtime",
            &[
                StrongSessionReadCommitted,
                StrongReadUncommitted,
                StrongSessionSerializable,
            ],
            StrongReadCommitted,
        ),
        (
            "la-G-single-realtime",
            &[StrongSessionSerializable, StrongReadCommitted],
            StrongSnapshotIsolation,
        ),
        (
            "la-G2-item-realtime",
            &[StrongSessionSerializable, StrongSnapshotIsolation],
            StrictSerializable,
        ),
    ];
    let mut separated = std::collections::BTreeSet::new();
    for (name, holds, breaks) in table {
        for &m in holds {
            assert_eq!(verdict(name, m), Validity::Valid, "{name} under {m}");
        }
        assert_eq!(
            verdict(name, breaks),
            Validity::Invalid,
            "{name} under {breaks}"
        );
        // It breaks every model that implies the broken one (the stronger ones).
        for m in ConsistencyModel::ALL {
            if at_least(m, breaks) {
                assert_eq!(verdict(name, m), Validity::Invalid, "{name} under {m}");
            }
        }
        separated.insert(breaks);
    }
    assert_eq!(
        separated.len(),
        ConsistencyModel::ALL.len(),
        "{separated:?}"
    );
}

/// Whether `m` is `weaker` or implies it.
fn at_least(m: ConsistencyModel, weaker: ConsistencyModel) -> bool {
    m == weaker || m.implies().iter().any(|&w| at_least(w, weaker))
}

/// A cut among the process-order cycles, which serializable allows: by the budget the
/// verdict stands (and says where it stopped); by an abort (time limit, signal) it is
/// `unknown`, saying it was stopped. Either way the models left open are `undecided`.
#[test]
fn a_cut_keeps_the_verdict_only_when_the_budget_cut_what_the_model_allows() {
    let c = cases()
        .into_iter()
        .find(|c| c.name == "la-G-single-process")
        .unwrap();
    let h = laid_out(&c.bad, &c.events);
    let strings = |r: &CheckResult, k: &str| -> Vec<String> {
        r.figures[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    for aborted in [false, true] {
        let mut o = schism_checker::txn::TxnOptions::new(
            TxnWorkload::ListAppend,
            ConsistencyModel::Serializable,
        );
        o.max_cycle_states = 1;
        o.abort = Some(std::sync::Arc::new(std::sync::atomic::AtomicBool::new(
            aborted,
        )));
        let r = schism_checker::txn::check_txn(&h, &o).unwrap();
        let (undecided, ruled) = (strings(&r, "undecided"), strings(&r, "ruled_out"));
        assert!(!undecided.is_empty(), "{:?}", r.figures);
        assert!(
            !undecided.iter().any(|m| ruled.contains(m)),
            "{:?}",
            r.figures
        );
        assert!(!undecided.contains(&"serializable".to_owned()));
        if aborted {
            assert_eq!(r.validity, Validity::Unknown);
            assert!(
                r.figures["unknown_reason"]
                    .as_str()
                    .unwrap()
                    .contains("stopped")
            );
            assert!(r.figures.get("cycle_search_cut").is_none());
        } else {
            assert_eq!(r.validity, Validity::Valid, "{:?}", r.figures);
            let cut = r.figures["cycle_search_cut"].as_str().unwrap();
            assert!(cut.contains("process-order"), "{cut}");
        }
    }
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/txn")
}

/// `<case>.edn` and `<case>.valid.edn` for `schism check`, generated from `cases()`.
#[test]
fn variant_edn_fixtures_are_current() {
    let dir = fixtures();
    let bless = std::env::var_os("SCHISM_BLESS").is_some();
    for c in cases() {
        for (suffix, txns) in [("edn", &c.bad), ("valid.edn", &c.good)] {
            let text = to_edn(&laid_out(txns, &c.events));
            let path = dir.join(format!("{}.{suffix}", c.name));
            if bless {
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
        }
    }
}
