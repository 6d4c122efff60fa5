//! The run report (`report.html`): verdict and settings, checkers, every listed anomaly
//! with its explanation, the ops involved and the ops around them, latency / throughput /
//! staleness plots with fault windows shaded, availability per fault window, and the
//! timeline (aggregated overall, detailed around anomalies and faults).

use schism_checker::{CheckResult, Validity};
use schism_history::History;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt::Write as _;

use crate::data::{FaultWindow, Out, Pairs, fault_windows, staleness, truncate};
use crate::html::{Esc, PALETTE, hex, legend, num, page, pct, validity_badge};
use crate::plot::{Band, Chart, Layer, Mark};
use crate::{select, timeline};

/// The checker side of a run: what `results.json` holds (unknown fields are ignored, so
/// newer runners' files still render).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResultsData {
    pub validity: Validity,
    #[serde(default)]
    pub results: Vec<CheckResult>,
    /// Run statistics as the runner computed them (shown as given).
    #[serde(default)]
    pub stats: serde_json::Value,
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// What a run was set up to do, in words and rows the runner made from its typed
/// `config.json` (this crate sees no configuration type, only what to show).
#[derive(Debug, Clone, Default)]
pub struct RunSettings {
    /// The target in its own words (`PostgreSQL, sync ANY 2, reads from standbys`).
    pub target: String,
    /// The settings people look for first, `(label, value)`, in the order shown.
    pub key: Vec<(String, String)>,
    /// Every setting, `(dotted key, value)`; empty when the run has no config.json.
    pub rows: Vec<(String, String)>,
}

/// Everything a run report is drawn from.
#[derive(Debug, Clone, Copy)]
pub struct RunInput<'a> {
    /// Page title, e.g. the test name and run folder.
    pub title: &'a str,
    /// The run's settings, as the runner read them from its typed `config.json`.
    pub settings: &'a RunSettings,
    pub results: &'a ResultsData,
    pub history: &'a History,
    /// Replication lag sampled during the run (`lag.jsonl`; empty when there is none).
    pub lag: &'a crate::lag::LagData,
}

/// Anomaly sections shown in full (with a detail window each).
const MAX_ANOMALY_WINDOWS: usize = 12;
const MAX_ANOMALIES_LISTED: usize = 60;
const MAX_FAULT_WINDOWS: usize = 8;

/// Renders the whole report page.
pub fn render_run(input: &RunInput<'_>) -> String {
    let h = input.history;
    let pairs = Pairs::build(h);
    let faults = fault_windows(h);
    let pos_of = PosIndex::new(h);
    let owned = schism_checker::counts::counts(&input.results.results);
    let mut body = String::with_capacity(1 << 20);
    header(&mut body, input, &owned, &pairs, faults.len());
    body.push_str(&key_settings(input.settings));
    checkers_table(&mut body, &input.results.results, &owned);
    body.push_str(&crate::figtable::figures_section(&input.results.results));
    body.push_str(&crate::txn::txn_section(&input.results.results));
    let view = View {
        h,
        pairs: &pairs,
        faults: &faults,
        pos_of: &pos_of,
    };
    let windows_html = anomalies_section(&mut body, &view, &input.results.results, &owned);
    plots_section(&mut body, &view, input);
    timeline_section(&mut body, &view, &windows_html);
    page(input.title, &body)
}

/// What the sections of one report share: the history, its pairing, its fault windows
/// and the op-index lookup, each built once per page.
struct View<'a> {
    h: &'a History,
    pairs: &'a Pairs,
    faults: &'a [FaultWindow],
    pos_of: &'a PosIndex,
}

impl View<'_> {
    /// The spans (paired ops) of the ops an anomaly names, in its order.
    fn spans_of(&self, ops: &[u64]) -> Vec<u32> {
        ops.iter()
            .filter_map(|&ix| self.pos_of.get(ix))
            .map(|p| self.pairs.span_of[p])
            .filter(|&s| s != u32::MAX)
            .collect()
    }
}

