//! `schism serve`: serves the store's files and index on loopback, and nothing outside
//! it; bounded against slow, stuck and half-open clients; stops promptly on Ctrl-C.
//! `serve` and `report` write `index.html` only into a store.

use crate::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};

fn get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// A store with one run folder (what `schism test` leaves) and its report.
fn store_with_a_run() -> (tempfile::TempDir, PathBuf) {
    let store = tempdir();
    let run = store.path().join("t").join("20260101T000000");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("config.json"), r#"{"test":{"name":"t"}}"#).unwrap();
    std::fs::write(run.join("report.html"), "<p>hello</p>").unwrap();
    (store, run)
}

/// Starts `schism serve DIR` on a free loopback port; returns the child and its address.
fn start(dir: &Path) -> (Child, String) {
    let mut child = schism()
        .arg("serve")
        .arg(dir)
        .args(["--bind", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or_else(|| panic!("no address line: {line:?}"))
        .to_owned();
    (child, addr)
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Resident set size figures of a live process, in KiB: (current, peak).
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[test]
fn serves_the_store_and_nothing_else() {
    let (store, _run) = store_with_a_run();
    std::fs::write(store.path().join(".secret"), "token").unwrap();
    std::fs::create_dir_all(store.path().join("t/.hidden")).unwrap();
    std::fs::write(store.path().join("t/.hidden/x.txt"), "hidden").unwrap();
    std::os::unix::fs::symlink(store.path().join(".secret"), store.path().join("t/link")).unwrap();
    let (child, addr) = start(store.path());
    let index = get(&addr, "/");
    let report = get(&addr, "/t/20260101T000000/report.html");
    let escape = get(&addr, "/t/%2e%2e/%2e%2e/%2e%2e/etc/passwd");
    let dots: Vec<String> = [
        "/.secret",
        "/%2esecret",
        "/t/.hidden/x.txt",
        "/t//.hidden/x.txt",
        "/t/link",
    ]
    .iter()
    .map(|p| get(&addr, p))
    .collect();
    let listing = get(&addr, "/t/");
    let double = get(&addr, "//t");
    let backslash = get(&addr, "/%5Ct");
    stop(child);
    assert!(index.starts_with("HTTP/1.1 200"), "{index}");
    assert!(index.contains("schism results"));
    assert!(report.contains("hello") && report.contains("content-security-policy"));
    assert!(escape.starts_with("HTTP/1.1 404"), "{escape}");
    for d in &dots {
        assert!(d.starts_with("HTTP/1.1 404"), "{d}");
        assert!(!d.contains("token") && !d.contains("hidden\r\n"), "{d}");
    }
    assert!(
        !listing.contains(".hidden") && !listing.contains(".secret"),
        "{listing}"
    );
    // `//t` is a folder: the redirect stays on this server (`//t/` would be a host).
    assert!(double.starts_with("HTTP/1.1 301"), "{double}");
    let location = double
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("location: ")
                .map(str::to_owned)
        })
        .unwrap_or_default();
    assert_eq!(location.trim(), "/t/", "{double}");
    assert!(backslash.starts_with("HTTP/1.1 404"), "{backslash}");
}

#[test]
fn sixty_slow_readers_of_a_large_file_stay_under_200_mb() {
    let (store, run) = store_with_a_run();
    // 25 MiB of history-like text.
    let line = "{\"index\":0,\"time_ns\":0,\"process\":1,\"type\":\"ok\",\"f\":\"read\",\"value\":[1,2,3]}\n";
    let big: String = line.repeat((25 << 20) / line.len());
    std::fs::write(run.join("history.jsonl"), &big).unwrap();
    drop(big);
    let (child, addr) = start(store.path());
    let pid = child.id();
    let (base_kib, _) = rss_kib(pid);
    // 60 clients each take a trickle (16 KiB every 100 ms) for 5 s, then hang up.
    let clients: Vec<_> = (0..60)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(&addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
                write!(
                    s,
                    "GET /t/20260101T000000/history.jsonl HTTP/1.1\r\nHost: x\r\n\r\n"
                )
                .unwrap();
                let mut got = 0usize;
                let mut buf = [0u8; 16 << 10];
                let until = Instant::now() + Duration::from_secs(5);
                while Instant::now() < until {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got += n,
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                got
            })
        })
        .collect();
    let mut peak = 0;
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        peak = peak.max(rss_kib(pid).1);
        std::thread::sleep(Duration::from_millis(200));
    }
    let got: Vec<usize> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    peak = peak.max(rss_kib(pid).1);
    stop(child);
    let served = got.iter().filter(|&&n| n > 0).count();
    eprintln!(
        "serve: {served} of 60 clients got bytes; RSS {} MiB at start, peak {} MiB",
        base_kib / 1024,
        peak / 1024
    );
    // At most MAX_CONCURRENT (32) are served at once; the others wait for a slot.
    assert!(served >= 30, "only {served} clients got data: {got:?}");
    assert!(peak < 200 * 1024, "serve peaked at {} MiB", peak / 1024);
}

