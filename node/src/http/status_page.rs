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
//!
//! The page's parts live next to this file: `status_page_cards` (each card and table),
//! `status_page_format` (badges, tinted labels, times, sizes, escaping) and
//! `status_page_assets` (the inline icon, script and stylesheet).

use std::fmt::Write;

use crate::admin::status::Status;
use crate::state::store::EventRecord;

use super::status_page_assets::{ICON, SCRIPT, STYLE};
use super::status_page_cards::{
    clients_card, events_section, failover_card, files_section, node_card, peer_card,
    replication_card, services_section, witness_section,
};
use super::status_page_format::{role_badge, time_text};

pub use super::status_page_format::escape;

/// Events shown on the page, newest first.
pub const PAGE_EVENTS: u32 = 50;

/// Seconds between two refreshes of the page.
pub const REFRESH_INTERVAL_S: u32 = 2;

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
    body.push_str(&witness_section(status));
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

#[cfg(test)]
mod tests;
