//! A lean HTTP/1.1 keep-alive client for the reference nodes' `POST /kv` and `POST /txn`:
//! one connection per session and node, the request written and the answer read by the
//! worker's own task (no connection task, pool lock or channel between them).
//!
//! It replaces reqwest on the hot path because a profile of `schism test --rate 0
//! --concurrency 50` put about a third of the runner's CPU per op in reqwest/hyper's
//! per-request machinery (see BENCHMARKS.md "Runner CPU per op"). reqwest stays for
//! everything else (`/status`, the databases' HTTP APIs).
//!
//! Guarantees, which the client's `ok`/`fail`/`info` classification rests on:
//! - `Exchange::NotSent`: nothing reached the node (the connection never opened);
//! - `Exchange::Lost`: the request may have reached the node but no complete answer came
//!   back (timeout, reset, a malformed or oversized answer);
//! - a request is never sent twice, and a connection is reused only after a complete
//!   answer with nothing left over and no `Connection: close`; a kept connection the node
//!   closed meanwhile (a killed or restarted node) is noticed before reuse when the close
//!   already arrived, and then replaced.
//!
//! - every request leaves in one write(2) on a `TCP_NODELAY` socket: no Nagle delay
//!   waiting for a delayed ACK, on loopback or through a forwarding path
//!   (`targets/tests/it/forwarded.rs`).
//!
//! Limits: the answer's head ≤ `MAX_HEAD_BYTES`, its body ≤ `MAX_BODY_BYTES`, the whole
//! exchange (connect included) ≤ the caller's timeout. A session's buffers keep the size
//! of the largest request and answer they carried (at most the limits above).

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest status line + headers accepted.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Largest body accepted (a read of a long list is the biggest answer).
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// Headers parsed per answer (a node sends four).
const MAX_HEADERS: usize = 32;

/// One kept-alive connection to one node, with its read buffer (reused across requests).
#[derive(Debug)]
pub(crate) struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// One session's connections (by node index, opened on first use) and its request
/// buffers, reused across requests: no allocation per request once they have grown.
#[derive(Debug, Default)]
pub(crate) struct Conns {
    slots: Vec<Option<Conn>>,
    /// The next request's body; the caller writes it before `post`.
    pub(crate) body: Vec<u8>,
    /// The request as written: head and body, one write(2).
    request: Vec<u8>,
}

/// Where a request goes: the node's address (`host`: the same, as text) and the path.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dest<'a> {
    pub addr: SocketAddr,
    pub host: &'a str,
    pub path: &'a str,
}

/// What went wrong, by whether the request may have reached the node.
#[derive(Debug)]
pub(crate) enum Exchange {
    /// The connection never opened: nothing was sent.
    NotSent(String),
    /// Sent, or partly sent, but no complete answer.
    Lost(String),
}

impl Conns {
    /// Posts `self.body` (JSON) to `dest` over connection `i` if it is still open, else
    /// over a new one, kept for the next request when the answer allows; `answer` reads
    /// the complete answer's status and body where they arrived (no copy). The whole
    /// exchange, connect included, is bounded by `timeout`.
    pub(crate) async fn post<R>(
        &mut self,
        i: usize,
        dest: Dest<'_>,
        timeout: Duration,
        answer: impl FnOnce(u16, &[u8]) -> R,
    ) -> Result<R, Exchange> {
        if self.slots.len() <= i {
            self.slots.resize_with(i + 1, || None);
        }
        let slot = &mut self.slots[i];
        let deadline = tokio::time::Instant::now() + timeout;
        let mut conn = match slot.take().filter(Conn::still_open) {
            Some(c) => c,
            // Boxed: connecting is rare, and its state inline would make every
            // exchange's future (boxed per request by `TargetSession`) too large for
            // the allocator's per-thread cache.
            None => Box::pin(connect(dest.addr, deadline, timeout)).await?,
        };
        write_request(&mut self.request, dest, &self.body);
        let request = &self.request;
        let exchange = async {
            conn.stream.write_all(request).await.map_err(lost)?;
            conn.read_answer().await
        };
        match tokio::time::timeout_at(deadline, exchange).await {
            Ok(Ok((status, body, keep))) => {
                let r = answer(status, &conn.buf[body]);
                if keep {
                    *slot = Some(conn);
                }
                Ok(r)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Exchange::Lost(format!(
                "timeout: no answer within {} ms",
                timeout.as_millis()
            ))),
        }
    }
}

