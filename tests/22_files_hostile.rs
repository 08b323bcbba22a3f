//! `[[files]]` under hostile and heavy conditions: a crafted peer message naming a path outside
//! the directory (or a corrupt one) is refused and writes nothing; a large file being written on
//! the active never shows up half done on the passive; a 1 GiB transfer costs no keep-alive; a
//! full disk on the receiver is reported and the sender retries until it fits; a switchover waits
//! for the files written just before it.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, anyhow, ensure};
use common::*;
use tandem_harness::{Cluster, ClusterSpec};
use tandem_proto::files as pb;
use tandem_proto::files::files_client::FilesClient;
use tonic::transport::Channel;

/// The prefix of the receiver's temp files (`tandem_replication::files::path::TEMP_PREFIX`).
const TEMP_PREFIX: &str = ".tandem-part-";
const MIB: u64 = 1024 * 1024;
/// Deadline for a transfer of hundreds of megabytes between two debug builds on a small machine.
const BIG_WAIT: Duration = Duration::from_secs(300);

/// The two replicated directories, and a directory outside both that a hostile path aims at.
struct Dirs {
    root: tempfile::TempDir,
    a: PathBuf,
    b: PathBuf,
    outside: PathBuf,
}

impl Dirs {
    fn new() -> anyhow::Result<Dirs> {
        let root = tempfile::tempdir()?;
        let (a, b) = (root.path().join("vm-a"), root.path().join("vm-b"));
        let outside = root.path().join("outside");
        for dir in [&a, &b, &outside] {
            std::fs::create_dir_all(dir)?;
        }
        Ok(Dirs {
            root,
            a,
            b,
            outside,
        })
    }

    fn spec(&self, spec: ClusterSpec) -> ClusterSpec {
        let entry = |dir: &Path| {
            format!(
                "[[files]]\nname = \"voicemail\"\ndir = \"{}\"\ninclude = [\"**/*.wav\"]\nscan_interval = \"2s\"\n",
                dir.display()
            )
        };
        spec.extra_toml("a", &entry(&self.a))
            .extra_toml("b", &entry(&self.b))
    }

    /// The names directly in the directory that holds both replicated directories.
    fn root_names(&self) -> anyhow::Result<Vec<String>> {
        names_in(self.root.path())
    }
}

fn names_in(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        names.push(entry?.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// The receiver's temp files anywhere under `dir` (not following symlinks).
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                stack.push(entry.path());
            } else if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                found.push(entry.path());
            }
        }
    }
    found
}

/// SHA-256 of `data`, for a chunk's checksum (`sha256sum`: the test binary has no hashing crate
/// of its own).
fn sha256(data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("run sha256sum")?;
    child
        .stdin
        .take()
        .ok_or_else(|| anyhow!("sha256sum has no stdin"))?
        .write_all(data)?;
    let output = child.wait_with_output()?;
    ensure!(output.status.success(), "sha256sum failed: {output:?}");
    let text = String::from_utf8(output.stdout)?;
    let hex = text.split_whitespace().next().unwrap_or_default();
    ensure!(hex.len() == 64, "sha256sum printed {text:?}");
    (0..hex.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&hex[at..at + 2], 16).context("sha256sum output"))
        .collect()
}

/// Asserts that two files hold the same bytes, compared block by block: for files of hundreds of
/// megabytes this is stronger than comparing hashes, and far cheaper than `sha256sum` twice.
fn assert_same_content(source: &Path, copy: &Path) -> anyhow::Result<()> {
    use std::io::Read;
    let (mut left, mut right) = (std::fs::File::open(source)?, std::fs::File::open(copy)?);
    let (mut left_block, mut right_block) = (vec![0u8; MIB as usize], vec![0u8; MIB as usize]);
    let mut offset = 0u64;
    loop {
        let read = read_full(&mut left, &mut left_block)?;
        let read_copy = read_full(&mut right, &mut right_block)?;
        assert_eq!(
            (read, left_block[..read] == right_block[..read_copy]),
            (read_copy, true),
            "{} and {} differ in the MiB at offset {offset}",
            source.display(),
            copy.display()
        );
        if read == 0 {
            return Ok(());
        }
        offset += read as u64;
    }

    fn read_full(file: &mut std::fs::File, block: &mut [u8]) -> std::io::Result<usize> {
        let mut filled = 0;
        while filled < block.len() {
            match file.read(&mut block[filled..])? {
                0 => break,
                read => filled += read,
            }
        }
        Ok(filled)
    }
}

