//! The HTTP handlers of the one node shell, generic over the hosted model: `POST /kv`,
//! `POST /replicate`, `GET /status` and the admin API (`/admin/clock`, `/admin/links`,
//! `/admin/dump`). Each handler only parses, sends the actor a command and renders its
//! answer; the JSON shapes are `schism_replication::api`'s (see `node` for the API). The
//! handlers' shared state (`Shared`) and the commands they send the actor (`Cmd`) are
//! defined here; the actor that answers them is `shell`'s.

use super::config::{ClockRequest, LinksRequest};
use super::context::{Links, Logger, NodeClock};
use super::hosted::Hosted;
use crate::request::Request;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use schism_history::Value;
use schism_history::txn::{MicroOp, parse_txn};
use schism_replication::api::{Dump, KvOpts, KvReply};
use schism_replication::{DumpState, Machine, NodeId, ReadOpts, Reply, Status};
use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};
use tokio::sync::{mpsc, oneshot};

/// What the HTTP handlers ask the actor.
pub(super) enum Cmd<M: Machine> {
    Client {
        op: Request,
        opts: ReadOpts,
        tx: oneshot::Sender<Reply>,
    },
    /// `POST /txn`: a transaction of micro-ops.
    Txn {
        mops: Vec<MicroOp>,
        opts: ReadOpts,
        tx: oneshot::Sender<Reply>,
    },
    Peer(Vec<M::Msg>),
    Status(oneshot::Sender<Status>),
    Dump(oneshot::Sender<(Status, DumpState)>),
}

/// What every HTTP handler holds.
pub(super) struct Shared<M: Machine> {
    pub(super) cmd: mpsc::Sender<Cmd<M>>,
    pub(super) node: NodeId,
    pub(super) clock: Arc<NodeClock>,
    pub(super) links: Arc<RwLock<Links>>,
    pub(super) logger: Logger,
}

impl<M: Machine> Clone for Shared<M> {
    fn clone(&self) -> Self {
        Shared {
            cmd: self.cmd.clone(),
            node: self.node.clone(),
            clock: self.clock.clone(),
            links: self.links.clone(),
            logger: self.logger.clone(),
        }
    }
}

pub(super) fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A `KvReply` with nothing but the node and `ok: false`.
fn refusal(node: &str) -> KvReply {
    KvReply {
        ok: false,
        node: node.to_owned(),
        value: Value::Null,
        lsn: None,
        applied: None,
        error: None,
        leader: None,
        unknown: false,
        time_ms: None,
        siblings: None,
    }
}

pub(super) fn error_response(status: StatusCode, node: &str, error: String) -> Response {
    let reply = KvReply {
        error: Some(error),
        ..refusal(node)
    };
    json_response(status, serde_json::to_vec(&reply).unwrap_or_default())
}

/// A JSON body, or what was wrong with it (`what: serde's error`) for an HTTP 400.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("{what}: {e}"))
}

/// How a machine's reply is answered over HTTP.
fn render<M: Hosted>(node: &str, reply: Reply, time_ms: i64) -> (StatusCode, KvReply) {
    let base = KvReply {
        time_ms: Some(time_ms),
        ..refusal(node)
    };
    match reply {
        Reply::Ok {
            value,
            siblings,
            lsn,
            applied_lsn,
        } => {
            let kv = KvReply {
                ok: true,
                value,
                applied: if lsn.is_none() { applied_lsn } else { None },
                lsn,
                siblings,
                ..base
            };
            (StatusCode::OK, kv)
        }
        Reply::Fail { error, leader } => {
            let kv = KvReply {
                error: Some(error),
                leader,
                ..base
            };
            (StatusCode::OK, kv)
        }
        Reply::Unknown { error } if M::UNKNOWN_AS_UNAVAILABLE => {
            let kv = KvReply {
                error: Some(error),
                ..base
            };
            (StatusCode::SERVICE_UNAVAILABLE, kv)
        }
        Reply::Unknown { error } => {
            let kv = KvReply {
                error: Some(error),
                unknown: true,
                ..base
            };
            (StatusCode::OK, kv)
        }
    }
}

pub(super) async fn kv<M: Hosted>(State(s): State<Shared<M>>, body: Bytes) -> Response {
    let op: Request = match parse(&body, "bad request") {
        Ok(op) => op,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, &s.node, e),
    };
    // Read conditions ride in the same object: {"f":"read","key":1,"min_lsn":9,"leader_only":true}.
    let opts = serde_json::from_slice::<KvOpts>(&body).unwrap_or_default();
    let opts = ReadOpts {
        min_lsn: opts.min_lsn,
        leader_only: opts.leader_only,
    };
    let (tx, rx) = oneshot::channel();
    answer(&s, Cmd::Client { op, opts, tx }, rx).await
}

/// Hands a client command to the node's shell and renders its reply (`/kv`, `/txn`).
async fn answer<M: Hosted>(s: &Shared<M>, cmd: Cmd<M>, rx: oneshot::Receiver<Reply>) -> Response {
    if s.cmd.send(cmd).await.is_err() {
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &s.node,
            "node is shutting down".into(),
        );
    }
    let Ok(reply) = rx.await else {
        return error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &s.node,
            "request dropped".into(),
        );
    };
    let (status, kv) = render::<M>(&s.node, reply, s.clock.now_ms());
    json_response(status, serde_json::to_vec(&kv).unwrap_or_default())
}

