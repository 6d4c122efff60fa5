//! Bad input gets one clear line naming the fix, and exit 3.

use crate::*;
use std::io::Write;

fn one_error_line(o: &Output) -> String {
    let err = stderr(o);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("schism: error:"))
        .collect();
    assert_eq!(lines.len(), 1, "expected one error line, got:\n{err}");
    lines[0].to_owned()
}

#[test]
fn malformed_history_line_names_file_and_line() {
    let dir = tempdir();
    let path = dir.path().join("h.jsonl");
    let mut f = std::fs::File::create(&path).unwrap();
    writeln!(
        f,
        r#"{{"index":0,"time_ns":1,"process":0,"type":"invoke","f":"append","key":1,"value":1}}"#
    )
    .unwrap();
    writeln!(
        f,
        r#"{{"index":1,"time_ns":2,"process":0,"type":"ok","f":"append","key":1,"value":1}}"#
    )
    .unwrap();
    writeln!(
        f,
        r#"{{"index":2,"time_ns":3,"process":0,"type":"invoke" "f":"read","key":1}}"#
    )
    .unwrap();
    writeln!(
        f,
        r#"{{"index":3,"time_ns":4,"process":0,"type":"ok","f":"read","key":1,"value":[1]}}"#
    )
    .unwrap();
    drop(f);
    let out = schism().arg("check").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let line = one_error_line(&out);
    assert!(line.contains(&format!("{}:3:", path.display())), "{line}");
}

#[test]
fn inconsistent_history_names_the_op() {
    let dir = tempdir();
    let path = dir.path().join("h.jsonl");
    std::fs::write(
        &path,
        concat!(
            r#"{"index":0,"time_ns":1,"process":0,"type":"invoke","f":"append","key":1,"value":1}"#,
            "\n",
            r#"{"index":1,"time_ns":2,"process":0,"type":"invoke","f":"append","key":1,"value":2}"#,
            "\n"
        ),
    )
    .unwrap();
    let out = schism().arg("check").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(one_error_line(&out).contains("index 1"));
}

