//! A throughput smoke: prints ops/s, asserts only that work got done (no timing asserts).

use schism_targets::{ReadRouting, ReferenceClient, Reply, Request, Session};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_smoke() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = crate::spec(dir.path());
    if let Some(w) = std::env::var("SCHISM_SMOKE_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        spec.worker_threads = w;
    }
    let mut cluster = schism_targets::ReferenceCluster::start(spec).await.unwrap();
    let client = Arc::new(
        cluster
            .client(ReadRouting::Any, Duration::from_millis(1000))
            .unwrap(),
    );
    let tasks: u64 = std::env::var("SCHISM_SMOKE_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let ok = Arc::new(AtomicU64::new(0));
    let other = Arc::new(AtomicU64::new(0));
    let duration = Duration::from_secs(2);
    let pids = cluster.pids();
    let cpu_before: Vec<f64> = pids.iter().map(|&p| cpu_secs(&p.to_string())).collect();
    let self_before = cpu_secs("self");
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let counts = (ok.clone(), other.clone());
            tokio::spawn(load(client.clone(), t, start + duration, counts))
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let ok = ok.load(Ordering::Relaxed);
    eprintln!(
        "throughput smoke: {tasks} tasks, {:.0} ok ops/s ({ok} ok, {} other in {secs:.2}s; 50% append to the leader, 50% reads from any node)",
        ok as f64 / secs,
        other.load(Ordering::Relaxed)
    );
    let nodes: Vec<String> = pids
        .iter()
        .zip(&cpu_before)
        .map(|(&p, before)| format!("{:.2}", cpu_secs(&p.to_string()) - before))
        .collect();
    eprintln!(
        "throughput smoke: CPU seconds: client {:.2}, nodes [{}]",
        cpu_secs("self") - self_before,
        nodes.join(", ")
    );
    assert!(ok > 0);
    cluster.stop().await.unwrap();
}

/// Task `t`'s load until `until`: appends and reads in turn, over keys that rotate (as
/// the append workload's do) so lists stay short; counts ok and other replies.
async fn load(
    client: Arc<ReferenceClient>,
    t: u64,
    until: Instant,
    (ok, other): (Arc<AtomicU64>, Arc<AtomicU64>),
) {
    let mut session = Session::new(t);
    let mut i = 0i64;
    while Instant::now() < until {
        i += 1;
        let key = (i as u64 / 64) * 16 + (i as u64 + t) % 16;
        let req = if i % 2 == 0 {
            Request::Append {
                key,
                value: (t as i64) << 32 | i,
            }
        } else {
            Request::Read { key }
        };
        match client.invoke(&mut session, req).await {
            Reply::Ok { .. } => ok.fetch_add(1, Ordering::Relaxed),
            _ => other.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// User + system CPU seconds of `/proc/<pid>` (`self` for this process).
fn cpu_secs(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let Some(close) = stat.rfind(')') else {
        return 0.0;
    };
    // Fields after the command: state is field 3; utime and stime are fields 14 and 15.
    let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    let ticks: f64 = fields[11..13]
        .iter()
        .filter_map(|f| f.parse::<f64>().ok())
        .sum();
    // USER_HZ is 100 on Linux.
    ticks / 100.0
}
