//! Applying fault states to a real cluster: the `Mechanism` trait, the `Nemesis` that
//! drives it, and the mechanism for the reference cluster.
//!
//! `Nemesis` holds the fault state in force. For each planned change it resolves the
//! fault (asking the mechanism who leads only when the fault targets the leader), then
//! asks the mechanism to make the *whole* resulting state hold; healing is applying the
//! empty state. A mechanism must be idempotent: applying a state twice is the same as once.
//!
//! `ReferenceMechanism` applies a state to a `ReferenceCluster`, in an order that keeps
//! every step possible: kill (SIGKILL, data kept), restart what should run (the same
//! command, waiting until it answers), SIGCONT what should not be paused, set every
//! reachable node's clock and link cuts through its admin API, and SIGSTOP last (a paused
//! node answers nothing). Partitions go through nftables in the run's namespaces (`Net::Netns`)
//! or through cooperative cuts (`Net::Local`: each node drops replication traffic from
//! the peers it must not hear). After a restart the new pid goes into the ledger.

use crate::error::NemesisError;
use crate::fault::{Fault, FaultState, Kind, resolve};
use crate::ledger::Ledger;
use crate::netns::Netns;
use crate::schedule::Change;
use schism_targets::{NodeId, ReferenceCluster};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::future::Future;

/// How partitions are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Net {
    /// Network namespaces + nftables (root): packets really dropped.
    Netns,
    /// Cooperative link cuts through the reference nodes' admin API.
    Local,
}

impl std::fmt::Display for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Net::Netns => "netns",
            Net::Local => "local",
        })
    }
}

/// `--net`: what the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetChoice {
    Auto,
    Netns,
    Local,
}

/// Picks the partition mechanism. Nodes go into namespaces only when partitions are
/// scheduled or `--net netns` is explicit; returns the choice (None: plain loopback) and
/// a one-line notice saying which mechanism is used and why.
pub fn choose_net(
    choice: NetChoice,
    kinds: &[Kind],
) -> Result<(Option<Net>, String), NemesisError> {
    let partitions = kinds.contains(&Kind::Partition);
    match choice {
        NetChoice::Netns => match crate::netns::unavailable() {
            None => Ok((
                Some(Net::Netns),
                "partitions: network namespaces + nftables (--net netns)".into(),
            )),
            Some(why) => Err(NemesisError::Unsupported(format!(
                "--net netns cannot be used: {why}; use --net local for cooperative link cuts"
            ))),
        },
        NetChoice::Local if partitions => Ok((
            Some(Net::Local),
            "partitions: cooperative link cuts through the nodes' admin API (--net local)".into(),
        )),
        NetChoice::Local | NetChoice::Auto if !partitions => Ok((None, String::new())),
        _ => match crate::netns::unavailable() {
            None => Ok((
                Some(Net::Netns),
                "partitions: network namespaces + nftables (--net netns)".into(),
            )),
            Some(why) => Ok((
                Some(Net::Local),
                format!(
                    "partitions: cooperative link cuts through the nodes' admin API (--net local), because {why}"
                ),
            )),
        },
    }
}

/// What a target can take. `None` means supported; `Some(reason)` means refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    pub target: String,
    pub partition: Option<String>,
    pub pause: Option<String>,
    pub kill: Option<String>,
    pub clock: Option<String>,
}

impl Capabilities {
    /// The reference cluster takes every fault.
    pub fn reference() -> Capabilities {
        Capabilities {
            target: "reference".into(),
            partition: None,
            pause: None,
            kill: None,
            clock: None,
        }
    }

    /// A Go server such as etcd: everything but clock skew (RECIPES.md §6).
    pub fn go_binary(name: &str) -> Capabilities {
        Capabilities {
            target: name.into(),
            partition: None,
            pause: None,
            kill: None,
            clock: Some(format!(
                "{name} is a Go binary: Go reads the clock through the vDSO, not libc, so no LD_PRELOAD shim can skew it, and a time namespace only offsets monotonic clocks at creation"
            )),
        }
    }

