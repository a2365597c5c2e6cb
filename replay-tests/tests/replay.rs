//! Golden logs through every projector; live projection equals a rebuild; crashes at random
//! points change nothing; a tenant that cannot be decoded stalls alone. Each test runs on
//! SQLite and, when a server answers, PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{TimeZone, Utc};
use rand::Rng;
use sqlx::{AnyConnection, Connection};
use tenantry_domain::event::*;
use tenantry_domain::{
    AgentId, ConversationId, Event, EventId, MessageId, PlanCatalog, StreamId, TenantContext, TenantId,
};
use tenantry_projections::models::billing::{Price, PriceTable};
use tenantry_projections::models::{audit, billing, conversations, directory, quotas};
use tenantry_projections::{ProjectionError, Projections, Projector, Silent};
use tenantry_replay_tests::{Fixture, dump, fixtures};
use tenantry_store::testing::Harness;
use tenantry_store::{AppendRequest, Database, ExpectedVersion, NewEvent, RecordedEvent};

fn prices() -> PriceTable {
    let mut prices = PriceTable::default();
    prices.models.insert(
        "model-large".into(),
        Price { prompt_per_1k: "0.01".parse().unwrap(), completion_per_1k: "0.03".parse().unwrap() },
    );
    prices.models.insert(
        "model-small".into(),
        Price { prompt_per_1k: "0.0005".parse().unwrap(), completion_per_1k: "0.0015".parse().unwrap() },
    );
    prices
}

async fn projections(h: &Harness, wrap: impl Fn(Arc<dyn Projector>) -> Arc<dyn Projector>) -> Projections {
    let db = tenantry_projections::ReadDb::connect(&h.url, 8).await.unwrap();
    let projectors = tenantry_projections::standard(&h.store, prices()).into_iter().map(wrap).collect();
    Projections::new(h.store.clone(), db, projectors)
}

fn golden() -> Fixture {
    Fixture::load(&fixtures().join("golden.json"))
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(&super::Harness::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(h) = super::Harness::postgres().await else { return };
                    super::$name(&h).await;
                }
            )*
        }
    };
}

on_both_backends!(
    the_golden_log_projects_to_the_expected_read_models,
    live_projection_equals_a_full_rebuild,
    crashes_at_random_points_leave_the_same_rows_as_a_clean_rebuild,
    an_undecodable_tenant_stalls_alone_and_shows_in_status,
    queries_can_wait_for_their_own_writes,
    a_rebuild_keeps_old_rows_visible_until_it_completes_and_resumes_after_interruption,
    many_tenants_projected_in_one_pass_equal_a_clean_rebuild,
);

