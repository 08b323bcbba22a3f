//! Protobuf edges of replication: log batches and refusals on the peer link, values of the Data
//! API. Everything from the wire is checked here; a malformed message becomes an error naming
//! the field, never a panic.

use tandem_proto::data as dpb;
use tandem_proto::peer as pb;
use tandem_replication::data_api::{Statement, Value};
use tandem_replication::log::{
    Batch, EntryContent, HashedEntry, Hlc, LogTerm, MalformedBatch, Operation, Refusal,
};

pub fn term_to_pb(term: &LogTerm) -> pb::Term {
    pb::Term {
        epoch: term.epoch,
        node: term.node.clone(),
        priority: term.priority,
    }
}

pub fn term_from_pb(term: Option<&pb::Term>, field: &str) -> Result<LogTerm, String> {
    let term = term.ok_or_else(|| format!("{field} is missing"))?;
    if term.node.is_empty() {
        return Err(format!("{field} has no node"));
    }
    Ok(LogTerm::new(term.epoch, term.node.clone(), term.priority))
}

pub fn batch_to_pb(batch: &Batch) -> pb::LogBatch {
    pb::LogBatch {
        term: Some(term_to_pb(&batch.term)),
        entries: batch.entries.iter().map(entry_to_pb).collect(),
        checksum: batch.checksum,
    }
}

fn entry_to_pb(entry: &HashedEntry) -> pb::LogEntry {
    let content = &entry.content;
    pb::LogEntry {
        term: Some(term_to_pb(&content.term)),
        index: content.index,
        table: content.table.clone(),
        primary_key: content.primary_key.clone(),
        operation: match content.operation {
            Operation::Insert => pb::Operation::Insert,
            Operation::Update => pb::Operation::Update,
            Operation::Delete => pb::Operation::Delete,
        } as i32,
        new_image: content.new_image.clone(),
        old_image: content.old_image.clone(),
        hlc_ms: content.hlc.ms,
        hlc_logical: content.hlc.logical,
        hlc_node: content.hlc.node.clone(),
        origin: content.origin.clone(),
        txid: content.txid,
        hash: entry.hash,
    }
}

pub fn batch_from_pb(batch: pb::LogBatch) -> Result<Batch, String> {
    let term = term_from_pb(batch.term.as_ref(), "batch term")?;
    let entries = batch
        .entries
        .into_iter()
        .map(entry_from_pb)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Batch {
        term,
        entries,
        checksum: batch.checksum,
    })
}

fn entry_from_pb(entry: pb::LogEntry) -> Result<HashedEntry, String> {
    let operation = match pb::Operation::try_from(entry.operation) {
        Ok(pb::Operation::Insert) => Operation::Insert,
        Ok(pb::Operation::Update) => Operation::Update,
        Ok(pb::Operation::Delete) => Operation::Delete,
        _ => {
            return Err(format!(
                "entry {} has no valid operation ({})",
                entry.index, entry.operation
            ));
        }
    };
    Ok(HashedEntry {
        content: EntryContent {
            term: term_from_pb(entry.term.as_ref(), "entry term")?,
            index: entry.index,
            table: entry.table,
            primary_key: entry.primary_key,
            operation,
            new_image: entry.new_image,
            old_image: entry.old_image,
            hlc: Hlc::new(entry.hlc_ms, entry.hlc_logical, entry.hlc_node),
            origin: entry.origin,
            txid: entry.txid,
        },
        hash: entry.hash,
    })
}

pub fn refusal_to_pb(from_index: u64, refusal: &Refusal) -> pb::ShipRefusal {
    let mut out = pb::ShipRefusal {
        from_index,
        message: refusal.to_string(),
        ..pb::ShipRefusal::default()
    };
    let kind = match refusal {
        Refusal::BadChecksum => pb::RefusalKind::BadChecksum,
        Refusal::StaleTerm {
            batch_term,
            newest_term,
        } => {
            out.batch_term = Some(term_to_pb(batch_term));
            out.newest_term = Some(term_to_pb(newest_term));
            pb::RefusalKind::StaleTerm
        }
        Refusal::Gap { expected_index } => {
            out.index = *expected_index;
            pb::RefusalKind::Gap
        }
        Refusal::Malformed(shape) => {
            out.index = match shape {
                MalformedBatch::Empty => 0,
                MalformedBatch::NotConsecutive { index }
                | MalformedBatch::EntryTermAhead { index }
                | MalformedBatch::EntryTermBehind { index } => *index,
            };
            pb::RefusalKind::Malformed
        }
        Refusal::HashMismatch { index } => {
            out.index = *index;
            pb::RefusalKind::HashMismatch
        }
    };
    out.kind = kind as i32;
    out
}

