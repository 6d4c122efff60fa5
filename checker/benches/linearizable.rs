//! Linearizability checker benchmarks on generated histories (`cargo bench -p
//! schism-checker`). Histories come from a simulated correct register store (every op
//! takes effect at its completion; indeterminate writes may take effect or not), so the
//! valid ones are valid by construction; the invalid one has two injected stale reads.
//!
//! Groups: `rw` (read/write registers over 10 keys: 1k, 100k, 1M operations × 5, 20, 100
//! processes, zones), `goals` (the DESIGN/issue targets: 1M ops over 10 keys with 10
//! processes; 100k ops on one key with 50 processes; an invalid 20k-op history over 3 keys
//! with two stale reads; a cas history that exceeds the search budget and must end
//! `unknown`), `knossos-like` (cas-register, exact search). An "op" is one operation: an
//! invoke and its completion (two history lines).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use schism_checker::{Algorithm, Options, Validity};
use schism_history::{F, History, OpType};
use std::hint::black_box;
use std::time::Duration;

#[path = "support/register.rs"]
mod register;
use register::generate;

/// The 20k-op, 3-key history with two reads made stale: each returns the value of a
/// write that a later, completed write had overwritten before the read began.
/// Returns the history and the indices of the two stale reads.
fn with_two_stale_reads() -> (History, [u64; 2]) {
    let mut h = generate(7, 20_000, 3, 10, false);
    let ops = h.operations().unwrap();
    let mut stale = Vec::new();
    for (pick, key) in [(0.3, 0u64), (0.7, 1u64)] {
        let start = (ops.len() as f64 * pick) as usize;
        // A read on `key` invoked after two completed writes on it, sequentially apart.
        let mut writes = ops[..start]
            .iter()
            .filter(|o| o.key() == Some(key) && o.f == F::Write && o.complete().is_some());
        let w1 = writes.next().unwrap();
        let w2 = writes
            .find(|o| {
                o.invoke() > w1.complete().unwrap()
                    && h.ops[o.complete().unwrap()].kind == OpType::Ok
            })
            .unwrap();
        let read = ops[start..]
            .iter()
            .find(|o| {
                o.key() == Some(key)
                    && o.f == F::Read
                    && o.invoke() > w2.complete().unwrap()
                    && o.complete().is_some()
            })
            .unwrap();
        let c = read.complete().unwrap();
        h.ops[c].value = w1.value.clone();
        stale.push(h.ops[c].index());
    }
    (h, [stale[0], stale[1]])
}

/// The budget tests' history (40 waves): refuting it means trying every order of every wave.
#[path = "../tests/it/cas_waves.rs"]
mod cas_waves;

fn budget_buster() -> History {
    cas_waves::cas_waves(40)
}

fn check(h: &History, opts: &Options) -> Validity {
    schism_checker::check(h, opts).unwrap().validity
}

fn rw(c: &mut Criterion) {
    let mut g = c.benchmark_group("rw");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(8));
    for ops in [1_000usize, 100_000, 1_000_000] {
        for procs in [5usize, 20, 100] {
            let h = generate(1, ops, 10, procs, false);
            assert_eq!(check(&h, &Options::default()), Validity::Valid);
            g.throughput(Throughput::Elements(ops as u64));
            g.bench_with_input(
                BenchmarkId::new(format!("{ops}-ops"), format!("{procs}-procs")),
                &h,
                |b, h| b.iter(|| check(black_box(h), &Options::default())),
            );
        }
    }
    g.finish();
}

fn goals(c: &mut Criterion) {
    let mut g = c.benchmark_group("goals");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));

    let h = generate(2, 1_000_000, 10, 10, false);
    g.bench_function("1M-ops-10-keys-10-procs", |b| {
        b.iter(|| assert_eq!(check(black_box(&h), &Options::default()), Validity::Valid))
    });
    drop(h);

    let h = generate(3, 100_000, 1, 50, false);
    g.bench_function("100k-ops-1-key-50-procs", |b| {
        b.iter(|| assert_eq!(check(black_box(&h), &Options::default()), Validity::Valid))
    });

    let (h, stale) = with_two_stale_reads();
    let r = schism_checker::check(&h, &Options::default()).unwrap();
    let named: Vec<u64> = r.results[0].anomalies.iter().map(|a| a.ops[0]).collect();
    assert!(
        named.contains(&stale[0]) && named.contains(&stale[1]),
        "{named:?} vs {stale:?}"
    );
    g.bench_function("20k-ops-3-keys-two-stale-reads", |b| {
        b.iter(|| {
            let r = schism_checker::check(black_box(&h), &Options::default()).unwrap();
            assert_eq!(r.validity, Validity::Invalid);
            assert_eq!(r.results[0].anomalies.len(), 2);
        })
    });

    let h = budget_buster();
    let opts = Options {
        max_states: 1_000_000,
        ..Options::default()
    };
    g.bench_function("cas-budget-1M-states-unknown", |b| {
        b.iter(|| assert_eq!(check(black_box(&h), &opts), Validity::Unknown))
    });
    g.finish();
}

fn knossos_like(c: &mut Criterion) {
    let mut g = c.benchmark_group("cas-register");
    g.sample_size(10);
    for (ops, procs) in [(1_000usize, 5usize), (1_000, 20), (10_000, 5)] {
        let h = generate(4, ops, 1, procs, true);
        let opts = Options {
            algorithm: Algorithm::Wgl,
            ..Options::default()
        };
        assert_eq!(check(&h, &opts), Validity::Valid);
        g.throughput(Throughput::Elements(ops as u64));
        g.bench_with_input(
            BenchmarkId::new(format!("{ops}-ops"), format!("{procs}-procs")),
            &h,
            |b, h| b.iter(|| check(black_box(h), &opts)),
        );
    }
    g.finish();
}

criterion_group!(benches, goals, rw, knossos_like);
criterion_main!(benches);
