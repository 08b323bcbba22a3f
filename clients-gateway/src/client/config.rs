//! `PairConfig`: what a `PairClient` needs to reach a pair, and the checks that turn a bad value
//! into a clear error before anything is dialled.
//!
//! Also builds the tonic endpoints: TLS with the cluster CA only (rustls with ring, through
//! tonic's `tls-ring`), no client certificate, ALPN h2, HTTP/2 keepalives so that a connection
//! into a black hole fails within seconds instead of hanging until the deadline.

use std::path::Path;
use std::time::Duration;

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Uri};

use super::error::ClientError;

/// The DNS name the nodes' client certificates are valid for.
pub const DEFAULT_SERVER_NAME: &str = "tandem-node";
/// The longest `client_kind` the gateway accepts.
const CLIENT_KIND_BYTES_MAX: usize = 64;
/// What a PEM certificate starts with.
const PEM_CERTIFICATE_HEADER: &str = "-----BEGIN CERTIFICATE-----";
/// HTTP/2 pings on every connection: an idle or stalled connection whose peer stopped answering
/// (a paused or unplugged node) is dropped after `KEEPALIVE_TIMEOUT` without an answer.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(2);

/// How to reach a pair. Build it with [`PairConfig::new`] or [`PairConfig::from_ca_file`], then
/// change the public fields as needed; [`PairClient::new`](super::PairClient::new) checks them.
#[derive(Clone, Debug)]
pub struct PairConfig {
    /// Both nodes' client addresses, `HOST:PORT`, spelled as the nodes advertise them (the
    /// address a passive names in its refusals is compared with these).
    pub addresses: [String; 2],
    /// The cluster CA in PEM: the only issuer trusted for the nodes' certificates.
    pub ca_pem: Vec<u8>,
    /// Where `ca_pem` came from, for error messages (the file name, or "CA given in memory").
    pub ca_origin: String,
    /// The DNS name checked in the nodes' certificates (default `tandem-node`).
    pub server_name: String,
    /// What this client is ("gate", "fax"...), kept with its sessions; at most 64 bytes.
    pub client_kind: String,
    /// How long one operation (a login, a call...) may take in all, retries included; then it
    /// fails with `ClientError::Timeout`. Also how long `connect` waits for an active.
    pub operation_timeout: Duration,
    /// How long one attempt waits for an answer before it counts as failed and is retried
    /// (with the same request id).
    pub attempt_timeout: Duration,
    /// How long dialling a node (TCP and TLS) may take.
    pub connect_timeout: Duration,
    /// The first pause after a failed attempt; pauses double from here.
    pub backoff_min: Duration,
    /// The longest pause between attempts.
    pub backoff_max: Duration,
}

impl PairConfig {
    /// A configuration with the defaults: server name `tandem-node`, client kind "gate",
    /// 30 s per operation, 10 s per attempt, 3 s to connect, back-off from 25 ms to 1 s.
    pub fn new(addresses: [String; 2], ca_pem: Vec<u8>) -> PairConfig {
        PairConfig {
            addresses,
            ca_pem,
            ca_origin: "CA given in memory".to_string(),
            server_name: DEFAULT_SERVER_NAME.to_string(),
            client_kind: "gate".to_string(),
            operation_timeout: Duration::from_secs(30),
            attempt_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            backoff_min: Duration::from_millis(25),
            backoff_max: Duration::from_secs(1),
        }
    }

    /// [`PairConfig::new`] with the CA read from a PEM file (e.g. `certs/ca.pem`).
    pub fn from_ca_file(
        addresses: [String; 2],
        path: impl AsRef<Path>,
    ) -> Result<PairConfig, ClientError> {
        let path = path.as_ref();
        let ca_pem = std::fs::read(path).map_err(|error| ClientError::CaFile {
            path: path.to_path_buf(),
            error,
        })?;
        let mut config = PairConfig::new(addresses, ca_pem);
        config.ca_origin = path.display().to_string();
        Ok(config)
    }

    /// Checks every field; the error names the one at fault.
    pub(crate) fn validate(&self) -> Result<(), ClientError> {
        for address in &self.addresses {
            parse_address(address)?;
        }
        if self.addresses[0] == self.addresses[1] {
            return Err(config_error(format!(
                "both client addresses are {}; give each node's",
                self.addresses[0]
            )));
        }
        let ca_text = String::from_utf8_lossy(&self.ca_pem);
        if !ca_text.contains(PEM_CERTIFICATE_HEADER) {
            return Err(config_error(format!(
                "{} holds no PEM certificate",
                self.ca_origin
            )));
        }
        if self.client_kind.len() > CLIENT_KIND_BYTES_MAX {
            return Err(config_error(format!(
                "client kind {:?} is longer than {CLIENT_KIND_BYTES_MAX} bytes",
                self.client_kind
            )));
        }
        let timeouts = [
            ("operation timeout", self.operation_timeout),
            ("attempt timeout", self.attempt_timeout),
            ("connect timeout", self.connect_timeout),
            ("maximum back-off", self.backoff_max),
        ];
        for (what, value) in timeouts {
            if value.is_zero() {
                return Err(config_error(format!("the {what} must not be zero")));
            }
        }
        if self.backoff_min > self.backoff_max {
            return Err(config_error(format!(
                "the minimum back-off {:?} is above the maximum {:?}",
                self.backoff_min, self.backoff_max
            )));
        }
        Ok(())
    }