/// The receiver's refusal as the shipper understands it; `None` for a refusal that is not about
/// the batch (the receiver cannot receive now).
pub fn refusal_from_pb(refusal: &pb::ShipRefusal) -> Option<Refusal> {
    match pb::RefusalKind::try_from(refusal.kind).ok()? {
        pb::RefusalKind::BadChecksum => Some(Refusal::BadChecksum),
        pb::RefusalKind::StaleTerm => Some(Refusal::StaleTerm {
            batch_term: term_from_pb(refusal.batch_term.as_ref(), "batch term").ok()?,
            newest_term: term_from_pb(refusal.newest_term.as_ref(), "newest term").ok()?,
        }),
        // Index 0 is never expected (the log starts at 1): a malformed refusal.
        pb::RefusalKind::Gap if refusal.index == 0 => None,
        pb::RefusalKind::Gap => Some(Refusal::Gap {
            expected_index: refusal.index,
        }),
        pb::RefusalKind::Malformed => Some(Refusal::Malformed(MalformedBatch::NotConsecutive {
            index: refusal.index,
        })),
        pb::RefusalKind::HashMismatch => Some(Refusal::HashMismatch {
            index: refusal.index,
        }),
        pb::RefusalKind::NotReceiving | pb::RefusalKind::Unspecified => None,
    }
}

/// A wire value; an unset value is NULL.
pub fn value_from_pb(value: dpb::Value) -> Value {
    use dpb::value::Kind;
    match value.kind {
        None | Some(Kind::Null(_)) => Value::Null,
        Some(Kind::Integer(integer)) => Value::Integer(integer),
        Some(Kind::Real(real)) => Value::Real(real),
        Some(Kind::Text(text)) => Value::Text(text),
        Some(Kind::Blob(blob)) => Value::Blob(blob),
    }
}

pub fn value_to_pb(value: &Value) -> dpb::Value {
    use dpb::value::Kind;
    dpb::Value {
        kind: Some(match value {
            Value::Null => Kind::Null(true),
            Value::Integer(integer) => Kind::Integer(*integer),
            Value::Real(real) => Kind::Real(*real),
            Value::Text(text) => Kind::Text(text.clone()),
            Value::Blob(blob) => Kind::Blob(blob.clone()),
        }),
    }
}

pub fn statement_from_pb(statement: dpb::Statement) -> Statement {
    let params = statement.params.into_iter().map(value_from_pb).collect();
    Statement::new(statement.sql, params)
}

/// A value as JSON, for `tandemctl sql` (BLOBs as base64 in an object).
pub fn value_to_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Integer(integer) => serde_json::Value::from(*integer),
        Value::Real(real) => serde_json::Value::from(*real),
        Value::Text(text) => serde_json::Value::from(text.clone()),
        Value::Blob(blob) => {
            serde_json::json!({ "blob_base64": tandem_replication::store::base64::encode(blob) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_survives_the_wire() {
        let term = LogTerm::new(3, "a", 100);
        let content = EntryContent {
            term: term.clone(),
            index: 1,
            table: "t".into(),
            primary_key: "{}".into(),
            operation: Operation::Update,
            new_image: Some("{}".into()),
            old_image: None,
            hlc: Hlc::new(5, 1, "a"),
            origin: "a".into(),
            txid: 9,
        };
        let batch = Batch::new(term, vec![HashedEntry::chain(0, content)]);
        let back = batch_from_pb(batch_to_pb(&batch)).unwrap();
        assert_eq!(back, batch);
        assert!(back.checksum_matches());
    }

    #[test]
    fn an_entry_without_an_operation_is_an_error_not_a_panic() {
        let mut wire = batch_to_pb(&Batch::new(LogTerm::new(1, "a", 1), Vec::new()));
        wire.entries.push(pb::LogEntry {
            term: Some(pb::Term {
                epoch: 1,
                node: "a".into(),
                priority: 1,
            }),
            ..pb::LogEntry::default()
        });
        assert!(batch_from_pb(wire).unwrap_err().contains("operation"));
    }
}
