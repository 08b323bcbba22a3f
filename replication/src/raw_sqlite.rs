//! `RawDb` and `Prepared`: SQLite reached through `libsqlite3-sys` directly, on a sqlx
//! connection whose handle lock is held (`SqliteConnection::lock_handle`) or on an `OwnedDb`.
//!
//! Two users go around sqlx on purpose:
//! - the Data API: a client's statement is prepared under the authorizer, never enters sqlx's
//!   statement cache, and its text is checked to hold exactly one statement;
//! - the store's write path: a whole client write (savepoint, capture context, request id,
//!   statements, finishing the log entries) or applied batch runs in one synchronous stretch,
//!   instead of a dozen round trips to sqlx's worker thread.
//!
//! A `RawDb` borrows the locked handle or the `OwnedDb`, and holds a raw pointer, so it is
//! neither `Send` nor able to outlive the borrow: code using it cannot `.await` in between.
//!
//! `OwnedDb` is a connection this crate opens and closes itself, without sqlx: the store's hot
//! path (client writes, applied batches) runs on it with no round trip to sqlx's worker thread,
//! and keeps its prepared statements between transactions (`Prepared::cached`), which a sqlx
//! connection cannot: sqlx closes its handle with `sqlite3_close`, which fails (and sqlx panics)
//! while a statement of ours is alive. Not here: deciding what is allowed
//! (`data_api::authorizer`).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::marker::PhantomData;
use std::path::Path;
use std::ptr::NonNull;

use libsqlite3_sys as ffi;
use sqlx::sqlite::LockedSqliteHandle;

use crate::data_api::Value;

/// The raw connection behind a locked sqlx handle or an `OwnedDb`, for as long as it is
/// borrowed.
#[derive(Clone, Copy)]
pub(crate) struct RawDb<'h> {
    db: NonNull<ffi::sqlite3>,
    /// The `OwnedDb`'s statement cache; `None` on a sqlx connection.
    cache: Option<&'h StatementCache>,
    /// The `OwnedDb`'s authorizer slot (see `OwnedDb::guard_slot`); `None` on a sqlx connection.
    guard_slot: Option<&'h GuardSlot>,
    _lock: PhantomData<&'h mut ()>,
}

/// Where a connection's permanent authorizer finds the rules in force: NULL when none are (the
/// store's own statements), else the Data API guard's state.
pub(crate) type GuardSlot = Cell<*const c_void>;

