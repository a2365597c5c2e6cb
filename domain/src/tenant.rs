//! The tenant aggregate: its lifecycle and directory (agents, tools, users, API keys), all on
//! the `tenant` stream so that every count limit is decided against one consistent version.

use std::collections::BTreeMap;

use crate::context::{Role, TenantContext};
use crate::event::*;
use crate::ids::{AgentId, ApiKeyId, PartnerId, ToolId, UserId};
use crate::limits::{LimitName, LimitOverrides, Limits, Plan, PlanCatalog};
use crate::personal::Personal;
use crate::rejection::Rejection;
use crate::validate;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentEntry {
    pub archived: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    pub email: Personal,
    pub role: Role,
    pub removed: bool,
    /// Erased: removed, and their personal data unreadable for good.
    pub erased: bool,
}

/// What `decide` needs to know about a tenant; folded from its `tenant` stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantState {
    plans: PlanCatalog,
    pub exists: bool,
    pub slug: String,
    pub name: String,
    pub plan: Plan,
    pub partner_id: Option<PartnerId>,
    pub settings: Settings,
    pub overrides: LimitOverrides,
    pub suspended: bool,
    pub agents: BTreeMap<AgentId, AgentEntry>,
    /// Tool id to whether it was removed.
    pub tools: BTreeMap<ToolId, bool>,
    /// Key id to whether it was revoked.
    pub api_keys: BTreeMap<ApiKeyId, bool>,
    pub users: BTreeMap<UserId, UserEntry>,
}

impl TenantState {
    /// The state before the tenant's first event; plan defaults come from config.
    pub fn new(plans: PlanCatalog) -> Self {
        Self {
            plans,
            exists: false,
            slug: String::new(),
            name: String::new(),
            plan: Plan::Starter,
            partner_id: None,
            settings: Settings::default(),
            overrides: LimitOverrides::default(),
            suspended: false,
            agents: BTreeMap::new(),
            tools: BTreeMap::new(),
            api_keys: BTreeMap::new(),
            users: BTreeMap::new(),
        }
    }

    /// The plan's limits with this tenant's overrides applied.
    pub fn limits(&self) -> Limits {
        self.overrides.apply_to(self.plans.limits(self.plan))
    }

    pub fn active_agents(&self) -> u64 {
        self.agents.values().filter(|a| !a.archived).count() as u64
    }

    pub fn active_users(&self) -> u64 {
        self.users.values().filter(|u| !u.removed).count() as u64
    }

    pub fn active_api_keys(&self) -> u64 {
        self.api_keys.values().filter(|revoked| !**revoked).count() as u64
    }

    pub fn agent_is_active(&self, id: AgentId) -> bool {
        self.agents.get(&id).is_some_and(|a| !a.archived)
    }

    fn tool_is_active(&self, id: ToolId) -> bool {
        self.tools.get(&id).is_some_and(|removed| !removed)
    }
}

/// What can be asked of a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantCommand {
    CreateTenant(TenantCreated),
    UpdateTenant(TenantUpdated),
    SuspendTenant {
        reason: String,
    },
    ResumeTenant,
    CreateAgent(AgentCreated),
    UpdateAgent(AgentUpdated),
    ArchiveAgent {
        agent_id: AgentId,
    },
    RegisterTool(ToolRegistered),
    UpdateTool(ToolUpdated),
    RemoveTool {
        tool_id: ToolId,
    },
    IssueApiKey(ApiKeyIssued),
    RevokeApiKey {
        key_id: ApiKeyId,
    },
    AddUser(UserAdded),
    UpdateUser(UserUpdated),
    RemoveUser {
        user_id: UserId,
    },
    /// Erase a person: remove the user; the store destroys their key.
    EraseUser {
        user_id: UserId,
    },
}

fn require(cond: bool, rejection: Rejection) -> Result<(), Rejection> {
    if cond { Ok(()) } else { Err(rejection) }
}

fn within(limit: LimitName, used: u64, max: u64) -> Result<(), Rejection> {
    require(used < max, Rejection::LimitReached { limit, max })
}

fn is_platform(role: Role) -> bool {
    matches!(role, Role::SuperAdmin | Role::PartnerAdmin)
}