/// The title, the verdict with one count per anomaly kind, the op totals, the counting
/// rule, warnings, and why an undecided checker is undecided.
fn header(
    body: &mut String,
    input: &RunInput<'_>,
    owned: &[schism_checker::counts::KindCount],
    pairs: &Pairs,
    fault_windows: usize,
) {
    let h = input.history;
    let _ = write!(
        body,
        "<h1>{}</h1><p id=\"verdict\">{} ",
        Esc(input.title),
        validity_badge(input.results.validity)
    );
    for c in owned {
        let _ = write!(
            body,
            "<span class=\"pill count\" data-kind=\"{}\" data-count=\"{}\">{} {}</span>",
            c.kind, c.count, c.count, c.kind
        );
    }
    let ok = pairs.spans.iter().filter(|s| s.out == Out::Ok).count();
    let fail = pairs.spans.iter().filter(|s| s.out == Out::Fail).count();
    let info = pairs.spans.len() - ok - fail;
    let _ = write!(
        body,
        "</p><p class=\"muted\">{} client ops (ok {ok}, fail {fail}, info {info}) over {:.1} s; {} history lines; {} fault windows</p>",
        pairs.spans.len(),
        pairs.end_ns as f64 / 1e9,
        h.len(),
        fault_windows
    );
    if !owned.is_empty() {
        let proofs: Vec<String> = owned
            .iter()
            .map(|c| format!("{} by <b>{}</b>", c.kind, Esc(&c.checker)))
            .collect();
        let _ = write!(
            body,
            "<p class=\"note\" id=\"count-rule\">Each anomaly kind is counted once per run, by the one checker that proves it ({}); other checkers may notice the same reads but are not added. The same counts appear in the terminal summary, <code>results.json</code> (<code>counts</code>), JUnit and comparisons.</p>",
            proofs.join(", ")
        );
    }
    for w in &input.results.warnings {
        let _ = write!(body, "<p class=\"note\">warning: {}</p>", Esc(w));
    }
    // Why the verdict is undecided (a run cut short, nothing observed, a budget spent).
    for r in &input.results.results {
        if let (Validity::Unknown, Some(why)) = (
            r.validity,
            r.figures.get("unknown_reason").and_then(|v| v.as_str()),
        ) {
            let _ = write!(
                body,
                "<p class=\"note unknown-reason\">{} undecided: {}</p>",
                Esc(&r.checker),
                Esc(&truncate(why, 400))
            );
        }
    }
}

/// One row per checker: its verdict, the kinds it owns with their counts, and what its
/// verdict means.
fn checkers_table(
    body: &mut String,
    results: &[CheckResult],
    owned: &[schism_checker::counts::KindCount],
) {
    body.push_str(
        "<h2>Checkers</h2><table id=\"checkers\"><tr><th>checker</th><th>verdict</th><th>counts (owned kinds)</th><th>what its verdict means</th></tr>",
    );
    for r in results {
        let mine: Vec<String> = owned
            .iter()
            .filter(|c| c.checker == r.checker)
            .map(|c| format!("{} {}", c.count, c.kind))
            .collect();
        let _ = write!(
            body,
            "<tr><td>{}</td><td class=\"{}-t\">{}</td><td>{}</td><td class=\"note\">{}</td></tr>",
            Esc(&r.checker),
            r.validity.as_str(),
            r.validity.as_str(),
            Esc(&if mine.is_empty() {
                "–".to_owned()
            } else {
                mine.join(", ")
            }),
            Esc(schism_checker::counts::role(&r.checker))
        );
    }
    body.push_str("</table>");
}

