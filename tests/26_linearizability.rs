//! Issue 26: merge-back must decide each orphan against the row as it is when the orphan is
//! re-applied, so a write the sole active acknowledged while the merge ran is never overwritten
//! by an older write of the split; and a chaos run in linearizability mode, whose checker finds
//! exactly that loss.

mod common;

use std::time::Duration;

use common::data::*;
use common::*;
use tandem_harness::chaos::{self, ChaosSpec};
use tandem_harness::{Cluster, ClusterSpec, Mode};

/// Orphan transactions a writes during the split: enough that merging them takes seconds.
const ORPHANS: usize = 1000;

fn set_link(cluster: &Cluster, mode: Mode) -> anyhow::Result<()> {
    cluster.proxy("a", "b").set_mode(mode)?;
    cluster.proxy("b", "a").set_mode(mode)?;
    Ok(())
}

async fn value_of(
    node: &mut tandem_proto::data::data_client::DataClient<tonic::transport::Channel>,
    id: &str,
) -> anyhow::Result<String> {
    let rows = query(
        node,
        &format!("SELECT body FROM notes WHERE id = '{id}'"),
        true,
    )
    .await?;
    match rows
        .first()
        .and_then(|row| row.first())
        .and_then(|v| v.kind.clone())
    {
        Some(tandem_proto::data::value::Kind::Text(body)) => Ok(body),
        other => Err(anyhow::anyhow!("notes {id} holds {other:?}")),
    }
}

/// A pair with the notes schema and row k1 = 'base' on both nodes, then the peer link cut: b
/// takes over while a stays active.
fn split_after_k1(dir: &std::path::Path) -> anyhow::Result<(Cluster, tokio::runtime::Runtime)> {
    let spec = with_schema(ClusterSpec::new().with_proxies(true), dir)
        .set_all("replication.sync_timeout", "300ms");
    let cluster = Cluster::start(spec, &bins())?;
    wait_steady(&cluster, "a")?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let mut a = client(&cluster, "a").await?;
        execute_retrying(
            &mut a,
            "base",
            vec![statement(
                "INSERT INTO notes (id, body) VALUES ('k1', 'base')",
                vec![],
            )],
        )
        .await?;
        anyhow::Ok(())
    })?;
    wait_in_sync(&cluster, "a")?;

    phase("cut the link: b takes over while a stays active");
    set_link(&cluster, Mode::Blackhole)?;
    wait_serving(&cluster, "b")?;
    Ok((cluster, runtime))
}

