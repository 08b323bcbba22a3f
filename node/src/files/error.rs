//! The error that keeps file replication from starting: the manifest (`files.db`) cannot be
//! opened, or the channel to the peer cannot be set up.

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error(transparent)]
    Manifest(#[from] tandem_replication::files::manifest::ManifestError),
    #[error("cannot set up the channel to the peer: {0}")]
    Channel(String),
}
