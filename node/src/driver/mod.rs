//! The driver: one event loop that feeds the role machine and runs its commands.
//!
//! It selects over the keep-alive ticker and one bounded input channel (peer messages, stream
//! ends, fast-path dials, reachability, admin requests, SIGTERM). For each input it calls
//! `RoleMachine::step` and runs the returned commands in order, awaiting each: a `Persist` is on
//! disk before the next command runs. After each step it publishes the node's `Status`.
//!
//! May touch: `state.db` (it is its only writer of the durable record; events go through
//! `event_writer`), the outbound peer messages, the status watch, the admission gate. Must not:
//! decide anything itself (the role machine does), or wait on anything but its own commands.
//!
//! # Layout
//! - `handle`: `DriverHandle` and `Input`, what the rest of the node holds and sends.
//! - `event_loop`: `Driver`, the loop and its state; `commands`: running the machine's
//!   commands; `peer_messages`: the peer's heartbeats and hand-over messages, and ours;
//!   `peer_extras`: the edge-only facts about the peer; `publish`: the status.
//! - `admission`: the gate for clients; `event_writer`: events to `state.db` off the loop.

pub mod admission;
mod commands;
pub mod event_loop;
pub mod event_writer;
pub mod handle;
mod peer_extras;
mod peer_messages;
mod publish;
mod quorum;

pub use event_loop::{Driver, DriverError, role_config};
pub use handle::{AdminReply, DriverHandle, INPUT_QUEUE_BOUND, Input, OUTBOUND_BOUND};
