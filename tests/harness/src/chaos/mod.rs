//! The chaos run (issue 7, DESIGN.md §1): a pair under a workload and seeded random faults, then
//! a check of the history once the faults stop and the pair has healed.
//!
//! The seed chooses the faults, their targets and how long each holds, so running a seed again
//! replays the same sequence (the timing of the processes varies). A failing run names its seed
//! and the first check it violated.
//!
//! - [`workload`]: Data API writers, gateway callers and a file writer, with every outcome.
//! - [`check`]: the history checker.

pub mod admission;
pub mod check;
pub mod linearizability;
pub mod workload;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, anyhow};

use crate::{Binaries, Cluster, ClusterSpec, Direction, Mode};

/// The faults the runner injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    KillRestart,
    StopCont,
    Partition,
    OneWayCut,
    Delay,
    Switchover,
    SwitchoverWhenIdle,
    SuspendMonitoring,
    RestartBoth,
    /// Witness mode: the target cut off from both its peer and the witness.
    Isolate,
    /// Witness mode: the witness killed, then restarted.
    WitnessKillRestart,
    /// Witness mode: the witness stopped (SIGSTOP), then continued.
    WitnessStopCont,
    /// Witness mode: the witness cut off from both nodes.
    WitnessCut,
}

const FAULTS: [Fault; 9] = [
    Fault::KillRestart,
    Fault::StopCont,
    Fault::Partition,
    Fault::OneWayCut,
    Fault::Delay,
    Fault::Switchover,
    Fault::SwitchoverWhenIdle,
    Fault::SuspendMonitoring,
    Fault::RestartBoth,
];

/// The faults of linearizability mode: a kill, a switchover, a stop and a peer-link cut.
pub const LIN_FAULTS: [Fault; 4] = [
    Fault::KillRestart,
    Fault::Switchover,
    Fault::StopCont,
    Fault::Partition,
];

/// The faults of witness mode (issue 16): those of linearizability mode, plus a node cut off
/// from everything, and the witness killed, stopped or cut off.
pub const WITNESS_FAULTS: [Fault; 8] = [
    Fault::KillRestart,
    Fault::Switchover,
    Fault::StopCont,
    Fault::Partition,
    Fault::Isolate,
    Fault::WitnessKillRestart,
    Fault::WitnessStopCont,
    Fault::WitnessCut,
];

/// A fault that may leave two nodes active until it heals, and when.
#[derive(Clone, Debug)]
pub struct FaultWindow {
    pub fault: Fault,
    pub start_ms: i64,
    pub end_ms: i64,
}

/// A node killed at this wall-clock time (its active interval ends there).
#[derive(Clone, Debug)]
pub struct Kill {
    pub node: String,
    pub at_ms: i64,
}

pub struct ChaosSpec {
    pub seed: u64,
    pub duration: Duration,
    /// Data API writers; in linearizability mode, register clients.
    pub writers: usize,
    /// Gateway users placing calls (not in linearizability mode).
    pub callers: usize,
    /// Linearizability mode (issue 26): register clients instead of the usual workload, the
    /// faults of [`LIN_FAULTS`], and a linearizability check of the history (see
    /// [`linearizability`]).
    pub linearizability: bool,
    /// Witness mode (issue 16, with `linearizability`): a `tandemd witness` beside the pair,
    /// the faults of [`WITNESS_FAULTS`], no relaxation of the linearizability check for any
    /// split, and no instant at which both nodes admit clients (by their `admission` events).
    pub witness: bool,
    /// With `witness`: the witness is a one-member etcd cluster (`[witness] etcd`), which the
    /// witness's faults kill, stop and cut off.
    pub etcd: bool,
}

/// What a run did and found.
#[derive(Debug)]
pub struct ChaosReport {
    pub seed: u64,
    pub duration: Duration,
    pub faults: BTreeMap<String, u64>,
    pub operations: BTreeMap<String, u64>,
    pub violations: Vec<String>,
}

impl ChaosReport {
    pub fn faults_total(&self) -> u64 {
        self.faults.values().sum()
    }
}

/// splitmix64: a small seeded generator, the same sequence for the same seed everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    fn millis(&mut self, low: u64, high: u64) -> Duration {
        Duration::from_millis(low + self.below(high - low + 1))
    }
}

/// Wall-clock microseconds: the one clock of every recorded operation.
pub fn wall_us() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_micros()).unwrap_or(i64::MAX)
        })
}

pub fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        })
}