/// The anomaly list: a representative few per kind, each with its ops and a link to its
/// timeline window. Returns the windows' HTML, which goes under the timeline.
fn anomalies_section(
    body: &mut String,
    v: &View<'_>,
    results: &[CheckResult],
    owned: &[schism_checker::counts::KindCount],
) -> String {
    let (h, pairs, faults) = (v.h, v.pairs, v.faults);
    // Anomalies: a representative few per kind.
    let stale_of: HashMap<u32, (u64, f64)> = staleness(h, pairs)
        .into_iter()
        .map(|x| (x.span, (x.versions, x.ms)))
        .collect();
    let (chosen, kept) = select::choose(results, faults, |a| {
        let spans = v.spans_of(&a.ops);
        let t_ns = a
            .ops
            .iter()
            .filter_map(|&ix| v.pos_of.get(ix))
            .map(|p| h.ops[p].time_ns)
            .min()
            .unwrap_or(u64::MAX);
        let severity = if a.kind == schism_checker::AnomalyKind::StaleRead {
            spans
                .iter()
                .filter_map(|s| stale_of.get(s).copied())
                .fold((0, 0.0), |m, x| if (x.0, x.1) > m { x } else { m })
        } else {
            (a.cycle.len().max(a.ops.len()) as u64, 0.0)
        };
        select::Measure { t_ns, severity }
    });
    let total: u64 = owned.iter().map(|c| c.count).sum();
    let per_kind: Vec<String> = owned
        .iter()
        .map(|c| format!("{} {}", c.count, c.kind))
        .collect();
    let _ = write!(
        body,
        "<h2 id=\"anomalies\">Anomalies</h2><p class=\"muted\" id=\"anomaly-rule\">{total} found in all{}. Listed: {} — for each kind the earliest, the worst (stale reads: most versions, then most ms behind; other kinds: the longest witness) and the earliest inside each fault window where that kind occurred, chosen from the {kept} the checkers kept (the first ones found plus a sample spread over the whole run).</p>",
        if per_kind.is_empty() {
            String::new()
        } else {
            format!(" ({})", per_kind.join(", "))
        },
        chosen.len()
    );
    if chosen.is_empty() {
        body.push_str("<p id=\"anomaly-list\">No anomaly found.</p>");
    } else {
        body.push_str("<div id=\"anomaly-list\">");
    }
    let mut windows_html = String::new();
    for (i, c) in chosen.iter().take(MAX_ANOMALIES_LISTED).enumerate() {
        let a = c.anomaly;
        let witnesses = v.spans_of(&a.ops);
        let near = nearby(h, pairs, &witnesses, 8);
        let how_bad = if c.kind == schism_checker::AnomalyKind::StaleRead && c.severity.0 > 0 {
            format!(
                " · {} versions, {} ms behind",
                c.severity.0,
                num(c.severity.1)
            )
        } else {
            String::new()
        };
        let _ = write!(
            body,
            "<div class=\"anomaly\" id=\"anomaly-{i}\" data-kind=\"{}\" data-t-ns=\"{}\" data-reasons=\"{}\"><h3>{}. {}{} <span class=\"muted\">at {:.3} s — {}{}</span></h3><p>{}</p><details{}><summary>ops involved (highlighted) and ops on the same key around them</summary>",
            c.kind,
            c.t_ns,
            Esc(&c.reasons.join("; ")),
            i + 1,
            Esc(c.kind.as_str()),
            a.key.map(|k| format!(" on key {k}")).unwrap_or_default(),
            c.t_ns as f64 / 1e9,
            Esc(&c.reasons.join("; ")),
            how_bad,
            Esc(&a.explanation),
            if i < 3 { " open" } else { "" }
        );
        body.push_str(&ops_table(h, pairs, &witnesses, &near));
        body.push_str("</details>");
        if i < MAX_ANOMALY_WINDOWS && !witnesses.is_empty() {
            let mut chosen = witnesses.clone();
            chosen.extend(around(pairs, &witnesses, 60));
            chosen.extend(near.iter().copied());
            let _ = write!(
                body,
                "<p class=\"note\"><a href=\"#win-anomaly-{i}\">timeline around this anomaly</a></p>"
            );
            let _ = write!(
                windows_html,
                "<h3 id=\"win-anomaly-{i}\">Around anomaly {}: {}</h3>",
                i + 1,
                Esc(a.kind.as_str())
            );
            windows_html.push_str(&timeline::detail(
                &format!("timeline-anomaly-{i}"),
                h,
                pairs,
                faults,
                &chosen,
                &witnesses,
            ));
        }
        body.push_str("</div>");
    }
    if !chosen.is_empty() {
        body.push_str("</div>");
    }
    windows_html
}

/// Latency, throughput, staleness and lag plots, availability per fault window, and
/// every setting of the run.
fn plots_section(body: &mut String, v: &View<'_>, input: &RunInput<'_>) {
    let (h, pairs, faults) = (v.h, v.pairs, v.faults);
    // Plots.
    body.push_str("<h2>Latency</h2>");
    body.push_str(&latency_plot(h, pairs, faults));
    body.push_str("<h2>Throughput</h2>");
    body.push_str(&throughput_plot(pairs, faults));
    body.push_str("<h2>Staleness</h2>");
    body.push_str(&staleness_plots(h, pairs, faults));
    body.push_str("<h2 id=\"lag\">Replication lag</h2>");
    body.push_str(&crate::lag::section(input.lag, faults, bands(faults)));
    body.push_str("<h2 id=\"faults\">Faults and availability</h2>");
    body.push_str(&availability_table(pairs, faults));

    body.push_str("<h2 id=\"settings-h\">Settings</h2><details><summary>every setting of the run (config.json)</summary>");
    body.push_str(&settings_table(&input.settings.rows));
    body.push_str("</details>");
}

