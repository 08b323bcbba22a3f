//! The per-address bound on handshakes in flight.

use std::net::IpAddr;
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::tls::inflight::{InFlight, PER_ADDRESS_MAX};

#[tokio::test]
async fn past_the_bound_the_oldest_handshake_of_that_address_ends() {
    let in_flight = Arc::new(InFlight::default());
    let (loris, other): (IpAddr, IpAddr) =
        ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
    // Each task holds a sender; a receiver sees it dropped when the task is aborted.
    let mut watchers = Vec::new();
    for _ in 0..PER_ADDRESS_MAX {
        let (hold, watch) = oneshot::channel::<()>();
        watchers.push(watch);
        let evicted = in_flight.spawn(loris, |_| async move {
            let _hold = hold;
            std::future::pending::<()>().await;
        });
        assert!(!evicted);
    }
    let (hold, _other_watch) = oneshot::channel::<()>();
    assert!(!in_flight.spawn(other, |_| async move {
        let _hold = hold;
        std::future::pending::<()>().await;
    }));
    assert_eq!(in_flight.count(loris), PER_ADDRESS_MAX);

    let evicted = in_flight.spawn(loris, |_| std::future::pending::<()>());
    assert!(evicted, "the address is at the bound");
    assert_eq!(in_flight.count(loris), PER_ADDRESS_MAX);
    let mut watchers = watchers.into_iter();
    let oldest = watchers.next().unwrap();
    assert!(oldest.await.is_err(), "the oldest handshake was ended");
    assert_eq!(
        in_flight.count(other),
        1,
        "another address keeps its handshake"
    );
}

#[tokio::test]
async fn a_finished_handshake_leaves_no_entry() {
    let in_flight = Arc::new(InFlight::default());
    let address: IpAddr = "127.0.0.1".parse().unwrap();
    let (finished, finished_rx) = oneshot::channel();
    let handle = in_flight.clone();
    in_flight.spawn(address, move |id| async move {
        handle.done(address, id);
        let _ = finished.send(());
    });
    finished_rx.await.unwrap();
    assert_eq!(in_flight.count(address), 0);
}
