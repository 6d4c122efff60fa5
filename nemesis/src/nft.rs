//! The nftables rules of a partition, as one script: pure text, shared by the namespaces
//! of a local run (`netns`) and the hosts of a run over SSH (`hosts`).
//!
//! Guarantees: the script is one nft transaction that leaves exactly one `inet schism`
//! table dropping input from the given addresses (add, delete, add: idempotent), or no
//! table at all when there are none.

/// The nft table name on each node's namespace or host.
pub const TABLE: &str = "schism";

/// The nft script that leaves exactly one table dropping input from `deaf` addresses
/// (none: no table at all); shared with `hosts`.
pub fn table_script(deaf: &[String]) -> String {
    let mut s = format!("table inet {TABLE}\ndelete table inet {TABLE}\n");
    if !deaf.is_empty() {
        s.push_str(&format!(
            "table inet {TABLE} {{\n  chain input {{\n    type filter hook input priority 0; policy accept;\n    ip saddr {{ {} }} drop\n  }}\n}}\n",
            deaf.join(", ")
        ));
    }
    s
}
