//! `tandemd --config node.toml`: run one node of a tandem pair in the foreground.
use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(tandem_node::daemon::main())
}
