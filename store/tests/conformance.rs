//! One conformance suite, run against both backends: the same test bodies, instantiated by
//! the `conformance!` macro for SQLite (always) and PostgreSQL (when a server answers; with
//! `CI=true` an unreachable server fails the run).

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

#[macro_use]
mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::TryStreamExt;
use rand::Rng;
use support::{Harness, agent_created, new_event, set_column};
use tenantry_domain::codec::{self, types};
use tenantry_domain::event::{AgentCreated, UserAdded};
use tenantry_domain::{AgentId, Event, EventId, Role, StreamId, TenantContext, TenantId, UserId};
use tenantry_store::model::MAX_PAYLOAD_BYTES;
use tenantry_store::{AppendRequest, EventStore, ExpectedVersion, NewEvent, StoreError};

fn tenant() -> TenantContext {
    TenantContext::system(TenantId::new())
}

fn stream(name: &str) -> StreamId {
    name.parse().expect("valid stream")
}

async fn log(store: &EventStore, ctx: &TenantContext) -> Vec<tenantry_store::RecordedEvent> {
    store.read_log(ctx, 0).try_collect().await.expect("log reads")
}

on_both_backends!(
    appends_read_back_in_order,
    expected_versions_are_enforced,
    concurrent_appends_at_one_version_have_one_winner,
    retries_are_idempotent,
    positions_stay_gap_free_under_concurrent_writers_with_rollbacks,
    batches_are_atomic,
    payloads_are_encrypted_and_tampering_is_detected,
    destroyed_keys_make_events_unreadable,
    the_hash_chain_verifies_and_catches_edits,
    old_schema_versions_are_upcast_on_read,
    bad_input_is_a_typed_error_and_writes_nothing,
    tenants_are_isolated,
    personal_data_is_sealed_per_person_and_erased_alone,
    quotas_hold_exactly_under_concurrent_appends,
    commits_are_announced_sealed_as_the_log_holds_them,
    checked_streams_must_stand_still_and_are_not_written,
    a_stored_request_retried_past_its_limit_answers_its_first_result,
    blobs_are_kept_with_their_event_counted_and_isolated,
    data_keys_are_wrapped_by_the_key_wrapper_given,
    a_master_key_rotation_rewraps_every_key_and_resumes,
);

async fn appends_read_back_in_order(store: &EventStore) {
    let ctx = tenant();
    let a = agent_created("alpha");
    let b = agent_created("beta");
    let first = store
        .append(
            &ctx,
            AppendRequest::to_stream(StreamId::tenant(), ExpectedVersion::NoStream, vec![new_event(&a)]),
        )
        .await
        .unwrap();
    assert_eq!((first.first_position, first.last_position, first.deduplicated), (1, 1, false));
    let conv = stream("conversation-1");
    let second = store
        .append(
            &ctx,
            AppendRequest::to_stream(
                conv.clone(),
                ExpectedVersion::NoStream,
                vec![new_event(&b), new_event(&a)],
            ),
        )
        .await
        .unwrap();
    assert_eq!((second.first_position, second.last_position), (2, 3));

    let events = log(store, &ctx).await;
    assert_eq!(events.iter().map(|e| e.position).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(events.iter().map(|e| e.stream_version).collect::<Vec<_>>(), [1, 1, 2]);
    assert_eq!(events[0].event, a);
    assert_eq!(events[1].event, b);
    assert_eq!(events[1].metadata.role, Role::SuperAdmin);
    assert_eq!(events[1].metadata.request_id, ctx.request_id.to_string());
    assert_eq!(events[1].prev_hash, events[0].hash);

    let conv_events: Vec<_> = store.read_stream(&ctx, &conv, 1).try_collect().await.unwrap();
    assert_eq!(conv_events.len(), 1);
    assert_eq!(conv_events[0].position, 3);
    assert_eq!(store.stream_version(&ctx, &conv).await.unwrap(), 2);
    let head = store.head(&ctx).await.unwrap().unwrap();
    assert_eq!(head.position, 3);
    assert_eq!(head.last_hash, events[2].hash);
    let page = store.read_log_page(&ctx, 1, 1).await.unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].position, 2);
}

async fn expected_versions_are_enforced(store: &EventStore) {
    let ctx = tenant();
    let s = stream("agent-x");
    let append = |expected| {
        store
            .append(&ctx, AppendRequest::to_stream(s.clone(), expected, vec![new_event(&agent_created("a"))]))
    };
    assert!(matches!(
        append(ExpectedVersion::Exact(1)).await,
        Err(StoreError::Conflict { expected: ExpectedVersion::Exact(1), actual: 0, .. })
    ));
    append(ExpectedVersion::NoStream).await.unwrap();
    assert!(matches!(
        append(ExpectedVersion::NoStream).await,
        Err(StoreError::Conflict { expected: ExpectedVersion::NoStream, actual: 1, .. })
    ));
    append(ExpectedVersion::Exact(1)).await.unwrap();
    assert!(matches!(
        append(ExpectedVersion::Exact(1)).await,
        Err(StoreError::Conflict { expected: ExpectedVersion::Exact(1), actual: 2, .. })
    ));
    append(ExpectedVersion::Any).await.unwrap();
    assert_eq!(store.stream_version(&ctx, &s).await.unwrap(), 3);
    // Expectations ahead of the stream, with the tenant's head known from its last append:
    // refused, and no version skipped.
    assert!(matches!(
        append(ExpectedVersion::Exact(5)).await,
        Err(StoreError::Conflict { expected: ExpectedVersion::Exact(5), actual: 3, .. })
    ));
    let ahead = store
        .append(
            &ctx,
            AppendRequest::to_stream(
                stream("agent-y"),
                ExpectedVersion::Exact(2),
                vec![new_event(&agent_created("b"))],
            ),
        )
        .await;
    assert!(
        matches!(ahead, Err(StoreError::Conflict { expected: ExpectedVersion::Exact(2), actual: 0, .. })),
        "{ahead:?}"
    );
    assert_eq!(store.stream_version(&ctx, &stream("agent-y")).await.unwrap(), 0);
    append(ExpectedVersion::Exact(3)).await.unwrap();
    let versions: Vec<u64> = log(store, &ctx).await.iter().map(|e| e.stream_version).collect();
    assert_eq!(versions, [1, 2, 3, 4]);
}

