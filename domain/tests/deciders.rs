//! Every command's decision under given/when/then: what it writes on the happy path, and
//! each refusal a caller relies on.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use chrono::{TimeZone, Utc};
use tenantry_domain::command::*;
use tenantry_domain::conversation::{self, ConversationState, UsageState};
use tenantry_domain::event::*;
use tenantry_domain::limits::{LimitName, LimitOverrides, Plan};
use tenantry_domain::slug::{self, SlugState};
use tenantry_domain::tenant::{self, TenantCommand, TenantState};
use tenantry_domain::testing::Scenario;
use tenantry_domain::*;

mod common;
use common::*;

// ---- CreateTenant ----

#[test]
fn create_tenant_is_the_platforms_and_happens_once() {
    let ctx = platform(TenantId::new());
    let c = create_cmd(LimitOverrides::default());
    given(&[])
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::CreateTenant(c.clone())))
        .then(&[created(LimitOverrides::default())]);
    given(&[created(LimitOverrides::default())])
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::CreateTenant(c.clone())))
        .then_rejected(Rejection::TenantAlreadyExists);
    given(&[])
        .when(|s| tenant::decide(&admin(ctx.tenant_id), s, &TenantCommand::CreateTenant(c.clone())))
        .then_rejected(Rejection::Forbidden);
    let bad = CreateTenant { slug: "Not A Slug".into(), ..c };
    given(&[])
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::CreateTenant(bad.clone())))
        .then_rejected(Rejection::invalid("slug", "lowercase letters, digits and inner dashes only"));
}

#[test]
fn create_tenant_by_a_partner_is_under_that_partner_only() {
    let partner = PartnerId::new();
    let ctx =
        TenantContext { role: Role::PartnerAdmin, partner_id: Some(partner), ..platform(TenantId::new()) };
    let other = CreateTenant { partner_id: Some(PartnerId::new()), ..create_cmd(LimitOverrides::default()) };
    given(&[])
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::CreateTenant(other.clone())))
        .then_rejected(Rejection::Forbidden);
    let own = CreateTenant { partner_id: Some(partner), ..other };
    assert_eq!(
        tenant::decide(&ctx, &state_of(&[]), &TenantCommand::CreateTenant(own)).map(|e| e.len()),
        Ok(1)
    );
}

#[test]
fn limits_outside_their_range_are_refused() {
    let ctx = platform(TenantId::new());
    let huge = LimitOverrides { max_concurrent_requests: Some(1 << 62), ..Default::default() };
    given(&[])
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::CreateTenant(create_cmd(huge))))
        .then_rejected(Rejection::invalid("limits.max_concurrent_requests", "must be from 1 to 100000"));
    let zero_rate = UpdateTenant {
        limits: Some(LimitOverrides { requests_per_minute: Some(0), ..Default::default() }),
        ..Default::default()
    };
    given(&[tenant_with(5)])
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::UpdateTenant(zero_rate.clone())))
        .then_rejected(Rejection::invalid("limits.requests_per_minute", "must be from 1 to 100000000"));
}

#[test]
fn text_with_a_nul_character_is_refused_everywhere() {
    let ctx = admin(TenantId::new());
    let t = [tenant_with(5)];
    given(&t)
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::UpdateTenant(update(Some("a\0b")))))
        .then_rejected(Rejection::invalid("name", "must not contain the NUL character (U+0000)"));
    let agent = CreateAgent { model: "m\0".into(), ..agent_cmd(AgentId::new()) };
    given(&t)
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::CreateAgent(agent.clone())))
        .then_rejected(Rejection::invalid("model", "must not contain the NUL character (U+0000)"));
    let user = AddUser { user_id: UserId::new(), email: "a\0@x.io".into(), role: Role::User };
    given(&t)
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::AddUser(user.clone())))
        .then_rejected(Rejection::invalid("email", "must not contain the NUL character (U+0000)"));
}

// ---- UpdateTenant ----

