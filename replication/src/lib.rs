//! The replication core: the reference cluster's three replication models (leader-follower,
//! multi-leader, leaderless) as sans-IO state machines behind one `Machine` trait, their
//! shared vocabulary (settings, requests, replies, status, dumps), and one deterministic
//! harness (`sim`) that runs any of them on a simulated network and simulated clocks.
//!
//! Guarantees: nothing in this crate opens a socket or file, starts a thread or reads a
//! clock (its `Cargo.toml` holds no async runtime, HTTP, process or filesystem crate, and
//! CI checks that with `cargo tree`); the same inputs give the same outputs. The process
//! shell (`schism_targets::reference::node`) and the harness drive the same code.

pub mod api;
pub mod clock;
pub mod ids;
pub mod leader_follower;
pub mod leaderless;
pub mod machine;
pub mod multi_leader;
pub mod replica;
pub mod request;
pub mod settings;
pub mod sim;
pub mod versioned;

pub use api::{Dump, KvOpts, KvReply};
pub use machine::{
    ClockStatus, DumpState, FollowerStatus, Input, Machine, Output, ReadOpts, Reply, Role, Status,
};
pub use replica::{MlReplication, Quorum, ReplicaSettings, Topology as MlTopology};
pub use request::Request;
pub use settings::{
    AnyTopology, Durability, Failover, Model, NodeId, Replication, Switch, Topology,
};
pub use versioned::Resolution;
