//! rw-register histories whose version orders are inferable: every write follows a read
//! of its key in the same transaction (read-modify-write, no blind writes), so each
//! version names its predecessor and the `txn` checker knows every key's whole order.
//! On 10,000 small random such histories it agrees with the brute-force search over all
//! serial orders both ways, as list-append does; with blind writes it can only be sound
//! (`random_txn::register_checker_is_sound_against_brute_force_on_4000_histories`, and
//! ARCHITECTURE.md's txn section for why).

use crate::random_txn::register_serializable_by_brute_force;
use crate::txn::{T, Timing, check, history, ok, to_edn};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use schism_checker::Validity;
use schism_checker::txn::{ConsistencyModel, TxnWorkload};
use schism_history::Key;
use schism_history::txn::{MicroOp, MopF, MopValue};
use std::collections::HashMap;

fn read(k: Key, v: Option<i64>) -> MicroOp {
    MicroOp {
        f: MopF::Read,
        key: k,
        value: v.map_or(MopValue::Nil, MopValue::Int),
    }
}

/// A random history of 2–5 concurrent read-modify-write transactions over 2 keys: a
/// transaction's first look at a key returns nil, the key's latest write or an earlier
/// one (so stale reads, lost updates and skew all occur); later reads of the key return
/// what the transaction knows; a write is always preceded by a read of its key. One
/// final read of every key ends it.
fn random_rmw_history(rng: &mut ChaCha8Rng) -> Vec<T> {
    let n = rng.random_range(2..=5);
    let keys = 2u64;
    let mut writes: HashMap<Key, Vec<i64>> = HashMap::new();
    let mut next = 1;
    let mut txns = Vec::new();
    for p in 0..n {
        let len = rng.random_range(1..=3);
        let mut view: HashMap<Key, Option<i64>> = HashMap::new();
        let mut mops = Vec::new();
        for _ in 0..len {
            let k = rng.random_range(0..keys);
            if let std::collections::hash_map::Entry::Vacant(e) = view.entry(k) {
                let all = writes.entry(k).or_default();
                let seen = match all.len() {
                    0 => None,
                    n if rng.random_bool(0.5) => Some(all[n - 1]),
                    n => rng.random_range(0..=n).checked_sub(1).map(|i| all[i]),
                };
                e.insert(seen);
                mops.push(read(k, seen));
            }
            if rng.random_bool(0.5) {
                mops.push(read(k, view[&k]));
            } else {
                writes.entry(k).or_default().push(next);
                view.insert(k, Some(next));
                mops.push(MicroOp::write(k, next));
                next += 1;
            }
        }
        txns.push(ok(p, mops));
    }
    // The final reads: the last write of each key in the order the transactions wrote
    // (a valid state when the history is serializable in that order; either way the
    // brute force decides).
    let finals = (0..keys)
        .map(|k| read(k, writes.get(&k).and_then(|w| w.last().copied())))
        .collect();
    txns.push(ok(n, finals));
    for i in (1..txns.len()).rev() {
        let j = rng.random_range(0..=i);
        txns.swap(i, j);
    }
    txns
}

#[test]
fn register_checker_agrees_with_brute_force_when_writes_follow_reads() {
    let mut rng = ChaCha8Rng::seed_from_u64(1819);
    let (mut yes, mut no) = (0, 0);
    for i in 0..10_000 {
        let txns = random_rmw_history(&mut rng);
        let brute = register_serializable_by_brute_force(&txns);
        let h = history(Timing::Concurrent, &txns);
        let r = check(TxnWorkload::RwRegister, ConsistencyModel::Serializable, &h);
        let graph = r.validity == Validity::Valid;
        assert_eq!(
            graph,
            brute,
            "history {i}: brute force says serializable = {brute}; checker: {r:#?}\n{}",
            to_edn(&h)
        );
        if brute {
            yes += 1;
        } else {
            no += 1;
        }
    }
    eprintln!("read-modify-write: serializable {yes}, not {no}; the checker agreed on all");
    assert!(yes > 2000 && no > 2000, "serializable {yes}, not {no}");
}

/// ARCHITECTURE.md's example: with blind writes no read shows the order of key 1's
/// writes, so a history with no serial order passes (the checker is sound, not
/// complete); the same transactions as read-modify-writes are caught.
#[test]
fn blind_writes_hide_the_version_order_read_modify_writes_show_it() {
    let (x, y) = (1, 2);
    let w = MicroOp::write;
    let blind = [
        ok(1, vec![w(x, 1), w(y, 1)]),
        ok(2, vec![w(x, 2), w(y, 2)]),
        ok(3, vec![read(x, Some(1)), read(y, Some(2))]),
    ];
    assert!(!register_serializable_by_brute_force(&blind));
    let h = history(Timing::Concurrent, &blind);
    let r = check(TxnWorkload::RwRegister, ConsistencyModel::Serializable, &h);
    assert_eq!(r.validity, Validity::Valid, "{r:#?}");
    let rmw = [
        ok(1, vec![read(x, None), w(x, 1), read(y, None), w(y, 1)]),
        ok(
            2,
            vec![read(x, Some(1)), w(x, 2), read(y, Some(1)), w(y, 2)],
        ),
        ok(3, vec![read(x, Some(1)), read(y, Some(2))]),
    ];
    assert!(!register_serializable_by_brute_force(&rmw));
    let h = history(Timing::Concurrent, &rmw);
    let r = check(TxnWorkload::RwRegister, ConsistencyModel::Serializable, &h);
    assert_eq!(r.validity, Validity::Invalid, "{r:#?}");
    // T3 read key 1 before T2's overwrite and key 2 after it: read skew.
    let kinds: Vec<_> = r.anomalies.iter().map(|a| a.kind).collect();
    assert_eq!(kinds, [schism_checker::AnomalyKind::GSingle], "{r:#?}");
}
