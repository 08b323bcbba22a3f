//! `tandem-bench <scenario> [--runs N] [--json FILE]`: the benchmarks of DESIGN.md §11.
//!
//! Each scenario starts a real pair of release-built `tandemd` processes through the test harness,
//! measures from the outside, prints a table and writes JSON with `scenario`, `runs` and its
//! figures (units last in the names). "Served" means that the other node answers `status` as
//! active and admitting, read over a kept-open admin connection polled every 2 ms.

mod clients;
mod files;
mod loads;
mod replication;
mod scenarios;
mod stats;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

#[derive(Parser, Debug)]
#[command(name = "tandem-bench", about = "tandem's benchmarks")]
struct Args {
    scenario: Scenario,
    /// Runs per scenario (failover-crash, failover-freeze, switchover, passive-crash,
    /// login-storm; files: the 4 KiB file's runs).
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// How long false-failovers runs (e.g. "5m"), and each load of replication.
    /// (default: 5m for false-failovers, 10s for replication).
    #[arg(long)]
    duration: Option<String>,
    /// Write the figures as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// chaos: the seed of the fault sequence (the same seed replays the same faults).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// chaos: linearizability mode: register clients, kills, switchovers, stops and peer-link
    /// cuts, and a linearizability check of the history.
    #[arg(long)]
    linearizability: bool,
    /// failover-crash, failover-freeze: also run the pair in witness mode (DESIGN.md §12), and
    /// print both, the pair mode's first, from the same invocation. chaos (with
    /// --linearizability): run the pair with a witness, add the witness's faults, relax nothing
    /// for splits, and check that no instant had both nodes admitting.
    #[arg(long)]
    witness: bool,
    /// chaos (with --witness): the witness is a one-member etcd cluster (Debian's etcd-server)
    /// instead of `tandemd witness`. failover-crash, failover-freeze (with --witness): also run
    /// with etcd as the witness, and print its figures beside the others.
    #[arg(long)]
    etcd: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Scenario {
    FailoverCrash,
    FailoverFreeze,
    Switchover,
    FalseFailovers,
    Replication,
    PassiveCrash,
    LoginStorm,
    Files,
    /// The randomized fault run with its history check (`--seed`, `--duration`); exits 1 on a
    /// violation.
    Chaos,
}

/// `chaos`: the harness's chaos run on the release binaries, as a JSON result.
fn chaos(
    bins: &tandem_harness::Binaries,
    seed: u64,
    duration: Duration,
    linearizability: bool,
    witness: bool,
    etcd: bool,
) -> anyhow::Result<serde_json::Value> {
    if witness && !linearizability {
        anyhow::bail!("chaos --witness runs in linearizability mode: add --linearizability");
    }
    if etcd && !witness {
        anyhow::bail!("chaos --etcd is the etcd witness: add --witness --linearizability");
    }
    let spec = tandem_harness::chaos::ChaosSpec {
        seed,
        duration,
        // Register clients in linearizability mode (six, as the outside check used).
        writers: if linearizability { 6 } else { 2 },
        callers: 2,
        linearizability,
        witness,
        etcd,
    };
    let report = tandem_harness::chaos::run(&spec, bins)?;
    for violation in &report.violations {
        eprintln!("VIOLATION (seed {seed}): {violation}");
    }
    Ok(serde_json::json!({
        "scenario": "chaos",
        "runs": 1,
        "linearizability": linearizability,
        "witness": if etcd { "etcd" } else if witness { "tandemd witness" } else { "none" },
        "seed": report.seed,
        "duration_s": report.duration.as_secs(),
        "faults_total": report.faults_total(),
        "faults": report.faults,
        "operations": report.operations,
        "violations": report.violations,
        "failed": !report.violations.is_empty(),
    }))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tandem_node::daemon::raise_open_files_limit();
    let bins = scenarios::release_binaries()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let default_duration = match args.scenario {
        Scenario::Replication => "10s",
        _ => "5m",
    };
    let duration: Duration = tandem_node::config::duration::parse_duration(
        args.duration.as_deref().unwrap_or(default_duration),
    )
    .map_err(|e| anyhow::anyhow!("--duration: {e}"))?;
    let result = match args.scenario {
        Scenario::FailoverCrash => runtime.block_on(scenarios::failover_modes(
            &bins,
            args.runs,
            libc::SIGKILL,
            args.witness,
            args.etcd,
        ))?,
        Scenario::FailoverFreeze => runtime.block_on(scenarios::failover_modes(
            &bins,
            args.runs,
            libc::SIGSTOP,
            args.witness,
            args.etcd,
        ))?,
        Scenario::Switchover => runtime.block_on(scenarios::switchover(&bins, args.runs))?,
        Scenario::FalseFailovers => {
            runtime.block_on(scenarios::false_failovers(&bins, duration))?
        }
        Scenario::Replication => runtime.block_on(replication::replication(&bins, duration))?,
        Scenario::PassiveCrash => runtime.block_on(replication::passive_crash(&bins, args.runs))?,
        Scenario::LoginStorm => runtime.block_on(scenarios::login_storm(&bins, args.runs))?,
        Scenario::Files => runtime.block_on(files::files(&bins, args.runs))?,
        Scenario::Chaos => chaos(
            &bins,
            args.seed,
            duration,
            args.linearizability,
            args.witness,
            args.etcd,
        )?,
    };
    println!("{}", stats::table(&result));
    if let Some(path) = args.json {
        std::fs::write(&path, serde_json::to_string_pretty(&result)? + "\n")?;
        println!("wrote {}", path.display());
    }
    let failed = result
        .get("failed")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    std::process::exit(i32::from(failed));
}
