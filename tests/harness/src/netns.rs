//! A small LAN of network namespaces, for tests of what happens on a real Ethernet segment
//! (a virtual IP that moves, gratuitous ARP): one namespace holds a bridge, the "switch", and
//! each host is a namespace of its own with an `eth0` whose veth peer is a port of that bridge.
//!
//! ```text
//!  <prefix>-a        <prefix>-b        <prefix>-client
//!    eth0              eth0              eth0
//!     │                 │                 │
//!  ───┴──── p0 ─────────┴── p1 ───────────┴── p2 ──── br0 in <prefix>-lan
//! ```
//!
//! Nothing is created in, or changed on, the test process's own namespace: every link is made
//! inside the LAN namespace and its host end moved straight into the host's namespace. Names
//! are `tdmtest-<pid>-<n>-<host>`, unique per LAN; dropping the [`NetnsLan`] deletes its
//! namespaces, which deletes their links and the bridge with them. Namespaces left by a test
//! process that was killed before its drop ran are deleted by the next [`NetnsLan::create`],
//! once their pid is gone.
//!
//! Needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN); [`is_root`] lets a test skip otherwise. This
//! module only builds the network and looks at it; what runs on the hosts is the test's.

use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};

use crate::child_process::output_with_timeout;

/// The interface every host has on the LAN.
pub const HOST_INTERFACE: &str = "eth0";

/// The prefix of every namespace this module creates; also how stale ones are recognised.
const NAME_PREFIX: &str = "tdmtest";

/// How long one `ip` command may run. They are netlink round trips; only a wedged kernel or
/// a hung `ip netns exec` target takes longer.
const IP_TIMEOUT: Duration = Duration::from_secs(10);

/// Where `ip netns add` keeps its namespace handles.
const NETNS_DIR: &str = "/run/netns";

/// Whether the test process runs as root, which namespaces need.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// One host of the LAN.
#[derive(Clone, Debug)]
pub struct LanHost {
    /// The name the test uses for it.
    pub name: String,
    /// Its namespace, for `ip netns exec <namespace> ...`.
    pub namespace: String,
    /// Its address on `eth0`, with the prefix length (`192.0.2.1/24`).
    pub address: String,
}

/// A bridge and its hosts, each in a namespace of its own; deleted on drop.
#[derive(Debug)]
pub struct NetnsLan {
    /// The namespace that holds the bridge.
    lan_namespace: String,
    /// The hosts, in the order given.
    hosts: Vec<LanHost>,
    /// Every namespace created so far, so that drop deletes exactly these, also after a
    /// `create` that failed half way.
    created: Vec<String>,
}

impl NetnsLan {
    /// Builds the LAN: `hosts` are `(name, address/prefix)` pairs such as `("a",
    /// "192.0.2.1/24")`. Host names become part of namespace names: keep them short and plain.
    pub fn create(hosts: &[(&str, &str)]) -> anyhow::Result<NetnsLan> {
        if !is_root() {
            bail!("network namespaces need root");
        }
        delete_stale_namespaces();
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let prefix = format!(
            "{NAME_PREFIX}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut lan = NetnsLan {
            lan_namespace: format!("{prefix}-lan"),
            hosts: Vec::new(),
            created: Vec::new(),
        };
        lan.add_namespace(&lan.lan_namespace.clone())?;
        lan.ip_in(
            &lan.lan_namespace,
            &["link", "add", "br0", "type", "bridge"],
        )?;
        lan.ip_in(&lan.lan_namespace, &["link", "set", "br0", "up"])?;
        for (index, (name, address)) in hosts.iter().enumerate() {
            let host = LanHost {
                name: (*name).to_owned(),
                namespace: format!("{prefix}-{name}"),
                address: (*address).to_owned(),
            };
            lan.add_host(index, &host)?;
            lan.hosts.push(host);
        }
        Ok(lan)
    }

    fn add_namespace(&mut self, namespace: &str) -> anyhow::Result<()> {
        run_ip(&["netns", "add", namespace])?;
        self.created.push(namespace.to_owned());
        Ok(())
    }

