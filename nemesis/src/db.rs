//! Applying fault states to a real database cluster (`schism_targets::db::DbCluster`).
//!
//! The same order as for the reference cluster, so every step stays possible: kill
//! (SIGKILL, data kept), restart what should run (the adapter's own restart: same data,
//! rejoining as the database needs), resume what should not be paused (SIGCONT, or thaw
//! the node's cgroup), set every node's clock file (the LD_PRELOAD shim reads it on its
//! next clock call), rewrite the nftables rules in the node namespaces, and pause last
//! (SIGSTOP, or freeze the cgroup for servers that fork, such as PostgreSQL).
//!
//! Guarantees: applying a state twice is the same as once; a freezer cgroup is in the
//! ledger before it exists and holds the server and every descendant at the moment of the
//! pause (children forked later are born inside); after a restart the new pids go into
//! the ledger. Capabilities are checked before the run: a fault this mechanism cannot
//! make (partitions without namespaces, clocks without a shim, anything with
//! `--endpoints`) is refused with the reason, never silently skipped.

use crate::cgroup::Freezer;
use crate::error::NemesisError;
use crate::fault::FaultState;
use crate::ledger::Ledger;
use crate::mechanism::{Capabilities, Mechanism};
use crate::netns::Netns;
use crate::shim::ClockFile;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use schism_targets::NodeId;
use schism_targets::db::{DbCluster, DbKind, PauseStyle};
use std::collections::{BTreeMap, BTreeSet};

/// What a database target can take, given how it was started.
pub fn db_capabilities(
    kind: DbKind,
    managed: bool,
    have_netns: bool,
    have_shim: bool,
) -> Capabilities {
    let target = kind.to_string();
    if !managed {
        let why = "with --endpoints schism does not control the processes or the network of the cluster; drop --endpoints to let schism provision one".to_owned();
        return Capabilities {
            target,
            partition: Some(why.clone()),
            pause: Some(why.clone()),
            kill: Some(why.clone()),
            clock: Some(why),
        };
    }
    let mut caps = if kind == DbKind::Etcd {
        Capabilities::go_binary("etcd")
    } else {
        Capabilities {
            target,
            partition: None,
            pause: None,
            kill: None,
            clock: None,
        }
    };
    if !have_netns {
        caps.partition = Some(format!(
            "partitions of {kind} need network namespaces (root, iproute2, nftables): a userspace proxy cannot cut every peer link (RECIPES.md §5b)"
        ));
    }
    if !have_shim && caps.clock.is_none() {
        caps.clock = Some("the LD_PRELOAD clock shim could not be built: install gcc".into());
    }
    caps
}

/// Applies fault states to a database cluster.
#[derive(Debug)]
pub struct DbMechanism<'a> {
    cluster: &'a mut dyn DbCluster,
    netns: Option<&'a Netns>,
    ledger: &'a Ledger,
    /// Per node, the shim's clock file (when clock faults are scheduled).
    clocks: BTreeMap<NodeId, ClockFile>,
    freezers: BTreeMap<NodeId, Freezer>,
    paused: BTreeSet<NodeId>,
    /// Prefix of cgroup names (unique per run).
    run_id: String,
}

impl<'a> DbMechanism<'a> {
    pub fn new(
        cluster: &'a mut dyn DbCluster,
        netns: Option<&'a Netns>,
        ledger: &'a Ledger,
        clocks: BTreeMap<NodeId, ClockFile>,
        run_id: &str,
    ) -> DbMechanism<'a> {
        DbMechanism {
            cluster,
            netns,
            ledger,
            clocks,
            freezers: BTreeMap::new(),
            paused: BTreeSet::new(),
            run_id: run_id.to_owned(),
        }
    }

    fn pause(&mut self, node: &str) -> Result<(), NemesisError> {
        let Some(pid) = self.cluster.pid(node) else {
            return Ok(());
        };
        match self.cluster.pause_style() {
            PauseStyle::Signal => {
                signal(pid, Signal::SIGSTOP)?;
                wait_state(pid, true);
            }
            PauseStyle::Tree => {
                if !self.freezers.contains_key(node) {
                    let name = format!("schism-{}-{node}", self.run_id);
                    let f = Freezer::create(self.ledger, &name)?;
                    self.freezers.insert(node.to_owned(), f);
                }
                let f = &self.freezers[node];
                for p in std::iter::once(pid).chain(schism_targets::db::descendants(pid)) {
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
        if let Some(pid) = self.cluster.pid(node) {
            // SIGCONT is harmless on a running process.
            let _ = signal(pid, Signal::SIGCONT);
            wait_state(pid, false);
        }
        self.paused.remove(node);
        Ok(())
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
}

impl Mechanism for DbMechanism<'_> {
    fn nodes(&self) -> Vec<NodeId> {
        self.cluster.node_ids()
    }

    async fn leader(&mut self) -> Option<NodeId> {
        self.cluster.leader().await
    }

    async fn apply(&mut self, state: &FaultState) -> Result<(), NemesisError> {
        let mut first: Option<NemesisError> = None;
        let nodes = self.cluster.node_ids();
        // 1. Kills (a frozen or stopped process must be let go first to die promptly).
        for n in &nodes {
            if state.killed.contains(n) && self.cluster.is_running(n) {
                if self.paused.contains(n) {
                    let _ = self.resume(n);
                }
                if let Err(e) = self.cluster.kill(n).await {
                    first.get_or_insert(NemesisError::Unsupported(e.to_string()));
                }
            }
        }
        // 2. Restarts.
        let mut restarted = false;
        for n in &nodes {
            if !state.killed.contains(n) && !self.cluster.is_running(n) {
                restarted = true;
                if let Err(e) = self.cluster.restart(n).await {
                    first.get_or_insert(NemesisError::Unsupported(format!("restarting {n}: {e}")));
                }
            }
        }
        if restarted && let Err(e) = self.ledger.set_pids(self.cluster.pids()) {
            first.get_or_insert(e);
        }
        // 3. Resume what should not be paused.
        for n in &nodes {
            if !state.paused.contains(n)
                && self.paused.contains(n)
                && let Err(e) = self.resume(n)
            {
                first.get_or_insert(e);
            }
        }
        // 4. Clocks.
        for (n, file) in &self.clocks {
            let c = state.clock(n);
            if let Err(e) = file.set(c.offset_ms, c.rate) {
                first.get_or_insert(e);
            }
        }
        // 5. Partitions.
        if let Some(ns) = self.netns {
            if let Err(e) = ns.apply(state) {
                first.get_or_insert(e);
            }
        } else if !state.cuts.is_empty() {
            first.get_or_insert(NemesisError::Unsupported(
                "partitions need the run's network namespaces".into(),
            ));
        }
        // 6. Pauses last.
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

fn signal(pid: u32, sig: Signal) -> Result<(), NemesisError> {
    kill(Pid::from_raw(pid as i32), sig).map_err(|e| NemesisError::Command {
        cmd: format!("kill -{} {pid}", sig.as_str()),
        msg: e.to_string(),
    })
}

/// Waits (at most 500 ms) until `/proc` shows the process stopped (or not).
fn wait_state(pid: u32, stopped: bool) {
    let until = std::time::Instant::now() + std::time::Duration::from_millis(500);
    while let Some((s, _)) = crate::sys::proc_stat(pid) {
        if matches!(s, 'T' | 't') == stopped || std::time::Instant::now() >= until {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}
