//! Process lifecycle: stop, drop, pause/resume, port conflicts, startup failures.

use crate::{alive, eventually, proc_state, spec, start};
use schism_targets::{ReadRouting, ReferenceCluster, Reply, Request, TargetError};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_leaves_no_process_alive() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = start(dir.path()).await;
    let pids = cluster.pids();
    assert_eq!(pids.len(), 3);
    assert!(pids.iter().all(|&p| alive(p)));
    cluster.stop().await.unwrap();
    for p in pids {
        assert!(!alive(p), "pid {p} still exists after stop");
    }
    assert!(cluster.pids().is_empty());
    // A SIGTERMed node logs its exit.
    let log = std::fs::read_to_string(cluster.log_path("n1").unwrap()).unwrap();
    assert!(log.contains("SIGTERM: exiting"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_cluster_kills_its_processes() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = start(dir.path()).await;
    let pids = cluster.pids();
    drop(cluster);
    for p in pids {
        assert!(!alive(p), "pid {p} survived the drop");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_stops_the_process_and_resume_continues_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = start(dir.path()).await;
    let client = cluster
        .client(ReadRouting::Any, Duration::from_millis(300))
        .unwrap();
    let pid = cluster.pid("n3").unwrap();
    cluster.pause("n3").unwrap();
    eventually(Duration::from_secs(2), "state T", || async {
        (proc_state(pid) == Some('T')).then_some(())
    })
    .await;
    // A read that times out is a certain failure; a paused node answers nothing.
    let r = client.invoke_on("n3", Request::Read { key: 1 }).await;
    assert!(
        matches!(&r, Reply::Fail { error, .. } if error.contains("timeout")),
        "{r:?}"
    );
    cluster.resume("n3").unwrap();
    eventually(Duration::from_secs(2), "state not T", || async {
        (proc_state(pid) != Some('T')).then_some(())
    })
    .await;
    let r = client.invoke_on("n3", Request::Read { key: 1 }).await;
    assert!(matches!(r, Reply::Ok { .. }), "{r:?}");
    // Stopping a cluster with a paused node still ends every process.
    cluster.pause("n2").unwrap();
    let pids = cluster.pids();
    cluster.stop().await.unwrap();
    assert!(pids.iter().all(|&p| !alive(p)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_in_use_is_reported_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = squatter.local_addr().unwrap().port();
    let mut s = spec(dir.path());
    s.base_port = Some(port - 1);
    match ReferenceCluster::start(s).await {
        Err(e @ TargetError::PortInUse { .. }) => {
            let text = e.to_string();
            assert_eq!(
                text,
                format!(
                    "127.0.0.1:{port} (node n2) is already in use: pass another --base-port or stop what listens there"
                )
            );
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("started on a port in use"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_exits_at_startup_is_reported_with_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(dir.path());
    s.exe = "/bin/false".into();
    match ReferenceCluster::start(s).await {
        Err(e @ TargetError::NodeExited { .. }) => {
            // Every node runs /bin/false; whichever the poll sees exit first is named.
            let text = e.to_string();
            let named = ["n1", "n2", "n3"].iter().any(|n| {
                text.starts_with(&format!("node {n} exited during startup (exit status: 1)"))
            });
            assert!(named, "{text}");
            assert!(text.contains("last lines of "), "{text}");
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("/bin/false cannot be a node"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_data_dir_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let mut s = spec(dir.path());
    s.data_dir = file.join("data");
    let e = ReferenceCluster::start(s).await.unwrap_err().to_string();
    assert!(
        e.contains("not-a-dir/data") && e.contains("pass a writable --data-dir"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_exits_by_itself_when_its_parent_is_killed() {
    use schism_targets::NodeConfig;
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let cfg = NodeConfig::new(
        "n1",
        [("n1".to_owned(), addr)].into(),
        "n1",
        dir.path().join("n1"),
    )
    .unwrap();
    let cfg_path = dir.path().join("n1.json");
    cfg.write_file(&cfg_path).unwrap();
    // A stand-in runner: a shell that starts the node, prints its pid, then waits.
    let script = format!(
        "{} node --config {} 2>{} & echo $!; wait",
        env!("CARGO_BIN_EXE_schism-ref-node"),
        cfg_path.display(),
        dir.path().join("n1.log").display()
    );
    let mut shell = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(shell.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let node_pid: u32 = line.trim().parse().unwrap();
    eventually(Duration::from_secs(5), "the node to listen", || async {
        std::net::TcpStream::connect(addr).ok().map(|_| ())
    })
    .await;
    shell.kill().unwrap();
    shell.wait().unwrap();
    // Gone, or a zombie waiting for whichever process adopted it to reap it.
    eventually(
        Duration::from_secs(3),
        "the orphaned node to exit",
        || async { (!alive(node_pid) || proc_state(node_pid) == Some('Z')).then_some(()) },
    )
    .await;
    let log = std::fs::read_to_string(dir.path().join("n1.log")).unwrap();
    assert!(log.contains("is gone: exiting"), "{log}");
}
