//! The replicated database end to end: writes on the active reach the passive; the passive
//! refuses writes and names the active; bad requests get clear errors; `verify` compares.

mod common;

use common::data::*;
use common::*;
use tandem_harness::{Cluster, ClusterSpec};

fn start(dir: &tempfile::TempDir) -> anyhow::Result<Cluster> {
    Cluster::start(with_schema(ClusterSpec::new(), dir.path()), &bins())
}

#[test]
fn rows_written_on_the_active_reach_the_passive_and_the_passive_refuses_writes()
-> anyhow::Result<()> {
    let _serial = serial();
    let dir = tempfile::tempdir()?;
    let cluster = start(&dir)?;
    wait_steady(&cluster, "a")?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let mut a = client(&cluster, "a").await?;
        let mut b = client(&cluster, "b").await?;

        phase("write 50 rows on a, one with a BLOB of every byte value");
        let all_bytes: Vec<u8> = (0..=255).collect();
        for id in 0..50 {
            let payload = if id == 7 {
                blob(&all_bytes)
            } else {
                blob(b"x")
            };
            let reply = execute(
                &mut a,
                &format!("req-{id}"),
                vec![statement(
                    "INSERT INTO extensions (id, name, payload) VALUES (?, ?, ?)",
                    vec![int(id), text(&format!("ext-{id}")), payload],
                )],
            )
            .await?;
            assert_eq!(reply.rows_affected, vec![1]);
            assert!(reply.log_index > 0);
        }

        phase("the acknowledged rows are on b (sync mode)");
        assert_eq!(count(&mut b, "extensions").await?, 50);
        let rows = query(&mut b, "SELECT payload FROM extensions WHERE id = 7", true).await?;
        assert_eq!(rows[0][0], blob(&all_bytes), "the BLOB round-trips exactly");

        phase("a retry with the same request id is answered, not run again");
        let again = execute(
            &mut a,
            "req-3",
            vec![statement(
                "INSERT INTO extensions (id, name) VALUES (1000, 'dup')",
                Vec::new(),
            )],
        )
        .await?;
        assert!(again.replayed);
        assert_eq!(again.rows_affected, vec![1]);
        assert_eq!(count(&mut a, "extensions").await?, 50);

        phase("b refuses writes with the active's address");
        let refused = execute(
            &mut b,
            "req-b",
            vec![statement("DELETE FROM extensions", Vec::new())],
        )
        .await
        .expect_err("the passive refuses writes");
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
        let address = cluster.addrs("a").client.to_string();
        assert!(
            refused.message().contains(&address),
            "{}",
            refused.message()
        );
        assert_eq!(
            refused
                .metadata()
                .get("tandem-active-client-address")
                .and_then(|v| v.to_str().ok()),
            Some(address.as_str())
        );
        let stale = query(&mut b, "SELECT count(*) FROM extensions", false)
            .await
            .expect_err("a read on the passive needs allow_stale");
        assert_eq!(stale.code(), tonic::Code::FailedPrecondition);

        phase("bad requests get clear errors");
        let bad = execute(
            &mut a,
            "bad-1",
            vec![statement("INSERT INTO nowhere VALUES (1)", vec![])],
        )
        .await
        .expect_err("bad SQL");
        assert_eq!(bad.code(), tonic::Code::InvalidArgument);
        assert!(bad.message().contains("nowhere"), "{}", bad.message());
        let ddl = execute(
            &mut a,
            "bad-2",
            vec![statement("DROP TABLE extensions", vec![])],
        )
        .await
        .expect_err("DDL through Execute");
        assert_eq!(ddl.code(), tonic::Code::InvalidArgument);
        let pragma = execute(
            &mut a,
            "bad-3",
            vec![statement("PRAGMA foreign_keys = OFF", vec![])],
        )
        .await
        .expect_err("PRAGMA through Execute");
        assert_eq!(pragma.code(), tonic::Code::InvalidArgument);
        let forged = execute(
            &mut a,
            "bad-3b",
            vec![statement("DELETE FROM tandem_requests", vec![])],
        )
        .await
        .expect_err("a write to the node's request ids");
        assert_eq!(forged.code(), tonic::Code::InvalidArgument);
        assert!(
            forged.message().contains("tandem_requests"),
            "{}",
            forged.message()
        );
        let huge = "x".repeat(2 * 1024 * 1024);
        let oversize = execute(
            &mut a,
            "bad-4",
            vec![statement(&format!("SELECT '{huge}'"), vec![])],
        )
        .await
        .expect_err("oversize SQL");
        assert_eq!(oversize.code(), tonic::Code::InvalidArgument);
        assert!(
            oversize.message().contains("too large"),
            "{}",
            oversize.message()
        );
        let unique = execute(
            &mut a,
            "bad-5",
            vec![statement(
                "INSERT INTO extensions (id, name) VALUES (999, 'ext-1')",
                vec![],
            )],
        )
        .await
        .expect_err("UNIQUE clash");
        assert!(unique.message().contains("UNIQUE"), "{}", unique.message());
        let no_id = execute(
            &mut a,
            "",
            vec![statement("DELETE FROM extensions", vec![])],
        )
        .await
        .expect_err("no request id");
        assert_eq!(no_id.code(), tonic::Code::InvalidArgument);
        assert_eq!(
            count(&mut a, "extensions").await?,
            50,
            "nothing bad was written"
        );
        anyhow::Ok(())
    })?;

    phase("verify reports the two databases identical; sql runs on the active from b");
    let verify = cluster.ctl_ok("a", &["verify"])?;
    assert!(verify.contains("identical"), "{verify}");
    let sql = cluster.ctl_ok("b", &["sql", "SELECT count(*) FROM extensions"])?;
    assert!(sql.contains("50") && sql.contains("from a"), "{sql}");
    let status = cluster.status("a")?;
    assert_eq!(status["replication"]["mode"], "sync");
    assert_eq!(status["replication"]["degraded"], false);
    Ok(())
}

