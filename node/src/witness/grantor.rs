//! `Grantor`: the witness's decisions, sans-IO (DESIGN.md §12).
//!
//! For each pair it serves the witness knows which node holds the pair's term (durable: it is
//! written to `witness.db` before a grant that changes it is answered) and until when that
//! node's lease runs on the witness's clock (volatile). Rules:
//! - **Renew.** The holder renews in its term (or its own newer one). The other node's newer
//!   term replaces the holder only once the holder's lease has run out (or its process is
//!   proven gone), and only if that node is `consistent` and was not reported outdated: after a
//!   hand-over the new active admits on its peer's vote until then, and a term a node made
//!   alone (a start-up without its peer) gets no vote while the other may still admit. An older
//!   term is refused as superseded, so its node stops acting active.
//! - **Promote.** A passive gets the vote only if the holder's lease has run out on the
//!   witness's clock, or the holder's process is proven gone (its stream ended and both its
//!   ports refuse); if its disk is `consistent`; if the active did not report it outdated; and
//!   if it has seen the holder's epoch (a node that lost quorum cannot regain it through the
//!   witness alone). `force` waives the disk and outdated rules, never a live lease.
//! - **Restart.** A witness that starts again counts every recorded holder's lease as just
//!   renewed (plus the drift margin): it may have granted one just before it stopped, so it
//!   never grants a vote it could already have given to the other node.
//!
//! It does no IO and reads no clock: time comes in as `now_ms` (a monotonic clock), and the
//! caller persists what an outcome says before it answers.

use std::collections::{BTreeMap, BTreeSet};

/// A term: (epoch, node), with the node's priority (which ranks it, as everywhere).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WitnessTerm {
    pub epoch: u64,
    pub node: String,
    pub priority: u32,
}

/// What `witness.db` keeps of one pair.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PairRecord {
    pub cluster: String,
    /// The node that holds the pair's term, and the term.
    pub holder: Option<WitnessTerm>,
    /// Nodes the active reported as lacking acknowledged writes.
    pub outdated: BTreeSet<String>,
}

/// A node's disk state as it reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Disk {
    Consistent,
    Outdated,
    Inconsistent,
}

/// What a node asks.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Request {
    Renew {
        term: WitnessTerm,
        peer_outdated: bool,
        disk: Disk,
    },
    Promote {
        epoch: u64,
        priority: u32,
        disk: Disk,
        max_epoch_seen: u64,
        fast_path: bool,
        force: bool,
    },
}

/// The answer to a request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Answer {
    Granted {
        term: WitnessTerm,
        lease_ms: u64,
    },
    Refused {
        reason: String,
        holder: Option<WitnessTerm>,
        holder_lease_left_ms: u64,
        /// The asker's term is older than the holder's.
        superseded: bool,
    },
}

/// What to do with a request: persist `persist` (fsync'd) first, then send `answer`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Outcome {
    pub persist: Option<PairRecord>,
    pub answer: Answer,
}

/// One pair as the witness sees it now.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PairView {
    pub cluster: String,
    pub nodes: Vec<String>,
    pub holder: Option<WitnessTerm>,
    pub lease_left_ms: u64,
    pub connected: Vec<String>,
    pub outdated: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Pair {
    nodes: Vec<String>,
    record: PairRecord,
    /// The holder's lease ends here on the witness's clock.
    lease_until_ms: u64,
    /// Nodes with a stream open now.
    connected: BTreeSet<String>,
    /// The holder's process was proven gone (stream ended, both ports refused) and has not
    /// come back since.
    holder_gone: bool,
}

/// The witness's decisions for every pair it serves.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Grantor {
    lease_ms: u64,
    /// The margin a restart adds to every recorded lease, for the clocks' drift.
    restart_margin_ms: u64,
    pairs: BTreeMap<String, Pair>,
}

impl Grantor {
    /// A grantor for `pairs` (cluster and its two nodes), resuming from `records` at `now_ms`.
    pub fn new(
        lease_ms: u64,
        max_drift: f64,
        pairs: &[(String, Vec<String>)],
        records: Vec<PairRecord>,
        now_ms: u64,
    ) -> Grantor {
        let restart_margin_ms = (lease_ms as f64 * 2.0 * max_drift).ceil() as u64 + 1;
        let mut by_cluster: BTreeMap<String, PairRecord> = records
            .into_iter()
            .map(|record| (record.cluster.clone(), record))
            .collect();
        let pairs = pairs
            .iter()
            .map(|(cluster, nodes)| {
                let record = by_cluster.remove(cluster).unwrap_or_else(|| PairRecord {
                    cluster: cluster.clone(),
                    ..PairRecord::default()
                });
                // It may have granted or renewed this lease just before it stopped.
                let lease_until_ms = if record.holder.is_some() {
                    now_ms + lease_ms + restart_margin_ms
                } else {
                    0
                };
                let pair = Pair {
                    nodes: nodes.clone(),
                    record,
                    lease_until_ms,
                    connected: BTreeSet::new(),
                    holder_gone: false,
                };
                (cluster.clone(), pair)
            })
            .collect();
        Grantor {
            lease_ms,
            restart_margin_ms,
            pairs,
        }
    }

