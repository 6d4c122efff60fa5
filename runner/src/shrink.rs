//! `schism shrink RUN_DIR`: a failing run minimised in deterministic simulation while it
//! still shows the same anomaly kinds, written as an ordinary run folder.
//!
//! The input is any run folder with `config.json` and `results.json`: a simulated run is
//! re-run from its recorded flags, seed and `plan.json`; a real run is re-run in
//! simulation from the same (the flags the simulator cannot honour — ports, data
//! directories, namespaces — dropped, the network at `schism sim`'s defaults), trying the
//! seeds after its own until one shows the kinds. The kinds to keep are the run's counted
//! kinds (`results.json`'s `counts`), or `--kind` (entries that must all show, each may
//! be alternatives joined by `|`, as the matrix writes them).
//!
//! The search is delta debugging over one candidate (flags, fault plan, seed): passes
//! that each propose smaller candidates in a fixed order — drop fault episodes (chunks,
//! then single ones), drop steps of an episode, shorten episodes, move them earlier,
//! narrow their node sets, less simulated time, a lower rate, fewer clients and keys,
//! fewer network perturbations (tail, loss, duplication, delay spread) — and keep the
//! first proposal that still fails with the kinds, until no pass finds one or the budget
//! (`--max-attempts`, `--time-budget`) is spent. Each attempt is a whole simulated run
//! checked in memory by the same checkers (`sim::sweep::check_seed`).
//!
//! Guarantees: deterministic — the same input and flags give the same minimal run (the
//! seed is kept, every proposal order is fixed; only the time budget can end the search
//! earlier on a slower machine); the result is never bigger than the input (a proposal is
//! only ever a reduction, and the first candidate is the input itself); it is written by
//! `sim::run_one`, so its folder is what `schism sim` writes, with `config.json`
//! re-runnable through `--plan`.

use anyhow::{Context, Result, bail};
use schism_checker::Validity;
use schism_nemesis::{Change, Fault, PlanFile, Planned, Shape, Targets};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::analyze::ResultsFile;
use crate::cli::{ShrinkArgs, SimArgs, TestArgs};
use crate::config::RunConfig;
use crate::sim::{self, SimPlan, sweep};

const MS: u64 = 1_000_000;
/// Shortest fault episode and gap the search proposes.
const MIN_SPAN_NS: u64 = 100 * MS;

/// One fault episode: its faults (a strobe has several steps) and the heal that ends it.
#[derive(Debug, Clone, PartialEq)]
struct Episode {
    faults: Vec<Planned>,
    heal_ns: u64,
}

impl Episode {
    fn start_ns(&self) -> u64 {
        self.faults.first().map_or(self.heal_ns, |p| p.at_ns)
    }

    fn shifted(&self, by_ns: u64) -> Episode {
        Episode {
            faults: self
                .faults
                .iter()
                .map(|p| Planned {
                    at_ns: p.at_ns - by_ns,
                    ..p.clone()
                })
                .collect(),
            heal_ns: self.heal_ns - by_ns,
        }
    }
}

/// What one simulated run is made of.
#[derive(Debug, Clone)]
struct Candidate {
    args: SimArgs,
    episodes: Vec<Episode>,
    seed: u64,
    /// `--min-time-limit`: the shortest run proposed.
    min_time_ns: u64,
}

/// A candidate's sizes, for the before → after lines.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Size {
    pub faults: usize,
    pub ops: usize,
    pub simulated_ns: u64,
    pub clients: u32,
    pub keys: u64,
}

/// What `shrink` found.
#[derive(Debug, Clone)]
pub struct Shrunk {
    pub before: Size,
    pub after: Size,
    pub attempts: u64,
    pub wall: Duration,
    /// The minimal run's folder.
    pub run_dir: PathBuf,
    /// The kinds it still shows, with their counts.
    pub counts: BTreeMap<String, u64>,
    /// The `schism test` command that replays it on real processes.
    pub replay: String,
    /// The `schism sim` command that re-runs it (the same history).
    pub rerun: String,
}