#[test]
fn a_replicated_table_without_a_primary_key_stops_tandemd_with_a_clear_error() -> anyhow::Result<()>
{
    let _serial = serial();
    let dir = tempfile::tempdir()?;
    let spec = with_schema(ClusterSpec::new(), dir.path()).set(
        "a",
        "replication.tables",
        toml::Value::Array(vec!["extensions".into(), "loose".into()]),
    );
    let mut cluster = Cluster::prepare(spec, &bins())?;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tandemd"))
        .arg("--config")
        .arg(cluster.config_path("a"))
        .output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("\"loose\" has no primary key"), "{stderr}");
    cluster.start_node("b")?;
    Ok(())
}

/// Both directions of the peer link through the fault proxy.
fn set_link(cluster: &Cluster, mode: tandem_harness::Mode) -> anyhow::Result<()> {
    cluster.proxy("a", "b").set_mode(mode)?;
    cluster.proxy("b", "a").set_mode(mode)?;
    Ok(())
}

/// Inserts `count` rows `<prefix>-<n>` into `notes`, one write each.
async fn insert_notes(
    client: &mut tandem_proto::data::data_client::DataClient<tonic::transport::Channel>,
    prefix: &str,
    count: usize,
) -> anyhow::Result<()> {
    for n in 0..count {
        let id = format!("{prefix}-{n}");
        execute(
            client,
            &id,
            vec![statement(
                "INSERT INTO notes (id, body) VALUES (?, 'written in the split')",
                vec![text(&id)],
            )],
        )
        .await?;
    }
    Ok(())
}

/// Asserts that every acknowledged row id is in `notes` on `node`.
fn assert_all_present(
    runtime: &tokio::runtime::Runtime,
    cluster: &Cluster,
    node: &str,
    acked: &[String],
) -> anyhow::Result<()> {
    runtime.block_on(async {
        let mut client = client(cluster, node).await?;
        // Page by id: a query returns at most 10,000 rows.
        let mut present = std::collections::HashSet::new();
        let mut after = String::new();
        loop {
            let sql = format!("SELECT id FROM notes WHERE id > '{after}' ORDER BY id LIMIT 5000");
            let rows = query(&mut client, &sql, false).await?;
            let ids: Vec<String> = rows
                .iter()
                .filter_map(|row| match &row[0].kind {
                    Some(tandem_proto::data::value::Kind::Text(id)) => Some(id.clone()),
                    _ => None,
                })
                .collect();
            let Some(last) = ids.last() else { break };
            after = last.clone();
            present.extend(ids);
        }
        let missing: Vec<&String> = acked.iter().filter(|id| !present.contains(*id)).collect();
        assert!(missing.is_empty(), "acknowledged rows lost: {missing:?}");
        anyhow::Ok(())
    })
}

/// Waits until `writers` acknowledged `more` rows beyond those acknowledged now.
fn wait_acked(cluster: &Cluster, writers: &Writers, more: u64) -> anyhow::Result<()> {
    let target = writers.acked() + more;
    cluster.wait_until(WAIT, &format!("{more} more acknowledged writes"), |_| {
        Ok((writers.acked() >= target).then_some(()))
    })
}

