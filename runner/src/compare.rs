//! `schism compare`: a matrix of settings, several seeds each, run one after the other
//! under the same workload and nemesis, then one `comparison.html` + `comparison.json`.
//!
//! Settings are any `schism test` flags (`--vary replication=sync,async --vary
//! reads=leader,any`, or a TOML matrix file); every combination is parsed by the same
//! clap definition as `schism test` and its whole run plan built and validated
//! (`plan::RunPlan`) before the first run starts, so a typo or a combination that cannot
//! run (`--quorum 3/4/2`) fails at once, naming the setting, instead of an hour in. Each run is an ordinary run with its own folder and report;
//! the comparison links to them. Ctrl-C stops after the current run and still writes the
//! page for the runs done.

use anyhow::{Context, Result, bail};
use clap::{CommandFactory, FromArgMatches};
use schism_report::{ComparisonInput, RunRef, SettingInput};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::cli::{Cli, Command, CompareArgs, TestArgs};
use crate::plan::RunPlan;
use crate::{reporting, run, store};

/// The TOML matrix file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MatrixFile {
    name: Option<String>,
    seeds: Option<u64>,
    seed_list: Option<Vec<u64>>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    vary: BTreeMap<String, Vec<toml::Value>>,
}

/// One setting: the flag values, in the order of the varied flags.
#[derive(Debug, Clone)]
struct Setting {
    values: Vec<(String, String)>,
}

impl Setting {
    fn label(&self) -> String {
        self.values
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn slug(&self) -> String {
        let raw = self
            .values
            .iter()
            .map(|(k, v)| format!("{k}-{v}"))
            .collect::<Vec<_>>()
            .join("_");
        raw.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    }
}

/// Flags a comparison sets itself for every run.
const OWNED_FLAGS: [&str; 4] = ["--store", "--name", "--seed", "--junit"];

fn parse_vary(s: &str) -> Result<(String, Vec<String>)> {
    let Some((k, vs)) = s.split_once('=') else {
        bail!("--vary {s:?}: write FLAG=V1,V2 (e.g. --vary reads=leader,any)");
    };
    let k = k.trim().trim_start_matches("--").to_owned();
    let vs: Vec<String> = vs
        .split(',')
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect();
    if k.is_empty() || vs.is_empty() {
        bail!("--vary {s:?}: write FLAG=V1,V2 (e.g. --vary reads=leader,any)");
    }
    Ok((k, vs))
}

fn toml_to_arg(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        other => format!("{other:?}"),
    }
}

/// Every combination of the varied values, first flag slowest.
fn matrix(vary: &[(String, Vec<String>)]) -> Vec<Setting> {
    let mut out = vec![Setting { values: Vec::new() }];
    for (k, vs) in vary {
        let mut next = Vec::new();
        for s in &out {
            for v in vs {
                let mut s = s.clone();
                s.values.push((k.clone(), v.clone()));
                next.push(s);
            }
        }
        out = next;
    }
    out
}

struct Plan {
    name: String,
    seeds: Vec<u64>,
    base: Vec<String>,
    varied: Vec<String>,
    /// Per setting, per seed: the parsed `schism test` arguments.
    runs: Vec<(Setting, Vec<(u64, TestArgs)>)>,
}

