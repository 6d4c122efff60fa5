//! `config.json`: a run's plan as it was run, written once when the run folder is
//! created and read back typed by `schism check`, `schism report` and the store's index.
//!
//! The file is the serde form of `RunConfig`: the `schism test` settings (`test`, every
//! flag), the seed, the workload and the replication model as the run derived them, and
//! the nemesis plan. It is written through `serde_json::Value`, whose objects keep their
//! keys sorted, so the bytes are those earlier versions wrote. Reading is lenient in one
//! direction only: a field an older file lacks takes its default (a hand-made
//! `{"test":{"name":"t"}}` reads); a field of the wrong type is an error naming the file,
//! the line and the column.

use anyhow::{Context, Result};
use schism_nemesis::{Kind, Net, Planned};
use schism_targets::{Model, ReplicaSettings};
use schism_workloads::WorkloadSpec;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use crate::cli::TestArgs;
use crate::store;

/// The whole of `config.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RunConfig {
    /// Every `schism test` flag.
    pub test: Option<TestArgs>,
    pub seed: Option<u64>,
    pub workload: Option<WorkloadSpec>,
    pub model: Model,
    /// Multi-leader and leaderless settings (`null` for leader-follower).
    pub replica: Option<ReplicaSettings>,
    pub started_at: Option<String>,
    pub schism_version: Option<String>,
    pub run_dir: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub nemesis: Option<NemesisConfig>,
    /// `schism sim`'s simulated network (absent from a real run's file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sim: Option<SimNetConfig>,
}

/// The simulated network of a `schism sim` run, as recorded in `config.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimNetConfig {
    pub delay_min_us: u64,
    pub delay_max_us: u64,
    pub client_delay_min_us: u64,
    pub client_delay_max_us: u64,
    pub delay_tail_probability: f64,
    pub delay_tail_max_us: u64,
    pub loss: f64,
    pub duplicate: f64,
}

/// The nemesis's part of the plan.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct NemesisConfig {
    pub kinds: Vec<Kind>,
    /// How partitions are made (`null`: none are).
    pub net: Option<Net>,
    pub quiet_ms: u64,
    pub plan: Vec<Planned>,
}

impl RunConfig {
    /// Writes `config.json` into `run_dir` (keys sorted, as every version wrote them).
    pub fn write(&self, run_dir: &Path) -> Result<()> {
        let value = serde_json::to_value(self).context("cannot encode config.json")?;
        store::write_json(&run_dir.join(store::CONFIG), &value)
    }

    /// Reads a run folder's `config.json`; `None` when the folder has none.
    pub fn read(run_dir: &Path) -> Result<Option<RunConfig>> {
        let path = run_dir.join(store::CONFIG);
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text)
            .map(Some)
            .with_context(|| format!("{} is not a config.json schism can read", path.display()))
    }
}
