//! The files in `deploy/` do what they say: the example configs load, the unit, the sysusers
//! and tmpfiles files and HAProxy's defaults agree with them, HAProxy sends new client
//! connections to the active across a switchover, and `vip.sh` moves a virtual IP with
//! gratuitous ARP between two network namespaces.
//!
//! The virtual-IP test needs root (network namespaces) and says so when it skips. Everything
//! else runs on 127.0.0.1, or in namespaces the test creates and deletes.

mod common;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use common::gateway::*;
use common::*;
use tandem_harness::netns::{HOST_INTERFACE, NetnsLan, is_root};
use tandem_harness::{Cluster, ClusterSpec, NodeProcess};

const HAPROXY: &str = "/usr/sbin/haproxy";
/// Fresh connections in a row that must all reach the same node.
const CONNECTIONS_IN_A_ROW: usize = 5;
const USER: &str = "gate-1";
const PASSWORD: &str = "through the balancer";

fn deploy_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(name)
}

fn read_deploy_file(name: &str) -> anyhow::Result<String> {
    let path = deploy_file(name);
    std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// The example configs, the unit and HAProxy's defaults

/// `deploy/a.toml` and `deploy/b.toml` in a directory of their own, beside certificates made
/// by `tandemctl certs init` (their `[tls]` paths are relative: `certs/...`).
fn example_configs(dir: &Path) -> anyhow::Result<[tandem_node::config::Config; 2]> {
    let output = Command::new(bins().tandemctl)
        .args(["certs", "init", "--dir"])
        .arg(dir.join("certs"))
        .args(["--nodes", "a,b"])
        .output()?;
    assert!(output.status.success(), "certs init: {output:?}");
    let load = |name: &str| -> anyhow::Result<tandem_node::config::Config> {
        let path = dir.join(name);
        std::fs::copy(deploy_file(name), &path)?;
        tandem_node::daemon::load_config(&path).map_err(|error| anyhow!("{name}: {error}"))
    };
    Ok([load("a.toml")?, load("b.toml")?])
}

/// `deploy/witness.toml` loads beside certificates from `certs init --witness`, serves the
/// example pair, and the unit starts it with the same file and keeps its data where it says.
#[test]
fn the_example_witness_config_and_unit_agree() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let output = Command::new(bins().tandemctl)
        .args(["certs", "init", "--dir"])
        .arg(dir.path().join("certs"))
        .args(["--nodes", "a,b", "--witness", "tandem-witness"])
        .output()?;
    assert!(output.status.success(), "certs init: {output:?}");
    let path = dir.path().join("witness.toml");
    std::fs::copy(deploy_file("witness.toml"), &path)?;
    let witness = tandem_node::config::WitnessConfig::load(&path)?;
    let configs_dir = tempfile::tempdir()?;
    let [a, _] = example_configs(configs_dir.path())?;
    assert_eq!(witness.pairs.len(), 1);
    assert_eq!(witness.pairs[0].cluster, a.cluster);
    assert!(witness.pairs[0].nodes.contains(&a.node.name));
    let unit = read_deploy_file("tandem-witness.service")?;
    assert_eq!(
        unit_words(&unit, "ExecStart"),
        [
            "/usr/local/bin/tandemd",
            "witness",
            "--config",
            "/etc/tandem/witness.toml"
        ]
    );
    assert_eq!(
        witness.data_dir,
        Path::new("/var/lib").join(unit_words(&unit, "StateDirectory").join(""))
    );
    Ok(())
}

#[test]
fn the_example_configs_are_accepted_by_the_config_loader_and_make_a_pair() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let [a, b] = example_configs(dir.path())?;

    phase("each names the other as its peer, at the ports the other listens on");
    assert_eq!((a.node.name.as_str(), a.peer.name.as_str()), ("a", "b"));
    assert_eq!((b.node.name.as_str(), b.peer.name.as_str()), ("b", "a"));
    assert!(
        a.node.priority > b.node.priority,
        "a is the preferred master"
    );
    for (this, other) in [(&a, &b), (&b, &a)] {
        let port = |address: &str| address.rsplit(':').next().map(str::to_owned);
        let peer_port = other.listen.peer.port().to_string();
        let client_port = other.listen.client.port().to_string();
        assert_eq!(port(&this.peer.address), Some(peer_port));
        assert_eq!(port(&this.peer.client_address), Some(client_port));
    }

    phase("they share the settings both nodes must agree on");
    assert_eq!(a.digest(), b.digest());

    phase("both run vip.sh as all three role hooks, with the same address and interface");
    for config in [&a, &b] {
        let hooks = &config.hooks;
        assert!(hooks.on_active.contains("/vip.sh --address "), "{hooks:?}");
        assert_eq!(hooks.on_active, hooks.on_passive);
        assert_eq!(hooks.on_active, hooks.on_fault);
        assert!(config.hooks.fence_peer.is_empty());
    }
    assert_eq!(a.hooks.on_active, b.hooks.on_active);
    Ok(())
}

