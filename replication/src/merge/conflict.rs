//! `ConflictRecord`: one row of the conflicts table (`tandemctl conflicts`), and why it lost.
//!
//! Nothing is silently dropped (DESIGN.md §4): every change that loses a merge, on either side,
//! and every re-applied change that breaks a constraint becomes one record with its losing image.

use crate::log::Hlc;

use super::orphan::{OrphanChange, RowImage};

/// Which node's change of a row survived the merge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The active's change (made after the divergence point) was kept.
    Active,
    /// The rejoining node's orphaned change was kept and re-applied over the active's.
    Rejoining,
}

/// Why a change lost.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ConflictReason {
    /// Policy `newest`: the kept change has the greater HLC stamp.
    Newer,
    /// Policy `keep_active`: the active's change is kept whatever the stamps.
    KeepActive,
    /// The losing image holds the table's weaker value (such as a CDR ended by `failover`) and the
    /// kept one does not: the weaker value loses whatever the stamps and the policy.
    Weaker,
    /// Re-applying the orphan broke a constraint (UNIQUE, foreign key, CHECK); the driver's
    /// message says which. The active keeps its state.
    ConstraintFailed { message: String },
}

impl ConflictReason {
    /// The text stored in the conflicts table's `reason` column.
    pub fn as_text(&self) -> String {
        match self {
            ConflictReason::Newer => "newer".to_string(),
            ConflictReason::KeepActive => "keep_active".to_string(),
            ConflictReason::Weaker => "weaker".to_string(),
            ConflictReason::ConstraintFailed { message } => {
                format!("constraint failed: {message}")
            }
        }
    }
}

/// One row of the conflicts table.
#[derive(Clone, Debug, PartialEq)]
pub struct ConflictRecord {
    /// The table of the row.
    pub table: String,
    /// The row's primary key, as the JSON text of the log entry.
    pub primary_key: String,
    /// Whose change survived.
    pub kept: Side,
    /// The image that lost: `None` when the losing change deleted the row.
    pub losing_image: Option<RowImage>,
    /// The stamp of the losing change.
    pub losing_hlc: Hlc,
    /// Why it lost.
    pub reason: ConflictReason,
}

impl ConflictRecord {
    /// The record for an orphan whose re-application the driver reports as breaking a
    /// constraint: the active keeps its state, the orphan's image is kept here, and the merge
    /// carries on with the next change.
    pub fn constraint_failed(orphan: &OrphanChange, message: impl Into<String>) -> ConflictRecord {
        ConflictRecord {
            table: orphan.table.clone(),
            primary_key: orphan.primary_key.clone(),
            kept: Side::Active,
            losing_image: orphan.new_image.clone(),
            losing_hlc: orphan.hlc.clone(),
            reason: ConflictReason::ConstraintFailed {
                message: message.into(),
            },
        }
    }
}
