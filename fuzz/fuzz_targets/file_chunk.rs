//! File transfers as the receiving node takes them (node/src/files.rs `receive`): a header whose
//! path goes through `RelPath::parse`, then chunks and a trailer fed to `IncomingFile` under a
//! replicated directory made once per process. Several files may follow each other in one input.
//!
//! The directory holds planted traps: `link` is a symlink to a directory outside it, `file_link`
//! a symlink to a file outside it, and `plain` a regular file. Input: a flags byte, then
//! length-delimited `PushMessage`s; `FIX_CHECKSUMS` replaces each chunk's checksum with the right
//! one and `FIX_HASHES` the trailer's hash with that of the bytes accepted. Besides "no panic",
//! it checks that nothing outside the directory is ever created or changed, that a finished file
//! lies under the directory and holds exactly the bytes accepted, and that no temp file is left.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tandem_fuzz::{FIX_CHECKSUMS, FIX_HASHES};
use tandem_proto::files as pb;
use tandem_replication::files::path::{RelPath, resolve};
use tandem_replication::files::transfer::{IncomingFile, chunk_checksum};

const OUTSIDE_CONTENT: &[u8] = b"outside the replicated directory";
const PLANTED: [&str; 3] = ["link", "file_link", "plain"];

struct Dirs {
    _scratch: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
}

fn dirs() -> &'static Dirs {
    static DIRS: OnceLock<Dirs> = OnceLock::new();
    DIRS.get_or_init(|| {
        let scratch = tandem_fuzz::scratch_dir("tandem-fuzz-files-");
        let root = scratch.path().join("root");
        let outside = scratch.path().join("outside");
        std::fs::create_dir(&root).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("f"), OUTSIDE_CONTENT).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        std::os::unix::fs::symlink(outside.join("f"), root.join("file_link")).unwrap();
        std::fs::write(root.join("plain"), b"plain").unwrap();
        Dirs {
            _scratch: scratch,
            root,
            outside,
        }
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// One file being received: the writer, its path and the bytes accepted.
struct Receiving {
    file: IncomingFile,
    path: RelPath,
    accepted: Vec<u8>,
}

fn begin(root: &Path, header: &pb::FileHeader) -> Option<Receiving> {
    let path = RelPath::parse(&header.path).ok()?;
    let file = IncomingFile::begin(root, &path, header.size, header.mtime_ns, header.mode).ok()?;
    Some(Receiving {
        file,
        path,
        accepted: Vec::new(),
    })
}

fn finish(root: &Path, receiving: Receiving, flags: u8, trailer: pb::FileTrailer) {
    let hash = if flags & FIX_HASHES != 0 {
        hex(ring::digest::digest(&ring::digest::SHA256, &receiving.accepted).as_ref())
    } else {
        trailer.hash
    };
    if receiving.file.finish(&hash).is_err() {
        return;
    }
    let target = resolve(root, &receiving.path, false).expect("a finished file resolves");
    let canonical = target.canonicalize().expect("a finished file exists");
    let canonical_root = root.canonicalize().unwrap();
    assert!(
        canonical.starts_with(&canonical_root),
        "{} was written outside {}",
        canonical.display(),
        canonical_root.display()
    );
    let on_disk = std::fs::read(&canonical).expect("a finished file is readable");
    assert_eq!(
        on_disk, receiving.accepted,
        "{} is not what was accepted",
        receiving.path
    );
}

fn check_outside_untouched(dirs: &Dirs) {
    let outside = tandem_fuzz::tree(&dirs.outside);
    assert_eq!(
        outside,
        vec![dirs.outside.join("f")],
        "something was created outside"
    );
    assert_eq!(
        std::fs::read(dirs.outside.join("f")).unwrap(),
        OUTSIDE_CONTENT
    );
    let link = std::fs::symlink_metadata(dirs.root.join("link")).unwrap();
    assert!(
        link.file_type().is_symlink(),
        "the planted symlink was replaced"
    );
    let file_link = std::fs::symlink_metadata(dirs.root.join("file_link")).unwrap();
    assert!(
        file_link.file_type().is_symlink(),
        "the planted file symlink was replaced"
    );
}

fuzz_target!(|data: &[u8]| {
    let (flags, messages) = tandem_fuzz::flags_and_messages::<pb::PushMessage>(data);
    let dirs = dirs();
    let mut receiving: Option<Receiving> = None;
    use pb::push_message::Body;
    for message in messages {
        match message.body {
            Some(Body::Header(header)) => {
                // A second header ends the transfer in the node; here it starts the next file.
                receiving = begin(&dirs.root, &header);
            }
            Some(Body::Chunk(chunk)) => {
                let Some(current) = receiving.as_mut() else {
                    continue;
                };
                let checksum = if flags & FIX_CHECKSUMS != 0 {
                    chunk_checksum(&chunk.data)
                } else {
                    chunk.checksum
                };
                match current
                    .file
                    .write_chunk(chunk.offset, &chunk.data, &checksum)
                {
                    Ok(()) => current.accepted.extend_from_slice(&chunk.data),
                    Err(_) => receiving = None,
                }
            }
            Some(Body::Trailer(trailer)) => {
                if let Some(current) = receiving.take() {
                    finish(&dirs.root, current, flags, trailer);
                }
            }
            None => {}
        }
        check_outside_untouched(dirs);
    }
    drop(receiving);
    check_outside_untouched(dirs);
    let temp_files: Vec<_> = tandem_fuzz::tree(&dirs.root)
        .into_iter()
        .filter(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with(".tandem-part-"))
        })
        .collect();
    assert!(
        temp_files.is_empty(),
        "temp files left behind: {temp_files:?}"
    );
    tandem_fuzz::empty_dir_except(&dirs.root, &PLANTED);
});
