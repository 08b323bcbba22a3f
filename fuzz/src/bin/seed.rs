//! Writes the seed inputs of the protobuf-fed fuzz targets into `corpus/<target>/seed-*`: valid
//! messages as the node's own sender builds them, so the fuzzers start from inputs that reach
//! the deep checks. Run from `fuzz/` after `cargo fuzz build`:
//! `target/x86_64-unknown-linux-gnu/release/seed`. The config seeds are plain TOML files copied
//! from `deploy/` and the config tests; they are not generated here.

use std::path::Path;

use prost::Message;
use tandem_fuzz::{FIX_CHECKSUMS, FIX_HASHES, encode_input};
use tandem_node::repl::convert;
use tandem_proto::{data as dpb, files as fpb, peer as pb};
use tandem_replication::log::{
    Batch, EntryContent, GENESIS_HASH, HashedEntry, Hlc, LogTerm, Operation,
};
use tandem_replication::snapshot::sha256;

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new("corpus").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
}

fn term(epoch: u64, node: &str) -> pb::Term {
    pb::Term {
        epoch,
        node: node.into(),
        priority: if node == "a" { 100 } else { 50 },
    }
}

fn heartbeat(role: pb::Role, epoch: u64, seq: u64) -> pb::PeerMessage {
    pb::PeerMessage {
        body: Some(pb::peer_message::Body::Heartbeat(pb::Heartbeat {
            cluster_id: "pbx-hq".into(),
            node: "b".into(),
            version: "0.1.0".into(),
            role: role as i32,
            term: Some(term(epoch, "b")),
            max_epoch_seen: epoch,
            disk: pb::DiskState::Consistent as i32,
            log: Some(pb::LogPosition {
                term: Some(term(epoch, "b")),
                index: 7,
                rolling_hash: 99,
            }),
            monitoring: pb::Monitoring::On as i32,
            priority: 50,
            reachable: true,
            seq,
            ack_seq: seq.saturating_sub(1),
            incarnation: 1,
            ..Default::default()
        })),
    }
}

fn peer_seeds() {
    use pb::peer_message::Body;
    let target = "peer_heartbeat";
    let passive = heartbeat(pb::Role::Passive, 3, 1);
    let active = heartbeat(pb::Role::Active, 4, 2);
    write(target, "passive", &encode_input(0, &[passive.clone()]));
    write(
        target,
        "active-after-start",
        &encode_input(4 | 8, &[passive, active.clone()]),
    );
    write(
        target,
        "active-term-a",
        &encode_input(1 | 8, &[active.clone()]),
    );
    let handover = pb::PeerMessage {
        body: Some(Body::Handover(pb::HandoverRequest {
            new_term: Some(term(5, "a")),
            log: None,
        })),
    };
    write(
        target,
        "handover",
        &encode_input(2 | 8, &[active.clone(), handover]),
    );
    let reply = pb::PeerMessage {
        body: Some(Body::HandoverReply(pb::HandoverReply {
            new_term: Some(term(4, "b")),
            accepted: true,
            reason: String::new(),
        })),
    };
    let switchover = pb::PeerMessage {
        body: Some(Body::SwitchoverRequest(pb::SwitchoverRequest {
            reason: "failover-now".into(),
        })),
    };
    let passive = heartbeat(pb::Role::Passive, 3, 3);
    write(
        target,
        "switchover",
        &encode_input(1 | 4 | 8, &[passive, switchover, reply]),
    );
}

