//! `schism`: the command line of the consistency checker and fault injector.
//!
//! This binary is the only crate that knows clap, the terminal and the results folder
//! layout; it ties history, workloads, targets and checker together. Exit codes: 0 valid,
//! 1 invalid, 2 unknown, 3 the harness itself failed (one line on stderr says why).

use anyhow::{Context, Result};
use clap::Parser;
use schism_runner::cli::{self, Cli, Command};
use schism_runner::{analyze, run};

const EXIT_HARNESS: i32 = 3;

fn main() {
    let cli = Cli::parse();
    // A panic unwinds through the run (dropping the cluster kills every node) and is
    // then reported like any harness failure.
    let code = match std::panic::catch_unwind(|| dispatch(cli)) {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            eprintln!("schism: error: {e:#}");
            EXIT_HARNESS
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            eprintln!("schism: error: internal panic: {what}");
            EXIT_HARNESS
        }
    };
    std::process::exit(code);
}

fn dispatch(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Node(args) => {
            let text = std::fs::read_to_string(&args.config)
                .with_context(|| format!("cannot read node config {}", args.config.display()))?;
            let config = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a valid node config", args.config.display()))?;
            schism_targets::run_node(config)?;
            Ok(0)
        }
        Command::Check(args) => {
            let budget = analyze::Budget {
                max_states: args.checker_max_states,
                time_limit: args.checker_time_limit,
            };
            let workload = args.workload.map(|w| match w {
                cli::Workload::Append => schism_checker::Workload::Append,
                cli::Workload::Register => schism_checker::Workload::Register,
            });
            let checkers = analyze::checker_set(&args.checker);
            let results = analyze::analyze_file_with(&args.path, workload, &budget, checkers)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&results)?);
            } else {
                print!("{}", analyze::summary(&results));
            }
            Ok(analyze::exit_code(results.validity))
        }
        Command::Test(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            rt.block_on(run::run_test(*args))
        }
    }
}
