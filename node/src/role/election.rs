//! Who should be active when both nodes talk: the start-up election, a pair with no active node,
//! and dual-active resolution after a partition heals.

use super::command::{Command, EventKind};
use super::event::PeerHeartbeat;
use super::liveness::peer_claims_newer_active_term;
use super::machine::RoleMachine;
use super::term::Term;
use super::types::{DiskState, Role};

impl RoleMachine {
    /// This node may become active by election: consistent, not in maintenance, reachable.
    /// A passive node that waited alone may still promote once it is eligible, unless
    /// monitoring holds automatic changes back.
    pub(super) fn may_promote_alone_late(&self) -> bool {
        self.eligible() && self.durable.monitoring == super::types::Monitoring::On
    }

    fn eligible(&self) -> bool {
        self.durable.disk == DiskState::Consistent && !self.durable.maintenance && self.reachable
    }

    fn peer_eligible(heartbeat: &PeerHeartbeat) -> bool {
        heartbeat.disk == DiskState::Consistent && !heartbeat.maintenance && heartbeat.reachable
    }

    /// The election rule: the later last-log term, then the higher index, then rank.
    /// `Some(true)` when this node wins, `Some(false)` when the peer does, `None` when neither
    /// may become active.
    pub(super) fn wins_election(&self, heartbeat: &PeerHeartbeat) -> Option<bool> {
        match (self.eligible(), Self::peer_eligible(heartbeat)) {
            (false, false) => None,
            (true, false) => Some(true),
            (false, true) => Some(false),
            (true, true) => {
                let mine = (self.log.election_key(), self.my_rank());
                let theirs = (heartbeat.log.election_key(), self.peer_rank(heartbeat));
                Some(mine > theirs)
            }
        }
    }

    pub(super) fn start_up_with_peer(&mut self, heartbeat: &PeerHeartbeat) -> Vec<Command> {
        if self.durable.disk == DiskState::Inconsistent {
            return self.enter_fault("disk is inconsistent".into());
        }
        match heartbeat.role {
            Role::Active if !self.peer_claim_is_stale(heartbeat) => {
                let reason = format!("peer {} is active", self.config.peer_name);
                self.follow(heartbeat.term.clone(), reason)
            }
            // A faulted peer (inconsistent disk) is not eligible: the election decides.
            Role::Starting | Role::Passive | Role::Active | Role::Fault => {
                self.elect(heartbeat, "start-up election")
            }
            Role::Promoting | Role::Demoting => {
                let reason = format!(
                    "peer {} is {}",
                    self.config.peer_name,
                    heartbeat.role.as_str()
                );
                self.follow(self.durable.term.clone(), reason)
            }
        }
    }

    /// Neither node is active: the election winner promotes, the other follows.
    fn elect(&mut self, heartbeat: &PeerHeartbeat, why: &str) -> Vec<Command> {
        match self.wins_election(heartbeat) {
            Some(true) => {
                let reason = format!(
                    "{why}: won against {} (last log term, index, then rank)",
                    self.config.peer_name
                );
                self.promote(EventKind::Election, reason, 0)
            }
            Some(false) => {
                let reason = format!("{why}: {} wins", self.config.peer_name);
                self.follow(self.durable.term.clone(), reason)
            }
            None => {
                // Recorded when this node settles as passive, not again on every heartbeat of a
                // pair in which neither node may become active.
                let was_passive = self.role == Role::Passive;
                let mut out = self.follow(
                    self.durable.term.clone(),
                    format!("{why}: no eligible node"),
                );
                if !was_passive {
                    out.push(Command::Record {
                        kind: EventKind::Election,
                        message: format!("{why}: neither node may become active"),
                    });
                }
                out
            }
        }
    }

    pub(super) fn enter_fault(&mut self, reason: String) -> Vec<Command> {
        let mut out = Vec::new();
        self.set_admission(false, &mut out);
        if self.role != Role::Fault {
            self.role = Role::Fault;
            out.push(Command::SetRole {
                role: Role::Fault,
                reason,
            });
        }
        out
    }

    /// The peer says it is active in a term older than the newest this node has seen.
    fn peer_claim_is_stale(&self, heartbeat: &PeerHeartbeat) -> bool {
        heartbeat
            .term
            .as_ref()
            .is_none_or(|term| term.epoch < self.durable.max_epoch_seen)
    }

