//! The reference cluster as a target: `ReferenceCluster` behind the same
//! `TargetCluster` interface as every database, so the runner has one run path and the
//! nemesis one mechanism.
//!
//! Besides what every target does, the reference cluster brings its own controls: clocks
//! and cooperative link cuts through each node's admin API, state dumps for the
//! convergence check, and one shared connection pool for all of a run's sessions. The
//! leader is what most running, unpaused nodes name in their `/status` (a paused node
//! answers nothing), else the node the cluster started as leader.

use super::NodeId;
use super::cluster::ReferenceCluster;
use crate::api::{BoxFuture, ReadRouting};
use crate::client::ReferenceSession;
use crate::error::TargetError;
use crate::lag::LagProbe;
use crate::target::{TargetCluster, TargetKind, TargetSession};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The session `TargetCluster::session` gives: reads to any node, 1 s per request (the
/// runner asks for `sessions` with the run's own routing and timeout).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

impl TargetCluster for ReferenceCluster {
    fn kind(&self) -> TargetKind {
        TargetKind::Reference
    }

    fn node_ids(&self) -> Vec<NodeId> {
        ReferenceCluster::node_ids(self)
    }

    fn describe(&self) -> String {
        ReferenceCluster::describe(self)
    }

    fn managed(&self) -> bool {
        true
    }

    fn pids(&self) -> Vec<u32> {
        ReferenceCluster::pids(self)
    }

    fn remote_pids(&self) -> Vec<(usize, u32)> {
        ReferenceCluster::remote_pids(self)
    }

    fn pid(&self, node: &str) -> Option<u32> {
        ReferenceCluster::pid(self, node)
    }

    fn is_running(&self, node: &str) -> bool {
        ReferenceCluster::is_running(self, node)
    }

    fn is_paused(&self, node: &str) -> bool {
        ReferenceCluster::is_paused(self, node)
    }

    fn pause(&mut self, node: &str) -> Result<(), TargetError> {
        ReferenceCluster::pause(self, node)
    }

    fn resume(&mut self, node: &str) -> Result<(), TargetError> {
        ReferenceCluster::resume(self, node)
    }

    fn kill<'a>(&'a mut self, node: &'a str) -> BoxFuture<'a, Result<(), TargetError>> {
        Box::pin(ReferenceCluster::kill(self, node))
    }

    fn restart<'a>(&'a mut self, node: &'a str) -> BoxFuture<'a, Result<(), TargetError>> {
        Box::pin(ReferenceCluster::restart(self, node))
    }

    fn leader(&self) -> BoxFuture<'_, Option<NodeId>> {
        Box::pin(async move {
            let mut votes: BTreeMap<NodeId, usize> = BTreeMap::new();
            for n in ReferenceCluster::node_ids(self) {
                if !self.is_running(&n) || self.is_paused(&n) {
                    continue;
                }
                if let Ok(st) = self.status(&n).await
                    && let Some(l) = st.leader
                {
                    *votes.entry(l).or_default() += 1;
                }
            }
            votes
                .into_iter()
                .max_by_key(|(_, v)| *v)
                .map(|(l, _)| l)
                .or_else(|| Some(ReferenceCluster::leader(self).to_owned()))
        })
    }

    fn set_clock<'a>(
        &'a self,
        node: &'a str,
        offset_ms: f64,
        rate: f64,
    ) -> Option<BoxFuture<'a, Result<(), TargetError>>> {
        Some(Box::pin(ReferenceCluster::set_clock(
            self, node, offset_ms, rate,
        )))
    }

    fn set_links<'a>(
        &'a self,
        node: &'a str,
        cut: &'a [NodeId],
    ) -> Option<BoxFuture<'a, Result<(), TargetError>>> {
        Some(Box::pin(ReferenceCluster::set_links(self, node, cut, true)))
    }

    fn dump<'a>(
        &'a self,
        node: &'a str,
    ) -> Option<BoxFuture<'a, Result<serde_json::Value, TargetError>>> {
        Some(Box::pin(async move {
            let dump = ReferenceCluster::dump(self, node).await?;
            serde_json::to_value(dump).map_err(|e| TargetError::Node {
                node: node.to_owned(),
                msg: format!("unencodable dump: {e}"),
            })
        }))
    }

    fn session(&self, seed: u64) -> Box<dyn TargetSession> {
        match self.sessions(&[seed], ReadRouting::default(), DEFAULT_TIMEOUT) {
            Ok(mut s) if !s.is_empty() => s.remove(0),
            // Building a client fails only if the TLS backend cannot start, which a
            // cluster that started already ruled out; answer every request with why.
            Ok(_) | Err(_) => Box::new(Unavailable),
        }
    }

    fn sessions(
        &self,
        seeds: &[u64],
        reads: ReadRouting,
        timeout: Duration,
    ) -> Result<Vec<Box<dyn TargetSession>>, TargetError> {
        let client = Arc::new(self.client(reads, timeout)?);
        Ok(seeds
            .iter()
            .map(|&seed| {
                Box::new(ReferenceSession::new(client.clone(), seed)) as Box<dyn TargetSession>
            })
            .collect())
    }

    fn lag_probe(&self) -> Option<Box<dyn LagProbe>> {
        ReferenceCluster::lag_probe(self)
    }

    fn stop(&mut self) -> BoxFuture<'_, Result<(), TargetError>> {
        Box::pin(ReferenceCluster::stop(self))
    }
}

/// A session whose client could not be built: every request certainly failed.
#[derive(Debug)]
struct Unavailable;

impl TargetSession for Unavailable {
    fn invoke(&mut self, _req: crate::request::Request) -> BoxFuture<'_, crate::api::Reply> {
        Box::pin(async {
            crate::api::Reply::Fail {
                node: None,
                error: "no client for the reference cluster".into(),
            }
        })
    }
}
