//! File replication (DESIGN.md §7): the parts that need no network.
//!
//! - `path`: what a peer may name inside a replicated directory, and resolving it on disk
//!   without following a symlink out of the directory.
//! - `scan`: a directory's files by content (SHA-256), with include/exclude globs.
//! - `plan`: the three-way comparison of two manifests: what to copy, delete or keep as a
//!   conflict copy.
//! - `manifest`: the manifests in `files.db`.
//! - `transfer`: sending a file in checksummed chunks and receiving it into a temp file that is
//!   fsync'd and renamed into place.
//!
//! Not here: the watcher, the sync loop and the gRPC service (`tandem-node`'s `files` module).

/// The permission bits replicated and compared: read, write and execute for user, group and
/// others. Set-user-ID, set-group-ID and sticky bits are neither sent nor set, so a peer can
/// never plant a privileged executable on this node.
pub const MODE_BITS: u32 = 0o777;

pub mod manifest;
pub mod path;
pub mod plan;
pub mod scan;
pub mod transfer;