#[test]
fn no_acknowledged_row_is_lost_over_five_kills_of_the_active_under_concurrent_writers()
-> anyhow::Result<()> {
    let _serial = serial();
    let dir = tempfile::tempdir()?;
    let mut cluster = start(&dir)?;
    wait_steady(&cluster, "a")?;
    let runtime = tokio::runtime::Runtime::new()?;
    let writers = Writers::start(&cluster, 8, &runtime);
    let mut active = "a";
    for kill in 1..=5 {
        wait_acked(&cluster, &writers, 100)?;
        phase(&format!("kill {kill}: SIGKILL {active} under 8 writers"));
        cluster.node_mut(active).kill()?;
        let survivor = other(active);
        wait_serving(&cluster, survivor)?;
        wait_acked(&cluster, &writers, 50)?;
        phase(&format!(
            "restart {active}: it rejoins as passive and catches up"
        ));
        cluster.start_node(active)?;
        wait_steady(&cluster, survivor)?;
        wait_in_sync(&cluster, survivor)?;
        active = survivor;
    }
    let acked = writers.stop(&runtime);
    phase(&format!(
        "{} acknowledged rows; all on the active",
        acked.len()
    ));
    wait_in_sync(&cluster, active)?;
    assert_all_present(&runtime, &cluster, active, &acked)?;
    let verify = cluster.ctl_ok(active, &["verify"])?;
    assert!(verify.contains("identical"), "{verify}");
    Ok(())
}

#[test]
fn a_node_down_through_ten_thousand_writes_catches_up_from_the_log() -> anyhow::Result<()> {
    let _serial = serial();
    let dir = tempfile::tempdir()?;
    let mut cluster = start(&dir)?;
    wait_steady(&cluster, "a")?;
    phase("stop b, write 10,000 rows on a");
    cluster.node_mut("b").kill()?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for writer in 0..10 {
            let mut a = client(&cluster, "a").await?;
            tasks.push(tokio::spawn(async move {
                for n in 0..1000 {
                    let id = format!("c{writer}-{n}");
                    execute(
                        &mut a,
                        &id,
                        vec![statement(
                            "INSERT INTO notes (id, body) VALUES (?, ?)",
                            vec![text(&id), text("while b was down")],
                        )],
                    )
                    .await?;
                }
                anyhow::Ok(())
            }));
        }
        for task in tasks {
            task.await??;
        }
        anyhow::Ok(())
    })?;
    let status = cluster.status("a")?;
    assert_eq!(
        status["replication"]["degraded"], true,
        "a degraded without b"
    );
    phase("restart b: it catches up from the log and a returns to sync");
    cluster.start_node("b")?;
    wait_steady(&cluster, "a")?;
    wait_in_sync(&cluster, "a")?;
    let status = cluster.status("a")?;
    assert_eq!(status["replication"]["degraded"], false);
    let verify = cluster.ctl_ok("a", &["verify"])?;
    assert!(verify.contains("identical"), "{verify}");
    runtime.block_on(async {
        let mut b = client(&cluster, "b").await?;
        assert_eq!(count(&mut b, "notes").await?, 10_000);
        anyhow::Ok(())
    })?;
    Ok(())
}