/// `schism shrink`: prints progress on stderr, before → after on stdout; exit 1 (the
/// minimal run is invalid, as the input was).
pub fn run(args: ShrinkArgs) -> Result<i32> {
    let s = shrink(&args)?;
    let line = |what: &str, a: String, b: String| println!("  {what:<13} {a} → {b}");
    println!(
        "shrunk in {} attempts, {:.1} s; still {}",
        s.attempts,
        s.wall.as_secs_f64(),
        kinds_text(&s.counts)
    );
    line(
        "fault events",
        s.before.faults.to_string(),
        s.after.faults.to_string(),
    );
    line(
        "client ops",
        s.before.ops.to_string(),
        s.after.ops.to_string(),
    );
    line(
        "simulated",
        format!("{:.2} s", s.before.simulated_ns as f64 / 1e9),
        format!("{:.2} s", s.after.simulated_ns as f64 / 1e9),
    );
    line(
        "clients",
        s.before.clients.to_string(),
        s.after.clients.to_string(),
    );
    line("keys", s.before.keys.to_string(), s.after.keys.to_string());
    println!("minimal run: {}", s.run_dir.display());
    println!("re-run in simulation: {}", s.rerun);
    println!("replay on real processes: {}", s.replay);
    Ok(1)
}

fn kinds_text(counts: &BTreeMap<String, u64>) -> String {
    counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{k}×{n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The search and the minimal run's folder (see the module doc).
pub fn shrink(args: &ShrinkArgs) -> Result<Shrunk> {
    let dir = &args.run_dir;
    let config = RunConfig::read(dir)?.with_context(|| {
        format!(
            "{} has no config.json: pass a run folder (results/<name>/<timestamp>)",
            dir.display()
        )
    })?;
    let results = read_results(dir)?;
    let kinds = target_kinds(&args.kind, &results)?;
    let (mut base, real) = sim_args_of(&config, dir)?;
    let plan = read_plan(dir, &config)?;
    let first_seed = config.seed.or(base.test.seed).unwrap_or(1);
    let mut search = Search {
        kinds: kinds.clone(),
        attempts: 0,
        max_attempts: args.max_attempts,
        started: Instant::now(),
        budget: args.time_budget,
        best: None,
    };
    // The input itself first (a real run: its seed, then the next ones).
    let tries = if real { args.seeds.max(1) } else { 1 };
    let episodes = episodes_of(&plan.changes);
    let mut start = None;
    for seed in first_seed..first_seed.saturating_add(tries) {
        base.test.seed = Some(seed);
        let c = Candidate {
            args: base.clone(),
            episodes: episodes.clone(),
            seed,
            min_time_ns: args.min_time_limit.as_nanos() as u64,
        };
        if let Some(r) = search.fails(&c) {
            start = Some((c, r));
            break;
        }
    }
    let Some((mut cur, first)) = start else {
        bail!(
            "{}: the run does not show {} in simulation ({} seed(s) from {first_seed} tried{}): nothing to shrink",
            dir.display(),
            kinds.join(" + ").replace('|', " or "),
            tries,
            if real {
                "; raise --seeds to try more"
            } else {
                ""
            }
        );
    };
    let before = size(&cur, &first);
    let mut last = first;
    eprintln!(
        "schism: shrinking {} (seed {}): {}",
        dir.display(),
        cur.seed,
        describe(&before)
    );
    loop {
        let mut progressed = false;
        for pass in PASSES {
            while let Some((c, r)) = first_failing(&mut search, pass(&cur)) {
                cur = c;
                last = r;
                progressed = true;
                eprintln!(
                    "schism: shrink attempt {} ({:.1} s): {}",
                    search.attempts,
                    search.started.elapsed().as_secs_f64(),
                    describe(&size(&cur, &last))
                );
            }
            if search.exhausted() {
                break;
            }
        }
        if !progressed || search.exhausted() {
            break;
        }
    }
    if search.exhausted() {
        eprintln!(
            "schism: shrink budget spent ({} attempts, {:.1} s): the run below is the smallest found",
            search.attempts,
            search.started.elapsed().as_secs_f64()
        );
    }
    let after = size(&cur, &last);
    let attempts = search.attempts;
    let wall = search.started.elapsed();
    // The minimal run as an ordinary run folder.
    let mut out = cur.args.clone();
    out.test.store = args.store.clone().unwrap_or(out.test.store);
    out.test.name = format!("{}-shrunk", out.test.name);
    out.test.seed = Some(cur.seed);
    let sim_plan = sim_plan(&Candidate {
        args: out,
        ..cur.clone()
    })?;
    let (_, run_dir) = sim::run_one(&sim_plan)?;
    let plan_path = run_dir.join(PlanFile::FILE);
    record_plan_flag(&run_dir, &plan_path)?;
    let mut replay_args = sim_plan.args.clone();
    replay_args.test.plan = Some(plan_path);
    let replay = format!(
        "schism test {}",
        crate::cli::test_flags(&replay_args.test).join(" ")
    );
    let rerun = format!(
        "schism sim {}",
        crate::cli::sim_flags(&replay_args).join(" ")
    );
    Ok(Shrunk {
        before,
        after,
        attempts,
        wall,
        run_dir,
        counts: last
            .counts
            .into_iter()
            .filter(|(k, n)| *n > 0 && kinds.iter().any(|e| e.split('|').any(|x| x == k)))
            .collect(),
        replay,
        rerun,
    })
}

fn read_results(dir: &Path) -> Result<ResultsFile> {
    let path = dir.join(crate::store::RESULTS);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {}: shrink a run that was checked (schism check {} writes it)",
            path.display(),
            dir.display()
        )
    })?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a results.json schism can read", path.display()))
}

