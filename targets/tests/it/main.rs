//! Integration tests: real 3-node reference clusters, one OS process per node.
//!
//! Nodes run from the `schism-ref-node` helper binary of this crate (the same `run_node`
//! the `schism node` subcommand calls). Every test uses its own temporary directory and
//! free ports, so the tests can run in parallel.

mod forwarded;
mod lifecycle;
mod replication;
mod throughput;

use schism_targets::{ClusterSpec, ReferenceCluster};
use std::path::Path;
use std::time::{Duration, Instant};

pub fn spec(dir: &Path) -> ClusterSpec {
    ClusterSpec::new(
        env!("CARGO_BIN_EXE_schism-ref-node"),
        3,
        dir.join("data"),
        dir.join("logs"),
    )
}

pub async fn start(dir: &Path) -> ReferenceCluster {
    match ReferenceCluster::start(spec(dir)).await {
        Ok(c) => c,
        Err(e) => panic!("cluster did not start: {e}"),
    }
}

pub fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The state letter of `/proc/<pid>/stat` (R, S, T, Z, …).
pub fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// Polls `check` every 20 ms until it returns `Some`, or panics after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
