//! Tests of loading a whole config file: defaults, resolved paths, the digest, and that every bad
//! value is reported with its key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::bytes::parse_bytes;
use super::{AutoFailback, Config, HealthProbe, ReplicationMode, RunOn};

/// A valid config in `dir`, with certificate files present, plus `extra` lines appended.
fn write_config(dir: &Path, replace: &[(&str, &str)]) -> PathBuf {
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    for file in ["ca.pem", "a.pem", "a.key"] {
        std::fs::write(certs.join(file), "x").unwrap();
    }
    let mut text = "cluster = \"t\"\n[node]\nname = \"a\"\ndata_dir = \"data\"\n\
        [listen]\npeer = \"127.0.0.1:7400\"\nclient = \"127.0.0.1:7401\"\nadmin = \"127.0.0.1:7402\"\nhttp = \"127.0.0.1:7480\"\n\
        [peer]\nname = \"b\"\naddress = \"10.0.0.2:7400\"\nclient_address = \"10.0.0.2:7401\"\n\
        [timers]\nkeepalive_interval = \"100ms\"\n\
        [tls]\nca = \"certs/ca.pem\"\ncert = \"certs/a.pem\"\nkey = \"certs/a.key\"\n"
        .to_string();
    for (from, to) in replace {
        assert!(text.contains(from), "{from}");
        text = text.replace(from, to);
    }
    let path = dir.join("node.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn error_for(replace: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), replace);
    Config::load(&path).unwrap_err().to_string()
}

#[test]
fn a_valid_config_loads_with_defaults_and_resolved_paths() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::load(&write_config(dir.path(), &[])).unwrap();
    assert_eq!(config.timers.failover_after_misses, 8);
    assert_eq!(
        config.timers.min_failover_interval,
        Duration::from_secs(300)
    );
    assert_eq!(config.node.priority, 100);
    assert_eq!(config.node.data_dir, dir.path().join("data"));
    assert_eq!(config.tls.ca, dir.path().join("certs/ca.pem"));
}

#[test]
fn an_unknown_key_is_named() {
    let error = error_for(&[("[timers]\n", "[timers]\nfailover_aftr_misses = 3\n")]);
    assert!(error.contains("failover_aftr_misses"), "{error}");
    assert!(error.contains("node.toml"), "{error}");
}

#[test]
fn a_missing_certificate_file_is_named() {
    let error = error_for(&[("certs/a.key", "certs/missing.key")]);
    assert!(
        error.contains("tls.key") && error.contains("missing.key"),
        "{error}"
    );
}

#[test]
fn a_bad_duration_is_named() {
    let error = error_for(&[("\"100ms\"", "\"fast\"")]);
    assert!(
        error.contains("timers.keepalive_interval") && error.contains("\"fast\""),
        "{error}"
    );
}

#[test]
fn a_peer_with_our_own_name_is_refused() {
    let error = error_for(&[("name = \"b\"", "name = \"a\"")]);
    assert!(
        error.contains("peer.name") && error.contains("own name"),
        "{error}"
    );
}

#[test]
fn a_port_clash_names_both_keys() {
    let error = error_for(&[("127.0.0.1:7402", "127.0.0.1:7400")]);
    assert!(
        error.contains("listen.admin") && error.contains("listen.peer"),
        "{error}"
    );
    let wildcard = error_for(&[("127.0.0.1:7480", "0.0.0.0:7401")]);
    assert!(
        wildcard.contains("listen.http") && wildcard.contains("listen.client"),
        "{wildcard}"
    );
}

#[test]
fn bad_addresses_and_thresholds_are_named() {
    assert!(error_for(&[("10.0.0.2:7400", "10.0.0.2")]).contains("peer.address"));
    assert!(error_for(&[("127.0.0.1:7401", "nowhere")]).contains("listen.client"));
    let error = error_for(&[("[timers]\n", "[timers]\nfailover_after_misses = 60\n")]);
    assert!(error.contains("startup_failover_after_misses"), "{error}");
}

