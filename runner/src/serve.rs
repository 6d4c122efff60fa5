//! `schism serve [DIR]`: a small static file server over a results store, so reports can
//! be browsed from another machine's browser through an SSH tunnel or on loopback.
//!
//! Guarantees: it listens on loopback unless `--bind` says otherwise; it serves only
//! files under the canonical store root (a path that resolves outside it, through `..`
//! or a symlink, is 404), never a dot-file or anything in a dot-folder; it never writes
//! except the store's `index.html` at start, and only into a store; a folder without a
//! trailing slash is redirected to a path on this server (never `//host`).
//!
//! Bounded: file bodies are streamed in `CHUNK_BYTES` pieces (never read whole); at most
//! `MAX_CONNECTIONS` connections and `MAX_CONCURRENT` requests at once, a request's slot
//! held until its body is sent (a request that waits `QUEUE_TIMEOUT` for one gets 503);
//! a request head must arrive within `HEADER_TIMEOUT` (half-open requests and idle
//! keep-alive connections are closed); a response that makes no progress for
//! `STALL_TIMEOUT` (a client that stopped reading) is dropped. Ctrl-C or SIGTERM stop
//! accepting, let responses in flight finish for at most `SHUTDOWN_GRACE`, then drop them.
//! Every response forbids scripts and remote loads (Content-Security-Policy) and sniffing.

