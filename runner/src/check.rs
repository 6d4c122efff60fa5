//! `schism check`: one history (a results folder, a `.jsonl` or `.edn` file) or several
//! (files, folders, directories of them) checked in one process, refused up front when
//! the history would not fit in memory.
//!
//! Guarantees: one path that is a history or a run folder prints its full summary, as it
//! always did; several paths (or a directory holding histories) print one line per
//! history and a summary line, and the exit code is the worst outcome — `1` if any
//! history is invalid (proven), else `3` if any could not be checked, else `2` if any is
//! unknown, else `0`. Before a file is read its size is turned into an estimate of the
//! memory the check needs (`estimate_bytes`) and compared with what is available (or
//! `--max-memory`): a file too large is one error line naming the estimate and the flag,
//! not a process the kernel kills half-way. The walk of a directory is bounded
//! (`MAX_WALK_DEPTH`, `MAX_HISTORIES`).

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::analyze::{self, Budget, ModelChoice, ResultsFile};
use crate::cli::CheckArgs;
use crate::{reporting, store};

/// How deep `schism check DIR` looks for histories (a results store is store/test/run/).
pub const MAX_WALK_DEPTH: usize = 6;
/// Most histories one `schism check` takes (a bound on the walk, not on any one check).
pub const MAX_HISTORIES: usize = 100_000;

/// Bytes of memory checking a history file of `file_bytes` needs, about: twice the file,
/// plus the program itself. Measured peaks with every checker, two of them side by side
/// (BENCHMARKS.md, "`schism check`: a 40-byte `Operation`"): 1.12 × the file for register
/// histories (203 MB → 227 MB; 1.02 × at 3M ops, 0.96 × at 10M), 1.40 × for append
/// (369 MB → 516 MB), 1.37 × for list-append transactions (127 MB → 174 MB); a history of
/// shorter lines holds more ops per byte, hence the margin.
pub fn estimate_bytes(file_bytes: u64) -> u64 {
    const PROGRAM_BYTES: u64 = 64 << 20;
    file_bytes.saturating_mul(2).saturating_add(PROGRAM_BYTES)
}

/// Memory this process may use now: the kernel's `MemAvailable`, lowered to the cgroup's
/// headroom (`memory.max` − `memory.current`) when one is set. `None` when neither can
/// be read (then nothing is refused).
pub fn available_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
    let avail = meminfo.as_deref().and_then(|m| {
        m.lines()
            .find_map(|l| l.strip_prefix("MemAvailable:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
    });
    let read = |f: &str| {
        std::fs::read_to_string(Path::new("/sys/fs/cgroup").join(f))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
    };
    let cgroup = match (read("memory.max"), read("memory.current")) {
        (Some(max), Some(cur)) => Some(max.saturating_sub(cur)),
        _ => None,
    };
    match (avail, cgroup) {
        (Some(a), Some(c)) => Some(a.min(c)),
        (a, c) => a.or(c),
    }
}

fn gb(bytes: u64) -> String {
    format!("{:.2} GB", bytes as f64 / 1e9)
}

/// Refuses a history whose check would not fit: `limit` is `--max-memory`, else what
/// is available now.
pub fn fits_in_memory(history: &Path, limit: Option<u64>) -> Result<()> {
    let Ok(meta) = std::fs::metadata(history) else {
        return Ok(()); // the reader names a missing file
    };
    let (limit, what) = match limit {
        Some(l) => (l, "the --max-memory limit"),
        None => match available_bytes() {
            Some(a) => (a, "the memory available now"),
            None => return Ok(()),
        },
    };
    let need = estimate_bytes(meta.len());
    if need > limit {
        bail!(
            "{}: checking this {} history needs about {} of memory (estimate: 2 × the file + 64 MiB), more than {what} ({}); check it on a larger machine, or raise the limit with --max-memory SIZE if the estimate is too high",
            history.display(),
            gb(meta.len()),
            gb(need),
            gb(limit)
        );
    }
    Ok(())
}

/// True for a file `schism check` reads as a history.
fn is_history_file(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("jsonl") || e.eq_ignore_ascii_case("edn"))
}

