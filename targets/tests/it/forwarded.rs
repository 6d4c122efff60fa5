//! The reference client through a forwarding path, as a node on another host is reached
//! through a bridge, an SSH forward or a proxy: a TCP forwarder per node that delivers
//! each read in two pieces a millisecond apart (so answers arrive head first, body
//! later) and closes its connections after a number of answers (so the client's kept
//! connections go away under it and it must dial again).
//!
//! What it checks is that nothing stalls: almost every request gets its answer, and the
//! median exchange stays far below both the client's timeout and the 40 ms of a delayed
//! ACK held back by Nagle (a request or an answer written in two pieces on a socket
//! without `TCP_NODELAY`). The bound is a stall detector with a wide margin (a healthy
//! median here is a few milliseconds), not a speed claim: speed goes to BENCHMARKS.md.

use schism_targets::{
    ClientOptions, Endpoint, ReadRouting, ReferenceClient, Reply, Request, Session,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Answers a forwarded connection carries before the forwarder closes it.
const ANSWERS_PER_CONNECTION: usize = 25;
/// Sessions (workers) and requests each.
const SESSIONS: u64 = 8;
const REQUESTS_PER_SESSION: u64 = 150;
/// A median exchange above this is a stall (healthy: a few ms; a delayed ACK: ≥ 40 ms).
const STALL_MEDIAN_MS: f64 = 40.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_stall_through_a_forwarding_path_that_splits_answers_and_closes_connections() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = crate::start(dir.path()).await;
    let mut endpoints = Vec::new();
    for e in cluster.endpoints() {
        endpoints.push(Endpoint {
            id: e.id.clone(),
            addr: forwarder(e.addr).await,
        });
    }
    let client = Arc::new(
        ReferenceClient::new(
            &endpoints,
            cluster.leader(),
            ClientOptions {
                routing: ReadRouting::Any,
                timeout_ms: 1000,
                discover_leader: false,
            },
        )
        .unwrap(),
    );
    let tasks: Vec<_> = (0..SESSIONS)
        .map(|t| tokio::spawn(load(client.clone(), t)))
        .collect();
    let mut took_ms = Vec::new();
    let mut ok = 0u64;
    for t in tasks {
        let (oks, times) = t.await.unwrap();
        ok += oks;
        took_ms.extend(times);
    }
    took_ms.sort_by(f64::total_cmp);
    let total = took_ms.len() as u64;
    let median_ms = took_ms[took_ms.len() / 2];
    eprintln!(
        "forwarded: {ok} of {total} ok, median exchange {median_ms:.2} ms, slowest {:.1} ms",
        took_ms.last().unwrap()
    );
    assert_eq!(total, SESSIONS * REQUESTS_PER_SESSION);
    // A close can race a request sent on the connection (then a write is `info`, a read
    // `fail`): at most one request per closed connection, i.e. ~1/25; a stall times out
    // most of them.
    assert!(
        ok * 10 >= total * 8,
        "only {ok} of {total} requests answered ok through the forwarder"
    );
    assert!(
        median_ms < STALL_MEDIAN_MS,
        "median exchange {median_ms:.1} ms through the forwarder: a stall"
    );
    cluster.stop().await.unwrap();
}

/// Session `t`'s requests, appends and reads in turn: its ok count and each exchange's
/// duration in milliseconds.
async fn load(client: Arc<ReferenceClient>, t: u64) -> (u64, Vec<f64>) {
    let mut session = Session::new(t);
    let mut ok = 0;
    let mut times = Vec::new();
    for i in 0..REQUESTS_PER_SESSION {
        let key = t * 1000 + i / 10;
        let req = if i % 2 == 0 {
            Request::Append {
                key,
                value: i as i64,
            }
        } else {
            Request::Read { key }
        };
        let began = Instant::now();
        if let Reply::Ok { .. } = client.invoke(&mut session, req).await {
            ok += 1;
        }
        times.push(began.elapsed().as_secs_f64() * 1e3);
    }
    (ok, times)
}

/// A forwarder to `upstream` on a free loopback port (its address returned); it runs
/// until the test's runtime ends.
async fn forwarder(upstream: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(pipe(client, upstream));
        }
    });
    addr
}

/// One forwarded connection: requests up as they come (in two pieces), answers down (in
/// two pieces); both sides closed after `ANSWERS_PER_CONNECTION` answers or when
/// either side closes.
async fn pipe(client: TcpStream, upstream: SocketAddr) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_r, mut client_w) = client.into_split();
    let (mut server_r, mut server_w) = server.into_split();
    tokio::select! {
        _ = copy_in_pieces(&mut client_r, &mut server_w, usize::MAX) => {}
        _ = copy_in_pieces(&mut server_r, &mut client_w, ANSWERS_PER_CONNECTION) => {}
    }
}

/// Copies each read in two writes 1 ms apart, for at most `reads` reads.
async fn copy_in_pieces(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    reads: usize,
) {
    let mut buf = vec![0u8; 64 * 1024];
    for _ in 0..reads {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let cut = (n / 3).max(1);
        if to.write_all(&buf[..cut]).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        if to.write_all(&buf[cut..n]).await.is_err() {
            return;
        }
    }
}
