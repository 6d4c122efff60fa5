//! The readers' bounds and error messages, on inputs a hostile or broken file can hold.

use crate::*;
use schism_history::{
    MAX_EDN_DEPTH, MAX_EDN_FORM_BYTES, MAX_LINE_BYTES, ReadWarning, read_edn, read_edn_bytes,
    read_edn_file, read_history_file, read_jsonl, read_jsonl_threads,
};
use std::io::Read;

const OP: &str = "{:process 0 :type :invoke :f :read :value nil}";

#[test]
fn deep_edn_nesting_is_one_error_naming_the_line() {
    let path = Path::new("d.edn");
    // The reproduction from the issue: 10,000 open brackets aborted with a stack overflow.
    let e = read_edn(&"[".repeat(10_000), path).unwrap_err().to_string();
    assert_located(&e, path);
    assert!(
        e.starts_with("d.edn:1:") && e.contains("nest deeper"),
        "{e}"
    );
    // Deep inside an op on line 3; tagged literals and discards nest too.
    for deep in [
        "[".repeat(100_000),
        "#_".repeat(100_000),
        "#t ".repeat(100_000),
        "{:a ".repeat(100_000),
    ] {
        let text = format!("[{OP}\n{OP}\n {{:process 1 :type :ok :f :read :value {deep}");
        let e = read_edn(&text, path).unwrap_err().to_string();
        assert_located(&e, path);
        assert!(e.starts_with("d.edn:3:"), "{e}");
    }
    // Nesting within the limit is read.
    let v = format!(
        "{}1{}",
        "[".repeat(MAX_EDN_DEPTH - 3),
        "]".repeat(MAX_EDN_DEPTH - 3)
    );
    let h = read_edn(
        &format!("[{{:process 0 :type :invoke :f :write :value {v}}}]"),
        path,
    )
    .unwrap();
    assert_eq!(h.len(), 1);
}

#[test]
fn a_line_longer_than_the_limit_is_one_error_in_bounded_memory() {
    let path = Path::new("z.jsonl");
    let good = written_history(3);
    // Two good lines, then an endless line of zero bytes (what /dev/zero gives).
    let first_two: Vec<u8> = good
        .split_inclusive(|&b| b == b'\n')
        .take(2)
        .flatten()
        .copied()
        .collect();
    let input = first_two.as_slice().chain(std::io::repeat(0).take(1 << 40));
    let e = read_jsonl(std::io::BufReader::new(input), path)
        .unwrap_err()
        .to_string();
    assert_located(&e, path);
    assert!(
        e.starts_with("z.jsonl:3:") && e.contains("longer than"),
        "{e}"
    );
    // A line of exactly the limit is not refused for its length.
    let mut exact = vec![b' '; MAX_LINE_BYTES];
    exact.push(b'\n');
    exact.extend_from_slice(&good);
    let (h, _) = read_jsonl(exact.as_slice(), path).unwrap();
    assert!(!h.is_empty());
    // The real device, through the file reader.
    let dev = Path::new("/dev/zero");
    let e = read_history_file(dev).unwrap_err().to_string();
    assert_located(&e, dev);
}

