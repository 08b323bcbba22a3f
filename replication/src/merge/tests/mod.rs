//! Unit tests of the merge-back core: exact probes and outcomes of the divergence search, exact
//! decisions and conflict records per policy, and the plan's exact txids through a crash.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;
use crate::log::{Hlc, Operation};

mod decision;
mod divergence;
mod plan;

/// An image from a JSON object literal.
pub(super) fn image(value: Value) -> RowImage {
    match value {
        Value::Object(map) => map.into_iter().collect::<BTreeMap<_, _>>(),
        other => panic!("not an object: {other}"),
    }
}

/// An orphaned change of row `primary_key` in `table`, stamped `(ms, 0, "b")` (b is the
/// rejoining node), in transaction `txid`.
pub(super) fn orphan(
    table: &str,
    primary_key: &str,
    operation: Operation,
    new_image: Option<RowImage>,
    ms: u64,
    txid: u64,
) -> OrphanChange {
    OrphanChange {
        index: txid,
        table: table.to_string(),
        primary_key: primary_key.to_string(),
        operation,
        new_image,
        old_image: None,
        hlc: Hlc::new(ms, 0, "b"),
        origin: "b".to_string(),
        txid,
    }
}
