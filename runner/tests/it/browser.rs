//! The pages in a real browser: a short `schism test` and a short `schism compare`, then
//! headless Chromium opens `report.html` and `comparison.html`: no console errors, the
//! verdict, the anomaly list and the plots present; screenshots land in
//! `target/artifacts/`. A `<script>` recorded in a history is shown as text, not run.
//!
//! Chromium comes from Debian's `chromium` package (`.ci/run` installs it). Without it the
//! test fails under CI and skips with a notice elsewhere.

use crate::*;
use std::process::Stdio;

fn chromium() -> Option<PathBuf> {
    for c in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(c).exists() {
            return Some(PathBuf::from(c));
        }
    }
    None
}

fn artifacts() -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("artifacts");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

/// Runs chromium headless on a file with extra args; returns (stdout, stderr).
fn browse(bin: &Path, page: &Path, extra: &[String]) -> (String, String) {
    let profile = tempdir();
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn chromium");
    let (out_r, err_r) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out_t = std::thread::spawn(move || std::io::read_to_string(out_r).unwrap_or_default());
    let err_t = std::thread::spawn(move || std::io::read_to_string(err_r).unwrap_or_default());
    let until = Instant::now() + Duration::from_secs(90);
    loop {
        if child.try_wait().expect("wait chromium").is_some() {
            break;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 90 s on {}", page.display());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    (out_t.join().unwrap(), err_t.join().unwrap())
}

/// The DOM headless Chromium renders for `page`, after checking it logged no error
/// (`None` without Chromium outside CI; under CI a missing Chromium fails).
pub fn dump_dom(page: &Path) -> Option<String> {
    let Some(bin) = chromium() else {
        if std::env::var_os("CI").is_some() {
            panic!("chromium is not installed: run `apt-get install chromium` (.ci/run does)");
        }
        eprintln!("notice: chromium not installed; checking the HTML instead of the DOM");
        return None;
    };
    let (dom, err) = browse(&bin, page, &["--dump-dom".to_owned()]);
    let errors = console_errors(&err);
    assert!(
        errors.is_empty(),
        "console errors on {}: {errors:#?}",
        page.display()
    );
    Some(dom)
}

/// Console messages (errors included) that the page produced.
fn console_errors(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| {
            l.contains("CONSOLE")
                || l.contains("Uncaught")
                || l.contains("Refused to")
                || l.contains("Content Security Policy")
        })
        .map(str::to_owned)
        .collect()
}

fn check_page(bin: &Path, page: &Path, shot: &str, must: &[&str]) -> String {
    assert!(page.exists(), "{} missing", page.display());
    let (dom, err) = browse(bin, page, &["--dump-dom".to_owned()]);
    let errors = console_errors(&err);
    assert!(
        errors.is_empty(),
        "console errors on {}: {errors:#?}",
        page.display()
    );
    for m in must {
        assert!(
            dom.contains(m),
            "{} lacks {m:?} in the rendered DOM",
            page.display()
        );
    }
    let png = artifacts().join(shot);
    let _ = std::fs::remove_file(&png);
    let (_, err) = browse(
        bin,
        page,
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1400,3000".to_owned(),
        ],
    );
    assert!(console_errors(&err).is_empty(), "console errors: {err}");
    let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 10_000,
        "screenshot {} is missing or blank ({size} bytes)",
        png.display()
    );
    eprintln!("screenshot: {}", png.display());
    dom
}