/// The whole-run timeline, then the detail windows: around anomalies (`windows_html`)
/// and around the first fault windows.
fn timeline_section(body: &mut String, v: &View<'_>, windows_html: &str) {
    let (h, pairs, faults) = (v.h, v.pairs, v.faults);
    // Timeline.
    body.push_str("<h2 id=\"timeline\">Timeline</h2><p class=\"note\">Whole run: one lane per worker (a process that ended indeterminate is succeeded by a new one on the same lane); colour is the worst outcome in the cell (green ok, orange fail, purple indeterminate), depth the number of ops begun. Fault windows are shaded red. Detail windows below show every op as a bar (hover for the op); witness ops are outlined.</p>");
    body.push_str(&timeline::overview(h, pairs, faults));
    body.push_str(windows_html);
    for (i, w) in faults.iter().take(MAX_FAULT_WINDOWS).enumerate() {
        let _ = write!(
            body,
            "<h3 id=\"win-fault-{i}\">Around fault {}: {}</h3>",
            i + 1,
            Esc(&w.label)
        );
        let mut chosen = ops_near_time(pairs, w.start_ns, 40);
        if !w.open_ended {
            chosen.extend(ops_near_time(pairs, w.end_ns, 40));
        }
        body.push_str(&timeline::detail(
            &format!("timeline-fault-{i}"),
            h,
            pairs,
            faults,
            &chosen,
            &[],
        ));
    }
}

/// Maps `Op::index` to a position in `History::ops` (identity for runner histories).
struct PosIndex {
    identity: bool,
    map: HashMap<u64, usize>,
    len: usize,
}

impl PosIndex {
    fn new(h: &History) -> PosIndex {
        let identity = h.ops.iter().enumerate().all(|(i, o)| o.index() == i as u64);
        let map = if identity {
            HashMap::new()
        } else {
            h.ops
                .iter()
                .enumerate()
                .map(|(i, o)| (o.index(), i))
                .collect()
        };
        PosIndex {
            identity,
            map,
            len: h.ops.len(),
        }
    }

    fn get(&self, index: u64) -> Option<usize> {
        if self.identity {
            usize::try_from(index).ok().filter(|&i| i < self.len)
        } else {
            self.map.get(&index).copied()
        }
    }
}

/// Ops on the same keys as the witnesses, nearest in the history first (up to `n`).
fn nearby(h: &History, pairs: &Pairs, witnesses: &[u32], n: usize) -> Vec<u32> {
    let keys: Vec<u64> = witnesses
        .iter()
        .filter_map(|&w| h.ops[pairs.spans[w as usize].invoke as usize].key())
        .collect();
    let mut found: Vec<(usize, u32)> = Vec::new();
    for &w in witnesses {
        let at = w as usize;
        let lo = at.saturating_sub(3000);
        let hi = (at + 3000).min(pairs.spans.len());
        for id in lo..hi {
            let s = &pairs.spans[id];
            if witnesses.contains(&(id as u32)) {
                continue;
            }
            if h.ops[s.invoke as usize]
                .key()
                .is_some_and(|k| keys.contains(&k))
            {
                found.push((id.abs_diff(at), id as u32));
            }
        }
    }
    found.sort_unstable();
    let mut seen = std::collections::HashSet::new();
    found
        .into_iter()
        .map(|(_, id)| id)
        .filter(|id| seen.insert(*id))
        .take(n)
        .collect()
}

/// Spans within `n` of each witness in invoke order.
fn around(pairs: &Pairs, witnesses: &[u32], n: usize) -> Vec<u32> {
    let mut out = Vec::new();
    for &w in witnesses {
        let lo = (w as usize).saturating_sub(n);
        let hi = (w as usize + n).min(pairs.spans.len());
        out.extend((lo..hi).map(|i| i as u32));
    }
    out
}

fn ops_near_time(pairs: &Pairs, t: u64, n: usize) -> Vec<u32> {
    let at = pairs.spans.partition_point(|s| s.start_ns < t);
    let lo = at.saturating_sub(n);
    let hi = (at + n).min(pairs.spans.len());
    (lo..hi).map(|i| i as u32).collect()
}

