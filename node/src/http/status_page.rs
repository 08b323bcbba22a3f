//! The status page on `/` (DESIGN.md §6): both nodes, replication, clients, failover policy,
//! services, files and the last events, as one HTML document for people.
//!
//! Pure: it turns a [`Status`], the recent events and the wall clock into HTML and does no IO;
//! `http` serves it. Self-contained: the stylesheet, the refresh script and the icon are inline,
//! because the machines that run a pair often reach no internet and a missing resource would be
//! an error in the browser's console. It refreshes itself: the script fetches the page again every
//! [`REFRESH_INTERVAL_S`] seconds and swaps the body, so the scroll position stays; if the node
//! stops answering, the header says so. Without script, a `<meta http-equiv="refresh">` reloads it.
//!
//! Everything from the status or the events is HTML-escaped. Not here: the status itself (the
//! admin service's `full_status`), and any command: the page shows and never acts.

use std::fmt::Write;

use crate::admin::status::{FilesStatus, NodeStatus, PeerStatus, ServiceStatus, Status};
use crate::state::store::EventRecord;
use tandem_gateway::gateway::format_ms;

/// Events shown on the page, newest first.
pub const PAGE_EVENTS: u32 = 50;

/// Seconds between two refreshes of the page.
pub const REFRESH_INTERVAL_S: u32 = 2;

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

/// The status page.
pub fn page_html(status: &Status, events: &[EventRecord], now_ms: i64) -> String {
    let node = &status.node;
    let mut body = String::new();
    body.push_str(&header_html(status, now_ms));
    body.push_str("<main>");
    let _ = write!(
        body,
        "<div class=\"grid nodes\">{}{}</div>",
        node_card(node),
        peer_card(&status.peer, node)
    );
    let _ = write!(
        body,
        "<div class=\"grid\">{}{}{}</div>",
        replication_card(status),
        clients_card(status),
        failover_card(status)
    );
    body.push_str(&services_section(&status.services, &status.peer.services));
    body.push_str(&files_section(&status.files));
    body.push_str(&events_section(events));
    body.push_str("</main>");
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tandem {cluster}: {name} is {role}</title>
<link rel="icon" href="{ICON}">
<noscript><meta http-equiv="refresh" content="{REFRESH_INTERVAL_S}"></noscript>
<style>{STYLE}</style>
<script>{script}</script>
</head>
<body>
{body}
</body>
</html>
"#,
        cluster = escape(&status.cluster),
        name = escape(&node.name),
        role = escape(&node.role),
        script = SCRIPT.replace("REFRESH_MS", &(REFRESH_INTERVAL_S * 1000).to_string()),
    )
}

fn header_html(status: &Status, now_ms: i64) -> String {
    format!(
        "<header><div class=\"brand\"><span class=\"logo\" aria-hidden=\"true\"></span>tandem</div>\
         <h1>{cluster}</h1><span class=\"sub\">seen from <b>{name}</b> {badge}</span>\
         <span id=\"live\" class=\"live\" title=\"refreshes every {REFRESH_INTERVAL_S} s\">\
         updated {updated}</span></header>",
        cluster = escape(&status.cluster),
        name = escape(&status.node.name),
        badge = role_badge(&status.node.role),
        updated = escape(&format!("{} UTC", time_text(now_ms))),
    )
}

