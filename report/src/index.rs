//! The results index (`results/index.html`): one row per run, newest first, with its
//! name, date, target, verdict, anomaly counts and a link to its report; comparisons get
//! their own table.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::html::{Esc, page};

/// One run (or comparison) as the index lists it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct IndexEntry {
    pub name: String,
    /// When it started (RFC 3339 or the folder's timestamp).
    pub date: String,
    /// What was tested, e.g. `reference leader-follower async, reads any`.
    pub target: String,
    /// `valid`, `invalid`, `unknown`, or empty when the run has no results yet.
    pub verdict: String,
    pub anomalies: BTreeMap<String, u64>,
    /// Link to the report, relative to the index.
    pub link: String,
    /// A comparison page rather than a run.
    pub comparison: bool,
}

pub fn render_index(title: &str, entries: &[IndexEntry]) -> String {
    let mut runs: Vec<&IndexEntry> = entries.iter().filter(|e| !e.comparison).collect();
    let mut cmps: Vec<&IndexEntry> = entries.iter().filter(|e| e.comparison).collect();
    runs.sort_by(|a, b| b.date.cmp(&a.date).then(a.name.cmp(&b.name)));
    cmps.sort_by(|a, b| b.date.cmp(&a.date));
    let mut body = format!("<h1>{}</h1>", Esc(title));
    let _ = write!(
        body,
        "<p class=\"muted\">{} runs, {} comparisons</p>",
        runs.len(),
        cmps.len()
    );
    if !cmps.is_empty() {
        body.push_str("<h2>Comparisons</h2><table id=\"comparisons\"><tr><th>name</th><th>date</th><th>settings</th><th>page</th></tr>");
        for e in cmps {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td><a href=\"{}\">comparison</a></td></tr>",
                Esc(&e.name),
                Esc(&e.date),
                Esc(&e.target),
                Esc(&e.link)
            );
        }
        body.push_str("</table>");
    }
    body.push_str("<h2>Runs</h2><table id=\"runs\"><tr><th>name</th><th>date</th><th>target</th><th>verdict</th><th>anomalies</th><th>report</th></tr>");
    for e in runs {
        let counts: Vec<String> = e
            .anomalies
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        let class = match e.verdict.as_str() {
            "valid" | "invalid" | "unknown" => format!("{}-t", e.verdict),
            _ => String::new(),
        };
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{class}\">{}</td><td>{}</td><td><a href=\"{}\">report</a></td></tr>",
            Esc(&e.name),
            Esc(&e.date),
            Esc(&e.target),
            Esc(if e.verdict.is_empty() {
                "–"
            } else {
                &e.verdict
            }),
            Esc(&counts.join(", ")),
            Esc(&e.link)
        );
    }
    body.push_str("</table>");
    page(title, &body)
}
