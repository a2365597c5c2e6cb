//! tenantry's command path against a peer, measured in the same run on the same PostgreSQL
//! server: `cargo bench -p tenantry --bench peer`.
//!
//! The peer is `postgres-es` 0.5.0 with `cqrs-es` (Rust, PostgreSQL): a command loads the
//! aggregate's events, is handled, and its event is inserted in a transaction of its own.
//! tenantry's side is its own command path without HTTP: the conversation's state (cached),
//! the tenant's checked with it, `decide`, and the append (encrypted, hash-chained, limits
//! decided in the append, group-committed). Both write the same commands: a conversation is
//! opened, then 19 messages of 200 bytes are appended to it, then the next conversation; each
//! task its own conversations (and, for tenantry, its own tenant). Rows at 1, 8 and 64
//! concurrent tasks, `TENANTRY_BENCH_SECONDS` (default 10) seconds a side each, run in
//! `TENANTRY_BENCH_SLICES` (default 5) turns of the two sides, so that a machine that speeds
//! up or slows down in a row weighs on both; with commands/s, p50 and p99 of each side and
//! their ratio; then raw PostgreSQL's single-row commit rate at 8
//! clients (`pgbench`) for scale. Both sides have a pool of 20 connections.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark that cannot run should stop loudly

use std::sync::Arc;
use std::time::{Duration, Instant};

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use postgres_es::PostgresCqrs;
use serde::{Deserialize, Serialize};
use sqlx::Executor;
use tenantry_app::Commands;
use tenantry_domain::command::{AppendMessage, CreateAgent, CreateTenant, OpenConversation};
use tenantry_domain::conversation::ConversationCommand;
use tenantry_domain::event::{MessageRole, Settings as TenantSettings};
use tenantry_domain::tenant::TenantCommand;
use tenantry_domain::{
    AgentId, ConversationId, LimitOverrides, MessageId, Plan, PlanCatalog, TenantContext, TenantId,
};
use tenantry_store::GroupCommit;
use tenantry_store::testing::{Harness, ScratchDatabase, print_raw_commit_rate};

/// Commands per conversation: the open, then messages.
const PER_CONVERSATION: u64 = 20;
const POOL: u32 = 20;

fn content() -> String {
    "x".repeat(200)
}

// The peer's aggregate: the same conversation, in cqrs-es terms.

#[derive(Debug, Default, Serialize, Deserialize)]
struct Conversation {
    opened: bool,
    messages: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum ConversationEvent {
    Opened { agent: String },
    MessageAppended { content: String },
}

impl DomainEvent for ConversationEvent {
    fn event_type(&self) -> String {
        match self {
            Self::Opened { .. } => "Opened".into(),
            Self::MessageAppended { .. } => "MessageAppended".into(),
        }
    }

    fn event_version(&self) -> String {
        "1.0".into()
    }
}

enum PeerCommand {
    Open { agent: String },
    Append { content: String },
}

#[derive(Debug)]
struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("refused")
    }
}

impl std::error::Error for Refused {}

impl Aggregate for Conversation {
    const TYPE: &'static str = "conversation";
    type Command = PeerCommand;
    type Event = ConversationEvent;
    type Error = Refused;
    type Services = ();

    async fn handle(&mut self, command: PeerCommand, _: &(), sink: &EventSink<Self>) -> Result<(), Refused> {
        match command {
            PeerCommand::Open { agent } if !self.opened => {
                sink.write(ConversationEvent::Opened { agent }, self).await
            }
            PeerCommand::Append { content } if self.opened => {
                sink.write(ConversationEvent::MessageAppended { content }, self).await
            }
            _ => return Err(Refused),
        }
        Ok(())
    }

    fn apply(&mut self, event: ConversationEvent) {
        match event {
            ConversationEvent::Opened { .. } => self.opened = true,
            ConversationEvent::MessageAppended { .. } => self.messages += 1,
        }
    }
}

/// The peer's schema, as its `db/init.sql` makes it.
const PEER_SCHEMA: &str = "CREATE TABLE events (
    aggregate_type text NOT NULL,
    aggregate_id text NOT NULL,
    sequence bigint CHECK (sequence >= 0) NOT NULL,
    event_type text NOT NULL,
    event_version text NOT NULL,
    payload json NOT NULL,
    metadata json NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, sequence))";

