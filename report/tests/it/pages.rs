//! Run, index and comparison pages: content present, markup from data escaped, size
//! bounded for big histories.

use schism_report::{
    ComparisonInput, IndexEntry, RunInput, RunSettings, SettingInput, render_comparison,
    render_index, render_run, run_figures, summarize_setting, synth,
};
use std::time::Instant;

fn render(n: usize) -> String {
    let (history, results) = synth::history(n, 7);
    let settings = RunSettings {
        target: "reference leader-follower".into(),
        key: vec![("seed".into(), "7".into())],
        rows: vec![
            ("test.name".into(), "<script>alert('cfg')</script>".into()),
            ("test.reads".into(), "any".into()),
            ("seed".into(), "7".into()),
        ],
    };
    render_run(&RunInput {
        title: "synthetic",
        settings: &settings,
        results: &results,
        history: &history,
        lag: &schism_report::LagData::default(),
    })
}

#[test]
fn script_in_data_is_shown_as_text() {
    let html = render(5_000);
    // The only `<script` the page may contain is none at all: every one came from data.
    assert!(
        !html.to_lowercase().contains("<script"),
        "unescaped script tag"
    );
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "explanation escaped"
    );
    assert!(
        html.contains("&lt;script&gt;alert(&#39;timeout&#39;)&lt;/script&gt;"),
        "error escaped"
    );
    assert!(
        html.contains("&lt;script&gt;alert(&#39;cfg&#39;)&lt;/script&gt;"),
        "config escaped"
    );
    for needle in [
        "id=\"verdict\"",
        "INVALID",
        "id=\"anomaly-list\"",
        "plot-latency",
        "plot-throughput",
        "plot-staleness-ms",
        "timeline-overview",
        "timeline-anomaly-0",
        "timeline-fault-0",
        "id=\"availability\"",
        "partition",
    ] {
        assert!(html.contains(needle), "missing {needle}");
    }
}

#[test]
fn a_big_history_stays_bounded() {
    // The 1M-op figure is in BENCHMARKS.md (release build); here 200k ops in a debug
    // build, with the same bound.
    let t = Instant::now();
    let html = render(200_000);
    eprintln!("200k ops: {} bytes in {:?}", html.len(), t.elapsed());
    assert!(html.len() < 5_000_000, "{} bytes", html.len());
}

#[test]
fn index_and_comparison_render() {
    let idx = render_index(
        "results",
        &[IndexEntry {
            name: "a<b".into(),
            date: "2026-01-01".into(),
            target: "reference".into(),
            verdict: "invalid".into(),
            anomalies: [("stale-read".to_owned(), 3)].into(),
            link: "./a/1/report.html".into(),
            comparison: false,
        }],
    );
    assert!(idx.contains("a&lt;b") && idx.contains("3 stale-read"));

    let (h, r) = synth::history(3_000, 3);
    let (fig, samples) = run_figures(&h, Some(r.validity), &r.results, &Default::default());
    assert!(fig.write_latency_ms_p50.is_some() && fig.ok_reads > 0);
    assert!(fig.availability_during_faults.is_some());
    let s = summarize_setting(SettingInput {
        label: "reads=any".into(),
        settings: [("reads".to_owned(), "any".to_owned())].into(),
        runs: vec![schism_report::RunRef {
            seed: 3,
            link: "./x/report.html".into(),
            exit_code: 1,
            figures: fig,
        }],
        samples: vec![samples],
    });
    let page = render_comparison(&ComparisonInput {
        name: "cmp".into(),
        date: "now".into(),
        varied: vec!["reads".into()],
        seeds: vec![3],
        base_args: vec![],
        settings: vec![s],
    });
    for needle in [
        "plot-cdf-write",
        "plot-cdf-read",
        "plot-anomalies-vs-latency",
        "id=\"summary\"",
        "reads=any",
    ] {
        assert!(page.contains(needle), "missing {needle}");
    }
}