async fn the_golden_log_projects_to_the_expected_read_models(h: &Harness) {
    let fixture = golden();
    fixture.append_all(&h.store).await.unwrap();
    let p = projections(h, |p| p).await;
    p.run_once().await.unwrap();
    let actual = dump(p.db(), fixture.tenant_id).await;
    let path = fixtures().join("golden.expected.json");
    if std::env::var("UPDATE_GOLDEN").is_ok() {
        std::fs::write(&path, serde_json::to_string_pretty(&actual).unwrap() + "\n").unwrap();
    }
    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&path)
            .expect("golden.expected.json missing: run with UPDATE_GOLDEN=1 and review it"),
    )
    .unwrap();
    assert_eq!(actual, expected, "read models differ from {}", path.display());

    // The queries over those rows.
    let t = fixture.tenant_id;
    let ctx = TenantContext::system(t);
    let db = p.db();
    let tenant = directory::tenant(&ctx, db).await.unwrap().unwrap();
    assert_eq!(
        (tenant.name.as_str(), tenant.plan.as_str(), tenant.status.as_str()),
        ("Acme Corporation", "professional", "active")
    );
    assert_eq!(tenant.limits.max_agents, Some(3), "overrides merge field by field");
    assert_eq!(tenant.limits.max_users, Some(25));
    let agents = directory::agents(&ctx, db, None, 50).await.unwrap().items;
    assert_eq!(agents.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["renamed-bot", "support"]);
    assert!(agents[0].tool_ids.len() == 2, "v1 agent upcast, then updated with tools");
    assert_eq!(directory::tools(&ctx, db, None, 50).await.unwrap().items.len(), 1);
    let users = directory::users(&ctx, db, None, 50).await.unwrap().items;
    assert_eq!(
        users.iter().map(|u| (u.email.as_str(), u.issuer.as_deref())).collect::<Vec<_>>(),
        [("ann@acme.example", None), ("carol@acme.example", Some("https://id.acme.example"))],
        "a v3 user names the identity provider it came from"
    );
    let keys = directory::api_keys(&ctx, db, None, 50).await.unwrap().items;
    assert!(keys[0].revoked);
    let runtime = &keys[2];
    assert_eq!(runtime.scopes, ["conversations:write", "usage:write"]);
    assert_eq!((runtime.expires_at, runtime.rotated_at), (Some(1_798_761_600_000), Some(1_793_621_220_000)));

    let page = conversations::threads(&ctx, db, &Default::default(), None, 1).await.unwrap();
    assert_eq!(page.items[0].title, None, "newest first");
    let next =
        conversations::threads(&ctx, db, &Default::default(), page.next_cursor.as_deref(), 1).await.unwrap();
    assert_eq!(next.items[0].title.as_deref(), Some("Refund (done)"), "retitled");
    assert!(next.items[0].archived);
    assert_eq!(next.items[0].message_count, 2);
    let id = next.items[0].conversation_id.parse().unwrap();
    let msgs = conversations::messages(&ctx, db, id, None, 50).await.unwrap();
    assert_eq!(msgs.items.iter().map(|m| m.role.as_str()).collect::<Vec<_>>(), ["user", "assistant"]);
    assert!(matches!(
        conversations::messages(&ctx, db, id, Some("not-a-number"), 5).await,
        Err(ProjectionError::InvalidCursor)
    ));

    let report = billing::usage(&ctx, db, "2026-11-01", "2026-11-30").await.unwrap();
    // model-large: 1234 * 0.01/1000 + 567 * 0.03/1000 = 0.01234 + 0.01701
    let large = report.by_model.iter().find(|l| l.model == "model-large").unwrap();
    assert_eq!(large.cost, "0.02935");
    let unknown = report.by_model.iter().find(|l| l.model == "model-unknown").unwrap();
    assert!(unknown.unpriced);
    assert_eq!(unknown.cost, "0.005");
    assert_eq!(report.total_tokens, 1234 + 567 + 5000 + 12);
    assert_eq!(report.by_day.iter().filter(|l| l.day.as_deref() == Some("2026-11-01")).count(), 2);

    let now = Utc.with_ymd_and_hms(2026, 11, 2, 13, 0, 0).unwrap();
    let q = quotas::quotas(&ctx, db, &PlanCatalog::default(), now).await.unwrap().unwrap();
    let tokens = q.iter().find(|l| l.limit == tenantry_domain::LimitName::TokensPerMonth).unwrap();
    assert_eq!((tokens.used, tokens.max), (1234 + 567 + 5000 + 12, 100_000));
    let agents_q = q.iter().find(|l| l.limit == tenantry_domain::LimitName::MaxAgents).unwrap();
    assert_eq!((agents_q.used, agents_q.max, agents_q.remaining), (2, 3, 1));

    let denied = audit::entries(
        &ctx,
        db,
        &audit::AuditFilter {
            action: Some("GET /v1/tenants/{tenant_id}/agents".into()),
            ..Default::default()
        },
        None,
        10,
    )
    .await
    .unwrap();
    assert_eq!(denied.items.len(), 1);
    assert_eq!(
        (denied.items[0].outcome.as_str(), denied.items[0].source_ip.as_deref()),
        ("denied", Some("198.51.100.9"))
    );
}

