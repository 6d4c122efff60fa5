//! Benchmark: rendering the run report of a 1,000,000-op history (and its size).
//!
//! `cargo bench -p schism-report --bench render`; the figures go to BENCHMARKS.md.

use criterion::{Criterion, criterion_group, criterion_main};
use schism_report::{RunInput, RunSettings, render_run, synth};

fn bench(c: &mut Criterion) {
    let (history, results) = synth::history(1_000_000, 42);
    let settings = RunSettings {
        target: "reference leader-follower".into(),
        key: vec![("seed".into(), "42".into())],
        rows: vec![
            ("test.name".into(), "bench".into()),
            ("seed".into(), "42".into()),
        ],
    };
    let input = RunInput {
        title: "bench 1M ops",
        settings: &settings,
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
