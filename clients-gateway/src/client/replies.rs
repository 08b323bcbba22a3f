//! What `PairClient`'s operations return: the gateway's replies, plus the request id the client
//! chose and the address that answered, so a caller can log exactly what was acknowledged.

use tandem_proto::gateway as pb;

/// An open session, from a password login or a resumed token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// The session token (secret): sent with every request and used to resume.
    pub token: String,
    /// The session's id (not secret): how logs and `tandemctl` name it.
    pub session_id: String,
    /// The user the session belongs to.
    pub user: String,
    /// True when a resume token was accepted (no password round).
    pub resumed: bool,
    /// Wall-clock milliseconds since the Unix epoch when the token expires.
    pub expires_at_ms: i64,
    /// The name of the node that answered.
    pub node: String,
    /// The client address that answered.
    pub address: String,
    /// The request id of the login that opened or resumed the session.
    pub request_id: String,
}

impl SessionInfo {
    pub(crate) fn from_reply(reply: pb::LoginReply, address: String, request_id: String) -> Self {
        SessionInfo {
            token: reply.token,
            session_id: reply.session_id,
            user: reply.user,
            resumed: reply.resumed,
            expires_at_ms: reply.expires_at_ms,
            node: reply.node,
            address,
            request_id,
        }
    }
}

/// A call the active admitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallStarted {
    /// The call's id, the CDR's primary key: needed to end the call.
    pub call_id: String,
    /// The request id every attempt of this `StartCall` carried.
    pub request_id: String,
    /// Wall-clock milliseconds since the Unix epoch when the call started.
    pub started_at_ms: i64,
    /// True when the answer is the stored outcome of an earlier attempt with the same id (the
    /// first attempt was carried out but its answer was lost).
    pub replayed: bool,
    /// The client address that answered.
    pub address: String,
}

/// A call's end and its CDR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallEnded {
    /// The call that ended.
    pub call_id: String,
    /// The request id every attempt of this `EndCall` carried.
    pub request_id: String,
    /// The cause in the CDR: the one asked for, or the earlier end's (e.g. "failover") when the
    /// call had already ended.
    pub cause: String,
    /// Wall-clock milliseconds since the Unix epoch when the call ended.
    pub ended_at_ms: i64,
    /// How long the call lasted, as the CDR says.
    pub duration_ms: i64,
    /// True when the call had already ended before this request.
    pub already_ended: bool,
    /// The client address that answered.
    pub address: String,
}

/// A running call of the session's user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallInfo {
    /// The call's id.
    pub call_id: String,
    /// The user who started it.
    pub user: String,
    /// The calling party, as given to `start_call`.
    pub from: String,
    /// The called party, as given to `start_call`.
    pub to: String,
    /// Wall-clock milliseconds since the Unix epoch when the call started.
    pub started_at_ms: i64,
    /// The node that admitted the call.
    pub node: String,
}

impl From<pb::Call> for CallInfo {
    fn from(call: pb::Call) -> CallInfo {
        CallInfo {
            call_id: call.call_id,
            user: call.user,
            from: call.from,
            to: call.to,
            started_at_ms: call.started_at_ms,
            node: call.node,
        }
    }
}
