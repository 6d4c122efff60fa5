//! The transactional reader (`read_txn_jsonl`: JSON Lines straight into compact `Txns`)
//! against the general one followed by pairing (`read_jsonl` + `Txns::from_history`): on
//! histories as schism's own writer emits them (clients, a nemesis, node names, errors,
//! indeterminate and failed transactions, across several parse batches and threads) they
//! give the same transactions, and on every kind of bad input the same error, at the
//! same `file:line`, or the same warning.

use schism_history::txn::{MicroOp, MopF, MopValue, Txns, read_txn_file, read_txn_jsonl_threads};
use schism_history::{F, HistoryWriter, Op, OpType, Process, Value, read_jsonl};
use std::path::Path;

fn txn(index: u64, p: u64, kind: OpType, mops: &[MicroOp]) -> Op {
    // The workloads record transactions with key 0 (unused).
    Op::new(
        index,
        index * 1_000,
        Process::client(p),
        kind,
        F::parse("txn"),
        Some(0),
        schism_history::txn::txn_value(mops),
    )
}

/// A list-append run as the runner records it: `n` transactions on 5 processes (ok,
/// fail, info with errors and node names), nemesis events among them, the final heal.
fn written_txn_history(n: usize) -> Vec<u8> {
    let mut w = HistoryWriter::new(Vec::new());
    let mut index = 0u64;
    let mut next = || {
        index += 1;
        index - 1
    };
    // Each key takes about 40 transactions' appends, so reads stay short.
    let mut lists: std::collections::HashMap<u64, Vec<i64>> = Default::default();
    let mut open: Vec<Option<Vec<MicroOp>>> = vec![None; 5];
    for i in 0..n {
        if i % 97 == 13 {
            let f = if i % 2 == 0 {
                "start-partition"
            } else {
                "heal"
            };
            let mut op = Op::new(
                next(),
                0,
                Process::NEMESIS,
                OpType::Info,
                F::parse(f),
                None,
                Value::other(serde_json::json!({"final": i > n - 100, "groups": [["n1"], ["n2"]]})),
            );
            op.time_ns = op.index() * 1_000;
            w.append(&op).unwrap();
        }
        let p = i % 5;
        match open[p].take() {
            None => {
                let k = (i / 120 * 3 + i % 3) as u64;
                let mops = vec![
                    MicroOp::read(k),
                    MicroOp::append(k, i as i64),
                    MicroOp::read(k + 1),
                ];
                w.append(&txn(next(), p as u64, OpType::Invoke, &mops))
                    .unwrap();
                open[p] = Some(mops);
            }
            Some(mops) => {
                let (kind, done) = match i % 13 {
                    3 => (OpType::Fail, mops.clone()),
                    8 => (OpType::Info, mops.clone()),
                    _ => {
                        let mut done = Vec::new();
                        for m in &mops {
                            let list = lists.entry(m.key).or_default();
                            if m.f == MopF::Append {
                                list.push(m.written().unwrap());
                                done.push(m.clone());
                            } else {
                                let value = if list.is_empty() {
                                    MopValue::Nil
                                } else {
                                    MopValue::List(list.clone())
                                };
                                done.push(MicroOp { value, ..m.clone() });
                            }
                        }
                        (OpType::Ok, done)
                    }
                };
                let mut op = txn(next(), p as u64, kind, &done);
                op.set_node(Some(format!("n{}", 1 + i % 3)));
                if kind != OpType::Ok {
                    op.set_error(Some("timeout: no reply within 500ms".into()));
                }
                w.append(&op).unwrap();
            }
        }
    }
    w.flush().unwrap();
    w.into_inner().unwrap()
}

/// The transactions as comparable values.
fn flat(t: &Txns) -> Vec<String> {
    let mut out: Vec<String> = t
        .iter()
        .map(|h| {
            let mops: Vec<MicroOp> = t.mops(h).iter().map(|m| m.to_micro_op()).collect();
            format!(
                "{} {} {:?} {} {:?} {} {} {:?}",
                h.index,
                h.process,
                h.outcome,
                h.invoke_pos(),
                h.complete_pos(),
                h.invoke_ns,
                h.complete_ns,
                mops
            )
        })
        .collect();
    out.extend(t.nemesis().iter().map(|(p, o)| format!("{p} {o:?}")));
    out.push(format!("{} ops", t.ops()));
    out
}

