//! `PairClient` against two in-process gateways over real TLS (`fake_pair`): finding the active,
//! following refusals, skipping a dead node, resuming and re-issuing with the same request id,
//! and handing the caller what retrying cannot fix. No sleeps: every wait is an operation with
//! its own deadline.

mod fake_pair;

use std::time::{Duration, Instant};

use crate::client::{ClientError, ClientEvent, PairClient, PairConfig};
use fake_pair::{FakePair, Mode, PASSWORD, Received, closed_address, unrelated_ca};

fn config(addresses: [String; 2], ca_pem: &str) -> PairConfig {
    let mut config = PairConfig::new(addresses, ca_pem.as_bytes().to_vec());
    config.operation_timeout = Duration::from_secs(10);
    config.attempt_timeout = Duration::from_secs(3);
    config.connect_timeout = Duration::from_secs(2);
    config.backoff_min = Duration::from_millis(5);
    config.backoff_max = Duration::from_millis(50);
    config
}

fn pair_config(pair: &FakePair) -> PairConfig {
    config(pair.addresses.clone(), &pair.ca_pem)
}

fn methods_at(log: &[Received], node: usize) -> Vec<&'static str> {
    log.iter()
        .filter(|received| received.node == node)
        .map(|received| received.method)
        .collect()
}

#[tokio::test]
async fn connect_finds_the_active_and_sends_everything_there() {
    let pair = FakePair::start([Mode::Passive, Mode::Active], false).await;
    let mut client = PairClient::connect(pair_config(&pair)).await.unwrap();
    assert_eq!(
        client.active_address().as_deref(),
        Some(pair.addresses[1].as_str())
    );

    let session = client.login("gate-1", PASSWORD).await.unwrap();
    assert_eq!(session.address, pair.addresses[1]);
    assert_eq!(client.token(), Some(session.token.as_str()));
    let call = client.start_call("100", "200").await.unwrap();
    assert!(!call.replayed);
    let ended = client.end_call(&call.call_id, "normal").await.unwrap();
    assert_eq!(
        (ended.call_id.as_str(), ended.cause.as_str()),
        (call.call_id.as_str(), "normal")
    );
    client.logout().await.unwrap();
    assert_eq!(client.token(), None);

    let log = pair.log();
    assert!(
        methods_at(&log, 0).is_empty(),
        "the passive was asked: {log:?}"
    );
    assert_eq!(
        methods_at(&log, 1),
        ["login", "start_call", "end_call", "logout"]
    );
    let stats = client.stats();
    assert_eq!(
        (stats.retries, stats.resumes, stats.operations_ok),
        (0, 0, 4)
    );
}

#[tokio::test]
async fn a_refusal_is_followed_to_the_active_it_names_with_the_same_request_id() {
    // The watchers name no active, so the first attempt goes to the first address: the passive.
    let pair = FakePair::start([Mode::Passive, Mode::Active], true).await;
    let mut client = PairClient::new(pair_config(&pair)).unwrap();

    let session = client.login("gate-1", PASSWORD).await.unwrap();
    assert_eq!(session.address, pair.addresses[1]);

    let log = pair.log();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!((log[0].node, log[0].method), (0, "login"));
    assert_eq!((log[1].node, log[1].method), (1, "login"));
    assert_eq!(log[0].request_id, log[1].request_id);
    assert_eq!(log[1].request_id, session.request_id);
    assert_eq!(client.stats().refusals_followed, 1);
    let followed = ClientEvent::Followed {
        from: pair.addresses[0].clone(),
        to: pair.addresses[1].clone(),
    };
    assert!(client.drain_events().contains(&followed));
}

