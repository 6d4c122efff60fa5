//! Runs over SSH on a lab of 3 hosts (`schism lab up`): the reference cluster started by
//! the hosts' sshd (never `ip netns exec`), valid where the local test-the-tester row is
//! (the stale-read control is README's SSH command, run by `readme.rs`), hosts refused
//! before the run with the host and the fix, a transient SSH failure retried and
//! recorded, a SIGKILLed runner's leftovers removed from
//! every host by `schism cleanup`, and `lab down` leaving nothing. With the database
//! features, etcd and PostgreSQL run on the same hosts over SSH with the controls of their
//! local tests (linearizable etcd valid under partitions, kills and pauses, serializable
//! reads from a cut-off member stale; PostgreSQL sync + primary reads losing nothing across
//! a pause of the primary, its fence and a promotion, async + standby reads stale; Redis
//! without failover keeping every acknowledged append across a clock fault (the shim
//! compiled on the host, the server's own TIME read here) and a kill, replica reads stale
//! under a partition, a SIGKILLed runner's servers and sentinels removed by `cleanup`;
//! Galera losing nothing under a partition and a pause), their logs downloaded into the
//! run folder and nothing left on any host.
//!
//! One test walks the whole story, because a lab is a machine-wide thing (namespaces, a
//! subnet): its own lab folder (and so its own namespace names), never the user's lab.

use crate::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use schism_targets::remote::{Exec, HostSpec, Ssh, SshOptions};
use std::process::Stdio;

/// What a lab needs here, if anything is missing.
fn missing() -> Option<String> {
    schism_nemesis::lab::unavailable()
}

fn lab(dir: &Path, args: &[&str]) -> Output {
    let out = schism()
        .env("SCHISM_LAB_DIR", dir)
        .arg("lab")
        .args(args)
        .output()
        .expect("spawn schism lab");
    eprintln!(
        "--- schism lab {args:?} exited {:?}\n{}{}",
        out.status.code(),
        stdout(&out),
        stderr(&out)
    );
    out
}

/// Node processes started from the lab's host folders (not the SSH sessions here that
/// started them, whose command lines name them too).
fn lab_nodes(lab_dir: &Path) -> Vec<(u32, String)> {
    let dir = lab_dir.to_string_lossy();
    live_commands_with(&[&dir, " node --config "])
        .into_iter()
        .filter(|(_, cmd)| cmd.starts_with(&*dir))
        .collect()
}

