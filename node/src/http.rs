//! HTTP on `[listen] http` (DESIGN.md §6): `/health`, `/active`, `/metrics` and `/`, the
//! status page.
//!
//! - `/health` answers 200 while the node runs.
//! - `/active` answers 200 only while this node is the active and admits clients, 503
//!   otherwise: for HAProxy or keepalived checks that route clients to the active.
//! - `/metrics`: Prometheus text format, written from the same status `tandemctl status` shows.
//! - `/`: a page for people that refreshes itself every 2 s.
//!
//! Plain HTTP: it shows no secret and accepts no command. Not here: the status itself (the
//! admin service's `full_status`).

use std::fmt::Write;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::admin::AdminService;
use crate::status::Status;

/// Events shown on the page.
const PAGE_EVENTS: u32 = 50;

pub fn router(admin: Arc<AdminService>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/health", get(|| async { "ok\n" }))
        .route("/active", get(active))
        .route("/metrics", get(metrics))
        .with_state(admin)
}

async fn active(State(admin): State<Arc<AdminService>>) -> Response {
    let status = admin.full_status().await;
    if status.node.role == "active" && status.node.admitting {
        (StatusCode::OK, "active\n").into_response()
    } else {
        let body = format!("{}\n", status.node.role);
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

async fn metrics(State(admin): State<Arc<AdminService>>) -> Response {
    let status = admin.full_status().await;
    let outbox = admin.handle.store.outbox_counts().await.unwrap_or((0, 0));
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics_text(&status, outbox),
    )
        .into_response()
}

/// The Prometheus text of a status.
pub fn metrics_text(status: &Status, (alerts_unsent, alerts_sent): (u64, u64)) -> String {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, samples: &[(String, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let one_hot = |label: &str, values: &[&str], current: &str| -> Vec<(String, f64)> {
        values
            .iter()
            .map(|value| {
                let on = f64::from(u8::from(*value == current));
                (format!("{{{label}=\"{value}\"}}"), on)
            })
            .collect()
    };
    let plain = |value: f64| vec![(String::new(), value)];
    let roles = ["active", "passive", "starting", "promoting", "fault"];
    gauge(
        "tandem_role",
        "This node's role (1 for the current one).",
        &one_hot("role", &roles, &status.node.role),
    );
    gauge(
        "tandem_admitting",
        "1 while this node admits clients.",
        &plain(f64::from(u8::from(status.node.admitting))),
    );
    let epoch = status.node.term.as_ref().map_or(0, |term| term.epoch);
    gauge(
        "tandem_term_epoch",
        "Epoch of the term held or followed.",
        &plain(epoch as f64),
    );
    let peer_states = ["ok", "suspect", "failed", "unknown"];
    gauge(
        "tandem_peer_state",
        "The peer as this node sees it (1 for the current state).",
        &one_hot("state", &peer_states, &status.peer.state),
    );
    gauge(
        "tandem_peer_missed_keepalives",
        "Keep-alives missed in a row.",
        &plain(f64::from(status.peer.missed_keepalives)),
    );
    if let Some(seen) = status.peer.last_seen_ms {
        gauge(
            "tandem_peer_last_seen_ms",
            "Milliseconds since the peer's last heartbeat.",
            &plain(seen as f64),
        );
    }
    let replication = &status.replication;
    gauge(
        "tandem_replication_last_index",
        "Index of this node's last log entry.",
        &plain(replication.last_index as f64),
    );
    gauge(
        "tandem_replication_lag_entries",
        "Entries the peer has not acknowledged.",
        &plain(replication.lag_entries as f64),
    );
    gauge(
        "tandem_replication_degraded",
        "1 while writes are not replicated synchronously.",
        &plain(f64::from(u8::from(replication.degraded))),
    );
    gauge(
        "tandem_replication_conflicts",
        "Rows in the conflicts table.",
        &plain(replication.conflicts as f64),
    );
    gauge(
        "tandem_sessions",
        "Live client sessions.",
        &plain(f64::from(status.sessions)),
    );
    gauge(
        "tandem_calls_active",
        "Running calls.",
        &plain(f64::from(status.calls_active)),
    );
    let blocks = vec![
        (
            "{what=\"logins\"}".to_string(),
            f64::from(u8::from(status.blocks.logins)),
        ),
        (
            "{what=\"calls\"}".to_string(),
            f64::from(u8::from(status.blocks.calls)),
        ),
    ];
    gauge(
        "tandem_blocked",
        "1 while new logins or calls are blocked.",
        &blocks,
    );
    gauge(
        "tandem_alerts_unsent",
        "Alert mails waiting in the outbox.",
        &plain(alerts_unsent as f64),
    );
    gauge(
        "tandem_alerts_sent",
        "Alert mails sent (the last 1,000 are kept).",
        &plain(alerts_sent as f64),
    );
    out
}

async fn page(State(admin): State<Arc<AdminService>>) -> Html<String> {
    let status = admin.full_status().await;
    let events = admin
        .handle
        .store
        .recent_events(PAGE_EVENTS)
        .await
        .unwrap_or_default();
    Html(page_html(&status, &events))
}

/// Escapes text for HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The status page.
pub fn page_html(status: &Status, events: &[crate::state_store::EventRecord]) -> String {
    let node = &status.node;
    let peer = &status.peer;
    let replication = &status.replication;
    let term = node.term.as_ref().map_or_else(
        || "none".to_string(),
        |t| format!("({}, {})", t.epoch, t.node),
    );
    let badge = |role: &str| {
        format!(
            "<span class=\"role {}\">{}</span>",
            escape(role),
            escape(role)
        )
    };
    let mut rows = String::new();
    for event in events.iter().rev() {
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            tandem_gateway::gateway::format_ms(event.at_ms),
            escape(&event.kind),
            escape(&event.message)
        );
    }
    let on = |flag: bool| if flag { "blocked" } else { "open" };
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
<title>tandem {cluster}: {name} is {role}</title>
<style>
body {{ font: 15px/1.4 system-ui, sans-serif; margin: 2em; color: #222; background: #fafafa; }}
h1 {{ font-size: 1.4em; }} .cards {{ display: flex; gap: 1em; flex-wrap: wrap; }}
.card {{ background: #fff; border: 1px solid #ddd; border-radius: 8px; padding: 1em 1.4em; min-width: 16em; }}
.card h2 {{ font-size: 1.05em; margin: 0 0 .6em; }} dl {{ display: grid; grid-template-columns: auto auto; gap: .2em 1em; margin: 0; }}
dt {{ color: #666; }} .role {{ padding: .1em .6em; border-radius: 1em; color: #fff; background: #888; }}
.role.active {{ background: #2a8a3e; }} .role.passive {{ background: #2f6db3; }} .role.fault {{ background: #b33; }}
table {{ border-collapse: collapse; width: 100%; background: #fff; margin-top: 1em; }}
td {{ border-top: 1px solid #eee; padding: .3em .6em; vertical-align: top; }} td:first-child {{ white-space: nowrap; color: #666; }}
</style></head><body>
<h1>tandem pair <b>{cluster}</b></h1>
<div class="cards">
<div class="card"><h2>this node: {name} {role_badge}</h2><dl>
<dt>term</dt><dd>{term}</dd><dt>admitting</dt><dd>{admitting}</dd><dt>disk</dt><dd>{disk}</dd>
<dt>monitoring</dt><dd>{monitoring}</dd><dt>maintenance</dt><dd>{maintenance}</dd><dt>switchover</dt><dd>{switchover}</dd>
<dt>auto failback</dt><dd>{failback}</dd></dl></div>
<div class="card"><h2>peer: {peer_name} {peer_badge}</h2><dl>
<dt>link</dt><dd>{peer_state}</dd><dt>last seen</dt><dd>{last_seen}</dd><dt>disk</dt><dd>{peer_disk}</dd>
<dt>maintenance</dt><dd>{peer_maintenance}</dd></dl></div>
<div class="card"><h2>replication</h2><dl>
<dt>mode</dt><dd>{mode}{degraded}</dd><dt>last index</dt><dd>{last_index}</dd><dt>peer acked</dt><dd>{acked}</dd>
<dt>lag</dt><dd>{lag} entries</dd><dt>conflicts</dt><dd>{conflicts}</dd></dl></div>
<div class="card"><h2>clients</h2><dl>
<dt>sessions</dt><dd>{sessions}</dd><dt>calls</dt><dd>{calls}</dd><dt>new logins</dt><dd>{logins}</dd>
<dt>new calls</dt><dd>{new_calls}</dd></dl></div>
</div>
<h2>last events</h2><table>{rows}</table>
</body></html>
"#,
        cluster = escape(&status.cluster),
        name = escape(&node.name),
        role = escape(&node.role),
        role_badge = badge(&node.role),
        term = escape(&term),
        admitting = node.admitting,
        disk = escape(&node.disk),
        monitoring = escape(&node.monitoring),
        maintenance = node.maintenance,
        switchover = escape(&status.switchover.state),
        failback = escape(&if status.failback.time_left.is_empty() {
            status.failback.policy.clone()
        } else {
            format!(
                "{} (in {})",
                status.failback.policy, status.failback.time_left
            )
        }),
        peer_name = escape(&peer.name),
        peer_badge = badge(&peer.role),
        peer_state = escape(&peer.state),
        last_seen = peer
            .last_seen_ms
            .map_or_else(|| "never".to_string(), |ms| format!("{ms} ms ago")),
        peer_disk = escape(&peer.disk),
        peer_maintenance = peer.maintenance,
        mode = escape(&replication.mode),
        degraded = if replication.degraded {
            " (degraded)"
        } else {
            ""
        },
        last_index = replication.last_index,
        acked = replication.peer_acked_index,
        lag = replication.lag_entries,
        conflicts = replication.conflicts,
        sessions = status.sessions,
        calls = status.calls_active,
        logins = on(status.blocks.logins),
        new_calls = on(status.blocks.calls),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_name_the_role_and_the_counts() {
        let mut status = Status::default();
        status.node.role = "active".into();
        status.peer.state = "ok".into();
        status.calls_active = 3;
        status.blocks.calls = true;
        let text = metrics_text(&status, (2, 5));
        assert!(text.contains("tandem_role{role=\"active\"} 1\n"), "{text}");
        assert!(text.contains("tandem_role{role=\"passive\"} 0\n"), "{text}");
        assert!(text.contains("tandem_calls_active 3\n"), "{text}");
        assert!(
            text.contains("tandem_blocked{what=\"calls\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("tandem_alerts_unsent 2\n"), "{text}");
        assert!(text.contains("# TYPE tandem_sessions gauge\n"), "{text}");
    }

    #[test]
    fn the_page_escapes_what_it_shows() {
        let mut status = Status::default();
        status.node.name = "a".into();
        status.node.role = "passive".into();
        let events = vec![crate::state_store::EventRecord {
            id: 1,
            at_ms: 0,
            kind: "merge".into(),
            message: "<script>x</script>".into(),
        }];
        let html = page_html(&status, &events);
        assert!(html.contains("&lt;script&gt;"));
        assert!(!html.contains("<script>"));
        assert!(html.contains("http-equiv=\"refresh\""));
    }
}
