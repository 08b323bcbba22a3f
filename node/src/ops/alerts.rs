//! E-mail alerts (DESIGN.md §6): selected events are mailed through SMTP with lettre.
//!
//! An event of a mailed kind enters the outbox in `state.db` in the same transaction as the
//! event itself (`StateStore::record_event`), so each is queued once and survives a restart. One
//! task sends the outbox in order: a mail is marked sent only once the server accepted it, and
//! a failure is retried with a doubling back-off (1 s up to 5 min), so a mail server that is
//! down delays alerts but loses none. Each mail has a Message-ID made of the node and its outbox
//! id, so a receiver can drop the copy a crash between "accepted" and "marked" could resend. At
//! most `MAILS_PER_MINUTE_MAX` leave per minute; the rest wait their turn, in order.
//!
//! Not here: which events happen (the role machine, replication), the SMTP protocol (lettre).

use std::collections::VecDeque;
use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{AlertsConfig, SmtpSecurity};
use crate::state::store::{OutboxMail, StateStore};

/// Mails sent per minute at most.
const MAILS_PER_MINUTE_MAX: usize = 30;
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(300);
/// One SMTP conversation may take this long.
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);
/// When nothing wakes the sender, it looks at the outbox this often anyway.
const IDLE_LOOK: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("no [alerts] section in the config: nothing to send with")]
    NotConfigured,
    #[error("bad mail: {0}")]
    Message(String),
    #[error("SMTP: {0}")]
    Smtp(String),
}