/// The default of `"${NAME-default}"` in HAProxy's config.
fn haproxy_default(config: &str, name: &str) -> anyhow::Result<String> {
    let start = format!("\"${{{name}-");
    let from = config
        .find(&start)
        .ok_or_else(|| anyhow!("haproxy.cfg does not use {name}"))?
        + start.len();
    let end = config[from..]
        .find("}\"")
        .ok_or_else(|| anyhow!("{name}'s default is not closed"))?;
    Ok(config[from..from + end].to_owned())
}

/// The words of every `key=` line of a systemd unit, in order.
fn unit_words(unit: &str, key: &str) -> Vec<String> {
    let prefix = format!("{key}=");
    unit.lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .flat_map(|value| value.split_whitespace().map(str::to_owned))
        .collect()
}

#[test]
fn haproxy_the_unit_and_the_user_files_agree_with_the_example_configs() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let [a, b] = example_configs(dir.path())?;

    phase("haproxy.cfg as shipped passes `haproxy -c`, and its defaults are the examples' ports");
    let mut check = Command::new(HAPROXY);
    check.args(["-c", "-f"]).arg(deploy_file("haproxy.cfg"));
    for name in [
        "A_CLIENT",
        "A_HTTP_PORT",
        "B_CLIENT",
        "B_HTTP_PORT",
        "HAPROXY_BIND",
    ] {
        check.env_remove(format!("TANDEM_{name}"));
    }
    let output = check
        .output()
        .with_context(|| format!("run {HAPROXY} (scripts/install-deps.sh installs it)"))?;
    assert!(output.status.success(), "haproxy -c: {output:?}");
    let haproxy = read_deploy_file("haproxy.cfg")?;
    assert_eq!(
        haproxy_default(&haproxy, "TANDEM_A_CLIENT")?,
        b.peer.client_address
    );
    assert_eq!(
        haproxy_default(&haproxy, "TANDEM_B_CLIENT")?,
        a.peer.client_address
    );
    let http_port = |config: &tandem_node::config::Config| config.listen.http.port().to_string();
    assert_eq!(
        haproxy_default(&haproxy, "TANDEM_A_HTTP_PORT")?,
        http_port(&a)
    );
    assert_eq!(
        haproxy_default(&haproxy, "TANDEM_B_HTTP_PORT")?,
        http_port(&b)
    );

    phase("the unit's user is the one sysusers creates and tmpfiles gives /etc/tandem to");
    let unit = read_deploy_file("tandemd.service")?;
    let user = unit_words(&unit, "User");
    assert_eq!(user, ["tandem"]);
    let sysusers = read_deploy_file("tandem.sysusers.conf")?;
    assert!(
        sysusers
            .lines()
            .any(|line| line.split_whitespace().take(2).eq(["u", "tandem"])),
        "{sysusers}"
    );
    let tmpfiles = read_deploy_file("tandem.tmpfiles.conf")?;
    assert!(
        tmpfiles.lines().any(|line| line.split_whitespace().eq([
            "d",
            "/etc/tandem",
            "0750",
            "root",
            "tandem",
            "-"
        ])),
        "{tmpfiles}"
    );

    phase("the state directory is the examples' data_dir, writable under ProtectSystem=strict");
    assert_eq!(unit_words(&unit, "ProtectSystem"), ["strict"]);
    for config in [&a, &b] {
        let state = unit_words(&unit, "StateDirectory");
        assert_eq!(config.node.data_dir, Path::new("/var/lib").join(&state[0]));
    }

    phase("the VIP hooks get their capabilities and socket families");
    for key in ["CapabilityBoundingSet", "AmbientCapabilities"] {
        assert_eq!(
            unit_words(&unit, key),
            ["CAP_NET_ADMIN", "CAP_NET_RAW"],
            "{key}"
        );
    }
    let families = unit_words(&unit, "RestrictAddressFamilies");
    for family in ["AF_INET", "AF_INET6", "AF_NETLINK", "AF_PACKET", "AF_UNIX"] {
        assert!(
            families.iter().any(|f| f == family),
            "{family}: {families:?}"
        );
    }
    assert_eq!(unit_words(&unit, "RestartPreventExitStatus"), ["2"]);
    assert_eq!(unit_words(&unit, "KillSignal"), ["SIGTERM"]);
    assert_eq!(
        unit_words(&unit, "ExecReload"),
        ["/bin/kill", "-HUP", "$MAINPID"],
        "systemctl reload sends SIGHUP, which reloads the certificates"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// vip.sh's settings

fn vip_script(args: &[&str], envs: &[(&str, &str)]) -> anyhow::Result<Output> {
    let mut command = Command::new("/bin/sh");
    command.arg(deploy_file("vip.sh")).args(args);
    for name in [
        "VIP_ADDRESS",
        "VIP_INTERFACE",
        "VIP_ARP_COUNT",
        "TANDEM_ROLE",
    ] {
        command.env_remove(name);
    }
    command.envs(envs.iter().copied());
    Ok(command.output()?)
}

/// Runs vip.sh, expects exit status 2 and a message containing every one of `needles`.
fn assert_refused(args: &[&str], envs: &[(&str, &str)], needles: &[&str]) -> anyhow::Result<()> {
    let output = vip_script(args, envs)?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{args:?} {envs:?}: {stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "{args:?} {envs:?}: {stderr}");
    }
    Ok(())
}