/// A new connection to `addr` by `deadline`, with `TCP_NODELAY`.
async fn connect(
    addr: SocketAddr,
    deadline: tokio::time::Instant,
    timeout: Duration,
) -> Result<Conn, Exchange> {
    match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => {
            // Latency, not throughput: one small request and answer per exchange
            // (and the request is one write anyway).
            let _ = stream.set_nodelay(true);
            Ok(Conn {
                stream,
                buf: Vec::with_capacity(1024),
            })
        }
        Ok(Err(e)) => Err(Exchange::NotSent(format!("connect: {e}"))),
        Err(_) => Err(Exchange::NotSent(format!(
            "connect: timeout after {} ms",
            timeout.as_millis()
        ))),
    }
}

fn lost(e: std::io::Error) -> Exchange {
    Exchange::Lost(format!("request: {e}"))
}

/// The request head and body into `out` (cleared first), to go out in one write(2).
fn write_request(out: &mut Vec<u8>, dest: Dest<'_>, body: &[u8]) {
    use std::io::Write as _;
    out.clear();
    out.extend_from_slice(b"POST ");
    out.extend_from_slice(dest.path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(dest.host.as_bytes());
    out.extend_from_slice(b"\r\ncontent-type: application/json\r\ncontent-length: ");
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{}", body.len());
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
}

impl Conn {
    /// False when the node closed the connection (or sent something unasked) since the
    /// last answer, as far as the runtime has seen: such a connection is replaced before
    /// a request is written to it.
    fn still_open(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(
            self.stream.try_read(&mut probe),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
        )
    }

    /// Reads one answer into the buffer: its status, where its body is in the buffer,
    /// and whether the connection may be kept.
    async fn read_answer(&mut self) -> Result<(u16, std::ops::Range<usize>, bool), Exchange> {
        self.buf.clear();
        let (head_len, status, length, keep) = loop {
            if self.fill().await? == 0 {
                return Err(Exchange::Lost(
                    "request: connection closed before an answer".into(),
                ));
            }
            if let Some(head) = parse_head(&self.buf)? {
                break head;
            }
            if self.buf.len() > MAX_HEAD_BYTES {
                return Err(Exchange::Lost(format!(
                    "body: answer head longer than {MAX_HEAD_BYTES} bytes"
                )));
            }
        };
        if length > MAX_BODY_BYTES {
            return Err(Exchange::Lost(format!(
                "body: answer of {length} bytes, more than {MAX_BODY_BYTES}"
            )));
        }
        let end = head_len + length;
        while self.buf.len() < end {
            if self.fill().await? == 0 {
                return Err(Exchange::Lost(
                    "body: connection closed inside the answer".into(),
                ));
            }
        }
        // Anything past the answer is nothing this client asked for.
        let keep = keep && self.buf.len() == end;
        Ok((status, head_len..end, keep))
    }

    /// Reads what is there into the buffer; 0 at end of stream.
    async fn fill(&mut self) -> Result<usize, Exchange> {
        if self.buf.capacity() - self.buf.len() < 512 {
            self.buf.reserve(self.buf.capacity().max(1024));
        }
        self.stream.read_buf(&mut self.buf).await.map_err(lost)
    }
}

/// The answer's head once complete: its length, status, body length and whether the
/// connection may be kept. Bodies must have a `content-length` (a node always sends one;
/// a chunked answer is refused as unreadable rather than misread).
#[allow(clippy::type_complexity)]
fn parse_head(buf: &[u8]) -> Result<Option<(usize, u16, usize, bool)>, Exchange> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(Exchange::Lost(format!("body: malformed answer: {e}"))),
    };
    let status = resp.code.unwrap_or(0);
    let mut length = None;
    let mut keep = resp.version == Some(1);
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            length = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok());
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(Exchange::Lost(
                "body: chunked answer (expected a content-length)".into(),
            ));
        } else if h.name.eq_ignore_ascii_case("connection") {
            keep &= !h.value.eq_ignore_ascii_case(b"close");
        }
    }
    let length =
        length.ok_or_else(|| Exchange::Lost("body: answer without a content-length".into()))?;
    Ok(Some((head_len, status, length, keep)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_is_head_and_body_in_one_buffer() {
        let mut out = b"left over".to_vec();
        let dest = Dest {
            addr: "127.0.0.1:7001".parse().unwrap(),
            host: "127.0.0.1:7001",
            path: "/kv",
        };
        write_request(&mut out, dest, br#"{"f":"read","key":7}"#);
        assert_eq!(
            out,
            b"POST /kv HTTP/1.1\r\nhost: 127.0.0.1:7001\r\ncontent-type: application/json\r\ncontent-length: 20\r\n\r\n{\"f\":\"read\",\"key\":7}"
        );
    }

    /// The guarantee against a Nagle stall, checked on a real socket rather than by
    /// timing: the connection the client keeps has `TCP_NODELAY`, and the server got the
    /// whole request from one read.
    #[tokio::test]
    async fn a_kept_connection_has_nodelay_and_the_request_came_whole() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).await.unwrap();
            let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
            s.write_all(answer).await.unwrap();
            // Hold the connection open until the client has looked at it.
            let _ = s.read(&mut buf).await;
            buf.truncate(n);
            buf
        });
        let host = addr.to_string();
        let dest = Dest {
            addr,
            host: &host,
            path: "/kv",
        };
        let mut conns = Conns::default();
        conns.body.extend_from_slice(br#"{"f":"read","key":7}"#);
        let got = conns
            .post(0, dest, Duration::from_secs(10), |status, body| {
                (status, body.to_vec())
            })
            .await
            .unwrap();
        assert_eq!(got, (200, b"ok".to_vec()));
        let kept = conns.slots[0].as_ref().expect("the connection is kept");
        assert!(
            kept.stream.nodelay().unwrap(),
            "TCP_NODELAY on the kept connection"
        );
        conns.slots.clear();
        let first_read = server.await.unwrap();
        let mut whole = Vec::new();
        write_request(&mut whole, dest, br#"{"f":"read","key":7}"#);
        assert_eq!(
            first_read, whole,
            "the whole request in the server's first read"
        );
    }

    #[test]
    fn head_with_length_is_parsed_and_kept() {
        let buf = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\":true}";
        let (head, status, len, keep) = parse_head(buf).unwrap().unwrap();
        assert_eq!((status, len, keep), (200, 11, true));
        assert_eq!(&buf[head..], b"{\"ok\":true}");
    }

    #[test]
    fn partial_head_waits_and_close_is_not_kept() {
        assert!(
            parse_head(b"HTTP/1.1 200 OK\r\ncontent-le")
                .unwrap()
                .is_none()
        );
        let buf =
            b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        let (_, status, len, keep) = parse_head(buf).unwrap().unwrap();
        assert_eq!((status, len, keep), (503, 0, false));
    }

    #[test]
    fn answers_without_length_are_refused() {
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
        assert!(matches!(parse_head(chunked), Err(Exchange::Lost(_))));
        let none = b"HTTP/1.1 200 OK\r\n\r\n";
        assert!(matches!(parse_head(none), Err(Exchange::Lost(_))));
        assert!(matches!(
            parse_head(b"garbage\r\n\r\n"),
            Err(Exchange::Lost(_))
        ));
    }
}
