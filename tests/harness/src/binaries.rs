//! Where the binaries under test are.

use std::path::{Path, PathBuf};

/// The two programs a cluster runs. End-to-end tests of the root package pass
/// `env!("CARGO_BIN_EXE_tandemd")` and `env!("CARGO_BIN_EXE_tandemctl")`; the bench finds them
/// next to itself in the target directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binaries {
    /// The node daemon, started once per node and again on every restart.
    pub tandemd: PathBuf,
    /// The admin CLI: `certs init` while preparing a cluster, then `status` and the other
    /// commands.
    pub tandemctl: PathBuf,
}

impl Binaries {
    pub fn new(tandemd: impl Into<PathBuf>, tandemctl: impl Into<PathBuf>) -> Binaries {
        Binaries {
            tandemd: tandemd.into(),
            tandemctl: tandemctl.into(),
        }
    }

    /// Both binaries in a cargo profile directory such as `target/release`.
    pub fn from_target_dir(profile_dir: impl AsRef<Path>) -> Binaries {
        let profile_dir = profile_dir.as_ref();
        Binaries::new(profile_dir.join("tandemd"), profile_dir.join("tandemctl"))
    }
}
