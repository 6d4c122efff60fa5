//! `schism matrix`: DESIGN.md's "test the tester" matrix, run for several seeds per row on
//! the reference cluster (and the databases' transaction rows, in a build with their
//! adapters' features: a row's `--target` names what it needs), with one page (`matrix.html`) and `matrix.json` saying, per row
//! and seed, what was expected and what was observed.
//!
//! The rows are defined once, here (`ROWS`): each is a set of `schism test` flags and the
//! outcome the checker must report — `valid`, an anomaly kind (or several), or the absence
//! of a kind. A weak row holds when at least 90% of its seeds show the expected anomaly, a
//! safe row only when every seed does what it promises. Each run is an ordinary
//! `schism test` in a child process (its output goes to a log file next to its folder, so
//! the terminal gets one line per finished run); results land in
//! `<store>/matrix/<timestamp>/<row>/<run>/`. Every row's flags are parsed by the `test`
//! clap definition before the first run starts. Exit code: 0 when every row holds, 1 when
//! a row misses its rate, 2 when interrupted, 3 when a run's harness failed.

use anyhow::{Context, Result, bail};
use clap::Parser;
use schism_report::{MatrixCell, MatrixInput, MatrixRow};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::analyze::ResultsFile;
use crate::cli::{Cli, Command, MatrixArgs};
use crate::store;
use schism_targets::db::DbKind;

/// What a row's runs must show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Every checker valid.
    Valid,
    /// Each entry counted; an entry is a kind of `results.json`'s `counts` (the one
    /// vocabulary of `schism_checker::counts`: each anomaly once, at the kind it is
    /// counted as), or alternatives joined by `|`.
    Anomalies(&'static [&'static str]),
    /// The run was decided (valid or invalid, not unknown) and counted none of these.
    Without(&'static [&'static str]),
}

impl Expect {
    pub fn weak(self) -> bool {
        matches!(self, Expect::Anomalies(_))
    }

    /// Runs (out of `n`) that must hold for the row to hold.
    pub fn required(self, n: u64) -> u64 {
        if self.weak() { (n * 9).div_ceil(10) } else { n }
    }

    pub fn describe(self) -> String {
        match self {
            Expect::Valid => "valid".into(),
            Expect::Anomalies(k) => k.join(" + ").replace('|', " or "),
            Expect::Without(k) => format!("no {}", k.join(", no ")),
        }
    }

    /// Whether a run with exit `code` and these counts (`kind → count`) holds.
    pub fn holds(self, code: i32, counts: &BTreeMap<String, u64>) -> bool {
        let has = |entry: &str| {
            entry
                .split('|')
                .any(|kind| counts.get(kind).is_some_and(|&n| n > 0))
        };
        match self {
            Expect::Valid => code == 0,
            Expect::Anomalies(all) => code == 1 && all.iter().all(|e| has(e)),
            Expect::Without(none) => (code == 0 || code == 1) && !none.iter().any(|e| has(e)),
        }
    }
}

/// One row of the matrix.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub id: &'static str,
    pub configuration: &'static str,
    pub faults: &'static str,
    /// `schism test` flags (without `--seed`, `--store`, `--name`, `--time-limit`),
    /// separated by white space (no flag or value of a row contains any).
    pub args: &'static str,
    /// The row's own time limit (`schism matrix --time-limit` overrides it).
    pub time_limit: &'static str,
    pub expect: Expect,
}

impl Row {
    /// The row's `schism test` flags, one argument each.
    pub fn argv(&self) -> Vec<&'static str> {
        self.args.split_whitespace().collect()
    }

    /// The database the row runs on (its `--target`), `None` for the reference cluster.
    pub fn db(&self) -> Option<DbKind> {
        let argv = self.argv();
        argv.iter()
            .position(|a| *a == "--target")
            .and_then(|i| argv.get(i + 1))
            .and_then(|t| t.parse().ok())
    }

    /// Whether this build can run the row: a database row needs its adapter's feature.
    pub fn compiled(&self) -> bool {
        self.db().is_none_or(DbKind::compiled)
    }
}

