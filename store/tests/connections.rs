//! PostgreSQL connections dropped under the store (a server restart, a failover, an idle
//! timeout in between): the store replaces them instead of failing the calls that would use
//! them.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

#[allow(dead_code)] // each test file uses a part of it
mod support;

use std::time::Duration;

use futures::TryStreamExt;
use sqlx::Connection;
use support::{Harness, append_agent};
use tenantry_domain::{StreamId, TenantContext, TenantId};

/// Every connection of the store is terminated by the server while idle; after a second, the
/// next read and append each get a live connection and succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_the_server_dropped_while_idle_are_replaced() {
    let Some(h) = Harness::postgres().await else { return };
    let ctx = TenantContext::system(TenantId::new());
    // Several connections of each pool in use and then idle.
    let appends = (0..8).map(|i| h.store.append(&ctx, append_agent(&format!("a{i}"))));
    for outcome in futures::future::join_all(appends).await {
        outcome.unwrap();
    }
    let mut admin = sqlx::PgConnection::connect(&h.url).await.unwrap();
    let terminated: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(terminated.len() >= 2, "the store held connections: {terminated:?}");
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    let log: Vec<_> = h.store.read_log(&ctx, 0).try_collect().await.unwrap();
    assert_eq!(log.len(), 8);
    let out = h.store.append(&ctx, append_agent("after")).await.unwrap();
    assert_eq!(out.last_position, 9);
    assert_eq!(h.store.stream_version(&ctx, &StreamId::tenant()).await.unwrap(), 9);
}