#[tokio::test]
async fn a_lost_answer_is_reissued_on_the_new_active_after_resuming_the_session() {
    let pair = FakePair::start([Mode::Active, Mode::Passive], false).await;
    let mut client = PairClient::connect(pair_config(&pair)).await.unwrap();
    client.login("gate-1", PASSWORD).await.unwrap();

    // Node 0 admits the call, loses its answer and hands over to node 1.
    pair.set_modes([Mode::ActiveLosingNextAnswer, Mode::Passive]);
    let call = client.start_call("100", "200").await.unwrap();
    assert!(
        call.replayed,
        "the retry must replay the first outcome: {call:?}"
    );
    assert_eq!(call.address, pair.addresses[1]);

    let log = pair.log();
    let starts: Vec<&Received> = log.iter().filter(|r| r.method == "start_call").collect();
    assert!(starts.len() >= 2, "{log:?}");
    assert!(
        starts.iter().all(|r| r.request_id == call.request_id),
        "{log:?}"
    );
    // On node 1 the session was resumed before the call was re-issued.
    let at_new_active = methods_at(&log, 1);
    let resume = at_new_active.iter().position(|m| *m == "resume");
    let start = at_new_active.iter().position(|m| *m == "start_call");
    assert!(resume.is_some() && resume < start, "{log:?}");
    assert!(client.stats().resumes >= 1);
    assert!(client.stats().longest_gap > Duration::ZERO);

    // Later requests stay on node 1 without resuming again.
    client.end_call(&call.call_id, "normal").await.unwrap();
    let resumes = pair.log().iter().filter(|r| r.method == "resume").count();
    assert_eq!(resumes, 1);
}

#[tokio::test]
async fn a_dead_node_is_skipped_after_a_failed_connection() {
    let pair = FakePair::start([Mode::Active, Mode::Passive], true).await;
    let dead = closed_address().await;
    let mut client = PairClient::new(config(
        [dead.clone(), pair.addresses[0].clone()],
        &pair.ca_pem,
    ))
    .unwrap();

    let session = client.login("gate-1", PASSWORD).await.unwrap();
    assert_eq!(session.address, pair.addresses[0]);
    let stats = client.stats();
    assert!(stats.retries >= 1 && stats.reconnects >= 1, "{stats:?}");
    let retried_from_dead = client.drain_events().iter().any(|event| {
        matches!(event, ClientEvent::Retrying { address, next, .. }
            if *address == dead && *next == pair.addresses[0])
    });
    assert!(retried_from_dead);
}

#[tokio::test]
async fn a_block_is_returned_to_the_caller_at_once() {
    let pair = FakePair::start([Mode::Active, Mode::Passive], false).await;
    let mut client = PairClient::connect(pair_config(&pair)).await.unwrap();
    client.login("gate-1", PASSWORD).await.unwrap();

    pair.set_modes([Mode::CallsBlocked, Mode::Passive]);
    let error = client.start_call("100", "200").await.unwrap_err();
    assert!(error.is_blocked(), "{error}");
    assert!(error.to_string().contains("calls are blocked"), "{error}");
    let starts = pair
        .log()
        .iter()
        .filter(|r| r.method == "start_call")
        .count();
    assert_eq!(starts, 1, "a block must not be retried");
    assert_eq!(client.stats().operations_failed, 1);
}

#[tokio::test]
async fn an_expired_session_is_reported_and_forgotten() {
    let pair = FakePair::start([Mode::Active, Mode::Passive], false).await;
    let mut client = PairClient::connect(pair_config(&pair)).await.unwrap();
    client.login("gate-1", PASSWORD).await.unwrap();

    pair.expire_sessions();
    let error = client.start_call("100", "200").await.unwrap_err();
    assert!(
        matches!(error, ClientError::Unauthenticated { .. }),
        "{error}"
    );
    assert_eq!(client.token(), None);
    let error = client.start_call("100", "200").await.unwrap_err();
    assert!(matches!(error, ClientError::NotLoggedIn { .. }), "{error}");
}

