//! The `schism` runner as a library: the binary (`main.rs`) is a thin shell over this, so
//! that benchmarks and tests can drive the recorder and analysis directly.
//!
//! This crate alone knows clap, the terminal and the results folder layout.

pub mod analyze;
pub mod check;
pub mod cli;
pub mod compare;
pub mod config;
pub mod describe;
pub mod follow;
pub mod hosts;
pub mod lag;
pub mod matrix;
pub mod models;
pub mod online;
pub mod plan;
pub mod recorder;
pub mod reporting;
pub mod run;
pub mod serve;
pub mod shrink;
pub mod signals;
pub mod sim;
pub mod store;
pub mod txn_check;
