//! Tests of the Data API guard, on real SQLite connections through sqlx.

mod authorizer_test;
mod execute_test;
mod fixtures;
mod query_test;
mod store_test;