    /// Refuses, before the run starts, the first requested kind the target cannot take.
    pub fn check(&self, kinds: &[Kind]) -> Result<(), NemesisError> {
        for k in kinds {
            let why = match k {
                Kind::Partition => &self.partition,
                Kind::Pause => &self.pause,
                Kind::Kill => &self.kill,
                Kind::Clock => &self.clock,
            };
            if let Some(why) = why {
                return Err(NemesisError::Unsupported(format!(
                    "target {} cannot take {k} faults: {why}; drop `{k}` from --nemesis",
                    self.target
                )));
            }
        }
        Ok(())
    }
}

/// Something that can make a `FaultState` hold on a real cluster.
pub trait Mechanism {
    /// The cluster's nodes, in order.
    fn nodes(&self) -> Vec<NodeId>;
    /// The node the target says leads now (asked only for faults aimed at the leader).
    fn leader(&mut self) -> impl Future<Output = Option<NodeId>>;
    /// Makes the whole of `state` hold (idempotent). Best effort: on an error it still
    /// applies the rest and returns the first error.
    fn apply(&mut self, state: &FaultState) -> impl Future<Output = Result<(), NemesisError>>;
}

/// The result of one change, as recorded in the history's `info`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Applied {
    pub state: FaultState,
    /// The leader a role-based target resolved to.
    pub leader: Option<NodeId>,
}

/// The fault state in force, and the driver of a mechanism.
#[derive(Debug, Default)]
pub struct Nemesis {
    state: FaultState,
}

impl Nemesis {
    pub fn new() -> Nemesis {
        Nemesis::default()
    }

    pub fn state(&self) -> &FaultState {
        &self.state
    }

    /// Applies one planned change. Even when applying fails, the state is taken as in
    /// force, so the next heal undoes whatever part of it did happen.
    pub async fn change<M: Mechanism>(
        &mut self,
        mech: &mut M,
        change: &Change,
    ) -> Result<Applied, NemesisError> {
        let (next, leader) = match change {
            Change::Heal => (FaultState::default(), None),
            Change::Fault(fault) => {
                let leader = if fault.needs_leader() {
                    mech.leader().await
                } else {
                    None
                };
                let next = resolve(fault, &mech.nodes(), leader.as_deref(), &self.state)
                    .map_err(NemesisError::Resolve)?;
                (next, leader)
            }
        };
        self.state = next.clone();
        mech.apply(&next).await?;
        Ok(Applied {
            state: next,
            leader,
        })
    }

    /// Applies the empty state.
    pub async fn heal<M: Mechanism>(&mut self, mech: &mut M) -> Result<(), NemesisError> {
        self.change(mech, &Change::Heal).await.map(|_| ())
    }
}

/// Applies fault states to a reference cluster.
#[derive(Debug)]
pub struct ReferenceMechanism<'a> {
    cluster: &'a mut ReferenceCluster,
    net: Net,
    netns: Option<&'a Netns>,
    ledger: Option<&'a Ledger>,
}

impl<'a> ReferenceMechanism<'a> {
    /// `netns` must be given for `Net::Netns` (the namespaces the cluster runs in).
    pub fn new(
        cluster: &'a mut ReferenceCluster,
        net: Net,
        netns: Option<&'a Netns>,
        ledger: Option<&'a Ledger>,
    ) -> Result<ReferenceMechanism<'a>, NemesisError> {
        if net == Net::Netns && netns.is_none() {
            return Err(NemesisError::Unsupported(
                "netns partitions need the run's namespaces".into(),
            ));
        }
        Ok(ReferenceMechanism {
            cluster,
            net,
            netns,
            ledger,
        })
    }

    pub fn cluster(&self) -> &ReferenceCluster {
        self.cluster
    }

    pub fn net(&self) -> Net {
        self.net
    }
}