/// Every row, in DESIGN.md's order, then the knob rows added since (durability, the
/// controls that show a weak row's twin is safe).
pub const ROWS: &[Row] = &[
    Row {
        id: "lf-sync-lease",
        configuration: "leader-follower, sync, leader reads with lease, fencing on, auto failover",
        faults: "partition, pause, kill",
        args: "--model leader-follower --workload register --replication sync --reads leader \
             --read-lease on --fencing on --failover auto --nemesis partition,pause,kill \
             --nemesis-interval 2s",
        time_limit: "10s",
        expect: Expect::Valid,
    },
    // Three kills, not two: on a loaded machine a kill that lands in a stall (no write
    // acknowledged since the last shipment) loses nothing.
    Row {
        id: "lf-async-failover",
        configuration: "leader-follower, async (shipping every 100 ms), auto failover, leader reads",
        faults: "kill the leader",
        args: "--model leader-follower --replication async --ship-interval 100ms \
             --failover auto --reads leader --nemesis kill --nemesis-targets leader \
             --nemesis-interval 2s",
        time_limit: "14s",
        expect: Expect::Anomalies(&["lost-write|divergence"]),
    },
    Row {
        id: "lf-async-any",
        configuration: "leader-follower, async, reads from any node",
        faults: "none",
        args: "--model leader-follower --replication async --reads any --nemesis none",
        time_limit: "6s",
        expect: Expect::Anomalies(&["stale-read", "monotonic-read", "read-your-writes"]),
    },
    Row {
        id: "lf-async-follower",
        configuration: "leader-follower, async, reads from followers",
        faults: "none",
        args: "--model leader-follower --replication async --reads follower --nemesis none",
        time_limit: "6s",
        expect: Expect::Anomalies(&["stale-read"]),
    },
    Row {
        id: "lf-async-ryw",
        configuration: "leader-follower, async, read-your-writes reads",
        faults: "partition, pause, kill",
        args: "--model leader-follower --replication async --reads ryw --durability fsync \
             --nemesis partition,pause,kill --nemesis-interval 2s",
        time_limit: "10s",
        expect: Expect::Without(&["read-your-writes"]),
    },
    Row {
        id: "lf-fencing-off",
        configuration: "leader-follower, async, fencing off, auto failover",
        faults: "partition the leader",
        args: "--model leader-follower --fencing off --failover auto --reads any \
             --nemesis partition --nemesis-targets leader --nemesis-interval 2s",
        time_limit: "10s",
        expect: Expect::Anomalies(&["divergence|lost-write"]),
    },
    // The old leader must keep its clients to show its stale reads: under async it keeps
    // acknowledging writes, so sessions stay with it until they poll /status and follow the
    // new leader (under sync every session's next write blocks there, then it moves on).
    // 14 s (three partitions): in the suite's debug build a 10 s run once drew no stale read.
    Row {
        id: "lf-no-lease",
        configuration: "leader-follower, async, leader reads without lease, auto failover",
        faults: "partition the leader",
        args: "--model leader-follower --replication async --reads leader --read-lease off \
             --failover auto --nemesis partition --nemesis-targets leader \
             --nemesis-interval 2s",
        time_limit: "14s",
        expect: Expect::Anomalies(&["stale-read"]),
    },
    // Issue 20's row, its command as a user types it (30 s, faults every 3 s): under sync
    // every write on the isolated old leader blocks, yet its clients (bound to it, as
    // Jepsen binds each client to a node) keep reading there until check-quorum deposes
    // it, after the majority side elected and committed. All sessions block at the same
    // moment when the partition begins and time out together, so a session of the old
    // leader is free to read in the window only between timeouts: a run needs several
    // isolations (15 s runs showed it on too few seeds), and a 500 ms client timeout
    // frees each session for reads in the window two or three times per isolation, not
    // once (with the default 1 s, stale reads on 184 of 200 simulated seeds and 9/10 real
    // ones; with 500 ms, on 200/200 simulated).
    Row {
        id: "lf-sync-no-lease",
        configuration: "leader-follower, sync, leader reads without lease, auto failover, 500 ms client timeout",
        faults: "partition the leader",
        args: "--model leader-follower --replication sync --reads leader --read-lease off \
             --failover auto --nemesis partition --nemesis-targets leader \
             --nemesis-interval 3s --client-timeout 500ms",
        time_limit: "30s",
        expect: Expect::Anomalies(&["stale-read"]),
    },
    Row {
        id: "lf-lease",
        configuration: "leader-follower, sync, leader reads with lease, auto failover",
        faults: "partition the leader",
        args: "--model leader-follower --replication sync --reads leader --read-lease on \
             --failover auto --nemesis partition --nemesis-targets leader \
             --nemesis-interval 2s",
        time_limit: "10s",
        expect: Expect::Valid,
    },
    // A kill loses only what the leader acknowledged since its last flush (50 ms): on a
    // loaded machine one kill in four or five lost nothing (10 seeds at load 6: 7 of 40
    // kills), and with two kills a run, seed 3 of a CI run was valid. Seven kills a run
    // (every other second of 15) make a run without a lost write a rarity.
    Row {
        id: "lf-buffered",
        configuration: "leader-follower, async, buffered durability, leader reads",
        faults: "kill the leader",
        args: "--model leader-follower --reads leader --durability buffered --nemesis kill \
             --nemesis-targets leader --nemesis-interval 1s",
        time_limit: "15s",
        expect: Expect::Anomalies(&["lost-write"]),
    },
    Row {
        id: "lf-fsync",
        configuration: "leader-follower, async, fsync durability, leader reads (the buffered row's twin)",
        faults: "kill the leader",
        args: "--model leader-follower --reads leader --durability fsync --nemesis kill \
             --nemesis-targets leader --nemesis-interval 2s",
        time_limit: "10s",
        expect: Expect::Valid,
    },
    Row {
        id: "ml-lww-skew",
        configuration: "multi-leader, lww",
        faults: "clock skew",
        args: "--model multi-leader --conflict lww --rate 500 --nemesis clock \
             --nemesis-interval 2s",
        time_limit: "10s",
        expect: Expect::Anomalies(&["lost-write"]),
    },
    // A read that misses a write completed before it began is a stale read; the graph
    // checker names it read-your-writes when the reader wrote the missed value itself, and
    // concurrent appends that overwrite each other (lost writes) mask many of the others.
    // A stale read needs a read to reach a replica within the replication lag (about a
    // millisecond on loopback) of a write to the same key, so the row drives the default
    // 2000 ops/s: at 500 ops/s, 12 s runs showed no stale read on seeds 7 and 10 of ten.
    Row {
        id: "ll-3-1-1",
        configuration: "leaderless 3/1/1",
        faults: "none",
        args: "--model leaderless --quorum 3/1/1 --rate 2000 --nemesis none",
        time_limit: "12s",
        expect: Expect::Anomalies(&["stale-read|read-your-writes"]),
    },
    // DESIGN.md's "stale reads despite W+R>N": a read that misses a write acknowledged
    // before it began is counted as the stale read it is; a violation no per-op kind
    // explains is counted as non-linearizable. 20 s: with 12 s, two seeds of ten drew
    // partitions that left every read fresh.
    Row {
        id: "ll-sloppy",
        configuration: "leaderless, 5 nodes, 3/2/2, sloppy quorum, anti-entropy 200 ms, register",
        faults: "partition: two nodes against three",
        args: "--model leaderless --nodes 5 --quorum 3/2/2 --sloppy-quorum on \
             --anti-entropy-ms 200 --workload register --rate 500 --nemesis partition \
             --nemesis-targets minority --nemesis-interval 2s",
        time_limit: "20s",
        expect: Expect::Anomalies(&["stale-read|non-linearizable"]),
    },
    Row {
        id: "ll-strict",
        configuration: "leaderless, 5 nodes, 3/2/2, strict quorum, anti-entropy 200 ms, register (the sloppy row's twin)",
        faults: "partition: two nodes against three",
        args: "--model leaderless --nodes 5 --quorum 3/2/2 --sloppy-quorum off \
             --anti-entropy-ms 200 --workload register --rate 500 --nemesis partition \
             --nemesis-targets minority --nemesis-interval 2s",
        time_limit: "12s",
        expect: Expect::Valid,
    },
    // A replica stays behind only on keys whose last write came while it was down: keys
    // are retired after 20 writes (not 100), so keys end during each kill even on a
    // loaded machine (with 100, seeds 3 and 7 of ten left no key behind under load: every
    // key written during a kill was written again after the restart).
    Row {
        id: "ll-no-repair",
        configuration: "leaderless 3/2/2, read repair and anti-entropy off, register",
        faults: "kill one node",
        args: "--model leaderless --quorum 3/2/2 --read-repair off --anti-entropy-ms 0 \
             --workload register --max-writes-per-key 20 --rate 500 --nemesis kill \
             --nemesis-targets one --nemesis-interval 2s",
        time_limit: "10s",
        expect: Expect::Anomalies(&["replica-divergence"]),
    },
    Row {
        id: "ll-anti-entropy",
        configuration: "leaderless 3/2/2, read repair off, anti-entropy 100 ms, register (the no-repair row's twin)",
        faults: "kill one node",
        args: "--model leaderless --quorum 3/2/2 --read-repair off --anti-entropy-ms 100 \
             --workload register --max-writes-per-key 20 --rate 500 --nemesis kill \
             --nemesis-targets one --nemesis-interval 2s",
        time_limit: "10s",
        expect: Expect::Without(&["replica-divergence"]),
    },
    Row {
        id: "ll-quorum",
        configuration: "leaderless 3/2/2, read repair on, register",
        faults: "none",
        args: "--model leaderless --quorum 3/2/2 --workload register --rate 500 --nemesis none",
        time_limit: "6s",
        expect: Expect::Valid,
    },
    // Transactions (list-append, rw-register), checked by the `txn` checker against
    // strict serializability unless the row says otherwise. The leader runs each
    // transaction atomically (one group of log entries, applied whole); with the lease and
    // fencing its history stays strict serializable through partitions, pauses and kills.
    // No failover: in the suite's debug build on a loaded machine, a run whose nemesis
    // killed all three nodes at once elected no leader until after the final reads'
    // retries (an election's liveness, which `lf-sync-lease` covers, not transactions').
    Row {
        id: "lf-txn-sync",
        configuration: "leader-follower, sync, leader reads with lease, fencing on, no failover, list-append transactions",
        faults: "partition, pause, kill",
        args: "--model leader-follower --workload list-append --replication sync --reads leader \
             --read-lease on --fencing on --failover none --nemesis partition,pause,kill \
             --nemesis-interval 2s",
        time_limit: "8s",
        expect: Expect::Valid,
    },
    // Read-only transactions on an async follower see a consistent but stale snapshot: a
    // transaction that began after another committed misses its append (an rw edge
    // against real time), which strict serializability forbids. The leader ships every
    // 50 ms, as real asynchronous replication lags: with shipping at once, a loaded
    // machine's run once showed a single such read in 4 s.
    Row {
        id: "lf-txn-follower",
        configuration: "leader-follower, async (shipping every 50 ms), read-only transactions on followers, list-append",
        faults: "none",
        args: "--model leader-follower --workload list-append --replication async \
             --ship-interval 50ms --reads follower --nemesis none",
        time_limit: "4s",
        // The reader's own earlier transaction closes the cycle (-process) or another
        // client's finished one (-realtime); a -process cycle is not reported again as
        // -realtime (Elle: X ⇒ X-process ⇒ X-realtime).
        expect: Expect::Anomalies(&[
            "G-single-process|G-single-realtime|G-nonadjacent-process|G-nonadjacent-realtime",
        ]),
    },
    // The same runs hold serializability: a follower applies whole transactions in log
    // order, so every read-only transaction sees a prefix of the leader's serial order.
    Row {
        id: "lf-txn-follower-ser",
        configuration: "leader-follower, async (shipping every 50 ms), read-only transactions on followers, list-append, checked as serializable (the follower row's twin)",
        faults: "none",
        args: "--model leader-follower --workload list-append --replication async \
             --ship-interval 50ms --reads follower --consistency-model serializable \
             --nemesis none",
        time_limit: "4s",
        expect: Expect::Valid,
    },
    // Multi-leader and leaderless nodes apply each micro-op on its own (no atomicity
    // across keys, no isolation): concurrent transactions on different nodes overwrite
    // each other's appends under last-writer-wins.
    Row {
        id: "ml-txn-lww",
        configuration: "multi-leader, lww, list-append transactions",
        faults: "none",
        args: "--model multi-leader --conflict lww --workload list-append --nemesis none",
        time_limit: "4s",
        expect: Expect::Anomalies(&["lost-update|G-single"]),
    },
    // A leaderless coordinator writes each register on its own quorum: a transaction
    // that writes one key twice is seen halfway (G1b, an intermediate read), and
    // concurrent transactions interleave key by key (G1c, G-single). Each transaction is
    // up to four quorum round trips, so the row runs longer than the other transaction
    // rows.
    Row {
        id: "ll-txn",
        configuration: "leaderless 3/2/2, rw-register transactions",
        faults: "none",
        args: "--model leaderless --quorum 3/2/2 --workload rw-register --nemesis none",
        time_limit: "6s",
        expect: Expect::Anomalies(&["G1b|G1c|G-single"]),
    },
    // The databases' transactions (issue 18): eight clients on four hot keys, so that
    // transactions conflict all the time. PostgreSQL runs a primary alone (the rows test
    // its isolation levels, not replication); Galera and etcd three members, every member
    // serving transactions.
    Row {
        id: "pg-serializable",
        configuration: "PostgreSQL, serializable (SSI), primary only, list-append",
        faults: "none",
        args: "--target postgres --nodes 1 --reads leader --workload list-append \
             --isolation serializable --keys 4 --concurrency 8 --nemesis none",
        time_limit: "10s",
        expect: Expect::Valid,
    },
    // Read committed: each statement sees what committed before it, so a transaction that
    // reads two keys can see one before and one after another transaction (read skew).
    Row {
        id: "pg-read-committed",
        configuration: "PostgreSQL, read committed (its default), primary only, list-append",
        faults: "none",
        args: "--target postgres --nodes 1 --reads leader --workload list-append \
             --isolation read-committed --keys 4 --concurrency 8 --nemesis none",
        time_limit: "10s",
        expect: Expect::Anomalies(&["G-single"]),
    },
    // Repeatable read is snapshot isolation in PostgreSQL: write skew (G2-item) shows, and
    // nothing snapshot isolation forbids.
    Row {
        id: "pg-repeatable-read",
        configuration: "PostgreSQL, repeatable read, primary only, list-append, checked for snapshot isolation",
        faults: "none",
        args: "--target postgres --nodes 1 --reads leader --workload list-append \
             --isolation repeatable-read --consistency-model snapshot-isolation --keys 4 \
             --concurrency 8 --nemesis none",
        time_limit: "10s",
        expect: Expect::Valid,
    },
    // Standbys cannot run SERIALIZABLE (the adapter runs read-only transactions there at
    // repeatable read, as PostgreSQL's hint says): they read snapshots the primary's SSI
    // never vetted, and late. A reader misses transactions that committed before it began
    // (G-single-realtime or -process: not strict serializable), and sees one of two concurrent writers
    // without the other in an order no serial history has (G2-item: Fekete's read-only
    // transaction anomaly, so not even serializable).
    Row {
        id: "pg-standby-reads",
        configuration: "PostgreSQL, serializable on the primary, async standbys serve the read-only transactions, list-append",
        faults: "none",
        args: "--target postgres --replication async --reads follower --workload list-append \
             --isolation serializable --keys 4 --concurrency 8 --nemesis none",
        time_limit: "10s",
        // When the stale reader's own earlier transaction closes the cycle it is reported
        // as -process, and not again as -realtime (Elle: X ⇒ X-process ⇒ X-realtime).
        expect: Expect::Anomalies(&[
            "G-single-process|G-single-realtime|G-nonadjacent-process|G-nonadjacent-realtime",
            "G2-item",
        ]),
    },
    // InnoDB's repeatable read reads a snapshot but updates the latest row, so two
    // transactions that read the same list both append to it: lost update (Jepsen's
    // MariaDB Galera finding, without faults).
    Row {
        id: "galera-repeatable-read",
        configuration: "MariaDB Galera, repeatable read (InnoDB's default), transactions on every node, list-append",
        faults: "none",
        args: "--target galera --reads any --workload list-append --keys 4 --concurrency 8 \
             --nemesis none",
        time_limit: "10s",
        expect: Expect::Anomalies(&["lost-update"]),
    },
    Row {
        id: "etcd-txn",
        configuration: "etcd, Txn with mod-revision compares, transactions on every member, list-append",
        faults: "none",
        args: "--target etcd --reads any --workload list-append --keys 4 --concurrency 8 \
             --nemesis none",
        time_limit: "10s",
        expect: Expect::Valid,
    },
];

