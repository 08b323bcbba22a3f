//! `alerts test`: the node sends a test mail through `[alerts]` now and reports the server's
//! answer.

use tandem_proto::admin as pb;
use tandem_proto::admin::admin_client::AdminClient;
use tonic::transport::Channel;

use crate::failure::{Failure, print_reply};

pub async fn test(client: &mut AdminClient<Channel>, json: bool) -> Result<(), Failure> {
    print_reply(client.alerts_test(pb::AlertsTestRequest {}).await, json)
}