fn ops_table(h: &History, pairs: &Pairs, witnesses: &[u32], near: &[u32]) -> String {
    let mut rows: Vec<(u32, bool)> = witnesses.iter().map(|&w| (w, true)).collect();
    rows.extend(near.iter().map(|&n| (n, false)));
    rows.sort_unstable_by_key(|&(id, _)| pairs.spans[id as usize].start_ns);
    let mut s = String::from(
        "<table class=\"ops\"><tr><th>op</th><th class=\"num\">invoked (s)</th><th class=\"num\">completed (s)</th><th>process</th><th>f</th><th>key</th><th>value</th><th>outcome</th><th>result</th><th>node</th><th>error</th></tr>",
    );
    for (id, witness) in rows {
        let sp = &pairs.spans[id as usize];
        let inv = &h.ops[sp.invoke as usize];
        let done = sp.complete.map(|c| &h.ops[c as usize]);
        let _ = write!(
            s,
            "<tr{}><td class=\"mono\">{}{}</td><td class=\"num\">{:.6}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"mono\">{}</td><td>{}</td><td class=\"mono\">{}</td><td>{}</td><td>{}</td></tr>",
            if witness { " class=\"witness\"" } else { "" },
            inv.index(),
            done.map(|d| format!("→{}", d.index())).unwrap_or_default(),
            inv.time_ns as f64 / 1e9,
            done.map(|d| format!("{:.6}", d.time_ns as f64 / 1e9))
                .unwrap_or_else(|| "–".into()),
            Esc(&inv.process.to_string()),
            Esc(inv.f.as_str()),
            inv.key().map(|k| k.to_string()).unwrap_or_default(),
            Esc(&truncate(&inv.value.to_string(), 120)),
            sp.out.as_str(),
            Esc(&done
                .map(|d| truncate(&d.value.to_string(), 200))
                .unwrap_or_default()),
            Esc(done.and_then(|d| d.node()).unwrap_or("")),
            Esc(&done
                .and_then(|d| d.error())
                .map(|e| truncate(e, 200))
                .unwrap_or_default()),
        );
    }
    s.push_str("</table>");
    s
}

/// One line with the settings people look for first: the target in its own words, then
/// the workload, faults and run parameters.
fn key_settings(settings: &RunSettings) -> String {
    let mut parts = vec![format!(
        "<span class=\"pill\">target <b>{}</b></span>",
        Esc(&settings.target)
    )];
    for (label, v) in &settings.key {
        parts.push(format!(
            "<span class=\"pill\">{} <b>{}</b></span>",
            Esc(label),
            Esc(&truncate(v, 80))
        ));
    }
    format!("<p id=\"key-settings\">{}</p>", parts.join(""))
}

/// Every setting as a `key | value` table.
fn settings_table(rows: &[(String, String)]) -> String {
    if rows.is_empty() {
        return "<p class=\"note\">no config.json</p>".into();
    }
    let mut s = String::from("<table id=\"settings\"><tr><th>setting</th><th>value</th></tr>");
    for (k, v) in rows {
        let _ = write!(
            s,
            "<tr><td class=\"mono\">{}</td><td class=\"mono\">{}</td></tr>",
            Esc(k),
            Esc(&truncate(v, 300))
        );
    }
    s.push_str("</table>");
    s
}

fn bands(faults: &[FaultWindow]) -> Vec<Band> {
    faults
        .iter()
        .map(|w| Band {
            x0: w.start_ns as f64 / 1e9,
            x1: w.end_ns as f64 / 1e9,
            label: w.label.clone(),
            instant: false,
        })
        .collect()
}

