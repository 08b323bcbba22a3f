//! Change capture: the AFTER INSERT/UPDATE/DELETE triggers on every replicated table.
//!
//! Each trigger appends one `_tandem_log` row per changed row, in the same transaction as the
//! change, stamped from `_tandem_capture_ctx` (see `context`) and with images built by
//! `image::image_sql`. Triggers are quiet while `_tandem_applying.flag = 1`, so changes that
//! came from the peer (and migrations, which each node runs itself) are not captured again.
//! A trigger that fires outside a store write (no capture context) aborts the statement rather
//! than log an entry with a stale stamp. Installing drops every capture trigger first, so a
//! migration that changed a table's columns, or a table removed from the config, is picked up.
//! Not here: hashing and finishing the entries (`finish`).

use std::sync::atomic::Ordering;

use sqlx::{Executor, SqliteConnection};

use super::entry::ChangeOp;
use super::error::StoreError;
use super::handle::Store;
use super::image::image_sql;
use super::sql_text::{quote_ident, quote_literal};
use super::table_shape::TableShape;
use super::writer_transaction::WriterTransaction;

const TRIGGER_PREFIX: &str = "_tandem_capture_";

impl Store {
    /// (Re)installs the capture triggers for the configured tables, in one transaction, and
    /// returns their shapes. `migrate` calls this; call it directly when there are no
    /// migrations. Fails, installing nothing, if a table is missing or has no primary key.
    pub async fn install_capture(&self) -> Result<Vec<TableShape>, StoreError> {
        let mut transaction = WriterTransaction::begin(&self.writer, &self.owned).await?;
        drop_capture_triggers(&mut transaction).await?;
        let mut shapes = Vec::with_capacity(self.tables.len());
        for table in self.tables.iter() {
            let shape = TableShape::read(&mut transaction, table).await?;
            for op in [ChangeOp::Insert, ChangeOp::Update, ChangeOp::Delete] {
                let sql = trigger_sql(&shape, op);
                transaction.execute(sql.as_str()).await?;
            }
            shapes.push(shape);
        }
        transaction.commit().await?;
        self.capture_installed.store(true, Ordering::Release);
        tracing::info!(tables = shapes.len(), "change capture installed");
        Ok(shapes)
    }
}

async fn drop_capture_triggers(connection: &mut SqliteConnection) -> Result<(), StoreError> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_schema WHERE type = 'trigger' AND substr(name, 1, ?) = ?",
    )
    .bind(TRIGGER_PREFIX.len() as i64)
    .bind(TRIGGER_PREFIX)
    .fetch_all(&mut *connection)
    .await?;
    for name in names {
        let sql = format!("DROP TRIGGER IF EXISTS {}", quote_ident(&name));
        connection.execute(sql.as_str()).await?;
    }
    Ok(())
}

/// The CREATE TRIGGER statement that captures `op` on `shape`'s table.
pub fn trigger_sql(shape: &TableShape, op: ChangeOp) -> String {
    let (key_row, new_image, old_image) = match op {
        ChangeOp::Insert => ("NEW", image_sql("NEW", &shape.columns), "NULL".to_owned()),
        ChangeOp::Update => (
            "OLD",
            image_sql("NEW", &shape.columns),
            image_sql("OLD", &shape.columns),
        ),
        ChangeOp::Delete => ("OLD", "NULL".to_owned(), image_sql("OLD", &shape.columns)),
    };
    let trigger = quote_ident(&format!("{TRIGGER_PREFIX}{}_{}", op.as_str(), shape.table));
    let outside_write = quote_literal(&format!(
        "tandem: table \"{}\" is replicated; write it through the store (no capture context)",
        shape.table
    ));
    format!(
        "CREATE TRIGGER {trigger} AFTER {event} ON {table}
         WHEN (SELECT flag FROM _tandem_applying) = 0
         BEGIN
           SELECT RAISE(ABORT, {outside_write}) WHERE (SELECT txid FROM _tandem_capture_ctx) IS NULL;
           INSERT INTO _tandem_log (term_epoch, term_node, txid, tbl, pk, op, new_image, old_image,
                                    hlc_ms, hlc_logical, hlc_node, origin)
           SELECT term_epoch, term_node, txid, {table_name}, {pk}, '{op}', {new_image}, {old_image},
                  hlc_ms, hlc_logical, hlc_node, origin
           FROM _tandem_capture_ctx;
         END",
        event = op.as_str().to_uppercase(),
        table = quote_ident(&shape.table),
        table_name = quote_literal(&shape.table),
        pk = image_sql(key_row, &shape.primary_key),
        op = op.as_str(),
    )
}
