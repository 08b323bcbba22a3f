//! `SqlValue`: one SQLite value with its storage class, as it travels between the database,
//! the JSON images of the log and the row hashes.
//!
//! It keeps the storage class exactly (INTEGER, REAL, TEXT, BLOB, NULL), because a replica must
//! hold the same bytes, not merely an equal-looking value. Not a general ORM value: no dates,
//! no JSON subtype; an application's JSON text is just TEXT here.

use sqlx::query::Query;
use sqlx::sqlite::{Sqlite, SqliteArguments, SqliteRow};
use sqlx::{Row, TypeInfo, ValueRef};

#[derive(Clone, Debug, PartialEq)]
pub enum SqlValue {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl SqlValue {
    /// Reads column `index` of `row` with the storage class of the value itself, not the
    /// column's declared type (SQLite columns may hold any class).
    pub fn from_row(row: &SqliteRow, index: usize) -> Result<SqlValue, sqlx::Error> {
        let raw = row.try_get_raw(index)?;
        if raw.is_null() {
            return Ok(SqlValue::Null);
        }
        let class = raw.type_info().name().to_owned();
        Ok(match class.as_str() {
            "INTEGER" => SqlValue::Integer(row.try_get(index)?),
            "REAL" => SqlValue::Real(row.try_get(index)?),
            "TEXT" => SqlValue::Text(row.try_get(index)?),
            _ => SqlValue::Blob(row.try_get(index)?),
        })
    }

    /// Binds this value as a typed parameter of `query`.
    pub fn bind_to<'q>(
        &self,
        query: Query<'q, Sqlite, SqliteArguments<'q>>,
    ) -> Query<'q, Sqlite, SqliteArguments<'q>> {
        match self {
            SqlValue::Null => query.bind(None::<i64>),
            SqlValue::Integer(value) => query.bind(*value),
            SqlValue::Real(value) => query.bind(*value),
            SqlValue::Text(value) => query.bind(value.clone()),
            SqlValue::Blob(value) => query.bind(value.clone()),
        }
    }

    /// Feeds an unambiguous encoding of this value to `sink`: a class tag, then a fixed-width
    /// number or a length-prefixed byte string. Used by the row hashes.
    pub fn hash_into(&self, sink: &mut impl FnMut(&[u8])) {
        match self {
            SqlValue::Null => sink(&[0]),
            SqlValue::Integer(value) => {
                sink(&[1]);
                sink(&value.to_be_bytes());
            }
            SqlValue::Real(value) => {
                // -0.0 is stored and replicated as 0.0 (see the image module); hash them alike.
                let canonical = if *value == 0.0 { 0.0f64 } else { *value };
                sink(&[2]);
                sink(&canonical.to_bits().to_be_bytes());
            }
            SqlValue::Text(value) => hash_bytes(3, value.as_bytes(), sink),
            SqlValue::Blob(value) => hash_bytes(4, value, sink),
        }
    }
}

fn hash_bytes(tag: u8, bytes: &[u8], sink: &mut impl FnMut(&[u8])) {
    sink(&[tag]);
    sink(&(bytes.len() as u64).to_be_bytes());
    sink(bytes);
}

impl From<SqlValue> for crate::data_api::Value {
    fn from(value: SqlValue) -> crate::data_api::Value {
        use crate::data_api::Value;
        match value {
            SqlValue::Null => Value::Null,
            SqlValue::Integer(value) => Value::Integer(value),
            SqlValue::Real(value) => Value::Real(value),
            SqlValue::Text(value) => Value::Text(value),
            SqlValue::Blob(value) => Value::Blob(value),
        }
    }
}