/// Decide which events a command produces, or why it is refused. Pure.
pub fn decide(
    ctx: &TenantContext,
    state: &TenantState,
    command: &TenantCommand,
) -> Result<Vec<Event>, Rejection> {
    use TenantCommand as C;
    if let C::CreateTenant(c) = command {
        require(is_platform(ctx.role), Rejection::Forbidden)?;
        // A partner admin creates tenants under its own partner only.
        if ctx.role == Role::PartnerAdmin {
            require(ctx.partner_id.is_some() && c.partner_id == ctx.partner_id, Rejection::Forbidden)?;
        }
        require(!state.exists, Rejection::TenantAlreadyExists)?;
        validate::slug(&c.slug)?;
        validate::text("name", &c.name, 1, 200)?;
        validate::settings(&c.settings)?;
        return Ok(vec![Event::TenantCreated(c.clone())]);
    }
    require(state.exists, Rejection::TenantNotFound)?;
    require(ctx.role.can_administer(), Rejection::Forbidden)?;
    match command {
        C::CreateTenant(_) => unreachable!("handled above"),
        C::ResumeTenant => {
            require(is_platform(ctx.role), Rejection::Forbidden)?;
            require(state.suspended, Rejection::TenantNotSuspended)?;
            return Ok(vec![Event::TenantResumed(TenantResumed {})]);
        }
        C::SuspendTenant { reason } => {
            require(is_platform(ctx.role), Rejection::Forbidden)?;
            validate::text("reason", reason, 0, 1000)?;
            // Suspending twice is not an error: the tenant is suspended either way.
            if state.suspended {
                return Ok(vec![]);
            }
            return Ok(vec![Event::TenantSuspended(TenantSuspended { reason: reason.clone() })]);
        }
        // Erasure is owed even by a suspended tenant.
        C::EraseUser { user_id } => {
            let user = state.users.get(user_id).ok_or(Rejection::UserNotFound(*user_id))?;
            if user.erased {
                // Erasing twice is harmless: nothing more to write.
                return Ok(vec![]);
            }
            return Ok(vec![Event::UserErased(UserErased { user_id: *user_id })]);
        }
        _ => {}
    }
    require(!state.suspended, Rejection::TenantSuspended)?;
    let limits = state.limits();
    let event = match command {
        C::CreateTenant(_) | C::ResumeTenant | C::SuspendTenant { .. } | C::EraseUser { .. } => {
            unreachable!("handled above")
        }
        C::UpdateTenant(c) => {
            if c.plan.is_some() || c.limits.is_some() {
                require(is_platform(ctx.role), Rejection::Forbidden)?;
            }
            if let Some(name) = &c.name {
                validate::text("name", name, 1, 200)?;
            }
            if let Some(settings) = &c.settings {
                validate::settings(settings)?;
            }
            Event::TenantUpdated(c.clone())
        }
        C::CreateAgent(c) => {
            require(!state.agents.contains_key(&c.agent_id), Rejection::AgentAlreadyExists(c.agent_id))?;
            within(LimitName::MaxAgents, state.active_agents(), limits.max_agents)?;
            validate::agent(&c.name, &c.model, &c.system_prompt, &c.tool_ids)?;
            for tool in &c.tool_ids {
                require(state.tool_is_active(*tool), Rejection::ToolNotFound(*tool))?;
            }
            Event::AgentCreated(c.clone())
        }
        C::UpdateAgent(c) => {
            require(state.agent_is_active(c.agent_id), Rejection::AgentNotFound(c.agent_id))?;
            if let Some(name) = &c.name {
                validate::text("name", name, 1, 200)?;
            }
            if let Some(model) = &c.model {
                validate::text("model", model, 1, 200)?;
            }
            if let Some(prompt) = &c.system_prompt {
                validate::text("system_prompt", prompt, 0, 100_000)?;
            }
            for tool in c.tool_ids.iter().flatten() {
                require(state.tool_is_active(*tool), Rejection::ToolNotFound(*tool))?;
            }
            Event::AgentUpdated(c.clone())
        }
        C::ArchiveAgent { agent_id } => {
            require(state.agent_is_active(*agent_id), Rejection::AgentNotFound(*agent_id))?;
            Event::AgentArchived(AgentArchived { agent_id: *agent_id })
        }
        C::RegisterTool(c) => {
            require(!state.tools.contains_key(&c.tool_id), Rejection::ToolAlreadyExists(c.tool_id))?;
            validate::text("name", &c.name, 1, 200)?;
            validate::text("description", &c.description, 0, 10_000)?;
            validate::text("endpoint", &c.endpoint, 1, 2_000)?;
            validate::text("parameters", &c.parameters, 0, 100_000)?;
            Event::ToolRegistered(c.clone())
        }
        C::UpdateTool(c) => {
            require(state.tool_is_active(c.tool_id), Rejection::ToolNotFound(c.tool_id))?;
            Event::ToolUpdated(c.clone())
        }
        C::RemoveTool { tool_id } => {
            require(state.tool_is_active(*tool_id), Rejection::ToolNotFound(*tool_id))?;
            Event::ToolRemoved(ToolRemoved { tool_id: *tool_id })
        }
        C::IssueApiKey(c) => {
            require(!state.api_keys.contains_key(&c.key_id), Rejection::ApiKeyAlreadyExists(c.key_id))?;
            // A key never carries more power than the one that made it.
            require(!matches!(c.role, Role::SuperAdmin | Role::PartnerAdmin), Rejection::Forbidden)?;
            within(LimitName::MaxApiKeys, state.active_api_keys(), limits.max_api_keys)?;
            validate::text("name", &c.name, 1, 200)?;
            match (c.role, c.user_id) {
                (Role::User, Some(user)) => require(
                    state.users.get(&user).is_some_and(|u| !u.removed),
                    Rejection::UserNotFound(user),
                )?,
                (Role::User, None) => {
                    return Err(Rejection::invalid("user_id", "a user key names the user it acts as"));
                }
                (_, Some(_)) => return Err(Rejection::invalid("user_id", "only a user key acts as a user")),
                (_, None) => {}
            }
            Event::ApiKeyIssued(c.clone())
        }
        C::RevokeApiKey { key_id } => {
            require(state.api_keys.get(key_id) == Some(&false), Rejection::ApiKeyNotFound(*key_id))?;
            Event::ApiKeyRevoked(ApiKeyRevoked { key_id: *key_id })
        }
        C::AddUser(c) => {
            require(!state.users.contains_key(&c.user_id), Rejection::UserAlreadyExists(c.user_id))?;
            require(!matches!(c.role, Role::SuperAdmin | Role::PartnerAdmin), Rejection::Forbidden)?;
            validate::email(c.email.as_str())?;
            require(!email_taken(state, c.email.as_str(), None), Rejection::EmailTaken)?;
            within(LimitName::MaxUsers, state.active_users(), limits.max_users)?;
            Event::UserAdded(c.clone())
        }
        C::UpdateUser(c) => {
            require(
                state.users.get(&c.user_id).is_some_and(|u| !u.removed),
                Rejection::UserNotFound(c.user_id),
            )?;
            if let Some(email) = &c.email {
                validate::email(email.as_str())?;
                require(!email_taken(state, email.as_str(), Some(c.user_id)), Rejection::EmailTaken)?;
            }
            require(!matches!(c.role, Some(Role::SuperAdmin | Role::PartnerAdmin)), Rejection::Forbidden)?;
            Event::UserUpdated(c.clone())
        }
        C::RemoveUser { user_id } => {
            require(state.users.get(user_id).is_some_and(|u| !u.removed), Rejection::UserNotFound(*user_id))?;
            Event::UserRemoved(UserRemoved { user_id: *user_id })
        }
    };
    Ok(vec![event])
}

