//! Anomaly counts people can compare: correct histories from the simulated stores
//! (register and append, several keys, concurrency, failures and indeterminate ops) with
//! a chosen number of injected anomalies of one kind. The report's one count per kind
//! (`schism_checker::counts`, every fitting checker run) must be exactly that number of
//! that kind and zero of every other, and zero everywhere without injection.
//!
//! The injector decides from the simulated history alone (independently of the checker
//! code) that a corruption is of exactly one kind: a stale read that is no session
//! violation, a monotonic read that is not stale. `SCHISM_INJECT_SEEDS` raises the number
//! of seeds (the suite runs a few; the figure is 100 seeds of 10k–100k ops, with
//! `SCHISM_INJECT_OPS_MAX=100000`).

use crate::sim::{Lists, Register, Sim, simulate};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use schism_checker::{AnomalyKind, CheckerSet, Options, Report};
use schism_history::{F, History, Operation, Outcome, Value};
use std::collections::{BTreeMap, BTreeSet};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A simulated run; `hot` uses few keys and many processes, so that a process often
/// reads a key again while an append it saw is still in flight.
fn sim(rng: &mut ChaCha8Rng, hot: bool) -> Sim {
    let max = env("SCHISM_INJECT_OPS_MAX", 12_000).max(10_000);
    Sim {
        procs: if hot {
            rng.random_range(12..=24)
        } else {
            rng.random_range(3..=12)
        },
        ops: rng.random_range(10_000..=max),
        keys: if hot {
            rng.random_range(1..=3)
        } else {
            rng.random_range(8..=40)
        },
        p_fail: 0.03,
        p_info: rng.random_range(0.0..0.05),
        // Keys retire as a long run moves on, so reads stay short (about 200 elements).
        retire_after: 400,
    }
}

/// Every checker that fits, as `schism test` and `schism check` run them.
fn check(h: &History) -> Report {
    let opts = Options {
        checkers: CheckerSet::Fitting,
        ..Default::default()
    };
    schism_checker::check(h, &opts).expect("checkable")
}

fn counts(r: &Report) -> BTreeMap<AnomalyKind, u64> {
    schism_checker::counts(r)
}

fn list<'a>(h: &'a History, o: &Operation) -> &'a [i64] {
    match &h.ops[o.complete().unwrap()].value {
        Value::List(l) => l,
        _ => &[],
    }
}

/// The history's ops grouped for the injectors: per key, and per process and key, in
/// invoke order (indices into `ops`).
struct Index {
    ops: Vec<Operation>,
    by_key: BTreeMap<Option<u64>, Vec<usize>>,
    by_session: BTreeMap<(schism_history::Process, Option<u64>), Vec<usize>>,
}

impl Index {
    fn new(h: &History) -> Index {
        let ops = h.operations().unwrap();
        let (mut by_key, mut by_session) = (BTreeMap::new(), BTreeMap::new());
        for (i, o) in ops.iter().enumerate() {
            by_key.entry(o.key()).or_insert_with(Vec::new).push(i);
            by_session
                .entry((o.process, o.key()))
                .or_insert_with(Vec::new)
                .push(i);
        }
        Index {
            ops,
            by_key,
            by_session,
        }
    }

    /// The ops of `r`'s process on `r`'s key invoked before it.
    fn earlier(&self, r: &Operation) -> impl Iterator<Item = &Operation> {
        self.by_session[&(r.process, r.key())]
            .iter()
            .map(|&i| &self.ops[i])
            .take_while(move |o| o.invoke() < r.invoke())
    }

    /// A random ok read not yet corrupted.
    fn pick(&self, rng: &mut ChaCha8Rng, done: &BTreeSet<usize>) -> Option<&Operation> {
        let r = &self.ops[rng.random_range(0..self.ops.len())];
        (r.f == F::Read && r.outcome == Outcome::Ok && !done.contains(&r.invoke())).then_some(r)
    }
}