#[test]
fn update_tenant_renames_and_only_the_platform_changes_plan_or_limits() {
    let ctx = admin(TenantId::new());
    given(&[tenant_with(5)])
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::UpdateTenant(update(Some("Acme 2")))))
        .then(&[Event::TenantUpdated(TenantUpdated {
            name: Some("Acme 2".into()),
            plan: None,
            settings: None,
            limits: None,
        })]);
    let raise = UpdateTenant { plan: Some(Plan::Enterprise), ..Default::default() };
    given(&[tenant_with(5)])
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::UpdateTenant(raise.clone())))
        .then_rejected(Rejection::Forbidden);
    given(&[])
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::UpdateTenant(update(Some("x")))))
        .then_rejected(Rejection::TenantNotFound);
}

#[test]
fn a_settings_patch_keeps_what_it_does_not_name_and_clears_what_is_null() {
    let ctx = admin(TenantId::new());
    let mut start = create_cmd(LimitOverrides::default());
    start.settings = Settings {
        agent_name: Some("Ava".into()),
        system_prompt: None,
        default_model: Some("m-large".into()),
        allowed_models: vec!["m-large".into(), "m-small".into()],
        feature_flags: vec![("beta".into(), true), ("old".into(), true)],
        custom: Some(r#"{"lang":"de","ui":{"theme":"dark","dense":true}}"#.into()),
    };
    let t = [Event::TenantCreated(TenantCreated {
        slug: start.slug,
        name: start.name,
        plan: start.plan,
        partner_id: None,
        settings: start.settings,
        limits: start.limits,
        ancestors: Vec::new(),
    })];
    let patch = SettingsPatch {
        agent_name: Patch::Clear,
        feature_flags: Patch::Set([("old".to_owned(), None), ("new".to_owned(), Some(false))].into()),
        // RFC 7396 inside `custom`: members merge, `null` removes one.
        custom: Patch::Set(
            serde_json::from_str(r#"{"lang":null,"ui":{"dense":null,"font":"large"},"region":"eu"}"#)
                .unwrap(),
        ),
        ..Default::default()
    };
    let command = TenantCommand::UpdateTenant(UpdateTenant { settings: Some(patch), ..Default::default() });
    given(&t).when(|s| tenant::decide(&ctx, s, &command)).then(&[Event::TenantUpdated(TenantUpdated {
        name: None,
        plan: None,
        settings: Some(Settings {
            agent_name: None,
            system_prompt: None,
            default_model: Some("m-large".into()),
            allowed_models: vec!["m-large".into(), "m-small".into()],
            feature_flags: vec![("beta".into(), true), ("new".into(), false)],
            custom: Some(r#"{"region":"eu","ui":{"font":"large","theme":"dark"}}"#.into()),
        }),
        limits: None,
    })]);
}

// ---- SuspendTenant / ResumeTenant ----

#[test]
fn suspend_is_the_platforms_and_suspending_twice_writes_nothing() {
    let ctx = platform(TenantId::new());
    let reason = SuspendTenant { reason: "unpaid".into() };
    given(&[tenant_with(5)])
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::SuspendTenant(reason.clone())))
        .then(&[Event::TenantSuspended(TenantSuspended { reason: "unpaid".into() })]);
    let suspended = [tenant_with(5), Event::TenantSuspended(TenantSuspended { reason: "unpaid".into() })];
    given(&suspended)
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::SuspendTenant(reason.clone())))
        .then(&[]);
    given(&[tenant_with(5)])
        .when(|s| tenant::decide(&admin(ctx.tenant_id), s, &TenantCommand::SuspendTenant(reason.clone())))
        .then_rejected(Rejection::Forbidden);
}

#[test]
fn a_suspended_tenant_refuses_commands_until_resumed() {
    let ctx = platform(TenantId::new());
    let suspended = [tenant_with(5), Event::TenantSuspended(TenantSuspended { reason: "unpaid".into() })];
    given(&suspended)
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::CreateAgent(agent_cmd(AgentId::new()))))
        .then_rejected(Rejection::TenantSuspended);
    given(&suspended)
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::ResumeTenant(ResumeTenant)))
        .then(&[Event::TenantResumed(TenantResumed {})]);
    given(&suspended)
        .when(|s| tenant::decide(&admin(ctx.tenant_id), s, &TenantCommand::ResumeTenant(ResumeTenant)))
        .then_rejected(Rejection::Forbidden);
    given(&[tenant_with(5)])
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::ResumeTenant(ResumeTenant)))
        .then_rejected(Rejection::TenantNotSuspended);
}

// ---- agents ----