impl<'h> RawDb<'h> {
    pub(crate) fn new(handle: &'h mut LockedSqliteHandle<'_>) -> RawDb<'h> {
        RawDb {
            db: handle.as_raw_handle(),
            cache: None,
            guard_slot: None,
            _lock: PhantomData,
        }
    }

    /// The authorizer slot of an `OwnedDb`; `None` on a sqlx connection, where the guard
    /// installs its own authorizer.
    pub(crate) fn guard_slot(self) -> Option<&'h GuardSlot> {
        self.guard_slot
    }

    pub(crate) fn as_ptr(self) -> *mut ffi::sqlite3 {
        self.db.as_ptr()
    }

    /// Runs `sql`, one or more statements without parameters or rows (SAVEPOINT, RELEASE, ...).
    pub(crate) fn exec(self, sql: &str) -> Result<(), SqliteFailure> {
        let text = CString::new(sql).map_err(|_| SqliteFailure {
            code: ffi::SQLITE_MISUSE,
            message: "the SQL text contains a NUL byte".to_owned(),
        })?;
        // SAFETY: the connection is open and locked for us; `text` is NUL-terminated; no
        // callback; the error message is read afterwards by `failure`.
        let code = unsafe {
            ffi::sqlite3_exec(
                self.db.as_ptr(),
                text.as_ptr(),
                None,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        match code {
            ffi::SQLITE_OK => Ok(()),
            code => Err(failure(self.db, code)),
        }
    }

    /// Runs `sql`, one statement without parameters or rows, kept prepared on an `OwnedDb`
    /// (see `Prepared::cached`); on a sqlx connection, as `exec`.
    pub(crate) fn run_cached(self, sql: &str) -> Result<(), SqliteFailure> {
        let mut statement = Prepared::store(self, sql).map_err(|error| match error {
            PrepareError::Sqlite(failure) => failure,
            PrepareError::Shape(reason) => SqliteFailure {
                code: ffi::SQLITE_MISUSE,
                message: format!("{sql:?} {reason}"),
            },
        })?;
        while statement.step()? {}
        Ok(())
    }

    /// How long a statement waits for a lock another connection holds (0: not at all).
    pub(crate) fn set_busy_timeout(self, timeout: std::time::Duration) {
        let ms = c_int::try_from(timeout.as_millis()).unwrap_or(c_int::MAX);
        // SAFETY: the connection is open and locked for us.
        unsafe { ffi::sqlite3_busy_timeout(self.db.as_ptr(), ms) };
    }

    /// Whether no transaction is open.
    pub(crate) fn autocommit(self) -> bool {
        // SAFETY: the connection is open and locked for us.
        unsafe { ffi::sqlite3_get_autocommit(self.db.as_ptr()) != 0 }
    }

    /// The rowid of the last INSERT on this connection.
    pub(crate) fn last_insert_rowid(self) -> i64 {
        // SAFETY: as above.
        unsafe { ffi::sqlite3_last_insert_rowid(self.db.as_ptr()) }
    }
}

/// SQLite failed a call: its result code and message.
#[derive(Debug)]
pub(crate) struct SqliteFailure {
    pub(crate) code: c_int,
    pub(crate) message: String,
}

impl std::fmt::Display for SqliteFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (SQLite result code {})", self.message, self.code)
    }
}

/// Why a statement's text could not be prepared.
#[derive(Debug)]
pub(crate) enum PrepareError {
    /// The text is not one runnable statement (said in words).
    Shape(String),
    /// SQLite refused to compile it (syntax, unknown table, the authorizer).
    Sqlite(SqliteFailure),
}

impl std::fmt::Display for PrepareError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrepareError::Shape(reason) => f.write_str(reason),
            PrepareError::Sqlite(failure) => failure.fmt(f),
        }
    }
}

