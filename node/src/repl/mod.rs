//! The replicated database inside `tandemd` (DESIGN.md §4): the drivers around
//! `tandem-replication`.
//!
//! May touch: `data.db` (through the store: one writer task, a reader pool), the peer's peer
//! port (a `Replicate` connection of its own), the driver's inputs (events, disk verdicts).
//! Must not: write while this node does not admit, answer a write before the shipper releases
//! it, or share a connection with the keep-alives.
//!
//! # Layout
//! - `handle`: `Replication`, the handle every part shares; `start`: opening `data.db` and
//!   starting the tasks; `schema`: the node's own tables and migrations; `messages`: what the
//!   writer, the ship task and merge-back pass each other.
//! - `writer`: the one writer task; client writes are grouped so many share one commit (fsync).
//! - `ship`: on the active, the task that runs the log core's `Shipper` over a `Replicate` stream
//!   to the passive, on a connection of its own.
//! - `receive`: on the passive, the `Replicate` handler that runs the `Receiver` and applies
//!   batches; and the rewind of a diverged suffix into the orphans table.
//! - `merge`: on the active, re-applying the peer's orphans as new writes, with conflicts;
//!   `merge_plan`: the decision for each orphan, made inside the write that re-applies it.
//! - `prune`: on the active, forgetting request ids older than `request_retention`.
//! - `scheduled_verify`: on the active, `verify` every `verify_every`, recorded as an event.
//! - `data_service`: the gRPC `Data` service on the client port; `convert`: protobuf edges.
//!
//! # Rules
//! - A write is refused before it commits unless this node admits clients (it is the active and
//!   its lease is fresh), and while the shipper refuses writes (`sync_strict`).
//! - A committed write is answered only after the shipper releases it (sync: the peer's
//!   acknowledgement; async or degraded: at once). A write committed on a node that stops being
//!   active before its acknowledgement is answered UNAVAILABLE, "outcome unknown".

pub mod admin_ops;
pub mod convert;
pub mod data_service;
pub mod handle;
pub mod merge;
mod merge_plan;
pub mod messages;
mod prune;
pub mod receive;
mod scheduled_verify;
pub mod schema;
pub mod ship;
pub mod snapshot_send;
mod start;
pub mod writer;

pub use handle::{ReplError, Replication, client_limits, mode_name};
pub use schema::{CONFLICTS_TABLE, REQUESTS_TABLE, open_store};