/// How long after a partition or a stop heals two actives may still both be on record: the
/// dialers' reconnect back-off (500 ms at most) and a round trip, with room for a loaded machine.
pub const HEAL_GRACE: Duration = Duration::from_millis(2500);
/// How long the pair gets to heal after a fault.
const HEAL_DEADLINE: Duration = Duration::from_secs(90);

/// The HTTP `/active` answer of one node: whether it is active (without `tandemctl`).
pub fn http_active(address: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if write!(
        stream,
        "GET /active HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.1 200")
}

/// Runs the chaos scenario: starts a pair in a temp dir, runs the workload and the faults for
/// `spec.duration`, heals, and checks the history. Progress goes to stderr.
pub fn run(spec: &ChaosSpec, bins: &Binaries) -> anyhow::Result<ChaosReport> {
    if spec.linearizability {
        return linearizability::run(spec, bins);
    }
    let root = tempfile::tempdir().context("a temp dir for the chaos run")?;
    let migrations = root.path().join("migrations");
    std::fs::create_dir_all(&migrations)?;
    std::fs::write(
        migrations.join("001_chaos.sql"),
        "CREATE TABLE chaos_rows (id TEXT PRIMARY KEY, writer INTEGER NOT NULL, seq INTEGER NOT NULL);\n",
    )?;
    let mut file_dirs = BTreeMap::new();
    let mut cluster_spec = ClusterSpec::new()
        .with_proxies(true)
        .ctl_timeout(Duration::from_secs(40))
        .set_all("replication.migrations", migrations.display().to_string())
        .set_all(
            "replication.tables",
            toml::Value::Array(vec!["chaos_rows".into()]),
        );
    for node in ["a", "b"] {
        let dir = root.path().join(format!("files-{node}"));
        std::fs::create_dir_all(&dir)?;
        cluster_spec = cluster_spec.extra_toml(
            node,
            &format!(
                "[[files]]\nname = \"recordings\"\ndir = \"{}\"\nscan_interval = \"5s\"\n",
                dir.display()
            ),
        );
        file_dirs.insert(node.to_string(), dir);
    }
    let mut cluster = Cluster::start(cluster_spec, bins)?;
    wait_healthy(&cluster).context("the pair to start")?;
    let active = cluster
        .active_nodes()
        .first()
        .cloned()
        .ok_or_else(|| anyhow!("no active"))?;
    let mut users = Vec::new();
    for index in 0..spec.callers {
        let (user, password) = (format!("caller{index}"), format!("chaos-secret-{index}"));
        // Just after start-up the active may still be fenced for a moment: retry.
        cluster.wait_until(HEAL_DEADLINE, "the user to be added", |c| {
            let output = c.ctl(&active, &["user", "add", &user, "--password", &password])?;
            let stderr = String::from_utf8_lossy(&output.stderr);
            Ok((output.status.success() || stderr.contains("exists")).then_some(()))
        })?;
        users.push((user, password));
    }
    let targets = workload::Targets {
        nodes: ["a", "b"]
            .iter()
            .map(|node| (node.to_string(), cluster.addrs(node).client.to_string()))
            .collect(),
        ca_pem: std::fs::read(cluster.certs_dir().join("ca.pem"))?,
        file_dirs: file_dirs.clone(),
        users,
    };
    let http: Vec<(String, SocketAddr)> = ["a", "b"]
        .iter()
        .map(|node| (node.to_string(), cluster.addrs(node).http))
        .collect();
    let workload = workload::Workload::start(targets, spec.writers, move || {
        let active: Vec<&String> = http
            .iter()
            .filter(|(_, address)| http_active(*address))
            .map(|(node, _)| node)
            .collect();
        (active.len() == 1).then(|| active[0].clone())
    });

    let faulted = run_faults(&mut cluster, spec, &FAULTS)?;
    let history = workload.stop();
    eprintln!(
        "chaos seed {}: faults done; checking the history",
        spec.seed
    );
    let Faulted {
        faults,
        windows,
        kills,
        mut violations,
        started,
        ..
    } = faulted;
    if violations.is_empty() {
        violations.extend(check::check(
            &cluster, &history, &windows, &kills, &file_dirs,
        ));
    }
    let report = ChaosReport {
        seed: spec.seed,
        duration: started.elapsed(),
        faults,
        operations: history.counts(),
        violations,
    };
    if !report.violations.is_empty() {
        cluster.mark_failed();
    }
    drop(cluster);
    Ok(report)
}

