//! Integration tests of schism-checker: hand-written anomalies with valid twins, seeded
//! random histories from simulated correct stores (always valid) and their mutations
//! (always invalid), and a cross-check of the linearizability search against brute force.

mod api;
mod append;
mod budget;
mod cas_waves;
mod checkers;
mod common;
mod counts;
mod graph;
mod online;
mod parallel;
mod random_append;
mod random_graph;
mod random_register;
mod random_txn;
mod random_txn_rmw;
mod register;
mod sim;
mod txn;
mod txn_variants;
mod zones;
