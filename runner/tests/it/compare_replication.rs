//! `schism compare` over replication sync / semi-sync:1 / async, two seeds each, on the
//! reference leader-follower cluster with the leader killed: the page and its JSON must
//! show what the trade-off is — async answers fastest and loses acknowledged writes when
//! its leader dies; sync and semi-sync pay for the follower round-trip and lose none.
//!
//! The leader ships its log to followers every 100 ms (`--ship-interval`), as real
//! asynchronous replication lags by batching; each run kills the leader twice (every 2 s,
//! failover auto, read leases so leader reads stay linearizable). An async leader that
//! dies takes up to 100 ms of acknowledged appends with it: at a hundred or more appends
//! per second that is several writes per kill on average.

use crate::{schism, state_dir, stdout, tempdir};

#[test]
fn compare_sync_semisync_async_under_leader_kills() {
    let store = tempdir();
    let out = schism()
        .env("SCHISM_STATE_DIR", state_dir(store.path()))
        .args([
            "compare",
            "--name",
            "repl",
            "--vary",
            "replication=sync,semi-sync:1,async",
            "--seeds",
            "2",
            "--store",
        ])
        .arg(store.path())
        .args([
            "--",
            "--failover",
            "auto",
            "--reads",
            "leader",
            "--read-lease",
            "on",
            "--nemesis",
            "kill",
            "--nemesis-targets",
            "leader",
            "--nemesis-interval",
            "2s",
            "--time-limit",
            "10s",
            "--rate",
            "0",
            "--ship-interval",
            "100ms",
            "--concurrency",
            "20",
        ])
        .output()
        .expect("spawn schism compare");
    let text = stdout(&out);
    eprintln!("{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "compare itself must succeed");

    let dir = crate::only_run_dir(&store.path().join("compare"), "repl");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("comparison.json")).unwrap())
            .unwrap();
    let settings = json["settings"].as_array().unwrap();
    let labels: Vec<&str> = settings
        .iter()
        .map(|s| s["label"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        [
            "replication=sync",
            "replication=semi-sync:1",
            "replication=async"
        ]
    );
    let f = |i: usize, k: &str| settings[i][k].as_f64().unwrap();
    for setting in settings {
        assert_eq!(setting["runs"].as_array().unwrap().len(), 2);
        // Every run really killed a leader.
        for run in setting["runs"].as_array().unwrap() {
            assert!(
                run["figures"]["fault_windows"].as_u64().unwrap() >= 1,
                "{run}"
            );
        }
    }
    // Lost writes: none with sync or semi-sync; some with async (over its four kills: a
    // kill right after a shipment loses little, so one kill alone may lose nothing).
    assert_eq!(f(0, "lost_writes"), 0.0, "sync lost acknowledged writes");
    assert_eq!(
        f(1, "lost_writes"),
        0.0,
        "semi-sync:1 lost acknowledged writes"
    );
    assert!(f(2, "lost_writes") > 0.0, "async lost nothing");
    let per_run: u64 = settings[2]["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["figures"]["lost_writes"].as_u64().unwrap())
        .sum();
    assert_eq!(
        per_run as f64,
        f(2, "lost_writes"),
        "the pooled figure is the runs' sum"
    );
    // Write latency: waiting for followers costs at least the ship interval.
    assert!(
        f(0, "write_latency_ms_p50") > 2.0 * f(2, "write_latency_ms_p50"),
        "sync p50 {} vs async p50 {}",
        f(0, "write_latency_ms_p50"),
        f(2, "write_latency_ms_p50")
    );
    assert!(f(1, "write_latency_ms_p50") > 2.0 * f(2, "write_latency_ms_p50"));

    // The page shows the same figures: the summary row of async carries its lost writes.
    let html = std::fs::read_to_string(dir.join("comparison.html")).unwrap();
    let row = |label: &str| {
        let i = html
            .find(&format!("</i> {label}</td>"))
            .expect("a summary row");
        html[i..i + html[i..].find("</tr>").unwrap()].to_owned()
    };
    let lost = format!("<td class=\"num\">{}</td>", f(2, "lost_writes") as u64);
    assert!(
        row("replication=async").contains(&lost),
        "{}",
        row("replication=async")
    );
    assert!(html.contains("plot-cdf-write") && html.contains("plot-anomalies-vs-latency"));
}
