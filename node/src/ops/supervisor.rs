//! `[[service]]` (DESIGN.md §6, and "Supervisor-driven failover" in §3): the services a node
//! runs, restarts and hands over.
//!
//! Each service has one task. It starts the service when it is wanted (`run_on = "both"`: always;
//! `"active"`: while this node is active), watches it, checks its health, and stops it when it is
//! no longer wanted (SIGTERM to its process group, then SIGKILL after `stop_timeout`). A service
//! that exits, cannot start, or fails `health.failures` checks in a row has failed: it is
//! restarted after a back-off that starts at `restart_delay` and doubles with each failure within
//! `restart_window`, up to a minute ([`RestartPolicy`]). Every failure is a `service_restart`
//! event.
//!
//! A critical service that failed `max_restarts` times within `restart_window` on the active
//! hands the pair over, but only if the peer's heartbeat reports the same service healthy;
//! otherwise the node stays active, keeps restarting it, and raises `service_failed` (mailed).
//! On a passive, a `run_on = "active"` service is not running; it reports itself `ready` (healthy
//! for a hand-over) when its command can be started and it has not failed `max_restarts` times
//! within the window on this node.
//!
//! Services die with `tandemd`: each child gets a parent-death signal (SIGKILL), and a normal
//! stop of `tandemd` stops them gently first. A service's stdout and stderr go to the node's log,
//! each line tagged with the service's name. `status.services` and the heartbeat show their
//! health (this module publishes it; the driver sends it).
//!
//! Not here: the switchover itself (the role machine, through the admin `switchover` request).

use std::collections::VecDeque;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::status::{ServiceStatus, Status};
use crate::config::{HealthConfig, HealthProbe, RunOn, ServiceConfig};
use crate::driver::handle::{DriverHandle, Input};
use crate::role::AdminRequest;

/// The back-off never grows beyond this.
const RESTART_DELAY_MAX: Duration = Duration::from_secs(60);
/// A line of service output longer than this is logged in pieces.
const LINE_BYTES_MAX: usize = 8 * 1024;
/// How often an idle service re-checks whether it could start (its `ready` state).
const IDLE_LOOK: Duration = Duration::from_secs(1);

/// Failures within the window, and the back-off they call for; sans-IO.
#[derive(Debug)]
pub struct RestartPolicy {
    window: Duration,
    first_delay: Duration,
    failures: VecDeque<Instant>,
}

impl RestartPolicy {
    pub fn new(window: Duration, first_delay: Duration) -> RestartPolicy {
        RestartPolicy {
            window,
            first_delay,
            failures: VecDeque::new(),
        }
    }

    fn forget_old(&mut self, now: Instant) {
        while let Some(&oldest) = self.failures.front() {
            if now.saturating_duration_since(oldest) >= self.window {
                self.failures.pop_front();
            } else {
                break;
            }
        }
    }

    /// Records a failure at `now`: the failures within the window (this one included) and the
    /// delay before the next start.
    pub fn fail(&mut self, now: Instant) -> (u32, Duration) {
        self.forget_old(now);
        self.failures.push_back(now);
        let recent = u32::try_from(self.failures.len()).unwrap_or(u32::MAX);
        let doublings = recent.saturating_sub(1).min(16);
        let delay = self
            .first_delay
            .saturating_mul(1u32 << doublings)
            .min(RESTART_DELAY_MAX.max(self.first_delay));
        (recent, delay)
    }

    /// Failures within the window as of `now`.
    pub fn recent(&mut self, now: Instant) -> u32 {
        self.forget_old(now);
        u32::try_from(self.failures.len()).unwrap_or(u32::MAX)
    }
}

