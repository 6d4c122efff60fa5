//! The comparison page (`comparison.html`, and the data of `comparison.json`): one row
//! per setting of the matrix with its figures pooled over seeds, one row per run, and
//! plots that put the settings side by side — write and read latency CDFs overlaid, and
//! anomalies and lost writes against write latency, one point per run.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::data::{quantile, sort};
use crate::figures::{LatencySamples, RunFigures};
use crate::html::{Esc, PALETTE, hex, legend, num, opt_num, page, pct};
use crate::plot::{Chart, Layer, Mark};

/// One run of a setting.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunRef {
    pub seed: u64,
    /// The run's report, relative to the comparison page.
    pub link: String,
    /// The run's exit code (0 valid, 1 invalid, 2 unknown, 3 harness failure).
    pub exit_code: i32,
    pub figures: RunFigures,
}

/// What `summarize_setting` needs about one setting.
#[derive(Debug, Clone, Default)]
pub struct SettingInput {
    /// `replication=async reads=any`.
    pub label: String,
    pub settings: BTreeMap<String, String>,
    pub runs: Vec<RunRef>,
    /// Latencies of every run of the setting, pooled.
    pub samples: Vec<LatencySamples>,
}

/// One setting's figures pooled over its runs (what `comparison.json` holds).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SettingSummary {
    pub label: String,
    pub settings: BTreeMap<String, String>,
    pub runs: Vec<RunRef>,
    pub invalid_runs: u64,
    /// Anomalies by kind, summed over runs.
    pub anomalies: BTreeMap<String, u64>,
    pub lost_writes: u64,
    pub stale_reads: u64,
    pub ok_reads: u64,
    /// Stale reads / ok reads over all runs.
    pub stale_read_rate: Option<f64>,
    pub worst_staleness_ms: f64,
    pub worst_staleness_versions: u64,
    /// Mean over runs that had fault windows.
    pub availability_during_faults: Option<f64>,
    pub write_latency_ms_p50: Option<f64>,
    pub write_latency_ms_p99: Option<f64>,
    pub read_latency_ms_p50: Option<f64>,
    pub read_latency_ms_p99: Option<f64>,
    /// Mean ok ops per second over runs.
    pub ok_per_s: f64,
    /// Replication lag over every reading of the setting's runs (max and p99).
    #[serde(default)]
    pub lag: Option<crate::lag::LagFigures>,
    /// `(latency ms, fraction ≤)` points of the pooled CDFs.
    pub write_cdf: Vec<(f64, f64)>,
    pub read_cdf: Vec<(f64, f64)>,
}

/// The whole comparison.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ComparisonInput {
    pub name: String,
    pub date: String,
    /// The varied flags, in order: `replication`, `reads`.
    pub varied: Vec<String>,
    pub seeds: Vec<u64>,
    /// Flags every run shared.
    pub base_args: Vec<String>,
    pub settings: Vec<SettingSummary>,
}

fn cdf(sorted: &[f64]) -> Vec<(f64, f64)> {
    if sorted.is_empty() {
        return Vec::new();
    }
    let mut qs: Vec<f64> = (0..=100).map(|i| f64::from(i) / 100.0).collect();
    qs.extend([0.995, 0.999, 0.9999]);
    qs.sort_by(f64::total_cmp);
    qs.into_iter()
        .filter_map(|q| quantile(sorted, q).map(|v| (v.max(1e-3), q)))
        .collect()
}

/// Pools a setting's runs.
pub fn summarize_setting(input: SettingInput) -> SettingSummary {
    let mut anomalies: BTreeMap<String, u64> = BTreeMap::new();
    let (mut lost, mut stale, mut reads, mut invalid) = (0, 0, 0, 0);
    let (mut worst_ms, mut worst_v) = (0.0f64, 0u64);
    let mut avail = Vec::new();
    let mut tput = 0.0;
    for r in &input.runs {
        let f = &r.figures;
        for (k, n) in &f.anomalies {
            *anomalies.entry(k.clone()).or_default() += n;
        }
        lost += f.lost_writes;
        stale += f.stale_reads;
        reads += f.ok_reads;
        worst_ms = worst_ms.max(f.worst_staleness_ms);
        worst_v = worst_v.max(f.worst_staleness_versions);
        if let Some(a) = f.availability_during_faults {
            avail.push(a);
        }
        tput += f.ok_per_s;
        if r.exit_code == 1 {
            invalid += 1;
        }
    }
    let mut w: Vec<f64> = input
        .samples
        .iter()
        .flat_map(|s| s.write_ms.iter().copied())
        .collect();
    let mut rd: Vec<f64> = input
        .samples
        .iter()
        .flat_map(|s| s.read_ms.iter().copied())
        .collect();
    sort(&mut w);
    sort(&mut rd);
    let lag_pool: Vec<crate::lag::LagSample> = input
        .samples
        .iter()
        .flat_map(|s| s.lag.iter().cloned())
        .collect();
    let n = input.runs.len().max(1) as f64;
    SettingSummary {
        lag: (!lag_pool.is_empty()).then(|| crate::lag::lag_figures(&lag_pool)),
        invalid_runs: invalid,
        anomalies,
        lost_writes: lost,
        stale_reads: stale,
        ok_reads: reads,
        stale_read_rate: (reads > 0).then(|| stale as f64 / reads as f64),
        worst_staleness_ms: worst_ms,
        worst_staleness_versions: worst_v,
        availability_during_faults: (!avail.is_empty())
            .then(|| avail.iter().sum::<f64>() / avail.len() as f64),
        write_latency_ms_p50: quantile(&w, 0.5),
        write_latency_ms_p99: quantile(&w, 0.99),
        read_latency_ms_p50: quantile(&rd, 0.5),
        read_latency_ms_p99: quantile(&rd, 0.99),
        ok_per_s: tput / n,
        write_cdf: cdf(&w),
        read_cdf: cdf(&rd),
        label: input.label,
        settings: input.settings,
        runs: input.runs,
    }
}

