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
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_garbage_with_the_text() {
        for text in [
            "",
            "ms",
            "10",
            "1.5s",
            "-1s",
            "10 parsecs",
            "99999999999999999999s",
        ] {
            let error = parse_duration(text).unwrap_err();
            assert!(error.contains(&format!("\"{text}\"")), "{error}");
        }
    }

    #[test]
    fn renders_the_largest_whole_unit() {
        assert_eq!(
            largest_whole_unit(Duration::from_secs(5 * 3600 + 59)),
            "5 hours"
        );
        assert_eq!(largest_whole_unit(Duration::from_secs(300)), "5 minutes");
        assert_eq!(largest_whole_unit(Duration::from_secs(0)), "0 seconds");
        assert_eq!(largest_whole_unit(Duration::from_secs(1)), "1 second");
    }
}