fn latency_plot(h: &History, pairs: &Pairs, faults: &[FaultWindow]) -> String {
    let _ = h;
    let mut layers = Vec::new();
    let mut leg = Vec::new();
    for (fi, fname) in pairs.fs.iter().enumerate() {
        let color = PALETTE[fi % PALETTE.len()];
        for (out, mark) in [
            (Out::Ok, Mark::Dot),
            (Out::Fail, Mark::Square),
            (Out::Info, Mark::Ring),
        ] {
            let points: Vec<(f64, f64)> = pairs
                .spans
                .iter()
                .filter(|s| s.f as usize == fi && s.out == out)
                .filter_map(|s| {
                    pairs
                        .latency_ns(s)
                        .map(|l| (s.start_ns as f64 / 1e9, (l as f64 / 1e6).max(1e-3)))
                })
                .collect();
            if points.is_empty() {
                continue;
            }
            let sym = match mark {
                Mark::Dot => "●",
                Mark::Square => "■",
                Mark::Ring | Mark::Big => "◉",
            };
            leg.push((
                hex(color),
                format!("{fname} {} {sym} ({})", out.as_str(), points.len()),
            ));
            layers.push(Layer::Points {
                color,
                mark,
                points,
            });
        }
    }
    if layers.is_empty() {
        return "<p class=\"note\">no completed client operations</p>".into();
    }
    let mut c = Chart::new("plot-latency", "time (s)", "latency (ms, log)");
    c.log_y = true;
    c.bands = bands(faults);
    c.fit(&layers, Some(0.0), None);
    let mut s = c.render(&layers);
    s.push_str(&legend(&leg));
    s.push_str("<p class=\"note\">Each op is a point at its invoke time (crowded pixel columns keep min, max and quantiles). Shaded: fault windows.</p>");
    s
}

fn throughput_plot(pairs: &Pairs, faults: &[FaultWindow]) -> String {
    let dur = pairs.end_ns as f64 / 1e9;
    if pairs.spans.is_empty() || dur <= 0.0 {
        return "<p class=\"note\">no client operations</p>".into();
    }
    let buckets = ((dur / 0.5).ceil() as usize).clamp(10, 240);
    let width = dur / buckets as f64;
    let mut counts = vec![[0u64; 3]; buckets];
    for s in &pairs.spans {
        let t = s.end_ns.unwrap_or(s.start_ns) as f64 / 1e9;
        let b = ((t / width) as usize).min(buckets - 1);
        counts[b][match s.out {
            Out::Ok => 0,
            Out::Fail => 1,
            Out::Info => 2,
        }] += 1;
    }
    let mut layers = Vec::new();
    let mut leg = Vec::new();
    for (i, (name, color)) in [
        ("ok", (67, 160, 71)),
        ("fail", (251, 140, 0)),
        ("info", (142, 36, 170)),
    ]
    .into_iter()
    .enumerate()
    {
        if counts.iter().all(|c| c[i] == 0) {
            continue;
        }
        let points = counts
            .iter()
            .enumerate()
            .flat_map(|(b, c)| {
                let y = c[i] as f64 / width;
                [(b as f64 * width, y), ((b + 1) as f64 * width, y)]
            })
            .collect();
        leg.push((hex(color), format!("{name} / s")));
        layers.push(Layer::Line {
            color,
            points,
            dashed: false,
        });
    }
    let mut c = Chart::new("plot-throughput", "time (s)", "completions / s");
    c.height = 260;
    c.bands = bands(faults);
    c.fit(&layers, Some(0.0), Some(0.0));
    let mut s = c.render(&layers);
    s.push_str(&legend(&leg));
    let _ = write!(
        s,
        "<p class=\"note\">Completions per {:.2} s bucket, by outcome.</p>",
        width
    );
    s
}

fn staleness_plots(h: &History, pairs: &Pairs, faults: &[FaultWindow]) -> String {
    let stale = staleness(h, pairs);
    let lagging: Vec<_> = stale.iter().filter(|s| s.versions > 0).collect();
    if stale.is_empty() {
        return "<p class=\"note\">no read followed an acknowledged write on its key</p>".into();
    }
    let worst_ms = lagging.iter().map(|s| s.ms).fold(0.0, f64::max);
    let worst_v = lagging.iter().map(|s| s.versions).max().unwrap_or(0);
    let mut s = format!(
        "<p>{} of {} ok reads missed an acknowledged write ({}); worst: {} ms, {} versions behind.</p>",
        lagging.len(),
        stale.len(),
        pct(Some(lagging.len() as f64 / stale.len() as f64)),
        num(worst_ms),
        worst_v
    );
    if lagging.is_empty() {
        return s;
    }
    let ms_layer = vec![Layer::Points {
        color: (214, 39, 40),
        mark: Mark::Dot,
        points: lagging
            .iter()
            .map(|x| (x.t_ns as f64 / 1e9, x.ms.max(1e-3)))
            .collect(),
    }];
    let mut c = Chart::new("plot-staleness-ms", "time (s)", "ms behind (log)");
    c.height = 260;
    c.log_y = true;
    c.bands = bands(faults);
    c.fit(&ms_layer, Some(0.0), None);
    s.push_str(&c.render(&ms_layer));
    let v_layer = vec![Layer::Points {
        color: (148, 103, 189),
        mark: Mark::Dot,
        points: lagging
            .iter()
            .map(|x| (x.t_ns as f64 / 1e9, x.versions as f64))
            .collect(),
    }];
    let mut c = Chart::new("plot-staleness-versions", "time (s)", "versions behind");
    c.height = 220;
    c.bands = bands(faults);
    c.fit(&v_layer, Some(0.0), Some(0.0));
    s.push_str(&c.render(&v_layer));
    s.push_str("<p class=\"note\">Each stale read at its invoke time: how long before it began the oldest write it missed had been acknowledged, and how many acknowledged writes it missed.</p>");
    s
}