#[test]
fn agents_stop_at_the_limit_and_archiving_frees_a_slot() {
    let ctx = admin(TenantId::new());
    let ids: Vec<AgentId> = (0..3).map(|_| AgentId::new()).collect();
    let mut past = vec![tenant_with(2)];
    past.extend(ids[..2].iter().map(|id| agent_created(*id)));
    given(&past)
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::CreateAgent(agent_cmd(ids[2]))))
        .then_rejected(Rejection::LimitReached { limit: LimitName::MaxAgents, max: 2 });
    given(&past)
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::ArchiveAgent(ArchiveAgent { agent_id: ids[0] })))
        .then(&[Event::AgentArchived(AgentArchived { agent_id: ids[0] })]);
    past.push(Event::AgentArchived(AgentArchived { agent_id: ids[0] }));
    given(&past)
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::CreateAgent(agent_cmd(ids[2]))))
        .then(&[agent_created(ids[2])]);
    given(&past)
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::CreateAgent(agent_cmd(ids[1]))))
        .then_rejected(Rejection::AgentAlreadyExists(ids[1]));
    given(&past)
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::ArchiveAgent(ArchiveAgent { agent_id: ids[0] })))
        .then_rejected(Rejection::AgentNotFound(ids[0]));
}

#[test]
fn a_user_key_administers_nothing() {
    let t = TenantId::new();
    let ctx = as_user(t, UserId::new());
    given(&[tenant_with(5)])
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::CreateAgent(agent_cmd(AgentId::new()))))
        .then_rejected(Rejection::Forbidden);
}

#[test]
fn update_agent_keeps_the_bounds_of_create() {
    let ctx = admin(TenantId::new());
    let agent = AgentId::new();
    let tool = ToolId::new();
    let past = [tenant_with(5), tool_registered(tool), agent_created(agent)];
    let change = UpdateAgent {
        agent_id: agent,
        name: None,
        model: Some("m2".into()),
        system_prompt: None,
        tool_ids: Some(vec![tool]),
    };
    given(&past).when(|s| tenant::decide(&ctx, s, &TenantCommand::UpdateAgent(change.clone()))).then(&[
        Event::AgentUpdated(AgentUpdated {
            agent_id: agent,
            name: None,
            model: Some("m2".into()),
            system_prompt: None,
            tool_ids: Some(vec![tool]),
        }),
    ]);
    let too_many = UpdateAgent { tool_ids: Some(vec![tool; 129]), ..change.clone() };
    given(&past)
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::UpdateAgent(too_many.clone())))
        .then_rejected(Rejection::invalid("tool_ids", "at most 128 tools"));
    let unknown = ToolId::new();
    let missing = UpdateAgent { tool_ids: Some(vec![unknown]), ..change.clone() };
    given(&past)
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::UpdateAgent(missing.clone())))
        .then_rejected(Rejection::ToolNotFound(unknown));
    let other = UpdateAgent { agent_id: AgentId::new(), ..change };
    given(&past)
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::UpdateAgent(other.clone())))
        .then_rejected(Rejection::AgentNotFound(other.agent_id));
}

// ---- tools ----

#[test]
fn register_tool_needs_a_schema_object() {
    let ctx = admin(TenantId::new());
    let tool = ToolId::new();
    let cmd = RegisterTool {
        tool_id: tool,
        name: "search".into(),
        description: String::new(),
        endpoint: "https://tools.example/search".into(),
        parameters: "{}".into(),
        enabled: true,
    };
    given(&[tenant_with(5)])
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::RegisterTool(cmd.clone())))
        .then(&[tool_registered(tool)]);
    let list = RegisterTool { parameters: "[1]".into(), ..cmd.clone() };
    given(&[tenant_with(5)])
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::RegisterTool(list.clone())))
        .then_rejected(Rejection::invalid("parameters", "must be a JSON Schema object"));
    given(&[tenant_with(5), tool_registered(tool)])
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::RegisterTool(cmd.clone())))
        .then_rejected(Rejection::ToolAlreadyExists(tool));
}

