//! `tandemctl certs init` and `issue`, and certificate summaries read back from their files.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::tls::certs::{
    CA_COMMON_NAME, CertError, DAY, cert_not_after, check_issued_by, init_certs,
    init_certs_valid_for, issue_cert, read_cert_summary,
};

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