/// Who the mails are from and about.
#[derive(Clone)]
pub struct Mailer {
    config: AlertsConfig,
    cluster: String,
    node: String,
    peer: String,
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl Mailer {
    pub fn new(config: &crate::config::Config) -> Result<Option<Mailer>, AlertError> {
        let Some(alerts) = config.alerts.clone() else {
            return Ok(None);
        };
        let host = alerts.smtp_host.as_str();
        let builder = match alerts.security {
            SmtpSecurity::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
            SmtpSecurity::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                .map_err(|error| AlertError::Smtp(error.to_string()))?,
            SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
                .map_err(|error| AlertError::Smtp(error.to_string()))?,
        };
        let mut builder = builder.port(alerts.smtp_port).timeout(Some(SMTP_TIMEOUT));
        if !alerts.user.is_empty() {
            builder = builder.credentials(Credentials::new(
                alerts.user.clone(),
                alerts.password.clone(),
            ));
        }
        Ok(Some(Mailer {
            transport: builder.build(),
            config: alerts,
            cluster: config.cluster.clone(),
            node: config.node.name.clone(),
            peer: config.peer.name.clone(),
        }))
    }

    /// The subject and body of an event's mail.
    pub fn compose(&self, kind: &str, at_ms: i64, message: &str) -> (String, String) {
        let (cluster, node, peer) = (&self.cluster, &self.node, &self.peer);
        let subject = match kind {
            "failover" => format!("[tandem {cluster}] {node} took over from {peer} (failover)"),
            "test" => format!("[tandem {cluster}] test mail from {node}"),
            other => format!("[tandem {cluster}] {node}: {}", other.replace('_', " ")),
        };
        let mut body = format!(
            "Node {node} of pair {cluster} (peer {peer}) reports, at {}:\n\n{message}\n",
            tandem_gateway::gateway::format_ms(at_ms)
        );
        if kind == "failover" {
            body.push_str(&format!(
                "\n{node} is now the active node; {peer}, the previous active, stopped answering. \
                 Check {peer} before it rejoins: `tandemctl status`, `tandemctl events`.\n"
            ));
        }
        (subject, body)
    }

    /// Sends one mail; returns the server's answer ("250 ...").
    pub async fn send(
        &self,
        subject: &str,
        body: &str,
        message_id: String,
    ) -> Result<String, AlertError> {
        let parse = |text: &str| {
            text.parse::<Mailbox>()
                .map_err(|error| AlertError::Message(format!("{text}: {error}")))
        };
        let mut builder = Message::builder()
            .from(parse(&self.config.from)?)
            .subject(subject)
            .message_id(Some(message_id))
            .header(ContentType::TEXT_PLAIN);
        for to in &self.config.to {
            builder = builder.to(parse(to)?);
        }
        let message = builder
            .body(body.to_string())
            .map_err(|error| AlertError::Message(error.to_string()))?;
        let response = self
            .transport
            .send(message)
            .await
            .map_err(|error| AlertError::Smtp(error.to_string()))?;
        Ok(format!(
            "{} {}",
            response.code(),
            response.message().collect::<Vec<_>>().join(" ")
        ))
    }

    /// `tandemctl alerts test`: a mail now, outside the outbox.
    pub async fn send_test(&self) -> Result<String, AlertError> {
        let now = crate::state::store::wall_clock_ms();
        let (subject, body) = self.compose(
            "test",
            now,
            "This is a test mail (`tandemctl alerts test`). Alerts from this node reach you.",
        );
        let id = format!("<tandem-{}-{}-test-{now}@tandem>", self.cluster, self.node);
        self.send(&subject, &body, id).await
    }

    fn message_id(&self, mail: &OutboxMail) -> String {
        format!(
            "<tandem-{}-{}-event-{}@tandem>",
            self.cluster, self.node, mail.event_id
        )
    }
}

/// The delay before attempt `attempts + 1` of a mail that failed `attempts` times.
fn retry_delay(attempts: i64) -> Duration {
    let doublings = u32::try_from(attempts.clamp(0, 16)).unwrap_or(16);
    RETRY_FIRST
        .saturating_mul(2u32.saturating_pow(doublings))
        .min(RETRY_MAX)
}

/// Sends the outbox for the life of the node.
pub async fn run(store: StateStore, mailer: Mailer) {
    let mut sent_at: VecDeque<tokio::time::Instant> = VecDeque::new();
    loop {
        let now = crate::state::store::wall_clock_ms();
        let next = match store.next_mail(now).await {
            Ok(next) => next,
            Err(error) => {
                tracing::warn!(%error, "cannot read the alert outbox");
                Err(Some(now + 1000))
            }
        };
        let mail = match next {
            Ok(mail) => mail,
            Err(due) => {
                let wait = due.map_or(IDLE_LOOK, |due| {
                    Duration::from_millis(u64::try_from(due - now).unwrap_or(0)).min(IDLE_LOOK)
                });
                tokio::select! {
                    () = store.outbox_added.notified() => {}
                    () = tokio::time::sleep(wait) => {}
                }
                continue;
            }
        };
        while sent_at.len() >= MAILS_PER_MINUTE_MAX {
            let oldest = sent_at[0];
            if oldest.elapsed() >= Duration::from_secs(60) {
                sent_at.pop_front();
            } else {
                tokio::time::sleep_until(oldest + Duration::from_secs(60)).await;
            }
        }
        let (subject, body) = mailer.compose(&mail.kind, mail.at_ms, &mail.message);
        let outcome = mailer.send(&subject, &body, mailer.message_id(&mail)).await;
        let now = crate::state::store::wall_clock_ms();
        let recorded = match &outcome {
            Ok(answer) => {
                sent_at.push_back(tokio::time::Instant::now());
                crate::http::metrics::global()
                    .alerts_sent
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::info!(kind = mail.kind, answer, "alert mailed");
                store.mail_sent(mail.id, now).await
            }
            Err(error) => {
                crate::http::metrics::global()
                    .alerts_failed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let delay = retry_delay(mail.attempts);
                tracing::warn!(
                    %error, kind = mail.kind, attempts = mail.attempts + 1,
                    "cannot mail an alert; trying again in {delay:?}"
                );
                let next = now + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
                store.mail_failed(mail.id, next, &error.to_string()).await
            }
        };
        if let Err(error) = recorded {
            tracing::error!(%error, "cannot update the alert outbox");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_up_to_five_minutes() {
        assert_eq!(retry_delay(0), Duration::from_secs(1));
        assert_eq!(retry_delay(1), Duration::from_secs(2));
        assert_eq!(retry_delay(5), Duration::from_secs(32));
        assert_eq!(retry_delay(9), RETRY_MAX);
        assert_eq!(retry_delay(1_000), RETRY_MAX);
        assert_eq!(retry_delay(-3), Duration::from_secs(1));
    }
}