#[test]
fn update_tool_keeps_the_bounds_of_register() {
    let ctx = admin(TenantId::new());
    let tool = ToolId::new();
    let past = [tenant_with(5), tool_registered(tool)];
    let off = UpdateTool {
        tool_id: tool,
        description: None,
        endpoint: None,
        parameters: None,
        enabled: Some(false),
    };
    given(&past).when(|s| tenant::decide(&ctx, s, &TenantCommand::UpdateTool(off.clone()))).then(&[
        Event::ToolUpdated(ToolUpdated {
            tool_id: tool,
            description: None,
            endpoint: None,
            parameters: None,
            enabled: Some(false),
        }),
    ]);
    let long = UpdateTool { description: Some("x".repeat(900_000)), ..off.clone() };
    given(&past)
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::UpdateTool(long.clone())))
        .then_rejected(Rejection::invalid("description", "must be at most 10000 characters"));
    let not_schema = UpdateTool { parameters: Some("\"a\"".into()), ..off.clone() };
    given(&past)
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::UpdateTool(not_schema.clone())))
        .then_rejected(Rejection::invalid("parameters", "must be a JSON Schema object"));
}

#[test]
fn remove_tool_once() {
    let ctx = admin(TenantId::new());
    let tool = ToolId::new();
    let remove = TenantCommand::RemoveTool(RemoveTool { tool_id: tool });
    given(&[tenant_with(5), tool_registered(tool)])
        .when(|s| tenant::decide(&ctx, s, &remove))
        .then(&[Event::ToolRemoved(ToolRemoved { tool_id: tool })]);
    given(&[tenant_with(5), tool_registered(tool), Event::ToolRemoved(ToolRemoved { tool_id: tool })])
        .when(|s| tenant::decide(&ctx, s, &remove))
        .then_rejected(Rejection::ToolNotFound(tool));
}

#[test]
fn the_platforms_own_commands_and_erasure_are_exempt_from_usage_limits() {
    assert!(TenantCommand::CreateTenant(create_cmd(LimitOverrides::default())).exempt_from_quota());
    assert!(TenantCommand::EraseUser(EraseUser { user_id: UserId::new() }).exempt_from_quota());
    assert!(!TenantCommand::CreateAgent(agent_cmd(AgentId::new())).exempt_from_quota());
}

#[test]
fn a_partner_reaches_the_tenants_created_under_it_only() {
    let partner = PartnerId::new();
    let t = TenantId::new();
    let ctx = TenantContext { role: Role::PartnerAdmin, partner_id: Some(partner), ..platform(t) };
    let mine = state_of(&[Event::TenantCreated(TenantCreated {
        partner_id: Some(partner),
        ..match created(LimitOverrides::default()) {
            Event::TenantCreated(c) => c,
            _ => unreachable!(),
        }
    })]);
    assert!(tenant::reaches(&ctx, None, &mine));
    assert!(!tenant::reaches(&ctx, None, &state_of(&[created(LimitOverrides::default())])));
    assert!(!tenant::reaches(&admin(t), Some(TenantId::new()), &mine));
    assert!(tenant::reaches(&admin(t), Some(t), &mine));
}

// ---- conversations ----

struct Conv {
    tenant: TenantState,
    t: TenantId,
    owner: UserId,
    other: UserId,
    agent: AgentId,
}

fn conv_world() -> Conv {
    let t = TenantId::new();
    let (owner, other, agent) = (UserId::new(), UserId::new(), AgentId::new());
    let tenant = state_of(&[
        created(LimitOverrides { tokens_per_month: Some(1_000), ..Default::default() }),
        agent_created(agent),
        user_added(owner, "o@x.io"),
        user_added(other, "p@x.io"),
    ]);
    Conv { tenant, t, owner, other, agent }
}

#[test]
fn a_user_key_opens_conversations_as_its_own_user() {
    let w = conv_world();
    let id = ConversationId::new();
    let open =
        OpenConversation { conversation_id: id, agent_id: w.agent, user_id: None, title: Some("hi".into()) };
    Scenario::new(ConversationState::default(), conversation::evolve)
        .when(|s| conversation::decide_open(&as_user(w.t, w.owner), &w.tenant, s, &open))
        .then(&[Event::ConversationOpened(ConversationOpened {
            conversation_id: id,
            agent_id: w.agent,
            user_id: Some(w.owner),
            title: Some("hi".into()),
        })]);
    let for_other = OpenConversation { user_id: Some(w.other), ..open.clone() };
    Scenario::new(ConversationState::default(), conversation::evolve)
        .when(|s| conversation::decide_open(&as_user(w.t, w.owner), &w.tenant, s, &for_other))
        .then_rejected(Rejection::invalid("user_id", "a user key opens conversations of its own user only"));
    let no_agent = OpenConversation { agent_id: AgentId::new(), ..open };
    Scenario::new(ConversationState::default(), conversation::evolve)
        .when(|s| conversation::decide_open(&admin(w.t), &w.tenant, s, &no_agent))
        .then_rejected(Rejection::AgentNotFound(no_agent.agent_id));
}