#[test]
fn a_write_acknowledged_while_the_merge_runs_is_not_overwritten_by_an_older_orphan()
-> anyhow::Result<()> {
    let _serial = serial();
    let dir = tempfile::tempdir()?;
    let (cluster, runtime) = split_after_k1(dir.path())?;
    let one = |sql: &str| vec![statement(sql, vec![])];

    phase("a writes many transactions during the split, and k1 last");
    runtime.block_on(async {
        let mut a = client(&cluster, "a").await?;
        for n in 0..ORPHANS {
            execute_retrying(
                &mut a,
                &format!("bulk-{n}"),
                vec![statement(
                    "INSERT INTO notes (id, body) VALUES (?, 'split')",
                    vec![text(&format!("bulk-{n:05}"))],
                )],
            )
            .await?;
        }
        execute_retrying(
            &mut a,
            "k1-split",
            one("UPDATE notes SET body = 'split-a' WHERE id = 'k1'"),
        )
        .await?;
        anyhow::Ok(())
    })?;

    phase("heal: a demotes and hands its orphans to b, which merges them one at a time");
    set_link(&cluster, Mode::Pass)?;
    runtime.block_on(async {
        let mut b = client(&cluster, "b").await?;
        // Wait until the merge has begun but is far from done: some bulk rows are on b.
        let deadline = std::time::Instant::now() + WAIT * 2;
        loop {
            let merged = query(
                &mut b,
                "SELECT count(*) FROM notes WHERE id LIKE 'bulk-%'",
                true,
            )
            .await?
            .first()
            .and_then(|row| row.first())
            .and_then(as_int)
            .unwrap_or(0);
            if merged > 0 {
                assert!(
                    merged < (ORPHANS as i64) / 2,
                    "the merge went too fast to write during it ({merged} of {ORPHANS})"
                );
                eprintln!("{merged} of {ORPHANS} orphans merged: writing k1 on b");
                break;
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "the merge never began"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        phase("b, the sole active, acknowledges a write of k1 while the merge runs");
        let reply = execute_retrying(
            &mut b,
            "k1-after-heal",
            one("UPDATE notes SET body = 'after-heal' WHERE id = 'k1'"),
        )
        .await?;
        assert_eq!(reply.rows_affected, vec![1]);
        anyhow::Ok(())
    })?;

    phase("the merge ends; the acknowledged write stands and a's older one is a conflict");
    wait_event(&cluster, "b", "merge", "merge-back")?;
    cluster.wait_until(
        WAIT * 2,
        "a's orphans to be back through replication",
        |c| Ok((c.status("a")?["replication"]["orphans"] == 0).then_some(())),
    )?;
    wait_in_sync(&cluster, "b")?;
    runtime.block_on(async {
        for node in ["a", "b"] {
            let mut client = client(&cluster, node).await?;
            assert_eq!(
                value_of(&mut client, "k1").await?,
                "after-heal",
                "{node} holds the write b acknowledged after the heal"
            );
            assert_eq!(
                count(&mut client, "notes").await?,
                ORPHANS as i64 + 1,
                "every orphan is merged on {node}"
            );
        }
        anyhow::Ok(())
    })?;
    let verify = cluster.ctl_ok("b", &["verify"])?;
    assert!(verify.contains("identical"), "{verify}");
    let text = cluster.ctl_ok("b", &["conflicts", "--json"])?;
    let conflicts: serde_json::Value = serde_json::from_str(&text)?;
    let k1: Vec<&serde_json::Value> = conflicts
        .as_array()
        .into_iter()
        .flatten()
        .filter(|row| row["table"] == "notes" && row["primary_key"] == r#"{"id":"k1"}"#)
        .collect();
    assert_eq!(k1.len(), 1, "one conflict for k1: {text}");
    let conflict = k1[0];
    assert!(
        conflict["losing_image"]
            .as_str()
            .unwrap_or("")
            .contains("split-a"),
        "{conflict}"
    );
    assert!(
        conflict["kept_image"]
            .as_str()
            .unwrap_or("")
            .contains("after-heal"),
        "{conflict}"
    );
    for stamp in ["losing_hlc", "kept_hlc"] {
        assert!(
            conflict[stamp].as_str().is_some_and(|s| !s.is_empty()),
            "{stamp} is recorded: {conflict}"
        );
    }
    assert_eq!(conflict["during_merge"], true, "{conflict}");
    let listing = cluster.ctl_ok("b", &["conflicts"])?;
    assert!(
        listing.contains("decided against a write made during the merge"),
        "{listing}"
    );
    let merge = wait_event(&cluster, "b", "merge", "merge-back")?;
    assert!(
        merge.contains("1 against writes made during the merge"),
        "{merge}"
    );
    Ok(())
}

/// The seed of the linearizability run in the test suite.
const SEED: u64 = 20261207;

#[test]
fn a_chaos_run_in_linearizability_mode_is_linearizable_but_for_the_splits() -> anyhow::Result<()> {
    let _serial = serial();
    let spec = ChaosSpec {
        seed: SEED,
        duration: Duration::from_secs(75),
        writers: 6,
        callers: 0,
        linearizability: true,
        witness: false,
        etcd: false,
    };
    let report = chaos::run(&spec, &bins())?;
    eprintln!("{report:#?}");
    assert_clean_register_run(&report);
    Ok(())
}

/// Large orphan rows a writes during the split: more than one orphans message (16 MiB each).
const LARGE_ORPHANS: usize = 20;

#[test]
fn an_orphan_in_a_later_orphans_message_is_decided_against_every_change_since_the_divergence()
-> anyhow::Result<()> {
    let _serial = serial();
    let dir = tempfile::tempdir()?;
    let (cluster, runtime) = split_after_k1(dir.path())?;
    let one = |sql: &str| vec![statement(sql, vec![])];

    phase("a writes large rows, then k1; b writes k1 after, first thing after the divergence");
    runtime.block_on(async {
        let mut a = client(&cluster, "a").await?;
        let large = "x".repeat(1 << 20);
        for n in 0..LARGE_ORPHANS {
            execute_retrying(
                &mut a,
                &format!("large-{n}"),
                vec![statement(
                    "INSERT INTO notes (id, body) VALUES (?, ?)",
                    vec![text(&format!("large-{n:02}")), text(&large)],
                )],
            )
            .await?;
        }
        execute_retrying(
            &mut a,
            "k1-split",
            one("UPDATE notes SET body = 'older-on-a' WHERE id = 'k1'"),
        )
        .await?;
        let mut b = client(&cluster, "b").await?;
        execute_retrying(
            &mut b,
            "k1-b",
            one("UPDATE notes SET body = 'newer-on-b' WHERE id = 'k1'"),
        )
        .await?;
        anyhow::Ok(())
    })?;

    phase("heal: a's orphans reach b in two messages; k1's is in the second");
    set_link(&cluster, Mode::Pass)?;
    wait_event(&cluster, "b", "merge", "merge-back")?;
    runtime.block_on(async {
        for node in ["b", "a"] {
            let mut client = client(&cluster, node).await?;
            let deadline = std::time::Instant::now() + WAIT * 2;
            loop {
                let merged = count(&mut client, "notes").await?;
                if merged == LARGE_ORPHANS as i64 + 1 {
                    break;
                }
                anyhow::ensure!(
                    std::time::Instant::now() < deadline,
                    "{node} holds {merged} notes, not every merged orphan"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert_eq!(
                value_of(&mut client, "k1").await?,
                "newer-on-b",
                "{node} keeps b's newer write of k1, not a's older orphan"
            );
        }
        anyhow::Ok(())
    })?;
    wait_in_sync(&cluster, "b")?;
    let text = cluster.ctl_ok("b", &["conflicts", "--json"])?;
    let conflicts: serde_json::Value = serde_json::from_str(&text)?;
    let k1: Vec<&serde_json::Value> = conflicts
        .as_array()
        .into_iter()
        .flatten()
        .filter(|row| row["primary_key"] == r#"{"id":"k1"}"#)
        .collect();
    assert_eq!(k1.len(), 1, "a's older k1 is one conflict: {text}");
    assert!(
        k1[0]["losing_image"]
            .as_str()
            .unwrap_or("")
            .contains("older-on-a"),
        "{}",
        k1[0]
    );
    Ok(())
}