#[test]
fn a_split_brain_heals_to_identical_databases_with_every_write_kept_or_in_conflicts()
-> anyhow::Result<()> {
    use tandem_harness::Mode;
    let _serial = serial();
    let dir = tempfile::tempdir()?;
    let spec = with_schema(ClusterSpec::new().with_proxies(true), dir.path())
        .set_all("replication.sync_timeout", "300ms");
    let cluster = Cluster::start(spec, &bins())?;
    wait_steady(&cluster, "a")?;
    let runtime = tokio::runtime::Runtime::new()?;
    let one = |sql: &str, params| vec![statement(sql, params)];
    runtime.block_on(async {
        let mut a = client(&cluster, "a").await?;
        for id in 1..=5 {
            execute(
                &mut a,
                &format!("base-{id}"),
                one(
                    "INSERT INTO extensions (id, name) VALUES (?, ?)",
                    vec![int(id), text(&format!("ext-{id}"))],
                ),
            )
            .await?;
        }
        anyhow::Ok(())
    })?;
    wait_in_sync(&cluster, "a")?;

    phase("partition: b takes over while a stays active; both take writes");
    set_link(&cluster, Mode::Blackhole)?;
    wait_serving(&cluster, "b")?;
    runtime.block_on(async {
        let mut a = client(&cluster, "a").await?;
        let mut b = client(&cluster, "b").await?;
        execute(
            &mut a,
            "a-1",
            one(
                "INSERT INTO notes (id, body) VALUES ('a-only', 'a')",
                vec![],
            ),
        )
        .await?;
        execute(
            &mut a,
            "a-2",
            one("UPDATE extensions SET name = 'from-a' WHERE id = 1", vec![]),
        )
        .await?;
        execute(
            &mut a,
            "a-3",
            one(
                "INSERT INTO extensions (id, name) VALUES (100, 'clash')",
                vec![],
            ),
        )
        .await?;
        // One transaction that inserts a row and then updates it.
        execute(
            &mut a,
            "a-4",
            vec![
                statement(
                    "INSERT INTO notes (id, body) VALUES ('a-multi', 'first')",
                    vec![],
                ),
                statement(
                    "UPDATE notes SET body = 'second' WHERE id = 'a-multi'",
                    vec![],
                ),
            ],
        )
        .await?;
        // A write a client sent to a, then retried on b with the same request id.
        let twice = || {
            one(
                "INSERT INTO extensions (name) VALUES ('sent-twice')",
                vec![],
            )
        };
        execute(&mut a, "client-retry", twice()).await?;
        execute(&mut b, "client-retry", twice()).await?;
        execute(
            &mut b,
            "b-1",
            one(
                "INSERT INTO notes (id, body) VALUES ('b-only', 'b')",
                vec![],
            ),
        )
        .await?;
        execute(
            &mut b,
            "b-2",
            one("UPDATE extensions SET name = 'from-b' WHERE id = 1", vec![]),
        )
        .await?;
        execute(
            &mut b,
            "b-3",
            one(
                "INSERT INTO extensions (id, name) VALUES (200, 'clash')",
                vec![],
            ),
        )
        .await?;
        anyhow::Ok(())
    })?;

    phase("heal: a demotes, rewinds its suffix into orphans, b merges them back");
    set_link(&cluster, Mode::Pass)?;
    wait_steady(&cluster, "b")?;
    wait_event(&cluster, "a", "merge", "orphans table")?;
    wait_event(&cluster, "b", "merge", "merge-back")?;
    wait_in_sync(&cluster, "b")?;
    cluster.wait_until(WAIT, "a's orphans to be back through replication", |c| {
        Ok((c.status("a")?["replication"]["orphans"] == 0).then_some(()))
    })?;
    let verify = cluster.ctl_ok("b", &["verify"])?;
    assert!(verify.contains("identical"), "{verify}");

    phase("every write is present or in the conflicts table");
    runtime.block_on(async {
        let mut b = client(&cluster, "b").await?;
        let notes = query(&mut b, "SELECT id, body FROM notes ORDER BY id", false).await?;
        assert_eq!(
            notes,
            vec![
                vec![text("a-multi"), text("second")],
                vec![text("a-only"), text("a")],
                vec![text("b-only"), text("b")],
            ]
        );
        let twice = query(
            &mut b,
            "SELECT count(*) FROM extensions WHERE name = 'sent-twice'",
            false,
        )
        .await?;
        assert_eq!(
            twice,
            vec![vec![int(1)]],
            "the retried write is applied once"
        );
        let one_row = query(&mut b, "SELECT name FROM extensions WHERE id = 1", false).await?;
        assert_eq!(
            one_row,
            vec![vec![text("from-b")]],
            "b's later update wins (newest)"
        );
        let clash = query(
            &mut b,
            "SELECT id FROM extensions WHERE name = 'clash'",
            false,
        )
        .await?;
        assert_eq!(clash, vec![vec![int(200)]]);
        anyhow::Ok(())
    })?;
    let conflicts = cluster.ctl_ok("a", &["conflicts", "--json"])?;
    let conflicts: serde_json::Value = serde_json::from_str(&conflicts)?;
    let lost: Vec<String> = conflicts
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|row| row["losing_image"].to_string())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        lost.iter().any(|image| image.contains("from-a")),
        "{conflicts}"
    );
    assert!(
        !lost.iter().any(|image| image.contains("sent-twice")),
        "the retried write is not a conflict either: {conflicts}"
    );
    assert!(
        lost.iter()
            .any(|image| image.contains("clash") && image.contains("100")),
        "{conflicts}"
    );
    Ok(())
}

