//! `decide`: what the active does with one orphaned row change.
//!
//! Rules (DESIGN.md §4; where it is silent, the choice is written here):
//! 1. The active did not change the row after the divergence point: apply the orphan as a new
//!    write (`Upsert` of its new image, or `Delete`). No conflict.
//! 2. The active changed it, and the orphan would leave the row exactly as the active has it
//!    (both deleted it, or both wrote the same image): nothing to write, no conflict.
//! 3. Otherwise it is a conflict, settled in this order:
//!    - the table's weaker value: if exactly one of the two resulting images is weaker, the other
//!      is kept, under either policy (`Weaker`);
//!    - `keep_active`: the active is kept (`KeepActive`);
//!    - `newest`: the greater `Hlc` is kept (`Newer`). `Hlc`'s order ends with the issuing node's
//!      name, so stamps of two nodes never tie; equal stamps would mean one node issued the same
//!      stamp twice, and the active is kept.
//!
//! The losing image always goes to a `ConflictRecord`, whichever side lost.

use crate::log::{Hlc, Operation};

use super::conflict::{ConflictReason, ConflictRecord, Side};
use super::orphan::{OrphanChange, RowImage};
use super::policy::{ConflictPolicy, TablePolicy};

/// The active's side of one row, as the driver reads it before re-applying an orphan.
#[derive(Clone, Debug, PartialEq)]
pub struct ActiveRow {
    /// The row as it is now on the active; `None` if absent.
    pub image: Option<RowImage>,
    /// The stamp of the active's last change of the row after the divergence point; `None` if
    /// the active has not touched it since, *or if that last change was a re-applied orphan*:
    /// the orphans are one node's history in log order, so a later orphan of the same row simply
    /// follows an earlier one that was kept (otherwise the merge would conflict with itself).
    pub changed_after_divergence: Option<Hlc>,
}

/// The write that re-applies an orphan, by primary key.
#[derive(Clone, Debug, PartialEq)]
pub enum RowWrite {
    /// Insert the row, or replace it if the key exists.
    Upsert { image: RowImage },
    /// Delete the row if it exists.
    Delete,
}

/// What to do with one orphaned change.
#[derive(Clone, Debug, PartialEq)]
pub enum MergeDecision {
    /// No conflict: write it.
    Apply { write: RowWrite },
    /// The active already holds what the orphan would write: nothing to do.
    AlreadyThere,
    /// Both sides changed the row: write `write` if the rejoining side was kept (`None` when the
    /// active was kept), and store `record`.
    Conflict {
        kept: Side,
        write: Option<RowWrite>,
        record: ConflictRecord,
    },
}

/// Decides for one orphaned change under its table's policy.
///
/// Panics if an insert or update has no new image: the capture triggers always write one, so
/// such an orphan is a corrupt orphans table, and guessing would drop a change silently.
pub fn decide(orphan: &OrphanChange, active: &ActiveRow, policy: &TablePolicy) -> MergeDecision {
    let write = orphan_write(orphan);
    let Some(active_hlc) = &active.changed_after_divergence else {
        return MergeDecision::Apply { write };
    };
    if orphan.new_image == active.image {
        return MergeDecision::AlreadyThere;
    }
    let (kept, reason) = settle(orphan, active, active_hlc, policy);
    match kept {
        Side::Active => MergeDecision::Conflict {
            kept,
            write: None,
            record: record(orphan, kept, orphan.new_image.clone(), &orphan.hlc, reason),
        },
        Side::Rejoining => MergeDecision::Conflict {
            kept,
            write: Some(write),
            record: record(orphan, kept, active.image.clone(), active_hlc, reason),
        },
    }
}

/// The write that carries the orphan's effect.
fn orphan_write(orphan: &OrphanChange) -> RowWrite {
    match (orphan.operation, &orphan.new_image) {
        (Operation::Delete, _) => RowWrite::Delete,
        (Operation::Insert | Operation::Update, Some(image)) => RowWrite::Upsert {
            image: image.clone(),
        },
        (operation, None) => panic!(
            "orphan at index {} is an {operation:?} without a new image",
            orphan.index
        ),
    }
}

/// Which side is kept, and why.
fn settle(
    orphan: &OrphanChange,
    active: &ActiveRow,
    active_hlc: &Hlc,
    policy: &TablePolicy,
) -> (Side, ConflictReason) {
    if let Some(weaker) = &policy.weaker {
        let orphan_weaker = weaker.is_weaker(orphan.new_image.as_ref());
        let active_weaker = weaker.is_weaker(active.image.as_ref());
        match (orphan_weaker, active_weaker) {
            (true, false) => return (Side::Active, ConflictReason::Weaker),
            (false, true) => return (Side::Rejoining, ConflictReason::Weaker),
            _ => {}
        }
    }
    match policy.conflict {
        ConflictPolicy::KeepActive => (Side::Active, ConflictReason::KeepActive),
        ConflictPolicy::Newest if orphan.hlc > *active_hlc => {
            (Side::Rejoining, ConflictReason::Newer)
        }
        ConflictPolicy::Newest => (Side::Active, ConflictReason::Newer),
    }
}

fn record(
    orphan: &OrphanChange,
    kept: Side,
    losing_image: Option<RowImage>,
    losing_hlc: &Hlc,
    reason: ConflictReason,
) -> ConflictRecord {
    ConflictRecord {
        table: orphan.table.clone(),
        primary_key: orphan.primary_key.clone(),
        kept,
        losing_image,
        losing_hlc: losing_hlc.clone(),
        reason,
    }
}
