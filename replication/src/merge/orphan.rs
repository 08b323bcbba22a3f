//! `OrphanChange` and `OrphanTransaction`: the rejoining node's changes after the common index.
//!
//! The driver reads them from the durable orphans table (DESIGN.md §4, divergence step 2) and
//! parses the images once; this module never sees JSON text or SQL.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::log::{Hlc, Operation};

/// A row as column name to value (BLOBs as base64 strings, as the capture triggers write them).
pub type RowImage = BTreeMap<String, Value>;

/// One orphaned row change.
#[derive(Clone, Debug, PartialEq)]
pub struct OrphanChange {
    /// Its index in the rejoining node's log: the order of re-application.
    pub index: u64,
    /// The replicated table of the row.
    pub table: String,
    /// The row's primary key as the JSON text of the log entry: names the row in conflicts.
    pub primary_key: String,
    /// What the change did on the rejoining node.
    pub operation: Operation,
    /// The row after the change; `None` for a delete.
    pub new_image: Option<RowImage>,
    /// The row before the change; `None` for an insert. Used to rewind, not to merge.
    pub old_image: Option<RowImage>,
    /// When the change happened: compared with the active's change under `newest`.
    pub hlc: Hlc,
    /// The node whose client made the change.
    pub origin: String,
    /// The rejoining node's transaction: orphans are re-applied one transaction at a time.
    pub txid: u64,
}

/// The orphans of one transaction of the rejoining node, in log order.
#[derive(Clone, Debug, PartialEq)]
pub struct OrphanTransaction {
    /// The rejoining node's transaction id; the plan's unit of idempotence.
    pub txid: u64,
    /// Its row changes in log order; never empty.
    pub changes: Vec<OrphanChange>,
}
