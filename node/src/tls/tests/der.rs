//! The DER reader's time decoding.

use std::time::{Duration, SystemTime};

use crate::tls::der::parse_time;

#[test]
fn parses_both_time_forms() {
    let epoch = SystemTime::UNIX_EPOCH;
    assert_eq!(parse_time(b"700101000000Z", 2), Ok(epoch));
    let y2k = epoch + Duration::from_secs(946_684_800);
    assert_eq!(parse_time(b"000101000000Z", 2), Ok(y2k));
    assert_eq!(parse_time(b"20000101000000Z", 4), Ok(y2k));
    let leap_day = epoch + Duration::from_secs(1_709_210_096);
    assert_eq!(parse_time(b"20240229123456Z", 4), Ok(leap_day));
    assert!(parse_time(b"20240229123456", 4).is_err());
    assert!(parse_time(b"2024022912345Z", 4).is_err());
}
