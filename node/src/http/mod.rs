//! Plain HTTP on `[listen] http`: `server` (`/health`, `/active`, `/metrics`, `/`), the status
//! page (`status_page`) and the metrics (`metrics`).
//!
//! May touch: the network; reads the same status as `tandemctl status`. Must not: take a
//! command, or show a secret.

pub mod metrics;
pub mod server;
pub mod status_page;
