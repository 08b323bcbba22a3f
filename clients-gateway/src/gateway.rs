//! `Gateway`: the state the requests share, and the checks they all make.
//!
//! Each request first asks the node whether it admits clients, then reads what it needs from the
//! live database, then writes through the node's writer. Reads are never trusted for a decision
//! a concurrent request could change: the writes carry their own conditions (`WHERE` clauses), and
//! their row counts say what happened. Not here: the requests themselves (`sessions`, `calls`,
//! `users`, `blocks`) and the gRPC edge (`service`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::backend::Backend;
use crate::error::GatewayError;
use crate::limiter::{FailedLogins, LimiterConfig};
use crate::password::PasswordPool;

/// Longest request id, user name, party or cause, in bytes.
pub const REQUEST_ID_BYTES_MAX: usize = 128;
pub const NAME_BYTES_MAX: usize = 64;
pub const PARTY_BYTES_MAX: usize = 128;
pub const CAUSE_BYTES_MAX: usize = 64;
/// Most calls one `ListCalls` returns.
pub const LIST_CALLS_MAX: i64 = 1000;

#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// How long a session token stays valid after the password login that made it.
    pub session_ttl: Duration,
    pub limiter: LimiterConfig,
}

impl Default for GatewayConfig {
    fn default() -> GatewayConfig {
        GatewayConfig {
            session_ttl: Duration::from_secs(12 * 3600),
            limiter: LimiterConfig::default(),
        }
    }
}

/// The gateway of one node; cheap to clone.
pub struct Gateway<B: Backend> {
    pub(crate) backend: Arc<B>,
    pub(crate) config: GatewayConfig,
    /// argon2 runs here, bounded, off the async workers.
    pub(crate) passwords: PasswordPool,
    /// Failed password attempts, per user and per source (this node's own view).
    pub(crate) failed_logins: Arc<Mutex<FailedLogins>>,
    /// Woken whenever a call ends here, for a `--when-idle` switchover that waits.
    pub(crate) call_ended: Arc<Notify>,
}

impl<B: Backend> Clone for Gateway<B> {
    fn clone(&self) -> Self {
        Gateway {
            backend: self.backend.clone(),
            config: self.config.clone(),
            passwords: self.passwords.clone(),
            failed_logins: self.failed_logins.clone(),
            call_ended: self.call_ended.clone(),
        }
    }
}

/// A session as its token finds it.
#[derive(Clone, Debug)]
pub struct Session {
    pub id: String,
    pub user_id: String,
    pub user_name: String,
    pub expires_ms: i64,
}

impl<B: Backend> Gateway<B> {
    pub fn new(backend: Arc<B>, config: GatewayConfig, passwords: PasswordPool) -> Gateway<B> {
        let limiter = FailedLogins::new(config.limiter.clone());
        Gateway {
            backend,
            config,
            passwords,
            failed_logins: Arc::new(Mutex::new(limiter)),
            call_ended: Arc::new(Notify::new()),
        }
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Woken whenever a call ends on this node.
    pub fn call_ended(&self) -> Arc<Notify> {
        self.call_ended.clone()
    }

    pub(crate) fn admits(&self) -> Result<(), GatewayError> {
        self.backend.admits().map_err(GatewayError::NotAdmitting)
    }

    /// The live session of `token`.
    pub(crate) async fn session(&self, token: &str, now_ms: i64) -> Result<Session, GatewayError> {
        if token.is_empty() {
            return Err(GatewayError::Unauthenticated(
                "no session token; log in first".into(),
            ));
        }
        if token.len() > REQUEST_ID_BYTES_MAX {
            return Err(GatewayError::Unauthenticated(
                "the session token is malformed".into(),
            ));
        }
        let row: Option<(String, String, String, i64)> = sqlx::query_as(
            "SELECT id, user_id, user_name, expires_ms FROM sessions WHERE token_hash = ?",
        )
        .bind(crate::secret::token_hash(token))
        .fetch_optional(&self.backend.reader())
        .await?;
        let Some((id, user_id, user_name, expires_ms)) = row else {
            return Err(GatewayError::Unauthenticated(
                "the session token is unknown or the session has ended; log in with the password"
                    .into(),
            ));
        };
        if expires_ms <= now_ms {
            return Err(GatewayError::Unauthenticated(format!(
                "the session expired at {}; log in with the password",
                format_ms(expires_ms)
            )));
        }
        Ok(Session {
            id,
            user_id,
            user_name,
            expires_ms,
        })
    }
}

/// Checks a request id: present, and not too long.
pub(crate) fn check_request_id(request_id: &str) -> Result<(), GatewayError> {
    if request_id.trim().is_empty() {
        return Err(GatewayError::Invalid(
            "request_id is empty; every mutating request carries a unique id so a retry is \
             idempotent"
                .into(),
        ));
    }
    check_length("request_id", request_id, REQUEST_ID_BYTES_MAX)
}

pub(crate) fn check_length(field: &str, value: &str, max: usize) -> Result<(), GatewayError> {
    if value.len() > max {
        return Err(GatewayError::Invalid(format!(
            "{field} is {} bytes; at most {max}",
            value.len()
        )));
    }
    Ok(())
}

/// A user name: 1 to 64 bytes of letters, digits and `.`, `_`, `-`, `@`.
pub fn check_user_name(name: &str) -> Result<(), GatewayError> {
    if name.is_empty() {
        return Err(GatewayError::Invalid("the user name is empty".into()));
    }
    check_length("the user name", name, NAME_BYTES_MAX)?;
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@')))
    {
        return Err(GatewayError::Invalid(format!(
            "the user name {name:?} has {bad:?}; use letters, digits, '.', '_', '-' and '@'"
        )));
    }
    Ok(())
}

/// A new ULID stamped `now_ms` (see `secret::new_ulid`).
pub(crate) fn ulid_at(now_ms: i64) -> Result<String, GatewayError> {
    crate::secret::new_ulid(u64::try_from(now_ms).unwrap_or(0))
        .map_err(|error| GatewayError::Busy(error.to_string()))
}

/// Milliseconds since the Unix epoch now.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

/// Wall-clock milliseconds as an RFC 3339-like UTC time, for messages.
pub fn format_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_format_as_utc() {
        assert_eq!(format_ms(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_ms(1_795_996_800_000), "2026-11-30T00:00:00Z");
        assert_eq!(format_ms(951_825_599_000), "2000-02-29T11:59:59Z");
    }

    #[test]
    fn user_names_and_request_ids_are_checked() {
        assert!(check_user_name("alice.b-2@site").is_ok());
        assert!(check_user_name("").is_err());
        assert!(check_user_name("a b").is_err());
        assert!(check_user_name(&"x".repeat(65)).is_err());
        assert!(check_request_id(" ").is_err());
        assert!(check_request_id(&"r".repeat(129)).is_err());
        assert!(check_request_id("01J").is_ok());
    }
}