fn parent_of(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |x| x.1);
    after
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// The nft tables on every lab host.
fn lab_tables(namespaces: &[String]) -> String {
    namespaces
        .iter()
        .map(|ns| {
            let out = Command::new("ip")
                .args(["netns", "exec", ns, "nft", "list", "tables"])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
        .collect()
}

/// Run folders left on the lab's hosts.
fn lab_run_dirs(lab_dir: &Path) -> Vec<PathBuf> {
    (1..=3)
        .flat_map(|i| {
            std::fs::read_dir(lab_dir.join(format!("h{i}/remote/runs")))
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
        })
        .collect()
}

/// An inventory like the lab's, with `edit` applied to its text.
fn edited_inventory(lab_dir: &Path, name: &str, edit: impl Fn(&str) -> String) -> PathBuf {
    let text = std::fs::read_to_string(lab_dir.join("inventory.toml")).unwrap();
    let path = lab_dir.join(name);
    std::fs::write(&path, edit(&text)).unwrap();
    path
}

fn refused(store: &Path, inventory: &Path, nemesis: &str) -> String {
    let out = run_test(
        store,
        &[
            "--inventory",
            &inventory.to_string_lossy(),
            "--nemesis",
            nemesis,
            "--time-limit",
            "5s",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "refused with exit 3");
    let err = stderr(&out);
    assert!(
        stdout(&out).lines().all(|l| !l.starts_with("verdict:")),
        "no run happened"
    );
    err.lines()
        .find(|l| l.starts_with("schism: error:"))
        .unwrap_or("<no error line>")
        .to_owned()
}

#[test]
fn reference_cluster_over_ssh_on_a_lab() {
    if !require("the SSH lab test", missing()) {
        return;
    }
    let scratch = tempdir();
    // Temp folders are 0700: the servers' own users (postgres) must reach the hosts'
    // folders under it.
    std::fs::set_permissions(
        scratch.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let lab_dir = scratch.path().join("lab");
    let store = scratch.path().join("store");
    let up = lab(&lab_dir, &["up", "--hosts", "3"]);
    assert_eq!(up.status.code(), Some(0), "lab up");
    let inventory = lab_dir.join("inventory.toml");
    assert!(stdout(&up).contains(&format!("inventory: {}", inventory.display())));
    let record = schism_nemesis::lab::load(&lab_dir).unwrap().unwrap();
    let namespaces: Vec<String> = record.hosts.iter().map(|h| h.namespace.clone()).collect();
    let result = std::panic::catch_unwind(|| story(&lab_dir, &store, &inventory, &namespaces));
    // Whatever happened: the lab goes, and leaves nothing behind.
    let down = lab(&lab_dir, &["down"]);
    assert_eq!(down.status.code(), Some(0), "lab down");
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    assert!(
        namespaces_with(&format!("schism-{}-", record.id)).is_empty(),
        "lab namespaces left"
    );
    let sshd: Vec<u32> = record.hosts.iter().filter_map(|h| h.sshd_pid).collect();
    for pid in sshd {
        assert!(
            matches!(proc_state(pid), None | Some('Z' | 'X')),
            "sshd {pid} left"
        );
    }
    assert!(!lab_dir.exists(), "lab folder (keys) left");
    assert!(
        !Path::new("/sys/class/net").join(&record.root_link).exists(),
        "lab veth left"
    );
}

fn story(lab_dir: &Path, store: &Path, inventory: &Path, namespaces: &[String]) {
    preflight_refusals(lab_dir, store);
    transient_failure_is_retried(lab_dir, inventory);
    sweep_without_the_ledger(lab_dir, store, inventory, namespaces);
    sigkilled_run_is_cleaned_from_every_host(lab_dir, store, inventory, namespaces);
    verdicts_match_the_local_rows(store, inventory);
    #[cfg(feature = "etcd")]
    etcd_over_ssh(lab_dir, store, inventory, namespaces);
    #[cfg(feature = "postgres")]
    postgres_over_ssh(lab_dir, store, inventory, namespaces);
    #[cfg(feature = "redis")]
    redis_over_ssh(lab_dir, store, inventory, namespaces);
    #[cfg(feature = "galera")]
    galera_over_ssh(lab_dir, store, inventory, namespaces);
    assert!(
        lab_run_dirs(lab_dir).is_empty(),
        "run folders left on hosts"
    );
    assert_eq!(lab_tables(namespaces), "", "nft tables left on hosts");
}

/// Unreachable host, changed host key, missing binary, no sudo: one line each, naming
/// the host and the fix, before anything runs.
fn preflight_refusals(lab_dir: &Path, store: &Path) {
    let text = std::fs::read_to_string(lab_dir.join("inventory.toml")).unwrap();
    let h1 = text
        .lines()
        .find_map(|l| l.strip_prefix("address = \""))
        .map(|a| a.trim_end_matches('"').to_owned())
        .unwrap();
    let unreachable = h1.rsplit_once('.').map(|(p, _)| format!("{p}.99")).unwrap();
    let inv = edited_inventory(lab_dir, "unreachable.toml", |t| {
        t.replacen(&format!("\"{h1}\""), &format!("\"{unreachable}\""), 1)
    });
    let line = refused(store, &inv, "none");
    assert!(
        line.contains("host h1") && line.contains("unreachable") && line.contains("sshd"),
        "{line}"
    );

    // h1's line in known_hosts carries h2's key: a changed key.
    let kh = lab_dir.join("known_hosts");
    let lines: Vec<String> = std::fs::read_to_string(&kh)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let h2_key = lines[1].split_once(' ').unwrap().1.to_owned();
    let wrong = lab_dir.join("wrong_known_hosts");
    std::fs::write(
        &wrong,
        format!("{h1} {h2_key}\n{}\n", lines[1..].join("\n")),
    )
    .unwrap();
    let inv = edited_inventory(lab_dir, "wrongkey.toml", |t| {
        t.replace(&kh.display().to_string(), &wrong.display().to_string())
    });
    let line = refused(store, &inv, "none");
    assert!(
        line.contains("host h1") && line.contains("changed") && line.contains("ssh-keygen"),
        "{line}"
    );

    // A PATH without /usr/sbin: no nft for partitions.
    let inv = edited_inventory(lab_dir, "nonft.toml", |t| {
        t.replace("sudo = false\n", "sudo = false\npath = \"/usr/bin:/bin\"\n")
    });
    let line = refused(store, &inv, "partition");
    assert!(
        line.contains("host h1") && line.contains("`nft` not found") && line.contains("nftables"),
        "{line}"
    );

    // sudo asked for where there is none (or it needs a password).
    if !schism_nemesis::sys::have("sudo") {
        let inv = edited_inventory(lab_dir, "sudo.toml", |t| {
            t.replace("sudo = false", "sudo = true")
        });
        let line = refused(store, &inv, "none");
        assert!(
            line.contains("host h") && line.contains("cannot become root") && line.contains("sudo"),
            "{line}"
        );
    }
}

/// The master connection dies under a command: it is re-opened, the command retried, the
/// failure recorded.
fn transient_failure_is_retried(lab_dir: &Path, _inventory: &Path) {
    let text = std::fs::read_to_string(lab_dir.join("inventory.toml")).unwrap();
    let address = text
        .lines()
        .find_map(|l| l.strip_prefix("address = \""))
        .map(|a| a.trim_end_matches('"').to_owned())
        .unwrap();
    let host = HostSpec {
        name: "h1".into(),
        key: Some(lab_dir.join("id_ed25519")),
        ..HostSpec::parse(&address).unwrap()
    };
    let ssh = Ssh::connect(
        host,
        SshOptions {
            known_hosts: lab_dir.join("known_hosts"),
            accept_new_host_keys: false,
            control_dir: lab_dir.join("ctl"),
            log_dir: lab_dir.join("ctl"),
        },
    )
    .expect("connect to h1");
    assert_eq!(ssh.run("echo one", None).unwrap().trim(), "one");
    let master = ssh.master_pid().expect("a master connection");
    kill(Pid::from_raw(master as i32), Signal::SIGKILL).unwrap();
    // Dead (a zombie until `Ssh` reaps it): the connection is lost.
    let until = Instant::now() + Duration::from_secs(5);
    while proc_state(master) != Some('Z') && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(ssh.run("echo two", None).unwrap().trim(), "two");
    let retries = ssh.retries();
    assert_eq!(retries.len(), 1, "{retries:?}");
    assert!(
        retries[0].contains("host h1") && retries[0].contains("retried"),
        "{retries:?}"
    );
    assert_ne!(ssh.master_pid(), Some(master), "a new master");
}

/// `cleanup --inventory` without any ledger: a node process of a run folder on h1, its
/// run folder and an nft table there are removed.
fn sweep_without_the_ledger(lab_dir: &Path, store: &Path, inventory: &Path, namespaces: &[String]) {
    let runs = lab_dir.join("h1/remote/runs/lost");
    std::fs::create_dir_all(runs.join("n1")).unwrap();
    let config = runs.join("n1/node.json");
    // A stand-in node: its command line is a node's (`… node --config <run folder>/…`).
    let mut node = Command::new("sh")
        .args(["-c", "sleep 60", "node", "--config"])
        .arg(&config)
        .spawn()
        .unwrap();
    // Stand-ins for a Redis server and sentinel and a MariaDB server of that run folder.
    let servers: Vec<std::process::Child> = [
        vec![
            "redis-server".to_owned(),
            format!("{}/n1/redis.conf", runs.display()),
        ],
        vec![
            "redis-sentinel".to_owned(),
            format!("{}/n1/sentinel.conf", runs.display()),
        ],
        vec![
            "mariadbd".to_owned(),
            format!("--defaults-file={}/n1/my.cnf", runs.display()),
        ],
    ]
    .into_iter()
    .map(|args| {
        Command::new("sh")
            .args(["-c", "sleep 60"])
            .args(args)
            .spawn()
            .unwrap()
    })
    .collect();
    let nft = Command::new("ip")
        .args([
            "netns",
            "exec",
            &namespaces[0],
            "nft",
            "add",
            "table",
            "inet",
            "schism",
        ])
        .status()
        .unwrap();
    assert!(nft.success());
    let empty = store.join("no-ledger");
    let out = schism()
        .env("SCHISM_STATE_DIR", &empty)
        .arg("cleanup")
        .arg("--inventory")
        .arg(inventory)
        .output()
        .unwrap();
    eprintln!("cleanup --inventory: {}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0));
    let status = node.wait().unwrap();
    assert!(!status.success(), "the stand-in node was killed");
    for mut server in servers {
        let status = server.wait().unwrap();
        assert!(!status.success(), "the stand-in server was killed");
    }
    assert!(!runs.exists(), "the run folder is gone");
    assert_eq!(lab_tables(namespaces), "", "the table is gone");
    assert!(
        stdout(&out).contains("host h1: killed pid"),
        "{}",
        stdout(&out)
    );
}

/// `schism test` on the lab's hosts as a child to SIGKILL later (its output dropped).
fn spawn_on_lab(store: &Path, inventory: &Path, name: &str, args: &[&str]) -> std::process::Child {
    schism()
        .env("SCHISM_STATE_DIR", state_dir(store))
        .args(["test", "--store"])
        .arg(store)
        .args(["--name", name, "--inventory"])
        .arg(inventory)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// SIGKILLs the runner (nothing of its own cleanup runs), then `schism cleanup` from the
/// ledger must succeed.
fn sigkill_then_cleanup(mut child: std::process::Child, store: &Path) {
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    let _ = child.wait();
    let clean = schism()
        .env("SCHISM_STATE_DIR", state_dir(store))
        .arg("cleanup")
        .output()
        .unwrap();
    eprintln!("cleanup: {}{}", stdout(&clean), stderr(&clean));
    assert_eq!(clean.status.code(), Some(0));
}

/// The nodes are children of each host's sshd; a SIGKILLed runner's nodes, nft rules and
/// run folders are removed from every host by `schism cleanup` (from the ledger).
fn sigkilled_run_is_cleaned_from_every_host(
    lab_dir: &Path,
    store: &Path,
    inventory: &Path,
    namespaces: &[String],
) {
    let child = spawn_on_lab(
        store,
        inventory,
        "killed",
        &[
            "--nemesis",
            "partition",
            "--nemesis-interval",
            "1s",
            "--time-limit",
            "30s",
        ],
    );
    let until = Instant::now() + Duration::from_secs(60);
    let mut seen_tables = false;
    let mut checked_parents = false;
    while Instant::now() < until && !(seen_tables && checked_parents) {
        let nodes = lab_nodes(lab_dir);
        if nodes.len() == 3 && !checked_parents {
            for (pid, cmd) in &nodes {
                let parent = parent_of(*pid);
                assert_eq!(
                    comm(parent),
                    "sshd",
                    "node {pid} ({cmd}) is not sshd's child"
                );
                // Nothing on the run path enters a namespace by `ip netns exec`.
                let mut p = parent;
                while p > 1 {
                    let c = schism_nemesis::sys::proc_cmdline(p).unwrap_or_default();
                    assert!(!c.contains("netns exec"), "ancestor {p}: {c}");
                    p = parent_of(p);
                }
            }
            checked_parents = true;
        }
        seen_tables |= lab_tables(namespaces).contains("schism");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(checked_parents, "the nodes never all ran");
    assert!(seen_tables, "no partition rule was ever made");
    sigkill_then_cleanup(child, store);
    let left = lab_nodes(lab_dir);
    assert!(left.is_empty(), "nodes left on the hosts: {left:?}");
    assert_eq!(lab_tables(namespaces), "", "nft rules left on the hosts");
    assert!(
        lab_run_dirs(lab_dir).is_empty(),
        "run folders left: {:?}",
        lab_run_dirs(lab_dir)
    );
}

/// DESIGN.md's row over SSH: leader-follower sync + lease + fencing is valid under
/// partitions, kills and pauses.
fn verdicts_match_the_local_rows(store: &Path, inventory: &Path) {
    let inv = inventory.to_string_lossy();
    let out = run_test(
        store,
        &[
            "--name",
            "valid",
            "--inventory",
            &inv,
            "--model",
            "leader-follower",
            "--workload",
            "register",
            "--replication",
            "sync",
            "--reads",
            "leader",
            "--read-lease",
            "on",
            "--fencing",
            "on",
            "--failover",
            "auto",
            "--nemesis",
            "partition,kill,pause",
            "--nemesis-interval",
            "3s",
            "--time-limit",
            "12s",
        ],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{}", verdict_line(&text));
    let run = only_run_dir(store, "valid");
    for n in ["n1", "n2", "n3"] {
        let log = std::fs::read_to_string(run.join("nodes").join(format!("{n}.log"))).unwrap();
        assert!(log.contains("listening on http://10.77."), "{n}.log: {log}");
    }
    let history = std::fs::read_to_string(run.join("history.jsonl")).unwrap();
    assert!(
        history.contains("\"net\":\"hosts\"") && history.contains("\"f\":\"start-"),
        "faults were made, partitions by nft on the hosts"
    );
    // The negative control, async with reads from any node (stale reads), is README's
    // own SSH command, run by the README test.
}

/// One database run on the lab's hosts: (exit code, stdout, run folder), after checking
/// that nothing of it is left on any host (server processes, run folders, nft rules).
#[cfg(any(
    feature = "etcd",
    feature = "postgres",
    feature = "redis",
    feature = "galera"
))]
fn db_run(
    lab_dir: &Path,
    store: &Path,
    inventory: &Path,
    namespaces: &[String],
    name: &str,
    args: &[&str],
) -> (Option<i32>, String, PathBuf) {
    let inv = inventory.to_string_lossy();
    let mut all = vec!["--name", name, "--inventory", &inv];
    all.extend_from_slice(args);
    let out = run_test(store, &all);
    eprintln!("--- {name}: {}", stderr(&out));
    let run = only_run_dir(store, name);
    assert_nothing_left(lab_dir, namespaces, name);
    (
        out.status.code(),
        format!("{}\n{}", stdout(&out), stderr(&out)),
        run,
    )
}

/// Nothing of run `name` is left on any lab host: no process started from a host's
/// folder (waited for, bounded), no run folder, no nft rule.
#[cfg(any(
    feature = "etcd",
    feature = "postgres",
    feature = "redis",
    feature = "galera"
))]
fn assert_nothing_left(lab_dir: &Path, namespaces: &[String], name: &str) {
    let dir = lab_dir.to_string_lossy();
    let until = Instant::now() + Duration::from_secs(5);
    let mut left = live_commands_with(&[&dir]);
    left.retain(|(_, c)| !c.contains("sshd"));
    while !left.is_empty() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
        left = live_commands_with(&[&dir]);
        left.retain(|(_, c)| !c.contains("sshd"));
    }
    assert!(
        left.is_empty(),
        "{name}: processes left on the hosts: {left:?}"
    );
    assert!(
        lab_run_dirs(lab_dir).is_empty(),
        "{name}: run folders left: {:?}",
        lab_run_dirs(lab_dir)
    );
    assert_eq!(lab_tables(namespaces), "", "{name}: nft rules left");
}

/// Anomaly kinds of a run's results.json.
#[cfg(any(
    feature = "etcd",
    feature = "postgres",
    feature = "redis",
    feature = "galera"
))]
fn anomaly_kinds(run: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(run.join("results.json")).expect("results.json");
    let v: serde_json::Value = serde_json::from_str(&text).expect("results.json is JSON");
    v["results"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["anomalies"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["kind"].as_str().map(str::to_owned))
        .collect()
}

/// A plan file (`--plan`) of `(at_s, change)`, the last change the final heal: faults at
/// fixed times, so each story makes the faults it is about (drawn schedules vary).
#[cfg(any(
    feature = "etcd",
    feature = "postgres",
    feature = "redis",
    feature = "galera"
))]
fn plan_file(dir: &Path, name: &str, changes: &[(f64, serde_json::Value)]) -> PathBuf {
    let mut list: Vec<serde_json::Value> = changes
        .iter()
        .map(|(at, c)| serde_json::json!({"at_ns": (at * 1e9) as u64, "change": c, "final_heal": false}))
        .collect();
    let end = changes.last().map_or(0.0, |c| c.0);
    list.push(serde_json::json!({"at_ns": (end * 1e9) as u64, "change": {"change": "heal"}, "final_heal": true}));
    let path = dir.join(format!("{name}.json"));
    let plan = serde_json::json!({"version": 1, "nodes": ["n1", "n2", "n3"], "changes": list});
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(&path, plan.to_string()).unwrap();
    path
}