#[tokio::test]
async fn a_wrong_password_is_not_retried() {
    let pair = FakePair::start([Mode::Active, Mode::Passive], false).await;
    let mut client = PairClient::connect(pair_config(&pair)).await.unwrap();
    let error = client.login("gate-1", "wrong").await.unwrap_err();
    assert!(
        matches!(error, ClientError::Unauthenticated { .. }),
        "{error}"
    );
    assert_eq!(pair.log().len(), 1);
}

#[tokio::test]
async fn the_deadline_ends_an_operation_and_names_the_last_failure() {
    let pair = FakePair::start([Mode::Unavailable, Mode::Unavailable], false).await;
    let mut config = pair_config(&pair);
    config.operation_timeout = Duration::from_secs(1);
    let mut client = PairClient::new(config).unwrap();

    let started = Instant::now();
    let error = client.login("gate-1", PASSWORD).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    match &error {
        ClientError::Timeout { op, last, .. } => {
            assert_eq!(*op, "login");
            assert!(last.contains("no active node is known"), "{last}");
        }
        other => panic!("expected a timeout, got {other}"),
    }
    // Both nodes were tried, more than once each.
    let log = pair.log();
    assert!(
        methods_at(&log, 0).len() >= 2 && methods_at(&log, 1).len() >= 2,
        "{log:?}"
    );
}

#[tokio::test]
async fn connect_gives_up_naming_why_no_node_answered() {
    let addresses = [closed_address().await, closed_address().await];
    let pair = FakePair::start([Mode::Active, Mode::Passive], false).await;
    let mut config = config(addresses.clone(), &pair.ca_pem);
    config.operation_timeout = Duration::from_secs(1);
    let error = PairClient::connect(config).await.err().unwrap();
    match error {
        ClientError::Timeout {
            op: "connect",
            last,
            ..
        } => {
            assert!(
                last.contains(&addresses[0]) || last.contains(&addresses[1]),
                "{last}"
            );
        }
        other => panic!("expected a connect timeout, got {other}"),
    }
}

#[tokio::test]
async fn a_node_certified_by_another_ca_is_refused() {
    let pair = FakePair::start([Mode::Active, Mode::Passive], false).await;
    let mut config = config(pair.addresses.clone(), &unrelated_ca());
    config.operation_timeout = Duration::from_secs(1);
    let mut client = PairClient::new(config).unwrap();
    let error = client.login("gate-1", PASSWORD).await.unwrap_err();
    match error {
        ClientError::Timeout { last, .. } => {
            assert!(last.to_lowercase().contains("certificate"), "{last}");
        }
        other => panic!("expected a timeout, got {other}"),
    }
    assert!(
        pair.log().is_empty(),
        "a request got through: {:?}",
        pair.log()
    );
}

#[tokio::test]
async fn operations_without_a_session_fail_before_reaching_a_node() {
    let pair = FakePair::start([Mode::Active, Mode::Passive], false).await;
    let mut client = PairClient::connect(pair_config(&pair)).await.unwrap();
    let error = client.list_calls().await.unwrap_err();
    assert!(
        matches!(error, ClientError::NotLoggedIn { op: "list_calls" }),
        "{error}"
    );
    let error = client.end_call("call-1", "normal").await.unwrap_err();
    assert!(
        matches!(error, ClientError::NotLoggedIn { op: "end_call" }),
        "{error}"
    );
    assert!(pair.log().is_empty(), "{:?}", pair.log());
    client.login("gate-1", PASSWORD).await.unwrap();
    assert!(client.list_calls().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_client_and_its_operations_can_move_to_another_task() {
    let pair = FakePair::start([Mode::Active, Mode::Passive], false).await;
    let mut client = PairClient::connect(pair_config(&pair)).await.unwrap();
    let task = tokio::spawn(async move {
        client.login("gate-1", PASSWORD).await?;
        let call = client.start_call("100", "200").await?;
        client.end_call(&call.call_id, "").await
    });
    let ended = task.await.unwrap().unwrap();
    assert!(!ended.already_ended);
}
