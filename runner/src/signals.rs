//! Signals during `schism test`, caught from the first instant of a run: SIGINT (Ctrl-C),
//! SIGTERM and SIGHUP (a closed terminal, a dropped SSH session) all mean "stop".
//!
//! The first signal while the run sets up or drives the workload cancels it: start-up is
//! abandoned (whatever was spawned is killed), workers stop, the nemesis heals, and what was
//! recorded is checked and reported as `unknown`. The first signal while the checkers run
//! stops the check (its verdict becomes `unknown`). A further signal aborts at once: every
//! process the runner started is killed, the ledger removes every recorded resource, and
//! the process exits 130. Guarantees: `Interrupts::install` registers the handlers before
//! it returns, so a run that installs it before creating anything never loses a resource to
//! a signal; after SIGHUP a terminal on stdout/stderr is replaced by /dev/null, so writing
//! to a vanished terminal cannot end the run before its results are written.

use anyhow::{Context, Result};
use schism_nemesis::Ledger;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::watch;

/// The first signal of a run: its name and when it came.
#[derive(Debug, Clone, Copy)]
pub struct Caught {
    pub signal: &'static str,
    pub at: Instant,
}

#[derive(Debug, Default)]
struct State {
    first: Option<Caught>,
    /// The run's ledger once it exists (what an abort must clean).
    ledger: Option<Arc<Ledger>>,
    /// The checker's stop flag while the checkers run.
    checking: Option<Arc<AtomicBool>>,
}

/// The signal handlers of one run; dropping it stops listening.
#[derive(Debug)]
pub struct Interrupts {
    cancel: watch::Receiver<bool>,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Interrupts {
    /// Registers SIGINT, SIGTERM and SIGHUP handlers (before returning) and starts
    /// listening. Must be called inside the tokio runtime.
    pub fn install() -> Result<Interrupts> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        let mut hup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
        let (tx, rx) = watch::channel(false);
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let name = tokio::select! {
                    _ = int.recv() => "SIGINT",
                    _ = term.recv() => "SIGTERM",
                    _ = hup.recv() => "SIGHUP",
                };
                if name == "SIGHUP" {
                    detach_terminal();
                }
                on_signal(name, &st, &tx);
            }
        });
        Ok(Interrupts {
            cancel: rx,
            state,
            task,
        })
    }

    /// Becomes true at the first signal.
    pub fn cancelled(&self) -> watch::Receiver<bool> {
        self.cancel.clone()
    }

    pub fn is_cancelled(&self) -> bool {
        *self.cancel.borrow()
    }

    /// The first signal, if one came.
    pub fn caught(&self) -> Option<Caught> {
        self.lock().first
    }

    /// From now on an abort cleans what `ledger` records.
    pub fn set_ledger(&self, ledger: Arc<Ledger>) {
        self.lock().ledger = Some(ledger);
    }

    /// The checkers start: a signal now sets the returned flag (which the checkers poll).
    pub fn enter_checking(&self) -> Arc<AtomicBool> {
        let flag = Arc::new(AtomicBool::new(false));
        self.lock().checking = Some(flag.clone());
        flag
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Interrupts {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn on_signal(name: &'static str, state: &Mutex<State>, cancel: &watch::Sender<bool>) {
    let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
    let first = st.first.is_none();
    if first {
        st.first = Some(Caught {
            signal: name,
            at: Instant::now(),
        });
    }
    if let Some(flag) = &st.checking {
        if !flag.swap(true, Ordering::Relaxed) {
            eprintln!(
                "schism: {name}: stopping the check; the verdict will be unknown (again to abort)"
            );
            return;
        }
    } else if first {
        eprintln!(
            "schism: {name}: interrupted; stopping the run, undoing every fault and checking what was recorded (again to abort)"
        );
        let _ = cancel.send(true);
        return;
    }
    eprintln!("schism: {name}: aborted; killing nodes and removing faults");
    // Every process this runner started, recorded in the ledger yet or not (a database
    // still starting up), then every recorded resource.
    for pid in schism_targets::db::descendants(std::process::id()) {
        let p = nix::unistd::Pid::from_raw(pid as i32);
        let _ = nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGCONT);
        let _ = nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGKILL);
    }
    if let Some(ledger) = &st.ledger {
        ledger.finish();
    }
    std::process::exit(130);
}

/// After a hangup the terminal is gone: writes to it would fail (and `eprintln!` panics
/// on failure), so a terminal on stdout or stderr is replaced by /dev/null.
fn detach_terminal() {
    use std::io::IsTerminal;
    let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") else {
        return;
    };
    if std::io::stdout().is_terminal() {
        let _ = nix::unistd::dup2_stdout(&null);
    }
    if std::io::stderr().is_terminal() {
        let _ = nix::unistd::dup2_stderr(&null);
    }
}

/// Runs `work` (a `schism check`) on a blocking thread while SIGINT, SIGTERM and SIGHUP
/// are handled: the first sets `stop` (the checkers then end with `unknown`), another
/// exits 130 at once.
pub fn run_stoppable<T: Send + 'static>(
    stop: Arc<AtomicBool>,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let interrupts = Interrupts::install()?;
        {
            let mut st = interrupts.lock();
            st.checking = Some(stop);
        }
        let out = tokio::task::spawn_blocking(work)
            .await
            .context("checker task panicked")?;
        drop(interrupts);
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_while_checking_stops_the_check_and_one_before_cancels_the_run() {
        let (tx, rx) = watch::channel(false);
        let state = Mutex::new(State::default());
        on_signal("SIGTERM", &state, &tx);
        assert!(*rx.borrow(), "the first signal cancels the run");
        let flag = Arc::new(AtomicBool::new(false));
        state.lock().unwrap().checking = Some(flag.clone());
        on_signal("SIGINT", &state, &tx);
        assert!(
            flag.load(Ordering::Relaxed),
            "a signal while checking stops the check"
        );
        let first = state.lock().unwrap().first.unwrap();
        assert_eq!(
            first.signal, "SIGTERM",
            "the first signal is the one recorded"
        );
    }
}
