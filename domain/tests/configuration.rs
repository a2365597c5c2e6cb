//! The tenant's configuration enforced: allowed models and the default model, tools an agent
//! may have, the variables a system prompt may hold; a child tenant's inherited ones too.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use tenantry_domain::command::*;
use tenantry_domain::conversation::{self, ConversationState};
use tenantry_domain::event::*;
use tenantry_domain::limits::{LimitOverrides, Plan};
use tenantry_domain::tenant::{self, TenantCommand};
use tenantry_domain::*;

mod common;
use common::*;

fn configured(allowed: &[&str], default: Option<&str>) -> Event {
    Event::TenantCreated(TenantCreated {
        slug: "acme".into(),
        name: "Acme".into(),
        plan: Plan::Starter,
        partner_id: None,
        settings: Settings {
            allowed_models: allowed.iter().map(|m| (*m).to_owned()).collect(),
            default_model: default.map(Into::into),
            custom: Some(r#"{"default_language":"de"}"#.into()),
            ..Default::default()
        },
        limits: LimitOverrides::default(),
        ancestors: vec![],
    })
}

fn agent(model: &str) -> CreateAgent {
    CreateAgent { model: model.into(), ..agent_cmd(AgentId::new()) }
}

#[test]
fn agents_use_allowed_models_and_the_default_when_they_name_none() {
    let ctx = admin(TenantId::new());
    let past = [configured(&["small", "large"], Some("small"))];
    given(&past)
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::CreateAgent(agent("huge"))))
        .then_rejected(Rejection::ModelNotAllowed("huge".into()));
    let unnamed = agent("");
    let decided = tenant::decide(&ctx, &state_of(&past), &TenantCommand::CreateAgent(unnamed)).unwrap();
    assert!(matches!(&decided[0], Event::AgentCreated(a) if a.model == "small"), "{decided:?}");
    given(&[configured(&[], None)])
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::CreateAgent(agent(""))))
        .then_rejected(Rejection::invalid("model", "no model given and no default_model in effect"));
    // Any model when none are listed.
    assert!(
        tenant::decide(&ctx, &state_of(&[configured(&[], None)]), &TenantCommand::CreateAgent(agent("huge")))
            .is_ok()
    );
    // An update keeps to the list too.
    let a = agent("large");
    let created = tenant::decide(&ctx, &state_of(&past), &TenantCommand::CreateAgent(a.clone())).unwrap();
    let mut history = past.to_vec();
    history.extend(created);
    let change = UpdateAgent {
        agent_id: a.agent_id,
        name: None,
        model: Some("huge".into()),
        system_prompt: None,
        tool_ids: None,
    };
    given(&history)
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::UpdateAgent(change.clone())))
        .then_rejected(Rejection::ModelNotAllowed("huge".into()));
}

#[test]
fn a_child_tenant_keeps_to_the_models_it_inherits_unless_it_lists_its_own() {
    let ctx = admin(TenantId::new());
    let mut child = state_of(&[configured(&[], None)]);
    child.inherited_settings = Settings {
        allowed_models: vec!["small".into()],
        default_model: Some("small".into()),
        ..Default::default()
    };
    assert_eq!(
        tenant::decide(&ctx, &child, &TenantCommand::CreateAgent(agent("large"))),
        Err(Rejection::ModelNotAllowed("large".into()))
    );
    let mut own = state_of(&[configured(&["large"], None)]);
    own.inherited_settings = child.inherited_settings.clone();
    assert!(tenant::decide(&ctx, &own, &TenantCommand::CreateAgent(agent("large"))).is_ok());
}

#[test]
fn only_enabled_tools_are_attached() {
    let ctx = admin(TenantId::new());
    let (on, off, gone) = (ToolId::new(), ToolId::new(), ToolId::new());
    let disabled = |id| match tool_registered(id) {
        Event::ToolRegistered(t) => Event::ToolRegistered(ToolRegistered { enabled: false, ..t }),
        other => other,
    };
    let past = [
        configured(&[], None),
        tool_registered(on),
        disabled(off),
        tool_registered(gone),
        Event::ToolRemoved(ToolRemoved { tool_id: gone }),
    ];
    let with = |tools: Vec<ToolId>| TenantCommand::CreateAgent(CreateAgent { tool_ids: tools, ..agent("m") });
    assert!(tenant::decide(&ctx, &state_of(&past), &with(vec![on])).is_ok());
    given(&past)
        .when(|s| tenant::decide(&ctx, s, &with(vec![on, off])))
        .then_rejected(Rejection::invalid("tool_ids", format!("tool {off} is disabled")));
    given(&past)
        .when(|s| tenant::decide(&ctx, s, &with(vec![gone])))
        .then_rejected(Rejection::ToolNotFound(gone));
    // Enabled again, it may be attached.
    let mut later = past.to_vec();
    later.push(Event::ToolUpdated(ToolUpdated {
        tool_id: off,
        description: None,
        endpoint: None,
        parameters: None,
        enabled: Some(true),
    }));
    assert!(tenant::decide(&ctx, &state_of(&later), &with(vec![off])).is_ok());
}

