//! `LogEntry`: one captured row change, as kept in `_tandem_log` and shipped to the peer.
//!
//! It is a plain domain struct: the log core reasons about its positions and stamps, the
//! shipping code converts it to protobuf at the gRPC edge. Images stay JSON text (see `image`)
//! so that both nodes store, hash and compare exactly the same bytes; `new_values` and friends
//! decode them when a caller needs typed values. Not here: how entries are read or applied
//! (`log_table`, `apply`).

use super::error::StoreError;
use super::image::decode_image;
use super::value::SqlValue;

/// What a change did to its row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChangeOp {
    Insert,
    Update,
    Delete,
}

impl ChangeOp {
    /// The name stored in `_tandem_log.op`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeOp::Insert => "insert",
            ChangeOp::Update => "update",
            ChangeOp::Delete => "delete",
        }
    }

    pub fn parse(text: &str) -> Option<ChangeOp> {
        match text {
            "insert" => Some(ChangeOp::Insert),
            "update" => Some(ChangeOp::Update),
            "delete" => Some(ChangeOp::Delete),
            _ => None,
        }
    }
}

/// One row change. Both nodes hold identical entries at the same `idx`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// Position in the log; consecutive, so a gap means a lost entry.
    pub idx: u64,
    /// The term (DESIGN.md §3) of the node that wrote it: fencing refuses older terms.
    pub term_epoch: u64,
    pub term_node: String,
    /// Groups the entries of one client transaction, for merge-back one transaction at a time.
    pub txid: u64,
    pub table: String,
    /// JSON object of the primary-key columns, before the change (after it, for an insert).
    pub pk: String,
    pub op: ChangeOp,
    /// The row after the change (insert, update); `None` for a delete.
    pub new_image: Option<String>,
    /// The row before the change (update, delete), for rewinding an orphaned suffix.
    pub old_image: Option<String>,
    /// Hybrid logical clock stamp, for "newest wins" between the two sides of a split.
    pub hlc_ms: u64,
    pub hlc_logical: u32,
    pub hlc_node: String,
    /// The node where the client wrote it.
    pub origin: String,
    /// Rolling hash of the log up to and including this entry: two nodes agree on a prefix
    /// exactly when they agree on its last hash.
    pub hash: u64,
}

impl LogEntry {
    pub fn pk_values(&self) -> Result<Vec<(String, SqlValue)>, StoreError> {
        self.decode(&self.pk)
    }

    /// The decoded new image; an empty list when there is none.
    pub fn new_values(&self) -> Result<Vec<(String, SqlValue)>, StoreError> {
        self.new_image
            .as_deref()
            .map_or(Ok(Vec::new()), |json| self.decode(json))
    }

    /// The decoded old image; an empty list when there is none.
    pub fn old_values(&self) -> Result<Vec<(String, SqlValue)>, StoreError> {
        self.old_image
            .as_deref()
            .map_or(Ok(Vec::new()), |json| self.decode(json))
    }

    fn decode(&self, json: &str) -> Result<Vec<(String, SqlValue)>, StoreError> {
        decode_image(json).map_err(|reason| StoreError::BadEntry {
            idx: self.idx,
            reason,
        })
    }

    /// A rough size for batching by bytes (`read_log`'s `max_bytes`).
    pub fn approx_size_bytes(&self) -> usize {
        let images = self.new_image.as_ref().map_or(0, String::len)
            + self.old_image.as_ref().map_or(0, String::len);
        64 + self.term_node.len()
            + self.table.len()
            + self.pk.len()
            + images
            + self.hlc_node.len()
            + self.origin.len()
    }
}

/// Computes an entry's rolling hash from the previous entry's hash (0 before the first entry).
/// It must not read `entry.hash`. Both nodes must use the same function.
pub type RollingHash = fn(previous_hash: u64, entry: &LogEntry) -> u64;
