//! Certificates while a node runs (DESIGN.md §6): SIGHUP reloads `[tls]`, and a daily check
//! warns of a certificate or CA about to expire.
//!
//! - On SIGHUP the node reads `[tls] ca`, `cert` and `key` again (the paths it started with).
//!   If all three are usable together, every new handshake on every listener and every new dial
//!   uses them (`tls_credentials.rs`); open connections, the peer link's included, stay as they
//!   are, so the pair notices nothing. If not, the node keeps what it has. Either way it records
//!   an event: `cert_reload` naming the new expiry, or `cert_reload_failed` naming the file and
//!   the problem (mailed: the operator believes the renewal is done).
//! - At start-up, once a day after, and at once after a successful reload, the certificate and
//!   CA in use are checked: one that expires within 30 days, or has expired, is a `cert_expiry`
//!   event (mailed), repeated daily while it lasts.
//!
//! Not here: reading and checking the files (`tls_credentials.rs`), issuing new ones
//! (`certs.rs`, `tandemctl certs issue`). The timer is the node's own, not the driver's: expiry
//! has nothing to do with the role machine.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::state::store::StateStore;
use crate::tls::certs::CertSummary;
use crate::tls::credentials::Material;
use crate::tls::{Credentials, TlsFiles};

/// A certificate that expires within this many days raises `cert_expiry`.
pub const EXPIRY_WARNING_DAYS: u64 = 30;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// How often the expiry check runs while nothing else triggers it.
const EXPIRY_CHECK_EVERY: Duration = DAY;

/// Installs the SIGHUP handler now (from here on SIGHUP no longer ends the process), checks
/// expiry at once, and starts the task that reloads on SIGHUP and checks daily. It runs for the
/// life of the process. Must be called inside a tokio runtime.
pub fn spawn(credentials: Arc<Credentials>, store: StateStore) -> std::io::Result<()> {
    let hangups = signal(SignalKind::hangup())?;
    tokio::spawn(run(credentials, store, hangups));
    Ok(())
}

async fn run(credentials: Arc<Credentials>, store: StateStore, mut hangups: Signal) {
    loop {
        check_expiry(&credentials, &store).await;
        let next_check = tokio::time::Instant::now() + EXPIRY_CHECK_EVERY;
        // A failed reload changes nothing, so it does not repeat the expiry warnings either.
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(next_check) => break,
                Some(()) = hangups.recv() => {
                    if reload(&credentials, &store).await {
                        break;
                    }
                }
            }
        }
    }
}

/// Returns whether the new files are in use.
async fn reload(credentials: &Credentials, store: &StateStore) -> bool {
    let files = credentials.files();
    let (kind, message, reloaded) = match credentials.reload() {
        Ok(material) => {
            tracing::info!("SIGHUP: TLS files reloaded");
            let message = reloaded_message(files, &material);
            ("cert_reload", message, true)
        }
        Err(error) => {
            tracing::error!(%error, "SIGHUP: cannot reload the TLS files; keeping the ones in use");
            let in_use = credentials.current();
            let message = format!(
                "cannot reload the TLS files, still using certificate {}: {error}",
                describe(files.cert.as_path(), &in_use.cert)
            );
            ("cert_reload_failed", message, false)
        }
    };
    record(store, kind, &message).await;
    reloaded
}

async fn check_expiry(credentials: &Credentials, store: &StateStore) {
    let material = credentials.current();
    for warning in expiry_warnings(credentials.files(), &material, SystemTime::now()) {
        tracing::warn!("{warning}");
        record(store, "cert_expiry", &warning).await;
    }
}

async fn record(store: &StateStore, kind: &str, message: &str) {
    if let Err(error) = store.record_event(kind, message).await {
        // An operating error: the log has it, state.db does not.
        tracing::error!(%error, kind, "cannot record an event in state.db: {message}");
    }
}

fn reloaded_message(files: &TlsFiles, material: &Material) -> String {
    let cas: Vec<String> = material
        .cas
        .iter()
        .map(|ca| describe(&files.ca, ca))
        .collect();
    format!(
        "reloaded the TLS files: certificate {}, key {}, CA {}",
        describe(&files.cert, &material.cert),
        files.key.display(),
        cas.join(", ")
    )
}

