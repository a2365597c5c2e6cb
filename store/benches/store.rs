//! Store throughput: `cargo bench -p tenantry-store --bench store`.
//!
//! 200-byte payloads. Rows: single-event appends (one transaction each, 8 tasks over 8
//! tenants), the same with 64 tasks over 64 tenants (group commit, then each append its own
//! transaction), batches of 100, and reading one tenant's log in order with decryption and
//! decoding, with the peak RSS of the read phase. PostgreSQL at
//! `TENANTRY_TEST_DATABASE_URL` when it answers; SQLite always.
//! `TENANTRY_BENCH_READ_EVENTS` sets the size of the read log (default 1,000,000). First,
//! raw PostgreSQL's single-row commit rate at 8 clients (`pgbench`), for the ratios.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark that cannot run should stop loudly

use std::time::Instant;

use futures::TryStreamExt;
use tenantry_domain::event::{MessageAppended, MessageRole};
use tenantry_domain::{ConversationId, Event, EventId, MessageId, StreamId, TenantContext, TenantId};
use tenantry_store::testing::{Harness, peak_rss_mib, print_raw_commit_rate, reset_peak_rss};
use tenantry_store::{AppendRequest, EventStore, ExpectedVersion, NewEvent};

/// A message of `conversation` (sealed with its conversation's key, made at its first append).
fn message(conversation: ConversationId) -> Event {
    Event::MessageAppended(MessageAppended {
        conversation_id: conversation,
        message_id: MessageId::new(),
        role: MessageRole::User,
        content: "x".repeat(150).into(),
        model: Some("model-1".into()),
        usage: None,
        author: None,
    })
}

fn batch(conversation: ConversationId, n: usize) -> Vec<NewEvent> {
    let event = NewEvent::new(EventId::new(), &message(conversation)).unwrap();
    (0..n).map(|_| NewEvent { event_id: EventId::new(), ..event.clone() }).collect()
}

async fn appends(store: &EventStore, tasks: usize, per_task: usize, batch_size: usize) -> f64 {
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let ctx = TenantContext::system(TenantId::new());
            let conversation = ConversationId::new();
            let stream = StreamId::conversation(conversation);
            for _ in 0..per_task / batch_size {
                store
                    .append(
                        &ctx,
                        AppendRequest::to_stream(
                            stream.clone(),
                            ExpectedVersion::Any,
                            batch(conversation, batch_size),
                        ),
                    )
                    .await
                    .unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    (tasks * per_task) as f64 / started.elapsed().as_secs_f64()
}

async fn read(store: &EventStore, events: usize) -> (f64, f64) {
    let ctx = TenantContext::system(TenantId::new());
    let conversation = ConversationId::new();
    let stream = StreamId::conversation(conversation);
    for _ in 0..events / 1000 {
        store
            .append(
                &ctx,
                AppendRequest::to_stream(stream.clone(), ExpectedVersion::Any, batch(conversation, 1000)),
            )
            .await
            .unwrap();
    }
    eprintln!("read phase starts");
    reset_peak_rss();
    if std::env::var("TENANTRY_BENCH_PAGES").is_ok() {
        let t = Instant::now();
        let mut after = 0;
        loop {
            let page = store.read_log_page(&ctx, after, 2000).await.unwrap();
            let Some(last) = page.last() else { break };
            after = last.position;
        }
        println!("paged without read-ahead: {:.0} events/s", events as f64 / t.elapsed().as_secs_f64());
    }
    let started = Instant::now();
    let count = store.read_log(&ctx, 0).try_fold(0usize, |n, _| async move { Ok(n + 1) }).await.unwrap();
    let rate = count as f64 / started.elapsed().as_secs_f64();
    assert_eq!(count, events / 1000 * 1000);
    (rate, peak_rss_mib())
}

async fn run(name: &str, store: &EventStore, read_events: usize, raw: Option<f64>) {
    // `TENANTRY_BENCH_IN_FLIGHT=N` tries another number of commits in flight.
    let in_flight = std::env::var("TENANTRY_BENCH_IN_FLIGHT").ok().and_then(|v| v.parse().ok());
    let store = &match (store.group_commit(), in_flight) {
        (Some(group), Some(max_in_flight)) => {
            store.clone().with_group_commit(Some(tenantry_store::GroupCommit { max_in_flight, ..group }))
        }
        _ => store.clone(),
    };
    let single = appends(store, 8, 5_000, 1).await;
    println!("| {name} | single-event appends, 8 tasks x 8 tenants | {single:.0} events/s |");
    // Many appenders: what group commit is for. The same workload with each append its own
    // transaction, in the same run.
    reset_peak_rss();
    let before = store.commit_stats().unwrap_or_default();
    let grouped = appends(store, 64, 1_000, 1).await;
    let rss = peak_rss_mib();
    let ratio = raw.map(|raw| format!(", {:.2}x raw", grouped / raw)).unwrap_or_default();
    println!(
        "| {name} | single-event appends, 64 tasks x 64 tenants, group commit | {grouped:.0} events/s{ratio}; peak RSS {rss:.0} MiB |"
    );
    if let Some(stats) = store.commit_stats() {
        println!(
            "|  | (group commit: {} appends in {} commits, largest {}) | |",
            stats.appends - before.appends,
            stats.commits - before.commits,
            stats.largest
        );
    }
    let alone = store.clone().with_group_commit(None);
    let one_by_one = appends(&alone, 64, 1_000, 1).await;
    let ratio = raw.map(|raw| format!(", {:.2}x raw", one_by_one / raw)).unwrap_or_default();
    println!("| {name} | the same, each append its own transaction | {one_by_one:.0} events/s{ratio} |");
    let batched = appends(store, 8, 25_000, 100).await;
    println!("| {name} | batches of 100 events, 8 tasks | {batched:.0} events/s |");
    let (rate, rss) = read(store, read_events).await;
    println!(
        "| {name} | read a {read_events}-event tenant log (decrypt + decode) | {rate:.0} events/s, peak RSS {rss:.0} MiB |"
    );
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let read_events: usize =
        std::env::var("TENANTRY_BENCH_READ_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    // Raw PostgreSQL's single-row commit rate on the same server, for the ratios.
    let raw = print_raw_commit_rate(10).await;
    println!("| backend | workload | result |");
    println!("|---|---|---|");
    // `TENANTRY_BENCH_ONLY=postgres` or `sqlite` runs one backend.
    let only = std::env::var("TENANTRY_BENCH_ONLY").unwrap_or_default();
    if only != "sqlite"
        && let Some(h) = Harness::postgres().await
    {
        run("PostgreSQL", &h.store, read_events, raw).await;
    }
    if only != "postgres" {
        let h = Harness::sqlite().await;
        run("SQLite", &h.store, read_events, raw).await;
    }
}
