//! The disk loads of false-failovers (DESIGN.md §11): a 1 GiB file transfer always in progress,
//! and an fsync-heavy writer on the same disk. Each runs on a thread of its own until stopped.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crate::files::write_large;

const BULK_BYTES: u64 = 1 << 30;
/// Files the fsync writer cycles through, each rewritten with 4 KiB and fsynced.
const FSYNC_FILES: usize = 64;

/// Keeps a 1 GiB file transfer in progress: while one version of `bulk/big.bin` travels to the
/// passive, the next is written in a staging dir on the same disk (outside the replicated dir);
/// once the passive holds the current one, the next is renamed over it, and so on.
pub struct BulkTransfer {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<anyhow::Result<u64>>,
}

impl BulkTransfer {
    pub fn start(active_dir: PathBuf, passive_dir: PathBuf, staging: PathBuf) -> BulkTransfer {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || -> anyhow::Result<u64> {
            std::fs::create_dir_all(active_dir.join("bulk"))?;
            let (source, target) = (
                active_dir.join("bulk/big.bin"),
                passive_dir.join("bulk/big.bin"),
            );
            let next = staging.join("bulk-next.bin");
            let mut arrived = 0u64;
            let mut travelling: Option<SystemTime> = None;
            for seed in 1u64.. {
                write_large(&next, BULK_BYTES, seed)?;
                if let Some(mtime) = travelling {
                    // Until the passive holds the version in flight (or the load stops).
                    loop {
                        if stopped.load(Ordering::Relaxed) {
                            return Ok(arrived);
                        }
                        let there = std::fs::metadata(&target)
                            .is_ok_and(|meta| meta.modified().is_ok_and(|m| m == mtime));
                        if there {
                            arrived += 1;
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                travelling = Some(std::fs::metadata(&next)?.modified()?);
                std::fs::rename(&next, &source)?;
            }
            Ok(arrived)
        });
        BulkTransfer { stop, thread }
    }

    /// Stops the load; the number of 1 GiB versions that reached the passive.
    pub fn stop(self) -> anyhow::Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the bulk transfer load panicked"))?
    }
}

/// Rewrites small files with 4 KiB and fsyncs each, without pause, in a dir on the same disk.
pub struct FsyncWriter {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<anyhow::Result<(u64, Duration)>>,
}

impl FsyncWriter {
    pub fn start(dir: PathBuf) -> FsyncWriter {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || -> anyhow::Result<(u64, Duration)> {
            std::fs::create_dir_all(&dir)?;
            let block = vec![0x5au8; 4096];
            let (mut fsyncs, mut longest) = (0u64, Duration::ZERO);
            while !stopped.load(Ordering::Relaxed) {
                let path = dir.join(format!("f{}", fsyncs as usize % FSYNC_FILES));
                let start = Instant::now();
                let mut file = std::fs::File::create(&path)?;
                file.write_all(&block)?;
                file.sync_all()?;
                longest = longest.max(start.elapsed());
                fsyncs += 1;
            }
            Ok((fsyncs, longest))
        });
        FsyncWriter { stop, thread }
    }

    /// Stops the load; the fsyncs done and the longest write + fsync.
    pub fn stop(self) -> anyhow::Result<(u64, Duration)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the fsync writer panicked"))?
    }
}
