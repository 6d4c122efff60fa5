//! Checking a history op by op, never holding it: the streaming form of `check_paired`
//! for the checkers that can stream (`stats`; `counter` and `set-full` when the workload
//! is given; `linearizable` per retired key: `linearizable::stream`; `staleness` for an
//! append, register or inferred workload: `staleness::StalenessStream`), with the
//! `evidence` rule beside it. `append` and `graph` take the whole path.
//!
//! Fed every op in recorded order (`StreamCheck::push`, with the line it was read from),
//! it validates (`validate::Validator`, one per set of rules the workload may turn out to
//! call for while it is inferred; the structure-only rules are the pairing's own checks,
//! with the same messages at the same op), pairs (`schism_history::Pairing`, an open invoke per
//! process), and hands each completed operation to the incremental checkers
//! (`stats::StatsStream`, `EvidenceStream`), then drops it. `finish` gives what
//! `check_paired` followed by `check_evidence_of` and `stats::stats_of` would have given on
//! the whole history: the same report, figures and evidence, or the same first error (a
//! validation error first, then a pairing error, then a workload that mixes append and
//! write/cas), with the line of the op it names. Memory: an open invoke per process, the
//! validators' per-process state (and the values written per key where the rules need
//! them unique: append histories, or `--algorithm zones`), one latency histogram per `f`;
//! `counter`: two sums per key, per open read the sums when it began, and the reads that
//! ended while increments of their key were open, until those resolve; `set-full`: per
//! element a few read references (never the reads), per key the previous read's elements,
//! and the completed reads waiting for an earlier-invoked read still open;
//! `staleness`: per register key its acknowledged writes and per value its last writer,
//! per append read a fixed record and per append its times, and the lists reads differ
//! in (one per key when valid);
//! for `linearizable`, the ops of the live keys (and of those idle for less than
//! `Options::retire_idle_ops` positions) and a small record per key checked. Before
//! `finish`, `replay` names the keys (if any) a next pass over the file must collect
//! (`push_replay`): a retired key that came back, or one whose search ran out of budget.
//! Guarantees: as `check`'s — the verdict comes from the whole history pushed; a caller
//! that stops early must say so (`cut_short`), and the evidence rule makes it `unknown`.

use crate::counter::CounterStream;
use crate::evidence::EvidenceStream;
use crate::linearizable::stream::LinStream;
use crate::opstream::OpStream;
use crate::report::{CheckResult, Report};
use crate::set_full::SetStream;
use crate::staleness::StalenessStream;
use crate::stats::{Stats, StatsStream};
use crate::validate::{Rules, Seen, Validator, candidate_rules, rules_seen};
use crate::{CheckError, CheckerName, CheckerSet, Inferred, Model, Options, Workload};
use schism_history::{F, Op, OpType, Pairing, Process};

/// True when `check` with these options can run op by op (`StreamCheck`): every checker
/// selected streams (`stats`; `counter` and `set-full` when the workload is given, also as
/// the primary or fitting checkers of `--workload counter|set`; `linearizable`, also as the
/// primary checker of a register history; `staleness` unless the workload given is one it
/// does not fit), and the model is checked per key (not
/// `multi-register` or `mutex`, whose search needs the whole history).
pub fn streams(opts: &Options) -> bool {
    streamed_names(opts).is_some()
        && !matches!(opts.model, Some(Model::MultiRegister | Model::Mutex))
}

