//! README's commands are tests: every command of README.md's ```` ```sh ```` blocks runs as
//! written, from the root of a scratch folder holding a copy of README.md (relative paths
//! as a user has them; results go to its `results/`), and must give the outcome written
//! beside it as a trailing comment.
//!
//! Outcomes (the comment's first words): `valid` (exit 0), `invalid` (exit 1), `unknown`
//! (exit 2), `exit N`, `serves` (`schism serve`: started, `GET /` answers 200, stopped),
//! or anomaly names in Elle's words, `stale reads`, `lost writes`, `stale reads and
//! divergence`, … (exit 1 and each kind among the run's anomalies in its results.json).
//! A schism command without one of these is a failure naming its README line.
//!
//! `cargo run [--release …] --`, `target/release/schism`, `$B` (after `B=…`) and `schism`
//! all stand for the binary under test. Set-up steps (`apt-get`, `cargo build`,
//! `cargo test`: the suite itself, which would recurse) are skipped with the reason; any
//! other program is a failure. Commands that need a database run when the database is
//! installed and this binary has its feature (under `CI` a missing server fails naming its
//! package), one at a time under the database lock. `SCHISM_README_TIME_LIMIT` (default
//! 8s) shortens `--time-limit` (written, or the 30 s default) of `test` and of `compare`'s
//! runs to at most that; a limit a command writes itself up to [`MIN_TIME_LIMIT_S`] is
//! what the command needs and is kept. The command text in README is never edited.
//!
//! `--help` texts (runner/src/cli.rs) carry no full example commands (only flag
//! fragments such as `-- --time-limit 20s`), so there is nothing there to run; a test
//! fails if one appears without being run here.

use crate::*;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;

/// The environment variable that caps `--time-limit` of README's runs.
const CAP_VAR: &str = "SCHISM_README_TIME_LIMIT";
const DEFAULT_CAP: &str = "8s";
/// A command that writes a time limit of its own up to this long keeps it: it was chosen
/// (below the 30 s default) so that the faults it schedules happen and heal.
const MIN_TIME_LIMIT_S: f64 = 20.0;
/// What the scratch copy of the repository holds: everything README's commands read.
const SCRATCH_FILES: &[&str] = &["README.md"];

/// One command of a `sh` block.
#[derive(Debug, Clone)]
struct Cmd {
    /// README line where the command starts (1-based).
    line: usize,
    /// As written, continuation lines joined.
    text: String,
    /// Shell words, variables expanded.
    words: Vec<String>,
    /// The trailing comment (without `#`), if any.
    comment: Option<String>,
}

/// What README says a command should do.
#[derive(Debug, Clone, PartialEq)]
enum Expect {
    Exit(i32),
    /// Exit 1 with each of these anomaly kinds (`stale-read`, …).
    Kinds(Vec<String>),
    Serves,
}

impl std::fmt::Display for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expect::Exit(n) => write!(f, "exit {n}"),
            Expect::Kinds(k) => write!(f, "exit 1 with {}", k.join(", ")),
            Expect::Serves => write!(f, "serves"),
        }
    }
}

#[derive(Debug)]
enum Plan {
    Skip(&'static str),
    Run {
        /// The arguments after the binary.
        args: Vec<String>,
        expect: Expect,
        /// `--target` when it is a database.
        db: Option<String>,
    },
}

/// Splits a command into shell words: quotes and backslash escapes, no globbing; a
/// redirection, pipe or sequence is refused (README's commands are plain invocations).
fn shell_words(s: &str, vars: &BTreeMap<String, String>) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    cur.push(c);
                }
            }
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => cur.extend(chars.next()),
                        '$' => cur.push_str(&expand(&mut chars, vars)?),
                        c => cur.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                cur.extend(chars.next());
            }
            '$' => {
                in_word = true;
                cur.push_str(&expand(&mut chars, vars)?);
            }
            '|' | '&' | ';' | '<' | '>' | '`' => {
                return Err(format!(
                    "`{c}` is not supported: write one plain command per line"
                ));
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

fn expand(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    vars: &BTreeMap<String, String>,
) -> Result<String, String> {
    let braced = chars.peek() == Some(&'{');
    if braced {
        chars.next();
    }
    let mut name = String::new();
    while let Some(&c) = chars.peek() {
        if c.is_ascii_alphanumeric() || c == '_' {
            name.push(c);
            chars.next();
        } else {
            break;
        }
    }
    if braced && chars.next() != Some('}') {
        return Err(format!("unclosed ${{{name}"));
    }
    vars.get(&name)
        .cloned()
        .ok_or_else(|| format!("${name} is not set by an earlier `{name}=…` line"))
}

/// Splits `cmd  # comment` at the first `#` that starts a word outside quotes.
fn split_comment(line: &str) -> (&str, Option<&str>) {
    let (mut single, mut double) = (false, false);
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && prev.is_whitespace() => {
                return (&line[..i], Some(line[i + 1..].trim()));
            }
            _ => {}
        }
        prev = c;
    }
    (line, None)
}