/// The entries to keep: `--kind`, or each kind the run counted; refused when the run was
/// not invalid or does not show them.
fn target_kinds(given: &[String], results: &ResultsFile) -> Result<Vec<String>> {
    let shown: Vec<String> = results
        .counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, _)| k.clone())
        .collect();
    if results.validity != Validity::Invalid || shown.is_empty() {
        bail!(
            "the run is {}, not invalid with an anomaly: only a failing run can be shrunk",
            crate::analyze::validity_word(results.validity)
        );
    }
    if given.is_empty() {
        return Ok(shown);
    }
    if !holds(given, &results.counts) {
        bail!(
            "--kind {}: the run did not show it (it showed {}); pass kinds from its results.json counts",
            given.join(","),
            shown.join(", ")
        );
    }
    Ok(given.to_vec())
}

/// Whether every entry (alternatives joined by `|`) is counted at least once.
fn holds(kinds: &[String], counts: &BTreeMap<String, u64>) -> bool {
    kinds
        .iter()
        .all(|e| e.split('|').any(|k| counts.get(k).is_some_and(|&n| n > 0)))
}

/// The run's flags as `schism sim` flags, and whether it was a real run (then the flags
/// only real processes have are dropped and the network is the simulator's default).
fn sim_args_of(config: &RunConfig, dir: &Path) -> Result<(SimArgs, bool)> {
    let test = config.test.clone().with_context(|| {
        format!(
            "{}: config.json records no flags (`test`): it was not written by schism test or sim",
            dir.display()
        )
    })?;
    let mut args = default_sim_args();
    let real = config.sim.is_none();
    args.test = test;
    // The plan is fixed (`SimPlan::fixed`): the flags that draw one stay at their defaults.
    let defaults = TestArgs::default();
    args.test.plan = None;
    args.test.nemesis = defaults.nemesis;
    args.test.nemesis_interval = defaults.nemesis_interval;
    args.test.nemesis_targets = defaults.nemesis_targets;
    args.test.junit = None;
    if real {
        args.test.data_dir = None;
        args.test.base_port = None;
        args.test.stop_on_anomaly = false;
        args.test.inject_harness_fault = None;
        if args.test.net == schism_nemesis::NetChoice::Netns {
            args.test.net = schism_nemesis::NetChoice::Auto;
        }
    }
    if let Some(n) = &config.sim {
        let us = Duration::from_micros;
        args.sim_delay.min = us(n.delay_min_us);
        args.sim_delay.max = us(n.delay_max_us);
        args.sim_client_delay.min = us(n.client_delay_min_us);
        args.sim_client_delay.max = us(n.client_delay_max_us);
        args.sim_delay_tail.probability = n.delay_tail_probability;
        args.sim_delay_tail.max = us(n.delay_tail_max_us);
        args.sim_loss = n.loss;
        args.sim_duplicate = n.duplicate;
    }
    Ok((args, real))
}