/// The checkers a streamed check runs, in report order, if they all stream.
fn streamed_names(opts: &Options) -> Option<Vec<CheckerName>> {
    let register_model = matches!(opts.model, Some(Model::Register | Model::CasRegister));
    let names = match (&opts.checkers, opts.workload) {
        (CheckerSet::Only(list), _) => list.clone(),
        (CheckerSet::Primary, Some(w)) => vec![crate::primary(w)],
        // The primary checker of a register history: `linearizable`.
        (CheckerSet::Primary, None) if register_model => vec![CheckerName::Linearizable],
        (CheckerSet::Fitting, Some(w)) => crate::default_checkers(w),
        _ => return None,
    };
    let w = opts.workload;
    let streaming = |n: &CheckerName| match n {
        CheckerName::Stats | CheckerName::Linearizable => true,
        CheckerName::Counter => w == Some(Workload::Counter),
        CheckerName::SetFull => w == Some(Workload::Set),
        CheckerName::Staleness => matches!(w, None | Some(Workload::Append | Workload::Register)),
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
    staleness: Option<StalenessStream>,
    pos: usize,
    /// `linearizable`, when it may run: per key, each key checked once retired.
    lin: Option<LinStream>,
    inferred: Inferred,
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
            staleness: has(CheckerName::Staleness).then(|| {
                let known = opts.workload.or(opts.model.map(|_| Workload::Register));
                StalenessStream::new(opts, known)
            }),
            pos: 0,
            lin: has(CheckerName::Linearizable).then(|| LinStream::new(opts)),
            inferred: Inferred::default(),
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
                self.inferred.note(&done.op);
                self.streams().for_each(|s| s.complete(&done, line));
                if let Some(l) = &mut self.lin {
                    l.push(op, pos, line, Some(&done));
                }
            }
            Ok(None) => {
                if let Some(l) = &mut self.lin {
                    l.push(op, pos, line, None);
                }
            }
            Err((index, msg)) => {
                self.pair_error = Some(StreamError {
                    error: CheckError::Op { index, msg },
                    line: Some(line),
                });
            }
        }
    }

    /// The checkers fed every operation (`counter`, `set-full`, `staleness`).
    fn streams(&mut self) -> impl Iterator<Item = &mut dyn OpStream> {
        let counter = self.counter.as_mut().map(|c| c as &mut dyn OpStream);
        let set_full = self.set_full.as_mut().map(|c| c as &mut dyn OpStream);
        let staleness = self.staleness.as_mut().map(|c| c as &mut dyn OpStream);
        counter.into_iter().chain(set_full).chain(staleness)
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
            self.inferred.note(&done.op);
            self.streams().for_each(|s| s.complete(&done, 0));
        }
        let stats = std::mem::take(&mut self.stats).finish();
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
                _ => self.results(&stats)?,
            }
        } else {
            self.results(&stats)?
        };
        Ok(Streamed {
            report: Report::from_results(results),
            evidence: self.evidence.finish(cut_short),
            stats,
            ops: self.pos as u64,
        })
    }

    /// The workload `check_ops` checks the history as (`None`: no client operation).
    fn workload(&self) -> Option<Workload> {
        match (self.opts.workload, self.opts.model) {
            (Some(w), _) => Some(w),
            (None, Some(_)) => Some(Workload::Register),
            (None, None) => self.inferred.workload(),
        }
    }

    /// Before `finish`, once every op is pushed: the keys of the streamed `linearizable`
    /// check that a next pass over the history must collect (`push_replay`, then call
    /// this again), or none. See `linearizable::stream`.
    pub fn replay(&mut self) -> Vec<schism_history::Key> {
        // An error is the outcome: no need to check further.
        let rules = rules_seen(&self.opts, || self.seen);
        let failed = self.pair_error.is_some()
            || self
                .candidates
                .iter()
                .any(|c| c.rules == rules && c.error.is_some());
        let register = self.workload() == Some(Workload::Register);
        match &mut self.lin {
            Some(l) if !failed && register => l.replay(),
            _ => Vec::new(),
        }
    }

    /// The next op of a replay pass, read from `line`.
    pub fn push_replay(&mut self, op: &Op, line: usize) {
        if let Some(l) = &mut self.lin {
            l.push_replay(op, line);
        }
    }

    /// The replay pass was cut short (a signal): its keys stay unchecked (unknown).
    pub fn replay_cut_short(&mut self) {
        if let Some(l) = &mut self.lin {
            l.replay_cut_short();
        }
    }

    /// The results of the checkers selected, in `check_ops`'s order and with its errors
    /// (a checker named twice gives the same result twice).
    fn results(&mut self, stats: &Stats) -> Result<Vec<CheckResult>, StreamError> {
        let workload = self.workload().expect("client operations");
        let names = streamed_names(&self.opts).expect("`streams(opts)` holds");
        let fitting = names
            .iter()
            .position(|n| !n.fits(workload))
            .unwrap_or(names.len());
        let mut done: Vec<(CheckerName, CheckResult)> = Vec::new();
        let mut out = Vec::with_capacity(fitting);
        for &name in &names[..fitting] {
            let r = match done.iter().find(|(n, _)| *n == name) {
                Some((_, r)) => r.clone(),
                None => {
                    let r = self.result_of(name, stats)?;
                    done.push((name, r.clone()));
                    r
                }
            };
            out.push(r);
        }
        if let Some(name) = names.get(fitting) {
            return Err(StreamError {
                error: CheckError::Unsupported {
                    checker: name.as_str(),
                    workload,
                },
                line: None,
            });
        }
        Ok(out)
    }

    /// One streamed checker's result, its stream consumed.
    fn result_of(&mut self, name: CheckerName, stats: &Stats) -> Result<CheckResult, StreamError> {
        let with_line = |(error, line): (CheckError, usize)| StreamError {
            error,
            line: Some(line),
        };
        match name {
            CheckerName::Linearizable => {
                let mut l = self.lin.take().expect("linearizable streams");
                let keys = l.replay();
                assert!(keys.is_empty(), "`replay` passes before `finish`");
                l.finish()
                    .map_err(|(error, line)| StreamError { error, line })
            }
            CheckerName::Counter => {
                let c = self.counter.take().expect("counter streams");
                c.finish(&self.opts).map_err(with_line)
            }
            CheckerName::SetFull => {
                let c = self.set_full.take().expect("set-full streams");
                c.finish(&self.opts).map_err(with_line)
            }
            CheckerName::Staleness => {
                let s = self.staleness.take().expect("staleness streams");
                let workload = self.workload().expect("client operations");
                s.finish(workload, &self.opts).map_err(with_line)
            }
            _ => Ok(crate::stats::result_of(stats)),
        }
    }
}
