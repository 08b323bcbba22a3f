//! The cluster's plumbing against stand-in binaries: shell scripts that create empty
//! certificate files, run `sleep` as the node, and answer `status --json` from a file the test
//! writes. The real binaries are tested by the end-to-end tests of the root package.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use toml::Table;

use super::*;
use crate::{Mode, Timers};

const DEADLINE: Duration = Duration::from_secs(10);

/// Execs `sleep`, so that signals reach it directly.
const FAKE_TANDEMD: &str = r#"#!/bin/sh
echo "fake tandemd $*" >&2
exec sleep 1000
"#;

/// `certs init --dir D --nodes a,b` creates empty files; `--config F status --json` prints the
/// role in `dir(F)/role`, or hangs while `dir(F)/hang` exists.
const FAKE_TANDEMCTL: &str = r#"#!/bin/sh
if [ "$1" = certs ]; then
    mkdir -p "$4"
    for name in ca admin $(echo "$6" | tr , ' '); do touch "$4/$name.pem" "$4/$name.key"; done
    exit 0
fi
dir=$(dirname "$2")
[ -f "$dir/hang" ] && exec sleep 1000
[ -f "$dir/role" ] || { echo "connection refused" >&2; exit 1; }
echo "{\"node\": {\"name\": \"$(basename "$dir")\", \"role\": \"$(cat "$dir/role")\"}}"
"#;

/// The stand-in binaries, in a directory that lives as long as the test.
struct Fakes {
    _dir: TempDir,
    bins: Binaries,
}

