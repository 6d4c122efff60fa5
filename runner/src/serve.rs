//! `schism serve [DIR]`: a small static file server over a results store, so reports can
//! be browsed from another machine's browser through an SSH tunnel or on loopback.
//!
//! Guarantees: it listens on loopback unless `--bind` says otherwise; it serves only
//! files under the canonical store root (a path that resolves outside it, through `..`
//! or a symlink, is 404); it never writes; requests are bounded (at most
//! `MAX_CONCURRENT` at once, files up to `MAX_FILE_BYTES`); every response forbids
//! scripts and remote loads (Content-Security-Policy) and content sniffing.

use anyhow::{Context, Result};
use axum::body::Body;
use axum::http::{Response, StatusCode, Uri, header};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::Semaphore;

const MAX_CONCURRENT: usize = 32;
const MAX_FILE_BYTES: u64 = 512 << 20;
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

/// Serves `dir` until Ctrl-C.
pub async fn serve(dir: &Path, bind: SocketAddr) -> Result<()> {
    let root = std::fs::canonicalize(dir).with_context(|| {
        format!(
            "cannot serve {}: no such folder (run `schism test` first, or pass a results folder)",
            dir.display()
        )
    })?;
    // A fresh index, so the listing is current when the server starts.
    if let Err(e) = crate::reporting::write_index(&root) {
        eprintln!("schism: warning: {e:#}");
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
    let gate = Arc::new(Semaphore::new(MAX_CONCURRENT));
    let root = Arc::new(root);
    let app = axum::Router::new().fallback(move |uri: Uri| {
        let root = root.clone();
        let gate = gate.clone();
        async move {
            let Ok(_permit) = gate.acquire().await else {
                return plain(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
            };
            respond(&root, &uri).await
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("the server stopped")
}

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    with_headers(
        Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8"),
    )
    .body(Body::from(text.to_owned()))
    .unwrap_or_default()
}

fn with_headers(b: axum::http::response::Builder) -> axum::http::response::Builder {
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

async fn respond(root: &Path, uri: &Uri) -> Response<Body> {
    let Some(path) = percent_decode(uri.path()) else {
        return plain(StatusCode::BAD_REQUEST, "bad path encoding");
    };
    if path.contains('\0') || path.split('/').any(|seg| seg == "..") {
        return plain(StatusCode::NOT_FOUND, "not found");
    }
    let rel = path.trim_start_matches('/');
    let Ok(full) = tokio::fs::canonicalize(root.join(rel)).await else {
        return plain(StatusCode::NOT_FOUND, "not found");
    };
    if !full.starts_with(root) {
        return plain(StatusCode::NOT_FOUND, "not found");
    }
    let Ok(meta) = tokio::fs::metadata(&full).await else {
        return plain(StatusCode::NOT_FOUND, "not found");
    };
    if meta.is_dir() {
        if !path.ends_with('/') {
            return with_headers(
                Response::builder()
                    .status(StatusCode::MOVED_PERMANENTLY)
                    .header(header::LOCATION, format!("{}/", uri.path())),
            )
            .body(Body::empty())
            .unwrap_or_default();
        }
        let index = full.join(crate::store::INDEX);
        if index.is_file() {
            return file(&index).await;
        }
        return listing(&full, &path).await;
    }
    if meta.len() > MAX_FILE_BYTES {
        return plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "file too large to serve; read it from disk",
        );
    }
    file(&full).await
}

async fn file(path: &PathBuf) -> Response<Body> {
    match tokio::fs::read(path).await {
        Ok(bytes) => with_headers(
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, content_type(path)),
        )
        .body(Body::from(bytes))
        .unwrap_or_default(),
        Err(_) => plain(StatusCode::NOT_FOUND, "not found"),
    }
}

async fn listing(dir: &Path, shown: &str) -> Response<Body> {
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
    .body(Body::from(html))
    .unwrap_or_default()
}