/// Every command of README's `sh` blocks, in order.
fn extract(readme: &str) -> Result<Vec<Cmd>, String> {
    let mut out = Vec::new();
    let mut vars = BTreeMap::new();
    let mut in_sh = false;
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in readme.lines().enumerate() {
        let line_no = i + 1;
        let trimmed = raw.trim();
        if trimmed.starts_with("```") {
            if in_sh && let Some((l, _)) = &pending {
                return Err(format!(
                    "README.md:{l}: the command ends in `\\` but its block closes"
                ));
            }
            in_sh = !in_sh && trimmed.trim_start_matches('`').trim() == "sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        let (code, comment) = split_comment(raw);
        let code = code.trim_end();
        let (start, mut text) = match pending.take() {
            Some((l, t)) => (l, t + " "),
            None => {
                if code.trim().is_empty() {
                    // Blank, or a comment line continuing the previous command's comment.
                    continue;
                }
                (line_no, String::new())
            }
        };
        if let Some(head) = code.strip_suffix('\\') {
            text.push_str(head.trim());
            pending = Some((start, text));
            continue;
        }
        text.push_str(code.trim());
        if let Some((name, value)) = assignment(&text) {
            let value = shell_words(value, &vars)
                .map_err(|e| format!("README.md:{start}: {e}"))?
                .join(" ");
            vars.insert(name.to_owned(), value);
            continue;
        }
        let words = shell_words(&text, &vars).map_err(|e| format!("README.md:{start}: {e}"))?;
        out.push(Cmd {
            line: start,
            text,
            words,
            comment: comment.map(str::to_owned),
        });
    }
    Ok(out)
}

/// `NAME=value` (a shell variable assignment and nothing else).
fn assignment(text: &str) -> Option<(&str, &str)> {
    let (name, value) = text.split_once('=')?;
    let ok = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && !value.contains(char::is_whitespace);
    ok.then_some((name, value))
}

/// The normalised name of an anomaly kind: `stale reads` and `stale-read` → `stale-read`.
fn kind_key(s: &str) -> String {
    s.split(['-', ' '])
        .filter(|w| !w.is_empty())
        .map(|w| w.strip_suffix('s').unwrap_or(w))
        .collect::<Vec<_>>()
        .join("-")
}

/// Reads the outcome at the start of a trailing comment.
fn parse_expect(comment: &str) -> Option<Expect> {
    let c = comment.trim().to_lowercase();
    let first = c
        .split(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '-'))
        .next()
        .unwrap_or("");
    match first {
        "valid" => return Some(Expect::Exit(0)),
        "invalid" => return Some(Expect::Exit(1)),
        "unknown" => return Some(Expect::Exit(2)),
        "serves" => return Some(Expect::Serves),
        "exit" => {
            let n = c["exit".len()..]
                .trim_start()
                .split(|ch: char| !ch.is_ascii_digit())
                .next()?;
            return n.parse().ok().map(Expect::Exit);
        }
        _ => {}
    }
    let phrase = c.split([':', ';', '—', '(', '.']).next().unwrap_or("");
    let known: BTreeMap<String, &str> = schism_checker::AnomalyKind::ALL
        .iter()
        .map(|k| (kind_key(k.as_str()), k.as_str()))
        .collect();
    let mut kinds = Vec::new();
    for part in phrase.split(',').flat_map(|p| p.split(" and ")) {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        kinds.push(known.get(&kind_key(part))?.to_string());
    }
    (!kinds.is_empty()).then_some(Expect::Kinds(kinds))
}

