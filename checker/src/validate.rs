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
pub(crate) enum Rules {
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
    rules_seen(opts, || {
        // The same inference as `check`, on the raw lines: append ⇒ append, write or cas
        // ⇒ register. Anything else is left to the checker's own inference.
        let mut seen = Seen::default();
        for o in &h.ops {
            seen.note(o);
        }
        seen
    })
}

/// Which inferring functions a history's client ops use: `append`, and `write`/`cas`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Seen {
    pub(crate) append: bool,
    pub(crate) register: bool,
}

impl Seen {
    pub(crate) fn note(&mut self, o: &schism_history::Op) {
        if o.process == Process::NEMESIS {
            return;
        }
        match o.f {
            F::Append => self.append = true,
            F::Write | F::Cas => self.register = true,
            _ => {}
        }
    }
}

/// The rules of `opts`, the workload inferred from `seen` (called only when `opts`
/// names neither a model nor a workload).
pub(crate) fn rules_seen(opts: &Options, seen: impl FnOnce() -> Seen) -> Rules {
    let unique = opts.algorithm == Algorithm::Zones;
    if let Some(m) = opts.model {
        return match m {
            Model::Register => Rules::Register { cas: false, unique },
            Model::CasRegister => Rules::Register { cas: true, unique },
            Model::MultiRegister => Rules::MultiRegister,
            Model::Mutex => Rules::Mutex,
        };
    }
    let w = opts.workload.or_else(|| match seen() {
        Seen {
            append: true,
            register: false,
        } => Some(Workload::Append),
        Seen {
            append: false,
            register: true,
        } => Some(Workload::Register),
        _ => None,
    });
    if w == Some(Workload::Append) {
        Rules::Append
    } else if w == Some(Workload::Register) {
        Rules::Register { cas: true, unique }
    } else {
        Rules::Structure
    }
}

/// The rules a history's workload may turn out to call for, when `opts` leaves it to
/// inference: the outcome of `rules_seen` for each `Seen`.
pub(crate) fn candidate_rules(opts: &Options) -> [(Seen, Rules); 4] {
    [(false, false), (true, false), (false, true), (true, true)].map(|(append, register)| {
        let seen = Seen { append, register };
        (seen, rules_seen(opts, || seen))
    })
}

/// Checks the history's assumptions; the error names the first violating op.
pub(crate) fn validate(h: &History, opts: &Options) -> Result<(), CheckError> {
    let mut v = Validator::new(rules(h, opts), opts);
    for op in &h.ops {
        v.step(op)?;
    }
    Ok(())
}

/// `validate` op by op, for a history that is never held whole: fed every op in
/// recorded order, it returns the same first error. It holds an open invoke per process,
/// and the values written per key only where the rules need them unique.
#[derive(Debug)]
pub(crate) struct Validator {
    rules: Rules,
    initial: Option<i64>,
    open: FxHashMap<Process, (u64, F)>,
    written: FxHashMap<(Key, i64), u64>,
    regs: FxHashMap<String, u32>,
}

impl Validator {
    pub(crate) fn new(rules: Rules, opts: &Options) -> Self {
        Validator {
            rules,
            initial: opts.register.initial,
            open: FxHashMap::default(),
            written: FxHashMap::default(),
            regs: FxHashMap::default(),
        }
    }

    /// Checks the next op.
    pub(crate) fn step(&mut self, op: &schism_history::Op) -> Result<(), CheckError> {
        if op.process == Process::NEMESIS {
            return Ok(());
        }
        let err = |msg: String| CheckError::Op {
            index: op.index(),
            msg,
        };
        if op.kind == OpType::Invoke {
            if let Some((prev, _)) = self.open.get(&op.process) {
                return Err(err(format!(
                    "process {} invokes again while its op at index {prev} is still open (a process runs one op at a time)",
                    op.process
                )));
            }
            self.open.insert(op.process, (op.index(), op.f));
        } else {
            let Some((inv, f)) = self.open.remove(&op.process) else {
                return Err(err(format!(
                    "process {} completes an op it never invoked",
                    op.process
                )));
            };
            if f != op.f {
                return Err(err(format!(
                    "completion f={} does not match its invoke f={f} at index {inv}",
                    op.f
                )));
            }
        }
        let invoke = op.kind == OpType::Invoke;
        let ok = op.kind == OpType::Ok;
        let fname = op.f.as_str();
        match self.rules {
            Rules::Structure => {}
            Rules::Append | Rules::Register { .. } => {
                let allowed = match self.rules {
                    Rules::Append => matches!(op.f, F::Append | F::Read),
                    Rules::Register { cas, .. } => {
                        matches!(op.f, F::Read | F::Write) || (cas && op.f == F::Cas)
                    }
                    _ => unreachable!(),
                };
                if !allowed {
                    let (model, fs) = match self.rules {
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
                        if let Some(prev) = self.written.insert((key, *v), op.index()) {
                            return Err(err(format!(
                                "append of {v} to key {key} repeats the append at op index {prev}; append values must be unique per key"
                            )));
                        }
                    }
                    (F::Append, v) if invoke => {
                        return Err(err(format!("append value {v} is not an integer")));
                    }
                    (F::Write, Value::Int(v)) if invoke => {
                        if let Rules::Register { unique: true, .. } = self.rules {
                            if self.initial == Some(*v) {
                                return Err(err(format!(
                                    "write of {v} to key {key} writes the initial value; the zones algorithm needs every written value to be distinct (the exact search does not)"
                                )));
                            }
                            if let Some(prev) = self.written.insert((key, *v), op.index()) {
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
                        if let Rules::Register { unique: true, .. } = self.rules {
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
                    (F::Read, Value::Int(_) | Value::Null) if ok && self.rules != Rules::Append => {
                    }
                    (F::Read, Value::List(_) | Value::Null)
                        if ok && self.rules == Rules::Append => {}
                    (F::Read, v) if ok => {
                        let want = if self.rules == Rules::Append {
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
                    parse_txn(&op.value, &mut self.regs).map_err(err)?;
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
        Ok(())
    }
}
