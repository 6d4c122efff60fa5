//! `schism serve`: serves the store's files and index on loopback, and nothing outside it.

use crate::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;

fn get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn serves_the_store_and_nothing_else() {
    let store = tempdir();
    let run = store.path().join("t").join("20260101T000000");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("report.html"), "<p>hello</p>").unwrap();
    let mut child = schism()
        .arg("serve")
        .arg(store.path())
        .args(["--bind", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
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
        .expect("address line")
        .to_owned();
    let index = get(&addr, "/");
    let report = get(&addr, "/t/20260101T000000/report.html");
    let escape = get(&addr, "/t/%2e%2e/%2e%2e/%2e%2e/etc/passwd");
    let _ = child.kill();
    let _ = child.wait();
    assert!(index.starts_with("HTTP/1.1 200"), "{index}");
    assert!(index.contains("schism results"));
    assert!(report.contains("hello") && report.contains("content-security-policy"));
    assert!(escape.starts_with("HTTP/1.1 404"), "{escape}");
}