/// The nemesis changes of a run that took effect, by `f` (`start-partition`, …).
#[cfg(any(
    feature = "etcd",
    feature = "postgres",
    feature = "redis",
    feature = "galera"
))]
fn faults_made(run: &Path) -> Vec<String> {
    nemesis_ops(run)
        .into_iter()
        .filter(|op| op["type"] == "info")
        .filter_map(|op| op["f"].as_str().map(str::to_owned))
        .collect()
}

/// Every one of `events` (nemesis `f`s: `start-kill`, `bump-clock`, …) was made.
#[cfg(any(
    feature = "etcd",
    feature = "postgres",
    feature = "redis",
    feature = "galera"
))]
fn assert_faults_made(run: &Path, events: &[&str]) {
    let made = faults_made(run);
    for f in events {
        assert!(made.iter().any(|m| m == f), "no {f}: {made:?}");
    }
}

/// The history records partitions as the hosts' (nft rules there, not a local netns).
#[cfg(any(
    feature = "etcd",
    feature = "postgres",
    feature = "redis",
    feature = "galera"
))]
fn assert_partitions_on_hosts(run: &Path) {
    let history = std::fs::read_to_string(run.join("history.jsonl")).unwrap();
    assert!(
        history.contains("\"net\":\"hosts\""),
        "partitions by nft on the hosts"
    );
}

