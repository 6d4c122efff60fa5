//! `schism check` on hostile input: deep EDN nesting, an endless line, invalid UTF-8 and
//! checker errors about one op all end in one error line naming `file:line` (exit 3, the
//! exit code of every malformed history), in bounded memory. Plus a fuzz of the command
//! line parser and of the whole check on mutated histories from our own writer.

use crate::*;
use clap::Parser;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::io::Write;

/// The single `schism: error:` line of a failed command.
fn error_line(o: &Output) -> String {
    let err = stderr(o);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr, got:\n{err}");
    assert!(lines[0].starts_with("schism: error: "), "{err}");
    lines[0].to_owned()
}

#[test]
fn deep_edn_nesting_is_exit_3_naming_file_and_line() {
    let dir = tempdir();
    // The issue's reproduction: `python3 -c "print('['*10000)" > d.edn` overflowed the stack.
    let path = dir.path().join("d.edn");
    std::fs::write(&path, "[".repeat(10_000) + "\n").unwrap();
    let out = schism().arg("check").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let line = error_line(&out);
    assert!(
        line.contains(&format!("{}:1: collections nest deeper", path.display())),
        "{line}"
    );
}

/// Runs `schism check /dev/zero` as the only child of a fresh copy of this test binary
/// and returns (exit code, stderr, peak RSS in KiB from the kernel's rusage of children).
fn check_dev_zero_with_peak_rss() -> (Option<i32>, String, i64) {
    if std::env::var_os("SCHISM_IT_RSS_CHILD").is_some() {
        let out = schism().args(["check", "/dev/zero"]).output().unwrap();
        let usage =
            nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).unwrap();
        println!(
            "rss-child code={:?} maxrss_kib={}",
            out.status.code(),
            usage.max_rss()
        );
        println!("rss-child stderr={}", stderr(&out).trim());
        return (None, String::new(), 0);
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "hostile_input::dev_zero_ends_with_one_error_under_100_mb",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SCHISM_IT_RSS_CHILD", "1")
        .output()
        .unwrap();
    let text = stdout(&out);
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.split_once(k).map(|(_, v)| v.to_owned()))
            .unwrap_or_else(|| panic!("no {k} in the measuring child's output:\n{text}"))
    };
    let code = field("code=");
    let code = code.split_whitespace().next().unwrap_or("");
    let code = code
        .strip_prefix("Some(")
        .and_then(|c| c.strip_suffix(')'))
        .and_then(|c| c.parse().ok());
    let rss: i64 = field("maxrss_kib=").trim().parse().unwrap();
    (code, field("stderr="), rss)
}

#[test]
fn dev_zero_ends_with_one_error_under_100_mb() {
    let (code, err, rss_kib) = check_dev_zero_with_peak_rss();
    if std::env::var_os("SCHISM_IT_RSS_CHILD").is_some() {
        return;
    }
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.starts_with("schism: error: /dev/zero:1: line is longer than"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        rss_kib < 100 * 1024,
        "schism check /dev/zero peaked at {} MiB",
        rss_kib / 1024
    );
}

