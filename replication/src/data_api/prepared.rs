//! `Prepared`: one client statement compiled by SQLite, bound, stepped and finalized through
//! `libsqlite3-sys` directly.
//!
//! Going around sqlx here is deliberate: the statement is prepared while the authorizer is on
//! and finalized before it goes off, it never enters sqlx's statement cache, and we can check
//! that the text holds exactly one statement. Not here: deciding what is allowed (`authorizer`).

use std::ffi::{CStr, c_char, c_int};
use std::ptr::NonNull;

use libsqlite3_sys as ffi;

use super::authorizer::Guard;
use super::value::Value;

/// SQLite failed a call: its result code and message.
#[derive(Debug)]
pub(super) struct SqliteFailure {
    pub(super) code: c_int,
    pub(super) message: String,
}

/// Why a statement's text could not be prepared.
#[derive(Debug)]
pub(super) enum PrepareError {
    /// The text is not one runnable statement (said in words).
    Shape(String),
    /// SQLite refused to compile it (syntax, unknown table, the authorizer).
    Sqlite(SqliteFailure),
}

/// A prepared statement. Borrows the `Guard` (`'db`), so it is finalized before the guard
/// comes off and the connection's handle lock is released.
pub(super) struct Prepared<'db> {
    db: NonNull<ffi::sqlite3>,
    stmt: NonNull<ffi::sqlite3_stmt>,
    _guard: std::marker::PhantomData<&'db ()>,
}

/// The connection's last error.
fn failure(db: NonNull<ffi::sqlite3>, code: c_int) -> SqliteFailure {
    // SAFETY: `db` is open; errmsg returns a NUL-terminated string owned by SQLite, copied
    // before any other call.
    let message = unsafe {
        let ptr = ffi::sqlite3_errmsg(db.as_ptr());
        if ptr.is_null() {
            format!("SQLite error {code}")
        } else {
            CStr::from_ptr(ptr).to_string_lossy().into_owned()
        }
    };
    SqliteFailure { code, message }
}

/// Compiles the first statement of `sql`; returns it (or `None` if `sql` holds only blanks and
/// comments) and the byte offset where the rest of `sql` starts.
fn prepare_first(
    db: NonNull<ffi::sqlite3>,
    sql: &str,
) -> Result<(Option<NonNull<ffi::sqlite3_stmt>>, usize), SqliteFailure> {
    let Ok(length) = c_int::try_from(sql.len()) else {
        return Err(SqliteFailure {
            code: ffi::SQLITE_TOOBIG,
            message: "the SQL text is longer than SQLite accepts".to_owned(),
        });
    };
    let start = sql.as_ptr() as *const c_char;
    let mut stmt = std::ptr::null_mut();
    let mut tail: *const c_char = std::ptr::null();
    // SAFETY: `sql` is valid for `length` bytes; SQLite reads no further and writes `stmt` and
    // `tail` (a pointer into `sql`).
    let code =
        unsafe { ffi::sqlite3_prepare_v3(db.as_ptr(), start, length, 0, &mut stmt, &mut tail) };
    if code != ffi::SQLITE_OK {
        // SAFETY: on error `stmt` is NULL or a statement we must finalize.
        unsafe { ffi::sqlite3_finalize(stmt) };
        return Err(failure(db, code));
    }
    let rest = if tail.is_null() {
        sql.len()
    } else {
        (tail as usize)
            .saturating_sub(start as usize)
            .min(sql.len())
    };
    Ok((NonNull::new(stmt), rest))
}

