//! The ledger's cleanup kills a stopped process it recorded (continuing it first), but
//! only one whose command line still names the run; a live owner's entry is no leftover.

use crate::*;
use schism_nemesis::ledger::{self, Record};
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn cleanup_kills_recorded_stopped_processes_only() {
    let dir = tempdir();
    let marker = dir.path().display().to_string();
    // `sh -c CMD NAME`: NAME becomes $0 and shows in the command line. The command is a
    // builtin loop: a lone external command may be exec'd, replacing the command line.
    let mut ours = Command::new("sh")
        .args(["-c", "while :; do :; done", &marker])
        .spawn()
        .unwrap();
    let mut other = Command::new("sleep").arg("30").spawn().unwrap();
    stop_all(&[ours.id(), other.id()]);
    let record = Record {
        run_id: "x".into(),
        owner_pid: u32::MAX,
        pids: vec![ours.id(), other.id()],
        pid_marker: marker.clone(),
        ..Record::default()
    };
    assert!(!record.owner_alive());
    let done = ledger::cleanup_record(&record);
    assert!(
        done.iter().any(|l| l.contains(&ours.id().to_string())),
        "{done:?}"
    );
    let until = Instant::now() + Duration::from_secs(2);
    while ours.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < until,
            "the stopped process survived cleanup"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        other.try_wait().unwrap().is_none(),
        "an unrelated process was touched"
    );
    let _ = other.kill();
    let _ = other.wait();
}

#[test]
fn only_a_dead_owners_record_is_a_leftover() {
    let dir = tempdir();
    // A live owner (this test) is not a leftover; a dead one is.
    let reg = dir.path().join("registry");
    let l = schism_nemesis::Ledger::create(&reg, "live", dir.path()).unwrap();
    assert!(ledger::leftovers(&reg).is_empty());
    assert!(ledger::refuse_leftovers(&reg).is_ok());
    let mut dead = l.record();
    dead.owner_pid = u32::MAX;
    dead.run_id = "dead".into();
    std::fs::write(reg.join("dead.json"), serde_json::to_vec(&dead).unwrap()).unwrap();
    let e = ledger::refuse_leftovers(&reg).unwrap_err().to_string();
    assert!(
        e.contains("leftovers of a killed run") && e.contains("schism cleanup"),
        "{e}"
    );
    ledger::cleanup_leftovers(&reg);
    assert!(ledger::leftovers(&reg).is_empty());
    drop(l);
    assert!(ledger::records(&reg).is_empty());
}

/// SIGSTOPs every pid and waits (up to 2 s each) until it shows as stopped: SIGSTOP lands
/// asynchronously.
fn stop_all(pids: &[u32]) {
    for &p in pids {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(p as i32),
            nix::sys::signal::Signal::SIGSTOP,
        )
        .unwrap();
    }
    for &p in pids {
        let until = Instant::now() + Duration::from_secs(2);
        while !std::fs::read_to_string(format!("/proc/{p}/stat"))
            .map(|st| {
                st.rsplit(')')
                    .next()
                    .is_some_and(|r| r.trim_start().starts_with('T'))
            })
            .unwrap_or(false)
        {
            assert!(Instant::now() < until, "process {p} never stopped");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
