//! `[alerts]`: the mail server and addresses selected events are mailed to. Sending is
//! `crate::ops::alerts`; this only checks the settings (the addresses parse, user and password
//! come together).

use super::error::ConfigError;
use super::raw::RawAlerts;
use super::validate::Validator;

/// How the connection to the mail server is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpSecurity {
    None,
    StartTls,
    Tls,
}

/// `[alerts]` (DESIGN.md §6, §9).
#[derive(Clone, Debug)]
pub struct AlertsConfig {
    pub smtp_host: String,
    pub smtp_port: u16,
    pub security: SmtpSecurity,
    /// With `password`; both empty: no authentication.
    pub user: String,
    pub password: String,
    pub from: String,
    pub to: Vec<String>,
}

impl Validator<'_> {
    pub(super) fn alerts(&self, raw: RawAlerts) -> Result<AlertsConfig, ConfigError> {
        if raw.smtp_host.trim().is_empty() {
            return Err(self.invalid("alerts.smtp_host", "must not be empty"));
        }
        if raw.smtp_port == 0 {
            return Err(self.invalid("alerts.smtp_port", "must not be 0"));
        }
        let security = match raw.security.as_str() {
            "none" => SmtpSecurity::None,
            "starttls" => SmtpSecurity::StartTls,
            "tls" => SmtpSecurity::Tls,
            other => {
                return Err(self.invalid(
                    "alerts.security",
                    format!("\"{other}\" is not one of none, starttls, tls"),
                ));
            }
        };
        if raw.user.is_empty() != raw.password.is_empty() {
            return Err(self.invalid(
                "alerts.user",
                "user and password go together: give both, or neither",
            ));
        }
        let mailbox = |key: &str, text: &str| {
            text.parse::<lettre::message::Mailbox>()
                .map(drop)
                .map_err(|error| {
                    self.invalid(key, format!("\"{text}\" is not a mail address: {error}"))
                })
        };
        mailbox("alerts.from", &raw.from)?;
        if raw.to.is_empty() {
            return Err(self.invalid("alerts.to", "must name at least one recipient"));
        }
        for (index, to) in raw.to.iter().enumerate() {
            mailbox(&format!("alerts.to[{index}]"), to)?;
        }
        Ok(AlertsConfig {
            smtp_host: raw.smtp_host,
            smtp_port: raw.smtp_port,
            security,
            user: raw.user,
            password: raw.password,
            from: raw.from,
            to: raw.to,
        })
    }
}