    /// An endpoint that dials `address` with TLS; no IO until it is used.
    pub(crate) fn endpoint(&self, address: &str) -> Result<Endpoint, ClientError> {
        let uri = parse_address(address)?;
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .domain_name(self.server_name.clone())
            .timeout(self.connect_timeout);
        let endpoint = Endpoint::from(uri).tls_config(tls).map_err(|error| {
            config_error(format!(
                "cannot set up TLS to {address} with CA {} and server name {:?}: {}",
                self.ca_origin,
                self.server_name,
                error_chain(&error)
            ))
        })?;
        Ok(endpoint
            .connect_timeout(self.connect_timeout)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true)
            .tcp_nodelay(true))
    }
}

fn config_error(message: String) -> ClientError {
    ClientError::Config(message)
}

/// `HOST:PORT` as an `https` URI; anything else (a scheme, a path, no port) is refused.
fn parse_address(address: &str) -> Result<Uri, ClientError> {
    let refuse = |why: &str| config_error(format!("client address {address:?} {why}"));
    if address.is_empty() {
        return Err(refuse("is empty; expected HOST:PORT"));
    }
    if address.contains("://") || address.contains(['/', '@', '?', '#']) {
        return Err(refuse("must be HOST:PORT, without a scheme, user or path"));
    }
    if address.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(refuse("contains spaces or control characters"));
    }
    let uri: Uri = format!("https://{address}")
        .parse()
        .map_err(|error| refuse(&format!("is not HOST:PORT ({error})")))?;
    if uri.host().is_none_or(str::is_empty) {
        return Err(refuse("has no host"));
    }
    if uri.port_u16().is_none() {
        return Err(refuse("has no port"));
    }
    Ok(uri)
}

/// An error and its causes on one line.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(source) = cause {
        text.push_str(": ");
        text.push_str(&source.to_string());
        cause = source.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    fn config() -> PairConfig {
        PairConfig::new(
            ["127.0.0.1:7001".to_string(), "127.0.0.1:7002".to_string()],
            CA.as_bytes().to_vec(),
        )
    }

    fn config_message(config: &PairConfig) -> String {
        match config.validate() {
            Err(ClientError::Config(message)) => message,
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }

    #[test]
    fn the_defaults_are_valid() {
        config().validate().unwrap();
    }

    #[test]
    fn bad_addresses_are_named() {
        for bad in [
            "",
            "127.0.0.1",
            "https://127.0.0.1:7001",
            "host:7001/x",
            "a b:1",
            "host:port",
            ":7001",
        ] {
            let mut config = config();
            config.addresses[1] = bad.to_string();
            let message = config_message(&config);
            assert!(message.contains(&format!("{bad:?}")), "{message}");
        }
    }

    #[test]
    fn ipv6_and_names_are_accepted() {
        for good in ["[::1]:7001", "node-b.example:7001"] {
            parse_address(good).unwrap();
        }
    }

    #[test]
    fn the_same_address_twice_is_refused() {
        let mut config = config();
        config.addresses[1] = config.addresses[0].clone();
        assert!(config_message(&config).contains("both client addresses"));
    }

    #[test]
    fn a_ca_without_a_certificate_names_its_origin() {
        let mut config = config();
        config.ca_pem = b"not a certificate".to_vec();
        config.ca_origin = "certs/ca.pem".to_string();
        assert!(config_message(&config).contains("certs/ca.pem"));
    }

    #[test]
    fn an_unreadable_ca_file_is_named() {
        let missing = "/nonexistent/tandem/ca.pem";
        let addresses = config().addresses;
        match PairConfig::from_ca_file(addresses, missing) {
            Err(error @ ClientError::CaFile { .. }) => {
                assert!(error.to_string().contains(missing), "{error}");
            }
            other => panic!("expected a CA file error, got {other:?}"),
        }
    }

    #[test]
    fn zero_timeouts_and_inverted_backoff_are_refused() {
        let mut zero = config();
        zero.operation_timeout = Duration::ZERO;
        assert!(config_message(&zero).contains("operation timeout"));
        let mut inverted = config();
        inverted.backoff_min = Duration::from_secs(2);
        assert!(config_message(&inverted).contains("minimum back-off"));
        let mut long_kind = config();
        long_kind.client_kind = "x".repeat(65);
        assert!(config_message(&long_kind).contains("client kind"));
    }

    #[test]
    fn a_bad_server_name_is_a_configuration_error() {
        let mut config = config();
        config.server_name = "not a name!".to_string();
        let error = config.endpoint("127.0.0.1:7001").unwrap_err();
        assert!(matches!(error, ClientError::Config(_)), "{error}");
    }
}
