//! `[replication]`: how writes wait for the peer, which application tables are replicated and how
//! merge-back settles their conflicts, how much log is kept, how fast a snapshot is sent, and how
//! long request ids are remembered.

use std::path::PathBuf;
use std::time::Duration;

use super::bytes::parse_bytes;
use super::error::ConfigError;
use super::raw::RawReplication;
use super::validate::Validator;

/// How writes wait for the peer (DESIGN.md §4, modes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicationMode {
    Sync,
    Async,
}

/// A table's conflict policy for merge-back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConflictPolicy {
    Newest,
    KeepActive,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicationConfig {
    pub mode: ReplicationMode,
    pub sync_strict: bool,
    pub sync_timeout: Duration,
    /// Directory of `NNN_name.sql` files; `None` when the default directory does not exist.
    pub migrations: Option<PathBuf>,
    pub tables: Vec<String>,
    /// The policy of tables not named in `conflict_policy`.
    pub default_policy: ConflictPolicy,
    pub table_policies: Vec<(String, ConflictPolicy)>,
    pub retention_entries: u64,
    pub retention_bytes: u64,
    /// Bytes per second a snapshot is sent at; 0 for no limit.
    pub resync_rate: u64,
    /// How long a request id is remembered (a retry within it returns the first outcome).
    pub request_retention: Duration,
    /// How often the active runs `verify` by itself.
    pub verify_every: Duration,
}

impl ReplicationConfig {
    pub fn policy_of(&self, table: &str) -> ConflictPolicy {
        self.table_policies
            .iter()
            .find(|(name, _)| name == table)
            .map_or(self.default_policy, |(_, policy)| *policy)
    }
}

impl Validator<'_> {
    pub(super) fn replication(
        &self,
        raw: RawReplication,
    ) -> Result<ReplicationConfig, ConfigError> {
        let mode = match raw.mode.as_str() {
            "sync" => ReplicationMode::Sync,
            "async" => ReplicationMode::Async,
            other => {
                return Err(self.invalid(
                    "replication.mode",
                    format!("\"{other}\" is not \"sync\" or \"async\""),
                ));
            }
        };
        let sync_timeout = self.duration("replication.sync_timeout", &raw.sync_timeout)?;
        if sync_timeout < Duration::from_millis(10) {
            return Err(self.invalid("replication.sync_timeout", "must be at least 10ms"));
        }
        let migrations = match &raw.migrations {
            Some(text) => {
                let dir = self.resolve(text);
                if !dir.is_dir() {
                    return Err(self.invalid(
                        "replication.migrations",
                        format!("directory {} does not exist", dir.display()),
                    ));
                }
                Some(dir)
            }
            None => Some(self.resolve("migrations")).filter(|dir| dir.is_dir()),
        };
        for (index, table) in raw.tables.iter().enumerate() {
            let valid = !table.is_empty()
                && table.len() <= 128
                && table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !table.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(self.invalid(
                    &format!("replication.tables[{index}]"),
                    format!("\"{table}\" is not a table name (letters, digits, underscores)"),
                ));
            }
            if table.to_ascii_lowercase().starts_with("_tandem") {
                return Err(self.invalid(
                    &format!("replication.tables[{index}]"),
                    format!("\"{table}\" is one of tandem's own tables"),
                ));
            }
            if table.to_ascii_lowercase().starts_with("tandem_") {
                return Err(self.invalid(
                    &format!("replication.tables[{index}]"),
                    format!(
                        "\"{table}\": tables named tandem_* are the node's (clients cannot \
                         write them); name application tables otherwise"
                    ),
                ));
            }
            if tandem_gateway::schema::TABLES
                .iter()
                .any(|name| name.eq_ignore_ascii_case(table))
            {
                return Err(self.invalid(
                    &format!("replication.tables[{index}]"),
                    format!(
                        "\"{table}\" is one of the clients gateway's tables, which are always \
                         replicated; remove it from the list"
                    ),
                ));
            }
        }
        let policy = |key: &str, text: &str| match text {
            "newest" => Ok(ConflictPolicy::Newest),
            "keep_active" => Ok(ConflictPolicy::KeepActive),
            other => Err(self.invalid(
                key,
                format!("\"{other}\" is not \"newest\" or \"keep_active\""),
            )),
        };
        let mut default_policy = ConflictPolicy::Newest;
        let mut table_policies = Vec::new();
        for (table, text) in &raw.conflict_policy {
            let key = format!("replication.conflict_policy.{table}");
            let parsed = policy(&key, text)?;
            if table == "default" {
                default_policy = parsed;
            } else if !raw.tables.contains(table) {
                return Err(self.invalid(&key, format!("\"{table}\" is not in replication.tables")));
            } else {
                table_policies.push((table.clone(), parsed));
            }
        }
        if raw.log_retention.entries == 0 || raw.log_retention.entries > 10_000_000 {
            return Err(self.invalid(
                "replication.log_retention.entries",
                "must be between 1 and 10000000",
            ));
        }
        let retention_bytes = parse_bytes(&raw.log_retention.bytes)
            .map_err(|message| self.invalid("replication.log_retention.bytes", message))?;
        if retention_bytes < 1024 {
            return Err(self.invalid("replication.log_retention.bytes", "must be at least 1KiB"));
        }
        let resync_rate = parse_bytes(&raw.resync_rate)
            .map_err(|message| self.invalid("replication.resync_rate", message))?;
        let request_retention =
            self.duration("replication.request_retention", &raw.request_retention)?;
        if request_retention < Duration::from_secs(1) {
            return Err(self.invalid("replication.request_retention", "must be at least 1s"));
        }
        let verify_every = self.duration("replication.verify_every", &raw.verify_every)?;
        if verify_every < Duration::from_secs(1) {
            return Err(self.invalid("replication.verify_every", "must be at least 1s"));
        }
        Ok(ReplicationConfig {
            resync_rate,
            request_retention,
            verify_every,
            mode,
            sync_strict: raw.sync_strict,
            sync_timeout,
            migrations,
            tables: raw.tables,
            default_policy,
            table_policies,
            retention_entries: raw.log_retention.entries,
            retention_bytes,
        })
    }
}
