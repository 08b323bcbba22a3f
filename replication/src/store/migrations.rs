//! Migrations: the application's schema, from a directory of `NNN_name.sql` files.
//!
//! Files apply in numeric order, each in its own transaction, each once (recorded in
//! `_tandem_migrations`). Both nodes run the same files themselves, so migrations run with the
//! applying flag set: rows a migration writes are not captured (the peer's own run writes them).
//! Afterwards the capture triggers are re-installed, so new columns are captured. Files not
//! ending in `.sql` are ignored (a README may live there). Not possible inside a migration:
//! `PRAGMA foreign_keys` (it is a no-op inside a transaction) or its own BEGIN/COMMIT.

use std::path::{Path, PathBuf};

use sqlx::Executor;

use super::error::StoreError;
use super::handle::Store;
use super::writer_transaction::WriterTransaction;

/// One migration file, parsed from its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrationFile {
    /// The `NNN` of `NNN_name.sql`: the order of application.
    pub number: u64,
    /// The whole file name, as recorded in `_tandem_migrations`.
    pub file_name: String,
    pub path: PathBuf,
}

impl MigrationFile {
    /// Parses `NNN_name.sql`; the error says what is wrong with the name.
    pub fn parse(path: PathBuf, file_name: &str) -> Result<MigrationFile, StoreError> {
        let bad = |reason: &str| StoreError::MigrationName {
            file: file_name.to_owned(),
            reason: format!(
                "{reason}; expected NNN_name.sql, for example 001_create_extensions.sql"
            ),
        };
        let stem = file_name
            .strip_suffix(".sql")
            .ok_or_else(|| bad("not a .sql file"))?;
        let (digits, name) = stem
            .split_once('_')
            .ok_or_else(|| bad("no '_' after the number"))?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("the name does not start with a number"));
        }
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(bad(
                "the part after the number must be letters, digits, '_' or '-'",
            ));
        }
        let number = digits.parse().map_err(|_| bad("the number is too large"))?;
        Ok(MigrationFile {
            number,
            file_name: file_name.to_owned(),
            path,
        })
    }
}

impl Store {
    /// Applies the migrations of `dir` not applied yet, then re-installs capture. Returns the
    /// file names applied now. A failing file is rolled back and named in the error; the files
    /// before it stay applied.
    pub async fn migrate(&self, dir: &Path) -> Result<Vec<String>, StoreError> {
        let files = list_migrations(dir).await?;
        let applied: Vec<String> = sqlx::query_scalar("SELECT name FROM _tandem_migrations")
            .fetch_all(&self.writer)
            .await?;
        let mut applied_now = Vec::new();
        for file in files
            .into_iter()
            .filter(|file| !applied.contains(&file.file_name))
        {
            self.apply_migration(&file).await?;
            tracing::info!(file = %file.file_name, "migration applied");
            applied_now.push(file.file_name);
        }
        self.install_capture().await?;
        Ok(applied_now)
    }

    /// Applies `sql` once under `name` (a migration that ships inside the binary: the node's own
    /// replicated tables). Capture is not re-installed here; `migrate` does that.
    pub async fn migrate_builtin(&self, name: &str, sql: &str) -> Result<bool, StoreError> {
        let applied: Option<String> =
            sqlx::query_scalar("SELECT name FROM _tandem_migrations WHERE name = ?")
                .bind(name)
                .fetch_optional(&self.writer)
                .await?;
        if applied.is_some() {
            return Ok(false);
        }
        self.apply_migration_sql(name, sql).await?;
        Ok(true)
    }

    async fn apply_migration(&self, file: &MigrationFile) -> Result<(), StoreError> {
        let sql = tokio::fs::read_to_string(&file.path)
            .await
            .map_err(|source| StoreError::Migration {
                file: file.file_name.clone(),
                source: sqlx::Error::Io(source),
            })?;
        self.apply_migration_sql(&file.file_name, &sql).await
    }

    async fn apply_migration_sql(&self, name: &str, sql: &str) -> Result<(), StoreError> {
        let failed = |source| StoreError::Migration {
            file: name.to_owned(),
            source,
        };
        let mut transaction = WriterTransaction::begin(&self.writer, &self.owned).await?;
        sqlx::query("UPDATE _tandem_applying SET flag = 1")
            .execute(&mut *transaction)
            .await?;
        transaction.execute(sql).await.map_err(failed)?;
        sqlx::query(
            "INSERT INTO _tandem_migrations (name, applied_at_ms)
             VALUES (?, CAST(unixepoch('subsec') * 1000 AS INTEGER))",
        )
        .bind(name)
        .execute(&mut *transaction)
        .await?;
        sqlx::query("UPDATE _tandem_applying SET flag = 0")
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await.map_err(|error| match error {
            StoreError::Sql(source) => failed(source),
            other => other,
        })?;
        Ok(())
    }
}

/// The `.sql` files of `dir`, parsed and sorted by number; two files with one number are refused.
async fn list_migrations(dir: &Path) -> Result<Vec<MigrationFile>, StoreError> {
    let dir_error = |source| StoreError::MigrationsDir {
        dir: dir.to_owned(),
        source,
    };
    let mut entries = tokio::fs::read_dir(dir).await.map_err(dir_error)?;
    let mut files = Vec::new();
    while let Some(entry) = entries.next_entry().await.map_err(dir_error)? {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if file_name.ends_with(".sql") {
            files.push(MigrationFile::parse(entry.path(), &file_name)?);
        }
    }
    files.sort_by(|a, b| (a.number, &a.file_name).cmp(&(b.number, &b.file_name)));
    for pair in files.windows(2) {
        if pair[0].number == pair[1].number {
            return Err(StoreError::MigrationDuplicate {
                number: pair[0].number,
                first: pair[0].file_name.clone(),
                second: pair[1].file_name.clone(),
            });
        }
    }
    Ok(files)
}
