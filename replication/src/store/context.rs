//! `CaptureContext`: what the capture triggers stamp on every entry of one write transaction.
//!
//! The store does not choose terms, transaction ids or clock stamps: the log core does, and
//! passes them in for each write (`Store::write`, `WriteGroup::begin_write`). The store copies
//! them into the one-row table `_tandem_capture_ctx` at the start of the write; each trigger
//! copies that row into the log entries it appends, and the row is cleared again when the write
//! is finished. Not a clock and not a term authority.

/// The stamp of one write transaction. All its entries share it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureContext {
    /// The writer's current term; the peer refuses entries from a term older than it has seen.
    pub term_epoch: u64,
    pub term_node: String,
    /// Identifies the transaction, so its entries can later be re-applied together.
    pub txid: u64,
    /// The hybrid logical clock stamp of the transaction (DESIGN.md §4).
    pub hlc_ms: u64,
    pub hlc_logical: u32,
    pub hlc_node: String,
    /// The node where the client wrote; stays the same when the entry is shipped on.
    pub origin: String,
}