/// `POST /txn` `{"txn":[["append",1,2],["r",1,null]],"min_lsn":0,"leader_only":false}`:
/// answered like `/kv`, the value being the transaction with its reads filled in.
pub(super) async fn txn<M: Hosted>(State(s): State<Shared<M>>, body: Bytes) -> Response {
    #[derive(serde::Deserialize)]
    struct TxnBody {
        txn: Value,
        #[serde(flatten)]
        opts: KvOpts,
    }
    let parsed = parse::<TxnBody>(&body, "bad transaction")
        .and_then(|b| parse_txn(&b.txn).map(|m| (m, b.opts)));
    let (mops, opts) = match parsed {
        Ok(p) => p,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, &s.node, e),
    };
    let opts = ReadOpts {
        min_lsn: opts.min_lsn,
        leader_only: opts.leader_only,
    };
    let (tx, rx) = oneshot::channel();
    answer(&s, Cmd::Txn { mops, opts, tx }, rx).await
}

pub(super) async fn replicate<M: Hosted>(State(s): State<Shared<M>>, body: Bytes) -> Response {
    let parsed = if M::BATCHED_WIRE {
        serde_json::from_slice::<Vec<M::Msg>>(&body)
    } else {
        serde_json::from_slice::<M::Msg>(&body).map(|m| vec![m])
    };
    let msgs = match parsed {
        Ok(m) => m,
        Err(e) => {
            let e = format!("bad replication message: {e}");
            return error_response(StatusCode::BAD_REQUEST, &s.node, e);
        }
    };
    let cut = s
        .links
        .read()
        .map(|l| msgs.iter().any(|m| l.drop_from.contains(M::sender(m))))
        .unwrap_or(false);
    if cut {
        // A cooperative partition: the message is dropped on arrival.
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    match s.cmd.send(Cmd::Peer(msgs)).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// Asks the actor and waits for its answer: HTTP 503 when the actor has stopped, HTTP 500
/// when it dropped the question.
async fn ask<M: Hosted, T>(
    s: &Shared<M>,
    cmd: impl FnOnce(oneshot::Sender<T>) -> Cmd<M>,
) -> Result<T, StatusCode> {
    let (tx, rx) = oneshot::channel();
    if s.cmd.send(cmd(tx)).await.is_err() {
        return Err(StatusCode::SERVICE_UNAVAILABLE);
    }
    rx.await.map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)
}

pub(super) async fn status<M: Hosted>(State(s): State<Shared<M>>) -> Response {
    match ask(&s, Cmd::Status).await {
        Ok(mut st) => {
            st.clock = s.clock.status();
            json_response(StatusCode::OK, serde_json::to_vec(&st).unwrap_or_default())
        }
        Err(refused) => refused.into_response(),
    }
}

pub(super) async fn admin_clock<M: Hosted>(State(s): State<Shared<M>>, body: Bytes) -> Response {
    let req: ClockRequest = match parse(&body, "bad clock request") {
        Ok(r) => r,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, &s.node, e),
    };
    if let Err(e) = s.clock.set(req) {
        return error_response(StatusCode::BAD_REQUEST, &s.node, e);
    }
    s.logger.line(format_args!(
        "admin: clock offset {} ms, rate {}",
        req.offset_ms, req.rate
    ));
    json_response(
        StatusCode::OK,
        serde_json::to_vec(&s.clock.status()).unwrap_or_default(),
    )
}

pub(super) async fn admin_links<M: Hosted>(State(s): State<Shared<M>>, body: Bytes) -> Response {
    let req: LinksRequest = match parse(&body, "bad links request") {
        Ok(r) => r,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, &s.node, e),
    };
    let cut: BTreeSet<NodeId> = req.cut.iter().cloned().collect();
    {
        let Ok(mut links) = s.links.write() else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        links.drop_to = if req.one_way {
            BTreeSet::new()
        } else {
            cut.clone()
        };
        links.drop_from = cut;
    }
    s.logger.line(format_args!(
        "admin: links cut {:?}{}",
        req.cut,
        if req.one_way { " (incoming only)" } else { "" }
    ));
    StatusCode::NO_CONTENT.into_response()
}

pub(super) async fn admin_dump<M: Hosted>(State(s): State<Shared<M>>) -> Response {
    let (mut status, d) = match ask(&s, Cmd::Dump).await {
        Ok(answer) => answer,
        Err(refused) => return refused.into_response(),
    };
    status.clock = s.clock.status();
    let (drop_from, drop_to) = s
        .links
        .read()
        .map(|l| (l.drop_from.clone(), l.drop_to.clone()))
        .unwrap_or_default();
    let dump = Dump {
        status,
        state: d.state,
        drop_from,
        drop_to,
        siblings: d.siblings,
        owners: d.owners,
        extra: d.extra,
    };
    json_response(
        StatusCode::OK,
        serde_json::to_vec(&dump).unwrap_or_default(),
    )
}
