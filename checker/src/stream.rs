//! Checking a history op by op, never holding it: the streaming form of `check_paired`
//! for the checkers that can stream (`stats`; `counter` and `set-full` when the workload
//! is given), with the `evidence` rule beside it. `staleness`, `linearizable`, `append`
//! and `graph` take the whole path (`staleness`'s doc says why it cannot stream).
//!
//! Fed every op in recorded order (`StreamCheck::push`, with the line it was read from),
//! it validates (`validate::Validator`, one per set of rules the workload may turn out to
//! call for while it is inferred; the structure-only rules are the pairing's own checks,
//! with the same messages at the same op), pairs (`schism_history::Pairing`, an open invoke per
//! process), and hands each completed operation to the incremental checkers
//! (`stats::StatsStream`, `EvidenceStream`; `counter::CounterStream` and
//! `set_full::SetStream`, which also see each invoke: `opstream::OpStream`), then drops it. `finish` gives what
//! `check_paired` followed by `check_evidence_of` and `stats::stats_of` would have given on
//! the whole history: the same report, figures and evidence, or the same first error (a
//! validation error first, then a pairing error, then a workload that mixes append and
//! write/cas), with the line of the op it names. Memory: an open invoke per process, the
//! validators' per-process state (and the values written per key where the rules need
//! them unique: append histories, or `--algorithm zones`), one latency histogram per `f`;
//! `counter`: two sums per key, per open read the sums when it began, and the reads that
//! ended while increments of their key were open, until those resolve; `set-full`: per
//! element a few read references (never the reads), per key the previous read's elements,
//! and the completed reads waiting for an earlier-invoked read still open.
//! Guarantees: as `check`'s — the verdict comes from the whole history pushed; a caller
//! that stops early must say so (`cut_short`), and the evidence rule makes it `unknown`.

use crate::counter::CounterStream;
use crate::evidence::EvidenceStream;
use crate::opstream::OpStream;
use crate::report::{CheckResult, Report};
use crate::set_full::SetStream;
use crate::stats::{Stats, StatsStream};
use crate::validate::{Rules, Seen, Validator, candidate_rules, rules_seen};
use crate::{CheckError, CheckerName, CheckerSet, Model, Options, Workload};
use schism_history::{F, Op, OpType, Pairing, Process};

/// True when `check` with these options can run op by op (`StreamCheck`): every checker
/// selected streams (`stats`; `counter` and `set-full` when the workload is given, also as
/// the primary or fitting checkers of `--workload counter|set`), and the model is checked
/// per key (not `multi-register` or `mutex`, whose search needs the whole history).
pub fn streams(opts: &Options) -> bool {
    streamed_names(opts).is_some()
        && !matches!(opts.model, Some(Model::MultiRegister | Model::Mutex))
}

/// The checkers a streamed check runs, in report order, if they all stream.
fn streamed_names(opts: &Options) -> Option<Vec<CheckerName>> {
    let names = match (&opts.checkers, opts.workload) {
        (CheckerSet::Only(list), _) => list.clone(),
        (CheckerSet::Primary, Some(w)) => vec![crate::primary(w)],
        (CheckerSet::Fitting, Some(w)) => crate::default_checkers(w),
        _ => return None,
    };
    let w = opts.workload;
    let streaming = |n: &CheckerName| match n {
        CheckerName::Stats => true,
        CheckerName::Counter => w == Some(Workload::Counter),
        CheckerName::SetFull => w == Some(Workload::Set),
        _ => false,
    };
    (!names.is_empty() && names.iter().all(streaming)).then_some(names)
}

/// A check that could not be made, and the line (from `push`) of the op it names.
#[derive(Debug)]
pub struct StreamError {
    pub error: CheckError,
    pub line: Option<usize>,
}