/// Each node's log as downloaded into the run folder (empty when it is missing).
#[cfg(any(
    feature = "etcd",
    feature = "postgres",
    feature = "redis",
    feature = "galera"
))]
fn node_logs(run: &Path) -> Vec<(&'static str, String)> {
    ["n1", "n2", "n3"]
        .into_iter()
        .map(|n| {
            let log = std::fs::read_to_string(run.join("nodes").join(format!("{n}.log")));
            (n, log.unwrap_or_default())
        })
        .collect()
}

/// Every node's log came back from its host and holds each of `needles`.
#[cfg(any(
    feature = "etcd",
    feature = "postgres",
    feature = "redis",
    feature = "galera"
))]
fn assert_logs_downloaded(run: &Path, needles: &[&str]) {
    for (n, log) in node_logs(run) {
        assert!(
            needles.iter().all(|x| log.contains(x)),
            "{n}.log was not downloaded: {log:.300}"
        );
    }
}

/// A fault plan change that cuts `node` off from the other hosts.
#[cfg(any(
    feature = "etcd",
    feature = "postgres",
    feature = "redis",
    feature = "galera"
))]
fn isolate(node: &str) -> serde_json::Value {
    serde_json::json!({"change": "fault", "fault": "partition", "shape": "isolate", "node": node})
}

