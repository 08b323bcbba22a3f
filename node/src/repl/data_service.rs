//! The gRPC `Data` service on the client port (DESIGN.md §4, Data API).
//!
//! `Execute` goes to the writer and returns once the write is released (sync: acknowledged by the
//! peer). `Query` reads from the reader pool, on the passive only with `allow_stale`. Refusals on
//! the passive are FAILED_PRECONDITION, and carry the active's client address in the message and
//! in the `tandem-active-client-address` metadata key (DESIGN.md §5).

use tandem_proto::data as pb;
use tandem_replication::data_api::{self, DataError, Mode};
use tokio::sync::oneshot;
use tonic::{Request, Response, Status};

use super::convert;
use super::handle::Replication;
use super::messages::{WriteFailure, WriteRequest};

/// The metadata key that names the active's client address on a refusal.
pub const ACTIVE_ADDRESS_KEY: &str = "tandem-active-client-address";
/// Longest request id accepted.
const REQUEST_ID_BYTES_MAX: usize = 128;

#[derive(Clone)]
pub struct DataService {
    pub repl: Replication,
}

impl DataService {
    /// FAILED_PRECONDITION naming the active, or UNAVAILABLE when no active is known.
    pub fn not_active(&self) -> Status {
        not_active(&self.repl)
    }
}

pub fn not_active(repl: &Replication) -> Status {
    let status = repl.inner.driver.status.borrow();
    let config = &repl.inner.config;
    let name = &status.node.name;
    if status.node.role == "active" {
        // Active but not admitting: a stall or a switchover fence.
        return Status::unavailable(format!(
            "{name} is active but not admitting clients right now (fenced); retry"
        ));
    }
    if status.peer.role == "active" && status.peer.state != "failed" {
        let address = config.peer.client_address.clone();
        let mut refusal = Status::failed_precondition(format!(
            "{name} is {}; the active node is {} at {address}",
            status.node.role, status.peer.name
        ));
        if let Ok(value) = address.parse() {
            refusal.metadata_mut().insert(ACTIVE_ADDRESS_KEY, value);
        }
        return refusal;
    }
    Status::unavailable(format!(
        "{name} is {} and no active node is known; retry",
        status.node.role
    ))
}

pub fn data_error_status(error: DataError) -> Status {
    match error {
        DataError::Timeout { .. } => Status::deadline_exceeded(error.to_string()),
        DataError::Connection(_) => Status::unavailable(error.to_string()),
        other => Status::invalid_argument(other.to_string()),
    }
}

pub fn failure_status(repl: &Replication, failure: WriteFailure) -> Status {
    match failure {
        WriteFailure::NotActive => not_active(repl),
        WriteFailure::Unavailable(reason) => Status::unavailable(reason),
        WriteFailure::OutcomeUnknown(reason) => {
            Status::unavailable(format!("outcome unknown: {reason}"))
        }
        WriteFailure::Invalid(error) => data_error_status(error),
        WriteFailure::Store(reason) => Status::unavailable(format!("data.db: {reason}")),
    }
}

/// The checks on an `Execute` request before it reaches the writer: a request id of bounded
/// size, at least one statement, and the size bounds of `limits`.
pub fn check_execute_request(
    request_id: &str,
    statements: &[data_api::Statement],
    limits: &data_api::Limits,
) -> Result<(), Status> {
    if request_id.len() > REQUEST_ID_BYTES_MAX {
        return Err(Status::invalid_argument(format!(
            "request_id is {} bytes; at most {REQUEST_ID_BYTES_MAX}",
            request_id.len()
        )));
    }
    if request_id.trim().is_empty() {
        return Err(Status::invalid_argument(
            "request_id is empty; every Execute carries a unique id so a retry is idempotent",
        ));
    }
    if statements.is_empty() {
        return Err(Status::invalid_argument("Execute has no statements"));
    }
    limits.check(statements).map_err(data_error_status)
}

