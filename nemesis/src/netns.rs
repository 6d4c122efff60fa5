//! Real partitions: one network namespace per node on a private bridge, nftables rules
//! inside the node namespaces that drop packets (RECIPES.md §5a, as in Jepsen).
//!
//! Layout for run `<id>`: namespace `schism-<id>-br` holds bridge `br0`; namespace
//! `schism-<id>-n<i>` holds `eth0` at `10.77.<s>.<10+i>/24`; a veth `sch<id>` in the root
//! namespace, at `10.77.<s>.254/24`, plugs the runner into the bridge so its clients reach
//! every node. The third octet `<s>` is chosen under a machine-wide lock so that no other
//! run on the machine uses it. Every address is inside namespaces this run created.
//!
//! Guarantees: each namespace and the root veth is written to the ledger before it is
//! created, so a killed runner's leftovers are found; `apply` rewrites every node's
//! `inet schism` table in one nft transaction per node (add, delete, add: idempotent), and
//! an empty cut set leaves no table behind; client traffic from the runner's address is
//! never dropped. Teardown is the ledger's: deleting a namespace removes its table and veths.

use crate::error::NemesisError;
use crate::fault::FaultState;
use crate::ledger::Ledger;
use crate::sys;
use schism_targets::NodeId;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

pub use crate::nft::TABLE;
use crate::nft::table_script;
/// Where the subnet lock lives (root only).
const LOCK_PATH: &str = "/run/schism/netns.lock";

/// Why network namespaces cannot be used here, if they cannot.
pub fn unavailable() -> Option<String> {
    if !sys::is_root() {
        return Some("network namespaces need root".into());
    }
    for tool in ["ip", "nft"] {
        if !sys::have(tool) {
            return Some(format!(
                "`{tool}` not found: install the `{}` package",
                sys::package_of(if tool == "ip" { "ip" } else { "nft" })
            ));
        }
    }
    if !std::path::Path::new("/proc/self/ns/net").exists() {
        return Some("this kernel has no network namespaces".into());
    }
    None
}

/// The namespaces of one run.
#[derive(Debug)]
pub struct Netns {
    nodes: Vec<NodeId>,
    /// Node namespace names, in node order.
    pub namespaces: Vec<String>,
    pub bridge_ns: String,
    pub root_link: String,
    /// Node addresses, in node order.
    pub addrs: Vec<Ipv4Addr>,
    /// The runner's address on the bridge.
    pub gateway: Ipv4Addr,
}

/// The machine-wide lock (`LOCK_PATH`) that subnet choices are made under.
pub(crate) fn lock_subnets() -> Result<nix::fcntl::Flock<std::fs::File>, NemesisError> {
    let lock_dir = std::path::Path::new(LOCK_PATH)
        .parent()
        .unwrap_or(std::path::Path::new("/run"));
    std::fs::create_dir_all(lock_dir).map_err(|e| NemesisError::io(lock_dir, e))?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(LOCK_PATH)
        .map_err(|e| NemesisError::io(LOCK_PATH, e))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| NemesisError::io(LOCK_PATH, e.into()))
}

/// The third octet of a 10.77.x.0/24 subnet no address of this machine is in, searched
/// from a start drawn from `run_id`.
pub(crate) fn free_subnet(run_id: &str) -> Result<u8, NemesisError> {
    let used = sys::run("ip", &["-o", "-4", "addr", "show"], None)?;
    let start = run_id
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    (0..250u32)
        .map(|k| ((start + k) % 250 + 1) as u8)
        .find(|o| !used.contains(&format!("10.77.{o}.")))
        .ok_or_else(|| NemesisError::Unsupported("every 10.77.x.0/24 subnet is in use".into()))
}

fn ip(args: &[&str]) -> Result<(), NemesisError> {
    sys::run("ip", args, None).map(|_| ())
}

/// The bridge namespace with `br0`, and the runner's veth `root_link` into it at `gateway`.
pub(crate) fn create_bridge(
    bridge_ns: &str,
    root_link: &str,
    gateway: Ipv4Addr,
) -> Result<(), NemesisError> {
    ip(&["netns", "add", bridge_ns])?;
    ip(&["-n", bridge_ns, "link", "set", "lo", "up"])?;
    ip(&["-n", bridge_ns, "link", "add", "br0", "type", "bridge"])?;
    ip(&["-n", bridge_ns, "link", "set", "br0", "up"])?;
    ip(&[
        "link", "add", root_link, "type", "veth", "peer", "name", "up0", "netns", bridge_ns,
    ])?;
    ip(&["-n", bridge_ns, "link", "set", "up0", "master", "br0"])?;
    ip(&["-n", bridge_ns, "link", "set", "up0", "up"])?;
    let gw = format!("{gateway}/24");
    ip(&["addr", "add", &gw, "dev", root_link])?;
    ip(&["link", "set", root_link, "up"])
}

