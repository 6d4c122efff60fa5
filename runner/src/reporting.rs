//! Rendering from the results store: a run's `report.html` from its folder alone, the
//! store's `index.html`, and the JUnit file for CI.
//!
//! Guarantees: a report is rendered from the files of the run folder only (config.json,
//! results.json, history.jsonl), so `schism report PATH` reproduces what the run wrote (a
//! killed run without results.json is checked from its history and status.json);
//! the index lists every folder holding a results.json or a comparison.json, and a folder
//! it cannot read is listed without a verdict rather than failing the index.

use anyhow::{Context, Result, bail};
use schism_history::read_history_file;
use schism_report::{IndexEntry, ResultsData, RunInput};
use std::path::{Path, PathBuf};

use crate::analyze::ResultsFile;
use crate::config::RunConfig;
use crate::{describe, store};

/// The checker budget when `report` must check a killed run itself (`schism test`'s defaults).
const REPORT_CHECK_MAX_STATES: u64 = 5_000_000;
const REPORT_CHECK_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

/// Renders `<run>/report.html` from the run folder; returns its path. A folder without
/// results.json (a killed run) is checked from its history first, as `schism check` would,
/// and nothing but the report is written.
/// The end of every checked run (`schism test` and `schism sim`): `results.json`, the run's
/// `report.html`, the store's index and the JUnit file; then the summary, the caller's
/// `extra` lines, and where the folder and report are. A missing report or index is a
/// warning (the verdict is printed regardless); the JUnit outcome is returned for the caller
/// to raise after its own notes.
pub fn publish(
    run_dir: &Path,
    store_root: &Path,
    junit: Option<(&Path, &str)>,
    results: &ResultsFile,
    extra: &[String],
) -> Result<Result<()>> {
    store::write_json(&run_dir.join(store::RESULTS), results)?;
    let report = write_run_report(run_dir);
    if let Err(e) = write_index(store_root) {
        eprintln!("schism: warning: {e:#}");
    }
    // The verdict is printed even if the JUnit file cannot be written.
    let junit = junit.map_or(Ok(()), |(path, suite)| write_junit(path, suite, results));
    print!("{}", crate::analyze::summary(results));
    for line in extra {
        println!("{line}");
    }
    println!("results: {}", run_dir.display());
    match report {
        Ok(path) => println!("report: {}", path.display()),
        Err(e) => eprintln!("schism: warning: no report.html: {e:#}"),
    }
    Ok(junit)
}

pub fn write_run_report(run_dir: &Path) -> Result<PathBuf> {
    if !run_dir.join(store::HISTORY).exists() && !run_dir.join(store::RESULTS).exists() {
        bail!(
            "{} has neither {} nor {}: pass a run folder",
            run_dir.display(),
            store::HISTORY,
            store::RESULTS
        );
    }
    let typed = RunConfig::read(run_dir)?;
    let settings = describe::run_settings(typed.as_ref());
    let results_json = if run_dir.join(store::RESULTS).exists() {
        read_json(&run_dir.join(store::RESULTS))?
    } else {
        let checked = crate::analyze::analyze_file_with(
            run_dir,
            None,
            &crate::analyze::Budget {
                max_states: REPORT_CHECK_MAX_STATES,
                time_limit: REPORT_CHECK_TIME_LIMIT,
                stop: None,
            },
            &crate::analyze::ModelChoice {
                checkers: schism_checker::CheckerSet::Fitting,
                ..Default::default()
            },
        )?;
        serde_json::to_value(&checked)?
    };
    let results: ResultsData = serde_json::from_value(results_json).with_context(|| {
        format!(
            "{} is not a results file",
            run_dir.join(store::RESULTS).display()
        )
    })?;
    let (history, _warnings) = read_history_file(&run_dir.join(store::HISTORY))?;
    let canonical = std::fs::canonicalize(run_dir).unwrap_or_else(|_| run_dir.to_owned());
    let title = run_title(&canonical, typed.as_ref());
    let lag = read_lag(&run_dir.join(store::LAG));
    let html = schism_report::render_run(&RunInput {
        title: &title,
        settings: &settings,
        results: &results,
        history: &history,
        lag: &lag,
    });
    let out = run_dir.join(store::REPORT);
    store::write_atomic(&out, html.as_bytes())?;
    Ok(out)
}

