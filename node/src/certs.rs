//! The certificates of a new pair: `tandemctl certs init --dir D --nodes a,b` (DESIGN.md §8, §9).
//!
//! [`init_certs`] creates a private cluster CA, one certificate per node and one for `admin`;
//! [`cert_not_after`] reads when a certificate expires, so a node can warn before it does.
//!
//! This module is not a PKI: it does not renew, revoke or rotate anything, and it never touches an
//! existing CA. Loading certificates into TLS configurations is `tls.rs`'s job.

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
const VALIDITY: Duration = Duration::from_secs((5 * 365 + 1) * 24 * 60 * 60);

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
}

/// Creates the CA, a certificate for each of `nodes` and one for `admin` in `dir`.
///
/// Writes `ca.pem`, `ca.key`, `<node>.pem`, `<node>.key`, `admin.pem` and `admin.key` and returns
/// their paths. Key files are created with mode 0600. Nothing is written unless every name is
/// valid and none of the files exists yet, so an existing CA is never clobbered.
pub fn init_certs(dir: &Path, nodes: &[String]) -> Result<Vec<PathBuf>, CertError> {
    validate_node_names(nodes)?;
    refuse_existing_files(dir, nodes)?;
    fs::create_dir_all(dir).map_err(|source| CertError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let (ca_params, ca_key) = generate_ca(dir)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let mut written = vec![dir.join("ca.pem"), dir.join("ca.key")];
    for name in nodes {
        let dns_names = vec![
            name.clone(),
            SHARED_NODE_DNS_NAME.to_string(),
            "localhost".to_string(),
            "127.0.0.1".to_string(),
        ];
        let usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        written.extend(generate_leaf(dir, name, dns_names, usages, &issuer)?);
    }
    let admin_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let admin_names = vec![ADMIN_NAME.to_string()];
    written.extend(generate_leaf(
        dir,
        ADMIN_NAME,
        admin_names,
        admin_usages,
        &issuer,
    )?);
    Ok(written)
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

/// Writes `ca.pem` and `ca.key`; returns what is needed to sign the other certificates.
fn generate_ca(dir: &Path) -> Result<(CertificateParams, KeyPair), CertError> {
    let generate = |source| CertError::Generate {
        name: CA_COMMON_NAME.to_string(),
        source,
    };
    let mut params = CertificateParams::default();
    params.distinguished_name = common_name(CA_COMMON_NAME);
    // The CA signs only end-entity certificates, never another CA.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    set_validity(&mut params);
    let key = KeyPair::generate().map_err(generate)?;
    let cert = params.self_signed(&key).map_err(generate)?;
    write_file(&dir.join("ca.pem"), cert.pem().as_bytes(), 0o644)?;
    write_file(&dir.join("ca.key"), key.serialize_pem().as_bytes(), 0o600)?;
    Ok((params, key))
}

/// Writes `<name>.pem` and `<name>.key`, signed by the CA, and returns their paths.
fn generate_leaf(
    dir: &Path,
    name: &str,
    dns_names: Vec<String>,
    usages: Vec<ExtendedKeyUsagePurpose>,
    issuer: &Issuer<'_, KeyPair>,
) -> Result<[PathBuf; 2], CertError> {
    let generate = |source| CertError::Generate {
        name: name.to_string(),
        source,
    };
    // `CertificateParams::new` turns "127.0.0.1" into an IP address SAN, the rest into DNS SANs.
    let mut params = CertificateParams::new(dns_names).map_err(generate)?;
    params.distinguished_name = common_name(name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = usages;
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params);
    let key = KeyPair::generate().map_err(generate)?;
    let cert = params.signed_by(&key, issuer).map_err(generate)?;
    let cert_path = dir.join(format!("{name}.pem"));
    let key_path = dir.join(format!("{name}.key"));
    write_file(&cert_path, cert.pem().as_bytes(), 0o644)?;
    write_file(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    Ok([cert_path, key_path])
}

fn common_name(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

fn set_validity(params: &mut CertificateParams) {
    let now = SystemTime::now();
    params.not_before = (now - BACKDATE).into();
    params.not_after = (now + VALIDITY).into();
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

/// Returns the notAfter time of the first certificate in the PEM file `pem_path`.
pub fn cert_not_after(pem_path: &Path) -> Result<SystemTime, CertError> {
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
    der::not_after(&cert).map_err(|reason| parse_error(reason.to_string()))
}

/// Just enough DER to find a certificate's validity (RFC 5280 §4.1). webpki checks validity but
/// does not expose it, and a full X.509 parser would be a large dependency for one field.
mod der {
    use std::time::{Duration, SystemTime};

    const TAG_SEQUENCE: u8 = 0x30;
    const TAG_INTEGER: u8 = 0x02;
    const TAG_VERSION: u8 = 0xa0;
    const TAG_UTC_TIME: u8 = 0x17;
    const TAG_GENERALIZED_TIME: u8 = 0x18;

    /// Walks Certificate → TBSCertificate → Validity and decodes notAfter.
    pub(super) fn not_after(cert: &[u8]) -> Result<SystemTime, &'static str> {
        let (certificate, _) = expect(cert, TAG_SEQUENCE)?;
        let (tbs, _) = expect(certificate, TAG_SEQUENCE)?;
        let mut rest = tbs;
        if rest.first() == Some(&TAG_VERSION) {
            rest = element(rest)?.2;
        }
        rest = expect(rest, TAG_INTEGER)?.1; // serialNumber
        rest = expect(rest, TAG_SEQUENCE)?.1; // signature algorithm
        rest = expect(rest, TAG_SEQUENCE)?.1; // issuer
        let (validity, _) = expect(rest, TAG_SEQUENCE)?;
        let (_, _, after_not_before) = element(validity)?;
        let (tag, not_after, _) = element(after_not_before)?;
        match tag {
            TAG_UTC_TIME => parse_time(not_after, 2),
            TAG_GENERALIZED_TIME => parse_time(not_after, 4),
            _ => Err("notAfter is not a time"),
        }
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
