//! Plain HTTP on `[listen] http`: `server` (`/health`, `/active`, `/metrics`, `/`), the status
//! page (`status_page`, with its parts `status_page_cards`, `status_page_format` and
//! `status_page_assets`) and the metrics (`metrics`).
//!
//! May touch: the network; reads the same status as `tandemctl status`. Must not: take a
//! command, or show a secret.

pub mod metrics;
pub mod server;
pub mod status_page;
mod status_page_assets;
mod status_page_cards;
mod status_page_format;
