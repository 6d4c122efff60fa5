//! Checker figures as a reader wants them: numbers as a key/value table, a flat map of
//! numbers (a histogram) as horizontal bars, a map of maps (per-`f` latency) as a table
//! with one row per entry, a list of records (the worst reads) as a table of its first
//! rows. Never JSON text; long lists are cut with a note saying how many were left out.

use schism_checker::CheckResult;
use serde_json::Value;
use std::fmt::Write as _;

use crate::data::truncate;
use crate::html::{Esc, num};

/// Rows of a list shown at most.
const MAX_ROWS: usize = 12;

/// One `<details>` per checker with its figures.
pub(crate) fn figures_section(results: &[CheckResult]) -> String {
    let mut s = String::from("<h3>Figures</h3>");
    for r in results {
        if r.figures.is_empty() {
            continue;
        }
        let _ = write!(
            s,
            "<details class=\"figures\" data-checker=\"{0}\"><summary>{0}</summary>",
            Esc(&r.checker)
        );
        let mut scalars = Vec::new();
        let mut blocks = String::new();
        for (k, v) in &r.figures {
            match v {
                Value::Object(_) | Value::Array(_) => {
                    let _ = write!(blocks, "<h4>{}</h4>{}", Esc(k), structured(v));
                }
                other => scalars.push((k.as_str(), scalar(other))),
            }
        }
        if !scalars.is_empty() {
            s.push_str("<table class=\"kv\">");
            for (k, v) in scalars {
                let _ = write!(
                    s,
                    "<tr><td class=\"mono\">{}</td><td class=\"num\">{}</td></tr>",
                    Esc(k),
                    Esc(&v)
                );
            }
            s.push_str("</table>");
        }
        s.push_str(&blocks);
        s.push_str("</details>");
    }
    s
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "–".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match n.as_f64() {
            Some(x) if n.is_f64() => num(x),
            _ => n.to_string(),
        },
        Value::String(s) => truncate(s, 200),
        Value::Array(a) => format!("{} items", a.len()),
        Value::Object(m) => format!("{} fields", m.len()),
    }
}

fn structured(v: &Value) -> String {
    match v {
        Value::Object(m) if m.values().all(Value::is_number) => bars(
            &m.iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<Vec<_>>(),
        ),
        Value::Object(m) if m.values().all(Value::is_object) => {
            let rows: Vec<(String, &serde_json::Map<String, Value>)> = m
                .iter()
                .filter_map(|(k, v)| v.as_object().map(|o| (k.clone(), o)))
                .collect();
            records(&rows, "")
        }
        Value::Object(m) => {
            let mut s = String::from("<table class=\"kv\">");
            for (k, v) in m.iter().take(MAX_ROWS) {
                let _ = write!(
                    s,
                    "<tr><td class=\"mono\">{}</td><td>{}</td></tr>",
                    Esc(k),
                    Esc(&scalar(v))
                );
            }
            s.push_str("</table>");
            s
        }
        // A histogram: records of one label and one count.
        Value::Array(a) if !a.is_empty() && a.iter().all(is_bucket) => {
            let m: Vec<(String, Value)> = a
                .iter()
                .filter_map(|v| {
                    let o = v.as_object()?;
                    let label = o.values().find_map(Value::as_str)?;
                    let n = o.values().find(|x| x.is_number())?;
                    Some((label.to_owned(), n.clone()))
                })
                .collect();
            bars(&m)
        }
        Value::Array(a) if !a.is_empty() && a.iter().all(Value::is_object) => {
            let rows: Vec<(String, &serde_json::Map<String, Value>)> = a
                .iter()
                .enumerate()
                .filter_map(|(i, v)| v.as_object().map(|o| ((i + 1).to_string(), o)))
                .collect();
            records(&rows, "#")
        }
        Value::Array(a) => {
            let shown: Vec<String> = a.iter().take(MAX_ROWS).map(scalar).collect();
            let more = a.len().saturating_sub(MAX_ROWS);
            format!(
                "<p class=\"mono\">{}{}</p>",
                Esc(&shown.join(", ")),
                if more > 0 {
                    format!(" … and {more} more")
                } else {
                    String::new()
                }
            )
        }
        other => format!("<p>{}</p>", Esc(&scalar(other))),
    }
}

/// `{"bucket": "1-10ms", "reads": 272}`: one label, one count.
fn is_bucket(v: &Value) -> bool {
    v.as_object().is_some_and(|o| {
        o.len() == 2
            && o.values().filter(|x| x.is_string()).count() == 1
            && o.values().filter(|x| x.is_number()).count() == 1
    })
}

/// A histogram: one bar per bucket, scaled to the largest (in the given order).
fn bars(m: &[(String, Value)]) -> String {
    let max = m
        .iter()
        .filter_map(|(_, v)| v.as_f64())
        .fold(0.0f64, f64::max)
        .max(f64::MIN_POSITIVE);
    let mut s = String::from("<table class=\"bars\">");
    for (k, v) in m {
        let x = v.as_f64().unwrap_or(0.0);
        let _ = write!(
            s,
            "<tr><td class=\"mono\">{}</td><td class=\"num\">{}</td><td style=\"width:320px\"><div style=\"background:#5c6bc0;height:10px;width:{:.1}%\"></div></td></tr>",
            Esc(k),
            Esc(&scalar(v)),
            100.0 * x / max
        );
    }
    s.push_str("</table>");
    s
}

/// A table of records: one row each, columns the union of their scalar fields.
fn records(rows: &[(String, &serde_json::Map<String, Value>)], first: &str) -> String {
    let mut cols: Vec<&str> = Vec::new();
    for (_, o) in rows {
        for (k, v) in o.iter() {
            if !v.is_object() && !cols.contains(&k.as_str()) {
                cols.push(k);
            }
        }
    }
    let mut s = format!("<table class=\"records\"><tr><th>{}</th>", Esc(first));
    for c in &cols {
        let _ = write!(s, "<th>{}</th>", Esc(c));
    }
    s.push_str("</tr>");
    for (name, o) in rows.iter().take(MAX_ROWS) {
        let _ = write!(s, "<tr><td class=\"mono\">{}</td>", Esc(name));
        for c in &cols {
            let _ = write!(
                s,
                "<td class=\"num\">{}</td>",
                Esc(&o.get(*c).map(scalar).unwrap_or_else(|| "–".into()))
            );
        }
        s.push_str("</tr>");
    }
    s.push_str("</table>");
    if rows.len() > MAX_ROWS {
        let _ = write!(
            s,
            "<p class=\"note\">{} more not shown</p>",
            rows.len() - MAX_ROWS
        );
    }
    s
}
