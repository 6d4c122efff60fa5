//! Convergence: after the final heal and a quiet period, every replica of a key holds the
//! same state.
//!
//! Input is each node's dump (from `GET /admin/dump`): the value a read there returns per
//! key, the concurrent versions (siblings) it holds, and — for leaderless clusters whose
//! keys live on N of the nodes — which nodes each key belongs on. A key is compared only
//! among the nodes that should hold it (all nodes, unless the dumps name owners); a node
//! that should hold a key but has none holds nil. Pure: no I/O, no clock. Guarantees:
//! `Valid` only if every key's replicas are identical; each divergent key is one anomaly
//! naming every distinct state and the nodes holding it.

use crate::report::{Anomaly, AnomalyKind, CheckResult, Validity};
use schism_history::Value;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A key's state on one node: the value a read returns and the siblings.
type Held = (Value, Vec<Value>);

/// What one node holds, as its dump says.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplicaState {
    #[serde(default)]
    pub state: BTreeMap<u64, Value>,
    #[serde(default)]
    pub siblings: BTreeMap<u64, Vec<Value>>,
    /// Leaderless: the nodes each key belongs on (absent: every node).
    #[serde(default)]
    pub owners: BTreeMap<u64, Vec<String>>,
}

/// Compares every key across the replicas that should hold it.
pub fn check_convergence(
    replicas: &BTreeMap<String, ReplicaState>,
    max_anomalies: usize,
) -> CheckResult {
    let keys: BTreeSet<u64> = replicas
        .values()
        .flat_map(|r| r.state.keys().copied())
        .collect();
    let all: Vec<&String> = replicas.keys().collect();
    let mut anomalies = Vec::new();
    let mut divergent = 0u64;
    for key in &keys {
        let owners: BTreeSet<&String> = replicas
            .values()
            .filter_map(|r| r.owners.get(key))
            .flatten()
            .collect();
        let holders: Vec<&String> = if owners.is_empty() {
            all.clone()
        } else {
            all.iter().copied().filter(|n| owners.contains(n)).collect()
        };
        // Distinct (value, siblings) → nodes holding it.
        let mut groups: Vec<(Held, Vec<&String>)> = Vec::new();
        for n in holders {
            let r = &replicas[n];
            let v = r.state.get(key).cloned().unwrap_or(Value::Null);
            let s = r.siblings.get(key).cloned().unwrap_or_default();
            match groups.iter_mut().find(|(k, _)| k.0 == v && k.1 == s) {
                Some((_, nodes)) => nodes.push(n),
                None => groups.push(((v, s), vec![n])),
            }
        }
        if groups.len() > 1 {
            divergent += 1;
            if anomalies.len() < max_anomalies {
                let parts: Vec<String> = groups
                    .iter()
                    .map(|((v, s), nodes)| {
                        let who = nodes
                            .iter()
                            .map(|n| n.as_str())
                            .collect::<Vec<_>>()
                            .join(" and ");
                        let verb = if nodes.len() > 1 { "hold" } else { "holds" };
                        if s.is_empty() {
                            format!("{who} {verb} {v}")
                        } else {
                            let sib = s
                                .iter()
                                .map(|x| x.to_string())
                                .collect::<Vec<_>>()
                                .join(", ");
                            format!("{who} {verb} {v} (siblings {sib})")
                        }
                    })
                    .collect();
                anomalies.push(Anomaly {
                    cycle: Vec::new(),
                    kind: AnomalyKind::Divergence,
                    key: Some(*key),
                    ops: Vec::new(),
                    explanation: format!(
                        "after the final heal and a quiet period the replicas of key {key} still differ: {}",
                        parts.join("; ")
                    ),
                });
            }
        }
    }
    let mut figures = serde_json::Map::new();
    figures.insert("replicas".into(), (replicas.len() as u64).into());
    figures.insert("keys".into(), (keys.len() as u64).into());
    figures.insert("divergent_keys".into(), divergent.into());
    figures.insert(
        AnomalyKind::Divergence.figure_name().into(),
        divergent.into(),
    );
    CheckResult {
        checker: "convergence".into(),
        validity: if divergent == 0 {
            Validity::Valid
        } else {
            Validity::Invalid
        },
        anomalies,
        figures,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rep(pairs: &[(u64, Value)]) -> ReplicaState {
        ReplicaState {
            state: pairs.iter().cloned().collect(),
            ..ReplicaState::default()
        }
    }

    #[test]
    fn equal_replicas_converge() {
        let r: BTreeMap<String, ReplicaState> = ["n1", "n2"]
            .iter()
            .map(|n| ((*n).to_owned(), rep(&[(1, Value::list(vec![1, 2]))])))
            .collect();
        let c = check_convergence(&r, 10);
        assert_eq!(c.validity, Validity::Valid);
        assert_eq!(c.figures["keys"], 1);
    }

    #[test]
    fn a_missing_or_different_key_is_divergence_named_by_node() {
        let mut r = BTreeMap::new();
        r.insert(
            "n1".to_owned(),
            rep(&[(1, Value::list(vec![1, 2])), (2, Value::Int(5))]),
        );
        r.insert("n2".to_owned(), rep(&[(1, Value::list(vec![1]))]));
        r.insert(
            "n3".to_owned(),
            rep(&[(1, Value::list(vec![1, 2])), (2, Value::Int(5))]),
        );
        let c = check_convergence(&r, 10);
        assert_eq!(c.validity, Validity::Invalid);
        assert_eq!(c.anomalies.len(), 2);
        assert!(
            c.anomalies[0].explanation.contains("n1 and n3 hold [1,2]"),
            "{}",
            c.anomalies[0].explanation
        );
        assert!(c.anomalies[0].explanation.contains("n2 holds [1]"));
        assert!(
            c.anomalies[1].explanation.contains("n2 holds null")
                || c.anomalies[1].explanation.contains("n2 holds nil"),
            "{}",
            c.anomalies[1].explanation
        );
    }

    #[test]
    fn only_owners_are_compared_and_siblings_count() {
        let mut a = rep(&[(1, Value::Int(1))]);
        a.owners.insert(1, vec!["n1".into(), "n2".into()]);
        let mut b = a.clone();
        b.siblings.insert(1, vec![Value::Int(1), Value::Int(2)]);
        let mut r = BTreeMap::new();
        r.insert("n1".to_owned(), a.clone());
        r.insert("n2".to_owned(), a.clone());
        r.insert("n3".to_owned(), ReplicaState::default());
        assert_eq!(
            check_convergence(&r, 10).validity,
            Validity::Valid,
            "n3 does not own key 1"
        );
        r.insert("n2".to_owned(), b);
        assert_eq!(check_convergence(&r, 10).validity, Validity::Invalid);
    }
}