async fn concurrent_appends_at_one_version_have_one_winner(store: &EventStore) {
    let ctx = tenant();
    let s = stream("tenant");
    store
        .append(
            &ctx,
            AppendRequest::to_stream(
                s.clone(),
                ExpectedVersion::NoStream,
                vec![new_event(&agent_created("seed"))],
            ),
        )
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..64 {
        let (store, ctx, s) = (store.clone(), ctx.clone(), s.clone());
        tasks.push(tokio::spawn(async move {
            let e = new_event(&agent_created(&format!("racer-{i}")));
            store.append(&ctx, AppendRequest::to_stream(s, ExpectedVersion::Exact(1), vec![e])).await
        }));
    }
    let (mut ok, mut conflicts) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::Conflict { actual: 2, .. }) => conflicts += 1,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!((ok, conflicts), (1, 63));
    let events = log(store, &ctx).await;
    assert_eq!(events.len(), 2, "nothing lost or doubled");
    assert_eq!(store.stream_version(&ctx, &s).await.unwrap(), 2);
}

async fn retries_are_idempotent(store: &EventStore) {
    let ctx = tenant();
    let s = stream("tenant");
    let events = vec![new_event(&agent_created("a")), new_event(&agent_created("b"))];
    let req = AppendRequest::to_stream(s.clone(), ExpectedVersion::NoStream, events.clone());
    let first = store.append(&ctx, req.clone()).await.unwrap();
    // Same event ids again: the first result, nothing written, even though the expected
    // version no longer holds.
    let again = store.append(&ctx, req).await.unwrap();
    assert_eq!((again.first_position, again.last_position, again.deduplicated), (1, 2, true));
    assert!(!first.deduplicated);

    // Idempotency key: same content with fresh event ids returns the first result.
    let keyed = |event: &Event| {
        AppendRequest::to_stream(s.clone(), ExpectedVersion::Any, vec![new_event(event)])
            .with_idempotency_key("cmd-42")
    };
    let c = agent_created("c");
    let k1 = store.append(&ctx, keyed(&c)).await.unwrap();
    let k2 = store.append(&ctx, keyed(&c)).await.unwrap();
    assert_eq!((k1.first_position, k1.deduplicated), (3, false));
    assert_eq!((k2.first_position, k2.last_position, k2.deduplicated), (3, 3, true));
    // Same key, other content: a conflict, nothing written.
    assert!(matches!(
        store.append(&ctx, keyed(&agent_created("c"))).await,
        Err(StoreError::IdempotencyMismatch { key }) if key == "cmd-42"
    ));
    // A batch repeating only some stored ids is refused.
    let partial = vec![events[0].clone(), new_event(&agent_created("new"))];
    assert!(matches!(
        store.append(&ctx, AppendRequest::to_stream(s.clone(), ExpectedVersion::Any, partial)).await,
        Err(StoreError::DuplicateEvent { event_id }) if event_id == events[0].event_id
    ));
    assert_eq!(log(store, &ctx).await.len(), 3);
}

async fn positions_stay_gap_free_under_concurrent_writers_with_rollbacks(store: &EventStore) {
    let ctx = tenant();
    let seed = new_event(&agent_created("seed"));
    store
        .append(&ctx, AppendRequest::to_stream(stream("seed"), ExpectedVersion::NoStream, vec![seed.clone()]))
        .await
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    // A reader that checks, over and over while writers run, that every prefix it sees is
    // 1..=N with no hole.
    let reader = {
        let (store, ctx, done) = (store.clone(), ctx.clone(), done.clone());
        tokio::spawn(async move {
            let mut reads = 0u32;
            while !done.load(Ordering::Relaxed) || reads == 0 {
                let events = log(&store, &ctx).await;
                for (i, e) in events.iter().enumerate() {
                    assert_eq!(e.position, i as u64 + 1, "hole in the log");
                }
                reads += 1;
                tokio::task::yield_now().await;
            }
            reads
        })
    };
    let mut writers = Vec::new();
    for w in 0..16 {
        let (store, ctx, seed) = (store.clone(), ctx.clone(), seed.clone());
        writers.push(tokio::spawn(async move {
            let s = stream(&format!("writer-{w}"));
            let mut written = 0u64;
            for _ in 0..15 {
                let roll = rand::thread_rng().gen_range(0..3);
                let size = rand::thread_rng().gen_range(1..4);
                let mut events: Vec<NewEvent> =
                    (0..size).map(|i| new_event(&agent_created(&format!("w{w}-{i}")))).collect();
                let expected = match roll {
                    // A wrong expected version: refused before anything is inserted.
                    0 => ExpectedVersion::Exact(written + 100),
                    // A stored event id at the end of the batch: the database rolls the
                    // transaction back after inserting the first rows.
                    1 => {
                        events.push(seed.clone());
                        ExpectedVersion::after(written)
                    }
                    _ => ExpectedVersion::after(written),
                };
                match store.append(&ctx, AppendRequest::to_stream(s.clone(), expected, events)).await {
                    Ok(_) => written += size,
                    Err(StoreError::Conflict { .. } | StoreError::DuplicateEvent { .. }) => {}
                    Err(e) => panic!("unexpected error: {e}"),
                }
            }
            written
        }));
    }
    let mut total = 1;
    for w in writers {
        total += w.await.unwrap();
    }
    done.store(true, Ordering::Relaxed);
    assert!(reader.await.unwrap() > 0);
    let events = log(store, &ctx).await;
    assert_eq!(events.iter().map(|e| e.position).collect::<Vec<_>>(), (1..=total).collect::<Vec<_>>());
    assert_eq!(store.head(&ctx).await.unwrap().unwrap().position, total);
    store.verify_chain(&ctx, 1, None).await.unwrap();
}

