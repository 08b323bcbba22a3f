//! Tests of the duration format: each unit, garbage refused with its text, rendering.

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