fn plan(args: &CompareArgs) -> Result<Plan> {
    let file: MatrixFile = match &args.matrix {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read --matrix {}", p.display()))?;
            toml::from_str(&text)
                .with_context(|| format!("{} is not a valid matrix file", p.display()))?
        }
        None => MatrixFile::default(),
    };
    let name = args
        .name
        .clone()
        .or(file.name.clone())
        .unwrap_or_else(|| "compare".into());
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        bail!("--name {name:?} must be a plain folder name");
    }
    let mut vary: Vec<(String, Vec<String>)> = file
        .vary
        .iter()
        .map(|(k, vs)| {
            (
                k.trim_start_matches("--").to_owned(),
                vs.iter().map(toml_to_arg).collect(),
            )
        })
        .collect();
    for v in &args.vary {
        let (k, vs) = parse_vary(v)?;
        match vary.iter_mut().find(|(key, _)| *key == k) {
            Some(slot) => slot.1 = vs,
            None => vary.push((k, vs)),
        }
    }
    if vary.is_empty() {
        bail!(
            "nothing to compare: pass --vary FLAG=V1,V2 (e.g. --vary reads=leader,any) or --matrix FILE"
        );
    }
    let seeds: Vec<u64> = if !args.seed_list.is_empty() {
        args.seed_list.clone()
    } else if let Some(n) = args.seeds {
        (1..=n).collect()
    } else if let Some(l) = file.seed_list.clone() {
        l
    } else {
        (1..=file.seeds.unwrap_or(2)).collect()
    };
    if seeds.is_empty() {
        bail!("no seeds: pass --seeds N (N ≥ 1) or --seed-list 1,2");
    }
    let mut base = file.args.clone();
    base.extend(args.test_args.iter().cloned());
    for a in &base {
        let flag = a.split('=').next().unwrap_or("");
        if OWNED_FLAGS.contains(&flag) {
            bail!(
                "{flag} is set by `schism compare` for each run; remove it from the shared flags"
            );
        }
    }
    for (k, _) in &vary {
        if OWNED_FLAGS.contains(&format!("--{k}").as_str()) {
            bail!(
                "--vary {k}: use --seeds/--seed-list for seeds; the store and names are set by compare"
            );
        }
    }
    let mut runs = Vec::new();
    for setting in matrix(&vary) {
        let mut per_seed = Vec::new();
        for &seed in &seeds {
            let mut argv: Vec<String> = vec!["schism".into(), "test".into()];
            argv.extend(base.iter().cloned());
            for (k, v) in &setting.values {
                argv.push(format!("--{k}"));
                argv.push(v.clone());
            }
            argv.extend([
                "--seed".into(),
                seed.to_string(),
                "--store".into(),
                args.store.to_string_lossy().into_owned(),
                "--name".into(),
                format!("{name}-{}", setting.slug()),
            ]);
            // A flag given twice takes its last value: the command line's shared flags
            // override the matrix file's `args`, a varied flag overrides both.
            let cli = Cli::command()
                .args_override_self(true)
                .try_get_matches_from(&argv)
                .and_then(|m| Cli::from_arg_matches(&m))
                .map_err(|e| {
                    anyhow::anyhow!(
                        "setting {} is not a valid `schism test` invocation: {}",
                        setting.label(),
                        crate::cli::usage_error(&e)
                    )
                })?;
            let Command::Test(t) = cli.command else {
                bail!("internal: compare built a non-test command");
            };
            // The whole run plan, as `schism test` would build it: a combination that
            // cannot run fails here, before the first run of the matrix starts.
            RunPlan::new((*t).clone())
                .map_err(|e| anyhow::anyhow!("setting {} cannot run: {e:#}", setting.label()))?;
            per_seed.push((seed, *t));
        }
        runs.push((setting, per_seed));
    }
    Ok(Plan {
        name,
        seeds,
        base,
        varied: vary.iter().map(|(k, _)| k.clone()).collect(),
        runs,
    })
}

fn rel_link(from_dir: &Path, store_root: &Path, target: &Path) -> String {
    let depth = from_dir
        .strip_prefix(store_root)
        .map(|p| p.components().count())
        .unwrap_or(0);
    let rel = target.strip_prefix(store_root).unwrap_or(target);
    format!("{}{}", "../".repeat(depth), rel.to_string_lossy())
}