async fn batches_are_atomic(store: &EventStore) {
    let ctx = tenant();
    let a = stream("a");
    let b = stream("b");
    store
        .append(
            &ctx,
            AppendRequest::to_stream(
                b.clone(),
                ExpectedVersion::NoStream,
                vec![new_event(&agent_created("b0"))],
            ),
        )
        .await
        .unwrap();
    // Two streams in one append: the second expectation fails, so the first lands neither.
    let request =
        AppendRequest::to_stream(a.clone(), ExpectedVersion::NoStream, vec![new_event(&agent_created("a1"))])
            .and(b.clone(), ExpectedVersion::NoStream, vec![new_event(&agent_created("b1"))]);
    assert!(matches!(store.append(&ctx, request).await, Err(StoreError::Conflict { actual: 1, .. })));
    assert_eq!(store.stream_version(&ctx, &a).await.unwrap(), 0);
    // The same with the right expectation lands in both, atomically and contiguously.
    let request =
        AppendRequest::to_stream(a.clone(), ExpectedVersion::NoStream, vec![new_event(&agent_created("a1"))])
            .and(
                b.clone(),
                ExpectedVersion::Exact(1),
                vec![new_event(&agent_created("b1")), new_event(&agent_created("b2"))],
            );
    let out = store.append(&ctx, request).await.unwrap();
    assert_eq!((out.first_position, out.last_position), (2, 4));
    assert_eq!(store.stream_version(&ctx, &a).await.unwrap(), 1);
    assert_eq!(store.stream_version(&ctx, &b).await.unwrap(), 3);
    // 100 events where the last repeats a stored id: none of the 99 others remain.
    let stored = log(store, &ctx).await[0].event_id;
    let mut events: Vec<NewEvent> = (0..99).map(|i| new_event(&agent_created(&format!("x{i}")))).collect();
    let mut dup = new_event(&agent_created("dup"));
    dup.event_id = stored;
    events.push(dup);
    assert!(
        store.append(&ctx, AppendRequest::to_stream(a.clone(), ExpectedVersion::Any, events)).await.is_err()
    );
    assert_eq!(log(store, &ctx).await.len(), 4);
    assert_eq!(store.head(&ctx).await.unwrap().unwrap().position, 4);
    assert_eq!(store.stream_version(&ctx, &a).await.unwrap(), 1);
}

async fn payloads_are_encrypted_and_tampering_is_detected(store: &EventStore) {
    let ctx = tenant();
    let canary = "canary-7f3a9c-secret-prompt";
    let event = Event::AgentCreated(AgentCreated {
        agent_id: AgentId::new(),
        name: "n".into(),
        model: "m".into(),
        system_prompt: canary.into(),
        tool_ids: vec![],
    });
    let s = stream("tenant");
    let events =
        vec![new_event(&event), new_event(&agent_created("other")), new_event(&agent_created("third"))];
    store.append(&ctx, AppendRequest::to_stream(s, ExpectedVersion::NoStream, events)).await.unwrap();
    let read = log(store, &ctx).await;
    assert_eq!(read[0].event, event, "round trip");
    let raw = support::raw_payloads(store, ctx.tenant_id).await;
    assert_eq!(raw.len(), 3);
    assert!(!raw[0].windows(canary.len()).any(|w| w == canary.as_bytes()), "plaintext must not be stored");
    // One flipped bit: the ciphertext no longer authenticates, and the chain breaks there.
    let mut flipped = raw[1].clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    set_column(store, ctx.tenant_id, 2, "payload", flipped).await;
    assert!(matches!(
        store.read_log(&ctx, 0).try_collect::<Vec<_>>().await,
        Err(StoreError::Tampered { position: 2, .. })
    ));
    assert!(matches!(
        store.verify_chain(&ctx, 1, None).await,
        Err(StoreError::ChainBroken { position: 2, .. })
    ));
    // A valid ciphertext moved to another event does not open either (bound to its event).
    set_column(store, ctx.tenant_id, 3, "payload", raw[0].clone()).await;
    assert!(matches!(store.read_log_page(&ctx, 2, 10).await, Err(StoreError::Tampered { position: 3, .. })));
}

async fn destroyed_keys_make_events_unreadable(store: &EventStore) {
    let ctx = tenant();
    let other = tenant();
    for c in [&ctx, &other] {
        store
            .append(
                c,
                AppendRequest::to_stream(
                    StreamId::tenant(),
                    ExpectedVersion::Any,
                    vec![new_event(&agent_created("a"))],
                ),
            )
            .await
            .unwrap();
    }
    store.destroy_key(&ctx).await.unwrap();
    assert!(matches!(
        store.read_log(&ctx, 0).try_collect::<Vec<_>>().await,
        Err(StoreError::KeyDestroyed { tenant }) if tenant == ctx.tenant_id
    ));
    // No new key is minted for a shredded tenant.
    assert!(matches!(
        store
            .append(
                &ctx,
                AppendRequest::to_stream(
                    StreamId::tenant(),
                    ExpectedVersion::Any,
                    vec![new_event(&agent_created("b"))]
                )
            )
            .await,
        Err(StoreError::KeyDestroyed { .. })
    ));
    // The chain is over ciphertext: it still verifies without the key.
    assert_eq!(store.verify_chain(&ctx, 1, None).await.unwrap().events, 1);
    // Destroying twice is harmless; the other tenant is untouched.
    store.destroy_key(&ctx).await.unwrap();
    assert_eq!(log(store, &other).await.len(), 1);
}

