//! Certificates on a running pair: a certificate about to expire raises a mailed `cert_expiry`
//! at start; a renewed certificate (`tandemctl certs issue`) is served to new connections after
//! SIGHUP while the pair carries on untouched; broken files on SIGHUP change nothing but an event.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use common::*;
use tandem_harness::{Cluster, ClusterSpec, SmtpSink};
use tandem_node::tls::certs::{CertSummary, read_cert_summary};
use tandem_node::tls::{self, TlsFiles};

fn alerts_toml(sink: &SmtpSink) -> String {
    format!(
        "[alerts]\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\nsecurity = \"none\"\n\
         from = \"tandem@example.com\"\nto = [\"ops@example.com\"]\n",
        sink.address().port()
    )
}

/// `tandemctl certs issue` for one node of the cluster, as an operator renews a certificate.
fn issue(cluster: &Cluster, name: &str, days: u32) -> anyhow::Result<String> {
    let output = Command::new(bins().tandemctl)
        .args(["certs", "issue", "--dir"])
        .arg(cluster.certs_dir())
        .args(["--name", name, "--days", &days.to_string()])
        .output()?;
    succeeded("certs issue", output)
}

fn succeeded(what: &str, output: Output) -> anyhow::Result<String> {
    if !output.status.success() {
        bail!(
            "tandemctl {what} exited with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn files(cluster: &Cluster, name: &str) -> TlsFiles {
    let certs = cluster.certs_dir();
    TlsFiles {
        ca: certs.join("ca.pem"),
        cert: certs.join(format!("{name}.pem")),
        key: certs.join(format!("{name}.key")),
    }
}

/// `tandemctl` as a remote administrator with the admin certificate: it works whatever state the
/// node's own key file is in (`--config` would present the node's certificate).
fn admin_ctl(cluster: &Cluster, node: &str, args: &[&str]) -> anyhow::Result<String> {
    let admin = files(cluster, "admin");
    let output = Command::new(bins().tandemctl)
        .args(["--node", &cluster.addrs(node).admin.to_string()])
        .arg("--ca")
        .arg(&admin.ca)
        .arg("--cert")
        .arg(&admin.cert)
        .arg("--key")
        .arg(&admin.key)
        .args(args)
        .output()?;
    succeeded(&args.join(" "), output)
}

fn admin_events(cluster: &Cluster, node: &str) -> anyhow::Result<Vec<(String, String)>> {
    let text = admin_ctl(cluster, node, &["events", "--json", "--limit", "1000"])?;
    text.lines()
        .map(|line| {
            let event: serde_json::Value = serde_json::from_str(line)?;
            Ok((
                event["kind"].as_str().unwrap_or_default().to_string(),
                event["message"].as_str().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

fn wait_admin_event(
    cluster: &Cluster,
    node: &str,
    kind: &str,
    needle: &str,
) -> anyhow::Result<String> {
    cluster.wait_until(
        WAIT,
        &format!("{node} to record {kind} with {needle:?}"),
        |c| {
            Ok(admin_events(c, node)?
                .into_iter()
                .find(|(k, message)| k == kind && message.contains(needle))
                .map(|(_, message)| message))
        },
    )
}

#[derive(Clone, Copy, Debug)]
enum Port {
    Peer,
    Client,
    Admin,
}

/// The certificate `node` presents to a new TLS connection on `port`: anonymous on the client
/// port, with the admin certificate on the admin port, as its peer on the peer port.
fn served(cluster: &Cluster, node: &str, port: Port) -> anyhow::Result<CertSummary> {
    tls::install_crypto_provider();
    let addrs = cluster.addrs(node);
    let (address, config) = match port {
        Port::Client => (
            addrs.client,
            tls::client_config(&files(cluster, "admin"), false)?,
        ),
        Port::Admin => (
            addrs.admin,
            tls::client_config(&files(cluster, "admin"), true)?,
        ),
        Port::Peer => (
            addrs.peer,
            tls::client_config(&files(cluster, other(node)), true)?,
        ),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let address = address.to_string();
    let chain = runtime.block_on(tls::presented_certificates(
        &address,
        node,
        config,
        Duration::from_secs(5),
    ))?;
    let end_entity = chain
        .first()
        .ok_or_else(|| anyhow!("{node} {port:?} presented no certificate"))?;
    CertSummary::from_der(end_entity).map_err(|e| anyhow!("{node} {port:?}: {e}"))
}

fn assert_serves(cluster: &Cluster, node: &str, expected: &CertSummary) -> anyhow::Result<()> {
    for port in [Port::Peer, Port::Client, Port::Admin] {
        let served = served(cluster, node, port)?;
        assert_eq!(&served, expected, "{node} {port:?} port");
    }
    Ok(())
}

/// Both nodes' events of the kinds that would mean the pair was disturbed.
fn disturbances(cluster: &Cluster) -> anyhow::Result<Vec<(String, String)>> {
    let mut found = Vec::new();
    for node in ["a", "b"] {
        for (kind, message) in admin_events(cluster, node)? {
            if ["peer_failed", "peer_suspect", "failover", "split_brain"].contains(&kind.as_str()) {
                found.push((format!("{node}: {kind}"), message));
            }
        }
    }
    Ok(found)
}

fn term(status: &serde_json::Value) -> serde_json::Value {
    status["node"]["term"].clone()
}

#[test]
fn a_certificate_expiring_within_thirty_days_is_an_alert_at_start() -> anyhow::Result<()> {
    let _serial = serial();
    let sink = SmtpSink::start()?;
    let toml = alerts_toml(&sink);
    let spec = ClusterSpec::new()
        .extra_toml("a", &toml)
        .extra_toml("b", &toml);
    let mut cluster = Cluster::prepare(spec, &bins())?;

    phase("a's certificate is re-issued for 10 days; b keeps its five years");
    let said = issue(&cluster, "a", 10)?;
    assert!(said.contains("a.pem (CN a, serial "), "{said}");
    cluster.start_node("a")?;
    cluster.start_node("b")?;
    wait_steady(&cluster, "a")?;

    phase("a records cert_expiry naming its certificate and the days left");
    let cert_path = files(&cluster, "a").cert;
    let message = wait_admin_event(&cluster, "a", "cert_expiry", "node certificate")?;
    assert!(
        message.contains(&format!("{} (CN a, serial ", cert_path.display())),
        "{message}"
    );
    assert!(message.contains("expires in 9 days"), "{message}");
    assert!(message.contains("tandemctl certs issue"), "{message}");
    let b_expiry: Vec<_> = admin_events(&cluster, "b")?
        .into_iter()
        .filter(|(kind, _)| kind == "cert_expiry")
        .collect();
    assert!(b_expiry.is_empty(), "b's certificate is fine: {b_expiry:?}");

    phase("the alert is mailed");
    let mail = cluster.wait_until(WAIT, "the cert_expiry mail", |_| {
        Ok(sink.mails().into_iter().find(|mail| {
            mail.header("Subject")
                .is_some_and(|subject| subject.contains("a: cert expiry"))
        }))
    })?;
    assert!(
        mail.to.iter().any(|to| to.contains("ops@example.com")),
        "{:?}",
        mail.to
    );
    Ok(())
}

#[test]
fn sighup_serves_a_renewed_certificate_and_keeps_it_when_the_new_files_are_bad()
-> anyhow::Result<()> {
    let _serial = serial();
    let mut cluster = Cluster::start(ClusterSpec::new(), &bins())?;
    let (a_before, b_before) = wait_steady(&cluster, "a")?;
    let a_files = files(&cluster, "a");
    let old = read_cert_summary(&a_files.cert)?;
    assert_serves(&cluster, "a", &old)?;

    phase("a new certificate for a: not served before SIGHUP");
    issue(&cluster, "a", 3000)?;
    let new = read_cert_summary(&a_files.cert)?;
    assert_ne!(new.serial_hex, old.serial_hex);
    assert!(
        new.not_after > old.not_after,
        "3000 days is longer than the default"
    );
    assert_eq!(served(&cluster, "a", Port::Client)?, old);

    phase("SIGHUP a: new connections get the new certificate on every port");
    cluster.node("a").signal(libc::SIGHUP)?;
    let reloaded = wait_admin_event(&cluster, "a", "cert_reload", &new.serial_hex)?;
    assert!(reloaded.contains(&new.not_after_utc()), "{reloaded}");
    assert_serves(&cluster, "a", &new)?;
    assert!(cluster.node_mut("a").is_running(), "SIGHUP must not end a");

    phase("the pair did not notice: same roles, same terms, no failover");
    let (a_after, b_after) = wait_steady(&cluster, "a")?;
    assert_eq!(term(&a_after), term(&a_before));
    assert_eq!(term(&b_after), term(&b_before));
    assert_eq!(disturbances(&cluster)?, Vec::<(String, String)>::new());

    phase("SIGHUP with a key that is not PEM: a keeps the new certificate and says why");
    let good_key = std::fs::read(&a_files.key)?;
    std::fs::write(&a_files.key, "not a key\n")?;
    cluster.node("a").signal(libc::SIGHUP)?;
    let expected = format!("no private key found in {}", a_files.key.display());
    let failed = wait_admin_event(&cluster, "a", "cert_reload_failed", &expected)?;
    assert!(
        failed.contains(&new.serial_hex),
        "names what stays in use: {failed}"
    );
    assert_serves(&cluster, "a", &new)?;
    let status: serde_json::Value =
        serde_json::from_str(&admin_ctl(&cluster, "a", &["status", "--json"])?)
            .context("status --json")?;
    assert_eq!(role(&status), "active");

    phase("SIGHUP with b's key beside a's certificate: refused the same way");
    std::fs::copy(files(&cluster, "b").key, &a_files.key)?;
    cluster.node("a").signal(libc::SIGHUP)?;
    let mismatch = format!(
        "cannot use certificate {} with private key {}",
        a_files.cert.display(),
        a_files.key.display()
    );
    wait_admin_event(&cluster, "a", "cert_reload_failed", &mismatch)?;
    assert_serves(&cluster, "a", &new)?;

    phase("a certificate file that is not PEM: refused too");
    std::fs::write(&a_files.key, good_key)?;
    std::fs::write(&a_files.cert, "garbage\n")?;
    cluster.node("a").signal(libc::SIGHUP)?;
    let no_cert = format!("no certificate found in {}", a_files.cert.display());
    wait_admin_event(&cluster, "a", "cert_reload_failed", &no_cert)?;
    assert_serves(&cluster, "a", &new)?;

    phase("still one pair, undisturbed");
    assert!(
        cluster.node_mut("a").is_running(),
        "bad files must not end a"
    );
    let (a_end, b_end) = wait_steady_by_admin(&cluster)?;
    assert_eq!(term(&a_end), term(&a_before));
    assert_eq!(term(&b_end), term(&b_before));
    assert_eq!(disturbances(&cluster)?, Vec::<(String, String)>::new());
    Ok(())
}

/// `wait_steady` through the admin certificate: a's own files are broken now.
fn wait_steady_by_admin(
    cluster: &Cluster,
) -> anyhow::Result<(serde_json::Value, serde_json::Value)> {
    cluster.wait_until(WAIT, "a active and b passive, link up", |c| {
        let status = |node| -> anyhow::Result<serde_json::Value> {
            Ok(serde_json::from_str(&admin_ctl(
                c,
                node,
                &["status", "--json"],
            )?)?)
        };
        let (a, b) = (status("a")?, status("b")?);
        let ok = role(&a) == "active"
            && role(&b) == "passive"
            && a["peer"]["state"] == "ok"
            && b["peer"]["state"] == "ok";
        Ok(ok.then_some((a, b)))
    })
}