impl<'db> Prepared<'db> {
    /// Compiles `sql`, which must hold exactly one statement.
    pub(super) fn new(guard: &'db Guard<'_, '_>, sql: &str) -> Result<Prepared<'db>, PrepareError> {
        let db = guard.db();
        if sql.contains('\0') {
            return Err(PrepareError::Shape(
                "the SQL text contains a NUL byte".to_owned(),
            ));
        }
        let (stmt, rest) = prepare_first(db, sql).map_err(PrepareError::Sqlite)?;
        let Some(stmt) = stmt else {
            return Err(PrepareError::Shape("holds no SQL statement".to_owned()));
        };
        let prepared = Prepared {
            db,
            stmt,
            _guard: std::marker::PhantomData,
        };
        // Anything after the first statement other than blanks, comments and `;` is refused,
        // so one `Statement` is one statement (and the limits count what runs).
        let trailing = sql.get(rest..).unwrap_or("");
        match prepare_first(db, trailing) {
            Ok((None, _)) => Ok(prepared),
            Ok((Some(extra), _)) => {
                // SAFETY: `extra` was just prepared and is not used again.
                unsafe { ffi::sqlite3_finalize(extra.as_ptr()) };
                Err(more_than_one())
            }
            Err(_) => Err(more_than_one()),
        }
    }

    /// Binds `params` in order; their number must match the statement's.
    pub(super) fn bind(&mut self, params: &[Value]) -> Result<(), PrepareError> {
        // SAFETY: `stmt` is a live statement.
        let expected = unsafe { ffi::sqlite3_bind_parameter_count(self.stmt.as_ptr()) };
        if usize::try_from(expected).ok() != Some(params.len()) {
            return Err(PrepareError::Shape(format!(
                "expects {expected} parameters, got {}",
                params.len()
            )));
        }
        for (position, param) in (1..).zip(params) {
            let code = self.bind_one(position, param);
            if code != ffi::SQLITE_OK {
                return Err(PrepareError::Sqlite(failure(self.db, code)));
            }
        }
        Ok(())
    }

    fn bind_one(&mut self, position: c_int, param: &Value) -> c_int {
        let stmt = self.stmt.as_ptr();
        // SAFETY: `stmt` is live, `position` within its count; TEXT and BLOB bytes are copied by
        // SQLite (SQLITE_TRANSIENT) before the call returns. Empty ones avoid handing SQLite a
        // dangling pointer.
        unsafe {
            match param {
                Value::Null => ffi::sqlite3_bind_null(stmt, position),
                Value::Integer(value) => ffi::sqlite3_bind_int64(stmt, position, *value),
                Value::Real(value) => ffi::sqlite3_bind_double(stmt, position, *value),
                Value::Text(text) if text.is_empty() => ffi::sqlite3_bind_text64(
                    stmt,
                    position,
                    c"".as_ptr(),
                    0,
                    ffi::SQLITE_STATIC(),
                    ffi::SQLITE_UTF8 as u8,
                ),
                Value::Text(text) => ffi::sqlite3_bind_text64(
                    stmt,
                    position,
                    text.as_ptr() as *const c_char,
                    text.len() as u64,
                    ffi::SQLITE_TRANSIENT(),
                    ffi::SQLITE_UTF8 as u8,
                ),
                Value::Blob(blob) if blob.is_empty() => {
                    ffi::sqlite3_bind_zeroblob(stmt, position, 0)
                }
                Value::Blob(blob) => ffi::sqlite3_bind_blob64(
                    stmt,
                    position,
                    blob.as_ptr().cast(),
                    blob.len() as u64,
                    ffi::SQLITE_TRANSIENT(),
                ),
            }
        }
    }

    /// Runs the statement to its next row: `true` if a row is ready, `false` when done.
    pub(super) fn step(&mut self) -> Result<bool, SqliteFailure> {
        // SAFETY: `stmt` is a live statement on the locked connection.
        match unsafe { ffi::sqlite3_step(self.stmt.as_ptr()) } {
            ffi::SQLITE_ROW => Ok(true),
            ffi::SQLITE_DONE => Ok(false),
            code => Err(failure(self.db, code)),
        }
    }

    /// Whether the statement leaves the database unchanged (a SELECT).
    pub(super) fn is_read_only(&self) -> bool {
        // SAFETY: `stmt` is live.
        unsafe { ffi::sqlite3_stmt_readonly(self.stmt.as_ptr()) != 0 }
    }

    /// The rows the last INSERT, UPDATE or DELETE changed, triggers not counted.
    pub(super) fn changes(&self) -> u64 {
        // SAFETY: `db` is open.
        let changes = unsafe { ffi::sqlite3_changes64(self.db.as_ptr()) };
        u64::try_from(changes).unwrap_or(0)
    }

    /// The names of the result columns.
    pub(super) fn column_names(&self) -> Vec<String> {
        let stmt = self.stmt.as_ptr();
        // SAFETY: `stmt` is live; each name is NULL (out of memory) or a NUL-terminated string,
        // copied at once.
        unsafe {
            (0..ffi::sqlite3_column_count(stmt))
                .map(|index| {
                    let name = ffi::sqlite3_column_name(stmt, index);
                    if name.is_null() {
                        String::new()
                    } else {
                        CStr::from_ptr(name).to_string_lossy().into_owned()
                    }
                })
                .collect()
        }
    }

    /// The current row; call only after `step` returned `true`.
    pub(super) fn row(&self) -> Vec<Value> {
        let stmt = self.stmt.as_ptr();
        // SAFETY: `stmt` is live and on a row. For TEXT and BLOB the pointer is fetched before
        // the length, as SQLite asks, and both are copied before the next call.
        unsafe {
            (0..ffi::sqlite3_column_count(stmt))
                .map(|index| match ffi::sqlite3_column_type(stmt, index) {
                    ffi::SQLITE_INTEGER => Value::Integer(ffi::sqlite3_column_int64(stmt, index)),
                    ffi::SQLITE_FLOAT => Value::Real(ffi::sqlite3_column_double(stmt, index)),
                    ffi::SQLITE_TEXT => {
                        let ptr = ffi::sqlite3_column_text(stmt, index);
                        let bytes = column_bytes(ptr, ffi::sqlite3_column_bytes(stmt, index));
                        Value::Text(String::from_utf8_lossy(bytes).into_owned())
                    }
                    ffi::SQLITE_BLOB => {
                        let ptr = ffi::sqlite3_column_blob(stmt, index);
                        let bytes =
                            column_bytes(ptr.cast(), ffi::sqlite3_column_bytes(stmt, index));
                        Value::Blob(bytes.to_vec())
                    }
                    _ => Value::Null,
                })
                .collect()
        }
    }
}

/// # Safety
/// `ptr` is NULL or valid for `length` bytes until the next call on the statement.
unsafe fn column_bytes<'a>(ptr: *const u8, length: c_int) -> &'a [u8] {
    match usize::try_from(length) {
        // SAFETY: see the function's contract.
        Ok(length) if !ptr.is_null() && length > 0 => unsafe {
            std::slice::from_raw_parts(ptr, length)
        },
        _ => &[],
    }
}

fn more_than_one() -> PrepareError {
    PrepareError::Shape(
        "holds more than one SQL statement; send each as its own statement".to_owned(),
    )
}

impl Drop for Prepared<'_> {
    fn drop(&mut self) {
        // SAFETY: `stmt` is live and not used after this.
        unsafe { ffi::sqlite3_finalize(self.stmt.as_ptr()) };
    }
}
