//! Durations as operators write them: "100ms", "2s", "5m", "12h", "1d", "0s".
//!
//! Only whole numbers with one unit; the standard library has no parser for these and the format
//! is small enough not to need a crate.

use std::time::Duration;

/// Parses "<number><unit>" with unit ms, s, m, h or d.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let bad =
        || format!("\"{text}\" is not a duration (use e.g. \"100ms\", \"2s\", \"5m\", \"12h\")");
    let value: u64 = number.parse().map_err(|_| bad())?;
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    value
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(bad)
}

/// Renders a duration in the largest whole unit: "5 hours", "5 minutes", "0 seconds".
pub fn largest_whole_unit(duration: Duration) -> String {
    let seconds = duration.as_secs();
    let (value, unit) = match seconds {
        s if s >= 86_400 => (s / 86_400, "day"),
        s if s >= 3_600 => (s / 3_600, "hour"),
        s if s >= 60 => (s / 60, "minute"),
        s => (s, "second"),
    };
    let plural = if value == 1 { "" } else { "s" };
    format!("{value} {unit}{plural}")
}

#[cfg(test)]
mod tests;
