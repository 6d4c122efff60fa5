//! Benchmark: rendering the run report of a 1,000,000-op history (and its size).
//!
//! `cargo bench -p schism-report --bench render`; the figures go to BENCHMARKS.md.

use criterion::{Criterion, criterion_group, criterion_main};
use schism_report::{RunInput, render_run, synth};

fn bench(c: &mut Criterion) {
    let (history, results) = synth::history(1_000_000, 42);
    let config = serde_json::json!({"test": {"name": "bench"}, "seed": 42});
    let input = RunInput {
        title: "bench 1M ops",
        config: &config,
        results: &results,
        history: &history,
        lag: &schism_report::LagData::default(),
    };
    let html = render_run(&input);
    eprintln!(
        "report of {} history lines: {} bytes ({:.2} MB)",
        history.len(),
        html.len(),
        html.len() as f64 / 1e6
    );
    let mut g = c.benchmark_group("report");
    g.sample_size(10);
    g.bench_function("render_run_1M_ops", |b| b.iter(|| render_run(&input).len()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
