//! `PairClient`: the library remote services (gates, fax servers, the CLI) use to talk to both
//! nodes of a pair through the clients gateway (DESIGN.md §5).
//!
//! The caller sees one service. Behind it the client:
//! - keeps a `WatchRole` stream open to each node, to know which one is active;
//! - sends each request to the active, follows a passive's refusal to the address in its
//!   `tandem-active-client-address` metadata, and after a failure tries the other node with a
//!   bounded, jittered exponential back-off;
//! - after switching nodes (or after a connection broke) resumes the session with its token
//!   (`Login` with `resume_token`, no password round) before re-issuing the request;
//! - re-issues a request with the same request id (a ULID), so a retry never acts twice;
//! - gives up after the operation timeout with `ClientError::Timeout` naming the last failure,
//!   and at once on what retrying cannot fix: a block (`FAILED_PRECONDITION` naming no active),
//!   a bad password or token, an invalid request.
//!
//! It is deliberately not a connection pool or a load balancer: one operation at a time per
//! client, always on the active. Nor does it decide anything about roles: the watchers' view is
//! a hint, the nodes' answers decide.
//!
//! # Layout
//! - `pair_client`: the operations and the attempt loop.
//! - `route` and `backoff` (pure, no IO): where the next attempt goes and when.
//! - `role_watch`: the `WatchRole` tasks and the view of the active they keep.
//! - `channels`: one lazily dialled connection per address; `config`: `PairConfig` and TLS.
//! - `replies`, `events`, `error`: what the caller gets back.
//!
//! # Example
//! ```no_run
//! use tandem_gateway::client::{PairClient, PairConfig};
//!
//! # async fn gate() -> Result<(), tandem_gateway::client::ClientError> {
//! let addresses = ["127.0.0.1:7101".to_string(), "127.0.0.1:7201".to_string()];
//! let mut config = PairConfig::from_ca_file(addresses, "certs/ca.pem")?;
//! config.client_kind = "gate".to_string();
//! let mut client = PairClient::connect(config).await?;
//! client.login("gate-1", "secret").await?;
//! let call = client.start_call("+3210000001", "+3210000002").await?;
//! // ... a failover may happen here: end_call follows it and resumes the session.
//! let ended = client.end_call(&call.call_id, "normal").await?;
//! println!("{} ended with cause {}", ended.call_id, ended.cause);
//! for event in client.drain_events() {
//!     println!("{event}");
//! }
//! client.logout().await?;
//! # Ok(())
//! # }
//! ```

// Every public item of the client is documented: it is the library other teams build on.
#![warn(missing_docs)]

mod backoff;
mod channels;
mod config;
mod error;
mod events;
mod pair_client;
mod replies;
mod role_watch;
mod route;
mod status_text;

#[cfg(test)]
mod tests;

pub use config::{DEFAULT_SERVER_NAME, PairConfig};
pub use error::ClientError;
pub use events::{ClientEvent, ClientStats};
pub use pair_client::PairClient;
pub use replies::{CallEnded, CallInfo, CallStarted, SessionInfo};
pub use route::ACTIVE_ADDRESS_KEY;
