//! Integration tests of the history readers: their bounds (nesting, line length, size),
//! their errors (always `file:line`, short quotes), and a fuzz run over both formats.

mod fuzz;
mod readers;
mod txns;

use schism_history::{F, HistoryWriter, Op, OpType, Process, Value};
use std::path::{Path, PathBuf};

/// A history as schism's own writer emits it: clients running register and append ops
/// (ok, fail, info), a nemesis starting and stopping a partition, node names and errors.
pub fn written_history(ops: usize) -> Vec<u8> {
    let mut w = HistoryWriter::new(Vec::new());
    let mut index = 0u64;
    let mut push = |w: &mut HistoryWriter<Vec<u8>>, mut op: Op| {
        op.set_index(index);
        op.time_ns = index * 1_000;
        index += 1;
        w.append(&op).unwrap();
    };
    let mut appended: Vec<i64> = Vec::new();
    for i in 0..ops {
        let p = (i % 4) as u64;
        let client = Process::client(p);
        if i % 17 == 5 {
            let f = F::parse(if i % 34 == 5 {
                "start-partition"
            } else {
                "stop-partition"
            });
            let v = Value::other(serde_json::json!({"n1": ["n2", "n3"]}));
            push(
                &mut w,
                Op::new(0, 0, Process::NEMESIS, OpType::Info, f, None, v),
            );
            continue;
        }
        let (f, invoke_v, done_v) = match i % 3 {
            0 => {
                appended.push(i as i64);
                (F::Append, Value::Int(i as i64), Value::Int(i as i64))
            }
            1 => (F::Read, Value::Null, Value::list(appended.clone())),
            _ => (F::Write, Value::Int(i as i64), Value::Int(i as i64)),
        };
        let key = Some((i % 2) as u64);
        push(
            &mut w,
            Op::new(0, 0, client, OpType::Invoke, f, key, invoke_v),
        );
        let kind = match i % 11 {
            3 => OpType::Fail,
            7 => OpType::Info,
            _ => OpType::Ok,
        };
        let mut done = Op::new(0, 0, client, kind, f, key, done_v);
        done.set_node(Some(format!("n{}", 1 + i % 3)));
        if kind != OpType::Ok {
            done.set_error(Some("timeout: no reply within 500ms".into()));
        }
        push(&mut w, done);
    }
    w.flush().unwrap();
    w.into_inner().unwrap()
}

/// The Knossos corpus (`../shared/data/knossos`: real Jepsen EDN output), or `None` when
/// it is absent outside CI.
pub fn knossos_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/knossos");
    if dir.join("expected.tsv").is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "the Knossos corpus is missing: expected {}",
        dir.display()
    );
    eprintln!("note: {} is missing; EDN seeds are skipped", dir.display());
    None
}

/// Asserts that `e` names `path:line` (line ≥ 1) and quotes at most ~200 characters.
pub fn assert_located(e: &str, path: &Path) {
    let prefix = format!("{}:", path.display());
    let rest = e
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("error does not start with {prefix}: {e}"));
    let (line, msg) = rest
        .split_once(": ")
        .unwrap_or_else(|| panic!("no line number: {e}"));
    let line: usize = line
        .parse()
        .unwrap_or_else(|_| panic!("no line number: {e}"));
    assert!(line >= 1, "{e}");
    assert!(
        msg.chars().count() <= schism_history::MAX_ERROR_CHARS + 1,
        "message longer than {} characters: {e}",
        schism_history::MAX_ERROR_CHARS
    );
}
