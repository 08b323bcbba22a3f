//! The SQLite authorizer and progress handler that guard a client's statements while they are
//! prepared and run.
//!
//! SQLite asks the authorizer about every action a statement will take while it compiles the
//! statement (including the bodies of the triggers it will fire); `decide` answers from the
//! action alone, so it is a pure function with its own tests. The progress handler interrupts a
//! statement that runs past its deadline. `Guard` installs both on the raw connection and removes
//! both when dropped.
//!
//! Not here: preparing and stepping statements (`crate::raw_sqlite`), limits on sizes (`limits`).

use std::cell::{Cell, RefCell};
use std::ffi::{CStr, c_char, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use libsqlite3_sys as ffi;

use std::ptr::NonNull;

use crate::raw_sqlite::{GuardSlot, RawDb};

/// Which request the statements belong to; decides what the authorizer allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Reads and writes of application tables (INSERT, UPDATE, DELETE, SELECT).
    Execute,
    /// Reads only.
    Query,
    /// The node's own writes (merge-back): as `Execute`, and also writes to the node's
    /// replicated tables (`tandem_*`, such as the conflicts table).
    Node,
}

impl Mode {
    fn request_name(self) -> &'static str {
        match self {
            Mode::Execute | Mode::Node => "Execute",
            Mode::Query => "Query",
        }
    }
}

/// Tables whose names start with this are the node's replicated tables (request ids,
/// conflicts): clients may read them, and only the node writes them.
const NODE_TABLE_PREFIX: &str = "tandem_";

/// Whether `name` is one of the node's replicated tables.
fn is_node_table(name: &str) -> bool {
    name.get(..NODE_TABLE_PREFIX.len())
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(NODE_TABLE_PREFIX))
}

/// Tables (and triggers) whose names start with this belong to tandem, not to the application.
const INTERNAL_PREFIX: &str = "_tandem";

/// How many SQLite VM instructions run between two looks at the clock: a look costs tens of
/// nanoseconds, so this keeps the overhead small and the interruption within microseconds.
const PROGRESS_INSTRUCTIONS: c_int = 1000;

/// Whether SQLite treats `name` as one of tandem's (SQLite names are ASCII-case-insensitive).
fn is_internal(name: &str) -> bool {
    name.get(..INTERNAL_PREFIX.len())
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(INTERNAL_PREFIX))
}

/// Whether `table` is SQLite's schema table (of `main` or `temp`, by any of its names).
fn is_schema_table(table: &str) -> bool {
    [
        "sqlite_master",
        "sqlite_schema",
        "sqlite_temp_master",
        "sqlite_temp_schema",
    ]
    .iter()
    .any(|name| name.eq_ignore_ascii_case(table))
}

/// Allows the action, or says in words why not. `first` and `second` are the action's
/// arguments (see SQLite's `sqlite3_set_authorizer`), `trigger` the innermost trigger the
/// action is in, if any.
pub(super) fn decide(
    mode: Mode,
    action: c_int,
    first: Option<&str>,
    second: Option<&str>,
    trigger: Option<&str>,
) -> Result<(), String> {
    let request = mode.request_name();
    let name = |arg: Option<&str>| match arg {
        Some(text) => format!(" \"{text}\""),
        None => String::new(),
    };
    if let Some(ddl) = ddl_name(action) {
        // ALTER TABLE passes the database first and the table second.
        let object = if action == ffi::SQLITE_ALTER_TABLE {
            second
        } else {
            first
        };
        return Err(format!(
            "DDL is not allowed through {request}: {ddl}{}",
            name(object)
        ));
    }
    match action {
        ffi::SQLITE_READ | ffi::SQLITE_SELECT | ffi::SQLITE_FUNCTION | ffi::SQLITE_RECURSIVE => {
            Ok(())
        }
        ffi::SQLITE_INSERT | ffi::SQLITE_UPDATE | ffi::SQLITE_DELETE => {
            let verb = match action {
                ffi::SQLITE_INSERT => "INSERT into",
                ffi::SQLITE_UPDATE => "UPDATE of",
                _ => "DELETE from",
            };
            let table = first.unwrap_or("");
            // DDL asks to write the schema table before naming itself; let that step through
            // so the DDL action that follows is refused by name. SQLite refuses a client's own
            // write to the schema table (PRAGMA writable_schema is refused here).
            if is_schema_table(table) {
                return Ok(());
            }
            if mode == Mode::Query {
                return Err(format!(
                    "Query is read-only: {verb} \"{table}\" is not allowed; use Execute"
                ));
            }
            // tandem's capture triggers write its log from inside the client's statement.
            let in_tandem_trigger = trigger.is_some_and(is_internal);
            if is_internal(table) && !in_tandem_trigger {
                return Err(format!(
                    "writes to tandem's internal tables are not allowed through {request}: \
                     {verb} \"{table}\""
                ));
            }
            if is_node_table(table) && mode != Mode::Node && !in_tandem_trigger {
                return Err(format!(
                    "tables named tandem_* are the node's (request ids, conflicts); they can be \
                     read but not written through {request}: {verb} \"{table}\""
                ));
            }
            Ok(())
        }
        ffi::SQLITE_PRAGMA => Err(format!(
            "PRAGMA is not allowed through {request}: PRAGMA {}",
            first.unwrap_or("")
        )),
        ffi::SQLITE_ATTACH => Err(format!("ATTACH is not allowed through {request}")),
        ffi::SQLITE_DETACH => Err(format!("DETACH is not allowed through {request}")),
        ffi::SQLITE_TRANSACTION | ffi::SQLITE_SAVEPOINT => Err(format!(
            "transaction control is not allowed through {request}: {}{} (the request already \
             runs in one transaction)",
            first.unwrap_or(""),
            if action == ffi::SQLITE_SAVEPOINT {
                " SAVEPOINT"
            } else {
                ""
            }
        )),
        ffi::SQLITE_ANALYZE | ffi::SQLITE_REINDEX => Err(format!(
            "maintenance statements are not allowed through {request}: {}",
            if action == ffi::SQLITE_ANALYZE {
                "ANALYZE"
            } else {
                "REINDEX"
            }
        )),
        other => Err(format!(
            "SQLite action {other} is not allowed through {request}"
        )),
    }
}

