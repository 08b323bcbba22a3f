//! The role commands: `switchover` (at once, or `--when-idle`), `failover-now`, `monitoring` and
//! `maintenance`. The node decides; these only ask and print its answer.

use tandem_proto::admin as pb;
use tandem_proto::admin::admin_client::AdminClient;
use tonic::transport::Channel;

use crate::args::{MonitoringMode, OnOff};
use crate::failure::{Failure, print_reply};

/// The arguments of `switchover`.
pub struct SwitchoverArgs {
    pub when_idle: bool,
    pub block_new_calls: bool,
    /// `--timeout` as typed (checked as a usage error before this runs).
    pub timeout: Option<String>,
    pub cancel: bool,
}

pub async fn switchover(
    client: &mut AdminClient<Channel>,
    args: SwitchoverArgs,
    json: bool,
) -> Result<(), Failure> {
    let timeout_ms = match args.timeout {
        Some(text) => {
            let duration = tandem_node::config::duration::parse_duration(&text)
                .map_err(|e| Failure(format!("--timeout: {e}")))?;
            u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
        }
        None => 0,
    };
    let request = pb::SwitchoverRequest {
        when_idle: args.when_idle,
        block_new_calls: args.block_new_calls,
        timeout_ms,
        cancel: args.cancel,
    };
    print_reply(client.switchover(request).await, json)
}

pub async fn failover_now(
    client: &mut AdminClient<Channel>,
    force: bool,
    json: bool,
) -> Result<(), Failure> {
    print_reply(
        client.failover_now(pb::FailoverNowRequest { force }).await,
        json,
    )
}

pub async fn monitoring(
    client: &mut AdminClient<Channel>,
    mode: MonitoringMode,
    json: bool,
) -> Result<(), Failure> {
    let mode = match mode {
        MonitoringMode::Suspend => "suspended",
        MonitoringMode::Resume => "on",
        MonitoringMode::Stop => "stopped",
    };
    let request = pb::SetMonitoringRequest { mode: mode.into() };
    print_reply(client.set_monitoring(request).await, json)
}

pub async fn maintenance(
    client: &mut AdminClient<Channel>,
    state: OnOff,
    json: bool,
) -> Result<(), Failure> {
    let request = pb::SetMaintenanceRequest {
        on: matches!(state, OnOff::On),
    };
    print_reply(client.set_maintenance(request).await, json)
}
