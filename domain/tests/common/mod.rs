//! Givens and contexts the decider tests share.

#![allow(dead_code)] // each test binary uses its own part

use tenantry_domain::command::*;
use tenantry_domain::event::*;
use tenantry_domain::limits::{LimitOverrides, Plan, PlanCatalog};
use tenantry_domain::tenant::{self, TenantState};
use tenantry_domain::testing::Scenario;
use tenantry_domain::*;

pub(crate) type TenantScenario = Scenario<TenantState, fn(TenantState, &Event) -> TenantState>;

pub(crate) fn platform(tenant: TenantId) -> TenantContext {
    TenantContext::system(tenant)
}

pub(crate) fn admin(tenant: TenantId) -> TenantContext {
    TenantContext { role: Role::Admin, ..TenantContext::system(tenant) }
}

pub(crate) fn as_user(tenant: TenantId, user: UserId) -> TenantContext {
    TenantContext { role: Role::User, actor: Actor::User(user), ..TenantContext::system(tenant) }
}

pub(crate) fn create_cmd(limits: LimitOverrides) -> CreateTenant {
    CreateTenant {
        slug: "acme".into(),
        name: "Acme".into(),
        plan: Plan::Starter,
        partner_id: None,
        settings: Settings::default(),
        limits,
        parent: None,
    }
}

pub(crate) fn created(limits: LimitOverrides) -> Event {
    let c = create_cmd(limits);
    Event::TenantCreated(TenantCreated {
        slug: c.slug,
        name: c.name,
        plan: c.plan,
        partner_id: c.partner_id,
        settings: c.settings,
        limits: c.limits,
        ancestors: Vec::new(),
    })
}

pub(crate) fn tenant_with(max_agents: u64) -> Event {
    created(LimitOverrides { max_agents: Some(max_agents), ..Default::default() })
}

pub(crate) fn given(events: &[Event]) -> TenantScenario {
    Scenario::new(TenantState::new(PlanCatalog::default()), tenant::evolve as fn(_, &_) -> _).given(events)
}

pub(crate) fn state_of(events: &[Event]) -> TenantState {
    events.iter().fold(TenantState::new(PlanCatalog::default()), tenant::evolve)
}

pub(crate) fn agent_cmd(id: AgentId) -> CreateAgent {
    CreateAgent {
        agent_id: id,
        name: "a".into(),
        model: "m".into(),
        system_prompt: String::new(),
        tool_ids: vec![],
    }
}

pub(crate) fn agent_created(id: AgentId) -> Event {
    Event::AgentCreated(AgentCreated {
        agent_id: id,
        name: "a".into(),
        model: "m".into(),
        system_prompt: String::new(),
        tool_ids: vec![],
    })
}

pub(crate) fn tool_registered(id: ToolId) -> Event {
    Event::ToolRegistered(ToolRegistered {
        tool_id: id,
        name: "search".into(),
        description: String::new(),
        endpoint: "https://tools.example/search".into(),
        parameters: "{}".into(),
        enabled: true,
    })
}

pub(crate) fn user_added(id: UserId, email: &str) -> Event {
    Event::UserAdded(UserAdded { user_id: id, email: email.into(), role: Role::User, identity: None })
}

pub(crate) fn update(name: Option<&str>) -> UpdateTenant {
    UpdateTenant { name: name.map(Into::into), ..Default::default() }
}