    fn add_host(&mut self, index: usize, host: &LanHost) -> anyhow::Result<()> {
        self.add_namespace(&host.namespace)?;
        let port = format!("p{index}");
        let lan = self.lan_namespace.clone();
        self.ip_in(
            &lan,
            &[
                "link",
                "add",
                &port,
                "type",
                "veth",
                "peer",
                "name",
                HOST_INTERFACE,
                "netns",
                &host.namespace,
            ],
        )?;
        self.ip_in(&lan, &["link", "set", &port, "master", "br0", "up"])?;
        self.ip_in(&host.namespace, &["link", "set", "lo", "up"])?;
        self.ip_in(&host.namespace, &["link", "set", HOST_INTERFACE, "up"])?;
        self.ip_in(
            &host.namespace,
            &["addr", "add", &host.address, "dev", HOST_INTERFACE],
        )?;
        Ok(())
    }

    /// The host called `name`.
    ///
    /// # Panics
    /// If there is no such host: the test is wrong.
    pub fn host(&self, name: &str) -> &LanHost {
        self.hosts
            .iter()
            .find(|host| host.name == name)
            .unwrap_or_else(|| panic!("no host {name} on the LAN"))
    }

    /// The host's namespace.
    pub fn namespace(&self, name: &str) -> &str {
        &self.host(name).namespace
    }

    /// `ip -n <namespace> args...`: fails unless it exits 0; returns stdout.
    fn ip_in(&self, namespace: &str, args: &[&str]) -> anyhow::Result<String> {
        let mut all = vec!["-n", namespace];
        all.extend_from_slice(args);
        run_ip(&all)
    }

    /// `ip args...` inside the host's namespace; fails unless it exits 0; returns stdout.
    pub fn ip(&self, name: &str, args: &[&str]) -> anyhow::Result<String> {
        self.ip_in(self.namespace(name), args)
    }

