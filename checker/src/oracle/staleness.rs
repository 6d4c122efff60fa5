//! Test oracle for `staleness`: its figures as they were computed before it streamed
//! (every read's lag in one sorted list), and random register and append histories on
//! which the streamed checker (`StalenessStream`, replayed), the whole-history checker
//! and this oracle must agree exactly.

use crate::explain::op_index;
use crate::opstream::replay;
use crate::perop;
use crate::staleness::{SERIES_CAP, StalenessStream};
use crate::{Options, Shared, Workload};
use proptest::prelude::*;
use schism_history::{F, History, Op, OpType, Operation, Process, Value};
use serde_json::{Value as Json, json};

/// The figures from every lag, as `staleness::figures` computed them before `Lags`.
fn old_figures(
    h: &History,
    ops: &[Operation],
    lags: &[perop::Lag],
) -> serde_json::Map<String, Json> {
    let quantiles = |sorted: &[u64], scale: f64| {
        let q = |p: f64| -> f64 {
            if sorted.is_empty() {
                return 0.0;
            }
            let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
            sorted[i] as f64 / scale
        };
        json!({"p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "p999": q(0.999), "max": q(1.0)})
    };
    let buckets = |values: &[u64], bounds: &[(&str, u64)]| {
        let mut counts = vec![0u64; bounds.len()];
        for &v in values {
            let i = bounds
                .iter()
                .position(|&(_, hi)| v <= hi)
                .unwrap_or(bounds.len() - 1);
            counts[i] += 1;
        }
        Json::Array(
            bounds
                .iter()
                .zip(counts)
                .map(|(&(label, _), n)| json!({"bucket": label, "reads": n}))
                .collect(),
        )
    };
    let mut f = serde_json::Map::new();
    let mut versions: Vec<u64> = lags.iter().map(|s| s.versions).collect();
    let mut ns: Vec<u64> = lags.iter().map(|s| s.ns).collect();
    let stale = lags.iter().filter(|s| s.versions > 0).count();
    f.insert("reads".into(), lags.len().into());
    f.insert("stale_reads".into(), stale.into());
    versions.sort_unstable();
    ns.sort_unstable();
    let max_versions = versions.last().copied().unwrap_or(0);
    f.insert("k_atomic".into(), (max_versions + 1).into());
    f.insert(
        "delta_atomic_ms".into(),
        (ns.last().copied().unwrap_or(0) as f64 / 1e6).into(),
    );
    f.insert("versions_behind".into(), quantiles(&versions, 1.0));
    f.insert("ms_behind".into(), quantiles(&ns, 1e6));
    let vb: &[(&str, u64)] = &[
        ("0", 0),
        ("1", 1),
        ("2", 2),
        ("3-4", 4),
        ("5-8", 8),
        ("9-16", 16),
        ("17-64", 64),
        ("65+", u64::MAX),
    ];
    f.insert("versions_behind_histogram".into(), buckets(&versions, vb));
    let mb: &[(&str, u64)] = &[
        ("0", 0),
        ("<1ms", 999_999),
        ("1-10ms", 10_000_000),
        ("10-100ms", 100_000_000),
        ("100ms-1s", 1_000_000_000),
        ("1-10s", 10_000_000_000),
        (">10s", u64::MAX),
    ];
    f.insert("ms_behind_histogram".into(), buckets(&ns, mb));
    let row = |s: &perop::Lag| {
        let o = &ops[s.slot];
        json!({
            "op": op_index(h, o),
            "key": o.key(),
            "process": o.process,
            "time_ns": h.ops[o.invoke()].time_ns,
            "versions_behind": s.versions,
            "ms_behind": s.ns as f64 / 1e6,
        })
    };
    let mut worst: Vec<&perop::Lag> = lags.iter().filter(|s| s.versions > 0).collect();
    worst.sort_by_key(|s| (std::cmp::Reverse(s.ns), ops[s.slot].invoke()));
    let top = |w: &[&perop::Lag]| Json::Array(w.iter().take(5).map(|s| row(s)).collect());
    f.insert("worst_by_ms".into(), top(&worst));
    worst.sort_by_key(|s| (std::cmp::Reverse(s.versions), ops[s.slot].invoke()));
    f.insert("worst_by_versions".into(), top(&worst));
    let rows: Vec<Json> = lags
        .iter()
        .filter(|s| s.versions > 0)
        .take(SERIES_CAP)
        .map(|s| {
            let t = h.ops[ops[s.slot].invoke()].time_ns;
            json!([t, s.versions, s.ns as f64 / 1e6])
        })
        .collect();
    f.insert(
        "series".into(),
        json!({
            "columns": ["time_ns", "versions_behind", "ms_behind"],
            "rows": rows,
            "omitted": stale.saturating_sub(SERIES_CAP),
        }),
    );
    f
}

/// The value a write or cas writes.
fn written(v: &Value) -> Option<i64> {
    match v {
        Value::Int(v) => Some(*v),
        Value::List(l) => l.get(1).copied(),
        _ => None,
    }
}

/// One step: (process, key, what, outcome, x).
type Step = (u8, u8, u8, u8, u16);

/// A random register history: writes (unique values, some repeated or of the initial
/// 0), cas, and reads returning one of the last few values written to the key (or nil,
/// the initial 0, a value never written), every outcome, nemesis ops and ops left open.
fn register_history(steps: &[Step]) -> History {
    let mut ops = Vec::new();
    let mut open: Vec<Option<(F, u64, Value)>> = vec![None; 4];
    let mut log: Vec<Vec<i64>> = vec![Vec::new(); 3];
    let mut next = 1i64;
    for (i, &(p, k, what, out, x)) in steps.iter().enumerate() {
        let t = i as u64 * 1000 + u64::from(x % 7) * 300;
        let idx = ops.len() as u64;
        let proc = Process::client(u64::from(p % 4));
        if what % 23 == 22 {
            ops.push(Op::new(
                idx,
                t,
                Process::NEMESIS,
                OpType::Info,
                F::parse("kill"),
                None,
                Value::Null,
            ));
            continue;
        }
        let p = usize::from(p % 4);
        match open[p].take() {
            None => {
                let key = u64::from(k % 3);
                let log = &mut log[key as usize];
                let (f, v) = match what % 5 {
                    0 | 1 => (F::Read, Value::Null),
                    4 => (F::Cas, Value::list(vec![i64::from(x % 3), next])),
                    _ if x % 11 == 0 => (
                        F::Write,
                        Value::Int(log.get(usize::from(x) % 4).copied().unwrap_or(0)),
                    ),
                    _ => (F::Write, Value::Int(next)),
                };
                if let Some(v) = written(&v) {
                    log.push(v);
                }
                next += 1;
                ops.push(Op::new(
                    idx,
                    t,
                    proc,
                    OpType::Invoke,
                    f,
                    Some(key),
                    v.clone(),
                ));
                open[p] = Some((f, key, v));
            }
            Some((f, key, v)) => {
                let kind = match out % 6 {
                    0 => OpType::Fail,
                    1 => OpType::Info,
                    _ => OpType::Ok,
                };
                let log = &log[key as usize];
                let value = match (f, kind) {
                    (F::Read, OpType::Ok) => match x % 10 {
                        0 => Value::Null,
                        1 => Value::Int(0),
                        2 => Value::Int(9999),
                        _ if log.is_empty() => Value::Null,
                        _ => {
                            Value::Int(log[log.len() - 1 - usize::from(x / 10) % log.len().min(4)])
                        }
                    },
                    (F::Read, _) => Value::Null,
                    _ => v,
                };
                ops.push(Op::new(idx, t, proc, kind, f, Some(key), value));
            }
        }
    }
    History::new(ops)
}

/// A random append history: appends applied at invoke or at completion (or never),
/// reads of a prefix of the key's list a few versions behind, some divergent (an element
/// dropped or swapped, a value never appended), nil reads, final reads, every outcome.
fn append_history(steps: &[Step]) -> History {
    let mut ops = Vec::new();
    let mut open: Vec<Option<(F, u64, Value)>> = vec![None; 4];
    let mut lists: Vec<Vec<i64>> = vec![Vec::new(); 3];
    let mut next = 1i64;
    for (i, &(p, k, what, out, x)) in steps.iter().enumerate() {
        let t = i as u64 * 1000 + u64::from(x % 7) * 300;
        let idx = ops.len() as u64;
        let proc = Process::client(u64::from(p % 4));
        if what % 23 == 22 {
            ops.push(Op::new(
                idx,
                t,
                Process::NEMESIS,
                OpType::Info,
                F::parse("kill"),
                None,
                Value::Null,
            ));
            continue;
        }
        let p = usize::from(p % 4);
        match open[p].take() {
            None => {
                let key = u64::from(k % 3);
                let (f, v) = if what % 2 == 0 {
                    (F::Read, Value::Null)
                } else {
                    next += 1;
                    if x % 3 == 0 {
                        lists[key as usize].push(next); // visible before it is acknowledged
                    }
                    (F::Append, Value::Int(next))
                };
                let mut op = Op::new(idx, t, proc, OpType::Invoke, f, Some(key), v.clone());
                if f == F::Read && x % 13 == 0 {
                    op.set_meta(Some(json!({"final": true})));
                }
                ops.push(op);
                open[p] = Some((f, key, v));
            }
            Some((f, key, v)) => {
                let kind = match out % 6 {
                    0 => OpType::Fail,
                    1 => OpType::Info,
                    _ => OpType::Ok,
                };
                let l = &mut lists[key as usize];
                if let (F::Append, Value::Int(a)) = (f, &v)
                    && kind != OpType::Fail
                    && !l.contains(a)
                    && x % 5 != 0
                {
                    l.push(*a);
                }
                let value = match (f, kind) {
                    (F::Read, OpType::Ok) if x % 9 == 0 => Value::Null,
                    (F::Read, OpType::Ok) => {
                        let n = l.len().saturating_sub(usize::from(x % 4));
                        let mut r = l[..n].to_vec();
                        match x % 17 {
                            0 if r.len() > 1 => {
                                r.remove(r.len() / 2);
                            }
                            1 if r.len() > 1 => {
                                let m = r.len();
                                r.swap(m - 1, m - 2);
                            }
                            2 => r.push(100_000 + i64::from(x)),
                            _ => {}
                        }
                        Value::list(r)
                    }
                    (F::Read, _) => Value::Null,
                    _ => v,
                };
                ops.push(Op::new(idx, t, proc, kind, f, Some(key), value));
            }
        }
    }
    History::new(ops)
}

/// The streamed result of `h` (workload given or inferred), and the whole path's.
fn both(
    h: &History,
    opts: &Options,
    w: Workload,
    given: bool,
) -> (
    crate::CheckResult,
    crate::CheckResult,
    serde_json::Map<String, Json>,
) {
    let ops = h.operations().unwrap();
    let whole =
        crate::staleness::check_ops(h, &ops, opts, w, &mut Shared::new(true, false)).unwrap();
    let mut s = StalenessStream::new(opts, given.then_some(w));
    replay(h, &ops, &mut s);
    let streamed = s.finish(w, opts).unwrap();
    let lags = match w {
        Workload::Register => perop::register(h, &ops, opts, true).lags,
        _ => {
            let a = crate::append_keys::Analysis::new(h, &ops).unwrap();
            perop::append(h, &ops, &a, true).lags
        }
    };
    (streamed, whole, old_figures(h, &ops, &lags))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]
    #[test]
    fn streaming_staleness_matches_the_whole_history_checker(
        steps in proptest::collection::vec((any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>(), any::<u16>()), 0..160),
        initial in proptest::option::of(0i64..2),
        wildcard in any::<bool>(),
        given in any::<bool>(),
    ) {
        let mut opts = Options::default();
        opts.register.initial = initial;
        opts.register.nil_read_is_wildcard = wildcard;
        let (streamed, whole, old) = both(&register_history(&steps), &opts, Workload::Register, given);
        prop_assert_eq!(&whole.figures, &old);
        prop_assert_eq!(streamed, whole);
        let (streamed, whole, old) = both(&append_history(&steps), &opts, Workload::Append, given);
        prop_assert_eq!(&whole.figures, &old);
        prop_assert_eq!(streamed, whole);
    }
}

/// Stale reads are frequent in the generated histories (the test above compares more
/// than zeros), and some are cleared by a later writer of their value.
#[test]
fn generated_histories_have_stale_reads() {
    let steps: Vec<Step> = (0..400u32)
        .map(|i| {
            let b = i.wrapping_mul(2_654_435_761);
            (
                (b >> 3) as u8,
                (b >> 11) as u8,
                (b >> 17) as u8,
                (b >> 23) as u8,
                (b >> 7) as u16,
            )
        })
        .collect();
    let opts = Options::default();
    for (h, w) in [
        (register_history(&steps), Workload::Register),
        (append_history(&steps), Workload::Append),
    ] {
        let (streamed, whole, _) = both(&h, &opts, w, true);
        assert!(whole.figures["stale_reads"].as_u64().unwrap() > 3, "{w:?}");
        assert_eq!(streamed, whole);
    }
}

/// The append workload's own errors (those validation leaves to `Analysis`: a workload
/// inferred from reads alone, an ok completion's value that differs from its invoke's)
/// are the whole path's, the first by invoke, whatever order the ops complete in.
#[test]
fn append_errors_match_the_whole_history() {
    let op = |i: u64, p: u64, kind: OpType, f: &str, key: Option<u64>, v: Value| {
        Op::new(i, i * 10, Process::client(p), kind, F::parse(f), key, v)
    };
    use OpType::{Invoke, Ok as Done};
    let list = |v: &[i64]| Value::list(v.to_vec());
    let cases: Vec<Vec<Op>> = vec![
        // An unknown function after list reads.
        vec![
            op(0, 0, Invoke, "read", Some(1), Value::Null),
            op(1, 0, Done, "read", Some(1), list(&[])),
            op(2, 1, Invoke, "frobnicate", Some(1), Value::Null),
            op(3, 1, Done, "frobnicate", Some(1), Value::Null),
        ],
        // A keyless read, and an integer read invoked before it, completed after.
        vec![
            op(0, 0, Invoke, "read", Some(1), Value::Null),
            op(1, 1, Invoke, "read", None, Value::Null),
            op(2, 1, Done, "read", None, list(&[1])),
            op(3, 0, Done, "read", Some(1), Value::Int(3)),
        ],
        // Two appends whose completions carry the same value; the later-invoked one
        // completes first. And a third.
        vec![
            op(0, 0, Invoke, "append", Some(1), Value::Int(5)),
            op(1, 1, Invoke, "append", Some(1), Value::Int(6)),
            op(2, 2, Invoke, "append", Some(1), Value::Int(7)),
            op(3, 2, Done, "append", Some(1), Value::Int(6)),
            op(4, 1, Done, "append", Some(1), Value::Int(6)),
            op(5, 0, Done, "append", Some(1), Value::Int(6)),
        ],
        // An append completed with a list.
        vec![
            op(0, 0, Invoke, "append", Some(1), Value::Int(5)),
            op(1, 0, Done, "append", Some(1), list(&[5])),
            op(2, 1, Invoke, "read", Some(1), Value::Null),
            op(3, 1, Done, "read", Some(1), list(&[5])),
        ],
    ];
    let opts = Options::default();
    for ops in cases {
        let h = History::new(ops);
        let paired = h.operations().unwrap();
        let whole = crate::staleness::check_ops(
            &h,
            &paired,
            &opts,
            Workload::Append,
            &mut Shared::new(true, false),
        )
        .unwrap_err();
        for given in [Some(Workload::Append), None] {
            let mut s = StalenessStream::new(&opts, given);
            replay(&h, &paired, &mut s);
            let (streamed, _) = s.finish(Workload::Append, &opts).unwrap_err();
            assert_eq!(format!("{streamed:?}"), format!("{whole:?}"));
        }
    }
}

/// Long histories, one past `SERIES_CAP` stale reads (the series cut, `omitted`
/// counted): the three agree too.
#[test]
fn long_histories_past_the_series_cap_match() {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let steps: Vec<Step> = (0..320_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let b = state;
            (
                (b >> 3) as u8,
                (b >> 11) as u8,
                (b >> 19) as u8,
                (b >> 27) as u8,
                (b >> 35) as u16,
            )
        })
        .collect();
    let opts = Options::default();
    // The append generator's lists grow with the history (3 keys): a shorter one.
    for (h, w, cut) in [
        (register_history(&steps), Workload::Register, true),
        (append_history(&steps[..40_000]), Workload::Append, false),
    ] {
        let (streamed, whole, old) = both(&h, &opts, w, false);
        let omitted = whole.figures["series"]["omitted"].as_u64().unwrap();
        assert!(
            omitted > 0 || !cut,
            "{w:?}: {}",
            whole.figures["stale_reads"]
        );
        assert_eq!(whole.figures, old);
        assert_eq!(streamed, whole);
    }
}