/// Append: shortens one ok read to a prefix that misses an append acknowledged before it
/// began, yet holds everything its process read or appended on that key before, and
/// leaves a longer read of the key in place (so the version order stays). `monotonic`
/// instead makes it miss what its process's previous read saw, with nothing it misses
/// acknowledged before it began. Returns false when no read qualifies.
fn corrupt_append(
    rng: &mut ChaCha8Rng,
    h: &mut History,
    monotonic: bool,
    done: &mut BTreeSet<usize>,
) -> bool {
    let ix = Index::new(h);
    let appends: BTreeMap<(Option<u64>, i64), &Operation> = ix
        .ops
        .iter()
        .filter_map(|a| match (&a.f, &a.value) {
            (F::Append, Value::Int(v)) => Some(((a.key(), *v), a)),
            _ => None,
        })
        .collect();
    // Per key: the longest read's length and how many reads reach it.
    let mut longest: BTreeMap<Option<u64>, (usize, usize)> = BTreeMap::new();
    for (key, idx) in &ix.by_key {
        for &i in idx {
            let o = &ix.ops[i];
            if o.f == F::Read && o.outcome == Outcome::Ok {
                let n = list(h, o).len();
                let e = longest.entry(*key).or_insert((0, 0));
                if n > e.0 {
                    *e = (n, 1);
                } else if n == e.0 {
                    e.1 += 1;
                }
            }
        }
    }
    for _ in 0..if monotonic { 5000 } else { 300 } {
        let Some(r) = ix.pick(rng, done) else {
            continue;
        };
        let l = list(h, r);
        let (max, reaching) = longest[&r.key()];
        if l.len() == max && reaching < 2 {
            continue; // the version order would change
        }
        let acked_before = |v: i64| {
            appends
                .get(&(r.key(), v))
                .is_some_and(|a| a.outcome == Outcome::Ok && a.complete().unwrap() < r.invoke())
        };
        // What the process read and appended on this key before.
        let prev_read = ix
            .earlier(r)
            .filter(|o| o.f == F::Read && o.outcome == Outcome::Ok)
            .map(|o| list(h, o).len())
            .max();
        let own = ix
            .earlier(r)
            .filter(|a| a.f == F::Append && a.outcome == Outcome::Ok)
            .filter_map(|a| match a.value {
                Value::Int(v) => l.iter().position(|&x| x == v).map(|p| p + 1),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        let keep = if monotonic {
            // The previous read of the process saw more than `keep`; nothing from `keep`
            // on was acknowledged before this read began.
            let Some(prev) = prev_read else { continue };
            let floor = own.max(
                l.iter()
                    .rposition(|&v| acked_before(v))
                    .map_or(0, |p| p + 1),
            );
            if floor >= prev.min(l.len()) {
                continue;
            }
            rng.random_range(floor..prev.min(l.len()))
        } else {
            // Misses some acknowledged append, keeps all the process saw and wrote.
            let floor = own.max(prev_read.unwrap_or(0));
            let Some(last_acked) = l.iter().rposition(|&v| acked_before(v)) else {
                continue;
            };
            if floor > last_acked {
                continue;
            }
            rng.random_range(floor..=last_acked)
        };
        let c = r.complete().unwrap();
        h.ops[c].value = Value::list(l[..keep].to_vec());
        done.insert(r.invoke());
        return true;
    }
    false
}

/// Register: makes one ok read return an older acknowledged value of its key: one that
/// some acknowledged write invoked after it completed had replaced before the read
/// began, yet no older than anything the process read or wrote on that key before.
fn corrupt_register(rng: &mut ChaCha8Rng, h: &mut History, done: &mut BTreeSet<usize>) -> bool {
    let ix = Index::new(h);
    let written = |o: &Operation| match (&o.f, &o.value) {
        (F::Write, Value::Int(v)) => Some(*v),
        (F::Cas, Value::List(l)) if l.len() == 2 => Some(l[1]),
        _ => None,
    };
    let writer: BTreeMap<(Option<u64>, i64), &Operation> = ix
        .ops
        .iter()
        .filter_map(|w| Some(((w.key(), written(w)?), w)))
        .collect();
    for _ in 0..300 {
        let Some(r) = ix.pick(rng, done) else {
            continue;
        };
        let writes: Vec<&Operation> = ix.by_key[&r.key()]
            .iter()
            .map(|&i| &ix.ops[i])
            .filter(|w| w.outcome == Outcome::Ok && written(w).is_some())
            .collect();
        // Invokes of the writes the process saw or made before: the new value's write
        // must not complete before any of them began.
        let mut floor: Vec<usize> = Vec::new();
        for o in ix.earlier(r).filter(|o| o.outcome == Outcome::Ok) {
            if written(o).is_some() {
                floor.push(o.invoke());
            } else if let Value::Int(v) = h.ops[o.complete().unwrap()].value
                && let Some(w) = writer.get(&(r.key(), v))
            {
                floor.push(w.invoke());
            }
        }
        let current = &h.ops[r.complete().unwrap()].value;
        // sufmin[j]: the earliest completion among writes[j..] (in invoke order).
        let mut sufmin = vec![usize::MAX; writes.len() + 1];
        for j in (0..writes.len()).rev() {
            sufmin[j] = sufmin[j + 1].min(writes[j].complete().unwrap());
        }
        let floor = floor.into_iter().max().unwrap_or(0);
        let candidates: Vec<&&Operation> = writes
            .iter()
            .filter(|w| {
                let d = w.complete().unwrap();
                // Some acknowledged write begun after it completed ended before r began.
                let replaced = sufmin[writes.partition_point(|x| x.invoke() < d)] < r.invoke();
                d < r.invoke()
                    && d >= floor
                    && Value::Int(written(w).unwrap()) != *current
                    && replaced
            })
            .collect();
        if candidates.is_empty() {
            continue;
        }
        let w = candidates[rng.random_range(0..candidates.len())];
        h.ops[r.complete().unwrap()].value = Value::Int(written(w).unwrap());
        done.insert(r.invoke());
        return true;
    }
    false
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Inject {
    StaleAppend,
    StaleRegister,
    MonotonicAppend,
}

/// One seeded history with `n` injected anomalies (fewer when too few reads qualify).
fn history(seed: u64, what: Inject, n: usize) -> (History, usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let s = sim(&mut rng, what == Inject::MonotonicAppend);
    let mut h = match what {
        Inject::StaleRegister => simulate(&mut rng, &s, &mut Register::default()),
        _ => simulate(&mut rng, &s, &mut Lists::default()),
    };
    let mut done = BTreeSet::new();
    let mut injected = 0;
    for _ in 0..n {
        let ok = match what {
            Inject::StaleAppend => corrupt_append(&mut rng, &mut h, false, &mut done),
            Inject::MonotonicAppend => corrupt_append(&mut rng, &mut h, true, &mut done),
            Inject::StaleRegister => corrupt_register(&mut rng, &mut h, &mut done),
        };
        injected += usize::from(ok);
    }
    (h, injected)
}

fn expect_exactly(what: Inject, kind: AnomalyKind, first_seed: u64) {
    let seeds = env("SCHISM_INJECT_SEEDS", 3) as u64;
    let mut total = 0;
    for seed in first_seed..first_seed + seeds {
        let n = 1 + (seed as usize % 10);
        let (h, injected) = history(seed, what, n);
        let r = check(&h);
        let got = counts(&r);
        let want: BTreeMap<AnomalyKind, u64> = if injected == 0 {
            BTreeMap::new()
        } else {
            [(kind, injected as u64)].into()
        };
        assert_eq!(got, want, "seed {seed} {what:?}: {:#?}", summary(&r));
        if seed < first_seed + 10 {
            dump(&h, &format!("{what:?}-{seed}-n{injected}"));
        }
        if kind == AnomalyKind::StaleRead {
            let st = r.results.iter().find(|c| c.checker == "staleness").unwrap();
            assert_eq!(st.figures["stale_reads"], injected as u64, "seed {seed}");
        }
        total += injected;
    }
    assert!(total >= seeds as usize, "{what:?}: only {total} injected");
    eprintln!("{what:?}: {seeds} seeds, {total} anomalies injected, each counted exactly");
}

/// With `SCHISM_INJECT_DUMP=DIR`, writes the history (of the first 10 seeds of each
/// kind) as `DIR/NAME.jsonl`, for checking
/// the same histories through the CLI (`schism check FILE --json`).
fn dump(h: &History, name: &str) {
    let Ok(dir) = std::env::var("SCHISM_INJECT_DUMP") else {
        return;
    };
    std::fs::create_dir_all(&dir).unwrap();
    let file = std::fs::File::create(format!("{dir}/{name}.jsonl")).unwrap();
    let mut w = schism_history::HistoryWriter::new(file);
    for op in &h.ops {
        w.append(op).unwrap();
    }
    w.flush().unwrap();
}

fn summary(r: &Report) -> Vec<String> {
    let mut out = r.summary_lines();
    for c in &r.results {
        for a in c.anomalies.iter().take(3) {
            out.push(format!("{} {}: {}", c.checker, a.kind, a.explanation));
        }
    }
    out
}

#[test]
fn correct_histories_count_nothing() {
    for seed in 0..env("SCHISM_INJECT_SEEDS", 3) as u64 {
        for what in [Inject::StaleAppend, Inject::StaleRegister] {
            let (h, _) = history(10_000 + seed, what, 0);
            let r = check(&h);
            assert_eq!(
                counts(&r),
                BTreeMap::new(),
                "seed {seed}: {:#?}",
                summary(&r)
            );
        }
    }
}

#[test]
fn injected_stale_reads_are_counted_exactly_append() {
    expect_exactly(Inject::StaleAppend, AnomalyKind::StaleRead, 20_000);
}

#[test]
fn injected_stale_reads_are_counted_exactly_register() {
    expect_exactly(Inject::StaleRegister, AnomalyKind::StaleRead, 30_000);
}

#[test]
fn injected_monotonic_reads_are_counted_exactly() {
    expect_exactly(Inject::MonotonicAppend, AnomalyKind::MonotonicRead, 40_000);
}

#[test]
fn each_kind_has_an_owner_and_counts_take_one() {
    for k in AnomalyKind::ALL {
        assert!(!k.owners().is_empty(), "{k}");
    }
    // The append checker and the graph checker both report stale reads; the staleness
    // checker carries the same figure: the count is one of them, not their sum.
    let (h, injected) = history(20_001, Inject::StaleAppend, 3);
    assert!(injected > 0);
    let r = check(&h);
    let both = Report::from_results(
        r.results
            .iter()
            .cloned()
            .chain([schism_checker::check_append(&h, &Options::default()).unwrap()])
            .collect(),
    );
    assert_eq!(counts(&both)[&AnomalyKind::StaleRead], injected as u64);
}