fn node_card(node: &NodeStatus) -> String {
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

fn peer_card(peer: &PeerStatus, node: &NodeStatus) -> String {
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

fn replication_card(status: &Status) -> String {
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

fn clients_card(status: &Status) -> String {
    let fields = Fields::new()
        .text("sessions", &status.sessions.to_string())
        .text("calls", &status.calls_active.to_string())
        .html("new logins", &block_tone(status.blocks.logins))
        .html("new calls", &block_tone(status.blocks.calls))
        .finish();
    card("calls and sessions", &fields)
}

fn failover_card(status: &Status) -> String {
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
fn services_section(
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

fn files_section(files: &[FilesStatus]) -> String {
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
fn events_section(events: &[EventRecord]) -> String {
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

/// A solid badge for a role: active, passive, fault, or any other (transient or unknown).
fn role_badge(role: &str) -> String {
    let class = match role {
        "active" => "active",
        "passive" => "passive",
        "fault" => "fault",
        _ => "other",
    };
    let text = if role.is_empty() { "unknown" } else { role };
    format!("<span class=\"badge {class}\">{}</span>", escape(text))
}

/// A tinted label; `class` is one of good, info, warn, bad, muted.
fn tone(class: &str, text: &str) -> String {
    format!("<span class=\"tone {class}\">{}</span>", escape(text))
}

fn link_tone(state: &str) -> String {
    let class = match state {
        "ok" => "good",
        "suspect" => "warn",
        "failed" => "bad",
        _ => "muted",
    };
    tone(class, if state.is_empty() { "unknown" } else { state })
}

fn disk_tone(disk: &str) -> String {
    let class = match disk {
        "consistent" => "good",
        "outdated" => "warn",
        "inconsistent" => "bad",
        _ => "muted",
    };
    tone(class, if disk.is_empty() { "unknown" } else { disk })
}

fn monitoring_tone(monitoring: &str) -> String {
    let class = match monitoring {
        "on" => "good",
        "suspended" => "warn",
        "stopped" => "bad",
        _ => "muted",
    };
    tone(
        class,
        if monitoring.is_empty() {
            "unknown"
        } else {
            monitoring
        },
    )
}

fn maintenance_tone(on: bool) -> String {
    if on {
        tone("warn", "on")
    } else {
        tone("muted", "off")
    }
}

fn block_tone(blocked: bool) -> String {
    if blocked {
        tone("warn", "blocked")
    } else {
        tone("good", "open")
    }
}

fn service_state(state: &str, healthy: bool) -> String {
    let class = match state {
        "running" | "ready" if healthy => "good",
        "running" | "ready" | "starting" | "backoff" => "warn",
        "unhealthy" | "failed" => "bad",
        _ => "muted",
    };
    let health = if healthy { "healthy" } else { "not healthy" };
    format!(
        "{} <span class=\"note\">{health}</span>",
        tone(class, state)
    )
}

/// A class for an event kind, so that failures stand out in the list.
fn event_class(kind: &str) -> &'static str {
    const BAD: [&str; 6] = ["split", "fail", "fault", "error", "halt", "conflict"];
    const WARN: [&str; 5] = ["suspect", "degrad", "skew", "mismatch", "block"];
    if BAD.iter().any(|word| kind.contains(word)) {
        "bad"
    } else if WARN.iter().any(|word| kind.contains(word)) {
        "warn"
    } else {
        "plain"
    }
}

/// "2026-11-24 14:34:05": UTC, as the column header says.
fn time_text(ms: i64) -> String {
    format_ms(ms).replace('T', " ").replace('Z', "")
}

/// "850 ms", "3.2 s", "4 min", "2 h".
fn duration_text(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{} min", ms / 60_000),
        _ => format!("{} h", ms / 3_600_000),
    }
}

/// "0 B", "512 B", "1.5 KiB", "2.0 GiB".
fn bytes_text(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

/// Two linked rings on the header's colour, as an inline SVG: no request for `/favicon.ico`.
const ICON: &str = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 32 32'%3E\
%3Ccircle cx='12' cy='16' r='8' fill='none' stroke='%231f8a4c' stroke-width='4'/%3E\
%3Ccircle cx='20' cy='16' r='8' fill='none' stroke='%232563c9' stroke-width='4'/%3E%3C/svg%3E";

/// Fetches the page again every REFRESH_MS and swaps the body; marks the header when the node
/// does not answer. Errors are caught: the page itself never throws.
const SCRIPT: &str = r#"
(function () {
  "use strict";
  function refresh() {
    fetch(window.location.pathname, { cache: "no-store" })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text();
      })
      .then(function (html) {
        var page = new DOMParser().parseFromString(html, "text/html");
        document.title = page.title;
        document.body.innerHTML = page.body.innerHTML;
      })
      .catch(function (error) {
        var live = document.getElementById("live");
        if (live) {
          live.className = "live stale";
          live.textContent = "not answering (" + error.message + "), retrying";
        }
      })
      .then(function () { window.setTimeout(refresh, REFRESH_MS); });
  }
  window.setTimeout(refresh, REFRESH_MS);
})();
"#;

const STYLE: &str = r#"
:root {
  --bg: #f3f5f8; --card: #fff; --text: #1b2430; --muted: #677489; --line: #e3e7ee;
  --head: #15202d; --head-text: #c3ccd8;
  --good: #177245; --good-bg: #e3f4ea; --info: #1f58b5; --info-bg: #e4edfb;
  --warn: #8a5a00; --warn-bg: #fdf1d8; --bad: #b42318; --bad-bg: #fde7e5;
  --muted-bg: #eef1f5;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0e131a; --card: #17202b; --text: #e4e9f0; --muted: #93a0b3; --line: #283443;
    --head: #0a0f15; --good: #6fd49c; --good-bg: #15352a; --info: #8db6f5; --info-bg: #182c4a;
    --warn: #f2c166; --warn-bg: #3b2f14; --bad: #f59b93; --bad-bg: #432020; --muted-bg: #222c39;
  }
}
* { box-sizing: border-box; }
body {
  margin: 0; background: var(--bg); color: var(--text);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
}
header {
  display: flex; flex-wrap: wrap; align-items: center; gap: .4rem 1rem;
  padding: .85rem 1.5rem; background: var(--head); color: #fff;
}
.brand { display: flex; align-items: center; gap: .45rem; font-weight: 700; letter-spacing: .02em; }
.logo {
  width: 1.35rem; height: 1.35rem; border-radius: 50%;
  background: radial-gradient(circle at 35% 50%, transparent 38%, #3fbf7f 40%, #3fbf7f 55%, transparent 57%),
    radial-gradient(circle at 65% 50%, transparent 38%, #5b8def 40%, #5b8def 55%, transparent 57%);
}
header h1 { margin: 0; font-size: 1.2rem; font-weight: 600; }
header .sub { color: var(--head-text); }
header .sub b { color: #fff; }
.live { margin-left: auto; color: var(--head-text); font-size: .85rem; font-variant-numeric: tabular-nums; }
.live::before {
  content: ""; display: inline-block; width: .55rem; height: .55rem; margin-right: .4rem;
  border-radius: 50%; background: #3fbf7f; box-shadow: 0 0 0 3px rgba(63, 191, 127, .25);
}
.live.stale { color: #ffb4ab; }
.live.stale::before { background: #e5484d; box-shadow: 0 0 0 3px rgba(229, 72, 77, .3); }
main { max-width: 1240px; margin: 0 auto; padding: 1.25rem; display: grid; gap: 1rem; }
.grid { display: grid; gap: 1rem; grid-template-columns: repeat(auto-fit, minmax(min(100%, 17rem), 1fr)); }
.grid.nodes { grid-template-columns: repeat(auto-fit, minmax(min(100%, 24rem), 1fr)); }
.card {
  min-width: 0; padding: 1rem 1.2rem; background: var(--card); border: 1px solid var(--line);
  border-radius: 10px; box-shadow: 0 1px 2px rgba(16, 24, 40, .05);
}
h2 {
  display: flex; align-items: center; gap: .5rem; margin: 0 0 .8rem; color: var(--muted);
  font-size: .78rem; font-weight: 650; letter-spacing: .07em; text-transform: uppercase;
}
.node h2 { color: var(--text); font-size: 1.15rem; letter-spacing: 0; text-transform: none; }
h2 small { margin-left: auto; color: var(--muted); font-size: .75rem; font-weight: 500;
  letter-spacing: .07em; text-transform: uppercase; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .4rem 1.2rem; margin: 0; }
dt { color: var(--muted); }
dd { margin: 0; min-width: 0; overflow-wrap: anywhere; font-variant-numeric: tabular-nums; }
.badge {
  display: inline-block; padding: .12rem .6rem; border-radius: 999px; color: #fff;
  background: #7b8494; font-size: .75rem; font-weight: 650; letter-spacing: .04em; text-transform: uppercase;
}
.badge.active { background: #1e8e4e; }
.badge.passive { background: #2f6fd6; }
.badge.fault { background: #cf3a2b; }
.badge.other { background: #b07a10; }
.tone { display: inline-block; padding: 0 .45rem; border-radius: 5px; font-weight: 550; }
.tone.good { color: var(--good); background: var(--good-bg); }
.tone.info { color: var(--info); background: var(--info-bg); }
.tone.warn { color: var(--warn); background: var(--warn-bg); }
.tone.bad { color: var(--bad); background: var(--bad-bg); }
.tone.muted { color: var(--muted); background: var(--muted-bg); }
.bar {
  display: inline-block; width: 7rem; height: .5rem; vertical-align: middle; overflow: hidden;
  border-radius: 999px; background: var(--muted-bg);
}
.bar span { display: block; height: 100%; background: #2f6fd6; }
.note { color: var(--muted); font-size: .85em; }
.empty { margin: 0; color: var(--muted); font-style: italic; }
.scroll { overflow-x: auto; }
table { width: 100%; border-collapse: collapse; }
th {
  padding: .35rem .6rem; border-bottom: 1px solid var(--line); color: var(--muted); text-align: left;
  font-size: .78rem; font-weight: 600; white-space: nowrap;
}
td { padding: .4rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; overflow-wrap: anywhere; }
tbody tr:last-child td { border-bottom: 0; }
tbody tr:hover { background: var(--muted-bg); }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.time { color: var(--muted); white-space: nowrap; font-variant-numeric: tabular-nums; }
table.events td.time, table.events td.kind { width: 1%; }
span.kind {
  padding: .05rem .4rem; border-radius: 4px; background: var(--muted-bg); white-space: nowrap;
  font: .82rem/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
}
span.kind.warn { color: var(--warn); background: var(--warn-bg); }
span.kind.bad { color: var(--bad); background: var(--bad-bg); }
@media (max-width: 640px) {
  header { padding: .75rem 1rem; }
  .live { margin-left: 0; width: 100%; }
  main { padding: .75rem; gap: .75rem; }
  .card { padding: .85rem .9rem; }
  table.events thead { display: none; }
  table.events tr { display: grid; grid-template-columns: auto 1fr; align-items: baseline; }
  table.events td { border: 0; padding: .15rem .3rem; width: auto; }
  table.events td.message { grid-column: 1 / -1; padding-bottom: .55rem; border-bottom: 1px solid var(--line); }
  table.events tr:last-child td.message { border-bottom: 0; }
}
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::status::{PeerServiceStatus, TermStatus};

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
}
