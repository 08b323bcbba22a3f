//! The gateway's errors, and the gRPC status each becomes at the edge.

use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// This node does not admit clients; the node's own refusal, naming the active.
    #[error("{}", .0.message())]
    NotAdmitting(Status),
    #[error(
        "{what} are blocked on this pair (since {since}){reason}; try again once an administrator unblocks them"
    )]
    Blocked {
        what: &'static str,
        since: String,
        reason: String,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    RateLimited(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    Busy(String),
    /// The writer's answer to a write that did not commit, or whose outcome is unknown.
    #[error("{}", .0.message())]
    Write(Status),
    /// A read of the database failed.
    #[error("data.db: {0}")]
    Store(String),
}

impl From<sqlx::Error> for GatewayError {
    fn from(error: sqlx::Error) -> GatewayError {
        GatewayError::Store(error.to_string())
    }
}

impl From<GatewayError> for Status {
    fn from(error: GatewayError) -> Status {
        let message = error.to_string();
        match error {
            GatewayError::NotAdmitting(status) | GatewayError::Write(status) => status,
            GatewayError::Blocked { .. } => Status::failed_precondition(message),
            GatewayError::Invalid(_) => Status::invalid_argument(message),
            GatewayError::Unauthenticated(_) => Status::unauthenticated(message),
            GatewayError::RateLimited(_) => Status::resource_exhausted(message),
            GatewayError::NotFound(_) => Status::not_found(message),
            GatewayError::AlreadyExists(_) => Status::already_exists(message),
            GatewayError::Busy(_) | GatewayError::Store(_) => {
                Status::new(Code::Unavailable, message)
            }
        }
    }
}
