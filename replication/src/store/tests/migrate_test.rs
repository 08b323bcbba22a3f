//! Migrations: numeric order, once each, clear errors naming the file, no capture of their rows.

use tempfile::TempDir;

use super::fixtures::write_migrations;
use crate::store::{Store, StoreError, StoreOptions};

async fn bare_store(dir: &TempDir, tables: &[&str]) -> Store {
    let tables = tables.iter().map(|t| t.to_string()).collect();
    Store::open(dir.path(), StoreOptions::new(tables))
        .await
        .unwrap()
}

#[tokio::test]
async fn migrations_apply_in_numeric_order_and_only_once() {
    let dir = TempDir::new().unwrap();
    let migrations = dir.path().join("migrations");
    // Text order would run 10_ before 2_, and 10_ needs 2_'s table.
    write_migrations(
        &migrations,
        &[
            (
                "10_add_color.sql",
                "ALTER TABLE things ADD COLUMN color TEXT;",
            ),
            (
                "2_things.sql",
                "CREATE TABLE things (id INTEGER PRIMARY KEY);",
            ),
            ("README.md", "not a migration"),
        ],
    );
    let store = bare_store(&dir, &["things"]).await;
    assert_eq!(
        store.migrate(&migrations).await.unwrap(),
        ["2_things.sql", "10_add_color.sql"]
    );
    assert_eq!(
        store.migrate(&migrations).await.unwrap(),
        Vec::<String>::new()
    );

    write_migrations(
        &migrations,
        &[(
            "011_index.sql",
            "CREATE INDEX things_color ON things (color);",
        )],
    );
    assert_eq!(store.migrate(&migrations).await.unwrap(), ["011_index.sql"]);
    let recorded: Vec<String> =
        sqlx::query_scalar("SELECT name FROM _tandem_migrations ORDER BY applied_at_ms, name")
            .fetch_all(store.reader())
            .await
            .unwrap();
    assert_eq!(recorded.len(), 3);
}

#[tokio::test]
async fn a_bad_file_name_is_refused_naming_the_file() {
    for bad in [
        "create.sql",
        "x1_create.sql",
        "001_.sql",
        "001_bad name.sql",
    ] {
        let dir = TempDir::new().unwrap();
        let migrations = dir.path().join("migrations");
        write_migrations(&migrations, &[(bad, "SELECT 1;")]);
        let error = bare_store(&dir, &[])
            .await
            .migrate(&migrations)
            .await
            .unwrap_err();
        assert!(
            matches!(&error, StoreError::MigrationName { file, .. } if file == bad),
            "{error}"
        );
        assert!(
            error.to_string().contains("expected NNN_name.sql"),
            "{error}"
        );
    }
}

#[tokio::test]
async fn two_files_with_one_number_are_refused() {
    let dir = TempDir::new().unwrap();
    let migrations = dir.path().join("migrations");
    write_migrations(
        &migrations,
        &[("001_a.sql", "SELECT 1;"), ("1_b.sql", "SELECT 1;")],
    );
    let error = bare_store(&dir, &[])
        .await
        .migrate(&migrations)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "migration files 001_a.sql and 1_b.sql share the number 1"
    );
}

#[tokio::test]
async fn a_failing_migration_is_named_rolled_back_and_not_recorded() {
    let dir = TempDir::new().unwrap();
    let migrations = dir.path().join("migrations");
    write_migrations(
        &migrations,
        &[
            ("001_ok.sql", "CREATE TABLE ok (id INTEGER PRIMARY KEY);"),
            (
                "002_broken.sql",
                "CREATE TABLE half (id INTEGER PRIMARY KEY); CREATE TABLEX oops;",
            ),
        ],
    );
    let store = bare_store(&dir, &[]).await;
    let error = store.migrate(&migrations).await.unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("migration 002_broken.sql failed: "),
        "{error}"
    );
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_schema WHERE name IN ('ok', 'half')")
            .fetch_all(store.reader())
            .await
            .unwrap();
    assert_eq!(
        tables,
        ["ok"],
        "002's first statement must be rolled back with it"
    );
    let recorded: Vec<String> = sqlx::query_scalar("SELECT name FROM _tandem_migrations")
        .fetch_all(store.reader())
        .await
        .unwrap();
    assert_eq!(recorded, ["001_ok.sql"]);
}

#[tokio::test]
async fn a_missing_migrations_directory_is_named() {
    let dir = TempDir::new().unwrap();
    let missing = dir.path().join("nowhere");
    let error = bare_store(&dir, &[])
        .await
        .migrate(&missing)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("nowhere"), "{error}");
}

#[tokio::test]
async fn rows_written_by_migrations_are_not_captured() {
    // Each node runs the same migrations itself; capturing their rows would apply them twice.
    let dir = TempDir::new().unwrap();
    let migrations = dir.path().join("migrations");
    write_migrations(
        &migrations,
        &[("001_t.sql", "CREATE TABLE t (id INTEGER PRIMARY KEY);")],
    );
    let store = bare_store(&dir, &["t"]).await;
    store.migrate(&migrations).await.unwrap();
    write_migrations(
        &migrations,
        &[("002_seed.sql", "INSERT INTO t VALUES (1), (2);")],
    );
    store.migrate(&migrations).await.unwrap();
    assert_eq!(store.last_log_position().await.unwrap().idx, 0);
}
