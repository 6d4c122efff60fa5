//! The one recorder of a run: assigns every op its index and time, and streams it to
//! `history.jsonl` on a dedicated writer thread.
//!
//! Guarantees: indices are dense and assigned under one lock together with `time_ns`,
//! so index order and time order agree and real-time precedence read off indices is
//! sound (an op's completion is recorded after its response arrived, an invoke before
//! its request leaves). The queue to the writer is bounded (back-pressure, not memory
//! growth). The writer gathers ops for `BATCH_WINDOW` after the first and flushes each
//! batch, so a line reaches the file within about a millisecond of its op, and a
//! SIGKILLed runner leaves every line written before the kill readable, at most the last
//! one cut off. Once a
//! batch is written, its ops move on to the online checker's feed, if one is attached.

use schism_history::nemesis::Tracker;
use schism_history::{HistoryWriter, Op, OpType, Process};
use std::fs::File;
use std::path::Path;
use std::sync::mpsc::{Receiver, Sender, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Ops that may wait for the writer before recording blocks.
const QUEUE_CAPACITY_OPS: usize = 1 << 16;

/// How long the writer lets a batch gather after its first op: one wake-up and one
/// write(2) per window instead of per op (a sender wakes the writer only when it is
/// parked in `recv`). Profiling a `--rate 0 --concurrency 50` run showed the writer's
/// per-op wake-ups as ~15% of the runner's CPU. Bounds how late a line reaches the file
/// and the online checker.
const BATCH_WINDOW: Duration = Duration::from_millis(1);

#[derive(Debug)]
struct State {
    next_index: u64,
    tx: Option<SyncSender<Op>>,
}

/// The online checker's feed (`schism test`): the writer thread hands each batch on once
/// it is written, in index order, moving it rather than copying it (one wake-up of the
/// checker's thread per batch, not per op).
type OnlineFeed = Arc<Mutex<Option<Sender<Vec<Op>>>>>;

#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    state: Mutex<State>,
    writer: Mutex<Option<JoinHandle<std::io::Result<u64>>>>,
    online: OnlineFeed,
    /// Faults in effect, as the nemesis ops recorded so far say (for the progress line).
    faults: Mutex<Tracker>,
}

/// The writer thread died (disk full, file removed): the run must stop.
#[derive(Debug, Clone)]
pub struct RecorderClosed;

impl Recorder {
    pub fn create(path: &Path, start: Instant) -> std::io::Result<Recorder> {
        let file = File::create(path)?;
        let (tx, rx) = sync_channel::<Op>(QUEUE_CAPACITY_OPS);
        let online: OnlineFeed = Arc::new(Mutex::new(None));
        let feed = online.clone();
        let writer = std::thread::Builder::new()
            .name("history-writer".into())
            .spawn(move || write_loop(HistoryWriter::new(file), rx, &feed))?;
        Ok(Recorder {
            start,
            state: Mutex::new(State {
                next_index: 0,
                tx: Some(tx),
            }),
            writer: Mutex::new(Some(writer)),
            online,
            faults: Mutex::new(Tracker::new()),
        })
    }

    /// From now on, every recorded op is also sent to `feed` (the online checker), in
    /// index order; the feed closes when the recorder finishes.
    pub fn feed_online(&self, feed: Sender<Vec<Op>>) {
        if let Ok(mut online) = self.online.lock() {
            *online = Some(feed);
        }
    }

    /// Nanoseconds since the run started, from the run's one monotonic clock.
    pub fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// Faults in effect now, in the report's words (`partition n1 | n2 n3`, `kill n1`):
    /// the open windows of the states recorded so far.
    pub fn active_faults(&self) -> Vec<String> {
        self.faults
            .lock()
            .map(|f| f.active_labels())
            .unwrap_or_default()
    }

    /// Follows the nemesis's recorded states (the same rule the report draws windows by).
    fn track_fault(&self, op: &Op) {
        if op.process != Process::NEMESIS || op.kind != OpType::Info {
            return;
        }
        if let Ok(mut faults) = self.faults.lock() {
            faults.observe(op);
        }
    }

    /// Records `op` with a fresh index and the current time; returns them.
    pub fn record(&self, mut op: Op) -> Result<(u64, u64), RecorderClosed> {
        self.track_fault(&op);
        let mut st = self.state.lock().map_err(|_| RecorderClosed)?;
        op.set_index(st.next_index);
        op.time_ns = self.now_ns();
        let stamp = (op.index(), op.time_ns);
        let tx = st.tx.as_ref().ok_or(RecorderClosed)?;
        tx.send(op).map_err(|_| RecorderClosed)?;
        st.next_index += 1;
        Ok(stamp)
    }

    /// Ops recorded so far.
    pub fn recorded(&self) -> u64 {
        self.state.lock().map(|s| s.next_index).unwrap_or(0)
    }

    /// Closes the queue, waits for the writer to flush everything, returns lines written.
    pub fn finish(&self) -> std::io::Result<u64> {
        if let Ok(mut st) = self.state.lock() {
            st.tx = None;
        }
        let handle = self.writer.lock().ok().and_then(|mut w| w.take());
        let written = match handle {
            Some(h) => h
                .join()
                .map_err(|_| std::io::Error::other("history writer panicked"))?,
            None => Ok(0),
        };
        // The feed closes with the recorder (the online checker then sees the end).
        if let Ok(mut online) = self.online.lock() {
            *online = None;
        }
        written
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        // Every exit path flushes what was recorded.
        let _ = self.finish();
    }
}

fn write_loop(
    mut w: HistoryWriter<File>,
    rx: Receiver<Op>,
    online: &Mutex<Option<Sender<Vec<Op>>>>,
) -> std::io::Result<u64> {
    let mut batch: Vec<Op> = Vec::new();
    while let Ok(op) = rx.recv() {
        batch.push(op);
        std::thread::sleep(BATCH_WINDOW);
        // Drain whatever queued meanwhile, then flush once: one write(2) per batch.
        while let Ok(op) = rx.try_recv() {
            batch.push(op);
        }
        for op in &batch {
            w.append(op)?;
        }
        w.flush()?;
        // Then the online checker's turn: the same ops, moved, in the same order.
        match online.lock().as_deref_mut() {
            Ok(Some(feed)) => {
                let _ = feed.send(std::mem::take(&mut batch));
            }
            _ => batch.clear(),
        }
    }
    w.flush()?;
    Ok(w.written())
}
