//! The cgroup-v2 freezer stops a whole process tree and thaws it; the ledger removes it.

use crate::*;
use schism_nemesis::cgroup::{self, Freezer};
use std::process::Command;
use std::time::Duration;

#[test]
fn freezer_stops_a_process_tree_and_cleanup_removes_it() {
    if !require("the cgroup freezer test", need_root()) {
        return;
    }
    if !require(
        "the cgroup freezer test",
        cgroup::root()
            .is_none()
            .then(|| "no cgroup2 hierarchy mounted".into()),
    ) {
        return;
    }
    let dir = tempdir();
    let ledger = ledger(dir.path(), &format!("cg{}", std::process::id()));
    let name = format!("schism-test-{}", std::process::id());
    let fr = Freezer::create(&ledger, &name).unwrap();
    // A parent that forks a child after joining the cgroup: the tree is frozen together.
    let mut child = Command::new("sh")
        .args(["-c", "sleep 30 & wait"])
        .spawn()
        .unwrap();
    fr.add(child.id()).unwrap();
    // The shell forks `sleep` right away; give it a moment and add anything it made.
    std::thread::sleep(Duration::from_millis(200));
    for p in schism_nemesis::sys::run_children(child.id()) {
        fr.add(p).unwrap();
    }
    assert!(fr.pids().len() >= 2, "tree: {:?}", fr.pids());
    fr.freeze().unwrap();
    assert!(fr.is_frozen());
    fr.thaw().unwrap();
    assert!(!fr.is_frozen());
    fr.freeze().unwrap();
    let path = fr.path().to_owned();
    // Cleanup thaws, moves the processes out, removes the directory.
    ledger.finish();
    assert!(!path.exists(), "{} still exists", path.display());
    for p in schism_nemesis::sys::run_children(child.id()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(p as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}
