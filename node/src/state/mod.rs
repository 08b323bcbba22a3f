//! `state.db`, the node-local SQLite file: the durable record (terms, disk state, monitoring),
//! the terms history, the events and the alert outbox (`store`). Never replicated.
//!
//! May touch: the disk. Must not: be written by anything but the driver's record and the event
//! writer, each through the one write connection.

pub mod store;
