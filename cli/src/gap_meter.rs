//! Measures the client gap of a switchover: the longest time no node admitted clients, as seen
//! by polling both nodes' status while the switchover runs. Used by the demo and the benchmark.
//!
//! The figure is an upper bound: it includes up to one poll interval plus one status round trip.

use std::time::{Duration, Instant};

use tandem_proto::admin::SwitchoverRequest;
use tandem_proto::admin::admin_client::AdminClient;
use tonic::transport::Channel;

use crate::connect::fetch_status;

/// How often each node is polled.
pub const GAP_POLL: Duration = Duration::from_millis(2);

/// What one switchover showed.
#[derive(Debug)]
pub struct SwitchoverGap {
    /// Longest interval between two polls in which some node admitted clients.
    pub longest_gap: Duration,
    /// The admin service's answer.
    pub message: String,
}

/// Sends `switchover` to `from` over `command` and polls `from` and `to` until `to` admits.
pub async fn measure_switchover(
    from: &mut AdminClient<Channel>,
    to: &mut AdminClient<Channel>,
    mut command: AdminClient<Channel>,
    timeout: Duration,
) -> Result<SwitchoverGap, String> {
    let start = Instant::now();
    let mut switchover = tokio::spawn(async move {
        command
            .switchover(SwitchoverRequest::default())
            .await
            .map(|reply| reply.into_inner().message)
            .map_err(|status| status.message().to_string())
    });
    let mut outcome: Option<String> = None;
    let mut last_admitted = start;
    let mut longest_gap = Duration::ZERO;
    loop {
        if start.elapsed() > timeout {
            switchover.abort();
            return Err(format!("the switchover did not finish within {timeout:?}"));
        }
        let (from_status, to_status) = tokio::join!(fetch_status(from), fetch_status(to));
        let now = Instant::now();
        let from_admits = from_status.is_ok_and(|s| s.node.admitting);
        let to_admits = to_status.is_ok_and(|s| s.node.admitting && s.node.role == "active");
        if from_admits || to_admits {
            longest_gap = longest_gap.max(now - last_admitted);
            last_admitted = now;
        }
        if outcome.is_none() && switchover.is_finished() {
            let finished = (&mut switchover).await.map_err(|e| e.to_string())?;
            outcome = Some(finished.map_err(|refusal| format!("switchover refused: {refusal}"))?);
        }
        if let Some(message) = outcome.as_ref()
            && to_admits
        {
            return Ok(SwitchoverGap {
                longest_gap,
                message: message.clone(),
            });
        }
        tokio::time::sleep(GAP_POLL).await;
    }
}
