//! `schism sim --seeds A..B`: many simulated runs of one configuration, one per seed, on
//! every core; each checked in memory by the same checkers a run folder gets.
//!
//! Output: one line per failing seed (its verdict, the anomaly kinds with their counts,
//! the simulated time of the first anomaly's earliest witness, and the command that
//! reproduces it as a run folder), then a table of valid / invalid / unknown per seed
//! range and the rate. Exit code as `schism test`: 1 if any seed is invalid, else 2 if
//! any is unknown, 0 if all are valid, 3 if the harness failed on a seed.
//! Guarantee: a seed's verdict here is the verdict `schism sim --seed N` with the same
//! flags writes into its folder (same engine, same history, same checkers).

use anyhow::Result;
use schism_checker::{CheckerSet, Validity};
use schism_history::History;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{SeedRange, SimPlan, engine};
use crate::analyze;

/// Ranges the summary table splits the sweep into (at most).
const TABLE_ROWS: u64 = 10;

/// One seed's outcome.
#[derive(Debug, Clone)]
pub struct SeedResult {
    pub seed: u64,
    pub validity: Validity,
    /// One count per anomaly kind (`schism_checker::counts`).
    pub counts: BTreeMap<String, u64>,
    /// Simulated time of the earliest witness op of any anomaly.
    pub first_anomaly_ns: Option<u64>,
    pub ops: usize,
    /// Client invocations (final reads included; nemesis changes not).
    pub client_ops: usize,
    pub simulated_ns: u64,
}

/// Runs and checks one seed in memory.
pub fn check_seed(plan: &SimPlan, seed: u64) -> Result<SeedResult> {
    let outcome = engine::run(plan.setup(seed)?).map_err(anyhow::Error::msg)?;
    let t = &plan.args.test;
    let history = History::new(outcome.ops);
    let cut_short = outcome
        .deadline_exceeded
        .then(|| crate::store::RunStatus::DeadlineExceeded.cut_short())
        .flatten();
    let workload = analyze::checked_as(t.workload);
    let mut results =
        analyze::analyze_opts(&history, &super::budget(t), Vec::new(), cut_short, |o| {
            o.workload = workload;
            o.checkers = CheckerSet::Fitting;
        })?;
    // The convergence check over the dumps, as `analyze_file_with` adds it from a folder.
    if !outcome.dumps.is_empty() {
        let states = outcome
            .dumps
            .iter()
            .map(|(id, d)| (id.clone(), crate::models::replica_state(d)))
            .collect();
        let c = schism_checker::check_convergence(&states, 20);
        results.validity = results.validity.merge(c.validity);
        results.results.push(c);
        results.counts = schism_checker::counts::count_map(&results.results);
    }
    let first_anomaly_ns = results
        .results
        .iter()
        .flat_map(|r| &r.anomalies)
        .flat_map(|a| &a.ops)
        .filter_map(|&i| history.ops.get(i as usize).map(|o| o.time_ns))
        .min()
        .or_else(|| {
            // An anomaly without witness ops (divergent replicas): found at the end.
            results
                .results
                .iter()
                .any(|r| !r.anomalies.is_empty())
                .then_some(outcome.simulated_ns)
        });
    Ok(SeedResult {
        seed,
        validity: results.validity,
        counts: results.counts,
        first_anomaly_ns,
        ops: history.len(),
        client_ops: history
            .ops
            .iter()
            .filter(|o| o.kind == schism_history::OpType::Invoke && o.process.is_client())
            .count(),
        simulated_ns: outcome.simulated_ns,
    })
}

/// Every seed of `range`, on `threads` threads; results in seed order (an error names
/// its seed).
pub fn sweep(
    plan: &SimPlan,
    range: SeedRange,
    threads: usize,
) -> Vec<(u64, Result<SeedResult, String>)> {
    let next = AtomicU64::new(range.first);
    let out = Mutex::new(Vec::new());
    let count = range.last - range.first + 1;
    // A progress line on stderr every twentieth of the sweep (long sweeps take minutes).
    let every = (count / 20).max(1);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed > range.last || seed < range.first {
                        return;
                    }
                    let r = check_seed(plan, seed).map_err(|e| format!("{e:#}"));
                    if let Ok(mut v) = out.lock() {
                        v.push((seed, r));
                        let done = v.len() as u64;
                        if done.is_multiple_of(every) && done < count && count >= 40 {
                            let bad = v
                                .iter()
                                .filter(|(_, r)| {
                                    !r.as_ref().is_ok_and(|r| r.validity == Validity::Valid)
                                })
                                .count();
                            eprintln!("schism: {done}/{count} seeds done, {bad} not valid");
                        }
                    }
                }
            });
        }
    });
    let mut v = out.into_inner().unwrap_or_default();
    v.sort_by_key(|(seed, _)| *seed);
    v
}

