//! Merge decisions: untouched rows, `newest`, `keep_active`, the weaker value (a cdrs-like table),
//! agreeing changes, and constraint failures.

use super::*;

fn untouched(image: Option<RowImage>) -> ActiveRow {
    ActiveRow {
        image,
        changed_after_divergence: None,
    }
}

/// The active ("a") changed the row after the divergence point at `(ms, 0, "a")`.
fn changed(image: Option<RowImage>, ms: u64) -> ActiveRow {
    ActiveRow {
        image,
        changed_after_divergence: Some(Hlc::new(ms, 0, "a")),
    }
}

fn newest() -> TablePolicy {
    TablePolicy::default()
}

fn user(name: &str) -> RowImage {
    image(json!({"id": "u1", "name": name}))
}

fn update(name: &str, ms: u64) -> OrphanChange {
    orphan(
        "users",
        r#"["u1"]"#,
        Operation::Update,
        Some(user(name)),
        ms,
        7,
    )
}

fn record(
    kept: Side,
    losing_image: Option<RowImage>,
    losing_hlc: Hlc,
    reason: ConflictReason,
) -> ConflictRecord {
    ConflictRecord {
        table: "users".to_string(),
        primary_key: r#"["u1"]"#.to_string(),
        kept,
        losing_image,
        losing_hlc,
        reason,
    }
}

