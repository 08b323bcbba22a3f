//! Running the role machine's commands, in order, each awaited: persist, record, set the role
//! and admission, send messages, answer admin requests, run hooks.

use tandem_proto::peer as pb;

use std::time::Instant;

use super::event_loop::{Driver, DriverError, SENT_HEARTBEATS_KEPT};
use super::handle::Input;
use crate::peer::wire;
use crate::role::{Command, Event};

impl Driver {
    pub(super) async fn record(&self, kind: &str, message: &str) -> Result<(), DriverError> {
        tracing::info!(kind, "{message}");
        self.events.record(kind, message).await;
        Ok(())
    }

    pub(super) async fn run_command(&mut self, command: Command) -> Result<(), DriverError> {
        match command {
            Command::Persist(durable) => self.store.save_durable(&durable).await?,
            Command::RecordTerm { term, reason } => self.store.record_term(&term, &reason).await?,
            Command::SetRole { role, reason } => {
                // In witness mode a passive cut off from its peer asks the witness every few
                // intervals and is refused while the active renews: those attempts are not role
                // changes worth a mail each (the refusal is one `witness_refused`).
                let attempt = self.quorum.is_some()
                    && self.hooks.config().command("fence_peer").is_none()
                    && (role == crate::role::Role::Promoting || reason == "fence_peer failed");
                let (kind, reason) = if attempt && role == crate::role::Role::Passive {
                    ("promotion", "the witness did not give its vote".to_string())
                } else if attempt {
                    ("promotion", reason)
                } else {
                    ("role_change", reason)
                };
                self.record(
                    kind,
                    &format!("{} is {}: {reason}", self.config.node.name, role.as_str()),
                )
                .await?;
                let term = self
                    .machine
                    .durable()
                    .term
                    .as_ref()
                    .map_or_else(String::new, |term| {
                        format!("{},{}", term.epoch, term.node())
                    });
                self.hooks.role_changed(
                    role.as_str(),
                    crate::ops::hooks::HookEnv {
                        role: role.as_str().into(),
                        term,
                        peer: self.config.peer.name.clone(),
                        reason,
                    },
                );
            }
            Command::SetAdmission(admit) => {
                if admit {
                    self.gate_opening();
                }
                self.admission.set(admit, self.admission_lease());
                tracing::info!(admit, "admission changed");
            }
            Command::SendHeartbeat { seq } => {
                if self.peer.sent.len() >= SENT_HEARTBEATS_KEPT {
                    self.peer.sent.pop_front();
                }
                self.peer.sent.push_back((seq, Instant::now()));
                let mut heartbeat = self.heartbeat(seq);
                heartbeat.promise = self.promise();
                self.send(pb::peer_message::Body::Heartbeat(heartbeat))
            }
            Command::SendHandover { new_term } => {
                self.send(pb::peer_message::Body::Handover(pb::HandoverRequest {
                    new_term: Some(wire::term_to_pb(&new_term)),
                    log: Some(wire::log_to_pb(self.machine.log_position())),
                }))
            }
            Command::SendHandoverReply {
                new_term,
                accepted,
                reason,
            } => self.send(pb::peer_message::Body::HandoverReply(pb::HandoverReply {
                new_term: Some(wire::term_to_pb(&new_term)),
                accepted,
                reason,
            })),
            Command::SendSwitchoverRequest => self.send(pb::peer_message::Body::SwitchoverRequest(
                pb::SwitchoverRequest {
                    reason: "failover-now".into(),
                },
            )),
            // Without a replicated database the passive has everything the moment we fence;
            // with one, the tick reports `CaughtUp` once the peer acknowledged the whole log.
            // The files too: a fresh sync cycle must finish before the hand-over.
            Command::StartCatchUp => {
                self.files_target = self
                    .files
                    .as_ref()
                    .map(crate::files::FileSync::request_sync);
                match self.replication_progress() {
                    None | Some((_, true)) if self.files_target.is_none() => {
                        self.feedback.push_back(Event::CaughtUp)
                    }
                    _ => self.catching_up = true,
                }
            }
            Command::FencePeer if self.quorum.is_some() => self.begin_promotion().await?,
            Command::FencePeer => {
                if self.hooks.config().command("fence_peer").is_none() {
                    tracing::error!("fence_peer requested but no fence hook is configured");
                }
                if let Some(result) = self.after_vote() {
                    self.feedback.push_back(result);
                }
            }
            // Witness mode without a hook: the witness's refusal is the fence step's outcome,
            // recorded as `witness_refused`.
            Command::Record {
                kind: crate::role::EventKind::Fence,
                ..
            } if self.quorum.is_some() && self.hooks.config().command("fence_peer").is_none() => {}
            Command::Record { kind, message } => self.record(kind.as_str(), &message).await?,
            Command::Reply { id, result } => {
                if let Some(reply) = self.pending_admin.remove(&id) {
                    // The admin caller may have gone away; the outcome is in the events.
                    let _ = reply.send(result);
                }
            }
            Command::Exit => self.exit = true,
        }
        Ok(())
    }

    pub(super) fn send(&self, body: pb::peer_message::Body) {
        // No dialer connected is normal while the peer is down.
        let _ = self.outbound.send(pb::PeerMessage { body: Some(body) });
    }
}

impl Driver {
    /// Runs the `fence_peer` hook on a task of its own (its outcome comes back as
    /// `Input::FenceResult`). Without one, returns the fence step's result for the machine:
    /// witness mode's vote is the whole fence step, and in pair mode the machine asked for a
    /// hook that is not there, so the takeover fails.
    pub(super) fn after_vote(&mut self) -> Option<Event> {
        let Some(command) = self.hooks.config().command("fence_peer") else {
            let ok = self.quorum.is_some();
            return Some(Event::FenceResult { ok });
        };
        let command = command.to_string();
        let timeout = self.hooks.config().timeout;
        let inputs = self.own_inputs.clone();
        let env = crate::ops::hooks::HookEnv {
            role: self.machine.role().as_str().into(),
            term: String::new(),
            peer: self.config.peer.name.clone(),
            reason: "fence the peer before taking over".into(),
        };
        tokio::spawn(async move {
            let outcome = crate::ops::hooks::run_hook("fence_peer", &command, &env, timeout).await;
            let Some(inputs) = inputs.upgrade() else {
                return;
            };
            let message = match &outcome {
                Ok(line) | Err(line) => line.clone(),
            };
            let _ = inputs
                .send(Input::Record {
                    kind: "fence".into(),
                    message,
                })
                .await;
            let _ = inputs.send(Input::FenceResult(outcome.is_ok())).await;
        });
        None
    }
}
