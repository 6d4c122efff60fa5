//! Linearizability of whole-history models that are not one register per key: Knossos's
//! `multi-register` (each op a `txn` of `read`/`write` micro-ops over named registers,
//! applied atomically) and `mutex` (`acquire` fails when held, `release` when free).
//!
//! Both run the Wing–Gong–Lowe search of `wgl` over the whole history (a txn may touch
//! several registers, so there is no per-key split). Multi-register states are interned
//! as dense ids (a vector of register values each); the mutex is a two-state cas register.
//! Knossos semantics: failed ops never happened, indeterminate ops may take effect any time
//! after their invoke or never, a nil read inside a txn matches anything.
//!
//! Guarantees: as for the register checker — `Valid` only after a full linearization, a
//! spent budget or abort gives `Unknown`, a violation names the op that cannot be placed
//! and the end of the longest linearizable prefix.

use super::wgl::{self, Call, Step};
use crate::explain::op_index;
use crate::fx::FxHashMap;
use crate::report::{Anomaly, AnomalyKind, CheckResult, Validity};
use crate::{CheckError, Model, Options};
use schism_history::{F, History, Operation, Outcome, Value};

/// One micro-op of a txn: `(is_write, register, value)`.
type Micro = (bool, u32, Option<i64>);

/// Parses a txn value `[["read","x",null],["write","y",2]]` into micro-ops, interning
/// register names.
pub(crate) fn parse_txn(
    v: &Value,
    regs: &mut FxHashMap<String, u32>,
) -> Result<Vec<Micro>, String> {
    let Some(items) = v.as_json().and_then(serde_json::Value::as_array) else {
        return Err(format!(
            "txn value {v} is not a list of [f register value] micro-ops"
        ));
    };
    let mut out = Vec::with_capacity(items.len());
    for m in items {
        let Some([f, k, x]) = m.as_array().map(Vec::as_slice) else {
            return Err(format!("txn micro-op {m} is not [f register value]"));
        };
        let write = match f.as_str() {
            Some("read" | "r") => false,
            Some("write" | "w") => true,
            _ => return Err(format!("txn micro-op {m}: f must be read or write")),
        };
        let name = match k {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => {
                return Err(format!(
                    "txn micro-op {m}: register must be a name or number"
                ));
            }
        };
        let value = match x {
            serde_json::Value::Null => None,
            x => Some(
                x.as_i64()
                    .ok_or_else(|| format!("txn micro-op {m}: value must be an integer or nil"))?,
            ),
        };
        if write && value.is_none() {
            return Err(format!("txn micro-op {m} writes nil"));
        }
        let n = regs.len() as u32;
        let r = *regs.entry(name).or_insert(n);
        out.push((write, r, value));
    }
    Ok(out)
}

