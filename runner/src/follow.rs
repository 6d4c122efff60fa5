//! `schism check --follow FILE`: checks a JSON Lines history another process is still
//! appending to, printing each anomaly as soon as it is proven (`online`), and ends with
//! the full offline check's verdict once the file has been quiet for `--quiet` at its
//! end, or on Ctrl-C.
//!
//! Guarantees: only whole lines are parsed (a line still being written waits for its
//! newline); a pending partial line longer than `MAX_LINE_BYTES` is the reader's usual
//! one-line error; what is printed while following is what the online checker proves
//! (never more than the final check confirms); the exit code is the final offline
//! check's, exactly as `schism check FILE` would give on the finished file.

use anyhow::{Context, Result, bail};
use schism_history::{MAX_LINE_BYTES, ParsedLine, parse_line};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::analyze::{self, Budget};
use crate::check;
use crate::cli::CheckArgs;
use crate::online::{OnlineChecker, next_delay};

/// How often the end of the file is polled for new lines.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// `schism check --follow FILE`: the exit code.
pub fn run(args: CheckArgs) -> Result<i32> {
    let [path] = args.paths.as_slice() else {
        bail!("--follow takes one history file");
    };
    let file = if path.is_dir() {
        analyze::history_path(path)?
    } else {
        path.clone()
    };
    if analyze::is_edn(&file) {
        bail!(
            "{}: --follow reads JSON Lines histories; check an .edn file once it is complete",
            file.display()
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let quiet = args.quiet;
    if args.workload.and_then(|w| w.txn()).is_some() {
        bail!(
            "--follow checks single-object histories; check a transactional history (--workload list-append|rw-register) once it is complete"
        );
    }
    let workload = check::workload(&args);
    let followed = file.clone();
    crate::signals::run_stoppable(stop, move || follow(&followed, workload, quiet, &flag))??;
    // The final verdict: the offline check of everything written.
    let budget = Budget {
        max_states: args.checker_max_states,
        time_limit: args.checker_time_limit,
        stop: None,
    };
    check::fits_in_memory(&file, args.max_memory)?;
    let results = analyze::analyze_file_with(path, workload, &budget, &check::choice(&args))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        print!("{}", analyze::summary(&results));
    }
    Ok(analyze::exit_code(results.validity))
}

/// Reads whole lines as they appear and prints what the online checker proves, until the
/// file has been quiet at its end for `quiet` or `stop` is set.
fn follow(
    path: &Path,
    workload: Option<schism_checker::Workload>,
    quiet: Duration,
    stop: &AtomicBool,
) -> Result<()> {
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut online = OnlineChecker::new(workload);
    let mut lines: Vec<(u64, usize)> = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    let mut line = 0usize;
    let mut last_growth = Instant::now();
    let mut next_check = Instant::now();
    eprintln!(
        "schism: following {} (ends after {quiet:?} without growth, or Ctrl-C)",
        path.display()
    );
    loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let n = f
            .read(&mut chunk)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n > 0 {
            last_growth = Instant::now();
            pending.extend_from_slice(&chunk[..n]);
            let mut start = 0;
            while let Some(nl) = pending[start..].iter().position(|&b| b == b'\n') {
                line += 1;
                let bytes = &pending[start..start + nl];
                start += nl + 1;
                match parse_line(bytes, line, true, path)? {
                    ParsedLine::Op(op) => {
                        lines.push((op.index, line));
                        online.push(op);
                    }
                    ParsedLine::Blank | ParsedLine::Truncated => {}
                }
            }
            pending.drain(..start);
            if pending.len() > MAX_LINE_BYTES {
                bail!(
                    "{}:{}: line is longer than {} MiB (a history line holds one op): not a schism history",
                    path.display(),
                    line + 1,
                    MAX_LINE_BYTES >> 20
                );
            }
        }
        if Instant::now() >= next_check {
            let t = Instant::now();
            for found in online.check() {
                let at = lines
                    .binary_search_by_key(&found.op, |&(i, _)| i)
                    .map(|i| lines[i].1)
                    .unwrap_or(0);
                println!(
                    "{}:{at}: {} at op index {}: {}",
                    path.display(),
                    found.kind,
                    found.op,
                    found.explanation
                );
            }
            next_check = Instant::now() + next_delay(t.elapsed());
        }
        if n == 0 {
            if last_growth.elapsed() >= quiet {
                break;
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }
    if let Some(why) = &online.stopped {
        eprintln!("schism: {why}");
    }
    eprintln!(
        "schism: stopped following after {line} lines; proven online: {}",
        online.counts_line()
    );
    Ok(())
}