use anyhow::{Context, Result};
use hyper::body::{Bytes, Frame, SizeHint};
use hyper::http::{Method, Request, Response, StatusCode, Uri, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

/// Requests served at once; the slot is held until the body is sent.
const MAX_CONCURRENT: usize = 32;
/// Connections open at once; more wait in the kernel's accept queue.
const MAX_CONNECTIONS: usize = 512;
/// How long a request waits for a slot before it gets 503.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(10);
/// A request head (and the next one on a kept-alive connection) must arrive within this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A response whose bytes the client does not take for this long is dropped.
const STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// After Ctrl-C, responses in flight get this long to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// File bodies go out in pieces of this size.
const CHUNK_BYTES: usize = 64 << 10;
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

/// Serves `dir` until Ctrl-C or SIGTERM.
pub async fn serve(dir: &Path, bind: SocketAddr) -> Result<()> {
    let root = std::fs::canonicalize(dir).with_context(|| {
        format!(
            "cannot serve {}: no such folder (run `schism test` first, or pass a results folder)",
            dir.display()
        )
    })?;
    // A fresh index, so the listing is current when the server starts (only in a store).
    if let Err(e) = crate::reporting::write_index(&root) {
        eprintln!("schism: warning: {e:#}; serving the folder as it is");
    }
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("cannot listen on {bind} (is it in use? pass --bind)"))?;
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() {
        eprintln!(
            "schism: warning: serving on {addr}, reachable from the network: results include histories and settings"
        );
    }
    println!(
        "serving {} at http://{addr}/ (Ctrl-C to stop)",
        root.display()
    );
    let state = Arc::new(State {
        root,
        requests: Arc::new(Semaphore::new(MAX_CONCURRENT)),
    });
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = JoinSet::new();
    let stop = stop_signal();
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            p = connections.clone().acquire_owned() => p.context("connection gate closed")?,
            _ = &mut stop => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                // Out of file descriptors and the like: wait, do not spin.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        tasks.spawn(connection(stream, state.clone(), stop_rx.clone(), permit));
        // Reap finished connections so the set does not grow.
        while tasks.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    // stderr may be gone (a closed terminal): a failed note must not fail the stop.
    let mut err = io::stderr();
    if drained.is_err() {
        let _ = writeln!(
            err,
            "schism: {} connection(s) still open after {}s; closing them",
            tasks.len(),
            SHUTDOWN_GRACE.as_secs()
        );
        tasks.shutdown().await;
    }
    let _ = writeln!(err, "schism: serve stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn stop_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

#[derive(Debug)]
struct State {
    root: PathBuf,
    requests: Arc<Semaphore>,
}

/// Serves one connection until it ends, times out or the server stops.
async fn connection(
    stream: TcpStream,
    state: Arc<State>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let state = state.clone();
        async move { Ok::<_, std::convert::Infallible>(handle(&state, &req).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    let conn = builder.serve_connection(TokioIo::new(Stalling::new(stream)), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = stop.wait_for(|s| *s) => {}
    }
    // Stopping: finish the response in flight, take no new request.
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

async fn handle(state: &State, req: &Request<hyper::body::Incoming>) -> Response<Reply> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD");
    }
    let slot = tokio::time::timeout(QUEUE_TIMEOUT, state.requests.clone().acquire_owned()).await;
    let Ok(Ok(permit)) = slot else {
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy: too many requests at once; retry",
        );
    };
    let mut resp = respond(&state.root, req.uri()).await;
    // The slot goes with the body and is released when the body is sent or dropped.
    resp.body_mut().permit = Some(permit);
    resp
}

/// A response body: a small buffer or a file streamed in chunks.
#[derive(Debug)]
pub struct Reply {
    kind: Kind,
    permit: Option<OwnedSemaphorePermit>,
}

#[derive(Debug)]
enum Kind {
    Bytes(Option<Bytes>),
    File {
        file: tokio::fs::File,
        left: u64,
        buf: Vec<u8>,
    },
}

impl Reply {
    fn bytes(b: impl Into<Bytes>) -> Self {
        Reply {
            kind: Kind::Bytes(Some(b.into())),
            permit: None,
        }
    }
}

impl hyper::body::Body for Reply {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        let chunk = match &mut this.kind {
            Kind::Bytes(b) => b.take(),
            Kind::File { file, left, buf } => {
                if *left == 0 {
                    None
                } else {
                    let want = CHUNK_BYTES.min(usize::try_from(*left).unwrap_or(CHUNK_BYTES));
                    buf.resize(want, 0);
                    let mut rb = ReadBuf::new(buf);
                    ready!(Pin::new(file).poll_read(cx, &mut rb))?;
                    let n = rb.filled().len();
                    if n == 0 {
                        // The file shrank while being sent: end here.
                        *left = 0;
                        None
                    } else {
                        *left -= n as u64;
                        Some(Bytes::copy_from_slice(rb.filled()))
                    }
                }
            }
        };
        if chunk.is_none() {
            // Sent: free the slot now, not when the connection goes.
            this.permit = None;
        }
        Poll::Ready(chunk.map(|c| Ok(Frame::data(c))))
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Bytes(b) => b.is_none(),
            Kind::File { left, .. } => *left == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Bytes(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::File { left, .. } => SizeHint::with_exact(*left),
        }
    }
}

/// A TCP stream whose writes fail after `STALL_TIMEOUT` without progress, so a client
/// that stops reading cannot hold its connection and request slot forever.
struct Stalling {
    io: TcpStream,
    deadline: Pin<Box<tokio::time::Sleep>>,
    armed: bool,
}

impl Stalling {
    fn new(io: TcpStream) -> Self {
        Stalling {
            io,
            deadline: Box::pin(tokio::time::sleep(STALL_TIMEOUT)),
            armed: false,
        }
    }

    fn on_write<T>(
        &mut self,
        cx: &mut TaskContext<'_>,
        r: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match r {
            Poll::Ready(v) => {
                self.armed = false;
                Poll::Ready(v)
            }
            Poll::Pending => {
                if !self.armed {
                    self.armed = true;
                    self.deadline
                        .as_mut()
                        .reset(tokio::time::Instant::now() + STALL_TIMEOUT);
                }
                if self.deadline.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client stopped reading",
                    )));
                }
                Poll::Pending
            }
        }
    }
}

impl AsyncRead for Stalling {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stalling {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write(cx, buf);
        this.on_write(cx, r)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.on_write(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

fn plain(status: StatusCode, text: &str) -> Response<Reply> {
    with_headers(
        Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8"),
    )
    .body(Reply::bytes(text.to_owned()))
    .unwrap_or_else(|_| Response::new(Reply::bytes("")))
}

fn with_headers(b: hyper::http::response::Builder) -> hyper::http::response::Builder {
    b.header(header::CONTENT_SECURITY_POLICY, CSP)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::CACHE_CONTROL, "no-cache")
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' | '~' | ':' | '=' | ',' => {
                out.push(c)
            }
            c => {
                let mut buf = [0u8; 4];
                for byte in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(out, "%{byte:02X}");
                }
            }
        }
    }
    out
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "json" => "application/json",
        "jsonl" | "log" | "txt" | "md" | "edn" | "toml" => "text/plain; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "xml" => "application/xml",
        "css" => "text/css",
        _ => "application/octet-stream",
    }
}

