//! Applying fault states to a real cluster: the `Mechanism` trait, the `Nemesis` that
//! drives it, and `TargetMechanism`, the one mechanism for every target.
//!
//! `Nemesis` holds the fault state in force. For each planned change it resolves the
//! fault (asking the mechanism who leads only when the fault targets the leader), then
//! asks the mechanism to make the *whole* resulting state hold; healing is applying the
//! empty state. A mechanism must be idempotent: applying a state twice is the same as once.
//!
//! `TargetMechanism` applies a state to any `TargetCluster` (the reference cluster or a
//! database), in an order that keeps every step possible: kill (SIGKILL, data kept; a
//! paused node is let go first), restart what should run (the target's own restart: same
//! data, rejoining as it needs, waiting until it answers), resume what should not be
//! paused (SIGCONT, or thaw the node's cgroup), set every node's clock (the LD_PRELOAD
//! shim's file when the run has one, else the target's own clock API on every node that
//! can answer), make the partitions (nftables in the run's namespaces with `Net::Netns`;
//! with `Net::Local` the target's cooperative link cuts: each node drops replication
//! traffic from the peers it must not hear), and pause last (SIGSTOP through the target,
//! or freeze the cgroup for servers that fork, such as PostgreSQL; a paused node answers
//! nothing).
//!
//! Guarantees: a state the target's declared `Capabilities` refuse is refused with the
//! reason, never silently skipped; a freezer cgroup is in the ledger before it exists and
//! holds the server and every descendant at the moment of the pause (children forked
//! later are born inside); after a restart the new pids go into the ledger.

use crate::cgroup::Freezer;
use crate::error::NemesisError;
use crate::fault::{Fault, FaultState, Kind, resolve};
use crate::hosts::HostsNet;
use crate::ledger::Ledger;
use crate::netns::Netns;
use crate::schedule::Change;
use crate::shim::ClockFile;
use schism_targets::NodeId;
pub use schism_targets::target::{Capabilities, FaultEnv};
use schism_targets::target::{PauseStyle, TargetCluster};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

/// How partitions are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Net {
    /// Network namespaces + nftables (root): packets really dropped.
    Netns,
    /// Cooperative link cuts through the reference nodes' admin API.
    Local,
    /// nftables on each host, over SSH (a run on `--hosts`/`--inventory`).
    Hosts,
}

impl std::fmt::Display for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Net::Netns => "netns",
            Net::Local => "local",
            Net::Hosts => "hosts",
        })
    }
}

/// `--net`: what the user asked for (parses itself with `FromStr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetChoice {
    Auto,
    Netns,
    Local,
}

impl std::fmt::Display for NetChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NetChoice::Auto => "auto",
            NetChoice::Netns => "netns",
            NetChoice::Local => "local",
        })
    }
}

impl std::str::FromStr for NetChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(NetChoice::Auto),
            "netns" => Ok(NetChoice::Netns),
            "local" => Ok(NetChoice::Local),
            other => Err(format!(
                "unknown network mechanism {other:?}: expected auto, netns or local"
            )),
        }
    }
}

impl schism_history::Choices for NetChoice {
    const CHOICES: &'static [(&'static str, &'static str)] =
        &[("auto", ""), ("netns", ""), ("local", "")];
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

/// Checking a target's declared capabilities against the faults a run asks for.
pub trait CapabilitiesCheck {
    /// Refuses, before the run starts, the first requested kind the target cannot take,
    /// naming `--nemesis` as the flag to change.
    fn check(&self, kinds: &[Kind]) -> Result<(), NemesisError>;
}

impl CapabilitiesCheck for Capabilities {
    fn check(&self, kinds: &[Kind]) -> Result<(), NemesisError> {
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

/// Applies fault states to any target.
#[derive(Debug)]
pub struct TargetMechanism<'a> {
    cluster: &'a mut dyn TargetCluster,
    net: Net,
    netns: Option<&'a Netns>,
    hosts: Option<&'a HostsNet>,
    ledger: Option<&'a Ledger>,
    caps: Capabilities,
    /// Per node, the shim's clock file (when the run skews clocks through the shim).
    clocks: BTreeMap<NodeId, ClockFile>,
    freezers: BTreeMap<NodeId, Freezer>,
    paused: BTreeSet<NodeId>,
    /// Prefix of cgroup names (unique per run).
    run_id: String,
}

impl<'a> TargetMechanism<'a> {
    /// `netns` must be given for `Net::Netns` when partitions are to be made (the
    /// namespaces the cluster runs in); `ledger` records restarted pids and freezers.
    pub fn new(
        cluster: &'a mut dyn TargetCluster,
        net: Net,
        netns: Option<&'a Netns>,
        ledger: Option<&'a Ledger>,
    ) -> Result<TargetMechanism<'a>, NemesisError> {
        let kind = cluster.kind();
        if net == Net::Netns && netns.is_none() && kind == schism_targets::TargetKind::Reference {
            return Err(NemesisError::Unsupported(
                "netns partitions need the run's namespaces".into(),
            ));
        }
        Ok(TargetMechanism {
            caps: capabilities(&*cluster, net, netns.is_some(), false),
            cluster,
            net,
            netns,
            hosts: None,
            ledger,
            clocks: BTreeMap::new(),
            freezers: BTreeMap::new(),
            paused: BTreeSet::new(),
            run_id: format!("{:06x}", std::process::id() & 0xff_ffff),
        })
    }