/// What a streamed check found: `check_paired`'s report, the statistics (`stats_of`) and
/// the evidence rule's result (`check_evidence_of`; not merged into the report).
#[derive(Debug)]
pub struct Streamed {
    pub report: Report,
    pub stats: Stats,
    pub evidence: CheckResult,
    /// Ops pushed (`History::len`).
    pub ops: u64,
}

/// One validator: the rules it applies, for the workloads (`Seen`) that call for them,
/// and its first error.
#[derive(Debug)]
struct Candidate {
    rules: Rules,
    seen: Vec<Seen>,
    validator: Validator,
    error: Option<StreamError>,
}

/// The first invoke of a function the workload is inferred from.
#[derive(Debug, Clone, Copy)]
struct First {
    index: u64,
    line: usize,
    pos: usize,
    f: F,
}

/// `check_paired` op by op (see the module's doc).
#[derive(Debug)]
pub struct StreamCheck {
    opts: Options,
    candidates: Vec<Candidate>,
    /// The workload is inferred (neither a model nor a workload was given).
    infer: bool,
    seen: Seen,
    pairing: Pairing,
    /// The first pairing error: nothing is checked after it.
    pair_error: Option<StreamError>,
    first_append: Option<First>,
    first_register: Option<First>,
    stats: StatsStream,
    evidence: EvidenceStream,
    counter: Option<CounterStream>,
    set_full: Option<SetStream>,
    pos: usize,
}

impl StreamCheck {
    /// A check with these options; `streams(opts)` must hold.
    pub fn new(opts: &Options) -> Self {
        let infer = opts.model.is_none() && opts.workload.is_none();
        let mut candidates: Vec<Candidate> = Vec::new();
        let choices: Vec<(Seen, Rules)> = if infer {
            candidate_rules(opts).to_vec()
        } else {
            vec![(Seen::default(), rules_seen(opts, Seen::default))]
        };
        for (seen, rules) in choices {
            if rules == Rules::Structure {
                // Structure alone is what pairing checks, with the same errors at the same
                // op: the pairing error stands for this validator's.
                continue;
            }
            match candidates.iter_mut().find(|c| c.rules == rules) {
                Some(c) => c.seen.push(seen),
                None => candidates.push(Candidate {
                    rules,
                    seen: vec![seen],
                    validator: Validator::new(rules, opts),
                    error: None,
                }),
            }
        }
        let names = streamed_names(opts).unwrap_or_default();
        let has = |n: CheckerName| names.contains(&n);
        StreamCheck {
            opts: opts.clone(),
            candidates,
            infer,
            seen: Seen::default(),
            pairing: Pairing::new(),
            pair_error: None,
            first_append: None,
            first_register: None,
            stats: StatsStream::default(),
            evidence: EvidenceStream::default(),
            counter: has(CheckerName::Counter).then(|| CounterStream::new(opts)),
            set_full: has(CheckerName::SetFull).then(|| SetStream::new(opts)),
            pos: 0,
        }
    }

    /// The next op of the history, read from `line`.
    pub fn push(&mut self, op: &Op, line: usize) {
        let pos = self.pos;
        self.pos += 1;
        if self.infer && op.process != Process::NEMESIS {
            let before = self.seen;
            self.seen.note(op);
            if self.seen != before {
                // Rules no longer reachable (a function seen rules out a workload) drop.
                let now = self.seen;
                let reachable =
                    |s: &Seen| (s.append || !now.append) && (s.register || !now.register);
                self.candidates.retain(|c| c.seen.iter().any(reachable));
            }
            if op.kind == OpType::Invoke {
                let first = First {
                    index: op.index(),
                    line,
                    pos,
                    f: op.f,
                };
                match op.f {
                    F::Append => {
                        self.first_append.get_or_insert(first);
                    }
                    F::Write | F::Cas => {
                        self.first_register.get_or_insert(first);
                    }
                    _ => {}
                }
            }
        }
        if self.pair_error.is_some() {
            // Every validator failed at or before the op pairing failed at (they check the
            // same structure first): the outcome is an error already, whose rules only the
            // functions seen (above, to the end) decide. A read error later in the file
            // still wins: the caller's.
            return;
        }
        for c in &mut self.candidates {
            if c.error.is_none()
                && let Err(error) = c.validator.step(op)
            {
                c.error = Some(StreamError {
                    error,
                    line: Some(line),
                });
            }
        }
        self.evidence.op(op);
        if op.kind == OpType::Invoke && op.process != Process::NEMESIS {
            self.streams().for_each(|s| s.invoke(pos, op, line));
        }
        match self.pairing.push(op) {
            Ok(Some(done)) => {
                self.stats.push(
                    done.op.f.as_str(),
                    done.op.outcome,
                    done.invoke_ns,
                    done.complete_ns,
                );
                self.evidence.operation(&done.op);
                self.streams().for_each(|s| s.complete(&done, line));
            }
            Ok(None) => {}
            Err((index, msg)) => {
                self.pair_error = Some(StreamError {
                    error: CheckError::Op { index, msg },
                    line: Some(line),
                });
            }
        }
    }

