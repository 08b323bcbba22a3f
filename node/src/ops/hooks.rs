//! `[hooks]` (DESIGN.md §6): commands the node runs when its role changes, and `fence_peer`.
//!
//! Each runs with `/bin/sh -c`, with `TANDEM_ROLE`, `TANDEM_TERM`, `TANDEM_PEER` and
//! `TANDEM_REASON` in its environment, under `[hooks] timeout` (then killed). `on_active`,
//! `on_passive` and `on_fault` run in order on one task, so a virtual IP added and then removed
//! is never removed first; the driver never waits for them. `on_passive` also runs at start-up,
//! to remove a virtual IP a crash left behind. `fence_peer` runs on its own when the role
//! machine asks for it (a failover on missed keep-alives); its exit status decides whether the
//! node takes over. Each outcome is an event (`hook`).
//!
//! Not here: when the hooks run (the role machine's commands, `driver`).

use std::time::Duration;

use tokio::process::Command;
use tokio::sync::mpsc;

use crate::config::HooksConfig;

/// Role hooks queued at most; past it the oldest waiting is not dropped: the driver's send
/// waits in the hook task's own spawn, never in the driver (see `Hooks::role_changed`).
const QUEUE_BOUND: usize = 64;

/// What a hook is told.
#[derive(Clone, Debug)]
pub struct HookEnv {
    pub role: String,
    pub term: String,
    pub peer: String,
    pub reason: String,
}

/// The role hooks' queue; cheap to clone.
#[derive(Clone)]
pub struct Hooks {
    config: HooksConfig,
    queue: mpsc::Sender<(String, HookEnv)>,
}

/// Runs one hook; `Ok` with a line for the log and the event, `Err` when it failed, timed out
/// or could not start.
pub async fn run_hook(
    name: &str,
    command: &str,
    env: &HookEnv,
    timeout: Duration,
) -> Result<String, String> {
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .env("TANDEM_ROLE", &env.role)
        .env("TANDEM_TERM", &env.term)
        .env("TANDEM_PEER", &env.peer)
        .env("TANDEM_REASON", &env.reason)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| format!("{name}: cannot start {command:?}: {error}"))?;
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(format!("{name} ran: {status}")),
        Ok(Ok(status)) => Err(format!("{name} failed: {status}")),
        Ok(Err(error)) => Err(format!("{name}: {error}")),
        Err(_) => {
            let _ = child.kill().await;
            Err(format!("{name} timed out after {timeout:?} and was killed"))
        }
    }
}

impl Hooks {
    /// Starts the task that runs the role hooks in order; `record` gets each outcome.
    pub fn start(config: HooksConfig, record: impl Fn(String) + Send + Sync + 'static) -> Hooks {
        let (queue, mut pending) = mpsc::channel::<(String, HookEnv)>(QUEUE_BOUND);
        let timeout = config.timeout;
        let task_config = config.clone();
        tokio::spawn(async move {
            while let Some((name, env)) = pending.recv().await {
                let Some(command) = task_config.command(&name) else {
                    continue;
                };
                let outcome = run_hook(&name, command, &env, timeout).await;
                match &outcome {
                    Ok(line) => tracing::info!("{line}"),
                    Err(line) => tracing::error!("{line}"),
                }
                record(outcome.unwrap_or_else(|line| line));
            }
        });
        Hooks { config, queue }
    }

    /// Queues the hook of `role`, if one is configured. Never waits.
    pub fn role_changed(&self, role: &str, env: HookEnv) {
        let name = match role {
            "active" => "on_active",
            "passive" => "on_passive",
            "fault" => "on_fault",
            _ => return,
        };
        if self.config.command(name).is_none() {
            return;
        }
        if let Err(error) = self.queue.try_send((name.to_string(), env)) {
            tracing::error!(%error, hook = name, "the hook queue is full; hook not run");
        }
    }

    pub fn config(&self) -> &HooksConfig {
        &self.config
    }
}