#[test]
fn a_crash_of_the_active_in_the_middle_of_a_merge_back_loses_no_orphan() -> anyhow::Result<()> {
    use tandem_harness::Mode;
    let _serial = serial();
    let dir = tempfile::tempdir()?;
    let spec = with_schema(ClusterSpec::new().with_proxies(true), dir.path())
        .set_all("replication.sync_timeout", "300ms");
    let mut cluster = Cluster::start(spec, &bins())?;
    wait_steady(&cluster, "a")?;
    let runtime = tokio::runtime::Runtime::new()?;

    phase("partition; a writes 200 rows that only it has");
    set_link(&cluster, Mode::Blackhole)?;
    wait_serving(&cluster, "b")?;
    runtime.block_on(async {
        let mut a = client(&cluster, "a").await?;
        let mut b = client(&cluster, "b").await?;
        insert_notes(&mut a, "orphan", 200).await?;
        execute(
            &mut b,
            "b-1",
            vec![statement(
                "INSERT INTO notes (id, body) VALUES ('on-b', 'b')",
                vec![],
            )],
        )
        .await?;
        anyhow::Ok(())
    })?;

    phase("heal, and SIGKILL b as soon as a has rewound its suffix into orphans");
    set_link(&cluster, Mode::Pass)?;
    wait_event(&cluster, "a", "merge", "orphans table")?;
    cluster.node_mut("b").kill()?;

    phase("a keeps its orphans; outdated, it takes over only with --force, then merges them");
    let a = cluster.wait_until(WAIT, "a to see b gone", |c| {
        let status = c.status("a")?;
        Ok((status["peer"]["state"] == "failed").then_some(status))
    })?;
    if role(&a) != "active" {
        cluster.ctl_ok("a", &["failover-now", "--force"])?;
    }
    wait_serving(&cluster, "a")?;
    cluster.wait_until(WAIT, "a's own orphans merged", |c| {
        Ok((c.status("a")?["replication"]["orphans"] == 0).then_some(()))
    })?;
    cluster.start_node("b")?;
    wait_steady(&cluster, "a")?;
    wait_in_sync(&cluster, "a")?;
    runtime.block_on(async {
        let mut a = client(&cluster, "a").await?;
        let rows = query(
            &mut a,
            "SELECT count(*) FROM notes WHERE id LIKE 'orphan-%'",
            false,
        )
        .await?;
        assert_eq!(rows, vec![vec![int(200)]], "every orphan is back");
        anyhow::Ok(())
    })?;
    let verify = cluster.ctl_ok("a", &["verify"])?;
    assert!(verify.contains("identical"), "{verify}");
    Ok(())
}

/// Writes `rows` rows of `bytes` bytes each into `extensions` on `node`, from 8 writers.
fn write_rows(
    runtime: &tokio::runtime::Runtime,
    cluster: &Cluster,
    node: &str,
    first: i64,
    rows: i64,
    bytes: usize,
) -> anyhow::Result<()> {
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for writer in 0..8 {
            let mut client = client(cluster, node).await?;
            tasks.push(tokio::spawn(async move {
                let payload = vec![writer as u8; bytes];
                let mut id = first + writer;
                while id < first + rows {
                    execute_retrying(
                        &mut client,
                        &format!("row-{id}"),
                        vec![statement(
                            "INSERT INTO extensions (id, name, payload) VALUES (?, ?, ?)",
                            vec![int(id), text(&format!("ext-{id}")), blob(&payload)],
                        )],
                    )
                    .await?;
                    id += 8;
                }
                anyhow::Ok(())
            }));
        }
        for task in tasks {
            task.await??;
        }
        anyhow::Ok(())
    })
}

#[test]
fn a_node_down_past_retention_catches_up_by_snapshot() -> anyhow::Result<()> {
    let _serial = serial();
    let dir = tempfile::tempdir()?;
    let spec = with_schema(ClusterSpec::new(), dir.path())
        .set_all("replication.log_retention.entries", 50)
        .ctl_timeout(std::time::Duration::from_secs(60));
    let mut cluster = Cluster::start(spec, &bins())?;
    wait_steady(&cluster, "a")?;
    let runtime = tokio::runtime::Runtime::new()?;
    write_rows(&runtime, &cluster, "a", 0, 20, 10)?;
    wait_in_sync(&cluster, "a")?;

    phase("b down through 500 writes, far past a retention of 50 entries");
    cluster.node_mut("b").kill()?;
    write_rows(&runtime, &cluster, "a", 1000, 500, 100)?;

    phase("b comes back: a sends a snapshot, b installs it and continues from the log");
    cluster.start_node("b")?;
    wait_event(&cluster, "b", "snapshot", "installed")?;
    // b's position is below a's retention, so a cannot check it: b keeps its old database.
    wait_event(&cluster, "b", "diverged", "kept as")?;
    assert_eq!(diverged_files(&cluster, "b")?.len(), 1);
    wait_in_sync(&cluster, "a")?;
    let verify = cluster.ctl_ok("a", &["verify"])?;
    assert!(verify.contains("identical"), "{verify}");
    runtime.block_on(async {
        let mut b = client(&cluster, "b").await?;
        assert_eq!(count(&mut b, "extensions").await?, 520);
        anyhow::Ok(())
    })?;

    phase("resync --from-peer on b forces a full copy again, with progress");
    let out = cluster.ctl_ok("b", &["resync", "--from-peer"])?;
    assert!(
        out.contains("full copy") && out.contains("snapshot"),
        "{out}"
    );
    cluster.wait_until(WAIT, "a second snapshot installed on b", |c| {
        let installed = events(c, "b")?
            .iter()
            .filter(|(kind, message)| kind == "snapshot" && message.contains("installed"))
            .count();
        Ok((installed >= 2).then_some(()))
    })?;
    wait_in_sync(&cluster, "a")?;
    let verify = cluster.ctl_ok("a", &["verify"])?;
    assert!(verify.contains("identical"), "{verify}");
    Ok(())
}

