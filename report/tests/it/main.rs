//! Tests of the report crate: pages render, data is escaped, big histories stay bounded.

mod faults;
mod pages;
