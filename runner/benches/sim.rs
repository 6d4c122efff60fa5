//! `schism sim`'s speed: simulated runs per minute of the benchmark configuration of
//! issue 16 — 3 nodes, 10 clients, 10 simulated seconds at 1,000 ops/s (plus the final
//! reads), the default faults (partition, kill) — with and without the checkers. One
//! iteration is one seed (each iteration takes the next seed, so the figure is an
//! average over plans). Runs/minute on N cores ≈ N × 60 s / (time per run); the
//! `schism sim --seeds` sweep is what spreads seeds over the cores.

use criterion::{Criterion, criterion_group, criterion_main};
use schism_runner::cli::{Cli, Command};
use schism_runner::sim::{SimPlan, engine, sweep};
use std::hint::black_box;

fn plan() -> SimPlan {
    let argv = ["schism", "sim", "--time-limit", "10s", "--rate", "1000"];
    match clap::Parser::try_parse_from(argv).map(|c: Cli| c.command) {
        Ok(Command::Sim(args)) => SimPlan::new(*args).unwrap(),
        _ => unreachable!("the benchmark's flags parse"),
    }
}

fn bench(c: &mut Criterion) {
    let plan = plan();
    let mut g = c.benchmark_group("sim_3_nodes_10_clients_10s_1000_ops");
    g.sample_size(20);
    let mut seed = 0;
    g.bench_function("simulate", |b| {
        b.iter(|| {
            seed += 1;
            black_box(engine::run(plan.setup(seed).unwrap()).unwrap().ops.len())
        })
    });
    g.bench_function("simulate_and_check", |b| {
        b.iter(|| {
            seed += 1;
            black_box(sweep::check_seed(&plan, seed).unwrap().validity)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
