//! `Failure`: a command that was refused or failed (exit status 1), and the helpers that turn an
//! admin service's answer into output or a failure.

use tandem_proto::admin as pb;

/// A failure to report: exit status 1 with this message.
#[derive(Debug)]
pub struct Failure(pub String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(error: E) -> Failure {
        Failure(error.to_string())
    }
}

/// The node's refusal, as it worded it.
pub fn rpc_failure(status: tonic::Status) -> Failure {
    Failure(status.message().to_string())
}

/// Prints a command's one-line answer, as text or `{"message": ...}`.
pub fn print_reply(
    result: Result<tonic::Response<pb::CommandReply>, tonic::Status>,
    json: bool,
) -> Result<(), Failure> {
    let message = result.map_err(rpc_failure)?.into_inner().message;
    if json {
        println!("{}", serde_json::json!({ "message": message }));
    } else {
        println!("{message}");
    }
    Ok(())
}