/// `schism sim --seeds A..B`: sweep, print, exit code.
pub fn run(plan: &SimPlan, range: SeedRange) -> Result<i32> {
    let threads = plan.args.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let count = range.last - range.first + 1;
    eprintln!(
        "schism: sweeping {count} seeds ({}..{}) on {threads} threads",
        range.first, range.last
    );
    let wall = std::time::Instant::now();
    let results = sweep(plan, range, threads);
    let elapsed = wall.elapsed().as_secs_f64();
    let mut harness_failed = false;
    let mut failing = 0;
    for (seed, r) in &results {
        match r {
            Err(e) => {
                harness_failed = true;
                println!("seed {seed}: error: {e}");
            }
            Ok(r) if r.validity != Validity::Valid => {
                failing += 1;
                println!("{}", failing_line(r));
            }
            Ok(_) => {}
        }
    }
    if failing > 0 {
        println!("(schism sim --seed N with the same flags writes seed N's run folder)");
    }
    print!("{}", table(range, &results));
    println!(
        "{count} runs in {elapsed:.1} s: {:.0} runs/min on {threads} threads",
        count as f64 / elapsed.max(1e-9) * 60.0
    );
    let worst = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .fold(Validity::Valid, |v, r| v.merge(r.validity));
    Ok(if harness_failed {
        3
    } else {
        analyze::exit_code(worst)
    })
}

/// `seed 17: INVALID stale-read×3 lost-write×1, first at 4.213 s`.
pub fn failing_line(r: &SeedResult) -> String {
    let kinds: Vec<String> = r
        .counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{k}×{n}"))
        .collect();
    let first = r
        .first_anomaly_ns
        .map(|t| format!(", first at {:.3} s", t as f64 / 1e9))
        .unwrap_or_default();
    format!(
        "seed {}: {} {}{first}",
        r.seed,
        analyze::validity_word(r.validity),
        if kinds.is_empty() {
            "no anomaly proven".to_owned()
        } else {
            kinds.join(" ")
        },
    )
}

/// valid / invalid / unknown per seed range, and in all.
pub fn table(range: SeedRange, results: &[(u64, Result<SeedResult, String>)]) -> String {
    let count = range.last - range.first + 1;
    let width = count.div_ceil(TABLE_ROWS).max(1);
    let mut rows: BTreeMap<u64, [u64; 4]> = BTreeMap::new();
    let mut all = [0u64; 4];
    for (seed, r) in results {
        let col = match r {
            Ok(r) => match r.validity {
                Validity::Valid => 0,
                Validity::Invalid => 1,
                Validity::Unknown => 2,
            },
            Err(_) => 3,
        };
        rows.entry((seed - range.first) / width).or_default()[col] += 1;
        all[col] += 1;
    }
    let mut out = format!(
        "{:<24} {:>7} {:>7} {:>7} {:>7}\n",
        "seeds", "valid", "invalid", "unknown", "error"
    );
    for (bucket, c) in &rows {
        let lo = range.first + bucket * width;
        let hi = (lo + width - 1).min(range.last);
        out.push_str(&format!(
            "{:<24} {:>7} {:>7} {:>7} {:>7}\n",
            format!("{lo}..{hi}"),
            c[0],
            c[1],
            c[2],
            c[3]
        ));
    }
    out.push_str(&format!(
        "{:<24} {:>7} {:>7} {:>7} {:>7}\n",
        "all", all[0], all[1], all[2], all[3]
    ));
    out
}

/// How one row of the "test the tester" matrix (`matrix::ROWS`) fares in simulation.
#[derive(Debug, Clone)]
pub struct RowRate {
    pub id: &'static str,
    /// Seeds whose verdict and counts hold the row's expectation, of `runs`.
    pub held: u64,
    pub runs: u64,
    /// Seeds the harness failed on (they do not hold).
    pub errors: u64,
    /// Per anomaly kind, the seeds that showed it.
    pub kinds: BTreeMap<String, u64>,
}

/// The row's flags as `schism sim` flags (`None`: the row needs what the simulator
/// cannot do, the reason given).
pub fn row_args(row: &crate::matrix::Row, time_limit: Option<&str>) -> Result<SimPlan, String> {
    let mut argv: Vec<&str> = vec!["schism", "sim"];
    argv.extend(row.argv());
    argv.extend(["--time-limit", time_limit.unwrap_or(row.time_limit)]);
    let args = match clap::Parser::try_parse_from(argv).map(|c: crate::cli::Cli| c.command) {
        Ok(crate::cli::Command::Sim(args)) => *args,
        Ok(_) => return Err("not a sim command".into()),
        Err(e) => return Err(crate::cli::usage_error(&e)),
    };
    SimPlan::new(args).map_err(|e| format!("{e:#}"))
}

/// Sweeps `range` over one matrix row and counts the seeds that hold its expectation.
pub fn matrix_row(
    row: &crate::matrix::Row,
    time_limit: Option<&str>,
    range: SeedRange,
    threads: usize,
) -> Result<RowRate, String> {
    let plan = row_args(row, time_limit)?;
    let mut rate = RowRate {
        id: row.id,
        held: 0,
        runs: 0,
        errors: 0,
        kinds: BTreeMap::new(),
    };
    for (_, r) in sweep(&plan, range, threads) {
        rate.runs += 1;
        match r {
            Ok(r) => {
                if row.expect.holds(analyze::exit_code(r.validity), &r.counts) {
                    rate.held += 1;
                }
                for (k, n) in r.counts {
                    if n > 0 {
                        *rate.kinds.entry(k).or_default() += 1;
                    }
                }
            }
            Err(_) => rate.errors += 1,
        }
    }
    Ok(rate)
}
