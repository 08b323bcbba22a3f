//! Row hashes for `tandemctl verify`: one hash per replicated table, over its rows in
//! primary-key order, read in one read transaction together with the log index they reflect.
//!
//! Two nodes whose hashes at the same log index differ hold different data in that table. The
//! hash is SHA-256 (ring) over the table name, the column names and every value with its
//! storage class, truncated to 64 bits: enough to detect a difference, not meant to resist an
//! attacker. Rows stream through, so a large table is never held in memory. Not here:
//! comparing with the peer or naming the tables that differ (the verify command does that).

use futures::TryStreamExt;
use ring::digest;
use sqlx::SqliteConnection;

use super::error::{StoreError, from_sql_int};
use super::handle::Store;
use super::sql_text::quote_ident;
use super::table_shape::TableShape;
use super::value::SqlValue;

/// The hashes of all replicated tables at one log index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowHashes {
    /// The last log index the hashed data includes: compare only hashes taken at equal indexes.
    pub last_idx: u64,
    /// One per replicated table, in config order.
    pub tables: Vec<TableHash>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableHash {
    pub table: String,
    pub rows: u64,
    pub hash: u64,
}

impl Store {
    /// Hashes every replicated table in one read transaction.
    pub async fn row_hashes(&self) -> Result<RowHashes, StoreError> {
        let mut transaction = self.reader.begin().await?;
        let last_idx: Option<i64> = sqlx::query_scalar("SELECT max(idx) FROM _tandem_log")
            .fetch_one(&mut *transaction)
            .await?;
        let mut tables = Vec::with_capacity(self.tables.len());
        for table in self.tables.iter() {
            tables.push(hash_table(&mut transaction, table).await?);
        }
        Ok(RowHashes {
            last_idx: from_sql_int("_tandem_log.idx", last_idx.unwrap_or(0))?,
            tables,
        })
    }

    /// Hashes one table (replicated or not; it needs a primary key).
    pub async fn row_hash(&self, table: &str) -> Result<TableHash, StoreError> {
        let mut connection = self.reader.acquire().await?;
        hash_table(&mut connection, table).await
    }
}

async fn hash_table(
    connection: &mut SqliteConnection,
    table: &str,
) -> Result<TableHash, StoreError> {
    let shape = TableShape::read(&mut *connection, table).await?;
    let mut context = digest::Context::new(&digest::SHA256);
    let mut sink = |bytes: &[u8]| context.update(bytes);
    SqlValue::Text(shape.table.clone()).hash_into(&mut sink);
    for column in &shape.columns {
        SqlValue::Text(column.clone()).hash_into(&mut sink);
    }
    let quoted = |columns: &[String]| {
        columns
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let sql = format!(
        "SELECT {} FROM {} ORDER BY {}",
        quoted(&shape.columns),
        quote_ident(&shape.table),
        quoted(&shape.primary_key)
    );
    let mut rows = 0u64;
    let mut stream = sqlx::query(&sql).fetch(&mut *connection);
    while let Some(row) = stream.try_next().await? {
        for index in 0..shape.columns.len() {
            SqlValue::from_row(&row, index)?.hash_into(&mut sink);
        }
        rows += 1;
    }
    drop(stream);
    let digest = context.finish();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    Ok(TableHash {
        table: shape.table,
        rows,
        hash: u64::from_be_bytes(first),
    })
}
