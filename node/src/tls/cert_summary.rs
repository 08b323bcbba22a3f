//! What an operator needs to know of a certificate — subject, serial number, expiry
//! ([`CertSummary`]) — read from its DER: which fields of the certificate (RFC 5280 §4.1) hold
//! them, read with `der.rs`.
//!
//! No IO: reading a PEM file for its summary is `certs::read_cert_summary`. Not a certificate
//! check: webpki does that.

use std::time::SystemTime;

use super::der::{
    TAG_GENERALIZED_TIME, TAG_INTEGER, TAG_OID, TAG_SEQUENCE, TAG_SET, TAG_UTC_TIME, TAG_VERSION,
    element, expect, parse_time,
};

/// id-at-commonName, 2.5.4.3.
const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

/// What an operator needs to know of a certificate to tell it from another and to renew it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSummary {
    /// The subject's common name ("a", "admin", "tandem cluster CA"); empty if it has none.
    pub subject: String,
    /// The serial number in lower-case hex: a re-issued certificate has a new one.
    pub serial_hex: String,
    /// When the certificate stops being valid.
    pub not_after: SystemTime,
}

impl CertSummary {
    /// Reads a DER certificate.
    pub fn from_der(cert: &[u8]) -> Result<CertSummary, &'static str> {
        summary(cert)
    }

    /// `not_after` as `2030-01-01T00:00:00Z`.
    pub fn not_after_utc(&self) -> String {
        let ms = match self.not_after.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
            Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
        };
        tandem_gateway::gateway::format_ms(ms)
    }
}

/// Walks Certificate → TBSCertificate → serialNumber, Validity and subject.
fn summary(cert: &[u8]) -> Result<CertSummary, &'static str> {
    let (certificate, _) = expect(cert, TAG_SEQUENCE)?;
    let (tbs, _) = expect(certificate, TAG_SEQUENCE)?;
    let mut rest = tbs;
    if rest.first() == Some(&TAG_VERSION) {
        rest = element(rest)?.2;
    }
    let (serial, rest) = expect(rest, TAG_INTEGER)?;
    let rest = expect(rest, TAG_SEQUENCE)?.1; // signature algorithm
    let rest = expect(rest, TAG_SEQUENCE)?.1; // issuer
    let (validity, rest) = expect(rest, TAG_SEQUENCE)?;
    let (subject, _) = expect(rest, TAG_SEQUENCE)?;
    let (_, _, after_not_before) = element(validity)?;
    let (tag, not_after, _) = element(after_not_before)?;
    let not_after = match tag {
        TAG_UTC_TIME => parse_time(not_after, 2)?,
        TAG_GENERALIZED_TIME => parse_time(not_after, 4)?,
        _ => return Err("notAfter is not a time"),
    };
    // DER adds a leading zero byte to keep a positive INTEGER positive; it is not part of it.
    let serial = match serial {
        [0, rest @ ..] if !rest.is_empty() => rest,
        serial => serial,
    };
    Ok(CertSummary {
        subject: common_name(subject)?,
        serial_hex: serial.iter().map(|byte| format!("{byte:02x}")).collect(),
        not_after,
    })
}

/// The first commonName of a Name (a SEQUENCE of SETs of (OID, value)), or "".
fn common_name(mut name: &[u8]) -> Result<String, &'static str> {
    while !name.is_empty() {
        let (relative_name, rest) = expect(name, TAG_SET)?;
        name = rest;
        let (attribute, _) = expect(relative_name, TAG_SEQUENCE)?;
        let (oid, value) = expect(attribute, TAG_OID)?;
        if oid == OID_COMMON_NAME {
            // UTF8String, PrintableString and the like: the contents are the text.
            let (_, text, _) = element(value)?;
            return Ok(String::from_utf8_lossy(text).into_owned());
        }
    }
    Ok(String::new())
}
