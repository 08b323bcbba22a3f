//! E-mail alerts through a local SMTP sink: the test mail, the failover alert after a SIGKILL
//! (naming the old active and the reason), and mails queued while the mail server is down,
//! delivered once it is back, none lost and none duplicated.

mod common;

use std::collections::BTreeSet;

use common::*;
use tandem_harness::{Cluster, ClusterSpec, Mail, SmtpSink};

fn alerts_toml(sink: &SmtpSink) -> String {
    format!(
        "[alerts]\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\nsecurity = \"none\"\n\
         from = \"tandem@example.com\"\nto = [\"ops@example.com\", \"oncall@example.com\"]\n",
        sink.address().port()
    )
}

fn subjects(mails: &[Mail]) -> Vec<String> {
    mails
        .iter()
        .filter_map(|mail| mail.header("Subject"))
        .collect()
}

/// (unsent, sent) mails in `node`'s outbox, read from its `state.db`.
fn outbox(cluster: &Cluster, node: &str) -> anyhow::Result<(i64, i64)> {
    let path = cluster.data_dir(node).join("state.db");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .read_only(true);
        let pool = sqlx::SqlitePool::connect_with(options).await?;
        let counts: (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE sent_ms IS NULL), \
             count(*) FILTER (WHERE sent_ms IS NOT NULL) FROM outbox",
        )
        .fetch_one(&pool)
        .await?;
        pool.close().await;
        Ok(counts)
    })
}

#[test]
fn alerts_are_mailed_and_a_mail_server_outage_delays_them_without_loss_or_duplicates()
-> anyhow::Result<()> {
    let _serial = serial();
    let sink = SmtpSink::start()?;
    let toml = alerts_toml(&sink);
    let spec = ClusterSpec::new()
        .extra_toml("a", &toml)
        .extra_toml("b", &toml);
    let mut cluster = Cluster::start(spec, &bins())?;
    wait_steady(&cluster, "a")?;

    phase("tandemctl alerts test: the sink gets the mail, the command prints its answer");
    let said = cluster.ctl_ok("a", &["alerts", "test"])?;
    assert!(said.contains("250"), "{said}");
    let test_mail = sink
        .mails()
        .into_iter()
        .find(|mail| {
            mail.header("Subject")
                .is_some_and(|s| s.contains("test mail from a"))
        })
        .ok_or_else(|| anyhow::anyhow!("no test mail in {:?}", subjects(&sink.mails())))?;
    assert_eq!(test_mail.to.len(), 2, "both recipients: {:?}", test_mail.to);

    phase("SIGKILL a: b mails the failover, naming a");
    cluster.node_mut("a").kill()?;
    wait_serving(&cluster, "b")?;
    let failover = cluster.wait_until(WAIT, "the failover mail", |_| {
        Ok(sink.mails().into_iter().find(|mail| {
            mail.header("Subject")
                .is_some_and(|s| s.contains("b took over from a (failover)"))
        }))
    })?;
    assert!(
        failover.data.contains("b is active in term"),
        "{}",
        failover.data
    );
    assert!(
        failover.data.contains("a, the previous active"),
        "{}",
        failover.data
    );

    phase("the mail server goes down; a switchover's alerts wait in the outboxes");
    let store = sink.store();
    let address = sink.address();
    sink.stop();
    drop(sink);
    cluster.node_mut("a").restart()?;
    wait_steady(&cluster, "b")?;
    common::data::wait_in_sync(&cluster, "b")?;
    cluster.ctl_ok("b", &["switchover"])?;
    wait_steady(&cluster, "a")?;
    cluster.wait_until(WAIT, "a failed delivery on b", |c| {
        Ok(log_contains(c, "b", "cannot mail an alert").then_some(()))
    })?;
    let (waiting, _) = outbox(&cluster, "b")?;
    assert!(waiting > 0, "b holds its switchover alert");

    phase("the mail server is back: every queued mail arrives, once");
    let sink = SmtpSink::start_at(address, store)?;
    cluster.wait_until(WAIT * 2, "both outboxes to empty", |c| {
        let (a, b) = (outbox(c, "a")?, outbox(c, "b")?);
        Ok((a.0 == 0 && b.0 == 0).then_some(()))
    })?;
    let mails = sink.mails();
    let ids: Vec<String> = mails
        .iter()
        .filter_map(|mail| mail.header("Message-ID"))
        .collect();
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "no mail twice: {ids:?}");
    for node in ["a", "b"] {
        let (_, sent) = outbox(&cluster, node)?;
        let from_node = ids
            .iter()
            .filter(|id| id.contains(&format!("-{node}-event-")))
            .count();
        assert_eq!(
            from_node as i64, sent,
            "{node}: every sent mail arrived once"
        );
    }
    assert!(
        subjects(&mails).iter().any(|s| s.contains("b: switchover")),
        "{:?}",
        subjects(&mails)
    );
    Ok(())
}
