//! Compliance work at scale: `cargo bench -p tenantry --bench compliance`.
//!
//! PostgreSQL at `TENANTRY_TEST_DATABASE_URL` (SQLite with `TENANTRY_BENCH_ONLY=sqlite`):
//! 1,000,000 events over 100 tenants, one of them holding 100,000 (projected into the read
//! models). Rows: export of that tenant to a file (events/s, peak RSS of the export phase),
//! offline verify of the file (events/s), purge of that tenant (seconds) while a task keeps
//! appending to the other tenants (their slowest append during the purge).
//! `TENANTRY_BENCH_EVENTS` sets the total (default 1,000,000).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark that cannot run should stop loudly

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tenantry::compliance::Purger;
use tenantry_domain::event::{MessageAppended, MessageRole};
use tenantry_domain::{ConversationId, Event, EventId, MessageId, StreamId, TenantContext, TenantId};
use tenantry_store::export::{self, Exporter};
use tenantry_store::testing::{Harness, peak_rss_mib, reset_peak_rss};
use tenantry_store::{AppendRequest, EventStore, ExpectedVersion, NewEvent};

/// The allocator the `tenantry` binary runs with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn batch(n: usize) -> Vec<NewEvent> {
    let event = Event::MessageAppended(MessageAppended {
        conversation_id: ConversationId::new(),
        message_id: MessageId::new(),
        role: MessageRole::User,
        content: "x".repeat(150).into(),
        model: Some("model-1".into()),
        usage: None,
        author: None,
    });
    let event = NewEvent::new(EventId::new(), &event).unwrap();
    (0..n).map(|_| NewEvent { event_id: EventId::new(), ..event.clone() }).collect()
}

async fn fill(store: &EventStore, ctx: &TenantContext, events: usize) {
    let stream = StreamId::conversation(ConversationId::new());
    let mut left = events;
    while left > 0 {
        let n = left.min(1_000);
        store
            .append(ctx, AppendRequest::to_stream(stream.clone(), ExpectedVersion::Any, batch(n)))
            .await
            .unwrap();
        left -= n;
    }
}

async fn run(name: &str, h: &Harness, total: usize) {
    let store = &h.store;
    let big = TenantContext::system(TenantId::new());
    let big_events = total / 10;
    let others: Vec<TenantContext> = (0..99).map(|_| TenantContext::system(TenantId::new())).collect();
    let started = Instant::now();
    fill(store, &big, big_events).await;
    let per_other = (total - big_events) / others.len();
    let mut fills = Vec::new();
    for chunk in others.chunks(25) {
        let (store, chunk) = (store.clone(), chunk.to_vec());
        fills.push(tokio::spawn(async move {
            for ctx in chunk {
                fill(&store, &ctx, per_other).await;
            }
        }));
    }
    for f in fills {
        f.await.unwrap();
    }
    eprintln!("{name}: seeded {total} events in {:.1} s", started.elapsed().as_secs_f64());
    let projections = tenantry_projections::open(store.clone(), &h.url, Default::default()).await.unwrap();
    projections.catch_up(&big).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("export.ndjson");
    reset_peak_rss();
    let rss_before = peak_rss_mib();
    let started = Instant::now();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&path).unwrap());
    let summary = Exporter::new(store).export(&big, &mut out, &mut ()).await.unwrap();
    let export_s = started.elapsed().as_secs_f64();
    let rss = peak_rss_mib();
    let size = std::fs::metadata(&path).unwrap().len() as f64 / 1e6;
    println!(
        "| {name} | export of a {} -event tenant | {:.0} events/s | {:.1} MB file, peak RSS {rss:.0} MiB (before {rss_before:.0}) |",
        summary.events,
        summary.events as f64 / export_s,
        size
    );

    let started = Instant::now();
    let file = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&path).unwrap());
    let checked = export::verify(file, |_, _| Ok(())).unwrap();
    let verify_s = started.elapsed().as_secs_f64();
    println!("| {name} | verify that export | {:.0} events/s | |", checked.events as f64 / verify_s);

    // Purge the big tenant while another task keeps appending to the others.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, stop, others) = (store.clone(), stop.clone(), others.clone());
        tokio::spawn(async move {
            let (mut slowest, mut n) = (Duration::ZERO, 0u64);
            let stream = StreamId::conversation(ConversationId::new());
            while !stop.load(Ordering::Relaxed) {
                let ctx = &others[n as usize % others.len()];
                let t = Instant::now();
                store
                    .append(ctx, AppendRequest::to_stream(stream.clone(), ExpectedVersion::Any, batch(1)))
                    .await
                    .unwrap();
                slowest = slowest.max(t.elapsed());
                n += 1;
            }
            (slowest, n)
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let purger = Purger::new(projections.clone(), None, None);
    let started = Instant::now();
    purger.request(&big, big.tenant_id).await.unwrap();
    let report = purger.run(big.tenant_id, &|_| {}).await.unwrap();
    let purge_s = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let (slowest, appends) = writer.await.unwrap();
    println!(
        "| {name} | purge of that tenant ({} events, {} read-model rows) | {purge_s:.2} s | other tenants kept writing: {appends} appends, slowest {:.0} ms |",
        report.events_deleted,
        report.rows_deleted,
        slowest.as_secs_f64() * 1e3
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let total: usize =
        std::env::var("TENANTRY_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let only = std::env::var("TENANTRY_BENCH_ONLY").unwrap_or_default();
    println!("| backend | workload | rate | notes |");
    println!("|---|---|---|---|");
    if only != "sqlite"
        && let Some(h) = Harness::postgres().await
    {
        run("PostgreSQL", &h, total).await;
    }
    if only != "postgres" {
        let h = Harness::sqlite().await;
        run("SQLite", &h, total).await;
    }
}