/// Both readers on `text`: the transactions (flattened) and warnings, or the error.
fn both(text: &[u8], threads: usize) -> (Result<String, String>, Result<String, String>) {
    let path = Path::new("h.jsonl");
    let old = read_jsonl(text, path).and_then(|(h, w)| Ok((Txns::from_history(&h)?, w)));
    let new = read_txn_jsonl_threads(text, path, threads);
    let show =
        |r: Result<(Txns, Vec<schism_history::ReadWarning>), schism_history::HistoryError>| {
            r.map(|(t, w)| format!("{:?} {w:?}", flat(&t)))
                .map_err(|e| e.to_string())
        };
    (show(old), show(new))
}

#[test]
fn written_histories_read_the_same_on_any_thread_count() {
    // About 5 MiB: more than one parse batch.
    let text = written_txn_history(26_000);
    assert!(text.len() > schism_history::BATCH_BYTES, "{}", text.len());
    let (old, new) = both(&text, 1);
    assert!(old.is_ok(), "{old:?}");
    assert_eq!(old, new);
    let four = read_txn_jsonl_threads(text.as_slice(), Path::new("h.jsonl"), 4).unwrap();
    let one = read_txn_jsonl_threads(text.as_slice(), Path::new("h.jsonl"), 1).unwrap();
    assert_eq!(flat(&four.0), flat(&one.0));
    // From a file: sized up front (the reservation path).
    let dir = std::env::temp_dir().join(format!("schism-txns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("h.jsonl");
    std::fs::write(&file, &text).unwrap();
    let (t, w) = read_txn_file(&file).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(w.is_empty());
    assert_eq!(flat(&t), flat(&one.0));
    assert!(t.len() > 10_000 && !t.nemesis().is_empty(), "{}", t.len());
}

const INV: &str = r#"{"index":0,"time_ns":0,"process":1,"type":"invoke","f":"txn","value":[["append",1,2],["r",1,null]]}"#;
const OK: &str = r#"{"index":1,"time_ns":5,"process":1,"type":"ok","f":"txn","value":[["append",1,2],["r",1,[2]]]}"#;

/// Lines with indices renumbered from 0 in order (unless a case means them).
fn lines(ls: &[&str]) -> String {
    ls.iter().map(|l| format!("{l}\n")).collect()
}

#[test]
fn every_bad_input_gives_the_same_error_or_warning() {
    let big: Vec<String> = (0..4097).map(|i| format!(r#"["append",1,{i}]"#)).collect();
    let too_long = format!(
        r#"{{"index":0,"time_ns":0,"process":1,"type":"invoke","f":"txn","value":[{}]}}"#,
        big.join(",")
    );
    let cases: Vec<(&str, String)> = vec![
        ("valid", lines(&[INV, OK])),
        (
            "blank lines and a BOM",
            format!("\u{feff}{INV}\n\n  \n{OK}\n"),
        ),
        ("truncated last line", format!("{INV}\n{}", &OK[..30])),
        ("no newline at the end", format!("{INV}\n{OK}")),
        ("bad micro-op f", lines(&[&INV.replace("\"r\"", "\"x\"")])),
        (
            "nil invocation",
            lines(&[
                r#"{"index":0,"time_ns":0,"process":1,"type":"invoke","f":"txn","value":null}"#,
            ]),
        ),
        (
            "absent value",
            lines(&[r#"{"index":0,"time_ns":0,"process":1,"type":"invoke","f":"txn"}"#]),
        ),
        (
            "empty transaction",
            lines(&[
                &INV.replace(r#"[["append",1,2],["r",1,null]]"#, "[]"),
                &OK.replace(r#"[["append",1,2],["r",1,[2]]]"#, "[]"),
            ]),
        ),
        (
            "ok completion without value",
            lines(&[INV, &OK.replace(r#"[["append",1,2],["r",1,[2]]]"#, "null")]),
        ),
        ("completion without invocation", lines(&[OK])),
        (
            "double invocation",
            lines(&[INV, &INV.replace("\"index\":0", "\"index\":1")]),
        ),
        (
            "changed key",
            lines(&[INV, &OK.replace(r#"["r",1,[2]]"#, r#"["r",2,[2]]"#)]),
        ),
        (
            "changed value",
            lines(&[INV, &OK.replace(r#"["append",1,2]"#, r#"["append",1,3]"#)]),
        ),
        (
            "fewer micro-ops",
            lines(&[INV, &OK.replace(r#",["r",1,[2]]"#, "")]),
        ),
        (
            "not a txn",
            lines(&[INV, &OK.replace("\"f\":\"txn\"", "\"f\":\"read\"")]),
        ),
        (
            "malformed line after a pairing error",
            lines(&[OK, r#"{"index":2,oops}"#]),
        ),
        ("decreasing index", lines(&[OK, INV])),
        (
            "spellings, unknown and optional fields",
            lines(&[
                r#"{"index":0,"time_ns":0,"process":1,"type":"invoke","f":"txn","key":null,"value":[["write",1,2],["read",1,null]],"node":null,"meta":{"lsn":[1,2]},"extra":[1]}"#,
                r#"{"index":1,"time_ns":5,"process":1,"type":"ok","f":"txn","value":[["w",1,2],["r",1,2]],"siblings":[1,"x"],"error":null}"#,
            ]),
        ),
        (
            "wrongly typed optional field",
            lines(&[&INV.replace("\"f\":\"txn\"", "\"f\":\"txn\",\"node\":5")]),
        ),
        (
            "duplicate field",
            lines(&[&INV.replace("\"time_ns\":0", "\"time_ns\":0,\"index\":0")]),
        ),
        (
            "list element out of range",
            lines(&[INV, &OK.replace("[2]]", "[18446744073709551615]]")]),
        ),
        (
            "float in a list",
            lines(&[INV, &OK.replace("[2]]", "[2.5]]")]),
        ),
        (
            "negative key",
            lines(&[&INV.replace("[\"r\",1,null]", "[\"r\",-1,null]")]),
        ),
        (
            "four parts",
            lines(&[&INV.replace("[\"r\",1,null]", "[\"r\",1,null,4]")]),
        ),
        (
            "append of a list",
            lines(&[&INV.replace("[\"append\",1,2]", "[\"append\",1,[2]]")]),
        ),
        (
            "a list of integers",
            lines(&[&INV.replace(r#"[["append",1,2],["r",1,null]]"#, "[1,2]")]),
        ),
        (
            "negative process",
            lines(&[&INV.replace("\"process\":1", "\"process\":-1")]),
        ),
        (
            "nemesis txn and events",
            lines(&[
                INV,
                r#"{"index":1,"time_ns":2,"process":"nemesis","type":"info","f":"heal","value":{"final":true}}"#,
                r#"{"index":2,"time_ns":3,"process":"nemesis","type":"info","f":"txn","value":[["r",1,null]]}"#,
                &OK.replace("\"index\":1", "\"index\":3"),
            ]),
        ),
        (
            "failed completion with a malformed value",
            lines(&[
                INV,
                &OK.replace("\"ok\"", "\"fail\"").replace("[2]]", "[\"x\"]]"),
            ]),
        ),
        ("too many micro-ops", lines(&[&too_long])),
        ("unknown type", lines(&[&INV.replace("invoke", "done")])),
    ];
    for (name, text) in cases {
        for threads in [1, 3] {
            let (old, new) = both(text.as_bytes(), threads);
            assert_eq!(old, new, "{name}");
            if name == "valid" || name.starts_with("spellings") || name.starts_with("nemesis") {
                assert!(old.is_ok(), "{name}: {old:?}");
            }
            if name.contains("error") && !name.starts_with("failed")
                || name.contains("without") && name != "ok completion without value"
            {
                assert!(old.is_err(), "{name}: {old:?}");
            }
        }
    }
}
