//! Percentiles and the printed table.

use std::time::Duration;

use serde_json::Value;

/// The `p`th percentile (0..=100) of `samples` by nearest rank; 0 for no samples.
pub fn percentile_ms(samples: &[Duration], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let mut sorted: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    round(sorted[rank.min(sorted.len()) - 1])
}

pub fn round(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

/// One line per figure: `name  value`.
pub fn table(result: &Value) -> String {
    let mut text = String::new();
    if let Value::Object(map) = result {
        for (key, value) in map {
            if key.ends_with("samples_ms") {
                continue;
            }
            text.push_str(&format!("{key:<28} {value}\n"));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<Duration> = (1..=10).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&samples, 50.0), 5.0);
        assert_eq!(percentile_ms(&samples, 95.0), 10.0);
        assert_eq!(percentile_ms(&[], 50.0), 0.0);
    }
}