#[test]
fn a_system_prompt_holds_known_variables_only() {
    let ctx = admin(TenantId::new());
    let prompt = |p: &str| TenantCommand::CreateAgent(CreateAgent { system_prompt: p.into(), ..agent("m") });
    let state = state_of(&[configured(&[], None)]);
    assert!(
        tenant::decide(
            &ctx,
            &state,
            &prompt("You are {{agent.name}} of {{ tenant.name }} ({{tenant.slug}}).")
        )
        .is_ok()
    );
    given(&[configured(&[], None)])
        .when(|s| tenant::decide(&ctx, s, &prompt("Hello {{user.email}}")))
        .then_rejected(Rejection::invalid("system_prompt", "unknown variable `{{user.email}}`"));
    given(&[configured(&[], None)])
        .when(|s| tenant::decide(&ctx, s, &prompt("Hello {{tenant.name")))
        .then_rejected(Rejection::invalid("system_prompt", "a `{{` without its `}}`"));
    // The tenant's own default prompt keeps to the same variables.
    let bad = UpdateTenant {
        settings: Some(SettingsPatch {
            system_prompt: Patch::Set("{{secret}}".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    given(&[configured(&[], None)])
        .when(|s| tenant::decide(&platform(TenantId::new()), s, &TenantCommand::UpdateTenant(bad.clone())))
        .then_rejected(Rejection::invalid("settings.system_prompt", "unknown variable `{{secret}}`"));
}

#[test]
fn a_message_naming_a_model_keeps_to_the_list() {
    let t = TenantId::new();
    let (agent_id, conv) = (AgentId::new(), ConversationId::new());
    let tenant = state_of(&[configured(&["small"], None), agent_created(agent_id)]);
    let ctx = admin(t);
    let opened = conversation::decide(
        &ctx,
        &tenant,
        &ConversationState::default(),
        &conversation::ConversationCommand::Open(OpenConversation {
            conversation_id: conv,
            agent_id,
            user_id: None,
            title: None,
        }),
    )
    .unwrap();
    let state = opened.iter().fold(ConversationState::default(), conversation::evolve);
    let message = |model: &str| AppendMessage {
        conversation_id: conv,
        message_id: MessageId::new(),
        role: MessageRole::Assistant,
        content: "hi".into(),
        model: Some(model.into()),
        usage: None,
    };
    assert_eq!(
        conversation::decide_append(&ctx, &tenant, &state, &message("large")),
        Err(Rejection::ModelNotAllowed("large".into()))
    );
    assert!(conversation::decide_append(&ctx, &tenant, &state, &message("small")).is_ok());
}

#[test]
fn credentials_are_added_rotated_and_removed_and_never_printed() {
    let ctx = admin(TenantId::new());
    let id = CredentialId::new();
    let add = AddCredential {
        credential_id: id,
        provider: "anthropic".into(),
        name: "main".into(),
        secret: "sk-ant-123".into(),
        base_url: None,
    };
    let added = Event::CredentialAdded(CredentialAdded {
        credential_id: id,
        provider: "anthropic".into(),
        name: "main".into(),
        secret: "sk-ant-123".into(),
        base_url: None,
    });
    given(&[configured(&[], None)])
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::AddCredential(add.clone())))
        .then(std::slice::from_ref(&added));
    let unknown =
        AddCredential { provider: "acme".into(), credential_id: CredentialId::new(), ..add.clone() };
    given(&[configured(&[], None)])
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::AddCredential(unknown.clone())))
        .then_rejected(Rejection::invalid(
            "provider",
            "one of openai, anthropic, azure_openai, google, custom",
        ));
    let user = TenantContext { role: Role::User, ..ctx.clone() };
    given(&[configured(&[], None)])
        .when(|s| tenant::decide(&user, s, &TenantCommand::AddCredential(add.clone())))
        .then_rejected(Rejection::Forbidden);
    let rotate = RotateCredential { credential_id: id, secret: "sk-ant-456".into() };
    given(&[configured(&[], None), added.clone()])
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::RotateCredential(rotate.clone())))
        .then(&[Event::CredentialRotated(CredentialRotated {
            credential_id: id,
            secret: "sk-ant-456".into(),
        })]);
    let removed = Event::CredentialRemoved(CredentialRemoved { credential_id: id });
    given(&[configured(&[], None), added.clone(), removed.clone()])
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::RotateCredential(rotate.clone())))
        .then_rejected(Rejection::CredentialNotFound(id));
    let state = state_of(&[configured(&[], None), added]);
    assert_eq!(state.credentials[&id].secret, "sk-ant-123");
    assert!(!format!("{state:?}").contains("sk-ant-123"), "a state printed shows no secret");
}

