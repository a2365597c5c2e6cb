//! Deciders under given/when/then, and properties of encoding and folding.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use tenantry_domain::codec;
use tenantry_domain::conversation::{self, ConversationCommand, ConversationState, RecordUsage, UsageState};
use tenantry_domain::event::*;
use tenantry_domain::limits::{LimitName, LimitOverrides, Plan, PlanCatalog};
use tenantry_domain::tenant::{self, TenantCommand, TenantState};
use tenantry_domain::testing::Scenario;
use tenantry_domain::*;

fn admin(tenant: TenantId) -> TenantContext {
    TenantContext { role: Role::Admin, ..TenantContext::system(tenant) }
}

fn created(max_agents: u64) -> Event {
    Event::TenantCreated(TenantCreated {
        slug: "acme".into(),
        name: "Acme".into(),
        plan: Plan::Starter,
        partner_id: None,
        settings: Settings::default(),
        limits: LimitOverrides { max_agents: Some(max_agents), ..Default::default() },
    })
}

fn agent(id: AgentId) -> AgentCreated {
    AgentCreated {
        agent_id: id,
        name: "a".into(),
        model: "m".into(),
        system_prompt: String::new(),
        tool_ids: vec![],
    }
}

fn tenant_scenario(events: &[Event]) -> Scenario<TenantState, fn(TenantState, &Event) -> TenantState> {
    Scenario::new(TenantState::new(PlanCatalog::default()), tenant::evolve as fn(_, &_) -> _).given(events)
}

#[test]
fn a_tenant_is_created_once_by_the_platform_only() {
    let ctx = TenantContext::system(TenantId::new());
    let Event::TenantCreated(c) = created(5) else { unreachable!() };
    tenant_scenario(&[])
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::CreateTenant(c.clone())))
        .then(&[created(5)]);
    tenant_scenario(&[created(5)])
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::CreateTenant(c.clone())))
        .then_rejected(Rejection::TenantAlreadyExists);
    let ctx_admin = admin(ctx.tenant_id);
    tenant_scenario(&[])
        .when(|s| tenant::decide(&ctx_admin, s, &TenantCommand::CreateTenant(c.clone())))
        .then_rejected(Rejection::Forbidden);
    let bad = TenantCreated { slug: "Not A Slug".into(), ..c };
    tenant_scenario(&[])
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::CreateTenant(bad.clone())))
        .then_rejected(Rejection::invalid("slug", "lowercase letters, digits and inner dashes only"));
}

#[test]
fn agents_stop_at_the_limit_and_archiving_frees_a_slot() {
    let ctx = admin(TenantId::new());
    let ids: Vec<AgentId> = (0..3).map(|_| AgentId::new()).collect();
    let mut given = vec![created(2)];
    given.extend(ids[..2].iter().map(|id| Event::AgentCreated(agent(*id))));
    tenant_scenario(&given)
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::CreateAgent(agent(ids[2]))))
        .then_rejected(Rejection::LimitReached { limit: LimitName::MaxAgents, max: 2 });
    given.push(Event::AgentArchived(AgentArchived { agent_id: ids[0] }));
    tenant_scenario(&given)
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::CreateAgent(agent(ids[2]))))
        .then(&[Event::AgentCreated(agent(ids[2]))]);
    tenant_scenario(&given)
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::CreateAgent(agent(ids[1]))))
        .then_rejected(Rejection::AgentAlreadyExists(ids[1]));
}

#[test]
fn a_suspended_tenant_refuses_commands_until_resumed() {
    let ctx = TenantContext::system(TenantId::new());
    let suspended = [created(5), Event::TenantSuspended(TenantSuspended { reason: "unpaid".into() })];
    let id = AgentId::new();
    tenant_scenario(&suspended)
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::CreateAgent(agent(id))))
        .then_rejected(Rejection::TenantSuspended);
    tenant_scenario(&suspended)
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::ResumeTenant))
        .then(&[Event::TenantResumed(TenantResumed {})]);
    tenant_scenario(&suspended)
        .when(|s| tenant::decide(&admin(ctx.tenant_id), s, &TenantCommand::ResumeTenant))
        .then_rejected(Rejection::Forbidden);
}