/// Writes `blocks` MiB of pseudo-random content to `path`, one 1 MiB write after another with no
/// pause. Each block is a different window of a 2 MiB xorshift pool, stamped with its number, so
/// no two blocks are alike and a misplaced chunk shows; generating 1 GiB of fresh PRNG output in
/// a debug build would take longer than the transfer.
fn write_random_file(path: &Path, blocks: u64, seed: u64) -> anyhow::Result<()> {
    let mut state = seed | 1;
    let mut pool = vec![0u8; 2 * MIB as usize];
    for word in pool.chunks_exact_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        word.copy_from_slice(&state.to_le_bytes());
    }
    let mut file = std::fs::File::create(path)?;
    let mut block = vec![0u8; MIB as usize];
    for number in 0..blocks {
        let start = usize::try_from(number.wrapping_mul(0x9e37_79b9) % MIB)?;
        block.copy_from_slice(&pool[start..start + MIB as usize]);
        block[..8].copy_from_slice(&number.to_le_bytes());
        file.write_all(&block)?;
    }
    Ok(())
}

fn size_of(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|meta| meta.len())
}

/// Waits until `path` holds exactly `content`.
fn wait_content(cluster: &Cluster, path: &Path, content: &[u8]) -> anyhow::Result<()> {
    cluster.wait_until(
        WAIT,
        &format!("{} with its content", path.display()),
        |_| Ok((std::fs::read(path).ok().as_deref() == Some(content)).then_some(())),
    )
}

fn files_status(cluster: &Cluster, node: &str) -> anyhow::Result<serde_json::Value> {
    Ok(cluster.status(node)?["files"][0].clone())
}

/// A gRPC client of `target`'s `Files` service on its peer port, presenting `as_node`'s
/// certificate: exactly what the peer dials.
async fn files_client_as(
    cluster: &Cluster,
    as_node: &str,
    target: &str,
) -> anyhow::Result<FilesClient<Channel>> {
    tandem_node::tls::install_crypto_provider();
    let certs = cluster.certs_dir();
    let files = tandem_node::tls::TlsFiles {
        ca: certs.join("ca.pem"),
        cert: certs.join(format!("{as_node}.pem")),
        key: certs.join(format!("{as_node}.key")),
    };
    let config = tandem_node::tls::client_config(&files, true)?;
    let address = cluster.addrs(target).peer.to_string();
    let channel =
        tandem_node::tls::connect(&address, target, config, Duration::from_secs(5)).await?;
    Ok(FilesClient::new(channel))
}

/// One crafted `Push`: a header, one chunk and a trailer, each of which a test may spoil.
struct Crafted {
    path: String,
    content: Vec<u8>,
    /// The size the header announces.
    size: u64,
    chunk_offset: u64,
    chunk_checksum: Vec<u8>,
    trailer_hash: String,
}

impl Crafted {
    /// A well-formed push of `content` to `path`.
    fn new(path: &str, content: &[u8]) -> anyhow::Result<Crafted> {
        let checksum = sha256(content)?;
        let hash = checksum.iter().map(|byte| format!("{byte:02x}")).collect();
        Ok(Crafted {
            path: path.to_string(),
            content: content.to_vec(),
            size: content.len() as u64,
            chunk_offset: 0,
            chunk_checksum: checksum,
            trailer_hash: hash,
        })
    }

    async fn send(self, client: &mut FilesClient<Channel>) -> Result<String, tonic::Status> {
        use pb::push_message::Body;
        let messages = vec![
            Body::Header(pb::FileHeader {
                entry: "voicemail".into(),
                path: self.path,
                size: self.size,
                mtime_ns: 1_700_000_000_000_000_000,
                mode: 0o644,
                term: 1,
            }),
            Body::Chunk(pb::FileChunk {
                offset: self.chunk_offset,
                data: self.content,
                checksum: self.chunk_checksum,
            }),
            Body::Trailer(pb::FileTrailer {
                hash: self.trailer_hash,
            }),
        ];
        let stream = futures::stream::iter(
            messages
                .into_iter()
                .map(|body| pb::PushMessage { body: Some(body) }),
        );
        client
            .push(stream)
            .await
            .map(|reply| reply.into_inner().message)
    }
}

