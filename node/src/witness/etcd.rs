//! The etcd backend of the witness (DESIGN.md §12): an etcd cluster holds the pair's third
//! vote, as a DCS does for Patroni.
//!
//! Two keys per pair under `[witness] etcd_prefix`:
//! - `<prefix>/<cluster>/record`: what `witness.db` keeps for `tandemd witness` (the term that
//!   holds the pair, the nodes the active reported outdated), as JSON. Not leased: it outlives
//!   every node.
//! - `<prefix>/<cluster>/leader`: the holder's name, bound to an etcd lease of the holder's. It
//!   exists while the holder's lease runs; etcd deletes it when the lease runs out.
//!
//! Each request is decided by the same `Grantor` rules as `tandemd witness`, on the keys as
//! read, with the holder's lease left as etcd reports it. A grant is answered only once one
//! transaction has written it, on the condition that neither key changed since the read (else it
//! is decided again). The holder's lease is refreshed (or a new one granted) after the request
//! was sent and before the answer, so the holder, counting from the send, stops counting on it
//! before etcd can delete the key. No process proof: a vanished active costs its etcd lease
//! (at least 2 s).

use std::collections::BTreeSet;

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, Identity, KeyValue, PutOptions,
    TlsOptions, Txn, TxnOp, TxnOpResponse,
};
use serde::{Deserialize, Serialize};

use super::client::EtcdTarget;
use super::grantor::{Answer, Grantor, PairRecord, Request, WitnessTerm};

/// Decisions retried when the keys changed between the read and the write.
const ATTEMPTS: usize = 3;

/// The record key's JSON.
#[derive(Debug, Default, Serialize, Deserialize)]
struct RecordJson {
    holder: Option<TermJson>,
    #[serde(default)]
    outdated: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct TermJson {
    epoch: u64,
    node: String,
    priority: u32,
}

/// The keys as one read saw them.
struct State {
    record: PairRecord,
    /// The record key's mod revision; `None` when it does not exist yet.
    record_rev: Option<i64>,
    leader: Option<Leader>,
}

struct Leader {
    node: String,
    lease: i64,
    mod_rev: i64,
}

/// An open connection to the etcd cluster.
pub struct EtcdSession {
    client: Client,
    target: EtcdTarget,
    record_key: String,
    leader_key: String,
}

impl EtcdSession {
    /// Connects and reads the pair's keys once, so an unreachable or refusing cluster shows
    /// here, not at the first vote.
    pub async fn open(target: &EtcdTarget) -> Result<EtcdSession, String> {
        let mut tls = TlsOptions::new()
            .ca_certificate(Certificate::from_pem(&target.ca_pem))
            .identity(Identity::from_pem(&target.cert_pem, &target.key_pem));
        if let Some(name) = &target.settings.server_name {
            tls = tls.domain_name(name.clone());
        }
        let options = ConnectOptions::new()
            .with_tls(tls)
            .with_connect_timeout(target.lease)
            .with_timeout(target.lease);
        let endpoints = &target.settings.endpoints;
        let client = Client::connect(endpoints, Some(options))
            .await
            .map_err(|error| format!("cannot reach etcd at {}: {error}", endpoints.join(",")))?;
        let base = format!("{}/{}", target.settings.prefix, target.cluster);
        let mut session = EtcdSession {
            client,
            target: target.clone(),
            record_key: format!("{base}/record"),
            leader_key: format!("{base}/leader"),
        };
        session.read().await?;
        Ok(session)
    }