/// A run's `lag.jsonl`, or no lag when the run has none.
pub fn read_lag(path: &Path) -> schism_report::LagData {
    std::fs::read_to_string(path)
        .map(|t| schism_report::LagData::parse(&t))
        .unwrap_or_default()
}

fn run_title(run_dir: &Path, config: Option<&RunConfig>) -> String {
    let name = config
        .and_then(|c| c.test.as_ref())
        .map(|t| t.name.clone())
        .or_else(|| {
            run_dir
                .parent()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "run".into());
    let stamp = run_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("schism {name} {stamp}")
}

fn link(store_root: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(store_root).unwrap_or(file);
    // "./" keeps a first segment with a colon from reading as a URL scheme.
    format!("./{}", rel.to_string_lossy())
}

/// Every run and comparison under the store.
pub fn index_entries(store_root: &Path) -> Vec<IndexEntry> {
    let mut out = Vec::new();
    let Ok(tests) = std::fs::read_dir(store_root) else {
        return out;
    };
    for test in tests.flatten() {
        let tpath = test.path();
        let tname = test.file_name().to_string_lossy().into_owned();
        if tname.starts_with('.') || tname == "latest" || !tpath.is_dir() {
            continue;
        }
        if tname == store::COMPARE {
            for cmp in std::fs::read_dir(&tpath).into_iter().flatten().flatten() {
                for stamp in std::fs::read_dir(cmp.path())
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    let json = stamp.path().join(store::COMPARISON_JSON);
                    let Ok(v) = read_json(&json) else { continue };
                    out.push(IndexEntry {
                        name: cmp.file_name().to_string_lossy().into_owned(),
                        date: schism_report::to_the_second(
                            v.get("date").and_then(|d| d.as_str()).unwrap_or_default(),
                        ),
                        target: v
                            .get("settings")
                            .and_then(|s| s.as_array())
                            .map(|a| {
                                a.iter()
                                    .filter_map(|s| s.get("label").and_then(|l| l.as_str()))
                                    .collect::<Vec<_>>()
                                    .join(" | ")
                            })
                            .unwrap_or_default(),
                        link: link(store_root, &stamp.path().join(store::COMPARISON_HTML)),
                        comparison: true,
                        ..IndexEntry::default()
                    });
                }
            }
            continue;
        }
        for run in std::fs::read_dir(&tpath).into_iter().flatten().flatten() {
            let dir = run.path();
            if !dir.join(store::CONFIG).exists() && !dir.join(store::RESULTS).exists() {
                continue;
            }
            let typed = RunConfig::read(&dir).ok().flatten();
            let target = match &typed {
                Some(c) => describe::describe_run(c),
                None => describe::describe_target(None),
            };
            let results: Option<ResultsFile> = read_json(&dir.join(store::RESULTS))
                .ok()
                .and_then(|v| serde_json::from_value(v).ok());
            let anomalies = results
                .as_ref()
                .map(|r| schism_checker::counts::count_map(&r.results))
                .unwrap_or_default();
            out.push(IndexEntry {
                name: tname.clone(),
                date: typed
                    .and_then(|c| c.started_at)
                    .as_deref()
                    .map(schism_report::to_the_second)
                    .unwrap_or_else(|| run.file_name().to_string_lossy().into_owned()),
                target,
                verdict: results
                    .as_ref()
                    .map(|r| r.validity.as_str().to_owned())
                    .unwrap_or_default(),
                anomalies,
                link: if dir.join(store::REPORT).exists() {
                    link(store_root, &dir.join(store::REPORT))
                } else {
                    link(store_root, &dir)
                },
                comparison: false,
            });
        }
    }
    out
}

