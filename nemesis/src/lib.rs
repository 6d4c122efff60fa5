//! The nemesis: seeded fault schedules and the mechanisms that make faults real.
//!
//! Pure parts: `fault` (the vocabulary, and `resolve`, which turns a planned fault into
//! the complete `FaultState` that should hold) and `schedule` (a seeded, time-explicit
//! plan: `next(now_ns) -> change | pending | done`). Mechanisms: `netns` (namespaces +
//! nftables), `cgroup` (cgroup-v2 freezer for process trees), `shim` (the LD_PRELOAD
//! clock shim for C servers), and `mechanism::TargetMechanism`, the one mechanism over
//! `schism_targets::TargetCluster` for the reference cluster and every database alike
//! (kills and restarts through the target, SIGSTOP or a cgroup freeze, clocks through the
//! shim's files or the target's admin API, nftables or the target's cooperative link
//! cuts), which refuses a state the target's declared `Capabilities` cannot take. The
//! `ledger` records every system resource before it is created and removes them all on
//! drop or in `schism cleanup`.
//!
//! Guarantees: the same seed gives the same plan; every state is applied whole and
//! idempotently, so healing is applying the empty state; nothing outlives a run that
//! unwinds (the ledger cleans on drop), and a SIGKILLed run's leftovers are found by the
//! registry. Traffic only ever goes to loopback or to addresses inside namespaces the
//! run created. This crate knows nothing of clap, the terminal or the results layout.

pub mod cgroup;
pub mod error;
pub mod fault;
pub mod hosts;
pub mod lab;
pub mod ledger;
pub mod mechanism;
pub mod netns;
pub mod nft;
pub mod record;
pub mod schedule;
pub mod shim;
pub mod sys;

pub use error::NemesisError;
pub use fault::{ClockFault, ClockSetting, Fault, FaultState, Kind, Selector, Shape, Targets};
pub use ledger::{Ledger, Record};
pub use mechanism::{
    Applied, Capabilities, CapabilitiesCheck, FaultEnv, Mechanism, Nemesis, Net, NetChoice,
    TargetMechanism, choose_net,
};
pub use netns::Netns;
pub use schedule::{Change, Next, PlanFile, Planned, Schedule, ScheduleSpec};
