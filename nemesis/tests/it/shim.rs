//! The LD_PRELOAD clock shim skews a real C program's wall clock (time, gettimeofday,
//! clock_gettime(CLOCK_REALTIME)) and leaves CLOCK_MONOTONIC alone.

use crate::*;
use schism_nemesis::shim::{self, ClockFile};
use std::process::Command;

const PROBE: &str = r#"
#include <stdio.h>
#include <sys/time.h>
#include <time.h>
int main(void) {
    struct timespec rt, mono; struct timeval tv;
    clock_gettime(CLOCK_REALTIME, &rt);
    clock_gettime(CLOCK_MONOTONIC, &mono);
    gettimeofday(&tv, 0);
    printf("%ld %ld %ld %ld\n", (long)time(0), (long)tv.tv_sec, (long)rt.tv_sec, (long)mono.tv_sec);
    return 0;
}
"#;

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn probe(bin: &std::path::Path, env: &[(String, String)]) -> Vec<i64> {
    let out = Command::new(bin)
        .envs(env.iter().cloned())
        .output()
        .expect("run probe");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect()
}

#[test]
fn shim_skews_a_c_program_and_follows_the_file() {
    if !require("the clock shim test", need_tool("cc", "gcc")) {
        return;
    }
    let dir = tempdir();
    let lib = shim::build(&dir.path().join("shim")).expect("build the shim");
    let src = dir.path().join("probe.c");
    std::fs::write(&src, PROBE).unwrap();
    let bin = dir.path().join("probe");
    let cc = Command::new("cc")
        .arg("-o")
        .arg(&bin)
        .arg(&src)
        .status()
        .unwrap();
    assert!(cc.success());

    let ledger = ledger(dir.path(), "shimtest");
    let file = ClockFile::create(&ledger, &dir.path().join("clock")).unwrap();
    let env = shim::env(&lib, file.path());

    let plain = probe(&bin, &[]);
    let mono = plain[3];
    file.set(3_600_000, 1.0).unwrap();
    let skewed = probe(&bin, &env);
    let now = now_s();
    for (i, t) in skewed[..3].iter().enumerate() {
        assert!(
            (t - (now + 3600)).abs() <= 2,
            "value {i} = {t}, expected about {} (now {now} + 3600)",
            now + 3600
        );
    }
    assert!((skewed[3] - mono).abs() <= 2, "monotonic must stay real");

    // Rewritten in place: a day back.
    file.set(-86_400_000, 1.0).unwrap();
    let back = probe(&bin, &env);
    assert!((back[0] - (now_s() - 86_400)).abs() <= 2, "{back:?}");

    // Without the file the program runs on real time.
    let missing = shim::env(&lib, &dir.path().join("nope"));
    let real = probe(&bin, &missing);
    assert!((real[0] - now_s()).abs() <= 2);
    drop(file);
    ledger.finish();
    assert!(
        !dir.path().join("clock").exists(),
        "the ledger removes shim files"
    );
}