/// etcd on the lab's hosts: linearizable reads valid under partitions (nft on the hosts),
/// kills and pauses (signals over SSH); serializable reads from a cut-off member stale.
#[cfg(feature = "etcd")]
fn etcd_over_ssh(lab_dir: &Path, store: &Path, inventory: &Path, namespaces: &[String]) {
    if !require_db("etcd over SSH", &[("etcd", "etcd-server")], false) {
        return;
    }
    let _lock = db_lock();
    let heal = serde_json::json!({"change": "heal"});
    let plan = plan_file(
        store,
        "etcd-faults",
        &[
            (
                1.5,
                serde_json::json!({"change": "fault", "fault": "partition", "shape": "bridge",
                    "bridge": "n1", "left": ["n2"], "right": ["n3"]}),
            ),
            (3.5, heal.clone()),
            (
                4.5,
                serde_json::json!({"change": "fault", "fault": "kill", "targets": "leader"}),
            ),
            (6.5, heal.clone()),
            (
                7.5,
                serde_json::json!({"change": "fault", "fault": "pause", "targets": "leader"}),
            ),
            (9.5, heal.clone()),
        ],
    );
    let (code, text, run) = db_run(
        lab_dir,
        store,
        inventory,
        namespaces,
        "etcd-ssh-lin",
        &[
            "--target",
            "etcd",
            "--plan",
            &plan.to_string_lossy(),
            "--time-limit",
            "11s",
            "--reads",
            "any",
            "--rate",
            "150",
            "--concurrency",
            "5",
            "--client-timeout",
            "2s",
        ],
    );
    assert_eq!(code, Some(0), "{text}");
    assert_faults_made(&run, &["start-partition", "start-kill", "start-pause"]);
    assert_partitions_on_hosts(&run);
    assert_logs_downloaded(&run, &["10.77.", "\"level\""]);

    // Serializable reads from a member cut off from the others: stale.
    let plan = plan_file(store, "etcd-isolate", &[(1.0, isolate("n3")), (5.0, heal)]);
    let (code, text, run) = db_run(
        lab_dir,
        store,
        inventory,
        namespaces,
        "etcd-ssh-ser",
        &[
            "--target",
            "etcd",
            "--plan",
            &plan.to_string_lossy(),
            "--etcd-reads",
            "serializable",
            "--time-limit",
            "6s",
            "--reads",
            "any",
            "--rate",
            "150",
            "--concurrency",
            "5",
        ],
    );
    assert_eq!(code, Some(1), "{text}");
    let kinds = anomaly_kinds(&run);
    assert!(
        kinds.iter().any(|k| k == "stale-read"),
        "no stale read: {kinds:?}"
    );
}

