//! The `txn` checker on a large strict-serializable list-append history (issue 18: 1,000,000
//! transactions of 4 micro-ops over 1,000 keys, strict serializability, ≤ 10 s and ≤ 2 GB
//! on 2 cores). `cargo bench -p schism-checker --bench txn`.

#[path = "support/txn_history.rs"]
mod txn_history;

use criterion::{Criterion, criterion_group, criterion_main};
use schism_checker::Validity;
use schism_checker::txn::{ConsistencyModel, TxnOptions, TxnWorkload, check_txn};
use std::time::Duration;

fn txn(c: &mut Criterion) {
    let mut group = c.benchmark_group("txn-list-append");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    let opts = TxnOptions::new(
        TxnWorkload::ListAppend,
        ConsistencyModel::StrictSerializable,
    );
    for n in [100_000usize, 1_000_000] {
        let h = txn_history::list_append_history(n, 4, 1000, 10, 7);
        let r = check_txn(&h, &opts).unwrap();
        assert_eq!(r.validity, Validity::Valid, "{:#?}", r.anomalies);
        eprintln!("{n}: {}", serde_json::Value::Object(r.figures.clone()));
        group.measurement_time(Duration::from_secs(if n > 100_000 { 120 } else { 20 }));
        group.bench_function(format!("{n}-txns-4-mops-1000-keys"), |b| {
            b.iter(|| check_txn(&h, &opts).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, txn);
criterion_main!(benches);
