//! Helpers shared by the fuzz targets in `fuzz_targets/` and the seed generator in
//! `src/bin/seed.rs`: how an input is cut into protobuf messages, and where a target keeps its
//! scratch files.
//!
//! Inputs that carry a stream of messages are a flags byte followed by length-delimited protobuf
//! messages (the framing prost's `encode_length_delimited` writes). The flags let a target repair
//! checksums and hashes the fuzzer cannot forge, so the checks behind them are reached too.
//!
//! Not here: any check of the node's own; each target calls the node's public functions.

use std::path::{Path, PathBuf};

use prost::Message;

/// Messages one input may carry: bounds the work of one execution.
pub const MESSAGES_MAX: usize = 64;

/// Flag bit: replace each checksum the fuzzer supplied with the right one.
pub const FIX_CHECKSUMS: u8 = 1;
/// Flag bit: replace each whole-file or chained hash with the right one.
pub const FIX_HASHES: u8 = 2;

/// The flags byte and the messages after it, up to the first that does not decode.
pub fn flags_and_messages<M: Message + Default>(data: &[u8]) -> (u8, Vec<M>) {
    let Some((&flags, mut rest)) = data.split_first() else {
        return (0, Vec::new());
    };
    let mut out = Vec::new();
    while !rest.is_empty() && out.len() < MESSAGES_MAX {
        match M::decode_length_delimited(&mut rest) {
            Ok(message) => out.push(message),
            Err(_) => break,
        }
    }
    (flags, out)
}

/// The input format of `flags_and_messages`, for seeds and regression inputs.
pub fn encode_input<M: Message>(flags: u8, messages: &[M]) -> Vec<u8> {
    let mut out = vec![flags];
    for message in messages {
        message
            .encode_length_delimited(&mut out)
            .expect("a Vec grows as needed");
    }
    out
}

/// A directory for one fuzzing process, on tmpfs when there is one so fsyncs cost nothing.
pub fn scratch_dir(prefix: &str) -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let builder = tempfile::Builder::new().prefix(prefix).clone();
    if shm.is_dir()
        && let Ok(dir) = builder.tempdir_in(shm)
    {
        return dir;
    }
    builder.tempdir().expect("a temp directory")
}

/// Every file and directory under `dir`, without following symlinks.
pub fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(next) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&next) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                todo.push(path.clone());
            }
            out.push(path);
        }
    }
    out
}

/// Removes everything in `dir` except the names in `keep`.
pub fn empty_dir_except(dir: &Path, keep: &[&str]) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if keep.iter().any(|name| entry.file_name() == *name) {
            continue;
        }
        let path = entry.path();
        if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            let _ = std::fs::remove_dir_all(&path);
        } else {
            let _ = std::fs::remove_file(&path);
        }
    }
}
