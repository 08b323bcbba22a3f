//! Conversions between protobuf messages and domain types: the only place that knows both.

use tandem_proto::peer as pb;

use crate::role::{DiskState, LogPosition, Monitoring, PeerHeartbeat, Role, Term};

pub fn role_to_pb(role: Role) -> pb::Role {
    match role {
        Role::Starting => pb::Role::Starting,
        Role::Passive => pb::Role::Passive,
        Role::Active => pb::Role::Active,
        Role::Promoting => pb::Role::Promoting,
        Role::Demoting => pb::Role::Demoting,
        Role::Fault => pb::Role::Fault,
    }
}

/// An unknown or unspecified role from the wire is an error, not a guess.
pub fn role_from_pb(value: i32) -> Result<Role, String> {
    match pb::Role::try_from(value) {
        Ok(pb::Role::Starting) => Ok(Role::Starting),
        Ok(pb::Role::Passive) => Ok(Role::Passive),
        Ok(pb::Role::Active) => Ok(Role::Active),
        Ok(pb::Role::Promoting) => Ok(Role::Promoting),
        Ok(pb::Role::Demoting) => Ok(Role::Demoting),
        Ok(pb::Role::Fault) => Ok(Role::Fault),
        _ => Err(format!("unknown role {value}")),
    }
}

pub fn disk_to_pb(disk: DiskState) -> pb::DiskState {
    match disk {
        DiskState::Consistent => pb::DiskState::Consistent,
        DiskState::Outdated => pb::DiskState::Outdated,
        DiskState::Inconsistent => pb::DiskState::Inconsistent,
    }
}

pub fn disk_from_pb(value: i32) -> Result<DiskState, String> {
    match pb::DiskState::try_from(value) {
        Ok(pb::DiskState::Consistent) => Ok(DiskState::Consistent),
        Ok(pb::DiskState::Outdated) => Ok(DiskState::Outdated),
        Ok(pb::DiskState::Inconsistent) => Ok(DiskState::Inconsistent),
        _ => Err(format!("unknown disk state {value}")),
    }
}

pub fn monitoring_to_pb(monitoring: Monitoring) -> pb::Monitoring {
    match monitoring {
        Monitoring::On => pb::Monitoring::On,
        Monitoring::Suspended => pb::Monitoring::Suspended,
        Monitoring::Stopped => pb::Monitoring::Stopped,
    }
}

pub fn monitoring_from_pb(value: i32) -> Result<Monitoring, String> {
    match pb::Monitoring::try_from(value) {
        Ok(pb::Monitoring::On) => Ok(Monitoring::On),
        Ok(pb::Monitoring::Suspended) => Ok(Monitoring::Suspended),
        Ok(pb::Monitoring::Stopped) => Ok(Monitoring::Stopped),
        _ => Err(format!("unknown monitoring mode {value}")),
    }
}

pub fn term_to_pb(term: &Term) -> pb::Term {
    pb::Term {
        epoch: term.epoch,
        node: term.node().to_string(),
        priority: term.rank.priority,
    }
}

/// Largest epoch or stamp accepted from the wire. Far beyond any real pair's lifetime, and low
/// enough that `+ 1` can never overflow or leave SQLite's signed integers.
pub const WIRE_COUNTER_MAX: u64 = 1 << 62;

fn bounded(what: &str, value: u64) -> Result<u64, String> {
    if value > WIRE_COUNTER_MAX {
        return Err(format!("{what} {value} is out of range"));
    }
    Ok(value)
}

pub fn term_from_pb(term: &pb::Term) -> Result<Term, String> {
    if term.node.is_empty() {
        return Err("term without a node".into());
    }
    bounded("term epoch", term.epoch)?;
    Ok(Term::new(term.epoch, term.node.clone(), term.priority))
}

fn optional_term(term: Option<&pb::Term>) -> Result<Option<Term>, String> {
    term.map(term_from_pb).transpose()
}

pub fn log_to_pb(log: &LogPosition) -> pb::LogPosition {
    pb::LogPosition {
        term: log.term.as_ref().map(term_to_pb),
        index: log.index,
        rolling_hash: 0,
    }
}

/// The role machine's view of a heartbeat; rejects malformed fields with a reason.
pub fn heartbeat_from_pb(heartbeat: &pb::Heartbeat) -> Result<PeerHeartbeat, String> {
    let log = heartbeat.log.as_ref();
    Ok(PeerHeartbeat {
        role: role_from_pb(heartbeat.role)?,
        term: optional_term(heartbeat.term.as_ref())?,
        max_epoch_seen: bounded("max_epoch_seen", heartbeat.max_epoch_seen)?,
        priority: heartbeat.priority,
        disk: disk_from_pb(heartbeat.disk)?,
        log: LogPosition {
            term: optional_term(log.and_then(|log| log.term.as_ref()))?,
            index: log.map_or(0, |log| log.index),
        },
        monitoring: monitoring_from_pb(heartbeat.monitoring)?,
        monitoring_stamp: bounded("monitoring_stamp", heartbeat.monitoring_stamp)?,
        maintenance: heartbeat.maintenance,
        reachable: heartbeat.reachable,
        seq: heartbeat.seq,
        ack_seq: heartbeat.ack_seq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_enum_values_are_errors() {
        assert!(role_from_pb(99).is_err());
        assert!(role_from_pb(0).is_err());
        assert!(disk_from_pb(42).is_err());
        assert!(monitoring_from_pb(-1).is_err());
    }

    #[test]
    fn counters_beyond_the_wire_bound_are_refused() {
        let heartbeat = pb::Heartbeat {
            role: pb::Role::Active as i32,
            term: Some(pb::Term {
                epoch: u64::MAX,
                node: "b".into(),
                priority: 1,
            }),
            disk: pb::DiskState::Consistent as i32,
            monitoring: pb::Monitoring::On as i32,
            ..Default::default()
        };
        assert!(
            heartbeat_from_pb(&heartbeat)
                .unwrap_err()
                .contains("out of range")
        );
        let stamped = pb::Heartbeat {
            term: None,
            monitoring_stamp: u64::MAX,
            ..heartbeat
        };
        assert!(heartbeat_from_pb(&stamped).is_err());
    }

    #[test]
    fn a_heartbeat_round_trips_its_term() {
        let term = Term::new(4, "b", 50);
        let heartbeat = pb::Heartbeat {
            role: pb::Role::Active as i32,
            term: Some(term_to_pb(&term)),
            disk: pb::DiskState::Consistent as i32,
            monitoring: pb::Monitoring::On as i32,
            ..Default::default()
        };
        let domain = heartbeat_from_pb(&heartbeat).unwrap();
        assert_eq!(domain.term, Some(term));
        assert_eq!(domain.role, Role::Active);
    }
}