    /// The checkers fed every operation (`counter`, `set-full`).
    fn streams(&mut self) -> impl Iterator<Item = &mut dyn OpStream> {
        let counter = self.counter.as_mut().map(|c| c as &mut dyn OpStream);
        let set_full = self.set_full.as_mut().map(|c| c as &mut dyn OpStream);
        counter.into_iter().chain(set_full)
    }

    /// The outcome of the ops pushed; `cut_short` says why the history may be incomplete
    /// (the evidence rule's).
    pub fn finish(mut self, cut_short: Option<&str>) -> Result<Streamed, StreamError> {
        // Validation first, under the rules the whole history calls for (under
        // `Rules::Structure` it is the pairing's, below).
        let rules = rules_seen(&self.opts, || self.seen);
        if let Some(c) = self.candidates.iter_mut().find(|c| c.rules == rules)
            && let Some(e) = c.error.take()
        {
            return Err(e);
        }
        if let Some(e) = self.pair_error {
            return Err(e);
        }
        for done in std::mem::take(&mut self.pairing).finish() {
            self.stats.push(
                done.op.f.as_str(),
                done.op.outcome,
                done.invoke_ns,
                done.complete_ns,
            );
            self.evidence.operation(&done.op);
            self.streams().for_each(|s| s.complete(&done, 0));
        }
        let stats = self.stats.finish();
        let names = streamed_names(&self.opts).unwrap_or_default();
        let results = if self.infer {
            match (self.first_append, self.first_register) {
                (Some(a), Some(r)) => {
                    let later = if a.pos > r.pos { a } else { r };
                    return Err(StreamError {
                        error: CheckError::Op {
                            index: later.index,
                            msg: format!(
                                "{} mixes append and write/cas operations; pass the workload explicitly",
                                later.f
                            ),
                        },
                        line: Some(later.line),
                    });
                }
                // No client operation at all: nothing can be wrong (no checker runs).
                _ if stats.ops == 0 => Vec::new(),
                _ => vec![crate::stats::result_of(&stats); names.len()],
            }
        } else {
            // In name order; the first checker's error wins, as when they run in order.
            let mut results = Vec::with_capacity(names.len());
            for n in &names {
                let r = match n {
                    CheckerName::Counter => self.counter.take().map(|c| c.finish(&self.opts)),
                    CheckerName::SetFull => self.set_full.take().map(|c| c.finish(&self.opts)),
                    _ => None,
                };
                match r {
                    Some(Ok(r)) => results.push(r),
                    Some(Err((error, line))) => {
                        return Err(StreamError {
                            error,
                            line: Some(line),
                        });
                    }
                    None => results.push(crate::stats::result_of(&stats)),
                }
            }
            results
        };
        Ok(Streamed {
            report: Report::from_results(results),
            evidence: self.evidence.finish(cut_short),
            stats,
            ops: self.pos as u64,
        })
    }
}
