//! The command path under concurrency, on both backends: limits hold under racing
//! commands, and two nodes over one store never decide on what the other changed.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use tenantry_app::{CommandError, Commands};
use tenantry_domain::command::{
    AddUser, AppendMessage, CreateAgent, CreateTenant, OpenConversation, ResumeTenant, SuspendTenant,
};
use tenantry_domain::event::Settings as TenantSettings;
use tenantry_domain::tenant::TenantCommand;
use tenantry_domain::{
    AgentId, LimitName, LimitOverrides, Plan, PlanCatalog, Rejection, Role, TenantContext, TenantId, UserId,
};
use tenantry_store::testing::Harness;

async fn race(h: &Harness) {
    let commands = Commands::new(h.store.clone(), PlanCatalog::default());
    let platform = TenantContext::system(TenantId::new());
    let created = CreateTenant {
        slug: "racers".into(),
        name: "Racers".into(),
        plan: Plan::Starter,
        partner_id: None,
        settings: TenantSettings::default(),
        limits: LimitOverrides { max_agents: Some(5), max_users: Some(3), ..Default::default() },
        parent: None,
    };
    commands.tenant(&platform, &TenantCommand::CreateTenant(created)).await.unwrap();
    let admin = TenantContext { role: Role::Admin, ..platform.clone() };
    let mut tasks = Vec::new();
    for i in 0..50 {
        let (c, ctx) = (commands.clone(), admin.clone());
        tasks.push(tokio::spawn(async move {
            let agent = CreateAgent {
                agent_id: AgentId::new(),
                name: format!("agent-{i}"),
                model: "m".into(),
                system_prompt: String::new(),
                tool_ids: vec![],
            };
            c.tenant(&ctx, &TenantCommand::CreateAgent(agent)).await
        }));
        let (c, ctx) = (commands.clone(), admin.clone());
        tasks.push(tokio::spawn(async move {
            let user =
                AddUser { user_id: UserId::new(), email: format!("u{i}@racers.example"), role: Role::User };
            c.tenant(&ctx, &TenantCommand::AddUser(user)).await
        }));
    }
    let (mut ok, mut agents_refused, mut users_refused) = (0, 0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(CommandError::Rejected(Rejection::LimitReached { limit: LimitName::MaxAgents, max: 5 })) => {
                agents_refused += 1
            }
            Err(CommandError::Rejected(Rejection::LimitReached { limit: LimitName::MaxUsers, max: 3 })) => {
                users_refused += 1
            }
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    assert_eq!((ok, agents_refused, users_refused), (8, 45, 47));
    let state = commands.tenant_now(&admin).await.unwrap();
    assert_eq!((state.active_agents(), state.active_users()), (5, 3));
}

/// A new tenant on the Starter plan with `limits`, and an agent of its.
async fn tenant_with_agent(
    commands: &Commands,
    slug: &str,
    limits: LimitOverrides,
) -> (TenantContext, AgentId) {
    let platform = TenantContext::system(TenantId::new());
    let created = CreateTenant {
        slug: slug.into(),
        name: slug.into(),
        plan: Plan::Starter,
        partner_id: None,
        settings: TenantSettings::default(),
        limits,
        parent: None,
    };
    commands.tenant(&platform, &TenantCommand::CreateTenant(created)).await.unwrap();
    let agent_id = AgentId::new();
    let agent = CreateAgent {
        agent_id,
        name: "a".into(),
        model: "m".into(),
        system_prompt: String::new(),
        tool_ids: vec![],
    };
    commands.tenant(&platform, &TenantCommand::CreateAgent(agent)).await.unwrap();
    (platform, agent_id)
}

/// Two processes over one store, each deciding on the states it cached: a change made
/// by one is never missed by the other's next decision.
async fn two_nodes(h: &Harness) {
    use tenantry_domain::conversation::ConversationCommand;
    use tenantry_domain::event::{MessageRole, TokenUsage};
    use tenantry_domain::{ConversationId, MessageId};

    let (a, b) = (
        Commands::new(h.store.clone(), PlanCatalog::default()),
        Commands::new(h.store.clone(), PlanCatalog::default()),
    );
    let limits = LimitOverrides { tokens_per_month: Some(100), ..Default::default() };
    let (platform, agent_id) = tenant_with_agent(&a, "pair", limits).await;
    let conversation = ConversationId::new();
    let open = ConversationCommand::Open(OpenConversation {
        conversation_id: conversation,
        agent_id,
        user_id: None,
        title: None,
    });
    a.conversation(&platform, conversation, &open).await.unwrap();
    // B has not read the conversation: an open of it is taken as new at first, and is
    // refused all the same, with nothing written.
    let again = b.conversation(&platform, conversation, &open).await;
    assert!(
        matches!(again, Err(CommandError::Rejected(Rejection::ConversationAlreadyExists(id))) if id == conversation),
        "{again:?}"
    );
    let say = |tokens: Option<u64>| {
        ConversationCommand::AppendMessage(AppendMessage {
            conversation_id: conversation,
            message_id: MessageId::new(),
            role: MessageRole::Assistant,
            content: "hi".into(),
            model: Some("m".into()),
            usage: tokens.map(|t| TokenUsage { prompt_tokens: 0, completion_tokens: t }),
        })
    };

    // B caches the tenant, the conversation and the month at 30 tokens; A bills 60 more.
    b.conversation(&platform, conversation, &say(Some(30))).await.unwrap();
    a.conversation(&platform, conversation, &say(Some(60))).await.unwrap();
    // 30 + 20 would fit B's cached month; 110 does not fit the month.
    let over = b.conversation(&platform, conversation, &say(Some(20))).await;
    assert!(
        matches!(
            over,
            Err(CommandError::Rejected(Rejection::LimitReached {
                limit: LimitName::TokensPerMonth,
                max: 100
            }))
        ),
        "{over:?}"
    );
    b.conversation(&platform, conversation, &say(Some(10))).await.unwrap();

    // A suspends the tenant: B's next command is refused though its conversation did not move.
    a.tenant(&platform, &TenantCommand::SuspendTenant(SuspendTenant { reason: "unpaid".into() }))
        .await
        .unwrap();
    let refused = b.conversation(&platform, conversation, &say(None)).await;
    assert!(matches!(refused, Err(CommandError::Rejected(Rejection::TenantSuspended))), "{refused:?}");
    // A resumes it: B, whose cache says suspended, is not refused for it.
    a.tenant(&platform, &TenantCommand::ResumeTenant(ResumeTenant)).await.unwrap();
    b.conversation(&platform, conversation, &say(None)).await.unwrap();

    // What both decided on equals the streams read afresh.
    let fresh = Commands::new(h.store.clone(), PlanCatalog::default());
    for node in [&a, &b, &fresh] {
        let tenant = node.tenant_now(&platform).await.unwrap();
        assert!(!tenant.suspended);
    }
    let messages = h
        .store
        .stream_version(&platform, &tenantry_domain::StreamId::conversation(conversation))
        .await
        .unwrap();
    assert_eq!(messages, 1 + 4, "opened, then 30, 60, 10 and one message after resuming");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_never_decide_on_what_the_other_changed_on_sqlite() {
    two_nodes(&Harness::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_never_decide_on_what_the_other_changed_on_postgres() {
    if let Some(h) = Harness::postgres().await {
        two_nodes(&h).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_creates_against_a_limit_of_five_create_five_on_sqlite() {
    race(&Harness::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_creates_against_a_limit_of_five_create_five_on_postgres() {
    if let Some(h) = Harness::postgres().await {
        race(&h).await;
    }
}

/// Opens of one new conversation racing on eight nodes, none of which has read it: one is
/// written, the others are refused as already open, and the one that opened it goes on
/// appending to it.
async fn racing_opens(h: &Harness) {
    use tenantry_domain::conversation::ConversationCommand;
    use tenantry_domain::event::MessageRole;
    use tenantry_domain::{ConversationId, MessageId, StreamId};

    let setup = Commands::new(h.store.clone(), PlanCatalog::default());
    let (platform, agent_id) = tenant_with_agent(&setup, "openers", LimitOverrides::default()).await;

    let conversation = ConversationId::new();
    let open = ConversationCommand::Open(OpenConversation {
        conversation_id: conversation,
        agent_id,
        user_id: None,
        title: None,
    });
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (node, ctx, open) =
            (Commands::new(h.store.clone(), PlanCatalog::default()), platform.clone(), open.clone());
        tasks.push(tokio::spawn(async move {
            let outcome = node.conversation(&ctx, conversation, &open).await;
            (node, outcome)
        }));
    }
    let (mut opened, mut refused) = (Vec::new(), 0);
    for t in tasks {
        match t.await.unwrap() {
            (node, Ok(_)) => opened.push(node),
            (_, Err(CommandError::Rejected(Rejection::ConversationAlreadyExists(id))))
                if id == conversation =>
            {
                refused += 1
            }
            (_, Err(e)) => panic!("unexpected: {e}"),
        }
    }
    assert_eq!((opened.len(), refused), (1, 7));
    let say = ConversationCommand::AppendMessage(AppendMessage {
        conversation_id: conversation,
        message_id: MessageId::new(),
        role: MessageRole::User,
        content: "hello".into(),
        model: None,
        usage: None,
    });
    opened[0].conversation(&platform, conversation, &say).await.unwrap();
    let version = h.store.stream_version(&platform, &StreamId::conversation(conversation)).await.unwrap();
    assert_eq!(version, 2, "one open, one message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_opens_of_an_unread_conversation_open_it_once_on_sqlite() {
    racing_opens(&Harness::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_opens_of_an_unread_conversation_open_it_once_on_postgres() {
    if let Some(h) = Harness::postgres().await {
        racing_opens(&h).await;
    }
}