fn opened(w: &Conv, id: ConversationId) -> Event {
    Event::ConversationOpened(ConversationOpened {
        conversation_id: id,
        agent_id: w.agent,
        user_id: Some(w.owner),
        title: None,
    })
}

fn message(id: ConversationId) -> AppendMessage {
    AppendMessage {
        conversation_id: id,
        message_id: MessageId::new(),
        role: MessageRole::User,
        content: "hello".into(),
        model: None,
        usage: None,
    }
}

#[test]
fn users_only_reach_their_own_conversations_and_what_they_write_is_theirs() {
    let w = conv_world();
    let id = ConversationId::new();
    let m = message(id);
    let conv = || Scenario::new(ConversationState::default(), conversation::evolve).given(&[opened(&w, id)]);
    conv().when(|s| conversation::decide_append(&as_user(w.t, w.owner), &w.tenant, s, &m)).then(&[
        Event::MessageAppended(MessageAppended {
            conversation_id: id,
            message_id: m.message_id,
            role: MessageRole::User,
            content: "hello".into(),
            model: None,
            usage: None,
            author: Some(w.owner),
        }),
    ]);
    conv()
        .when(|s| conversation::decide_append(&as_user(w.t, w.other), &w.tenant, s, &m))
        .then_rejected(Rejection::ConversationNotFound(id));
}

#[test]
fn a_message_with_usage_needs_a_model_and_bills_once() {
    let w = conv_world();
    let id = ConversationId::new();
    let ctx = admin(w.t);
    let conv = conversation::evolve(ConversationState::default(), &opened(&w, id));
    let usage = TokenUsage { prompt_tokens: 300, completion_tokens: 200 };
    let now = Utc.with_ymd_and_hms(2026, 11, 3, 10, 0, 0).unwrap();
    let no_model = AppendMessage { usage: Some(usage), ..message(id) };
    assert_eq!(
        conversation::decide_billed_message(
            &ctx,
            &w.tenant,
            &conv,
            &UsageState::default(),
            &no_model,
            now,
            None
        ),
        Err(Rejection::invalid("model", "required with usage"))
    );
    let m = AppendMessage { model: Some("m".into()), ..no_model };
    let billed =
        conversation::decide_billed_message(&ctx, &w.tenant, &conv, &UsageState::default(), &m, now, None)
            .unwrap();
    assert_eq!(billed.message.len(), 1);
    assert_eq!(
        billed.usage,
        vec![Event::UsageRecorded(UsageRecorded {
            model: "m".into(),
            kind: "message".into(),
            usage,
            request_id: Some(m.message_id.to_string()),
            occurred_at: now,
            cost: None,
        })]
    );
    // Past the month's tokens neither the message nor its bill is written.
    let month = billed.usage.iter().fold(UsageState::default(), conversation::evolve_usage);
    let next = AppendMessage {
        message_id: MessageId::new(),
        usage: Some(TokenUsage { prompt_tokens: 501, completion_tokens: 0 }),
        ..m.clone()
    };
    assert_eq!(
        conversation::decide_billed_message(&ctx, &w.tenant, &conv, &month, &next, now, None),
        Err(Rejection::LimitReached { limit: LimitName::TokensPerMonth, max: 1_000 })
    );
    // The same message again is neither stored nor billed twice.
    let conv = billed.message.iter().fold(conv, conversation::evolve);
    assert_eq!(
        conversation::decide_billed_message(&ctx, &w.tenant, &conv, &month, &m, now, None),
        Ok(conversation::BilledMessage { message: vec![], usage: vec![] })
    );
}

