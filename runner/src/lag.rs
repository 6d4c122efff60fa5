//! The lag sampler: every `SAMPLE_PERIOD` during a run, one `LagProbe::sample` (one
//! small request per node), each reading written as a line of `lag.jsonl` time-stamped
//! on the run clock.
//!
//! Where the target gives positions but no time lag (the reference nodes), the sampler
//! estimates the age of the oldest entry a replica has not applied: the time since the
//! source's position first passed the replica's, from the source positions it has seen
//! (so the figure has the sample period's resolution). Bounded: one line per replica
//! per sample, source positions kept only as long as some replica still trails them.

use schism_targets::lag::{LagProbe, LagReading};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How often the sampler asks.
pub const SAMPLE_PERIOD: Duration = Duration::from_millis(100);

/// One line of `lag.jsonl`.
#[derive(Debug, Serialize)]
struct Line<'a> {
    t_ms: f64,
    node: &'a str,
    source: Option<&'a str>,
    position: Option<u64>,
    source_position: Option<u64>,
    behind: Option<u64>,
    unit: &'a str,
    behind_ms: Option<f64>,
    /// `measured` (the target's own figure) or `estimated` (from the sampled positions).
    ms_from: Option<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    lags_ms: BTreeMap<&'a str, f64>,
}

/// When each source position was first seen: (time ms, position), increasing.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    by_source: BTreeMap<String, VecDeque<(f64, u64)>>,
}

impl Seen {
    fn note(&mut self, source: &str, t_ms: f64, pos: u64) {
        let q = self.by_source.entry(source.to_owned()).or_default();
        if q.back().is_none_or(|&(_, p)| pos > p) {
            q.push_back((t_ms, pos));
        }
    }

    /// How long ago the source first held a position beyond `pos`.
    fn age_ms(&self, source: &str, t_ms: f64, pos: u64) -> Option<f64> {
        let q = self.by_source.get(source)?;
        let i = q.partition_point(|&(_, p)| p <= pos);
        q.get(i).map(|&(t, _)| (t_ms - t).max(0.0))
    }

    /// Forgets positions every replica of the source has passed.
    fn trim(&mut self, source: &str, min_pos: u64) {
        if let Some(q) = self.by_source.get_mut(source) {
            while q.len() > 1 && q[1].1 <= min_pos {
                q.pop_front();
            }
        }
    }
}

/// Samples until `stop` turns true; writes `lag.jsonl` in `run_dir`. Errors writing the
/// file end the sampler with a warning (the run goes on).
pub async fn sample(
    mut probe: Box<dyn LagProbe>,
    run_dir: PathBuf,
    start: Instant,
    mut stop: watch::Receiver<bool>,
) {
    let path = run_dir.join(crate::store::LAG);
    let file = match std::fs::File::create(&path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("schism: warning: cannot create {}: {e}", path.display());
            return;
        }
    };
    let mut out = std::io::BufWriter::new(file);
    let _ = writeln!(
        out,
        "{}",
        serde_json::json!({ "method": probe.method(), "period_ms": SAMPLE_PERIOD.as_millis() as u64 })
    );
    let mut seen = Seen::default();
    let mut tick = tokio::time::interval(SAMPLE_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
        let readings = probe.sample().await;
        let t_ms = start.elapsed().as_secs_f64() * 1e3;
        if let Err(e) = write_readings(&mut out, &mut seen, t_ms, &readings) {
            eprintln!("schism: warning: writing {}: {e}", path.display());
            return;
        }
    }
    let _ = out.flush();
}

pub(crate) fn write_readings(
    out: &mut impl Write,
    seen: &mut Seen,
    t_ms: f64,
    readings: &[LagReading],
) -> std::io::Result<()> {
    for r in readings {
        if let (Some(s), Some(p)) = (&r.source, r.source_position) {
            seen.note(s, t_ms, p);
        }
    }
    let mut min_pos: BTreeMap<&str, u64> = BTreeMap::new();
    for r in readings {
        let (measured, from) = match (r.behind_ms, &r.source, r.position) {
            (Some(ms), _, _) => (Some(ms), Some("measured")),
            (None, Some(s), Some(p)) => (
                Some(seen.age_ms(s, t_ms, p).unwrap_or(0.0)),
                Some("estimated"),
            ),
            _ => (None, None),
        };
        if let (Some(s), Some(p)) = (&r.source, r.position) {
            let m = min_pos.entry(s.as_str()).or_insert(p);
            *m = (*m).min(p);
        }
        let line = Line {
            t_ms: (t_ms * 10.0).round() / 10.0,
            node: &r.node,
            source: r.source.as_deref(),
            position: r.position,
            source_position: r.source_position,
            behind: r.behind,
            unit: r.unit,
            behind_ms: measured.map(|x| (x * 10.0).round() / 10.0),
            ms_from: from,
            lags_ms: r.lags_ms.iter().copied().collect(),
        };
        serde_json::to_writer(&mut *out, &line)?;
        out.write_all(b"\n")?;
    }
    for (s, p) in min_pos {
        seen.trim(s, p);
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_of_the_oldest_unapplied_entry() {
        let mut s = Seen::default();
        s.note("n1", 0.0, 10);
        s.note("n1", 100.0, 12);
        s.note("n1", 200.0, 20);
        // Applied 10: entry 11 first existed at 100 ms.
        assert_eq!(s.age_ms("n1", 300.0, 10), Some(200.0));
        assert_eq!(s.age_ms("n1", 300.0, 20), None);
        s.trim("n1", 12);
        assert_eq!(s.age_ms("n1", 300.0, 12), Some(100.0));
    }
}
