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
//! certificates into TLS configurations is `files.rs` and `credentials.rs`'s job; the summary
//! itself ([`CertSummary`]) is read from DER in `cert_summary.rs`.

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

pub use super::cert_summary::CertSummary;

/// The common name of the CA that `init_certs` creates.
pub const CA_COMMON_NAME: &str = "tandem cluster CA";

/// The name of the administrator's certificate; no node may take it.
pub const ADMIN_NAME: &str = "admin";

/// The default name of the witness's certificate (a node's `[witness] server_name`); no node
/// may take it.
pub const WITNESS_NAME_DEFAULT: &str = "tandem-witness";

/// A DNS name every node certificate carries, so a client can dial either node by one name.
const SHARED_NODE_DNS_NAME: &str = "tandem-node";

/// Certificates start a day in the past so that a peer whose clock is behind still accepts them.
const BACKDATE: Duration = Duration::from_secs(24 * 60 * 60);

/// Five years (counting one leap day): long enough that a pair is not broken by surprise.
pub const VALIDITY_DAYS_DEFAULT: u32 = 5 * 365 + 1;

/// `--days` at most: a hundred years is already far past any key's useful life.
const VALIDITY_DAYS_MAX: u32 = 36_500;

pub(super) const DAY: Duration = Duration::from_secs(24 * 60 * 60);

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
    init_pair_certs(dir, nodes, None, days)
}

/// [`init_certs_valid_for`], and with `witness` also a certificate for a witness of that name
/// (`<witness>.pem`, `<witness>.key`).
pub fn init_pair_certs(
    dir: &Path,
    nodes: &[String],
    witness: Option<&str>,
    days: u32,
) -> Result<Vec<PathBuf>, CertError> {
    check_validity_days(days)?;
    validate_node_names(nodes)?;
    if let Some(witness) = witness {
        check_witness_name(witness)?;
        if nodes.iter().any(|node| node.eq_ignore_ascii_case(witness)) {
            return Err(CertError::DuplicateNodeName {
                name: witness.to_string(),
            });
        }
    }
    let mut leaves: Vec<(&str, LeafKind)> = nodes
        .iter()
        .map(|node| (node.as_str(), LeafKind::Node))
        .collect();
    leaves.push((ADMIN_NAME, LeafKind::Admin));
    if let Some(witness) = witness {
        leaves.push((witness, LeafKind::Witness));
    }
    refuse_existing_files(dir, &leaves)?;
    fs::create_dir_all(dir).map_err(|source| CertError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let (ca_params, ca_key) = generate_ca(dir, days)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let mut written = vec![dir.join("ca.pem"), dir.join("ca.key")];
    for (name, kind) in leaves {
        let leaf = generate_leaf(name, kind, days, &issuer)?;
        written.extend(leaf.write(dir, name, WriteMode::CreateNew)?);
    }
    Ok(written)
}

/// Issues (or renews) the certificate of a witness named `name` from `dir/ca.pem` and
/// `dir/ca.key`, as [`issue_cert`] does for a node: its name, `localhost` and 127.0.0.1, server
/// and client use, and none of the names a node certificate carries.
pub fn issue_witness_cert(dir: &Path, name: &str, days: u32) -> Result<Vec<PathBuf>, CertError> {
    check_validity_days(days)?;
    check_witness_name(name)?;
    issue_leaf(dir, name, LeafKind::Witness, days)
}

/// A witness may take the default witness name, or any name a node could have.
pub fn check_witness_name(name: &str) -> Result<(), CertError> {
    if name.eq_ignore_ascii_case(WITNESS_NAME_DEFAULT) {
        return Ok(());
    }
    check_node_name(name)
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
    let kind = if name.eq_ignore_ascii_case(ADMIN_NAME) {
        LeafKind::Admin
    } else {
        check_node_name(name)?;
        LeafKind::Node
    };
    issue_leaf(dir, name, kind, days)
}

/// Signs a `kind` certificate for `name` with the CA in `dir`, checks it against `ca.pem`, and
/// puts it in place of `dir/<name>.pem` and `.key`.
fn issue_leaf(
    dir: &Path,
    name: &str,
    kind: LeafKind,
    days: u32,
) -> Result<Vec<PathBuf>, CertError> {
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
    let leaf = generate_leaf(name, kind, days, &issuer)?;
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
pub(super) fn check_issued_by(leaf: &[u8], ca: &CertificateDer<'_>) -> Result<(), webpki::Error> {
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
    } else if lower == WITNESS_NAME_DEFAULT {
        Some("\"tandem-witness\" names the witness's certificate")
    } else if lower == SHARED_NODE_DNS_NAME || lower == "localhost" {
        // Every node certificate carries these names, so a peer configured with one of them
        // would accept any node's certificate.
        Some("\"tandem-node\" and \"localhost\" are in every node certificate")
    } else {
        None
    }
}

/// Checked before anything is generated, so a refused run leaves the directory as it was.
fn refuse_existing_files(dir: &Path, leaves: &[(&str, LeafKind)]) -> Result<(), CertError> {
    let ca_key = dir.join("ca.key");
    if ca_key.exists() {
        return Err(CertError::CaExists { path: ca_key });
    }
    let leaf_files = leaves
        .iter()
        .flat_map(|(n, _)| [format!("{n}.pem"), format!("{n}.key")]);
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

/// What a leaf certificate is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LeafKind {
    /// Server and client use; its name, `tandem-node`, `localhost` and 127.0.0.1.
    Node,
    /// The administrator's: client use only, `admin`.
    Admin,
    /// Server and client use; its name, `localhost` and 127.0.0.1 (not `tandem-node`).
    Witness,
}

/// Signs a `kind` certificate for `name`.
fn generate_leaf(
    name: &str,
    kind: LeafKind,
    days: u32,
    issuer: &Issuer<'_, KeyPair>,
) -> Result<Leaf, CertError> {
    let generate = |source| CertError::Generate {
        name: name.to_string(),
        source,
    };
    let both = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let (dns_names, usages) = match kind {
        LeafKind::Admin => (
            vec![ADMIN_NAME.to_string()],
            vec![ExtendedKeyUsagePurpose::ClientAuth],
        ),
        LeafKind::Node => {
            let names = [name, SHARED_NODE_DNS_NAME, "localhost", "127.0.0.1"];
            (names.map(str::to_string).to_vec(), both)
        }
        LeafKind::Witness => {
            let names = [name, "localhost", "127.0.0.1"];
            (names.map(str::to_string).to_vec(), both)
        }
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