async fn live_projection_equals_a_full_rebuild(h: &Harness) {
    let fixture = golden();
    let p = projections(h, |p| p).await;
    for (ctx, request) in fixture.requests() {
        h.store.append(&ctx, request).await.unwrap();
        p.catch_up(&ctx).await.unwrap();
    }
    let live = dump(p.db(), fixture.tenant_id).await;
    p.rebuild(None, None, &Silent).await.unwrap();
    let rebuilt = dump(p.db(), fixture.tenant_id).await;
    assert_eq!(live, rebuilt);
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("golden.expected.json")).unwrap())
            .unwrap();
    assert_eq!(rebuilt, expected);
}

/// Appends a mixed log: agents, conversations, messages and usage, over several tenants.
async fn mixed_log(h: &Harness, tenants: usize, appends: usize) -> Vec<TenantId> {
    let mut ids = Vec::new();
    for _ in 0..tenants {
        let ctx = TenantContext::system(TenantId::new());
        let created = Event::TenantCreated(TenantCreated {
            slug: "t".into(),
            name: "T".into(),
            plan: tenantry_domain::Plan::Starter,
            partner_id: None,
            settings: Settings::default(),
            limits: Default::default(),
            ancestors: Vec::new(),
        });
        let agent = AgentId::new();
        let agent_event = Event::AgentCreated(AgentCreated {
            agent_id: agent,
            name: "a".into(),
            model: "model-small".into(),
            system_prompt: String::new(),
            tool_ids: vec![],
        });
        let events = vec![
            NewEvent::new(EventId::new(), &created).unwrap(),
            NewEvent::new(EventId::new(), &agent_event).unwrap(),
        ];
        h.store
            .append(&ctx, AppendRequest::to_stream(StreamId::tenant(), ExpectedVersion::NoStream, events))
            .await
            .unwrap();
        let conv = ConversationId::new();
        let opened = Event::ConversationOpened(ConversationOpened {
            conversation_id: conv,
            agent_id: agent,
            user_id: None,
            title: None,
        });
        h.store
            .append(
                &ctx,
                AppendRequest::to_stream(
                    StreamId::conversation(conv),
                    ExpectedVersion::NoStream,
                    vec![NewEvent::new(EventId::new(), &opened).unwrap()],
                ),
            )
            .await
            .unwrap();
        for i in 0..appends {
            billed_message(h, &ctx, conv, i).await;
        }
        ids.push(ctx.tenant_id);
    }
    ids
}

/// A message with token usage and its usage record, appended together as a command does.
async fn billed_message(h: &Harness, ctx: &TenantContext, conv: ConversationId, i: usize) {
    let usage = TokenUsage { prompt_tokens: rand::thread_rng().gen_range(1..500), completion_tokens: 7 };
    let msg = Event::MessageAppended(MessageAppended {
        conversation_id: conv,
        message_id: MessageId::new(),
        role: MessageRole::Assistant,
        content: format!("message {i}").into(),
        model: Some("model-small".into()),
        usage: Some(usage),
        author: None,
    });
    let used = Event::UsageRecorded(UsageRecorded {
        model: if i.is_multiple_of(3) { "model-large".into() } else { "model-small".into() },
        kind: "message".into(),
        usage,
        request_id: Some(format!("r{i}")),
        occurred_at: Utc.with_ymd_and_hms(2026, 11, 1 + (i % 28) as u32, 12, 0, 0).unwrap(),
        cost: None,
    });
    let request = AppendRequest::to_stream(
        StreamId::conversation(conv),
        ExpectedVersion::Any,
        vec![NewEvent::new(EventId::new(), &msg).unwrap()],
    )
    .and(
        StreamId::usage(2026, 11),
        ExpectedVersion::Any,
        vec![NewEvent::new(EventId::new(), &used).unwrap()],
    );
    h.store.append(ctx, request).await.unwrap();
}