#[test]
fn report_and_comparison_in_headless_chromium() {
    let Some(bin) = chromium() else {
        if std::env::var_os("CI").is_some() {
            panic!("chromium is not installed: run `apt-get install chromium` (.ci/run does)");
        }
        eprintln!(
            "notice: chromium not installed (apt-get install chromium); browser test skipped"
        );
        return;
    };
    let store = tempdir();
    let out = run_test(
        store.path(),
        &[
            "--time-limit",
            "10s",
            "--seed",
            "1",
            "--name",
            "b",
            "--reads",
            "any",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "expected stale reads");
    let run = only_run_dir(store.path(), "b");
    assert!(stdout(&out).contains("report: "));
    let dom = check_page(
        &bin,
        &run.join("report.html"),
        "report.png",
        &[
            "id=\"verdict\"",
            "INVALID",
            "id=\"anomaly-list\"",
            "stale-read",
            "<svg",
            "plot-latency",
            "timeline-overview",
        ],
    );
    assert!(dom.matches("<svg").count() >= 4, "expected the plots");

    // The index lists the run.
    let index = std::fs::read_to_string(store.path().join("index.html")).unwrap();
    assert!(index.contains("invalid") && index.contains("report.html"));

    // A short comparison.
    let cmp = schism()
        .args([
            "compare",
            "--name",
            "rd",
            "--vary",
            "reads=leader,any",
            "--seeds",
            "1",
            "--store",
        ])
        .arg(store.path())
        .args(["--", "--time-limit", "3s"])
        .output()
        .unwrap();
    eprintln!("{}\n{}", stdout(&cmp), stderr(&cmp));
    assert_eq!(cmp.status.code(), Some(0));
    let cdir = only_run_dir(&store.path().join("compare"), "rd");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cdir.join("comparison.json")).unwrap())
            .unwrap();
    let settings = json["settings"].as_array().unwrap();
    assert_eq!(settings.len(), 2);
    assert_eq!(settings[0]["label"], "reads=leader");
    assert_eq!(settings[0]["invalid_runs"], 0, "leader reads are valid");
    assert_eq!(
        settings[1]["invalid_runs"], 1,
        "reads from any node are stale"
    );
    assert!(settings[1]["stale_read_rate"].as_f64().unwrap() > 0.0);
    assert!(settings[0]["write_latency_ms_p50"].as_f64().unwrap() > 0.0);
    check_page(
        &bin,
        &cdir.join("comparison.html"),
        "comparison.png",
        &[
            "id=\"summary\"",
            "reads=leader",
            "reads=any",
            "<svg",
            "plot-cdf-write",
            "plot-anomalies-vs-latency",
        ],
    );
}

#[test]
fn script_in_a_history_is_text_in_the_browser() {
    let store = tempdir();
    let dir = store.path().join("x").join("20260101T000000");
    std::fs::create_dir_all(&dir).unwrap();
    let lines = [
        r#"{"index":0,"time_ns":1000,"process":0,"type":"invoke","f":"append","key":1,"value":5}"#,
        r#"{"index":1,"time_ns":2000,"process":"nemesis","type":"info","f":"start-partition","value":{"groups":[["<script>document.title='pwned'</script>"],["n2"]],"cuts":[["<script>document.title='pwned'</script>","n2"],["n2","<script>document.title='pwned'</script>"]],"paused":[],"killed":[],"clocks":{}}}"#,
        r#"{"index":2,"time_ns":900000,"process":0,"type":"info","f":"append","key":1,"value":5,"error":"<script>document.title='pwned'</script>"}"#,
        r#"{"index":3,"time_ns":1000000,"process":10,"type":"invoke","f":"read","key":1,"value":null}"#,
        r#"{"index":4,"time_ns":2000000,"process":10,"type":"ok","f":"read","key":1,"value":[5]}"#,
        r#"{"index":5,"time_ns":3000000,"process":"nemesis","type":"info","f":"heal","value":{"groups":[],"cuts":[],"paused":[],"killed":[],"clocks":{}}}"#,
    ];
    std::fs::write(dir.join("history.jsonl"), lines.join("\n") + "\n").unwrap();
    std::fs::write(dir.join("config.json"), r#"{"test":{"name":"<b>x</b>"}}"#).unwrap();
    let checked = schism()
        .arg("check")
        .arg(&dir)
        .arg("--json")
        .output()
        .unwrap();
    std::fs::write(dir.join("results.json"), &checked.stdout).unwrap();
    let out = schism().arg("report").arg(&dir).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(
        !html.to_lowercase().contains("<script"),
        "a script tag from the history reached the page"
    );
    assert!(html.contains("&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;"));
    assert!(!html.contains("<b>x</b>"));
    if let Some(bin) = chromium() {
        let (dom, err) = browse(&bin, &dir.join("report.html"), &["--dump-dom".to_owned()]);
        assert!(console_errors(&err).is_empty(), "{err}");
        assert!(!dom.contains("pwned</title>"), "the script ran");
        assert!(
            dom.contains("&lt;script&gt;"),
            "the script is not shown as text"
        );
    }
}
