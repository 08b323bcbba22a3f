//! `MergePlan`: re-applies the orphans one transaction at a time and forgets each only once it is
//! back through replication (DESIGN.md §4, divergence step 4).
//!
//! A transaction moves through three places:
//! 1. `to_apply`: waiting its turn, in log order. `next` hands out the head; the driver decides
//!    each change (`decide`), writes the result as one new transaction, and reports `applied`.
//! 2. `awaiting_replication`: written on the active, not yet acknowledged by the peer. If the
//!    active crashed now, the orphan must still be somewhere durable, so it stays.
//! 3. forgotten: the driver reports `replicated { up_to_txid }` (the peer acknowledged the active's
//!    index of that transaction); the plan returns the txids to delete from the orphans table.
//!
//! Crash safety is the driver's: the orphans table is durable, and the driver records, in the same
//! transaction as each re-applied write, which orphan txid it applied. After a restart,
//! `MergePlan::resume` takes the orphans still in the table and the txids already applied; those
//! are never handed out again, so nothing is applied twice (idempotent by txid).
//!
//! Bound: the plan holds every orphan in memory. The orphans are a suffix of the rejoining node's
//! log, which retention bounds (`log::RETENTION_ENTRIES_LIMIT`); a longer suffix is past retention
//! and never reaches a plan.

use std::collections::{BTreeSet, VecDeque};

use super::orphan::OrphanTransaction;

/// A call that does not fit the plan's state: a bug in the driver or in its durable records. The
/// plan is unchanged; the driver stops the merge and raises an alert rather than guess.
#[derive(Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum PlanError {
    #[error("orphan transaction {txid} appears twice")]
    DuplicateTxid { txid: u64 },
    #[error("orphan transaction {txid} has no changes")]
    EmptyTransaction { txid: u64 },
    #[error("orphan transaction {txid} was applied but an earlier one, {earlier_txid}, was not")]
    AppliedOutOfOrder { txid: u64, earlier_txid: u64 },
    #[error("orphan transaction {txid} reported applied but the next to apply is {next:?}")]
    NotNext { txid: u64, next: Option<u64> },
    #[error("orphan transaction {txid} reported replicated before it was applied")]
    NotApplied { txid: u64 },
    #[error("orphan transaction {txid} is not in the plan")]
    UnknownTxid { txid: u64 },
}

/// The merge-back in progress.
#[derive(Clone, Debug, PartialEq)]
pub struct MergePlan {
    /// Transactions not yet applied, in log order; the head is the next.
    to_apply: VecDeque<OrphanTransaction>,
    /// Txids applied on the active and not yet acknowledged by the peer, in the order applied.
    awaiting_replication: VecDeque<u64>,
    /// Txids already replicated and forgotten: a repeated `replicated` for them is a no-op.
    forgotten: BTreeSet<u64>,
}

impl MergePlan {
    /// A plan over the orphans of a fresh merge, grouped by txid, in log order.
    pub fn new(transactions: Vec<OrphanTransaction>) -> Result<MergePlan, PlanError> {
        MergePlan::resume(transactions, &BTreeSet::new())
    }

    /// A plan over the orphans still in the durable table after a restart. `already_applied` are
    /// the txids the active has a record of applying; they must be a prefix of `remaining`
    /// (orphans are applied in order). Txids in it that are not in `remaining` were already
    /// forgotten and are ignored.
    pub fn resume(
        remaining: Vec<OrphanTransaction>,
        already_applied: &BTreeSet<u64>,
    ) -> Result<MergePlan, PlanError> {
        check_transactions(&remaining)?;
        let mut plan = MergePlan {
            to_apply: VecDeque::from(remaining),
            awaiting_replication: VecDeque::new(),
            forgotten: BTreeSet::new(),
        };
        while let Some(head) = plan.to_apply.front()
            && already_applied.contains(&head.txid)
        {
            plan.awaiting_replication.push_back(head.txid);
            plan.to_apply.pop_front();
        }
        if let Some(txid) = plan
            .to_apply
            .iter()
            .map(|transaction| transaction.txid)
            .find(|txid| already_applied.contains(txid))
        {
            let earlier_txid = plan.to_apply[0].txid;
            return Err(PlanError::AppliedOutOfOrder { txid, earlier_txid });
        }
        Ok(plan)
    }

    /// The next transaction to apply, or `None` once every one is applied.
    pub fn next(&self) -> Option<&OrphanTransaction> {
        self.to_apply.front()
    }

    /// The driver committed `txid` on the active. Reporting it again is a no-op.
    pub fn applied(&mut self, txid: u64) -> Result<(), PlanError> {
        if self.awaiting_replication.contains(&txid) || self.forgotten.contains(&txid) {
            return Ok(());
        }
        let next = self.next().map(|transaction| transaction.txid);
        if next != Some(txid) {
            return Err(PlanError::NotNext { txid, next });
        }
        self.to_apply.pop_front();
        self.awaiting_replication.push_back(txid);
        Ok(())
    }

    /// The peer acknowledged the active's writes up to and including those of `up_to_txid`.
    /// Returns the txids to delete from the orphans table, in order (none if already forgotten).
    pub fn replicated(&mut self, up_to_txid: u64) -> Result<Vec<u64>, PlanError> {
        if self.forgotten.contains(&up_to_txid) {
            return Ok(vec![]);
        }
        let Some(position) = self
            .awaiting_replication
            .iter()
            .position(|txid| *txid == up_to_txid)
        else {
            return Err(match self.to_apply.iter().any(|t| t.txid == up_to_txid) {
                true => PlanError::NotApplied { txid: up_to_txid },
                false => PlanError::UnknownTxid { txid: up_to_txid },
            });
        };
        let done: Vec<u64> = self.awaiting_replication.drain(..=position).collect();
        self.forgotten.extend(done.iter().copied());
        Ok(done)
    }

    /// Txids applied and not yet replicated, in order.
    pub fn awaiting_replication(&self) -> Vec<u64> {
        self.awaiting_replication.iter().copied().collect()
    }

    /// Transactions not yet applied.
    pub fn to_apply_count(&self) -> usize {
        self.to_apply.len()
    }

    /// Every orphan is applied and back through replication: the merge is over.
    pub fn is_finished(&self) -> bool {
        self.to_apply.is_empty() && self.awaiting_replication.is_empty()
    }
}

/// Txids are unique and no transaction is empty.
fn check_transactions(transactions: &[OrphanTransaction]) -> Result<(), PlanError> {
    let mut seen = BTreeSet::new();
    for transaction in transactions {
        let txid = transaction.txid;
        if !seen.insert(txid) {
            return Err(PlanError::DuplicateTxid { txid });
        }
        if transaction.changes.is_empty() {
            return Err(PlanError::EmptyTransaction { txid });
        }
    }
    Ok(())
}
