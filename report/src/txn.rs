//! The "Transactions" section of a run report: what the `txn` checker checked (workload,
//! transactions, the consistency model of the run) and its verdict under that model,
//! every model of the ladder with whether this history rules it out, and the cycles it
//! found — one per kind, each drawn as a small SVG (the transactions on a circle, each
//! edge an arrow labelled with its dependency: ww, wr, rw, process, realtime) and
//! explained edge by edge, one sentence each, as the checker worded it.
//!
//! Pure: results in, HTML out. Guarantees: nothing is shown for a run without a `txn`
//! result; every string from the results is escaped; the section is bounded (at most
//! `MAX_CYCLES` cycles drawn, each of at most `MAX_DRAWN_STEPS` transactions).

use schism_checker::txn::ConsistencyModel;
use schism_checker::{Anomaly, CheckResult};
use std::fmt::Write as _;

use crate::html::Esc;

/// Cycles drawn (the first of each kind, in the checker's order).
const MAX_CYCLES: usize = 12;
/// Longer cycles are listed edge by edge but not drawn.
const MAX_DRAWN_STEPS: usize = 16;

/// The section, or an empty string when the run has no `txn` result.
pub fn txn_section(results: &[CheckResult]) -> String {
    let Some(r) = results.iter().find(|r| r.checker == "txn") else {
        return String::new();
    };
    let fig = |k: &str| r.figures.get(k).cloned().unwrap_or_default();
    let text = |k: &str| fig(k).as_str().map(str::to_owned).unwrap_or_default();
    let strings = |k: &str| -> Vec<String> {
        fig(k)
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (ruled, undecided) = (strings("ruled_out"), strings("undecided"));
    let model = text("consistency_model");
    let mut out = String::new();
    let _ = write!(
        out,
        "<h2 id=\"transactions\">Transactions</h2><p id=\"txn-verdict\">{} {} transactions ({} committed) checked against <b>{}</b>: <span class=\"{}-t\">{}</span>.</p>",
        Esc(&text("workload")),
        fig("transactions"),
        fig("committed"),
        Esc(&model),
        r.validity.as_str(),
        r.validity.as_str()
    );
    if let Some(cut) = fig("cycle_search_cut").as_str() {
        let _ = write!(out, "<p id=\"txn-cut\" class=\"muted\">{}.</p>", Esc(cut));
    }
    out.push_str(
        "<table id=\"txn-models\"><tr><th>consistency model</th><th>this history</th></tr>",
    );
    for m in ConsistencyModel::ALL {
        let name = m.as_str();
        let out_of = ruled.iter().any(|x| x == name);
        let open = !out_of && undecided.iter().any(|x| x == name);
        let (class, says) = match (out_of, open) {
            (true, _) => ("invalid-t", "ruled out"),
            (false, true) => ("unknown-t", "not decided: the cycle search stopped early"),
            (false, false) => ("valid-t", "not ruled out"),
        };
        let _ = write!(
            out,
            "<tr data-model=\"{name}\" data-ruled-out=\"{}\"><td>{name}{}</td><td class=\"{class}\">{says}</td></tr>",
            if open {
                "undecided".to_owned()
            } else {
                out_of.to_string()
            },
            if name == model { " (this run's)" } else { "" },
        );
    }
    out.push_str("</table>");
    let cycles: Vec<&Anomaly> = first_of_each_kind(&r.anomalies);
    if cycles.is_empty() {
        out.push_str("<p id=\"txn-cycles\" class=\"muted\">No dependency cycle found.</p>");
        return out;
    }
    let _ = write!(
        out,
        "<p class=\"muted\">The first cycle of each kind (of {} kinds found), its transactions named by the index of their invocation:</p><div id=\"txn-cycles\">",
        cycles.len()
    );
    for a in cycles {
        out.push_str(&cycle_html(a));
    }
    out.push_str("</div>");
    out
}

/// The first anomaly with a cycle of each kind, at most `MAX_CYCLES`.
fn first_of_each_kind(anomalies: &[Anomaly]) -> Vec<&Anomaly> {
    let mut seen = std::collections::HashSet::new();
    anomalies
        .iter()
        .filter(|a| !a.cycle.is_empty() && seen.insert(a.kind))
        .take(MAX_CYCLES)
        .collect()
}

/// One cycle: its title, the drawing, and one line per edge.
fn cycle_html(a: &Anomaly) -> String {
    let names: Vec<String> = a.cycle.iter().map(|s| format!("T{}", s.op)).collect();
    let reasons = edge_sentences(&a.explanation, a.cycle.len());
    let mut out = String::new();
    let _ = write!(
        out,
        "<div class=\"txn-cycle\" data-kind=\"{}\"><h3>{}: {} → {}</h3>",
        a.kind,
        a.kind,
        Esc(&names.join(" → ")),
        Esc(&names[0])
    );
    if a.cycle.len() <= MAX_DRAWN_STEPS {
        out.push_str(&cycle_svg(a));
    }
    match reasons {
        Some(reasons) => {
            out.push_str("<ol class=\"txn-edges\">");
            for (i, (step, why)) in a.cycle.iter().zip(&reasons).enumerate() {
                let next = &names[(i + 1) % names.len()];
                let _ = write!(
                    out,
                    "<li data-edge=\"{}\"><b>T{} → {} ({})</b>: {}</li>",
                    step.edge,
                    step.op,
                    Esc(next),
                    step.edge,
                    Esc(why)
                );
            }
            out.push_str("</ol>");
        }
        None => {
            let _ = write!(out, "<p>{}</p>", Esc(&a.explanation));
        }
    }
    out.push_str("</div>");
    out
}

/// The per-edge sentences of a cycle's explanation (`"… cycle A → B → A: s1; s2."`), or
/// `None` when they cannot be told apart (then the explanation is shown whole).
fn edge_sentences(explanation: &str, edges: usize) -> Option<Vec<String>> {
    // The title may hold colons of its own (a fractured read's note), the checker's edge
    // sentences hold none: the last split after which one sentence per edge remains.
    explanation.rmatch_indices(": ").find_map(|(at, sep)| {
        let body = &explanation[at + sep.len()..];
        let body = body.strip_suffix('.').unwrap_or(body);
        let parts: Vec<String> = body.split("; ").map(str::to_owned).collect();
        (parts.len() == edges).then_some(parts)
    })
}

/// The cycle on a circle: a node per transaction, an arrow per edge labelled with its kind.
fn cycle_svg(a: &Anomaly) -> String {
    let n = a.cycle.len();
    let (w, h, r) = (320.0_f64, 240.0_f64, 80.0_f64);
    let (cx, cy) = (w / 2.0, h / 2.0);
    let at = |i: usize| {
        let t = std::f64::consts::TAU * i as f64 / n as f64 - std::f64::consts::FRAC_PI_2;
        (cx + r * t.cos(), cy + r * t.sin())
    };
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg class=\"txn-graph\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\"><defs><marker id=\"arr-{k}\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#555\"/></marker></defs>",
        k = a.kind
    );
    let node_r = 17.0;
    for (i, step) in a.cycle.iter().enumerate() {
        let (x1, y1) = at(i);
        let (x2, y2) = at((i + 1) % n);
        let (dx, dy) = (x2 - x1, y2 - y1);
        let len = (dx * dx + dy * dy).sqrt().max(1.0);
        let (ux, uy) = (dx / len, dy / len);
        let (sx, sy) = (x1 + ux * node_r, y1 + uy * node_r);
        let (ex, ey) = (x2 - ux * node_r, y2 - uy * node_r);
        // Labels sit just outside the chord, away from the centre.
        let (mx, my) = ((sx + ex) / 2.0, (sy + ey) / 2.0);
        let (ox, oy) = (mx - cx, my - cy);
        let olen = (ox * ox + oy * oy).sqrt().max(1.0);
        let (lx, ly) = (mx + ox / olen * 14.0, my + oy / olen * 14.0);
        let _ = write!(
            svg,
            "<line x1=\"{sx:.1}\" y1=\"{sy:.1}\" x2=\"{ex:.1}\" y2=\"{ey:.1}\" stroke=\"#555\" stroke-width=\"1.5\" marker-end=\"url(#arr-{})\"/><text x=\"{lx:.1}\" y=\"{ly:.1}\" font-size=\"11\" text-anchor=\"middle\" dominant-baseline=\"middle\" fill=\"#333\">{}</text>",
            a.kind, step.edge
        );
    }
    for (i, step) in a.cycle.iter().enumerate() {
        let (x, y) = at(i);
        let _ = write!(
            svg,
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{node_r}\" fill=\"#eef\" stroke=\"#336\"/><text x=\"{x:.1}\" y=\"{y:.1}\" font-size=\"10\" text-anchor=\"middle\" dominant-baseline=\"middle\">T{}</text>",
            step.op
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use schism_checker::{AnomalyKind, CycleStep, EdgeKind, Validity};

    fn cycle_anomaly() -> Anomaly {
        let mut a = Anomaly::new(
            AnomalyKind::ALL
                .into_iter()
                .find(|k| k.as_str() == "G-single")
                .unwrap(),
            None,
            vec![3, 7],
            "G-single cycle T3 → T7 → T3: T3 read key 1 = [1] which did not include T7's append 2, so T3 precedes T7; T7 read key 0 = [4], which ends with T3's append 4, so T3 precedes T7.".into(),
        );
        a.cycle = vec![
            CycleStep {
                op: 3,
                edge: EdgeKind::Rw,
            },
            CycleStep {
                op: 7,
                edge: EdgeKind::Wr,
            },
        ];
        a
    }

    #[test]
    fn section_lists_models_and_draws_each_cycle_with_one_sentence_per_edge() {
        let mut figures = serde_json::Map::new();
        figures.insert("workload".into(), "list-append".into());
        figures.insert("consistency_model".into(), "strict-serializable".into());
        figures.insert("transactions".into(), 10.into());
        figures.insert("committed".into(), 9.into());
        figures.insert(
            "ruled_out".into(),
            serde_json::json!(["serializable", "strict-serializable"]),
        );
        let r = CheckResult {
            checker: "txn".into(),
            validity: Validity::Invalid,
            anomalies: vec![cycle_anomaly(), cycle_anomaly()],
            figures,
        };
        let html = txn_section(std::slice::from_ref(&r));
        assert!(html.contains("checked against <b>strict-serializable</b>"));
        assert!(html.contains("data-model=\"serializable\" data-ruled-out=\"true\""));
        assert!(html.contains("data-model=\"read-committed\" data-ruled-out=\"false\""));
        // After a budget cut, a model neither ruled out nor shown to hold says so.
        let mut cut = r.clone();
        cut.figures
            .insert("undecided".into(), serde_json::json!(["read-committed"]));
        cut.figures
            .insert("cycle_search_cut".into(), "the search stopped early".into());
        let html_cut = txn_section(std::slice::from_ref(&cut));
        assert!(
            html_cut.contains("<p id=\"txn-cut\" class=\"muted\">the search stopped early.</p>")
        );
        assert!(html_cut.contains(
            "data-model=\"read-committed\" data-ruled-out=\"undecided\"><td>read-committed</td><td class=\"unknown-t\">not decided"
        ));
        assert_eq!(
            html.matches("class=\"txn-cycle\"").count(),
            1,
            "one per kind"
        );
        assert_eq!(html.matches("<svg").count(), 1);
        assert!(
            html.contains("<b>T3 → T7 (rw)</b>: T3 read key 1 = [1] which did not include T7"),
            "{html}"
        );
        assert!(html.contains("<b>T7 → T3 (wr)</b>"));
        assert_eq!(txn_section(&[]), "");
    }

    #[test]
    fn an_explanation_that_does_not_split_is_shown_whole() {
        assert_eq!(edge_sentences("G0 cycle T1 → T1: a; b.", 1), None);
        assert_eq!(
            edge_sentences(
                "G-single cycle T1 → T2 → T1 — a fractured read: x: a; b.",
                2
            ),
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            edge_sentences("G0 cycle T1 → T2 → T1: a; b.", 2),
            Some(vec!["a".into(), "b".into()])
        );
    }
}
