//! The errors of this crate: each renders as one line that names what to fix.
//!
//! Messages name the path, address or node involved and, where the user can act, the
//! flag to change (`--base-port`, `--data-dir`), because the runner prints them verbatim.

use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error(
        "{addr} (node {node}) is already in use: pass another --base-port or stop what listens there"
    )]
    PortInUse { addr: SocketAddr, node: String },

    #[error("cannot listen on {addr} (node {node}): {source}")]
    Bind {
        addr: SocketAddr,
        node: String,
        source: std::io::Error,
    },

    #[error("cannot create or write data directory {path}: {source}; pass a writable --data-dir")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("cannot create or write log directory {path}: {source}")]
    LogDir {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("node config {path}: {msg}")]
    Config { path: PathBuf, msg: String },

    #[error("invalid cluster or node settings: {0}")]
    Invalid(String),

    #[error("cannot start node process {exe}: {source}")]
    Spawn {
        exe: PathBuf,
        source: std::io::Error,
    },

    #[error("node {node} exited during startup ({status}); last lines of {log}: {tail}")]
    NodeExited {
        node: String,
        status: String,
        log: PathBuf,
        tail: String,
    },

    #[error("node {node} did not answer /status within {timeout_ms} ms ({last_error}); see {log}")]
    StartupTimeout {
        node: String,
        timeout_ms: u64,
        last_error: String,
        log: PathBuf,
    },

    #[error("no node named {0:?} in this cluster")]
    UnknownNode(String),

    #[error("cannot send {signal} to node {node} (pid {pid}): {source}")]
    Signal {
        node: String,
        pid: u32,
        signal: &'static str,
        source: nix::Error,
    },

    #[error("node {0} is not running")]
    NotRunning(String),

    #[error("cannot build the HTTP client: {0}")]
    Client(String),

    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),

    #[error(
        "`{binary}` not found: install the Debian package `{package}` (apt-get install {package})"
    )]
    MissingBinary { binary: String, package: String },

    #[error("{db}: {msg}")]
    Db { db: String, msg: String },

    #[error("node {node}: {msg}")]
    Node { node: String, msg: String },
}