impl Replication {
    /// Runs a client write and waits for its release.
    pub async fn execute(
        &self,
        request_id: String,
        statements: Vec<data_api::Statement>,
    ) -> Result<super::messages::WriteDone, Status> {
        check_execute_request(&request_id, &statements, &self.inner.limits)?;
        if !self.inner.driver.admission.admits() {
            return Err(not_active(self));
        }
        let (reply, answer) = oneshot::channel();
        let request = WriteRequest {
            request_id,
            statements,
            mode: Mode::Execute,
            merge: None,
            reply,
        };
        self.inner
            .writes
            .send(request)
            .await
            .map_err(|_| Status::unavailable("the node is stopping"))?;
        match answer.await {
            Ok(Ok(done)) => Ok(done),
            Ok(Err(failure)) => Err(failure_status(self, failure)),
            Err(_) => Err(Status::unavailable(
                "outcome unknown: the node stopped before answering",
            )),
        }
    }

    /// Runs one read-only statement.
    pub async fn query(
        &self,
        statement: data_api::Statement,
        allow_stale: bool,
    ) -> Result<data_api::QueryResult, Status> {
        if !allow_stale && !self.inner.driver.admission.admits() {
            return Err(not_active(self));
        }
        let mut connection = self
            .store()
            .reader()
            .acquire()
            .await
            .map_err(|error| Status::unavailable(format!("data.db: {error}")))?;
        let result = data_api::query(&mut connection, &statement, &self.inner.limits)
            .await
            .map_err(data_error_status)?;
        if !allow_stale {
            // Everything the read could have seen is at or before the log's end read after it.
            let index: Option<i64> = sqlx::query_scalar("SELECT max(idx) FROM _tandem_log")
                .fetch_one(&mut *connection)
                .await
                .map_err(|error| Status::unavailable(format!("data.db: {error}")))?;
            drop(connection);
            self.read_barrier(u64::try_from(index.unwrap_or(0)).unwrap_or(0))
                .await?;
        }
        Ok(result)
    }

    /// A strict read returns only once what it saw is released as a write would be (sync: on
    /// the peer): otherwise it could show a write the active committed but the peer never
    /// received, and a failover would take that value back after a client had read it.
    async fn read_barrier(&self, index: u64) -> Result<(), Status> {
        // Already on the peer (the common case): no trip through the ship task.
        if index == 0 || index <= self.inner.status.borrow().peer_acked_index {
            return Ok(());
        }
        let (reply, answer) = oneshot::channel();
        self.inner
            .ship
            .send(super::messages::ShipInput::ReadBarrier { index, reply })
            .await
            .map_err(|_| Status::unavailable("the node is stopping"))?;
        match answer.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(WriteFailure::NotActive)) => Err(not_active(self)),
            Ok(Err(failure)) => Err(Status::unavailable(format!(
                "the read saw writes the peer has not acknowledged, and they may not survive a \
                 failover; retry: {}",
                failure_status(self, failure).message()
            ))),
            Err(_) => Err(Status::unavailable(
                "the node stopped before the read was confirmed; retry",
            )),
        }
    }
}

#[tonic::async_trait]
impl pb::data_server::Data for DataService {
    async fn execute(
        &self,
        request: Request<pb::ExecuteRequest>,
    ) -> Result<Response<pb::ExecuteReply>, Status> {
        let request = request.into_inner();
        let statements = request
            .statements
            .into_iter()
            .map(convert::statement_from_pb)
            .collect();
        let done = self.repl.execute(request.request_id, statements).await?;
        Ok(Response::new(pb::ExecuteReply {
            rows_affected: done.rows_affected,
            last_insert_rowid: done.last_insert_rowid,
            log_index: done.log_index,
            replayed: done.replayed,
        }))
    }

    async fn query(
        &self,
        request: Request<pb::QueryRequest>,
    ) -> Result<Response<pb::QueryReply>, Status> {
        let request = request.into_inner();
        let Some(statement) = request.statement else {
            return Err(Status::invalid_argument("Query has no statement"));
        };
        let result = self
            .repl
            .query(convert::statement_from_pb(statement), request.allow_stale)
            .await?;
        Ok(Response::new(pb::QueryReply {
            columns: result.columns,
            rows: result
                .rows
                .iter()
                .map(|row| pb::Row {
                    values: row.iter().map(convert::value_to_pb).collect(),
                })
                .collect(),
        }))
    }
}