#[test]
fn roles_bound_what_keys_users_and_limits_may_be() {
    let ctx = admin(TenantId::new());
    let key = ApiKeyIssued {
        key_id: ApiKeyId::new(),
        name: "k".into(),
        role: Role::SuperAdmin,
        secret_hash: vec![1],
        user_id: None,
    };
    tenant_scenario(&[created(5)])
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::IssueApiKey(key.clone())))
        .then_rejected(Rejection::Forbidden);
    let raise = TenantUpdated { name: None, plan: Some(Plan::Enterprise), settings: None, limits: None };
    tenant_scenario(&[created(5)])
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::UpdateTenant(raise.clone())))
        .then_rejected(Rejection::Forbidden);
    let user_ctx = TenantContext { role: Role::User, ..ctx.clone() };
    tenant_scenario(&[created(5)])
        .when(|s| tenant::decide(&user_ctx, s, &TenantCommand::CreateAgent(agent(AgentId::new()))))
        .then_rejected(Rejection::Forbidden);
    let first = UserAdded { user_id: UserId::new(), email: "Ann@example.com".into(), role: Role::User };
    let second = UserAdded { user_id: UserId::new(), email: "ann@EXAMPLE.com".into(), role: Role::User };
    tenant_scenario(&[created(5), Event::UserAdded(first)])
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::AddUser(second.clone())))
        .then_rejected(Rejection::EmailTaken);
}

#[test]
fn a_user_key_acts_as_an_existing_user_and_old_keys_upcast() {
    let ctx = admin(TenantId::new());
    let user = UserId::new();
    let given =
        [created(5), Event::UserAdded(UserAdded { user_id: user, email: "u@x.io".into(), role: Role::User })];
    let key = |role, user_id| ApiKeyIssued {
        key_id: ApiKeyId::new(),
        name: "k".into(),
        role,
        secret_hash: vec![1],
        user_id,
    };
    let ok = key(Role::User, Some(user));
    tenant_scenario(&given)
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::IssueApiKey(ok.clone())))
        .then(&[Event::ApiKeyIssued(ok.clone())]);
    let stranger = UserId::new();
    tenant_scenario(&given)
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::IssueApiKey(key(Role::User, Some(stranger)))))
        .then_rejected(Rejection::UserNotFound(stranger));
    tenant_scenario(&given)
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::IssueApiKey(key(Role::User, None))))
        .then_rejected(Rejection::invalid("user_id", "a user key names the user it acts as"));
    // A v1 key (before keys could act as a user) decodes with no user.
    let v1 = codec::v1::ApiKeyIssued {
        key_id: ok.key_id,
        name: "k".into(),
        role: Role::Admin,
        secret_hash: vec![1],
    };
    let event = codec::decode(codec::types::ApiKeyIssued, 1, &codec::to_bytes(&v1).unwrap()).unwrap();
    assert_eq!(event, Event::ApiKeyIssued(ApiKeyIssued { role: Role::Admin, user_id: None, ..ok }));
}

#[test]
fn users_only_reach_their_own_conversations() {
    let tenant_id = TenantId::new();
    let (owner, other) = (UserId::new(), UserId::new());
    let agent_id = AgentId::new();
    let tenant = [
        created(5),
        Event::AgentCreated(agent(agent_id)),
        Event::UserAdded(UserAdded { user_id: owner, email: "o@x.io".into(), role: Role::User }),
        Event::UserAdded(UserAdded { user_id: other, email: "p@x.io".into(), role: Role::User }),
    ];
    let tenant_state = tenant.iter().fold(TenantState::new(PlanCatalog::default()), tenant::evolve);
    let conversation_id = ConversationId::new();
    let opened = Event::ConversationOpened(ConversationOpened {
        conversation_id,
        agent_id,
        user_id: Some(owner),
        title: Some("hi".into()),
    });
    let message = MessageAppended {
        conversation_id,
        message_id: MessageId::new(),
        role: MessageRole::User,
        content: "hello".into(),
        model: None,
        usage: None,
        author: None,
    };
    let as_user =
        |u| TenantContext { role: Role::User, actor: Actor::User(u), ..TenantContext::system(tenant_id) };
    let conv = || {
        Scenario::new(ConversationState::default(), conversation::evolve).given(std::slice::from_ref(&opened))
    };
    conv()
        .when(|s| {
            conversation::decide(
                &as_user(owner),
                &tenant_state,
                s,
                &ConversationCommand::AppendMessage(message.clone()),
            )
        })
        // What the user wrote is theirs: sealed with their key, erased with them.
        .then(&[Event::MessageAppended(MessageAppended { author: Some(owner), ..message.clone() })]);
    conv()
        .when(|s| {
            conversation::decide(
                &as_user(other),
                &tenant_state,
                s,
                &ConversationCommand::AppendMessage(message.clone()),
            )
        })
        .then_rejected(Rejection::ConversationNotFound(conversation_id));
    // The same message id again is a no-op, not a second message.
    Scenario::new(ConversationState::default(), conversation::evolve)
        .given(&[opened.clone(), Event::MessageAppended(message.clone())])
        .when(|s| {
            conversation::decide(
                &as_user(owner),
                &tenant_state,
                s,
                &ConversationCommand::AppendMessage(message.clone()),
            )
        })
        .then(&[]);
}

