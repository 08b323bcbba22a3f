//! The certificates of a pair: `tandemctl certs init --dir D --nodes a,b [--days N]` (DESIGN.md
//! §8, §9) and `tandemctl certs issue --dir D --name a [--days N]`.
//!
//! [`init_certs`] creates a private cluster CA, one certificate per node and one for `admin`;
//! [`issue_cert`] issues a fresh certificate and key for one node (or `admin`) from the existing
//! CA, which is how an operator renews one before it expires. [`read_cert_summary`] reads a
//! certificate's subject, serial number and expiry, so a node can warn before it expires.
//!
//! This module is not a PKI: it does not revoke anything, never replaces a CA, and issues only
//! from a CA that `init_certs` made (the issuer's name is rebuilt, not parsed). Loading
//! certificates into TLS configurations is `tls.rs`'s job.

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// The common name of the CA that `init_certs` creates.
pub const CA_COMMON_NAME: &str = "tandem cluster CA";

/// The name of the administrator's certificate; no node may take it.
pub const ADMIN_NAME: &str = "admin";

/// A DNS name every node certificate carries, so a client can dial either node by one name.
const SHARED_NODE_DNS_NAME: &str = "tandem-node";

/// Certificates start a day in the past so that a peer whose clock is behind still accepts them.
const BACKDATE: Duration = Duration::from_secs(24 * 60 * 60);

/// Five years (counting one leap day): long enough that a pair is not broken by surprise.
pub const VALIDITY_DAYS_DEFAULT: u32 = 5 * 365 + 1;

/// `--days` at most: a hundred years is already far past any key's useful life.
const VALIDITY_DAYS_MAX: u32 = 36_500;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// Longest node name: a DNS label holds at most 63 bytes.
const NODE_NAME_LEN_MAX: usize = 63;

/// Why certificates could not be created or read. Every message names the file or name at fault.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// `--nodes` was empty.
    #[error("no node names given: pass at least one, e.g. --nodes a,b")]
    NoNodes,
    /// A node name that cannot be a DNS name, or that a certificate uses for another role.
    #[error("node name {name:?} is not valid: {reason}")]
    InvalidNodeName { name: String, reason: &'static str },
    /// The same node (names compare like DNS names, ignoring case) was named twice.
    #[error("node name {name:?} is given twice")]
    DuplicateNodeName { name: String },
    /// The directory already holds a CA key; overwriting it would orphan every issued certificate.
    #[error("{path} already exists: refusing to overwrite an existing CA")]
    CaExists { path: PathBuf },
    /// Another file `init_certs` would write already exists.
    #[error("{path} already exists: refusing to overwrite it")]
    FileExists { path: PathBuf },
    /// The output directory could not be created.
    #[error("cannot create directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A certificate or key file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// rcgen refused to build a key or certificate.
    #[error("cannot generate the certificate for {name}: {source}")]
    Generate { name: String, source: rcgen::Error },
    /// A certificate file could not be read.
    #[error("cannot read certificate file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A certificate file holds no PEM certificate.
    #[error("no certificate found in {path}")]
    NoCertificate { path: PathBuf },
    /// A certificate could not be decoded.
    #[error("cannot parse the certificate in {path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    /// `--days` out of range.
    #[error("--days {days} is not valid: give 1 to {VALIDITY_DAYS_MAX} days")]
    InvalidValidity { days: u32 },
    /// `ca.pem` or `ca.key` cannot sign: missing, unreadable, not a pair, or not a tandem CA.
    #[error("cannot issue with the CA in {dir}: {reason}")]
    CaUnusable { dir: PathBuf, reason: String },
}

/// Creates the CA, a certificate for each of `nodes` and one for `admin` in `dir`.
///
/// Writes `ca.pem`, `ca.key`, `<node>.pem`, `<node>.key`, `admin.pem` and `admin.key` and returns
/// their paths. Key files are created with mode 0600. Nothing is written unless every name is
/// valid and none of the files exists yet, so an existing CA is never clobbered.
pub fn init_certs(dir: &Path, nodes: &[String]) -> Result<Vec<PathBuf>, CertError> {
    init_certs_valid_for(dir, nodes, VALIDITY_DAYS_DEFAULT)
}