/// PostgreSQL on the lab's hosts: sync replication with primary reads loses nothing when
/// the primary is paused, fenced (its whole process tree SIGKILLed over SSH) and replaced
/// by a promoted standby, the deposed primary rejoining by pg_rewind; async with standby
/// reads shows stale reads.
#[cfg(feature = "postgres")]
fn postgres_over_ssh(lab_dir: &Path, store: &Path, inventory: &Path, namespaces: &[String]) {
    if !require_db("postgres over SSH", db_postgres::PG, false) {
        return;
    }
    let _lock = db_lock();
    // The primary paused (SIGSTOP of its whole tree over SSH): the failover task fences it
    // (SIGKILL of the tree over SSH: a crash) and promotes a standby; the heal rejoins it
    // by pg_rewind. 20 s: with two synchronous standbys the promoted primary commits only
    // once the deposed one has rejoined (pg_rewind, ~5 s after the heal on a loaded box).
    let plan = plan_file(
        store,
        "pg-pause",
        &[
            (
                1.0,
                serde_json::json!({"change": "fault", "fault": "pause", "targets": "leader"}),
            ),
            (5.0, serde_json::json!({"change": "heal"})),
        ],
    );
    let (code, text, run) = db_run(
        lab_dir,
        store,
        inventory,
        namespaces,
        "pg-ssh-sync",
        &[
            "--target",
            "postgres",
            "--plan",
            &plan.to_string_lossy(),
            "--time-limit",
            "20s",
            "--replication",
            "sync",
            "--reads",
            "leader",
            "--failover",
            "auto",
        ],
    );
    let kinds = anomaly_kinds(&run);
    assert!(
        !kinds.iter().any(|k| k == "lost-write"),
        "{kinds:?}\n{text}"
    );
    assert_eq!(code, Some(0), "{kinds:?}\n{text}");
    let made = faults_made(&run);
    assert!(
        made.iter().any(|m| m == "start-pause"),
        "no pause: {made:?}"
    );
    // The failover fenced the paused primary over SSH and promoted a standby. (Acks from
    // the promoted primary are not required: with two synchronous standbys it commits only
    // once the deposed primary has rejoined by pg_rewind, which took 4.6–6.9 s after the
    // heal on CI's box, sometimes past the end of the run.)
    assert!(
        text.contains("before promoting") && text.contains(", promoted n"),
        "no fence and promotion over SSH: {text}"
    );
    // Every node's log came back from its host: each started (a standby logs "ready to
    // accept read-only connections"), and a node running at the end shut down cleanly —
    // not necessarily n1: fenced by SIGKILL, it may still have been rejoining by pg_rewind
    // when the run ended, so its log can end without a shutdown.
    assert_logs_downloaded(&run, &["ready to accept"]);
    assert!(
        node_logs(&run)
            .iter()
            .any(|(_, l)| l.contains("database system is shut down")),
        "no node's log shows the clean shutdown at the end of the run"
    );

    let (code, text, run) = db_run(
        lab_dir,
        store,
        inventory,
        namespaces,
        "pg-ssh-async",
        &[
            "--target",
            "postgres",
            "--nemesis",
            "none",
            "--time-limit",
            "3s",
            "--replication",
            "async",
            "--reads",
            "follower",
        ],
    );
    assert_eq!(code, Some(1), "{text}");
    let kinds = anomaly_kinds(&run);
    assert!(
        kinds.iter().any(|k| k == "stale-read"),
        "no stale read: {kinds:?}"
    );
}