fn content(epoch: u64, index: u64, table: &str, operation: Operation) -> EntryContent {
    EntryContent {
        term: LogTerm::new(epoch, "a", 100),
        index,
        table: table.into(),
        primary_key: format!(r#"{{"id":{index}}}"#),
        operation,
        new_image: (operation != Operation::Delete).then(|| {
            format!(
                r#"{{"id":{index},"name":"n{index}","data":{{"$base64":"AP8="}},"r":{{"$real":"1.5"}}}}"#
            )
        }),
        old_image: (operation != Operation::Insert)
            .then(|| format!(r#"{{"id":{index},"name":"old","data":null}}"#)),
        hlc: Hlc::new(1_760_000_000_000 + index, 0, "a"),
        origin: "a".into(),
        txid: index / 2,
    }
}

fn batch(epoch: u64, previous: u64, contents: Vec<EntryContent>) -> (pb::LogBatch, u64) {
    let mut hash = previous;
    let entries: Vec<_> = contents
        .into_iter()
        .map(|content| {
            let entry = HashedEntry::chain(hash, content);
            hash = entry.hash;
            entry
        })
        .collect();
    let batch = Batch::new(LogTerm::new(epoch, "a", 100), entries);
    (convert::batch_to_pb(&batch), hash)
}

fn ship(body: pb::ship_message::Body) -> pb::ShipMessage {
    pb::ShipMessage { body: Some(body) }
}

fn replication_seeds() {
    use pb::ship_message::Body;
    let target = "replication_batch";
    let hello = ship(Body::Hello(pb::ShipHello {
        term: Some(term(3, "a")),
        node: "a".into(),
        last_index: 0,
    }));
    let (first, hash) = batch(
        3,
        GENESIS_HASH,
        vec![
            content(3, 1, "extensions", Operation::Insert),
            content(3, 2, "extensions", Operation::Update),
        ],
    );
    let (second, _) = batch(
        3,
        hash,
        vec![
            content(3, 3, "extensions", Operation::Delete),
            content(3, 4, "tandem_requests", Operation::Insert),
        ],
    );
    let messages = [
        hello,
        ship(Body::Batch(first.clone())),
        ship(Body::Batch(second.clone())),
        ship(Body::Probe(pb::HashProbe { index: 2 })),
        ship(Body::Rewind(pb::Rewind { to_index: 2, hash })),
        ship(Body::Batch(second)),
    ];
    write(target, "two-batches", &encode_input(0, &messages));
    write(
        target,
        "two-batches-repaired",
        &encode_input(FIX_CHECKSUMS | FIX_HASHES | 4, &messages),
    );
    let mut damaged = first;
    damaged.checksum ^= 1;
    write(
        target,
        "bad-checksum",
        &encode_input(0, &[ship(Body::Batch(damaged))]),
    );
    let verdict = ship(Body::Disk(pb::DiskVerdict {
        disk: pb::DiskState::Outdated as i32,
        reason: "degraded".into(),
    }));
    write(target, "verdict", &encode_input(0, &[verdict]));
}

fn snapshot_seeds() {
    use pb::ship_message::Body;
    let target = "snapshot_chunk";
    let data = b"SQLite format 3\0 pretend database pages".to_vec();
    let (head, tail) = data.split_at(16);
    let chunk = |offset: usize, bytes: &[u8]| {
        ship(Body::SnapshotChunk(pb::SnapshotChunk {
            offset: offset as u64,
            data: bytes.to_vec(),
            checksum: sha256(bytes).to_vec(),
        }))
    };
    let begin = |keep: &str| {
        ship(Body::SnapshotBegin(pb::SnapshotBegin {
            total_bytes: data.len() as u64,
            last_index: 42,
            reason: "the log no longer holds index 3".into(),
            keep_old_as: keep.into(),
        }))
    };
    let end = ship(Body::SnapshotEnd(pb::SnapshotEnd {
        total_bytes: data.len() as u64,
        sha256: sha256(&data).to_vec(),
        last_index: 42,
        chunk_count: 2,
    }));
    let whole = [begin(""), chunk(0, head), chunk(16, tail), end.clone()];
    write(target, "whole", &encode_input(0, &whole));
    let kept = [
        begin("diverged-3.db"),
        chunk(0, head),
        chunk(16, tail),
        end.clone(),
    ];
    write(target, "keep-old", &encode_input(0, &kept));
    let out_of_order = [begin(""), chunk(16, tail), chunk(0, head), end];
    write(
        target,
        "out-of-order",
        &encode_input(FIX_CHECKSUMS | FIX_HASHES, &out_of_order),
    );
}

fn push(body: fpb::push_message::Body) -> fpb::PushMessage {
    fpb::PushMessage { body: Some(body) }
}

fn file_messages(path: &str, data: &[u8]) -> Vec<fpb::PushMessage> {
    use fpb::push_message::Body;
    let hash: String = ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let (head, tail) = data.split_at(data.len() / 2);
    vec![
        push(Body::Header(fpb::FileHeader {
            entry: "prompts".into(),
            path: path.into(),
            size: data.len() as u64,
            mtime_ns: 1_760_000_000_000_000_000,
            mode: 0o644,
            term: 3,
        })),
        push(Body::Chunk(fpb::FileChunk {
            offset: 0,
            data: head.to_vec(),
            checksum: ring::digest::digest(&ring::digest::SHA256, head)
                .as_ref()
                .to_vec(),
        })),
        push(Body::Chunk(fpb::FileChunk {
            offset: head.len() as u64,
            data: tail.to_vec(),
            checksum: ring::digest::digest(&ring::digest::SHA256, tail)
                .as_ref()
                .to_vec(),
        })),
        push(Body::Trailer(fpb::FileTrailer { hash })),
    ]
}

fn file_seeds() {
    let target = "file_chunk";
    write(
        target,
        "one-file",
        &encode_input(0, &file_messages("greeting.wav", b"RIFF....WAVE")),
    );
    write(
        target,
        "nested",
        &encode_input(0, &file_messages("menus/de/main.wav", b"hallo")),
    );
    let mut two = file_messages("dir/a.txt", b"first");
    two.extend(file_messages("plain", b"second"));
    write(target, "two-files", &encode_input(0, &two));
    write(
        target,
        "through-link",
        &encode_input(
            FIX_CHECKSUMS | FIX_HASHES,
            &file_messages("link/x", b"escape"),
        ),
    );
    write(
        target,
        "over-file-link",
        &encode_input(
            FIX_CHECKSUMS | FIX_HASHES,
            &file_messages("file_link", b"escape"),
        ),
    );
    write(
        target,
        "under-a-file",
        &encode_input(FIX_CHECKSUMS | FIX_HASHES, &file_messages("plain/x", b"no")),
    );
    write(
        target,
        "empty",
        &encode_input(0, &file_messages("empty", b"")),
    );
}

fn path_seeds() {
    let target = "file_path";
    for (name, flags, path) in [
        ("plain", 0u8, "a.txt"),
        ("nested-create", 1, "a/b/c.txt"),
        ("link", 1, "link/x"),
        ("file-link", 0, "file_link"),
        ("under-file", 1, "plain/x"),
        ("dot-dot", 1, "a/../x"),
        ("absolute", 0, "/etc/passwd"),
        ("temp-name", 0, "a/.tandem-part-1-2"),
        ("existing-dir", 1, "dir/x"),
    ] {
        let mut bytes = vec![flags];
        bytes.extend_from_slice(path.as_bytes());
        write(target, name, &bytes);
    }
}

fn statement(sql: &str, params: Vec<dpb::Value>) -> dpb::Statement {
    dpb::Statement {
        sql: sql.into(),
        params,
    }
}

fn value(kind: dpb::value::Kind) -> dpb::Value {
    dpb::Value { kind: Some(kind) }
}

fn data_seeds() {
    use dpb::value::Kind;
    let target = "data_api";
    let execute = |name: &str, statements: Vec<dpb::Statement>| {
        let request = dpb::ExecuteRequest {
            request_id: format!("01J{name}"),
            statements,
        };
        let mut bytes = vec![0u8];
        bytes.extend(request.encode_to_vec());
        write(target, &format!("execute-{name}"), &bytes);
    };
    execute(
        "insert",
        vec![statement(
            "INSERT INTO t (id, name, data) VALUES (?, ?, ?)",
            vec![
                value(Kind::Integer(7)),
                value(Kind::Text("seven".into())),
                value(Kind::Blob(vec![0, 1, 2])),
            ],
        )],
    );
    execute(
        "update-delete",
        vec![
            statement(
                "UPDATE t SET name = ?1 WHERE id = ?2",
                vec![value(Kind::Text("x".into())), value(Kind::Integer(1))],
            ),
            statement("DELETE FROM t WHERE id = 2", vec![]),
            statement("SELECT * FROM t_names", vec![]),
        ],
    );
    execute("ddl", vec![statement("CREATE TABLE x (a)", vec![])]);
    execute(
        "pragma",
        vec![statement("PRAGMA writable_schema = 1", vec![])],
    );
    execute(
        "attach",
        vec![statement("ATTACH ':memory:' AS other", vec![])],
    );
    execute(
        "copy-secret",
        vec![statement(
            "INSERT INTO t (name) SELECT password_hash FROM users",
            vec![],
        )],
    );
    execute("node-table", vec![statement("DELETE FROM cdrs", vec![])]);
    execute(
        "internal",
        vec![statement("UPDATE _tandem_log SET entry = 'x'", vec![])],
    );
    let query = |name: &str, sql: &str, params: Vec<dpb::Value>| {
        let request = dpb::QueryRequest {
            statement: Some(statement(sql, params)),
            allow_stale: true,
        };
        let mut bytes = vec![1u8];
        bytes.extend(request.encode_to_vec());
        write(target, &format!("query-{name}"), &bytes);
    };
    query(
        "select",
        "SELECT id, name, data FROM t WHERE id > ?",
        vec![value(Kind::Integer(0))],
    );
    query("calls", "SELECT * FROM calls JOIN cdrs USING (id)", vec![]);
    query("secret", "SELECT * FROM sessions", vec![]);
    query(
        "recursive",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c",
        vec![],
    );
    query("write", "DELETE FROM t", vec![]);
}

fn main() {
    peer_seeds();
    replication_seeds();
    snapshot_seeds();
    file_seeds();
    path_seeds();
    data_seeds();
}
