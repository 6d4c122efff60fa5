//! The "test the tester" matrix page (`matrix.html`, and the data of `matrix.json`): one
//! row per configuration of DESIGN.md's matrix with its expected outcome, one cell per
//! seed saying what was observed (linked to that run's report), the rate at which the
//! expectation held, the rate it must reach, and whether the row holds.
//!
//! Pure rendering: the runner decides what each run showed and whether a row holds; this
//! module only lays it out. Every string from the input is escaped.

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

use crate::html::{Esc, num, page};

/// One run of a row.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MatrixCell {
    pub seed: u64,
    /// The run's exit code (0 valid, 1 invalid, 2 unknown, 3 harness failure).
    pub exit_code: i32,
    /// What the run showed: `valid`, `unknown`, `invalid: stale-read, …`, or why it failed.
    pub observed: String,
    /// The row's expectation held on this run.
    pub held: bool,
    /// The run's report (or its log when it has none), relative to the matrix page.
    pub link: String,
    pub duration_s: f64,
}

/// One row of the matrix and its runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MatrixRow {
    /// Stable name (`lf-no-lease`), what `schism matrix --rows` selects.
    pub id: String,
    /// The configuration in words.
    pub configuration: String,
    /// The faults in words.
    pub faults: String,
    /// The `schism test` flags of the row.
    pub args: Vec<String>,
    /// What the checker must report: `valid`, an anomaly kind, or `no <kind>`.
    pub expected: String,
    /// A weak setting (expected to show an anomaly) rather than a safe one.
    pub weak: bool,
    /// The fraction of runs on which the expectation must hold.
    pub required_rate: f64,
    pub runs: Vec<MatrixCell>,
    /// Runs on which the expectation held.
    pub held: u64,
    /// `held / runs`, None without runs.
    pub rate: Option<f64>,
    /// The row reached its required rate.
    pub ok: bool,
}

/// The whole matrix (what `matrix.json` holds).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MatrixInput {
    /// When the matrix started (RFC 3339).
    pub date: String,
    pub seeds: Vec<u64>,
    /// The `--time-limit` every run used, when it was overridden (else each row's own).
    pub time_limit: Option<String>,
    /// Wall time of the whole matrix.
    pub total_s: f64,
    /// Stopped before every run was done.
    pub interrupted: bool,
    pub rows: Vec<MatrixRow>,
}

/// Renders `matrix.html`.
pub fn render_matrix(m: &MatrixInput) -> String {
    let held = m.rows.iter().filter(|r| r.ok).count();
    let runs: usize = m.rows.iter().map(|r| r.runs.len()).sum();
    let mut body = String::from("<h1>schism: the “test the tester” matrix</h1>");
    let _ = write!(
        body,
        "<p class=\"muted\">{} · {} rows × {} seeds ({}) · {runs} runs · total time {} · {}</p>",
        Esc(&m.date),
        m.rows.len(),
        m.seeds.len(),
        Esc(&seed_list(&m.seeds)),
        Esc(&duration(m.total_s)),
        Esc(&match &m.time_limit {
            Some(t) => format!("every run --time-limit {t}"),
            None => "each row's own time limit".into(),
        })
    );
    let (class, word) = if held == m.rows.len() && !m.interrupted {
        ("valid", "EVERY ROW HOLDS")
    } else if m.interrupted {
        ("unknown", "INTERRUPTED")
    } else {
        ("invalid", "ROWS MISSED")
    };
    let _ = write!(
        body,
        "<p><span class=\"verdict {class}\" id=\"verdict\">{word}</span> <span class=\"muted\">{held} of {} rows reached their rate: a weak setting must show its anomaly on at least 90% of seeds, a safe one must be valid on all of them.</span></p>",
        m.rows.len()
    );
    body.push_str("<table id=\"matrix\"><tr><th>row</th><th>configuration</th><th>faults</th><th>expected</th>");
    for s in &m.seeds {
        let _ = write!(body, "<th class=\"num\">seed {s}</th>");
    }
    body.push_str("<th class=\"num\">rate</th><th class=\"num\">required</th><th>row</th></tr>");
    for r in &m.rows {
        let _ = write!(
            body,
            "<tr id=\"row-{}\"><td class=\"mono\" style=\"white-space:nowrap\">{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td>",
            Esc(&r.id),
            Esc(&r.id),
            Esc(&r.configuration),
            Esc(&r.faults),
            if r.weak { "invalid-t" } else { "valid-t" },
            Esc(&r.expected)
        );
        for s in &m.seeds {
            match r.runs.iter().find(|c| c.seed == *s) {
                Some(c) => {
                    let _ = write!(
                        body,
                        "<td class=\"{}\" title=\"{}\"><a href=\"{}\">{}</a> <span class=\"note\">{}</span></td>",
                        if c.held { "valid-t" } else { "invalid-t" },
                        Esc(&format!("{} ({:.1} s)", c.observed, c.duration_s)),
                        Esc(&c.link),
                        if c.held { "✓" } else { "✗" },
                        Esc(&c.observed)
                    );
                }
                None => body.push_str("<td class=\"muted\">–</td>"),
            }
        }
        let _ = write!(
            body,
            "<td class=\"num\">{}</td><td class=\"num\">≥ {}</td><td class=\"{}\">{}</td></tr>",
            Esc(&match r.rate {
                Some(rate) => format!("{}/{} = {}%", r.held, r.runs.len(), num(rate * 100.0)),
                None => "–".into(),
            }),
            Esc(&format!("{:.0}%", r.required_rate * 100.0)),
            if r.ok { "valid-t" } else { "invalid-t" },
            if r.ok { "holds" } else { "misses" }
        );
    }
    body.push_str("</table>");
    body.push_str(
        "<h2>Flags of each row</h2><table id=\"flags\"><tr><th>row</th><th>schism test</th></tr>",
    );
    for r in &m.rows {
        let _ = write!(
            body,
            "<tr><td class=\"mono\">{}</td><td class=\"mono\">{}</td></tr>",
            Esc(&r.id),
            Esc(&r.args.join(" "))
        );
    }
    body.push_str("</table><p class=\"note\">Each cell links to that run's report; hover for the observed outcome. Re-run one row with <code>schism matrix --rows ID --seeds N</code>, or one run with <code>schism test</code>, the row's flags and <code>--seed S</code>.</p>");
    page("schism matrix", &body)
}

