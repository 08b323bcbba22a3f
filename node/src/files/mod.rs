//! File replication (DESIGN.md §7): the sync loop on the active, the peer's `Files` service, and
//! the watcher that wakes the loop.
//!
//! Each `[[files]]` entry has one task. While this node is active and the link is `ok`, a cycle
//! scans the directory into the manifest (`files.db`), asks the peer for its manifest (the peer
//! scans too), runs the three-way plan (`tandem_replication::files::plan`) and carries it out:
//! pushes, pulls, deletions, conflict copies and settling. A cycle runs when the inotify watcher
//! sees a change (after a short debounce), every `scan_interval`, after the link comes back, on
//! `tandemctl resync --files`, and when a switchover asks for one (it waits for the files).
//! A file modified less than [`SETTLE`](watcher::SETTLE) ago is left for a later cycle, and the sender gives up a
//! file that changes while it is read, so a file still being written is not shipped half done.
//!
//! Transfers use a gRPC channel of their own to the peer's port (never the keep-alives'
//! connection), are read and written on blocking threads, and respect the entry's bandwidth.
//! The peer's service refuses a path that escapes the directory, and refuses to be written to
//! while it is itself the active.
//!
//! # Layout
//! - `handle`: [`FileSync`], the running replication and its shared state: start-up, status,
//!   the cycles a switchover or resync asks for; [`NodeLink`], all it sees of the rest of the
//!   node (the status and a way to record events), so it imports nothing of the driver.
//! - `watcher`: the inotify watcher that wakes an entry's task, the settle time and debounce.
//! - `cycle`: an entry's task and its sync cycle (scan both sides, plan, carry out, settle);
//!   `actions`: one action of the plan carried out against the peer.
//! - `peer_service`: [`FilesService`], the `Files` gRPC service the active calls on this node;
//!   `locks`: the bounded wait of its requests for an entry this node's own cycle holds.
//! - `chunks`: one file over a stream (header, checksummed chunks, trailer), sent and received.
//! - `manifest`: scanning into `files.db`, storing rows, and its rows' protobuf edge.
//! - `error`: [`FilesError`], why replication cannot start.
//!
//! May touch: the directories of the `[[files]]` entries (and only inside them), the manifest
//! `files.db`, and the network to the peer's port on a channel of its own. Must not: decide
//! anything about roles (it reads the node's status and only records events through its `NodeLink`),
//! run a cycle unless this node is the active and the link is `ok`, take a write from the peer
//! while this node is the active, or follow a path out of an entry's directory.

mod actions;
mod chunks;
mod cycle;
mod error;
mod handle;
mod locks;
mod manifest;
mod peer_service;
#[cfg(test)]
mod tests;
mod watcher;

pub use error::FilesError;
pub use handle::{FileSync, NodeLink, RecordEvent};
pub use peer_service::FilesService;