    /// A grantor for one pair whose holder's lease is kept elsewhere (an etcd lease with
    /// `lease_left_ms` to run), asked at `now_ms` = 0. Both nodes count as connected: nothing
    /// here proves a process gone, so only the lease's end frees the vote.
    pub fn with_lease_left(
        lease_ms: u64,
        cluster: &str,
        nodes: &[String],
        record: PairRecord,
        lease_left_ms: u64,
    ) -> Grantor {
        let pair = Pair {
            nodes: nodes.to_vec(),
            record,
            lease_until_ms: lease_left_ms,
            connected: nodes.iter().cloned().collect(),
            holder_gone: false,
        };
        Grantor {
            lease_ms,
            restart_margin_ms: 0,
            pairs: BTreeMap::from([(cluster.to_string(), pair)]),
        }
    }

    /// Whether `node` is a node of `cluster`, a pair this witness serves.
    pub fn serves(&self, cluster: &str, node: &str) -> bool {
        self.pairs
            .get(cluster)
            .is_some_and(|pair| pair.nodes.iter().any(|n| n == node))
    }

    /// The pair `node` belongs to, if any (for a certificate that names only the node).
    pub fn cluster_of(&self, node: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(_, pair)| pair.nodes.iter().any(|n| n == node))
            .map(|(cluster, _)| cluster.as_str())
    }

    /// A node opened its stream.
    pub fn connected(&mut self, cluster: &str, node: &str) {
        if let Some(pair) = self.pairs.get_mut(cluster) {
            pair.connected.insert(node.to_string());
            if pair.record.holder.as_ref().is_some_and(|h| h.node == node) {
                pair.holder_gone = false;
            }
        }
    }

    /// A node's stream ended. Returns true when it is the holder: the caller then dials its
    /// ports to find out whether its process is gone (`holder_gone`).
    pub fn disconnected(&mut self, cluster: &str, node: &str) -> bool {
        let Some(pair) = self.pairs.get_mut(cluster) else {
            return false;
        };
        pair.connected.remove(node);
        pair.record.holder.as_ref().is_some_and(|h| h.node == node)
    }

    /// The holder's stream ended and both its ports refused: its process is gone, and the
    /// lease it held is no longer used by anyone. Ignored if `node` no longer holds the term, or
    /// has opened a stream again meanwhile.
    pub fn holder_gone(&mut self, cluster: &str, node: &str) {
        if let Some(pair) = self.pairs.get_mut(cluster)
            && pair.record.holder.as_ref().is_some_and(|h| h.node == node)
            && !pair.connected.contains(node)
        {
            pair.holder_gone = true;
        }
    }

    /// Answers one request of `node` of `cluster` at `now_ms`.
    pub fn request(&mut self, cluster: &str, node: &str, request: Request, now_ms: u64) -> Outcome {
        let lease_ms = self.lease_ms;
        let Some(pair) = self.pairs.get_mut(cluster) else {
            return refuse(
                format!("this witness serves no pair named {cluster:?}"),
                None,
                0,
            );
        };
        if !pair.nodes.iter().any(|n| n == node) {
            return refuse(
                format!("{node} is not a node of the pair {cluster}"),
                None,
                0,
            );
        }
        match request {
            Request::Renew {
                term,
                peer_outdated,
                disk,
            } => pair.renew(node, term, peer_outdated, disk, lease_ms, now_ms),
            Request::Promote {
                epoch,
                priority,
                disk,
                max_epoch_seen,
                fast_path,
                force,
            } => pair.promote(
                node,
                Candidate {
                    epoch,
                    priority,
                    disk,
                    max_epoch_seen,
                    fast_path,
                    force,
                },
                lease_ms,
                now_ms,
            ),
        }
    }

    /// Every pair as it stands at `now_ms`.
    pub fn view(&self, now_ms: u64) -> Vec<PairView> {
        self.pairs
            .iter()
            .map(|(cluster, pair)| PairView {
                cluster: cluster.clone(),
                nodes: pair.nodes.clone(),
                holder: pair.record.holder.clone(),
                lease_left_ms: pair.lease_left(now_ms),
                connected: pair.connected.iter().cloned().collect(),
                outdated: pair.record.outdated.iter().cloned().collect(),
            })
            .collect()
    }

    /// The margin a restart adds to the recorded leases.
    pub fn restart_margin_ms(&self) -> u64 {
        self.restart_margin_ms
    }
}

/// A promotion request's facts.
struct Candidate {
    epoch: u64,
    priority: u32,
    disk: Disk,
    max_epoch_seen: u64,
    fast_path: bool,
    force: bool,
}

impl Pair {
    fn lease_left(&self, now_ms: u64) -> u64 {
        if self.holder_gone {
            return 0;
        }
        self.lease_until_ms.saturating_sub(now_ms)
    }

