//! Integration tests of the replication core: every model under the one deterministic
//! harness (`schism_replication::sim`), through its public API only.

mod harness;
mod leader_follower;
mod replicas;