/// Every history under `dir` (files and run folders), sorted, up to the bounds.
fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<()> {
    if store::is_run_dir(dir) || dir.join(store::HISTORY).is_file() {
        out.push(dir.to_owned());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if out.len() >= MAX_HISTORIES {
            bail!(
                "{}: more than {MAX_HISTORIES} histories; check a smaller directory",
                dir.display()
            );
        }
        if p.is_dir() && !p.is_symlink() {
            if depth < MAX_WALK_DEPTH {
                walk(&p, depth + 1, out)?;
            }
        } else if p.is_file() && is_history_file(&p) {
            out.push(p);
        }
    }
    Ok(())
}

/// The histories the paths name; `single` when it is exactly one history (a file or a
/// run folder), which keeps the full one-history output.
fn histories(paths: &[PathBuf]) -> Result<(Vec<PathBuf>, bool)> {
    if let [one] = paths
        && (!one.is_dir() || one.join(store::HISTORY).is_file())
    {
        return Ok((vec![one.clone()], true));
    }
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let before = out.len();
            walk(p, 0, &mut out)?;
            if out.len() == before {
                bail!(
                    "{} holds no history (*.jsonl, *.edn or a results folder)",
                    p.display()
                );
            }
        } else if p.exists() {
            out.push(p.clone());
        } else {
            bail!("{} does not exist", p.display());
        }
    }
    Ok((out, false))
}

/// The model and checker choices of `schism check`'s flags.
pub fn choice(args: &CheckArgs) -> ModelChoice {
    ModelChoice {
        model: args.model,
        initial: args.initial.map(|i| i.0),
        algorithm: args.algorithm,
        checkers: analyze::checker_set(&args.checker),
    }
}

/// The single-object workload of `--workload` (none for the transactional ones).
pub fn workload(args: &CheckArgs) -> Option<schism_checker::Workload> {
    args.workload.and_then(|w| w.single())
}

/// One history checked, memory bound first.
fn check_one(
    path: &Path,
    args: &CheckArgs,
    budget: &Budget,
    choice: &ModelChoice,
) -> Result<ResultsFile> {
    let file = if path.is_dir() {
        analyze::history_path(path)?
    } else {
        path.to_owned()
    };
    // A transactional run's folder records its workload and model; the flags win.
    let recorded = match args.workload {
        Some(w) if w.txn().is_none() => None,
        _ if path.is_dir() => analyze::recorded_txn(path)?,
        _ => None,
    };
    let txn = args
        .workload
        .and_then(|w| w.txn())
        .or(recorded.map(|r| r.0));
    // A history checked op by op is never held: its memory does not grow with the file.
    if txn.is_some() || !analyze::streamed(path, workload(args), choice)? {
        fits_in_memory(&file, args.max_memory)?;
    }
    let model = args
        .consistency_model
        .or(recorded.map(|r| r.1))
        .unwrap_or(schism_checker::txn::ConsistencyModel::StrictSerializable);
    match txn {
        Some(txn) => crate::txn_check::analyze_txn_file(path, txn, model, budget),
        // Silently checking another way than asked would be a verdict on the wrong thing.
        None if args.consistency_model.is_some() => bail!(
            "{}: --consistency-model applies to transactional histories only: add --workload list-append or rw-register, or give a transactional run's folder",
            path.display()
        ),
        None => analyze::analyze_file_with(path, workload(args), budget, choice),
    }
}