/// The rows `--rows` picks: each comma-separated pattern selects the rows whose id
/// contains it (`lf-` every leader-follower row); none given means every row.
pub fn select(filter: Option<&str>) -> Result<Vec<&'static Row>> {
    let Some(filter) = filter else {
        // The database rows of adapters this build lacks are left out (CI builds with
        // every feature, so it runs them all).
        return Ok(ROWS.iter().filter(|r| r.compiled()).collect());
    };
    let patterns: Vec<&str> = filter
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    let ids = || ROWS.iter().map(|r| r.id).collect::<Vec<_>>().join(", ");
    if patterns.is_empty() {
        bail!(
            "--rows is empty: name rows (or parts of their ids) from: {}",
            ids()
        );
    }
    for p in &patterns {
        if !ROWS.iter().any(|r| r.id.contains(p)) {
            bail!("--rows {p:?} matches no row; rows are: {}", ids());
        }
    }
    let picked: Vec<&'static Row> = ROWS
        .iter()
        .filter(|r| patterns.iter().any(|p| r.id.contains(p)))
        .collect();
    if let Some(r) = picked.iter().find(|r| !r.compiled()) {
        let f = r.db().map_or("", DbKind::feature);
        bail!(
            "matrix row {} runs on {f}, which this schism was built without: rebuild with `cargo build --release --features {f}` (or `--features all-targets`)",
            r.id
        );
    }
    Ok(picked)
}

