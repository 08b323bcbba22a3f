//! The merge plan: one transaction at a time, forgotten only once replicated, and a restart that
//! re-applies nothing twice.

use std::collections::BTreeSet;

use super::*;

fn transaction(txid: u64) -> OrphanTransaction {
    let name = json!({"id": format!("r{txid}")});
    OrphanTransaction {
        txid,
        changes: vec![orphan(
            "t",
            &format!("[\"r{txid}\"]"),
            Operation::Insert,
            Some(image(name)),
            txid,
            txid,
        )],
    }
}

fn transactions(txids: &[u64]) -> Vec<OrphanTransaction> {
    txids.iter().copied().map(transaction).collect()
}

fn next_txid(plan: &MergePlan) -> Option<u64> {
    plan.next().map(|transaction| transaction.txid)
}

#[test]
fn transactions_are_handed_out_in_log_order_and_leave_only_once_replicated() {
    let mut plan = MergePlan::new(transactions(&[4, 2, 9])).unwrap();
    assert_eq!(next_txid(&plan), Some(4));
    plan.applied(4).unwrap();
    assert_eq!(next_txid(&plan), Some(2));
    plan.applied(2).unwrap();
    plan.applied(9).unwrap();
    assert_eq!(next_txid(&plan), None);
    assert!(
        !plan.is_finished(),
        "applied is not yet back through replication"
    );
    assert_eq!(plan.awaiting_replication(), vec![4, 2, 9]);
    assert_eq!(plan.replicated(2), Ok(vec![4, 2]));
    assert_eq!(plan.awaiting_replication(), vec![9]);
    assert!(!plan.is_finished());
    assert_eq!(plan.replicated(9), Ok(vec![9]));
    assert!(plan.is_finished());
}

#[test]
fn repeated_reports_are_no_ops() {
    let mut plan = MergePlan::new(transactions(&[1, 2])).unwrap();
    plan.applied(1).unwrap();
    plan.applied(1).unwrap();
    assert_eq!(next_txid(&plan), Some(2));
    assert_eq!(plan.replicated(1), Ok(vec![1]));
    plan.applied(1).unwrap();
    assert_eq!(plan.replicated(1), Ok(vec![]));
    assert_eq!(next_txid(&plan), Some(2));
}

#[test]
fn reports_that_do_not_fit_are_refused_and_change_nothing() {
    let mut plan = MergePlan::new(transactions(&[1, 2, 3])).unwrap();
    let before = plan.clone();
    assert_eq!(
        plan.applied(2),
        Err(PlanError::NotNext {
            txid: 2,
            next: Some(1)
        })
    );
    assert_eq!(plan.replicated(1), Err(PlanError::NotApplied { txid: 1 }));
    assert_eq!(plan.replicated(8), Err(PlanError::UnknownTxid { txid: 8 }));
    assert_eq!(plan, before);
}

#[test]
fn a_plan_refuses_duplicate_txids_and_empty_transactions() {
    assert_eq!(
        MergePlan::new(transactions(&[1, 2, 1])),
        Err(PlanError::DuplicateTxid { txid: 1 })
    );
    let empty = OrphanTransaction {
        txid: 5,
        changes: vec![],
    };
    assert_eq!(
        MergePlan::new(vec![transaction(1), empty]),
        Err(PlanError::EmptyTransaction { txid: 5 })
    );
}

/// The driver's durable state, as a crash leaves it: the orphans table and the record of which
/// orphan txids the active applied (written in the same transaction as each re-applied write).
struct Durable {
    orphans: Vec<OrphanTransaction>,
    applied_on_active: Vec<u64>,
}

impl Durable {
    fn apply_next(&mut self, plan: &mut MergePlan) {
        let txid = next_txid(plan).expect("a transaction to apply");
        self.applied_on_active.push(txid);
        plan.applied(txid).unwrap();
    }

    fn replicated(&mut self, plan: &mut MergePlan, up_to_txid: u64) {
        let forget = plan.replicated(up_to_txid).unwrap();
        self.orphans
            .retain(|transaction| !forget.contains(&transaction.txid));
    }

    fn restart(&self) -> MergePlan {
        let applied: BTreeSet<u64> = self.applied_on_active.iter().copied().collect();
        MergePlan::resume(self.orphans.clone(), &applied).unwrap()
    }
}

#[test]
fn a_restart_mid_way_applies_nothing_twice_and_loses_no_orphan() {
    tracing::info!("--- apply 10 and 11, replicate 10, crash");
    let mut durable = Durable {
        orphans: transactions(&[10, 11, 12, 13]),
        applied_on_active: vec![],
    };
    let mut plan = MergePlan::new(durable.orphans.clone()).unwrap();
    durable.apply_next(&mut plan);
    durable.apply_next(&mut plan);
    durable.replicated(&mut plan, 10);
    assert_eq!(
        durable.orphans.iter().map(|t| t.txid).collect::<Vec<_>>(),
        vec![11, 12, 13]
    );

    tracing::info!("--- restart: 11 awaits replication, 12 is next");
    let mut plan = durable.restart();
    assert_eq!(plan.awaiting_replication(), vec![11]);
    assert_eq!(next_txid(&plan), Some(12));
    durable.apply_next(&mut plan);

    tracing::info!("--- crash again before any acknowledgement, then finish");
    let mut plan = durable.restart();
    assert_eq!(plan.awaiting_replication(), vec![11, 12]);
    durable.apply_next(&mut plan);
    assert_eq!(next_txid(&plan), None);
    durable.replicated(&mut plan, 13);
    assert!(plan.is_finished());
    assert_eq!(durable.applied_on_active, vec![10, 11, 12, 13]);
    assert_eq!(durable.orphans, vec![]);
}

#[test]
fn a_restart_whose_applied_txids_are_not_a_prefix_is_refused() {
    let applied: BTreeSet<u64> = [2].into_iter().collect();
    assert_eq!(
        MergePlan::resume(transactions(&[1, 2, 3]), &applied),
        Err(PlanError::AppliedOutOfOrder {
            txid: 2,
            earlier_txid: 1
        })
    );
    let forgotten: BTreeSet<u64> = [0, 1].into_iter().collect();
    let plan = MergePlan::resume(transactions(&[1, 2]), &forgotten).unwrap();
    assert_eq!(
        (plan.awaiting_replication(), next_txid(&plan)),
        (vec![1], Some(2))
    );
}