/// The running supervisor: its published status, and the way to stop every service.
pub struct Supervisor {
    status: watch::Receiver<Vec<ServiceStatus>>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Supervisor {
    /// Starts one task per service. The node's status (role, peer's services) comes from
    /// `handle.status`; events and hand-over requests go to the driver.
    pub fn start(services: &[ServiceConfig], handle: &DriverHandle) -> Supervisor {
        let initial = services
            .iter()
            .map(|config| ServiceStatus {
                name: config.name.clone(),
                state: "stopped".into(),
                run_on: config.run_on.as_str().into(),
                critical: config.critical,
                ..ServiceStatus::default()
            })
            .collect();
        let (publish, status) = watch::channel(initial);
        let publish = Arc::new(publish);
        let (stop, stopping) = watch::channel(false);
        let tasks = services
            .iter()
            .enumerate()
            .map(|(index, config)| {
                let runner = Runner {
                    index,
                    policy: RestartPolicy::new(config.restart_window, config.restart_delay),
                    config: config.clone(),
                    node: handle.status.clone(),
                    stopping: stopping.clone(),
                    publish: publish.clone(),
                    handle: handle.clone(),
                    backoff_until: None,
                    alerted: false,
                    driver_gone: false,
                };
                tokio::spawn(runner.run())
            })
            .collect();
        Supervisor {
            status,
            stop,
            tasks,
        }
    }

    pub fn status(&self) -> watch::Receiver<Vec<ServiceStatus>> {
        self.status.clone()
    }

    /// Stops every service gently (SIGTERM, then SIGKILL after its `stop_timeout`) and waits.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Why a watched run ended.
enum Ended {
    /// It exited, could not start, or failed its health checks: a failure.
    Failed(String),
    /// This node's role no longer wants it; it was stopped.
    Unwanted,
    /// `tandemd` is stopping; it was stopped.
    Stopping,
}

struct Runner {
    index: usize,
    config: ServiceConfig,
    policy: RestartPolicy,
    /// The node's status, for its role and the peer's services.
    node: watch::Receiver<Status>,
    stopping: watch::Receiver<bool>,
    publish: Arc<watch::Sender<Vec<ServiceStatus>>>,
    handle: DriverHandle,
    backoff_until: Option<Instant>,
    /// `service_failed` was raised for the current run of failures.
    alerted: bool,
    /// The driver is gone (its status channel closed): the node is stopping.
    driver_gone: bool,
}

fn wanted(run_on: RunOn, status: &Status) -> bool {
    run_on == RunOn::Both || status.node.role == "active"
}

impl Runner {
    fn update(&self, change: impl FnOnce(&mut ServiceStatus)) {
        self.publish.send_modify(|all| {
            if let Some(service) = all.get_mut(self.index) {
                change(service);
            }
        });
    }

    fn is_wanted(&self) -> bool {
        wanted(self.config.run_on, &self.node.borrow())
    }

    fn stopping(&self) -> bool {
        self.driver_gone || *self.stopping.borrow()
    }

    async fn record(&self, kind: &str, message: String) {
        tracing::warn!(service = %self.config.name, kind, "{message}");
        let _ = self
            .handle
            .inputs
            .send(Input::Record {
                kind: kind.into(),
                message,
            })
            .await;
    }

    async fn run(mut self) {
        loop {
            if self.stopping() {
                self.update(|service| {
                    service.state = "stopped".into();
                    service.healthy = false;
                    service.pid = None;
                });
                return;
            }
            if !self.is_wanted() {
                self.idle().await;
                continue;
            }
            if let Some(until) = self.backoff_until {
                self.update(|service| {
                    service.state = "backoff".into();
                    service.healthy = false;
                    service.pid = None;
                });
                let run_on = self.config.run_on;
                let (slept, driver_gone) = tokio::select! {
                    _ = tokio::time::sleep_until(until.into()) => (true, false),
                    changed = self.node.wait_for(|status| !wanted(run_on, status)) => (false, changed.is_err()),
                    _ = self.stopping.wait_for(|stop| *stop) => (false, false),
                };
                if slept {
                    self.backoff_until = None;
                }
                self.driver_gone |= driver_gone;
                continue;
            }
            if self.policy.recent(Instant::now()) < self.config.max_restarts {
                self.alerted = false;
            }
            let ended = match self.spawn() {
                Ok(child) => self.watch(child).await,
                Err(error) => {
                    Ended::Failed(format!("cannot start {:?}: {error}", self.config.command))
                }
            };
            match ended {
                Ended::Failed(why) => self.failed(why).await,
                Ended::Unwanted => {
                    tracing::info!(service = %self.config.name, "stopped: this node is no longer active")
                }
                Ended::Stopping => {}
            }
        }
    }

    /// Not wanted in this role: shows whether it could start (a `run_on = "active"` service on
    /// a passive) and waits until it is wanted or `tandemd` stops.
    async fn idle(&mut self) {
        let recent = self.policy.recent(Instant::now());
        let startable = command_startable(&self.config.command);
        let exhausted = recent >= self.config.max_restarts;
        self.update(|service| {
            service.pid = None;
            service.recent_failures = recent;
            match (&startable, exhausted) {
                (Ok(()), false) => {
                    service.state = "ready".into();
                    service.healthy = true;
                }
                (Ok(()), true) => {
                    service.state = "failed".into();
                    service.healthy = false;
                }
                (Err(why), _) => {
                    service.state = "failed".into();
                    service.healthy = false;
                    service.last_exit = why.clone();
                }
            }
        });
        let run_on = self.config.run_on;
        let driver_gone = tokio::select! {
            changed = self.node.wait_for(|status| wanted(run_on, status)) => changed.is_err(),
            _ = self.stopping.wait_for(|stop| *stop) => false,
            _ = tokio::time::sleep(IDLE_LOOK) => false,
        };
        self.driver_gone |= driver_gone;
    }

    fn spawn(&self) -> std::io::Result<Child> {
        let mut command = Command::new(&self.config.command);
        command
            .args(&self.config.args)
            .envs(&self.config.env)
            .env("TANDEM_SERVICE", &self.config.name)
            .env("TANDEM_NODE", self.node.borrow().node.name.clone())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        let parent = std::process::id();
        // SAFETY: between fork and exec only async-signal-safe calls, and no allocation.
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died before the signal was armed.
                if u32::try_from(libc::getppid()).ok() != Some(parent) {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
        let mut child = command.spawn()?;
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(log_output(self.config.name.clone(), "stdout", stdout));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(log_output(self.config.name.clone(), "stderr", stderr));
        }
        Ok(child)
    }

    /// Watches one run until it fails, is no longer wanted, or `tandemd` stops.
    async fn watch(&mut self, mut child: Child) -> Ended {
        let pid = child.id();
        let has_health = self.config.health.is_some();
        tracing::info!(service = %self.config.name, pid, "started");
        self.update(|service| {
            service.pid = pid;
            service.state = if has_health { "starting" } else { "running" }.into();
            service.healthy = !has_health;
        });
        let health = self.config.health.clone();
        let period = health
            .as_ref()
            .map_or(Duration::from_secs(3600), |health| health.interval);
        let mut checks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failed_checks = 0u32;
        let run_on = self.config.run_on;
        loop {
            enum Next {
                Exited(std::io::Result<std::process::ExitStatus>),
                Unwanted,
                Stopping,
                Check,
            }
            let next = tokio::select! {
                status = child.wait() => Next::Exited(status),
                changed = self.node.wait_for(|status| !wanted(run_on, status)) => {
                    if changed.is_ok() { Next::Unwanted } else { self.driver_gone = true; Next::Stopping }
                }
                _ = self.stopping.wait_for(|stop| *stop) => Next::Stopping,
                _ = checks.tick(), if health.is_some() => Next::Check,
            };
            match next {
                Next::Exited(status) => {
                    return Ended::Failed(match status {
                        Ok(status) => describe_exit(status),
                        Err(error) => format!("cannot wait for it: {error}"),
                    });
                }
                Next::Unwanted => {
                    self.terminate(&mut child).await;
                    self.update(|service| {
                        service.state = "stopped".into();
                        service.healthy = false;
                        service.pid = None;
                    });
                    return Ended::Unwanted;
                }
                Next::Stopping => {
                    self.terminate(&mut child).await;
                    return Ended::Stopping;
                }
                Next::Check => {
                    let Some(health) = &health else { continue };
                    match check_health(health).await {
                        Ok(()) => {
                            failed_checks = 0;
                            self.update(|service| {
                                service.state = "running".into();
                                service.healthy = true;
                            });
                        }
                        Err(why) => {
                            failed_checks += 1;
                            tracing::warn!(service = %self.config.name, failed_checks, "health check failed: {why}");
                            self.update(|service| {
                                service.state = "unhealthy".into();
                                service.healthy = false;
                            });
                            if failed_checks >= health.failures {
                                self.terminate(&mut child).await;
                                return Ended::Failed(format!(
                                    "failed {failed_checks} health checks in a row ({why}) and was stopped"
                                ));
                            }
                        }
                    }
                }
            }
        }
    }

    /// SIGTERM to the service's process group, SIGKILL after `stop_timeout`, then reaps it.
    async fn terminate(&self, child: &mut Child) {
        if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
            // SAFETY: kill(2) on the group this node created for the service.
            unsafe {
                libc::kill(-pid, libc::SIGTERM);
            }
            if tokio::time::timeout(self.config.stop_timeout, child.wait())
                .await
                .is_err()
            {
                tracing::warn!(service = %self.config.name, "did not stop within stop_timeout; killing it");
                // SAFETY: as above.
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                }
            }
        }
        let _ = child.kill().await;
    }

