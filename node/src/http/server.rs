//! HTTP on `[listen] http` (DESIGN.md §6): `/health`, `/active`, `/metrics` and `/`, the
//! status page.
//!
//! - `/health` answers 200 while the node runs.
//! - `/active` answers 200 only while this node is the active and admits clients, 503
//!   otherwise: for HAProxy or keepalived checks that route clients to the active.
//! - `/metrics`: Prometheus text format, written from the same status `tandemctl status` shows.
//! - `/`: a page for people that refreshes itself every 2 s (`status_page` renders it).
//!
//! Plain HTTP: it shows no secret and accepts no command. Not here: the status itself (the
//! admin service's `full_status`).

use std::fmt::Write;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::admin::service::AdminService;
use crate::admin::status::Status;
use crate::http::status_page;

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
    if status.witness.kind != "none" {
        gauge(
            "tandem_witness_state",
            "The witness link as this node sees it (1 for the current state).",
            &one_hot("state", &["ok", "lost"], &status.witness.state),
        );
        gauge(
            "tandem_witness_votes_left_ms",
            "Milliseconds this node still holds a second vote (its peer's or the witness's).",
            &plain(status.witness.lease_left_ms as f64),
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
    if let Some(rtt) = status.peer.rtt_ms {
        gauge(
            "tandem_peer_rtt_ms",
            "The last keep-alive round trip to the peer, in milliseconds.",
            &plain(rtt),
        );
    }
    let per_service =
        |value: &dyn Fn(&crate::admin::status::ServiceStatus) -> f64| -> Vec<(String, f64)> {
            status
                .services
                .iter()
                .map(|service| (format!("{{service=\"{}\"}}", service.name), value(service)))
                .collect()
        };
    gauge(
        "tandem_service_healthy",
        "1 while a supervised service runs and passes its health check (or, on a passive, could start).",
        &per_service(&|service| f64::from(u8::from(service.healthy))),
    );
    let _ = writeln!(
        out,
        "# HELP tandem_service_restarts_total Restarts of a supervised service since tandemd started.\n# TYPE tandem_service_restarts_total counter"
    );
    for (labels, restarts) in per_service(&|service| service.restarts as f64) {
        let _ = writeln!(out, "tandem_service_restarts_total{labels} {restarts}");
    }
    crate::http::metrics::global().render(&mut out);
    out
}

async fn page(State(admin): State<Arc<AdminService>>) -> Html<String> {
    let status = admin.full_status().await;
    let events = admin
        .handle
        .store
        .recent_events(status_page::PAGE_EVENTS)
        .await
        .unwrap_or_default();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        });
    Html(status_page::page_html(&status, &events, now_ms))
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
}