    /// Runs `program args...` inside the host's namespace (`ip netns exec`) and returns its
    /// output whatever its exit status, with `envs` added to its environment.
    pub fn exec(
        &self,
        name: &str,
        program: &str,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> anyhow::Result<Output> {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", self.namespace(name), program])
            .args(args)
            .envs(envs.iter().copied());
        output_with_timeout(command, IP_TIMEOUT)
            .with_context(|| format!("ip netns exec {} {program}", self.namespace(name)))
    }

    /// The MAC address of the host's `eth0`.
    pub fn mac(&self, name: &str) -> anyhow::Result<String> {
        let link = self.ip(name, &["-o", "link", "show", "dev", HOST_INTERFACE])?;
        word_after(&link, "link/ether")
            .ok_or_else(|| anyhow!("no MAC address in `ip link` of host {name}: {link}"))
    }

    /// Whether the host's `eth0` has the IPv4 address `ip` (with any prefix length).
    pub fn has_address(&self, name: &str, ip: Ipv4Addr) -> anyhow::Result<bool> {
        let addresses = self.ip(name, &["-o", "-4", "addr", "show", "dev", HOST_INTERFACE])?;
        Ok(addresses.contains(&format!(" inet {ip}/")))
    }

    /// The host's addresses on `eth0`, for failure messages.
    pub fn addresses(&self, name: &str) -> anyhow::Result<Vec<String>> {
        let addresses = self.ip(name, &["-o", "-4", "addr", "show", "dev", HOST_INTERFACE])?;
        Ok(addresses
            .lines()
            .filter_map(|line| word_after(line, "inet"))
            .collect())
    }

    /// The MAC the host's neighbour table holds for `ip` on `eth0`, if it holds one (an entry
    /// still resolving, or one that failed, holds none).
    pub fn neighbour_mac(&self, name: &str, ip: Ipv4Addr) -> anyhow::Result<Option<String>> {
        let ip = ip.to_string();
        let entry = self.ip(name, &["neigh", "show", &ip, "dev", HOST_INTERFACE])?;
        Ok(word_after(&entry, "lladdr"))
    }

    /// Sends one ICMP echo request from the host to `target` and waits up to `timeout` for the
    /// reply. Done in-process (a raw socket on a thread that entered the host's namespace), so
    /// the test needs no `ping` binary.
    pub fn ping(&self, name: &str, target: Ipv4Addr, timeout: Duration) -> anyhow::Result<()> {
        let path = PathBuf::from(NETNS_DIR).join(self.namespace(name));
        std::thread::spawn(move || ping_from(&path, target, timeout))
            .join()
            .map_err(|_| anyhow!("the ping thread panicked"))?
            .with_context(|| format!("ping {target} from host {name}"))
    }
}

impl Drop for NetnsLan {
    /// Hosts first, then the bridge; a failure is reported and the rest still deleted.
    fn drop(&mut self) {
        for namespace in self.created.iter().rev() {
            if let Err(error) = run_ip(&["netns", "delete", namespace]) {
                eprintln!("tandem-harness: could not delete namespace {namespace}: {error:#}");
            }
        }
    }
}

/// `ip args...`; fails unless it exits 0; returns stdout.
fn run_ip(args: &[&str]) -> anyhow::Result<String> {
    let mut command = Command::new("ip");
    command.args(args);
    let output = output_with_timeout(command, IP_TIMEOUT)
        .with_context(|| format!("run ip {}", args.join(" ")))?;
    if !output.status.success() {
        bail!(
            "ip {} exited with {}: {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The word that follows `key` in `text`.
fn word_after(text: &str, key: &str) -> Option<String> {
    let mut words = text.split_whitespace();
    words.find(|word| *word == key)?;
    words.next().map(str::to_owned)
}

/// Deletes `tdmtest-<pid>-...` namespaces whose pid no longer runs: a test process that was
/// killed never ran its drops. A pid that was reused keeps its namespaces until it is gone.
fn delete_stale_namespaces() {
    let Ok(list) = run_ip(&["netns", "list"]) else {
        return;
    };
    for namespace in list
        .lines()
        .filter_map(|line| line.split_whitespace().next())
    {
        let mut parts = namespace.split('-');
        if parts.next() != Some(NAME_PREFIX) {
            continue;
        }
        let Some(pid) = parts.next().and_then(|pid| pid.parse::<libc::pid_t>().ok()) else {
            continue;
        };
        // SAFETY: signal 0 only checks whether the process exists.
        let gone = unsafe { libc::kill(pid, 0) } == -1
            && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone && let Err(error) = run_ip(&["netns", "delete", namespace]) {
            eprintln!("tandem-harness: could not delete stale namespace {namespace}: {error:#}");
        }
    }
}

/// One echo request and its reply, from the network namespace at `namespace_path`. Must run on
/// a thread of its own: `setns` moves the calling thread into the namespace for good.
fn ping_from(
    namespace_path: &std::path::Path,
    target: Ipv4Addr,
    timeout: Duration,
) -> anyhow::Result<()> {
    let namespace =
        File::open(namespace_path).with_context(|| format!("open {}", namespace_path.display()))?;
    // SAFETY: setns on a file descriptor we own; it changes only this thread's namespace.
    if unsafe { libc::setns(namespace.as_raw_fd(), libc::CLONE_NEWNET) } == -1 {
        return Err(io::Error::last_os_error()).context("setns into the host's namespace");
    }
    let socket = icmp_socket()?;
    static SEQUENCE: AtomicU32 = AtomicU32::new(1);
    let identifier = (std::process::id() & 0xffff) as u16;
    let sequence = (SEQUENCE.fetch_add(1, Ordering::Relaxed) & 0xffff) as u16;
    send_echo_request(&socket, target, identifier, sequence)?;
    let deadline = Instant::now() + timeout;
    let mut packet = [0u8; 1500];
    while Instant::now() < deadline {
        // SAFETY: recv into a buffer we own, with its length.
        let received = unsafe {
            libc::recv(
                socket.as_raw_fd(),
                packet.as_mut_ptr().cast(),
                packet.len(),
                0,
            )
        };
        if received < 0 {
            let error = io::Error::last_os_error();
            match error.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => continue,
                _ => return Err(error).context("receive ICMP"),
            }
        }
        let received = usize::try_from(received).unwrap_or(0);
        if is_echo_reply(&packet[..received], target, identifier, sequence) {
            return Ok(());
        }
    }
    bail!("no echo reply from {target} within {timeout:?}")
}

/// A raw ICMP socket whose receives give up every 100 ms, so the caller sees its deadline.
fn icmp_socket() -> anyhow::Result<OwnedFd> {
    // SAFETY: plain socket call; the descriptor is owned at once.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) };
    if fd == -1 {
        return Err(io::Error::last_os_error()).context("open a raw ICMP socket");
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let receive_timeout = libc::timeval {
        tv_sec: 0,
        tv_usec: 100_000,
    };
    // SAFETY: setsockopt with a pointer to a timeval and its size.
    let set = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const receive_timeout).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if set == -1 {
        return Err(io::Error::last_os_error()).context("set the ICMP receive timeout");
    }
    Ok(socket)
}

fn send_echo_request(
    socket: &OwnedFd,
    target: Ipv4Addr,
    identifier: u16,
    sequence: u16,
) -> anyhow::Result<()> {
    let mut request = [0u8; 16];
    request[0] = 8; // echo request, code 0
    request[4..6].copy_from_slice(&identifier.to_be_bytes());
    request[6..8].copy_from_slice(&sequence.to_be_bytes());
    request[8..].copy_from_slice(b"tandem!!");
    let checksum = internet_checksum(&request);
    request[2..4].copy_from_slice(&checksum.to_be_bytes());
    let address = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(target.octets()),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sendto with a buffer and an address we own, and their lengths.
    let sent = unsafe {
        libc::sendto(
            socket.as_raw_fd(),
            request.as_ptr().cast(),
            request.len(),
            0,
            (&raw const address).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if sent == -1 {
        return Err(io::Error::last_os_error())
            .with_context(|| format!("send an echo to {target}"));
    }
    Ok(())
}

/// Whether `packet` (an IPv4 packet, as a raw socket receives it) is the reply to our request.
fn is_echo_reply(packet: &[u8], target: Ipv4Addr, identifier: u16, sequence: u16) -> bool {
    let Some(&first) = packet.first() else {
        return false;
    };
    let header_len = usize::from(first & 0x0f) * 4;
    let (Some(source), Some(icmp)) = (packet.get(12..16), packet.get(header_len..)) else {
        return false;
    };
    icmp.len() >= 8
        && source == target.octets()
        && icmp[0] == 0
        && icmp[4..6] == identifier.to_be_bytes()
        && icmp[6..8] == sequence.to_be_bytes()
}

/// RFC 1071's one's-complement sum.
fn internet_checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_after_reads_ip_output() {
        let neigh = "192.0.2.10 lladdr 02:00:00:00:00:01 STALE\n";
        assert_eq!(
            word_after(neigh, "lladdr").as_deref(),
            Some("02:00:00:00:00:01")
        );
        assert_eq!(word_after("192.0.2.10 FAILED\n", "lladdr"), None);
    }

    #[test]
    fn the_checksum_of_a_packet_with_its_checksum_is_zero() {
        let mut request = [8u8, 0, 0, 0, 0x12, 0x34, 0, 1, b'a', b'b', b'c'];
        let checksum = internet_checksum(&request);
        request[2..4].copy_from_slice(&checksum.to_be_bytes());
        assert_eq!(internet_checksum(&request), 0);
    }

    #[test]
    fn an_echo_reply_must_match_source_identifier_and_sequence() {
        let target = Ipv4Addr::new(192, 0, 2, 10);
        let mut packet = vec![0x45u8; 20];
        packet[12..16].copy_from_slice(&target.octets());
        packet.extend_from_slice(&[0, 0, 0, 0, 0, 7, 0, 9]);
        assert!(is_echo_reply(&packet, target, 7, 9));
        assert!(!is_echo_reply(&packet, target, 7, 10));
        assert!(!is_echo_reply(&packet, Ipv4Addr::new(192, 0, 2, 11), 7, 9));
        packet[20] = 8;
        assert!(!is_echo_reply(&packet, target, 7, 9));
    }
}