#[test]
fn a_toml_syntax_error_is_reported_with_the_file() {
    let error = error_for(&[("cluster = \"t\"", "cluster = ")]);
    assert!(error.contains("node.toml"), "{error}");
}

#[test]
fn the_digest_covers_shared_settings_only() {
    let dir = tempfile::tempdir().unwrap();
    let a = Config::load(&write_config(dir.path(), &[])).unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    let renamed = Config::load(&write_config(
        other_dir.path(),
        &[("data_dir = \"data\"", "data_dir = \"elsewhere\"")],
    ))
    .unwrap();
    assert_eq!(a.digest(), renamed.digest());
    let third = tempfile::tempdir().unwrap();
    let retimed = Config::load(&write_config(third.path(), &[("\"100ms\"", "\"200ms\"")])).unwrap();
    assert_ne!(a.digest(), retimed.digest());
}

fn with_replication(section: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &[("[tls]\n", &format!("{section}\n[tls]\n"))]);
    match Config::load(&path) {
        Ok(config) => format!("ok {:?}", config.replication),
        Err(error) => error.to_string(),
    }
}

#[test]
fn replication_defaults_are_sync_with_the_designed_retention() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::load(&write_config(dir.path(), &[])).unwrap();
    let replication = config.replication;
    assert_eq!(replication.mode, ReplicationMode::Sync);
    assert!(!replication.sync_strict);
    assert_eq!(replication.sync_timeout, Duration::from_secs(2));
    assert_eq!(replication.retention_entries, 1_000_000);
    assert_eq!(replication.retention_bytes, 1 << 30);
    assert_eq!(
        replication.migrations, None,
        "no migrations directory, none used"
    );
    assert_eq!(replication.resync_rate, 0);
    assert_eq!(
        replication.request_retention,
        Duration::from_secs(24 * 3600)
    );
    assert_eq!(config.gateway.session_ttl, Duration::from_secs(12 * 3600));
}

