//! Users, for `tandemctl user add|passwd|del|list` (DESIGN.md §9).
//!
//! Run on the active, through the node's writer, so they replicate. Passwords are hashed on the
//! bounded pool. Deleting a user ends its sessions too; its CDRs stay (they are the record).

use tandem_replication::data_api::{Statement, Value};

use crate::backend::Backend;
use crate::error::GatewayError;
use crate::gateway::{Gateway, check_user_name, now_ms};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub created_ms: i64,
    pub changed_ms: i64,
    /// Live sessions, as this node's database has them.
    pub sessions: u64,
    pub calls_active: u64,
}

impl<B: Backend> Gateway<B> {
    pub async fn add_user(&self, name: &str, password: &str) -> Result<(), GatewayError> {
        check_user_name(name)?;
        crate::password::check(password).map_err(|e| GatewayError::Invalid(e.to_string()))?;
        self.admits()?;
        if self.user_exists(name).await? {
            return Err(GatewayError::AlreadyExists(format!(
                "user {name:?} already exists; use `tandemctl user passwd {name}` to change its password"
            )));
        }
        let hash = self.hash(password).await?;
        let now = now_ms();
        let id = crate::gateway::ulid_at(now)?;
        let insert = Statement::new(
            "INSERT INTO users (id, name, password_hash, created_ms, changed_ms) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
            vec![
                Value::Text(id.clone()),
                Value::Text(name.into()),
                Value::Text(hash),
                Value::Integer(now),
                Value::Integer(now),
            ],
        );
        let written = self
            .backend
            .write(&format!("gateway:user-add:{id}"), vec![insert])
            .await
            .map_err(GatewayError::Write)?;
        if written.rows_affected.first().copied() != Some(1) {
            return Err(GatewayError::AlreadyExists(format!(
                "user {name:?} already exists"
            )));
        }
        Ok(())
    }

    /// Sets a new password. Sessions opened with the old one stay valid until they expire or
    /// log out.
    pub async fn set_password(&self, name: &str, password: &str) -> Result<(), GatewayError> {
        check_user_name(name)?;
        crate::password::check(password).map_err(|e| GatewayError::Invalid(e.to_string()))?;
        self.admits()?;
        let hash = self.hash(password).await?;
        let now = now_ms();
        let update = Statement::new(
            "UPDATE users SET password_hash = ?, changed_ms = ? WHERE name = ?",
            vec![
                Value::Text(hash),
                Value::Integer(now),
                Value::Text(name.into()),
            ],
        );
        let request_id = format!("gateway:user-passwd:{}", crate::gateway::ulid_at(now)?);
        let written = self
            .backend
            .write(&request_id, vec![update])
            .await
            .map_err(GatewayError::Write)?;
        if written.rows_affected.first().copied() != Some(1) {
            return Err(no_such_user(name));
        }
        Ok(())
    }

    /// Deletes the user and ends its sessions; its running calls stay until they end.
    pub async fn delete_user(&self, name: &str) -> Result<(), GatewayError> {
        check_user_name(name)?;
        self.admits()?;
        let now = now_ms();
        let sessions = Statement::new(
            "DELETE FROM sessions WHERE user_id IN (SELECT id FROM users WHERE name = ?)",
            vec![Value::Text(name.into())],
        );
        let user = Statement::new(
            "DELETE FROM users WHERE name = ?",
            vec![Value::Text(name.into())],
        );
        let request_id = format!("gateway:user-del:{}", crate::gateway::ulid_at(now)?);
        let written = self
            .backend
            .write(&request_id, vec![sessions, user])
            .await
            .map_err(GatewayError::Write)?;
        if written.rows_affected.get(1).copied() != Some(1) {
            return Err(no_such_user(name));
        }
        Ok(())
    }

    /// Every user, by name (a read of this node's database: it works on the passive too).
    pub async fn list_users(&self) -> Result<Vec<UserInfo>, GatewayError> {
        let rows: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT u.name, u.created_ms, u.changed_ms, \
             (SELECT count(*) FROM sessions s WHERE s.user_id = u.id AND s.expires_ms > ?), \
             (SELECT count(*) FROM calls c WHERE c.user_id = u.id) \
             FROM users u ORDER BY u.name",
        )
        .bind(now_ms())
        .fetch_all(&self.backend.reader())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(name, created_ms, changed_ms, sessions, calls)| UserInfo {
                name,
                created_ms,
                changed_ms,
                sessions: u64::try_from(sessions).unwrap_or(0),
                calls_active: u64::try_from(calls).unwrap_or(0),
            })
            .collect())
    }

    async fn user_exists(&self, name: &str) -> Result<bool, GatewayError> {
        let row: Option<(i64,)> = sqlx::query_as("SELECT 1 FROM users WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.backend.reader())
            .await?;
        Ok(row.is_some())
    }

    async fn hash(&self, password: &str) -> Result<String, GatewayError> {
        self.passwords
            .hash(password.to_string())
            .await
            .map_err(|error| GatewayError::Busy(error.to_string()))
    }
}

fn no_such_user(name: &str) -> GatewayError {
    GatewayError::NotFound(format!(
        "no user {name:?}; `tandemctl user list` lists them"
    ))
}