/// The four lag cells of a summary row.
fn lag_cells(l: Option<&crate::lag::LagFigures>) -> String {
    let Some(l) = l else {
        return "<td class=\"num\">–</td>".repeat(4);
    };
    let unit = if l.unit.is_empty() {
        String::new()
    } else {
        format!(" {}", l.unit)
    };
    format!(
        "<td class=\"num lag-max\">{}{}</td><td class=\"num lag-p99\">{}{}</td><td class=\"num lag-max-ms\">{}</td><td class=\"num lag-p99-ms\">{}</td>",
        l.max_behind
            .map(|x| x.to_string())
            .unwrap_or_else(|| "–".into()),
        Esc(&unit),
        opt_num(l.p99_behind),
        Esc(&unit),
        opt_num(l.max_ms),
        opt_num(l.p99_ms)
    )
}

fn color(i: usize) -> (u8, u8, u8) {
    PALETTE[i % PALETTE.len()]
}

/// The comparison page: the settings side by side, latency CDFs, anomalies against
/// write latency, and every run with a link to its report.
pub fn render_comparison(c: &ComparisonInput) -> String {
    let title = format!("comparison {}", c.name);
    let mut body = format!("<h1>{}</h1>", Esc(&title));
    let _ = write!(
        body,
        "<p class=\"muted\">{} · varied: {} · seeds: {} · shared flags: <code>{}</code></p>",
        Esc(&crate::describe::to_the_second(&c.date)),
        Esc(&c.varied.join(", ")),
        Esc(&c
            .seeds
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", ")),
        Esc(&c.base_args.join(" "))
    );
    let kinds: BTreeSet<&String> = c.settings.iter().flat_map(|s| s.anomalies.keys()).collect();

    summary_table(&mut body, c, &kinds);
    let leg: Vec<(String, String)> = c
        .settings
        .iter()
        .enumerate()
        .map(|(i, s)| (hex(color(i)), s.label.clone()))
        .collect();
    latency_cdfs(&mut body, c, &leg);
    anomaly_scatter(&mut body, c, &leg);
    runs_table(&mut body, c);
    page(&title, &body)
}

/// One row per setting: invalid runs, each anomaly kind, lost writes, staleness,
/// availability, latency quantiles, lag and throughput.
fn summary_table(body: &mut String, c: &ComparisonInput, kinds: &BTreeSet<&String>) {
    body.push_str("<h2>Settings side by side</h2><table id=\"summary\"><tr><th>setting</th><th class=\"num\">invalid runs</th>");
    for k in kinds {
        let _ = write!(body, "<th class=\"num\">{}</th>", Esc(k));
    }
    body.push_str("<th class=\"num\">lost writes</th><th class=\"num\">stale-read rate</th><th class=\"num\">worst staleness ms</th><th class=\"num\">worst staleness versions</th><th class=\"num\">availability during faults</th><th class=\"num\">write p50 ms</th><th class=\"num\">write p99 ms</th><th class=\"num\">read p50 ms</th><th class=\"num\">read p99 ms</th><th class=\"num\">max lag</th><th class=\"num\">p99 lag</th><th class=\"num\">max lag ms</th><th class=\"num\">p99 lag ms</th><th class=\"num\">ok ops/s</th></tr>");
    for (i, s) in c.settings.iter().enumerate() {
        let _ = write!(
            body,
            "<tr><td style=\"white-space:nowrap\"><i style=\"display:inline-block;width:10px;height:10px;border-radius:5px;background:{}\"></i> {}</td><td class=\"num\">{}/{}</td>",
            hex(color(i)),
            Esc(&s.label),
            s.invalid_runs,
            s.runs.len()
        );
        for k in kinds {
            let _ = write!(
                body,
                "<td class=\"num\">{}</td>",
                s.anomalies.get(*k).copied().unwrap_or(0)
            );
        }
        let _ = write!(
            body,
            "<td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>{}<td class=\"num\">{}</td></tr>",
            s.lost_writes,
            pct(s.stale_read_rate),
            num(s.worst_staleness_ms),
            s.worst_staleness_versions,
            pct(s.availability_during_faults),
            opt_num(s.write_latency_ms_p50),
            opt_num(s.write_latency_ms_p99),
            opt_num(s.read_latency_ms_p50),
            opt_num(s.read_latency_ms_p99),
            lag_cells(s.lag.as_ref()),
            num(s.ok_per_s),
        );
    }
    body.push_str("</table><p class=\"note\">Anomaly counts and lost writes are summed over the seeds; latencies are quantiles of all runs' ok ops pooled; availability is ok/all ops invoked during fault windows (– when the runs had no faults); replication lag is over every 100 ms reading of every replica in the setting's runs, in the target's unit (entries or WAL bytes) and ms (– when the target cannot tell it). Anomaly counts are the runs' one count per kind (each kind from the checker that proves it), as in each run's report.</p>");
}