/// Runs the matrix; returns 0 when every run completed (whatever its verdict: a
/// comparison expects anomalies), 3 when a run's harness failed, 2 when interrupted.
pub async fn run_compare(args: CompareArgs) -> Result<i32> {
    let plan = plan(&args)?;
    let total: usize = plan.runs.iter().map(|(_, r)| r.len()).sum();
    eprintln!(
        "schism: compare {}: {} settings × {} seeds = {total} runs",
        plan.name,
        plan.runs.len(),
        plan.seeds.len()
    );
    let started = chrono::Utc::now();
    let cmp_dir = store::create_run_dir_at(&args.store.join(store::COMPARE), &plan.name, &started)?;
    // create_run_dir makes a nodes/ folder for runs; a comparison has none.
    let _ = std::fs::remove_dir(cmp_dir.join(store::NODES));
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    let watcher = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            flag.store(true, Ordering::Relaxed);
        }
    });

    let mut code = 0;
    let mut summaries = Vec::new();
    let mut done = 0;
    for (setting, seeds) in plan.runs {
        let mut input = SettingInput {
            label: setting.label(),
            settings: setting.values.iter().cloned().collect(),
            ..SettingInput::default()
        };
        for (seed, targs) in seeds {
            if interrupted.load(Ordering::Relaxed) {
                break;
            }
            done += 1;
            eprintln!(
                "schism: compare run {done}/{total}: {} seed {seed}",
                setting.label()
            );
            match run::run_test_outcome(targs).await {
                Ok(out) => {
                    let figures = figures_of(&out).await;
                    let (figures, samples) = match figures {
                        Ok(f) => f,
                        Err(e) => {
                            eprintln!("schism: warning: {e:#}");
                            Default::default()
                        }
                    };
                    input.samples.push(samples);
                    input.runs.push(RunRef {
                        seed,
                        link: rel_link(&cmp_dir, &args.store, &out.run_dir.join(store::REPORT)),
                        exit_code: out.code,
                        figures,
                    });
                    if out.code == 2 && interrupted.load(Ordering::Relaxed) {
                        code = 2;
                    }
                }
                Err(e) => {
                    eprintln!(
                        "schism: compare run {} seed {seed} failed: {e:#}",
                        setting.label()
                    );
                    code = 3;
                    input.runs.push(RunRef {
                        seed,
                        link: String::new(),
                        exit_code: 3,
                        figures: Default::default(),
                    });
                }
            }
        }
        if !input.runs.is_empty() {
            summaries.push(schism_report::summarize_setting(input));
        }
    }
    watcher.abort();
    if interrupted.load(Ordering::Relaxed) {
        eprintln!("schism: compare interrupted; writing the page for the runs done");
        code = code.max(2);
    }
    let cmp = ComparisonInput {
        name: plan.name.clone(),
        date: started.to_rfc3339(),
        varied: plan.varied,
        seeds: plan.seeds,
        base_args: plan.base,
        settings: summaries,
    };
    store::write_json(&cmp_dir.join(store::COMPARISON_JSON), &cmp)?;
    store::write_atomic(
        &cmp_dir.join(store::COMPARISON_HTML),
        schism_report::render_comparison(&cmp).as_bytes(),
    )?;
    if let Err(e) = reporting::write_index(&args.store) {
        eprintln!("schism: warning: {e:#}");
    }
    print!("{}", table(&cmp));
    println!(
        "comparison: {}",
        cmp_dir.join(store::COMPARISON_HTML).display()
    );
    Ok(code)
}

async fn figures_of(
    out: &run::RunOutcome,
) -> Result<(schism_report::RunFigures, schism_report::LatencySamples)> {
    let hist = out.run_dir.join(store::HISTORY);
    let lag_path = out.run_dir.join(store::LAG);
    let validity = out.results.validity;
    let results = out.results.results.clone();
    tokio::task::spawn_blocking(move || {
        let (h, _) = schism_history::read_history_file(&hist)?;
        let lag = reporting::read_lag(&lag_path);
        Ok(schism_report::run_figures(
            &h,
            Some(validity),
            &results,
            &lag,
        ))
    })
    .await
    .context("figures task panicked")?
}

