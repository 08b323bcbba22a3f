//! Linearizability of client histories (issue 26): registers read, written and compared-and-set
//! through the Data API, recorded with invoke and completion times from one clock, and checked
//! by a Wing–Gong–Lowe search with memoization, as Porcupine and Knossos do.
//!
//! - [`history`]: [`Op`] and [`OpKind`], what a client did and saw.
//! - [`check`]: [`check_history`], the search, per register, over a powerset register model.
//! - [`relax`]: the pair-mode rule for a peer-link cut (DESIGN.md §1 promise 3): while two nodes
//!   were active, and until the merge that ends it, reads may see either side and a write may
//!   lose the merge, but only into `tandem_conflicts`; every other operation must linearize.
//! - [`workload`]: the register clients, speaking gRPC to both nodes as an application does.
//!
//! An operation whose outcome is unknown is never dropped: a write or compare-and-set may then
//! take effect at any time after its invocation, or never. A read with no answer constrains
//! nothing, so it is recorded but has no effect.

pub mod check;
pub mod history;
pub mod relax;
pub mod workload;

pub use check::{CheckReport, check_history};
pub use history::{Op, OpKind, Value};
