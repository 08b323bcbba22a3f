//! What travels on the wire: `Chunk`s of a bounded size, then one `Manifest`.
//!
//! Each chunk carries its own SHA-256 so a corrupt chunk is refused where it arrives; the manifest
//! carries the whole file's SHA-256, size and chunk count so a stream that lost or reordered
//! chunks is refused at the end. Not the transport: the peer link moves these as it likes.

use ring::digest;

/// The chunk size used unless the caller picks one.
pub const CHUNK_SIZE_DEFAULT_BYTES: usize = 1024 * 1024;
/// The smallest chunk a reader produces: smaller only multiplies per-chunk overhead.
pub const CHUNK_SIZE_MIN_BYTES: usize = 1024;
/// The largest chunk a reader produces or a writer accepts: bounds the memory of both sides.
pub const CHUNK_SIZE_MAX_BYTES: usize = 16 * 1024 * 1024;

pub type Sha256 = [u8; 32];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Where `bytes` start in the file: the writer refuses anything but the next offset.
    pub offset: u64,
    pub bytes: Vec<u8>,
    /// SHA-256 of `bytes`.
    pub checksum: Sha256,
}

impl Chunk {
    pub fn new(offset: u64, bytes: Vec<u8>) -> Chunk {
        let checksum = sha256(&bytes);
        Chunk {
            offset,
            bytes,
            checksum,
        }
    }

    pub fn checksum_ok(&self) -> bool {
        sha256(&self.bytes) == self.checksum
    }
}

/// Sent after the last chunk: what the receiver must have got in total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub total_bytes: u64,
    /// SHA-256 of the whole file.
    pub sha256: Sha256,
    /// The last `_tandem_log` index in the snapshot: the log continues after it.
    pub last_log_idx: u64,
    pub chunk_count: u64,
}

pub fn sha256(bytes: &[u8]) -> Sha256 {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, bytes).as_ref());
    out
}

pub(crate) fn finish_sha256(context: digest::Context) -> Sha256 {
    let mut out = [0u8; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}

pub(crate) fn hex(bytes: &Sha256) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