#[test]
fn edn_forms_and_files_are_bounded() {
    let path = Path::new("big.edn");
    let long = format!(
        "[{OP}\n{{:process 0 :type :ok :f :read :value \"{}\"}}]",
        "x".repeat(MAX_EDN_FORM_BYTES + 1)
    );
    let e = read_edn(&long, path).unwrap_err().to_string();
    assert_located(&e, path);
    assert!(
        e.starts_with("big.edn:2:") && e.contains("longer than"),
        "{e}"
    );
    // A file past MAX_EDN_BYTES is refused before it is parsed (a sparse file: no disk).
    let dir = std::env::temp_dir().join(format!("schism-edn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let huge = dir.join("huge.edn");
    let f = std::fs::File::create(&huge).unwrap();
    f.set_len(schism_history::MAX_EDN_BYTES as u64 + 10)
        .unwrap();
    let e = read_edn_file(&huge).unwrap_err().to_string();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_located(&e, &huge);
    assert!(e.contains("larger than"), "{e}");
}

#[test]
fn invalid_utf8_names_the_line() {
    let path = Path::new("u.jsonl");
    let good = written_history(4);
    let mut lines: Vec<Vec<u8>> = good
        .split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect();
    // A bad byte inside a string value of line 3.
    let at = lines[2].iter().position(|&b| b == b'"').unwrap() + 1;
    lines[2].insert(at, 0xFF);
    let bad: Vec<u8> = lines.concat();
    let e = read_jsonl(bad.as_slice(), path).unwrap_err().to_string();
    assert_located(&e, path);
    assert!(e.starts_with("u.jsonl:3:") && e.contains("UTF-8"), "{e}");
    // Cut inside a character on the last line: a run killed mid-write, a warning.
    let mut cut = good.clone();
    cut.extend_from_slice(b"{\"index\":99,\"f\":\"\xC3");
    let (h, w) = read_jsonl(cut.as_slice(), path).unwrap();
    assert!(!h.is_empty());
    assert!(
        matches!(w[..], [ReadWarning::TruncatedLastLine { .. }]),
        "{w:?}"
    );
    // EDN: the line the bad byte is on.
    let edn = format!("[{OP}\n{OP}\n{OP}]").into_bytes();
    let mut bad = edn.clone();
    let third = bad.iter().rposition(|&b| b == b'{').unwrap();
    bad.insert(third + 3, 0xC0);
    let e = read_edn_bytes(&bad, Path::new("u.edn"))
        .unwrap_err()
        .to_string();
    assert_located(&e, Path::new("u.edn"));
    assert!(e.starts_with("u.edn:3:") && e.contains("UTF-8"), "{e}");
}

#[test]
fn a_leading_bom_is_accepted() {
    let path = Path::new("b.jsonl");
    let good = written_history(5);
    let plain = read_jsonl(good.as_slice(), path).unwrap().0;
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend_from_slice(&good);
    let (h, w) = read_jsonl(bom.as_slice(), path).unwrap();
    assert!(w.is_empty());
    assert_eq!(h, plain);
    let edn = format!("\u{FEFF}[{OP}\n{{:process 0 :type :ok :f :read :value 1}}]");
    let h = read_edn(&edn, Path::new("b.edn")).unwrap();
    assert_eq!(h.len(), 2);
    // Only at the start: a BOM inside a line is an error naming that line.
    let mut mid = good.clone();
    let second = mid.iter().position(|&b| b == b'\n').unwrap() + 1;
    mid.splice(second..second, b"\xEF\xBB\xBF".iter().copied());
    let e = read_jsonl(mid.as_slice(), path).unwrap_err().to_string();
    assert!(e.starts_with("b.jsonl:2:"), "{e}");
}

#[test]
fn errors_quote_at_most_200_characters() {
    let path = Path::new("q.jsonl");
    let huge = "x".repeat(6_900_000);
    let line =
        format!("{{\"index\":0,\"time_ns\":1,\"process\":0,\"type\":\"{huge}\",\"f\":\"read\"}}\n");
    let e = read_jsonl(line.as_bytes(), path).unwrap_err().to_string();
    assert_located(&e, path);
    assert!(e.len() < 400, "{} characters", e.len());
    let edn = format!("[{OP}\n{{:process 0 :type :{huge} :f :read}}]");
    let e = read_edn(&edn, Path::new("q.edn")).unwrap_err().to_string();
    assert_located(&e, Path::new("q.edn"));
    assert!(e.starts_with("q.edn:2:") && e.len() < 400, "{e}");
}

#[test]
fn pairing_errors_name_the_line_as_well_as_the_index() {
    let path = Path::new("p.jsonl");
    let good = written_history(6);
    let mut lines: Vec<&[u8]> = good.split_inclusive(|&b| b == b'\n').collect();
    // Drop line 2 (the first completion): line 3's op then completes nothing... or
    // invokes again; either way the error is about the op on line 2 of the new file.
    lines.remove(1);
    let bad = lines.concat();
    let (h, _) = read_jsonl(bad.as_slice(), path).unwrap();
    let e = h.operations().unwrap_err().to_string();
    assert_located(&e, path);
    assert!(e.contains("op index"), "{e}");
    let edn = format!("[{OP}\n{OP}]");
    let h = read_edn(&edn, Path::new("p.edn")).unwrap();
    let e = h.operations().unwrap_err().to_string();
    assert!(e.starts_with("p.edn:2: op index 1:"), "{e}");
}

/// Parsing on several threads gives what one thread gives: the same ops and lines, the
/// same first error (a later malformed line in another batch, or an earlier one, must
/// not change which is reported), the same truncated-last-line warning.
#[test]
fn line_parallel_reading_matches_one_thread() {
    // Ops as schism's writer emits them, enough for several batches.
    let mut w = HistoryWriter::new(Vec::new());
    for i in 0..100_000u64 {
        let kind = if i % 2 == 0 {
            OpType::Invoke
        } else {
            OpType::Ok
        };
        let mut op = Op::new(
            i,
            i * 1000,
            Process::client(i % 7),
            kind,
            F::Append,
            Some(i % 5),
            Value::list(vec![1, 2, i as i64]),
        );
        op.set_node(Some("n1".into()));
        w.append(&op).unwrap();
    }
    w.flush().unwrap();
    let text = w.into_inner().unwrap();
    assert!(
        text.len() > 2 * schism_history::BATCH_BYTES,
        "spans batches"
    );
    let path = Path::new("big.jsonl");
    let (one, w1) = read_jsonl_threads(text.as_slice(), path, 1).unwrap();
    let (many, w4) = read_jsonl_threads(text.as_slice(), path, 4).unwrap();
    assert_eq!(one, many);
    assert_eq!((w1, w4), (vec![], vec![]));
    let last = one.ops.last().unwrap().index();
    assert_eq!(one.locate(last), many.locate(last));
    // Two bad lines, in different batches and parts: the first one is reported.
    let lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
    let mut bad = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        match i {
            30_000 => bad.extend_from_slice(b"{\"index\":oops}"),
            60_000 => bad.extend_from_slice(b"not json"),
            _ => bad.extend_from_slice(l),
        }
        if i + 1 < lines.len() {
            bad.push(b'\n');
        }
    }
    let e1 = read_jsonl_threads(bad.as_slice(), path, 1)
        .unwrap_err()
        .to_string();
    let e4 = read_jsonl_threads(bad.as_slice(), path, 4)
        .unwrap_err()
        .to_string();
    assert_eq!(e1, e4);
    assert!(
        e1.starts_with("big.jsonl:30001: not a valid history op"),
        "{e1}"
    );
    // A cut-off last line after many batches is still a warning.
    let cut = &text[..text.len() - 20];
    let (h1, w1) = read_jsonl_threads(cut, path, 1).unwrap();
    let (h4, w4) = read_jsonl_threads(cut, path, 4).unwrap();
    assert_eq!(h1, h4);
    assert_eq!(w1, w4);
    assert_eq!(w1.len(), 1);
}

/// Following a file (`EdnStream`, for `schism check --follow`) in pieces of varying size
/// gives, for every real Jepsen history of the Knossos corpus, exactly the ops reading the
/// whole file gives, and lines that point at each op's form.
#[test]
fn following_each_knossos_file_in_pieces_reads_what_the_whole_file_reader_reads() {
    let Some(dir) = knossos_dir() else { return };
    let mut files = Vec::new();
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "edn") {
                files.push(p);
            }
        }
    }
    assert!(
        files.len() >= 100,
        "the corpus has its files: {}",
        files.len()
    );
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    for path in &files {
        let bytes = std::fs::read(path).unwrap();
        let whole = read_edn_bytes(&bytes, path).unwrap();
        let mut s = schism_history::EdnStream::new(path);
        let mut got = Vec::new();
        let mut rest = bytes.as_slice();
        while !rest.is_empty() {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let n = (1 + rng % 4096) as usize;
            let (chunk, tail) = rest.split_at(n.min(rest.len()));
            got.extend(s.push(chunk).unwrap());
            rest = tail;
        }
        s.finish().unwrap();
        assert_eq!(got.len(), whole.ops.len(), "{}", path.display());
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.lines().collect();
        for ((op, line), want) in got.iter().zip(&whole.ops) {
            assert_eq!(op, want, "{}:{line}", path.display());
            assert!(lines[line - 1].contains('{'), "{}:{line}", path.display());
        }
    }
}