/// The `schism test` arguments of one run of a row.
fn test_argv(row: &Row, seed: u64, time_limit: &str, dir: &Path) -> Vec<String> {
    let mut argv: Vec<String> = row.argv().into_iter().map(str::to_owned).collect();
    argv.extend([
        "--time-limit".into(),
        time_limit.into(),
        "--seed".into(),
        seed.to_string(),
        "--store".into(),
        dir.to_string_lossy().into_owned(),
        "--name".into(),
        row.id.into(),
    ]);
    argv
}

/// Checks every run's flags with the `test` parser before anything runs.
fn validate(rows: &[&Row], time_limit: Option<&str>, dir: &Path) -> Result<()> {
    for row in rows {
        let tl = time_limit.unwrap_or(row.time_limit);
        let mut argv = vec!["schism".to_owned(), "test".to_owned()];
        argv.extend(test_argv(row, 1, tl, dir));
        match Cli::try_parse_from(&argv) {
            Ok(Cli {
                command: Command::Test(_),
            }) => {}
            Ok(_) => bail!("internal: matrix row {} is not a test", row.id),
            Err(e) => bail!(
                "matrix row {}: {}",
                row.id,
                e.to_string()
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim_start_matches("error: ")
            ),
        }
    }
    Ok(())
}

/// What one finished run showed.
struct Observed {
    code: i32,
    /// The run's `counts` from results.json (`kind → count`, each anomaly once).
    found: BTreeMap<String, u64>,
    run_dir: Option<PathBuf>,
    error: Option<String>,
}

