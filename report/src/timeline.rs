//! The timeline of operations per process, bounded for million-op histories.
//!
//! Overall, processes are packed into lanes (a retired process's successor reuses its
//! lane, so lanes ≈ workers) and time into columns; each cell is coloured by what
//! happened in it (ok, some fail, some indeterminate) and shaded by how many ops began in
//! it, and runs of equal cells are merged. Full detail — one bar per op with a tooltip
//! naming it — is drawn only in bounded windows around anomalies and fault changes.

use schism_history::History;
use std::collections::HashMap;
use std::fmt::Write as _;

use crate::data::{FaultWindow, Out, Pairs, Span, truncate};
use crate::html::Esc;

const WIDTH: f64 = 1100.0;
const LEFT: f64 = 70.0;
const COLUMNS: usize = 320;
const MAX_LANES: usize = 48;
/// Ops drawn in one detail window.
pub(crate) const MAX_DETAIL_OPS: usize = 300;

fn color(out: Out) -> &'static str {
    match out {
        Out::Ok => "#43a047",
        Out::Fail => "#fb8c00",
        Out::Info => "#8e24aa",
    }
}

/// Assigns each span a lane: a process keeps one lane; a new process takes the first
/// lane free since before its first op.
fn lanes(spans: &[&Span], h: &History) -> (Vec<usize>, Vec<String>) {
    let mut proc_lane: HashMap<schism_history::Process, usize> = HashMap::new();
    let mut lane_end: Vec<u64> = Vec::new();
    let mut lane_names: Vec<String> = Vec::new();
    let mut out = Vec::with_capacity(spans.len());
    for s in spans {
        let p = h.ops[s.invoke as usize].process;
        let end = s.end_ns.unwrap_or(u64::MAX);
        let lane = match proc_lane.get(&p) {
            Some(&l) => l,
            None => {
                let l = match lane_end.iter().position(|&e| e < s.start_ns) {
                    Some(l) => l,
                    None => {
                        lane_end.push(0);
                        lane_names.push(String::new());
                        lane_end.len() - 1
                    }
                };
                if lane_names[l].is_empty() {
                    lane_names[l] = format!("p{p}");
                } else if !lane_names[l].ends_with('…') {
                    lane_names[l].push('…');
                }
                proc_lane.insert(p, l);
                l
            }
        };
        lane_end[lane] = lane_end[lane].max(end);
        out.push(lane);
    }
    (out, lane_names)
}

fn bands_svg(out: &mut String, faults: &[FaultWindow], t0: u64, t1: u64, top: f64, h: f64) {
    let span = (t1.saturating_sub(t0)).max(1) as f64;
    let x = |t: u64| LEFT + (WIDTH - LEFT - 10.0) * (t.clamp(t0, t1) - t0) as f64 / span;
    for w in faults {
        if w.end_ns < t0 || w.start_ns > t1 {
            continue;
        }
        let (a, b) = (x(w.start_ns), x(w.end_ns));
        if b - a < 1.5 {
            let _ = write!(
                out,
                "<line x1=\"{a:.1}\" y1=\"{top}\" x2=\"{a:.1}\" y2=\"{:.1}\" stroke=\"#9c27b0\" stroke-dasharray=\"3 3\"><title>{}</title></line>",
                top + h,
                Esc(&w.label)
            );
        } else {
            let _ = write!(
                out,
                "<rect x=\"{a:.1}\" y=\"{top}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"#e53935\" fill-opacity=\"0.12\"><title>{}</title></rect>",
                b - a,
                Esc(&w.label)
            );
        }
    }
}

fn time_axis(out: &mut String, t0: u64, t1: u64, y: f64) {
    let span = (t1.saturating_sub(t0)).max(1) as f64;
    for i in 0..=10 {
        let t = t0 as f64 + span * f64::from(i) / 10.0;
        let x = LEFT + (WIDTH - LEFT - 10.0) * f64::from(i) / 10.0;
        let _ = write!(
            out,
            "<text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\" fill=\"#5b6475\">{:.3}s</text>",
            y + 12.0,
            t / 1e9
        );
    }
}

/// The whole run, aggregated.
pub(crate) fn overview(h: &History, pairs: &Pairs, faults: &[FaultWindow]) -> String {
    if pairs.spans.is_empty() {
        return "<p class=\"note\">no client operations</p>".into();
    }
    let spans: Vec<&Span> = pairs.spans.iter().collect();
    let (lane_of, names) = lanes(&spans, h);
    let rows = names.len().min(MAX_LANES);
    let group = names.len().div_ceil(rows);
    let t0 = 0u64;
    let t1 = pairs.end_ns.max(1);
    // counts[row][col] = (ops, fail, info)
    let mut cells = vec![[0u32; 3]; rows * COLUMNS];
    for (s, &lane) in spans.iter().zip(&lane_of) {
        let row = lane / group;
        let col = ((s.start_ns as f64 / t1 as f64) * COLUMNS as f64) as usize;
        let c = &mut cells[row * COLUMNS + col.min(COLUMNS - 1)];
        c[0] += 1;
        match s.out {
            Out::Fail => c[1] += 1,
            Out::Info => c[2] += 1,
            Out::Ok => {}
        }
    }
    let max = cells.iter().map(|c| c[0]).max().unwrap_or(1).max(1);
    let row_h = 9.0;
    let height = rows as f64 * row_h + 30.0;
    let cw = (WIDTH - LEFT - 10.0) / COLUMNS as f64;
    let mut out = format!(
        "<div class=\"plot\" id=\"timeline-overview\"><svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {height}\" width=\"{WIDTH}\" height=\"{height}\" role=\"img\">"
    );
    for r in 0..rows {
        let y = 4.0 + r as f64 * row_h;
        let label = if group == 1 {
            names[r].clone()
        } else {
            format!(
                "lanes {}-{}",
                r * group + 1,
                ((r + 1) * group).min(names.len())
            )
        };
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"8\" text-anchor=\"end\" fill=\"#5b6475\">{}</text>",
            LEFT - 4.0,
            y + 7.0,
            Esc(&truncate(&label, 14))
        );
        // Merge runs of equal cells.
        let mut c = 0;
        while c < COLUMNS {
            let class = cell_class(cells[r * COLUMNS + c], max);
            let mut e = c + 1;
            while e < COLUMNS && cell_class(cells[r * COLUMNS + e], max) == class {
                e += 1;
            }
            if let Some((fill, op)) = class {
                let _ = write!(
                    out,
                    "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{fill}\" fill-opacity=\"{op}\"/>",
                    LEFT + c as f64 * cw,
                    (e - c) as f64 * cw,
                    row_h - 1.0
                );
            }
            c = e;
        }
    }
    bands_svg(&mut out, faults, t0, t1, 2.0, rows as f64 * row_h + 4.0);
    time_axis(&mut out, t0, t1, rows as f64 * row_h + 6.0);
    out.push_str("</svg></div>");
    out
}