fn email_taken(state: &TenantState, email: &str, except: Option<UserId>) -> bool {
    state
        .users
        .iter()
        .any(|(id, u)| !u.removed && Some(*id) != except && u.email.as_str().eq_ignore_ascii_case(email))
}

/// Fold one event into the state. Pure and total: events of other aggregates change nothing.
pub fn evolve(mut state: TenantState, event: &Event) -> TenantState {
    match event {
        Event::TenantCreated(e) => {
            state.exists = true;
            state.slug = e.slug.clone();
            state.name = e.name.clone();
            state.plan = e.plan;
            state.partner_id = e.partner_id;
            state.settings = e.settings.clone();
            state.overrides = e.limits;
        }
        Event::TenantUpdated(e) => {
            if let Some(name) = &e.name {
                state.name = name.clone();
            }
            if let Some(plan) = e.plan {
                state.plan = plan;
            }
            if let Some(settings) = &e.settings {
                state.settings = settings.clone();
            }
            if let Some(limits) = e.limits {
                state.overrides = state.overrides.merge(limits);
            }
        }
        Event::TenantSuspended(_) => state.suspended = true,
        Event::TenantResumed(_) => state.suspended = false,
        Event::AgentCreated(e) => {
            state.agents.insert(e.agent_id, AgentEntry { archived: false });
        }
        Event::AgentArchived(e) => {
            if let Some(agent) = state.agents.get_mut(&e.agent_id) {
                agent.archived = true;
            }
        }
        Event::ToolRegistered(e) => {
            state.tools.insert(e.tool_id, false);
        }
        Event::ToolRemoved(e) => {
            state.tools.insert(e.tool_id, true);
        }
        Event::ApiKeyIssued(e) => {
            state.api_keys.insert(e.key_id, false);
        }
        Event::ApiKeyRevoked(e) => {
            state.api_keys.insert(e.key_id, true);
        }
        Event::UserAdded(e) => {
            state.users.insert(
                e.user_id,
                UserEntry { email: e.email.clone(), role: e.role, removed: false, erased: false },
            );
        }
        Event::UserUpdated(e) => {
            if let Some(user) = state.users.get_mut(&e.user_id) {
                if let Some(email) = &e.email {
                    user.email = email.clone();
                }
                if let Some(role) = e.role {
                    user.role = role;
                }
            }
        }
        Event::UserRemoved(e) => {
            if let Some(user) = state.users.get_mut(&e.user_id) {
                user.removed = true;
            }
        }
        Event::UserErased(e) => {
            if let Some(user) = state.users.get_mut(&e.user_id) {
                user.removed = true;
                user.erased = true;
                user.email = Personal::Erased;
            }
        }
        Event::AgentUpdated(_)
        | Event::ToolUpdated(_)
        | Event::ConversationOpened(_)
        | Event::MessageAppended(_)
        | Event::UsageRecorded(_)
        | Event::AccessDenied(_)
        | Event::TenantPurged(_)
        | Event::PartnerCreated(_)
        | Event::SlugClaimed(_)
        | Event::SlugReleased(_) => {}
    }
    state
}
