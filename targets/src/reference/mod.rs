//! The reference cluster: built-in replicated key-value stores that schism tests itself on.
//!
//! The models' protocols are the sans-IO state machines of `schism_replication` (re-exported
//! here under their old paths), driven either by its deterministic harness
//! (`schism_replication::sim`, used by its tests) or by the process shell of this module
//! (`node`, `shell`, `http`, `peers`: one OS process per node, HTTP on loopback, one log on
//! disk, `storage`, whatever the model). `cluster` starts, signals and stops those processes for the
//! runner.

pub mod cluster;
mod config;
mod context;
mod hosted;
mod http;
pub mod node;
mod peers;
mod shell;
pub use hosted::{leader_follower_machine, leaderless_machine, multi_leader_machine};
pub mod storage;
pub mod target;

pub use schism_replication::settings::{
    Durability, Failover, Model, NodeId, Replication, Topology,
};
pub use schism_replication::{
    clock, leader_follower, leaderless, multi_leader, replica, versioned,
};
