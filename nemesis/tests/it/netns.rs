//! Namespaces + nftables really drop packets: a node that must not hear another gets no
//! connection from it, the runner (root namespace) still reaches every node, a heal
//! restores the link, and the ledger's cleanup leaves no namespace or interface behind.

use crate::*;
use nix::sched::{CloneFlags, setns};
use schism_nemesis::{FaultState, Ledger, Netns, ledger};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// Runs `f` on a thread that has entered namespace `ns` (only that thread moves).
fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let fd = std::fs::File::open(&path).expect("open netns");
        setns(fd, CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .expect("namespace thread")
}

fn can_connect(from_ns: Option<&str>, to: SocketAddr) -> bool {
    let go = move || TcpStream::connect_timeout(&to, Duration::from_millis(300)).is_ok();
    match from_ns {
        Some(ns) => in_ns(ns, go),
        None => go(),
    }
}

fn namespaces() -> String {
    std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

#[test]
fn nft_cuts_drop_packets_and_cleanup_removes_everything() {
    if !require("the netns test", schism_nemesis::netns::unavailable()) {
        return;
    }
    let dir = tempdir();
    let id = format!("{:06x}", std::process::id() & 0xff_ffff);
    let reg = dir.path().join("registry");
    let ledger = Ledger::create(&reg, &id, dir.path()).unwrap();
    let nodes = vec!["n1".to_owned(), "n2".to_owned()];
    let net = Netns::create(&ledger, &id, &nodes).expect("create namespaces");
    assert!(namespaces().contains(&net.namespaces[0]));

    // A listener inside n2's namespace, accepting forever on a background thread.
    let n2 = SocketAddr::new(net.addrs[1].into(), 7000);
    let ns2 = net.namespaces[1].clone();
    let listener = in_ns(&ns2, move || TcpListener::bind(n2).expect("bind in n2"));
    std::thread::spawn(move || {
        for s in listener.incoming() {
            drop(s);
        }
    });
    let ns1 = net.namespaces[0].clone();
    assert!(can_connect(Some(&ns1), n2), "n1 reaches n2 before the cut");
    assert!(can_connect(None, n2), "the runner reaches n2");

    let mut cut = FaultState::default();
    cut.cuts.insert(("n2".into(), "n1".into()));
    net.apply(&cut).unwrap();
    net.apply(&cut).unwrap(); // idempotent
    assert!(net.rules()["n2"].contains("drop"), "{:?}", net.rules());
    assert!(!can_connect(Some(&ns1), n2), "n2 must not hear n1");
    assert!(
        can_connect(None, n2),
        "client traffic from the runner still flows"
    );

    net.apply(&FaultState::default()).unwrap();
    assert!(net.rules()["n2"].is_empty(), "healing leaves no table");
    assert!(can_connect(Some(&ns1), n2), "healed");

    // Pretend the runner died: the record is a leftover for anyone but its owner...
    let record = ledger.record();
    assert!(record.namespaces.len() == 3 && record.root_links.len() == 1);
    let done = ledger::cleanup_record(&record);
    assert!(
        done.iter().any(|l| l.contains("deleted network namespace")),
        "{done:?}"
    );
    let left = namespaces();
    for ns in &record.namespaces {
        assert!(!left.contains(ns.as_str()), "{ns} survived cleanup: {left}");
    }
    assert!(
        !std::path::Path::new("/sys/class/net")
            .join(&net.root_link)
            .exists()
    );
    drop(ledger);
    assert!(
        ledger::records(&reg).is_empty(),
        "the registry entry is gone"
    );
}
