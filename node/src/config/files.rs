//! `[[files]]`: the directories replicated to the peer, each paired with the peer's entry of the
//! same name. Replicating them is `crate::files`; this only checks the entries (the directory
//! exists and overlaps no other entry, the globs compile).

use std::path::PathBuf;
use std::time::Duration;

use super::bytes::parse_bytes;
use super::error::ConfigError;
use super::raw::RawFiles;
use super::validate::{Validator, check_name};

/// One `[[files]]` entry (DESIGN.md §7): paired with the peer's entry of the same name.
#[derive(Clone, Debug)]
pub struct FilesConfig {
    pub name: String,
    pub dir: PathBuf,
    pub filter: tandem_replication::files::scan::Filter,
    /// The periodic full scan that repairs what the watcher missed.
    pub scan_interval: Duration,
    /// Bytes per second the sender may use; `None`: no limit.
    pub bandwidth: Option<u64>,
}

impl Validator<'_> {
    pub(super) fn files(&self, raws: Vec<RawFiles>) -> Result<Vec<FilesConfig>, ConfigError> {
        let mut entries: Vec<FilesConfig> = Vec::with_capacity(raws.len());
        for (index, raw) in raws.into_iter().enumerate() {
            let key = |field: &str| format!("files[{index}].{field}");
            check_name(&raw.name).map_err(|message| self.invalid(&key("name"), message))?;
            if entries.iter().any(|entry| entry.name == raw.name) {
                return Err(self.invalid(
                    &key("name"),
                    format!("\"{}\" names two [[files]] entries", raw.name),
                ));
            }
            let dir = self.resolve(&raw.dir);
            if !dir.is_dir() {
                return Err(
                    self.invalid(&key("dir"), format!("{} is not a directory", dir.display()))
                );
            }
            if entries
                .iter()
                .any(|entry| dir.starts_with(&entry.dir) || entry.dir.starts_with(&dir))
            {
                return Err(self.invalid(&key("dir"), "overlaps another [[files]] entry's dir"));
            }
            let filter = tandem_replication::files::scan::Filter::new(
                &raw.include,
                &raw.exclude,
                raw.recursive,
            )
            .map_err(|message| self.invalid(&key("include"), format!("bad glob {message}")))?;
            let scan_interval = self.duration(&key("scan_interval"), &raw.scan_interval)?;
            if scan_interval < Duration::from_secs(1) {
                return Err(self.invalid(&key("scan_interval"), "must be at least 1s"));
            }
            let bandwidth = parse_bytes(&raw.bandwidth)
                .map_err(|message| self.invalid(&key("bandwidth"), message))?;
            if bandwidth != 0 && bandwidth < 64 * 1024 {
                return Err(
                    self.invalid(&key("bandwidth"), "must be 0 (no limit) or at least 64KiB")
                );
            }
            entries.push(FilesConfig {
                name: raw.name,
                dir,
                filter,
                scan_interval,
                bandwidth: (bandwidth != 0).then_some(bandwidth),
            });
        }
        Ok(entries)
    }
}
