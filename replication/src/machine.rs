//! The one interface of every replication model: the `Machine` trait, what it is fed
//! (`Input`), what it asks for (`Output`), how it answers a client (`Reply`) and how it
//! describes itself (`Status`, `Role`, `DumpState`).
//!
//! Output contract, for every model: outputs are carried out in order, and every
//! `Output::Persist` is durable before any output after it is acted on (a shell writes
//! them with one write plus fdatasync per batch, the harness applies them to its
//! in-memory disk with `Machine::persist`). What a record holds is the model's own
//! `Machine::Persist`; what survives a crash is `Machine::Durable`, the fold of every
//! record persisted so far, from which `Machine::recover` rebuilds the machine (under
//! buffered durability, of every record flushed so far: `Machine::persist_buffered`).
//! A `Reply::Unknown` means the write may or may not have taken effect (the shell answers
//! it with HTTP 503, which the client records as `info`); `Reply::Fail` means it
//! certainly did not.

use crate::ids::NodeId;
use crate::request::Request;
use schism_history::txn::MicroOp;
use schism_history::{Key, Value};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// How a read must be served (leader-follower; the other models serve every read alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadOpts {
    /// Serve only once this node has applied at least this LSN (read-your-writes and
    /// monotonic-read tokens); 0: no condition.
    pub min_lsn: u64,
    /// Only the leader may serve it (and, with the lease on, only while it holds the lease).
    pub leader_only: bool,
}

/// What a machine is fed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input<M> {
    /// A client request; `req` is an opaque id echoed in the `Output::Reply`.
    Client {
        req: u64,
        op: Request,
    },
    /// A client request with read conditions.
    ClientWith {
        req: u64,
        op: Request,
        opts: ReadOpts,
    },
    /// A transaction of micro-ops (`schism_history::txn`), with the read conditions of
    /// its reads. Leader-follower runs it atomically; the other models refuse it (their
    /// clients run each micro-op as its own request: no atomicity across keys).
    Txn {
        req: u64,
        mops: Vec<MicroOp>,
        opts: ReadOpts,
    },
    Peer(M),
    /// Time passed: resend, heartbeat, elections, probes, hand-offs, timeouts.
    Tick,
}

/// How multi-leader and leaderless nodes answer `Input::Txn`: they have no multi-key
/// transactions, so their clients send each micro-op as its own request.
pub const NO_TXN: &str = "this model has no multi-key transactions: send each micro-op as its own request (the client does)";

/// What a machine asks its shell to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output<M, P> {
    /// Make this record durable before any later output is acted on.
    Persist(P),
    Reply {
        req: u64,
        reply: Reply,
    },
    Send {
        to: NodeId,
        msg: M,
    },
}

/// The answer to a client request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// It happened. `value` is a read's result (Null for writes); `siblings` the
    /// concurrent versions a read found (version vectors only); `lsn` a leader-follower
    /// write's LSN; `applied_lsn` how far a leader-follower node had applied when it
    /// answered.
    Ok {
        value: Value,
        siblings: Option<Vec<Value>>,
        lsn: Option<u64>,
        applied_lsn: Option<u64>,
    },
    /// It certainly did not happen; `leader` is where to retry, if known.
    Fail {
        error: String,
        leader: Option<NodeId>,
    },
    /// A write that may or may not have happened (a quorum was not reached in time, or
    /// the leader stepped down before it committed).
    Unknown { error: String },
}

impl Reply {
    /// A successful answer carrying only a value.
    pub fn ok(value: Value) -> Reply {
        Reply::Ok {
            value,
            siblings: None,
            lsn: None,
            applied_lsn: None,
        }
    }

    /// A certain failure with no leader to redirect to.
    pub fn fail(error: String) -> Reply {
        Reply::Fail {
            error,
            leader: None,
        }
    }

