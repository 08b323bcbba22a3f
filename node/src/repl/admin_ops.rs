//! The admin commands of the replicated database: `sql`, `verify`, `conflicts`.

use std::time::Duration;

use tandem_proto::admin as pb;
use tandem_proto::data as dpb;
use tandem_proto::data::data_client::DataClient;
use tandem_proto::peer as ppb;
use tandem_proto::peer::peer_client::PeerClient;
use tandem_replication::data_api::Statement;
use tonic::Status;

use super::convert;
use super::handle::Replication;

/// A row of `tandem_conflicts`.
struct ConflictRow {
    id: String,
    at_ms: i64,
    tbl: String,
    pk: String,
    reason: String,
    losing_image: Option<String>,
    kept_image: Option<String>,
    losing_hlc: Option<String>,
    kept_hlc: Option<String>,
    during_merge: i64,
}

impl<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> for ConflictRow {
    fn from_row(row: &'r sqlx::sqlite::SqliteRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row;
        Ok(ConflictRow {
            id: row.try_get("id")?,
            at_ms: row.try_get("at_ms")?,
            tbl: row.try_get("tbl")?,
            pk: row.try_get("pk")?,
            reason: row.try_get("reason")?,
            losing_image: row.try_get("losing_image")?,
            kept_image: row.try_get("kept_image")?,
            losing_hlc: row.try_get("losing_hlc")?,
            kept_hlc: row.try_get("kept_hlc")?,
            during_merge: row.try_get("during_merge")?,
        })
    }
}

/// `verify` compares at one log index: attempts while writes keep moving the index.
const VERIFY_ATTEMPTS: u32 = 50;
const VERIFY_RETRY: Duration = Duration::from_millis(100);
const CONFLICTS_DEFAULT: u32 = 100;
const CONFLICTS_MAX: u32 = 10_000;

/// True for a statement that only reads (it goes to `Query`).
fn reads_only(sql: &str) -> bool {
    let first = sql
        .trim_start()
        .split(|c: char| c.is_whitespace() || c == '(')
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    matches!(first.as_str(), "SELECT" | "VALUES" | "EXPLAIN")
}

impl Replication {
    async fn connect_peer(&self) -> Result<tonic::transport::Channel, Status> {
        let config = &self.inner.config;
        crate::tls::connect(
            &config.peer.address,
            &config.peer.name,
            self.inner.peer_tls.clone(),
            Duration::from_secs(2),
        )
        .await
        .map_err(|error| Status::unavailable(format!("cannot reach the peer: {error}")))
    }

    /// `tandemctl sql`: here if this node is the active, else on the peer's Data service.
    pub async fn admin_sql(&self, sql: String) -> Result<pb::SqlReply, Status> {
        if sql.trim().is_empty() {
            return Err(Status::invalid_argument("the statement is empty"));
        }
        let here = self.inner.driver.admission.admits();
        let statement = Statement::new(sql.clone(), Vec::new());
        if here {
            let node = self.inner.config.node.name.clone();
            if reads_only(&sql) {
                let result = self.query(statement, false).await?;
                return Ok(pb::SqlReply {
                    node,
                    columns: result.columns,
                    rows_json: result
                        .rows
                        .iter()
                        .map(|row| row_json(row.iter().map(convert::value_to_json)))
                        .collect(),
                    ..pb::SqlReply::default()
                });
            }
            let done = self.execute(request_id(), vec![statement]).await?;
            return Ok(pb::SqlReply {
                node,
                rows_affected: done.rows_affected,
                log_index: done.log_index,
                ..pb::SqlReply::default()
            });
        }
        let status = self.inner.driver.status.borrow().clone();
        if status.peer.role != "active" {
            return Err(super::data_service::not_active(self));
        }
        let config = &self.inner.config;
        let channel = crate::tls::connect(
            &config.peer.client_address,
            &config.peer.name,
            self.inner.peer_tls.clone(),
            Duration::from_secs(2),
        )
        .await
        .map_err(|error| Status::unavailable(format!("cannot reach the active: {error}")))?;
        let mut client = DataClient::new(channel);
        let wire = dpb::Statement {
            sql: sql.clone(),
            params: Vec::new(),
        };
        let node = config.peer.name.clone();
        if reads_only(&sql) {
            let reply = client
                .query(dpb::QueryRequest {
                    statement: Some(wire),
                    allow_stale: false,
                })
                .await?
                .into_inner();
            return Ok(pb::SqlReply {
                node,
                columns: reply.columns,
                rows_json: reply
                    .rows
                    .into_iter()
                    .map(|row| {
                        row_json(
                            row.values.into_iter().map(|value| {
                                convert::value_to_json(&convert::value_from_pb(value))
                            }),
                        )
                    })
                    .collect(),
                ..pb::SqlReply::default()
            });
        }
        let reply = client
            .execute(dpb::ExecuteRequest {
                request_id: request_id(),
                statements: vec![wire],
            })
            .await?
            .into_inner();
        Ok(pb::SqlReply {
            node,
            rows_affected: reply.rows_affected,
            log_index: reply.log_index,
            ..pb::SqlReply::default()
        })
    }