fn availability_table(pairs: &Pairs, faults: &[FaultWindow]) -> String {
    if faults.is_empty() {
        return "<p class=\"note\">No faults were in effect in this run (the history records no nemesis state with a fault).</p>".into();
    }
    let mut s = String::from(
        "<p class=\"note\">One row per fault: it begins at the nemesis <code>info</code> whose recorded state first holds it and ends at the first later state without it (a heal, or the next fault replacing it). Ops are counted by invoke time.</p><table id=\"availability\"><tr><th>fault</th><th class=\"num\">from (s)</th><th class=\"num\">to (s)</th><th class=\"num\">lasted (s)</th><th class=\"num\">ops invoked</th><th class=\"num\">ok</th><th class=\"num\">fail</th><th class=\"num\">info</th><th class=\"num\">availability</th></tr>",
    );
    let slot = |o: Out| match o {
        Out::Ok => 0,
        Out::Fail => 1,
        Out::Info => 2,
    };
    let row = |s: &mut String, kind: &str, label: &str, cols: [String; 3], c: [u64; 3]| {
        let n = c[0] + c[1] + c[2];
        let _ = write!(
            s,
            "<tr class=\"fault-row\" data-kind=\"{}\"><td class=\"fault-label\">{}</td><td class=\"num\">{}</td><td class=\"num fault-end\">{}</td><td class=\"num\">{}</td><td class=\"num\">{n}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            Esc(kind),
            Esc(label),
            cols[0],
            cols[1],
            cols[2],
            c[0],
            c[1],
            c[2],
            pct((n > 0).then(|| c[0] as f64 / n as f64))
        );
    };
    let count = |lo: u64, hi: u64| {
        let mut c = [0u64; 3];
        let from = pairs.spans.partition_point(|s| s.start_ns < lo);
        for sp in &pairs.spans[from..] {
            if sp.start_ns > hi {
                break;
            }
            c[slot(sp.out)] += 1;
        }
        c
    };
    let mut outside = [0u64; 3];
    for sp in &pairs.spans {
        if !faults.iter().any(|w| w.contains(sp.start_ns)) {
            outside[slot(sp.out)] += 1;
        }
    }
    for w in faults.iter().take(200) {
        let end = if w.open_ended {
            format!("{:.3} (never healed)", w.end_ns as f64 / 1e9)
        } else {
            format!("{:.3}", w.end_ns as f64 / 1e9)
        };
        let cols = [
            format!("{:.3}", w.start_ns as f64 / 1e9),
            end,
            format!("{:.3}", w.end_ns.saturating_sub(w.start_ns) as f64 / 1e9),
        ];
        row(
            &mut s,
            w.kind.as_str(),
            &w.label,
            cols,
            count(w.start_ns, w.end_ns),
        );
    }
    let _ = write!(
        s,
        "<tr><td>outside every fault window</td><td class=\"num\">–</td><td class=\"num\">–</td><td class=\"num\">–</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
        outside.iter().sum::<u64>(),
        outside[0],
        outside[1],
        outside[2],
        pct({
            let n: u64 = outside.iter().sum();
            (n > 0).then(|| outside[0] as f64 / n as f64)
        })
    );
    s.push_str("</table>");
    if faults.len() > 200 {
        let _ = write!(
            s,
            "<p class=\"note\">{} more not listed</p>",
            faults.len() - 200
        );
    }
    s
}
