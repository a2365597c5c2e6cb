//! Group commit on both backends: appends of many tenants in one transaction keep their own
//! outcomes, and the log is what one-by-one appends would have made.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

#[allow(dead_code)] // each test file uses a part of it
#[macro_use]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::TryStreamExt;
use support::{Harness, agent_created, new_event};
use tenantry_domain::{StreamId, TenantContext, TenantId};
use tenantry_store::{
    AppendOutcome, AppendQuota, AppendRequest, EventStore, ExpectedVersion, GroupCommit, StoreError,
};

fn stream(name: &str) -> StreamId {
    name.parse().expect("valid stream")
}

fn one(stream_name: &str, expected: ExpectedVersion) -> AppendRequest {
    AppendRequest::to_stream(stream(stream_name), expected, vec![new_event(&agent_created("a"))])
}

fn calls(max: u64) -> AppendQuota {
    AppendQuota { max_stored_bytes: u64::MAX, max_calls_per_day: max, day: 20_100, counts_as_call: true }
}

on_both_backends!(
    one_batch_keeps_each_appends_outcome,
    two_appends_to_one_stream_in_one_batch_chain_in_order,
    racing_appenders_over_eight_tenants_keep_their_outcomes,
    a_lone_append_is_committed_alone,
    appends_whose_callers_give_up_leave_no_slot_taken,
);

