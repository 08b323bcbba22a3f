//! `PeerExtras`: what the driver knows of the peer beyond the role machine, the edge-only fields
//! (incarnation, sequence numbers, clock skew, round trip, mismatches).

use std::collections::VecDeque;
use std::time::Instant;

/// What the driver knows of the peer beyond the role machine: the edge-only fields.
#[derive(Default)]
pub(super) struct PeerExtras {
    /// The peer process's incarnation; sequence numbers restart with each one.
    pub(super) incarnation: Option<u64>,
    /// Highest heartbeat sequence received in this incarnation (deduplicates extra paths).
    pub(super) last_seq: u64,
    pub(super) clock_skew_ms: Option<i64>,
    /// Consecutive heartbeats whose skew exceeded `max_clock_offset`.
    pub(super) skewed_samples: u32,
    pub(super) skew_alerted: bool,
    pub(super) version_mismatch: bool,
    pub(super) config_mismatch: bool,
    pub(super) cluster_mismatch_reported: bool,
    /// The peer's services as its last heartbeat reported them.
    pub(super) services: Vec<crate::admin::status::PeerServiceStatus>,
    /// When the peer's heartbeat `last_seq` arrived (its hold time goes back in our ack).
    pub(super) received_at: Option<Instant>,
    /// Our heartbeats not yet acknowledged: sequence and send time (bounded).
    pub(super) sent: VecDeque<(u64, Instant)>,
    /// The last keep-alive round trip.
    pub(super) rtt_ms: Option<f64>,
}