/// What the fault loop did.
pub(crate) struct Faulted {
    pub faults: BTreeMap<String, u64>,
    /// Faults that may leave two nodes active until they heal.
    pub windows: Vec<FaultWindow>,
    pub kills: Vec<Kill>,
    /// A pair that did not heal after a fault.
    pub violations: Vec<String>,
    pub started: Instant,
    /// Every fault with its start (wall ms), in order.
    pub timeline: Vec<(Fault, i64)>,
}

/// Injects faults drawn from `mix` by the seed until `spec.duration` has passed, waiting for
/// the pair to heal after each.
pub(crate) fn run_faults(
    cluster: &mut Cluster,
    spec: &ChaosSpec,
    mix: &[Fault],
) -> anyhow::Result<Faulted> {
    let mut rng = Rng::new(spec.seed);
    let mut faults: BTreeMap<String, u64> = BTreeMap::new();
    let mut windows = Vec::new();
    let mut kills = Vec::new();
    let mut violations = Vec::new();
    let mut timeline = Vec::new();
    let started = Instant::now();
    let mut number = 0u64;
    while started.elapsed() < spec.duration {
        number += 1;
        let fault = mix[usize::try_from(rng.below(mix.len() as u64)).unwrap_or(0)];
        let target = if rng.below(2) == 0 { "a" } else { "b" };
        let hold = rng.millis(300, 3000);
        eprintln!(
            "chaos seed {} fault {number} at {:.0}s (unix ms {}): {fault:?} on {target} for {} ms",
            spec.seed,
            started.elapsed().as_secs_f64(),
            wall_ms(),
            hold.as_millis()
        );
        let start_ms = wall_ms();
        timeline.push((fault, start_ms));
        apply(cluster, fault, target, hold, &mut kills)
            .with_context(|| format!("seed {}: fault {number} ({fault:?})", spec.seed))?;
        let end_ms = wall_ms() + i64::try_from(HEAL_GRACE.as_millis()).unwrap_or(0);
        if matches!(
            fault,
            Fault::StopCont
                | Fault::Partition
                | Fault::OneWayCut
                | Fault::Delay
                | Fault::Isolate
                | Fault::WitnessCut
        ) {
            windows.push(FaultWindow {
                fault,
                start_ms,
                end_ms,
            });
        }
        *faults.entry(format!("{fault:?}")).or_insert(0) += 1;
        if let Err(error) = wait_healthy(cluster).and_then(|()| {
            if spec.witness {
                wait_witness_seen(cluster)
            } else {
                Ok(())
            }
        }) {
            violations.push(format!(
                "seed {}: after fault {number} ({fault:?} on {target}) the pair did not heal: {error:#}",
                spec.seed
            ));
            break;
        }
        // A moment of calm between faults, also seeded.
        std::thread::sleep(rng.millis(200, 1500));
    }
    Ok(Faulted {
        faults,
        windows,
        kills,
        violations,
        started,
        timeline,
    })
}

