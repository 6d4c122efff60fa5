//! Relative paths on the command line are taken from the working directory, once: a run
//! with a relative `--store`, `--data-dir` and `--junit` from a scratch folder, then
//! `check` and `report` of `<store>/latest`. (Each database target with the default
//! relative store is run by README's own commands, `readme.rs`.)

use crate::*;

#[test]
fn relative_store_data_dir_and_junit_resolve_from_the_working_directory() {
    let cwd = tempdir();
    let out = schism()
        .current_dir(cwd.path())
        .env("SCHISM_STATE_DIR", cwd.path().join("state"))
        .args([
            "test",
            "--store",
            "rel/store",
            "--data-dir",
            "rel/data",
            "--junit",
            "out/test.xml",
            "--reads",
            "leader",
            "--nemesis",
            "none",
            "--time-limit",
            "5s",
            "--seed",
            "3",
        ])
        .output()
        .expect("spawn schism");
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        verdict_line(&text),
        stderr(&out)
    );
    let run = only_run_dir(&cwd.path().join("rel/store"), "default");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    let store = config["test"]["store"].as_str().expect("store recorded");
    assert!(
        Path::new(store).is_absolute() && store.ends_with("rel/store"),
        "config.json records {store}"
    );
    assert_eq!(
        config["data_dir"].as_str().map(Path::new),
        Some(cwd.path().join("rel/data").as_path()),
        "node data under the working directory's rel/data"
    );
    assert!(
        cwd.path().join("rel/data/n1").is_dir(),
        "node n1's data dir"
    );
    assert!(cwd.path().join("out/test.xml").is_file(), "--junit file");

    let check = schism()
        .current_dir(cwd.path())
        .args(["check", "rel/store/latest", "--junit", "out/check.xml"])
        .output()
        .expect("spawn schism check");
    assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));
    assert!(
        cwd.path().join("out/check.xml").is_file(),
        "check --junit file"
    );

    let index = cwd.path().join("rel/store/index.html");
    std::fs::remove_file(&index).expect("index.html written by the run");
    std::fs::write(&index, "stale").unwrap();
    let report = schism()
        .current_dir(cwd.path())
        .args(["report", "rel/store/latest"])
        .output()
        .expect("spawn schism report");
    assert_eq!(report.status.code(), Some(0), "{}", stderr(&report));
    assert!(
        std::fs::read_to_string(&index).unwrap().contains("schism"),
        "report of <store>/latest refreshes the store's index.html"
    );
}