/// The tables the node keeps from clients (`Limits::private_tables`, `node_only_tables`): for a
/// client's request, refuses any access to a private table and writes to a node-only one.
pub(super) fn decide_tables(
    mode: Mode,
    action: c_int,
    first: Option<&str>,
    tables: &ProtectedTables,
) -> Result<(), String> {
    if mode == Mode::Node {
        return Ok(());
    }
    let Some(table) = first else { return Ok(()) };
    let listed = |list: &[String]| list.iter().any(|name| name.eq_ignore_ascii_case(table));
    let request = mode.request_name();
    match action {
        ffi::SQLITE_READ | ffi::SQLITE_INSERT | ffi::SQLITE_UPDATE | ffi::SQLITE_DELETE
            if listed(&tables.private) =>
        {
            Err(format!(
                "table \"{table}\" is private to the node (it holds password or token hashes); \
                 it cannot be read or written through {request}"
            ))
        }
        ffi::SQLITE_INSERT | ffi::SQLITE_UPDATE | ffi::SQLITE_DELETE
            if listed(&tables.node_only) =>
        {
            Err(format!(
                "table \"{table}\" is written only by the node (the clients gateway); it can be \
                 read but not written through {request}"
            ))
        }
        _ => Ok(()),
    }
}

/// The protected table lists of one request (from `Limits`).
#[derive(Clone, Debug)]
pub(super) struct ProtectedTables {
    pub private: std::sync::Arc<[String]>,
    pub node_only: std::sync::Arc<[String]>,
}

/// The statement kind of a DDL action code, or `None` if `action` is not DDL.
fn ddl_name(action: c_int) -> Option<&'static str> {
    Some(match action {
        ffi::SQLITE_CREATE_INDEX => "CREATE INDEX",
        ffi::SQLITE_CREATE_TABLE => "CREATE TABLE",
        ffi::SQLITE_CREATE_TEMP_INDEX => "CREATE TEMP INDEX",
        ffi::SQLITE_CREATE_TEMP_TABLE => "CREATE TEMP TABLE",
        ffi::SQLITE_CREATE_TEMP_TRIGGER => "CREATE TEMP TRIGGER",
        ffi::SQLITE_CREATE_TEMP_VIEW => "CREATE TEMP VIEW",
        ffi::SQLITE_CREATE_TRIGGER => "CREATE TRIGGER",
        ffi::SQLITE_CREATE_VIEW => "CREATE VIEW",
        ffi::SQLITE_CREATE_VTABLE => "CREATE VIRTUAL TABLE",
        ffi::SQLITE_DROP_INDEX => "DROP INDEX",
        ffi::SQLITE_DROP_TABLE => "DROP TABLE",
        ffi::SQLITE_DROP_TEMP_INDEX => "DROP TEMP INDEX",
        ffi::SQLITE_DROP_TEMP_TABLE => "DROP TEMP TABLE",
        ffi::SQLITE_DROP_TEMP_TRIGGER => "DROP TEMP TRIGGER",
        ffi::SQLITE_DROP_TEMP_VIEW => "DROP TEMP VIEW",
        ffi::SQLITE_DROP_TRIGGER => "DROP TRIGGER",
        ffi::SQLITE_DROP_VIEW => "DROP VIEW",
        ffi::SQLITE_DROP_VTABLE => "DROP VIRTUAL TABLE",
        ffi::SQLITE_ALTER_TABLE => "ALTER TABLE",
        _ => return None,
    })
}

