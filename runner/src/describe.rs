//! What a run tested, for its report and the store's index, from its typed `config.json`
//! (`RunConfig`): the target in its own settings (`etcd, Raft, linearizable reads`;
//! `PostgreSQL, sync ANY 2, reads from standbys`; the reference cluster by its model's),
//! the settings people look for first, and every setting as a `dotted.key = value` row.
//!
//! Guarantees: the rows are the serde form of the typed config, so a file schism wrote
//! (which reads back byte for byte) shows exactly the keys and values it holds, in its key
//! order; a field an older file lacks shows its default, as the run's check reads it.

use schism_report::RunSettings;
use schism_targets::db::DbKind;
use schism_targets::{Failover, Model, ReadRouting, Replication};

use crate::cli::{TestArgs, duration_text};
use crate::config::RunConfig;

/// What the report and the index show of a run (`None`: the folder has no config.json).
pub fn run_settings(config: Option<&RunConfig>) -> RunSettings {
    let Some(config) = config else {
        return RunSettings {
            target: describe_target(None),
            ..RunSettings::default()
        };
    };
    RunSettings {
        target: describe_run(config),
        key: key_settings(config),
        rows: rows(config),
    }
}

/// The target of a run as its config.json describes it; a `schism sim` run says so.
pub fn describe_run(config: &RunConfig) -> String {
    let target = describe_target(config.test.as_ref());
    match config.sim {
        Some(_) => format!("{target}, simulated (schism sim)"),
        None => target,
    }
}

/// `PostgreSQL, sync ANY 2, reads from standbys` and the like; without settings, the
/// default target.
pub fn describe_target(test: Option<&TestArgs>) -> String {
    let Some(test) = test else {
        return "reference".into();
    };
    let from = match test.reads {
        ReadRouting::Leader => "reads from the leader",
        ReadRouting::Follower => "reads from followers",
        ReadRouting::Any => "reads from any node",
        ReadRouting::Ryw => "read-your-writes reads",
        ReadRouting::Sticky => "sticky reads",
    };
    let failover = match test.failover {
        Some(Failover::Auto) => "failover auto".to_owned(),
        Some(Failover::None) | None => String::new(),
    };
    // Replicas that must acknowledge a write.
    let acks = match test.replication {
        Replication::Async => None,
        Replication::SemiSync(k) => Some(u64::from(k)),
        Replication::Sync => Some(u64::from(test.nodes).saturating_sub(1)),
    };
    let mut parts: Vec<String> = match test.target.db() {
        Some(DbKind::Etcd) => vec![
            "etcd".into(),
            "Raft".into(),
            format!("{} reads", test.etcd_reads),
        ],
        Some(DbKind::Postgres) => vec![
            "PostgreSQL".into(),
            match acks {
                Some(k) => format!("sync ANY {k}"),
                None => "async streaming replication".into(),
            },
            from.replace("the leader", "the primary")
                .replace("followers", "standbys"),
            failover,
            isolation(test),
        ],
        Some(DbKind::Redis) => vec![
            "Redis".into(),
            match acks {
                Some(k) => format!("async replication + WAIT {k}"),
                None => "async replication".into(),
            },
            from.replace("the leader", "the primary")
                .replace("followers", "replicas"),
            failover,
        ],
        Some(DbKind::Galera) => vec![
            "MariaDB Galera".into(),
            "certification-based multi-primary".into(),
            from.to_owned(),
            isolation(test),
        ],
        None => reference(test, from, failover),
    };
    if !test.endpoints.is_empty() {
        parts.push("attached (--endpoints)".into());
    }
    parts.retain(|p| !p.is_empty());
    parts.join(", ")
}

/// `transactions serializable` when the run chose (or recorded) an isolation level.
fn isolation(test: &TestArgs) -> String {
    test.isolation
        .map(|i| format!("transactions {i}"))
        .unwrap_or_default()
}

