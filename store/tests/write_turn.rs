//! SQLite: the writers of one file in a process take turns before SQLite's write lock
//! (`WriteTurn`), so an append waits behind a projector's write in order instead of sleeping in
//! SQLite's busy handler.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

#[allow(dead_code)] // each test file uses a part of it
mod support;

use std::time::Duration;

use support::{Harness, append_agent};
use tenantry_domain::{TenantContext, TenantId};
use tenantry_store::idempotency::IdempotencyRecords;
use tenantry_store::sqlite_write_turn;

/// While another writer of the file holds the turn (named by the url spelled another way),
/// an append and a write of kept answers wait, whatever the other files' writers do;
/// released, both are written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_waits_its_turn_behind_another_writer_of_the_file() {
    let h = Harness::sqlite().await;
    let other = Harness::sqlite().await;
    let ctx = TenantContext::system(TenantId::new());
    h.store.append(&ctx, append_agent("first")).await.unwrap();

    let spelled_otherwise = format!("{}?mode=rwc", h.url.replacen("sqlite://", "sqlite:", 1));
    let held = sqlite_write_turn(&spelled_otherwise).unwrap().lock_owned().await;
    // Another file's writer is not held up.
    tokio::time::timeout(Duration::from_secs(10), other.store.append(&ctx, append_agent("elsewhere")))
        .await
        .unwrap()
        .unwrap();
    let store = h.store.clone();
    let waiting_ctx = ctx.clone();
    let mut waiting = tokio::spawn(async move { store.append(&waiting_ctx, append_agent("second")).await });
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut waiting).await.is_err(),
        "the append went ahead while another writer held the turn"
    );
    assert_eq!(h.store.head(&ctx).await.unwrap().map(|head| head.position), Some(1));

    // The kept answers of HTTP idempotency keys are written in the same turn.
    let records = IdempotencyRecords::new(h.store.database().clone());
    let mut forgetting = tokio::spawn(async move { records.forget_tenant(TenantId::new()).await });
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut forgetting).await.is_err(),
        "kept answers were written while another writer held the turn"
    );

    drop(held);
    tokio::time::timeout(Duration::from_secs(10), waiting).await.unwrap().unwrap().unwrap();
    assert_eq!(tokio::time::timeout(Duration::from_secs(10), forgetting).await.unwrap().unwrap().unwrap(), 0);
    assert_eq!(h.store.head(&ctx).await.unwrap().map(|head| head.position), Some(2));
    assert!(sqlite_write_turn("postgres://localhost/db").is_none());
}