/// Rewrites `<store>/index.html`; refuses a folder that is not a store (no run folders),
/// so pointing `serve` or `report` at the wrong folder never overwrites a page there.
pub fn write_index(store_root: &Path) -> Result<PathBuf> {
    if !store::is_store(store_root) {
        bail!(
            "{} is not a schism results store (no run folders in it): {} is written only into a store; pass the --store of `schism test`",
            store_root.display(),
            store::INDEX
        );
    }
    let entries = index_entries(store_root);
    let html = schism_report::render_index("schism results", &entries);
    let out = store_root.join(store::INDEX);
    store::write_atomic(&out, html.as_bytes())?;
    Ok(out)
}

fn xml(s: &str) -> String {
    // The same five escapes are right for XML text and attributes; control characters
    // other than tab and newline are not allowed in XML 1.0 at all.
    schism_report::escape(
        &s.chars()
            .map(|c| {
                if c.is_control() && c != '\n' && c != '\t' {
                    ' '
                } else {
                    c
                }
            })
            .collect::<String>(),
    )
}

/// A JUnit XML file: the run's anomaly counts as suite properties (`anomalies.<kind>`),
/// one test case per checker; an invalid checker is a failure whose message gives the
/// counts it owns and whose text lists its anomalies' explanations, an unknown one an
/// error.
pub fn junit(suite: &str, results: &ResultsFile) -> String {
    let failures = results
        .results
        .iter()
        .filter(|r| r.validity == schism_checker::Validity::Invalid)
        .count();
    let errors = results
        .results
        .iter()
        .filter(|r| r.validity == schism_checker::Validity::Unknown)
        .count();
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    s.push_str(&format!(
        "<testsuites name=\"schism\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\">\n<testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{:.3}\">\n",
        results.results.len().max(1),
        xml(suite),
        results.results.len().max(1),
        results.stats.duration_s
    ));
    // The run's one count per anomaly kind, as every other display shows it.
    let owned = schism_checker::counts::counts(&results.results);
    s.push_str("<properties>");
    for c in &owned {
        s.push_str(&format!(
            "<property name=\"anomalies.{}\" value=\"{}\"/>",
            c.kind, c.count
        ));
    }
    s.push_str("</properties>\n");
    if results.results.is_empty() {
        s.push_str("<testcase classname=\"schism\" name=\"no client operations\"/>\n");
    }
    for r in &results.results {
        s.push_str(&format!(
            "<testcase classname=\"schism.{}\" name=\"{}\">",
            xml(suite),
            xml(&r.checker)
        ));
        match r.validity {
            schism_checker::Validity::Valid => {}
            schism_checker::Validity::Invalid => {
                let mut text = String::new();
                for a in &r.anomalies {
                    text.push_str(&format!("{}: {}\n", a.kind, a.explanation));
                }
                let counts: Vec<String> = owned
                    .iter()
                    .filter(|c| c.checker == r.checker)
                    .map(|c| format!("{} {}", c.count, c.kind))
                    .collect();
                s.push_str(&format!(
                    "<failure message=\"{}: {}\" type=\"invalid\">{}</failure>",
                    xml(&r.checker),
                    xml(&counts.join(", ")),
                    xml(&text)
                ));
            }
            schism_checker::Validity::Unknown => {
                let why = r
                    .figures
                    .get("unknown_reason")
                    .and_then(|v| v.as_str())
                    .unwrap_or("the checker could not decide");
                s.push_str(&format!(
                    "<error message=\"{}\" type=\"unknown\"/>",
                    xml(why)
                ));
            }
        }
        s.push_str("</testcase>\n");
    }
    s.push_str("</testsuite>\n</testsuites>\n");
    s
}

pub fn write_junit(path: &Path, suite: &str, results: &ResultsFile) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(path, junit(suite, results))
        .with_context(|| format!("cannot write --junit {}", path.display()))
}
