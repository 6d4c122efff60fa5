//! Replication lag over time (`lag.jsonl`, sampled by the runner): one line per replica
//! in entries/bytes and one in ms, with the fault windows shaded; and the figures a
//! comparison sets side by side (max and p99 over the run).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::data::FaultWindow;
use crate::data::{quantile, sort};
use crate::html::{Esc, PALETTE, hex, legend, num};
use crate::plot::{Band, Chart, Layer};

/// Readings further apart than this (three sample periods) are not joined by a line.
const GAP_MS: f64 = 300.0;

/// One reading of `lag.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LagSample {
    pub t_ms: f64,
    pub node: String,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub behind: Option<u64>,
    #[serde(default)]
    pub unit: String,
    #[serde(default)]
    pub behind_ms: Option<f64>,
    /// `measured` by the target or `estimated` from sampled positions.
    #[serde(default)]
    pub ms_from: Option<String>,
}

/// A run's lag: how it was measured and every reading.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LagData {
    /// The probe's method (first line of `lag.jsonl`); empty when the run has none.
    pub method: String,
    pub samples: Vec<LagSample>,
}

impl LagData {
    /// Parses `lag.jsonl` (a header line with `method`, then readings); lines that do not
    /// parse are skipped (a cut-off last line after a crash).
    pub fn parse(text: &str) -> LagData {
        let mut d = LagData::default();
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if let Some(m) = v.get("method").and_then(|m| m.as_str()) {
                d.method = m.to_owned();
            } else if let Ok(s) = serde_json::from_value::<LagSample>(v) {
                d.samples.push(s);
            }
        }
        d
    }
}

/// Max and p99 over every reading of a run (or a setting's runs).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LagFigures {
    pub unit: String,
    pub max_behind: Option<u64>,
    pub p99_behind: Option<f64>,
    pub max_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub samples: u64,
}

pub fn lag_figures(samples: &[LagSample]) -> LagFigures {
    let mut behind: Vec<f64> = samples
        .iter()
        .filter_map(|s| s.behind.map(|b| b as f64))
        .collect();
    let mut ms: Vec<f64> = samples.iter().filter_map(|s| s.behind_ms).collect();
    sort(&mut behind);
    sort(&mut ms);
    LagFigures {
        unit: samples.first().map(|s| s.unit.clone()).unwrap_or_default(),
        max_behind: samples.iter().filter_map(|s| s.behind).max(),
        p99_behind: quantile(&behind, 0.99),
        max_ms: ms.last().copied(),
        p99_ms: quantile(&ms, 0.99),
        samples: samples.len() as u64,
    }
}

/// The report's lag section.
pub(crate) fn section(lag: &LagData, faults: &[FaultWindow], bands: Vec<Band>) -> String {
    if lag.samples.is_empty() {
        return if lag.method.is_empty() {
            "<p class=\"note\" id=\"lag-none\">No replication lag was sampled: this target cannot tell it (the reference leader-follower nodes, PostgreSQL, Redis and etcd can), or the run predates lag sampling.</p>".into()
        } else {
            format!(
                "<p class=\"note\" id=\"lag-none\">No lag readings were recorded ({}).</p>",
                Esc(&lag.method)
            )
        };
    }
    let _ = faults;
    let mut per_node: BTreeMap<&str, Vec<&LagSample>> = BTreeMap::new();
    for s in &lag.samples {
        per_node.entry(s.node.as_str()).or_default().push(s);
    }
    let unit = lag.samples[0].unit.clone();
    let mut s = format!(
        "<p class=\"note\">Sampled every 100 ms by the runner: {}. One line per replica; shaded: fault windows. A replica that did not answer in time (paused, killed, not streaming) has no reading: its line breaks there.</p>",
        Esc(&lag.method)
    );
    let mut leg = Vec::new();
    let mut by_unit = Vec::new();
    let mut by_ms = Vec::new();
    for (i, (node, v)) in per_node.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let source = v.iter().find_map(|x| x.source.clone()).unwrap_or_default();
        leg.push((
            hex(color),
            if source.is_empty() {
                (*node).to_owned()
            } else {
                format!("{node} behind {source}")
            },
        ));
        for seg in segments(v) {
            by_unit.push(Layer::Line {
                color,
                points: seg
                    .iter()
                    .filter_map(|x| x.behind.map(|b| (x.t_ms / 1e3, b as f64)))
                    .collect(),
                dashed: false,
            });
            by_ms.push(Layer::Line {
                color,
                points: seg
                    .iter()
                    .filter_map(|x| x.behind_ms.map(|m| (x.t_ms / 1e3, m)))
                    .collect(),
                dashed: false,
            });
        }
    }
    let mut c = Chart::new("plot-lag", "time (s)", &format!("{unit} behind"));
    c.height = 260;
    c.bands = bands.clone();
    c.fit(&by_unit, Some(0.0), Some(0.0));
    s.push_str(&c.render(&by_unit));
    if lag.samples.iter().any(|x| x.behind_ms.is_some()) {
        let estimated = lag
            .samples
            .iter()
            .any(|x| x.ms_from.as_deref() == Some("estimated"));
        let mut c = Chart::new("plot-lag-ms", "time (s)", "ms behind");
        c.height = 260;
        c.bands = bands;
        c.fit(&by_ms, Some(0.0), Some(0.0));
        s.push_str(&c.render(&by_ms));
        if estimated {
            s.push_str("<p class=\"note\">ms behind: the age of the oldest entry the replica had not applied, from the leader positions the sampler saw (100 ms resolution).</p>");
        }
    }
    s.push_str(&legend(&leg));
    let f = lag_figures(&lag.samples);
    let _ = write!(
        s,
        "<table id=\"lag-figures\"><tr><th>replica</th><th class=\"num\">samples</th><th class=\"num\">max {0}</th><th class=\"num\">p99 {0}</th><th class=\"num\">max ms</th><th class=\"num\">p99 ms</th></tr>",
        Esc(&unit)
    );
    for (node, v) in &per_node {
        let owned: Vec<LagSample> = v.iter().map(|x| (*x).clone()).collect();
        let g = lag_figures(&owned);
        row(&mut s, node, &g);
    }
    row(&mut s, "all", &f);
    s.push_str("</table>");
    s
}

fn row(s: &mut String, name: &str, g: &LagFigures) {
    let o = |x: Option<f64>| x.map(num).unwrap_or_else(|| "–".into());
    let _ = write!(
        s,
        "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
        Esc(name),
        g.samples,
        g.max_behind
            .map(|x| x.to_string())
            .unwrap_or_else(|| "–".into()),
        o(g.p99_behind),
        o(g.max_ms),
        o(g.p99_ms)
    );
}

/// A replica's readings split where it missed more than `GAP_MS` of samples (paused,
/// killed, not streaming), so the plot shows the gap rather than a line across it.
fn segments<'a>(v: &'a [&'a LagSample]) -> Vec<&'a [&'a LagSample]> {
    let mut out = Vec::new();
    let mut from = 0;
    for i in 1..v.len() {
        if v[i].t_ms - v[i - 1].t_ms > GAP_MS {
            out.push(&v[from..i]);
            from = i;
        }
    }
    if from < v.len() {
        out.push(&v[from..]);
    }
    out
}
