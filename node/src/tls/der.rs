//! Just enough DER to find a certificate's serial number, validity and subject common name (RFC
//! 5280 §4.1). webpki checks validity but does not expose it, and a full X.509 parser would be a
//! large dependency for three fields.
//!
//! This file reads DER elements and times; which elements of a certificate hold the three fields
//! is `cert_summary.rs`'s. Not a general ASN.1 reader (single-byte tags, lengths of at most four
//! bytes), no IO.

use std::time::{Duration, SystemTime};

pub(super) const TAG_SEQUENCE: u8 = 0x30;
pub(super) const TAG_SET: u8 = 0x31;
pub(super) const TAG_INTEGER: u8 = 0x02;
pub(super) const TAG_OID: u8 = 0x06;
pub(super) const TAG_VERSION: u8 = 0xa0;
pub(super) const TAG_UTC_TIME: u8 = 0x17;
pub(super) const TAG_GENERALIZED_TIME: u8 = 0x18;

/// Reads one element with tag `tag`; returns its contents and what follows it.
pub(super) fn expect(input: &[u8], tag: u8) -> Result<(&[u8], &[u8]), &'static str> {
    let (found, contents, rest) = element(input)?;
    if found != tag {
        return Err("unexpected DER tag");
    }
    Ok((contents, rest))
}

/// Reads one element: (tag, contents, rest). Only single-byte tags, which X.509 uses here.
pub(super) fn element(input: &[u8]) -> Result<(u8, &[u8], &[u8]), &'static str> {
    let truncated = "truncated DER";
    let (&tag, input) = input.split_first().ok_or(truncated)?;
    let (&first, mut input) = input.split_first().ok_or(truncated)?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || input.len() < count {
            return Err("unsupported DER length");
        }
        let (bytes, tail) = input.split_at(count);
        input = tail;
        bytes.iter().fold(0, |len, &b| (len << 8) | usize::from(b))
    };
    if input.len() < len {
        return Err(truncated);
    }
    let (contents, rest) = input.split_at(len);
    Ok((tag, contents, rest))
}

/// Decodes `YYMMDDHHMMSSZ` (year_digits 2, UTCTime) or `YYYYMMDDHHMMSSZ` (GeneralizedTime),
/// the only forms DER allows.
pub(super) fn parse_time(text: &[u8], year_digits: usize) -> Result<SystemTime, &'static str> {
    let bad = "malformed certificate time";
    if text.len() != year_digits + 11 || text.last() != Some(&b'Z') {
        return Err(bad);
    }
    let digits = &text[..text.len() - 1];
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(bad);
    }
    let number = |from: usize, count: usize| {
        digits[from..from + count]
            .iter()
            .fold(0i64, |n, &d| n * 10 + i64::from(d - b'0'))
    };
    let mut year = number(0, year_digits);
    if year_digits == 2 {
        // RFC 5280 §4.1.2.5.1: UTCTime years 50..99 are 19xx, 00..49 are 20xx.
        year += if year >= 50 { 1900 } else { 2000 };
    }
    let at = year_digits;
    let (month, day) = (number(at, 2), number(at + 2, 2));
    let (hour, minute, second) = (number(at + 4, 2), number(at + 6, 2), number(at + 8, 2));
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return Err(bad);
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60;
    let seconds = seconds + second;
    let offset = Duration::from_secs(seconds.unsigned_abs());
    if seconds >= 0 {
        Ok(SystemTime::UNIX_EPOCH + offset)
    } else {
        Ok(SystemTime::UNIX_EPOCH - offset)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}
