//! Test support for tandem: a two-node cluster of real `tandemd` processes on 127.0.0.1, and a
//! fault proxy to put between them. Used by the end-to-end tests of the root package and by
//! `tandem-bench`.
//!
//! # Layout
//! - [`ports`]: free ports on 127.0.0.1, never handed out twice in one process.
//! - [`wait`]: `wait_until`, a poll with a deadline; the only way anything here waits.
//! - [`fault_proxy`]: [`FaultProxy`], a TCP proxy on its own thread whose [`Mode`] refuses,
//!   blackholes, delays or cuts one direction (DESIGN §11).
pub mod fault_proxy;
pub mod ports;
pub mod wait;

pub use fault_proxy::{Direction, FaultProxy, Mode, ProxyStats};
