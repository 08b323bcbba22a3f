//! HTTP on `[listen] http`: `/health` on both nodes, `/active` only on the active (and on the
//! other node after a failover), `/metrics` and the status page.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::*;
use tandem_harness::{Cluster, ClusterSpec};

/// GET `path`; returns the status code and the body.
fn get(address: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no status line in {response:?}"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, body)| body.to_string());
    Ok((code, body))
}

#[test]
fn health_active_metrics_and_the_status_page_follow_the_roles() -> anyhow::Result<()> {
    let _serial = serial();
    let mut cluster = Cluster::start(ClusterSpec::new(), &bins())?;
    wait_steady(&cluster, "a")?;
    let (a, b) = (cluster.addrs("a").http, cluster.addrs("b").http);

    phase("/health on both; /active only on a");
    assert_eq!(get(a, "/health")?.0, 200);
    assert_eq!(get(b, "/health")?.0, 200);
    assert_eq!(get(a, "/active")?, (200, "active\n".to_string()));
    assert_eq!(get(b, "/active")?, (503, "passive\n".to_string()));

    phase("/metrics in Prometheus text");
    let (code, metrics) = get(a, "/metrics")?;
    assert_eq!(code, 200);
    assert!(
        metrics.contains("tandem_role{role=\"active\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tandem_peer_state{state=\"ok\"} 1"),
        "{metrics}"
    );
    let (_, passive_metrics) = get(b, "/metrics")?;
    assert!(passive_metrics.contains("tandem_role{role=\"passive\"} 1"));

    phase("the status page names both nodes and the recent events");
    let (code, page) = get(a, "/")?;
    assert_eq!(code, 200);
    assert!(page.contains("<title>tandem"), "{page}");
    assert!(page.contains("this node: a"), "{page}");
    assert!(page.contains("peer: b"), "{page}");
    assert!(page.contains("role_change"), "{page}");

    phase("after a SIGKILL of a, b answers /active");
    cluster.node_mut("a").kill()?;
    wait_serving(&cluster, "b")?;
    assert_eq!(get(b, "/active")?.0, 200);
    let (_, metrics) = get(b, "/metrics")?;
    assert!(
        metrics.contains("tandem_role{role=\"active\"} 1"),
        "{metrics}"
    );
    Ok(())
}