    async fn failed(&mut self, why: String) {
        let now = Instant::now();
        let (recent, delay) = self.policy.fail(now);
        self.backoff_until = Some(now + delay);
        self.update(|service| {
            service.state = "backoff".into();
            service.healthy = false;
            service.pid = None;
            service.restarts += 1;
            service.recent_failures = recent;
            service.last_exit = why.clone();
        });
        let window = crate::config::duration::largest_whole_unit(self.config.restart_window);
        self.record(
            "service_restart",
            format!(
                "service {} {why}; restarting in {} ({recent} failures within {window})",
                self.config.name,
                format_delay(delay),
            ),
        )
        .await;
        if self.config.critical && recent >= self.config.max_restarts {
            self.critical_failed(recent, &window).await;
        }
    }

    /// A critical service failed `max_restarts` times within the window: hand over if the peer
    /// runs it healthy, otherwise stay and alert (once per run of failures).
    async fn critical_failed(&mut self, recent: u32, window: &str) {
        let status = self.node.borrow().clone();
        let name = &self.config.name;
        let failed = format!("critical service {name} failed {recent} times within {window}");
        if status.node.role != "active" {
            if !self.alerted {
                self.alerted = true;
                self.record(
                    "service_failed",
                    format!("{failed} on this {} node", status.node.role),
                )
                .await;
            }
            return;
        }
        let peer = &status.peer;
        let copy = peer.services.iter().find(|service| &service.name == name);
        let peer_fit = peer.state == "ok" && copy.is_some_and(|copy| copy.healthy);
        if peer_fit {
            self.alerted = true;
            self.record(
                "service_failed",
                format!(
                    "{failed}; {} reports it healthy: handing over to {}",
                    peer.name, peer.name
                ),
            )
            .await;
            let handle = self.handle.clone();
            let name = name.clone();
            tokio::spawn(async move {
                let (kind, message) = match handle.command(AdminRequest::Switchover).await {
                    Ok(outcome) => (
                        "service_handover",
                        format!("hand-over for critical service {name}: {outcome}"),
                    ),
                    Err(error) => (
                        "service_failed",
                        format!(
                            "the hand-over for critical service {name} was refused ({error}): staying active"
                        ),
                    ),
                };
                let _ = handle
                    .inputs
                    .send(Input::Record {
                        kind: kind.into(),
                        message,
                    })
                    .await;
            });
            return;
        }
        if self.alerted {
            return;
        }
        self.alerted = true;
        let why_not = match copy {
            _ if peer.state != "ok" => format!("the peer {} is {}", peer.name, peer.state),
            None => format!("{} does not report a service named {name}", peer.name),
            Some(copy) => format!("{} reports its copy {}", peer.name, copy.state),
        };
        self.record(
            "service_failed",
            format!("{failed}; {why_not}: not handing over, this node stays active and keeps restarting it"),
        )
        .await;
    }
}

