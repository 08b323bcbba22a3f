//! The authorizer's decisions, and its raw callback under odd arguments.

use std::ffi::{CStr, CString};

use libsqlite3_sys as ffi;

use crate::data_api::Mode;
use crate::data_api::authorizer::{
    ProtectedTables, decide, decide_tables, test_access::call_authorize,
};

#[test]
fn capture_triggers_may_write_internal_tables_and_nothing_else_may() {
    let insert = |table, trigger| {
        decide(
            Mode::Execute,
            ffi::SQLITE_INSERT,
            Some(table),
            None,
            trigger,
        )
    };
    assert!(insert("_tandem_log", Some("_tandem_capture_insert_t")).is_ok());
    assert!(insert("_tandem_log", Some("app_trigger")).is_err());
    assert!(insert("_tandem_log", None).is_err());
    assert!(insert("_Tandem_Log", None).is_err());
    assert!(insert("tandemlog", None).is_ok());
    assert!(insert("_tande", None).is_ok());
    // Query allows no writes at all, not even from a tandem trigger.
    assert!(
        decide(
            Mode::Query,
            ffi::SQLITE_INSERT,
            Some("_tandem_log"),
            None,
            Some("_tandem_x")
        )
        .is_err()
    );
}

#[test]
fn only_the_node_writes_its_tandem_tables_and_anyone_may_read_them() {
    let write = |mode, action, table: &str| decide(mode, action, Some(table), None, None);
    for action in [ffi::SQLITE_INSERT, ffi::SQLITE_UPDATE, ffi::SQLITE_DELETE] {
        for table in ["tandem_requests", "tandem_conflicts", "TANDEM_Conflicts"] {
            let refused = write(Mode::Execute, action, table).unwrap_err();
            assert!(
                refused.contains("tables named tandem_* are the node's"),
                "{refused}"
            );
            assert!(write(Mode::Node, action, table).is_ok());
            assert!(write(Mode::Query, action, table).is_err());
        }
    }
    // The node's capture triggers on those tables still write its log.
    assert!(
        decide(
            Mode::Execute,
            ffi::SQLITE_INSERT,
            Some("_tandem_log"),
            None,
            Some("_tandem_capture_insert_tandem_requests")
        )
        .is_ok()
    );
    for mode in [Mode::Execute, Mode::Query, Mode::Node] {
        assert!(write(mode, ffi::SQLITE_READ, "tandem_conflicts").is_ok());
    }
    assert!(write(Mode::Execute, ffi::SQLITE_INSERT, "tandemx").is_ok());
    assert!(write(Mode::Node, ffi::SQLITE_INSERT, "_tandem_log").is_err());
}

#[test]
fn virtual_tables_and_unknown_actions_are_refused() {
    assert_eq!(
        decide(
            Mode::Execute,
            ffi::SQLITE_CREATE_VTABLE,
            Some("v"),
            Some("fts5"),
            None
        ),
        Err("DDL is not allowed through Execute: CREATE VIRTUAL TABLE \"v\"".to_owned())
    );
    assert!(decide(Mode::Execute, 999, None, None, None).is_err());
    assert!(decide(Mode::Execute, ffi::SQLITE_COPY, None, None, None).is_err());
}

#[test]
fn the_callback_never_panics_and_always_answers_ok_or_deny() {
    let non_utf8 = CString::new(vec![0xFF, 0xFE, b'_', 0x80]).unwrap();
    let tandem = CString::new("_tandem_log").unwrap();
    let multibyte = CString::new("_tand\u{e9}m").unwrap();
    let empty = CString::new("").unwrap();
    let texts: [Option<&CStr>; 5] = [
        None,
        Some(&non_utf8),
        Some(&tandem),
        Some(&multibyte),
        Some(&empty),
    ];
    for mode in [Mode::Execute, Mode::Query] {
        for action in (-3..40).chain([i32::MIN, i32::MAX]) {
            for first in texts {
                for trigger in texts {
                    let (answer, refusal) =
                        call_authorize(mode, action, [first, first, None, trigger]);
                    match answer {
                        ffi::SQLITE_OK => assert!(refusal.is_none()),
                        ffi::SQLITE_DENY => assert!(refusal.is_some_and(|r| !r.is_empty())),
                        other => panic!("answer {other} for action {action}"),
                    }
                }
            }
        }
    }
}

#[test]
fn private_tables_are_closed_to_clients_and_node_only_tables_are_read_only() {
    let tables = ProtectedTables {
        private: std::sync::Arc::from(["users".to_string()]),
        node_only: std::sync::Arc::from(["cdrs".to_string()]),
    };
    let ask = |mode, action, table: &str| decide_tables(mode, action, Some(table), &tables);
    for mode in [Mode::Execute, Mode::Query] {
        let read = ask(mode, ffi::SQLITE_READ, "USERS").unwrap_err();
        assert!(read.contains("private"), "{read}");
        assert!(ask(mode, ffi::SQLITE_INSERT, "users").is_err());
        assert!(ask(mode, ffi::SQLITE_READ, "cdrs").is_ok());
        let write = ask(mode, ffi::SQLITE_UPDATE, "cdrs").unwrap_err();
        assert!(write.contains("written only by the node"), "{write}");
        assert!(ask(mode, ffi::SQLITE_DELETE, "extensions").is_ok());
    }
    assert!(ask(Mode::Node, ffi::SQLITE_READ, "users").is_ok());
    assert!(ask(Mode::Node, ffi::SQLITE_DELETE, "cdrs").is_ok());
}
