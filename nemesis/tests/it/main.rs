//! Integration tests of the nemesis mechanisms on this machine: the clock shim on a real
//! C program, the cgroup freezer on a real process tree, namespaces and nftables that
//! really drop packets, and the ledger's cleanup. Tests that need root or a tool check
//! for it: with `CI` set they fail naming the missing piece; otherwise they skip, saying so.

mod cgroup;
mod ledger;
mod netns;
mod shim;

/// Whether the test may go on: `Err(missing)` fails under CI and skips otherwise.
pub fn require(what: &str, missing: Option<String>) -> bool {
    match missing {
        None => true,
        Some(why) => {
            if std::env::var_os("CI").is_some() {
                panic!("{what} cannot run here: {why} (CI must provide it; see .ci/run)");
            }
            eprintln!("SKIPPED {what}: {why}");
            false
        }
    }
}

pub fn need_root() -> Option<String> {
    (!schism_nemesis::sys::is_root()).then(|| "needs root".to_owned())
}

pub fn need_tool(tool: &str, package: &str) -> Option<String> {
    (!schism_nemesis::sys::have(tool)).then(|| format!("`{tool}` not found (install {package})"))
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("schism-nem-")
        .tempdir()
        .expect("tempdir")
}

/// A fresh ledger in a private registry, for run id `id`.
pub fn ledger(dir: &std::path::Path, id: &str) -> schism_nemesis::Ledger {
    let reg = dir.join("registry");
    schism_nemesis::Ledger::create(&reg, id, dir).expect("ledger")
}
