//! SQLite: the log's writer leaves checkpoints to a thread of their own, and that thread
//! copies what the writer commits into the database file.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

#[allow(dead_code)] // each test file uses a part of it
mod support;

use std::time::{Duration, Instant};

use support::{Harness, append_agent};
use tenantry_domain::{TenantContext, TenantId};

/// Events in the database file alone, without its write-ahead log: what checkpoints copied.
fn events_in_file(db: &std::path::Path, scratch: &std::path::Path) -> i64 {
    std::fs::copy(db, scratch).unwrap();
    let _ = std::fs::remove_file(scratch.with_extension("db-wal"));
    let conn = rusqlite::Connection::open(scratch).unwrap();
    // Before the first checkpoint the file has no tables yet.
    conn.query_row("SELECT count(*) FROM events", [], |row| row.get(0)).unwrap_or(0)
}

/// Appends far too few for SQLite's own checkpoint on commit (1,000 pages) reach the database
/// file within seconds, and no append waits for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checkpointer_copies_the_log_into_the_file() {
    let h = Harness::sqlite().await;
    let db = std::path::PathBuf::from(h.url.strip_prefix("sqlite://").unwrap());
    let scratch = tempfile::tempdir().unwrap();
    let scratch = scratch.path().join("copy.db");
    let ctx = TenantContext::system(TenantId::new());
    for i in 0..20 {
        h.store.append(&ctx, append_agent(&format!("agent {i}"))).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut copied = events_in_file(&db, &scratch);
    while copied < 20 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        copied = events_in_file(&db, &scratch);
    }
    assert_eq!(copied, 20, "the appends did not reach the database file");
}

/// The file's writers in a process share one checkpointer, however its path is spelled.
#[tokio::test]
async fn a_file_has_one_checkpointer_in_a_process() {
    let h = Harness::sqlite().await;
    let other = Harness::sqlite().await;
    let spelled_otherwise = format!("{}?mode=rwc", h.url.replacen("sqlite://", "sqlite:", 1));
    let one = tenantry_store::sqlite_checkpointer(&h.url).unwrap().unwrap();
    let same = tenantry_store::sqlite_checkpointer(&spelled_otherwise).unwrap().unwrap();
    let another = tenantry_store::sqlite_checkpointer(&other.url).unwrap().unwrap();
    assert!(std::sync::Arc::ptr_eq(&one, &same));
    assert!(!std::sync::Arc::ptr_eq(&one, &another));
    assert!(tenantry_store::sqlite_checkpointer("postgres://localhost/db").unwrap().is_none());
}