/// Write and read latency CDFs, one line per setting.
fn latency_cdfs(body: &mut String, c: &ComparisonInput, leg: &[(String, String)]) {
    body.push_str("<h2>Latency CDFs</h2><div class=\"grid\">");
    for (what, id, get) in [
        ("write", "plot-cdf-write", 0usize),
        ("read", "plot-cdf-read", 1usize),
    ] {
        let layers: Vec<Layer> = c
            .settings
            .iter()
            .enumerate()
            .map(|(i, s)| Layer::Line {
                color: color(i),
                points: if get == 0 {
                    s.write_cdf.clone()
                } else {
                    s.read_cdf.clone()
                },
                dashed: false,
            })
            .collect();
        let mut ch = Chart::new(
            id,
            &format!("{what} latency (ms, log)"),
            "fraction of ok ops ≤",
        );
        ch.width = 680;
        ch.height = 340;
        ch.log_x = true;
        ch.fit(&layers, None, Some(0.0));
        ch.y = (0.0, 1.0);
        let _ = write!(
            body,
            "<div><h3>{what} latency</h3>{}</div>",
            ch.render(&layers)
        );
    }
    body.push_str("</div>");
    body.push_str(&legend(leg));
}

/// Anomalies (all kinds, then lost writes) against write latency p50, one point per run.
fn anomaly_scatter(body: &mut String, c: &ComparisonInput, leg: &[(String, String)]) {
    body.push_str("<h2>Anomalies against write latency</h2><div class=\"grid\">");
    for (id, ydesc, lost_only) in [
        ("plot-anomalies-vs-latency", "anomalies (all kinds)", false),
        ("plot-lost-vs-latency", "lost writes", true),
    ] {
        let layers: Vec<Layer> = c
            .settings
            .iter()
            .enumerate()
            .map(|(i, s)| Layer::Points {
                color: color(i),
                mark: Mark::Big,
                points: s
                    .runs
                    .iter()
                    .filter_map(|r| {
                        let y = if lost_only {
                            r.figures.lost_writes
                        } else {
                            r.figures.anomalies.values().sum()
                        };
                        r.figures
                            .write_latency_ms_p50
                            .map(|x| (x.max(1e-3), y as f64))
                    })
                    .collect(),
            })
            .collect();
        let mut ch = Chart::new(id, "write latency p50 (ms, log)", ydesc);
        ch.width = 680;
        ch.height = 340;
        ch.log_x = true;
        ch.fit(&layers, None, Some(0.0));
        let _ = write!(body, "<div>{}</div>", ch.render(&layers));
    }
    body.push_str("</div>");
    body.push_str(&legend(leg));
    body.push_str("<p class=\"note\">One point per run. Down and to the left is better: fewer anomalies at lower write latency.</p>");
}

/// Every run: setting, seed, verdict, counts, figures, and a link to its report.
fn runs_table(body: &mut String, c: &ComparisonInput) {
    body.push_str("<h2>Runs</h2><table id=\"runs\"><tr><th>setting</th><th class=\"num\">seed</th><th>verdict</th><th>anomalies</th><th class=\"num\">lost writes</th><th class=\"num\">stale-read rate</th><th class=\"num\">write p50 ms</th><th class=\"num\">write p99 ms</th><th class=\"num\">ok ops/s</th><th>report</th></tr>");
    for s in &c.settings {
        for r in &s.runs {
            let f = &r.figures;
            let verdict = match r.exit_code {
                0 => "valid",
                1 => "invalid",
                2 => "unknown",
                _ => "harness failed",
            };
            let counts: Vec<String> = f
                .anomalies
                .iter()
                .map(|(k, n)| format!("{n} {k}"))
                .collect();
            let _ = write!(
                body,
                "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"{}-t\">{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                Esc(&s.label),
                r.seed,
                verdict,
                verdict,
                Esc(&counts.join(", ")),
                f.lost_writes,
                pct(f.stale_read_rate),
                opt_num(f.write_latency_ms_p50),
                opt_num(f.write_latency_ms_p99),
                num(f.ok_per_s),
                if r.link.is_empty() {
                    "–".to_owned()
                } else {
                    format!("<a href=\"{}\">report</a>", Esc(&r.link))
                }
            );
        }
    }
    body.push_str("</table>");
}
