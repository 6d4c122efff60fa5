//! `schism check --workload list-append|rw-register` on JSON Lines, which it reads
//! straight into compact transactions (no `History`): on the JSON Lines form of every Elle
//! fixture (checker/tests/data/txn), written by schism's own writer with a nemesis event
//! and a cut-off last line added, it gives the verdict and anomaly counts the library
//! check of the EDN history gives, the statistics the general reader gives, and the
//! cut-off line as a warning.

use crate::*;
use schism_checker::txn::{ConsistencyModel, TxnOptions, TxnWorkload, check_txn};
use schism_history::{F, HistoryWriter, Op, OpType, Process, Value};

#[test]
fn jsonl_forms_of_the_elle_fixtures_check_as_the_edn_histories_do() {
    let dir = tempdir();
    for f in txn_check::fixture_files() {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let (workload, w) = if name.starts_with("la-") {
            ("list-append", TxnWorkload::ListAppend)
        } else {
            ("rw-register", TxnWorkload::RwRegister)
        };
        let mut h = schism_history::read_edn_file(&f).unwrap();
        let want = check_txn(
            &h,
            &TxnOptions::new(w, ConsistencyModel::StrictSerializable),
        )
        .unwrap();
        // A nemesis event in the middle: the reader keeps it out of the transactions.
        let mid = h.ops.len() / 2;
        let event = Op::new(
            0,
            0,
            Process::NEMESIS,
            OpType::Info,
            F::parse("start-partition"),
            None,
            Value::other(serde_json::json!({"groups": [["n1"], ["n2", "n3"]]})),
        );
        h.ops.insert(mid, event);
        for (i, op) in h.ops.iter_mut().enumerate() {
            op.set_index(i as u64);
            op.time_ns = i as u64 * 1_000_000;
        }
        let mut out = HistoryWriter::new(Vec::new());
        for op in &h.ops {
            out.append(op).unwrap();
        }
        let mut bytes = out.into_inner().unwrap();
        bytes.extend_from_slice(br#"{"index":999,"time_ns":5,"proc"#);
        let path = dir.path().join(format!("{name}.jsonl"));
        std::fs::write(&path, &bytes).unwrap();
        let run = schism()
            .args(["check", "--json", "--workload", workload])
            .args(["--consistency-model", "strict-serializable"])
            .arg(&path)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&run.stdout)
            .unwrap_or_else(|e| panic!("{name}: {e}: {}", stderr(&run)));
        assert_eq!(
            v["validity"],
            serde_json::json!(want.validity),
            "{name}: {v:#}"
        );
        for (kind, n) in schism_checker::counts::count_map(std::slice::from_ref(&want)) {
            assert_eq!(v["counts"][&kind], n, "{name} {kind}: {v:#}");
        }
        let stats = schism_checker::stats::stats(&h).unwrap();
        assert_eq!(v["stats"], serde_json::to_value(&stats).unwrap(), "{name}");
        assert_eq!(v["history_lines"], h.ops.len(), "{name}");
        let warned = v["warnings"].as_array().unwrap();
        assert!(
            warned[0].as_str().unwrap().contains("cut off"),
            "{name}: {warned:?}"
        );
    }
}
