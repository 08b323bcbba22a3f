//! Tests of the `data.db` store, on real SQLite files in temp dirs.

mod apply_test;
mod capture_test;
mod client_write_test;
mod fixtures;
mod log_table_test;
mod migrate_test;
mod open_test;
mod property_test;
mod rewind_test;
mod row_hash_test;
mod write_group_test;
