//! Blocks: an administrator turns away new logins or new calls (DESIGN.md §5; NetPhone's
//! "prevent new logins and new calls").
//!
//! A block is a row of the replicated `gateway_blocks` table, so both nodes see it and it
//! survives a failover. Existing sessions keep working while logins are blocked, and running
//! calls can still end while calls are blocked.

use tandem_replication::data_api::{Statement, Value};

use crate::backend::Backend;
use crate::error::GatewayError;
use crate::gateway::{Gateway, format_ms, now_ms};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Block {
    Logins,
    Calls,
}

impl Block {
    pub fn as_str(self) -> &'static str {
        match self {
            Block::Logins => "logins",
            Block::Calls => "calls",
        }
    }

    pub fn parse(text: &str) -> Option<Block> {
        match text {
            "logins" => Some(Block::Logins),
            "calls" => Some(Block::Calls),
            _ => None,
        }
    }
}

/// Which blocks are on, as the database has them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Blocks {
    pub logins: bool,
    pub calls: bool,
}

impl<B: Backend> Gateway<B> {
    /// The blocks as this node's database has them.
    pub async fn blocks(&self) -> Result<Blocks, GatewayError> {
        let rows: Vec<(String,)> = sqlx::query_as("SELECT what FROM gateway_blocks")
            .fetch_all(&self.backend.reader())
            .await?;
        let on = |block: Block| rows.iter().any(|(what,)| what == block.as_str());
        Ok(Blocks {
            logins: on(Block::Logins),
            calls: on(Block::Calls),
        })
    }

    /// `Err(Blocked)` while `block` is on.
    pub(crate) async fn refuse_if_blocked(&self, block: Block) -> Result<(), GatewayError> {
        let row: Option<(i64, String)> =
            sqlx::query_as("SELECT since_ms, reason FROM gateway_blocks WHERE what = ?")
                .bind(block.as_str())
                .fetch_optional(&self.backend.reader())
                .await?;
        match row {
            None => Ok(()),
            Some((since_ms, reason)) => Err(GatewayError::Blocked {
                what: match block {
                    Block::Logins => "new logins",
                    Block::Calls => "new calls",
                },
                since: format_ms(since_ms),
                reason: if reason.is_empty() {
                    String::new()
                } else {
                    format!(": {reason}")
                },
            }),
        }
    }

    /// Turns `block` on or off on both nodes. Returns whether this call changed it (a block
    /// that was already on stays as it was, with its first reason).
    pub async fn set_block(
        &self,
        block: Block,
        on: bool,
        reason: &str,
    ) -> Result<bool, GatewayError> {
        crate::gateway::check_length("the reason", reason, 256)?;
        self.admits()?;
        let now = now_ms();
        let statement = if on {
            Statement::new(
                "INSERT INTO gateway_blocks (what, since_ms, reason) VALUES (?, ?, ?) \
                 ON CONFLICT (what) DO NOTHING",
                vec![
                    Value::Text(block.as_str().into()),
                    Value::Integer(now),
                    Value::Text(reason.into()),
                ],
            )
        } else {
            Statement::new(
                "DELETE FROM gateway_blocks WHERE what = ?",
                vec![Value::Text(block.as_str().into())],
            )
        };
        let request_id = format!("gateway:block:{}", crate::gateway::ulid_at(now)?);
        let written = self
            .backend
            .write(&request_id, vec![statement])
            .await
            .map_err(GatewayError::Write)?;
        Ok(written.rows_affected.first().copied().unwrap_or(0) > 0)
    }
}
