//! The ship task: it waits until this node is active in a term, runs a session for that term,
//! and ends it (answering every waiting write "outcome unknown") when the node stops being active.

use std::time::Duration;

use tandem_replication::log::LogTerm;
use tokio::sync::{mpsc, watch};

use super::session::{Session, active_term};
use crate::admin::status::Status;
use crate::repl::handle::Replication;
use crate::repl::messages::{ShipInput, WriteFailure};

pub async fn run(repl: Replication, mut inputs: mpsc::Receiver<ShipInput>) {
    let mut status = repl.inner.driver.status.clone();
    loop {
        let Some(term) = wait_until_active(&mut status, &mut inputs).await else {
            return;
        };
        let mut session = match Session::start(&repl, term).await {
            Ok(session) => session,
            Err(error) => {
                tracing::error!(%error, "cannot start shipping");
                repl.update_status(|s| s.halted = format!("cannot start shipping: {error}"));
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        session.run(&mut inputs, &mut status).await;
        session.end();
    }
}

/// Waits until this node is active; answers stray waiting writes meanwhile.
async fn wait_until_active(
    status: &mut watch::Receiver<Status>,
    inputs: &mut mpsc::Receiver<ShipInput>,
) -> Option<LogTerm> {
    loop {
        if let Some(term) = active_term(&status.borrow_and_update()) {
            return Some(term);
        }
        tokio::select! {
            changed = status.changed() => changed.ok()?,
            input = inputs.recv() => match input? {
                ShipInput::Wait { reply, .. } | ShipInput::ReadBarrier { reply, .. } => {
                    let _ = reply.send(Err(WriteFailure::OutcomeUnknown(
                        "this node stopped being the active before the peer acknowledged the write"
                            .into(),
                    )));
                }
                ShipInput::ForceSnapshot { reply: Some(reply), .. } => {
                    let _ = reply.send(Err(
                        "this node is not the active; run `resync --to-peer` on the active, or \
                         `resync --from-peer` here"
                            .into(),
                    ));
                }
                _ => {}
            },
        }
    }
}
