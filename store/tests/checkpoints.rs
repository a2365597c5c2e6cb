//! SQLite's write-ahead log is copied into the database file in the background, not by the
//! writer between appends, and the log does not grow without end.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

#[allow(dead_code)] // each test file uses a part of it
mod support;

use std::time::{Duration, Instant};

use support::{Harness, agent_created, new_event};
use tenantry_domain::{StreamId, TenantContext, TenantId};
use tenantry_store::{AppendRequest, ExpectedVersion};

fn size(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Appends far below the writer's own checkpoint threshold reach the database file within a
/// moment, copied there by the checkpointer; once it has caught up, the next commit starts the
/// log again from its beginning, so it stays small.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_pages_reach_the_database_file_without_the_writer() {
    let h = Harness::sqlite().await;
    let dir = h.dir().unwrap();
    let (db, wal) = (dir.join("events.db"), dir.join("events.db-wal"));
    let ctx = TenantContext::system(TenantId::new());
    let before = size(&db);
    for i in 0..100 {
        let events = (0..20).map(|j| new_event(&agent_created(&format!("agent {i}-{j}")))).collect();
        h.store
            .append(&ctx, AppendRequest::to_stream(StreamId::tenant(), ExpectedVersion::Any, events))
            .await
            .unwrap();
    }
    let written = size(&wal);
    assert!(written > 1 << 20, "the appends went to the log first: {written} bytes");
    let deadline = Instant::now() + Duration::from_secs(10);
    while size(&db) < before + (1 << 20) {
        assert!(Instant::now() < deadline, "the database file stayed at {} bytes", size(&db));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The log is reused from its start once checkpointed: more appends do not grow it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..100 {
        let events = (0..20).map(|j| new_event(&agent_created(&format!("again {i}-{j}")))).collect();
        h.store
            .append(&ctx, AppendRequest::to_stream(StreamId::tenant(), ExpectedVersion::Any, events))
            .await
            .unwrap();
    }
    assert!(size(&wal) <= written + (written / 2), "the log grew from {written} to {} bytes", size(&wal));
}
