//! mTLS refusals and bad configs: a peer from another CA is refused and logged; admin calls need
//! a cluster certificate for `admin` or a node of this pair; each bad config stops `tandemd` with exit status 2 and a message that
//! names the key or file.

mod common;

use std::process::Command;

use common::*;
use tandem_harness::{Cluster, ClusterSpec};

#[test]
fn a_peer_from_another_ca_is_refused_and_logged() -> anyhow::Result<()> {
    let _serial = serial();
    let mut cluster = Cluster::prepare(ClusterSpec::new(), &bins())?;
    let other = other_ca(&cluster)?;
    phase("b presents a certificate named b, but from another CA");
    use_foreign_ca(&mut cluster, "b", &other)?;
    cluster.start_node("a")?;
    cluster.start_node("b")?;
    cluster.wait_until(WAIT, "a to log the refused handshake", |c| {
        Ok(log_contains(c, "a", "TLS handshake refused").then_some(()))
    })?;
    let a = cluster.status("a")?;
    assert_eq!(
        a["peer"]["state"],
        "unknown",
        "a never accepted b: {}",
        brief(&a)
    );
    Ok(())
}

#[test]
fn a_peer_presenting_another_name_is_refused_and_logged() -> anyhow::Result<()> {
    let _serial = serial();
    let mut cluster = Cluster::prepare(ClusterSpec::new(), &bins())?;
    let certs = cluster.certs_dir();
    phase("b presents the cluster's admin certificate: the right CA, the wrong name");
    cluster.update_config("b", |config| {
        config.set("tls.cert", certs.join("admin.pem").display().to_string());
        config.set("tls.key", certs.join("admin.key").display().to_string());
    })?;
    cluster.start_node("a")?;
    // The admin certificate is for clients only, so b cannot even serve with it: it stops with
    // a message naming the file, and a never hears from it.
    cluster.start_node("b")?;
    let exit = cluster.node_mut("b").wait_exit(WAIT)?;
    assert_eq!(exit.code(), Some(2));
    assert!(log_contains(&cluster, "b", "admin.pem"));

    phase("b presents a's certificate: the right CA, a node certificate, the wrong name");
    cluster.update_config("b", |config| {
        config.set("tls.cert", certs.join("a.pem").display().to_string());
        config.set("tls.key", certs.join("a.key").display().to_string());
    })?;
    cluster.start_node("b")?;
    cluster.wait_until(WAIT, "a to log the refused handshake", |c| {
        Ok(log_contains(c, "a", "not valid for name").then_some(()))
    })?;
    let a = cluster.status("a")?;
    assert_eq!(
        a["peer"]["state"],
        "unknown",
        "a never accepted b: {}",
        brief(&a)
    );
    Ok(())
}

#[test]
fn admin_calls_need_a_certificate_from_the_cluster_ca() -> anyhow::Result<()> {
    let _serial = serial();
    let cluster = Cluster::start(ClusterSpec::new(), &bins())?;
    wait_steady(&cluster, "a")?;
    let other = other_ca(&cluster)?;
    let admin = cluster.addrs("a").admin.to_string();
    let certs = cluster.certs_dir();
    let run = |ca: &std::path::Path, cert: &std::path::Path, key: &std::path::Path| {
        Command::new(bins().tandemctl)
            .args(["--node", &admin, "--ca"])
            .arg(ca)
            .arg("--cert")
            .arg(cert)
            .arg("--key")
            .arg(key)
            .arg("status")
            .output()
    };
    // `name`'s certificate and key from `dir`, trusting the cluster CA.
    let run_as = |dir: &std::path::Path, name: &str| {
        run(
            &certs.join("ca.pem"),
            &dir.join(format!("{name}.pem")),
            &dir.join(format!("{name}.key")),
        )
    };
    phase("the cluster's admin certificate works");
    let ok = run_as(&certs, "admin")?;
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("active"));
    phase("an admin certificate from another CA is refused");
    let refused = run_as(&other, "admin")?;
    assert_eq!(refused.status.code(), Some(1));

    phase("a node certificate of another pair from the same CA is refused where admin is needed");
    let issued = Command::new(bins().tandemctl)
        .args(["certs", "issue", "--dir"])
        .arg(&certs)
        .args(["--name", "c"])
        .output()?;
    assert!(
        issued.status.success(),
        "{}",
        String::from_utf8_lossy(&issued.stderr)
    );
    let refused = run_as(&certs, "c")?;
    assert_eq!(
        refused.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&refused.stdout)
    );
    cluster.wait_until(WAIT, "a's log to name the refused certificate", |c| {
        Ok(log_contains(c, "a", "this port takes only a, b, admin").then_some(()))
    })?;
    phase("no client certificate at all: refused on the admin and the peer port");
    tandem_node::tls::install_crypto_provider();
    let anonymous = tandem_node::tls::client_config(
        &tandem_node::tls::TlsFiles {
            ca: certs.join("ca.pem"),
            cert: certs.join("admin.pem"),
            key: certs.join("admin.key"),
        },
        false,
    )?;
    let runtime = tokio::runtime::Runtime::new()?;
    for address in [cluster.addrs("a").admin, cluster.addrs("a").peer] {
        let outcome = runtime.block_on(async {
            let channel = tandem_node::tls::connect(
                &address.to_string(),
                "a",
                anonymous.clone(),
                std::time::Duration::from_secs(5),
            )
            .await?;
            let mut admin = tandem_proto::admin::admin_client::AdminClient::new(channel);
            admin
                .status(tandem_proto::admin::StatusRequest {})
                .await
                .map_err(anyhow::Error::from)
        });
        assert!(
            outcome.is_err(),
            "{address} answered a client without a certificate"
        );
    }
    cluster.wait_until(
        WAIT,
        "a's log to name the refused anonymous handshakes",
        |c| {
            let log = std::fs::read_to_string(c.dir().join("a").join("tandemd.log"))?;
            let refusals = log
                .lines()
                .filter(|line| {
                    line.contains("TLS handshake refused")
                        && line.contains("peer sent no certificates")
                })
                .count();
            Ok((refusals >= 2).then_some(()))
        },
    )?;

    phase("a's own node certificate still works (tandemctl --config presents it)");
    let own = run_as(&certs, "a")?;
    assert!(
        own.status.success(),
        "{}",
        String::from_utf8_lossy(&own.stderr)
    );
    Ok(())
}

