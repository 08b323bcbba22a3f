//! `state.db`, the node-local SQLite file: the durable record (terms, disk state, monitoring),
//! the terms history, the events and the alert outbox (`store`), and which event kinds are
//! mailed (`event_kinds`). Never replicated.
//!
//! May touch: the disk. Must not: be written by anything but the driver's record and the event
//! writer, each through the one write connection.

pub mod event_kinds;
pub mod store;
