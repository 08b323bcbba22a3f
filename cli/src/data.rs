//! The database commands: `sql`, `verify`, `resync` (`--to-peer`, `--from-peer`, `--files`) and
//! `conflicts`.

use tandem_proto::admin as pb;
use tandem_proto::admin::admin_client::AdminClient;
use tonic::transport::Channel;

use crate::connect::fetch_status;
use crate::failure::{Failure, rpc_failure};

pub async fn sql(
    client: &mut AdminClient<Channel>,
    statement: String,
    json: bool,
) -> Result<(), Failure> {
    let reply = client
        .sql(pb::SqlRequest { sql: statement })
        .await
        .map_err(rpc_failure)?
        .into_inner();
    let rows: Vec<serde_json::Value> = reply
        .rows_json
        .iter()
        .map(|row| serde_json::from_str(row).unwrap_or(serde_json::Value::Null))
        .collect();
    if json {
        let out = serde_json::json!({
            "node": reply.node,
            "columns": reply.columns,
            "rows": rows,
            "rows_affected": reply.rows_affected,
            "log_index": reply.log_index,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    if reply.columns.is_empty() {
        let affected: u64 = reply.rows_affected.iter().sum();
        println!(
            "{affected} rows changed on {} (log index {})",
            reply.node, reply.log_index
        );
        return Ok(());
    }
    println!("{}", reply.columns.join(" | "));
    for row in &rows {
        let cells: Vec<String> = row
            .as_array()
            .map(|cells| {
                cells
                    .iter()
                    .map(|cell| match cell {
                        serde_json::Value::String(text) => text.clone(),
                        other => other.to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        println!("{}", cells.join(" | "));
    }
    println!("({} rows from {})", rows.len(), reply.node);
    Ok(())
}

pub async fn resync_files(client: &mut AdminClient<Channel>, json: bool) -> Result<(), Failure> {
    let reply = client
        .resync(pb::ResyncRequest {
            direction: "files".into(),
        })
        .await
        .map_err(rpc_failure)?
        .into_inner();
    if json {
        println!("{}", serde_json::json!({ "message": reply.message }));
    } else {
        println!("{}", reply.message);
    }
    Ok(())
}

pub async fn resync(
    client: &mut AdminClient<Channel>,
    to_peer: bool,
    no_wait: bool,
    json: bool,
) -> Result<(), Failure> {
    let direction = if to_peer { "to_peer" } else { "from_peer" };
    let reply = client
        .resync(pb::ResyncRequest {
            direction: direction.into(),
        })
        .await
        .map_err(rpc_failure)?
        .into_inner();
    if json {
        println!("{}", serde_json::json!({ "message": reply.message }));
    } else {
        println!("{}", reply.message);
    }
    if no_wait {
        return Ok(());
    }
    // Progress is on this node's status: the sender's bytes sent, the receiver's received.
    let started = std::time::Instant::now();
    let deadline = started + std::time::Duration::from_secs(3600);
    let mut seen = false;
    let mut last_shown = -1i64;
    loop {
        let status = fetch_status(client).await?;
        match status.replication.snapshot_progress {
            Some(fraction) => {
                seen = true;
                let percent = (fraction * 100.0).floor() as i64;
                if percent / 10 != last_shown / 10 && !json {
                    println!("snapshot {percent}%");
                    last_shown = percent;
                }
            }
            None if seen => break,
            // A small copy can be over before the first look.
            None if started.elapsed() > std::time::Duration::from_secs(5) => break,
            None => {}
        }
        if std::time::Instant::now() > deadline {
            return Err(Failure("the snapshot did not finish within an hour".into()));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    if !json {
        println!("snapshot sent; see `tandemctl events` and `tandemctl verify`");
    }
    Ok(())
}

pub async fn verify(client: &mut AdminClient<Channel>, json: bool) -> Result<(), Failure> {
    let reply = client
        .verify(pb::VerifyRequest {})
        .await
        .map_err(rpc_failure)?
        .into_inner();
    if json {
        let tables: Vec<_> = reply
            .tables
            .iter()
            .map(|t| {
                serde_json::json!({"table": t.table, "local_rows": t.local_rows,
                    "peer_rows": t.peer_rows, "same": t.same})
            })
            .collect();
        let out = serde_json::json!({"index": reply.index, "node": reply.node,
            "peer": reply.peer, "identical": reply.identical, "tables": tables});
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "compared {} and {} at log index {}",
            reply.node, reply.peer, reply.index
        );
        for table in &reply.tables {
            println!(
                "  {:<24} {:>8} rows here  {:>8} rows on the peer  {}",
                table.table,
                table.local_rows,
                table.peer_rows,
                if table.same { "same" } else { "DIFFERENT" }
            );
        }
    }
    if reply.identical {
        if !json {
            println!("identical");
        }
        Ok(())
    } else {
        let differ: Vec<_> = reply
            .tables
            .iter()
            .filter(|t| !t.same)
            .map(|t| t.table.as_str())
            .collect();
        Err(Failure(format!("tables differ: {}", differ.join(", "))))
    }
}

pub async fn conflicts(
    client: &mut AdminClient<Channel>,
    limit: u32,
    json: bool,
) -> Result<(), Failure> {
    let reply = client
        .conflicts(pb::ConflictsRequest { limit })
        .await
        .map_err(rpc_failure)?
        .into_inner();
    if json {
        let rows: Vec<_> = reply
            .conflicts
            .iter()
            .map(|c| {
                serde_json::json!({"at_ms": c.at_ms, "table": c.table, "primary_key": c.primary_key,
                    "reason": c.reason, "losing_image": c.losing_image, "kept_image": c.kept_image,
                    "losing_hlc": c.losing_hlc, "kept_hlc": c.kept_hlc,
                    "during_merge": c.during_merge})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if reply.conflicts.is_empty() {
        println!("no conflicts");
        return Ok(());
    }
    let during = reply.conflicts.iter().filter(|c| c.during_merge).count();
    println!(
        "{} {}; {during} decided against a write made during the merge",
        reply.conflicts.len(),
        plural(reply.conflicts.len(), "conflict", "conflicts")
    );
    let image = |text: &str| {
        if text.is_empty() {
            "(deleted)".to_string()
        } else {
            text.to_string()
        }
    };
    let stamp = |text: &str| {
        if text.is_empty() {
            String::new()
        } else {
            format!("  stamp {text}")
        }
    };
    for conflict in &reply.conflicts {
        println!(
            "{}  {} {}  {}{}\n    lost: {}{}\n    kept: {}{}",
            conflict.at_ms,
            conflict.table,
            conflict.primary_key,
            conflict.reason,
            if conflict.during_merge {
                "  (decided against a write made during the merge)"
            } else {
                ""
            },
            image(&conflict.losing_image),
            stamp(&conflict.losing_hlc),
            image(&conflict.kept_image),
            stamp(&conflict.kept_hlc),
        );
    }
    Ok(())
}

/// `one` for a count of 1, `many` otherwise.
fn plural(count: usize, one: &'static str, many: &'static str) -> &'static str {
    if count == 1 { one } else { many }
}
