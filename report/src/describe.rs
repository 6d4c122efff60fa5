//! What a run tested, in the target's own words (from `config.json`): a database by its
//! settings (`etcd, Raft, linearizable reads`; `PostgreSQL, sync ANY 2, reads from
//! standbys`), the reference cluster by its model's, and dates to the second.

use serde_json::Value;

fn get(config: &Value, key: &str) -> String {
    match config.pointer(&format!("/test/{key}")) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// `PostgreSQL, sync ANY 2, reads from standbys` and the like.
pub fn describe_target(config: &Value) -> String {
    let target = get(config, "target");
    let nodes: u64 = get(config, "nodes").parse().unwrap_or(3);
    let reads = get(config, "reads");
    let from = match reads.as_str() {
        "leader" => "reads from the leader",
        "follower" => "reads from followers",
        "any" => "reads from any node",
        "ryw" => "read-your-writes reads",
        "sticky" => "sticky reads",
        _ => "",
    };
    let failover = match get(config, "failover").as_str() {
        "" | "none" => String::new(),
        f => format!("failover {f}"),
    };
    let replication = get(config, "replication");
    let acks = |r: &str| -> Option<u64> {
        match r {
            "sync" => Some(nodes.saturating_sub(1)),
            r => r.strip_prefix("semi-sync:").and_then(|k| k.parse().ok()),
        }
    };
    let mut parts: Vec<String> = match target.as_str() {
        "etcd" => vec![
            "etcd".into(),
            "Raft".into(),
            format!("{} reads", get(config, "etcd_reads")),
        ],
        "postgres" => vec![
            "PostgreSQL".into(),
            match acks(&replication) {
                Some(k) => format!("sync ANY {k}"),
                None => "async streaming replication".into(),
            },
            from.replace("the leader", "the primary")
                .replace("followers", "standbys"),
            failover,
        ],
        "redis" => vec![
            "Redis".into(),
            match acks(&replication) {
                Some(k) => format!("async replication + WAIT {k}"),
                None => "async replication".into(),
            },
            from.replace("the leader", "the primary")
                .replace("followers", "replicas"),
            failover,
        ],
        "galera" => vec![
            "MariaDB Galera".into(),
            "certification-based multi-primary".into(),
            from.to_owned(),
        ],
        _ => {
            let model = get(config, "model");
            let mut v = vec![format!("reference {model}")];
            match model.as_str() {
                "multi-leader" => {
                    for k in ["conflict", "topology"] {
                        let x = get(config, k);
                        if !x.is_empty() {
                            v.push(format!("{k} {x}"));
                        }
                    }
                }
                "leaderless" => {
                    for k in ["quorum", "versioning"] {
                        let x = get(config, k);
                        if !x.is_empty() {
                            v.push(format!("{k} {x}"));
                        }
                    }
                }
                _ => {
                    if !replication.is_empty() {
                        v.push(format!("{replication} replication"));
                    }
                    v.push(from.to_owned());
                    v.push(failover);
                }
            }
            v
        }
    };
    if !get(config, "endpoints")
        .trim_matches(|c| c == '[' || c == ']')
        .is_empty()
    {
        parts.push("attached (--endpoints)".into());
    }
    // A `schism sim` run: the same test on simulated time, network and clients.
    if config.get("sim").is_some_and(|s| !s.is_null()) {
        parts.push("simulated (schism sim)".into());
    }
    parts.retain(|p| !p.is_empty());
    parts.join(", ")
}

/// An RFC 3339 time cut to the second (`2026-12-01 15:19:23 UTC`); anything else as given.
pub fn to_the_second(date: &str) -> String {
    let b = date.as_bytes();
    if b.len() >= 19 && b[4] == b'-' && b[10] == b'T' && b[13] == b':' {
        let utc = date.ends_with("+00:00") || date.ends_with('Z');
        format!(
            "{} {}{}",
            &date[..10],
            &date[11..19],
            if utc { " UTC" } else { "" }
        )
    } else {
        date.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn databases_by_their_settings() {
        let pg = json!({"test": {"target": "postgres", "nodes": 3, "replication": "sync", "reads": "follower", "failover": "none"}});
        assert_eq!(
            describe_target(&pg),
            "PostgreSQL, sync ANY 2, reads from standbys"
        );
        let etcd = json!({"test": {"target": "etcd", "etcd_reads": "linearizable", "replication": "async", "reads": "any", "model": "leader-follower"}});
        assert_eq!(describe_target(&etcd), "etcd, Raft, linearizable reads");
        let r = json!({"test": {"target": "reference", "model": "leader-follower", "replication": "async", "reads": "any", "failover": "none"}});
        assert_eq!(
            describe_target(&r),
            "reference leader-follower, async replication, reads from any node"
        );
        assert_eq!(
            to_the_second("2026-12-01T15:19:23.935869576+00:00"),
            "2026-12-01 15:19:23 UTC"
        );
    }
}
