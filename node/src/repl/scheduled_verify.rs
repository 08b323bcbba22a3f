//! `verify` on a schedule (DESIGN.md §4): the active compares both databases' row hashes every
//! `[replication] verify_every` (default daily) and records the outcome as an event:
//! `verify` when they are identical, `verify_differs` naming the tables that differ, and
//! `verify_skipped` when it could not run (the peer away, or writes never let the two logs
//! stand at one index); the next turn tries again.
//!
//! Not here: the comparison itself (`admin_ops::admin_verify`, shared with `tandemctl verify`).

use super::handle::Replication;

pub async fn run(repl: Replication) {
    let every = repl.inner.config.replication.verify_every;
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let active = repl.inner.driver.status.borrow().node.role == "active";
        if !active {
            continue;
        }
        match repl.admin_verify().await {
            Ok(reply) if reply.identical => {
                let message = format!(
                    "scheduled verify: the databases of {} and {} are identical at log index {}",
                    reply.node, reply.peer, reply.index
                );
                repl.record("verify", &message).await;
            }
            Ok(reply) => {
                let differing: Vec<String> = reply
                    .tables
                    .iter()
                    .filter(|table| !table.same)
                    .map(|table| {
                        format!(
                            "{} ({} rows here, {} on the peer)",
                            table.table, table.local_rows, table.peer_rows
                        )
                    })
                    .collect();
                let message = format!(
                    "scheduled verify: at log index {} these tables differ between {} and {}: \
                     {}; run `tandemctl verify`, then `tandemctl resync --to-peer` from the \
                     node whose data is right",
                    reply.index,
                    reply.node,
                    reply.peer,
                    differing.join(", ")
                );
                repl.record("verify_differs", &message).await;
            }
            Err(status) => {
                let message = format!(
                    "scheduled verify could not run: {}; it runs again in {}",
                    status.message(),
                    crate::config::duration::largest_whole_unit(every)
                );
                repl.record("verify_skipped", &message).await;
            }
        }
    }
}