fn record(tokens: u64, id: &str) -> RecordUsage {
    RecordUsage {
        model: "m".into(),
        kind: "chat".into(),
        usage: TokenUsage { prompt_tokens: tokens, completion_tokens: 0 },
        request_id: Some(id.into()),
        occurred_at: Utc.with_ymd_and_hms(2026, 11, 3, 10, 0, 0).unwrap(),
    }
}

fn recorded(r: &RecordUsage) -> Event {
    Event::UsageRecorded(UsageRecorded {
        model: r.model.clone(),
        kind: r.kind.clone(),
        usage: r.usage,
        request_id: r.request_id.clone(),
        occurred_at: r.occurred_at,
        cost: None,
    })
}

#[test]
fn usage_is_limited_monthly_idempotent_by_request_id_and_an_admins_act() {
    let w = conv_world();
    let ctx = admin(w.t);
    let month = || {
        Scenario::new(UsageState::default(), conversation::evolve_usage)
            .given(&[recorded(&record(900, "r1"))])
    };
    month()
        .when(|s| conversation::decide_usage(&ctx, &w.tenant, s, &record(100, "r2"), None))
        .then(&[recorded(&record(100, "r2"))]);
    month()
        .when(|s| conversation::decide_usage(&ctx, &w.tenant, s, &record(101, "r3"), None))
        .then_rejected(Rejection::LimitReached { limit: LimitName::TokensPerMonth, max: 1_000 });
    month().when(|s| conversation::decide_usage(&ctx, &w.tenant, s, &record(900, "r1"), None)).then(&[]);
    month()
        .when(|s| conversation::decide_usage(&ctx, &w.tenant, s, &record(5, "r1"), None))
        .then_rejected(Rejection::RequestIdReused("r1".into()));
    month()
        .when(|s| conversation::decide_usage(&as_user(w.t, w.owner), &w.tenant, s, &record(1, "r9"), None))
        .then_rejected(Rejection::Forbidden);
}

#[test]
fn token_counts_are_bounded_per_record() {
    let w = conv_world();
    let huge = RecordUsage {
        usage: TokenUsage { prompt_tokens: u64::MAX, completion_tokens: 0 },
        ..record(0, "big")
    };
    Scenario::new(UsageState::default(), conversation::evolve_usage)
        .when(|s| conversation::decide_usage(&admin(w.t), &w.tenant, s, &huge, None))
        .then_rejected(Rejection::invalid("usage.prompt_tokens", "must be at most 1000000000000"));
}

// ---- slugs ----

#[test]
fn a_slug_is_held_by_one_tenant_until_released() {
    let (a, b) = (TenantId::new(), TenantId::new());
    Scenario::new(SlugState::default(), slug::evolve)
        .when(|s| slug::decide_claim(s, "acme", a))
        .then(&[Event::SlugClaimed(SlugClaimed { tenant_id: a })]);
    let held = [Event::SlugClaimed(SlugClaimed { tenant_id: a })];
    Scenario::new(SlugState::default(), slug::evolve)
        .given(&held)
        .when(|s| slug::decide_claim(s, "acme", a))
        .then(&[]);
    Scenario::new(SlugState::default(), slug::evolve)
        .given(&held)
        .when(|s| slug::decide_claim(s, "acme", b))
        .then_rejected(Rejection::SlugTaken("acme".into()));
    let state = held.iter().fold(SlugState::default(), slug::evolve);
    assert_eq!(slug::decide_release(&state, b), vec![]);
    assert_eq!(slug::decide_release(&state, a), vec![Event::SlugReleased(SlugReleased { tenant_id: a })]);
}

#[test]
fn partners_are_created_by_the_platform_operator_with_a_name() {
    let p = PartnerId::new();
    let ctx = platform(TenantId::PLATFORM);
    assert_eq!(
        partner::decide_create(&ctx, p, " Resell "),
        Ok(vec![Event::PartnerCreated(PartnerCreated { partner_id: p, name: "Resell".into() })])
    );
    assert_eq!(
        partner::decide_create(&ctx, p, "  "),
        Err(Rejection::invalid("name", "must be at least 1 characters"))
    );
    let partner_admin = TenantContext { role: Role::PartnerAdmin, partner_id: Some(p), ..ctx };
    assert_eq!(partner::decide_create(&partner_admin, p, "x"), Err(Rejection::Forbidden));
}