/// A projector that writes its rows, then sometimes fails before commit: the transaction is
/// dropped half-way, as in a crash. The failure is the database going away (an I/O error),
/// which the runner retries on its next pass; a refused value would stall the tenant for good,
/// which is another test's case.
struct Chaos {
    inner: Arc<dyn Projector>,
    armed: Arc<AtomicBool>,
}

#[async_trait]
impl Projector for Chaos {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    async fn apply(
        &self,
        conn: &mut AnyConnection,
        tenant: &str,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        self.inner.apply(conn, tenant, events).await?;
        if self.armed.load(Ordering::Relaxed) && rand::thread_rng().gen_bool(0.4) {
            return Err(ProjectionError::Database(sqlx::Error::Io(std::io::Error::other("injected crash"))));
        }
        Ok(())
    }
    async fn clear(&self, conn: &mut AnyConnection, tenant: &str) -> Result<u64, ProjectionError> {
        self.inner.clear(conn, tenant).await
    }
}

async fn crashes_at_random_points_leave_the_same_rows_as_a_clean_rebuild(h: &Harness) {
    let tenants = mixed_log(h, 3, 120).await;
    let armed = Arc::new(AtomicBool::new(true));
    let chaos = {
        let armed = armed.clone();
        projections(h, move |inner| Arc::new(Chaos { inner, armed: armed.clone() })).await
    };
    // Many rounds of: start catching up, kill the task at a random moment or let an
    // injected failure drop the transaction.
    for round in 0..60 {
        let p = chaos.clone();
        let t = tenants[round % tenants.len()];
        let task = tokio::spawn(async move { p.catch_up(&TenantContext::system(t)).await });
        tokio::time::sleep(Duration::from_micros(rand::thread_rng().gen_range(0..3_000))).await;
        task.abort();
        let _ = task.await;
    }
    armed.store(false, Ordering::Relaxed);
    chaos.run_once().await.unwrap();
    let status = chaos.status().await.unwrap();
    assert!(status.iter().all(|s| s.tenants_behind == 0 && s.stalled.is_empty()), "{status:?}");
    let mut after_crashes = Vec::new();
    for t in &tenants {
        after_crashes.push(dump(chaos.db(), *t).await);
    }
    let clean = projections(h, |p| p).await;
    clean.rebuild(None, None, &Silent).await.unwrap();
    for (t, crashed) in tenants.iter().zip(after_crashes) {
        assert_eq!(crashed, dump(clean.db(), *t).await, "tenant {t}: crashes changed the rows");
    }
    // Usage counted exactly once: tokens in billing equal tokens in the log.
    let report = billing::usage(&TenantContext::system(tenants[0]), clean.db(), "2026-11-01", "2026-11-30")
        .await
        .unwrap();
    assert_eq!(report.by_model.iter().map(|l| l.requests).sum::<i64>(), 120);
}

async fn an_undecodable_tenant_stalls_alone_and_shows_in_status(h: &Harness) {
    let tenants = mixed_log(h, 2, 5).await;
    let (broken, healthy) = (tenants[0], tenants[1]);
    h.store.destroy_key(&TenantContext::system(broken)).await.unwrap();
    let p = projections(h, |p| p).await;
    // The pass completes: the stalled tenant does not stop the others.
    p.run_once().await.unwrap();
    assert_eq!(p.checkpoint(conversations::NAME, healthy).await.unwrap(), 2 + 1 + 2 * 5);
    assert_eq!(p.checkpoint(conversations::NAME, broken).await.unwrap(), 0);
    let status = p.status().await.unwrap();
    for s in &status {
        assert_eq!(s.tenants_behind, 1, "{}", s.projector);
        assert_eq!(s.stalled.len(), 1);
        assert_eq!(s.stalled[0].tenant, broken.to_string());
        assert_eq!(s.stalled[0].position, 1);
        assert!(s.stalled[0].reason.contains("destroyed"), "{}", s.stalled[0].reason);
    }
    // Not a crash loop: another pass does not retry it.
    assert_eq!(p.run_once().await.unwrap(), 0);
    assert!(matches!(p.catch_up(&TenantContext::system(broken)).await, Ok(0)));
}

