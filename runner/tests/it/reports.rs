//! The report tells the truth about real runs: one fault window per applied fault, each
//! closed by the recorded state that ended it and named in words (checked on the DOM
//! headless Chromium renders); one count per anomaly kind, identical in the terminal
//! summary, results.json, the report's badges, JUnit and the comparison; a
//! representative anomaly list; replication lag over time.

use crate::{only_run_dir, run_test, schism, state_dir, stderr, stdout, tempdir};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn history(run: &Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("history.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn set(v: &Value) -> BTreeSet<String> {
    match v {
        Value::Array(a) => a.iter().map(|x| x.to_string()).collect(),
        Value::Object(m) => m.keys().cloned().collect(),
        _ => BTreeSet::new(),
    }
}

/// From the raw history: the info times at which a fault was applied (something new
/// entered the state; a strobe's later steps continue it) per kind, and every info time.
fn applied_faults(ops: &[Value]) -> (Vec<(String, u64)>, BTreeSet<u64>) {
    let mut prev: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut prev_f = String::new();
    let mut applied = Vec::new();
    let mut infos = BTreeSet::new();
    for o in ops {
        if o["process"] != "nemesis" || o["type"] != "info" || o.get("error").is_some() {
            continue;
        }
        let t = o["time_ns"].as_u64().unwrap();
        infos.insert(t);
        let f = o["f"].as_str().unwrap().to_owned();
        for field in ["cuts", "paused", "killed", "clocks"] {
            let now = set(&o["value"][field]);
            let before = prev.get(field).cloned().unwrap_or_default();
            let new = match field {
                "cuts" => !now.is_empty() && now != before,
                "clocks" if f == "strobe-clock" && prev_f == "strobe-clock" => false,
                _ => !now.is_subset(&before),
            };
            if new {
                applied.push((field.to_owned(), t));
            }
            // A strobe step back to real time does not end the strobe.
            if !(field == "clocks" && f == "strobe-clock" && now.is_empty()) {
                prev.insert(field, now);
            }
        }
        prev_f = f;
    }
    (applied, infos)
}

/// Texts of `<td class="fault-label">…</td>` cells and `<title>` of shaded bands.
fn between<'a>(html: &'a str, open: &str, close: &str) -> Vec<&'a str> {
    html.split(open)
        .skip(1)
        .filter_map(|s| s.find(close).map(|e| &s[..e]))
        .collect()
}

#[test]
fn fault_windows_of_a_real_run_in_words_and_in_the_browser() {
    let store = tempdir();
    let out = run_test(
        store.path(),
        &[
            "--time-limit",
            "20s",
            "--nemesis",
            "partition,pause,kill,clock",
            "--nemesis-interval",
            "2s",
            "--seed",
            "3",
            "--name",
            "w",
        ],
    );
    assert!(matches!(out.status.code(), Some(0..=2)), "{}", stderr(&out));
    let run = only_run_dir(store.path(), "w");
    let ops = history(&run);
    let (applied, infos) = applied_faults(&ops);
    assert!(applied.len() >= 3, "the run applied faults: {applied:?}");
    let h = schism_history::read_history_file(&run.join("history.jsonl"))
        .unwrap()
        .0;
    let windows = schism_history::nemesis::fault_windows(&h);
    // Exactly one window per applied fault, opening at its info.
    let starts: Vec<u64> = windows.iter().map(|w| w.start_ns).collect();
    let applied_at: Vec<u64> = applied.iter().map(|a| a.1).collect();
    assert_eq!(starts, applied_at, "{windows:#?}\n{applied:?}");
    for w in &windows {
        assert!(!w.open_ended, "the run healed: {w:?}");
        assert!(infos.contains(&w.end_ns), "{w:?} ends at a recorded state");
        assert!(!w.label.contains('{'), "{}", w.label);
        assert!(
            w.nodes.iter().any(|n| w.label.contains(n.as_str())),
            "{} names its nodes",
            w.label
        );
    }
    if applied.iter().any(|a| a.0 == "clocks") {
        assert!(
            windows
                .iter()
                .any(|w| w.kind == schism_history::nemesis::WindowKind::Clock)
        );
    }
    // The progress line names faults in words.
    for l in stderr(&out).lines().filter(|l| l.contains("fault: ")) {
        assert!(!l.contains('{'), "{l}");
    }

    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    let dom = match crate::browser::dump_dom(&run.join("report.html")) {
        Some(dom) => dom,
        None => html,
    };
    assert!(!dom.contains("never healed"));
    let labels = between(&dom, "<td class=\"fault-label\">", "</td>");
    assert_eq!(
        labels.len(),
        windows.len(),
        "one availability row per window"
    );
    let band_titles: Vec<&str> = between(&dom, "fill=\"#e53935\"", "</rect>");
    assert!(!band_titles.is_empty(), "fault bands drawn");
    for l in labels.iter().chain(band_titles.iter()) {
        assert!(!l.contains('{'), "raw JSON in a fault label: {l}");
    }
}

