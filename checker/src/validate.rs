//! Validation before any analysis: one pass over the history in recorded order that
//! checks the assumptions the chosen analysis relies on, and names the first violation.
//!
//! Checked for every client op: a completion has an open invoke by its process and the
//! same `f`; a process never has two ops open. For the chosen model: `f` belongs to it, a
//! key is present where the model is per key, values have the model's shape (integers for
//! register writes, `[expected, new]` for cas, lists for append reads, micro-op vectors
//! for txns), and values are unique per key where the analysis needs it (the append
//! checker always, the zones algorithm when it is asked for explicitly; the exact search
//! never does). Nemesis ops are not checked.
//!
//! Guarantee: the error returned is the violation with the smallest op index, in one
//! clear sentence; `Ok` means every later stage can rely on these facts.

use crate::fx::FxHashMap;
use crate::linearizable::parse_txn;
use crate::{Algorithm, CheckError, Model, Options, Workload};
use schism_history::{F, History, Key, OpType, Process, Value};

/// What the chosen analysis expects of each op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rules {
    Append,
    Register {
        cas: bool,
        unique: bool,
    },
    MultiRegister,
    Mutex,
    /// A workload this module does not know: only the invoke/completion structure.
    Structure,
}

fn rules(h: &History, opts: &Options) -> Rules {
    let unique = opts.algorithm == Algorithm::Zones;
    if let Some(m) = opts.model {
        return match m {
            Model::Register => Rules::Register { cas: false, unique },
            Model::CasRegister => Rules::Register { cas: true, unique },
            Model::MultiRegister => Rules::MultiRegister,
            Model::Mutex => Rules::Mutex,
        };
    }
    let w = opts.workload.or_else(|| {
        // The same inference as `check`, on the raw lines: append ⇒ append, write or cas
        // ⇒ register. Anything else is left to the checker's own inference.
        let client = h.ops.iter().filter(|o| o.process != Process::NEMESIS);
        let mut seen = (false, false);
        for o in client {
            match o.f {
                F::Append => seen.0 = true,
                F::Write | F::Cas => seen.1 = true,
                _ => {}
            }
        }
        match seen {
            (true, false) => Some(Workload::Append),
            (false, true) => Some(Workload::Register),
            _ => None,
        }
    });
    if w == Some(Workload::Append) {
        Rules::Append
    } else if w == Some(Workload::Register) {
        Rules::Register { cas: true, unique }
    } else {
        Rules::Structure
    }
}

/// Checks the history's assumptions; the error names the first violating op.
pub(crate) fn validate(h: &History, opts: &Options) -> Result<(), CheckError> {
    let rules = rules(h, opts);
    let mut open: FxHashMap<Process, (u64, &F)> = FxHashMap::default();
    let mut written: FxHashMap<(Key, i64), u64> = FxHashMap::default();
    let mut regs = Default::default();
    for op in &h.ops {
        if op.process == Process::NEMESIS {
            continue;
        }
        let err = |msg: String| CheckError::Op {
            index: op.index(),
            msg,
        };
        if op.kind == OpType::Invoke {
            if let Some((prev, _)) = open.get(&op.process) {
                return Err(err(format!(
                    "process {} invokes again while its op at index {prev} is still open (a process runs one op at a time)",
                    op.process
                )));
            }
            open.insert(op.process, (op.index(), &op.f));
        } else {
            let Some((inv, f)) = open.remove(&op.process) else {
                return Err(err(format!(
                    "process {} completes an op it never invoked",
                    op.process
                )));
            };
            if *f != op.f {
                return Err(err(format!(
                    "completion f={} does not match its invoke f={f} at index {inv}",
                    op.f
                )));
            }
        }
        let invoke = op.kind == OpType::Invoke;
        let ok = op.kind == OpType::Ok;
        let fname = op.f.as_str();
        match rules {
            Rules::Structure => {}
            Rules::Append | Rules::Register { .. } => {
                let allowed = match rules {
                    Rules::Append => matches!(op.f, F::Append | F::Read),
                    Rules::Register { cas, .. } => {
                        matches!(op.f, F::Read | F::Write) || (cas && op.f == F::Cas)
                    }
                    _ => unreachable!(),
                };
                if !allowed {
                    let (model, fs) = match rules {
                        Rules::Append => ("append workload", "read, append"),
                        Rules::Register { cas: true, .. } => {
                            ("cas-register model", "read, write, cas")
                        }
                        _ => ("register model", "read, write"),
                    };
                    return Err(err(format!(
                        "function {fname:?} does not belong to the {model} ({fs})"
                    )));
                }
                let Some(key) = op.key() else {
                    return Err(err(format!("{fname} has no key")));
                };
                match (&op.f, &op.value) {
                    (F::Append, Value::Int(v)) if invoke => {
                        if let Some(prev) = written.insert((key, *v), op.index()) {
                            return Err(err(format!(
                                "append of {v} to key {key} repeats the append at op index {prev}; append values must be unique per key"
                            )));
                        }
                    }
                    (F::Append, v) if invoke => {
                        return Err(err(format!("append value {v} is not an integer")));
                    }
                    (F::Write, Value::Int(v)) if invoke => {
                        if let Rules::Register { unique: true, .. } = rules {
                            if opts.register.initial == Some(*v) {
                                return Err(err(format!(
                                    "write of {v} to key {key} writes the initial value; the zones algorithm needs every written value to be distinct (the exact search does not)"
                                )));
                            }
                            if let Some(prev) = written.insert((key, *v), op.index()) {
                                return Err(err(format!(
                                    "write of {v} to key {key} repeats the write at op index {prev}; the zones algorithm needs unique values per key (the exact search does not)"
                                )));
                            }
                        }
                    }
                    (F::Write, v) if invoke && !v.is_null() => {
                        return Err(err(format!("write value {v} is not an integer")));
                    }
                    (F::Cas, Value::List(l)) if invoke && l.len() == 2 => {
                        if let Rules::Register { unique: true, .. } = rules {
                            return Err(err(
                                "cas cannot be checked by the zones algorithm (read/write registers only); use the exact search".to_owned(),
                            ));
                        }
                    }
                    (F::Cas, v) if invoke => {
                        return Err(err(format!(
                            "cas value {v} is not [expected, new] (two integers)"
                        )));
                    }
                    (F::Read, Value::Int(_) | Value::Null) if ok && rules != Rules::Append => {}
                    (F::Read, Value::List(_) | Value::Null) if ok && rules == Rules::Append => {}
                    (F::Read, v) if ok => {
                        let want = if rules == Rules::Append {
                            "a list of integers"
                        } else {
                            "an integer or null"
                        };
                        return Err(err(format!("read of key {key} returned {v}, not {want}")));
                    }
                    _ => {}
                }
            }
            Rules::MultiRegister => {
                if fname != "txn" {
                    return Err(err(format!(
                        "function {fname:?} does not belong to the multi-register model (txn)"
                    )));
                }
                if invoke || ok {
                    parse_txn(&op.value, &mut regs).map_err(err)?;
                }
            }
            Rules::Mutex => {
                if !matches!(fname, "acquire" | "release") {
                    return Err(err(format!(
                        "function {fname:?} does not belong to the mutex model (acquire, release)"
                    )));
                }
            }
        }
    }
    Ok(())
}
