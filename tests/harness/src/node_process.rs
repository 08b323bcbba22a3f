//! One `tandemd` process of a test cluster: start, signal, kill, restart, and never leak it.
//!
//! The process's stdout and stderr are appended to a log file that survives restarts; each start
//! writes a separator line first, so a failing test's log tail shows which run said what.
//! Signals go to the child's own pid only, never to a process group: SIGSTOP on a node must not
//! stop the services it supervises, exactly as on a real host where only the daemon is frozen.
//!
//! It knows nothing about tandem itself; a test can run any program with it (the unit tests
//! below use `/bin/sleep`).

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail};

use crate::child_process::{spawn, wait_for_exit};

/// How long `kill` and `drop` wait for a SIGKILLed process to be reaped. SIGKILL cannot be
/// caught, so only a process stuck in the kernel (uninterruptible IO) takes longer.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// A child process, its log, and how to start it again.
pub struct NodeProcess {
    /// The node's name, for messages and the log separator.
    name: String,
    /// The program to run; kept for `restart`.
    program: PathBuf,
    /// Its arguments; kept for `restart`.
    args: Vec<OsString>,
    /// Where stdout and stderr are appended, across restarts.
    log_path: PathBuf,
    /// The process while it is not yet reaped. Holding an unreaped child keeps its pid from being
    /// reused, so a signal sent to it can never hit another process.
    child: Option<Child>,
    /// How the last run ended, once it was reaped.
    exit_status: Option<ExitStatus>,
    /// How many times the program was started, for the log separator.
    starts: u32,
}

impl NodeProcess {
    /// Starts `program args` with stdout and stderr appended to `log_path`.
    pub fn start(
        name: &str,
        program: impl Into<PathBuf>,
        args: impl IntoIterator<Item = impl Into<OsString>>,
        log_path: impl Into<PathBuf>,
    ) -> anyhow::Result<NodeProcess> {
        let mut process = NodeProcess {
            name: name.to_owned(),
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            log_path: log_path.into(),
            child: None,
            exit_status: None,
            starts: 0,
        };
        process.spawn()?;
        Ok(process)
    }

    /// The name it was started under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The log file of all its runs.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The pid of the current run, until that run is reaped.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// How the last run ended, once it was reaped.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.exit_status
    }

    /// Whether the current run is still going; reaps it if it ended.
    pub fn is_running(&mut self) -> bool {
        matches!(self.try_reap(), Ok(None))
    }

    /// Sends `signal` (`libc::SIGSTOP`, `SIGCONT`, `SIGTERM`, `SIGKILL`, ...) to the process.
    pub fn signal(&self, signal: libc::c_int) -> anyhow::Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| anyhow!("node {} is not running", self.name))?;
        let pid = libc::pid_t::try_from(pid).context("pid out of range")?;
        // SAFETY: kill has no memory effects; the pid is our unreaped child (see `child`).
        if unsafe { libc::kill(pid, signal) } == -1 {
            let error = std::io::Error::last_os_error();
            return Err(error).with_context(|| format!("signal {signal} to node {}", self.name));
        }
        Ok(())
    }

    /// SIGKILL, then reap. Returns the exit status; if the run had already ended, its status.
    pub fn kill(&mut self) -> anyhow::Result<ExitStatus> {
        if self.try_reap()?.is_none() {
            self.signal(libc::SIGKILL)?;
        }
        self.wait_exit(KILL_WAIT)
    }

    /// SIGTERM, then wait up to `timeout` for the exit. On timeout the process is left running
    /// (a test may want to look at it); `kill` or drop ends it.
    pub fn terminate_and_wait(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        self.signal(libc::SIGTERM)?;
        self.wait_exit(timeout)
    }

    /// Waits up to `timeout` for the current run to end, and reaps it.
    pub fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        if let Some(status) = self.try_reap()? {
            return Ok(status);
        }
        let child = self
            .child
            .as_mut()
            .ok_or_else(|| anyhow!("node {} was never started", self.name))?;
        let status = wait_for_exit(child, timeout)?
            .ok_or_else(|| anyhow!("node {} did not exit within {timeout:?}", self.name))?;
        self.reaped(status);
        Ok(status)
    }

    /// Starts the program again, with the same arguments and log. The previous run must have
    /// ended: a restart that silently killed a live node would hide mistakes in a test.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        if self.is_running() {
            bail!(
                "node {} is still running; kill or terminate it first",
                self.name
            );
        }
        self.spawn()
    }

    /// The exit status if the current run has ended (reaping it), `None` while it runs.
    fn try_reap(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        let Some(child) = self.child.as_mut() else {
            return Ok(self.exit_status);
        };
        let status = child
            .try_wait()
            .with_context(|| format!("wait for node {}", self.name))?;
        if let Some(status) = status {
            self.reaped(status);
        }
        Ok(status)
    }

    fn reaped(&mut self, status: ExitStatus) {
        self.child = None;
        self.exit_status = Some(status);
        tracing::info!(node = %self.name, %status, "node process exited");
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        self.starts += 1;
        let log = self.open_log_with_separator()?;
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .env("NO_COLOR", "1") // the log is a file: no colour escapes in it
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = spawn(command)
            .with_context(|| format!("start {} for node {}", self.program.display(), self.name))?;
        tracing::info!(node = %self.name, pid = child.id(), start = self.starts, "node process started");
        self.child = Some(child);
        self.exit_status = None;
        Ok(())
    }

    fn open_log_with_separator(&self) -> anyhow::Result<File> {
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .with_context(|| format!("open log {}", self.log_path.display()))?;
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        writeln!(
            log,
            "===== harness: start #{} of node {} at unix time {}.{:03} =====",
            self.starts,
            self.name,
            since_epoch.as_secs(),
            since_epoch.subsec_millis()
        )?;
        Ok(log)
    }
}