/// Whether `command` names something this node could execute: a path to an executable file, or
/// a bare name found in `PATH`.
fn command_startable(command: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |path: &std::path::Path| {
        std::fs::metadata(path)
            .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
    };
    if command.contains('/') {
        return if executable(std::path::Path::new(command)) {
            Ok(())
        } else {
            Err(format!("{command} is not an executable file"))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if std::env::split_paths(&path).any(|dir| executable(&dir.join(command))) {
        Ok(())
    } else {
        Err(format!("{command} is not found in PATH"))
    }
}

async fn check_health(health: &HealthConfig) -> Result<(), String> {
    match &health.probe {
        HealthProbe::Tcp(address) => {
            match tokio::time::timeout(health.timeout, tokio::net::TcpStream::connect(address))
                .await
            {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(error)) => Err(format!("tcp {address}: {error}")),
                Err(_) => Err(format!(
                    "tcp {address}: no answer within {:?}",
                    health.timeout
                )),
            }
        }
        HealthProbe::Command(command) => {
            let mut child = Command::new("/bin/sh")
                .arg("-c")
                .arg(command)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .map_err(|error| format!("cannot run {command:?}: {error}"))?;
            match tokio::time::timeout(health.timeout, child.wait()).await {
                Ok(Ok(status)) if status.success() => Ok(()),
                Ok(Ok(status)) => Err(format!("{command:?} {}", describe_exit(status))),
                Ok(Err(error)) => Err(format!("{command:?}: {error}")),
                Err(_) => {
                    let _ = child.kill().await;
                    Err(format!("{command:?} took longer than {:?}", health.timeout))
                }
            }
        }
    }
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        _ => format!("ended: {status}"),
    }
}