/// Runs tandemd on `name`'s config after `change`, expecting exit 2 and `needles` in stderr.
fn expect_config_error(
    cluster: &Cluster,
    change: impl FnOnce(&mut tandem_harness::NodeConfig),
    needles: &[&str],
) -> anyhow::Result<()> {
    let mut config = cluster.config("a").clone();
    change(&mut config);
    let path = cluster.dir().join("bad.toml");
    config.write(&path)?;
    let output = Command::new(bins().tandemd)
        .arg("--config")
        .arg(&path)
        .output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "expected {needle:?} in: {stderr}");
    }
    assert!(
        stderr.trim().lines().count() <= 6,
        "one clear message: {stderr}"
    );
    Ok(())
}

#[test]
fn each_bad_config_gets_exit_status_2_and_a_message_naming_it() -> anyhow::Result<()> {
    let _serial = serial();
    let cluster = Cluster::prepare(ClusterSpec::new(), &bins())?;
    phase("an unknown key");
    expect_config_error(
        &cluster,
        |c| {
            c.set("timers.failover_aftr_misses", 3);
        },
        &["failover_aftr_misses"],
    )?;
    phase("a missing certificate file");
    expect_config_error(
        &cluster,
        |c| {
            c.set("tls.cert", "/nonexistent/a.pem");
        },
        &["tls.cert", "/nonexistent/a.pem"],
    )?;
    phase("a duration that does not parse");
    expect_config_error(
        &cluster,
        |c| {
            c.set("timers.keepalive_interval", "soon");
        },
        &["timers.keepalive_interval", "\"soon\""],
    )?;
    phase("a peer with the node's own name");
    expect_config_error(
        &cluster,
        |c| {
            c.set("peer.name", "a");
        },
        &["peer.name", "own name"],
    )?;
    phase("a port clash");
    let peer_port = cluster.addrs("a").peer.to_string();
    expect_config_error(
        &cluster,
        |c| {
            c.set("listen.admin", peer_port.clone());
        },
        &["listen.admin", "listen.peer"],
    )?;
    phase("a file that is not TOML");
    expect_config_error(
        &cluster,
        |c| {
            c.append_toml("this is = = not toml");
        },
        &["bad.toml"],
    )?;
    Ok(())
}

#[test]
fn the_deploy_examples_are_valid_configs() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let certs = dir.path().join("certs");
    let output = Command::new(bins().tandemctl)
        .args(["certs", "init", "--dir"])
        .arg(&certs)
        .args(["--nodes", "a,b"])
        .output()?;
    assert!(output.status.success());
    for name in ["a.toml", "b.toml"] {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("deploy")
                .join(name),
        )?;
        let path = dir.path().join(name);
        std::fs::write(&path, text)?;
        // `tandemctl --config` loads and validates the config before it dials; nothing listens,
        // so it fails at the dial, not at the config.
        let output = Command::new(bins().tandemctl)
            .arg("--config")
            .arg(&path)
            .arg("status")
            .output()?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("cannot reach the node's admin port"),
            "{name}: {stderr}"
        );
    }
    Ok(())
}

#[test]
fn a_second_tandemd_on_the_same_data_dir_is_refused() -> anyhow::Result<()> {
    let _serial = serial();
    let cluster = Cluster::start(ClusterSpec::new(), &bins())?;
    wait_steady(&cluster, "a")?;
    let output = Command::new(bins().tandemd)
        .arg("--config")
        .arg(cluster.config_path("a"))
        .output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("another tandemd"), "{stderr}");
    wait_steady(&cluster, "a")?;
    Ok(())
}