async fn queries_can_wait_for_their_own_writes(h: &Harness) {
    let tenants = mixed_log(h, 1, 3).await;
    let t = tenants[0];
    let p = projections(h, |p| p).await;
    let head = h.store.head(&TenantContext::system(t)).await.unwrap().unwrap().position;
    assert!(matches!(
        p.wait_for(conversations::NAME, t, head, Duration::from_millis(50)).await,
        Err(ProjectionError::NotCaughtUp { wanted, reached: 0, .. }) if wanted == head
    ));
    let runner = tokio::spawn(p.clone().run(std::future::pending()));
    p.wait_for(conversations::NAME, t, head, Duration::from_secs(10)).await.unwrap();
    // An append wakes the live runner at once.
    let ctx = TenantContext::system(t);
    let more =
        Event::AccessDenied(AccessDenied { action: "probe".into(), target: None, reason: "test".into() });
    let out = h
        .store
        .append(
            &ctx,
            AppendRequest::to_stream(
                "audit".parse().unwrap(),
                ExpectedVersion::Any,
                vec![NewEvent::new(EventId::new(), &more).unwrap()],
            ),
        )
        .await
        .unwrap();
    p.wait_for(audit::NAME, t, out.last_position, Duration::from_secs(10)).await.unwrap();
    assert!(matches!(
        p.wait_for("nope", t, 1, Duration::from_millis(1)).await,
        Err(ProjectionError::UnknownProjection(_))
    ));
    runner.abort();
}

async fn raw_message_count(h: &Harness, tenant: TenantId) -> i64 {
    let sql = "SELECT COUNT(*) FROM conv_messages WHERE tenant_id = $1";
    match h.store.database() {
        Database::Sqlite { read, .. } => {
            sqlx::query_scalar(sql).bind(tenant.to_string()).fetch_one(read).await.unwrap()
        }
        Database::Postgres(pool) => {
            sqlx::query_scalar(sql).bind(tenant.to_string()).fetch_one(pool).await.unwrap()
        }
    }
}

/// Checks, on each page a rebuild applies, that other connections still see the old rows.
struct Watcher {
    handle: tokio::runtime::Handle,
    check: Box<dyn Fn() -> futures::future::BoxFuture<'static, i64> + Send + Sync>,
    expected: i64,
    checked: AtomicBool,
}

impl tenantry_projections::Progress for Watcher {
    fn start(&self, _: &str, _: u64) {}
    fn advance(&self, _: u64) {
        let seen = tokio::task::block_in_place(|| self.handle.block_on((self.check)()));
        assert_eq!(seen, self.expected, "a query saw a half-built model");
        self.checked.store(true, Ordering::Relaxed);
    }
    fn finish(&self) {}
}

async fn a_rebuild_keeps_old_rows_visible_until_it_completes_and_resumes_after_interruption(h: &Harness) {
    let tenants = mixed_log(h, 3, 1_200).await;
    let p = projections(h, |p| p).await;
    p.run_once().await.unwrap();
    let before = raw_message_count(h, tenants[0]).await;
    assert_eq!(before, 1_200);
    let watcher = Watcher {
        handle: tokio::runtime::Handle::current(),
        check: {
            let (store, t) = (h.store.clone(), tenants[0]);
            Box::new(move || {
                let store = store.clone();
                Box::pin(async move {
                    let sql = "SELECT COUNT(*) FROM conv_messages WHERE tenant_id = $1";
                    match store.database() {
                        Database::Sqlite { read, .. } => {
                            sqlx::query_scalar(sql).bind(t.to_string()).fetch_one(read).await.unwrap()
                        }
                        Database::Postgres(pool) => {
                            sqlx::query_scalar(sql).bind(t.to_string()).fetch_one(pool).await.unwrap()
                        }
                    }
                })
            })
        },
        expected: before,
        checked: AtomicBool::new(false),
    };
    p.rebuild(Some(conversations::NAME), Some(tenants[0]), &watcher).await.unwrap();
    assert!(watcher.checked.load(Ordering::Relaxed), "the rebuild took more than one page");
    assert_eq!(raw_message_count(h, tenants[0]).await, before);

    // An interrupted rebuild of every tenant resumes after the last tenant it finished.
    let mut sorted = tenants.clone();
    sorted.sort();
    let mut conn = sqlx::AnyConnection::connect(&h.url).await.unwrap();
    sqlx::query("INSERT INTO projection_rebuilds (projector, through_tenant) VALUES ($1, $2)")
        .bind(audit::NAME)
        .bind(sorted[0].to_string())
        .execute(&mut conn)
        .await
        .unwrap();
    let applied = p.rebuild(Some(audit::NAME), None, &Silent).await.unwrap();
    let per_tenant = 2 + 1 + 2 * 1_200;
    assert_eq!(applied, 2 * per_tenant as u64, "only the tenants after the recorded one");
    assert_eq!(
        p.rebuild(Some(audit::NAME), None, &Silent).await.unwrap(),
        3 * per_tenant as u64,
        "finished runs start over"
    );
}