#[test]
fn invalid_utf8_and_checker_errors_name_file_and_line() {
    let dir = tempdir();
    let path = dir.path().join("h.jsonl");
    let ok = |i: u64, kind: &str, v: &str| {
        format!(
            r#"{{"index":{i},"time_ns":{i},"process":0,"type":"{kind}","f":"write","key":0,"value":{v}}}"#
        )
    };
    let mut f = std::fs::File::create(&path).unwrap();
    writeln!(f, "{}", ok(0, "invoke", "1")).unwrap();
    f.write_all(b"{\"index\":1,\"time_ns\":1,\"process\":0,\"type\":\"ok\",\"f\":\"wr\xFFite\"}\n")
        .unwrap();
    drop(f);
    let out = schism().arg("check").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let line = error_line(&out);
    assert!(
        line.contains(&format!("{}:2: not valid UTF-8", path.display())),
        "{line}"
    );
    // The checker knows only op indices; the error still names the line.
    std::fs::write(
        &path,
        [
            ok(0, "invoke", "1"),
            ok(1, "ok", "1"),
            r#"{"index":5,"time_ns":5,"process":1,"type":"invoke","f":"incr","key":0,"value":1}"#
                .to_owned(),
            "".to_owned(),
        ]
        .join("\n"),
    )
    .unwrap();
    let out = schism()
        .args(["check", "--model", "register"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let line = error_line(&out);
    assert!(
        line.contains(&format!("{}:3: op index 5:", path.display())),
        "{line}"
    );
}

#[test]
fn a_history_with_a_byte_order_mark_is_checked() {
    let dir = tempdir();
    let path = dir.path().join("bom.jsonl");
    let mut text = "\u{FEFF}".to_owned();
    for (i, kind) in ["invoke", "ok"].iter().enumerate() {
        text.push_str(&format!(
            "{{\"index\":{i},\"time_ns\":{i},\"process\":0,\"type\":\"{kind}\",\"f\":\"write\",\"key\":0,\"value\":1}}\n"
        ));
    }
    std::fs::write(&path, text).unwrap();
    let out = schism().arg("check").arg(&path).output().unwrap();
    assert_ne!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stdout(&out).contains("verdict:"), "{}", stdout(&out));
}

/// Values at the edges of what flags take.
const VALUES: &[&str] = &[
    "0",
    "-1",
    "1",
    "65535",
    "65536",
    "0s",
    "1ms",
    "10s",
    "1h",
    "-5s",
    "1.5",
    "NaN",
    "inf",
    "99999999999999999999",
    "nil",
    "partition,pause",
    "partition,",
    ",",
    "",
    "=",
    "leader",
    "append",
    "127.0.0.1:0",
    "[::1]:0",
    "/dev/null",
    "/",
    "é",
    "\u{0}",
    "--",
    "-h",
];

/// A long flag and its possible values (none: free text).
type Flag = (String, Vec<String>);

/// Each subcommand with its long flags and their possible values, from the real clap
/// definition (so the fuzz follows the CLI as it changes).
fn cli_vocabulary() -> Vec<(String, Vec<Flag>)> {
    use clap::CommandFactory;
    schism_runner::cli::Cli::command()
        .get_subcommands()
        .map(|sub| {
            let flags = sub
                .get_arguments()
                .filter_map(|a| {
                    let values = a
                        .get_possible_values()
                        .iter()
                        .map(|v| v.get_name().to_owned())
                        .collect();
                    a.get_long().map(|l| (format!("--{l}"), values))
                })
                .collect();
            (sub.get_name().to_owned(), flags)
        })
        .collect()
}

#[test]
fn the_command_line_parser_survives_fuzzed_arguments() {
    let vocab = cli_vocabulary();
    assert!(vocab.len() >= 5, "{vocab:?}");
    let flag_uses = proptest::collection::vec((any::<u16>(), any::<u16>(), 0u8..5), 0..7);
    let structured = (0..vocab.len(), flag_uses, any::<bool>()).prop_map(move |(s, uses, pos)| {
        let (name, flags) = &vocab[s];
        let mut args = vec![name.clone()];
        for (f, v, how) in uses {
            let Some((flag, possible)) = flags.get(f as usize % flags.len().max(1)) else {
                continue;
            };
            let edge = VALUES[v as usize % VALUES.len()].to_owned();
            let value = match possible.get(v as usize % possible.len().max(1)) {
                Some(p) if how == 0 => p.clone(),
                _ => edge,
            };
            match how {
                2 => args.push(flag.clone()),
                3 => args.push(format!("{flag}={value}")),
                _ => args.extend([flag.clone(), value]),
            }
        }
        if pos {
            args.push("/dev/null".to_owned());
        }
        args
    });
    let random = proptest::collection::vec(
        prop_oneof![
            proptest::sample::select(VALUES).prop_map(str::to_owned),
            any::<String>()
        ],
        0..6,
    );
    let args = prop_oneof![4 => structured, 1 => random];
    let (parsed, refused) = (std::cell::Cell::new(0u32), std::cell::Cell::new(0u32));
    let mut runner = TestRunner::new(Config {
        cases: 3_000,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&args, |args| {
            let argv = std::iter::once("schism".to_owned()).chain(args);
            // Parsing either succeeds or yields clap's error; neither may panic.
            match schism_runner::cli::Cli::try_parse_from(argv) {
                Ok(_) => parsed.set(parsed.get() + 1),
                Err(e) => {
                    refused.set(refused.get() + 1);
                    prop_assert!(!e.to_string().is_empty());
                }
            }
            Ok(())
        })
        .unwrap();
    eprintln!(
        "cli fuzz: {} argument lists parsed, {} refused by clap, 0 panics",
        parsed.get(),
        refused.get()
    );
    assert!(parsed.get() > 0 && refused.get() > 0);
}

#[test]
fn check_of_mutated_real_histories_names_file_and_line_on_every_error() {
    use schism_history::{F, HistoryWriter, Op, OpType, Process, Value};
    // A register history from our own writer, mutated line by line.
    let mut w = HistoryWriter::new(Vec::new());
    for i in 0..24u64 {
        let p = Process::client(i % 3);
        let (f, v) = if i % 2 == 0 {
            (F::Write, Value::Int(i as i64))
        } else {
            (F::Read, Value::Null)
        };
        w.append(&Op::new(
            2 * i,
            2 * i,
            p,
            OpType::Invoke,
            f,
            Some(0),
            v.clone(),
        ))
        .unwrap();
        let done = if f == F::Read {
            Value::Int(i as i64 - 1)
        } else {
            v
        };
        w.append(&Op::new(
            2 * i + 1,
            2 * i + 1,
            p,
            OpType::Ok,
            f,
            Some(0),
            done,
        ))
        .unwrap();
    }
    let good = String::from_utf8(w.into_inner().unwrap()).unwrap();
    let lines: Vec<&str> = good.lines().collect();
    let dir = tempdir();
    let path = dir.path().join("m.jsonl");
    let budget = schism_runner::analyze::Budget {
        max_states: 10_000,
        time_limit: Duration::from_secs(2),
        stop: None,
    };
    let edits = proptest::collection::vec((0..lines.len(), 0u8..6, 0usize..40), 1..4);
    let (checked, refused) = (std::cell::Cell::new(0u32), std::cell::Cell::new(0u32));
    let mut runner = TestRunner::new(Config {
        cases: 150,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&edits, |edits| {
            let mut ls: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
            for (at, kind, n) in edits {
                let at = at % ls.len().max(1);
                let Some(l) = ls.get(at).cloned() else {
                    continue;
                };
                match kind {
                    0 => {
                        ls.remove(at);
                    }
                    1 => ls.insert(at, l),
                    2 => ls[at] = l.replace("\"write\"", "\"cas\""),
                    3 => ls[at] = l.replace("\"ok\"", "\"invoke\""),
                    4 => ls[at] = l.replacen(|c: char| c.is_ascii_digit(), &n.to_string(), 2),
                    _ => ls[at] = l.chars().take(n).collect(),
                }
            }
            std::fs::write(&path, ls.join("\n") + "\n").unwrap();
            let r = schism_runner::analyze::analyze_file(&path, None, &budget);
            match r {
                Ok(_) => checked.set(checked.get() + 1),
                Err(e) => {
                    refused.set(refused.get() + 1);
                    let e = format!("{e:#}");
                    let at = format!("{}:", path.display());
                    let line = e.strip_prefix(&at).and_then(|r| r.split(':').next());
                    prop_assert!(
                        line.is_some_and(|l| l.parse::<usize>().is_ok()),
                        "error without file:line: {e}"
                    );
                }
            }
            Ok(())
        })
        .unwrap();
    eprintln!(
        "check fuzz: {} mutated histories checked, {} refused, each naming file:line",
        checked.get(),
        refused.get()
    );
    assert!(
        refused.get() > 0,
        "no mutation was refused: the property was not exercised"
    );
}
