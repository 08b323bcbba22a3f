//! Tests of the witness's sans-IO decisions: each asserts the exact answer to a request.

mod grantor;
