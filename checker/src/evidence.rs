//! The `evidence` rule: whether a history holds enough successful operations for a
//! `valid` verdict to mean anything.
//!
//! A checker that finds no anomaly in a history where nothing was observed has proven
//! nothing: an empty history, one where no read (or no write) succeeded, or one where no
//! read succeeded after the final heal (so recovery was never observed) is `unknown` with
//! the reason, never `valid`. The caller may add why the recording itself is incomplete
//! (a run interrupted or killed). Guarantees: the verdict is `Valid` or `Unknown`, never
//! `Invalid` (missing evidence proves no anomaly), so merged with the other checkers an
//! anomaly that was proven still makes the run invalid; the figures always hold the counts
//! the rule used.

use crate::CheckError;
use crate::report::{CheckResult, Validity};
use schism_history::txn::Txns;
use schism_history::{F, History, Op, OpType, Operation, Outcome, Process, Value};

/// The name under which the rule's result appears in `results.json`.
pub const EVIDENCE: &str = "evidence";

/// Observing operations: reads, and Knossos's functions that both observe and change
/// state (`cas`, `txn`, `acquire`, `release`).
fn observes(f: &F) -> bool {
    matches!(f, F::Read | F::Cas | F::Other(_))
}

fn changes(f: &F) -> bool {
    f.is_write() || matches!(f, F::Other(_))
}

/// Whether an op is the nemesis recording a heal that took effect with `final: true`.
fn is_final_heal(o: &Op) -> bool {
    o.process == Process::NEMESIS
        && o.kind == OpType::Info
        && o.f.as_str() == "heal"
        && o.error().is_none()
        && matches!(&o.value, Value::Other(v) if v.get("final") == Some(&serde_json::Value::Bool(true)))
}

/// Position of the last final heal.
fn final_heal(history: &History) -> Option<usize> {
    history.ops.iter().rposition(is_final_heal)
}

/// What the rule counts.
#[derive(Debug, Default)]
struct Observed {
    ops: u64,
    ok: u64,
    ok_reads: u64,
    ok_writes: u64,
    after_heal: u64,
    /// The final heal's time, when there was one.
    heal_ns: Option<u64>,
}

/// Applies the rule to `history`; `cut_short` says why the recording may be incomplete
/// (an interrupted or killed run), which alone makes the verdict `unknown`.
pub fn check_evidence(
    history: &History,
    cut_short: Option<&str>,
) -> Result<CheckResult, CheckError> {
    Ok(check_evidence_of(
        history,
        &history.operations()?,
        cut_short,
    ))
}

/// `check_evidence` on already-paired operations (`check_paired`'s).
pub fn check_evidence_of(
    history: &History,
    ops: &[Operation],
    cut_short: Option<&str>,
) -> CheckResult {
    let heal = final_heal(history);
    let mut seen = Observed {
        ops: ops.len() as u64,
        heal_ns: heal.map(|h| history.ops[h].time_ns),
        ..Observed::default()
    };
    for o in ops.iter().filter(|o| o.outcome == Outcome::Ok) {
        seen.ok += 1;
        if observes(&o.f) {
            seen.ok_reads += 1;
            if heal.is_some_and(|h| o.invoke() > h) {
                seen.after_heal += 1;
            }
        }
        if changes(&o.f) {
            seen.ok_writes += 1;
        }
    }
    verdict(&seen, cut_short)
}

/// The rule op by op, for a history that is never held whole: `op` takes every op in
/// recorded order (the final heals are found there), `operation` every paired operation
/// (in any order after its invoke was seen); `finish` gives `check_evidence_of`'s result.
/// A handful of counters, whatever the history's length.
#[derive(Debug, Default)]
pub struct EvidenceStream {
    seen: Observed,
    /// Position of the last final heal seen.
    heal_pos: Option<usize>,
    /// Position of the next op.
    pos: usize,
}

impl EvidenceStream {
    /// The next op of the history.
    pub fn op(&mut self, o: &Op) {
        if is_final_heal(o) {
            // Reads counted so far were all invoked before this heal.
            self.heal_pos = Some(self.pos);
            self.seen.heal_ns = Some(o.time_ns);
            self.seen.after_heal = 0;
        }
        self.pos += 1;
    }

    /// One paired operation (`Operation::invoke` is its position among the ops).
    pub fn operation(&mut self, o: &Operation) {
        let seen = &mut self.seen;
        seen.ops += 1;
        if o.outcome != Outcome::Ok {
            return;
        }
        seen.ok += 1;
        if observes(&o.f) {
            seen.ok_reads += 1;
            if self.heal_pos.is_some_and(|h| o.invoke() > h) {
                seen.after_heal += 1;
            }
        }
        if changes(&o.f) {
            seen.ok_writes += 1;
        }
    }

    /// The rule's result; `cut_short` as for `check_evidence`.
    pub fn finish(&self, cut_short: Option<&str>) -> CheckResult {
        verdict(&self.seen, cut_short)
    }
}

/// The rule on a history of transactions (`Txns`): every committed transaction both
/// observes and changes state, as a `txn` op does in `check_evidence`.
pub fn check_evidence_txns(txns: &Txns, cut_short: Option<&str>) -> CheckResult {
    let heal = txns.nemesis().iter().rev().find(|(_, o)| is_final_heal(o));
    let ok = txns.iter().filter(|t| t.outcome == Outcome::Ok);
    let after_heal = match heal {
        Some(&(h, _)) => ok.clone().filter(|t| t.invoke_pos() > h as usize).count(),
        None => 0,
    };
    let ok = ok.count() as u64;
    let seen = Observed {
        ops: txns.len() as u64,
        ok,
        ok_reads: ok,
        ok_writes: ok,
        after_heal: after_heal as u64,
        heal_ns: heal.map(|(_, o)| o.time_ns),
    };
    verdict(&seen, cut_short)
}