/// How a command is handled, or why it cannot be.
fn plan(cmd: &Cmd) -> Result<Plan, String> {
    let w: Vec<&str> = cmd.words.iter().map(String::as_str).collect();
    let args: Vec<String> = match w.as_slice() {
        ["apt-get" | "apt", ..] => {
            return Ok(Plan::Skip(
                "installs the servers (CI's .ci/run does; a missing one fails or skips its command)",
            ));
        }
        ["cargo", "build", ..] => {
            return Ok(Plan::Skip(
                "builds the binary: the binary under test stands in for target/release/schism",
            ));
        }
        [env, ..] if env.contains('=') && !env.starts_with('-') => {
            return Ok(Plan::Skip(
                "a test-suite command with a larger budget (the suite runs the same test at its own size)",
            ));
        }
        ["cargo", "install", ..] => {
            return Ok(Plan::Skip(
                "installs a cargo tool (cargo-fuzz) for coverage-guided fuzzing, which needs nightly",
            ));
        }
        ["cargo", "+nightly", "fuzz", ..] => {
            return Ok(Plan::Skip(
                "coverage-guided fuzzing needs nightly and runs without end: fuzz/ is outside the workspace",
            ));
        }
        ["cargo", "test", ..] => {
            return Ok(Plan::Skip(
                "the test suite itself, which runs this test: running it here would recurse",
            ));
        }
        ["cargo", "run", rest @ ..] => {
            let Some(dash) = rest.iter().position(|a| *a == "--") else {
                return Err("`cargo run` without `--`: write `cargo run --release -- test`".into());
            };
            rest[dash + 1..].iter().map(|s| s.to_string()).collect()
        }
        [bin, rest @ ..]
            if matches!(
                *bin,
                "schism" | "target/release/schism" | "./target/release/schism"
            ) =>
        {
            rest.iter().map(|s| s.to_string()).collect()
        }
        _ => {
            return Err(format!(
                "`{}` is neither schism nor a known set-up step (apt-get, cargo build/test/install, the fuzz/ folder)",
                w.first().unwrap_or(&"")
            ));
        }
    };
    let expect = cmd.comment.as_deref().and_then(parse_expect).ok_or_else(|| {
        format!(
            "no expected outcome: end the command with a comment such as `# valid`, `# stale reads`, `# lost writes`, `# invalid`, `# unknown`, `# exit 0` or `# serves`{}",
            match &cmd.comment {
                Some(c) => format!(" (its comment `# {c}` does not start with one)"),
                None => String::new(),
            }
        )
    })?;
    if args.first().map(String::as_str) == Some("serve") && expect != Expect::Serves {
        return Err("`schism serve` runs until stopped: its outcome is `# serves`".into());
    }
    let db = flag_value(&args, "--target")
        .filter(|t| *t != "reference")
        .map(str::to_owned);
    Ok(Plan::Run { args, expect, db })
}

/// The value of `--flag V` or `--flag=V`.
fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let eq = format!("{flag}=");
    args.iter().enumerate().find_map(|(i, a)| {
        if a == flag {
            args.get(i + 1).map(String::as_str)
        } else {
            a.strip_prefix(&eq)
        }
    })
}

fn seconds(s: &str) -> f64 {
    schism_runner::cli::parse_duration(s)
        .unwrap_or_else(|e| panic!("{CAP_VAR}: {e}"))
        .as_secs_f64()
}

/// The time-limit cap in seconds.
fn cap_s() -> f64 {
    seconds(&std::env::var(CAP_VAR).unwrap_or_else(|_| DEFAULT_CAP.into()))
}

/// `args` of one `schism test` (from `start` on, up to a `--` or the end) with
/// `--time-limit` capped; returns the limit set, if it changed.
fn cap_test_args(args: &mut Vec<String>, start: usize, cap: f64) -> Option<String> {
    // `--time-limit=V` as two words, so there is one form to look for.
    let mut i = start;
    while i < args.len() && args[i] != "--" {
        if let Some(v) = args[i].strip_prefix("--time-limit=").map(str::to_owned) {
            args[i] = "--time-limit".into();
            args.insert(i + 1, v);
        }
        i += 1;
    }
    let end = i;
    let written = (start..end)
        .find(|&i| args[i] == "--time-limit" && i + 1 < end)
        .map(|i| (i + 1, seconds(&args[i + 1])));
    let limit = match written {
        // A limit the command chose below MIN_TIME_LIMIT_S is what it needs: kept.
        Some((_, s)) if s <= MIN_TIME_LIMIT_S => return None,
        Some((_, s)) if s <= cap => return None,
        None if cap >= 30.0 => return None,
        _ => format!("{cap}s"),
    };
    match written {
        Some((i, _)) => args[i] = limit.clone(),
        None => {
            args.insert(end, limit.clone());
            args.insert(end, "--time-limit".into());
        }
    }
    Some(format!("--time-limit {limit}"))
}