#[test]
fn the_active_dying_mid_snapshot_leaves_the_passive_inconsistent_and_not_active()
-> anyhow::Result<()> {
    let _serial = serial();
    let dir = tempfile::tempdir()?;
    let spec = with_schema(ClusterSpec::new(), dir.path())
        .set_all("replication.log_retention.entries", 50)
        .set_all("replication.resync_rate", "128KiB");
    let mut cluster = Cluster::start(spec, &bins())?;
    wait_steady(&cluster, "a")?;
    let runtime = tokio::runtime::Runtime::new()?;
    cluster.node_mut("b").kill()?;
    phase("2 MiB written while b is down; b needs a snapshot sent at 128 KiB/s");
    write_rows(&runtime, &cluster, "a", 0, 256, 8 * 1024)?;
    cluster.start_node("b")?;
    cluster.wait_until(WAIT, "b receiving the snapshot", |c| {
        let status = c.status("b")?;
        let receiving = status["replication"]["snapshot_progress"]
            .as_f64()
            .unwrap_or(0.0)
            > 0.0;
        Ok((receiving && status["node"]["disk"] == "inconsistent").then_some(()))
    })?;

    phase("SIGKILL a mid-snapshot: b stays inconsistent, does not promote, and says why");
    cluster.node_mut("a").kill()?;
    cluster.wait_until(WAIT, "b to see a gone", |c| {
        Ok((c.status("b")?["peer"]["state"] == "failed").then_some(()))
    })?;
    let said = cluster.wait_until(WAIT, "b to say why it does not take over", |c| {
        let said = events(c, "b")?;
        let why = said.iter().any(|(kind, message)| {
            (kind == "role_change" || kind == "failover_suppressed")
                && message.contains("inconsistent")
        });
        Ok(why.then_some(said))
    })?;
    assert!(
        said.iter()
            .any(|(kind, message)| kind == "snapshot" && message.contains("stopped before")),
        "{said:?}"
    );
    let status = cluster.status("b")?;
    assert_ne!(role(&status), "active");
    assert_eq!(status["node"]["disk"], "inconsistent");
    let refused = cluster.ctl("b", &["failover-now", "--force"])?;
    assert_eq!(
        refused.status.code(),
        Some(1),
        "an inconsistent node never promotes"
    );

    phase(
        "SIGKILL b too; restart both: b opens its old, whole database and a sends a new snapshot",
    );
    cluster.node_mut("b").kill()?;
    cluster.start_node("a")?;
    cluster.start_node("b")?;
    wait_steady(&cluster, "a")?;
    wait_in_sync(&cluster, "a")?;
    let verify = cluster.ctl_ok("a", &["verify"])?;
    assert!(verify.contains("identical"), "{verify}");
    Ok(())
}

#[test]
fn sync_strict_refuses_writes_before_commit_while_the_peer_is_away() -> anyhow::Result<()> {
    let _serial = serial();
    let dir = tempfile::tempdir()?;
    let spec = with_schema(ClusterSpec::new(), dir.path())
        .set_all("replication.sync_strict", true)
        .set_all("replication.sync_timeout", "300ms");
    let mut cluster = Cluster::start(spec, &bins())?;
    wait_steady(&cluster, "a")?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let mut a = client(&cluster, "a").await?;
        execute(
            &mut a,
            "strict-0",
            vec![statement(
                "INSERT INTO notes (id, body) VALUES ('r', 'x')",
                vec![],
            )],
        )
        .await?;
        anyhow::Ok(())
    })?;
    phase("b down: a refuses writes instead of degrading, and stays consistent for b");
    cluster.node_mut("b").kill()?;
    cluster.wait_until(WAIT, "a to see b gone", |c| {
        Ok((c.status("a")?["peer"]["state"] == "failed").then_some(()))
    })?;
    runtime.block_on(async {
        let mut a = client(&cluster, "a").await?;
        let deadline = std::time::Instant::now() + WAIT;
        let refused = loop {
            let result = execute(
                &mut a,
                "strict-1",
                vec![statement(
                    "INSERT INTO notes (id, body) VALUES ('s', 'x')",
                    vec![],
                )],
            )
            .await;
            match result {
                Err(status) => break status,
                Ok(_) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await
                }
                Ok(_) => anyhow::bail!("a kept admitting writes under sync_strict without b"),
            }
        };
        assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
        assert!(
            refused.message().contains("sync_strict")
                || refused.message().contains("outcome unknown"),
            "{}",
            refused.message()
        );
        anyhow::Ok(())
    })?;
    let status = cluster.status("a")?;
    assert_eq!(status["replication"]["mode"], "sync_strict");
    assert_eq!(status["replication"]["degraded"], true);

    phase("b back: writes are admitted again once it caught up");
    cluster.start_node("b")?;
    wait_steady(&cluster, "a")?;
    wait_in_sync(&cluster, "a")?;
    runtime.block_on(async {
        let mut a = client(&cluster, "a").await?;
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let result = execute(
                &mut a,
                "strict-2",
                vec![statement(
                    "INSERT INTO notes (id, body) VALUES ('t', 'y')",
                    vec![],
                )],
            )
            .await;
            match result {
                Ok(_) => break,
                Err(_) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await
                }
                Err(status) => anyhow::bail!("a still refuses writes with b back: {status:?}"),
            }
        }
        anyhow::Ok(())
    })?;
    Ok(())
}

