//! Operations around the pair: the `supervisor` of `[[service]]` processes, the role `hooks`, the
//! e-mail `alerts` outbox, auto-`failback`, and certificate reload on SIGHUP (`cert_reload`).
//!
//! May touch: processes, SMTP, the state store's outbox, files on disk. Must not: change a role
//! itself; each asks the driver (a failback is a failover-now request, a failed critical
//! service an input).

pub mod alerts;
pub mod cert_reload;
pub mod failback;
pub mod hooks;
pub mod supervisor;