/// `schism sim`'s flags at their defaults.
fn default_sim_args() -> SimArgs {
    #[derive(clap::Parser)]
    struct Defaults {
        #[command(flatten)]
        sim: SimArgs,
    }
    <Defaults as clap::Parser>::parse_from(["schism"]).sim
}

/// The run's `plan.json`, or (a folder from before plan files) the plan its config.json
/// recorded.
fn read_plan(dir: &Path, config: &RunConfig) -> Result<PlanFile> {
    let path = dir.join(PlanFile::FILE);
    if path.exists() {
        return Ok(PlanFile::read(&path)?);
    }
    let nodes = config.test.as_ref().map_or(3, |t| usize::from(t.nodes));
    let ids: Vec<String> = (1..=nodes).map(|i| format!("n{i}")).collect();
    let changes = config
        .nemesis
        .as_ref()
        .map(|n| n.plan.clone())
        .unwrap_or_default();
    Ok(PlanFile::new(&ids, &changes))
}

/// A plan as episodes: faults up to the heal that ends them (the final heal ends the last).
fn episodes_of(changes: &[Planned]) -> Vec<Episode> {
    let mut out = Vec::new();
    let mut open: Vec<Planned> = Vec::new();
    for p in changes {
        match p.change {
            Change::Fault(_) => open.push(p.clone()),
            Change::Heal => {
                if !open.is_empty() {
                    out.push(Episode {
                        faults: std::mem::take(&mut open),
                        heal_ns: p.at_ns,
                    });
                }
            }
        }
    }
    out
}

/// Episodes back to a plan: the last episode's heal is the final heal.
fn changes_of(episodes: &[Episode]) -> Vec<Planned> {
    let mut out = Vec::new();
    for (i, e) in episodes.iter().enumerate() {
        out.extend(e.faults.iter().cloned());
        out.push(Planned {
            at_ns: e.heal_ns,
            change: Change::Heal,
            final_heal: i + 1 == episodes.len(),
        });
    }
    out
}

/// The candidate as a simulation with its plan fixed.
fn sim_plan(c: &Candidate) -> Result<SimPlan> {
    let mut args = c.args.clone();
    args.seeds = None;
    args.test.seed = Some(c.seed);
    let mut plan = SimPlan::new(args)?;
    let file = PlanFile::new(&plan.node_ids, &changes_of(&c.episodes));
    file.validate(
        "the shrunk plan",
        &plan.node_ids,
        c.args.test.time_limit.as_nanos() as u64,
    )?;
    plan.kinds = file.kinds();
    plan.fixed = Some(file);
    Ok(plan)
}

/// Writes `--plan` into the minimal run's config.json, so its `test` flags re-run it.
fn record_plan_flag(run_dir: &Path, plan_path: &Path) -> Result<()> {
    let mut config = RunConfig::read(run_dir)?.context("the minimal run has no config.json")?;
    if let Some(t) = config.test.as_mut() {
        t.plan = Some(plan_path.to_owned());
    }
    config.write(run_dir)
}