impl Drop for NodeProcess {
    /// SIGCONT first, in case the test left the node stopped, then SIGKILL and reap.
    fn drop(&mut self) {
        if self.child.is_none() {
            return;
        }
        let _ = self.signal(libc::SIGCONT);
        if let Err(error) = self.kill() {
            tracing::error!(node = %self.name, "could not kill node process: {error:#}");
        }
    }
}

impl std::fmt::Debug for NodeProcess {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("NodeProcess")
            .field("name", &self.name)
            .field("pid", &self.pid())
            .field("exit_status", &self.exit_status)
            .field("starts", &self.starts)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use super::*;
    use crate::wait::wait_until;

    const DEADLINE: Duration = Duration::from_secs(10);

    fn sleeper(dir: &Path) -> NodeProcess {
        NodeProcess::start("a", "/bin/sleep", ["1000"], dir.join("a.log")).unwrap()
    }

    /// The state letter of /proc/PID/stat: 'S' sleeping, 'T' stopped, ...; None once gone.
    fn proc_state(pid: u32) -> Option<char> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(") ")?.1.chars().next()
    }

    fn wait_state(pid: u32, state: char) {
        wait_until(DEADLINE, &format!("process {pid} in state {state}"), || {
            Ok((proc_state(pid) == Some(state)).then_some(()))
        })
        .unwrap();
    }

    #[test]
    fn stop_cont_and_kill() {
        let dir = tempfile::tempdir().unwrap();
        let mut node = sleeper(dir.path());
        let pid = node.pid().unwrap();
        assert!(node.is_running());

        node.signal(libc::SIGSTOP).unwrap();
        wait_state(pid, 'T');
        node.signal(libc::SIGCONT).unwrap();
        wait_state(pid, 'S');

        let status = node.kill().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        assert!(!node.is_running());
        assert_eq!(node.pid(), None);
        assert_eq!(
            proc_state(pid),
            None,
            "reaped, so not even a zombie is left"
        );
        assert!(node.signal(libc::SIGTERM).is_err());
        assert_eq!(node.kill().unwrap().signal(), Some(libc::SIGKILL));
    }

    #[test]
    fn terminate_and_wait_returns_the_exit_status() {
        let dir = tempfile::tempdir().unwrap();
        let mut node = sleeper(dir.path());
        let status = node.terminate_and_wait(DEADLINE).unwrap();
        assert_eq!(status.signal(), Some(libc::SIGTERM));
        assert_eq!(node.exit_status(), Some(status));
    }

    #[test]
    fn wait_exit_fails_while_the_process_runs() {
        let dir = tempfile::tempdir().unwrap();
        let mut node = sleeper(dir.path());
        let error = node.wait_exit(Duration::from_millis(20)).unwrap_err();
        assert!(error.to_string().contains("did not exit"), "{error}");
        assert!(node.is_running());
    }

    #[test]
    fn restart_needs_an_ended_run_and_keeps_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut node = sleeper(dir.path());
        assert!(node.restart().is_err());
        let first_pid = node.pid().unwrap();
        node.kill().unwrap();

        node.restart().unwrap();
        assert!(node.is_running());
        assert_ne!(node.pid(), Some(first_pid));
        let log = std::fs::read_to_string(node.log_path()).unwrap();
        assert!(log.contains("start #1 of node a"), "{log}");
        assert!(log.contains("start #2 of node a"), "{log}");
    }

    #[test]
    fn output_is_appended_to_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let script = ["-c", "echo to-stdout; echo to-stderr >&2"];
        let mut node =
            NodeProcess::start("b", "/bin/sh", script, dir.path().join("b.log")).unwrap();
        assert!(node.wait_exit(DEADLINE).unwrap().success());
        let log = std::fs::read_to_string(node.log_path()).unwrap();
        assert!(
            log.contains("to-stdout\n") && log.contains("to-stderr\n"),
            "{log}"
        );
    }

    #[test]
    fn drop_kills_and_reaps_even_a_stopped_process() {
        let dir = tempfile::tempdir().unwrap();
        let node = sleeper(dir.path());
        let pid = node.pid().unwrap();
        node.signal(libc::SIGSTOP).unwrap();
        wait_state(pid, 'T');
        drop(node);
        assert_eq!(proc_state(pid), None);
    }

    #[test]
    fn a_missing_program_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let error =
            NodeProcess::start("a", "/nonexistent/tandemd", ["x"], dir.path().join("a.log"))
                .unwrap_err();
        assert!(
            format!("{error:#}").contains("/nonexistent/tandemd"),
            "{error:#}"
        );
    }
}