    /// Decides one request of this node against the keys, and writes a grant before
    /// answering it.
    pub async fn ask(&mut self, request: Request) -> Result<Answer, String> {
        for _ in 0..ATTEMPTS {
            let state = self.read().await?;
            let left_ms = match &state.leader {
                Some(leader) if leader.lease != 0 => self.lease_left_ms(leader.lease).await?,
                _ => 0,
            };
            if let Some(refusal) = self.foreign_leader(&state, left_ms) {
                return Ok(refusal);
            }
            let mut grantor = Grantor::with_lease_left(
                self.target.lease.as_millis() as u64,
                &self.target.cluster,
                &self.target.nodes,
                state.record.clone(),
                left_ms,
            );
            let outcome =
                grantor.request(&self.target.cluster, &self.target.node, request.clone(), 0);
            let Answer::Granted { term, lease_ms } = outcome.answer else {
                return Ok(outcome.answer);
            };
            let (lease, fresh) = self.own_lease(&state).await?;
            if self
                .commit(&state, outcome.persist.as_ref(), lease, fresh)
                .await?
            {
                return Ok(Answer::Granted { term, lease_ms });
            }
            if fresh {
                // Not used: let it go rather than wait out its TTL.
                let _ = self.client.lease_revoke(lease).await;
            }
        }
        Err("the pair's etcd keys kept changing while this node asked".into())
    }

    /// Reads both keys at one revision.
    async fn read(&mut self) -> Result<State, String> {
        let txn = Txn::new().and_then([
            TxnOp::get(self.record_key.clone(), None),
            TxnOp::get(self.leader_key.clone(), None),
        ]);
        let response = self
            .client
            .txn(txn)
            .await
            .map_err(|error| format!("etcd: cannot read the pair's keys: {error}"))?;
        let mut found: Vec<Option<KeyValue>> = response
            .op_responses()
            .into_iter()
            .map(|op| match op {
                TxnOpResponse::Get(get) => get.kvs().first().cloned(),
                _ => None,
            })
            .collect();
        let leader = found.pop().flatten();
        let record = found.pop().flatten();
        let (record, record_rev) = match record {
            None => (
                PairRecord {
                    cluster: self.target.cluster.clone(),
                    ..PairRecord::default()
                },
                None,
            ),
            Some(kv) => (self.parse_record(kv.value())?, Some(kv.mod_revision())),
        };
        let leader = leader.map(|kv| Leader {
            node: String::from_utf8_lossy(kv.value()).into_owned(),
            lease: kv.lease(),
            mod_rev: kv.mod_revision(),
        });
        Ok(State {
            record,
            record_rev,
            leader,
        })
    }

    fn parse_record(&self, value: &[u8]) -> Result<PairRecord, String> {
        let json: RecordJson = serde_json::from_slice(value).map_err(|error| {
            format!(
                "etcd: {} is not a record this node can read ({error}); refusing to vote on it",
                self.record_key
            )
        })?;
        Ok(PairRecord {
            cluster: self.target.cluster.clone(),
            holder: json.holder.map(|term| WitnessTerm {
                epoch: term.epoch,
                node: term.node,
                priority: term.priority,
            }),
            outdated: json.outdated.into_iter().collect::<BTreeSet<_>>(),
        })
    }

    /// A leader key of another node that the record does not name as the holder, or that is
    /// bound to no etcd lease (both only by a hand edit): no vote until it is removed, since the
    /// rules cannot tell how long it still counts.
    fn foreign_leader(&self, state: &State, left_ms: u64) -> Option<Answer> {
        let leader = state.leader.as_ref()?;
        if leader.node == self.target.node {
            return None;
        }
        let holder = state.record.holder.as_ref();
        let why = if leader.lease == 0 {
            "is bound to no etcd lease, so it never runs out"
        } else if holder.is_none_or(|holder| holder.node != leader.node) {
            "names a node the record does not name as the holder"
        } else {
            return None;
        };
        Some(Answer::Refused {
            reason: format!(
                "etcd: {} ({}) {why}; no vote is given until it is removed",
                self.leader_key, leader.node
            ),
            holder: holder.cloned(),
            holder_lease_left_ms: left_ms,
            superseded: false,
        })
    }

    /// What is left of an etcd lease, rounded up to the next whole second: etcd reports whole
    /// seconds, truncated, so 0 means less than one second is left (and -1 that the lease is
    /// gone).
    async fn lease_left_ms(&mut self, lease: i64) -> Result<u64, String> {
        let left = self
            .client
            .lease_time_to_live(lease, None)
            .await
            .map_err(|error| format!("etcd: cannot read the holder's lease: {error}"))?
            .ttl();
        Ok(left_ms_of_ttl(left))
    }