fn size(c: &Candidate, r: &sweep::SeedResult) -> Size {
    Size {
        faults: c.episodes.iter().map(|e| e.faults.len()).sum(),
        ops: r.client_ops,
        simulated_ns: r.simulated_ns,
        clients: c.args.test.concurrency,
        keys: c.args.test.keys,
    }
}

fn describe(s: &Size) -> String {
    format!(
        "{} fault events, {} client ops, {:.2} simulated s, {} clients, {} keys",
        s.faults,
        s.ops,
        s.simulated_ns as f64 / 1e9,
        s.clients,
        s.keys
    )
}

/// The budget and the kinds a candidate must still show.
struct Search {
    kinds: Vec<String>,
    attempts: u64,
    max_attempts: u64,
    started: Instant,
    budget: Duration,
    best: Option<()>,
}

impl Search {
    fn exhausted(&self) -> bool {
        self.attempts >= self.max_attempts || self.started.elapsed() >= self.budget
    }

    /// Runs `c`; its result when it is invalid with every kind.
    fn fails(&mut self, c: &Candidate) -> Option<sweep::SeedResult> {
        if self.exhausted() && self.best.is_some() {
            return None;
        }
        self.attempts += 1;
        let plan = sim_plan(c).ok()?;
        let r = sweep::check_seed(&plan, c.seed).ok()?;
        let fails = r.validity == Validity::Invalid && holds(&self.kinds, &r.counts);
        if fails {
            self.best = Some(());
        }
        fails.then_some(r)
    }
}

/// The first proposal that still fails.
fn first_failing(
    search: &mut Search,
    proposals: Vec<Candidate>,
) -> Option<(Candidate, sweep::SeedResult)> {
    for c in proposals {
        if search.exhausted() {
            return None;
        }
        if let Some(r) = search.fails(&c) {
            return Some((c, r));
        }
    }
    None
}

type Pass = fn(&Candidate) -> Vec<Candidate>;

/// The passes, biggest reductions first.
const PASSES: &[Pass] = &[
    drop_episodes,
    less_time,
    lower_rate,
    drop_steps,
    shorten,
    move_earlier,
    narrow_nodes,
    fewer_clients,
    fewer_keys,
    calmer_network,
];

fn with_episodes(c: &Candidate, episodes: Vec<Episode>) -> Candidate {
    Candidate {
        episodes,
        ..c.clone()
    }
}

/// Delta debugging's complements: without each half, each quarter, …, each episode.
fn drop_episodes(c: &Candidate) -> Vec<Candidate> {
    let n = c.episodes.len();
    let mut out = Vec::new();
    if n == 0 {
        return out;
    }
    out.push(with_episodes(c, Vec::new()));
    let mut parts = 2;
    while parts <= n {
        let chunk = n.div_ceil(parts);
        for start in (0..n).step_by(chunk) {
            let kept: Vec<Episode> = c
                .episodes
                .iter()
                .enumerate()
                .filter(|(i, _)| *i < start || *i >= start + chunk)
                .map(|(_, e)| e.clone())
                .collect();
            if !kept.is_empty() && kept.len() < n {
                out.push(with_episodes(c, kept));
            }
        }
        if chunk == 1 {
            break;
        }
        parts *= 2;
        parts = parts.min(n);
    }
    out
}

/// Without one step of an episode of several (a strobe's steps).
fn drop_steps(c: &Candidate) -> Vec<Candidate> {
    let mut out = Vec::new();
    for (i, e) in c.episodes.iter().enumerate() {
        if e.faults.len() < 2 {
            continue;
        }
        // Halves first, then single steps.
        let half = e.faults.len() / 2;
        for keep in [&e.faults[..half], &e.faults[half..]] {
            let mut eps = c.episodes.clone();
            eps[i].faults = keep.to_vec();
            out.push(with_episodes(c, eps));
        }
        for j in 0..e.faults.len() {
            let mut eps = c.episodes.clone();
            eps[i].faults.remove(j);
            out.push(with_episodes(c, eps));
        }
    }
    out
}

