//! `schism`: the command line of the consistency checker and fault injector.
//!
//! This binary is the only crate that knows clap, the terminal and the results folder
//! layout; it ties history, workloads, targets and checker together. Exit codes: 0 valid,
//! 1 invalid, 2 unknown, 3 the harness itself failed or a flag or input was refused (one line
//! on stderr says why).

use anyhow::{Context, Result};
use clap::Parser;
use schism_runner::cli::{self, Cli, Command};
use schism_runner::{compare, matrix, reporting, run, serve, store};
use std::path::Path;

const EXIT_HARNESS: i32 = 3;

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                e.exit();
            }
            // A bad flag is bad input: one line naming it, exit 3 (2 means "unknown").
            eprintln!("schism: error: {}", cli::usage_error(&e));
            std::process::exit(EXIT_HARNESS);
        }
    };
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

fn dispatch(mut cli: Cli) -> Result<i32> {
    // Once, before anything runs: databases start in their node folder, so a relative
    // path must not reach them (nor any other component).
    cli.resolve_paths()?;
    match cli.command {
        Command::Node(args) => {
            let text = std::fs::read_to_string(&args.config)
                .with_context(|| format!("cannot read node config {}", args.config.display()))?;
            let config = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a valid node config", args.config.display()))?;
            schism_targets::run_node(config)?;
            Ok(0)
        }
        Command::Check(args) if args.follow => schism_runner::follow::run(args),
        Command::Check(args) => schism_runner::check::run(args),
        Command::Lab(cmd) => lab(cmd),
        Command::Cleanup(args) => {
            if let Some(inv) = &args.inventory {
                sweep_hosts(inv, args.dry_run)?;
            }
            let lab_dir = schism_nemesis::lab::lab_dir();
            let lab_left = schism_nemesis::lab::leftover(&lab_dir);
            if let Some(what) = &lab_left {
                println!("{what}");
                if !args.dry_run {
                    for line in schism_nemesis::lab::down(&lab_dir)? {
                        println!("  {line}");
                    }
                }
            }
            let dir = schism_nemesis::ledger::registry_dir();
            let left = schism_nemesis::ledger::leftovers(&dir);
            let unreadable = schism_nemesis::ledger::unreadable(&dir);
            if left.is_empty() && unreadable.is_empty() {
                if lab_left.is_none() {
                    println!("nothing to clean up (registry {})", dir.display());
                }
                return Ok(0);
            }
            if args.dry_run {
                for (_, r) in &left {
                    println!(
                        "run {} ({}): {}",
                        r.run_id,
                        r.run_dir.display(),
                        r.describe()
                    );
                }
                for (path, err) in &unreadable {
                    let r = schism_nemesis::ledger::record_from_name(path);
                    println!(
                        "unreadable registry entry {} ({err}): {}",
                        path.display(),
                        r.describe()
                    );
                }
                return Ok(0);
            }
            for line in schism_nemesis::ledger::cleanup_leftovers(&dir) {
                println!("{line}");
            }
            Ok(0)
        }
        Command::Test(args) => runtime()?.block_on(run::run_test(*args)),
        Command::Compare(args) => runtime()?.block_on(compare::run_compare(args)),
        Command::Matrix(args) => runtime()?.block_on(matrix::run_matrix(args)),
        Command::Serve(args) => {
            runtime()?.block_on(serve::serve(&args.dir, args.bind))?;
            Ok(0)
        }
        Command::Report(args) => report(&args.path),
        Command::Sim(args) => schism_runner::sim::run_sim(*args),
        Command::Shrink(args) => schism_runner::shrink::run(args),
    }
}