#[test]
fn bad_replication_settings_name_their_key() {
    let cases = [
        ("[replication]\nmode = \"semi\"", "replication.mode"),
        (
            "[replication]\nsync_timeout = \"soon\"",
            "replication.sync_timeout",
        ),
        (
            "[replication]\nmigrations = \"nowhere\"",
            "replication.migrations",
        ),
        ("[replication]\ntables = [\"a b\"]", "replication.tables[0]"),
        (
            "[replication]\ntables = [\"_tandem_log\"]",
            "replication.tables[0]",
        ),
        (
            "[replication]\ntables = [\"tandem_notes\"]",
            "replication.tables[0]",
        ),
        (
            "[replication]\ntables = [\"extensions\", \"CDRS\"]",
            "replication.tables[1]",
        ),
        (
            "[gateway]\nsession_ttl = \"forever\"",
            "gateway.session_ttl",
        ),
        ("[gateway]\nsession_ttl = \"10ms\"", "gateway.session_ttl"),
        ("[gateway]\nsession_tll = \"1h\"", "session_tll"),
        ("[hooks]\ntimeout = \"1ms\"", "hooks.timeout"),
        ("[hooks]\non_actve = \"x\"", "on_actve"),
        (
            "[[service]]\nname = \"pbx\"\ncommand = \"\"",
            "service[0].command",
        ),
        (
            "[[service]]\nname = \"pbx\"\ncommand = \"x\"\nrun_on = \"passive\"",
            "service[0].run_on",
        ),
        (
            "[[service]]\nname = \"pbx\"\ncommand = \"x\"\n[[service]]\nname = \"pbx\"\ncommand = \"y\"",
            "service[1].name",
        ),
        (
            "[[service]]\nname = \"pbx\"\ncommand = \"x\"\nmax_restarts = 0",
            "service[0].max_restarts",
        ),
        (
            "[[service]]\nname = \"pbx\"\ncommand = \"x\"\nrestart_window = \"soon\"",
            "service[0].restart_window",
        ),
        (
            "[[service]]\nname = \"pbx\"\ncommand = \"x\"\nhealth = { tcp = \"nowhere\" }",
            "service[0].health.tcp",
        ),
        (
            "[[service]]\nname = \"pbx\"\ncommand = \"x\"\nhealth = { tcp = \"h:1\", command = \"true\" }",
            "service[0].health",
        ),
        (
            "[[service]]\nname = \"pbx\"\ncommand = \"x\"\nhealth = { command = \"true\", interval = \"1s\", timeout = \"5s\" }",
            "service[0].health.timeout",
        ),
        (
            "[[service]]\nname = \"pbx\"\ncommand = \"x\"\nrestrat = 1",
            "restrat",
        ),
        (
            "[[files]]\nname = \"vm\"\ndir = \"nowhere\"",
            "files[0].dir",
        ),
        (
            "[[files]]\nname = \"vm\"\ndir = \"certs\"\ninclude = [\"a[\"]",
            "files[0].include",
        ),
        (
            "[[files]]\nname = \"vm\"\ndir = \"certs\"\nbandwidth = \"fast\"",
            "files[0].bandwidth",
        ),
        (
            "[[files]]\nname = \"vm\"\ndir = \"certs\"\n[[files]]\nname = \"vm\"\ndir = \"data\"",
            "files[1].name",
        ),
        (
            "[[files]]\nname = \"vm\"\ndir = \"certs\"\nrecursve = true",
            "recursve",
        ),
        (
            "[alerts]\nsmtp_host = \"127.0.0.1\"\nfrom = \"not an address\"\nto = [\"ops@example.com\"]",
            "alerts.from",
        ),
        (
            "[alerts]\nsmtp_host = \"127.0.0.1\"\nfrom = \"t@example.com\"\nto = []",
            "alerts.to",
        ),
        (
            "[alerts]\nsmtp_host = \"h\"\nsecurity = \"ssl\"\nfrom = \"t@example.com\"\nto = [\"o@example.com\"]",
            "alerts.security",
        ),
        (
            "[alerts]\nsmtp_host = \"h\"\nuser = \"u\"\nfrom = \"t@example.com\"\nto = [\"o@example.com\"]",
            "alerts.user",
        ),
        (
            "[replication]\ntables = [\"t\"]\nconflict_policy = { t = \"loudest\" }",
            "replication.conflict_policy.t",
        ),
        (
            "[replication]\nconflict_policy = { u = \"newest\" }",
            "replication.conflict_policy.u",
        ),
        (
            "[replication]\nlog_retention = { entries = 0 }",
            "replication.log_retention.entries",
        ),
        (
            "[replication]\nlog_retention = { bytes = \"1 parsec\" }",
            "replication.log_retention.bytes",
        ),
        (
            "[replication]\nrequest_retention = \"500ms\"",
            "replication.request_retention",
        ),
        (
            "[replication]\nverify_every = \"daily\"",
            "replication.verify_every",
        ),
        (
            "[replication]\nresync_rate = \"fast\"",
            "replication.resync_rate",
        ),
        ("[replication]\nshipping = true", "shipping"),
    ];
    for (section, key) in cases {
        let message = with_replication(section);
        assert!(message.contains(key), "{section}: {message}");
    }
}