/// Each episode healed after half its time (its steps past the new heal dropped).
fn shorten(c: &Candidate) -> Vec<Candidate> {
    let mut out = Vec::new();
    for (i, e) in c.episodes.iter().enumerate() {
        let span = e.heal_ns - e.start_ns();
        if span < 2 * MIN_SPAN_NS {
            continue;
        }
        let heal_ns = e.start_ns() + span / 2;
        let mut eps = c.episodes.clone();
        eps[i].heal_ns = heal_ns;
        eps[i].faults.retain(|p| p.at_ns < heal_ns);
        out.push(with_episodes(c, eps));
    }
    out
}

/// Everything from an episode on moved earlier by half (or a quarter of) the quiet gap
/// before it.
fn move_earlier(c: &Candidate) -> Vec<Candidate> {
    let mut out = Vec::new();
    for i in 0..c.episodes.len() {
        let prev_end = if i == 0 { 0 } else { c.episodes[i - 1].heal_ns };
        let gap = c.episodes[i].start_ns() - prev_end;
        if gap < 2 * MIN_SPAN_NS {
            continue;
        }
        for by in [gap / 2, gap / 4] {
            let mut eps = c.episodes.clone();
            for e in &mut eps[i..] {
                *e = e.shifted(by);
            }
            out.push(with_episodes(c, eps));
        }
    }
    out
}

/// Each fault with one node fewer (node lists, a partition's minority), or a
/// many-group partition made an isolation of one of its nodes.
fn narrow_nodes(c: &Candidate) -> Vec<Candidate> {
    let mut out = Vec::new();
    for (i, e) in c.episodes.iter().enumerate() {
        for (j, p) in e.faults.iter().enumerate() {
            let Change::Fault(f) = &p.change else {
                continue;
            };
            for narrower in narrower_faults(f) {
                let mut eps = c.episodes.clone();
                eps[i].faults[j].change = Change::Fault(narrower);
                out.push(with_episodes(c, eps));
            }
        }
    }
    out
}

fn without_each(v: &[String]) -> Vec<Vec<String>> {
    if v.len() < 2 {
        return Vec::new();
    }
    (0..v.len())
        .map(|k| {
            let mut w = v.to_vec();
            w.remove(k);
            w
        })
        .collect()
}

fn narrower_faults(f: &Fault) -> Vec<Fault> {
    use schism_nemesis::ClockFault as C;
    let nodes = |t: &Targets| match t {
        Targets::Nodes(v) => without_each(v),
        Targets::Leader => Vec::new(),
    };
    match f {
        Fault::Pause { targets } => nodes(targets)
            .into_iter()
            .map(|v| Fault::Pause {
                targets: Targets::Nodes(v),
            })
            .collect(),
        Fault::Kill { targets } => nodes(targets)
            .into_iter()
            .map(|v| Fault::Kill {
                targets: Targets::Nodes(v),
            })
            .collect(),
        Fault::Clock(C::Bump { targets, delta_ms }) => nodes(targets)
            .into_iter()
            .map(|v| {
                Fault::Clock(C::Bump {
                    targets: Targets::Nodes(v),
                    delta_ms: *delta_ms,
                })
            })
            .collect(),
        Fault::Clock(C::Strobe { targets, offset_ms }) => nodes(targets)
            .into_iter()
            .map(|v| {
                Fault::Clock(C::Strobe {
                    targets: Targets::Nodes(v),
                    offset_ms: *offset_ms,
                })
            })
            .collect(),
        Fault::Clock(C::Drift { targets, rate }) => nodes(targets)
            .into_iter()
            .map(|v| {
                Fault::Clock(C::Drift {
                    targets: Targets::Nodes(v),
                    rate: *rate,
                })
            })
            .collect(),
        Fault::Partition(Shape::Halves { minority }) => without_each(minority)
            .into_iter()
            .map(|m| Fault::Partition(Shape::Halves { minority: m }))
            .collect(),
        Fault::Partition(Shape::MajoritiesRing { ring }) => ring
            .iter()
            .map(|n| Fault::Partition(Shape::Isolate { node: n.clone() }))
            .collect(),
        Fault::Partition(Shape::Bridge { bridge, .. }) => vec![Fault::Partition(Shape::Isolate {
            node: bridge.clone(),
        })],
        _ => Vec::new(),
    }
}

