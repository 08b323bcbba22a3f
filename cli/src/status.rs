//! `status`, `history` and `events`: what a node says of the pair, for people or as JSON.

use tandem_node::admin::status::Status;
use tandem_proto::admin as pb;
use tandem_proto::admin::admin_client::AdminClient;
use tonic::transport::Channel;

use crate::connect::fetch_status;
use crate::failure::{Failure, rpc_failure};

pub async fn status(client: &mut AdminClient<Channel>, json: bool) -> Result<(), Failure> {
    let status = fetch_status(client).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", render_status(&status));
    }
    Ok(())
}

/// The status as a short table for people.
pub fn render_status(status: &Status) -> String {
    let node = &status.node;
    let peer = &status.peer;
    let term = node.term.as_ref().map_or_else(
        || "none".to_string(),
        |term| format!("({}, {})", term.epoch, term.node),
    );
    let on_off = |flag: bool| if flag { "on" } else { "off" };
    let mut text = format!("cluster     {}\n", status.cluster);
    text.push_str(&format!(
        "this node   {:<8} {:<9} term {term}  epoch {}  priority {}  disk {}  admitting {}\n",
        node.name,
        node.role,
        node.epoch,
        node.priority,
        node.disk,
        if node.admitting { "yes" } else { "no" }
    ));
    let last_seen = peer
        .last_seen_ms
        .map_or_else(|| "never".to_string(), |ms| format!("{ms} ms ago"));
    text.push_str(&format!(
        "peer        {:<8} {:<9} link {}  last seen {last_seen}  missed {}  skew {} ms\n",
        peer.name,
        peer.role,
        peer.state,
        peer.missed_keepalives,
        peer.clock_skew_ms.unwrap_or(0)
    ));
    text.push_str(&format!(
        "monitoring  {}   maintenance {} (peer {})   switchover {}\n",
        node.monitoring,
        on_off(node.maintenance),
        on_off(peer.maintenance),
        status.switchover.state
    ));
    let replication = &status.replication;
    text.push_str(&format!(
        "replication {}{}  last index {}  peer acked {}  lag {}",
        replication.mode,
        if replication.degraded {
            " (degraded)"
        } else {
            ""
        },
        replication.last_index,
        replication.peer_acked_index,
        replication.lag_entries
    ));
    if let Some(progress) = replication.snapshot_progress {
        text.push_str(&format!("  snapshot {:.0}%", progress * 100.0));
    }
    if replication.orphans > 0 || replication.conflicts > 0 {
        text.push_str(&format!(
            "  orphans {}  conflicts {}",
            replication.orphans, replication.conflicts
        ));
    }
    text.push('\n');
    if !replication.halted.is_empty() {
        text.push_str(&format!("halted      {}\n", replication.halted));
    }
    let blocked = |on: bool| if on { "blocked" } else { "open" };
    text.push_str(&format!(
        "clients     sessions {}  calls {}  logins {}  calls {}",
        status.sessions,
        status.calls_active,
        blocked(status.blocks.logins),
        blocked(status.blocks.calls)
    ));
    if status.switchover.state == "waiting_idle" {
        text.push_str(&format!(
            "  (switchover waits for {} calls)",
            status.switchover.waiting_calls
        ));
    }
    text.push('\n');
    if !status.failback.policy.is_empty() && status.failback.policy != "never" {
        text.push_str(&format!(
            "failback    {}  {}\n",
            status.failback.policy,
            if status.failback.time_left.is_empty() {
                "nothing pending"
            } else {
                &status.failback.time_left
            }
        ));
    }
    for service in &status.services {
        let peer_copy = peer
            .services
            .iter()
            .find(|copy| copy.name == service.name)
            .map_or("-", |copy| copy.state.as_str());
        text.push_str(&format!(
            "service     {:<12} {:<9} {:<9} pid {}  restarts {}  run_on {}{}  peer {peer_copy}\n",
            service.name,
            service.state,
            if service.healthy {
                "healthy"
            } else {
                "unhealthy"
            },
            service
                .pid
                .map_or_else(|| "-".to_string(), |pid| pid.to_string()),
            service.restarts,
            service.run_on,
            if service.critical { "  critical" } else { "" },
        ));
        if !service.last_exit.is_empty() && !service.healthy {
            text.push_str(&format!("            last: {}\n", service.last_exit));
        }
    }
    for files in &status.files {
        let last = files.last_sync.map_or_else(
            || "never".to_string(),
            |ms| format_time(i64::try_from(ms).unwrap_or(i64::MAX)),
        );
        text.push_str(&format!(
            "files       {:<12} pending {} files, {} bytes  last sync {last}\n",
            files.name, files.pending_files, files.pending_bytes
        ));
        if !files.error.is_empty() {
            text.push_str(&format!("            error: {}\n", files.error));
        }
    }
    let witness = &status.witness;
    if witness.kind != "none" {
        text.push_str(&format!(
            "witness     {} {}  votes for {} ms  last answer: {}\n",
            witness.address, witness.state, witness.lease_left_ms, witness.vote
        ));
    }
    if peer.version_mismatch || peer.config_mismatch {
        text.push_str("warning     the peer's version or shared settings differ (see events)\n");
    }
    text
}

pub async fn history(client: &mut AdminClient<Channel>, json: bool) -> Result<(), Failure> {
    let terms = client
        .history(pb::HistoryRequest {})
        .await
        .map_err(rpc_failure)?
        .into_inner()
        .terms;
    if json {
        let rows: Vec<_> = terms
            .iter()
            .map(|t| serde_json::json!({"epoch": t.epoch, "node": t.node, "started_at_ms": t.started_at_ms, "reason": t.reason}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!("{:>6}  {:<10} {:<24} reason", "epoch", "node", "started");
    for term in terms {
        println!(
            "{:>6}  {:<10} {:<24} {}",
            term.epoch,
            term.node,
            format_time(term.started_at_ms),
            term.reason
        );
    }
    Ok(())
}

pub async fn events(
    client: &mut AdminClient<Channel>,
    follow: bool,
    limit: u32,
    json: bool,
) -> Result<(), Failure> {
    let mut stream = client
        .events(pb::EventsRequest { follow, limit })
        .await
        .map_err(rpc_failure)?
        .into_inner();
    while let Some(event) = stream.message().await.map_err(rpc_failure)? {
        if json {
            println!(
                "{}",
                serde_json::json!({"id": event.id, "at_ms": event.at_ms, "kind": event.kind, "message": event.message})
            );
        } else {
            println!(
                "{}  {:<20} {}",
                format_time(event.at_ms),
                event.kind,
                event.message
            );
        }
    }
    Ok(())
}

/// UTC time of a Unix timestamp in milliseconds, as "2026-11-24 03:04:05.678Z".
pub fn format_time(at_ms: i64) -> String {
    let seconds = at_ms.div_euclid(1000);
    let millis = at_ms.rem_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let time_of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{millis:03}Z",
        time_of_day / 3600,
        time_of_day % 3600 / 60,
        time_of_day % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), after Howard Hinnant's civil calendar algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = u32::try_from(day_of_year - (153 * month_index + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    })
    .unwrap_or(1);
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_unix_milliseconds_as_utc() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00.000Z");
        assert_eq!(format_time(1_795_000_000_123), "2026-11-18 11:06:40.123Z");
        assert_eq!(format_time(951_782_400_000), "2000-02-29 00:00:00.000Z");
    }
}
