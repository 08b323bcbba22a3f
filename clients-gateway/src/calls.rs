//! Calls and CDRs (DESIGN.md §5).
//!
//! A running call is a row of `calls`; `EndCall` moves it into `cdrs` in one transaction (an
//! `INSERT ... SELECT` and a `DELETE`, both conditioned on the call still running), so a call has
//! either a row in `calls` or a CDR, never both and never two CDRs. In sync mode the end is
//! answered only once the peer has it. After a takeover, the new active closes the calls of older
//! terms with cause `failover` (`close_stale_calls`); if the old node also ended one of them
//! during a split, merge-back keeps the real end (`schema::cdr_image_wins`).

use tandem_replication::data_api::{Statement, Value};

use crate::backend::Backend;
use crate::blocks::Block;
use crate::error::GatewayError;
use crate::gateway::{
    CAUSE_BYTES_MAX, Gateway, LIST_CALLS_MAX, PARTY_BYTES_MAX, check_length, check_request_id,
    now_ms,
};
use crate::schema::FAILOVER_CAUSE;

/// The cause of an `EndCall` that names none.
pub const NORMAL_CAUSE: &str = "normal";
/// Calls `close_stale_calls` closes per transaction.
const SWEEP_BATCH: i64 = 500;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallStarted {
    pub call_id: String,
    pub started_ms: i64,
    pub replayed: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallEnded {
    pub call_id: String,
    pub cause: String,
    pub ended_ms: i64,
    pub duration_ms: i64,
    pub already_ended: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunningCall {
    pub call_id: String,
    pub user: String,
    pub from: String,
    pub to: String,
    pub started_ms: i64,
    pub node: String,
}

/// Counts for `status`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub calls_active: u32,
    pub sessions: u32,
}

const CDR_COLUMNS: &str = "call_id, user_id, user_name, from_party, to_party, started_ms, \
    ended_ms, duration_ms, cause, node, ended_by, start_request_id, end_request_id";

impl<B: Backend> Gateway<B> {
    pub async fn start_call(
        &self,
        request_id: &str,
        token: &str,
        from: &str,
        to: &str,
    ) -> Result<CallStarted, GatewayError> {
        check_request_id(request_id)?;
        check_party("from", from)?;
        check_party("to", to)?;
        self.admits()?;
        let now = now_ms();
        let session = self.session(token, now).await?;
        if let Some(started) = self.started_by(request_id).await? {
            return Ok(started);
        }
        self.refuse_if_blocked(Block::Calls).await?;
        let epoch = self.backend.active_epoch();
        let call_id = crate::gateway::ulid_at(now)?;
        let insert = Statement::new(
            "INSERT INTO calls (id, session_id, user_id, user_name, from_party, to_party, \
             started_ms, node, epoch, start_request_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            vec![
                Value::Text(call_id.clone()),
                Value::Text(session.id),
                Value::Text(session.user_id),
                Value::Text(session.user_name),
                Value::Text(from.into()),
                Value::Text(to.into()),
                Value::Integer(now),
                Value::Text(self.backend.node_name().into()),
                Value::Integer(i64::try_from(epoch).unwrap_or(i64::MAX)),
                Value::Text(request_id.into()),
            ],
        );
        let written = self
            .backend
            .write(request_id, vec![insert])
            .await
            .map_err(GatewayError::Write)?;
        if written.replayed {
            return self.started_by(request_id).await?.ok_or_else(|| {
                GatewayError::NotFound(format!(
                    "request {request_id} already ran, but its call is gone"
                ))
            });
        }
        Ok(CallStarted {
            call_id,
            started_ms: now,
            replayed: false,
        })
    }

    /// The call an earlier `StartCall` with this request id started, running or ended.
    async fn started_by(&self, request_id: &str) -> Result<Option<CallStarted>, GatewayError> {
        let row: Option<(String, i64)> = sqlx::query_as(
            "SELECT id, started_ms FROM calls WHERE start_request_id = ?1 \
             UNION ALL SELECT call_id, started_ms FROM cdrs WHERE start_request_id = ?1 LIMIT 1",
        )
        .bind(request_id)
        .fetch_optional(&self.backend.reader())
        .await?;
        Ok(row.map(|(call_id, started_ms)| CallStarted {
            call_id,
            started_ms,
            replayed: true,
        }))
    }

    pub async fn end_call(
        &self,
        request_id: &str,
        token: &str,
        call_id: &str,
        cause: &str,
    ) -> Result<CallEnded, GatewayError> {
        check_request_id(request_id)?;
        check_length("call_id", call_id, PARTY_BYTES_MAX)?;
        check_length("cause", cause, CAUSE_BYTES_MAX)?;
        if call_id.is_empty() {
            return Err(GatewayError::Invalid("call_id is empty".into()));
        }
        let cause = if cause.is_empty() {
            NORMAL_CAUSE
        } else {
            cause
        };
        if cause == FAILOVER_CAUSE {
            return Err(GatewayError::Invalid(format!(
                "the cause {FAILOVER_CAUSE:?} is reserved for calls the pair closes after a failover"
            )));
        }
        self.admits()?;
        let now = now_ms();
        let session = self.session(token, now).await?;
        let me = self.backend.node_name().to_string();
        let insert = Statement::new(
            format!(
                "INSERT INTO cdrs ({CDR_COLUMNS}) SELECT id, user_id, user_name, from_party, \
                 to_party, started_ms, ?1, max(0, ?1 - started_ms), ?2, node, ?3, \
                 start_request_id, ?4 FROM calls WHERE id = ?5 AND user_id = ?6"
            ),
            vec![
                Value::Integer(now),
                Value::Text(cause.into()),
                Value::Text(me),
                Value::Text(request_id.into()),
                Value::Text(call_id.into()),
                Value::Text(session.user_id.clone()),
            ],
        );
        let delete = Statement::new(
            "DELETE FROM calls WHERE id = ? AND user_id = ?",
            vec![
                Value::Text(call_id.into()),
                Value::Text(session.user_id.clone()),
            ],
        );
        let written = self
            .backend
            .write(request_id, vec![insert, delete])
            .await
            .map_err(GatewayError::Write)?;
        let ended_here = !written.replayed && written.rows_affected.first().copied() == Some(1);
        if ended_here {
            self.call_ended.notify_waiters();
        }
        let cdr = self.cdr(call_id, &session.user_id).await?;
        let Some((cause, ended_ms, duration_ms, end_request_id)) = cdr else {
            return Err(GatewayError::NotFound(format!(
                "no call {call_id} of user {} is running or ended",
                session.user_name
            )));
        };
        Ok(CallEnded {
            call_id: call_id.into(),
            cause,
            ended_ms,
            duration_ms,
            already_ended: end_request_id != request_id,
        })
    }

    async fn cdr(
        &self,
        call_id: &str,
        user_id: &str,
    ) -> Result<Option<(String, i64, i64, String)>, GatewayError> {
        Ok(sqlx::query_as(
            "SELECT cause, ended_ms, duration_ms, end_request_id FROM cdrs \
             WHERE call_id = ? AND user_id = ?",
        )
        .bind(call_id)
        .bind(user_id)
        .fetch_optional(&self.backend.reader())
        .await?)
    }

    /// The running calls of the session's user, oldest first (at most 1000).
    pub async fn list_calls(&self, token: &str) -> Result<Vec<RunningCall>, GatewayError> {
        self.admits()?;
        let session = self.session(token, now_ms()).await?;
        let rows: Vec<(String, String, String, String, i64, String)> = sqlx::query_as(
            "SELECT id, user_name, from_party, to_party, started_ms, node FROM calls \
             WHERE user_id = ? ORDER BY started_ms, id LIMIT ?",
        )
        .bind(&session.user_id)
        .bind(LIST_CALLS_MAX)
        .fetch_all(&self.backend.reader())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(call_id, user, from, to, started_ms, node)| RunningCall {
                call_id,
                user,
                from,
                to,
                started_ms,
                node,
            })
            .collect())
    }

    /// Closes, with cause `failover`, every running call admitted in a term older than
    /// `epoch`: after a takeover those calls ran on a node that failed. Returns how many.
    pub async fn close_stale_calls(&self, epoch: u64) -> Result<u64, GatewayError> {
        let me = self.backend.node_name().to_string();
        let epoch = i64::try_from(epoch).unwrap_or(i64::MAX);
        let mut closed = 0;
        loop {
            let now = now_ms();
            let stale: Option<(i64,)> =
                sqlx::query_as("SELECT 1 FROM calls WHERE epoch < ? LIMIT 1")
                    .bind(epoch)
                    .fetch_optional(&self.backend.reader())
                    .await?;
            if stale.is_none() {
                return Ok(closed);
            }
            let batch = format!(
                "(SELECT id FROM calls WHERE epoch < {epoch} ORDER BY id LIMIT {SWEEP_BATCH})"
            );
            let insert = Statement::new(
                format!(
                    "INSERT INTO cdrs ({CDR_COLUMNS}) SELECT id, user_id, user_name, from_party, \
                     to_party, started_ms, ?1, max(0, ?1 - started_ms), ?2, node, ?3, \
                     start_request_id, '' FROM calls WHERE id IN {batch} \
                     ON CONFLICT (call_id) DO NOTHING"
                ),
                vec![
                    Value::Integer(now),
                    Value::Text(FAILOVER_CAUSE.into()),
                    Value::Text(me.clone()),
                ],
            );
            let delete = Statement::new(format!("DELETE FROM calls WHERE id IN {batch}"), vec![]);
            let request_id = format!(
                "gateway:failover-close:{me}:{epoch}:{}",
                crate::gateway::ulid_at(now)?
            );
            let written = self
                .backend
                .write(&request_id, vec![insert, delete])
                .await
                .map_err(GatewayError::Write)?;
            let deleted = written.rows_affected.get(1).copied().unwrap_or(0);
            closed += deleted;
            if deleted == 0 {
                return Ok(closed);
            }
            self.call_ended.notify_waiters();
        }
    }

    /// Running calls and live sessions, as this node's database has them.
    pub async fn counts(&self) -> Result<Counts, GatewayError> {
        let (calls, sessions): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM calls), \
             (SELECT count(*) FROM sessions WHERE expires_ms > ?)",
        )
        .bind(now_ms())
        .fetch_one(&self.backend.reader())
        .await?;
        Ok(Counts {
            calls_active: u32::try_from(calls.max(0)).unwrap_or(u32::MAX),
            sessions: u32::try_from(sessions.max(0)).unwrap_or(u32::MAX),
        })
    }
}

fn check_party(field: &str, value: &str) -> Result<(), GatewayError> {
    if value.is_empty() {
        return Err(GatewayError::Invalid(format!("{field} is empty")));
    }
    check_length(field, value, PARTY_BYTES_MAX)
}