#[test]
fn half_open_requests_time_out_and_do_not_block_service() {
    let (store, _run) = store_with_a_run();
    let (child, addr) = start(store.path());
    // 300 connections that send half a request head and then nothing.
    let half_open: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).unwrap();
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
            s
        })
        .collect();
    // Service goes on meanwhile.
    let index = get(&addr, "/");
    assert!(index.starts_with("HTTP/1.1 200"), "{index}");
    // Each half-open connection is closed by the server after its header timeout (10 s).
    let mut first = half_open.into_iter().next().unwrap();
    first
        .set_read_timeout(Some(Duration::from_secs(40)))
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 512];
    let closed = loop {
        match first.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    stop(child);
    assert!(
        closed,
        "a half-open request was still open after {:?}",
        started.elapsed()
    );
}

#[test]
fn ctrl_c_stops_the_server_despite_stuck_clients() {
    let (store, run) = store_with_a_run();
    std::fs::write(run.join("big.txt"), vec![b'x'; 8 << 20]).unwrap();
    let (mut child, addr) = start(store.path());
    // One client asks for 8 MiB and never reads; another sends half a request.
    let mut stuck = TcpStream::connect(&addr).unwrap();
    write!(
        stuck,
        "GET /t/20260101T000000/big.txt HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    .unwrap();
    let mut half = TcpStream::connect(&addr).unwrap();
    half.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if started.elapsed() > Duration::from_secs(20) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let waited = started.elapsed();
    if status.is_none() {
        stop(child);
    }
    drop((stuck, half));
    let status = status.unwrap_or_else(|| panic!("serve still running {waited:?} after Ctrl-C"));
    assert!(status.success(), "{status:?}");
    // The grace period is 3 s; far less than the stall (30 s) and header (10 s) timeouts.
    assert!(waited < Duration::from_secs(8), "took {waited:?}");
}

#[test]
fn index_html_is_written_only_into_a_store() {
    let dir = tempdir();
    std::fs::write(dir.path().join("index.html"), "mine").unwrap();
    std::fs::create_dir_all(dir.path().join("docs/sub")).unwrap();
    // `report` refuses with one line and leaves the page alone.
    let out = schism().arg("report").arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("not a schism results store"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("index.html")).unwrap(),
        "mine"
    );
    // `serve` serves the folder as it is, says why it wrote no index, and writes none.
    let (mut child, addr) = start(dir.path());
    let page = get(&addr, "/");
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert!(page.ends_with("mine"), "{page}");
    let err = stderr(&out);
    assert!(err.contains("not a schism results store"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("index.html")).unwrap(),
        "mine"
    );
    // A store gets its index.
    let (store, _run) = store_with_a_run();
    let out = schism().arg("report").arg(store.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(store.path().join("index.html").is_file());
}
