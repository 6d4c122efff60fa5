//! Synthetic histories for benchmarks and tests: an append workload over a few keys,
//! `workers` concurrent processes, lagging reads, fails and indeterminate writes, and
//! nemesis fault windows — deterministic from a seed (a tiny xorshift, no dependency).

use schism_checker::{Anomaly, AnomalyKind, CheckResult, Validity};
use schism_history::{F, History, Op, OpType, Process, Value};

use crate::run::ResultsData;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A history of about `client_ops` client operations (two lines each) and results that
/// list a few stale reads and one anomaly whose explanation carries markup.
pub fn history(client_ops: usize, seed: u64) -> (History, ResultsData) {
    let workers = 10u64;
    let keys = 8u64;
    let mut rng = Rng(seed | 1);
    let mut ops: Vec<Op> = Vec::with_capacity(client_ops * 2 + 64);
    let mut t = 0u64;
    let mut next_value = 1i64;
    // Like the real workload, a key is retired after 100 appends and a fresh one
    // takes its slot (so read values stay short).
    let mut lists: Vec<Vec<i64>> = vec![Vec::new(); keys as usize];
    let mut key_id: Vec<u64> = (0..keys).collect();
    let mut next_key = keys;
    // (process, done_at, op template)
    let mut open: Vec<(u64, u64, Op)> = Vec::new();
    let mut proc_of: Vec<u64> = (0..workers).collect();
    let mut busy = vec![false; workers as usize];
    let mut started = 0usize;
    let push = |ops: &mut Vec<Op>, mut op: Op, t: u64| {
        op.set_index(ops.len() as u64);
        op.time_ns = t;
        ops.push(op);
    };
    // About six fault windows whatever the length (an op starts every ~150 µs).
    let fault_every = (client_ops as u64 * 150_000 / 12).max(10_000_000);
    let mut next_fault = fault_every;
    let mut fault_open = false;
    let mut stale_witness = Vec::new();
    while started < client_ops || !open.is_empty() {
        t += 50_000 + rng.below(100_000);
        if t >= next_fault {
            // What the nemesis records: its event name and the whole state after it.
            use schism_history::nemesis::{Event, StateRecord};
            let (event, state) = if fault_open {
                (Event::Heal, StateRecord::default())
            } else {
                let groups = vec![
                    vec!["n1".to_owned()],
                    vec!["n2".to_owned(), "n3".to_owned()],
                ];
                let cuts = [("n1", "n2"), ("n1", "n3"), ("n2", "n1"), ("n3", "n1")]
                    .iter()
                    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                    .collect();
                (
                    Event::StartPartition,
                    StateRecord {
                        cuts,
                        groups,
                        shape: Some("halves".into()),
                        ..StateRecord::default()
                    },
                )
            };
            let v = Value::other(serde_json::to_value(&state).unwrap_or_default());
            for kind in [OpType::Invoke, OpType::Info] {
                let op = Op::new(
                    0,
                    0,
                    Process::NEMESIS,
                    kind,
                    F::parse(event.as_str()),
                    None,
                    v.clone(),
                );
                push(&mut ops, op, t);
            }
            fault_open = !fault_open;
            next_fault += fault_every;
        }
        // Complete what is due.
        let mut i = 0;
        while i < open.len() {
            if open[i].1 <= t {
                let (w, _, mut op) = open.swap_remove(i);
                let roll = rng.below(100);
                let key = key_id
                    .iter()
                    .position(|&k| Some(k) == op.key())
                    .unwrap_or(usize::MAX);
                let mut scratch = Vec::new();
                let lists = &mut lists;
                let list = if key == usize::MAX {
                    &mut scratch
                } else {
                    &mut lists[key]
                };
                if op.f == F::Read {
                    op.kind = if roll < 2 { OpType::Fail } else { OpType::Ok };
                    if op.kind == OpType::Ok {
                        let l = &*list;
                        let lag = if fault_open { rng.below(4) as usize } else { 0 };
                        let seen = l.len().saturating_sub(lag);
                        op.value = Value::list(l[..seen].to_vec());
                        if lag > 0 && seen < l.len() && stale_witness.len() < 30 {
                            stale_witness.push(ops.len() as u64);
                        }
                    } else {
                        op.set_error(Some("timeout".into()));
                        op.value = Value::Null;
                    }
                } else {
                    op.kind = match roll {
                        0 => OpType::Fail,
                        1 => OpType::Info,
                        _ => OpType::Ok,
                    };
                    if op.kind != OpType::Fail
                        && let Value::Int(v) = op.value
                    {
                        list.push(v);
                    }
                    if op.kind == OpType::Info {
                        op.set_error(Some("<script>alert('timeout')</script>".into()));
                    }
                }
                op.set_node(Some(format!("n{}", 1 + rng.below(3))));
                let retire = op.kind == OpType::Info;
                push(&mut ops, op, t);
                busy[w as usize] = false;
                if retire {
                    proc_of[w as usize] += workers;
                }
            } else {
                i += 1;
            }
        }
        // Start one op on a free worker.
        if started < client_ops {
            let w = rng.below(workers);
            if !busy[w as usize] {
                busy[w as usize] = true;
                started += 1;
                let slot = rng.below(keys) as usize;
                if lists[slot].len() >= 100 {
                    lists[slot].clear();
                    key_id[slot] = next_key;
                    next_key += 1;
                }
                let key = key_id[slot];
                let (f, value) = if rng.below(2) == 0 {
                    (F::Read, Value::Null)
                } else {
                    next_value += 1;
                    (F::Append, Value::Int(next_value))
                };
                let op = Op::new(
                    0,
                    0,
                    Process::client(proc_of[w as usize]),
                    OpType::Invoke,
                    f,
                    Some(key),
                    value,
                );
                push(&mut ops, op.clone(), t);
                let lat = 200_000
                    + rng.below(2_000_000)
                    + if rng.below(100) == 0 { 50_000_000 } else { 0 };
                open.push((w, t + lat, op));
            }
        }
    }
    let mut anomalies: Vec<Anomaly> = stale_witness
        .iter()
        .map(|&ix| Anomaly {
            cycle: Vec::new(),
            kind: AnomalyKind::StaleRead,
            key: ops[ix as usize].key(),
            ops: vec![ix],
            explanation: format!("read at index {ix} missed acknowledged appends"),
        })
        .collect();
    anomalies.push(Anomaly {
        cycle: Vec::new(),
        kind: AnomalyKind::PhantomRead,
        key: Some(0),
        ops: vec![ops.len() as u64 - 1],
        explanation: "a value <script>alert(1)</script> nobody wrote".into(),
    });
    let mut figures = serde_json::Map::new();
    figures.insert("stale_reads".into(), (stale_witness.len() as u64).into());
    figures.insert("phantom_reads".into(), 1u64.into());
    let results = ResultsData {
        validity: Validity::Invalid,
        results: vec![CheckResult {
            checker: "append".into(),
            validity: Validity::Invalid,
            anomalies,
            figures,
        }],
        stats: serde_json::Value::Null,
        warnings: Vec::new(),
    };
    (History::new(ops), results)
}
