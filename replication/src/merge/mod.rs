//! The sans-IO core of divergence and merge-back (DESIGN.md §4, "Divergence and merge-back").
//!
//! # Layout
//! - `divergence`: `DivergenceSearch`, bisecting the rolling hashes of two logs to their last
//!   common index, or `PastRetention` when that point is no longer in a log.
//! - `orphan`: `OrphanChange` and `OrphanTransaction`, the rejoining node's suffix, and `RowImage`.
//! - `policy`: `TablePolicy`: `ConflictPolicy` (`newest` or `keep_active`) and a table's
//!   `WeakerValue`.
//! - `decision`: `decide(orphan, active_row, policy) -> MergeDecision` for one row change.
//! - `conflict`: `ConflictRecord`, a row of the conflicts table, its `Side` and `ConflictReason`,
//!   including a re-applied change that broke a constraint.
//! - `plan`: `MergePlan`, re-applying orphans a transaction at a time, forgetting them only once
//!   replicated, and resuming after a crash without applying anything twice.
//!
//! It deliberately does no IO: no tokio, no sqlx, no clock. The driver reads hashes, orphans and
//! rows, passes them in, and carries out the decisions (moving the suffix to the durable orphans
//! table, rewinding or taking a snapshot, writing, recording conflicts). Images are parsed
//! `RowImage`s; stamps are the log's `Hlc`.

mod conflict;
mod decision;
mod divergence;
mod orphan;
mod plan;
mod policy;

#[cfg(test)]
mod tests;

pub use conflict::{ConflictReason, ConflictRecord, Side};
pub use decision::{ActiveRow, MergeDecision, RowWrite, decide};
pub use divergence::{
    DivergenceOutcome, DivergenceSearch, ProbeAnswer, SearchStep, UnexpectedAnswer,
};
pub use orphan::{OrphanChange, OrphanTransaction, RowImage};
pub use plan::{MergePlan, PlanError};
pub use policy::{ConflictPolicy, TablePolicy, WeakerValue};
