//! Scale-out: `cargo bench -p tenantry --bench scale` (PostgreSQL at
//! `TENANTRY_TEST_DATABASE_URL`, NATS at `TENANTRY_BENCH_NATS_URL`, default
//! `nats://127.0.0.1:4222`; the bench deletes and re-creates the `TENANTRY` stream there).
//!
//! Rows: relay throughput (200,000 events over 20 tenants already in the log, published to
//! JetStream and acknowledged), and end-to-end lag from a committed append to its row in the
//! conversations read model written by a worker process woken through JetStream, at
//! 2,000 appends/s over 50 tenants for 10 s (every 10th append timed, by polling the
//! checkpoint every millisecond).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark that cannot run should stop loudly

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tenantry::relay::{Broker, Relay, STREAM};
use tenantry_domain::event::{MessageAppended, MessageRole};
use tenantry_domain::{ConversationId, Event, EventId, MessageId, StreamId, TenantContext, TenantId};
use tenantry_store::testing::Harness;
use tenantry_store::{AppendRequest, ExpectedVersion, NewEvent};

/// The allocator the `tenantry` binary runs with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn message(c: ConversationId) -> NewEvent {
    let event = Event::MessageAppended(MessageAppended {
        conversation_id: c,
        message_id: MessageId::new(),
        role: MessageRole::Assistant,
        content: "x".repeat(150).into(),
        model: Some("model-1".into()),
        usage: None,
        author: None,
    });
    NewEvent::new(EventId::new(), &event).unwrap()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    tracing_subscriber::fmt().with_env_filter("warn").with_writer(std::io::stderr).init();
    let nats = std::env::var("TENANTRY_BENCH_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let h = Harness::postgres().await.expect("the scale bench needs PostgreSQL");
    let broker = Broker::connect(&nats).await.unwrap();
    let _ = broker.jetstream().delete_stream(STREAM).await;
    let projections = tenantry_projections::open(h.store.clone(), &h.url, Default::default()).await.unwrap();
    let relay = Relay::new(projections.clone(), broker.clone());
    println!("| backend | workload | result |");
    println!("|---|---|---|");

    // Relay throughput over a log written beforehand.
    let tenants: Vec<TenantContext> = (0..20).map(|_| TenantContext::system(TenantId::new())).collect();
    for ctx in &tenants {
        let c = ConversationId::new();
        for _ in 0..10 {
            let batch = (0..1_000).map(|_| message(c)).collect();
            h.store
                .append(ctx, AppendRequest::to_stream(StreamId::conversation(c), ExpectedVersion::Any, batch))
                .await
                .unwrap();
        }
    }
    let started = Instant::now();
    let published = relay.run_once().await.unwrap();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "| PostgreSQL + NATS | relay: publish {published} stored events to JetStream, acknowledged | {:.0} events/s |",
        published as f64 / secs
    );

    // End-to-end lag through a worker process.
    let relay_task = tokio::spawn(relay.clone().run(std::future::pending()));
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("master.key");
    std::fs::write(&key, h.master.to_hex().as_bytes()).unwrap();
    let mut worker = std::process::Command::new(env!("CARGO_BIN_EXE_tenantry"))
        .args(["worker", "--projection", "conversations", "--database-url", &h.url, "--nats-url", &nats])
        .arg("--master-key-file")
        .arg(&key)
        .arg("--data-dir")
        .arg(dir.path())
        .env("TENANTRY_LOG", "warn")
        .spawn()
        .unwrap();
    // The worker first projects the log of the relay row; time the live load only after.
    let deadline = Instant::now() + Duration::from_secs(300);
    for ctx in &tenants {
        let head = h.store.head(ctx).await.unwrap().unwrap().position;
        while projections.checkpoint("conversations", ctx.tenant_id).await.unwrap() < head {
            assert!(Instant::now() < deadline, "the worker did not catch up with the backlog");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let live: Vec<(TenantContext, ConversationId)> =
        (0..50).map(|_| (TenantContext::system(TenantId::new()), ConversationId::new())).collect();
    // One observer reads every checkpoint each millisecond and resolves the appends it
    // covers: pollers per append would load the database more than the workload does.
    let (sample_tx, mut sample_rx) = tokio::sync::mpsc::unbounded_channel::<(String, u64, Instant)>();
    let observer = {
        let pool = projections.db().pool().clone();
        tokio::spawn(async move {
            let mut pending: Vec<(String, u64, Instant, bool)> = Vec::new();
            let (mut lags, mut relayed) = (Vec::new(), Vec::new());
            let mut open = true;
            while open || !pending.is_empty() {
                loop {
                    match sample_rx.try_recv() {
                        Ok((t, p, at)) => pending.push((t, p, at, false)),
                        Err(tokio::sync::mpsc::error::TryRecvError::Empty) => break,
                        Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => {
                            open = false;
                            break;
                        }
                    }
                }
                // One query a millisecond for both hops, about the tenants with appends
                // still pending only, so that observing loads the database as little as it can.
                let waiting: std::collections::BTreeSet<&str> =
                    pending.iter().map(|(t, ..)| t.as_str()).collect();
                if waiting.is_empty() {
                    if open {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    continue;
                }
                let list: Vec<String> = (1..=waiting.len()).map(|i| format!("${i}")).collect();
                let list = list.join(", ");
                let sql = format!(
                    "SELECT 1, tenant_id, position FROM projection_checkpoints
                     WHERE projector = 'conversations' AND tenant_id IN ({list})
                     UNION ALL SELECT 0, tenant_id, position FROM relay_positions WHERE tenant_id IN ({list})"
                );
                let mut query = sqlx::query_as::<_, (i32, String, i64)>(&sql);
                for t in &waiting {
                    query = query.bind(*t);
                }
                let rows = query.fetch_all(&pool).await.unwrap();
                let now = Instant::now();
                let (mut at, mut sent) = (HashMap::new(), HashMap::new());
                for (projected, tenant, position) in rows {
                    if projected == 1 { &mut at } else { &mut sent }.insert(tenant, position as u64);
                }
                pending.retain_mut(|(t, p, committed, seen)| {
                    if !*seen && sent.get(t).is_some_and(|x: &u64| x >= p) {
                        *seen = true;
                        relayed.push(now - *committed);
                    }
                    let done = at.get(t).is_some_and(|x: &u64| x >= p);
                    if done {
                        if !*seen {
                            relayed.push(now - *committed);
                        }
                        lags.push(now - *committed);
                    }
                    !done
                });
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            (lags, relayed)
        })
    };
    let rate = 2_000;
    let total = rate * 10;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    let mut appends = Vec::new();
    for i in 0..total {
        tick.tick().await;
        let (ctx, c) = live[i % live.len()].clone();
        let (store, samples) = (h.store.clone(), sample_tx.clone());
        appends.push(tokio::spawn(async move {
            let out = store
                .append(
                    &ctx,
                    AppendRequest::to_stream(
                        StreamId::conversation(c),
                        ExpectedVersion::Any,
                        vec![message(c)],
                    ),
                )
                .await
                .unwrap();
            if i % 10 == 0 {
                let _ = samples.send((ctx.tenant_id.to_string(), out.last_position, Instant::now()));
            }
        }));
    }
    for a in appends {
        a.await.unwrap();
    }
    drop(sample_tx);
    let (mut lags, mut relayed) =
        tokio::time::timeout(Duration::from_secs(60), observer).await.expect("the worker caught up").unwrap();
    relayed.sort();
    let r =
        |q: f64| relayed[((relayed.len() as f64 * q) as usize).min(relayed.len() - 1)].as_secs_f64() * 1000.0;
    println!(
        "| PostgreSQL + NATS | relay lag, append committed to acknowledged by JetStream and recorded, same load | p50 {:.1} ms, p99 {:.1} ms |",
        r(0.5),
        r(0.99)
    );
    lags.sort();
    let p = |q: f64| lags[((lags.len() as f64 * q) as usize).min(lags.len() - 1)].as_secs_f64() * 1000.0;
    println!(
        "| PostgreSQL + NATS | end-to-end lag, append committed to row written by a worker process, {rate} appends/s over 50 tenants for 10 s | p50 {:.1} ms, p99 {:.1} ms ({} samples) |",
        p(0.5),
        p(0.99),
        lags.len()
    );
    relay_task.abort();
    let _ = worker.kill();
    let _ = worker.wait();
    let _ = broker.jetstream().delete_stream(STREAM).await;
}
