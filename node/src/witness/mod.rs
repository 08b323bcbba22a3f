//! The witness (DESIGN.md §12): a third vote, so a partition never leaves two nodes admitting.
//!
//! - `grantor`: the witness's decisions, sans-IO: who holds each pair's term, leases on the
//!   witness's clock, promotion rules, and the restart rule.
//!
//! May touch: nothing in `grantor` (no IO, no clock). Must not: grant a vote while another node
//! of the pair may still count on a lease it gave.

pub mod grantor;

#[cfg(test)]
mod tests;