#[test]
fn vip_script_names_missing_or_bad_settings_before_changing_anything() -> anyhow::Result<()> {
    phase("no address, no interface");
    assert_refused(
        &["up"],
        &[],
        &["no virtual address", "--address", "VIP_ADDRESS"],
    )?;
    assert_refused(
        &["--address", "10.0.0.10/24", "up"],
        &[],
        &["no interface", "--interface", "VIP_INTERFACE"],
    )?;
    phase("an address without its prefix length, or not an IPv4 address");
    assert_refused(
        &["--address", "10.0.0.10", "--interface", "lo", "up"],
        &[],
        &["\"10.0.0.10\" has no prefix length", "10.0.0.10/24"],
    )?;
    assert_refused(
        &["up"],
        &[("VIP_ADDRESS", "10.0.300.10/24"), ("VIP_INTERFACE", "lo")],
        &["\"10.0.300.10\" is not an IPv4 address"],
    )?;
    assert_refused(
        &["--address", "10.0.0.10/40", "--interface", "lo", "up"],
        &[],
        &["prefix length \"40\""],
    )?;
    phase("no role and no action; an unknown argument; an interface that does not exist");
    let settings = [("VIP_ADDRESS", "10.0.0.10/24"), ("VIP_INTERFACE", "lo")];
    assert_refused(&[], &settings, &["no action", "TANDEM_ROLE"])?;
    assert_refused(&["sideways"], &settings, &["unknown argument \"sideways\""])?;
    assert_refused(
        &["--address", "10.0.0.10/24", "--interface", "nosuchif0"],
        &[("TANDEM_ROLE", "active")],
        &["interface \"nosuchif0\" does not exist"],
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// HAProxy in front of a pair on 127.0.0.1

/// HAProxy running `deploy/haproxy.cfg` as shipped, with the pair's addresses in its
/// environment. A child of the test (through the harness's spawner, so it dies with the test
/// process); dropping it kills it by its pid.
fn start_haproxy(cluster: &Cluster, listen: &str) -> anyhow::Result<NodeProcess> {
    if !Path::new(HAPROXY).exists() {
        bail!("{HAPROXY} is missing; scripts/install-deps.sh installs HAProxy");
    }
    let (a, b) = (cluster.addrs("a"), cluster.addrs("b"));
    let mut args = vec![
        format!("TANDEM_HAPROXY_BIND={listen}"),
        format!("TANDEM_A_CLIENT={}", a.client),
        format!("TANDEM_A_HTTP_PORT={}", a.http.port()),
        format!("TANDEM_B_CLIENT={}", b.client),
        format!("TANDEM_B_HTTP_PORT={}", b.http.port()),
        // No chroot and no user switch, so the test need not be root.
        "TANDEM_HAPROXY_UNPRIVILEGED=1".to_owned(),
        HAPROXY.to_owned(),
        // In the foreground, as a plain child process.
        "-db".to_owned(),
        "-f".to_owned(),
    ];
    args.push(deploy_file("haproxy.cfg").display().to_string());
    NodeProcess::start(
        "haproxy",
        "/usr/bin/env",
        args,
        cluster.dir().join("haproxy.log"),
    )
}

/// A password login over a new TLS connection to `address`; returns the node that answered.
/// The client checks the certificate by the name every node has ("tandem-node"), since it
/// cannot know which node HAProxy picks.
async fn login_through(cluster: &Cluster, address: &str) -> anyhow::Result<String> {
    tandem_node::tls::install_crypto_provider();
    let certs = cluster.certs_dir();
    let files = tandem_node::tls::TlsFiles {
        ca: certs.join("ca.pem"),
        cert: certs.join("admin.pem"),
        key: certs.join("admin.key"),
    };
    let config = tandem_node::tls::client_config(&files, false)?;
    let channel =
        tandem_node::tls::connect(address, "tandem-node", config, Duration::from_secs(5)).await?;
    let mut gateway = Client::new(channel);
    let reply = login(&mut gateway, &rid("login"), USER, PASSWORD).await?;
    Ok(reply.node)
}

/// Waits until [`CONNECTIONS_IN_A_ROW`] new connections through HAProxy in a row all log in on
/// `node`. A refusal (the passive), a reset or a login on the other node starts the count again.
fn wait_routed_to(
    cluster: &Cluster,
    runtime: &tokio::runtime::Runtime,
    haproxy: &mut NodeProcess,
    listen: &str,
    node: &str,
) -> anyhow::Result<()> {
    let mut in_a_row = 0;
    let what = format!("new connections through HAProxy to reach {node}");
    let outcome = cluster.wait_until(WAIT, &what, |c| {
        if !haproxy.is_running() {
            let exited = anyhow!("HAProxy exited: {:?}", haproxy.exit_status());
            return Ok(Some(Err(exited)));
        }
        match runtime.block_on(login_through(c, listen)) {
            Ok(answered) if answered == node => in_a_row += 1,
            Ok(answered) => {
                in_a_row = 0;
                bail!("a login through HAProxy reached {answered}");
            }
            Err(error) => {
                in_a_row = 0;
                return Err(error.context("a login through HAProxy failed"));
            }
        }
        Ok((in_a_row == CONNECTIONS_IN_A_ROW).then_some(Ok(())))
    })?;
    outcome.with_context(|| {
        let log = std::fs::read_to_string(haproxy.log_path()).unwrap_or_default();
        format!("HAProxy's log:\n{log}")
    })
}

#[test]
fn haproxy_sends_new_connections_to_the_active_across_a_switchover() -> anyhow::Result<()> {
    let _serial = serial();
    let cluster = Cluster::start(ClusterSpec::new(), &bins())?;
    wait_steady(&cluster, "a")?;
    add_user(&cluster, "a", USER, PASSWORD)?;
    let runtime = tokio::runtime::Runtime::new()?;

    phase("HAProxy runs deploy/haproxy.cfg in front of the pair");
    let listen = tandem_harness::ports::free_addr()?.to_string();
    let mut haproxy = start_haproxy(&cluster, &listen)?;

    phase("logins through HAProxy reach a, the active, on every new connection");
    wait_routed_to(&cluster, &runtime, &mut haproxy, &listen, "a")?;

    phase("switchover: new connections through HAProxy reach b");
    common::data::wait_in_sync(&cluster, "a")?;
    cluster.ctl_ok("a", &["switchover"])?;
    wait_steady(&cluster, "b")?;
    wait_routed_to(&cluster, &runtime, &mut haproxy, &listen, "b")?;
    assert!(haproxy.is_running(), "HAProxy exited; see its log");

    phase("and back: a switchover on b sends them to a again");
    common::data::wait_in_sync(&cluster, "b")?;
    cluster.ctl_ok("b", &["switchover"])?;
    wait_steady(&cluster, "a")?;
    wait_routed_to(&cluster, &runtime, &mut haproxy, &listen, "a")?;
    haproxy.kill()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// vip.sh between network namespaces

const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const VIP_WITH_PREFIX: &str = "192.0.2.10/24";
const PING_TIMEOUT: Duration = Duration::from_secs(1);

/// The LAN: the two nodes' hosts and a client, on 192.0.2.0/24 (TEST-NET-1).
fn lan() -> anyhow::Result<NetnsLan> {
    NetnsLan::create(&[
        ("a", "192.0.2.1/24"),
        ("b", "192.0.2.2/24"),
        ("client", "192.0.2.100/24"),
    ])
}

/// vip.sh with the test's settings, run in `host`'s namespace.
fn vip_command(lan: &NetnsLan, host: &str) -> String {
    format!(
        "ip netns exec {} {} --address {VIP_WITH_PREFIX} --interface {HOST_INTERFACE}",
        lan.namespace(host),
        deploy_file("vip.sh").display()
    )
}

fn hooks_toml(lan: &NetnsLan, host: &str) -> String {
    let command = vip_command(lan, host);
    format!(
        "[hooks]\non_active = \"{command}\"\non_passive = \"{command}\"\n\
         on_fault = \"{command}\"\ntimeout = \"10s\"\n"
    )
}

/// Runs vip.sh by hand in `host`'s namespace and expects exit status 0.
fn vip_by_hand(lan: &NetnsLan, host: &str, action: &str) -> anyhow::Result<()> {
    let script = deploy_file("vip.sh").display().to_string();
    let args = [
        "--address",
        VIP_WITH_PREFIX,
        "--interface",
        HOST_INTERFACE,
        "--arp-count",
        "1",
        action,
    ];
    let output = lan.exec(host, &script, &args, &[])?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "vip.sh {action} on {host}: {stderr}"
    );
    Ok(())
}

/// Waits until the VIP is on `holder`'s interface and not on the other node's.
fn wait_vip_on(cluster: &Cluster, lan: &NetnsLan, holder: &str) -> anyhow::Result<()> {
    let other = other(holder);
    cluster.wait_until(WAIT, &format!("the VIP on {holder} only"), |_| {
        if lan.has_address(holder, VIP)? && !lan.has_address(other, VIP)? {
            return Ok(Some(()));
        }
        Err(anyhow!(
            "{holder} has {:?}, {other} has {:?}",
            lan.addresses(holder)?,
            lan.addresses(other)?
        ))
    })
}

/// Waits until the client's neighbour entry for the VIP holds `mac`.
fn wait_client_neighbour(cluster: &Cluster, lan: &NetnsLan, mac: &str) -> anyhow::Result<()> {
    cluster.wait_until(
        WAIT,
        &format!("the client's entry for the VIP at {mac}"),
        |_| match lan.neighbour_mac("client", VIP)? {
            Some(held) if held == mac => Ok(Some(())),
            held => Err(anyhow!("the client's entry holds {held:?}")),
        },
    )
}

fn wait_ping(cluster: &Cluster, lan: &NetnsLan) -> anyhow::Result<()> {
    cluster.wait_until(WAIT, "the VIP to answer the client's ping", |_| {
        lan.ping("client", VIP, PING_TIMEOUT).map(Some)
    })
}

#[test]
fn the_virtual_ip_follows_the_active_between_network_namespaces() -> anyhow::Result<()> {
    if !is_root() {
        println!(
            "18_deploy: SKIPPED the_virtual_ip_follows_the_active_between_network_namespaces: \
             it needs root to create network namespaces (CI runs as root)"
        );
        return Ok(());
    }
    let _serial = serial();
    let lan = lan()?;

    phase("by hand in a's namespace: adding twice and removing twice are no errors");
    for action in ["up", "up", "down", "down"] {
        vip_by_hand(&lan, "a", action)?;
        assert_eq!(lan.has_address("a", VIP)?, action == "up", "after {action}");
    }
    let addresses = lan.addresses("a")?;
    assert_eq!(addresses, ["192.0.2.1/24"], "a's own address stays");

    phase("start the pair with vip.sh as its hooks, each node's in its own namespace");
    let spec = ClusterSpec::new()
        .extra_toml("a", &hooks_toml(&lan, "a"))
        .extra_toml("b", &hooks_toml(&lan, "b"));
    let cluster = Cluster::start(spec, &bins())?;
    wait_steady(&cluster, "a")?;
    wait_vip_on(&cluster, &lan, "a")?;

    phase("the client pings the VIP and holds a's MAC for it");
    let (mac_a, mac_b) = (lan.mac("a")?, lan.mac("b")?);
    assert_ne!(mac_a, mac_b);
    wait_ping(&cluster, &lan)?;
    assert_eq!(
        lan.neighbour_mac("client", VIP)?.as_deref(),
        Some(mac_a.as_str())
    );

    phase("switchover: the VIP moves to b");
    cluster.ctl_ok("a", &["switchover"])?;
    wait_steady(&cluster, "b")?;
    wait_vip_on(&cluster, &lan, "b")?;

    phase("b's gratuitous ARP: the client's entry holds b's MAC before it sends anything");
    wait_client_neighbour(&cluster, &lan, &mac_b)?;

    phase("the VIP answers the client's ping, from b");
    wait_ping(&cluster, &lan)?;
    assert_eq!(
        lan.neighbour_mac("client", VIP)?.as_deref(),
        Some(mac_b.as_str())
    );
    wait_event(&cluster, "b", "hook", "on_active ran")?;
    Ok(())
}