/// Asserts a refusal with `code` whose message contains every one of `words`.
fn assert_refused<T: std::fmt::Debug>(
    what: &str,
    result: Result<T, tonic::Status>,
    code: tonic::Code,
    words: &[&str],
) {
    let status = match result {
        Ok(value) => panic!("{what}: accepted ({value:?}), expected {code:?}"),
        Err(status) => status,
    };
    assert_eq!(status.code(), code, "{what}: {}", status.message());
    for word in words {
        assert!(
            status.message().contains(word),
            "{what}: the refusal {:?} does not name {word:?}",
            status.message()
        );
    }
}

#[test]
fn crafted_peer_messages_outside_the_directory_or_corrupt_are_refused() -> anyhow::Result<()> {
    let _serial = serial();
    let dirs = Dirs::new()?;
    let cluster = Cluster::start(dirs.spec(ClusterSpec::new()), &bins())?;
    wait_steady(&cluster, "a")?;

    phase("plant symlinks out of b's directory, and a file replicated the normal way");
    std::fs::write(dirs.outside.join("victim.wav"), b"outside, not replicated")?;
    std::os::unix::fs::symlink(&dirs.outside, dirs.b.join("link"))?;
    std::os::unix::fs::symlink(
        dirs.outside.join("victim.wav"),
        dirs.b.join("evil-link.wav"),
    )?;
    std::fs::write(dirs.a.join("target.wav"), b"the original")?;
    wait_content(&cluster, &dirs.b.join("target.wav"), b"the original")?;
    let root_before = dirs.root_names()?;
    let b_before = names_in(&dirs.b)?;
    let untouched = |what: &str| -> anyhow::Result<()> {
        assert_eq!(dirs.root_names()?, root_before, "{what}: beside the dirs");
        assert_eq!(names_in(&dirs.outside)?, ["victim.wav"], "{what}: outside");
        assert_eq!(
            std::fs::read(dirs.outside.join("victim.wav"))?,
            b"outside, not replicated",
            "{what}: the file outside"
        );
        assert_eq!(names_in(&dirs.b)?, b_before, "{what}: b's dir");
        assert_eq!(
            std::fs::read(dirs.b.join("target.wav"))?,
            b"the original",
            "{what}: target.wav"
        );
        assert_eq!(temp_files(&dirs.b), Vec::<PathBuf>::new(), "{what}");
        Ok(())
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let mut client = runtime.block_on(files_client_as(&cluster, "a", "b"))?;

    phase("pushes to paths outside b's directory: INVALID_ARGUMENT, nothing written");
    let absolute = format!("{}/evil.wav", dirs.outside.display());
    let escapes: [(&str, &[&str]); 5] = [
        ("../evil.wav", &["\"..\"", "../evil.wav"]),
        (&absolute, &["absolute"]),
        ("a/../../evil.wav", &["\"..\""]),
        ("link/evil.wav", &["symlink", "link/evil.wav"]),
        ("evil-link.wav", &["symlink", "evil-link.wav"]),
    ];
    for (path, words) in escapes {
        let pushed = runtime.block_on(Crafted::new(path, b"evil")?.send(&mut client));
        assert_refused(path, pushed, tonic::Code::InvalidArgument, words);
        untouched(path)?;
    }

    phase("removes, fetches and settles outside the directory are refused too");
    for path in ["../outside/victim.wav", "link/victim.wav", "evil-link.wav"] {
        let removed = runtime.block_on(client.remove(pb::RemoveRequest {
            entry: "voicemail".into(),
            path: path.into(),
            expected: String::new(),
        }));
        assert_refused(path, removed, tonic::Code::InvalidArgument, &[path]);
        untouched(path)?;
    }
    for path in ["../outside/victim.wav", "link/victim.wav", "evil-link.wav"] {
        let fetched = runtime.block_on(async {
            let mut stream = client
                .fetch(pb::FetchRequest {
                    entry: "voicemail".into(),
                    path: path.into(),
                })
                .await?
                .into_inner();
            let mut bytes = 0;
            while let Some(message) = stream.message().await? {
                if let Some(pb::push_message::Body::Chunk(chunk)) = message.body {
                    bytes += chunk.data.len();
                }
            }
            Ok::<_, tonic::Status>(bytes)
        });
        assert!(fetched.is_err(), "fetch {path}: {fetched:?}");
    }
    let settled = runtime.block_on(client.settle(pb::SettleRequest {
        entry: "voicemail".into(),
        rows: vec![pb::SettleRow {
            path: "../outside/victim.wav".into(),
            synced: String::new(),
        }],
    }));
    assert_refused("settle", settled, tonic::Code::InvalidArgument, &["\"..\""]);

    phase("corrupt pushes over target.wav: DATA_LOSS, the target untouched, no temp file");
    let mut bad_chunk = Crafted::new("target.wav", b"replaced!")?;
    bad_chunk.chunk_checksum = sha256(b"something else")?;
    let mut bad_hash = Crafted::new("target.wav", b"replaced!")?;
    bad_hash.trailer_hash = "0".repeat(64);
    let mut too_long = Crafted::new("target.wav", b"replaced!")?;
    too_long.size = 4;
    let mut bad_offset = Crafted::new("target.wav", b"replaced!")?;
    bad_offset.chunk_offset = 100;
    let corrupt = [
        ("a bad chunk checksum", bad_chunk, "checksum"),
        ("a trailer hash that does not match", bad_hash, "SHA-256"),
        ("more bytes than announced", too_long, "announced"),
        ("a chunk at the wrong offset", bad_offset, "offset 100"),
    ];
    for (what, push, word) in corrupt {
        let pushed = runtime.block_on(push.send(&mut client));
        assert_refused(what, pushed, tonic::Code::DataLoss, &["target.wav", word]);
        untouched(what)?;
    }

    phase("the active takes no pushes from its peer");
    let mut to_active = runtime.block_on(files_client_as(&cluster, "b", "a"))?;
    let pushed = runtime.block_on(Crafted::new("from-b.wav", b"b")?.send(&mut to_active));
    assert_refused(
        "push to a",
        pushed,
        tonic::Code::FailedPrecondition,
        &["active"],
    );
    assert!(!dirs.a.join("from-b.wav").exists());

    phase("b still works: a file written on a arrives, the roles are unchanged");
    std::fs::write(dirs.a.join("after.wav"), b"written after the attacks")?;
    wait_content(
        &cluster,
        &dirs.b.join("after.wav"),
        b"written after the attacks",
    )?;
    wait_steady(&cluster, "a")?;
    assert_eq!(names_in(&dirs.outside)?, ["victim.wav"]);
    assert_eq!(dirs.root_names()?, root_before);
    Ok(())
}

#[test]
fn a_file_being_written_never_appears_half_done_on_the_passive() -> anyhow::Result<()> {
    let _serial = serial();
    let dirs = Dirs::new()?;
    let cluster = Cluster::start(dirs.spec(ClusterSpec::new()), &bins())?;
    wait_steady(&cluster, "a")?;
    const BLOCKS: u64 = 200;
    let (source, copy) = (dirs.a.join("big.wav"), dirs.b.join("big.wav"));

    phase("write 200 MiB on a in 1 MiB writes while b's copy is watched without pause");
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (stop, copy) = (stop.clone(), copy.clone());
        std::thread::spawn(move || {
            let (mut absent, mut complete) = (0u64, 0u64);
            let mut partial = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                match size_of(&copy) {
                    None => absent += 1,
                    Some(size) if size == BLOCKS * MIB => complete += 1,
                    Some(size) => partial.push(size),
                }
                std::thread::yield_now();
            }
            (absent, complete, partial)
        })
    };
    let written = write_random_file(&source, BLOCKS, 0x5eed_0200);

    phase("the copy arrives complete");
    let arrived = cluster.wait_until(BIG_WAIT, "big.wav complete on b", |_| {
        Ok((size_of(&copy) == Some(BLOCKS * MIB)).then_some(()))
    });
    stop.store(true, Ordering::SeqCst);
    let (absent, complete, partial) = watcher
        .join()
        .map_err(|_| anyhow!("the watching thread panicked"))?;
    written?;
    arrived?;
    eprintln!("b's copy seen absent {absent} times, complete {complete} times");
    assert_eq!(
        partial,
        Vec::<u64>::new(),
        "sizes of a partial big.wav on b"
    );
    assert!(absent > 0, "the copy was watched before it could arrive");
    assert_same_content(&source, &copy)?;
    assert_eq!(temp_files(&dirs.b), Vec::<PathBuf>::new());
    Ok(())
}