/// `/etc/tandem/a.pem (CN a, serial 3f09…, expires 2030-01-01T00:00:00Z)`
fn describe(path: &Path, cert: &CertSummary) -> String {
    format!(
        "{} (CN {}, serial {}, expires {})",
        path.display(),
        cert.subject,
        cert.serial_hex,
        cert.not_after_utc()
    )
}

/// The `cert_expiry` messages due at `now`: one for the node's certificate and one for each CA
/// certificate that expires within `EXPIRY_WARNING_DAYS` or has expired.
pub fn expiry_warnings(files: &TlsFiles, material: &Material, now: SystemTime) -> Vec<String> {
    let node = expiry_warning("node certificate", &files.cert, &material.cert, now);
    let cas = material
        .cas
        .iter()
        .map(|ca| expiry_warning("CA certificate", &files.ca, ca, now));
    std::iter::once(node).chain(cas).flatten().collect()
}

/// A warning if `cert` expires within `EXPIRY_WARNING_DAYS` of `now`, saying what to do.
fn expiry_warning(what: &str, path: &Path, cert: &CertSummary, now: SystemTime) -> Option<String> {
    let when = match cert.not_after.duration_since(now) {
        Ok(left) if left >= DAY * EXPIRY_WARNING_DAYS as u32 => return None,
        Ok(left) => format!("expires in {}", days(left)),
        Err(past) => format!("expired {} ago", days(past.duration())),
    };
    let renew = if what == "CA certificate" {
        "a new CA means new certificates for both nodes and admin: `tandemctl certs init` in a \
         new directory, install them on both nodes, then SIGHUP both"
    } else {
        "renew it with `tandemctl certs issue --dir <certs dir> --name <node>`, install the new \
         certificate and key in place of the old, then SIGHUP tandemd (`systemctl reload`)"
    };
    Some(format!("{what} {} {when}; {renew}", describe(path, cert)))
}

fn days(span: Duration) -> String {
    match span.as_secs() / DAY.as_secs() {
        0 => "less than a day".to_string(),
        1 => "1 day".to_string(),
        n => format!("{n} days"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(subject: &str, not_after: SystemTime) -> CertSummary {
        CertSummary {
            subject: subject.to_string(),
            serial_hex: "0a1b".to_string(),
            not_after,
        }
    }

    #[test]
    fn a_certificate_with_thirty_days_or_more_left_raises_nothing() {
        let now = SystemTime::UNIX_EPOCH + DAY * 20_000;
        let path = Path::new("/etc/tandem/a.pem");
        let fine = cert("a", now + DAY * 30);
        assert_eq!(expiry_warning("node certificate", path, &fine, now), None);
        let fine = cert("a", now + DAY * 3000);
        assert_eq!(expiry_warning("node certificate", path, &fine, now), None);
    }

    #[test]
    fn a_certificate_expiring_within_thirty_days_names_itself_and_the_days_left() {
        let now = SystemTime::UNIX_EPOCH + DAY * 20_000;
        let path = Path::new("/etc/tandem/a.pem");
        let soon = cert("a", now + DAY * 30 - Duration::from_secs(1));
        let warning = expiry_warning("node certificate", path, &soon, now).unwrap();
        assert!(
            warning.starts_with(
                "node certificate /etc/tandem/a.pem (CN a, serial 0a1b, expires 2024-11-02T23:59:59Z) "
            ),
            "{warning}"
        );
        assert!(warning.contains("expires in 29 days; "), "{warning}");
        assert!(warning.contains("tandemctl certs issue"), "{warning}");

        let today = cert("a", now + Duration::from_secs(60));
        let warning = expiry_warning("node certificate", path, &today, now).unwrap();
        assert!(
            warning.contains("expires in less than a day; "),
            "{warning}"
        );
    }

    #[test]
    fn an_expired_ca_says_how_long_ago() {
        let now = SystemTime::UNIX_EPOCH + DAY * 20_000;
        let ca = cert("tandem cluster CA", now - DAY * 2 - Duration::from_secs(5));
        let warning = expiry_warning("CA certificate", Path::new("ca.pem"), &ca, now).unwrap();
        assert!(
            warning.starts_with("CA certificate ca.pem (CN tandem cluster CA"),
            "{warning}"
        );
        assert!(warning.contains("expired 2 days ago; "), "{warning}");
        assert!(warning.contains("tandemctl certs init"), "{warning}");
    }
}
