//! A kept-open admin connection to one node, polled for its status.

use std::time::Duration;

use tandem_node::status::Status;
use tandem_node::tls::TlsFiles;
use tandem_proto::admin::admin_client::AdminClient;
use tonic_channel::Channel;

mod tonic_channel {
    pub use tandem_node::ctl::AdminChannel as Channel;
}

/// A status probe; reconnects when the node went away.
pub struct Probe {
    address: String,
    files: TlsFiles,
    client: Option<AdminClient<Channel>>,
}

impl Probe {
    pub fn new(address: String, files: TlsFiles) -> Probe {
        Probe {
            address,
            files,
            client: None,
        }
    }

    /// The node's status, or None if it does not answer within 300 ms.
    pub async fn status(&mut self) -> Option<Status> {
        if self.client.is_none() {
            let connect = tandem_node::ctl::connect_admin(&self.address, &self.files);
            self.client = tokio::time::timeout(Duration::from_millis(300), connect)
                .await
                .ok()?
                .ok();
        }
        let client = self.client.as_mut()?;
        match tokio::time::timeout(
            Duration::from_millis(300),
            tandem_node::ctl::fetch_status(client),
        )
        .await
        {
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