fn seed_list(seeds: &[u64]) -> String {
    match (seeds.first(), seeds.last()) {
        (Some(a), Some(b)) if seeds.len() > 2 && seeds.windows(2).all(|w| w[1] == w[0] + 1) => {
            format!("{a}–{b}")
        }
        _ => seeds
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    }
}

fn duration(s: f64) -> String {
    let whole = s.max(0.0).round() as u64;
    if whole >= 60 {
        format!("{}m{:02}s", whole / 60, whole % 60)
    } else {
        format!("{s:.1}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> MatrixInput {
        MatrixInput {
            date: "2026-12-01T15:00:00Z".into(),
            seeds: vec![1, 2, 3],
            time_limit: None,
            total_s: 95.0,
            interrupted: false,
            rows: vec![MatrixRow {
                id: "lf-no-lease".into(),
                configuration: "leader reads <without> lease".into(),
                faults: "partition the leader".into(),
                args: vec!["--read-lease".into(), "off".into()],
                expected: "stale-read".into(),
                weak: true,
                required_rate: 0.9,
                runs: vec![
                    MatrixCell {
                        seed: 1,
                        exit_code: 1,
                        observed: "invalid: stale-read×4".into(),
                        held: true,
                        link: "lf-no-lease/20261201T150000/report.html".into(),
                        duration_s: 12.5,
                    },
                    MatrixCell {
                        seed: 2,
                        exit_code: 0,
                        observed: "valid".into(),
                        held: false,
                        link: "lf-no-lease/20261201T150013/report.html".into(),
                        duration_s: 12.0,
                    },
                ],
                held: 1,
                rate: Some(0.5),
                ok: false,
            }],
        }
    }

    #[test]
    fn page_shows_cells_rates_links_and_escapes() {
        let html = render_matrix(&input());
        assert!(html.contains("ROWS MISSED"));
        assert!(html.contains("href=\"lf-no-lease/20261201T150000/report.html\""));
        assert!(html.contains("1/2 = 50.0%"), "{html}");
        assert!(html.contains("≥ 90%"));
        assert!(html.contains("total time 1m35s"));
        assert!(html.contains("1–3"));
        assert!(html.contains("&lt;without&gt;") && !html.contains("<without>"));
        // Seed 3 has no run: an empty cell, not a fake outcome.
        assert!(html.contains("<td class=\"muted\">–</td>"));
        assert!(html.contains("misses"));
    }

    #[test]
    fn every_row_holding_says_so() {
        let mut m = input();
        m.rows[0].ok = true;
        assert!(render_matrix(&m).contains("EVERY ROW HOLDS"));
        m.interrupted = true;
        assert!(render_matrix(&m).contains("INTERRUPTED"));
    }
}