    fn renew(
        &mut self,
        node: &str,
        term: WitnessTerm,
        peer_outdated: bool,
        disk: Disk,
        lease_ms: u64,
        now_ms: u64,
    ) -> Outcome {
        if term.node != node {
            return refuse(
                format!("{node} renews a term of {}", term.node),
                self.record.holder.clone(),
                self.lease_left(now_ms),
            );
        }
        let mut changed = false;
        match &self.record.holder {
            Some(holder) if term.epoch < holder.epoch => {
                let mut refusal = refuse(
                    format!(
                        "term ({}, {node}) is older than ({}, {}), which holds the pair now",
                        term.epoch, holder.epoch, holder.node
                    ),
                    Some(holder.clone()),
                    self.lease_left(now_ms),
                );
                if let Answer::Refused { superseded, .. } = &mut refusal.answer {
                    *superseded = true;
                }
                return refusal;
            }
            Some(holder) if term.epoch == holder.epoch && holder.node == node => {}
            // The other node's newer term (a hand-over, or a term it made alone): not while
            // the holder may still admit on this witness's lease.
            Some(holder) if holder.node != node => {
                let left = self.lease_left(now_ms);
                if left > 0 {
                    return refuse(
                        format!(
                            "{} holds the pair's vote for {left} ms more; term ({}, {node}) gets \
                             it once that has run out",
                            holder.node, term.epoch
                        ),
                        Some(holder.clone()),
                        left,
                    );
                }
                if let Some(refusal) = self.unfit(node, disk, Some(holder.clone()), left) {
                    return refusal;
                }
                self.record.holder = Some(term.clone());
                changed = true;
            }
            // Its own newer term, or the first holder this witness hears of.
            _ => {
                self.record.holder = Some(term.clone());
                changed = true;
            }
        }
        self.holder_gone = false;
        self.lease_until_ms = now_ms + lease_ms;
        let others: BTreeSet<String> = self.nodes.iter().filter(|n| *n != node).cloned().collect();
        let outdated = if peer_outdated {
            others
        } else {
            BTreeSet::new()
        };
        if outdated != self.record.outdated {
            self.record.outdated = outdated;
            changed = true;
        }
        Outcome {
            persist: changed.then(|| self.record.clone()),
            answer: Answer::Granted { term, lease_ms },
        }
    }

    /// Why `node` may not take the pair's vote from another: its disk is not `consistent`, or
    /// the active reported it outdated.
    fn unfit(
        &self,
        node: &str,
        disk: Disk,
        holder: Option<WitnessTerm>,
        left: u64,
    ) -> Option<Outcome> {
        if disk != Disk::Consistent {
            let disk = match disk {
                Disk::Outdated => "outdated",
                Disk::Inconsistent => "inconsistent",
                Disk::Consistent => "consistent",
            };
            return Some(refuse(
                format!("{node}'s disk is {disk}; only a consistent node is promoted"),
                holder,
                left,
            ));
        }
        if self.record.outdated.contains(node) {
            return Some(refuse(
                format!(
                    "the active reported {node} outdated (it lacks acknowledged writes); only \
                     failover-now --force promotes it"
                ),
                holder,
                left,
            ));
        }
        None
    }

    fn promote(&mut self, node: &str, candidate: Candidate, lease_ms: u64, now_ms: u64) -> Outcome {
        let holder = self.record.holder.clone();
        let left = self.lease_left(now_ms);
        let held_by_other = holder.as_ref().is_some_and(|h| h.node != node);
        if held_by_other && left > 0 {
            let holder_node = holder.as_ref().map_or("", |h| h.node.as_str());
            let reason = if candidate.fast_path && !self.connected.contains(holder_node) {
                format!(
                    "{holder_node}'s stream ended; its process is not proven gone yet (asking \
                     again shortly)"
                )
            } else {
                format!("{holder_node} is active and its lease runs {left} ms more")
            };
            return refuse(reason, holder, left);
        }
        if !candidate.force {
            if let Some(refusal) = self.unfit(node, candidate.disk, holder.clone(), left) {
                return refusal;
            }
            if let Some(holder) = &holder
                && candidate.max_epoch_seen < holder.epoch
            {
                return refuse(
                    format!(
                        "{node} has not seen epoch {} of the last active {}; it is older",
                        holder.epoch, holder.node
                    ),
                    Some(holder.clone()),
                    left,
                );
            }
        }
        let recorded_epoch = holder.as_ref().map_or(0, |h| h.epoch);
        let term = WitnessTerm {
            epoch: candidate.epoch.max(recorded_epoch + 1),
            node: node.to_string(),
            priority: candidate.priority,
        };
        self.record.holder = Some(term.clone());
        self.record.outdated.clear();
        self.holder_gone = false;
        self.lease_until_ms = now_ms + lease_ms;
        Outcome {
            persist: Some(self.record.clone()),
            answer: Answer::Granted { term, lease_ms },
        }
    }
}

fn refuse(reason: String, holder: Option<WitnessTerm>, holder_lease_left_ms: u64) -> Outcome {
    Outcome {
        persist: None,
        answer: Answer::Refused {
            reason,
            holder,
            holder_lease_left_ms,
            superseded: false,
        },
    }
}