    /// Clock faults through the LD_PRELOAD shim: one file per node, read by the server's
    /// clock calls; `run_id` names this run's freezer cgroups.
    pub fn with_clock_files(
        mut self,
        clocks: BTreeMap<NodeId, ClockFile>,
        run_id: &str,
    ) -> TargetMechanism<'a> {
        self.caps = capabilities(
            &*self.cluster,
            self.net,
            self.netns.is_some() || self.hosts.is_some(),
            !clocks.is_empty(),
        );
        self.clocks = clocks;
        self.run_id = run_id.to_owned();
        self
    }

    /// Partitions by nftables on the nodes' hosts (`Net::Hosts`).
    pub fn with_hosts_net(mut self, hosts: &'a HostsNet) -> TargetMechanism<'a> {
        self.hosts = Some(hosts);
        self.caps = capabilities(&*self.cluster, self.net, true, !self.clocks.is_empty());
        self
    }

    pub fn cluster(&self) -> &dyn TargetCluster {
        &*self.cluster
    }

    pub fn net(&self) -> Net {
        self.net
    }

    fn pause(&mut self, node: &str) -> Result<(), NemesisError> {
        let Some(pid) = self.cluster.pid(node) else {
            return Ok(());
        };
        match self.cluster.pause_style() {
            PauseStyle::Signal => self.cluster.pause(node)?,
            PauseStyle::Tree => {
                if !self.freezers.contains_key(node) {
                    let ledger = self.ledger.ok_or_else(|| {
                        NemesisError::Unsupported(
                            "freezing a process tree needs the run's ledger".into(),
                        )
                    })?;
                    let name = format!("schism-{}-{node}", self.run_id);
                    let f = Freezer::create(ledger, &name)?;
                    self.freezers.insert(node.to_owned(), f);
                }
                let f = &self.freezers[node];
                for p in std::iter::once(pid).chain(schism_targets::process::descendants(pid)) {
                    // A backend that exited meanwhile is not an error.
                    let _ = f.add(p);
                }
                f.freeze()?;
            }
        }
        self.paused.insert(node.to_owned());
        Ok(())
    }

    fn resume(&mut self, node: &str) -> Result<(), NemesisError> {
        if let Some(f) = self.freezers.get(node) {
            f.thaw()?;
        }
        if self.cluster.is_running(node) {
            // SIGCONT is harmless on a running process.
            self.cluster.resume(node)?;
        }
        self.paused.remove(node);
        Ok(())
    }

    /// Whether `node` is paused, as this mechanism or the target itself knows it (a
    /// mechanism made for one change may heal a pause another one made).
    fn is_paused(&self, node: &str) -> bool {
        self.paused.contains(node) || self.cluster.is_paused(node)
    }

    /// Thaws and removes every freezer cgroup (at the end of a run).
    pub fn release(&mut self) -> Vec<String> {
        let mut errors = Vec::new();
        for (_, f) in std::mem::take(&mut self.freezers) {
            if let Err(e) = f.remove() {
                errors.push(e.to_string());
            }
        }
        errors
    }

    /// Refuses a state that needs a fault the target cannot take.
    fn refuse_unsupported(&self, state: &FaultState) -> Result<(), NemesisError> {
        let clocks = self.cluster.node_ids().iter().any(|n| {
            let c = state.clock(n);
            c.offset_ms != 0 || c.rate != 1.0
        });
        let mut kinds = Vec::new();
        for (kind, used) in [
            (Kind::Partition, !state.cuts.is_empty()),
            (Kind::Pause, !state.paused.is_empty()),
            (Kind::Kill, !state.killed.is_empty()),
            (Kind::Clock, clocks),
        ] {
            if used {
                kinds.push(kind);
            }
        }
        self.caps.check(&kinds)
    }
}

/// What the target declares it can take, given what this run gives its faults: the
/// run's namespaces (or, with `Net::Local`, the reference nodes' own link cuts) and the
/// shim's clock files.
fn capabilities(
    cluster: &dyn TargetCluster,
    net: Net,
    have_netns: bool,
    have_shim: bool,
) -> Capabilities {
    let kind = cluster.kind();
    let env = FaultEnv {
        managed: cluster.managed(),
        have_netns: have_netns
            || (net == Net::Local && kind == schism_targets::TargetKind::Reference),
        have_shim,
    };
    Capabilities::of(kind, &env)
}

impl Mechanism for TargetMechanism<'_> {
    fn nodes(&self) -> Vec<NodeId> {
        self.cluster.node_ids()
    }

