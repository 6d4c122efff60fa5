//! The harness's own overhead, without any cluster: how many ops per second the
//! generator plus the recorder (index + time under one lock, queue, writer thread,
//! JSON Lines to a file) sustain. An end-to-end run can never beat this figure.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use schism_history::{Op, OpType, Process, Value};
use schism_runner::recorder::Recorder;
use schism_workloads::{Generator, Next, WorkloadKind, WorkloadSpec};
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::Instant;

const OPS: u64 = 100_000;

fn spec() -> WorkloadSpec {
    WorkloadSpec {
        kind: WorkloadKind::Append,
        keys: 8,
        max_writes_per_key: 100,
        read_fraction: 0.5,
        rate_hz: 0.0,
        time_limit_ns: u64::MAX,
        final_reads: false,
        final_read_delay_ns: 0,
        seed: 1,
    }
}

/// `threads` workers each generate and record `OPS / threads` invoke+ok pairs.
fn drive(threads: u64) {
    let dir = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let rec = Arc::new(Recorder::create(&dir.path().join("h.jsonl"), start).unwrap());
    let generator = Arc::new(Mutex::new(Generator::new(spec()).unwrap()));
    std::thread::scope(|s| {
        for t in 0..threads {
            let rec = rec.clone();
            let generator = generator.clone();
            s.spawn(move || {
                for _ in 0..OPS / threads {
                    let now = rec.now_ns();
                    let Next::Op(inv) = generator.lock().unwrap().next(now) else {
                        panic!("generator stopped")
                    };
                    let mut op = Op::new(
                        0,
                        0,
                        Process::client(t),
                        OpType::Invoke,
                        inv.f,
                        Some(inv.key),
                        inv.value,
                    );
                    rec.record(op.clone()).unwrap();
                    op.kind = OpType::Ok;
                    op.set_node(Some("n1".into()));
                    if op.value.is_null() {
                        op.value = Value::list((0..50).collect::<Vec<i64>>());
                    }
                    rec.record(op).unwrap();
                }
            });
        }
    });
    black_box(rec.finish().unwrap());
}

fn harness(c: &mut Criterion) {
    let mut g = c.benchmark_group("harness_overhead");
    g.sample_size(10);
    g.throughput(Throughput::Elements(OPS));
    for threads in [1, 10, 50] {
        g.bench_function(format!("generate_and_record_{threads}_workers"), |b| {
            b.iter(|| drive(threads))
        });
    }
    g.finish();
}

criterion_group!(benches, harness);
criterion_main!(benches);