fn verdict(seen: &Observed, cut_short: Option<&str>) -> CheckResult {
    let &Observed {
        ops,
        ok,
        ok_reads,
        ok_writes,
        after_heal,
        heal_ns,
    } = seen;
    let mut reasons: Vec<String> = cut_short.map(str::to_owned).into_iter().collect();
    if ops == 0 {
        reasons.push("the history has no client operation".into());
    } else if ok == 0 {
        reasons.push(format!(
            "no operation succeeded (0 ok of {ops} client operations)"
        ));
    } else {
        if ok_reads == 0 {
            reasons.push("no read succeeded: nothing was observed".into());
        }
        if ok_writes == 0 {
            reasons.push("no write succeeded: there was nothing to observe".into());
        }
        if let Some(h) = heal_ns
            && ok_reads > 0
            && after_heal == 0
        {
            reasons.push(format!(
                "no read succeeded after the final heal at {:.1} s: recovery was never observed",
                h as f64 / 1e9
            ));
        }
    }
    let mut figures = serde_json::Map::new();
    figures.insert("ok_ops".into(), ok.into());
    figures.insert("ok_reads".into(), ok_reads.into());
    figures.insert("ok_writes".into(), ok_writes.into());
    if heal_ns.is_some() {
        figures.insert("ok_reads_after_final_heal".into(), after_heal.into());
    }
    let validity = if reasons.is_empty() {
        Validity::Valid
    } else {
        figures.insert("unknown_reason".into(), reasons.join("; ").into());
        Validity::Unknown
    };
    CheckResult {
        checker: EVIDENCE.into(),
        validity,
        anomalies: Vec::new(),
        figures,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schism_history::Op;

    fn op(i: u64, p: Process, kind: OpType, f: &str, value: Value) -> Op {
        Op::new(i, i * 1_000_000, p, kind, F::parse(f), Some(1), value)
    }

    fn reason(r: &CheckResult) -> &str {
        r.figures["unknown_reason"].as_str().unwrap()
    }

    #[test]
    fn empty_and_failed_histories_are_unknown() {
        let r = check_evidence(&History::new(vec![]), None).unwrap();
        assert_eq!(r.validity, Validity::Unknown);
        assert!(reason(&r).contains("no client operation"));
        let c = Process::client(0);
        let h = History::new(vec![
            op(0, c, OpType::Invoke, "append", Value::Int(1)),
            op(1, c, OpType::Fail, "append", Value::Int(1)),
        ]);
        let r = check_evidence(&h, None).unwrap();
        assert!(reason(&r).contains("no operation succeeded"), "{r:?}");
    }

    #[test]
    fn reads_and_writes_are_both_needed_and_reads_after_the_final_heal() {
        let c = Process::client(0);
        let write = [
            op(0, c, OpType::Invoke, "append", Value::Int(1)),
            op(1, c, OpType::Ok, "append", Value::Int(1)),
        ];
        let r = check_evidence(&History::new(write.to_vec()), None).unwrap();
        assert!(reason(&r).contains("no read succeeded"), "{r:?}");
        let heal = serde_json::json!({"final": true});
        let mut ops = vec![
            op(0, c, OpType::Invoke, "read", Value::Null),
            op(1, c, OpType::Ok, "read", Value::list(vec![])),
        ];
        ops.extend(write.iter().cloned().map(|mut o| {
            o.set_index(o.index() + 2);
            o
        }));
        ops.push(op(
            4,
            Process::NEMESIS,
            OpType::Info,
            "heal",
            Value::other(heal),
        ));
        let r = check_evidence(&History::new(ops.clone()), None).unwrap();
        assert!(reason(&r).contains("after the final heal"), "{r:?}");
        ops.push(op(5, c, OpType::Invoke, "read", Value::Null));
        ops.push(op(6, c, OpType::Ok, "read", Value::list(vec![1])));
        let r = check_evidence(&History::new(ops.clone()), None).unwrap();
        assert_eq!(r.validity, Validity::Valid, "{r:?}");
        assert_eq!(r.figures["ok_reads_after_final_heal"], 1);
        let r = check_evidence(&History::new(ops), Some("the run was interrupted")).unwrap();
        assert_eq!(reason(&r), "the run was interrupted");
    }

    /// A history of transactions gets the verdict and figures of the general rule.
    #[test]
    fn transactions_are_judged_as_the_general_rule_judges_txn_ops() {
        let c = Process::client(0);
        let txn = |i: u64, kind: OpType| {
            let v = schism_history::txn::txn_value(&[schism_history::txn::MicroOp::read(1)]);
            let mut o = op(i, c, kind, "txn", v);
            o.set_key(None);
            o
        };
        let heal = op(
            2,
            Process::NEMESIS,
            OpType::Info,
            "heal",
            Value::other(serde_json::json!({"final": true})),
        );
        let histories = [
            vec![],
            vec![txn(0, OpType::Invoke), txn(1, OpType::Fail)],
            vec![txn(0, OpType::Invoke), txn(1, OpType::Ok), heal.clone()],
            vec![
                txn(0, OpType::Invoke),
                txn(1, OpType::Ok),
                heal,
                txn(3, OpType::Invoke),
                txn(4, OpType::Ok),
                txn(5, OpType::Invoke),
            ],
        ];
        for ops in histories {
            let h = History::new(ops);
            let txns = Txns::from_history(&h).unwrap();
            for cut in [None, Some("the run was interrupted")] {
                let want = check_evidence(&h, cut).unwrap();
                assert_eq!(check_evidence_txns(&txns, cut), want, "{h:?}");
            }
        }
    }
}