/// The compact op's 32-bit limits (issue #19) are reader errors naming the line, in both
/// formats, never a wrapped number.
#[test]
fn numbers_beyond_the_compact_ops_limits_name_the_line() {
    let path = Path::new("big.jsonl");
    let ok = r#"{"index":0,"time_ns":0,"process":1,"type":"invoke","f":"read","key":4294967294}"#;
    for (bad, says) in [
        (
            r#"{"index":1,"time_ns":0,"process":2,"type":"invoke","f":"read","key":5000000000}"#,
            "key 5000000000 exceeds schism's limit of 4294967294 keys per history",
        ),
        (
            r#"{"index":4294967296,"time_ns":0,"process":2,"type":"invoke","f":"read","key":1}"#,
            "index 4294967296 exceeds schism's limit of 4294967295 ops per history",
        ),
        (
            r#"{"index":1,"time_ns":0,"process":4294967295,"type":"invoke","f":"read","key":1}"#,
            "process 4294967295 exceeds schism's limit of 4294967294 client processes",
        ),
    ] {
        let text = format!("{ok}\n{bad}\n");
        let e = read_jsonl(text.as_bytes(), path).unwrap_err().to_string();
        assert!(e.starts_with("big.jsonl:2:") && e.contains(says), "{e}");
    }
    let (h, _) = read_jsonl(format!("{ok}\n").as_bytes(), path).unwrap();
    assert_eq!(h.ops[0].key(), Some(4294967294));
    let edn = format!("[{OP}\n{{:process 4294967295 :type :invoke :f :read :value nil}}]");
    let e = read_edn(&edn, Path::new("big.edn"))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("big.edn:2:") && e.contains("limit of 4294967294 client processes"),
        "{e}"
    );
}