/// How well a refusal of `action` names what the client asked for: SQLite also asks about the
/// steps a statement takes (CREATE TABLE first inserts into `sqlite_schema`, ANALYZE creates
/// `sqlite_stat1`), and the message should name the statement, not a step of it.
fn refusal_rank(action: c_int) -> u8 {
    match action {
        ffi::SQLITE_PRAGMA
        | ffi::SQLITE_ATTACH
        | ffi::SQLITE_DETACH
        | ffi::SQLITE_TRANSACTION
        | ffi::SQLITE_SAVEPOINT
        | ffi::SQLITE_ANALYZE
        | ffi::SQLITE_REINDEX => 2,
        action if ddl_name(action).is_some() => 1,
        _ => 0,
    }
}

/// What the callbacks share with the code running the request. Only touched on the thread
/// that calls into SQLite, and only while it is inside SQLite on our behalf, hence the cells.
pub(super) struct GuardState {
    mode: Mode,
    /// Tables this request may not touch, or not write.
    protected: ProtectedTables,
    /// The best-ranked (`refusal_rank`), then first, refusal since the statement started, with
    /// its rank: SQLite's own error only says "not authorized", this says what.
    refusal: RefCell<Option<(u8, String)>>,
    /// When the running statement must stop; `None` before the first statement.
    deadline: Cell<Option<Instant>>,
    /// Set when the progress handler interrupted the statement.
    timed_out: Cell<bool>,
}

/// # Safety
/// Called by SQLite only, with `state` the `GuardState` `Guard::install` registered, which lives
/// until `Guard`'s drop unregisters it; the text arguments are NULL or NUL-terminated strings.
unsafe extern "C" fn authorize(
    state: *mut c_void,
    action: c_int,
    first: *const c_char,
    second: *const c_char,
    _database: *const c_char,
    trigger: *const c_char,
) -> c_int {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: see the function's contract.
        let state = unsafe { &*(state as *const GuardState) };
        let text = |ptr: *const c_char| {
            // SAFETY: NULL or a NUL-terminated string valid for this call.
            (!ptr.is_null()).then(|| unsafe { CStr::from_ptr(ptr) }.to_string_lossy())
        };
        let (first, second, trigger) = (text(first), text(second), text(trigger));
        let decision = decide_tables(state.mode, action, first.as_deref(), &state.protected)
            .and_then(|()| {
                decide(
                    state.mode,
                    action,
                    first.as_deref(),
                    second.as_deref(),
                    trigger.as_deref(),
                )
            });
        match decision {
            Ok(()) => ffi::SQLITE_OK,
            Err(reason) => {
                if let Ok(mut refusal) = state.refusal.try_borrow_mut() {
                    let rank = refusal_rank(action);
                    if refusal.as_ref().is_none_or(|(kept, _)| *kept < rank) {
                        *refusal = Some((rank, reason));
                    }
                }
                ffi::SQLITE_DENY
            }
        }
    }));
    // A panic cannot cross into C; refusing is the safe answer.
    outcome.unwrap_or(ffi::SQLITE_DENY)
}

/// The authorizer registered once on an `OwnedDb`: the rules of the guard in its slot, and none
/// while the slot is empty (the store's own statements, as on a connection with no authorizer).
///
/// # Safety
/// Called by SQLite only, with `slot` the `GuardSlot` `install_permanent_authorizer` registered,
/// holding NULL or a `GuardState` that lives while it is there (see `Guard`).
unsafe extern "C" fn authorize_through_slot(
    slot: *mut c_void,
    action: c_int,
    first: *const c_char,
    second: *const c_char,
    database: *const c_char,
    trigger: *const c_char,
) -> c_int {
    // SAFETY: see the function's contract.
    let state = unsafe { &*(slot as *const GuardSlot) }.get();
    if state.is_null() {
        return ffi::SQLITE_OK;
    }
    // SAFETY: a non-NULL slot holds a live `GuardState`, as `authorize` needs.
    unsafe {
        authorize(
            state as *mut c_void,
            action,
            first,
            second,
            database,
            trigger,
        )
    }
}

/// Registers the authorizer that reads `slot`, once, on a connection the crate owns.
///
/// # Safety
/// `db` is open and used by no other thread; `slot` outlives the connection.
pub(crate) unsafe fn install_permanent_authorizer(db: NonNull<ffi::sqlite3>, slot: &GuardSlot) {
    let slot = slot as *const GuardSlot as *mut c_void;
    // SAFETY: see the function's contract.
    unsafe { ffi::sqlite3_set_authorizer(db.as_ptr(), Some(authorize_through_slot), slot) };
}