#[test]
fn consistency_model_on_a_single_object_history_is_refused() {
    // A history Jepsen wrote (Knossos's cas-register corpus): not transactional.
    let Some(corpus) = knossos::corpus() else {
        return;
    };
    let path = corpus.join("cas-register/bad/bad-analysis.edn");
    let out = schism()
        .args(["check", "--consistency-model", "serializable"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let line = one_error_line(&out);
    assert!(
        line.contains("--consistency-model applies to transactional histories only")
            && line.contains("--workload list-append"),
        "{line}"
    );
}

#[test]
fn port_already_in_use_is_one_clear_line() {
    let store = tempdir();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    // Node n1 gets the base port itself.
    let out = run_test(
        store.path(),
        &[
            "--base-port",
            &port.to_string(),
            "--time-limit",
            "2s",
            "--nemesis",
            "none",
        ],
    );
    assert_eq!(out.status.code(), Some(3));
    let line = one_error_line(&out);
    assert!(
        line.contains(&port.to_string()) && line.contains("in use"),
        "{line}"
    );
    assert!(line.contains("--base-port"), "the fix is named: {line}");
}

#[test]
fn unwritable_data_dir_is_one_clear_line() {
    let store = tempdir();
    // A path below a regular file can never be created, even as root.
    let file = store.path().join("plain-file");
    std::fs::write(&file, "x").unwrap();
    let bad = file.join("data");
    let out = run_test(
        store.path(),
        &["--data-dir", &bad.to_string_lossy(), "--time-limit", "2s"],
    );
    assert_eq!(out.status.code(), Some(3));
    let line = one_error_line(&out);
    assert!(
        line.contains(&bad.to_string_lossy().to_string()) && line.contains("--data-dir"),
        "{line}"
    );
}

#[test]
fn unwritable_store_is_one_clear_line() {
    let store = tempdir();
    let file = store.path().join("plain-file");
    std::fs::write(&file, "x").unwrap();
    let out = run_test(&file, &["--time-limit", "2s"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(one_error_line(&out).contains("--store"));
}

#[test]
fn database_targets_refuse_what_they_cannot_do_in_one_line() {
    let dir = tempdir();
    // --endpoints belongs to database targets: schism always provisions the reference cluster.
    let out = run_test(dir.path(), &["--endpoints", "127.0.0.1:2379"]);
    assert_eq!(out.status.code(), Some(3));
    let line = one_error_line(&out);
    assert!(
        line.contains("--endpoints needs a database --target"),
        "{line}"
    );
    // Attached to a cluster it did not start, schism cannot kill, pause or cut anything.
    let out = run_test(
        dir.path(),
        &[
            "--target",
            "redis",
            "--endpoints",
            "127.0.0.1:1",
            "--nemesis",
            "kill",
        ],
    );
    assert_eq!(out.status.code(), Some(3));
    let line = one_error_line(&out);
    if cfg!(feature = "redis") {
        assert!(
            line.contains("cannot take kill faults") && line.contains("--endpoints"),
            "{line}"
        );
    } else {
        assert!(line.contains("--features redis"), "{line}");
    }
    // Read routings that only the reference cluster has.
    let out = run_test(dir.path(), &["--target", "postgres", "--reads", "ryw"]);
    assert_eq!(out.status.code(), Some(3));
    let line = one_error_line(&out);
    assert!(
        line.contains("--reads ryw") || line.contains("--features postgres"),
        "{line}"
    );
    // On hosts over SSH, clock faults go through the shim compiled on each host: a Go
    // server (etcd) still refuses them, before any host is contacted (these addresses are
    // documentation-only, TEST-NET-1: a connection attempt would hang until its timeout).
    let inventory = dir.path().join("hosts.toml");
    std::fs::write(
        &inventory,
        "[[host]]\naddress = \"192.0.2.1\"\n[[host]]\naddress = \"192.0.2.2\"\n[[host]]\naddress = \"192.0.2.3\"\n",
    )
    .unwrap();
    let inv = inventory.to_string_lossy();
    let out = run_test(
        dir.path(),
        &[
            "--inventory",
            &inv,
            "--target",
            "etcd",
            "--nemesis",
            "clock",
        ],
    );
    assert_eq!(out.status.code(), Some(3));
    let line = one_error_line(&out);
    if cfg!(feature = "etcd") {
        assert!(
            line.contains("etcd cannot take clock faults") && line.contains("vDSO"),
            "{line}"
        );
    } else {
        assert!(line.contains("--features etcd"), "{line}");
    }
    // Nothing was left behind by the refusals.
    assert!(!dir.path().join("default").exists());
}

#[test]
fn transactional_knobs_and_targets_are_refused_before_anything_starts() {
    let cases: [(&[&str], &str); 5] = [
        (
            &["test", "--consistency-model", "serializable"],
            "--consistency-model applies to the transactional workloads only",
        ),
        (
            &["test", "--workload", "list-append", "--target", "redis"],
            "cannot run on --target redis: redis has no transactions",
        ),
        (
            &["test", "--workload", "list-append", "--stop-on-anomaly"],
            "--stop-on-anomaly needs the online checker",
        ),
        (
            &[
                "test",
                "--workload",
                "rw-register",
                "--min-txn-length",
                "5",
                "--max-txn-length",
                "2",
            ],
            "--min-txn-length 5 exceeds --max-txn-length 2",
        ),
        (
            &["sim", "--workload", "list-append"],
            "schism sim does not simulate transactions",
        ),
    ];
    for (args, want) in cases {
        let store = tempdir();
        let out = schism()
            .args(args)
            .arg("--store")
            .arg(store.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", stderr(&out));
        let line = one_error_line(&out);
        assert!(line.contains(want), "{args:?}: {line}");
        assert_eq!(
            std::fs::read_dir(store.path()).unwrap().count(),
            0,
            "{args:?}: nothing created"
        );
    }
}

#[test]
fn isolation_is_refused_where_it_cannot_apply() {
    let mut cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--workload", "list-append", "--isolation", "serializable"],
            "--isolation applies to --target postgres and galera only",
        ),
        (
            vec!["--target", "postgres", "--isolation", "serializable"],
            "--isolation applies to the transactional workloads only",
        ),
    ];
    if cfg!(feature = "etcd") {
        cases.push((
            vec![
                "--target",
                "etcd",
                "--workload",
                "list-append",
                "--isolation",
                "read-committed",
            ],
            "etcd has no isolation levels",
        ));
    }
    for (args, want) in cases {
        let store = tempdir();
        let out = run_test(store.path(), &args);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", stderr(&out));
        let line = one_error_line(&out);
        assert!(line.contains(want), "{args:?}: {line}");
    }
}
