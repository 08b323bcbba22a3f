//! Free TCP ports on 127.0.0.1 for the listeners of a test cluster.
//!
//! A port is found by binding `127.0.0.1:0`, reading the port the kernel chose and closing the
//! socket again. Between that close and the node's own bind another process could take the port;
//! nothing can rule that out, but the kernel hands out `:0` ports spread over the whole ephemeral
//! range, so the window is small. Within this process a port is never handed out twice, so two
//! clusters of one test binary cannot collide with each other.
//!
//! This is not a port reservation service: it does not hold ports open.

use std::collections::HashSet;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::{Mutex, OnceLock};

/// How many times to ask the kernel for a port before giving up. Only reached if the kernel keeps
/// returning ports this process already handed out, which means the ephemeral range is nearly
/// exhausted; the caller then gets an error instead of a loop.
const ATTEMPTS_MAX: usize = 1000;

/// The four listeners of one node, all on 127.0.0.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeAddrs {
    /// `[listen] peer`: keep-alives and replication from the other node arrive here.
    pub peer: SocketAddr,
    /// `[listen] client`: the gateway and the data API; never proxied.
    pub client: SocketAddr,
    /// `[listen] admin`: where `tandemctl --config` connects.
    pub admin: SocketAddr,
    /// `[listen] http`: status page, `/metrics`, `/health` and `/active`.
    pub http: SocketAddr,
}

impl NodeAddrs {
    /// Picks four distinct free ports.
    pub fn allocate() -> io::Result<NodeAddrs> {
        Ok(NodeAddrs {
            peer: free_addr()?,
            client: free_addr()?,
            admin: free_addr()?,
            http: free_addr()?,
        })
    }
}

/// A free port on 127.0.0.1 that this process has not handed out before.
pub fn free_port() -> io::Result<u16> {
    for _ in 0..ATTEMPTS_MAX {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        if handed_out()
            .lock()
            .map_err(|_| io::Error::other("port registry poisoned"))?
            .insert(port)
        {
            return Ok(port);
        }
    }
    Err(io::Error::other(format!(
        "no fresh port on 127.0.0.1 after {ATTEMPTS_MAX} attempts"
    )))
}

/// `127.0.0.1:<free_port()>`.
pub fn free_addr() -> io::Result<SocketAddr> {
    Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?)))
}

/// Every port this process handed out. It only grows: a test binary uses a few hundred ports at
/// most, far below the ~28,000 of the ephemeral range.
fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(|| Mutex::new(HashSet::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_never_handed_out_twice() {
        let ports: Vec<u16> = (0..200).map(|_| free_port().unwrap()).collect();
        let unique: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(unique.len(), ports.len());
    }

    #[test]
    fn a_handed_out_port_can_be_bound() {
        let addr = free_addr().unwrap();
        TcpListener::bind(addr).unwrap();
    }

    #[test]
    fn node_addrs_are_distinct() {
        let addrs = NodeAddrs::allocate().unwrap();
        let ports: HashSet<u16> = [addrs.peer, addrs.client, addrs.admin, addrs.http]
            .iter()
            .map(|a| a.port())
            .collect();
        assert_eq!(ports.len(), 4);
    }
}