/// # Safety
/// As for `authorize`.
unsafe extern "C" fn check_deadline(state: *mut c_void) -> c_int {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: see the function's contract.
        let state = unsafe { &*(state as *const GuardState) };
        match state.deadline.get() {
            Some(deadline) if Instant::now() >= deadline => {
                state.timed_out.set(true);
                1
            }
            _ => 0,
        }
    }));
    // Interrupting is the safe answer to a panic.
    outcome.unwrap_or(1)
}

/// The authorizer and progress handler installed on one connection. Holding the sqlx handle
/// lock for its whole life means sqlx cannot run anything else on the connection meanwhile, and
/// dropping it (which cannot be skipped by cancelling a future: no `.await` happens while it
/// lives) removes both callbacks before the lock is released.
pub(super) struct Guard<'h> {
    /// The locked connection.
    db: RawDb<'h>,
    /// Boxed so its address, registered with SQLite, stays put.
    state: Box<GuardState>,
}

impl<'h> Guard<'h> {
    pub(super) fn install(db: RawDb<'h>, mode: Mode, protected: ProtectedTables) -> Guard<'h> {
        let state = Box::new(GuardState {
            mode,
            protected,
            refusal: RefCell::new(None),
            deadline: Cell::new(None),
            timed_out: Cell::new(false),
        });
        let state_ptr = &*state as *const GuardState as *mut c_void;
        // SAFETY: `db` is open and locked for us; `state` outlives the registration (see Drop).
        unsafe {
            match db.guard_slot() {
                // The connection's permanent authorizer reads the slot; registering one here
                // would expire its cached statements.
                Some(slot) => slot.set(state_ptr),
                None => {
                    ffi::sqlite3_set_authorizer(db.as_ptr(), Some(authorize), state_ptr);
                }
            }
            ffi::sqlite3_progress_handler(
                db.as_ptr(),
                PROGRESS_INSTRUCTIONS,
                Some(check_deadline),
                state_ptr,
            );
        }
        Guard { db, state }
    }

    pub(super) fn db(&self) -> RawDb<'h> {
        self.db
    }

    /// The mode's name, to key statements prepared under it (`Prepared::cached`).
    pub(super) fn mode_name(&self) -> &'static str {
        match self.state.mode {
            Mode::Execute => "execute",
            Mode::Query => "query",
            Mode::Node => "node",
        }
    }

    /// Starts the clock and clears the last statement's refusal and timeout.
    pub(super) fn start_statement(&self, timeout: Duration) {
        self.state.refusal.replace(None);
        self.state.timed_out.set(false);
        // An unrepresentable deadline (a timeout of centuries) means no deadline.
        self.state.deadline.set(Instant::now().checked_add(timeout));
    }

    /// Why the authorizer refused the current statement, if it did.
    pub(super) fn take_refusal(&self) -> Option<String> {
        self.state.refusal.take().map(|(_, reason)| reason)
    }

    /// Whether the progress handler interrupted the current statement.
    pub(super) fn timed_out(&self) -> bool {
        self.state.timed_out.get()
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        let db = self.db.as_ptr();
        // SAFETY: `db` is still open and locked. After these calls SQLite holds no pointer to
        // `state`, which is freed after this body.
        unsafe {
            match self.db.guard_slot() {
                Some(slot) => slot.set(std::ptr::null()),
                None => {
                    ffi::sqlite3_set_authorizer(db, None, std::ptr::null_mut());
                }
            }
            ffi::sqlite3_progress_handler(db, 0, None, std::ptr::null_mut());
        }
    }
}

#[cfg(test)]
pub(super) mod test_access {
    //! Lets the tests call the raw callback with odd arguments.
    use super::*;

    /// Calls `authorize` as SQLite would, with a fresh state, and returns its answer and refusal.
    pub fn call_authorize(
        mode: Mode,
        action: c_int,
        args: [Option<&CStr>; 4],
    ) -> (c_int, Option<String>) {
        let state = GuardState {
            mode,
            protected: ProtectedTables {
                private: std::sync::Arc::from([]),
                node_only: std::sync::Arc::from([]),
            },
            refusal: RefCell::new(None),
            deadline: Cell::new(None),
            timed_out: Cell::new(false),
        };
        let ptr = |arg: Option<&CStr>| arg.map_or(std::ptr::null(), CStr::as_ptr);
        // SAFETY: `state` lives across the call; the arguments are NULL or NUL-terminated.
        let answer = unsafe {
            authorize(
                &state as *const GuardState as *mut c_void,
                action,
                ptr(args[0]),
                ptr(args[1]),
                ptr(args[2]),
                ptr(args[3]),
            )
        };
        (answer, state.refusal.take().map(|(_, reason)| reason))
    }
}