    /// The etcd lease this node's leader key is bound to: its current one, refreshed, if the
    /// key is this node's and the lease still runs; else a new one (`true`). A lease that
    /// cannot be refreshed (etcd answers "lease not found" once it has run out) is replaced.
    async fn own_lease(&mut self, state: &State) -> Result<(i64, bool), String> {
        if let Some(leader) = &state.leader
            && leader.node == self.target.node
            && leader.lease != 0
        {
            match self.refresh(leader.lease).await {
                Ok(true) => return Ok((leader.lease, false)),
                Ok(false) => {}
                Err(error) => {
                    tracing::info!("etcd: this node's lease is not refreshed ({error}); a new one");
                }
            }
        }
        let ttl = self.target.lease.as_secs_f64().ceil() as i64;
        let granted = self
            .client
            .lease_grant(ttl, None)
            .await
            .map_err(|error| format!("etcd: cannot grant this node a lease: {error}"))?;
        Ok((granted.id(), true))
    }

    /// Refreshes an etcd lease once; whether it still ran.
    async fn refresh(&mut self, lease: i64) -> Result<bool, etcd_client::Error> {
        let (mut keeper, mut stream) = self.client.lease_keep_alive(lease).await?;
        keeper.keep_alive().await?;
        let renewed = stream.message().await?;
        Ok(renewed.is_some_and(|renewed| renewed.ttl() > 0))
    }

    /// Writes the grant, if neither key changed since `state` was read. Returns whether it did.
    async fn commit(
        &mut self,
        state: &State,
        persist: Option<&PairRecord>,
        lease: i64,
        fresh: bool,
    ) -> Result<bool, String> {
        let record_unchanged = match state.record_rev {
            Some(rev) => Compare::mod_revision(self.record_key.clone(), CompareOp::Equal, rev),
            None => Compare::create_revision(self.record_key.clone(), CompareOp::Equal, 0),
        };
        let leader_unchanged = match &state.leader {
            Some(leader) => {
                Compare::mod_revision(self.leader_key.clone(), CompareOp::Equal, leader.mod_rev)
            }
            None => Compare::create_revision(self.leader_key.clone(), CompareOp::Equal, 0),
        };
        let mut writes = Vec::new();
        if let Some(record) = persist {
            let json = RecordJson {
                holder: record.holder.as_ref().map(|term| TermJson {
                    epoch: term.epoch,
                    node: term.node.clone(),
                    priority: term.priority,
                }),
                outdated: record.outdated.iter().cloned().collect(),
            };
            let text = serde_json::to_string(&json).map_err(|error| error.to_string())?;
            writes.push(TxnOp::put(self.record_key.clone(), text, None));
        }
        if fresh || state.leader.is_none() {
            writes.push(TxnOp::put(
                self.leader_key.clone(),
                self.target.node.clone(),
                Some(PutOptions::new().with_lease(lease)),
            ));
        }
        let txn = Txn::new()
            .when([record_unchanged, leader_unchanged])
            .and_then(writes);
        let response = self
            .client
            .txn(txn)
            .await
            .map_err(|error| format!("etcd: cannot write the vote: {error}"))?;
        Ok(response.succeeded())
    }
}

/// etcd's time-to-live of a lease (whole seconds, truncated; -1 once it is gone) as an upper
/// bound in milliseconds: 0 only for a lease that is gone.
fn left_ms_of_ttl(ttl: i64) -> u64 {
    u64::try_from(ttl).map_or(0, |left| left.saturating_add(1).saturating_mul(1000))
}

#[cfg(test)]
mod tests {
    use super::left_ms_of_ttl;

    #[test]
    fn a_lease_with_less_than_a_second_left_still_runs() {
        assert_eq!(left_ms_of_ttl(-1), 0, "gone");
        assert_eq!(
            left_ms_of_ttl(0),
            1000,
            "under one second left is not expired"
        );
        assert_eq!(left_ms_of_ttl(2), 3000);
        assert_eq!(left_ms_of_ttl(i64::MAX), u64::MAX);
    }
}
