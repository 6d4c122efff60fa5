//! `schism check --follow FILE`: checks a history another process is still appending to
//! (our JSON Lines, or a Jepsen EDN journal or collection of op maps), printing each
//! anomaly as soon as it is proven (`online`), and ends with the full offline check's
//! verdict once the file has been quiet for `--quiet` at its end, or on Ctrl-C.
//!
//! Guarantees: only whole lines (JSON Lines) or whole forms (EDN, `EdnStream`) are
//! parsed — one still being written waits; a pending partial line longer than
//! `MAX_LINE_BYTES` (or EDN form longer than `MAX_EDN_FORM_BYTES`) is the reader's usual
//! one-line error; what is printed while following is what the online checker proves
//! (never more than the final check confirms); the exit code is the final offline
//! check's, exactly as `schism check FILE` would give on the finished file.

use anyhow::{Context, Result, bail};
use schism_history::{EdnStream, MAX_LINE_BYTES, Op, ParsedLine, parse_line};
use std::collections::VecDeque;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::analyze::{self, Budget};
use crate::check;
use crate::cli::CheckArgs;
use crate::online::{Found, OnlineChecker};

/// Lines remembered to name an anomaly's offending op by its line.
const RECENT_LINES: usize = 1 << 16;

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

/// Reads whole ops as they appear and prints what the online checker proves, until the
/// file has been quiet at its end for `quiet` or `stop` is set.
fn follow(
    path: &Path,
    workload: Option<schism_checker::Workload>,
    quiet: Duration,
    stop: &AtomicBool,
) -> Result<()> {
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut source = if analyze::is_edn(path) {
        Source::Edn(EdnStream::new(path))
    } else {
        Source::Jsonl {
            pending: Vec::new(),
            line: 0,
        }
    };
    let mut online = OnlineChecker::new(workload);
    let mut recent: VecDeque<(u64, usize)> = VecDeque::with_capacity(RECENT_LINES);
    let mut chunk = vec![0u8; 1 << 16];
    let mut ops = 0u64;
    let mut last_growth = Instant::now();
    eprintln!(
        "schism: following {} (ends after {quiet:?} without growth, or Ctrl-C)",
        path.display()
    );
    while !stop.load(Ordering::Relaxed) {
        let n = f
            .read(&mut chunk)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            if last_growth.elapsed() >= quiet {
                break;
            }
            std::thread::sleep(POLL_INTERVAL);
            continue;
        }
        last_growth = Instant::now();
        for (op, line) in source.push(&chunk[..n], path)? {
            ops += 1;
            if recent.len() == RECENT_LINES {
                recent.pop_front();
            }
            recent.push_back((op.index(), line));
            for found in online.push(&op) {
                say(path, &recent, line, &found);
            }
        }
    }
    if let Some(why) = online.stopped() {
        eprintln!("schism: {why}");
    }
    eprintln!(
        "schism: stopped following after {ops} ops; proven online: {}",
        online.counts_line()
    );
    Ok(())
}

/// Where ops come from: whole JSON Lines lines, or complete EDN forms.
enum Source {
    Jsonl { pending: Vec<u8>, line: usize },
    Edn(EdnStream),
}

impl Source {
    /// The ops (with their lines) that `bytes`, appended to what came before, complete.
    fn push(&mut self, bytes: &[u8], path: &Path) -> Result<Vec<(Op, usize)>> {
        let (pending, line) = match self {
            Source::Edn(s) => return Ok(s.push(bytes)?),
            Source::Jsonl { pending, line } => (pending, line),
        };
        pending.extend_from_slice(bytes);
        let mut out = Vec::new();
        let mut start = 0;
        while let Some(nl) = pending[start..].iter().position(|&b| b == b'\n') {
            *line += 1;
            let text = &pending[start..start + nl];
            start += nl + 1;
            if let ParsedLine::Op(op) = parse_line(text, *line, true, path)? {
                out.push((op, *line));
            }
        }
        pending.drain(..start);
        if pending.len() > MAX_LINE_BYTES {
            bail!(
                "{}:{}: line is longer than {} MiB (a history line holds one op): not a schism history",
                path.display(),
                *line + 1,
                MAX_LINE_BYTES >> 20
            );
        }
        Ok(out)
    }
}

/// Prints one anomaly proven online at the line of its offending op (found among the
/// recent lines; else the line of the op that proved it, which comes later).
fn say(path: &Path, recent: &VecDeque<(u64, usize)>, line: usize, found: &Found) {
    let line = recent
        .iter()
        .rev()
        .find(|&&(index, _)| index == found.op)
        .map_or(line, |&(_, l)| l);
    println!(
        "{}:{line}: {} at op index {}: {}",
        path.display(),
        found.kind,
        found.op,
        found.explanation
    );
}
