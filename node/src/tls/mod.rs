//! Mutual TLS for every tandem listener and dialer (DESIGN.md §8): rustls with ring only.
//!
//! - [`server_config`] builds a listener's configuration; [`ClientAuth`] says who may connect:
//!   anyone (client port, where users log in with passwords), any holder of a cluster certificate
//!   (admin port) or only the configured peer (peer port).
//! - [`tls_incoming`] turns a `TcpListener` into a stream of established TLS connections for
//!   `tonic::transport::Server::serve_with_incoming`, handshaking concurrently and logging every
//!   refused handshake.
//! - [`client_config`], [`connect`] and [`connect_lazy`] dial a tandem listener and return a tonic
//!   `Channel`.
//!
//! Authorization happens in the handshake: a connection a service sees has already presented the
//! right certificate. A service can still read the chain with `tonic::Request::peer_certs()`
//! (tonic fills it for `tokio_rustls::server::TlsStream<TcpStream>`), e.g. to log
//! [`peer_cert_names`]. A node's listeners and dialers take their certificate and CA from
//! [`Credentials`] at each handshake (`server_config_from`, `client_config_from`), so a reload
//! (`credentials.rs`) reaches every new connection and no open one. This module does not
//! create certificates (`certs.rs` does) or check revocation: the pair has its own private CA.
//!
//! The folder's parts (this file only declares them and re-exports what the rest of the crate
//! and the other crates use, at the paths they have always used):
//!
//! - `acceptor.rs`: the server side — listener configurations, [`ClientAuth`], [`tls_incoming`];
//!   `inflight.rs`: its per-address bound on handshakes in flight.
//! - `dialer.rs`: the client side — dialer configurations, [`connect`], [`connect_lazy`],
//!   [`presented_certificates`].
//! - `verifiers.rs`: the peer and admin ports' client-certificate check by name.
//! - `credentials.rs`: the CA, certificate and key in use, swapped by a reload (SIGHUP).
//! - `files.rs`: [`TlsFiles`] and reading PEM certificates and keys; `provider.rs`: ring and
//!   ALPN `h2`; `names.rs`: DNS names of peers; `error.rs`: [`TlsError`].
//! - `certs.rs`: `tandemctl certs init` / `issue`; `cert_summary.rs` and `der.rs`: a
//!   certificate's subject, serial and expiry.
//!
//! IO it may do: TCP connections and TLS handshakes (listeners and dialers), reading the `[tls]`
//! files (CA, certificate, private key), and, in `certs.rs` only, writing the certificate and key
//! files `tandemctl certs` creates. It must not: speak gRPC or know the services (they get
//! connections already authorized), touch the database or the node's state, decide when to
//! reload or warn about expiry (`ops/cert_reload.rs`), or put a private key's contents in an error
//! or a log.

mod acceptor;
mod cert_summary;
pub mod certs;
pub mod credentials;
mod der;
mod dialer;
mod error;
mod files;
pub mod inflight;
mod names;
mod provider;
mod verifiers;

#[cfg(test)]
mod tests;

pub use acceptor::{ClientAuth, server_config, server_config_from, tls_incoming};
pub use credentials::{CertUse, Credentials};
pub use dialer::{
    client_config, client_config_from, connect, connect_lazy, presented_certificates,
};
pub use error::{TlsError, is_connection_refused};
pub use files::TlsFiles;
pub use names::peer_cert_names;
pub use provider::install_crypto_provider;
