//! Logins, resumes and logouts (DESIGN.md §5).
//!
//! A password login checks the argon2 hash on the bounded pool and writes a session whose token
//! only the client learns (the table keeps its SHA-256). The session is replicated, so after a
//! failover the client resumes on the new active with the token alone: a read, no hash and no
//! write, which is what lets thousands of clients come back at once. A retried login (same
//! request id) finds its session and gets a fresh token for it, since the first token cannot be
//! read back. Logout deletes the session, on both nodes.

use tandem_replication::data_api::{Statement, Value};

use crate::backend::Backend;
use crate::error::GatewayError;
use crate::gateway::{Gateway, NAME_BYTES_MAX, check_length, check_request_id, format_ms, now_ms};
use crate::limiter::Limited;
use crate::secret::{new_token, token_hash};

/// A session as the client gets it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedIn {
    pub token: String,
    pub session_id: String,
    pub user: String,
    pub resumed: bool,
    pub expires_ms: i64,
}

/// A login request, in domain form.
#[derive(Clone, Debug)]
pub enum Credential {
    Password(String),
    ResumeToken(String),
}

/// A well-formed argon2id hash of a password nobody has, verified when the user is unknown so
/// that an unknown name costs as long as a wrong password.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$\
    y8M5U0/R8HzkE+G8yPCSkSmB6+W2sM3tHEcvF3tDs3E";

impl<B: Backend> Gateway<B> {
    pub async fn login(
        &self,
        request_id: &str,
        user: &str,
        credential: Credential,
        client_kind: &str,
        source: &str,
    ) -> Result<LoggedIn, GatewayError> {
        check_length("client_kind", client_kind, NAME_BYTES_MAX)?;
        match credential {
            Credential::ResumeToken(token) => self.resume(&token).await,
            Credential::Password(password) => {
                check_request_id(request_id)?;
                check_length("the user name", user, NAME_BYTES_MAX)?;
                self.admits()?;
                self.refuse_if_blocked(crate::blocks::Block::Logins).await?;
                self.password_login(request_id, user, password, client_kind, source)
                    .await
            }
        }
    }

    async fn resume(&self, token: &str) -> Result<LoggedIn, GatewayError> {
        self.admits()?;
        let session = self.session(token, now_ms()).await?;
        Ok(LoggedIn {
            token: token.to_string(),
            session_id: session.id,
            user: session.user_name,
            resumed: true,
            expires_ms: session.expires_ms,
        })
    }

