//! Asking a test cluster's nodes how they are, and waiting until they say the right thing.
//!
//! Everything goes through `tandemctl --config <node.toml>`, as an operator would do it, with a
//! timeout per call: a SIGSTOPped node accepts the connection and never answers. A node that does
//! not answer is "not answering", never an error that stops a wait.

use std::process::Output;
use std::thread;
use std::time::Duration;

use anyhow::{Context, anyhow};
use serde_json::Value;

use crate::child_process::output_with_timeout;
use crate::cluster::Cluster;
use crate::wait;

/// How much of each node's log a failed wait shows.
const LOG_TAIL_LINES: usize = 40;

impl Cluster {
    /// Runs `tandemctl --config <name's config> args...` and returns its output, whatever its
    /// exit status. Fails only if it could not run or did not finish within the ctl timeout.
    pub fn ctl(&self, name: &str, args: &[&str]) -> anyhow::Result<Output> {
        let mut command = self.ctl_command(name);
        command.args(args);
        output_with_timeout(command, self.ctl_timeout)
            .with_context(|| format!("tandemctl {} on node {name}", args.join(" ")))
    }

    /// Like [`ctl`](Self::ctl), but fails unless the exit status is 0; returns stdout.
    pub fn ctl_ok(&self, name: &str, args: &[&str]) -> anyhow::Result<String> {
        let output = self.ctl(name, args)?;
        if !output.status.success() {
            return Err(anyhow!(
                "tandemctl {} on node {name} exited with {}: {}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// `tandemctl status --json` of one node.
    pub fn status(&self, name: &str) -> anyhow::Result<Value> {
        let stdout = self.ctl_ok(name, &["status", "--json"])?;
        serde_json::from_str(&stdout)
            .with_context(|| format!("status --json of node {name} is not JSON: {stdout}"))
    }

    /// The node's `node.role`, or `None` if it does not answer.
    pub fn role(&self, name: &str) -> Option<String> {
        let status = self.status(name).ok()?;
        role_of(&status).ok().map(str::to_owned)
    }

    /// The nodes whose status says `active`, asked in parallel so that a stopped node costs one
    /// ctl timeout, not one per node.
    pub fn active_nodes(&self) -> Vec<String> {
        let roles: Vec<(&str, Option<String>)> = thread::scope(|scope| {
            let asks: Vec<_> = self
                .node_names()
                .into_iter()
                .map(|name| scope.spawn(move || (name, self.role(name))))
                .collect();
            asks.into_iter().filter_map(|ask| ask.join().ok()).collect()
        });
        roles
            .into_iter()
            .filter(|(_, role)| role.as_deref() == Some("active"))
            .map(|(name, _)| name.to_owned())
            .collect()
    }

    /// Polls `poll` until it returns `Ok(Some(value))`; see [`wait::wait_until`]. On timeout the
    /// error names `what`, the last error, and the tail of both nodes' logs.
    pub fn wait_until<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut poll: impl FnMut(&Cluster) -> anyhow::Result<Option<T>>,
    ) -> anyhow::Result<T> {
        let waited = wait::wait_until(timeout, what, || poll(self))
            .map_err(|error| anyhow!("{error:#}\n{}", self.log_tails(LOG_TAIL_LINES)));
        self.record(waited)
    }

    /// Waits until the node's status says `role`.
    pub fn wait_role(&self, name: &str, role: &str, timeout: Duration) -> anyhow::Result<()> {
        self.wait_until(timeout, &format!("node {name} to be {role}"), |cluster| {
            let status = cluster.status(name)?;
            let actual = role_of(&status)?;
            if actual == role {
                Ok(Some(()))
            } else {
                Err(anyhow!("node {name} is {actual}"))
            }
        })
    }

    /// Waits until exactly one node says it is active, and returns its name.
    pub fn wait_single_active(&self, timeout: Duration) -> anyhow::Result<String> {
        self.wait_until(timeout, "exactly one active node", |cluster| match cluster
            .active_nodes()
            .as_slice()
        {
            [active] => Ok(Some(active.clone())),
            others => Err(anyhow!("active nodes: {others:?}")),
        })
    }

    /// The last `lines` lines of the node's log, or a note that there is none yet.
    pub fn log_tail(&self, name: &str, lines: usize) -> String {
        let path = self.log_path(name);
        match std::fs::read(&path) {
            Ok(bytes) => last_lines(&String::from_utf8_lossy(&bytes), lines),
            Err(error) => format!("(no log at {}: {error})", path.display()),
        }
    }

    fn log_tails(&self, lines: usize) -> String {
        self.node_names()
            .into_iter()
            .map(|name| {
                let path = self.log_path(name);
                let tail = self.log_tail(name, lines);
                format!(
                    "----- last {lines} lines of node {name}'s log ({}) -----\n{tail}",
                    path.display()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// `node.role` of a status document.
fn role_of(status: &Value) -> anyhow::Result<&str> {
    status["node"]["role"]
        .as_str()
        .ok_or_else(|| anyhow!("status has no node.role: {status}"))
}

fn last_lines(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_keeps_the_end() {
        assert_eq!(last_lines("1\n2\n3\n", 2), "2\n3");
        assert_eq!(last_lines("1\n", 5), "1");
        assert_eq!(last_lines("", 5), "");
    }

    #[test]
    fn role_of_reads_node_role() {
        let status = serde_json::json!({"node": {"role": "passive"}});
        assert_eq!(role_of(&status).unwrap(), "passive");
        assert!(role_of(&serde_json::json!({})).is_err());
    }
}