fn with_test(c: &Candidate, edit: impl FnOnce(&mut TestArgs)) -> Candidate {
    let mut d = c.clone();
    edit(&mut d.args.test);
    d
}

/// A shorter run: half the time, or ending where the last episode heals (never below
/// `--min-time-limit`).
fn less_time(c: &Candidate) -> Vec<Candidate> {
    let t_ns = c.args.test.time_limit.as_nanos() as u64;
    let last_heal = c.episodes.last().map_or(0, |e| e.heal_ns);
    let mut out = Vec::new();
    let floor = c.min_time_ns.max(MIN_SPAN_NS);
    for target in [last_heal.max(t_ns / 2).max(floor), last_heal.max(floor)] {
        // Whole milliseconds, so the time limit prints as a flag.
        let target = target.div_ceil(MS) * MS;
        if target < t_ns
            && !out
                .iter()
                .any(|x: &Candidate| x.args.test.time_limit.as_nanos() as u64 == target)
        {
            out.push(with_test(c, |t| {
                t.time_limit = Duration::from_nanos(target)
            }));
        }
    }
    out
}

/// Half the request rate (fewer ops per simulated second).
fn lower_rate(c: &Candidate) -> Vec<Candidate> {
    let rate = c.args.test.rate;
    if rate <= 2.0 {
        return Vec::new();
    }
    vec![with_test(c, |t| t.rate = (rate / 2.0).floor())]
}

fn fewer_clients(c: &Candidate) -> Vec<Candidate> {
    let n = c.args.test.concurrency;
    let mut out = Vec::new();
    for m in [1, n / 2] {
        if m >= 1 && m < n && !out.iter().any(|x: &Candidate| x.args.test.concurrency == m) {
            out.push(with_test(c, |t| t.concurrency = m));
        }
    }
    out
}

fn fewer_keys(c: &Candidate) -> Vec<Candidate> {
    let n = c.args.test.keys;
    let mut out = Vec::new();
    for m in [1, n / 2] {
        if m >= 1 && m < n && !out.iter().any(|x: &Candidate| x.args.test.keys == m) {
            out.push(with_test(c, |t| t.keys = m));
        }
    }
    out
}

/// No delay tail, no loss, no duplication, half the delays' spread.
fn calmer_network(c: &Candidate) -> Vec<Candidate> {
    let a = &c.args;
    let mut out = Vec::new();
    let mut edit = |f: &dyn Fn(&mut SimArgs)| {
        let mut d = c.clone();
        f(&mut d.args);
        out.push(d);
    };
    if a.sim_delay_tail.probability > 0.0 {
        edit(&|s| {
            s.sim_delay_tail.probability = 0.0;
            s.sim_delay_tail.max = Duration::ZERO;
        });
    }
    if a.sim_loss > 0.0 {
        edit(&|s| s.sim_loss = 0.0);
    }
    if a.sim_duplicate > 0.0 {
        edit(&|s| s.sim_duplicate = 0.0);
    }
    let spread = a.sim_delay.max.saturating_sub(a.sim_delay.min);
    if spread > Duration::from_micros(100) {
        // Whole microseconds, as the flag and config.json write it.
        let half = Duration::from_micros((spread / 2).as_micros() as u64);
        edit(&|s| s.sim_delay.max = s.sim_delay.min + half);
    }
    out
}
