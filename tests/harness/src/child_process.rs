//! Starting, waiting for and reaping the child processes of the harness (`tandemd`, `tandemctl`),
//! so that none outlives the test process.
//!
//! Every child is started with `PR_SET_PDEATHSIG = SIGKILL`: if the test process dies without
//! running its destructors (SIGKILL from a test runner's timeout, `panic = "abort"`), the kernel
//! kills its children too. The kernel ties that signal to the *thread* that forked the child, not
//! to the process, and test code starts nodes from short-lived threads (every `#[test]` is one);
//! so all children are forked by one spawner thread that lives as long as the process.
//!
//! This module does not interpret exit statuses; callers do.

use std::io::{self, Read, Seek};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// How often a wait for a child's exit looks. Short, because a `tandemctl status` call sits on the
/// path of every poll in a test.
const EXIT_POLL_INTERVAL: Duration = Duration::from_millis(5);

/// How often to retry a spawn that failed with ETXTBSY. A script a test wrote a moment ago can
/// still be open for writing in a child that another thread forked meanwhile (until that child
/// execs), and exec refuses a file open for writing. The window is microseconds; after this many
/// retries [`ETXTBSY_PAUSE`] apart the error is returned.
const ETXTBSY_ATTEMPTS_MAX: u32 = 50;
const ETXTBSY_PAUSE: Duration = Duration::from_millis(10);

/// A child to fork, and where to send the result.
struct SpawnRequest {
    command: Command,
    reply: mpsc::SyncSender<io::Result<Child>>,
}

/// Starts `command` from the spawner thread, with SIGKILL as its parent-death signal.
pub(crate) fn spawn(mut command: Command) -> io::Result<Child> {
    let parent = std::process::id();
    // SAFETY: the closure runs between fork and exec and only calls async-signal-safe functions
    // (prctl, getppid); it allocates nothing.
    unsafe {
        command.pre_exec(move || die_with_parent(parent));
    }
    let (reply, answer) = mpsc::sync_channel(1);
    spawner()
        .lock()
        .map_err(|_| io::Error::other("the spawner lock is poisoned"))?
        .send(SpawnRequest { command, reply })
        .map_err(|_| io::Error::other("the spawner thread is gone"))?;
    answer
        .recv()
        .map_err(|_| io::Error::other("the spawner thread dropped the request"))?
}

fn die_with_parent(parent: u32) -> io::Result<()> {
    // SAFETY: plain system calls with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // The parent may have died before prctl took effect; then no signal will ever come.
    if unsafe { libc::getppid() } as u32 != parent {
        return Err(io::Error::other("the test process is gone"));
    }
    Ok(())
}

/// The channel to the spawner thread, started on first use. The thread never exits, which is
/// what keeps the parent-death signal from firing early.
fn spawner() -> &'static Mutex<mpsc::Sender<SpawnRequest>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (sender, requests) = mpsc::channel::<SpawnRequest>();
        let spawned = thread::Builder::new()
            .name("harness-spawner".to_owned())
            .spawn(move || {
                for mut request in requests {
                    let _ = request.reply.send(spawn_retrying(&mut request.command));
                }
            });
        if let Err(error) = spawned {
            // Requests will fail with "the spawner thread is gone", naming no cause; say it here.
            tracing::error!(%error, "could not start the harness spawner thread");
        }
        Mutex::new(sender)
    })
}

fn spawn_retrying(command: &mut Command) -> io::Result<Child> {
    let mut attempts = 1;
    loop {
        match command.spawn() {
            Err(error)
                if error.raw_os_error() == Some(libc::ETXTBSY)
                    && attempts < ETXTBSY_ATTEMPTS_MAX =>
            {
                attempts += 1;
                thread::sleep(ETXTBSY_PAUSE);
            }
            result => return result,
        }
    }
}

/// Waits until `child` exits, for at most `timeout`. Returns `None` if it is still running.
pub(crate) fn wait_for_exit(
    child: &mut Child,
    timeout: Duration,
) -> io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(EXIT_POLL_INTERVAL);
    }
}

/// Runs `command` to completion and collects its output, killing it after `timeout`.
///
/// Output goes to anonymous temp files rather than pipes, so a chatty child cannot block on a full
/// pipe while this waits, and no reader threads are needed.
pub(crate) fn output_with_timeout(mut command: Command, timeout: Duration) -> io::Result<Output> {
    let mut stdout = tempfile::tempfile()?;
    let mut stderr = tempfile::tempfile()?;
    command
        .stdin(Stdio::null())
        .stdout(stdout.try_clone()?)
        .stderr(stderr.try_clone()?);
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = spawn(command)?;
    let Some(status) = wait_for_exit(&mut child, timeout)? else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{program} did not finish within {timeout:?} and was killed"),
        ));
    };
    Ok(Output {
        status,
        stdout: read_from_start(&mut stdout)?,
        stderr: read_from_start(&mut stderr)?,
    })
}

fn read_from_start(file: &mut std::fs::File) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.rewind()?;
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell(script: &str) -> Command {
        let mut command = Command::new("/bin/sh");
        command.args(["-c", script]);
        command
    }

    #[test]
    fn output_is_collected() {
        let output = output_with_timeout(
            shell("echo out; echo err >&2; exit 3"),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(output.status.code(), Some(3));
        assert_eq!(output.stdout, b"out\n");
        assert_eq!(output.stderr, b"err\n");
    }

    #[test]
    fn a_hanging_command_is_killed_at_the_timeout() {
        let error =
            output_with_timeout(shell("exec sleep 1000"), Duration::from_millis(100)).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }

    #[test]
    fn children_spawned_from_a_finished_thread_keep_running() {
        let mut child = thread::spawn(|| {
            let mut command = Command::new("/bin/sleep");
            command.arg("1000");
            spawn(command).unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(
            wait_for_exit(&mut child, Duration::from_millis(100)).unwrap(),
            None
        );
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
