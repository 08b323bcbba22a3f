//! The status page's cards and tables: this node, the peer, replication, calls and sessions,
//! failover, services (next to the peer's view), files and the last events, each rendered from
//! its part of the status into escaped HTML.

use std::fmt::Write;

use crate::admin::status::{FilesStatus, NodeStatus, PeerStatus, ServiceStatus, Status};
use crate::state::store::EventRecord;

use super::status_page_format::{
    block_tone, bytes_text, disk_tone, duration_text, escape, event_class, link_tone,
    maintenance_tone, monitoring_tone, role_badge, service_state, time_text, tone,
};

/// A definition list being written: label, value pairs.
struct Fields(String);

impl Fields {
    fn new() -> Fields {
        Fields(String::from("<dl>"))
    }

    /// A plain-text value, escaped here.
    fn text(mut self, label: &str, value: &str) -> Fields {
        let _ = write!(
            self.0,
            "<dt>{}</dt><dd>{}</dd>",
            escape(label),
            escape(value)
        );
        self
    }

    /// A value that is already HTML (built from escaped parts).
    fn html(mut self, label: &str, value_html: &str) -> Fields {
        let _ = write!(self.0, "<dt>{}</dt><dd>{value_html}</dd>", escape(label));
        self
    }

    fn finish(mut self) -> String {
        self.0.push_str("</dl>");
        self.0
    }
}

pub(super) fn node_card(node: &NodeStatus) -> String {
    let term = node.term.as_ref().map_or_else(
        || "none".to_string(),
        |term| format!("epoch {} held by {}", term.epoch, term.node),
    );
    let serving = match (node.admitting, node.fenced) {
        (true, _) => tone("good", "admitting clients"),
        (false, true) => tone("warn", "fenced"),
        (false, false) => tone("muted", "not admitting"),
    };
    let fields = Fields::new()
        .text("term", &term)
        .text("highest epoch", &node.epoch.to_string())
        .html("clients", &serving)
        .html("disk", &disk_tone(&node.disk))
        .text("priority", &node.priority.to_string())
        .html("monitoring", &monitoring_tone(&node.monitoring))
        .html("maintenance", &maintenance_tone(node.maintenance))
        .html(
            "reachability",
            &if node.reachable {
                tone("good", "targets answer")
            } else {
                tone("bad", "unreachable")
            },
        )
        .text("version", &node.version)
        .finish();
    format!(
        "<section class=\"card node\"><h2><span>this node: {name}</span> {badge}</h2>{fields}</section>",
        name = escape(&node.name),
        badge = role_badge(&node.role),
    )
}

pub(super) fn peer_card(peer: &PeerStatus, node: &NodeStatus) -> String {
    let last_seen = peer.last_seen_ms.map_or_else(
        || "never".to_string(),
        |ms| format!("{} ago", duration_text(ms)),
    );
    let skew = peer.clock_skew_ms.map_or_else(
        || "unknown".to_string(),
        |ms| format!("{}{} ms", if ms > 0 { "+" } else { "" }, ms),
    );
    let mut fields = Fields::new()
        .html("link", &link_tone(&peer.state))
        .text("epoch", &peer.epoch.to_string())
        .html("disk", &disk_tone(&peer.disk))
        .text("priority", &peer.priority.to_string())
        .html("monitoring", &monitoring_tone(&node.monitoring))
        .html("maintenance", &maintenance_tone(peer.maintenance))
        .text("last seen", &last_seen)
        .text("missed keep-alives", &peer.missed_keepalives.to_string())
        .text("clock skew", &skew)
        .text("address", &peer.address);
    if peer.version_mismatch || peer.config_mismatch {
        let what = match (peer.version_mismatch, peer.config_mismatch) {
            (true, true) => "version and config differ",
            (true, false) => "version differs",
            _ => "config differs",
        };
        fields = fields.html("mismatch", &tone("warn", what));
    }
    format!(
        "<section class=\"card node\"><h2><span>peer: {name}</span> {badge}</h2>{fields}</section>",
        name = escape(&peer.name),
        badge = role_badge(&peer.role),
        fields = fields.finish(),
    )
}