/// One fault, held for `hold`, then healed.
fn apply(
    cluster: &mut Cluster,
    fault: Fault,
    target: &str,
    hold: Duration,
    kills: &mut Vec<Kill>,
) -> anyhow::Result<()> {
    let other = if target == "a" { "b" } else { "a" };
    match fault {
        Fault::KillRestart => {
            kills.push(Kill {
                node: target.into(),
                at_ms: wall_ms(),
            });
            cluster.node_mut(target).kill()?;
            std::thread::sleep(hold);
            cluster.node_mut(target).restart()?;
        }
        Fault::StopCont => {
            cluster.node(target).signal(libc::SIGSTOP)?;
            std::thread::sleep(hold);
            cluster.node(target).signal(libc::SIGCONT)?;
        }
        Fault::Partition => {
            cluster.proxy(target, other).set_mode(Mode::Blackhole)?;
            cluster.proxy(other, target).set_mode(Mode::Blackhole)?;
            std::thread::sleep(hold);
            cluster.proxy(target, other).set_mode(Mode::Pass)?;
            cluster.proxy(other, target).set_mode(Mode::Pass)?;
        }
        Fault::OneWayCut => {
            cluster
                .proxy(target, other)
                .set_mode(Mode::Cut(Direction::ClientToServer))?;
            std::thread::sleep(hold);
            cluster.proxy(target, other).set_mode(Mode::Pass)?;
        }
        Fault::Delay => {
            let delay = Duration::from_millis(50 + (hold.as_millis() as u64 % 400));
            cluster.proxy(target, other).set_mode(Mode::Delay(delay))?;
            cluster.proxy(other, target).set_mode(Mode::Delay(delay))?;
            std::thread::sleep(hold);
            cluster.proxy(target, other).set_mode(Mode::Pass)?;
            cluster.proxy(other, target).set_mode(Mode::Pass)?;
        }
        Fault::Switchover | Fault::SwitchoverWhenIdle => {
            // Asked of whichever node is active; a refusal (e.g. mid catch-up) is an outcome,
            // not a failure of the run.
            if let Some(active) = cluster.active_nodes().first().cloned() {
                let args: &[&str] = if fault == Fault::Switchover {
                    &["switchover"]
                } else {
                    &["switchover", "--when-idle", "--timeout", "3s"]
                };
                // Refused (mid catch-up, fenced) or slow to answer: an outcome of the run, not a
                // failure of it; the heal check that follows decides.
                match cluster.ctl(&active, args) {
                    Ok(output) if !output.status.success() => eprintln!(
                        "  switchover refused: {}",
                        String::from_utf8_lossy(&output.stderr).trim()
                    ),
                    Ok(_) => {}
                    Err(error) => eprintln!("  switchover: {error:#}"),
                }
            }
        }
        Fault::SuspendMonitoring => {
            if let Err(error) = cluster.ctl_ok(target, &["monitoring", "suspend"]) {
                eprintln!("  monitoring suspend: {error:#}");
            }
            std::thread::sleep(hold);
            // Resume must happen, or the pair is left without failover: retry until it does.
            cluster.wait_until(HEAL_DEADLINE, "monitoring to resume", |c| {
                Ok(c.ctl_ok(target, &["monitoring", "resume"]).ok().map(drop))
            })?;
        }
        Fault::Isolate => {
            let cuts = [
                cluster.proxy(target, other),
                cluster.proxy(other, target),
                cluster.witness_proxy(target),
            ];
            for proxy in cuts {
                proxy.set_mode(Mode::Blackhole)?;
            }
            std::thread::sleep(hold);
            for proxy in cuts {
                proxy.set_mode(Mode::Pass)?;
            }
        }
        Fault::WitnessKillRestart => {
            cluster.witness().kill()?;
            std::thread::sleep(hold);
            cluster.witness().restart()?;
        }
        Fault::WitnessStopCont => {
            cluster.witness().signal(libc::SIGSTOP)?;
            std::thread::sleep(hold);
            cluster.witness().signal(libc::SIGCONT)?;
        }
        Fault::WitnessCut => {
            for node in ["a", "b"] {
                cluster.witness_proxy(node).set_mode(Mode::Blackhole)?;
            }
            std::thread::sleep(hold);
            for node in ["a", "b"] {
                cluster.witness_proxy(node).set_mode(Mode::Pass)?;
            }
        }
        Fault::RestartBoth => {
            let now = wall_ms();
            for node in ["a", "b"] {
                kills.push(Kill {
                    node: node.into(),
                    at_ms: now,
                });
                cluster.node_mut(node).kill()?;
            }
            std::thread::sleep(hold);
            for node in ["a", "b"] {
                cluster.node_mut(node).restart()?;
            }
        }
    }
    Ok(())
}

/// Waits until exactly one node is active and both see the link `ok`.
pub fn wait_healthy(cluster: &Cluster) -> anyhow::Result<()> {
    cluster.wait_until(HEAL_DEADLINE, "one active and the link ok on both", |c| {
        let (a, b) = (c.status("a"), c.status("b"));
        let (Ok(a), Ok(b)) = (a, b) else {
            return Ok(None);
        };
        let roles = [a["node"]["role"].as_str(), b["node"]["role"].as_str()];
        let one_active = roles.iter().filter(|role| **role == Some("active")).count() == 1
            && roles.contains(&Some("passive"));
        let link = a["peer"]["state"] == "ok" && b["peer"]["state"] == "ok";
        Ok((one_active && link).then_some(()))
    })
}

/// Witness mode: waits until both nodes see the witness again, so the next fault starts from a
/// pair that holds all three votes.
pub fn wait_witness_seen(cluster: &Cluster) -> anyhow::Result<()> {
    cluster.wait_until(HEAL_DEADLINE, "both nodes to see the witness", |c| {
        let (a, b) = (c.status("a"), c.status("b"));
        let (Ok(a), Ok(b)) = (a, b) else {
            return Ok(None);
        };
        Ok((a["witness"]["state"] == "ok" && b["witness"]["state"] == "ok").then_some(()))
    })
}

/// Where a run keeps its files, for the checker.
pub type FileDirs = BTreeMap<String, PathBuf>;