async fn the_hash_chain_verifies_and_catches_edits(store: &EventStore) {
    let ctx = tenant();
    for batch in 0..21 {
        let events = (0..100).map(|i| new_event(&agent_created(&format!("{batch}-{i}")))).collect();
        store
            .append(&ctx, AppendRequest::to_stream(stream("s"), ExpectedVersion::Any, events))
            .await
            .unwrap();
    }
    // 2,100 events: more than one read page.
    let events = log(store, &ctx).await;
    assert_eq!(events.len(), 2100);
    let report = store.verify_chain(&ctx, 1, None).await.unwrap();
    assert_eq!((report.first_position, report.last_position, report.events), (1, 2100, 2100));
    assert_eq!(report.last_hash, events[2099].hash);
    let part = store.verify_chain(&ctx, 500, Some(700)).await.unwrap();
    assert_eq!((part.first_position, part.last_position, part.events), (500, 700, 201));

    // An edit of any covered field.
    set_column(store, ctx.tenant_id, 1000, "recorded_at", 1i64).await;
    assert!(matches!(
        store.verify_chain(&ctx, 1, None).await,
        Err(StoreError::ChainBroken { position: 1000, .. })
    ));
    // A deleted event is a hole.
    support::delete_event(store, ctx.tenant_id, 1500).await;
    assert!(matches!(
        store.verify_chain(&ctx, 1200, None).await,
        Err(StoreError::ChainBroken { position: 1500, .. })
    ));
    // Truncating the tail is caught against the head.
    support::delete_event(store, ctx.tenant_id, 2100).await;
    assert!(matches!(
        store.verify_chain(&ctx, 1600, None).await,
        Err(StoreError::ChainBroken { position: 2100, .. })
    ));
}

async fn old_schema_versions_are_upcast_on_read(store: &EventStore) {
    let ctx = tenant();
    let agent_id = AgentId::new();
    let v1 = codec::v1::AgentCreated {
        agent_id,
        name: "legacy".into(),
        model: "m1".into(),
        system_prompt: "p".into(),
    };
    let old =
        NewEvent::encoded(EventId::new(), types::AgentCreated, 1, codec::to_bytes(&v1).unwrap()).unwrap();
    store
        .append(&ctx, AppendRequest::to_stream(StreamId::tenant(), ExpectedVersion::NoStream, vec![old]))
        .await
        .unwrap();
    let events = log(store, &ctx).await;
    assert_eq!(events[0].schema_version, 1, "stored bytes keep their version");
    assert_eq!(
        events[0].event,
        Event::AgentCreated(AgentCreated {
            agent_id,
            name: "legacy".into(),
            model: "m1".into(),
            system_prompt: "p".into(),
            tool_ids: vec![]
        })
    );
}

async fn bad_input_is_a_typed_error_and_writes_nothing(store: &EventStore) {
    let ctx = tenant();
    let s = StreamId::tenant();
    assert!(matches!(
        store.append(&ctx, AppendRequest::to_stream(s.clone(), ExpectedVersion::Any, vec![])).await,
        Err(StoreError::EmptyBatch)
    ));
    let huge = NewEvent {
        event_id: EventId::new(),
        event_type: types::UserAdded.into(),
        schema_version: 1,
        payload: vec![0; MAX_PAYLOAD_BYTES + 1],
        personal: None,
    };
    assert!(matches!(
        store
            .append(&ctx, AppendRequest::to_stream(s.clone(), ExpectedVersion::Any, vec![huge.clone()]))
            .await,
        Err(StoreError::PayloadTooLarge { .. })
    ));
    assert!(matches!(
        NewEvent::encoded(EventId::new(), types::UserAdded, 1, huge.payload),
        Err(StoreError::PayloadTooLarge { .. })
    ));
    let unknown = NewEvent {
        event_id: EventId::new(),
        event_type: "agent.exploded".into(),
        schema_version: 1,
        payload: vec![],
        personal: None,
    };
    assert!(matches!(
        store.append(&ctx, AppendRequest::to_stream(s.clone(), ExpectedVersion::Any, vec![unknown])).await,
        Err(StoreError::Encode(_))
    ));
    let malformed = NewEvent {
        event_id: EventId::new(),
        event_type: types::UserAdded.into(),
        schema_version: 1,
        payload: vec![0xff; 3],
        personal: None,
    };
    assert!(matches!(
        store.append(&ctx, AppendRequest::to_stream(s.clone(), ExpectedVersion::Any, vec![malformed])).await,
        Err(StoreError::Encode(_))
    ));
    assert!(matches!(
        "x".repeat(201).parse::<StreamId>(),
        Err(tenantry_domain::ids::IdError::StreamTooLong { .. })
    ));
    assert!(matches!(
        store
            .append(
                &ctx,
                AppendRequest::to_stream(
                    s.clone(),
                    ExpectedVersion::Any,
                    vec![new_event(&agent_created("a"))]
                )
                .with_idempotency_key("")
            )
            .await,
        Err(StoreError::InvalidIdempotencyKey)
    ));
    assert!(store.head(&ctx).await.unwrap().is_none(), "nothing written");

    // A stored event whose type this build does not know: a typed error naming its position.
    let user = Event::UserAdded(UserAdded {
        user_id: UserId::new(),
        email: "a@b.co".into(),
        role: Role::User,
        identity: None,
    });
    store
        .append(&ctx, AppendRequest::to_stream(s, ExpectedVersion::Any, vec![new_event(&user)]))
        .await
        .unwrap();
    set_column(store, ctx.tenant_id, 1, "event_type", "user.teleported".to_owned()).await;
    match store.read_log_page(&ctx, 0, 10).await {
        Err(StoreError::Codec { position: 1, source: codec::CodecError::UnknownEventType(t), .. }) => {
            assert_eq!(t, "user.teleported")
        }
        other => panic!("expected a codec error, got {other:?}"),
    }
}

