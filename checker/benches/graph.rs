//! The graph checker on large correct append histories (DESIGN.md: 1,000,000 ops in
//! under 10 s on 2 cores). `cargo bench -p schism-checker --bench graph`.

#[path = "support/histories.rs"]
mod histories;

use criterion::{Criterion, criterion_group, criterion_main};
use schism_checker::{CheckerName, Options, Validity};
use schism_history::{OpType, Value};
use std::time::Duration;

fn graph(c: &mut Criterion) {
    let mut group = c.benchmark_group("graph-append");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    for (ops, procs) in [(100_000usize, 15usize), (1_000_000, 15)] {
        let h = histories::append_history(ops, procs, 7);
        let opts = Options::default();
        let r = schism_checker::check_one(&h, &opts, CheckerName::Graph).unwrap();
        assert_eq!(r.validity, Validity::Valid, "{:#?}", r.anomalies);
        group.measurement_time(Duration::from_secs(if ops > 100_000 { 60 } else { 10 }));
        group.bench_function(format!("{ops}-ops-{procs}-procs"), |b| {
            b.iter(|| schism_checker::check_one(&h, &opts, CheckerName::Graph).unwrap())
        });
    }
    group.finish();
}

/// The invalid case: every 100th non-empty read loses its last element (stale reads and
/// monotonic-read violations), so the cycle search runs on one large component.
fn graph_invalid(c: &mut Criterion) {
    let mut group = c.benchmark_group("graph-append-invalid");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(30));
    let mut h = histories::append_history(1_000_000, 15, 7);
    let mut n = 0;
    for op in h.ops.iter_mut() {
        if let (OpType::Ok, Value::List(l)) = (op.kind, &mut op.value)
            && !l.is_empty()
        {
            n += 1;
            if n % 100 == 0 {
                std::sync::Arc::make_mut(l).pop();
            }
        }
    }
    let opts = Options::default();
    let r = schism_checker::check_one(&h, &opts, CheckerName::Graph).unwrap();
    eprintln!(
        "invalid 1M: {:?} {}",
        r.validity,
        serde_json::Value::Object(r.figures.clone())
    );
    group.bench_function("1000000-ops-1pct-stale", |b| {
        b.iter(|| schism_checker::check_one(&h, &opts, CheckerName::Graph).unwrap())
    });
    group.finish();
}

criterion_group!(benches, graph, graph_invalid);
criterion_main!(benches);
