//! The `convergence` checker: after heal and quiescence, every replica holds the same
//! state.
//!
//! Input is not a history but per-node state dumps, `node → key → value`, which the
//! runner fetches from the nodes' admin API; this module only compares them. A key that a
//! node lacks counts as absent, which differs from any value.
//!
//! Guarantees: a pure function of the dumps; valid exactly when every node holds the same
//! keys with equal values; every divergent key is one anomaly (bounded per `Options`,
//! counted in full) naming which nodes hold what; no dumps at all is unknown.

use crate::Options;
use crate::report::{Anomaly, AnomalyKind, AnomalySink, CheckResult, Validity};
use schism_history::{Key, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Final states by node name, then key.
pub type NodeStates = BTreeMap<String, BTreeMap<Key, Value>>;

/// Compares the replicas' final states.
pub fn check_convergence(dumps: &NodeStates, opts: &Options) -> CheckResult {
    let mut figures = serde_json::Map::new();
    figures.insert("nodes".into(), dumps.len().into());
    if dumps.is_empty() {
        figures.insert(
            "unknown_reason".into(),
            "no replica states were given".into(),
        );
        return CheckResult {
            checker: "convergence".into(),
            validity: Validity::Unknown,
            anomalies: Vec::new(),
            figures,
        };
    }
    let keys: BTreeSet<Key> = dumps.values().flat_map(|m| m.keys().copied()).collect();
    figures.insert("keys".into(), keys.len().into());
    let mut sink = AnomalySink::new(opts.max_anomalies_per_kind);
    for &key in &keys {
        // Nodes grouped by what they hold (None: absent), in first-seen order.
        let mut groups: Vec<(Option<&Value>, Vec<&str>)> = Vec::new();
        for (node, state) in dumps {
            let v = state.get(&key);
            match groups.iter_mut().find(|(g, _)| *g == v) {
                Some((_, nodes)) => nodes.push(node),
                None => groups.push((v, vec![node])),
            }
        }
        if groups.len() == 1 {
            continue;
        }
        sink.push_with(AnomalyKind::ReplicaDivergence, || {
            let parts: Vec<String> = groups
                .iter()
                .map(|(v, nodes)| {
                    let who = nodes.join(", ");
                    let verb = if nodes.len() == 1 { "has" } else { "have" };
                    match v {
                        Some(v) => format!("{who} {verb} {v}"),
                        None => format!(
                            "{who} {} it",
                            if nodes.len() == 1 { "lacks" } else { "lack" }
                        ),
                    }
                })
                .collect();
            Anomaly::new(
                AnomalyKind::ReplicaDivergence,
                Some(key),
                Vec::new(),
                format!(
                    "key {key} differs across replicas after quiescence: {}",
                    parts.join("; ")
                ),
            )
        });
    }
    let found = !sink.is_empty();
    let anomalies = sink.finish(&[AnomalyKind::ReplicaDivergence], &mut figures);
    CheckResult {
        checker: "convergence".into(),
        validity: if found {
            Validity::Invalid
        } else {
            Validity::Valid
        },
        anomalies,
        figures,
    }
}