/// Two processes on one database: each knows its tenants' heads and streams from its own
/// commits, which the other's appends and purges move.
mod two_processes {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite() {
        let h = super::Harness::sqlite().await;
        super::appends_decide_on_what_another_process_wrote(&h).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres() {
        let Some(h) = super::Harness::postgres().await else { return };
        super::appends_decide_on_what_another_process_wrote(&h).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite_minted_keys() {
        let h = super::Harness::sqlite().await;
        super::keys_minted_by_racing_appends_seal_every_message(&h).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres_minted_keys() {
        let Some(h) = super::Harness::postgres().await else { return };
        super::keys_minted_by_racing_appends_seal_every_message(&h).await;
    }
}

/// Append until written: a lost race to store a new conversation's key is sealed again.
async fn append_sealed_again(
    store: &EventStore,
    ctx: &TenantContext,
    request: AppendRequest,
) -> AppendOutcome {
    for _ in 0..10 {
        match store.append(ctx, request.clone()).await {
            Err(StoreError::KeyRace { .. }) => continue,
            written => return written.unwrap(),
        }
    }
    panic!("an append lost its key race ten times");
}

/// Conversations' first messages, appended at once by two processes and twice in one batch,
/// each mint the conversation's key: one key is stored per conversation, an append whose key
/// lost is refused whole and written when sealed again, and a third process opens every
/// message.
async fn keys_minted_by_racing_appends_seal_every_message(h: &Harness) {
    use tenantry_domain::event::{Event, MessageAppended, MessageRole};
    use tenantry_domain::{ConversationId, MessageId};
    let here = h.store.clone();
    let there = EventStore::open(&h.url, &h.master).await.unwrap();
    let ctx = TenantContext::system(TenantId::new());
    here.append(&ctx, one("s", ExpectedVersion::NoStream)).await.unwrap();
    let message = |conversation: ConversationId, text: String| {
        let event = Event::MessageAppended(MessageAppended {
            conversation_id: conversation,
            message_id: MessageId::new(),
            role: MessageRole::User,
            content: text.as_str().into(),
            model: None,
            usage: None,
            author: None,
        });
        AppendRequest::to_stream(
            stream(&format!("conversation-{conversation}")),
            ExpectedVersion::Any,
            vec![new_event(&event)],
        )
    };
    let mut sent = BTreeSet::new();
    for round in 0..8 {
        let conversation = ConversationId::new();
        let mut tasks = Vec::new();
        for i in 0..6 {
            let store = if i % 2 == 0 { here.clone() } else { there.clone() };
            let (ctx, text) = (ctx.clone(), format!("round {round}, message {i}"));
            sent.insert(text.clone());
            let request = message(conversation, text);
            tasks.push(tokio::spawn(async move { append_sealed_again(&store, &ctx, request).await }));
        }
        for t in tasks {
            assert!(!t.await.unwrap().deduplicated);
        }
    }
    // Two first messages of one conversation in one batch: each sealed before either is
    // stored, so each minted a key.
    let conversation = ConversationId::new();
    let pair = ["batched first", "batched second"].map(|t| message(conversation, t.to_owned()));
    let outcomes = here.append_together(pair.iter().map(|r| (ctx.clone(), r.clone())).collect()).await;
    for (request, outcome) in pair.into_iter().zip(outcomes) {
        match outcome {
            Ok(_) => {}
            Err(StoreError::KeyRace { .. }) => {
                append_sealed_again(&here, &ctx, request).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    sent.extend(["batched first".to_owned(), "batched second".to_owned()]);

    let reader = EventStore::open(&h.url, &h.master).await.unwrap();
    let log: Vec<_> = reader.read_log(&ctx, 0).try_collect().await.unwrap();
    let opened: BTreeSet<String> = log
        .iter()
        .filter_map(|e| match &e.event {
            Event::MessageAppended(m) => Some(m.content.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(opened, sent, "every message opens, under the one key stored for its conversation");
    positions(&reader, &ctx).await;
}

/// Every position of the tenant's log, gap-free from 1, with the chain intact.
async fn positions(store: &EventStore, ctx: &TenantContext) -> Vec<u64> {
    let log: Vec<_> = store.read_log(ctx, 0).try_collect().await.unwrap();
    let positions: Vec<u64> = log.iter().map(|e| e.position).collect();
    assert_eq!(positions, (1..=positions.len() as u64).collect::<Vec<_>>(), "gap-free");
    if !positions.is_empty() {
        let report = store.verify_chain(ctx, 1, None).await.unwrap();
        assert_eq!(report.events, positions.len() as u64);
    }
    positions
}

/// One transaction holding a conflict, a limit refusal, a replayed idempotency key, a retried
/// event and good appends of three tenants: only the refused requests are left out.
async fn one_batch_keeps_each_appends_outcome(store: &EventStore) {
    let (a, b, c) = (
        TenantContext::system(TenantId::new()),
        TenantContext::system(TenantId::new()),
        TenantContext::system(TenantId::new()),
    );
    store.append(&a, one("s", ExpectedVersion::NoStream)).await.unwrap();
    let keyed = one("k", ExpectedVersion::Any).with_idempotency_key("key-1");
    let first = store.append(&b, keyed.clone()).await.unwrap();
    let retried = one("r", ExpectedVersion::Any);
    let stored = store.append(&c, retried.clone()).await.unwrap();

    let outcomes = store
        .append_together(vec![
            (a.clone(), one("s", ExpectedVersion::Exact(1))),
            // Stale: the stream is at 1 (2 after the append before it in this batch).
            (a.clone(), one("s", ExpectedVersion::NoStream)),
            (b.clone(), keyed),
            (b.clone(), one("q", ExpectedVersion::Any).with_quota(calls(1))),
            (b.clone(), one("q", ExpectedVersion::Any).with_quota(calls(1))),
            (c.clone(), retried),
            (c.clone(), one("t", ExpectedVersion::NoStream)),
        ])
        .await;
    let written =
        |o: &Result<AppendOutcome, StoreError>| o.as_ref().ok().filter(|o| !o.deduplicated).copied();
    assert_eq!(written(&outcomes[0]).map(|o| o.first_position), Some(2));
    assert!(
        matches!(
            &outcomes[1],
            Err(StoreError::Conflict { actual: 2, expected: ExpectedVersion::NoStream, .. })
        ),
        "{:?}",
        outcomes[1]
    );
    let replay = outcomes[2].as_ref().unwrap();
    assert!(replay.deduplicated);
    assert_eq!((replay.first_position, replay.last_position), (first.first_position, first.last_position));
    assert_eq!(written(&outcomes[3]).map(|o| o.first_position), Some(2));
    assert!(
        matches!(outcomes[4], Err(StoreError::QuotaExceeded { limit: "api_calls_per_day", max: 1 })),
        "{:?}",
        outcomes[4]
    );
    let again = outcomes[5].as_ref().unwrap();
    assert!(again.deduplicated);
    assert_eq!(again.first_position, stored.first_position);
    assert_eq!(written(&outcomes[6]).map(|o| o.first_position), Some(2));

    assert_eq!(positions(store, &a).await, [1, 2]);
    assert_eq!(positions(store, &b).await, [1, 2]);
    assert_eq!(positions(store, &c).await, [1, 2]);
    assert_eq!(store.stream_version(&a, &stream("s")).await.unwrap(), 2);
    assert_eq!(store.stream_version(&b, &stream("q")).await.unwrap(), 1);
    // The refused request's stream was never made.
    assert_eq!(store.stream_version(&c, &stream("t")).await.unwrap(), 1);
}

/// Two appends to one stream in one batch: the second is checked against the first's version
/// and chained after it, and a third expecting the version before both is refused.
async fn two_appends_to_one_stream_in_one_batch_chain_in_order(store: &EventStore) {
    let ctx = TenantContext::system(TenantId::new());
    let outcomes = store
        .append_together(vec![
            (ctx.clone(), one("agent-1", ExpectedVersion::NoStream)),
            (ctx.clone(), one("agent-1", ExpectedVersion::Exact(1))),
            (ctx.clone(), one("agent-1", ExpectedVersion::Exact(1))),
            (
                ctx.clone(),
                AppendRequest::to_stream(
                    stream("agent-1"),
                    ExpectedVersion::Exact(2),
                    vec![new_event(&agent_created("b")), new_event(&agent_created("c"))],
                ),
            ),
        ])
        .await;
    let spans: Vec<Option<(u64, u64)>> =
        outcomes.iter().map(|o| o.as_ref().ok().map(|o| (o.first_position, o.last_position))).collect();
    assert_eq!(spans, [Some((1, 1)), Some((2, 2)), None, Some((3, 4))]);
    assert!(matches!(outcomes[2], Err(StoreError::Conflict { actual: 2, .. })), "{:?}", outcomes[2]);
    assert_eq!(positions(store, &ctx).await, [1, 2, 3, 4]);
    let versions: Vec<u64> = store
        .read_stream(&ctx, &stream("agent-1"), 0)
        .map_ok(|e| e.stream_version)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(versions, [1, 2, 3, 4]);
}

/// 64 appenders over 8 tenants through the group commit: each appends to a stream shared with
/// the other seven of its tenant at the version it last read (so some conflict), to a stream
/// of its own, with an idempotency key it then retries, and against a daily call limit its
/// tenant's appenders share. Every outcome is checked against the log.
async fn racing_appenders_over_eight_tenants_keep_their_outcomes(store: &EventStore) {
    let store = store.clone().with_group_commit(Some(GroupCommit {
        window: Duration::from_millis(2),
        max_batch: 64,
        max_in_flight: 2,
    }));
    let tenants: Vec<TenantContext> = (0..8).map(|_| TenantContext::system(TenantId::new())).collect();
    const ROUNDS: u64 = 6;
    const LIMITED: u64 = 20;
    let mut tasks = Vec::new();
    for i in 0..64 {
        let (store, ctx) = (store.clone(), tenants[i % 8].clone());
        tasks.push(tokio::spawn(async move {
            let mut shared = Vec::new();
            let mut own = Vec::new();
            let mut limited = 0;
            for round in 0..ROUNDS {
                let seen = store.stream_version(&ctx, &stream("shared")).await.unwrap();
                match store.append(&ctx, one("shared", ExpectedVersion::after(seen))).await {
                    Ok(o) => shared.push(o.first_position),
                    Err(StoreError::Conflict { actual, .. }) => assert_ne!(actual, seen),
                    Err(e) => panic!("{e}"),
                }
                let key = format!("task-{i}-{round}");
                let request =
                    one(&format!("own-{i}"), ExpectedVersion::after(round)).with_idempotency_key(key);
                let first = store.append(&ctx, request.clone()).await.unwrap();
                let retry = store.append(&ctx, request).await.unwrap();
                assert!(retry.deduplicated && retry.first_position == first.first_position);
                own.push(first.first_position);
                match store
                    .append(&ctx, one("limited", ExpectedVersion::Any).with_quota(calls(LIMITED)))
                    .await
                {
                    Ok(_) => limited += 1,
                    Err(StoreError::QuotaExceeded { limit: "api_calls_per_day", max: LIMITED }) => {}
                    Err(e) => panic!("{e}"),
                }
            }
            (shared, own, limited)
        }));
    }
    let mut shared: BTreeMap<TenantId, BTreeSet<u64>> = BTreeMap::new();
    let mut written: BTreeMap<TenantId, u64> = BTreeMap::new();
    let mut limited: BTreeMap<TenantId, u64> = BTreeMap::new();
    for (i, task) in tasks.into_iter().enumerate() {
        let (s, own, l) = task.await.unwrap();
        let tenant = tenants[i % 8].tenant_id;
        *written.entry(tenant).or_default() += (s.len() + own.len()) as u64 + l;
        shared.entry(tenant).or_default().extend(s);
        *limited.entry(tenant).or_default() += l;
    }
    for ctx in &tenants {
        let tenant = ctx.tenant_id;
        // Exactly the limit landed, however the appends were grouped.
        assert_eq!(limited[&tenant], LIMITED);
        // Every acknowledged append is in the log, and nothing else is.
        let log = positions(&store, ctx).await;
        assert_eq!(log.len() as u64, written[&tenant]);
        // The shared stream holds exactly the appends answered as written, in version order.
        let events: Vec<_> = store.read_stream(ctx, &stream("shared"), 0).try_collect().await.unwrap();
        let at: BTreeSet<u64> = events.iter().map(|e| e.position).collect();
        assert_eq!(at, shared[&tenant]);
        let versions: Vec<u64> = events.iter().map(|e| e.stream_version).collect();
        assert_eq!(versions, (1..=versions.len() as u64).collect::<Vec<_>>());
        for i in (0..64).filter(|i| tenants[i % 8].tenant_id == tenant) {
            assert_eq!(store.stream_version(ctx, &stream(&format!("own-{i}"))).await.unwrap(), ROUNDS);
        }
    }
    let stats = store.commit_stats().unwrap();
    assert!(stats.largest > 1, "appends were grouped: {stats:?}");
    assert!(stats.commits < stats.appends, "{stats:?}");
}

/// With nothing else going on, an append is committed by itself, at once.
async fn a_lone_append_is_committed_alone(store: &EventStore) {
    let store = store.clone().with_group_commit(Some(GroupCommit {
        window: Duration::from_secs(30),
        max_batch: 64,
        max_in_flight: 2,
    }));
    let ctx = TenantContext::system(TenantId::new());
    // A window of 30 s is never waited on by a lone append: the test would time out.
    let done = tokio::time::timeout(Duration::from_secs(10), async {
        for _ in 0..3 {
            store.append(&ctx, one("s", ExpectedVersion::Any)).await.unwrap();
        }
    })
    .await;
    assert!(done.is_ok(), "a lone append waited for company");
    assert_eq!(
        store.commit_stats().unwrap(),
        tenantry_store::CommitStats { commits: 3, appends: 3, largest: 1 }
    );
}

/// Callers that give up while their append commits (a dropped HTTP request) hand their commit
/// slot on: later appends still commit, with one slot in all.
async fn appends_whose_callers_give_up_leave_no_slot_taken(store: &EventStore) {
    let store = store.clone().with_group_commit(Some(GroupCommit {
        window: Duration::ZERO,
        max_batch: 8,
        max_in_flight: 1,
    }));
    let ctx = TenantContext::system(TenantId::new());
    let mut abandoned = Vec::new();
    for i in 0..40 {
        let (store, ctx) = (store.clone(), ctx.clone());
        abandoned.push(tokio::spawn(async move {
            let request = one(&format!("s-{i}"), ExpectedVersion::Any);
            // Given up after a few hundred microseconds: most are dropped mid-commit or queued.
            let _ = tokio::time::timeout(Duration::from_micros(300), store.append(&ctx, request)).await;
        }));
    }
    for task in abandoned {
        task.await.unwrap();
    }
    let later = tokio::time::timeout(Duration::from_secs(20), async {
        for _ in 0..3 {
            store.append(&ctx, one("after", ExpectedVersion::Any)).await.unwrap();
        }
    })
    .await;
    assert!(later.is_ok(), "a slot was lost with a caller that gave up: {:?}", store.commit_stats());
    assert_eq!(store.stream_version(&ctx, &stream("after")).await.unwrap(), 3);
    positions(&store, &ctx).await;
}

/// Appends are decided on what is stored, not on what this process last wrote: another
/// process's appends to a stream and a tenant this one appended to make conflicts and later
/// positions here, its event ids are duplicates here, and its purge refuses appends here.
async fn appends_decide_on_what_another_process_wrote(h: &Harness) {
    let here = &h.store;
    let there = EventStore::open(&h.url, &h.master).await.unwrap();
    let ctx = TenantContext::system(TenantId::new());
    here.append(&ctx, one("s", ExpectedVersion::NoStream)).await.unwrap();
    here.append(&ctx, one("s", ExpectedVersion::Exact(1))).await.unwrap();
    here.append(&ctx, one("any", ExpectedVersion::Any)).await.unwrap();
    // There: "s" to 3, "any" to 2, the head to 5.
    there.append(&ctx, one("s", ExpectedVersion::Exact(2))).await.unwrap();
    let theirs = new_event(&agent_created("theirs"));
    there
        .append(&ctx, AppendRequest::to_stream(stream("any"), ExpectedVersion::Any, vec![theirs.clone()]))
        .await
        .unwrap();

    // What this process wrote last is no longer so; an expectation past the stream neither.
    for expected in [2, 4] {
        let refused = here.append(&ctx, one("s", ExpectedVersion::Exact(expected))).await.unwrap_err();
        assert!(matches!(refused, StoreError::Conflict { actual: 3, .. }), "{expected}: {refused:?}");
    }
    assert!(matches!(
        here.append(&ctx, one("any", ExpectedVersion::NoStream)).await.unwrap_err(),
        StoreError::Conflict { actual: 2, .. }
    ));
    // Their event, retried here, is found stored, not written again.
    let again = here
        .append(&ctx, AppendRequest::to_stream(stream("any"), ExpectedVersion::Any, vec![theirs]))
        .await
        .unwrap();
    assert_eq!((again.first_position, again.last_position, again.deduplicated), (5, 5, true));
    // Appends land after theirs, on the stream's stored version.
    let any = here.append(&ctx, one("any", ExpectedVersion::Any)).await.unwrap();
    assert_eq!((any.first_position, any.deduplicated), (6, false));
    assert_eq!(here.stream_version(&ctx, &stream("any")).await.unwrap(), 3);
    let s = here.append(&ctx, one("s", ExpectedVersion::Exact(3))).await.unwrap();
    assert_eq!(s.first_position, 7);
    // Nothing moved meanwhile: an expectation past the stream is refused all the same.
    let refused = here.append(&ctx, one("s", ExpectedVersion::Exact(9))).await.unwrap_err();
    assert!(matches!(refused, StoreError::Conflict { actual: 4, .. }), "{refused:?}");
    here.append(&ctx, one("s", ExpectedVersion::Exact(4))).await.unwrap();
    assert_eq!(positions(here, &ctx).await.len(), 8);

    // A stream only checked (not written), last written here before the other process moved
    // it: an append here in between, on another stream, does not make the old version hold.
    here.append(&ctx, one("checked", ExpectedVersion::NoStream)).await.unwrap();
    there.append(&ctx, one("checked", ExpectedVersion::Exact(1))).await.unwrap();
    here.append(&ctx, one("elsewhere", ExpectedVersion::NoStream)).await.unwrap();
    let checking = |version| {
        one("elsewhere", ExpectedVersion::Exact(1))
            .checking(stream("checked"), ExpectedVersion::Exact(version))
    };
    let refused = here.append(&ctx, checking(1)).await.unwrap_err();
    assert!(matches!(refused, StoreError::Conflict { actual: 2, .. }), "{refused:?}");
    here.append(&ctx, checking(2)).await.unwrap();
    // Known from this process's own commits since: checked against them, still refused.
    let refused = here
        .append(
            &ctx,
            one("elsewhere", ExpectedVersion::Exact(2))
                .checking(stream("checked"), ExpectedVersion::Exact(1)),
        )
        .await
        .unwrap_err();
    assert!(matches!(refused, StoreError::Conflict { actual: 2, .. }), "{refused:?}");
    assert_eq!(positions(here, &ctx).await.len(), 12);

    // A purge there: the tenant's log cannot start again here.
    there.purge_log(&ctx).await.unwrap();
    let refused = here.append(&ctx, one("s", ExpectedVersion::Any)).await.unwrap_err();
    assert!(matches!(refused, StoreError::KeyDestroyed { .. }), "{refused:?}");
    assert!(here.head(&ctx).await.unwrap().is_none(), "nothing written after the purge");
}