#[test]
fn a_conversation_is_retitled_by_patch_and_closed_while_archived() {
    let t = TenantId::new();
    let (agent_id, conv, owner) = (AgentId::new(), ConversationId::new(), UserId::new());
    let tenant = state_of(&[configured(&[], None), agent_created(agent_id), user_added(owner, "o@x.io")]);
    let ctx = admin(t);
    let opened = Event::ConversationOpened(ConversationOpened {
        conversation_id: conv,
        agent_id,
        user_id: Some(owner),
        title: Some("first".into()),
    });
    let state = [opened].iter().fold(ConversationState::default(), conversation::evolve);
    let retitle = |title| RetitleConversation { conversation_id: conv, title };
    assert_eq!(conversation::decide_retitle(&ctx, &tenant, &state, &retitle(Patch::Keep)), Ok(vec![]));
    assert_eq!(
        conversation::decide_retitle(&ctx, &tenant, &state, &retitle(Patch::Set("second".into()))),
        Ok(vec![Event::ConversationRetitled(ConversationRetitled {
            conversation_id: conv,
            user_id: Some(owner),
            title: Some("second".into()),
        })]),
        "the title stays its owner's"
    );
    let stranger = TenantContext { role: Role::User, actor: Actor::User(UserId::new()), ..ctx.clone() };
    assert_eq!(
        conversation::decide_retitle(&stranger, &tenant, &state, &retitle(Patch::Clear)),
        Err(Rejection::ConversationNotFound(conv))
    );
    let archive = |archived| ArchiveConversation { conversation_id: conv, archived };
    let archived = conversation::decide_archive(&ctx, &tenant, &state, &archive(true)).unwrap();
    let state = archived.iter().fold(state, conversation::evolve);
    assert_eq!(conversation::decide_archive(&ctx, &tenant, &state, &archive(true)), Ok(vec![]), "once");
    let message = AppendMessage {
        conversation_id: conv,
        message_id: MessageId::new(),
        role: MessageRole::User,
        content: "hi".into(),
        model: None,
        usage: None,
    };
    assert_eq!(
        conversation::decide_append(&ctx, &tenant, &state, &message),
        Err(Rejection::ConversationArchived(conv))
    );
}

#[test]
fn a_prompt_may_name_the_custom_settings_in_effect() {
    let ctx = admin(TenantId::new());
    let prompt = |p: &str| TenantCommand::CreateAgent(CreateAgent { system_prompt: p.into(), ..agent("m") });
    let mut state = state_of(&[configured(&[], None)]);
    state.inherited_settings =
        Settings { custom: Some(r#"{"default_language":"de"}"#.into()), ..Default::default() };
    assert!(tenant::decide(&ctx, &state, &prompt("Answer in {{settings.custom.default_language}}.")).is_ok());
    assert_eq!(
        tenant::decide(&ctx, &state, &prompt("Be {{settings.custom.tone}}.")),
        Err(Rejection::invalid("system_prompt", "unknown variable `{{settings.custom.tone}}`"))
    );
    // More than 16 KiB of custom settings is refused by name.
    let big = format!(r#"{{"blob":"{}"}}"#, "x".repeat(17 * 1024));
    let create = CreateTenant {
        settings: Settings { custom: Some(big), ..Default::default() },
        ..create_cmd(LimitOverrides::default())
    };
    assert_eq!(
        tenant::decide(
            &platform(TenantId::new()),
            &tenant::TenantState::new(PlanCatalog::default()),
            &TenantCommand::CreateTenant(create)
        ),
        Err(Rejection::invalid("settings.custom", "at most 16384 bytes as JSON"))
    );
}