/// `schism cleanup --inventory FILE`: every host's run folders, nodes and nft table,
/// without the ledger.
fn sweep_hosts(inventory: &Path, dry_run: bool) -> Result<()> {
    use schism_targets::remote::{Exec, Ssh, SshOptions};
    let Some(hosts) = schism_runner::hosts::load(Some(inventory), &[])? else {
        return Ok(());
    };
    let control = schism_nemesis::hosts::control_dir();
    for h in &hosts.specs {
        let runs = format!("{}/runs", h.dir.trim_end_matches('/'));
        if dry_run {
            println!(
                "host {}: would remove run folders under {runs}, their node processes and the nft table",
                h.name
            );
            continue;
        }
        let opts = SshOptions {
            known_hosts: hosts.known_hosts.clone(),
            accept_new_host_keys: false,
            control_dir: control.clone(),
            log_dir: control.clone(),
        };
        let result = Ssh::connect(h.clone(), opts)
            .and_then(|ssh| ssh.run(&schism_nemesis::hosts::sweep_script(&runs), None));
        match result {
            Ok(out) if out.trim().is_empty() => println!("host {}: nothing to clean up", h.name),
            Ok(out) => {
                for l in out.lines() {
                    println!("host {}: {l}", h.name);
                }
            }
            Err(e) => println!("could not clean host {}: {e}", h.name),
        }
    }
    Ok(())
}

/// `schism lab up|down|status`.
fn lab(cmd: cli::LabCommand) -> Result<i32> {
    use schism_nemesis::lab;
    let dir = lab::lab_dir();
    match cmd {
        cli::LabCommand::Up { hosts } => {
            let record = lab::up(&dir, usize::from(hosts))?;
            for h in &record.hosts {
                println!(
                    "{}: {} (namespace {}, sshd pid {})",
                    h.name,
                    h.address,
                    h.namespace,
                    h.sshd_pid.unwrap_or(0)
                );
            }
            println!("inventory: {}", lab::inventory_path(&dir).display());
            println!(
                "try: schism test --inventory {} --target reference --nemesis partition,kill,pause",
                lab::inventory_path(&dir).display()
            );
            Ok(0)
        }
        cli::LabCommand::Down => {
            let done = lab::down(&dir)?;
            if done.is_empty() {
                println!("no lab to remove ({})", dir.display());
            }
            for line in &done {
                println!("{line}");
            }
            Ok(if done.iter().any(|l| l.starts_with("could not")) {
                3
            } else {
                0
            })
        }
        cli::LabCommand::Status => match lab::load(&dir)? {
            None => {
                println!("no lab ({})", dir.display());
                Ok(0)
            }
            Some(r) => {
                let ok = lab::healthy(&r);
                println!(
                    "lab of {} hosts, {}; inventory: {}",
                    r.hosts.len(),
                    if ok {
                        "every sshd runs"
                    } else {
                        "BROKEN (run `schism lab down`)"
                    },
                    lab::inventory_path(&dir).display()
                );
                Ok(if ok { 0 } else { 3 })
            }
        },
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// `schism report PATH`: a run folder gets its report.html re-rendered (a killed run's is
/// checked from its history); a store gets a report for every run that lacks one, and a
/// fresh index.html.
fn report(path: &Path) -> Result<i32> {
    if store::is_run_dir(path) {
        let out = reporting::write_run_report(path)?;
        println!("report: {}", out.display());
        // A run inside a store: refresh the store's index too (through `latest`, the
        // store is the link's folder, so resolve the link first).
        let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        if let Some(root) = real.parent().and_then(Path::parent)
            && root.join(store::INDEX).exists()
        {
            reporting::write_index(root)?;
        }
        return Ok(0);
    }
    if !path.is_dir() {
        anyhow::bail!(
            "{} is neither a run folder (with {}) nor a results store",
            path.display(),
            store::RESULTS
        );
    }
    let mut rendered = 0;
    for test in std::fs::read_dir(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .flatten()
    {
        for run in std::fs::read_dir(test.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let dir = run.path();
            if (dir.join(store::RESULTS).exists() || dir.join(store::HISTORY).exists())
                && !dir.join(store::REPORT).exists()
            {
                match reporting::write_run_report(&dir) {
                    Ok(_) => rendered += 1,
                    Err(e) => eprintln!("schism: warning: {e:#}"),
                }
            }
        }
    }
    let index = reporting::write_index(path)?;
    println!("{rendered} reports rendered; index: {}", index.display());
    Ok(0)
}