#[test]
fn services_parse_with_defaults_and_resolved_commands() {
    let dir = tempfile::tempdir().unwrap();
    let section = "[[service]]\nname = \"pbx\"\ncommand = \"bin/pbx\"\nargs = [\"-f\"]\nenv = { LANG = \"C\" }\ncritical = true\nhealth = { tcp = \"127.0.0.1:5060\" }\n\
        [[service]]\nname = \"agent\"\ncommand = \"sleep\"\nrun_on = \"both\"\nrestart_window = \"1m\"\n";
    let path = write_config(dir.path(), &[("[tls]\n", &format!("{section}[tls]\n"))]);
    let config = Config::load(&path).unwrap();
    let [pbx, agent] = config.services.as_slice() else {
        panic!("two services: {:?}", config.services);
    };
    assert_eq!(
        pbx.command,
        dir.path().join("bin/pbx").display().to_string()
    );
    assert_eq!(pbx.args, ["-f"]);
    assert_eq!(pbx.env.get("LANG").map(String::as_str), Some("C"));
    assert_eq!(pbx.run_on, RunOn::Active);
    assert!(pbx.critical);
    assert_eq!(pbx.max_restarts, 3);
    assert_eq!(pbx.restart_window, Duration::from_secs(300));
    let health = pbx.health.as_ref().unwrap();
    assert_eq!(health.probe, HealthProbe::Tcp("127.0.0.1:5060".into()));
    assert_eq!(
        (health.interval, health.failures),
        (Duration::from_secs(5), 3)
    );
    assert_eq!(agent.command, "sleep");
    assert_eq!(agent.run_on, RunOn::Both);
    assert!(!agent.critical && agent.health.is_none());
    assert_eq!(agent.restart_window, Duration::from_secs(60));
}

#[test]
fn auto_failback_takes_never_when_idle_or_a_duration() {
    let dir = tempfile::tempdir().unwrap();
    let load = |value: &str| {
        let line = format!("cluster = \"t\"\nauto_failback = \"{value}\"\n");
        Config::load(&write_config(dir.path(), &[("cluster = \"t\"\n", &line)]))
    };
    assert_eq!(load("never").unwrap().auto_failback, AutoFailback::Never);
    assert_eq!(
        load("when_idle").unwrap().auto_failback,
        AutoFailback::WhenIdle
    );
    assert_eq!(
        load("10m").unwrap().auto_failback,
        AutoFailback::After(Duration::from_secs(600))
    );
    let error = load("sometimes").unwrap_err().to_string();
    assert!(
        error.contains("auto_failback") && error.contains("when_idle"),
        "{error}"
    );
}

#[test]
fn sizes_and_policies_parse() {
    let message = with_replication(
        "[replication]\nmode = \"async\"\ntables = [\"t\", \"u\"]\n\
         conflict_policy = { default = \"keep_active\", u = \"newest\" }\n\
         log_retention = { entries = 10, bytes = \"512MiB\" }\nresync_rate = \"64KiB\"",
    );
    assert!(message.starts_with("ok"), "{message}");
    assert!(message.contains("mode: Async"), "{message}");
    assert!(message.contains("default_policy: KeepActive"), "{message}");
    assert!(message.contains("(\"u\", Newest)"), "{message}");
    assert!(message.contains("retention_bytes: 536870912"), "{message}");
    assert!(message.contains("resync_rate: 65536"), "{message}");
    assert_eq!(parse_bytes("1GiB"), Ok(1 << 30));
    assert_eq!(parse_bytes("1000"), Ok(1000));
    assert!(
        parse_bytes("99999999999TiB")
            .unwrap_err()
            .contains("too large")
    );
}

fn with_witness(section: &str) -> Vec<(&'static str, String)> {
    vec![("[tls]\n", format!("{section}\n[tls]\n"))]
}

fn load_with(section: &str) -> Result<Config, String> {
    let dir = tempfile::tempdir().unwrap();
    let replace = with_witness(section);
    let replace: Vec<(&str, &str)> = replace.iter().map(|(a, b)| (*a, b.as_str())).collect();
    Config::load(&write_config(dir.path(), &replace)).map_err(|error| error.to_string())
}

