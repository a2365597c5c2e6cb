//! Read-side throughput: `cargo bench -p tenantry-projections --bench projections`.
//!
//! Rebuild of all projections over a mixed log (agents, conversations, messages, usage)
//! spread over many tenants, with peak RSS and RSS at each quarter of the rebuild; then the
//! live projection lag (append committed to row visible) under a steady append load.
//! `TENANTRY_BENCH_EVENTS` (default 1,000,000) and `TENANTRY_BENCH_TENANTS` (default 1,000)
//! size the log; `TENANTRY_BENCH_ONLY=postgres|sqlite` runs one backend.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark that cannot run should stop loudly

use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::Utc;
use tenantry_domain::event::*;
use tenantry_domain::{
    AgentId, ConversationId, Event, EventId, MessageId, Plan, StreamId, TenantContext, TenantId,
};
use tenantry_projections::models::conversations;
use tenantry_projections::{PriceTable, Progress, Projections};
use tenantry_store::testing::{Harness, reset_peak_rss, rss_mib};
use tenantry_store::{AppendRequest, EventStore, ExpectedVersion, NewEvent};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn new(event: &Event) -> NewEvent {
    NewEvent::new(EventId::new(), event).unwrap()
}

fn message(conversation: ConversationId, i: usize) -> (Event, Event) {
    let usage = TokenUsage { prompt_tokens: 100 + i as u64 % 50, completion_tokens: 20 };
    let model = if i.is_multiple_of(4) { "model-large" } else { "model-small" };
    (
        Event::MessageAppended(MessageAppended {
            conversation_id: conversation,
            message_id: MessageId::new(),
            role: if i.is_multiple_of(2) { MessageRole::User } else { MessageRole::Assistant },
            content: format!("message {i} {}", "lorem ipsum ".repeat(8)).into(),
            model: Some(model.into()),
            usage: Some(usage),
            author: None,
        }),
        Event::UsageRecorded(UsageRecorded {
            model: model.into(),
            kind: "message".into(),
            usage,
            request_id: Some(format!("req-{i}")),
            occurred_at: Utc::now(),
            cost: None,
        }),
    )
}

/// One tenant of `events` events: the tenant and 3 agents, 10 conversations, then pairs of
/// message and usage in appends of 100 events.
async fn load_tenant(store: &EventStore, events: usize) {
    let ctx = TenantContext::system(TenantId::new());
    let created = Event::TenantCreated(TenantCreated {
        slug: "bench".into(),
        name: "Bench".into(),
        plan: Plan::Enterprise,
        partner_id: None,
        settings: Settings::default(),
        limits: Default::default(),
        ancestors: Vec::new(),
    });
    let mut directory = vec![new(&created)];
    let agents: Vec<AgentId> = (0..3).map(|_| AgentId::new()).collect();
    for a in &agents {
        directory.push(new(&Event::AgentCreated(AgentCreated {
            agent_id: *a,
            name: "agent".into(),
            model: "model-small".into(),
            system_prompt: "Help.".into(),
            tool_ids: vec![],
        })));
    }
    store
        .append(&ctx, AppendRequest::to_stream(StreamId::tenant(), ExpectedVersion::NoStream, directory))
        .await
        .unwrap();
    let conversations: Vec<ConversationId> = (0..10).map(|_| ConversationId::new()).collect();
    let mut request: Option<AppendRequest> = None;
    for (i, c) in conversations.iter().enumerate() {
        let opened = vec![new(&Event::ConversationOpened(ConversationOpened {
            conversation_id: *c,
            agent_id: agents[i % 3],
            user_id: None,
            title: Some(format!("thread {i}").into()),
        }))];
        request = Some(match request {
            None => AppendRequest::to_stream(StreamId::conversation(*c), ExpectedVersion::NoStream, opened),
            Some(r) => r.and(StreamId::conversation(*c), ExpectedVersion::NoStream, opened),
        });
    }
    store.append(&ctx, request.unwrap()).await.unwrap();
    let pairs = events.saturating_sub(14) / 2;
    let mut i = 0;
    while i < pairs {
        let n = (pairs - i).min(50);
        let conversation = conversations[i / 50 % 10];
        let (msgs, usage): (Vec<_>, Vec<_>) = (i..i + n)
            .map(|k| {
                let (m, u) = message(conversation, k);
                (new(&m), new(&u))
            })
            .unzip();
        let request = AppendRequest::to_stream(
            StreamId::conversation(conversation),
            ExpectedVersion::Any,
            msgs,
        )
        .and(StreamId::usage(2026, 11), ExpectedVersion::Any, usage);
        store.append(&ctx, request).await.unwrap();
        i += n;
    }
}

