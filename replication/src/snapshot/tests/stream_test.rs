//! Reader → writer → install, and every way a stream can be refused without installing.

use super::fixtures::{
    SMALL_CHUNK_BYTES, all_chunks, data_dir_with, items, make_db, names_starting,
    read_current_items, read_pointer, receive,
};
use crate::snapshot::{
    CHUNK_SIZE_MAX_BYTES, SnapshotError, SnapshotInfo, SnapshotReader, SnapshotWriter,
    create_snapshot, install,
};

/// A data directory holding `old` rows, and a snapshot of a different database with `new` rows.
async fn setup(temp: &tempfile::TempDir) -> (std::path::PathBuf, SnapshotInfo) {
    let data_dir = data_dir_with(temp.path(), &items("old", 5)).await;
    let source_dir = temp.path().join("active");
    std::fs::create_dir(&source_dir).unwrap();
    let source = source_dir.join("data.db");
    make_db(&source, &items("new", 200), 42).await;
    let info = create_snapshot(&source, &source_dir).await.unwrap();
    assert!(
        info.bytes > 8 * SMALL_CHUNK_BYTES as u64,
        "enough chunks to lose one"
    );
    (data_dir, info)
}

/// Feeds `chunks` and then the manifest; returns the first refusal.
fn refused(
    data_dir: &std::path::Path,
    info: &SnapshotInfo,
    chunks: &[crate::snapshot::Chunk],
    manifest: &crate::snapshot::Manifest,
) -> SnapshotError {
    let mut writer = SnapshotWriter::begin(data_dir, info.bytes).unwrap();
    for chunk in chunks {
        if let Err(error) = writer.write_chunk(chunk) {
            let later = writer.write_chunk(chunk).unwrap_err();
            assert!(
                matches!(later, SnapshotError::WriterFailedEarlier { .. }),
                "{later}"
            );
            return error;
        }
    }
    match writer.finish(manifest) {
        Ok(_) => panic!("the stream was accepted"),
        Err(error) => error,
    }
}

async fn assert_nothing_installed(data_dir: &std::path::Path) {
    assert_eq!(read_pointer(data_dir), "db-1\n");
    assert_eq!(read_current_items(data_dir).await, items("old", 5));
    assert!(
        names_starting(data_dir, "incoming-").is_empty(),
        "refused transfer left files"
    );
    assert_eq!(names_starting(data_dir, "db-"), ["db-1"]);
}

#[tokio::test]
async fn small_chunks_stream_verify_and_install_as_a_new_generation() {
    let temp = tempfile::tempdir().unwrap();
    let (data_dir, info) = setup(&temp).await;
    let mut reader = SnapshotReader::open(&info, SMALL_CHUNK_BYTES).unwrap();
    let mut writer = SnapshotWriter::begin(&data_dir, reader.total_bytes()).unwrap();
    assert_eq!(writer.progress().bytes_received, 0);

    let mut previous_received = 0;
    while let Some(chunk) = reader.next_chunk().unwrap() {
        assert!(chunk.bytes.len() <= SMALL_CHUNK_BYTES);
        let progress = writer.write_chunk(&chunk).unwrap();
        assert!(progress.bytes_received > previous_received);
        previous_received = progress.bytes_received;
    }
    let manifest = reader.finish().unwrap();
    assert_eq!(writer.progress().fraction(), 1.0);
    assert_eq!(
        manifest.chunk_count,
        info.bytes.div_ceil(SMALL_CHUNK_BYTES as u64)
    );
    let verified = writer.finish(&manifest).unwrap();
    let installed = install(&data_dir, verified).await.unwrap();

    assert_eq!(read_pointer(&data_dir), "db-2\n");
    assert_eq!(installed.generation.number, 2);
    assert_eq!(installed.previous.number, 1);
    assert_eq!(installed.last_log_idx, 42);
    assert_eq!(read_current_items(&data_dir).await, items("new", 200));
    assert!(names_starting(&data_dir, "incoming-").is_empty());
}

#[tokio::test]
async fn a_flipped_byte_in_one_chunk_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    let (data_dir, info) = setup(&temp).await;
    let (mut chunks, manifest) = all_chunks(&info, SMALL_CHUNK_BYTES);
    chunks[3].bytes[100] ^= 0x01;

    let error = refused(&data_dir, &info, &chunks, &manifest);

    assert!(
        matches!(error, SnapshotError::ChunkChecksum { offset, .. } if offset == chunks[3].offset),
        "{error}"
    );
    assert_nothing_installed(&data_dir).await;
}

#[tokio::test]
async fn a_missing_chunk_is_refused_as_a_gap() {
    let temp = tempfile::tempdir().unwrap();
    let (data_dir, info) = setup(&temp).await;
    let (mut chunks, manifest) = all_chunks(&info, SMALL_CHUNK_BYTES);
    chunks.remove(2);

    let error = refused(&data_dir, &info, &chunks, &manifest);

    assert!(
        matches!(error, SnapshotError::ChunkOutOfOrder { .. }),
        "{error}"
    );
    assert_nothing_installed(&data_dir).await;
}