/// Node i's namespace `ns`, its `eth0` at `addr` on the bridge (port `p<i+1>`).
pub(crate) fn add_node_namespace(
    run_id: &str,
    i: usize,
    ns: &str,
    addr: Ipv4Addr,
    bridge_ns: &str,
) -> Result<(), NemesisError> {
    let tmp = format!("s{run_id}n{}", i + 1);
    let port = format!("p{}", i + 1);
    let addr = format!("{addr}/24");
    ip(&["netns", "add", ns])?;
    ip(&["-n", ns, "link", "set", "lo", "up"])?;
    ip(&[
        "link", "add", &tmp, "netns", ns, "type", "veth", "peer", "name", &port, "netns", bridge_ns,
    ])?;
    ip(&["-n", ns, "link", "set", &tmp, "name", "eth0"])?;
    ip(&["-n", ns, "addr", "add", &addr, "dev", "eth0"])?;
    ip(&["-n", ns, "link", "set", "eth0", "up"])?;
    ip(&["-n", bridge_ns, "link", "set", &port, "master", "br0"])?;
    ip(&["-n", bridge_ns, "link", "set", &port, "up"])
}

impl Netns {
    /// Creates the bridge, one namespace per node and the runner's veth.
    pub fn create(ledger: &Ledger, run_id: &str, nodes: &[NodeId]) -> Result<Netns, NemesisError> {
        if let Some(why) = unavailable() {
            return Err(NemesisError::Unsupported(format!("--net netns: {why}")));
        }
        let prefix = format!("schism-{run_id}");
        let namespaces: Vec<String> = nodes.iter().map(|n| format!("{prefix}-{n}")).collect();
        let bridge_ns = format!("{prefix}-br");
        let root_link = format!("sch{run_id}");
        let mut all = vec![bridge_ns.clone()];
        all.extend(namespaces.iter().cloned());
        ledger.update(|r| {
            r.namespaces.extend(all.iter().cloned());
            r.root_links.push(root_link.clone());
        })?;

        // Hold the machine-wide lock while picking a subnet and claiming it in the root
        // namespace, so two runs never pick the same one.
        let lock = lock_subnets()?;
        let octet = free_subnet(run_id)?;
        let gateway = Ipv4Addr::new(10, 77, octet, 254);
        let addrs: Vec<Ipv4Addr> = (0..nodes.len())
            .map(|i| Ipv4Addr::new(10, 77, octet, 10 + i as u8 + 1))
            .collect();
        create_bridge(&bridge_ns, &root_link, gateway)?;
        drop(lock);
        for (i, ns) in namespaces.iter().enumerate() {
            add_node_namespace(run_id, i, ns, addrs[i], &bridge_ns)?;
        }
        Ok(Netns {
            nodes: nodes.to_vec(),
            namespaces,
            bridge_ns,
            root_link,
            addrs,
            gateway,
        })
    }

    pub fn addr_of(&self, node: &str) -> Option<Ipv4Addr> {
        self.nodes
            .iter()
            .position(|n| n == node)
            .map(|i| self.addrs[i])
    }

    /// The nft script that makes node `i`'s table match `state` (input drops only: the
    /// receiver drops what a cut sender sends, which is exactly a directed cut).
    pub fn script(&self, i: usize, state: &FaultState) -> String {
        let me = &self.nodes[i];
        let deaf: Vec<String> = state
            .deaf_to(me)
            .iter()
            .filter_map(|n| self.addr_of(n))
            .map(|a| a.to_string())
            .collect();
        table_script(&deaf)
    }

    /// Makes every node namespace's rules match `state.cuts`.
    pub fn apply(&self, state: &FaultState) -> Result<(), NemesisError> {
        let mut first = None;
        for (i, ns) in self.namespaces.iter().enumerate() {
            let script = self.script(i, state);
            if let Err(e) = sys::run(
                "ip",
                &["netns", "exec", ns, "nft", "-f", "-"],
                Some(&script),
            ) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Per node, the rules in force (`nft list table`), for tests and the record.
    pub fn rules(&self) -> BTreeMap<NodeId, String> {
        self.nodes
            .iter()
            .zip(&self.namespaces)
            .map(|(n, ns)| {
                let out = sys::run(
                    "ip",
                    &["netns", "exec", ns, "nft", "list", "table", "inet", TABLE],
                    None,
                )
                .unwrap_or_default();
                (n.clone(), out)
            })
            .collect()
    }
}
