//! Tests of the status page: escaping, a complete self-refreshing document, every section, the
//! events' order, services and files, and the units.

use super::*;
use crate::admin::status::{FilesStatus, PeerServiceStatus, ServiceStatus, TermStatus};
use crate::http::status_page_assets::ICON;
use crate::http::status_page_format::{bytes_text, duration_text};

fn event(id: i64, kind: &str, message: &str) -> EventRecord {
    EventRecord {
        id,
        at_ms: 1_700_000_000_000 + id * 1000,
        kind: kind.into(),
        message: message.into(),
    }
}

fn sample() -> Status {
    let mut status = Status {
        cluster: "pbx-hq".into(),
        ..Status::default()
    };
    status.node.name = "a".into();
    status.node.role = "active".into();
    status.node.term = Some(TermStatus {
        epoch: 7,
        node: "a".into(),
    });
    status.peer.name = "b".into();
    status.peer.role = "passive".into();
    status.peer.state = "ok".into();
    status
}

#[test]
fn status_page_escapes_everything_it_shows() {
    let mut status = sample();
    status.cluster = "<b>c</b>".into();
    status.node.name = "a\"&'".into();
    status.files.push(FilesStatus {
        name: "<vm>".into(),
        error: "<err>".into(),
        ..FilesStatus::default()
    });
    status.services.push(ServiceStatus {
        name: "<svc>".into(),
        state: "<running>".into(),
        last_exit: "<exit>".into(),
        ..ServiceStatus::default()
    });
    let events = vec![event(1, "<kind>", "<script>x</script>")];
    let html = page_html(&status, &events, 0);
    for raw in [
        "<b>c</b>",
        "<vm>",
        "<err>",
        "<svc>",
        "<running>",
        "<exit>",
        "<kind>",
    ] {
        assert!(!html.contains(raw), "{raw} unescaped");
    }
    assert!(!html.contains("<script>x"));
    assert!(html.contains("&lt;script&gt;x&lt;/script&gt;"));
    assert!(html.contains("a&quot;&amp;&#39;"));
    assert_eq!(
        escape("<a href=\"x\">'&'</a>"),
        "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
    );
}

#[test]
fn status_page_is_a_complete_document_that_refreshes_itself() {
    let html = page_html(&sample(), &[], 0);
    assert!(html.starts_with("<!doctype html>\n<html lang=\"en\">"));
    assert!(html.contains("<meta charset=\"utf-8\">"));
    assert!(html.contains("name=\"viewport\""));
    assert!(html.contains("<link rel=\"icon\" href=\"data:image/svg+xml,"));
    assert!(html.contains("http-equiv=\"refresh\" content=\"2\""));
    assert!(html.contains("setTimeout(refresh, 2000)"));
    // Nothing loaded from elsewhere: no external stylesheet, script or font.
    let without_icon = html.replace(ICON, "");
    for external in ["src=", "http://", "https://", "@import", "url("] {
        assert!(!without_icon.contains(external), "{external} in the page");
    }
}

#[test]
fn status_page_shows_both_nodes_and_every_section() {
    let mut status = sample();
    status.replication.mode = "sync".into();
    status.replication.snapshot_progress = Some(0.5);
    status.blocks.calls = true;
    status.failback.policy = "10 minutes".into();
    status.failback.time_left = "4 minutes".into();
    status.switchover.state = "waiting_idle".into();
    status.switchover.waiting_calls = 3;
    let html = page_html(&status, &[event(1, "role_change", "a became active")], 0);
    for needle in [
        "<title>tandem pbx-hq: a is active</title>",
        "<span class=\"badge active\">active</span>",
        "<span class=\"badge passive\">passive</span>",
        "epoch 7 held by a",
        ">replication<",
        ">calls and sessions<",
        ">failover<",
        ">services<",
        "none configured",
        ">files<",
        "no [[files]] entries",
        "4 minutes",
        "waiting for 3 calls",
        "aria-valuenow=\"50\"",
        "<span class=\"tone warn\">blocked</span>",
        "a became active",
    ] {
        assert!(html.contains(needle), "missing {needle}");
    }
}

#[test]
fn status_page_lists_the_events_newest_first() {
    let events = vec![event(1, "start", "first"), event(2, "failover", "second")];
    let html = page_html(&sample(), &events, 0);
    let (first, second) = (html.find("first").unwrap(), html.find("second").unwrap());
    assert!(second < first, "newest first");
    assert!(html.contains("<span class=\"kind bad\">failover</span>"));
    assert!(html.contains("last 2 events"));
}

#[test]
fn status_page_lists_services_with_the_peers_view_and_files() {
    let mut status = sample();
    status.services.push(ServiceStatus {
        name: "pbx".into(),
        state: "running".into(),
        healthy: true,
        pid: Some(4242),
        restarts: 2,
        run_on: "active".into(),
        critical: true,
        ..ServiceStatus::default()
    });
    status.peer.services = vec![
        PeerServiceStatus {
            name: "pbx".into(),
            healthy: true,
            state: "ready".into(),
        },
        PeerServiceStatus {
            name: "only-there".into(),
            healthy: false,
            state: "failed".into(),
        },
    ];
    status.files.push(FilesStatus {
        name: "voicemail".into(),
        pending_files: 3,
        pending_bytes: 3 * 1024 * 1024 / 2,
        last_sync: None,
        error: String::new(),
    });
    let html = page_html(&status, &[], 0);
    assert!(!html.contains("none configured"));
    assert!(!html.contains("no [[files]] entries"));
    for needle in [
        "<b>pbx</b>",
        "4242",
        "<span class=\"tone good\">ready</span>",
        "<b>only-there</b>",
        "<span class=\"tone bad\">failed</span>",
        "<b>voicemail</b>",
        "1.5 MiB",
        "<span class=\"tone warn\">syncing</span>",
    ] {
        assert!(html.contains(needle), "missing {needle}");
    }
}

#[test]
fn units_read_naturally() {
    assert_eq!(duration_text(850), "850 ms");
    assert_eq!(duration_text(3_200), "3.2 s");
    assert_eq!(duration_text(240_000), "4 min");
    assert_eq!(bytes_text(512), "512 B");
    assert_eq!(bytes_text(2 * 1024 * 1024 * 1024), "2.0 GiB");
}