impl Mechanism for ReferenceMechanism<'_> {
    fn nodes(&self) -> Vec<NodeId> {
        self.cluster.node_ids()
    }

    async fn leader(&mut self) -> Option<NodeId> {
        let mut votes: BTreeMap<NodeId, usize> = BTreeMap::new();
        for n in self.cluster.node_ids() {
            if !self.cluster.is_running(&n) || self.cluster.is_paused(&n) {
                continue;
            }
            if let Ok(st) = self.cluster.status(&n).await
                && let Some(l) = st.leader
            {
                *votes.entry(l).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .max_by_key(|(_, v)| *v)
            .map(|(l, _)| l)
            .or_else(|| Some(self.cluster.leader().to_owned()))
    }

    async fn apply(&mut self, state: &FaultState) -> Result<(), NemesisError> {
        let mut first: Option<NemesisError> = None;
        let nodes = self.cluster.node_ids();
        // 1. Kills (SIGKILL works on a stopped process too).
        for n in &nodes {
            if state.killed.contains(n)
                && self.cluster.is_running(n)
                && let Err(e) = self.cluster.kill(n).await
            {
                first.get_or_insert(e.into());
            }
        }
        // 2. Restarts: the same command, data kept.
        let mut restarted = false;
        for n in &nodes {
            if !state.killed.contains(n) && !self.cluster.is_running(n) {
                restarted = true;
                if let Err(e) = self.cluster.restart(n).await {
                    first.get_or_insert(e.into());
                }
            }
        }
        if restarted
            && let Some(l) = self.ledger
            && let Err(e) = l.set_pids(self.cluster.pids())
        {
            first.get_or_insert(e);
        }
        // 3. Resume whatever should not be paused (SIGCONT is harmless on a running one).
        for n in &nodes {
            if !state.paused.contains(n)
                && self.cluster.is_running(n)
                && let Err(e) = self.cluster.resume(n)
            {
                first.get_or_insert(e.into());
            }
        }
        // 4. Clocks and cooperative links, on every node that can answer.
        for n in &nodes {
            if !self.cluster.is_running(n) || self.cluster.is_paused(n) {
                continue;
            }
            let c = state.clock(n);
            if let Err(e) = self.cluster.set_clock(n, c.offset_ms as f64, c.rate).await {
                first.get_or_insert(e.into());
            }
            if self.net == Net::Local
                && let Err(e) = self.cluster.set_links(n, &state.deaf_to(n), true).await
            {
                first.get_or_insert(e.into());
            }
        }
        // 5. Packet-level partitions.
        if let (Net::Netns, Some(ns)) = (self.net, self.netns)
            && let Err(e) = ns.apply(state)
        {
            first.get_or_insert(e);
        }
        // 6. Pauses last: a stopped node answers nothing.
        for n in &nodes {
            if state.paused.contains(n)
                && self.cluster.is_running(n)
                && let Err(e) = self.cluster.pause(n)
            {
                first.get_or_insert(e.into());
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// A short description of a fault for progress lines ("partition (bridge)").
pub fn describe(fault: &Fault) -> String {
    match fault {
        Fault::Partition(s) => format!("partition ({})", s.name()),
        other => other.f().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_refuse_with_the_reason() {
        assert!(Capabilities::reference().check(&Kind::ALL).is_ok());
        let etcd = Capabilities::go_binary("etcd");
        assert!(etcd.check(&[Kind::Partition, Kind::Kill]).is_ok());
        let e = etcd
            .check(&[Kind::Kill, Kind::Clock])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cannot take clock faults") && e.contains("vDSO"),
            "{e}"
        );
    }

    #[test]
    fn local_net_is_used_when_asked_and_loopback_without_partitions() {
        let (net, notice) = choose_net(NetChoice::Local, &[Kind::Partition]).unwrap();
        assert_eq!(net, Some(Net::Local));
        assert!(notice.contains("cooperative"));
        let (net, _) = choose_net(NetChoice::Auto, &[Kind::Kill]).unwrap();
        assert_eq!(net, None);
        let (net, notice) = choose_net(NetChoice::Auto, &[Kind::Partition]).unwrap();
        assert!(net.is_some());
        assert!(notice.starts_with("partitions: "));
    }
}
