//! The shipper's configuration, its defaults (DESIGN.md §9) and the bounds it must stay within.
//! It does not parse the node config (durations, sizes): the driver builds it from the parsed one.

/// `[replication] mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// A write completes only once the peer has acknowledged it (the default).
    Sync,
    /// A write completes on the local commit.
    Async,
}

/// At least two batches in flight (DESIGN.md §4) and at most this many.
pub const BATCHES_IN_FLIGHT_LIMIT: usize = 64;
/// Upper bound of `batch_entries_max`.
pub const BATCH_ENTRIES_LIMIT: u64 = 100_000;
/// Upper bound of `batch_bytes_max`: well under what one peer-link message may carry.
pub const BATCH_BYTES_LIMIT: u64 = 64 * 1024 * 1024;
/// Upper bound of `waiting_writes_max`.
pub const WAITING_WRITES_LIMIT: usize = 1_000_000;
/// Upper bound of `retention_entries`: the shipper keeps 16 bytes per retained transaction, and
/// up to twice the retention while a connected peer lags.
pub const RETENTION_ENTRIES_LIMIT: u64 = 10_000_000;
/// Upper bound of `refusals_max`.
pub const REFUSALS_LIMIT: u32 = 100;

/// What the shipper needs from the node config; the driver builds it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ShipperConfig {
    /// `[replication] mode`; `ModeChanged` replaces it at run time.
    pub mode: Mode,
    /// `[replication] sync_strict`: refuse writes instead of degrading.
    pub sync_strict: bool,
    /// `[replication] sync_timeout`: how long the oldest write may wait for the peer.
    pub sync_timeout_ms: u64,
    /// The driver's `Tick` period; a gap over twice this is a stall of the process.
    pub tick_interval_ms: u64,
    /// Batches sent and not yet acknowledged, 2 ..= `BATCHES_IN_FLIGHT_LIMIT`.
    pub batches_in_flight_max: usize,
    /// Entries per batch (a single larger transaction still goes whole, alone).
    pub batch_entries_max: u64,
    /// Bytes per batch, counted as the `bytes` of `Appended` (same exception).
    pub batch_bytes_max: u64,
    /// `[replication] log_retention.entries`.
    pub retention_entries: u64,
    /// `[replication] log_retention.bytes`.
    pub retention_bytes: u64,
    /// Writes waiting for the peer's acknowledgement at most; at the bound writes are refused.
    pub waiting_writes_max: usize,
    /// Consecutive refusals that resending should fix (gap, checksum) before shipping halts.
    pub refusals_max: u32,
}

impl Default for ShipperConfig {
    /// The defaults of DESIGN.md §9 (`sync`, 2 s, 1,000,000 entries, 1 GiB, 100 ms ticks).
    fn default() -> Self {
        ShipperConfig {
            mode: Mode::Sync,
            sync_strict: false,
            sync_timeout_ms: 2000,
            tick_interval_ms: 100,
            batches_in_flight_max: 2,
            batch_entries_max: 1000,
            batch_bytes_max: 1024 * 1024,
            retention_entries: 1_000_000,
            retention_bytes: 1024 * 1024 * 1024,
            waiting_writes_max: 10_000,
            refusals_max: 3,
        }
    }
}

/// A setting outside the bounds the shipper is built for.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("replication setting {setting} is {value}; it must be between {min} and {max}")]
pub struct ConfigError {
    /// The setting's name as the config file spells it, so the operator can find it.
    pub setting: &'static str,
    /// The value it had.
    pub value: u64,
    /// The smallest value allowed.
    pub min: u64,
    /// The largest value allowed.
    pub max: u64,
}

impl ShipperConfig {
    /// Every bound checked, so the shipper never has to.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let usize_limit = |limit: usize| limit as u64;
        let checks = [
            ("sync_timeout", self.sync_timeout_ms, 1, u64::MAX / 4),
            ("tick_interval", self.tick_interval_ms, 1, u64::MAX / 4),
            (
                "batches_in_flight_max",
                usize_limit(self.batches_in_flight_max),
                2,
                usize_limit(BATCHES_IN_FLIGHT_LIMIT),
            ),
            (
                "batch_entries_max",
                self.batch_entries_max,
                1,
                BATCH_ENTRIES_LIMIT,
            ),
            (
                "batch_bytes_max",
                self.batch_bytes_max,
                1,
                BATCH_BYTES_LIMIT,
            ),
            (
                "log_retention.entries",
                self.retention_entries,
                1,
                RETENTION_ENTRIES_LIMIT,
            ),
            ("log_retention.bytes", self.retention_bytes, 1, u64::MAX / 4),
            (
                "waiting_writes_max",
                usize_limit(self.waiting_writes_max),
                1,
                usize_limit(WAITING_WRITES_LIMIT),
            ),
            (
                "refusals_max",
                u64::from(self.refusals_max),
                1,
                u64::from(REFUSALS_LIMIT),
            ),
        ];
        for (setting, value, min, max) in checks {
            if !(min..=max).contains(&value) {
                return Err(ConfigError {
                    setting,
                    value,
                    min,
                    max,
                });
            }
        }
        Ok(())
    }
}