pub(super) fn replication_card(status: &Status) -> String {
    let replication = &status.replication;
    let health = if replication.degraded {
        tone("bad", "degraded")
    } else {
        tone("good", "healthy")
    };
    let snapshot = replication.snapshot_progress.map_or_else(
        || "none".to_string(),
        |progress| {
            let percent = (progress.clamp(0.0, 1.0) * 100.0).round();
            format!(
                "<span class=\"bar\" role=\"progressbar\" aria-valuenow=\"{percent}\" \
                 aria-valuemin=\"0\" aria-valuemax=\"100\"><span style=\"width:{percent}%\">\
                 </span></span> {percent}%"
            )
        },
    );
    let mut fields = Fields::new()
        .html(
            "mode",
            &format!("<b>{}</b> {health}", escape(&replication.mode)),
        )
        .text("last index", &replication.last_index.to_string())
        .text("peer acked", &replication.peer_acked_index.to_string())
        .html(
            "lag",
            &tone(
                if replication.lag_entries == 0 {
                    "good"
                } else {
                    "warn"
                },
                &format!("{} entries", replication.lag_entries),
            ),
        )
        .html("snapshot", &snapshot)
        .html(
            "conflicts",
            &tone(
                if replication.conflicts == 0 {
                    "muted"
                } else {
                    "warn"
                },
                &replication.conflicts.to_string(),
            ),
        );
    if replication.orphans > 0 {
        fields = fields.text("kept for merge-back", &replication.orphans.to_string());
    }
    if !replication.halted.is_empty() {
        fields = fields.html("halted", &tone("bad", &replication.halted));
    }
    card("replication", &fields.finish())
}

pub(super) fn clients_card(status: &Status) -> String {
    let fields = Fields::new()
        .text("sessions", &status.sessions.to_string())
        .text("calls", &status.calls_active.to_string())
        .html("new logins", &block_tone(status.blocks.logins))
        .html("new calls", &block_tone(status.blocks.calls))
        .finish();
    card("calls and sessions", &fields)
}

/// The witness (DESIGN.md §12); nothing in pair mode.
pub(super) fn witness_section(status: &Status) -> String {
    let witness = &status.witness;
    if witness.kind == "none" {
        return String::new();
    }
    let state = match witness.state.as_str() {
        "ok" => tone("good", "ok"),
        other => tone("bad", other),
    };
    let fields = Fields::new()
        .text("address", &witness.address)
        .html("link", &state)
        .text("votes for", &format!("{} ms", witness.lease_left_ms))
        .text("last answer", &witness.vote)
        .finish();
    format!("<div class=\"grid\">{}</div>", card("witness", &fields))
}

pub(super) fn failover_card(status: &Status) -> String {
    let failback = &status.failback;
    let policy = if failback.policy.is_empty() {
        "never"
    } else {
        &failback.policy
    };
    let time_left = if failback.time_left.is_empty() {
        tone("muted", "nothing pending")
    } else {
        tone("info", &failback.time_left)
    };
    let switchover = &status.switchover;
    let mut switchover_html = match switchover.state.as_str() {
        "" | "idle" => tone("muted", "idle"),
        state => tone("info", state),
    };
    if switchover.waiting_calls > 0 {
        let _ = write!(
            switchover_html,
            " waiting for {} calls",
            switchover.waiting_calls
        );
    }
    let fields = Fields::new()
        .text("auto failback", policy)
        .html("failback in", &time_left)
        .html("switchover", &switchover_html)
        .finish();
    card("failover", &fields)
}