/// Applies the cap to `schism test …` and to the runs of `schism compare … -- …`.
fn capped(args: &[String]) -> (Vec<String>, Option<String>) {
    let mut args = args.to_vec();
    let cap = cap_s();
    let note = match args.first().map(String::as_str) {
        Some("test") => cap_test_args(&mut args, 1, cap),
        Some("compare") => match args.iter().position(|a| a == "--") {
            Some(p) => cap_test_args(&mut args, p + 1, cap),
            None => {
                args.push("--".into());
                let p = args.len();
                cap_test_args(&mut args, p, cap)
            }
        },
        _ => None,
    };
    (args, note)
}

/// The servers a database target needs, as the db_* tests check them.
fn db_binaries(target: &str, args: &[String]) -> Vec<(&'static str, &'static str)> {
    match target {
        "etcd" => vec![("etcd", "etcd-server")],
        "redis" => {
            let mut v = vec![("redis-server", "redis-server")];
            if flag_value(args, "--failover") == Some("auto") {
                v.push(("redis-sentinel", "redis-sentinel"));
            }
            v
        }
        "postgres" => vec![
            ("/usr/lib/postgresql/15/bin/postgres", "postgresql-15"),
            ("setpriv", "util-linux"),
        ],
        "galera" => vec![
            ("mariadbd", "mariadb-server"),
            ("mariadb-install-db", "mariadb-server"),
            ("/usr/lib/galera/libgalera_smm.so", "galera-4"),
        ],
        _ => vec![],
    }
}

/// Whether this build has the target's adapter (an unknown target is left to schism to
/// refuse).
fn db_compiled(target: &str) -> bool {
    target
        .parse::<schism_targets::db::DbKind>()
        .map_or(true, |k| k.compiled())
}

/// A scratch copy of the repository: what README's commands read, world-searchable so
/// that PostgreSQL (user postgres) can reach its data dirs under `results/`.
fn scratch_repo() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempdir();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod scratch");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for f in SCRATCH_FILES {
        std::fs::copy(repo.join(f), dir.path().join(f)).expect("copy into the scratch repo");
    }
    dir
}