#[tokio::test]
async fn a_repeated_chunk_is_refused_as_out_of_order() {
    let temp = tempfile::tempdir().unwrap();
    let (data_dir, info) = setup(&temp).await;
    let (mut chunks, manifest) = all_chunks(&info, SMALL_CHUNK_BYTES);
    let again = chunks[1].clone();
    chunks.insert(2, again);

    let error = refused(&data_dir, &info, &chunks, &manifest);

    assert!(
        matches!(error, SnapshotError::ChunkOutOfOrder { .. }),
        "{error}"
    );
    assert_nothing_installed(&data_dir).await;
}

#[tokio::test]
async fn a_truncated_stream_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    let (data_dir, info) = setup(&temp).await;
    let (mut chunks, manifest) = all_chunks(&info, SMALL_CHUNK_BYTES);
    chunks.pop();

    let error = refused(&data_dir, &info, &chunks, &manifest);

    assert!(matches!(error, SnapshotError::Truncated { .. }), "{error}");
    assert!(
        error.to_string().contains("incoming-"),
        "names the file: {error}"
    );
    assert_nothing_installed(&data_dir).await;
}

#[tokio::test]
async fn a_manifest_whose_hash_differs_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    let (data_dir, info) = setup(&temp).await;
    let (chunks, mut manifest) = all_chunks(&info, SMALL_CHUNK_BYTES);
    manifest.sha256[0] ^= 0xff;

    let error = refused(&data_dir, &info, &chunks, &manifest);

    assert!(
        matches!(
            error,
            SnapshotError::ManifestMismatch { what: "sha256", .. }
        ),
        "{error}"
    );
    assert_nothing_installed(&data_dir).await;
}

#[tokio::test]
async fn a_chunk_past_the_announced_size_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    let (data_dir, info) = setup(&temp).await;
    let (chunks, _) = all_chunks(&info, SMALL_CHUNK_BYTES);
    let mut writer = SnapshotWriter::begin(&data_dir, 10).unwrap();

    let error = writer.write_chunk(&chunks[0]).unwrap_err();

    assert!(
        matches!(error, SnapshotError::ChunkPastEnd { .. }),
        "{error}"
    );
    drop(writer);
    assert_nothing_installed(&data_dir).await;
}

#[tokio::test]
async fn chunk_sizes_outside_the_bounds_are_refused() {
    let temp = tempfile::tempdir().unwrap();
    let (_, info) = setup(&temp).await;

    for size in [0, 1, CHUNK_SIZE_MAX_BYTES + 1] {
        let error = SnapshotReader::open(&info, size).err().expect("refused");
        assert!(
            matches!(error, SnapshotError::ChunkSizeOutOfRange { .. }),
            "{error}"
        );
    }
}

#[tokio::test]
async fn a_snapshot_that_changed_after_creation_is_refused_by_the_reader() {
    let temp = tempfile::tempdir().unwrap();
    let (_, info) = setup(&temp).await;
    let mut bytes = std::fs::read(&info.path).unwrap();
    bytes[500] ^= 0x01;
    std::fs::write(&info.path, bytes).unwrap();

    let mut reader = SnapshotReader::open(&info, SMALL_CHUNK_BYTES).unwrap();
    while reader.next_chunk().unwrap().is_some() {}

    let error = reader.finish().unwrap_err();
    assert!(
        matches!(error, SnapshotError::SourceChanged { .. }),
        "{error}"
    );
}

#[tokio::test]
async fn a_verified_file_that_is_not_a_database_is_not_installed() {
    let temp = tempfile::tempdir().unwrap();
    let (data_dir, _) = setup(&temp).await;
    let garbage = temp.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x5a; 3 * SMALL_CHUNK_BYTES]).unwrap();
    let (bytes, sha256) = crate::snapshot::create::hash_file(&garbage).unwrap();
    let info = SnapshotInfo {
        path: garbage,
        bytes,
        sha256,
        last_log_idx: 0,
    };

    let error = install(&data_dir, receive(&info, &data_dir))
        .await
        .unwrap_err();

    assert!(
        matches!(
            error,
            SnapshotError::Sql { .. } | SnapshotError::IntegrityCheck { .. }
        ),
        "{error}"
    );
    assert!(
        error.to_string().contains("db-2"),
        "names the file: {error}"
    );
    assert_nothing_installed(&data_dir).await;
}

#[tokio::test]
async fn a_snapshot_received_for_another_data_directory_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    let (data_dir, info) = setup(&temp).await;
    let other = temp.path().join("other");
    std::fs::create_dir(&other).unwrap();

    let error = install(&other, receive(&info, &data_dir))
        .await
        .unwrap_err();

    assert!(
        matches!(error, SnapshotError::WrongDataDir { .. }),
        "{error}"
    );
    assert_nothing_installed(&data_dir).await;
}
