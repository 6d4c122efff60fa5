//! The incremental (online) checkers' throughput on one core: every history line fed
//! through `online::Incremental::push`, as `schism test`'s recorder feeds them.
//! `cargo bench -p schism-checker --bench online`. Goal (issue #19): ≥ 50,000 ops/s.
//!
//! Histories: a recorded run's `history.jsonl` when `SCHISM_ONLINE_HISTORY` names one
//! (what the BENCHMARKS.md figure uses: a real run's history, anomalies and all), and
//! always the generated 1,000,000-op append and register histories of the other benches.
//! Criterion's throughput is in history lines (an op is two lines: invoke + completion).
//! Reference in the same session: the offline `graph` checker on the same history.

#[path = "support/histories.rs"]
mod histories;
#[path = "support/register.rs"]
mod register;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use schism_checker::online::{Incremental, Limits};
use schism_checker::{CheckerName, Options, RegisterOptions};
use schism_history::History;
use std::time::Duration;

fn feed(h: &History) -> usize {
    let mut c = Incremental::new(None, RegisterOptions::default(), Limits::default());
    let mut claims = 0;
    for op in &h.ops {
        claims += c.push(op);
    }
    claims
}

fn online(c: &mut Criterion) {
    let mut inputs: Vec<(String, History)> = Vec::new();
    if let Ok(path) = std::env::var("SCHISM_ONLINE_HISTORY") {
        let (h, _) = schism_history::read_history_file(std::path::Path::new(&path))
            .expect("SCHISM_ONLINE_HISTORY names a readable history");
        inputs.push(("recorded".into(), h));
    }
    inputs.push((
        "append-1M".into(),
        histories::append_history(1_000_000, 15, 7),
    ));
    inputs.push((
        "register-1M".into(),
        register::generate(7, 1_000_000, 10, 10, false),
    ));
    let mut group = c.benchmark_group("online");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(10));
    for (name, h) in &inputs {
        eprintln!("online/{name}: {} lines, {} claims", h.ops.len(), feed(h));
        group.throughput(Throughput::Elements(h.ops.len() as u64));
        group.bench_function(format!("{name}/incremental"), |b| b.iter(|| feed(h)));
        // The same-session reference: the offline graph checker on the same history.
        group.bench_function(format!("{name}/offline-graph"), |b| {
            b.iter(|| schism_checker::check_one(h, &Options::default(), CheckerName::Graph))
        });
    }
    group.finish();
}

criterion_group!(benches, online);
criterion_main!(benches);