async fn tenants_are_isolated(store: &EventStore) {
    let a = tenant();
    let b = tenant();
    for (ctx, n) in [(&a, 3), (&b, 2)] {
        for i in 0..n {
            store
                .append(
                    ctx,
                    AppendRequest::to_stream(
                        StreamId::tenant(),
                        ExpectedVersion::after(i),
                        vec![new_event(&agent_created("x"))],
                    ),
                )
                .await
                .unwrap();
        }
    }
    // Each tenant has its own positions and its own `tenant` stream.
    assert_eq!(log(store, &a).await.iter().map(|e| e.position).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(log(store, &b).await.iter().map(|e| e.position).collect::<Vec<_>>(), [1, 2]);
    assert!(log(store, &b).await.iter().all(|e| e.tenant_id == b.tenant_id));
    // An event id of tenant A is no duplicate for tenant B.
    let shared_id = log(store, &a).await[0].event_id;
    let mut e = new_event(&agent_created("y"));
    e.event_id = shared_id;
    let out = store
        .append(&b, AppendRequest::to_stream(StreamId::tenant(), ExpectedVersion::Any, vec![e]))
        .await
        .unwrap();
    assert_eq!((out.last_position, out.deduplicated), (3, false));
    let heads: BTreeSet<_> = store.tenant_heads(None, 1000).await.unwrap().into_iter().collect();
    assert!(heads.contains(&(a.tenant_id, 3)) && heads.contains(&(b.tenant_id, 3)));
}

async fn personal_data_is_sealed_per_person_and_erased_alone(store: &EventStore) {
    use tenantry_domain::event::{MessageAppended, MessageRole, TokenUsage, UserErased};
    use tenantry_domain::{ConversationId, MessageId, Personal};
    let ctx = tenant();
    let (ann, bob) = (UserId::new(), UserId::new());
    let conversation = ConversationId::new();
    let users = vec![
        new_event(&Event::UserAdded(UserAdded {
            user_id: ann,
            email: "ann@x.example".into(),
            role: Role::User,
            identity: None,
        })),
        new_event(&Event::UserAdded(UserAdded {
            user_id: bob,
            email: "bob@x.example".into(),
            role: Role::User,
            identity: None,
        })),
    ];
    let message = |author: UserId, text: &str| {
        Event::MessageAppended(MessageAppended {
            conversation_id: conversation,
            message_id: MessageId::new(),
            role: MessageRole::User,
            content: text.into(),
            model: Some("m".into()),
            usage: Some(TokenUsage { prompt_tokens: 3, completion_tokens: 4 }),
            author: Some(author),
        })
    };
    let chat = vec![new_event(&message(ann, "ann writes")), new_event(&message(bob, "bob writes"))];
    store
        .append(&ctx, AppendRequest::to_stream(StreamId::tenant(), ExpectedVersion::Any, users))
        .await
        .unwrap();
    // A retry of a request with personal data is recognised: the idempotency hash is taken
    // over the plain values, not over what sealing (with fresh nonces) makes of them.
    let request = AppendRequest::to_stream(stream("conversation-1"), ExpectedVersion::Any, chat.clone())
        .with_idempotency_key("chat-1");
    let first = store.append(&ctx, request.clone()).await.unwrap();
    let retried = store.append(&ctx, request).await.unwrap();
    assert!(retried.deduplicated && retried.last_position == first.last_position);

    let texts = |log: &[tenantry_store::RecordedEvent]| -> Vec<String> {
        log.iter()
            .map(|e| match &e.event {
                Event::UserAdded(u) => u.email.to_string(),
                Event::MessageAppended(m) => m.content.to_string(),
                other => other.event_type().to_owned(),
            })
            .collect()
    };
    let before = log(store, &ctx).await;
    assert_eq!(texts(&before), ["ann@x.example", "bob@x.example", "ann writes", "bob writes"]);
    assert!(
        before.iter().all(|e| e
            .event
            .clone()
            .personal_mut()
            .iter()
            .all(|(_, p)| matches!(p, Personal::Text(_))))
    );

    store.erase_subject(&ctx, ann).await.unwrap();
    store
        .append(
            &ctx,
            AppendRequest::to_stream(
                StreamId::tenant(),
                ExpectedVersion::Any,
                vec![new_event(&Event::UserErased(UserErased { user_id: ann }))],
            ),
        )
        .await
        .unwrap();
    // Something about ann written after her erasure is not kept at all.
    store
        .append(
            &ctx,
            AppendRequest::to_stream(
                stream("conversation-1"),
                ExpectedVersion::Any,
                vec![new_event(&message(ann, "late"))],
            ),
        )
        .await
        .unwrap();
    let after = log(store, &ctx).await;
    assert_eq!(
        texts(&after),
        ["[erased]", "bob@x.example", "[erased]", "bob writes", "user.erased", "[erased]"]
    );
    // Everything else of the events stays: usage, ids, positions, the hash chain.
    for (b, a) in before.iter().zip(&after) {
        assert_eq!((b.position, b.event_id, b.hash), (a.position, a.event_id, a.hash));
        if let (Event::MessageAppended(b), Event::MessageAppended(a)) = (&b.event, &a.event) {
            assert_eq!((b.usage, b.author, b.message_id), (a.usage, a.author, a.message_id));
        }
    }
    let report = store.verify_chain(&ctx, 1, None).await.unwrap();
    assert_eq!(report.events, 6);
    // Another tenant's person with the same id is untouched.
    let other = tenant();
    store
        .append(
            &other,
            AppendRequest::to_stream(
                StreamId::tenant(),
                ExpectedVersion::Any,
                vec![new_event(&Event::UserAdded(UserAdded {
                    user_id: ann,
                    email: "ann@y.example".into(),
                    role: Role::User,
                    identity: None,
                }))],
            ),
        )
        .await
        .unwrap();
    assert_eq!(texts(&log(store, &other).await), ["ann@y.example"]);
}

async fn quotas_hold_exactly_under_concurrent_appends(store: &EventStore) {
    use tenantry_store::AppendQuota;
    let ctx = tenant();
    let quota = |day, calls| AppendQuota {
        max_stored_bytes: u64::MAX,
        max_calls_per_day: calls,
        day,
        counts_as_call: true,
    };
    // 20 racing calls against a daily limit of 5: exactly 5 land.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (store, ctx) = (store.clone(), ctx.clone());
        tasks.push(tokio::spawn(async move {
            let request = AppendRequest::to_stream(
                stream(&format!("agent-{i}")),
                ExpectedVersion::Any,
                vec![new_event(&agent_created("a"))],
            )
            .with_quota(quota(20_000, 5));
            store.append(&ctx, request).await
        }));
    }
    let mut landed = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => landed += 1,
            Err(StoreError::QuotaExceeded { limit: "api_calls_per_day", max: 5 }) => {}
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!(landed, 5);
    assert_eq!(log(store, &ctx).await.len(), 5, "refused appends wrote nothing");
    // Work that is no call (platform work, audit records) is not counted; the next day is new.
    let free = AppendQuota { counts_as_call: false, ..quota(20_000, 5) };
    store
        .append(
            &ctx,
            AppendRequest::to_stream(
                stream("audit"),
                ExpectedVersion::Any,
                vec![new_event(&agent_created("x"))],
            )
            .with_quota(free),
        )
        .await
        .unwrap();
    store
        .append(
            &ctx,
            AppendRequest::to_stream(
                stream("agent-x"),
                ExpectedVersion::Any,
                vec![new_event(&agent_created("y"))],
            )
            .with_quota(quota(20_001, 5)),
        )
        .await
        .unwrap();

    // Stored bytes: appends stop at the limit, whatever their size, and refused ones store nothing.
    let other = tenant();
    let big = |name: &str| new_event(&agent_created(&name.repeat(100)));
    store
        .append(&other, AppendRequest::to_stream(stream("s"), ExpectedVersion::Any, vec![big("a")]))
        .await
        .unwrap();
    let size = log(store, &other).await[0].payload_bytes;
    let limit = AppendQuota {
        max_stored_bytes: size * 3 + size / 2,
        max_calls_per_day: u64::MAX,
        day: 1,
        counts_as_call: true,
    };
    for _ in 0..2 {
        store
            .append(
                &other,
                AppendRequest::to_stream(stream("s"), ExpectedVersion::Any, vec![big("a")]).with_quota(limit),
            )
            .await
            .unwrap();
    }
    let refused = store
        .append(
            &other,
            AppendRequest::to_stream(stream("s"), ExpectedVersion::Any, vec![big("a")]).with_quota(limit),
        )
        .await
        .unwrap_err();
    assert!(matches!(refused, StoreError::QuotaExceeded { limit: "storage_bytes", .. }), "{refused}");
    assert_eq!(log(store, &other).await.len(), 3);
}

