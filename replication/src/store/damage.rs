//! A check of `data.db` before it is opened: is the file damaged (truncated, or its pages
//! corrupt)? A node must not serve, or promote, on a damaged database; it sets it aside and takes
//! a full copy from its peer instead.

use std::io::Read;
use std::path::Path;
use std::str::FromStr;

use sqlx::ConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;

/// Why `db` is damaged, or `None` if it looks whole (or does not exist yet).
pub async fn damage(db: &Path) -> Option<String> {
    let meta = std::fs::metadata(db).ok()?;
    if meta.len() == 0 {
        return None;
    }
    if let Some(problem) = header_problem(db, meta.len()) {
        return Some(problem);
    }
    let options = SqliteConnectOptions::from_str("sqlite://")
        .ok()?
        .filename(db)
        .read_only(true);
    let mut connection = match options.connect().await {
        Ok(connection) => connection,
        Err(error) => return Some(format!("cannot open it: {error}")),
    };
    let result: Result<Vec<String>, sqlx::Error> = sqlx::query_scalar("PRAGMA quick_check")
        .fetch_all(&mut connection)
        .await;
    let _ = sqlx::Connection::close(connection).await;
    match result {
        Ok(lines) if lines.len() == 1 && lines[0] == "ok" => None,
        Ok(lines) => Some(format!("quick_check: {}", lines.join("; "))),
        Err(error) => Some(format!("quick_check: {error}")),
    }
}

/// The SQLite header names the page size and (when valid) the page count: a file shorter than
/// that was truncated.
fn header_problem(db: &Path, length: u64) -> Option<String> {
    let mut header = [0u8; 100];
    let mut file = std::fs::File::open(db).ok()?;
    if file.read_exact(&mut header).is_err() {
        return Some(format!(
            "only {length} bytes: shorter than SQLite's 100-byte header"
        ));
    }
    if &header[..16] != b"SQLite format 3\0" {
        return Some("not an SQLite database (bad header)".into());
    }
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65_536,
        size => u64::from(size),
    };
    let change_counter = u32::from_be_bytes([header[24], header[25], header[26], header[27]]);
    let pages = u64::from(u32::from_be_bytes([
        header[28], header[29], header[30], header[31],
    ]));
    let valid_for = u32::from_be_bytes([header[92], header[93], header[94], header[95]]);
    if valid_for == change_counter && pages > 0 && length < pages * page_size {
        return Some(format!(
            "truncated: {length} bytes, the header says {pages} pages of {page_size} bytes"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn database(dir: &Path) -> std::path::PathBuf {
        let path = dir.join("data.db");
        let mut connection = SqliteConnectOptions::from_str("sqlite://")
            .unwrap()
            .filename(&path)
            .create_if_missing(true)
            .connect()
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
            .execute(&mut connection)
            .await
            .unwrap();
        sqlx::query("BEGIN").execute(&mut connection).await.unwrap();
        for i in 0..2000 {
            sqlx::query("INSERT INTO t (body) VALUES (?)")
                .bind(format!("row {i} {}", "x".repeat(100)))
                .execute(&mut connection)
                .await
                .unwrap();
        }
        sqlx::query("COMMIT")
            .execute(&mut connection)
            .await
            .unwrap();
        sqlx::Connection::close(connection).await.unwrap();
        path
    }

    #[tokio::test]
    async fn a_whole_database_passes_and_a_truncated_or_garbled_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = database(dir.path()).await;
        assert_eq!(damage(&path).await, None);
        assert_eq!(damage(&dir.path().join("missing.db")).await, None);
        let length = std::fs::metadata(&path).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(length / 2)
            .unwrap();
        let problem = damage(&path).await.unwrap();
        assert!(problem.contains("truncated"), "{problem}");
        std::fs::write(&path, vec![b'x'; 4096]).unwrap();
        let problem = damage(&path).await.unwrap();
        assert!(problem.contains("not an SQLite database"), "{problem}");
        std::fs::write(&path, b"short").unwrap();
        assert!(damage(&path).await.unwrap().contains("shorter"));
    }
}
