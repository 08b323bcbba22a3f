//! A short seeded chaos run (issue 7): a pair under Data API writers, gateway callers and a file
//! writer, with random kills, stops, partitions, one-way cuts, delays, switchovers, suspended
//! monitoring and restarts of both nodes; then the history check. A failure names the seed and
//! the first violation; `cargo run --release -p tandem-bench -- chaos --seed N --duration D`
//! replays a seed for longer.

mod common;

use std::time::Duration;

use common::*;
use tandem_harness::chaos::{self, ChaosSpec};

/// The seed of the run in the test suite; another seed is another sequence of faults.
const SEED: u64 = 20261124;

#[test]
fn a_short_chaos_run_keeps_every_promise() -> anyhow::Result<()> {
    let _serial = serial();
    let spec = ChaosSpec {
        seed: SEED,
        duration: Duration::from_secs(75),
        writers: 2,
        callers: 2,
        linearizability: false,
        witness: false,
        etcd: false,
    };
    let report = chaos::run(&spec, &bins())?;
    eprintln!("{report:#?}");
    assert!(
        report.violations.is_empty(),
        "seed {}: first violation: {}",
        report.seed,
        report.violations[0]
    );
    assert!(report.faults_total() >= 10, "{:?}", report.faults);
    let acked_rows = report
        .operations
        .get("row_insert_acked")
        .copied()
        .unwrap_or(0);
    let acked_calls = report
        .operations
        .get("call_end_acked")
        .copied()
        .unwrap_or(0);
    let acked_files = report
        .operations
        .get("file_write_acked")
        .copied()
        .unwrap_or(0);
    assert!(
        acked_rows > 0 && acked_calls > 0 && acked_files > 0,
        "the workload did work: {:?}",
        report.operations
    );
    Ok(())
}
