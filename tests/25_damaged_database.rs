//! A database file truncated while its node was stopped: the node detects it at start, reports
//! `inconsistent`, keeps the damaged file aside, never serves from it, and recovers with a full
//! copy from its peer; afterwards both databases are identical.

mod common;

use common::data::*;
use common::*;
use tandem_harness::{Cluster, ClusterSpec};

/// The live data.db of a node (behind its CURRENT generation pointer).
fn data_db(cluster: &Cluster, node: &str) -> anyhow::Result<std::path::PathBuf> {
    let dir = cluster.data_dir(node);
    let current = std::fs::read_to_string(dir.join("CURRENT"))?;
    Ok(dir.join(current.trim()).join("data.db"))
}

#[test]
fn a_truncated_database_is_detected_reported_and_recovered_from_the_peer() -> anyhow::Result<()> {
    let _serial = serial();
    let dir = tempfile::tempdir()?;
    let mut cluster = Cluster::start(with_schema(ClusterSpec::new(), dir.path()), &bins())?;
    wait_steady(&cluster, "a")?;
    let runtime = tokio::runtime::Runtime::new()?;

    phase("rows written on a reach b");
    runtime.block_on(async {
        let mut client = client(&cluster, "a").await?;
        for i in 0..300 {
            let insert = || {
                vec![statement(
                    "INSERT INTO notes (id, body) VALUES (?, ?)",
                    vec![text(&format!("n{i}")), text(&"p".repeat(500))],
                )]
            };
            execute_retrying(&mut client, &format!("damage-{i}"), insert()).await?;
        }
        anyhow::Ok(())
    })?;
    wait_in_sync(&cluster, "a")?;

    phase("stop b, truncate its data.db to half, start it again");
    cluster.node_mut("b").terminate_and_wait(WAIT)?;
    let db = data_db(&cluster, "b")?;
    let length = std::fs::metadata(&db)?.len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&db)?
        .set_len(length / 2)?;
    cluster.node_mut("b").restart()?;
    let message = wait_event(&cluster, "b", "disk_damaged", "truncated")?;
    assert!(message.contains("full copy from its peer"), "{message}");
    let kept: Vec<_> = std::fs::read_dir(cluster.data_dir("b"))?
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("damaged-"))
        .collect();
    assert!(!kept.is_empty(), "the damaged file is kept");

    phase("b recovers by a full copy from a: consistent, every row, verify identical");
    cluster.wait_until(WAIT * 2, "b consistent again", |c| {
        let b = c.status("b")?;
        Ok((b["node"]["disk"] == "consistent" && b["node"]["role"] == "passive").then_some(()))
    })?;
    assert_eq!(role(&cluster.status("a")?), "active");
    let rows = runtime.block_on(async {
        let mut client = client(&cluster, "b").await?;
        count(&mut client, "notes").await
    })?;
    assert_eq!(rows, 300);
    let events = events(&cluster, "b")?;
    assert!(
        events.iter().any(|(kind, _)| kind == "snapshot"),
        "b took a snapshot: {events:?}"
    );
    let verify = cluster.ctl_ok("a", &["verify", "--json"])?;
    let verify: serde_json::Value = serde_json::from_str(&verify)?;
    assert_eq!(verify["identical"], true, "{verify}");
    Ok(())
}
