//! HTML reports and SVG plots for schism runs, comparisons, the matrix and the results index.
//!
//! This crate is pure: data in, strings out. It does no I/O, spawns nothing and never
//! reads a clock; the runner reads the run folder, builds the input structs defined here
//! and writes the strings it gets back. Guarantees: every page is self-contained (inline
//! CSS and SVG, no script or font loaded from anywhere); every string that comes from a
//! history, a database or a configuration is HTML-escaped before it reaches the page;
//! the size of a run report is bounded whatever the history's length (plots are
//! decimated per pixel column, the timeline aggregates the whole run and shows full
//! detail only in bounded windows around anomalies and faults).

mod compare;
mod data;
mod describe;
mod figtable;
mod figures;
mod html;
mod index;
mod lag;
mod matrix;
mod plot;
mod run;
mod select;
mod timeline;
mod txn;

pub use compare::{
    ComparisonInput, RunRef, SettingInput, SettingSummary, render_comparison, summarize_setting,
};
pub use data::{FaultWindow, fault_windows};
pub use describe::to_the_second;
pub use figures::{LatencySamples, RunFigures, run_figures};
pub use html::escape;
pub use index::{IndexEntry, render_index};
pub use lag::{LagData, LagFigures, LagSample, lag_figures};
pub use matrix::{MatrixCell, MatrixInput, MatrixRow, render_matrix};
pub use run::{ResultsData, RunInput, RunSettings, render_run};
pub use txn::txn_section;

/// Synthetic histories for benchmarks and tests (not part of the stable API).
#[doc(hidden)]
pub mod synth;