    /// The LSN of an acknowledged leader-follower write.
    pub fn write_lsn(&self) -> Option<u64> {
        match self {
            Reply::Ok { lsn, .. } => *lsn,
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Leader,
    Follower,
    Candidate,
}

/// A snapshot for `/status` and tests. Multi-leader and leaderless nodes report role
/// `leader` (each accepts writes); their `last_lsn`/`applied_lsn` count state changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub node: NodeId,
    pub role: Role,
    pub epoch: u64,
    pub last_lsn: u64,
    pub applied_lsn: u64,
    pub leader: Option<NodeId>,
    /// Highest LSN known committed (applied up to here).
    #[serde(default)]
    pub commit_lsn: u64,
    /// The leader holds a read lease now (always false when the lease is off).
    #[serde(default)]
    pub lease: bool,
    /// Replication progress, on the leader (and on chain forwarders) only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub followers: Vec<FollowerStatus>,
    /// The node's injected clock (filled in by the process shell; the machine has none).
    #[serde(default)]
    pub clock: ClockStatus,
}

/// How far a node's injected clock is from real time, and how fast it runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClockStatus {
    /// Skewed time minus real time, in milliseconds (negative: the node is behind).
    pub offset_ms: f64,
    /// Skewed seconds per real second (1.0: no drift).
    pub rate: f64,
}

impl Default for ClockStatus {
    fn default() -> Self {
        ClockStatus {
            offset_ms: 0.0,
            rate: 1.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowerStatus {
    pub node: NodeId,
    pub match_lsn: u64,
    pub inflight: bool,
    /// The follower has answered at least once since this leader started.
    #[serde(default)]
    pub acked: bool,
}

/// A node's whole replicated state, for `/admin/dump` and convergence checks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DumpState {
    /// Every key this node holds, with the value a read here returns.
    pub state: BTreeMap<Key, Value>,
    /// Keys holding concurrent versions here.
    pub siblings: BTreeMap<Key, Vec<Value>>,
    /// Leaderless with N < nodes: the replicas each dumped key belongs on.
    pub owners: BTreeMap<Key, Vec<NodeId>>,
    /// Model-specific extras (pending hints, peers' progress, …).
    pub extra: serde_json::Value,
}

/// A replica state machine that the process shell and the harness drive alike.
pub trait Machine: Sized {
    /// Node-to-node messages (self-describing: the sender is inside).
    type Msg: Clone + fmt::Debug + PartialEq + Serialize + DeserializeOwned + Send + Sync + 'static;
    /// One record the shell must make durable (`Output::Persist`).
    type Persist: Clone + fmt::Debug + PartialEq + Send + 'static;
    /// What a node's disk holds after a sequence of records: the fold of `persist`.
    type Durable: Clone + fmt::Debug + Default + Send + 'static;

    /// Folds one persisted record into the disk image (what the harness's disk does; the
    /// shell's log file does the same on its bytes and recovers the same image).
    fn persist(disk: &mut Self::Durable, record: &Self::Persist);

    /// Buffered durability (`--durability buffered`): folds `record` into what the node
    /// process holds, split between `disk` (what a SIGKILL cannot lose) and `buffer`
    /// (records held in memory until the shell's next flush folds them, in order, into
    /// the disk with `persist`; a kill loses them). The default writes every record
    /// through at once — a write(2) without fdatasync, which a kill does not lose — as the
    /// multi-leader and leaderless state logs do.
    fn persist_buffered(
        disk: &mut Self::Durable,
        buffer: &mut Vec<Self::Persist>,
        record: &Self::Persist,
    ) {
        let _ = buffer;
        Self::persist(disk, record);
    }

    /// Feeds one input at `now_ns` (the node's own clock, nanoseconds: its timers and its
    /// LWW stamps both come from it); appends the outputs in the order they must happen.
    fn handle(
        &mut self,
        now_ns: u64,
        input: Input<Self::Msg>,
        out: &mut Vec<Output<Self::Msg, Self::Persist>>,
    );

    /// The sender named inside a message (for link cuts).
    fn sender(msg: &Self::Msg) -> &str;

    /// Every key's value here, with siblings, owners and model extras.
    fn dump(&self) -> DumpState;

    /// A snapshot for `/status`, evaluated at `now_ns` (the leader-follower lease).
    fn status(&self, now_ns: u64) -> Status;

    /// The value a read served only from this node's memory would return (tests).
    fn local_read(&self, key: Key) -> Value;

    /// Notable events since the last call (elections, step-downs), for the node log.
    fn take_events(&mut self) -> Vec<String> {
        Vec::new()
    }
}
