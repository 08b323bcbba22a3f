//! Tests of snapshots, on real SQLite files in temp dirs: no mocks, no sleeps.

mod create_test;
mod fixtures;
mod generation_test;
mod install_test;
mod stream_test;
