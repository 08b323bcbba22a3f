//! tandem-replication: the replicated database of a pair (DESIGN.md §4).
//!
//! # Layout
//! - `store`: `data.db` (SQLite through sqlx): pragmas, migrations, change-capture triggers, the
//!   replication log table, and applying a peer's changes without capturing them again.
//! - `log`: the sans-IO core of the replication log: positions, rolling hash, hybrid logical
//!   clock, retention, acknowledgements and the sync/async decisions.
//!
//! Not yet here (DESIGN.md §4, later work): shipping over the peer link, catch-up and snapshots,
//! divergence and merge-back, the Data API. `tandemd` does not use this crate yet.

pub mod log;
pub mod store;
