//! A kept-open admin connection to one node, polled for its status: what the demo and the
//! benchmarks watch. Each poll is one status round trip, not a new TLS connection, so the times
//! they report are not inflated by handshakes.

use std::time::Duration;

use tandem_proto::admin::admin_client::AdminClient;
use tonic::transport::Channel;

use tandem_node::admin::status::Status;
use tandem_node::tls::TlsFiles;

/// How long one connect or one status call may take before the node counts as not answering.
const ANSWER_TIMEOUT: Duration = Duration::from_millis(300);

/// A status probe; reconnects when the node went away.
pub struct StatusProbe {
    address: String,
    files: TlsFiles,
    client: Option<AdminClient<Channel>>,
}

impl StatusProbe {
    pub fn new(address: String, files: TlsFiles) -> StatusProbe {
        StatusProbe {
            address,
            files,
            client: None,
        }
    }

    /// The node's status, or None if it does not answer within 300 ms.
    pub async fn status(&mut self) -> Option<Status> {
        if self.client.is_none() {
            let connect = crate::connect::connect_admin(&self.address, &self.files);
            self.client = tokio::time::timeout(ANSWER_TIMEOUT, connect)
                .await
                .ok()?
                .ok();
        }
        let client = self.client.as_mut()?;
        match tokio::time::timeout(ANSWER_TIMEOUT, crate::connect::fetch_status(client)).await {
            Ok(Ok(status)) => Some(status),
            _ => {
                self.client = None;
                None
            }
        }
    }

    /// True when the node answers as active and admitting.
    pub async fn serves(&mut self) -> bool {
        self.status()
            .await
            .is_some_and(|status| status.node.role == "active" && status.node.admitting)
    }
}