fn format_delay(delay: Duration) -> String {
    if delay < Duration::from_secs(1) {
        format!("{} ms", delay.as_millis())
    } else {
        format!("{:.1} s", delay.as_secs_f64())
    }
}

/// Logs a service's output line by line, tagged with its name; stops at end of stream.
async fn log_output(name: String, stream: &'static str, mut output: impl AsyncRead + Unpin) {
    let mut pending: Vec<u8> = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let read = match output.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        pending.extend_from_slice(&buffer[..read]);
        while let Some(end) = pending.iter().position(|&byte| byte == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            log_line(&name, stream, &line[..line.len() - 1]);
        }
        if pending.len() >= LINE_BYTES_MAX {
            log_line(&name, stream, &pending);
            pending.clear();
        }
    }
    if !pending.is_empty() {
        log_line(&name, stream, &pending);
    }
}

fn log_line(name: &str, stream: &str, line: &[u8]) {
    let line = String::from_utf8_lossy(line);
    let line = line.trim_end_matches('\r');
    if stream == "stderr" {
        tracing::warn!(target: "service", "[{name}] {line}");
    } else {
        tracing::info!(target: "service", "[{name}] {line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_back_off_doubles_within_the_window_and_is_capped() {
        let start = Instant::now();
        let mut policy = RestartPolicy::new(Duration::from_secs(300), Duration::from_secs(1));
        let delays: Vec<(u32, Duration)> = (0..9)
            .map(|i| policy.fail(start + Duration::from_secs(i)))
            .collect();
        assert_eq!(delays[0], (1, Duration::from_secs(1)));
        assert_eq!(delays[1], (2, Duration::from_secs(2)));
        assert_eq!(delays[2], (3, Duration::from_secs(4)));
        assert_eq!(delays[6], (7, Duration::from_secs(60)));
        assert_eq!(delays[8], (9, Duration::from_secs(60)));
    }

    #[test]
    fn failures_leave_the_window_and_the_back_off_starts_over() {
        let start = Instant::now();
        let mut policy = RestartPolicy::new(Duration::from_secs(10), Duration::from_millis(100));
        policy.fail(start);
        policy.fail(start + Duration::from_secs(1));
        assert_eq!(policy.recent(start + Duration::from_secs(5)), 2);
        assert_eq!(policy.recent(start + Duration::from_secs(10)), 1);
        assert_eq!(
            policy.fail(start + Duration::from_secs(30)),
            (1, Duration::from_millis(100))
        );
    }

    #[test]
    fn a_long_first_delay_is_not_cut_by_the_cap() {
        let mut policy = RestartPolicy::new(Duration::from_secs(10), Duration::from_secs(60));
        let now = Instant::now();
        assert_eq!(policy.fail(now).1, Duration::from_secs(60));
        assert_eq!(policy.fail(now).1, Duration::from_secs(60));
    }

    #[test]
    fn startable_commands_are_found_on_disk_or_in_path() {
        assert!(command_startable("/bin/sh").is_ok());
        assert!(command_startable("sh").is_ok());
        let missing = command_startable("/nonexistent/pbx").unwrap_err();
        assert!(missing.contains("/nonexistent/pbx"), "{missing}");
        assert!(command_startable("no-such-command-here").is_err());
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("not-executable");
        std::fs::write(&plain, "#!/bin/sh\n").unwrap();
        let plain = plain.display().to_string();
        assert!(command_startable(&plain).is_err());
    }

    #[test]
    fn exits_are_described_by_code_or_signal() {
        assert_eq!(
            describe_exit(std::process::ExitStatus::from_raw(3 << 8)),
            "exited with status 3"
        );
        assert_eq!(
            describe_exit(std::process::ExitStatus::from_raw(9)),
            "was killed by signal 9"
        );
    }
}