/// A register history of `n` invoke/ok pairs as JSON Lines, about 90 bytes a line.
fn register_lines(n: usize) -> Vec<String> {
    (0..n)
        .flat_map(|i| {
            let (p, k) = (i % 7, i % 5);
            [
                format!(r#"{{"index":{},"time_ns":{},"process":{p},"type":"invoke","f":"write","key":{k},"value":{i}}}"#, 2 * i, 20 * i),
                format!(r#"{{"index":{},"time_ns":{},"process":{p},"type":"ok","f":"write","key":{k},"value":{i}}}"#, 2 * i + 1, 20 * i + 10),
            ]
        })
        .collect()
}

/// The file reader (lines cut on their own thread, one batch ahead, over several batches)
/// reads what the one-thread reader reads: the same ops and lines, the first error, the
/// warning for a cut-off last line.
#[test]
fn the_file_reader_cutting_ahead_reads_what_one_thread_reads() {
    let dir = std::env::temp_dir().join(format!("schism-piped-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut lines = register_lines(60_000); // ~11 MB: three batches
    lines.insert(70_000, String::new()); // a blank line in the second batch
    let good = lines.join("\n") + "\n";
    let mut bad_lines = lines.clone();
    bad_lines[100_000] = "{\"index\":".into(); // malformed, in the third batch
    let bad = bad_lines.join("\n") + "\n";
    let cut = good.clone() + r#"{"index":999999,"time"#;
    for (name, text) in [("good", &good), ("bad", &bad), ("cut", &cut)] {
        let path = dir.join(format!("{name}.jsonl"));
        std::fs::write(&path, text).unwrap();
        let piped = read_history_file(&path);
        let one = read_jsonl_threads(text.as_bytes(), &path, 1);
        match (piped, one) {
            (Ok((a, wa)), Ok((b, wb))) => {
                assert_eq!(a, b, "{name}");
                assert_eq!(wa, wb, "{name}");
                for i in [0u64, 69_998, 69_999, 70_000, 119_999, 999_999] {
                    assert_eq!(a.locate(i), b.locate(i), "{name} index {i}");
                }
                assert_eq!(a.locate(70_000).map(|(_, l)| l), Some(70_002), "{name}");
            }
            (Err(a), Err(b)) => {
                assert_eq!(a.to_string(), b.to_string(), "{name}");
                assert!(a.to_string().contains(":100001:"), "{a}");
            }
            (a, b) => panic!("{name}: {:?} vs {:?}", a.map(|_| ()), b.map(|_| ())),
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