/// Redis on the lab's hosts: without failover, a primary whose clock is set 4.1 s back
/// (the shim compiled on its host: its own TIME moves), then killed (SIGKILL over SSH) and
/// restarted from its append-only file keeps every acknowledged append (reads from the
/// primary: valid); with reads from the replicas, a primary cut off from them by nft
/// leaves them serving stale reads (the history records the partitions as the hosts',
/// `net: hosts`); a runner SIGKILLed while its servers and sentinels run on the hosts
/// leaves nothing once `schism cleanup` has run.
#[cfg(feature = "redis")]
fn redis_over_ssh(lab_dir: &Path, store: &Path, inventory: &Path, namespaces: &[String]) {
    if !require_db(
        "redis over SSH",
        &[
            ("redis-server", "redis-server"),
            ("redis-sentinel", "redis-sentinel"),
        ],
        false,
    ) {
        return;
    }
    let _lock = db_lock();
    let started = Instant::now();
    let heal = serde_json::json!({"change": "heal"});
    // Faults over SSH land a second or more late each on a loaded machine (the next waits
    // for the previous; a restart waits until the server answers): three changes, the
    // plan ending at 2 s of a 12 s run, so reads follow the final heal. The primary is
    // killed while its clock is skewed, so the restarted server loads the shim again.
    let plan = plan_file(
        store,
        "redis-faults",
        &[
            (
                0.5,
                serde_json::json!({"change": "fault", "fault": "clock", "clock": "bump",
                    "targets": "leader", "delta_ms": -4100}),
            ),
            (
                1.0,
                serde_json::json!({"change": "fault", "fault": "kill", "targets": "leader"}),
            ),
            (2.0, heal.clone()),
        ],
    );
    let inv = inventory.to_string_lossy();
    let plan_arg = plan.to_string_lossy();
    let probed = db_common::run_test_reading_clocks(
        store,
        &[
            "--name",
            "redis-ssh-kept",
            "--inventory",
            &inv,
            "--target",
            "redis",
            "--plan",
            &plan_arg,
            "--time-limit",
            "12s",
            "--workload",
            "append",
            "--failover",
            "none",
            "--reads",
            "leader",
        ],
        db_redis::redis_time_ms,
    );
    let run = only_run_dir(store, "redis-ssh-kept");
    assert_nothing_left(lab_dir, namespaces, "redis-ssh-kept");
    let kinds = anomaly_kinds(&run);
    assert_eq!(
        probed.code,
        Some(0),
        "{kinds:?}\n{}\n{}",
        probed.stdout,
        probed.stderr
    );
    // The clock fault moved the server's own clock (its TIME, read over the hosts'
    // addresses), through the shim compiled on the host.
    let events = db_common::history(&run);
    db_common::assert_clock_skew_seen(&probed, &events);
    assert_faults_made(&run, &["start-kill", "bump-clock"]);
    assert_logs_downloaded(&run, &["Ready to accept connections"]);

    eprintln!("redis over SSH, kept: {} s", started.elapsed().as_secs());
    // Replica reads, the primary cut off from its replicas.
    let plan = plan_file(store, "redis-isolate", &[(1.0, isolate("n1")), (3.0, heal)]);
    let (code, text, run) = db_run(
        lab_dir,
        store,
        inventory,
        namespaces,
        "redis-ssh-stale",
        &[
            "--target",
            "redis",
            "--plan",
            &plan.to_string_lossy(),
            "--time-limit",
            "5s",
            "--workload",
            "append",
            "--failover",
            "none",
            "--reads",
            "follower",
            "--keys",
            "2",
            "--concurrency",
            "20",
        ],
    );
    assert_eq!(code, Some(1), "{text}");
    let kinds = anomaly_kinds(&run);
    assert!(
        kinds.iter().any(|k| k == "stale-read"),
        "no stale read: {kinds:?}"
    );
    assert_partitions_on_hosts(&run);
    eprintln!(
        "redis over SSH, kept and stale: {} s",
        started.elapsed().as_secs()
    );
    sigkilled_redis_run_is_cleaned(lab_dir, store, inventory, namespaces);
    eprintln!("redis over SSH, all: {} s", started.elapsed().as_secs());
}