impl Observed {
    fn text(&self) -> String {
        if let Some(e) = &self.error {
            return e.clone();
        }
        let verdict = match self.code {
            0 => "valid",
            1 => "invalid",
            2 => "unknown",
            _ => "harness failed",
        };
        if self.found.is_empty() {
            return verdict.into();
        }
        // Kinds with their counts, as the run's summary and report show them.
        let kinds: Vec<String> = self
            .found
            .iter()
            .map(|(kind, n)| format!("{kind} ×{n}"))
            .collect();
        format!("{verdict}: {}", kinds.join(", "))
    }
}

/// Runs `schism test` for one row and seed as a child process, its output in `log`.
async fn run_one(argv: &[String], log: &Path) -> Result<Observed> {
    let exe = std::env::current_exe().context("cannot find the schism executable")?;
    let out =
        std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let err = out.try_clone()?;
    let status = tokio::process::Command::new(exe)
        .arg("test")
        .args(argv)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .status()
        .await
        .context("cannot start schism test")?;
    let code = status.code().unwrap_or(3);
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let run_dir = text
        .lines()
        .find_map(|l| l.strip_prefix("results: "))
        .map(PathBuf::from);
    let mut found = BTreeMap::new();
    let mut error = None;
    match &run_dir {
        Some(dir) => {
            let path = dir.join(store::RESULTS);
            let results: ResultsFile = serde_json::from_str(
                &std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?,
            )
            .with_context(|| format!("{} is not a results file", path.display()))?;
            // The run's one count per kind (`schism_checker::counts`, as the summary,
            // report and JUnit show it): an anomaly two checkers list counts once, at the
            // kind its owner gives it, so a row is decided by what the run counts, not by
            // any checker's list.
            found = results.counts;
        }
        None => {
            let why = text
                .lines()
                .rev()
                .find(|l| l.starts_with("schism: error"))
                .unwrap_or("no results")
                .to_owned();
            error = Some(format!("harness failed: {why}"));
        }
    }
    Ok(Observed {
        code,
        found,
        run_dir,
        error,
    })
}

