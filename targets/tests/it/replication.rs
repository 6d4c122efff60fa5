//! Replication through real processes: convergence, follower refusal, catch-up from a log.

use crate::{eventually, start};
use schism_history::Value;
use schism_targets::{ReadRouting, ReferenceClient, ReferenceCluster, Reply, Request, Session};
use std::ops::Range;
use std::time::Duration;

/// A client that reads from the leader, each request bounded by 2 s.
fn leader_client(cluster: &ReferenceCluster) -> ReferenceClient {
    cluster
        .client(ReadRouting::Leader, Duration::from_millis(2000))
        .unwrap()
}

/// Appends each of `values` to `key`, asserting every append is acknowledged.
async fn append_all(client: &ReferenceClient, session: &mut Session, key: u64, values: Range<i64>) {
    for v in values {
        let r = client
            .invoke(session, Request::Append { key, value: v })
            .await;
        assert!(matches!(r, Reply::Ok { .. }), "{r:?}");
    }
}

/// Waits up to 5 s until a read of `key` on `node` returns `want`.
async fn until_node_reads(
    client: &ReferenceClient,
    node: &str,
    key: u64,
    want: &Value,
    what: &str,
) {
    eventually(Duration::from_secs(5), what, || async {
        match client.invoke_on(node, Request::Read { key }).await {
            Reply::Ok { value, .. } if value == *want => Some(()),
            _ => None,
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_reach_every_follower_and_followers_refuse_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = start(dir.path()).await;
    let client = leader_client(&cluster);
    let mut session = Session::new(1);
    for v in 0..200 {
        match client
            .invoke(&mut session, Request::Append { key: 7, value: v })
            .await
        {
            Reply::Ok { node, meta, .. } => {
                assert_eq!(node, "n1");
                assert_eq!(
                    meta.as_ref()
                        .and_then(|m| m.get("lsn"))
                        .and_then(|v| v.as_u64()),
                    Some(v as u64 + 1)
                );
            }
            other => panic!("append {v}: {other:?}"),
        }
    }
    let want = Value::list((0..200).collect::<Vec<i64>>());
    for node in ["n2", "n3", "n1"] {
        let what = format!("{node} to hold all 200 values");
        until_node_reads(&client, node, 7, &want, &what).await;
    }
    match client
        .invoke_on("n2", Request::Write { key: 1, value: 1 })
        .await
    {
        Reply::Fail { node, error } => {
            assert_eq!(node.as_deref(), Some("n2"));
            assert_eq!(error, "not leader; leader is n1");
        }
        other => panic!("a write to a follower must fail cleanly: {other:?}"),
    }
    // A failed cas is a definite failure and logs nothing.
    let before = cluster.status("n1").await.unwrap().last_lsn;
    let r = client
        .invoke(
            &mut session,
            Request::Cas {
                key: 9,
                expected: 1,
                new: 2,
            },
        )
        .await;
    assert!(
        matches!(&r, Reply::Fail { error, .. } if error.contains("cas failed")),
        "{r:?}"
    );
    assert_eq!(cluster.status("n1").await.unwrap().last_lsn, before);
    let st = cluster.status("n2").await.unwrap();
    assert_eq!(
        (st.leader.as_deref(), st.epoch, st.last_lsn),
        (Some("n1"), 1, 200)
    );
    cluster.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_follower_restarts_from_its_log_and_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = start(dir.path()).await;
    let client = leader_client(&cluster);
    let mut session = Session::new(2);
    append_all(&client, &mut session, 3, 0..50).await;
    eventually(Duration::from_secs(5), "n2 at LSN 50", || async {
        cluster.status("n2").await.ok().filter(|s| s.last_lsn == 50)
    })
    .await;
    // Freeze the leader so that whatever n2 holds after its restart came from its own log.
    cluster.pause("n1").unwrap();
    let old_pid = cluster.pid("n2").unwrap();
    cluster.kill("n2").await.unwrap();
    assert!(!crate::alive(old_pid));
    cluster.restart("n2").await.unwrap();
    assert_ne!(cluster.pid("n2"), Some(old_pid));
    let st = cluster.status("n2").await.unwrap();
    assert_eq!(st.last_lsn, 50, "n2 recovered its log");
    match client.invoke_on("n2", Request::Read { key: 3 }).await {
        Reply::Ok { value, .. } => assert_eq!(value, Value::list((0..50).collect::<Vec<i64>>())),
        other => panic!("{other:?}"),
    }
    cluster.resume("n1").unwrap();
    append_all(&client, &mut session, 3, 50..100).await;
    let want = Value::list((0..100).collect::<Vec<i64>>());
    until_node_reads(&client, "n2", 3, &want, "n2 to catch up to 100 values").await;
    // The follower's log holds each entry once: 100 records of 41 bytes.
    let len = std::fs::metadata(cluster.data_dir("n2").join("log.bin"))
        .unwrap()
        .len();
    assert_eq!(len, 100 * 41);
    cluster.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_leader_continues_its_lsn_sequence_while_a_follower_is_paused() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = start(dir.path()).await;
    let client = leader_client(&cluster);
    let mut session = Session::new(3);
    append_all(&client, &mut session, 1, 0..10).await;
    cluster.pause("n3").unwrap();
    cluster.restart("n1").await.unwrap();
    // A fresh pool: the old one's connections to n1 died with it.
    let client = leader_client(&cluster);
    match client
        .invoke(&mut session, Request::Append { key: 1, value: 10 })
        .await
    {
        Reply::Ok { meta, .. } => {
            // 11 follows the 10 entries it had; a restarted leader that opened a new epoch
            // first logs its no-op, making it 12. Never a sequence restarted from 1.
            let lsn = meta
                .as_ref()
                .and_then(|m| m.get("lsn"))
                .and_then(|v| v.as_u64());
            assert!(matches!(lsn, Some(11) | Some(12)), "lsn {lsn:?}");
        }
        other => panic!("{other:?}"),
    }
    cluster.resume("n3").unwrap();
    let want = Value::list((0..11).collect::<Vec<i64>>());
    until_node_reads(&client, "n3", 1, &want, "n3 to hold 11 values").await;
    cluster.stop().await.unwrap();
}

/// Clients are bound to nodes: with failover on and the leader n1 cut off from both
/// followers, a session whose home is n2 follows the new leader the majority elected,
/// while a session whose home is n1 keeps using n1 — which still believes it leads — and
/// reads there without the write the new leader acknowledged. (Fencing off, so n1 never
/// steps down and the two views last as long as the test looks.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_follow_the_leader_their_home_node_believes_in() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = crate::spec(dir.path());
    spec.failover = schism_targets::Failover::Auto;
    spec.fencing = false;
    let mut cluster = match ReferenceCluster::start(spec).await {
        Ok(c) => c,
        Err(e) => panic!("cluster did not start: {e}"),
    };
    let client = cluster
        .client(ReadRouting::Leader, Duration::from_millis(1000))
        .unwrap();
    let mut on_n1 = client.session(1);
    let write = Request::Write { key: 3, value: 1 };
    assert!(matches!(
        client.invoke(&mut on_n1, write).await,
        Reply::Ok { .. }
    ));
    cluster
        .set_links("n1", &["n2".into(), "n3".into()], false)
        .await
        .unwrap();
    cluster
        .set_links("n2", &["n1".into()], false)
        .await
        .unwrap();
    cluster
        .set_links("n3", &["n1".into()], false)
        .await
        .unwrap();
    let new_leader = eventually(Duration::from_secs(15), "a new leader", || async {
        for n in ["n2", "n3"] {
            if let Ok(st) = cluster.status(n).await
                && st.role == schism_targets::Role::Leader
            {
                return Some(n);
            }
        }
        None
    })
    .await;
    assert_eq!(
        cluster.status("n1").await.unwrap().role,
        schism_targets::Role::Leader
    );
    // Sessions are dealt round-robin: the first was n1's, these are n2's and n3's.
    let mut on_n2 = client.session(2);
    let write = Request::Write { key: 3, value: 2 };
    match client.invoke(&mut on_n2, write).await {
        Reply::Ok { node, .. } => assert_eq!(node, new_leader),
        other => panic!("n2's session writes to the new leader {new_leader}: {other:?}"),
    }
    match client.invoke(&mut on_n1, Request::Read { key: 3 }).await {
        Reply::Ok { node, value, .. } => {
            assert_eq!(
                node, "n1",
                "n1's session stays with the leader n1 believes in"
            );
            assert_eq!(
                value,
                Value::Int(1),
                "and reads its state, without the new write"
            );
        }
        other => panic!("n1 serves its session's leader read: {other:?}"),
    }
    cluster.stop().await.unwrap();
}