/// The relay publishes this process's commits from memory instead of reading them back: what
/// is announced must be exactly what the log holds, position for position and byte for byte;
/// retries and refused appends announce nothing.
async fn commits_are_announced_sealed_as_the_log_holds_them(store: &EventStore) {
    let (ctx, other) = (tenant(), tenant());
    let mut sealed = store.subscribe_sealed();
    let conv = stream("conversation-9");
    let first = vec![new_event(&agent_created("a")), new_event(&agent_created("b"))];
    let retry = first.clone();
    store
        .append(&ctx, AppendRequest::to_stream(conv.clone(), ExpectedVersion::NoStream, first))
        .await
        .unwrap();
    store
        .append(
            &other,
            AppendRequest::to_stream(
                StreamId::tenant(),
                ExpectedVersion::Any,
                vec![new_event(&agent_created("c"))],
            ),
        )
        .await
        .unwrap();
    let retried = store
        .append(&ctx, AppendRequest::to_stream(conv.clone(), ExpectedVersion::NoStream, retry))
        .await
        .unwrap();
    assert!(retried.deduplicated);
    let refused = store
        .append(
            &ctx,
            AppendRequest::to_stream(
                conv.clone(),
                ExpectedVersion::NoStream,
                vec![new_event(&agent_created("d"))],
            ),
        )
        .await;
    assert!(matches!(refused, Err(StoreError::Conflict { .. })));
    store
        .append(
            &ctx,
            AppendRequest::to_stream(
                StreamId::tenant(),
                ExpectedVersion::Any,
                vec![new_event(&agent_created("e"))],
            ),
        )
        .await
        .unwrap();

    let mut announced = Vec::new();
    while let Ok(commit) = sealed.try_recv() {
        announced.push(commit);
    }
    assert_eq!(
        announced.iter().map(|c| c.tenant_id).collect::<Vec<_>>(),
        [ctx.tenant_id, other.tenant_id, ctx.tenant_id]
    );
    for who in [&ctx, &other] {
        let from_memory: Vec<_> = announced
            .iter()
            .filter(|c| c.tenant_id == who.tenant_id)
            .flat_map(|c| c.events.clone())
            .collect();
        assert_eq!(from_memory, store.read_sealed_page(who, 0, 100).await.unwrap());
    }
    assert_eq!(announced[0].events.iter().map(|e| e.position).collect::<Vec<_>>(), [1, 2]);
}

async fn checked_streams_must_stand_still_and_are_not_written(store: &EventStore) {
    let ctx = tenant();
    let (decided_on, written, absent) = (stream("tenant"), stream("conversation-1"), stream("agent-9"));
    let one = |s: &StreamId, expected| {
        AppendRequest::to_stream(s.clone(), expected, vec![new_event(&agent_created("a"))])
    };
    store.append(&ctx, one(&decided_on, ExpectedVersion::NoStream)).await.unwrap();

    // Both checks hold: the event is written, the checked streams are left as they were.
    let outcome = store
        .append(
            &ctx,
            one(&written, ExpectedVersion::NoStream)
                .checking(decided_on.clone(), ExpectedVersion::Exact(1))
                .checking(absent.clone(), ExpectedVersion::NoStream),
        )
        .await
        .unwrap();
    assert_eq!((outcome.first_position, outcome.last_position), (2, 2));
    assert_eq!(store.stream_version(&ctx, &decided_on).await.unwrap(), 1);
    assert_eq!(store.stream_version(&ctx, &written).await.unwrap(), 1);
    assert_eq!(store.stream_version(&ctx, &absent).await.unwrap(), 0);
    let streams: Vec<_> = log(store, &ctx).await.iter().map(|e| e.stream_id.clone()).collect();
    assert_eq!(streams, [decided_on.as_str(), written.as_str()]);

    // The checked stream moves on: a decision taken on its old version is refused whole.
    store.append(&ctx, one(&decided_on, ExpectedVersion::Exact(1))).await.unwrap();
    let stale = store
        .append(
            &ctx,
            one(&written, ExpectedVersion::Exact(1)).checking(decided_on.clone(), ExpectedVersion::Exact(1)),
        )
        .await;
    assert!(
        matches!(&stale, Err(StoreError::Conflict { stream, expected: ExpectedVersion::Exact(1), actual: 2 }) if *stream == decided_on),
        "{stale:?}"
    );
    assert_eq!(store.stream_version(&ctx, &written).await.unwrap(), 1);
    assert_eq!(log(store, &ctx).await.len(), 3);

    // A stream that was only ever checked can still be created as new.
    store.append(&ctx, one(&absent, ExpectedVersion::NoStream)).await.unwrap();
    assert_eq!(store.stream_version(&ctx, &absent).await.unwrap(), 1);
}