/// One side's figures for one row.
struct Figures {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// One side's latencies and running time over the turns of a row.
#[derive(Default)]
struct Turns {
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Turns {
    fn add(&mut self, (latencies, elapsed): (Vec<Duration>, Duration)) {
        self.latencies.extend(latencies);
        self.elapsed += elapsed;
    }

    fn figures(self) -> Figures {
        figures(self.latencies, self.elapsed)
    }
}

fn figures(mut latencies: Vec<Duration>, elapsed: Duration) -> Figures {
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Figures {
        rate: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: at(0.50).as_secs_f64() * 1e3,
        p99_ms: at(0.99).as_secs_f64() * 1e3,
    }
}

async fn peer(
    cqrs: &Arc<PostgresCqrs<Conversation>>,
    tasks: usize,
    run_for: Duration,
) -> (Vec<Duration>, Duration) {
    let started = Instant::now();
    let deadline = started + run_for;
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let cqrs = cqrs.clone();
        handles.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut aggregate = String::new();
            for n in 0_u64.. {
                let began = Instant::now();
                if began >= deadline {
                    break;
                }
                let command = if n % PER_CONVERSATION == 0 {
                    aggregate = uuid::Uuid::new_v4().to_string();
                    PeerCommand::Open { agent: "agent".into() }
                } else {
                    PeerCommand::Append { content: content() }
                };
                cqrs.execute(&aggregate, command).await.expect("peer command");
                latencies.push(began.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for h in handles {
        latencies.extend(h.await.unwrap());
    }
    (latencies, started.elapsed())
}

/// A tenant of tenantry's side, with its agent.
async fn tenant(commands: &Commands, i: usize) -> (TenantContext, AgentId) {
    let ctx = TenantContext::system(TenantId::new());
    let create = CreateTenant {
        slug: format!("peer-bench-{i}"),
        name: "Peer bench".into(),
        plan: Plan::Enterprise,
        partner_id: None,
        settings: TenantSettings::default(),
        limits: LimitOverrides {
            api_calls_per_day: Some(LimitOverrides::MAX_CALLS_PER_DAY),
            storage_bytes: Some(LimitOverrides::MAX_STORAGE_BYTES),
            ..Default::default()
        },
        parent: None,
    };
    commands.tenant(&ctx, &TenantCommand::CreateTenant(create)).await.unwrap();
    let agent_id = AgentId::new();
    let agent = CreateAgent {
        agent_id,
        name: "a".into(),
        model: "m".into(),
        system_prompt: String::new(),
        tool_ids: vec![],
    };
    commands.tenant(&ctx, &TenantCommand::CreateAgent(agent)).await.unwrap();
    (ctx, agent_id)
}

async fn tenantry(
    commands: &Arc<Commands>,
    tenants: &[(TenantContext, AgentId)],
    tasks: usize,
    run_for: Duration,
) -> (Vec<Duration>, Duration) {
    let started = Instant::now();
    let deadline = started + run_for;
    let mut handles = Vec::new();
    for (ctx, agent_id) in tenants.iter().take(tasks).cloned() {
        let commands = commands.clone();
        handles.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut conversation = ConversationId::new();
            for n in 0_u64.. {
                let began = Instant::now();
                if began >= deadline {
                    break;
                }
                let command = if n % PER_CONVERSATION == 0 {
                    conversation = ConversationId::new();
                    ConversationCommand::Open(OpenConversation {
                        conversation_id: conversation,
                        agent_id,
                        user_id: None,
                        title: None,
                    })
                } else {
                    ConversationCommand::AppendMessage(AppendMessage {
                        conversation_id: conversation,
                        message_id: MessageId::new(),
                        role: MessageRole::User,
                        content: content(),
                        model: None,
                        usage: None,
                    })
                };
                commands.conversation(&ctx, conversation, &command).await.expect("tenantry command");
                latencies.push(began.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for h in handles {
        latencies.extend(h.await.unwrap());
    }
    (latencies, started.elapsed())
}

#[tokio::main]
async fn main() {
    let seconds: u64 =
        std::env::var("TENANTRY_BENCH_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let run_for = Duration::from_secs(seconds);
    let Some(h) = Harness::postgres().await else { return };
    let peer_db = ScratchDatabase::create().await.unwrap();
    let pool =
        sqlx::postgres::PgPoolOptions::new().max_connections(POOL).connect(&peer_db.url).await.unwrap();
    pool.execute(PEER_SCHEMA).await.unwrap();
    let cqrs = Arc::new(postgres_es::postgres_cqrs(pool, vec![], ()));

    // `TENANTRY_BENCH_IN_FLIGHT` and `TENANTRY_BENCH_WINDOW_US` try other group commit
    // settings; `TENANTRY_BENCH_IN_FLIGHT=0` appends without group commit.
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let store =
        match (h.store.group_commit(), env("TENANTRY_BENCH_IN_FLIGHT"), env("TENANTRY_BENCH_WINDOW_US")) {
            (_, Some(0), _) => h.store.clone().with_group_commit(None),
            (Some(group), in_flight, window) => h.store.clone().with_group_commit(Some(GroupCommit {
                max_in_flight: in_flight.map_or(group.max_in_flight, |n| n as usize),
                window: window.map_or(group.window, Duration::from_micros),
                ..group
            })),
            (None, ..) => h.store.clone(),
        };
    let group = store.group_commit();
    let store_for_stats = store.clone();
    let commands = Arc::new(Commands::new(store, PlanCatalog::default()));
    let mut tenants = Vec::new();
    for i in 0..64 {
        tenants.push(tenant(&commands, i).await);
    }
    println!("tenantry group commit: {group:?}");
    println!("| tasks | postgres-es 0.5.0 | tenantry | tenantry / peer |");
    println!("|---|---|---|---|");
    // `TENANTRY_BENCH_TASKS=1,8` runs only those rows.
    let rows: Vec<usize> = std::env::var("TENANTRY_BENCH_TASKS")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 8, 64]);
    let slices = env("TENANTRY_BENCH_SLICES").unwrap_or(5).max(1) as u32;
    for tasks in rows {
        let (mut p, mut t) = (Turns::default(), Turns::default());
        for _ in 0..slices {
            p.add(peer(&cqrs, tasks, run_for / slices).await);
            t.add(tenantry(&commands, &tenants, tasks, run_for / slices).await);
        }
        let (p, t) = (p.figures(), t.figures());
        println!(
            "| {tasks} | {:.0} commands/s, p50 {:.2} ms, p99 {:.2} ms | {:.0} commands/s, p50 {:.2} ms, p99 {:.2} ms | {:.2}x |",
            p.rate,
            p.p50_ms,
            p.p99_ms,
            t.rate,
            t.p50_ms,
            t.p99_ms,
            t.rate / p.rate
        );
    }
    if let Some(stats) = store_for_stats.commit_stats() {
        println!(
            "tenantry: {} appends in {} commits (largest {})",
            stats.appends, stats.commits, stats.largest
        );
    }
    print_raw_commit_rate(seconds as u32).await;
}