/// A new conversation with a few messages in the tenant's log.
/// Opens a conversation with `messages` messages in one append; returns the conversation.
async fn converse(h: &Harness, tenant: TenantId, messages: usize) -> ConversationId {
    let ctx = TenantContext::system(tenant);
    let conv = ConversationId::new();
    let opened = Event::ConversationOpened(ConversationOpened {
        conversation_id: conv,
        agent_id: AgentId::new(),
        user_id: None,
        title: Some("t".to_owned().into()),
    });
    let mut events = vec![NewEvent::new(EventId::new(), &opened).unwrap()];
    for i in 0..messages {
        let msg = Event::MessageAppended(MessageAppended {
            conversation_id: conv,
            message_id: MessageId::new(),
            role: MessageRole::Assistant,
            content: format!("more {i}").into(),
            model: None,
            usage: None,
            author: None,
        });
        events.push(NewEvent::new(EventId::new(), &msg).unwrap());
    }
    let request = AppendRequest::to_stream(StreamId::conversation(conv), ExpectedVersion::NoStream, events);
    h.store.append(&ctx, request).await.unwrap();
    conv
}

/// Tenants caught up together (one read, one transaction, one checkpoint update for all),
/// while another process moves one of them on: the rows equal a clean rebuild and every
/// event is applied once.
async fn many_tenants_projected_in_one_pass_equal_a_clean_rebuild(h: &Harness) {
    let tenants = mixed_log(h, 6, 4).await;
    let p = projections(h, |p| p).await;
    let other = projections(h, |p| p).await;
    assert!(p.catch_up_many(tenants.clone()).await.unwrap() > 0);
    for round in 0..3 {
        for (i, t) in tenants.iter().enumerate() {
            let conv = converse(h, *t, 1 + (i + round) % 3).await;
            // Usage too, on most tenants: counters, bills and analytics lines of many tenants
            // are written together.
            for n in 0..(i + round) % 3 {
                billed_message(h, &TenantContext::system(*t), conv, n).await;
            }
        }
        // Another worker takes one tenant meanwhile: this process's position for it is stale.
        other.catch_up(&TenantContext::system(tenants[round])).await.unwrap();
        p.catch_up_many(tenants.clone()).await.unwrap();
        assert_eq!(p.catch_up_many(tenants.clone()).await.unwrap(), 0, "nothing is applied twice");
    }
    let mut live = Vec::new();
    for t in &tenants {
        let head = h.store.head(&TenantContext::system(*t)).await.unwrap().unwrap().position;
        for name in p.names() {
            assert_eq!(p.checkpoint(name, *t).await.unwrap(), head);
        }
        live.push(dump(p.db(), *t).await);
    }
    p.rebuild(None, None, &Silent).await.unwrap();
    for (t, live) in tenants.iter().zip(live) {
        assert_eq!(live, dump(p.db(), *t).await);
    }
}