    /// `tandemctl resync --to-peer` (on the active) or `--from-peer` (on the passive).
    pub async fn admin_resync(&self, direction: &str) -> Result<String, Status> {
        match direction {
            "to_peer" => {
                let (reply, answer) = tokio::sync::oneshot::channel();
                let input = super::messages::ShipInput::ForceSnapshot {
                    reason: "resync --to-peer".into(),
                    reply: Some(reply),
                };
                self.inner
                    .ship
                    .send(input)
                    .await
                    .map_err(|_| Status::unavailable("the node is stopping"))?;
                match answer.await {
                    Ok(Ok(message)) => Ok(message),
                    Ok(Err(reason)) => Err(Status::failed_precondition(reason)),
                    Err(_) => Err(Status::unavailable("the node is stopping")),
                }
            }
            "from_peer" => {
                if !self
                    .inner
                    .receiving
                    .load(std::sync::atomic::Ordering::SeqCst)
                {
                    return Err(Status::failed_precondition(
                        "no active is shipping to this node; run `resync --from-peer` on the \
                         passive while the active is up, or `resync --to-peer` on the active",
                    ));
                }
                self.inner.want_snapshot.notify_one();
                Ok(
                    "asked the active for a full copy; `tandemctl status` shows its progress"
                        .into(),
                )
            }
            other => Err(Status::invalid_argument(format!(
                "resync direction {other:?} is not \"to_peer\" or \"from_peer\""
            ))),
        }
    }

    /// `tandemctl verify`: row hashes of both nodes at one log index.
    pub async fn admin_verify(&self) -> Result<pb::VerifyReply, Status> {
        let channel = self.connect_peer().await?;
        let mut peer = PeerClient::new(channel);
        for _ in 0..VERIFY_ATTEMPTS {
            let ours = self
                .store()
                .row_hashes()
                .await
                .map_err(|error| Status::unavailable(format!("data.db: {error}")))?;
            let theirs = peer
                .row_hashes(ppb::RowHashesRequest {})
                .await?
                .into_inner();
            if ours.last_idx != theirs.last_index {
                tokio::time::sleep(VERIFY_RETRY).await;
                continue;
            }
            let mut tables = Vec::new();
            for table in &ours.tables {
                let other = theirs.tables.iter().find(|t| t.table == table.table);
                tables.push(pb::TableComparison {
                    table: table.table.clone(),
                    local_rows: table.rows,
                    peer_rows: other.map_or(0, |t| t.rows),
                    same: other.is_some_and(|t| t.rows == table.rows && t.hash == table.hash),
                });
            }
            for table in &theirs.tables {
                if !ours.tables.iter().any(|t| t.table == table.table) {
                    tables.push(pb::TableComparison {
                        table: table.table.clone(),
                        local_rows: 0,
                        peer_rows: table.rows,
                        same: false,
                    });
                }
            }
            let identical = tables.iter().all(|t| t.same);
            return Ok(pb::VerifyReply {
                index: ours.last_idx,
                node: self.inner.config.node.name.clone(),
                peer: self.inner.config.peer.name.clone(),
                tables,
                identical,
            });
        }
        Err(Status::unavailable(format!(
            "the two logs never stood at the same index over {VERIFY_ATTEMPTS} attempts \
             (writes are running, or the peer is behind); retry, or check `tandemctl status`"
        )))
    }

    /// `tandemctl conflicts`: the newest conflicts first.
    pub async fn admin_conflicts(&self, limit: u32) -> Result<pb::ConflictsReply, Status> {
        let limit = match limit {
            0 => CONFLICTS_DEFAULT,
            n => n.min(CONFLICTS_MAX),
        };
        let rows: Vec<ConflictRow> = sqlx::query_as(
            "SELECT id, at_ms, tbl, pk, reason, losing_image, kept_image, losing_hlc, kept_hlc, \
                 during_merge FROM tandem_conflicts ORDER BY at_ms DESC, id LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(self.store().reader())
        .await
        .map_err(|error| Status::unavailable(format!("data.db: {error}")))?;
        Ok(pb::ConflictsReply {
            conflicts: rows
                .into_iter()
                .enumerate()
                .map(|(n, row)| pb::ConflictRecord {
                    id: n as i64 + 1,
                    at_ms: row.at_ms,
                    table: row.tbl,
                    primary_key: row.pk,
                    reason: format!("{} ({})", row.reason, row.id),
                    losing_image: row.losing_image.unwrap_or_default(),
                    kept_image: row.kept_image.unwrap_or_default(),
                    losing_hlc: row.losing_hlc.unwrap_or_default(),
                    kept_hlc: row.kept_hlc.unwrap_or_default(),
                    during_merge: row.during_merge != 0,
                })
                .collect(),
        })
    }
}

fn row_json(values: impl Iterator<Item = serde_json::Value>) -> String {
    serde_json::Value::Array(values.collect()).to_string()
}

/// A fresh request id for a statement typed by an administrator.
fn request_id() -> String {
    let random = crate::random::random_u64;
    format!("sql:{:016x}{:016x}", random(), random())
}

#[cfg(test)]
mod tests {
    use super::reads_only;

    #[test]
    fn reads_go_to_query_and_everything_else_to_execute() {
        assert!(reads_only("select 1"));
        assert!(reads_only("  SELECT(1)"));
        assert!(reads_only("VALUES (1)"));
        assert!(!reads_only("INSERT INTO t VALUES (1)"));
        assert!(!reads_only("with x as (select 1) delete from t"));
        assert!(!reads_only("update t set a = 1"));
    }
}
