//! Targets: what schism tests: the built-in reference cluster (leader-follower,
//! multi-leader and leaderless) and, behind cargo features, real databases (`db`).
//!
//! The runner uses three things from here: `ReferenceCluster` (start, kill, restart,
//! pause, resume and stop real node processes), `ReferenceClient` (send a `Request`, get a
//! `Reply` that is `Ok`, a certain `Fail`, or `Unknown`), and `run_node` (the body of the
//! internal `schism node --config FILE` subcommand). The replication protocols themselves are
//! the sans-IO state machines of `schism_replication`, tested under its deterministic
//! harness. `target` is the one interface the runner and the nemesis drive every target
//! through (`TargetCluster`, `TargetSession`, each target's declared fault
//! `Capabilities`); `api` holds the client vocabulary (`Reply`, `ReadRouting`) and
//! `process` the process plumbing every target shares. This crate never imports the
//! checker.

pub mod api;
pub mod client;
pub mod db;
pub mod error;
mod http1;
pub mod lag;
pub mod process;
pub mod procfs;
pub mod reference;
pub mod remote;
pub mod routing;
pub mod target;
pub use schism_replication::request;

pub use client::{
    ClientOptions, Endpoint, ReadRouting, ReferenceClient, ReferenceSession, Reply, Session,
};
pub use error::TargetError;
pub use reference::cluster::{ClusterSpec, ReferenceCluster};
pub use reference::node::{NodeConfig, run_node};
pub use reference::replica::{MlReplication, Quorum, ReplicaSettings, Topology as MlTopology};
pub use reference::versioned::Resolution;
pub use reference::{Durability, Failover, Model, NodeId, Replication, Topology};
pub use request::Request;
pub use schism_replication::{AnyTopology, Switch};
pub use schism_replication::{Role, Status};
pub use target::{Capabilities, TargetCluster, TargetKind, TargetSession, TxnReply};
