//! Snapshot transfers as the passive takes them (node/src/repl/receive.rs `snapshot_begin`,
//! `snapshot_chunk`, `snapshot_end`): `keep_name` on the begin message, the checksum's length,
//! `SnapshotWriter::write_chunk` and `SnapshotWriter::finish` against the manifest, in a data
//! directory made once per process (on tmpfs when there is one).
//!
//! Input: a flags byte, then length-delimited `ShipMessage`s. `FIX_CHECKSUMS` replaces each
//! chunk's checksum with the right one, `FIX_HASHES` the end's SHA-256 with that of the bytes
//! accepted so far. Besides "no panic", it checks that a verified snapshot holds exactly the
//! bytes accepted, and that nothing is left in the data directory once a transfer ends.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tandem_fuzz::{FIX_CHECKSUMS, FIX_HASHES};
use tandem_node::repl::receive::keep_name;
use tandem_proto::peer as pb;
use tandem_replication::snapshot::{Chunk, Manifest, SnapshotWriter, sha256};

fn data_dir() -> &'static PathBuf {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &DIR.get_or_init(|| {
        let dir = tandem_fuzz::scratch_dir("tandem-fuzz-snapshot-");
        let path = dir.path().to_path_buf();
        (dir, path)
    })
    .1
}

/// One transfer in progress: the writer and the bytes it accepted.
struct Transfer {
    writer: SnapshotWriter,
    accepted: Vec<u8>,
}

fn on_chunk(transfer: &mut Option<Transfer>, flags: u8, chunk: pb::SnapshotChunk) {
    let Some(current) = transfer.as_mut() else {
        return;
    };
    let checksum: [u8; 32] = if flags & FIX_CHECKSUMS != 0 {
        sha256(&chunk.data)
    } else {
        match chunk.checksum.as_slice().try_into() {
            Ok(checksum) => checksum,
            Err(_) => {
                // The node ends the stream: the writer is dropped.
                *transfer = None;
                return;
            }
        }
    };
    let chunk = Chunk {
        offset: chunk.offset,
        bytes: chunk.data,
        checksum,
    };
    match current.writer.write_chunk(&chunk) {
        Ok(progress) => {
            let fraction = progress.fraction();
            assert!((0.0..=1.0).contains(&fraction), "progress {fraction}");
            current.accepted.extend_from_slice(&chunk.bytes);
        }
        Err(_) => *transfer = None,
    }
}

fn on_end(transfer: &mut Option<Transfer>, flags: u8, end: pb::SnapshotEnd) {
    let Some(current) = transfer.take() else {
        return;
    };
    let sha256_of_end: [u8; 32] = if flags & FIX_HASHES != 0 {
        sha256(&current.accepted)
    } else {
        match end.sha256.as_slice().try_into() {
            Ok(digest) => digest,
            Err(_) => return,
        }
    };
    let manifest = Manifest {
        total_bytes: end.total_bytes,
        sha256: sha256_of_end,
        last_log_idx: end.last_index,
        chunk_count: end.chunk_count,
    };
    if let Ok(verified) = current.writer.finish(&manifest) {
        let on_disk = std::fs::read(verified.path()).expect("a verified snapshot is readable");
        assert_eq!(
            on_disk, current.accepted,
            "the snapshot is not what was accepted"
        );
        assert_eq!(verified.total_bytes(), on_disk.len() as u64);
    }
}

fuzz_target!(|data: &[u8]| {
    let (flags, messages) = tandem_fuzz::flags_and_messages::<pb::ShipMessage>(data);
    let dir = data_dir();
    let mut transfer: Option<Transfer> = None;
    use pb::ship_message::Body;
    for message in messages {
        match message.body {
            Some(Body::SnapshotBegin(begin)) => {
                if keep_name(&begin.keep_old_as).is_err() {
                    break;
                }
                // A second begin replaces the first, as in the node (the old one is dropped).
                drop(transfer.take());
                match SnapshotWriter::begin(dir, begin.total_bytes) {
                    Ok(writer) => {
                        transfer = Some(Transfer {
                            writer,
                            accepted: Vec::new(),
                        })
                    }
                    Err(error) => panic!("cannot begin a snapshot in {}: {error}", dir.display()),
                }
            }
            Some(Body::SnapshotChunk(chunk)) => on_chunk(&mut transfer, flags, chunk),
            Some(Body::SnapshotEnd(end)) => on_end(&mut transfer, flags, end),
            _ => {}
        }
    }
    drop(transfer);
    let left = tandem_fuzz::tree(dir);
    assert!(
        left.is_empty(),
        "left behind in the data directory: {left:?}"
    );
});