/// The `diverged-*.db` files in a node's data directory.
fn diverged_files(cluster: &Cluster, node: &str) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(cluster.data_dir(node))? {
        let path = entry?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        if name.is_some_and(|n| n.starts_with("diverged-") && n.ends_with(".db")) {
            found.push(path);
        }
    }
    Ok(found)
}

#[test]
fn a_divergence_past_retention_keeps_the_old_database_and_takes_a_full_copy() -> anyhow::Result<()>
{
    use tandem_harness::Mode;
    let _serial = serial();
    let dir = tempfile::tempdir()?;
    let spec = with_schema(ClusterSpec::new().with_proxies(true), dir.path())
        .set_all("replication.sync_timeout", "300ms")
        .set_all("replication.log_retention.entries", 50);
    let cluster = Cluster::start(spec, &bins())?;
    wait_steady(&cluster, "a")?;
    let runtime = tokio::runtime::Runtime::new()?;
    write_rows(&runtime, &cluster, "a", 0, 10, 10)?;
    wait_in_sync(&cluster, "a")?;

    phase("partition: a writes 5 rows, b writes 300 and truncates its log past the split");
    set_link(&cluster, Mode::Blackhole)?;
    wait_serving(&cluster, "b")?;
    runtime.block_on(async {
        let mut a = client(&cluster, "a").await?;
        insert_notes(&mut a, "only-on-a", 5).await?;
        anyhow::Ok(())
    })?;
    write_rows(&runtime, &cluster, "b", 1000, 300, 10)?;

    phase("heal: a keeps its diverged database, installs b's copy, and the pair is identical");
    set_link(&cluster, Mode::Pass)?;
    wait_steady(&cluster, "b")?;
    let kept = wait_event(&cluster, "a", "diverged", "kept as")?;
    assert!(kept.contains("not merged"), "{kept}");
    wait_in_sync(&cluster, "b")?;
    let verify = cluster.ctl_ok("b", &["verify"])?;
    assert!(verify.contains("identical"), "{verify}");
    let files = diverged_files(&cluster, "a")?;
    assert_eq!(files.len(), 1, "{files:?}");
    let header = std::fs::read(&files[0])?;
    assert!(
        header.starts_with(b"SQLite format 3\0"),
        "a whole SQLite file"
    );
    let sent = wait_event(&cluster, "b", "snapshot", "could not be checked")?;
    assert!(sent.contains("diverged-"), "{sent}");
    Ok(())
}

#[test]
fn a_switchover_under_writers_loses_no_acknowledged_row() -> anyhow::Result<()> {
    let _serial = serial();
    let dir = tempfile::tempdir()?;
    let cluster = start(&dir)?;
    wait_steady(&cluster, "a")?;
    let runtime = tokio::runtime::Runtime::new()?;
    let writers = Writers::start(&cluster, 8, &runtime);
    let mut active = "a";
    for round in 1..=3 {
        wait_acked(&cluster, &writers, 100)?;
        phase(&format!("switchover {round} from {active} under 8 writers"));
        let out = cluster.ctl_ok(active, &["switchover"])?;
        assert!(out.contains("switched over"), "{out}");
        active = other(active);
        wait_steady(&cluster, active)?;
    }
    wait_acked(&cluster, &writers, 100)?;
    let acked = writers.stop(&runtime);
    wait_in_sync(&cluster, active)?;
    assert_all_present(&runtime, &cluster, active, &acked)?;
    let verify = cluster.ctl_ok(active, &["verify"])?;
    assert!(verify.contains("identical"), "{verify}");
    Ok(())
}