fn readme() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `(kind)` of every anomaly in a results.json.
fn anomaly_kinds(results: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(results)
        .map_err(|e| format!("cannot read {}: {e}", results.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", results.display()))?;
    let mut kinds: Vec<String> = v["results"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["anomalies"].as_array().into_iter().flatten())
        .filter_map(|a| a["kind"].as_str().map(str::to_owned))
        .collect();
    kinds.sort();
    kinds.dedup();
    Ok(kinds)
}

/// Runs one command in `cwd`; returns what was observed, or why it differs from README.
fn run_one(cwd: &Path, args: &[String], expect: &Expect) -> Result<String, String> {
    if *expect == Expect::Serves {
        return serve_briefly(cwd, args);
    }
    let out = schism()
        .current_dir(cwd)
        .env("SCHISM_STATE_DIR", cwd.join(".schism-state"))
        .args(args)
        .output()
        .map_err(|e| format!("cannot spawn schism: {e}"))?;
    let (so, se) = (stdout(&out), stderr(&out));
    eprintln!("stdout:\n{so}\nstderr:\n{se}");
    let code = out.status.code();
    // The run's own folder ("results: DIR"), else the store's latest run.
    let results = so
        .lines()
        .find_map(|l| l.strip_prefix("results: "))
        .map(|d| Path::new(d.trim()).join("results.json"))
        .unwrap_or_else(|| cwd.join("results/latest/results.json"));
    let kinds = anomaly_kinds(&results).unwrap_or_default();
    let observed = format!(
        "exit {}{}",
        code.map_or("signal".into(), |c| c.to_string()),
        if kinds.is_empty() {
            String::new()
        } else {
            format!(" ({})", kinds.join(", "))
        }
    );
    let last_err = se
        .lines()
        .rfind(|l| l.contains("error"))
        .unwrap_or("")
        .to_owned();
    let ok = match expect {
        Expect::Exit(n) => code == Some(*n),
        Expect::Kinds(want) => code == Some(1) && want.iter().all(|k| kinds.contains(k)),
        Expect::Serves => unreachable!(),
    };
    if ok {
        Ok(observed)
    } else {
        Err(format!(
            "observed {observed}, {}; {}",
            verdict_line(&so),
            if last_err.is_empty() {
                format!("results in {}", results.display())
            } else {
                last_err
            }
        ))
    }
}

/// `schism serve …`: started, its address read from its first line, `GET /` must answer
/// 200 with the store's index, then stopped by its pid.
fn serve_briefly(cwd: &Path, args: &[String]) -> Result<String, String> {
    let mut child = schism()
        .current_dir(cwd)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot spawn schism serve: {e}"))?;
    let mut line = String::new();
    let read = BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line);
    let answer = match read {
        Ok(n) if n > 0 => line
            .split("http://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .ok_or_else(|| format!("no address in its first line {line:?}"))
            .and_then(|addr| {
                let mut s = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
                write!(s, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    .map_err(|e| e.to_string())?;
                let mut body = String::new();
                s.read_to_string(&mut body).map_err(|e| e.to_string())?;
                Ok(body)
            }),
        _ => Err("it printed no address".into()),
    };
    let _ = child.kill();
    let status = child.wait();
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    match answer {
        Ok(body) if body.starts_with("HTTP/1.1 200") && body.contains("schism results") => {
            Ok(format!("served the index at {}", line.trim()))
        }
        Ok(body) => Err(format!(
            "GET / answered {:?}",
            body.lines().next().unwrap_or("")
        )),
        Err(e) => Err(format!("{e} (exit {status:?}; stderr: {})", err.trim())),
    }
}

/// Runs README's commands of one kind (database or not) in order in one scratch copy of
/// the repository; returns what each did, and every command that did not do what README
/// says.
fn run_readme(databases: bool) -> (Vec<String>, Vec<String>) {
    let cmds = extract(&readme()).unwrap_or_else(|e| panic!("{e}"));
    let repo = scratch_repo();
    let mut failures = Vec::new();
    let mut table = Vec::new();
    for cmd in &cmds {
        let plan = match plan(cmd) {
            Ok(p) => p,
            Err(e) => {
                failures.push(format!("README.md:{}: `{}`: {e}", cmd.line, cmd.text));
                continue;
            }
        };
        let Plan::Run { args, expect, db } = plan else {
            continue;
        };
        if db.is_some() != databases {
            continue;
        }
        let _lock = db.as_ref().map(|_| db_lock());
        if let Some(target) = &db {
            if !db_compiled(target) {
                eprintln!(
                    "SKIPPED README.md:{}: this test binary has no `{target}` feature (cargo test --features all-targets runs it)",
                    cmd.line
                );
                continue;
            }
            let partitions = flag_value(&args, "--nemesis")
                .is_some_and(|n| n.contains("partition") || n == "all");
            let what = format!("README.md:{} ({target})", cmd.line);
            if !require_db(&what, &db_binaries(target, &args), partitions) {
                continue;
            }
        }
        let (args, note) = capped(&args);
        eprintln!(
            "--- README.md:{}: {}\n    runs: schism {}{}",
            cmd.line,
            cmd.text,
            args.join(" "),
            note.as_ref()
                .map(|n| format!("  ({CAP_VAR}: {n})"))
                .unwrap_or_default()
        );
        let started = Instant::now();
        let result = run_one(repo.path(), &args, &expect);
        let took = started.elapsed().as_secs_f64();
        match result {
            Ok(observed) => table.push(format!(
                "README.md:{}  expected {} -> {observed} in {took:.0}s{}",
                cmd.line,
                expect,
                note.map(|n| format!(" [{n}]")).unwrap_or_default()
            )),
            Err(e) => failures.push(format!(
                "README.md:{}: `{}` (expected {expect}): {e}",
                cmd.line, cmd.text
            )),
        }
    }
    if !failures.is_empty() {
        // Kept: the runs' node logs and results explain the failures.
        let kept = repo.keep();
        failures.push(format!("(their results are kept in {})", kept.display()));
    }
    (table, failures)
}

#[test]
fn readme_commands_all_have_an_outcome_or_a_reason() {
    let cmds = extract(&readme()).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        cmds.len() >= 10,
        "only {} commands found in README's sh blocks",
        cmds.len()
    );
    let mut problems = Vec::new();
    for cmd in &cmds {
        match plan(cmd) {
            Ok(Plan::Skip(why)) => eprintln!("README.md:{} skipped: {why}", cmd.line),
            Ok(Plan::Run { expect, .. }) => {
                eprintln!("README.md:{} expects {expect}: {}", cmd.line, cmd.text)
            }
            Err(e) => problems.push(format!("README.md:{}: `{}`: {e}", cmd.line, cmd.text)),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_extractor_reads_continuations_variables_and_outcomes_and_names_a_missing_one() {
    let text = "intro\n```sh\nB=target/release/schism\n$B test --reads leader \\\n   --nodes 3   # valid: leader reads\n     # (more words)\ncargo run --release -- test  # stale reads and lost writes\nschism check results/latest\ncargo test --workspace  # the suite\n```\n```toml\nx = 1\n```\n";
    let cmds = extract(text).unwrap();
    assert_eq!(cmds.len(), 4, "{cmds:?}");
    assert_eq!(cmds[0].line, 4);
    assert_eq!(
        cmds[0].words,
        [
            "target/release/schism",
            "test",
            "--reads",
            "leader",
            "--nodes",
            "3"
        ]
    );
    let Plan::Run { args, expect, db } = plan(&cmds[0]).unwrap() else {
        panic!("not run")
    };
    assert_eq!(expect, Expect::Exit(0));
    assert_eq!(db, None);
    let (capped_args, note) = capped(&args);
    assert!(note.is_some(), "30 s default is capped");
    assert!(capped_args.contains(&"--time-limit".to_owned()));
    let Plan::Run { expect, .. } = plan(&cmds[1]).unwrap() else {
        panic!("not run")
    };
    assert_eq!(
        expect,
        Expect::Kinds(vec!["stale-read".into(), "lost-write".into()])
    );
    let missing = plan(&cmds[2]).unwrap_err();
    assert!(missing.contains("no expected outcome"), "{missing}");
    assert!(matches!(plan(&cmds[3]).unwrap(), Plan::Skip(_)));
    let mut args: Vec<String> = [
        "compare",
        "--vary",
        "reads=leader,any",
        "--",
        "--time-limit",
        "30s",
    ]
    .map(String::from)
    .to_vec();
    cap_test_args(&mut args, 4, 8.0);
    assert_eq!(args[5], "8s");
    let mut args: Vec<String> = ["test", "--time-limit", "20s"].map(String::from).to_vec();
    assert_eq!(
        cap_test_args(&mut args, 1, 8.0),
        None,
        "20 s is what it needs"
    );
}

/// The database commands (one at a time, under the database lock) run beside the others,
/// each group in its own scratch copy, so the wall time is the longer group's.
#[test]
fn readme_commands_give_their_documented_outcome() {
    let databases = std::thread::spawn(|| run_readme(true));
    let (mut table, mut failures) = run_readme(false);
    // Under CI a missing server panics (naming its package): a failure like the others.
    let (db_table, db_failures) = databases.join().unwrap_or_else(|p| {
        let why = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        (vec![], vec![format!("database commands stopped: {why}")])
    });
    table.extend(db_table);
    // A plan error is found by both groups: list it once.
    for f in db_failures {
        if !failures.contains(&f) {
            failures.push(f);
        }
    }
    eprintln!("README commands run:\n  {}", table.join("\n  "));
    assert!(
        failures.is_empty(),
        "README commands that do not do what README says:\n  {}",
        failures.join("\n  ")
    );
}

/// `--help` texts carry no full example command today; one added later must become a
/// test here (as README's are) rather than go unchecked.
#[test]
fn help_texts_hold_no_untested_example_commands() {
    use clap::CommandFactory;
    let mut cmd = schism_runner::cli::Cli::command();
    let mut texts = vec![cmd.render_long_help().to_string()];
    for sub in cmd.get_subcommands_mut() {
        texts.push(sub.render_long_help().to_string());
    }
    let examples: Vec<&str> = texts
        .iter()
        .flat_map(|t| t.lines())
        .map(str::trim)
        .filter(|l| {
            let l = l.trim_start_matches("$ ");
            [
                "schism ",
                "target/release/schism",
                "./target/release/schism",
                "cargo run",
            ]
            .iter()
            .any(|p| l.starts_with(p))
        })
        .collect();
    assert!(
        examples.is_empty(),
        "--help shows example commands that no test runs: {examples:?} (run them in readme.rs as README's commands are)"
    );
}