    pub(super) fn passive_sees(&mut self, heartbeat: &PeerHeartbeat) -> Vec<Command> {
        match heartbeat.role {
            Role::Active if !self.peer_claim_is_stale(heartbeat) => {
                if self.durable.term != heartbeat.term {
                    self.durable.term = heartbeat.term.clone();
                    return vec![Command::Persist(self.durable.clone())];
                }
                Vec::new()
            }
            Role::Starting | Role::Passive => self.elect(heartbeat, "no active node"),
            _ => Vec::new(),
        }
    }

    /// An active node resolves a dual-active episode, then renews a term the pair has outgrown.
    pub(super) fn active_sees(&mut self, heartbeat: &PeerHeartbeat) -> Vec<Command> {
        let mut out = self.resolve_dual_active(heartbeat);
        if self.role == Role::Active {
            out.extend(self.renew_outgrown_term());
        }
        out
    }

    /// The peer has seen a newer epoch than the one this active node holds (say it held a term of
    /// its own while partitioned, then restarted and lost the start-up election; or this node took
    /// a late copy of a hand-over that its peer had already given up): take a fresh term, or the
    /// peer would never follow this node's stale claim, nor apply its entries.
    fn renew_outgrown_term(&mut self) -> Vec<Command> {
        let held_epoch = self.durable.term.as_ref().map_or(0, |term| term.epoch);
        if held_epoch >= self.durable.max_epoch_seen {
            return Vec::new();
        }
        let epoch = self.durable.max_epoch_seen + 1;
        let term = Term::new(epoch, self.config.name.clone(), self.config.priority);
        self.durable.max_epoch_seen = epoch;
        self.durable.term = Some(term.clone());
        let reason = format!("epoch {} was seen, newer than the term held", epoch - 1);
        vec![
            Command::Persist(self.durable.clone()),
            Command::RecordTerm {
                term: term.clone(),
                reason: reason.clone(),
            },
            Command::Record {
                kind: EventKind::Election,
                message: format!("{} renews its term to {term}: {reason}", self.config.name),
            },
            self.next_heartbeat(),
        ]
    }

    /// Both active: the higher term stays; the lower one stops admitting and demotes.
    fn resolve_dual_active(&mut self, heartbeat: &PeerHeartbeat) -> Vec<Command> {
        if heartbeat.role != Role::Active {
            return Vec::new();
        }
        let Some(peer_term) = heartbeat.term.clone() else {
            return Vec::new();
        };
        if peer_claims_newer_active_term(self, heartbeat) {
            let message = format!(
                "split brain: peer {} is active in the newer term {peer_term}; demoting",
                self.config.peer_name
            );
            let mut out = self.demote(Some(peer_term), message.clone());
            out.push(Command::Record {
                kind: EventKind::SplitBrain,
                message,
            });
            return out;
        }
        if self.reported_stale_peer.as_ref() == Some(&peer_term) {
            return Vec::new();
        }
        self.reported_stale_peer = Some(peer_term.clone());
        vec![Command::Record {
            kind: EventKind::SplitBrain,
            message: format!(
                "split brain: peer {} is active in the older term {peer_term}; it must demote",
                self.config.peer_name
            ),
        }]
    }

    /// A node waiting for `fence_peer` that hears the peer active again gives up the takeover.
    pub(super) fn promoting_sees(&mut self, heartbeat: &PeerHeartbeat) -> Vec<Command> {
        if heartbeat.role == Role::Active && !self.peer_claim_is_stale(heartbeat) {
            let mut out = self.follow(heartbeat.term.clone(), "peer answers again".into());
            self.answer_pending_failover_now(Err("the peer answered again".into()), &mut out);
            return out;
        }
        Vec::new()
    }

    /// Alone after the start-up wait: active only if consistent (and eligible).
    pub(super) fn start_up_alone(&mut self) -> Vec<Command> {
        let waited = self.config.startup_failover_after_misses;
        if self.durable.disk == DiskState::Inconsistent {
            return self.enter_fault("disk is inconsistent".into());
        }
        if self.eligible() {
            let reason = format!("peer absent for {waited} keep-alive intervals after start");
            return self.promote(EventKind::Election, reason, 0);
        }
        let why = if self.durable.maintenance {
            "this node is in maintenance".to_string()
        } else if !self.reachable {
            "reachability targets do not answer".to_string()
        } else {
            format!("disk state is {}", self.durable.disk.as_str())
        };
        let mut out = self.follow(
            self.durable.term.clone(),
            format!("alone after start: {why}"),
        );
        out.push(Command::Record {
            kind: EventKind::Election,
            message: format!("peer absent after start and this node may not become active: {why}"),
        });
        out
    }
}