fn fakes() -> Fakes {
    let dir = tempfile::tempdir().unwrap();
    for (name, script) in [("tandemd", FAKE_TANDEMD), ("tandemctl", FAKE_TANDEMCTL)] {
        let path = dir.path().join(name);
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let bins = Binaries::from_target_dir(dir.path());
    Fakes { _dir: dir, bins }
}

fn parsed_config(cluster: &Cluster, name: &str) -> Table {
    std::fs::read_to_string(cluster.config_path(name))
        .unwrap()
        .parse()
        .unwrap()
}

fn addr(value: &toml::Value) -> SocketAddr {
    value.as_str().unwrap().parse().unwrap()
}

fn set_role(cluster: &Cluster, name: &str, role: &str) {
    std::fs::write(cluster.dir().join(name).join("role"), role).unwrap();
}

#[test]
fn configs_have_the_expected_keys_and_parse() {
    let fakes = fakes();
    let cluster = Cluster::prepare(ClusterSpec::new(), &fakes.bins).unwrap();
    for (name, peer, priority) in [("a", "b", 100), ("b", "a", 50)] {
        let config = parsed_config(&cluster, name);
        assert_eq!(config["cluster"].as_str(), Some("test"));
        assert_eq!(config["max_clock_offset"].as_str(), Some("500ms"));
        let node = &config["node"];
        assert_eq!(node["name"].as_str(), Some(name));
        assert_eq!(node["priority"].as_integer(), Some(priority));
        assert_eq!(
            Path::new(node["data_dir"].as_str().unwrap()),
            cluster.data_dir(name)
        );
        assert!(cluster.data_dir(name).is_dir());
        assert_eq!(node["reachability"].as_array().map(Vec::len), Some(0));
        let addrs = cluster.addrs(name);
        assert_eq!(addr(&config["listen"]["peer"]), addrs.peer);
        assert_eq!(addr(&config["listen"]["client"]), addrs.client);
        assert_eq!(addr(&config["listen"]["admin"]), addrs.admin);
        assert_eq!(addr(&config["listen"]["http"]), addrs.http);
        assert_eq!(config["peer"]["name"].as_str(), Some(peer));
        assert_eq!(addr(&config["peer"]["address"]), cluster.addrs(peer).peer);
        assert_eq!(
            addr(&config["peer"]["client_address"]),
            cluster.addrs(peer).client
        );
        let timers = &config["timers"];
        assert_eq!(timers["keepalive_interval"].as_str(), Some("100ms"));
        assert_eq!(timers["warn_after_misses"].as_integer(), Some(3));
        assert_eq!(timers["failover_after_misses"].as_integer(), Some(8));
        assert_eq!(
            timers["startup_failover_after_misses"].as_integer(),
            Some(50)
        );
        assert_eq!(timers["min_failover_interval"].as_str(), Some("0s"));
        for (key, file) in [
            ("ca", "ca.pem".to_owned()),
            ("cert", format!("{name}.pem")),
            ("key", format!("{name}.key")),
        ] {
            let path = Path::new(config["tls"][key].as_str().unwrap());
            assert_eq!(path, cluster.certs_dir().join(file));
            assert!(path.is_file(), "{}", path.display());
        }
    }
}

#[test]
fn with_proxies_each_node_dials_its_peer_through_a_proxy() {
    let fakes = fakes();
    let spec = ClusterSpec::new().with_proxies(true);
    let cluster = Cluster::prepare(spec, &fakes.bins).unwrap();
    for (from, to) in [("a", "b"), ("b", "a")] {
        let proxy = cluster.proxy(from, to);
        assert_eq!(proxy.target(), cluster.addrs(to).peer);
        assert_eq!(proxy.mode(), Mode::Pass);
        let config = parsed_config(&cluster, from);
        assert_eq!(addr(&config["peer"]["address"]), proxy.listen_addr());
        assert_eq!(
            addr(&config["peer"]["client_address"]),
            cluster.addrs(to).client
        );
    }
}

#[test]
fn overrides_extra_toml_and_reachability_reach_the_file() {
    let fakes = fakes();
    let timers = Timers {
        failover_after_misses: 20,
        ..Timers::default()
    };
    let spec = ClusterSpec::new()
        .timers(timers)
        .priority("b", 200)
        .reachability("a", ["127.0.0.1:1"])
        .set("a", "timers.warn_after_misses", 5)
        .set_all("auto_failback", "never")
        .extra_toml("b", "[replication]\nmode = \"async\"");
    let mut cluster = Cluster::prepare(spec, &fakes.bins).unwrap();
    let a = parsed_config(&cluster, "a");
    let b = parsed_config(&cluster, "b");
    assert_eq!(a["timers"]["failover_after_misses"].as_integer(), Some(20));
    assert_eq!(a["timers"]["warn_after_misses"].as_integer(), Some(5));
    assert_eq!(b["timers"]["warn_after_misses"].as_integer(), Some(3));
    assert_eq!(a["node"]["reachability"][0].as_str(), Some("127.0.0.1:1"));
    assert_eq!(b["node"]["priority"].as_integer(), Some(200));
    assert_eq!(a["auto_failback"].as_str(), Some("never"));
    assert_eq!(b["auto_failback"].as_str(), Some("never"));
    assert_eq!(b["replication"]["mode"].as_str(), Some("async"));
    assert!(a.get("replication").is_none());

    cluster
        .update_config("a", |config| {
            config.remove("timers.warn_after_misses");
        })
        .unwrap();
    assert!(
        parsed_config(&cluster, "a")["timers"]
            .get("warn_after_misses")
            .is_none()
    );
}

#[test]
fn nodes_start_restart_and_are_asked_for_their_status() {
    let fakes = fakes();
    let mut cluster = Cluster::start(ClusterSpec::new(), &fakes.bins).unwrap();
    assert!(cluster.node_mut("a").is_running() && cluster.node_mut("b").is_running());
    assert_eq!(cluster.role("a"), None);
    set_role(&cluster, "a", "active");
    set_role(&cluster, "b", "passive");
    cluster.wait_role("b", "passive", DEADLINE).unwrap();
    assert_eq!(cluster.wait_single_active(DEADLINE).unwrap(), "a");
    assert_eq!(cluster.status("a").unwrap()["node"]["name"], "a");

    cluster.node_mut("a").kill().unwrap();
    assert!(cluster.start_node("b").is_err(), "b is still running");
    cluster.start_node("a").unwrap();
    assert!(cluster.node_mut("a").is_running());
    cluster
        .wait_until(DEADLINE, "both runs in a's log", |cluster| {
            let log = std::fs::read_to_string(cluster.log_path("a"))?;
            Ok((log.matches("fake tandemd --config").count() == 2).then_some(()))
        })
        .unwrap();
}

#[test]
fn prepare_then_start_one_node() {
    let fakes = fakes();
    let mut cluster = Cluster::prepare(ClusterSpec::new(), &fakes.bins).unwrap();
    cluster.start_node("b").unwrap();
    assert!(cluster.node_mut("b").is_running());
    assert!(!cluster.log_path("a").exists());
}

#[test]
fn a_hanging_ctl_is_killed_and_the_node_counts_as_not_answering() {
    let fakes = fakes();
    let spec = ClusterSpec::new().ctl_timeout(Duration::from_millis(300));
    let cluster = Cluster::start(spec, &fakes.bins).unwrap();
    set_role(&cluster, "a", "active");
    set_role(&cluster, "b", "active");
    std::fs::write(cluster.dir().join("b").join("hang"), "").unwrap();
    let error = cluster.status("b").unwrap_err();
    assert!(format!("{error:#}").contains("did not finish"), "{error:#}");
    assert_eq!(cluster.active_nodes(), ["a"]);
}

#[test]
fn a_failed_wait_names_the_condition_the_last_error_and_the_logs() {
    let fakes = fakes();
    let cluster = Cluster::start(ClusterSpec::new(), &fakes.bins).unwrap();
    set_role(&cluster, "a", "passive");
    let started = Instant::now();
    let error = cluster
        .wait_role("a", "active", Duration::from_millis(100))
        .unwrap_err();
    let message = format!("{error:#}");
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert!(message.contains("node a to be active"), "{message}");
    assert!(message.contains("node a is passive"), "{message}");
    assert!(message.contains("node b's log"), "{message}");
    assert!(message.contains("fake tandemd --config"), "{message}");
    assert!(cluster.failed.load(Ordering::SeqCst));
}

#[test]
fn dropping_the_cluster_kills_its_nodes_and_removes_its_files() {
    let fakes = fakes();
    let cluster = Cluster::start(ClusterSpec::new().with_proxies(true), &fakes.bins).unwrap();
    let pids: Vec<u32> = ["a", "b"]
        .map(|name| cluster.node(name).pid().unwrap())
        .to_vec();
    let dir = cluster.dir().to_owned();
    let proxy_addr = cluster.proxy("a", "b").listen_addr();
    drop(cluster);
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "pid {pid} is left"
        );
    }
    assert!(!dir.exists());
    assert!(std::net::TcpStream::connect(proxy_addr).is_err());
}

#[test]
fn a_failing_certs_init_is_reported() {
    let fakes = fakes();
    let bins = Binaries::new(&fakes.bins.tandemd, "/bin/false");
    let error = Cluster::prepare(ClusterSpec::new(), &bins).unwrap_err();
    assert!(
        format!("{error:#}").contains("certs init failed"),
        "{error:#}"
    );
}
