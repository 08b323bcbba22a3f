//! Dialing: which servers a dialer trusts, and how `connect`, `connect_lazy` and the first call
//! fail.

use tokio::net::TcpListener;
use tonic::body::Body;
use tonic::codegen::http;
use tower::Service;

use super::support::{Pki, TIMEOUT, assert_refused, greeting, serve};
use crate::tls::error::error_chain;
use crate::tls::{ClientAuth, client_config, connect, connect_lazy, is_connection_refused};

#[tokio::test]
async fn client_refuses_a_server_of_another_cluster() {
    let pki = Pki::new();
    let other_pki = Pki::new();
    let (addr, _names) = serve(&other_pki, ClientAuth::None).await;

    let client = client_config(&pki.files("b"), false).unwrap();
    assert_refused(greeting(addr, client).await, "server of another CA");
}

#[tokio::test]
async fn connect_to_a_closed_port_is_connection_refused() {
    let pki = Pki::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);

    let err = connect(&addr, "a", pki.client("b"), TIMEOUT)
        .await
        .unwrap_err();

    assert!(is_connection_refused(&err), "{err}");
    assert!(err.to_string().contains(&addr), "{err}");
    assert!(err.to_string().contains("refused"), "{err}");
}

#[tokio::test]
async fn connect_checks_the_server_name() {
    let pki = Pki::new();
    let (addr, _names) = serve(&pki, ClientAuth::None).await;

    let err = connect(&addr.to_string(), "b", pki.client("b"), TIMEOUT)
        .await
        .unwrap_err();

    assert!(!is_connection_refused(&err), "{err}");
    assert!(err.to_string().contains("not valid for name"), "{err}");
}

/// With TLS 1.3 the client's handshake is over before the server checks the client
/// certificate, so `connect` succeeds and the refusal arrives with the first call.
#[tokio::test]
async fn a_refused_client_certificate_fails_at_the_latest_on_the_first_call() {
    let pki = Pki::new();
    let (addr, _names) = serve(&pki, ClientAuth::Named("b".to_string())).await;

    let outcome = match connect(&addr.to_string(), "a", pki.client("a"), TIMEOUT).await {
        Err(err) => err.to_string(),
        Ok(mut channel) => {
            let request = http::Request::builder()
                .uri("http://tandem/test.Test/Peer")
                .body(Body::empty())
                .unwrap();
            let ready = std::future::poll_fn(|cx| channel.poll_ready(cx)).await;
            let err = match ready {
                Err(err) => err,
                Ok(()) => channel.call(request).await.unwrap_err(),
            };
            error_chain(&err)
        }
    };

    assert!(outcome.contains("BadCertificate"), "{outcome}");
}

#[tokio::test]
async fn connect_lazy_dials_on_first_use() {
    let pki = Pki::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);

    let mut channel = connect_lazy(&addr, "a", pki.client("b"), TIMEOUT).unwrap();
    let request = http::Request::builder()
        .uri("http://tandem/test.Test/Peer")
        .body(Body::empty())
        .unwrap();
    std::future::poll_fn(|cx| channel.poll_ready(cx))
        .await
        .unwrap();
    let err = channel.call(request).await.unwrap_err();
    assert!(is_connection_refused(&err), "{err}");
}