    async fn leader(&mut self) -> Option<NodeId> {
        self.cluster.leader().await
    }

    async fn apply(&mut self, state: &FaultState) -> Result<(), NemesisError> {
        let mut first: Option<NemesisError> = self.refuse_unsupported(state).err();
        let nodes = self.cluster.node_ids();
        // 1–2. Kills, then restarts.
        self.apply_processes(state, &nodes, &mut first).await;
        // 3. Resume whatever should not be paused.
        for n in &nodes {
            if !state.paused.contains(n)
                && self.is_paused(n)
                && let Err(e) = self.resume(n)
            {
                first.get_or_insert(e);
            }
        }
        // 4. Clocks and cooperative link cuts.
        for n in &nodes {
            self.apply_clock_and_links(state, n, &mut first).await;
        }
        // 5. Packet-level partitions.
        if let (Net::Netns, Some(ns)) = (self.net, self.netns)
            && let Err(e) = ns.apply(state)
        {
            first.get_or_insert(e);
        }
        if let (Net::Hosts, Some(h)) = (self.net, self.hosts)
            && let Err(e) = h.apply(state)
        {
            first.get_or_insert(e);
        }
        // 6. Pauses last: a stopped node answers nothing.
        for n in &nodes {
            if state.paused.contains(n)
                && self.cluster.is_running(n)
                && !self.paused.contains(n)
                && let Err(e) = self.pause(n)
            {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// The steps of `apply`; each keeps the first error in `first` and goes on.
impl TargetMechanism<'_> {
    /// Kills (a frozen or stopped process must be let go first to die promptly), then
    /// restarts on the same data, then the ledger's pids if anything restarted.
    async fn apply_processes(
        &mut self,
        state: &FaultState,
        nodes: &[NodeId],
        first: &mut Option<NemesisError>,
    ) {
        for n in nodes {
            if state.killed.contains(n) && self.cluster.is_running(n) {
                if self.is_paused(n) {
                    let _ = self.resume(n);
                }
                if let Err(e) = self.cluster.kill(n).await {
                    first.get_or_insert(e.into());
                }
            }
        }
        let mut restarted = false;
        for n in nodes {
            if !state.killed.contains(n) && !self.cluster.is_running(n) {
                restarted = true;
                if let Err(e) = self.cluster.restart(n).await {
                    first.get_or_insert(NemesisError::Unsupported(format!("restarting {n}: {e}")));
                }
            }
        }
        if restarted
            && let Some(l) = self.ledger
            && let Err(e) = l
                .set_pids(self.cluster.pids())
                .and_then(|()| l.set_remote_pids(&self.cluster.remote_pids()))
        {
            first.get_or_insert(e);
        }
    }

    /// Node `n`'s clock (the shim's file, else the target's own API if the node can
    /// answer) and, on `Net::Local`, its cooperative link cuts.
    async fn apply_clock_and_links(
        &mut self,
        state: &FaultState,
        n: &NodeId,
        first: &mut Option<NemesisError>,
    ) {
        let c = state.clock(n);
        if let Some(file) = self.clocks.get(n) {
            if let Err(e) = file.set(c.offset_ms, c.rate) {
                first.get_or_insert(e);
            }
            return;
        }
        if !self.cluster.is_running(n) || self.is_paused(n) {
            return;
        }
        if let Some(set) = self.cluster.set_clock(n, c.offset_ms as f64, c.rate)
            && let Err(e) = set.await
        {
            first.get_or_insert(e.into());
        }
        if self.net == Net::Local {
            let deaf = state.deaf_to(n);
            if let Some(set) = self.cluster.set_links(n, &deaf)
                && let Err(e) = set.await
            {
                first.get_or_insert(e.into());
            }
        }
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