#[test]
fn monthly_tokens_are_limited_and_usage_is_idempotent_by_request_id() {
    let ctx = admin(TenantId::new());
    let limited = Event::TenantCreated(TenantCreated {
        slug: "t".repeat(3),
        name: "T".into(),
        plan: Plan::Starter,
        partner_id: None,
        settings: Settings::default(),
        limits: LimitOverrides { tokens_per_month: Some(1_000), ..Default::default() },
    });
    let tenant_state = tenant::evolve(TenantState::new(PlanCatalog::default()), &limited);
    let usage = |tokens, id: &str| UsageRecorded {
        model: "m".into(),
        kind: "chat".into(),
        usage: TokenUsage { prompt_tokens: tokens, completion_tokens: 0 },
        request_id: Some(id.into()),
        occurred_at: Utc.with_ymd_and_hms(2026, 11, 3, 10, 0, 0).unwrap(),
    };
    let month = Scenario::new(UsageState::default(), conversation::evolve_usage)
        .given(&[Event::UsageRecorded(usage(900, "r1"))]);
    let state = month.state().clone();
    assert_eq!(
        conversation::decide_usage(&ctx, &tenant_state, &state, &RecordUsage(usage(100, "r2")))
            .map(|e| e.len()),
        Ok(1)
    );
    assert_eq!(
        conversation::decide_usage(&ctx, &tenant_state, &state, &RecordUsage(usage(101, "r3"))),
        Err(Rejection::LimitReached { limit: LimitName::TokensPerMonth, max: 1_000 })
    );
    assert_eq!(
        conversation::decide_usage(&ctx, &tenant_state, &state, &RecordUsage(usage(900, "r1"))),
        Ok(vec![])
    );
}

// ---- properties ----

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 @.é😀-]{0,24}"
}

fn id<T: From<uuid::Uuid> + std::fmt::Debug>() -> impl Strategy<Value = T> {
    any::<u128>().prop_map(|n| T::from(uuid::Uuid::from_u128(n)))
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::SuperAdmin), Just(Role::PartnerAdmin), Just(Role::Admin), Just(Role::User)]
}

fn plan() -> impl Strategy<Value = Plan> {
    prop_oneof![Just(Plan::Starter), Just(Plan::Professional), Just(Plan::Enterprise)]
}

fn overrides() -> impl Strategy<Value = LimitOverrides> {
    (proptest::option::of(0u64..100), proptest::option::of(any::<u64>())).prop_map(|(a, t)| LimitOverrides {
        max_agents: a,
        tokens_per_month: t,
        ..Default::default()
    })
}

fn settings() -> impl Strategy<Value = Settings> {
    (
        proptest::option::of(text()),
        proptest::collection::vec(text(), 0..3),
        proptest::collection::vec((text(), any::<bool>()), 0..3),
    )
        .prop_map(|(agent_name, allowed_models, feature_flags)| Settings {
            agent_name,
            system_prompt: None,
            default_model: None,
            allowed_models,
            feature_flags,
        })
}

fn personal() -> impl Strategy<Value = Personal> {
    prop_oneof![
        text().prop_map(Personal::Text),
        proptest::collection::vec(any::<u8>(), 0..60).prop_map(Personal::Sealed),
        Just(Personal::Erased),
    ]
}

fn usage() -> impl Strategy<Value = TokenUsage> {
    (any::<u32>(), any::<u32>())
        .prop_map(|(p, c)| TokenUsage { prompt_tokens: p.into(), completion_tokens: c.into() })
}

