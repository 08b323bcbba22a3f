//! What `PairClient` hands its caller when an operation does not succeed.
//!
//! Each variant says what the caller can do: fix the configuration (`Config`, `CaFile`), log in
//! again (`Unauthenticated`, `NotLoggedIn`), wait for an administrator or change the request
//! (`Refused`), or try again later (`Timeout`). Failures the client recovers from by itself
//! (a passive node, a broken connection, no active yet) never reach the caller unless they last
//! past the operation's deadline; then `Timeout` names the last one.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use tonic::Code;

/// Why a `PairClient` operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The configuration cannot work (a bad address, server name, CA or duration).
    #[error("PairClient configuration: {0}")]
    Config(String),
    /// The CA file could not be read.
    #[error("cannot read CA file {path}: {error}")]
    CaFile {
        /// The file named in the configuration.
        path: PathBuf,
        /// What the operating system said (in the message, so not also a `source`).
        error: io::Error,
    },
    /// The client refuses to send the request as given (e.g. a request id that is empty or
    /// longer than 128 bytes).
    #[error("{op}: {message}")]
    Invalid {
        /// The operation.
        op: &'static str,
        /// What is wrong with the request.
        message: String,
    },
    /// A node answered and refused the request itself: logins or calls are blocked by an
    /// administrator (`FAILED_PRECONDITION` without an active's address), the request is invalid,
    /// the call is unknown, too many failed logins... Retrying the same request will not help
    /// until something changes.
    #[error("{op} refused by {address}: {code:?}: {message}")]
    Refused {
        /// The operation ("login", "start_call"...).
        op: &'static str,
        /// The client address of the node that refused.
        address: String,
        /// The gRPC code of the refusal.
        code: Code,
        /// The node's explanation (for a block, it names the block).
        message: String,
    },
    /// The password or the token is wrong, or the session expired or was logged out. The client
    /// has forgotten its token; log in again with a password.
    #[error("{op}: not authenticated: {message}")]
    Unauthenticated {
        /// The operation ("login", "resume", "start_call"...).
        op: &'static str,
        /// The node's explanation.
        message: String,
    },
    /// The operation needs a session and the client has none: call `login` or `resume` first.
    #[error("{op}: no session; log in or resume first")]
    NotLoggedIn {
        /// The operation that needed the session.
        op: &'static str,
    },
    /// No node gave an answer within the operation's deadline. The request may or may not have
    /// been carried out; repeating it with the same request id (`start_call_with_request_id`,
    /// `end_call_with_request_id`) is safe and gives the first outcome.
    #[error("{op} did not succeed within {timeout:?}; last failure: {last}")]
    Timeout {
        /// The operation ("connect", "start_call"...).
        op: &'static str,
        /// The configured deadline.
        timeout: Duration,
        /// The last failure seen, with the address it came from.
        last: String,
    },
}

impl ClientError {
    /// The gRPC code of a refusal, if this is one.
    pub fn code(&self) -> Option<Code> {
        match self {
            ClientError::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// True when a node refused because logins or calls are blocked by an administrator
    /// (`FAILED_PRECONDITION` without an active's address to follow).
    pub fn is_blocked(&self) -> bool {
        self.code() == Some(Code::FailedPrecondition)
    }
}