fn rel(from: &Path, target: &Path) -> String {
    target
        .strip_prefix(from)
        .unwrap_or(target)
        .to_string_lossy()
        .into_owned()
}

/// `schism matrix`.
pub async fn run_matrix(args: MatrixArgs) -> Result<i32> {
    let rows = select(args.rows.as_deref())?;
    if args.list {
        for r in &rows {
            println!(
                "{:18} expects {:28} {} — {}",
                r.id,
                r.expect.describe(),
                r.configuration,
                r.faults
            );
        }
        return Ok(0);
    }
    if args.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    let time_limit = args.time_limit.map(|d| format!("{}ms", d.as_millis()));
    let seeds: Vec<u64> = (1..=args.seeds).collect();
    // Every row's flags parse before anything is created or run.
    validate(&rows, time_limit.as_deref(), &args.store)?;
    let started = chrono::Utc::now();
    let clock = Instant::now();
    let dir = store::create_run_dir_at(&args.store, store::MATRIX, &started)?;
    // create_run_dir makes a nodes/ folder for runs; the matrix has none of its own.
    let _ = std::fs::remove_dir(dir.join(store::NODES));
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    let total = rows.len() * seeds.len();
    eprintln!(
        "schism: matrix: {} rows × {} seeds = {total} runs → {}",
        rows.len(),
        seeds.len(),
        dir.display()
    );
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let watcher = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            flag.store(true, Ordering::Relaxed);
        }
    });
    let mut interrupted = false;
    let mut harness_failed = false;
    let mut out_rows = Vec::new();
    let mut done = 0;
    'rows: for row in &rows {
        let tl = time_limit.as_deref().unwrap_or(row.time_limit);
        let mut m = MatrixRow {
            id: row.id.into(),
            configuration: row.configuration.into(),
            faults: row.faults.into(),
            args: row.argv().into_iter().map(str::to_owned).collect(),
            expected: row.expect.describe(),
            weak: row.expect.weak(),
            required_rate: if row.expect.weak() { 0.9 } else { 1.0 },
            ..MatrixRow::default()
        };
        m.args.extend(["--time-limit".into(), tl.into()]);
        for &seed in &seeds {
            let log = logs.join(format!("{}-seed{seed}.log", row.id));
            let t0 = Instant::now();
            let argv = test_argv(row, seed, tl, &dir);
            // Ctrl-C reaches the child too (same process group): it heals, stops its
            // cluster and ends; the matrix then stops after it.
            let run = run_one(&argv, &log).await?;
            done += 1;
            let held = row.expect.holds(run.code, &run.found);
            harness_failed |= run.code == 3 || run.error.is_some();
            let cell = MatrixCell {
                seed,
                exit_code: run.code,
                observed: run.text(),
                held,
                link: match &run.run_dir {
                    Some(d) => rel(&dir, &d.join(store::REPORT)),
                    None => rel(&dir, &log),
                },
                duration_s: t0.elapsed().as_secs_f64(),
            };
            eprintln!(
                "schism: matrix {done}/{total} {} seed {seed}: {} — expected {} {} ({:.1} s)",
                row.id,
                cell.observed,
                m.expected,
                if held { "✓" } else { "✗" },
                cell.duration_s
            );
            m.runs.push(cell);
            if stop.load(Ordering::Relaxed) {
                interrupted = true;
                out_rows.push(finish(m));
                break 'rows;
            }
        }
        out_rows.push(finish(m));
    }
    watcher.abort();
    let matrix = MatrixInput {
        date: started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        seeds,
        time_limit,
        total_s: clock.elapsed().as_secs_f64(),
        interrupted,
        rows: out_rows,
    };
    store::write_json(&dir.join(store::MATRIX_JSON), &matrix)?;
    store::write_atomic(
        &dir.join(store::MATRIX_HTML),
        schism_report::render_matrix(&matrix).as_bytes(),
    )?;
    print!("{}", table(&matrix));
    println!("matrix: {}", dir.join(store::MATRIX_HTML).display());
    Ok(if harness_failed {
        3
    } else if matrix.rows.iter().any(|r| !r.ok && !r.runs.is_empty()) && !interrupted {
        1
    } else if interrupted {
        2
    } else {
        0
    })
}