/// A runner SIGKILLed as soon as its Redis servers and sentinels (a sentinel on every
/// host) run on the hosts: `schism cleanup` (from the ledger) kills them all and removes
/// the run folders.
#[cfg(feature = "redis")]
fn sigkilled_redis_run_is_cleaned(
    lab_dir: &Path,
    store: &Path,
    inventory: &Path,
    namespaces: &[String],
) {
    let child = spawn_on_lab(
        store,
        inventory,
        "redis-killed",
        &[
            "--target",
            "redis",
            "--failover",
            "auto",
            "--nemesis",
            "none",
            "--time-limit",
            "30s",
        ],
    );
    let dir = lab_dir.to_string_lossy().into_owned();
    let servers = || {
        live_commands_with(&[&dir, "redis-"])
            .into_iter()
            .filter(|(_, c)| c.starts_with("redis-"))
            .count()
    };
    let until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < until && servers() < 6 {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(servers(), 6, "3 servers and 3 sentinels never ran");
    sigkill_then_cleanup(child, store);
    assert_eq!(servers(), 0, "redis processes left on the hosts");
    assert_nothing_left(lab_dir, namespaces, "redis-killed");
}

/// MariaDB Galera on the lab's hosts (the joiners seeded with n1's data through this
/// machine, group communication and IST between the hosts' addresses): a member cut off
/// by nft until it is evicted and rejoining by IST, then one paused (SIGSTOP over SSH):
/// no acknowledged append is lost, as in the local tests.
#[cfg(feature = "galera")]
fn galera_over_ssh(lab_dir: &Path, store: &Path, inventory: &Path, namespaces: &[String]) {
    if !require_db("galera over SSH", db_galera::GALERA, false) {
        return;
    }
    let _lock = db_lock();
    let heal = serde_json::json!({"change": "heal"});
    // The cut outlasts the eviction (about 3.5 s); then a member paused (SIGSTOP over SSH).
    let started = Instant::now();
    let plan = plan_file(
        store,
        "galera-faults",
        &[
            (1.0, isolate("n3")),
            (5.0, heal.clone()),
            (
                5.5,
                serde_json::json!({"change": "fault", "fault": "pause", "targets": {"nodes": ["n2"]}}),
            ),
            (6.0, heal),
        ],
    );
    let (code, text, run) = db_run(
        lab_dir,
        store,
        inventory,
        namespaces,
        "galera-ssh",
        &[
            "--target",
            "galera",
            "--plan",
            &plan.to_string_lossy(),
            "--time-limit",
            "10s",
            "--workload",
            "append",
            "--reads",
            "any",
        ],
    );
    let kinds = anomaly_kinds(&run);
    assert!(
        !kinds.iter().any(|k| k == "lost-write"),
        "{kinds:?}\n{text}"
    );
    assert_eq!(code, Some(0), "{kinds:?}\n{text}");
    assert_faults_made(&run, &["start-partition", "start-pause"]);
    assert_logs_downloaded(&run, &["Synchronized with group", "10.77."]);
    eprintln!("galera over SSH: {} s", started.elapsed().as_secs());
}
