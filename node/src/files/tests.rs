//! Tests of the file replication driver's parts that need no peer: the bounded lock the peer's
//! requests take.

use std::time::Duration;

use super::locks::lock_within;

#[tokio::test]
async fn a_peer_request_gives_up_on_an_entry_this_node_holds() {
    let lock = tokio::sync::Mutex::new(());
    let held = lock.lock().await;
    let refused = lock_within(&lock, Duration::from_millis(20), "recordings")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable);
    assert!(
        refused.message().contains("[[files]] recordings"),
        "{refused:?}"
    );
    drop(held);
    assert!(
        lock_within(&lock, Duration::from_millis(20), "recordings")
            .await
            .is_ok()
    );
}