/// Per-kind counts a page shows as `data-kind="K" data-count="N"` badges.
fn badges(html: &str) -> BTreeMap<String, u64> {
    between(html, "<span class=\"pill count\" data-kind=\"", "</span>")
        .iter()
        .map(|s| {
            let kind = &s[..s.find('"').unwrap()];
            let n = between(s, "data-count=\"", "\"")[0].parse().unwrap();
            (kind.to_owned(), n)
        })
        .collect()
}

fn parse_counts(text: &str) -> BTreeMap<String, u64> {
    text.split(", ")
        .filter(|s| !s.is_empty())
        .map(|p| {
            let (n, k) = p.split_once(' ').unwrap();
            (k.to_owned(), n.parse().unwrap())
        })
        .collect()
}

#[test]
fn one_count_per_kind_everywhere_and_a_representative_list() {
    let store = tempdir();
    let out = schism()
        .env("SCHISM_STATE_DIR", state_dir(store.path()))
        .args([
            "compare",
            "--name",
            "d",
            "--vary",
            "reads=any",
            "--seed-list",
            "3,10,11",
            "--store",
        ])
        .arg(store.path())
        .args(["--", "--time-limit", "10s"])
        .output()
        .unwrap();
    let text = stdout(&out);
    eprintln!("{text}\n{}", stderr(&out));
    assert_eq!(out.status.code(), Some(0));
    // The terminal summaries, in run order.
    let cli: Vec<BTreeMap<String, u64>> = text
        .lines()
        .filter(|l| l.starts_with("verdict: "))
        .map(|l| {
            l.split_once(" (")
                .map(|(_, c)| parse_counts(c.trim_end_matches(')')))
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(cli.len(), 3, "{text}");
    let cdir = only_run_dir(&store.path().join("compare"), "d");
    let cmp = read_json(&cdir.join("comparison.json"));
    let cmp_html = std::fs::read_to_string(cdir.join("comparison.html")).unwrap();
    let runs = cmp["settings"][0]["runs"].as_array().unwrap();
    let mut found_inside_partition = false;
    for (i, r) in runs.iter().enumerate() {
        let link = r["link"].as_str().unwrap();
        let report = cdir.join(link);
        let run = report.parent().unwrap();
        let results = read_json(&run.join("results.json"));
        let counts: BTreeMap<String, u64> =
            serde_json::from_value(results["counts"].clone()).unwrap();
        assert!(!counts.is_empty(), "the default run finds anomalies");
        let html = std::fs::read_to_string(&report).unwrap();
        let junit = tempdir();
        let xml = junit.path().join("j.xml");
        let chk = schism()
            .arg("check")
            .arg(run)
            .arg("--junit")
            .arg(&xml)
            .output()
            .unwrap();
        assert!(chk.status.code().is_some());
        let xml = std::fs::read_to_string(&xml).unwrap();
        let junit_counts: BTreeMap<String, u64> =
            between(&xml, "<property name=\"anomalies.", "/>")
                .iter()
                .map(|p| {
                    let kind = &p[..p.find('"').unwrap()];
                    let n = between(p, "value=\"", "\"")[0].parse().unwrap();
                    (kind.to_owned(), n)
                })
                .collect();
        let cmp_counts: BTreeMap<String, u64> =
            serde_json::from_value(r["figures"]["anomalies"].clone()).unwrap();
        assert_eq!(cli[i], counts, "run {i}: CLI vs results.json");
        assert_eq!(badges(&html), counts, "run {i}: report badges");
        assert_eq!(junit_counts, counts, "run {i}: JUnit");
        assert_eq!(cmp_counts, counts, "run {i}: comparison.json");
        let row: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
        assert!(
            cmp_html.contains(&format!("<td>{}</td>", row.join(", "))),
            "run {i}: comparison table"
        );

        // The list: per kind the earliest kept and a worst; one inside every partition
        // window in which a kept anomaly of that kind falls.
        let h = schism_history::read_history_file(&run.join("history.jsonl"))
            .unwrap()
            .0;
        let time_of: BTreeMap<u64, u64> = h.ops.iter().map(|o| (o.index(), o.time_ns)).collect();
        let windows = schism_history::nemesis::fault_windows(&h);
        let checks: Vec<schism_checker::CheckResult> =
            serde_json::from_value(results["results"].clone()).unwrap();
        let listed = between(&html, "<div class=\"anomaly\"", ">");
        for kind in counts.keys() {
            let mine: Vec<&str> = listed
                .iter()
                .copied()
                .filter(|d| d.contains(&format!("data-kind=\"{kind}\"")))
                .collect();
            assert!(mine.iter().any(|d| d.contains("earliest")), "{kind}");
            assert!(mine.iter().any(|d| d.contains("worst")), "{kind}");
            let kept_times: Vec<u64> = checks
                .iter()
                .flat_map(|c| c.anomalies.iter().map(move |a| (c, a)))
                .filter(|(c, a)| {
                    schism_checker::counts::is_counted(c, a, &checks)
                        && schism_checker::counts::counted_kind(&c.checker, a).as_str() == kind
                })
                .filter_map(|(_, a)| a.ops.iter().filter_map(|o| time_of.get(o)).min().copied())
                .collect();
            let earliest = kept_times.iter().min().unwrap();
            assert!(
                mine.iter()
                    .any(|d| d.contains("earliest")
                        && d.contains(&format!("data-t-ns=\"{earliest}\""))),
                "{kind}: the earliest at {earliest}"
            );
            for w in windows
                .iter()
                .filter(|w| w.kind == schism_history::nemesis::WindowKind::Partition)
            {
                if kept_times.iter().any(|t| w.contains(*t)) {
                    found_inside_partition = true;
                    let reason = schism_report::escape(&format!("inside {}", w.label));
                    assert!(
                        mine.iter().any(|d| d.contains(&reason)),
                        "{kind}: one inside {}",
                        w.label
                    );
                }
            }
        }
    }
    assert!(
        found_inside_partition,
        "no run had an anomaly inside a partition window"
    );
}

/// `(t_ms, behind)` of one replica in a run's lag.jsonl.
fn lag_of(run: &Path, node: &str) -> Vec<(f64, f64)> {
    std::fs::read_to_string(run.join("lag.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["node"] == node)
        .filter_map(|v| Some((v["t_ms"].as_f64()?, v["behind"].as_f64()?)))
        .collect()
}

#[test]
fn lag_of_a_cut_follower_grows_then_falls_and_sync_stays_bounded() {
    // Seed 21's first fault cuts follower n2 from leader n1 and n3 (3 s to 6 s).
    let store = tempdir();
    let out = schism()
        .env("SCHISM_STATE_DIR", state_dir(store.path()))
        .args([
            "compare",
            "--name",
            "lag",
            "--vary",
            "replication=sync,async",
            "--seed-list",
            "21",
            "--store",
        ])
        .arg(store.path())
        .args([
            "--",
            "--nemesis",
            "partition",
            "--nemesis-interval",
            "3s",
            "--time-limit",
            "12s",
        ])
        .output()
        .unwrap();
    eprintln!("{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0));
    let cdir = only_run_dir(&store.path().join("compare"), "lag");
    let cmp = read_json(&cdir.join("comparison.json"));
    let mut max_in = Vec::new();
    for s in cmp["settings"].as_array().unwrap() {
        assert!(s["lag"]["max_behind"].as_u64().is_some(), "lag per setting");
        assert!(s["lag"]["p99_ms"].as_f64().is_some(), "lag per setting");
        let report = cdir.join(s["runs"][0]["link"].as_str().unwrap());
        let run = report.parent().unwrap().to_owned();
        let h = schism_history::read_history_file(&run.join("history.jsonl"))
            .unwrap()
            .0;
        let w = schism_history::nemesis::fault_windows(&h);
        assert_eq!(w[0].label, "partition n2 | n1 n3", "{w:?}");
        let (a, b) = (w[0].start_ns as f64 / 1e6, w[0].end_ns as f64 / 1e6);
        let n2 = lag_of(&run, "n2");
        let inside: Vec<f64> = n2
            .iter()
            .filter(|(t, _)| *t > a && *t < b)
            .map(|x| x.1)
            .collect();
        let after: Vec<f64> = n2
            .iter()
            .filter(|(t, _)| *t > b + 1000.0 && *t < b + 2000.0)
            .map(|x| x.1)
            .collect();
        // ≥ 5 samples: on a loaded box the 100 ms sampler got only 8 into a 3.4 s window.
        assert!(inside.len() >= 5 && !after.is_empty(), "{n2:?}");
        let peak = inside.iter().copied().fold(0.0, f64::max);
        let after_max = after.iter().copied().fold(0.0, f64::max);
        // Async: the backlog drains after the heal. Sync: the lag stays bounded throughout
        // (its in-window peak is a few ops in flight, about what it is before the cut), so
        // it only must not grow after the heal.
        let falls = if s["label"] == "replication=async" {
            after_max < peak / 2.0
        } else {
            after_max <= peak
        };
        assert!(falls, "{}: lag falls after the heal: {n2:?}", s["label"]);
        max_in.push((s["label"].as_str().unwrap().to_owned(), peak, inside));
        let html = std::fs::read_to_string(&report).unwrap();
        assert!(html.contains("id=\"plot-lag\""));
    }
    let (sync, asyn) = (&max_in[0], &max_in[1]);
    assert_eq!(sync.0, "replication=sync");
    // Async: the cut follower falls further behind through the window.
    let third = asyn.2.len() / 3;
    let early = asyn.2[..third].iter().copied().fold(0.0, f64::max);
    let late = asyn.2[2 * third..].iter().copied().fold(0.0, f64::max);
    // (1.5×, not more: on a loaded box the follower falls behind fast at first, e.g.
    // 27, 70, 77, 134, …, 251 ops across one window.)
    assert!(late > 1.5 * early.max(1.0), "async lag grows: {:?}", asyn.2);
    // Sync: the leader cannot run ahead of the follower it waits for.
    assert!(
        sync.1 * 5.0 < asyn.1,
        "sync lag is bounded: sync peak {} vs async {}",
        sync.1,
        asyn.1
    );
    let page = std::fs::read_to_string(cdir.join("comparison.html")).unwrap();
    assert!(page.contains("lag-max") && page.contains("lag-p99-ms"));
}