/// Fills in a row's rate and whether it holds.
fn finish(mut m: MatrixRow) -> MatrixRow {
    let n = m.runs.len() as u64;
    m.held = m.runs.iter().filter(|c| c.held).count() as u64;
    m.rate = (n > 0).then(|| m.held as f64 / n as f64);
    let need = if m.weak { (n * 9).div_ceil(10) } else { n };
    m.ok = n > 0 && m.held >= need;
    m
}

/// The terminal summary: one line per row.
fn table(m: &MatrixInput) -> String {
    let w = m
        .rows
        .iter()
        .map(|r| r.expected.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let mut s = format!(
        "{:18}  {:w$}  {:>9}  {:>8}  row\n",
        "row", "expected", "held", "required"
    );
    for r in &m.rows {
        s.push_str(&format!(
            "{:18}  {:w$}  {:>9}  {:>8}  {}\n",
            r.id,
            r.expected,
            format!("{}/{}", r.held, r.runs.len()),
            format!("{:.0}%", r.required_rate * 100.0),
            if r.ok { "holds" } else { "MISSES" }
        ));
    }
    s.push_str(&format!("total time {:.0} s\n", m.total_s));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(kinds: &[&str]) -> BTreeMap<String, u64> {
        kinds.iter().map(|k| ((*k).to_owned(), 1)).collect()
    }

    #[test]
    fn expectations_hold_only_on_what_they_name() {
        let stale = found(&["stale-read"]);
        assert!(Expect::Anomalies(&["stale-read"]).holds(1, &stale));
        assert!(!Expect::Anomalies(&["stale-read"]).holds(0, &BTreeMap::new()));
        assert!(!Expect::Anomalies(&["stale-read", "monotonic-read"]).holds(1, &stale));
        assert!(Expect::Anomalies(&["divergence|stale-read"]).holds(1, &stale));
        let graph_divergence = found(&["divergence"]);
        assert!(!Expect::Anomalies(&["replica-divergence"]).holds(1, &graph_divergence));
        assert!(Expect::Anomalies(&["divergence"]).holds(1, &graph_divergence));
        let zero: BTreeMap<String, u64> = [("stale-read".to_owned(), 0)].into();
        assert!(!Expect::Anomalies(&["stale-read"]).holds(1, &zero));
        assert!(Expect::Valid.holds(0, &BTreeMap::new()));
        assert!(!Expect::Valid.holds(2, &BTreeMap::new()));
        // "no read-your-writes" needs a decided run without that kind.
        let ryw = Expect::Without(&["read-your-writes"]);
        assert!(ryw.holds(1, &stale));
        assert!(!ryw.holds(2, &BTreeMap::new()));
        assert!(!ryw.holds(1, &found(&["read-your-writes"])));
        assert_eq!(Expect::Anomalies(&["a"]).required(10), 9);
        assert_eq!(Expect::Anomalies(&["a"]).required(3), 3);
        assert_eq!(Expect::Valid.required(10), 10);
    }

    /// A row is decided by the run's counts: a linearizability violation on a key whose
    /// stale read the graph checker proves is counted as that stale read, so it does not
    /// satisfy a row expecting `non-linearizable` although the linearizable checker lists it.
    #[test]
    fn rows_are_decided_by_counts_not_by_listed_anomalies() {
        use schism_checker::{Anomaly, AnomalyKind, CheckResult, Validity};
        let listed = |checker: &str, kind: AnomalyKind, figures: &[(&str, u64)]| CheckResult {
            checker: checker.into(),
            validity: Validity::Invalid,
            anomalies: vec![Anomaly::new(kind, Some(1), vec![7], String::new())],
            figures: figures
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).into()))
                .collect(),
        };
        let results = vec![
            listed(
                "linearizable",
                AnomalyKind::NonLinearizable,
                &[
                    ("non_linearizable_keys", 1),
                    (schism_checker::counts::NON_LINEARIZABLE_EXPLAINED, 1),
                ],
            ),
            listed("graph", AnomalyKind::StaleRead, &[]),
        ];
        let counts = schism_checker::counts::count_map(&results);
        assert!(!Expect::Anomalies(&["non-linearizable"]).holds(1, &counts));
        assert!(Expect::Anomalies(&["stale-read"]).holds(1, &counts));
        assert!(Expect::Anomalies(&["stale-read|non-linearizable"]).holds(1, &counts));
        // The convergence checker's divergence counts as replica divergence.
        let conv = vec![listed("convergence", AnomalyKind::Divergence, &[])];
        let counts = schism_checker::counts::count_map(&conv);
        assert!(Expect::Anomalies(&["replica-divergence"]).holds(1, &counts));
        assert!(!Expect::Anomalies(&["divergence"]).holds(1, &counts));
    }

    #[test]
    fn rows_are_unique_valid_test_flags_and_selectable() {
        let mut ids: Vec<&str> = ROWS.iter().map(|r| r.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), ROWS.len(), "row ids are unique");
        let all: Vec<&Row> = ROWS.iter().collect();
        // A row's flags are its string split at white space, line continuations included.
        let ryw = select(Some("lf-async-ryw")).unwrap()[0].argv();
        assert_eq!(
            ryw,
            [
                "--model",
                "leader-follower",
                "--replication",
                "async",
                "--reads",
                "ryw",
                "--durability",
                "fsync",
                "--nemesis",
                "partition,pause,kill",
                "--nemesis-interval",
                "2s"
            ]
        );
        validate(&all, None, Path::new("/tmp")).unwrap();
        validate(&all, Some("5s"), Path::new("/tmp")).unwrap();
        assert_eq!(select(Some("lf-no-lease")).unwrap().len(), 1);
        assert!(
            select(Some("ll-"))
                .unwrap()
                .iter()
                .all(|r| r.id.starts_with("ll-"))
        );
        let e = select(Some("nonsense")).unwrap_err().to_string();
        assert!(
            e.contains("matches no row") && e.contains("lf-no-lease"),
            "{e}"
        );
        // Every weak row has a safe twin or is a DESIGN.md row; every row names its kinds
        // in the checker's vocabulary.
        let kinds: Vec<&str> = schism_checker::AnomalyKind::ALL
            .iter()
            .map(|k| k.as_str())
            .collect();
        for r in ROWS {
            if let Expect::Anomalies(e) | Expect::Without(e) = r.expect {
                for alt in e.iter().flat_map(|x| x.split('|')) {
                    assert!(kinds.contains(&alt), "{}: unknown kind {alt}", r.id);
                }
            }
        }
    }
}