/// A prepared statement. Borrows the locked connection (`'db`, through a `RawDb` or the Data
/// API's `Guard`), so it is finalized before the guard comes off and the lock is released.
pub(crate) struct Prepared<'db> {
    db: NonNull<ffi::sqlite3>,
    stmt: NonNull<ffi::sqlite3_stmt>,
    /// Where the statement goes back to when dropped, and under which key; `None`: finalized.
    cached: Option<(&'db StatementCache, String)>,
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
    pub(crate) fn new(db: RawDb<'db>, sql: &str) -> Result<Prepared<'db>, PrepareError> {
        let db = db.db;
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
            cached: None,
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

    /// `new`, but on an `OwnedDb` the statement is taken from, and given back to, the
    /// connection's cache under `kind` and `sql`, so the same text is compiled once per
    /// connection rather than once per use. `kind` keeps apart texts prepared under different
    /// rules: a statement the authorizer allowed in one mode is never handed to another. On a
    /// sqlx connection this is `new`.
    pub(crate) fn cached(
        db: RawDb<'db>,
        kind: &str,
        sql: &str,
    ) -> Result<Prepared<'db>, PrepareError> {
        let Some(cache) = db.cache else {
            return Prepared::new(db, sql);
        };
        let key = format!("{kind}\0{sql}");
        if let Some(stmt) = cache.take(&key) {
            return Ok(Prepared {
                db: db.db,
                stmt,
                cached: Some((cache, key)),
                _guard: std::marker::PhantomData,
            });
        }
        let mut prepared = Prepared::new(db, sql)?;
        prepared.cached = Some((cache, key));
        Ok(prepared)
    }

    /// `cached` for the store's own statements (no authorizer rules in force).
    pub(crate) fn store(db: RawDb<'db>, sql: &str) -> Result<Prepared<'db>, PrepareError> {
        Prepared::cached(db, "store", sql)
    }

    /// Binds `params` in order; their number must match the statement's.
    pub(crate) fn bind(&mut self, params: &[Value]) -> Result<(), PrepareError> {
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

    /// Resets the statement to run again, keeping its bindings (rebind to change them).
    pub(crate) fn reset(&mut self) {
        // SAFETY: `stmt` is live. reset's result repeats the last step's, already reported.
        unsafe { ffi::sqlite3_reset(self.stmt.as_ptr()) };
    }

    /// Runs the statement to its next row: `true` if a row is ready, `false` when done.
    pub(crate) fn step(&mut self) -> Result<bool, SqliteFailure> {
        // SAFETY: `stmt` is a live statement on the locked connection.
        match unsafe { ffi::sqlite3_step(self.stmt.as_ptr()) } {
            ffi::SQLITE_ROW => Ok(true),
            ffi::SQLITE_DONE => Ok(false),
            code => Err(failure(self.db, code)),
        }
    }

    /// Whether the statement leaves the database unchanged (a SELECT).
    pub(crate) fn is_read_only(&self) -> bool {
        // SAFETY: `stmt` is live.
        unsafe { ffi::sqlite3_stmt_readonly(self.stmt.as_ptr()) != 0 }
    }

    /// The rows the last INSERT, UPDATE or DELETE changed, triggers not counted.
    pub(crate) fn changes(&self) -> u64 {
        // SAFETY: `db` is open.
        let changes = unsafe { ffi::sqlite3_changes64(self.db.as_ptr()) };
        u64::try_from(changes).unwrap_or(0)
    }

    /// The names of the result columns.
    pub(crate) fn column_names(&self) -> Vec<String> {
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
    pub(crate) fn row(&self) -> Vec<Value> {
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
        match self.cached.take() {
            Some((cache, key)) => {
                // SAFETY: `stmt` is live; reset ends any run in progress (releasing what it
                // holds) and clear_bindings lets go of the bound values.
                unsafe {
                    ffi::sqlite3_reset(self.stmt.as_ptr());
                    ffi::sqlite3_clear_bindings(self.stmt.as_ptr());
                }
                cache.put(key, self.stmt);
            }
            // SAFETY: `stmt` is live and not used after this.
            None => unsafe {
                ffi::sqlite3_finalize(self.stmt.as_ptr());
            },
        }
    }
}

/// Most statements an `OwnedDb` keeps prepared; past it the cache starts afresh.
const STATEMENT_CACHE_MAX: usize = 256;

/// Prepared statements kept between uses on one `OwnedDb`, each checked out while in use.
#[derive(Default)]
pub(crate) struct StatementCache {
    statements: RefCell<HashMap<String, NonNull<ffi::sqlite3_stmt>>>,
}

impl StatementCache {
    fn take(&self, key: &str) -> Option<NonNull<ffi::sqlite3_stmt>> {
        self.statements.borrow_mut().remove(key)
    }

    fn put(&self, key: String, stmt: NonNull<ffi::sqlite3_stmt>) {
        let mut statements = self.statements.borrow_mut();
        if statements.len() >= STATEMENT_CACHE_MAX {
            finalize_all(&mut statements);
        }
        if let Some(twin) = statements.insert(key, stmt) {
            // The same text was prepared twice at once; one copy is enough.
            // SAFETY: `twin` was in the cache, so no `Prepared` holds it.
            unsafe { ffi::sqlite3_finalize(twin.as_ptr()) };
        }
    }

    fn clear(&self) {
        finalize_all(&mut self.statements.borrow_mut());
    }

    fn len(&self) -> usize {
        self.statements.borrow().len()
    }
}

fn finalize_all(statements: &mut HashMap<String, NonNull<ffi::sqlite3_stmt>>) {
    for (_, stmt) in statements.drain() {
        // SAFETY: a cached statement is held by no `Prepared`.
        unsafe { ffi::sqlite3_finalize(stmt.as_ptr()) };
    }
}

/// A read-write connection to a database file, opened and closed here rather than by sqlx
/// (see the module), with its statement cache. Use it from one thread at a time (it is kept
/// behind a mutex); closing finalizes the cached statements first.
pub(crate) struct OwnedDb {
    /// `None` once closed.
    db: Option<NonNull<ffi::sqlite3>>,
    cache: StatementCache,
    /// Read by the authorizer registered once at open (`install_permanent_authorizer`): the
    /// Data API's guard sets and clears it. Registering an authorizer makes SQLite expire every
    /// prepared statement, so a guard that registered its own on each request would empty the
    /// cache's worth; this one is registered once. Boxed: SQLite holds its address.
    guard_slot: Box<GuardSlot>,
}

// SAFETY: SQLite connections may move between threads (the library is built thread-safe); the
// cache's statements belong to the connection and move with it. `OwnedDb` is not `Sync`.
unsafe impl Send for OwnedDb {}

impl std::fmt::Debug for OwnedDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnedDb")
            .field("open", &self.db.is_some())
            .field("cached_statements", &self.cache.len())
            .finish()
    }
}

impl OwnedDb {
    /// Opens `path` read-write (it must exist) with the store's settings: WAL, `synchronous =
    /// FULL`, foreign keys, recursive triggers, extended result codes and `busy_timeout`.
    pub(crate) fn open(
        path: &Path,
        busy_timeout: std::time::Duration,
    ) -> Result<OwnedDb, SqliteFailure> {
        use std::os::unix::ffi::OsStrExt;
        let misuse = |message: &str| SqliteFailure {
            code: ffi::SQLITE_MISUSE,
            message: message.to_owned(),
        };
        let path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| misuse("the database path contains a NUL byte"))?;
        let mut db = std::ptr::null_mut();
        // SAFETY: `path` is NUL-terminated; SQLite writes `db` (a handle to close even when
        // opening failed, or NULL when out of memory).
        let code = unsafe {
            ffi::sqlite3_open_v2(
                path.as_ptr(),
                &mut db,
                ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_NOMUTEX,
                std::ptr::null(),
            )
        };
        let Some(db) = NonNull::new(db) else {
            return Err(misuse("SQLite could not allocate a connection"));
        };
        let mut owned = OwnedDb {
            db: Some(db),
            cache: StatementCache::default(),
            guard_slot: Box::new(Cell::new(std::ptr::null())),
        };
        if code != ffi::SQLITE_OK {
            return Err(failure(db, code));
        }
        // SAFETY: `db` is open and ours alone.
        unsafe { ffi::sqlite3_extended_result_codes(db.as_ptr(), 1) };
        // SAFETY: the slot is boxed and outlives the connection (closed in `close`, before the
        // fields drop).
        unsafe { crate::data_api::install_permanent_authorizer(db, &owned.guard_slot) };
        let raw = owned.raw().ok_or_else(|| misuse("closed"))?;
        raw.set_busy_timeout(busy_timeout);
        raw.exec(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
             PRAGMA recursive_triggers = ON;",
        )?;
        Ok(owned)
    }

    /// The connection, with its statement cache; `None` once closed.
    pub(crate) fn raw(&mut self) -> Option<RawDb<'_>> {
        Some(RawDb {
            db: self.db?,
            cache: Some(&self.cache),
            guard_slot: Some(&self.guard_slot),
            _lock: PhantomData,
        })
    }

    /// Finalizes the cached statements and closes the connection; SQLite rolls back an open
    /// transaction. Later `raw` calls return `None`.
    pub(crate) fn close(&mut self) {
        self.cache.clear();
        if let Some(db) = self.db.take() {
            // SAFETY: every statement of ours is finalized (a `Prepared` borrows the `OwnedDb`,
            // so none is alive here), so close succeeds; the handle is not used again.
            let code = unsafe { ffi::sqlite3_close(db.as_ptr()) };
            if code != ffi::SQLITE_OK {
                tracing::warn!(code, "closing the store's writer connection failed");
            }
        }
    }
}

impl Drop for OwnedDb {
    fn drop(&mut self) {
        self.close();
    }
}