pub(crate) fn check_general(
    h: &History,
    ops: &[Operation],
    opts: &Options,
    model: Model,
) -> Result<CheckResult, CheckError> {
    let mut regs: FxHashMap<String, u32> = FxHashMap::default();
    let mut txns: Vec<Vec<Micro>> = Vec::new();
    let mut calls: Vec<Call> = Vec::new();
    let mut kept: Vec<&Operation> = Vec::new();
    let (mut ok, mut fail, mut info) = (0u64, 0u64, 0u64);
    for o in ops {
        match o.outcome {
            Outcome::Ok => ok += 1,
            Outcome::Fail => {
                fail += 1;
                continue;
            }
            Outcome::Info => info += 1,
        }
        let bad = |msg: String| CheckError::Op {
            index: op_index(h, o),
            msg,
        };
        let ret = if o.outcome == Outcome::Ok {
            o.complete()
        } else {
            None
        };
        let step = match model {
            Model::MultiRegister => {
                if o.f.as_str() != "txn" {
                    return Err(bad(format!(
                        "function {:?} does not belong to the multi-register model (txn)",
                        o.f.as_str()
                    )));
                }
                let mut t = parse_txn(&o.value, &mut regs).map_err(bad)?;
                if ret.is_none() {
                    // An indeterminate txn returned nothing: its reads constrain nothing.
                    t.retain(|m| m.0);
                    if t.is_empty() {
                        continue;
                    }
                }
                txns.push(t);
                Step::Txn(txns.len() as u32 - 1)
            }
            _ => match o.f.as_str() {
                "acquire" => Step::Cas(0, 1),
                "release" => Step::Cas(1, 0),
                other => {
                    return Err(bad(format!(
                        "function {other:?} does not belong to the mutex model (acquire, release)"
                    )));
                }
            },
        };
        calls.push(Call {
            invoke: o.invoke(),
            ret,
            deadline: false,
            step,
        });
        kept.push(o);
    }

    // Multi-register states: register values, interned.
    let nregs = regs.len();
    let init: Vec<Option<i64>> = vec![opts.register.initial; nregs];
    let mut states: Vec<Vec<Option<i64>>> = vec![init.clone()];
    let mut ids: FxHashMap<Vec<Option<i64>>, u32> = FxHashMap::default();
    ids.insert(init, 0);
    let wildcard = opts.register.nil_read_is_wildcard || model == Model::MultiRegister;
    let mut scratch: Vec<Option<i64>> = Vec::with_capacity(nregs);
    let mut apply = |op: u32, state: u32| -> Option<u32> {
        scratch.clear();
        scratch.extend_from_slice(&states[state as usize]);
        for &(write, r, v) in &txns[op as usize] {
            let cur = &mut scratch[r as usize];
            if write {
                *cur = v;
            } else if !(v.is_none() && wildcard) && *cur != v {
                return None;
            }
        }
        if let Some(&id) = ids.get(&scratch) {
            return Some(id);
        }
        let id = states.len() as u32;
        states.push(scratch.clone());
        ids.insert(scratch.clone(), id);
        Some(id)
    };
    let mut budget = opts.max_states;
    let found = wgl::search_model(&calls, 0, &mut budget, opts.abort.as_deref(), &mut apply);

    let mut figures = serde_json::Map::new();
    figures.insert(
        "model".into(),
        match model {
            Model::MultiRegister => "multi-register",
            _ => "mutex",
        }
        .into(),
    );
    figures.insert("ok".into(), ok.into());
    figures.insert("fail".into(), fail.into());
    figures.insert("info".into(), info.into());
    figures.insert("registers".into(), nregs.into());
    figures.insert("explored_states".into(), found.explored.into());
    figures.insert("algorithm".into(), "wgl".into());
    let mut anomalies = Vec::new();
    let validity = match found.outcome {
        wgl::Outcome::Linearizable => Validity::Valid,
        wgl::Outcome::Violation(b) => {
            let o = kept[b.call];
            let tail: Vec<&Operation> = b.prefix_tail.iter().map(|&i| kept[i]).collect();
            figures.insert(
                "counterexample".into(),
                serde_json::json!({
                    "op": op_index(h, o),
                    "process": o.process.to_string(),
                    "f": o.f.as_str(),
                    "value": o.value,
                    "linearized_ops": b.linearized,
                    "prefix_tail": tail.iter().map(|t| op_index(h, t)).collect::<Vec<_>>(),
                    "algorithm": "wgl",
                }),
            );
            let mut ops_named = vec![op_index(h, o)];
            let prefix = match tail.last() {
                Some(last) => {
                    ops_named.push(op_index(h, last));
                    let shown: Vec<String> = tail[tail.len().saturating_sub(3)..]
                        .iter()
                        .map(|t| {
                            let v = if t.value.is_null() {
                                String::new()
                            } else {
                                format!(" {}", t.value)
                            };
                            format!(
                                "{}{v} by process {} (index {})",
                                t.f,
                                t.process,
                                op_index(h, t)
                            )
                        })
                        .collect();
                    format!(
                        " (the longest linearizable prefix ends with {})",
                        shown.join(", then ")
                    )
                }
                None => String::new(),
            };
            let what = if o.f == F::parse("txn") {
                format!("txn {}", o.value)
            } else {
                o.f.to_string()
            };
            anomalies.push(Anomaly {
                cycle: Vec::new(),
                kind: AnomalyKind::NonLinearizable,
                key: None,
                ops: ops_named,
                explanation: format!(
                    "{what} by process {} (index {}) cannot be placed: {} operations linearize before it{prefix}, but no order consistent with real time extends to its completion",
                    o.process,
                    op_index(h, o),
                    b.linearized
                ),
            });
            Validity::Invalid
        }
        wgl::Outcome::Exhausted { deepest } | wgl::Outcome::Aborted { deepest } => {
            let why = if matches!(found.outcome, wgl::Outcome::Exhausted { .. }) {
                format!("the search budget of {} states ran out", opts.max_states)
            } else {
                "the check was aborted (time budget)".to_owned()
            };
            figures.insert(
                "unknown_reason".into(),
                format!("{why} after linearizing at best {deepest} ok operations").into(),
            );
            Validity::Unknown
        }
    };
    figures.insert(
        AnomalyKind::NonLinearizable.figure_name().into(),
        anomalies.len().into(),
    );
    Ok(CheckResult {
        checker: "linearizable".into(),
        validity,
        anomalies,
        figures,
    })
}
