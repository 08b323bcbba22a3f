//! A gRPC status as one line of text, with the causes tonic hides behind "transport error".

use std::error::Error;

use tonic::Status;

/// How many nested causes are spelled out at most (a chain is short in practice; the bound
/// only guards against a cycle).
const CAUSES_MAX: usize = 8;

/// `"Unavailable: transport error: connection refused"`: the code, the message, then each
/// cause that adds something.
pub fn describe_status(status: &Status) -> String {
    let mut text = format!("{:?}: {}", status.code(), status.message());
    let mut cause = status.source();
    for _ in 0..CAUSES_MAX {
        let Some(error) = cause else { break };
        let said = error.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = error.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_and_message_are_named() {
        let status = Status::unavailable("no active node is known");
        assert_eq!(
            describe_status(&status),
            "Unavailable: no active node is known"
        );
    }
}