#[test]
fn a_row_the_active_did_not_touch_takes_the_orphan_as_a_new_write() {
    let insert = orphan(
        "users",
        r#"["u1"]"#,
        Operation::Insert,
        Some(user("b")),
        5,
        7,
    );
    assert_eq!(
        decide(&insert, &untouched(None), &newest()),
        MergeDecision::Apply {
            write: RowWrite::Upsert { image: user("b") }
        }
    );
    assert_eq!(
        decide(&update("b", 5), &untouched(Some(user("old"))), &newest()),
        MergeDecision::Apply {
            write: RowWrite::Upsert { image: user("b") }
        }
    );
    let delete = orphan("users", r#"["u1"]"#, Operation::Delete, None, 5, 7);
    assert_eq!(
        decide(
            &delete,
            &untouched(Some(user("old"))),
            &TablePolicy::new(ConflictPolicy::KeepActive)
        ),
        MergeDecision::Apply {
            write: RowWrite::Delete
        }
    );
}

#[test]
fn newest_keeps_a_newer_orphan_and_records_the_active_image() {
    assert_eq!(
        decide(&update("b", 20), &changed(Some(user("a")), 10), &newest()),
        MergeDecision::Conflict {
            kept: Side::Rejoining,
            write: Some(RowWrite::Upsert { image: user("b") }),
            record: record(
                Side::Rejoining,
                Some(user("a")),
                Hlc::new(10, 0, "a"),
                ConflictReason::Newer
            ),
        }
    );
}

#[test]
fn newest_keeps_a_newer_active_change_and_records_the_orphan_image() {
    assert_eq!(
        decide(&update("b", 10), &changed(Some(user("a")), 20), &newest()),
        MergeDecision::Conflict {
            kept: Side::Active,
            write: None,
            record: record(
                Side::Active,
                Some(user("b")),
                Hlc::new(10, 0, "b"),
                ConflictReason::Newer
            ),
        }
    );
}

#[test]
fn equal_milliseconds_and_logical_counts_are_settled_by_the_stamping_node_name() {
    // "b" > "a" in `Hlc`'s order: the rejoining node's stamp wins a tie of ms and logical.
    let decision = decide(&update("b", 10), &changed(Some(user("a")), 10), &newest());
    let MergeDecision::Conflict { kept, .. } = decision else {
        panic!("{decision:?}")
    };
    assert_eq!(kept, Side::Rejoining);
}

#[test]
fn a_deleting_orphan_that_loses_is_recorded_with_no_image() {
    let delete = orphan("users", r#"["u1"]"#, Operation::Delete, None, 10, 7);
    assert_eq!(
        decide(&delete, &changed(Some(user("a")), 20), &newest()),
        MergeDecision::Conflict {
            kept: Side::Active,
            write: None,
            record: record(
                Side::Active,
                None,
                Hlc::new(10, 0, "b"),
                ConflictReason::Newer
            ),
        }
    );
}

#[test]
fn a_newer_orphan_over_a_row_the_active_deleted_is_recorded_with_no_image() {
    assert_eq!(
        decide(&update("b", 30), &changed(None, 20), &newest()),
        MergeDecision::Conflict {
            kept: Side::Rejoining,
            write: Some(RowWrite::Upsert { image: user("b") }),
            record: record(
                Side::Rejoining,
                None,
                Hlc::new(20, 0, "a"),
                ConflictReason::Newer
            ),
        }
    );
}

#[test]
fn keep_active_keeps_the_active_even_when_the_orphan_is_newer() {
    let policy = TablePolicy::new(ConflictPolicy::KeepActive);
    assert_eq!(
        decide(&update("b", 99), &changed(Some(user("a")), 10), &policy),
        MergeDecision::Conflict {
            kept: Side::Active,
            write: None,
            record: record(
                Side::Active,
                Some(user("b")),
                Hlc::new(99, 0, "b"),
                ConflictReason::KeepActive
            ),
        }
    );
}

#[test]
fn changes_that_agree_are_no_conflict() {
    assert_eq!(
        decide(
            &update("same", 10),
            &changed(Some(user("same")), 20),
            &newest()
        ),
        MergeDecision::AlreadyThere
    );
    let delete = orphan("users", r#"["u1"]"#, Operation::Delete, None, 10, 7);
    assert_eq!(
        decide(&delete, &changed(None, 20), &newest()),
        MergeDecision::AlreadyThere
    );
}

/// A cdrs-like table: a call the new active closed because of the failover is weaker than the
/// real end the old active recorded.
fn cdrs(conflict: ConflictPolicy) -> TablePolicy {
    TablePolicy::new(conflict).with_weaker(WeakerValue::column_equals("cause", json!("failover")))
}

fn cdr(cause: &str, ended_ms: u64) -> RowImage {
    image(json!({"call_id": "c1", "cause": cause, "ended_ms": ended_ms}))
}

fn cdr_orphan(cause: &str, ms: u64) -> OrphanChange {
    orphan(
        "cdrs",
        r#"["c1"]"#,
        Operation::Insert,
        Some(cdr(cause, ms)),
        ms,
        3,
    )
}

fn cdr_record(kept: Side, losing_image: RowImage, losing_hlc: Hlc) -> ConflictRecord {
    ConflictRecord {
        table: "cdrs".to_string(),
        primary_key: r#"["c1"]"#.to_string(),
        kept,
        losing_image: Some(losing_image),
        losing_hlc,
        reason: ConflictReason::Weaker,
    }
}

#[test]
fn a_real_call_end_beats_a_later_failover_end_under_both_policies() {
    for policy in [ConflictPolicy::Newest, ConflictPolicy::KeepActive] {
        let active = changed(Some(cdr("failover", 50)), 50);
        assert_eq!(
            decide(&cdr_orphan("normal", 40), &active, &cdrs(policy)),
            MergeDecision::Conflict {
                kept: Side::Rejoining,
                write: Some(RowWrite::Upsert {
                    image: cdr("normal", 40)
                }),
                record: cdr_record(Side::Rejoining, cdr("failover", 50), Hlc::new(50, 0, "a")),
            },
            "{policy:?}"
        );
    }
}

#[test]
fn a_failover_end_orphan_loses_to_a_real_end_on_the_active_whatever_its_stamp() {
    let active = changed(Some(cdr("busy", 40)), 40);
    assert_eq!(
        decide(
            &cdr_orphan("failover", 90),
            &active,
            &cdrs(ConflictPolicy::Newest)
        ),
        MergeDecision::Conflict {
            kept: Side::Active,
            write: None,
            record: cdr_record(Side::Active, cdr("failover", 90), Hlc::new(90, 0, "b")),
        }
    );
}

#[test]
fn two_weaker_or_two_real_ends_fall_back_to_the_policy() {
    let active = changed(Some(cdr("failover", 40)), 40);
    let decision = decide(
        &cdr_orphan("failover", 90),
        &active,
        &cdrs(ConflictPolicy::Newest),
    );
    let MergeDecision::Conflict { kept, record, .. } = decision else {
        panic!("{decision:?}")
    };
    assert_eq!(
        (kept, record.reason),
        (Side::Rejoining, ConflictReason::Newer)
    );
    let active = changed(Some(cdr("busy", 40)), 40);
    let decision = decide(
        &cdr_orphan("normal", 90),
        &active,
        &cdrs(ConflictPolicy::KeepActive),
    );
    let MergeDecision::Conflict { kept, record, .. } = decision else {
        panic!("{decision:?}")
    };
    assert_eq!(
        (kept, record.reason),
        (Side::Active, ConflictReason::KeepActive)
    );
}

#[test]
fn a_weaker_value_can_be_any_predicate_and_a_deleted_row_is_never_weaker() {
    let provisional = WeakerValue::new("status starts with 'provisional'", |image| {
        image
            .get("status")
            .and_then(Value::as_str)
            .is_some_and(|status| status.starts_with("provisional"))
    });
    assert!(provisional.is_weaker(Some(&image(json!({"status": "provisional-2"})))));
    assert!(!provisional.is_weaker(Some(&image(json!({"status": "final"})))));
    assert!(!provisional.is_weaker(None));
    assert_eq!(
        format!(
            "{:?}",
            WeakerValue::column_equals("cause", json!("failover"))
        ),
        r#"WeakerValue(cause = "failover")"#
    );
}

#[test]
fn a_change_that_breaks_a_constraint_is_recorded_and_the_active_kept() {
    let insert = orphan(
        "users",
        r#"["u1"]"#,
        Operation::Insert,
        Some(user("b")),
        10,
        7,
    );
    let record = ConflictRecord::constraint_failed(&insert, "UNIQUE constraint failed: users.name");
    assert_eq!(
        record,
        ConflictRecord {
            table: "users".to_string(),
            primary_key: r#"["u1"]"#.to_string(),
            kept: Side::Active,
            losing_image: Some(user("b")),
            losing_hlc: Hlc::new(10, 0, "b"),
            reason: ConflictReason::ConstraintFailed {
                message: "UNIQUE constraint failed: users.name".to_string()
            },
        }
    );
    assert_eq!(
        record.reason.as_text(),
        "constraint failed: UNIQUE constraint failed: users.name"
    );
    assert_eq!(ConflictReason::Weaker.as_text(), "weaker");
}