/// The reference cluster by its model's settings.
fn reference(test: &TestArgs, from: &str, failover: String) -> Vec<String> {
    let mut v = vec![format!("reference {}", test.model)];
    let given = |name: &str, value: Option<String>| value.map(|x| format!("{name} {x}"));
    match test.model {
        Model::MultiLeader => v.extend(
            [
                given("conflict", test.conflict.map(|c| c.to_string())),
                given("topology", test.topology.map(|t| t.to_string())),
            ]
            .into_iter()
            .flatten(),
        ),
        Model::Leaderless => v.extend(
            [
                given("quorum", test.quorum.clone().filter(|q| !q.is_empty())),
                given("versioning", test.versioning.map(|r| r.to_string())),
            ]
            .into_iter()
            .flatten(),
        ),
        Model::LeaderFollower => {
            v.push(format!("{} replication", test.replication));
            v.push(from.to_owned());
            v.push(failover);
        }
    }
    v
}

/// The settings people look for first, as `config.json` spells them.
fn key_settings(config: &RunConfig) -> Vec<(String, String)> {
    let mut key: Vec<(&str, String)> = Vec::new();
    if let Some(t) = &config.test {
        key.extend([
            ("nodes", t.nodes.to_string()),
            ("workload", t.workload.to_string()),
            ("nemesis", t.nemesis.clone()),
            ("concurrency", t.concurrency.to_string()),
            // As JSON writes a float (`100.0`), which the table shows too.
            ("rate", serde_json::Value::from(t.rate).to_string()),
            ("time limit", duration_text(t.time_limit)),
        ]);
    }
    if let Some(seed) = config.seed {
        key.push(("seed", seed.to_string()));
    }
    if let Some(started) = &config.started_at {
        key.push(("started", schism_report::to_the_second(started)));
    }
    key.into_iter().map(|(l, v)| (l.to_owned(), v)).collect()
}

/// Every setting: the serde form of the typed config flattened into dotted keys (three
/// levels deep; anything deeper, and every list, as its JSON).
fn rows(config: &RunConfig) -> Vec<(String, String)> {
    fn walk(prefix: &str, v: &serde_json::Value, depth: u32, out: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::Object(m) if depth < 3 => {
                for (k, v) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, depth + 1, out);
                }
            }
            serde_json::Value::String(s) => out.push((prefix.to_owned(), s.clone())),
            serde_json::Value::Null => out.push((prefix.to_owned(), "–".into())),
            other => out.push((prefix.to_owned(), other.to_string())),
        }
    }
    let mut out = Vec::new();
    // A typed config always encodes (every field is plain data).
    if let Ok(value) = serde_json::to_value(config) {
        walk("", &value, 0, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test(settings: &[&str]) -> TestArgs {
        use clap::Parser;
        #[derive(Parser)]
        struct One {
            #[command(flatten)]
            test: TestArgs,
        }
        One::parse_from(std::iter::once("schism").chain(settings.iter().copied())).test
    }

    #[test]
    fn targets_by_their_settings() {
        let pg = test(&[
            "--target",
            "postgres",
            "--replication",
            "sync",
            "--reads",
            "follower",
        ]);
        assert_eq!(
            describe_target(Some(&pg)),
            "PostgreSQL, sync ANY 2, reads from standbys"
        );
        let etcd = test(&["--target", "etcd"]);
        assert_eq!(
            describe_target(Some(&etcd)),
            "etcd, Raft, linearizable reads"
        );
        let redis = test(&[
            "--target",
            "redis",
            "--replication",
            "semi-sync:1",
            "--failover",
            "auto",
        ]);
        assert_eq!(
            describe_target(Some(&redis)),
            "Redis, async replication + WAIT 1, reads from any node, failover auto"
        );
        assert_eq!(
            describe_target(Some(&test(&[]))),
            "reference leader-follower, async replication, reads from any node"
        );
        let ml = test(&["--model", "multi-leader", "--topology", "ring"]);
        assert_eq!(
            describe_target(Some(&ml)),
            "reference multi-leader, topology ring"
        );
        let ll = test(&[
            "--model",
            "leaderless",
            "--quorum",
            "3/2/1",
            "--versioning",
            "version-vector",
        ]);
        assert_eq!(
            describe_target(Some(&ll)),
            "reference leaderless, quorum 3/2/1, versioning version-vector"
        );
        let attached = test(&["--target", "galera", "--endpoints", "a:1,b:2"]);
        assert_eq!(
            describe_target(Some(&attached)),
            "MariaDB Galera, certification-based multi-primary, reads from any node, attached (--endpoints)"
        );
    }
}