#[test]
fn request_ids_are_forgotten_on_both_nodes_after_their_retention() -> anyhow::Result<()> {
    let _serial = serial();
    let dir = tempfile::tempdir()?;
    let spec =
        with_schema(ClusterSpec::new(), dir.path()).set_all("replication.request_retention", "1s");
    let cluster = Cluster::start(spec, &bins())?;
    wait_steady(&cluster, "a")?;
    let runtime = tokio::runtime::Runtime::new()?;
    let insert = |id: &str| {
        vec![statement(
            "INSERT INTO notes (id, body) VALUES (?, 'x')",
            vec![text(id)],
        )]
    };
    let recorded =
        |client: &mut tandem_proto::data::data_client::DataClient<tonic::transport::Channel>| {
            let mut client = client.clone();
            async move {
                let rows = query(
                    &mut client,
                    "SELECT count(*) FROM tandem_requests WHERE request_id = 'r1'",
                    true,
                )
                .await?;
                anyhow::Ok(rows.first().and_then(|row| row.first()).and_then(as_int))
            }
        };
    runtime.block_on(async {
        let mut a = client(&cluster, "a").await?;
        let mut b = client(&cluster, "b").await?;
        phase("r1 inserts n1; a retry of r1 at once replays it");
        execute(&mut a, "r1", insert("n1")).await?;
        let replay = execute(&mut a, "r1", insert("n2")).await?;
        assert_eq!(replay.rows_affected, [1]);
        assert_eq!(count(&mut a, "notes").await?, 1, "the retry ran nothing");
        assert_eq!(recorded(&mut a).await?, Some(1));
        assert_eq!(
            recorded(&mut b).await?,
            Some(1),
            "sync: the passive has it too"
        );
        anyhow::Ok(())
    })?;

    phase("after the retention the active forgets r1, and so does the passive");
    cluster.wait_until(WAIT, "r1 forgotten on both nodes", |_| {
        runtime.block_on(async {
            let mut a = client(&cluster, "a").await?;
            let mut b = client(&cluster, "b").await?;
            let gone = recorded(&mut a).await? == Some(0) && recorded(&mut b).await? == Some(0);
            anyhow::Ok(gone.then_some(()))
        })
    })?;

    runtime.block_on(async {
        let mut a = client(&cluster, "a").await?;
        phase("r1 again now runs as a new request");
        execute(&mut a, "r1", insert("n2")).await?;
        assert_eq!(count(&mut a, "notes").await?, 2);
        anyhow::Ok(())
    })?;
    let verify = cluster.ctl_ok("a", &["verify"])?;
    assert!(verify.contains("identical"), "{verify}");
    Ok(())
}

#[test]
fn the_scheduled_verify_records_identical_databases_and_names_a_table_that_differs()
-> anyhow::Result<()> {
    let _serial = serial();
    let dir = tempfile::tempdir()?;
    let spec =
        with_schema(ClusterSpec::new(), dir.path()).set_all("replication.verify_every", "1s");
    let mut cluster = Cluster::start(spec, &bins())?;
    wait_steady(&cluster, "a")?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let mut a = client(&cluster, "a").await?;
        for id in ["n1", "n2", "n3"] {
            let insert = statement(
                "INSERT INTO notes (id, body) VALUES (?, 'x')",
                vec![text(id)],
            );
            execute(&mut a, id, vec![insert]).await?;
        }
        anyhow::Ok(())
    })?;
    phase("the active verifies on its own, and finds both databases identical");
    wait_event(&cluster, "a", "verify", "identical")?;

    phase("stop b and change a row of its data.db behind tandem's back (no log entry)");
    cluster.node_mut("b").kill()?;
    let data_dir = cluster.data_dir("b");
    let generation = std::fs::read_to_string(data_dir.join("CURRENT"))?;
    let path = data_dir.join(generation.trim()).join("data.db");
    runtime.block_on(async {
        use sqlx::{Connection, Executor};
        let mut db =
            sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await?;
        db.execute(
            "UPDATE _tandem_applying SET flag = 1; \
             UPDATE notes SET body = 'tampered' WHERE id = 'n2'; \
             UPDATE _tandem_applying SET flag = 0;",
        )
        .await?;
        db.close().await?;
        anyhow::Ok(())
    })?;
    cluster.start_node("b")?;
    wait_steady(&cluster, "a")?;
    let differs = wait_event(&cluster, "a", "verify_differs", "notes")?;
    assert!(
        differs.contains("notes (3 rows here, 3 on the peer)"),
        "{differs}"
    );
    assert!(!differs.contains("extensions"), "{differs}");
    Ok(())
}