    async fn password_login(
        &self,
        request_id: &str,
        user: &str,
        password: String,
        client_kind: &str,
        source: &str,
    ) -> Result<LoggedIn, GatewayError> {
        let now = now_ms();
        let now_u64 = u64::try_from(now).unwrap_or(0);
        self.check_failures(user, source, now_u64)?;
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT id, password_hash FROM users WHERE name = ?")
                .bind(user)
                .fetch_optional(&self.backend.reader())
                .await?;
        let (user_id, stored) = match &row {
            Some((id, hash)) => (Some(id.clone()), hash.clone()),
            None => (None, DUMMY_HASH.to_string()),
        };
        let matches = self
            .passwords
            .verify(password, stored)
            .await
            .map_err(|error| GatewayError::Busy(error.to_string()))?;
        let Some(user_id) = user_id.filter(|_| matches) else {
            if let Ok(mut failures) = self.failed_logins.lock() {
                failures.failed(user, source, now_u64);
            }
            return Err(GatewayError::Unauthenticated(
                "wrong user name or password".into(),
            ));
        };
        let token = new_token().map_err(|error| GatewayError::Busy(error.to_string()))?;
        let session_id = crate::gateway::ulid_at(now)?;
        let ttl_ms = i64::try_from(self.config.session_ttl.as_millis()).unwrap_or(i64::MAX);
        let expires_ms = now.saturating_add(ttl_ms);
        let insert = Statement::new(
            "INSERT INTO sessions (id, user_id, user_name, token_hash, client_kind, created_ms, \
             expires_ms, request_id, node) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            vec![
                Value::Text(session_id.clone()),
                Value::Text(user_id),
                Value::Text(user.to_string()),
                Value::Text(token_hash(&token)),
                Value::Text(client_kind.to_string()),
                Value::Integer(now),
                Value::Integer(expires_ms),
                Value::Text(request_id.to_string()),
                Value::Text(self.backend.node_name().to_string()),
            ],
        );
        let written = self
            .backend
            .write(request_id, vec![insert])
            .await
            .map_err(GatewayError::Write)?;
        if written.replayed {
            return self.reissue(request_id, user, &token).await;
        }
        Ok(LoggedIn {
            token,
            session_id,
            user: user.to_string(),
            resumed: false,
            expires_ms,
        })
    }

    /// A retried login: the session exists, its token is lost to us; give it `token` instead.
    async fn reissue(
        &self,
        request_id: &str,
        user: &str,
        token: &str,
    ) -> Result<LoggedIn, GatewayError> {
        let reissue_id = format!("{request_id}/reissue/{}", token_hash(token));
        let update = Statement::new(
            "UPDATE sessions SET token_hash = ? WHERE request_id = ? AND user_name = ?",
            vec![
                Value::Text(token_hash(token)),
                Value::Text(request_id.to_string()),
                Value::Text(user.to_string()),
            ],
        );
        let written = self
            .backend
            .write(&reissue_id, vec![update])
            .await
            .map_err(GatewayError::Write)?;
        if written.rows_affected.first().copied().unwrap_or(0) == 0 {
            return Err(GatewayError::Unauthenticated(format!(
                "the session of login {request_id} has ended; log in again with a new request id"
            )));
        }
        let (session_id, expires_ms): (String, i64) =
            sqlx::query_as("SELECT id, expires_ms FROM sessions WHERE request_id = ?")
                .bind(request_id)
                .fetch_one(&self.backend.reader())
                .await?;
        Ok(LoggedIn {
            token: token.to_string(),
            session_id,
            user: user.to_string(),
            resumed: false,
            expires_ms,
        })
    }

    fn check_failures(&self, user: &str, source: &str, now_ms: u64) -> Result<(), GatewayError> {
        let Ok(mut failures) = self.failed_logins.lock() else {
            return Ok(());
        };
        match failures.check(user, source, now_ms) {
            Ok(()) => Ok(()),
            Err((what, retry_in_ms)) => {
                let whom = match what {
                    Limited::User => format!("user {user:?}"),
                    Limited::Source => format!("address {source}"),
                };
                Err(GatewayError::RateLimited(format!(
                    "too many failed logins for {whom}; retry in {} s",
                    retry_in_ms.div_ceil(1000).max(1)
                )))
            }
        }
    }

    /// Ends the session of `token` on both nodes; unknown tokens are fine (already out).
    pub async fn logout(&self, request_id: &str, token: &str) -> Result<(), GatewayError> {
        check_request_id(request_id)?;
        check_length("token", token, crate::gateway::REQUEST_ID_BYTES_MAX)?;
        self.admits()?;
        let delete = Statement::new(
            "DELETE FROM sessions WHERE token_hash = ?",
            vec![Value::Text(token_hash(token))],
        );
        self.backend
            .write(request_id, vec![delete])
            .await
            .map_err(GatewayError::Write)?;
        Ok(())
    }

    /// Deletes sessions that expired, at most `max` at a time; returns how many.
    pub async fn prune_sessions(&self, max: i64) -> Result<u64, GatewayError> {
        let now = now_ms();
        let request_id = format!("gateway:prune-sessions:{}", crate::gateway::ulid_at(now)?);
        let delete = Statement::new(
            "DELETE FROM sessions WHERE id IN \
             (SELECT id FROM sessions WHERE expires_ms <= ? LIMIT ?)",
            vec![Value::Integer(now), Value::Integer(max)],
        );
        let written = self
            .backend
            .write(&request_id, vec![delete])
            .await
            .map_err(GatewayError::Write)?;
        tracing::debug!(
            expired_before = %format_ms(now),
            "pruned expired sessions"
        );
        Ok(written.rows_affected.first().copied().unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_stand_in_hash_for_unknown_users_parses_and_matches_nothing() {
        let pool = crate::password::PasswordPool::new(1, 4);
        let verified = pool.verify("password".into(), DUMMY_HASH.into()).await;
        assert!(matches!(verified, Ok(false)), "{verified:?}");
    }
}