async fn a_stored_request_retried_past_its_limit_answers_its_first_result(store: &EventStore) {
    use tenantry_store::AppendQuota;
    let ctx = tenant();
    let one_call =
        AppendQuota { max_stored_bytes: u64::MAX, max_calls_per_day: 1, day: 7, counts_as_call: true };
    // A client retrying a command mints new event ids; the key is what stays.
    let charge = agent_created("a");
    let request = || {
        AppendRequest::to_stream(stream("usage-2026-11"), ExpectedVersion::Any, vec![new_event(&charge)])
            .with_idempotency_key("charge-1")
            .with_quota(one_call)
    };
    let first = store.append(&ctx, request()).await.unwrap();
    let retried = store.append(&ctx, request()).await.unwrap();
    assert_eq!((retried.first_position, retried.last_position), (first.first_position, first.last_position));
    assert!(retried.deduplicated);
    // Another request is refused: the day's one call is spent.
    let other = store
        .append(
            &ctx,
            AppendRequest::to_stream(
                stream("usage-2026-11"),
                ExpectedVersion::Any,
                vec![new_event(&agent_created("b"))],
            )
            .with_idempotency_key("charge-2")
            .with_quota(one_call),
        )
        .await;
    assert!(
        matches!(other, Err(StoreError::QuotaExceeded { limit: "api_calls_per_day", max: 1 })),
        "{other:?}"
    );
    assert_eq!(log(store, &ctx).await.len(), 1);
}