/// [`init_certs`] with every certificate, the CA's included, valid for `days` from now.
pub fn init_certs_valid_for(
    dir: &Path,
    nodes: &[String],
    days: u32,
) -> Result<Vec<PathBuf>, CertError> {
    check_validity_days(days)?;
    validate_node_names(nodes)?;
    refuse_existing_files(dir, nodes)?;
    fs::create_dir_all(dir).map_err(|source| CertError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let (ca_params, ca_key) = generate_ca(dir, days)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let mut written = vec![dir.join("ca.pem"), dir.join("ca.key")];
    for name in nodes.iter().map(String::as_str).chain([ADMIN_NAME]) {
        let leaf = generate_leaf(name, days, &issuer)?;
        written.extend(leaf.write(dir, name, WriteMode::CreateNew)?);
    }
    Ok(written)
}

/// Issues a fresh key and certificate for node `name` (or `admin`) from `dir/ca.pem` and
/// `dir/ca.key`, valid for `days`, and puts them in place of `dir/<name>.pem` and
/// `dir/<name>.key` (each by a rename, so a reader sees the old file or the new one, never half
/// of one). Returns the paths written.
///
/// The new certificate is checked against `ca.pem` before anything is written, so a CA key that
/// does not belong to `ca.pem`, or a CA that `init_certs` did not make, changes nothing.
pub fn issue_cert(dir: &Path, name: &str, days: u32) -> Result<Vec<PathBuf>, CertError> {
    check_validity_days(days)?;
    if !name.eq_ignore_ascii_case(ADMIN_NAME) {
        check_node_name(name)?;
    }
    let unusable = |reason: String| CertError::CaUnusable {
        dir: dir.to_path_buf(),
        reason,
    };
    let ca_pem_path = dir.join("ca.pem");
    let ca_key_path = dir.join("ca.key");
    let ca_key_pem = fs::read_to_string(&ca_key_path)
        .map_err(|e| unusable(format!("cannot read {}: {e}", ca_key_path.display())))?;
    let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(|e| {
        unusable(format!(
            "{} holds no usable key: {e}",
            ca_key_path.display()
        ))
    })?;
    let ca_pem = fs::read(&ca_pem_path)
        .map_err(|e| unusable(format!("cannot read {}: {e}", ca_pem_path.display())))?;
    let ca_der = match CertificateDer::pem_slice_iter(&ca_pem).next() {
        Some(Ok(der)) => der,
        _ => {
            let reason = format!("no certificate found in {}", ca_pem_path.display());
            return Err(unusable(reason));
        }
    };
    let issuer = Issuer::new(ca_params(), ca_key);
    let leaf = generate_leaf(name, days, &issuer)?;
    check_issued_by(&leaf.cert_der, &ca_der).map_err(|reason| {
        unusable(format!(
            "a certificate signed with {} does not verify against {} ({reason}): the key does \
             not belong to that CA, or the CA was not made by `tandemctl certs init`",
            ca_key_path.display(),
            ca_pem_path.display()
        ))
    })?;
    leaf.write(dir, name, WriteMode::Replace)
}

fn check_validity_days(days: u32) -> Result<(), CertError> {
    if days == 0 || days > VALIDITY_DAYS_MAX {
        return Err(CertError::InvalidValidity { days });
    }
    Ok(())
}

/// Verifies `leaf` against the trust anchor `ca` for client use (every tandem certificate has it).
fn check_issued_by(leaf: &[u8], ca: &CertificateDer<'_>) -> Result<(), webpki::Error> {
    let anchor = webpki::anchor_from_trusted_cert(ca)?;
    let leaf = CertificateDer::from(leaf);
    let end_entity = webpki::EndEntityCert::try_from(&leaf)?;
    let algorithms = rustls::crypto::ring::default_provider()
        .signature_verification_algorithms
        .all;
    let now = rustls_pki_types::UnixTime::now();
    let usage = webpki::KeyUsage::client_auth();
    end_entity
        .verify_for_usage(algorithms, &[anchor], &[], now, usage, None, None)
        .map(|_| ())
}

/// Node names become file names and DNS names, and peers are authenticated by them.
fn validate_node_names(nodes: &[String]) -> Result<(), CertError> {
    if nodes.is_empty() {
        return Err(CertError::NoNodes);
    }
    let mut seen = HashSet::new();
    for name in nodes {
        check_node_name(name)?;
        if !seen.insert(name.to_ascii_lowercase()) {
            let name = name.clone();
            return Err(CertError::DuplicateNodeName { name });
        }
    }
    Ok(())
}

/// Checks that `name` can name a node: a DNS label that no certificate uses for another role.
/// Peer names in a configuration should pass this too.
pub fn check_node_name(name: &str) -> Result<(), CertError> {
    match node_name_problem(name) {
        Some(reason) => Err(CertError::InvalidNodeName {
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Says what is wrong with a node name, or `None` if it is usable.
fn node_name_problem(name: &str) -> Option<&'static str> {
    let valid_chars = name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let lower = name.to_ascii_lowercase();
    if name.is_empty() || !valid_chars {
        Some("use letters, digits and '-'")
    } else if name.len() > NODE_NAME_LEN_MAX {
        Some("use at most 63 characters")
    } else if name.starts_with('-') || name.ends_with('-') {
        Some("it must not start or end with '-'")
    } else if lower == ADMIN_NAME || lower == "ca" {
        Some("\"admin\" and \"ca\" name other files in the directory")
    } else if lower == SHARED_NODE_DNS_NAME || lower == "localhost" {
        // Every node certificate carries these names, so a peer configured with one of them
        // would accept any node's certificate.
        Some("\"tandem-node\" and \"localhost\" are in every node certificate")
    } else {
        None
    }
}

/// Checked before anything is generated, so a refused run leaves the directory as it was.
fn refuse_existing_files(dir: &Path, nodes: &[String]) -> Result<(), CertError> {
    let ca_key = dir.join("ca.key");
    if ca_key.exists() {
        return Err(CertError::CaExists { path: ca_key });
    }
    let names = nodes.iter().map(String::as_str).chain([ADMIN_NAME]);
    let leaf_files = names.flat_map(|n| [format!("{n}.pem"), format!("{n}.key")]);
    for file in ["ca.pem".to_string()].into_iter().chain(leaf_files) {
        let path = dir.join(file);
        if path.exists() {
            return Err(CertError::FileExists { path });
        }
    }
    Ok(())
}

/// The CA's name and usages. `issue_cert` signs with these rebuilt rather than parsed from
/// `ca.pem`: an issued certificate names its issuer by this distinguished name.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = common_name(CA_COMMON_NAME);
    // The CA signs only end-entity certificates, never another CA.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

/// Writes `ca.pem` and `ca.key`; returns what is needed to sign the other certificates.
fn generate_ca(dir: &Path, days: u32) -> Result<(CertificateParams, KeyPair), CertError> {
    let generate = |source| CertError::Generate {
        name: CA_COMMON_NAME.to_string(),
        source,
    };
    let mut params = ca_params();
    set_validity(&mut params, days);
    let key = KeyPair::generate().map_err(generate)?;
    let cert = params.self_signed(&key).map_err(generate)?;
    write_file(&dir.join("ca.pem"), cert.pem().as_bytes(), 0o644)?;
    write_file(&dir.join("ca.key"), key.serialize_pem().as_bytes(), 0o600)?;
    Ok((params, key))
}

/// A certificate and its key, signed but not yet written.
struct Leaf {
    cert_pem: String,
    cert_der: Vec<u8>,
    key_pem: String,
}

/// How `Leaf::write` treats existing files.
#[derive(Clone, Copy, PartialEq, Eq)]
enum WriteMode {
    /// `init`: never overwrite.
    CreateNew,
    /// `issue`: write beside, then rename over the old file.
    Replace,
}

impl Leaf {
    /// Writes `<name>.key` (mode 0600) and `<name>.pem`; returns their paths.
    fn write(&self, dir: &Path, name: &str, mode: WriteMode) -> Result<Vec<PathBuf>, CertError> {
        let key_path = dir.join(format!("{name}.key"));
        let cert_path = dir.join(format!("{name}.pem"));
        let write = match mode {
            WriteMode::CreateNew => write_file,
            WriteMode::Replace => replace_file,
        };
        write(&key_path, self.key_pem.as_bytes(), 0o600)?;
        write(&cert_path, self.cert_pem.as_bytes(), 0o644)?;
        Ok(vec![cert_path, key_path])
    }
}

/// Signs a certificate for `name`: a node's (server and client use; its name, `tandem-node`,
/// `localhost` and 127.0.0.1) or, for `admin`, the administrator's (client use only).
fn generate_leaf(name: &str, days: u32, issuer: &Issuer<'_, KeyPair>) -> Result<Leaf, CertError> {
    let generate = |source| CertError::Generate {
        name: name.to_string(),
        source,
    };
    let (dns_names, usages) = if name.eq_ignore_ascii_case(ADMIN_NAME) {
        let usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        (vec![ADMIN_NAME.to_string()], usages)
    } else {
        let names = [name, SHARED_NODE_DNS_NAME, "localhost", "127.0.0.1"];
        let usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        (names.map(str::to_string).to_vec(), usages)
    };
    // `CertificateParams::new` turns "127.0.0.1" into an IP address SAN, the rest into DNS SANs.
    let mut params = CertificateParams::new(dns_names).map_err(generate)?;
    params.distinguished_name = common_name(name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = usages;
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, days);
    // A fresh key each time: its hash is also the serial number rcgen gives the certificate.
    let key = KeyPair::generate().map_err(generate)?;
    let cert = params.signed_by(&key, issuer).map_err(generate)?;
    Ok(Leaf {
        cert_pem: cert.pem(),
        cert_der: cert.der().to_vec(),
        key_pem: key.serialize_pem(),
    })
}

fn common_name(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

fn set_validity(params: &mut CertificateParams, days: u32) {
    let now = SystemTime::now();
    params.not_before = (now - BACKDATE).into();
    params.not_after = (now + DAY * days).into();
}

/// Creates `path` (never overwrites it) with `mode`, so a key is never readable by others even
/// for an instant.
fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), CertError> {
    let write_error = |source| CertError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(write_error)?;
    file.write_all(contents).map_err(write_error)?;
    file.sync_all().map_err(write_error)
}

/// Replaces `path` by writing `path.new` and renaming it over `path`, then syncs the directory so
/// the rename survives a crash. A `path.new` left over from an interrupted run is removed first.
fn replace_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), CertError> {
    let mut staged = path.as_os_str().to_owned();
    staged.push(".new");
    let staged = PathBuf::from(staged);
    let write_error = |source| CertError::Write {
        path: path.to_path_buf(),
        source,
    };
    match fs::remove_file(&staged) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(write_error(e)),
        _ => {}
    }
    write_file(&staged, contents, mode)?;
    fs::rename(&staged, path).map_err(write_error)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(write_error)
}

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
        der::summary(cert)
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

/// The summary of the first certificate in the PEM file `pem_path`.
pub fn read_cert_summary(pem_path: &Path) -> Result<CertSummary, CertError> {
    let pem = fs::read(pem_path).map_err(|source| CertError::Read {
        path: pem_path.to_path_buf(),
        source,
    })?;
    let parse_error = |reason: String| CertError::Parse {
        path: pem_path.to_path_buf(),
        reason,
    };
    let cert = match CertificateDer::pem_slice_iter(&pem).next() {
        None => {
            let path = pem_path.to_path_buf();
            return Err(CertError::NoCertificate { path });
        }
        Some(Err(e)) => return Err(parse_error(e.to_string())),
        Some(Ok(cert)) => cert,
    };
    CertSummary::from_der(&cert).map_err(|reason| parse_error(reason.to_string()))
}

/// Returns the notAfter time of the first certificate in the PEM file `pem_path`.
pub fn cert_not_after(pem_path: &Path) -> Result<SystemTime, CertError> {
    read_cert_summary(pem_path).map(|summary| summary.not_after)
}

/// Just enough DER to find a certificate's serial number, validity and subject common name (RFC
/// 5280 §4.1). webpki checks validity but does not expose it, and a full X.509 parser would be a
/// large dependency for three fields.
mod der {
    use std::time::{Duration, SystemTime};

    use super::CertSummary;

    const TAG_SEQUENCE: u8 = 0x30;
    const TAG_SET: u8 = 0x31;
    const TAG_INTEGER: u8 = 0x02;
    const TAG_OID: u8 = 0x06;
    const TAG_VERSION: u8 = 0xa0;
    const TAG_UTC_TIME: u8 = 0x17;
    const TAG_GENERALIZED_TIME: u8 = 0x18;
    /// id-at-commonName, 2.5.4.3.
    const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

    /// Walks Certificate → TBSCertificate → serialNumber, Validity and subject.
    pub(super) fn summary(cert: &[u8]) -> Result<CertSummary, &'static str> {
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

    /// Reads one element with tag `tag`; returns its contents and what follows it.
    fn expect(input: &[u8], tag: u8) -> Result<(&[u8], &[u8]), &'static str> {
        let (found, contents, rest) = element(input)?;
        if found != tag {
            return Err("unexpected DER tag");
        }
        Ok((contents, rest))
    }

    /// Reads one element: (tag, contents, rest). Only single-byte tags, which X.509 uses here.
    fn element(input: &[u8]) -> Result<(u8, &[u8], &[u8]), &'static str> {
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
    fn parse_time(text: &[u8], year_digits: usize) -> Result<SystemTime, &'static str> {
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

    #[cfg(test)]
    mod tests {
        use super::*;

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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn init_writes_ca_nodes_and_admin_with_private_keys() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("certs");
        let written = init_certs(&out, &names(&["a", "b"])).unwrap();
        let expected: Vec<PathBuf> = ["ca", "a", "b", "admin"]
            .iter()
            .flat_map(|n| [out.join(format!("{n}.pem")), out.join(format!("{n}.key"))])
            .collect();
        assert_eq!(written, expected);
        for path in &written {
            let mode = fs::metadata(path).unwrap().permissions();
            let mode = std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777;
            if path.extension().unwrap() == "key" {
                assert_eq!(mode, 0o600, "{} has mode {mode:o}", path.display());
            }
            assert!(fs::read_to_string(path).unwrap().starts_with("-----BEGIN "));
        }
    }

    #[test]
    fn init_refuses_to_overwrite_an_existing_ca() {
        let dir = tempfile::tempdir().unwrap();
        init_certs(dir.path(), &names(&["a", "b"])).unwrap();
        let ca_pem_before = fs::read(dir.path().join("ca.pem")).unwrap();

        let err = init_certs(dir.path(), &names(&["c"])).unwrap_err();

        assert!(matches!(err, CertError::CaExists { .. }), "{err}");
        assert!(err.to_string().contains("ca.key"), "{err}");
        assert_eq!(fs::read(dir.path().join("ca.pem")).unwrap(), ca_pem_before);
        assert!(!dir.path().join("c.pem").exists());
    }

    #[test]
    fn init_refuses_to_overwrite_a_leftover_node_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("b.key"), "old").unwrap();

        let err = init_certs(dir.path(), &names(&["a", "b"])).unwrap_err();

        assert!(err.to_string().contains("b.key"), "{err}");
        assert!(!dir.path().join("ca.key").exists());
    }

    #[test]
    fn init_rejects_bad_node_names_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let cases: &[(&[&str], &str)] = &[
            (&[], "no node names"),
            (
                &["a b"],
                r#"node name "a b" is not valid: use letters, digits and '-'"#,
            ),
            (&[""], r#"node name "" is not valid"#),
            (&["a/b"], "not valid"),
            (&["-a"], "must not start or end with '-'"),
            (&["a", "admin"], r#""admin" is not valid"#),
            (&["ca"], r#""ca" is not valid"#),
            (&["tandem-node"], "in every node certificate"),
            (&["a", "A"], r#"node name "A" is given twice"#),
        ];
        for (nodes, message) in cases {
            let err = init_certs(dir.path(), &names(nodes)).unwrap_err();
            assert!(err.to_string().contains(message), "{nodes:?}: {err}");
        }
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn init_accepts_letters_digits_and_dashes() {
        let dir = tempfile::tempdir().unwrap();
        init_certs(dir.path(), &names(&["node-1", "Node2"])).unwrap();
        assert!(dir.path().join("Node2.pem").exists());
    }

    #[test]
    fn not_after_is_five_years_ahead() {
        let dir = tempfile::tempdir().unwrap();
        init_certs(dir.path(), &names(&["a"])).unwrap();
        let five_years = Duration::from_secs(5 * 365 * 24 * 60 * 60);
        let day = Duration::from_secs(24 * 60 * 60);
        for file in ["ca.pem", "a.pem", "admin.pem"] {
            let not_after = cert_not_after(&dir.path().join(file)).unwrap();
            let ahead = not_after.duration_since(SystemTime::now()).unwrap();
            assert!(
                ahead > five_years - day && ahead < five_years + 2 * day,
                "{ahead:?}"
            );
        }
    }

    #[test]
    fn init_valid_for_sets_every_certificate_to_that_many_days() {
        let dir = tempfile::tempdir().unwrap();
        init_certs_valid_for(dir.path(), &names(&["a"]), 10).unwrap();
        for file in ["ca.pem", "a.pem", "admin.pem"] {
            let not_after = cert_not_after(&dir.path().join(file)).unwrap();
            let ahead = not_after.duration_since(SystemTime::now()).unwrap();
            assert!(ahead > 9 * DAY && ahead <= 10 * DAY, "{file}: {ahead:?}");
        }
        let err = init_certs_valid_for(dir.path(), &names(&["b"]), 0).unwrap_err();
        assert!(err.to_string().contains("--days 0 is not valid"), "{err}");
    }

    #[test]
    fn summary_names_the_subject_and_serial() {
        let dir = tempfile::tempdir().unwrap();
        init_certs(dir.path(), &names(&["a"])).unwrap();
        let a = read_cert_summary(&dir.path().join("a.pem")).unwrap();
        let ca = read_cert_summary(&dir.path().join("ca.pem")).unwrap();
        assert_eq!(a.subject, "a");
        assert_eq!(ca.subject, CA_COMMON_NAME);
        assert!(a.serial_hex.len() >= 16, "{}", a.serial_hex);
        assert!(a.serial_hex.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a.serial_hex, ca.serial_hex);
    }

    #[test]
    fn issue_replaces_one_node_certificate_from_the_existing_ca() {
        let dir = tempfile::tempdir().unwrap();
        init_certs_valid_for(dir.path(), &names(&["a", "b"]), 5).unwrap();
        let read = |file: &str| fs::read(dir.path().join(file)).unwrap();
        let (ca_before, b_before, a_key_before) = (read("ca.pem"), read("b.pem"), read("a.key"));
        let a_before = read_cert_summary(&dir.path().join("a.pem")).unwrap();

        let written = issue_cert(dir.path(), "a", 400).unwrap();

        assert_eq!(
            written,
            [dir.path().join("a.pem"), dir.path().join("a.key")]
        );
        let a_after = read_cert_summary(&dir.path().join("a.pem")).unwrap();
        assert_eq!(a_after.subject, "a");
        assert_ne!(a_after.serial_hex, a_before.serial_hex);
        let ahead = a_after.not_after.duration_since(SystemTime::now()).unwrap();
        assert!(ahead > 399 * DAY && ahead <= 400 * DAY, "{ahead:?}");
        assert_ne!(read("a.key"), a_key_before);
        assert_eq!(
            (read("ca.pem"), read("b.pem")),
            (ca_before.clone(), b_before)
        );
        let mode = fs::metadata(dir.path().join("a.key"))
            .unwrap()
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        let ca = CertificateDer::pem_slice_iter(&ca_before)
            .next()
            .unwrap()
            .unwrap();
        let a = CertificateDer::from_pem_slice(&read("a.pem")).unwrap();
        check_issued_by(&a, &ca).unwrap();
        assert!(!dir.path().join("a.pem.new").exists());

        issue_cert(dir.path(), "admin", 30).unwrap();
        assert_eq!(
            read_cert_summary(&dir.path().join("admin.pem"))
                .unwrap()
                .subject,
            "admin"
        );
    }

    #[test]
    fn issue_refuses_a_ca_key_that_does_not_belong_to_the_ca_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        init_certs(dir.path(), &names(&["a"])).unwrap();
        init_certs(other.path(), &names(&["a"])).unwrap();
        fs::copy(other.path().join("ca.key"), dir.path().join("ca.key")).unwrap();
        let a_before = fs::read(dir.path().join("a.pem")).unwrap();

        let err = issue_cert(dir.path(), "a", 30).unwrap_err();

        assert!(matches!(err, CertError::CaUnusable { .. }), "{err}");
        assert!(err.to_string().contains("does not verify against"), "{err}");
        assert_eq!(fs::read(dir.path().join("a.pem")).unwrap(), a_before);

        let err = issue_cert(other.path(), "a b", 30).unwrap_err();
        assert!(matches!(err, CertError::InvalidNodeName { .. }), "{err}");
        let empty = tempfile::tempdir().unwrap();
        let err = issue_cert(empty.path(), "a", 30).unwrap_err();
        assert!(err.to_string().contains("ca.key"), "{err}");
    }

    #[test]
    fn not_after_names_the_file_it_cannot_use() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = cert_not_after(&missing).unwrap_err();
        assert!(
            err.to_string().starts_with("cannot read certificate file "),
            "{err}"
        );
        assert!(err.to_string().contains("missing.pem"), "{err}");

        let empty = dir.path().join("empty.pem");
        fs::write(&empty, "not a certificate").unwrap();
        let err = cert_not_after(&empty).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("no certificate found in {}", empty.display())
        );
    }
}
