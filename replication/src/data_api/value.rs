//! `Value` and `Statement`: what a client sends and gets back, typed as SQLite stores it.
//!
//! Not here: JSON or protobuf encodings of values; the gRPC edge converts.

/// One SQLite value: a parameter going in or a column coming out.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// A statement parameter; the same five types as a result value.
pub type Param = Value;

impl Value {
    /// The bytes a TEXT or BLOB takes, for `Limits::max_param_bytes`; other types count as 8.
    pub fn size_bytes(&self) -> usize {
        match self {
            Value::Null => 0,
            Value::Integer(_) | Value::Real(_) => 8,
            Value::Text(text) => text.len(),
            Value::Blob(blob) => blob.len(),
        }
    }
}

/// One SQL statement and its positional parameters (`?`, `?NNN`, `:name` are bound in order).
#[derive(Clone, Debug, PartialEq)]
pub struct Statement {
    pub sql: String,
    pub params: Vec<Param>,
}

impl Statement {
    pub fn new(sql: impl Into<String>, params: Vec<Param>) -> Statement {
        Statement {
            sql: sql.into(),
            params,
        }
    }
}
