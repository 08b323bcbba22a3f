//! `tandemctl`: drive a tandem pair (see `tandemctl --help`).
use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(u8::try_from(tandem_cli::main()).unwrap_or(1))
}