/// The terminal summary: one line per setting.
fn table(c: &ComparisonInput) -> String {
    let mut s = String::new();
    let w = c
        .settings
        .iter()
        .map(|x| x.label.len())
        .max()
        .unwrap_or(7)
        .max(7);
    s.push_str(&format!(
        "{:w$}  {:>7}  {:>6}  {:>9}  {:>9}  {:>9}  {:>9}  {:>10}  {:>8}\n",
        "setting",
        "invalid",
        "lost",
        "stale",
        "write p50",
        "write p99",
        "read p50",
        "lag p99",
        "ok/s"
    ));
    let ms = |x: Option<f64>| x.map(|v| format!("{v:.2}ms")).unwrap_or_else(|| "–".into());
    for x in &c.settings {
        s.push_str(&format!(
            "{:w$}  {:>7}  {:>6}  {:>9}  {:>9}  {:>9}  {:>9}  {:>10}  {:>8.0}\n",
            x.label,
            format!("{}/{}", x.invalid_runs, x.runs.len()),
            x.lost_writes,
            x.stale_read_rate
                .map(|r| format!("{:.2}%", r * 100.0))
                .unwrap_or_else(|| "–".into()),
            ms(x.write_latency_ms_p50),
            ms(x.write_latency_ms_p99),
            ms(x.read_latency_ms_p50),
            ms(x.lag.as_ref().and_then(|l| l.p99_ms)),
            x.ok_per_s
        ));
    }
    // Every kind each setting counted (summed over its seeds): transactional runs name
    // their anomalies only here (they lose no single write and read no stale register).
    for x in c.settings.iter().filter(|x| !x.anomalies.is_empty()) {
        let kinds: Vec<String> = x
            .anomalies
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        s.push_str(&format!("{}: {}\n", x.label, kinds.join(", ")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn matrix_is_every_combination() {
        let m = matrix(&[
            ("replication".into(), vec!["sync".into(), "async".into()]),
            ("reads".into(), vec!["leader".into(), "any".into()]),
        ]);
        let labels: Vec<String> = m.iter().map(Setting::label).collect();
        assert_eq!(
            labels,
            [
                "replication=sync reads=leader",
                "replication=sync reads=any",
                "replication=async reads=leader",
                "replication=async reads=any"
            ]
        );
        assert_eq!(m[1].slug(), "replication-sync_reads-any");
    }

    #[test]
    fn the_terminal_table_names_every_kind_each_setting_counted() {
        let setting = |label: &str, kinds: &[(&str, u64)]| {
            schism_report::summarize_setting(SettingInput {
                label: label.into(),
                runs: vec![RunRef {
                    seed: 1,
                    link: String::new(),
                    exit_code: 1,
                    figures: schism_report::RunFigures {
                        anomalies: kinds.iter().map(|(k, n)| ((*k).into(), *n)).collect(),
                        ..Default::default()
                    },
                }],
                ..Default::default()
            })
        };
        let c = ComparisonInput {
            name: "c".into(),
            date: String::new(),
            varied: vec!["model".into()],
            seeds: vec![1],
            base_args: Vec::new(),
            settings: vec![
                setting("model=multi-leader", &[("G-single", 3), ("lost-update", 2)]),
                setting("model=leader-follower", &[]),
            ],
        };
        let t = table(&c);
        assert!(
            t.contains("model=multi-leader: 3 G-single, 2 lost-update\n"),
            "{t}"
        );
        assert!(!t.contains("model=leader-follower:"), "{t}");
    }

    #[test]
    fn bad_settings_fail_before_any_run() {
        let args = CompareArgs {
            name: None,
            vary: vec!["reads=leader,sideways".into()],
            matrix: None,
            seeds: Some(1),
            seed_list: vec![],
            store: PathBuf::from("/nonexistent"),
            test_args: vec![],
        };
        let e = plan(&args).err().unwrap().to_string();
        assert!(e.contains("reads=sideways"), "{e}");
        let args = CompareArgs {
            vary: vec!["reads=leader,any".into()],
            test_args: vec!["--seed".into(), "3".into()],
            ..args
        };
        assert!(plan(&args).err().unwrap().to_string().contains("--seed"));
    }

    #[test]
    fn shared_flags_on_the_command_line_override_the_matrix_file() {
        let dir = std::env::temp_dir().join(format!("schism-matrix-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("m.toml");
        std::fs::write(
            &file,
            "args = [\"--time-limit\", \"30s\", \"--reads\", \"any\"]\n[vary]\nreads = [\"leader\"]\n",
        )
        .unwrap();
        let args = CompareArgs {
            name: None,
            vary: vec![],
            matrix: Some(file),
            seeds: Some(1),
            seed_list: vec![],
            store: PathBuf::from("/nonexistent"),
            test_args: vec!["--time-limit".into(), "2s".into()],
        };
        let p = plan(&args);
        let _ = std::fs::remove_dir_all(&dir);
        let p = p.unwrap();
        let run = &p.runs[0].1[0].1;
        assert_eq!(run.time_limit, std::time::Duration::from_secs(2));
        assert_eq!(
            run.reads,
            schism_targets::ReadRouting::Leader,
            "the varied value wins"
        );
    }

    #[test]
    fn matrix_file_parses() {
        let f: MatrixFile = toml::from_str(
            "name = \"x\"\nseeds = 3\nargs = [\"--time-limit\", \"5s\"]\n[vary]\nreplication = [\"sync\", \"semi-sync:1\"]\nkeys = [4, 8]\n",
        )
        .unwrap();
        assert_eq!(
            f.vary["keys"].iter().map(toml_to_arg).collect::<Vec<_>>(),
            ["4", "8"]
        );
    }
}
