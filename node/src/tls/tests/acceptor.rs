//! Listeners: who gets in on the peer, admin and client ports, the per-address bound on
//! handshakes, and tonic serving `tls_incoming`.

use std::convert::Infallible;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server;
use tonic::body::Body;
use tonic::codegen::http;
use tonic::transport::server::{Connected, TcpConnectInfo, TlsConnectInfo};
use tower::Service;

use super::support::{Pki, TIMEOUT, assert_refused, greeting, serve};
use crate::tls::{
    ClientAuth, TlsError, certs, client_config, connect, peer_cert_names, server_config,
    tls_incoming,
};

#[tokio::test]
async fn one_address_holds_a_bounded_number_of_silent_handshakes() {
    let pki = Pki::new();
    let (addr, mut names) = serve(&pki, ClientAuth::None).await;
    // Silent connections: TCP only, never a ClientHello.
    let mut silent = Vec::new();
    for _ in 0..crate::tls::inflight::PER_ADDRESS_MAX {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    // The next connection from the same address ends the oldest silent one; it still gets
    // through itself.
    let anonymous = client_config(&pki.files("b"), false).unwrap();
    assert_eq!(greeting(addr, anonymous).await.unwrap(), b"ok");
    assert!(names.recv().await.unwrap().is_empty());
    let mut byte = [0u8; 1];
    let ended = silent[0].read(&mut byte).await;
    assert!(
        matches!(ended, Ok(0) | Err(_)),
        "the oldest silent connection was closed: {ended:?}"
    );
}

#[tokio::test]
async fn peer_port_accepts_only_the_named_peer() {
    let pki = Pki::new();
    let other_pki = Pki::new();
    let (addr, mut names) = serve(&pki, ClientAuth::Named("b".to_string())).await;

    tracing::info!("--- the configured peer b gets in");
    assert_eq!(greeting(addr, pki.client("b")).await.unwrap(), b"ok");
    assert_eq!(
        names.recv().await.unwrap(),
        ["b", "tandem-node", "localhost"]
    );

    tracing::info!("--- a, admin, b from another CA and a client without certificate do not");
    assert_refused(greeting(addr, pki.client("a")).await, "a");
    assert_refused(greeting(addr, pki.client("admin")).await, "admin");
    let foreign_b = pki.client_with_foreign_cert(&other_pki, "b");
    assert_refused(greeting(addr, foreign_b).await, "b of another CA");
    let anonymous = client_config(&pki.files("b"), false).unwrap();
    assert_refused(greeting(addr, anonymous).await, "no certificate");
    assert!(
        names.try_recv().is_err(),
        "a refused connection was yielded"
    );
}

#[tokio::test]
async fn admin_port_accepts_admin_this_node_and_its_peer_from_the_cluster_ca() {
    let pki = Pki::new();
    let other_pki = Pki::new();
    let admin = ClientAuth::Admin {
        node: "a".into(),
        peer: "b".into(),
    };
    let (addr, mut names) = serve(&pki, admin).await;

    assert_eq!(greeting(addr, pki.client("admin")).await.unwrap(), b"ok");
    assert_eq!(names.recv().await.unwrap(), ["admin"]);
    assert_eq!(greeting(addr, pki.client("b")).await.unwrap(), b"ok");
    assert_eq!(
        names.recv().await.unwrap(),
        ["b", "tandem-node", "localhost"]
    );

    assert_eq!(greeting(addr, pki.client("a")).await.unwrap(), b"ok");
    assert_eq!(
        names.recv().await.unwrap(),
        ["a", "tandem-node", "localhost"]
    );

    // A node of another pair that shares this CA: the right CA, not an admin.
    certs::issue_cert(pki.dir.path(), "c", 30).unwrap();
    assert_refused(greeting(addr, pki.client("c")).await, "another pair's node");
    let foreign_admin = pki.client_with_foreign_cert(&other_pki, "admin");
    assert_refused(greeting(addr, foreign_admin).await, "admin of another CA");
    let anonymous = client_config(&pki.files("admin"), false).unwrap();
    assert_refused(greeting(addr, anonymous).await, "no certificate");
    assert!(
        names.try_recv().is_err(),
        "a refused connection was yielded"
    );
}

#[tokio::test]
async fn client_port_needs_no_client_certificate() {
    let pki = Pki::new();
    let (addr, mut names) = serve(&pki, ClientAuth::None).await;

    let anonymous = client_config(&pki.files("b"), false).unwrap();
    assert_eq!(greeting(addr, anonymous).await.unwrap(), b"ok");
    assert!(names.recv().await.unwrap().is_empty());
}

#[test]
fn peer_name_must_be_a_node_name() {
    let pki = Pki::new();
    for name in ["localhost", "tandem-node", "127.0.0.1", "a b", ""] {
        let auth = ClientAuth::Named(name.to_string());
        let err = server_config(&pki.files("a"), auth).unwrap_err();
        assert!(matches!(err, TlsError::InvalidName { .. }), "{name}: {err}");
    }
}

/// tonic's `Request::peer_certs()` looks for exactly this connect info.
fn assert_peer_certs_reach_requests<T>()
where
    T: Connected<ConnectInfo = TlsConnectInfo<TcpConnectInfo>>,
{
}

#[tokio::test]
async fn tonic_serves_tls_incoming_and_requests_see_the_peer() {
    assert_peer_certs_reach_requests::<server::TlsStream<TcpStream>>();
    let pki = Pki::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let config = server_config(&pki.files("a"), ClientAuth::Named("b".to_string())).unwrap();
    let incoming = tls_incoming(listener, config, "test");
    // Answers every call with the caller's certificate names in a header.
    let service = tower::service_fn(|request: http::Request<Body>| async move {
        let certs = tonic::Request::from_http(request)
            .peer_certs()
            .unwrap_or_default();
        let response = http::Response::builder()
            .header("grpc-status", "0")
            .header("x-peer", peer_cert_names(&certs).join(","))
            .body(Body::empty())
            .unwrap();
        Ok::<_, Infallible>(response)
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder().serve_with_incoming_shutdown(
            service,
            incoming,
            async {
                let _ = stopped.await;
            },
        ),
    );

    let mut channel = connect(&addr, "a", pki.client("b"), TIMEOUT).await.unwrap();
    let request = http::Request::builder()
        .method("POST")
        .uri("http://tandem/test.Test/Peer")
        .header("content-type", "application/grpc")
        .body(Body::empty())
        .unwrap();
    std::future::poll_fn(|cx| channel.poll_ready(cx))
        .await
        .unwrap();
    let response = channel.call(request).await.unwrap();
    assert_eq!(response.headers()["x-peer"], "b,tandem-node,localhost");

    drop(channel);
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}
