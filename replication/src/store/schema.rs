//! The store's own tables in `data.db`, created at open.
//!
//! Their names start with `_tandem_`, which `capture` refuses to replicate. Not the
//! application's tables: those come from migrations.

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS _tandem_log (
    idx INTEGER PRIMARY KEY,
    term_epoch INTEGER NOT NULL,
    term_node TEXT NOT NULL,
    txid INTEGER NOT NULL,
    tbl TEXT NOT NULL,
    pk TEXT NOT NULL,
    op TEXT NOT NULL CHECK (op IN ('insert', 'update', 'delete')),
    new_image TEXT,
    old_image TEXT,
    hlc_ms INTEGER NOT NULL,
    hlc_logical INTEGER NOT NULL,
    hlc_node TEXT NOT NULL,
    origin TEXT NOT NULL,
    -- NULL only inside the capturing write: the store fills it before the write is released.
    hash INTEGER
);
CREATE TABLE IF NOT EXISTS _tandem_migrations (
    name TEXT PRIMARY KEY,
    applied_at_ms INTEGER NOT NULL
);
-- flag = 1 while applying the peer's changes or running migrations: the triggers stay quiet.
CREATE TABLE IF NOT EXISTS _tandem_applying (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    flag INTEGER NOT NULL CHECK (flag IN (0, 1))
);
INSERT OR IGNORE INTO _tandem_applying (id, flag) VALUES (1, 0);
-- The stamp of the write in progress; txid IS NULL outside a store write.
CREATE TABLE IF NOT EXISTS _tandem_capture_ctx (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    term_epoch INTEGER, term_node TEXT, txid INTEGER,
    hlc_ms INTEGER, hlc_logical INTEGER, hlc_node TEXT, origin TEXT
);
INSERT OR IGNORE INTO _tandem_capture_ctx (id) VALUES (1);
-- Entries a node moved out of its log when it rewound past a divergence point (merge-back):
-- kept until they are back through replication or recorded as conflicts. Never replicated.
CREATE TABLE IF NOT EXISTS _tandem_orphans (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    idx INTEGER NOT NULL,
    term_epoch INTEGER NOT NULL,
    term_node TEXT NOT NULL,
    txid INTEGER NOT NULL,
    tbl TEXT NOT NULL,
    pk TEXT NOT NULL,
    op TEXT NOT NULL,
    new_image TEXT,
    old_image TEXT,
    hlc_ms INTEGER NOT NULL,
    hlc_logical INTEGER NOT NULL,
    hlc_node TEXT NOT NULL,
    origin TEXT NOT NULL,
    hash INTEGER,
    rewound_at_ms INTEGER NOT NULL,
    -- The last index the rewound log had in common with the active's: the orphan is decided
    -- against the active's changes after it. NULL in a file from before this column.
    diverged_after INTEGER
);
-- Both are only ever set inside a transaction that resets them; this repairs a file that a
-- foreign tool left flagged.
UPDATE _tandem_applying SET flag = 0 WHERE flag <> 0;
UPDATE _tandem_capture_ctx SET txid = NULL WHERE txid IS NOT NULL;
";

/// Brings the store's own tables of a file made by an older version up to `SCHEMA` (which
/// `CREATE TABLE IF NOT EXISTS` leaves as they were).
pub(super) async fn upgrade(writer: &sqlx::SqlitePool) -> Result<(), sqlx::Error> {
    let has_divergence: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pragma_table_info('_tandem_orphans') WHERE name = 'diverged_after'",
    )
    .fetch_one(writer)
    .await?;
    if has_divergence == 0 {
        sqlx::query("ALTER TABLE _tandem_orphans ADD COLUMN diverged_after INTEGER")
            .execute(writer)
            .await?;
    }
    Ok(())
}
