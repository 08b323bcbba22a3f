//! The ship task: on the active, the log core's `Shipper` over a `Replicate` stream.
//!
//! The task idles while this node is not active. When it becomes active in a term it starts a
//! session: a `Shipper` seeded from the log's transactions, and a connector that dials the peer's
//! peer port on a connection of its own (never the keep-alive one), opens `Replicate`, and
//! forwards the replies here. The task runs the shipper's commands in order: read and send
//! batches, answer waiting writes, degrade (the peer is told it is `outdated`), refuse writes,
//! truncate, and on a halt for divergence run the divergence search and tell the peer to rewind.
//! When the node stops being active, every write still waiting is answered "outcome unknown".
//!
//! May touch: the peer's peer port (a connection of its own), `data.db` through the store's
//! reader, the writer's waiting writes. Must not: write `data.db` (the writer does) or block the
//! keep-alives (never their connection).
//!
//! # Layout
//! - `task`: the task, idle until the node is active; `session`: one term's shipping, its
//!   inputs and the peer's replies; `commands`: the shipper's commands; `divergence`: the search
//!   for the last common index and the rewind; `stream`: the `Replicate` connection;
//!   `recent`: the newest entries kept for shipping without reading them back; `ack_gate`:
//!   witness mode's hold on the acknowledgements of writes committed alone.

mod ack_gate;
mod commands;
mod divergence;
mod recent;
mod session;
mod stream;
mod task;
#[cfg(test)]
mod tests;

pub use task::run;
