//! Tests of the TLS folder, one file per part: handshakes on real sockets against certificates
//! made in a temporary directory (`support.rs`), and the certificate and DER readers.

mod acceptor;
mod certs;
mod credentials;
mod der;
mod dialer;
mod inflight;
mod support;