/// True when some part of `rel` is hidden (starts with '.'): `..`, dot-files, dot-folders.
fn hidden(rel: &Path) -> bool {
    rel.components().any(|c| match c {
        Component::Normal(s) => s.to_string_lossy().starts_with('.'),
        Component::ParentDir | Component::CurDir => true,
        _ => false,
    })
}

async fn respond(root: &Path, uri: &Uri) -> Response<Reply> {
    let not_found = || plain(StatusCode::NOT_FOUND, "not found");
    let Some(path) = percent_decode(uri.path()) else {
        return plain(StatusCode::BAD_REQUEST, "bad path encoding");
    };
    // Segments of the decoded path; empty ones (from `//`) are dropped.
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if path.contains('\0')
        || segments
            .iter()
            .any(|s| s.starts_with('.') || s.contains('\\'))
    {
        return not_found();
    }
    let rel: PathBuf = segments.iter().collect();
    let Ok(full) = tokio::fs::canonicalize(root.join(&rel)).await else {
        return not_found();
    };
    // A symlink may lead outside the store or to a hidden file.
    match full.strip_prefix(root) {
        Ok(inside) if !hidden(inside) => {}
        _ => return not_found(),
    }
    let Ok(meta) = tokio::fs::metadata(&full).await else {
        return not_found();
    };
    if meta.is_dir() {
        if !path.ends_with('/') {
            // Rebuilt from the segments: `//host` cannot come back as a scheme-relative URL.
            let mut to = String::from("/");
            for s in &segments {
                to.push_str(&percent_encode(s));
                to.push('/');
            }
            return with_headers(
                Response::builder()
                    .status(StatusCode::MOVED_PERMANENTLY)
                    .header(header::LOCATION, to),
            )
            .body(Reply::bytes(Bytes::new()))
            .unwrap_or_else(|_| not_found());
        }
        let index = full.join(crate::store::INDEX);
        if index.is_file() {
            return file(&index).await;
        }
        return listing(&full, &path).await;
    }
    file(&full).await
}

/// A file, streamed.
async fn file(path: &Path) -> Response<Reply> {
    let Ok(file) = tokio::fs::File::open(path).await else {
        return plain(StatusCode::NOT_FOUND, "not found");
    };
    let Ok(meta) = file.metadata().await else {
        return plain(StatusCode::NOT_FOUND, "not found");
    };
    let body = Reply {
        kind: Kind::File {
            file,
            left: meta.len(),
            buf: Vec::new(),
        },
        permit: None,
    };
    with_headers(
        Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, content_type(path))
            .header(header::CONTENT_LENGTH, meta.len()),
    )
    .body(body)
    .unwrap_or_else(|_| plain(StatusCode::NOT_FOUND, "not found"))
}

async fn listing(dir: &Path, shown: &str) -> Response<Reply> {
    let mut names: Vec<(String, bool)> = Vec::new();
    if let Ok(mut rd) = tokio::fs::read_dir(dir).await {
        while let Ok(Some(e)) = rd.next_entry().await {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let is_dir = e.file_type().await.map(|t| t.is_dir()).unwrap_or(false)
                || tokio::fs::metadata(e.path())
                    .await
                    .map(|m| m.is_dir())
                    .unwrap_or(false);
            names.push((name, is_dir));
            if names.len() >= 10_000 {
                break;
            }
        }
    }
    names.sort();
    let esc = schism_report::escape;
    let mut html = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{0}</title><style>body{{font:14px system-ui,sans-serif;margin:24px}}li{{margin:2px 0}}</style></head><body><h1>{0}</h1><ul><li><a href=\"../\">../</a></li>",
        esc(shown)
    );
    for (name, is_dir) in names {
        let slash = if is_dir { "/" } else { "" };
        let _ = write!(
            html,
            "<li><a href=\"./{}{slash}\">{}{slash}</a></li>",
            esc(&percent_encode(&name)),
            esc(&name)
        );
    }
    html.push_str("</ul></body></html>");
    with_headers(
        Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "text/html; charset=utf-8"),
    )
    .body(Reply::bytes(html))
    .unwrap_or_else(|_| plain(StatusCode::NOT_FOUND, "not found"))
}
