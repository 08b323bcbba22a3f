//! Turning the raw file into the typed config: the `Validator` that each section's checks are
//! methods of, how a failed check becomes a `ConfigError` naming its key, how relative paths are
//! resolved, and the checks several sections share (names, host:port).
//!
//! Not here: the rules of any one section (each section's file holds its own `Validator` method),
//! the whole-file pass that calls them (`load.rs`), and reading the file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::duration::parse_duration;
use super::error::ConfigError;

/// Checks one config file's values; its methods are spread over the section files.
pub(super) struct Validator<'a> {
    /// The config file, named in every message.
    pub(super) path: &'a Path,
    /// Its directory: relative paths in the file are resolved against it.
    pub(super) base: &'a Path,
}

/// Reads `path` and parses it as TOML into `T`, then hands it to `validate` with a `Validator`
/// for that file: the steps every config file shares.
pub(super) fn load_file<T: serde::de::DeserializeOwned, C>(
    path: &Path,
    text: Option<&str>,
    validate: impl FnOnce(&Validator<'_>, T) -> Result<C, ConfigError>,
) -> Result<C, ConfigError> {
    let read;
    let text = match text {
        Some(text) => text,
        None => {
            read = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            &read
        }
    };
    let raw: T = toml::from_str(text).map_err(|error| ConfigError::Parse {
        path: path.to_path_buf(),
        message: error.to_string().trim_end().replace('\n', "\n  "),
    })?;
    let validator = Validator {
        path,
        base: path.parent().unwrap_or(Path::new(".")),
    };
    validate(&validator, raw)
}

impl Validator<'_> {
    pub(super) fn invalid(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            key: key.to_string(),
            message: message.into(),
        }
    }

    pub(super) fn duration(&self, key: &str, text: &str) -> Result<Duration, ConfigError> {
        parse_duration(text).map_err(|message| self.invalid(key, message))
    }

    pub(super) fn resolve(&self, text: &str) -> PathBuf {
        let path = Path::new(text);
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base.join(path)
        }
    }
}

pub(super) fn check_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "\"{name}\" is not a valid node name: use letters, digits and '-'"
        ))
    }
}

pub(super) fn check_host_port(text: &str) -> Result<(), String> {
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!("\"{text}\" is not host:port"));
    };
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(format!("\"{text}\" is not host:port"));
    }
    Ok(())
}
