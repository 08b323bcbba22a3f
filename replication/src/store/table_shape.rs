//! `TableShape`: the columns and primary key of a replicated table, read from SQLite itself.
//!
//! Capture, apply and the row hashes all work from this, so that they agree on the columns
//! and on the primary-key order. Generated and hidden columns are left out (`table_info` omits
//! them): they follow from the others. Not a schema migrator.

use sqlx::{Row, SqliteConnection};

use super::error::StoreError;
use super::image::PAIRS_PER_CALL;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableShape {
    /// The table's name as SQLite spells it (names are case-insensitive; this keeps both nodes'
    /// entries byte-identical whatever case the config used).
    pub table: String,
    /// Every stored column, in declaration order: the images hold these.
    pub columns: Vec<String>,
    /// The primary-key columns in key order: entries name their row by these, hashes sort by them.
    pub primary_key: Vec<String>,
}

impl TableShape {
    /// Reads `table`'s shape, refusing what cannot be replicated: a missing table, a view, a
    /// table without a primary key, the store's or SQLite's own tables.
    pub async fn read(
        connection: &mut SqliteConnection,
        table: &str,
    ) -> Result<TableShape, StoreError> {
        let lower = table.to_ascii_lowercase();
        if lower.starts_with("_tandem_") || lower.starts_with("sqlite_") {
            return Err(StoreError::InternalTable {
                table: table.to_owned(),
            });
        }
        let found =
            sqlx::query("SELECT type, name FROM sqlite_schema WHERE name = ? COLLATE NOCASE")
                .bind(table)
                .fetch_optional(&mut *connection)
                .await?;
        let Some(found) = found else {
            return Err(StoreError::TableMissing {
                table: table.to_owned(),
            });
        };
        let (kind, name): (String, String) = (found.try_get(0)?, found.try_get(1)?);
        if kind != "table" {
            return Err(StoreError::NotATable { table: name, kind });
        }
        let rows = sqlx::query("SELECT name, pk FROM pragma_table_info(?) ORDER BY cid")
            .bind(&name)
            .fetch_all(&mut *connection)
            .await?;
        let mut columns = Vec::with_capacity(rows.len());
        let mut keyed = Vec::new();
        for row in rows {
            let (column, key_position): (String, i64) = (row.try_get(0)?, row.try_get(1)?);
            if key_position > 0 {
                keyed.push((key_position, column.clone()));
            }
            columns.push(column);
        }
        keyed.sort();
        let shape = TableShape {
            table: name,
            columns,
            primary_key: keyed.into_iter().map(|(_, column)| column).collect(),
        };
        shape.check_capturable()?;
        Ok(shape)
    }

    fn check_capturable(&self) -> Result<(), StoreError> {
        if self.primary_key.is_empty() {
            return Err(StoreError::NoPrimaryKey {
                table: self.table.clone(),
            });
        }
        if self.columns.len() <= PAIRS_PER_CALL {
            return Ok(());
        }
        let unencodable = |column: &&String| {
            column
                .chars()
                .any(|c| c == '"' || c == '\\' || c.is_control())
        };
        match self.columns.iter().find(unencodable) {
            Some(column) => Err(StoreError::WideTableColumnName {
                table: self.table.clone(),
                column: column.clone(),
            }),
            None => Ok(()),
        }
    }
}