fn cell_class(c: [u32; 3], max: u32) -> Option<(&'static str, &'static str)> {
    if c[0] == 0 {
        return None;
    }
    let fill = if c[2] > 0 {
        color(Out::Info)
    } else if c[1] > 0 {
        color(Out::Fail)
    } else {
        color(Out::Ok)
    };
    let level = (c[0] as f64 / max as f64 * 4.0).ceil() as u32;
    let op = match level {
        0 | 1 => "0.35",
        2 => "0.55",
        3 => "0.75",
        _ => "0.95",
    };
    Some((fill, op))
}

/// One op in full: what a tooltip and a table row say about it.
pub(crate) fn describe(h: &History, s: &Span) -> String {
    let inv = &h.ops[s.invoke as usize];
    let mut t = format!(
        "#{} p{} {}{} {}",
        inv.index(),
        inv.process,
        inv.f,
        inv.key().map(|k| format!(" key {k}")).unwrap_or_default(),
        truncate(&inv.value.to_string(), 60)
    );
    match s.complete {
        Some(c) => {
            let done = &h.ops[c as usize];
            let _ = write!(
                t,
                " → {} #{} {} ({:.3} ms)",
                s.out.as_str(),
                done.index(),
                truncate(&done.value.to_string(), 60),
                (done.time_ns.saturating_sub(inv.time_ns)) as f64 / 1e6
            );
            if let Some(n) = &done.node() {
                let _ = write!(t, " on {}", truncate(n, 30));
            }
            if let Some(e) = &done.error() {
                let _ = write!(t, " error: {}", truncate(e, 80));
            }
        }
        None => t.push_str(" → never completed"),
    }
    t
}

/// A detail window: every chosen op as a bar on its process's lane, witnesses outlined.
pub(crate) fn detail(
    id: &str,
    h: &History,
    pairs: &Pairs,
    faults: &[FaultWindow],
    chosen: &[u32],
    witnesses: &[u32],
) -> String {
    let mut ids: Vec<u32> = chosen.to_vec();
    ids.sort_unstable();
    ids.dedup();
    ids.truncate(MAX_DETAIL_OPS);
    if ids.is_empty() {
        return String::new();
    }
    let spans: Vec<&Span> = ids.iter().map(|&i| &pairs.spans[i as usize]).collect();
    let t0 = spans.iter().map(|s| s.start_ns).min().unwrap_or(0);
    let t1 = spans
        .iter()
        .map(|s| s.end_ns.unwrap_or(s.start_ns))
        .max()
        .unwrap_or(t0)
        .max(t0 + 1);
    let (lane_of, names) = lanes(&spans, h);
    let rows = names.len();
    let row_h = 12.0;
    let height = rows as f64 * row_h + 30.0;
    let span = (t1 - t0) as f64;
    let x = |t: u64| LEFT + (WIDTH - LEFT - 10.0) * (t.clamp(t0, t1) - t0) as f64 / span;
    let mut out = format!(
        "<div class=\"plot\" id=\"{}\"><svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {height}\" width=\"{WIDTH}\" height=\"{height}\" role=\"img\">",
        Esc(id)
    );
    bands_svg(&mut out, faults, t0, t1, 2.0, rows as f64 * row_h + 4.0);
    for (r, name) in names.iter().enumerate() {
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"9\" text-anchor=\"end\" fill=\"#5b6475\">{}</text>",
            LEFT - 4.0,
            4.0 + r as f64 * row_h + 9.0,
            Esc(&truncate(name, 14))
        );
    }
    for ((s, &lane), &sid) in spans.iter().zip(&lane_of).zip(&ids) {
        let a = x(s.start_ns);
        let b = x(s.end_ns.unwrap_or(t1)).max(a + 2.0);
        let y = 4.0 + lane as f64 * row_h;
        let w = witnesses.contains(&sid);
        let _ = write!(
            out,
            "<rect x=\"{a:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\" fill-opacity=\"0.8\"{}><title>{}</title></rect>",
            b - a,
            row_h - 2.0,
            color(s.out),
            if w {
                " stroke=\"#000\" stroke-width=\"2\""
            } else {
                ""
            },
            Esc(&describe(h, s))
        );
    }
    time_axis(&mut out, t0, t1, rows as f64 * row_h + 6.0);
    out.push_str("</svg></div>");
    out
}