/// The events a pair records when a keep-alive goes missing or the roles move.
const TROUBLE: [&str; 5] = [
    "peer_suspect",
    "peer_failed",
    "failover",
    "split_brain",
    "role_change",
];

fn trouble(cluster: &Cluster, node: &str) -> anyhow::Result<Vec<(String, String)>> {
    Ok(events(cluster, node)?
        .into_iter()
        .filter(|(kind, _)| TROUBLE.contains(&kind.as_str()))
        .collect())
}

#[test]
fn a_one_gib_transfer_misses_no_keep_alive() -> anyhow::Result<()> {
    let _serial = serial();
    let dirs = Dirs::new()?;
    let cluster = Cluster::start(dirs.spec(ClusterSpec::new()), &bins())?;
    wait_steady(&cluster, "a")?;
    let before = [trouble(&cluster, "a")?, trouble(&cluster, "b")?];
    const BLOCKS: u64 = 1024;
    let (source, copy) = (dirs.a.join("huge.wav"), dirs.b.join("huge.wav"));

    phase("write 1 GiB on a; watch both nodes' status until it is on b");
    let started = std::time::Instant::now();
    let writer = {
        let source = source.clone();
        std::thread::spawn(move || {
            write_random_file(&source, BLOCKS, 0x5eed_1024)?;
            Ok::<_, anyhow::Error>(started.elapsed())
        })
    };
    let pending_bytes_max = AtomicU64::new(0);
    let polls = AtomicU64::new(0);
    cluster.wait_until(BIG_WAIT, "huge.wav complete on b", |c| {
        let (a, b) = (c.status("a")?, c.status("b")?);
        polls.fetch_add(1, Ordering::SeqCst);
        assert_eq!(role(&a), "active", "a during the transfer: {}", brief(&a));
        assert_eq!(role(&b), "passive", "b during the transfer: {}", brief(&b));
        assert_eq!(a["peer"]["state"], "ok", "a's view of b: {}", brief(&a));
        assert_eq!(b["peer"]["state"], "ok", "b's view of a: {}", brief(&b));
        let pending = a["files"][0]["pending_bytes"].as_u64().unwrap_or(0);
        pending_bytes_max.fetch_max(pending, Ordering::SeqCst);
        Ok((size_of(&copy) == Some(BLOCKS * MIB)).then_some(()))
    })?;
    let arrived = started.elapsed();
    let written = writer
        .join()
        .map_err(|_| anyhow!("the writing thread panicked"))??;
    let pending_bytes_max = pending_bytes_max.load(Ordering::SeqCst);
    eprintln!(
        "written in {written:?}, on b after {arrived:?}; {} status polls; pending_bytes seen up to {pending_bytes_max}",
        polls.load(Ordering::SeqCst)
    );

    phase("the copy is identical; no keep-alive was missed and the roles never moved");
    assert_same_content(&source, &copy)?;
    assert!(
        pending_bytes_max > 0,
        "status.files[0].pending_bytes never showed the transfer"
    );
    let after = [trouble(&cluster, "a")?, trouble(&cluster, "b")?];
    assert_eq!(
        after, before,
        "events of a missed keep-alive or a role change"
    );
    wait_steady(&cluster, "a")?;

    phase("delete the file on a: the deletion frees b's disk too");
    std::fs::remove_file(&source)?;
    cluster.wait_until(WAIT, "huge.wav deleted on b", |_| {
        Ok((!copy.exists()).then_some(()))
    })?;
    Ok(())
}

