//! Replication lag as a target can tell it: one `LagProbe` per run, asked every sample
//! period for how far each replica trails the node it replicates from.
//!
//! A probe makes one small request per node per sample (bounded by `PROBE_TIMEOUT`) and
//! answers what the target itself says: the reference leader-follower nodes their
//! applied LSN against the leader's last LSN (entries); PostgreSQL `pg_stat_replication`
//! (WAL bytes, with PostgreSQL's write/flush/replay lag alongside); Redis every node's
//! `INFO replication` (replication-stream bytes); etcd every member's raft applied index
//! against the leader's raft index (entries). A target without a probe has no lag figures
//! (`TargetCluster::lag_probe` defaults to `None`), and the report says so.

use crate::NodeId;
use crate::api::BoxFuture;
use crate::reference::leader_follower::{Role, Status};
use std::net::SocketAddr;
use std::time::Duration;

/// How long one node may take to answer a lag request.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(80);

/// How far one replica trails its source at one sample.
#[derive(Debug, Clone, PartialEq)]
pub struct LagReading {
    pub node: NodeId,
    /// The node it replicates from (the leader it follows), if known.
    pub source: Option<NodeId>,
    /// The replica's position (applied LSN, replayed WAL byte), in `unit`.
    pub position: Option<u64>,
    /// The source's position at the same sample.
    pub source_position: Option<u64>,
    /// `source_position - position`.
    pub behind: Option<u64>,
    /// `entries` or `bytes`.
    pub unit: &'static str,
    /// How long behind, when the target measures it as the age of what the replica has
    /// not applied (`None`: the sampler estimates it from the positions it saw).
    pub behind_ms: Option<f64>,
    /// Further time lags the target reports (PostgreSQL: `replay`, `write`, `flush`), in ms.
    pub lags_ms: Vec<(&'static str, f64)>,
}

/// A target's lag source.
pub trait LagProbe: Send {
    /// One reading per replica the target could reach now (none for a node that did not
    /// answer within `PROBE_TIMEOUT`).
    fn sample(&mut self) -> BoxFuture<'_, Vec<LagReading>>;
    /// What the readings measure, in a phrase for the report.
    fn method(&self) -> String;
}

/// The reference leader-follower cluster: every node's `/status`.
#[derive(Debug)]
pub struct ReferenceLag {
    pub(crate) http: reqwest::Client,
    pub(crate) nodes: Vec<(NodeId, SocketAddr)>,
}

impl LagProbe for ReferenceLag {
    fn sample(&mut self) -> BoxFuture<'_, Vec<LagReading>> {
        Box::pin(async move {
            // One request per node, all at once; each bounded by PROBE_TIMEOUT.
            let mut asks = tokio::task::JoinSet::new();
            for (id, addr) in &self.nodes {
                let (http, id) = (self.http.clone(), id.clone());
                let url = format!("http://{addr}/status");
                asks.spawn(async move {
                    crate::api::fetch_status(&http, &url, PROBE_TIMEOUT)
                        .await
                        .ok()
                        .map(|s| (id, s))
                });
            }
            let mut answers: Vec<(NodeId, Status)> = Vec::new();
            while let Some(r) = asks.join_next().await {
                if let Ok(Some(a)) = r {
                    answers.push(a);
                }
            }
            answers.sort_by(|a, b| a.0.cmp(&b.0));
            readings(&answers)
        })
    }

    fn method(&self) -> String {
        "each node's /status: the leader's last LSN minus the node's applied LSN (entries)".into()
    }
}

/// Readings from the nodes' statuses: the leader is the node that says it leads with the
/// highest epoch; every other answering node is measured against its last LSN.
pub fn readings(answers: &[(NodeId, Status)]) -> Vec<LagReading> {
    let leader = answers
        .iter()
        .filter(|(_, s)| s.role == Role::Leader)
        .max_by_key(|(_, s)| s.epoch);
    let Some((lid, ls)) = leader else {
        return Vec::new();
    };
    answers
        .iter()
        .filter(|(id, _)| id != lid)
        .map(|(id, s)| LagReading {
            node: id.clone(),
            source: Some(lid.clone()),
            position: Some(s.applied_lsn),
            source_position: Some(ls.last_lsn),
            behind: Some(ls.last_lsn.saturating_sub(s.applied_lsn)),
            unit: "entries",
            behind_ms: None,
            lags_ms: Vec::new(),
        })
        .collect()
}