#[cfg(feature = "etcd")]
#[test]
fn the_witness_is_tandemd_witness_or_etcd_with_their_defaults() {
    let config = load_with("[witness]\naddress = \"10.0.0.9:7400\"").unwrap();
    let witness = config.witness.unwrap();
    assert_eq!(witness.kind(), "witness");
    assert_eq!(witness.server_name, "tandem-witness");
    assert_eq!(witness.lease, Duration::from_secs(1));
    assert!(witness.etcd.is_none());

    let config =
        load_with("[witness]\netcd = [\"https://10.0.0.7:2379\", \"https://10.0.0.8:2379\"]")
            .unwrap();
    let witness = config.witness.unwrap();
    assert_eq!(witness.kind(), "etcd");
    assert_eq!(witness.lease, Duration::from_secs(2), "etcd's minimum");
    let etcd = witness.etcd.unwrap();
    assert_eq!(etcd.prefix, "/tandem");
    assert_eq!(etcd.endpoints.len(), 2);
    assert_eq!(etcd.server_name, None, "each endpoint's host is verified");

    let config = load_with(
        "[witness]\netcd = [\"https://10.0.0.7:2379\"]\nserver_name = \"etcd.example.com\"",
    )
    .unwrap();
    let etcd = config.witness.unwrap().etcd.unwrap();
    assert_eq!(etcd.server_name.as_deref(), Some("etcd.example.com"));
}

#[cfg(feature = "etcd")]
#[test]
fn bad_witness_settings_name_their_key() {
    for (section, key, words) in [
        (
            "[witness]\nlease = \"1s\"",
            "witness.address",
            "is required",
        ),
        (
            "[witness]\naddress = \"10.0.0.9:7400\"\netcd = [\"https://10.0.0.7:2379\"]",
            "witness.etcd",
            "not both",
        ),
        ("[witness]\netcd = []", "witness.etcd", "names no endpoint"),
        (
            "[witness]\netcd = [\"http://10.0.0.7:2379\"]",
            "witness.etcd",
            "mutual TLS",
        ),
        (
            "[witness]\netcd = [\"https://10.0.0.7\"]",
            "witness.etcd",
            "https://10.0.0.7",
        ),
        (
            "[witness]\netcd = [\"https://10.0.0.7:2379\"]\netcd_prefix = \"tandem/\"",
            "witness.etcd_prefix",
            "is not a key prefix",
        ),
        (
            "[witness]\naddress = \"10.0.0.9:7400\"\netcd_prefix = \"/tandem\"",
            "witness.etcd_prefix",
            "set witness.etcd too",
        ),
        (
            "[witness]\netcd = [\"https://10.0.0.7:2379\"]\nlease = \"1s\"",
            "witness.lease",
            "at least 2s with etcd",
        ),
        (
            "[witness]\netcd = [\"https://10.0.0.7:2379\"]\nserver_name = \"etcd..x\"",
            "witness.server_name",
            "is not a DNS name",
        ),
    ] {
        let error = load_with(section).unwrap_err();
        assert!(
            error.contains(key) && error.contains(words),
            "{section}: {error}"
        );
    }
}

#[cfg(not(feature = "etcd"))]
#[test]
fn a_build_without_the_etcd_feature_refuses_the_etcd_witness_by_name() {
    let error = load_with("[witness]\netcd = [\"https://10.0.0.7:2379\"]").unwrap_err();
    assert!(
        error.contains("witness.etcd") && error.contains("without the etcd witness backend"),
        "{error}"
    );
}

#[cfg(feature = "etcd")]
#[test]
fn the_digest_tells_the_etcd_witness_from_tandemd_witness() {
    let witness = load_with("[witness]\naddress = \"10.0.0.9:7400\"\nlease = \"2s\"").unwrap();
    let etcd = load_with("[witness]\netcd = [\"https://10.0.0.7:2379\"]").unwrap();
    let other_prefix =
        load_with("[witness]\netcd = [\"https://10.0.0.7:2379\"]\netcd_prefix = \"/pbx\"").unwrap();
    assert_ne!(witness.digest(), etcd.digest());
    assert_ne!(etcd.digest(), other_prefix.digest());
}