/// A tmpfs mounted over a directory for the life of the guard.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> anyhow::Result<Tmpfs> {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .context("run mount")?;
        ensure!(
            status.success(),
            "mount a tmpfs on {}: {status}",
            dir.display()
        );
        Ok(Tmpfs {
            dir: dir.to_path_buf(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|status| status.success());
        if !unmounted {
            // Busy: detach it now, the kernel frees it once nothing uses it.
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// Waits until a's file sync reports an error containing `needle`; returns it.
fn wait_files_error(cluster: &Cluster, needle: &str) -> anyhow::Result<String> {
    cluster.wait_until(WAIT, &format!("a's files error with {needle:?}"), |c| {
        let error = files_status(c, "a")?["error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if error.contains(needle) {
            Ok(Some(error))
        } else {
            Err(anyhow!("a's files error: {error:?}"))
        }
    })
}

fn wait_files_error_cleared(cluster: &Cluster) -> anyhow::Result<()> {
    cluster.wait_until(WAIT, "a's files error to clear", |c| {
        let files = files_status(c, "a")?;
        if files["error"] == "" {
            Ok(Some(()))
        } else {
            Err(anyhow!("a's files: {files}"))
        }
    })
}

#[test]
fn a_full_disk_on_the_passive_is_reported_and_the_sender_retries() -> anyhow::Result<()> {
    let _serial = serial();
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { tandem_harness::libc::geteuid() } != 0 {
        eprintln!("SKIPPED: mounting a tmpfs needs root");
        return Ok(());
    }
    let dirs = Dirs::new()?;
    let _tmpfs = Tmpfs::mount(&dirs.b, "4m")?;
    let cluster = Cluster::start(dirs.spec(ClusterSpec::new()), &bins())?;
    wait_steady(&cluster, "a")?;

    phase("an 8 MiB file cannot fit on b's 4 MiB disk: a reports b's refusal");
    let too_big = vec![0x5au8; 8 * MIB as usize];
    std::fs::write(dirs.a.join("too-big.wav"), &too_big)?;
    let error = wait_files_error(&cluster, "No space left")?;
    assert!(error.contains("too-big.wav"), "{error}");
    assert!(!dirs.b.join("too-big.wav").exists());

    phase("without the big file, a small one goes through and the error clears");
    std::fs::remove_file(dirs.a.join("too-big.wav"))?;
    std::fs::write(dirs.a.join("small.wav"), vec![1u8; 100_000])?;
    wait_content(&cluster, &dirs.b.join("small.wav"), &vec![1u8; 100_000])?;
    wait_files_error_cleared(&cluster)?;

    phase("b's disk nearly full: a 2 MiB file fails until space is freed on b, then arrives");
    // Not a .wav: not replicated in either direction.
    std::fs::write(dirs.b.join("filler.bin"), vec![0u8; 3 * MIB as usize])?;
    let medium = vec![0xa5u8; 2 * MIB as usize];
    std::fs::write(dirs.a.join("medium.wav"), &medium)?;
    let error = wait_files_error(&cluster, "No space left")?;
    assert!(error.contains("medium.wav"), "{error}");
    std::fs::remove_file(dirs.b.join("filler.bin"))?;
    wait_content(&cluster, &dirs.b.join("medium.wav"), &medium)?;
    wait_files_error_cleared(&cluster)?;
    assert_eq!(temp_files(&dirs.b), Vec::<PathBuf>::new());
    assert_eq!(names_in(&dirs.b)?, ["medium.wav", "small.wav"]);
    Ok(())
}

#[test]
fn a_switchover_waits_for_the_files_written_before_it() -> anyhow::Result<()> {
    let _serial = serial();
    let dirs = Dirs::new()?;
    let cluster = Cluster::start(dirs.spec(ClusterSpec::new()), &bins())?;
    wait_steady(&cluster, "a")?;

    phase("write a file on a and switch over at once");
    let content = vec![42u8; 3 * MIB as usize];
    std::fs::write(dirs.a.join("last-minute.wav"), &content)?;
    let out = cluster.ctl_ok("a", &["switchover"])?;
    eprintln!("switchover: {out}");

    phase("once b is active, the file is already there");
    cluster.wait_role("b", "active", WAIT)?;
    let on_b = std::fs::read(dirs.b.join("last-minute.wav")).ok();
    assert_eq!(
        on_b.as_ref().map(Vec::len),
        Some(content.len()),
        "the file written before the switchover is on the new active"
    );
    assert!(on_b == Some(content), "b's copy differs");
    wait_steady(&cluster, "b")?;
    Ok(())
}
