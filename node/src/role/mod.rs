//! The role machine: who is active, sans-IO.
//!
//! `RoleMachine::step(event, now_ms) -> Vec<Command>` implements the rules of DESIGN.md §3 that
//! need no data or calls: terms, the start-up election, missed keep-alives, the fast path,
//! reachability, `min_failover_interval`, dual-active resolution, the stall rule, switchover,
//! failover-now, graceful stop, monitoring and maintenance.
//!
//! May touch: nothing outside itself. It deliberately does no IO: no tokio, no tonic, no sqlx,
//! no clock. Time comes in as `now_ms` (milliseconds of a monotonic clock chosen by the driver);
//! the driver runs the returned commands in order. It must not import any other part of the
//! node: what it needs arrives as an `Event`, what it wants done leaves as a `Command`. The same `step` drives the stateright model in `node/tests/role_model.rs`.

mod command;
mod durable;
mod election;
mod event;
mod liveness;
mod machine;
mod switchover;
mod term;
mod types;

#[cfg(test)]
mod tests;

pub use command::{Command, EventKind};
pub use durable::Durable;
pub use event::{AdminRequest, Event, PeerHeartbeat};
pub use machine::{RoleConfig, RoleMachine, SwitchoverPhase};
pub use term::{LogPosition, Rank, Term};
pub use types::{DialOutcome, DiskState, Monitoring, PeerView, Role};

/// Fast path: at least this many dial rounds refused on both ports...
pub const FAST_PATH_MIN_DIALS: u32 = 3;
/// ...spread over at least this many milliseconds.
pub const FAST_PATH_MIN_WINDOW_MS: u64 = 100;