/// A body kept beside the log is written exactly when its event is, sealed, readable only by
/// its tenant, counted toward stored bytes exactly under racing writers, freed on delete, and
/// gone with the tenant's log.
async fn blobs_are_kept_with_their_event_counted_and_isolated(store: &EventStore) {
    use tenantry_store::{AppendQuota, BlobWrite};
    let (ctx, other) = (tenant(), tenant());
    let id = uuid::Uuid::new_v4();
    let body = b"the canary body ZQXJ-BLOB".repeat(40);
    store
        .append(
            &ctx,
            AppendRequest::to_stream(
                stream("document-1"),
                ExpectedVersion::NoStream,
                vec![new_event(&agent_created("d"))],
            )
            .with_blob(BlobWrite::Put { id, body: body.clone() }),
        )
        .await
        .unwrap();
    assert_eq!(store.read_blob(&ctx, id).await.unwrap(), Some(body.clone()));
    assert_eq!(store.read_blob(&other, id).await.unwrap(), None, "another tenant reads nothing");

    // A refused append (version conflict) keeps no body.
    let lost = uuid::Uuid::new_v4();
    let refused = store
        .append(
            &ctx,
            AppendRequest::to_stream(
                stream("document-1"),
                ExpectedVersion::NoStream,
                vec![new_event(&agent_created("e"))],
            )
            .with_blob(BlobWrite::Put { id: lost, body: body.clone() }),
        )
        .await;
    assert!(matches!(refused, Err(StoreError::Conflict { .. })), "{refused:?}");
    assert_eq!(store.read_blob(&ctx, lost).await.unwrap(), None);

    // Racing uploads: the limit holds exactly, counting bodies with events.
    let racer = tenant();
    let chunk = vec![b'x'; 10_000];
    let limit =
        AppendQuota { max_stored_bytes: 55_000, max_calls_per_day: u64::MAX, day: 1, counts_as_call: false };
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let (store, racer, chunk) = (store.clone(), racer.clone(), chunk.clone());
            tokio::spawn(async move {
                store
                    .append(
                        &racer,
                        AppendRequest::to_stream(
                            stream(&format!("document-r{i}")),
                            ExpectedVersion::NoStream,
                            vec![new_event(&agent_created("r"))],
                        )
                        .with_blob(BlobWrite::Put { id: uuid::Uuid::new_v4(), body: chunk })
                        .with_quota(limit),
                    )
                    .await
            })
        })
        .collect();
    let mut kept = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => kept += 1,
            Err(StoreError::QuotaExceeded { limit: "storage_bytes", .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    let events: u64 = log(store, &racer).await.iter().map(|e| e.payload_bytes).sum();
    assert_eq!(kept, log(store, &racer).await.len());
    assert!(kept * 10_000 + events as usize <= 55_000, "{kept} kept");
    assert!(kept * 10_000 + events as usize + 10_000 + 200 > 55_000, "a body that fit was refused: {kept}");

    // A delete frees the bytes, and is allowed even over the limit.
    let first = store.head(&racer).await.unwrap().map(|h| h.position).unwrap();
    assert!(first > 0);
    let tight = AppendQuota { max_stored_bytes: 1, ..limit };
    let blob_of_racer = uuid::Uuid::new_v4();
    let big = store
        .append(
            &racer,
            AppendRequest::to_stream(
                stream("document-x"),
                ExpectedVersion::Any,
                vec![new_event(&agent_created("x"))],
            )
            .with_blob(BlobWrite::Put { id: blob_of_racer, body: chunk.clone() })
            .with_quota(tight),
        )
        .await;
    assert!(matches!(big, Err(StoreError::QuotaExceeded { .. })), "{big:?}");
    store
        .append(
            &ctx,
            AppendRequest::to_stream(
                stream("document-1"),
                ExpectedVersion::Any,
                vec![new_event(&agent_created("gone"))],
            )
            .with_blob(BlobWrite::Delete { id })
            .with_quota(tight),
        )
        .await
        .unwrap();
    assert_eq!(store.read_blob(&ctx, id).await.unwrap(), None);

    // The purge takes the bodies with the log.
    let kept_id = uuid::Uuid::new_v4();
    store
        .append(
            &other,
            AppendRequest::to_stream(
                stream("document-2"),
                ExpectedVersion::Any,
                vec![new_event(&agent_created("k"))],
            )
            .with_blob(BlobWrite::Put { id: kept_id, body: body.clone() }),
        )
        .await
        .unwrap();
    assert_eq!(support::blob_rows(store, other.tenant_id).await, 1);
    store.purge_log(&other).await.unwrap();
    assert_eq!(support::blob_rows(store, other.tenant_id).await, 0);
    assert_eq!(support::blob_rows(store, ctx.tenant_id).await, 0, "the deleted body's row is gone");
}

/// A key wrapper of the test's: the local master key's, counting its calls.
struct Counting {
    inner: tenantry_store::LocalKeyWrapper,
    wraps: std::sync::atomic::AtomicUsize,
    unwraps: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl tenantry_store::KeyWrapper for Counting {
    async fn wrap(&self, key: &[u8], context: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.wraps.fetch_add(1, Ordering::SeqCst);
        self.inner.wrap(key, context).await
    }

    async fn unwrap(
        &self,
        wrapped: &[u8],
        context: &[u8],
    ) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, StoreError> {
        self.unwraps.fetch_add(1, Ordering::SeqCst);
        self.inner.unwrap(wrapped, context).await
    }
}

/// The store wraps every data key with the wrapper it is given (a KMS could be one): a key
/// per tenant and per person, unwrapped once and cached; a store with another wrapper reads
/// none of it.
async fn data_keys_are_wrapped_by_the_key_wrapper_given(store: &EventStore) {
    let counting = Arc::new(Counting {
        inner: tenantry_store::LocalKeyWrapper::new(&tenantry_store::MasterKey::generate()),
        wraps: Default::default(),
        unwraps: Default::default(),
    });
    let wrapped = store.clone().with_key_wrapper(counting.clone());
    let (a, b) = (tenant(), tenant());
    for ctx in [&a, &b, &a] {
        wrapped
            .append(
                ctx,
                AppendRequest::to_stream(
                    stream("s"),
                    ExpectedVersion::Any,
                    vec![new_event(&agent_created("x"))],
                ),
            )
            .await
            .unwrap();
    }
    assert_eq!(counting.wraps.load(Ordering::SeqCst), 2, "one data key per tenant");
    assert_eq!(log(&wrapped, &a).await.len(), 2);
    // Another store (the master key of the harness) cannot unwrap these keys.
    let other = store.clone();
    let refused = other.read_log(&a, 0).try_collect::<Vec<_>>().await;
    assert!(matches!(refused, Err(StoreError::WrongMasterKey { .. })), "{refused:?}");
}

/// Rotating the master key: every tenant's and person's key is wrapped anew, a run again does
/// nothing more, the new key reads everything, the old one nothing; destroyed keys stay
/// destroyed.
async fn a_master_key_rotation_rewraps_every_key_and_resumes(store: &EventStore) {
    use tenantry_store::{LocalKeyWrapper, MasterKey};
    let (old, new) = (MasterKey::generate(), MasterKey::generate());
    let before = store.clone().with_key_wrapper(Arc::new(LocalKeyWrapper::new(&old)));
    let tenants: Vec<TenantContext> = (0..3).map(|_| tenant()).collect();
    for ctx in &tenants {
        let user = UserId::new();
        let added = Event::UserAdded(UserAdded {
            user_id: user,
            email: "p@x.example".to_owned().into(),
            role: Role::User,
            identity: None,
        });
        before
            .append(
                ctx,
                AppendRequest::to_stream(
                    stream("tenant"),
                    ExpectedVersion::Any,
                    vec![NewEvent::new(EventId::new(), &added).unwrap()],
                ),
            )
            .await
            .unwrap();
    }
    let gone = tenant();
    before
        .append(
            &gone,
            AppendRequest::to_stream(stream("s"), ExpectedVersion::Any, vec![new_event(&agent_created("g"))]),
        )
        .await
        .unwrap();
    before.destroy_key(&gone).await.unwrap();

    let mut seen = 0;
    let report = before.rewrap_keys(&LocalKeyWrapper::new(&new), &mut |n| seen = n).await.unwrap();
    assert!(report.rewrapped >= 6, "3 tenant keys and 3 person keys at least: {report:?}");
    assert_eq!(seen, report.seen());
    let again = before.rewrap_keys(&LocalKeyWrapper::new(&new), &mut |_| {}).await.unwrap();
    assert_eq!(again.rewrapped, 0, "a second run has nothing left to do: {again:?}");
    assert!(again.already >= 6);

    let after = store.clone().with_key_wrapper(Arc::new(LocalKeyWrapper::new(&new)));
    for ctx in &tenants {
        let events = log(&after, ctx).await;
        let texts: Vec<String> = events
            .iter()
            .filter_map(|e| match &e.event {
                Event::UserAdded(u) => Some(u.email.as_str().to_owned()),
                _ => None,
            })
            .collect();
        assert_eq!(texts, ["p@x.example"], "the person's key unwraps with the new master key too");
    }
    let stale = store.clone().with_key_wrapper(Arc::new(LocalKeyWrapper::new(&old)));
    let refused = stale.read_log(&tenants[0], 0).try_collect::<Vec<_>>().await;
    assert!(matches!(refused, Err(StoreError::WrongMasterKey { .. })), "{refused:?}");
    let destroyed = after.read_log(&gone, 0).try_collect::<Vec<_>>().await;
    assert!(matches!(destroyed, Err(StoreError::KeyDestroyed { .. })), "{destroyed:?}");
}