/// Samples RSS at each quarter of the work.
struct RssProgress {
    total: Mutex<(u64, u64, Vec<f64>)>,
}

impl Progress for RssProgress {
    fn start(&self, _: &str, total: u64) {
        *self.total.lock().unwrap() = (total, 0, Vec::new());
    }
    fn advance(&self, done: u64) {
        let mut t = self.total.lock().unwrap();
        let before = t.1 * 4 / t.0.max(1);
        t.1 += done;
        if t.1 * 4 / t.0.max(1) > before {
            t.2.push(rss_mib("VmRSS:"));
        }
    }
    fn finish(&self) {}
}

async fn run(name: &str, h: &Harness, events: usize, tenants: usize) {
    let started = Instant::now();
    let per_tenant = events / tenants;
    let mut tasks = Vec::new();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for _ in 0..8 {
        let (store, next) = (h.store.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < tenants {
                load_tenant(&store, per_tenant).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let loaded = started.elapsed();
    eprintln!("{name}: loaded {events} events over {tenants} tenants in {loaded:.1?}");

    let db = tenantry_projections::ReadDb::connect(&h.url, 8).await.unwrap();
    let projections = Projections::new(
        h.store.clone(),
        db,
        tenantry_projections::standard(&h.store, PriceTable::default()),
    );
    reset_peak_rss();
    let progress = RssProgress { total: Mutex::new((0, 0, Vec::new())) };
    let started = Instant::now();
    let read = projections.rebuild(None, None, &progress).await.unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    let quarters =
        progress.total.lock().unwrap().2.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(" / ");
    println!(
        "| {name} | rebuild all 5 projections, {events} events over {tenants} tenants | {:.0} events/s, peak RSS {:.0} MiB (RSS at each quarter: {quarters} MiB) |",
        read as f64 / elapsed,
        rss_mib("VmHWM:")
    );

    // Live lag: a steady load of single-message appends over 50 tenants, each timed from
    // commit to visible in the conversations read model.
    let runner = tokio::spawn(projections.clone().run(std::future::pending()));
    let mut contexts = Vec::new();
    for _ in 0..50 {
        let ctx = TenantContext::system(TenantId::new());
        let c = ConversationId::new();
        let opened = Event::ConversationOpened(ConversationOpened {
            conversation_id: c,
            agent_id: AgentId::new(),
            user_id: None,
            title: None,
        });
        h.store
            .append(
                &ctx,
                AppendRequest::to_stream(
                    StreamId::conversation(c),
                    ExpectedVersion::NoStream,
                    vec![new(&opened)],
                ),
            )
            .await
            .unwrap();
        contexts.push((ctx, c));
    }
    let rate = env("TENANTRY_BENCH_LIVE_RATE", 500);
    let total = rate * 10;
    let mut waits = Vec::with_capacity(total);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    for i in 0..total {
        tick.tick().await;
        let (ctx, c) = contexts[i % contexts.len()].clone();
        let (store, projections) = (h.store.clone(), projections.clone());
        waits.push(tokio::spawn(async move {
            let (m, _) = message(c, i);
            let out = store
                .append(
                    &ctx,
                    AppendRequest::to_stream(StreamId::conversation(c), ExpectedVersion::Any, vec![new(&m)]),
                )
                .await
                .unwrap();
            let committed = Instant::now();
            projections
                .wait_for(conversations::NAME, ctx.tenant_id, out.last_position, Duration::from_secs(30))
                .await
                .unwrap();
            committed.elapsed()
        }));
    }
    let mut lags = Vec::with_capacity(total);
    for w in waits {
        lags.push(w.await.unwrap());
    }
    runner.abort();
    lags.sort();
    let p = |q: f64| lags[((lags.len() as f64 * q) as usize).min(lags.len() - 1)].as_secs_f64() * 1000.0;
    println!(
        "| {name} | live lag, append committed to visible, {rate} appends/s over 50 tenants for 10 s | p50 {:.1} ms, p99 {:.1} ms |",
        p(0.5),
        p(0.99)
    );
}

#[tokio::main]
async fn main() {
    let events = env("TENANTRY_BENCH_EVENTS", 1_000_000);
    let tenants = env("TENANTRY_BENCH_TENANTS", 1_000);
    let only = std::env::var("TENANTRY_BENCH_ONLY").unwrap_or_default();
    println!("| backend | workload | result |");
    println!("|---|---|---|");
    if only != "sqlite"
        && let Some(h) = Harness::postgres().await
    {
        run("PostgreSQL", &h, events, tenants).await;
    }
    if only != "postgres" {
        run("SQLite", &Harness::sqlite().await, events, tenants).await;
    }
}