/// This node's services next to the peer's view of the same names; the peer's other services
/// follow.
pub(super) fn services_section(
    services: &[ServiceStatus],
    peer: &[crate::admin::status::PeerServiceStatus],
) -> String {
    if services.is_empty() && peer.is_empty() {
        return card("services", "<p class=\"empty\">none configured</p>");
    }
    let peer_cell = |name: &str| {
        peer.iter()
            .find(|service| service.name == name)
            .map_or_else(
                || tone("muted", "not reported"),
                |service| service_state(&service.state, service.healthy),
            )
    };
    let mut rows = String::new();
    for service in services {
        let last_exit = if service.last_exit.is_empty() {
            String::new()
        } else {
            format!("<div class=\"note\">{}</div>", escape(&service.last_exit))
        };
        let _ = write!(
            rows,
            "<tr><td><b>{name}</b>{last_exit}</td><td>{state}</td><td>{pid}</td>\
             <td class=\"num\">{restarts}</td><td>{run_on}</td><td>{critical}</td><td>{peer}</td></tr>",
            name = escape(&service.name),
            state = service_state(&service.state, service.healthy),
            pid = service
                .pid
                .map_or_else(|| "–".to_string(), |pid| pid.to_string()),
            restarts = service.restarts,
            run_on = escape(&service.run_on),
            critical = if service.critical {
                tone("warn", "critical")
            } else {
                "no".to_string()
            },
            peer = peer_cell(&service.name),
        );
    }
    for service in peer
        .iter()
        .filter(|p| services.iter().all(|s| s.name != p.name))
    {
        let _ = write!(
            rows,
            "<tr><td><b>{name}</b></td><td>{none}</td><td>–</td><td class=\"num\">–</td>\
             <td>–</td><td>–</td><td>{peer}</td></tr>",
            name = escape(&service.name),
            none = tone("muted", "not here"),
            peer = service_state(&service.state, service.healthy),
        );
    }
    table_card(
        "services",
        "services",
        &[
            "service",
            "state here",
            "pid",
            "restarts",
            "runs on",
            "critical",
            "on the peer",
        ],
        &rows,
    )
}

pub(super) fn files_section(files: &[FilesStatus]) -> String {
    if files.is_empty() {
        return card("files", "<p class=\"empty\">no [[files]] entries</p>");
    }
    let mut rows = String::new();
    for entry in files {
        let last_sync = entry.last_sync.map_or_else(
            || "never".to_string(),
            |ms| time_text(i64::try_from(ms).unwrap_or(i64::MAX)),
        );
        let state = if !entry.error.is_empty() {
            tone("bad", &entry.error)
        } else if entry.pending_files > 0 {
            tone("warn", "syncing")
        } else {
            tone("good", "in sync")
        };
        let _ = write!(
            rows,
            "<tr><td><b>{name}</b></td><td class=\"num\">{pending}</td><td class=\"num\">{bytes}</td>\
             <td class=\"time\">{last_sync}</td><td>{state}</td></tr>",
            name = escape(&entry.name),
            pending = entry.pending_files,
            bytes = escape(&bytes_text(entry.pending_bytes)),
            last_sync = escape(&last_sync),
        );
    }
    table_card(
        "files",
        "files",
        &[
            "entry",
            "pending files",
            "pending bytes",
            "last sync (UTC)",
            "state",
        ],
        &rows,
    )
}

/// `events` come oldest first; the page lists them newest first.
pub(super) fn events_section(events: &[EventRecord]) -> String {
    if events.is_empty() {
        return card("last events", "<p class=\"empty\">no events yet</p>");
    }
    let mut rows = String::new();
    for event in events.iter().rev() {
        let _ = write!(
            rows,
            "<tr><td class=\"time\">{at}</td><td class=\"kind\"><span class=\"kind {class}\">\
             {kind}</span></td><td class=\"message\">{message}</td></tr>",
            at = escape(&time_text(event.at_ms)),
            class = event_class(&event.kind),
            kind = escape(&event.kind),
            message = escape(&event.message),
        );
    }
    table_card(
        &format!("last {} events", events.len()),
        "events",
        &["time (UTC)", "kind", "message"],
        &rows,
    )
}

fn card(title: &str, inner_html: &str) -> String {
    format!(
        "<section class=\"card\"><h2>{}</h2>{inner_html}</section>",
        escape(title)
    )
}

/// `class` names the table for the stylesheet ("services", "files", "events").
fn table_card(title: &str, class: &str, columns: &[&str], rows_html: &str) -> String {
    let mut head = String::new();
    for column in columns {
        let _ = write!(head, "<th>{}</th>", escape(column));
    }
    card(
        title,
        &format!(
            "<div class=\"scroll\"><table class=\"{class}\"><thead><tr>{head}</tr></thead>\
             <tbody>{rows_html}</tbody></table></div>"
        ),
    )
}