/// `schism check PATH...` (without `--follow`, which is `follow::run`): the exit code.
pub fn run(args: CheckArgs) -> Result<i32> {
    let (paths, single) = histories(&args.paths)?;
    if !single && args.junit.is_some() {
        bail!("--junit takes one history; check the histories one at a time to get JUnit files");
    }
    if let Some(path) = &args.junit {
        store::probe_writable_file(path, "--junit")?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let budget = Budget {
        max_states: args.checker_max_states,
        time_limit: args.checker_time_limit,
        stop: Some(stop.clone()),
    };
    let choice = choice(&args);
    if single {
        // Ctrl-C stops the check: the verdict is then unknown, and still printed.
        let path = paths[0].clone();
        let a = args.clone();
        let results =
            crate::signals::run_stoppable(stop, move || check_one(&path, &a, &budget, &choice))??;
        if let Some(junit) = &args.junit {
            let suite = paths[0]
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "check".into());
            reporting::write_junit(junit, &suite, &results)?;
        }
        if args.json {
            println!("{}", serde_json::to_string_pretty(&results)?);
        } else {
            print!("{}", analyze::summary(&results));
            // Empty unless a `txn` check ran (a transactional run's folder takes it too).
            print!("{}", crate::txn_check::closing_note(&results));
        }
        return Ok(analyze::exit_code(results.validity));
    }
    let json = args.json;
    let tally = crate::signals::run_stoppable(stop, move || {
        let mut tally = Tally::default();
        for p in &paths {
            let outcome = check_one(p, &args, &budget, &choice);
            tally.print(p, &outcome, json);
            tally.add(&outcome);
        }
        tally
    })?;
    if !json {
        println!("{}", tally.summary());
    }
    Ok(tally.exit_code())
}

/// Outcomes of several checks.
#[derive(Debug, Default)]
struct Tally {
    valid: usize,
    invalid: usize,
    unknown: usize,
    failed: usize,
}

impl Tally {
    fn add(&mut self, outcome: &Result<ResultsFile>) {
        match outcome {
            Ok(r) => match r.validity {
                schism_checker::Validity::Valid => self.valid += 1,
                schism_checker::Validity::Invalid => self.invalid += 1,
                schism_checker::Validity::Unknown => self.unknown += 1,
            },
            Err(_) => self.failed += 1,
        }
    }

    /// One line per history: verdict, path, and the counts (or why it was not checked).
    fn print(&self, path: &Path, outcome: &Result<ResultsFile>, json: bool) {
        if json {
            let v = match outcome {
                Ok(r) => serde_json::json!({"path": path, "validity": r.validity,
                    "counts": r.counts, "history_lines": r.history_lines}),
                Err(e) => serde_json::json!({"path": path, "error": format!("{e:#}")}),
            };
            println!("{v}");
            return;
        }
        match outcome {
            Ok(r) => {
                let counts: Vec<String> =
                    r.counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
                println!(
                    "{:<8} {}{}",
                    analyze::validity_word(r.validity).to_lowercase(),
                    path.display(),
                    if counts.is_empty() {
                        String::new()
                    } else {
                        format!("  ({})", counts.join(", "))
                    }
                );
            }
            Err(e) => println!("{:<8} {}  ({e:#})", "error", path.display()),
        }
    }

    fn summary(&self) -> String {
        format!(
            "{} histories: {} valid, {} invalid, {} unknown, {} not checked",
            self.valid + self.invalid + self.unknown + self.failed,
            self.valid,
            self.invalid,
            self.unknown,
            self.failed
        )
    }

    /// The worst outcome: a proven anomaly first, then a history that could not be
    /// checked, then an unknown verdict.
    fn exit_code(&self) -> i32 {
        if self.invalid > 0 {
            1
        } else if self.failed > 0 {
            3
        } else if self.unknown > 0 {
            2
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_outcome_is_the_exit_code() {
        let t = Tally {
            valid: 3,
            unknown: 1,
            ..Tally::default()
        };
        assert_eq!(t.exit_code(), 2);
        let t = Tally { failed: 1, ..t };
        assert_eq!(t.exit_code(), 3);
        let t = Tally { invalid: 1, ..t };
        assert_eq!(t.exit_code(), 1);
    }
}