fn message_role() -> impl Strategy<Value = MessageRole> {
    prop_oneof![
        Just(MessageRole::User),
        Just(MessageRole::Assistant),
        Just(MessageRole::Tool),
        Just(MessageRole::System)
    ]
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (text(), text(), plan(), proptest::option::of(id()), settings(), overrides()).prop_map(
            |(slug, name, plan, partner_id, settings, limits)| Event::TenantCreated(TenantCreated {
                slug,
                name,
                plan,
                partner_id,
                settings,
                limits
            })
        ),
        (
            proptest::option::of(text()),
            proptest::option::of(plan()),
            proptest::option::of(settings()),
            proptest::option::of(overrides())
        )
            .prop_map(|(name, plan, settings, limits)| Event::TenantUpdated(TenantUpdated {
                name,
                plan,
                settings,
                limits
            })),
        text().prop_map(|reason| Event::TenantSuspended(TenantSuspended { reason })),
        Just(Event::TenantResumed(TenantResumed {})),
        (id(), text(), text(), text(), proptest::collection::vec(id(), 0..3)).prop_map(
            |(agent_id, name, model, system_prompt, tool_ids)| {
                Event::AgentCreated(AgentCreated { agent_id, name, model, system_prompt, tool_ids })
            }
        ),
        (id(), proptest::option::of(text()), proptest::option::of(proptest::collection::vec(id(), 0..2)))
            .prop_map(|(agent_id, name, tool_ids)| {
                Event::AgentUpdated(AgentUpdated {
                    agent_id,
                    name,
                    model: None,
                    system_prompt: None,
                    tool_ids,
                })
            }),
        id().prop_map(|agent_id| Event::AgentArchived(AgentArchived { agent_id })),
        (id(), text(), text(), any::<bool>()).prop_map(|(tool_id, name, endpoint, enabled)| {
            Event::ToolRegistered(ToolRegistered {
                tool_id,
                name,
                description: "d".into(),
                endpoint,
                parameters: "{\"type\":\"object\"}".into(),
                enabled,
            })
        }),
        (id(), proptest::option::of(any::<bool>())).prop_map(|(tool_id, enabled)| Event::ToolUpdated(
            ToolUpdated { tool_id, description: None, endpoint: None, parameters: None, enabled }
        )),
        id().prop_map(|tool_id| Event::ToolRemoved(ToolRemoved { tool_id })),
        (id(), text(), role(), proptest::collection::vec(any::<u8>(), 0..40), proptest::option::of(id()))
            .prop_map(|(key_id, name, role, secret_hash, user_id)| Event::ApiKeyIssued(ApiKeyIssued {
                key_id,
                name,
                role,
                secret_hash,
                user_id
            })),
        id().prop_map(|key_id| Event::ApiKeyRevoked(ApiKeyRevoked { key_id })),
        (id(), personal(), role()).prop_map(|(user_id, email, role)| Event::UserAdded(UserAdded {
            user_id,
            email,
            role
        })),
        id().prop_map(|user_id| Event::UserErased(UserErased { user_id })),
        (id(), proptest::option::of(personal()), proptest::option::of(role()))
            .prop_map(|(user_id, email, role)| Event::UserUpdated(UserUpdated { user_id, email, role })),
        id().prop_map(|user_id| Event::UserRemoved(UserRemoved { user_id })),
        (id(), id(), proptest::option::of(id()), proptest::option::of(personal())).prop_map(
            |(conversation_id, agent_id, user_id, title)| {
                Event::ConversationOpened(ConversationOpened { conversation_id, agent_id, user_id, title })
            }
        ),
        (
            id(),
            id(),
            message_role(),
            personal(),
            proptest::option::of(text()),
            proptest::option::of(usage()),
            proptest::option::of(id())
        )
            .prop_map(|(conversation_id, message_id, role, content, model, usage, author)| {
                Event::MessageAppended(MessageAppended {
                    conversation_id,
                    message_id,
                    role,
                    content,
                    model,
                    usage,
                    author,
                })
            }),
        (text(), text(), usage(), proptest::option::of(text()), 0i64..4_000_000_000_000).prop_map(
            |(model, kind, usage, request_id, ms)| Event::UsageRecorded(UsageRecorded {
                model,
                kind,
                usage,
                request_id,
                occurred_at: Utc.timestamp_millis_opt(ms).unwrap()
            })
        ),
        (text(), proptest::option::of(text()), text()).prop_map(|(action, target, reason)| {
            Event::AccessDenied(AccessDenied { action, target, reason })
        }),
    ]
}

proptest! {
    #[test]
    fn every_event_round_trips_through_postcard(e in event()) {
        let encoded = codec::encode(&e).unwrap();
        prop_assert_eq!(codec::current_version(encoded.event_type), Some(encoded.schema_version));
        let decoded = codec::decode(encoded.event_type, encoded.schema_version, &encoded.payload).unwrap();
        prop_assert_eq!(decoded, e);
    }

    #[test]
    fn folding_is_deterministic_and_resumable(events in proptest::collection::vec(event(), 0..40), split in 0usize..40) {
        let initial = TenantState::new(PlanCatalog::default());
        let once = events.iter().fold(initial.clone(), tenant::evolve);
        let twice = events.iter().fold(initial.clone(), tenant::evolve);
        prop_assert_eq!(&once, &twice);
        // Folding a prefix, then the rest, gives the same state (what snapshots rely on).
        let split = split.min(events.len());
        let prefix = events[..split].iter().fold(initial, tenant::evolve);
        let resumed = events[split..].iter().fold(prefix, tenant::evolve);
        prop_assert_eq!(once, resumed);
        let conv = events.iter().fold(ConversationState::default(), conversation::evolve);
        prop_assert_eq!(conv, events.iter().fold(ConversationState::default(), conversation::evolve));
    }

    #[test]
    fn random_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..64), t in 0usize..codec::types::ALL.len()) {
        let event_type = codec::types::ALL[t];
        let _ = codec::decode(event_type, codec::current_version(event_type).unwrap(), &bytes);
    }
}
