//! One decision per tenant command: what it writes, or why it is refused.

use super::TenantState;
use crate::command::*;
use crate::context::{Role, TenantContext};
use crate::event::*;
use crate::ids::UserId;
use crate::limits::LimitName;
use crate::personal::Personal;
use crate::rejection::Rejection;
use crate::validate;

fn require(cond: bool, rejection: Rejection) -> Result<(), Rejection> {
    if cond { Ok(()) } else { Err(rejection) }
}

fn within(limit: LimitName, used: u64, max: u64) -> Result<(), Rejection> {
    require(used < max, Rejection::LimitReached { limit, max })
}

fn is_platform(role: Role) -> bool {
    matches!(role, Role::SuperAdmin | Role::PartnerAdmin)
}

/// A role a tenant's own user or key may hold: never a platform role.
fn tenant_role(field: &'static str, role: Role) -> Result<(), Rejection> {
    require(!is_platform(role), Rejection::invalid(field, "must be `admin` or `user`"))
}

/// The tenant exists and the caller may administer it.
fn administered(ctx: &TenantContext, state: &TenantState) -> Result<(), Rejection> {
    require(state.exists, Rejection::TenantNotFound)?;
    require(ctx.role.can_administer(), Rejection::Forbidden)
}

/// As [`administered`], and the tenant is not suspended.
fn open(ctx: &TenantContext, state: &TenantState) -> Result<(), Rejection> {
    administered(ctx, state)?;
    require(!state.suspended, Rejection::TenantSuspended)
}

fn email_taken(state: &TenantState, email: &str, except: Option<UserId>) -> bool {
    state
        .users
        .iter()
        .any(|(id, u)| !u.removed && Some(*id) != except && u.email.as_str().eq_ignore_ascii_case(email))
}

pub(super) fn create_tenant(
    ctx: &TenantContext,
    state: &TenantState,
    c: &CreateTenant,
) -> Result<Vec<Event>, Rejection> {
    require(is_platform(ctx.role), Rejection::Forbidden)?;
    // A partner admin creates tenants under its own partner only.
    if ctx.role == Role::PartnerAdmin {
        let partner = c.partner_id.or(c.parent.as_ref().and_then(|p| p.partner_id));
        require(ctx.partner_id.is_some() && partner == ctx.partner_id, Rejection::Forbidden)?;
    }
    require(!state.exists, Rejection::TenantAlreadyExists)?;
    validate::slug(&c.slug)?;
    validate::text("name", &c.name, 1, 200)?;
    validate::settings(&c.settings)?;
    validate::limits(&c.limits)?;
    let mut ancestors = Vec::new();
    let mut partner_id = c.partner_id;
    if let Some(parent) = &c.parent {
        require(parent.exists, Rejection::invalid("parent_id", "no such tenant"))?;
        require(
            parent.ancestors.len() + 1 < super::MAX_DEPTH,
            Rejection::invalid(
                "parent_id",
                format!("a tenant tree is at most {} levels deep", super::MAX_DEPTH),
            ),
        )?;
        if ctx.role == Role::PartnerAdmin {
            require(parent.partner_id == ctx.partner_id, Rejection::Forbidden)?;
        }
        // A child is its parent's partner's, whatever the caller says.
        match (c.partner_id, parent.partner_id) {
            (Some(asked), Some(theirs)) if asked != theirs => {
                return Err(Rejection::invalid("partner_id", "a child tenant has its parent's partner"));
            }
            (Some(_), None) => return Err(Rejection::invalid("partner_id", "the parent has no partner")),
            _ => partner_id = parent.partner_id,
        }
        ancestors = parent.ancestors.clone();
        ancestors.push(parent.tenant_id);
    }
    Ok(vec![Event::TenantCreated(TenantCreated {
        slug: c.slug.clone(),
        name: c.name.clone(),
        plan: c.plan,
        partner_id,
        settings: c.settings.clone(),
        limits: c.limits,
        ancestors,
    })])
}

pub(super) fn update_tenant(
    ctx: &TenantContext,
    state: &TenantState,
    c: &UpdateTenant,
) -> Result<Vec<Event>, Rejection> {
    open(ctx, state)?;
    if c.plan.is_some() || c.limits.is_some() {
        require(is_platform(ctx.role), Rejection::Forbidden)?;
    }
    if let Some(name) = &c.name {
        validate::text("name", name, 1, 200)?;
    }
    if let Some(limits) = &c.limits {
        validate::limits(limits)?;
    }
    let settings = c.settings.clone().map(|patch| patch.apply_to(&state.settings));
    if let Some(settings) = &settings {
        validate::settings(settings)?;
    }
    Ok(vec![Event::TenantUpdated(TenantUpdated {
        name: c.name.clone(),
        plan: c.plan,
        settings,
        limits: c.limits,
    })])
}

pub(super) fn suspend_tenant(
    ctx: &TenantContext,
    state: &TenantState,
    c: &SuspendTenant,
) -> Result<Vec<Event>, Rejection> {
    administered(ctx, state)?;
    require(is_platform(ctx.role), Rejection::Forbidden)?;
    validate::text("reason", &c.reason, 0, 1000)?;
    // Suspending twice is not an error: the tenant is suspended either way.
    if state.suspended {
        return Ok(vec![]);
    }
    Ok(vec![Event::TenantSuspended(TenantSuspended { reason: c.reason.clone() })])
}

pub(super) fn resume_tenant(
    ctx: &TenantContext,
    state: &TenantState,
    _: &ResumeTenant,
) -> Result<Vec<Event>, Rejection> {
    administered(ctx, state)?;
    require(is_platform(ctx.role), Rejection::Forbidden)?;
    require(state.suspended, Rejection::TenantNotSuspended)?;
    Ok(vec![Event::TenantResumed(TenantResumed {})])
}

pub(super) fn create_agent(
    ctx: &TenantContext,
    state: &TenantState,
    c: &CreateAgent,
) -> Result<Vec<Event>, Rejection> {
    open(ctx, state)?;
    require(!state.agents.contains_key(&c.agent_id), Rejection::AgentAlreadyExists(c.agent_id))?;
    within(LimitName::MaxAgents, state.active_agents(), state.limits().max_agents)?;
    validate::agent_name(&c.name)?;
    // An agent without a model uses the tenant's default one.
    let model = match (c.model.is_empty(), state.settings_in_effect().default_model) {
        (false, _) => c.model.clone(),
        (true, Some(default)) => default,
        (true, None) => {
            return Err(Rejection::invalid("model", "no model given and no default_model in effect"));
        }
    };
    validate::model("model", &model)?;
    require(state.allows_model(&model), Rejection::ModelNotAllowed(model.clone()))?;
    validate::system_prompt("system_prompt", &c.system_prompt)?;
    validate::prompt_variables(
        "system_prompt",
        &c.system_prompt,
        state.settings_in_effect().custom.as_deref(),
    )?;
    validate::tool_ids(&c.tool_ids)?;
    attachable(state, &c.tool_ids)?;
    Ok(vec![Event::AgentCreated(AgentCreated {
        agent_id: c.agent_id,
        name: c.name.clone(),
        model,
        system_prompt: c.system_prompt.clone(),
        tool_ids: c.tool_ids.clone(),
    })])
}

/// Tools an agent may have: registered, not removed, enabled.
fn attachable(state: &TenantState, tools: &[crate::ids::ToolId]) -> Result<(), Rejection> {
    for tool in tools {
        let entry = state.tools.get(tool).filter(|t| !t.removed).ok_or(Rejection::ToolNotFound(*tool))?;
        require(entry.enabled, Rejection::invalid("tool_ids", format!("tool {tool} is disabled")))?;
    }
    Ok(())
}

pub(super) fn update_agent(
    ctx: &TenantContext,
    state: &TenantState,
    c: &UpdateAgent,
) -> Result<Vec<Event>, Rejection> {
    open(ctx, state)?;
    require(state.agent_is_active(c.agent_id), Rejection::AgentNotFound(c.agent_id))?;
    if let Some(name) = &c.name {
        validate::agent_name(name)?;
    }
    if let Some(model) = &c.model {
        validate::model("model", model)?;
        require(state.allows_model(model), Rejection::ModelNotAllowed(model.clone()))?;
    }
    if let Some(prompt) = &c.system_prompt {
        validate::system_prompt("system_prompt", prompt)?;
        validate::prompt_variables("system_prompt", prompt, state.settings_in_effect().custom.as_deref())?;
    }
    if let Some(tools) = &c.tool_ids {
        validate::tool_ids(tools)?;
        attachable(state, tools)?;
    }
    Ok(vec![Event::AgentUpdated(AgentUpdated {
        agent_id: c.agent_id,
        name: c.name.clone(),
        model: c.model.clone(),
        system_prompt: c.system_prompt.clone(),
        tool_ids: c.tool_ids.clone(),
    })])
}

pub(super) fn archive_agent(
    ctx: &TenantContext,
    state: &TenantState,
    c: &ArchiveAgent,
) -> Result<Vec<Event>, Rejection> {
    open(ctx, state)?;
    require(state.agent_is_active(c.agent_id), Rejection::AgentNotFound(c.agent_id))?;
    Ok(vec![Event::AgentArchived(AgentArchived { agent_id: c.agent_id })])
}

pub(super) fn register_tool(
    ctx: &TenantContext,
    state: &TenantState,
    c: &RegisterTool,
) -> Result<Vec<Event>, Rejection> {
    open(ctx, state)?;
    require(!state.tools.contains_key(&c.tool_id), Rejection::ToolAlreadyExists(c.tool_id))?;
    validate::text("name", &c.name, 1, 200)?;
    validate::tool_description(&c.description)?;
    validate::tool_endpoint(&c.endpoint)?;
    validate::tool_parameters(&c.parameters)?;
    Ok(vec![Event::ToolRegistered(ToolRegistered {
        tool_id: c.tool_id,
        name: c.name.clone(),
        description: c.description.clone(),
        endpoint: c.endpoint.clone(),
        parameters: c.parameters.clone(),
        enabled: c.enabled,
    })])
}

pub(super) fn update_tool(
    ctx: &TenantContext,
    state: &TenantState,
    c: &UpdateTool,
) -> Result<Vec<Event>, Rejection> {
    open(ctx, state)?;
    require(state.tool_is_active(c.tool_id), Rejection::ToolNotFound(c.tool_id))?;
    // The same bounds as a registration: a change cannot store what a create refuses.
    if let Some(description) = &c.description {
        validate::tool_description(description)?;
    }
    if let Some(endpoint) = &c.endpoint {
        validate::tool_endpoint(endpoint)?;
    }
    if let Some(parameters) = &c.parameters {
        validate::tool_parameters(parameters)?;
    }
    Ok(vec![Event::ToolUpdated(ToolUpdated {
        tool_id: c.tool_id,
        description: c.description.clone(),
        endpoint: c.endpoint.clone(),
        parameters: c.parameters.clone(),
        enabled: c.enabled,
    })])
}

pub(super) fn remove_tool(
    ctx: &TenantContext,
    state: &TenantState,
    c: &RemoveTool,
) -> Result<Vec<Event>, Rejection> {
    open(ctx, state)?;
    require(state.tool_is_active(c.tool_id), Rejection::ToolNotFound(c.tool_id))?;
    Ok(vec![Event::ToolRemoved(ToolRemoved { tool_id: c.tool_id })])
}

pub(super) fn issue_api_key(
    ctx: &TenantContext,
    state: &TenantState,
    c: &IssueApiKey,
) -> Result<Vec<Event>, Rejection> {
    open(ctx, state)?;
    require(!state.api_keys.contains_key(&c.key_id), Rejection::ApiKeyAlreadyExists(c.key_id))?;
    // A key never carries more power than the one that made it.
    tenant_role("role", c.role)?;
    validate::text("name", &c.name, 1, 200)?;
    match (c.role, c.user_id) {
        (Role::User, Some(user)) => {
            require(state.users.get(&user).is_some_and(|u| !u.removed), Rejection::UserNotFound(user))?
        }
        (Role::User, None) => {
            return Err(Rejection::invalid("user_id", "a user key names the user it acts as"));
        }
        (_, Some(_)) => return Err(Rejection::invalid("user_id", "only a user key acts as a user")),
        (_, None) => {}
    }
    if let Some(expires_at) = c.expires_at {
        require(expires_at > c.now, Rejection::invalid("expires_at", "must lie in the future"))?;
    }
    within(LimitName::MaxApiKeys, state.active_api_keys(), state.limits().max_api_keys)?;
    let mut scopes = c.scopes.clone();
    scopes.sort_unstable();
    scopes.dedup();
    Ok(vec![Event::ApiKeyIssued(ApiKeyIssued {
        key_id: c.key_id,
        name: c.name.clone(),
        role: c.role,
        secret_hash: c.secret_hash.clone(),
        user_id: c.user_id,
        scopes: scopes.iter().map(|s| s.as_str().to_owned()).collect(),
        expires_at: c.expires_at,
    })])
}

/// The longest time an old secret may keep working after a rotation: a week.
pub const MAX_ROTATION_GRACE_SECONDS: u64 = 7 * 24 * 3600;

pub(super) fn rotate_api_key(
    ctx: &TenantContext,
    state: &TenantState,
    c: &RotateApiKey,
) -> Result<Vec<Event>, Rejection> {
    open(ctx, state)?;
    require(state.key_is_active(c.key_id), Rejection::ApiKeyNotFound(c.key_id))?;
    require(
        c.grace_seconds <= MAX_ROTATION_GRACE_SECONDS,
        Rejection::invalid("grace_seconds", format!("at most {MAX_ROTATION_GRACE_SECONDS} (a week)")),
    )?;
    let grace_until = (c.grace_seconds > 0)
        .then(|| c.now + chrono::Duration::seconds(i64::try_from(c.grace_seconds).unwrap_or(i64::MAX)));
    Ok(vec![Event::ApiKeyRotated(ApiKeyRotated {
        key_id: c.key_id,
        secret_hash: c.secret_hash.clone(),
        grace_until,
    })])
}

pub(super) fn revoke_api_key(
    ctx: &TenantContext,
    state: &TenantState,
    c: &RevokeApiKey,
) -> Result<Vec<Event>, Rejection> {
    open(ctx, state)?;
    require(state.key_is_active(c.key_id), Rejection::ApiKeyNotFound(c.key_id))?;
    Ok(vec![Event::ApiKeyRevoked(ApiKeyRevoked { key_id: c.key_id })])
}

pub(super) fn add_user(
    ctx: &TenantContext,
    state: &TenantState,
    c: &AddUser,
) -> Result<Vec<Event>, Rejection> {
    open(ctx, state)?;
    require(!state.users.contains_key(&c.user_id), Rejection::UserAlreadyExists(c.user_id))?;
    tenant_role("role", c.role)?;
    validate::email(&c.email)?;
    require(!email_taken(state, &c.email, None), Rejection::EmailTaken)?;
    within(LimitName::MaxUsers, state.active_users(), state.limits().max_users)?;
    Ok(vec![Event::UserAdded(UserAdded {
        user_id: c.user_id,
        email: Personal::Text(c.email.clone()),
        role: c.role,
        identity: None,
    })])
}

/// The first token of a subject makes its user; later ones write nothing. A subject whose
/// user was removed or erased is refused: removing a user stops their tokens.
pub(super) fn provision_user(
    ctx: &TenantContext,
    state: &TenantState,
    c: &ProvisionUser,
) -> Result<Vec<Event>, Rejection> {
    open(ctx, state)?;
    if let Some((user, entry)) = state.identity_user(&c.digest) {
        require(!entry.removed, Rejection::IdentityRetired(user))?;
        return Ok(vec![]);
    }
    require(!state.users.contains_key(&c.user_id), Rejection::UserAlreadyExists(c.user_id))?;
    tenant_role("role", c.role)?;
    validate::text("issuer", &c.issuer, 1, 512)?;
    validate::text("subject", &c.subject, 1, 512)?;
    require(!c.digest.is_empty(), Rejection::invalid("digest", "must not be empty"))?;
    // The provider vouches for the address; only its shape is checked.
    let email = c.email.clone().filter(|e| validate::email(e).is_ok()).unwrap_or_default();
    within(LimitName::MaxUsers, state.active_users(), state.limits().max_users)?;
    Ok(vec![Event::UserAdded(UserAdded {
        user_id: c.user_id,
        email: Personal::Text(email),
        role: c.role,
        identity: Some(ExternalIdentity {
            issuer: c.issuer.clone(),
            subject: Personal::Text(c.subject.clone()),
            digest: c.digest.clone(),
        }),
    })])
}

pub(super) fn update_user(
    ctx: &TenantContext,
    state: &TenantState,
    c: &UpdateUser,
) -> Result<Vec<Event>, Rejection> {
    open(ctx, state)?;
    require(state.users.get(&c.user_id).is_some_and(|u| !u.removed), Rejection::UserNotFound(c.user_id))?;
    if let Some(email) = &c.email {
        validate::email(email)?;
        require(!email_taken(state, email, Some(c.user_id)), Rejection::EmailTaken)?;
    }
    if let Some(role) = c.role {
        tenant_role("role", role)?;
    }
    Ok(vec![Event::UserUpdated(UserUpdated {
        user_id: c.user_id,
        email: c.email.clone().map(Personal::Text),
        role: c.role,
    })])
}

pub(super) fn remove_user(
    ctx: &TenantContext,
    state: &TenantState,
    c: &RemoveUser,
) -> Result<Vec<Event>, Rejection> {
    open(ctx, state)?;
    require(state.users.get(&c.user_id).is_some_and(|u| !u.removed), Rejection::UserNotFound(c.user_id))?;
    Ok(vec![Event::UserRemoved(UserRemoved { user_id: c.user_id })])
}

/// Erasure is owed even by a suspended tenant, and erasing twice writes nothing more.
pub(super) fn erase_user(
    ctx: &TenantContext,
    state: &TenantState,
    c: &EraseUser,
) -> Result<Vec<Event>, Rejection> {
    administered(ctx, state)?;
    let user = state.users.get(&c.user_id).ok_or(Rejection::UserNotFound(c.user_id))?;
    require(!state.legal_hold, Rejection::LegalHold)?;
    if user.erased {
        return Ok(vec![]);
    }
    Ok(vec![Event::UserErased(UserErased { user_id: c.user_id })])
}

fn credential_secret(secret: &str) -> Result<(), Rejection> {
    validate::text("secret", secret, 1, 4096)?;
    require(
        !secret.chars().any(char::is_whitespace),
        Rejection::invalid("secret", "no spaces or line breaks"),
    )
}

pub(super) fn add_credential(
    ctx: &TenantContext,
    state: &TenantState,
    c: &AddCredential,
) -> Result<Vec<Event>, Rejection> {
    open(ctx, state)?;
    require(
        !state.credentials.contains_key(&c.credential_id),
        Rejection::invalid("credential_id", "already used"),
    )?;
    require(
        super::PROVIDERS.contains(&c.provider.as_str()),
        Rejection::invalid("provider", format!("one of {}", super::PROVIDERS.join(", "))),
    )?;
    validate::text("name", &c.name, 1, 200)?;
    credential_secret(&c.secret)?;
    if let Some(url) = &c.base_url {
        validate::text("base_url", url, 1, 2048)?;
        require(
            url.starts_with("https://") || url.starts_with("http://"),
            Rejection::invalid("base_url", "an http(s) URL"),
        )?;
    }
    let live = state.credentials.values().filter(|c| !c.removed).count() as u64;
    require(
        live < super::MAX_CREDENTIALS,
        Rejection::invalid("credentials", format!("at most {}", super::MAX_CREDENTIALS)),
    )?;
    Ok(vec![Event::CredentialAdded(CredentialAdded {
        credential_id: c.credential_id,
        provider: c.provider.clone(),
        name: c.name.clone(),
        secret: c.secret.clone(),
        base_url: c.base_url.clone(),
    })])
}

/// The tenant is open to the caller and has this credential, not removed.
fn live_credential(
    ctx: &TenantContext,
    state: &TenantState,
    id: crate::ids::CredentialId,
) -> Result<(), Rejection> {
    open(ctx, state)?;
    require(state.credentials.get(&id).is_some_and(|k| !k.removed), Rejection::CredentialNotFound(id))
}

pub(super) fn rotate_credential(
    ctx: &TenantContext,
    state: &TenantState,
    c: &RotateCredential,
) -> Result<Vec<Event>, Rejection> {
    live_credential(ctx, state, c.credential_id)?;
    credential_secret(&c.secret)?;
    Ok(vec![Event::CredentialRotated(CredentialRotated {
        credential_id: c.credential_id,
        secret: c.secret.clone(),
    })])
}

pub(super) fn remove_credential(
    ctx: &TenantContext,
    state: &TenantState,
    c: &RemoveCredential,
) -> Result<Vec<Event>, Rejection> {
    live_credential(ctx, state, c.credential_id)?;
    Ok(vec![Event::CredentialRemoved(CredentialRemoved { credential_id: c.credential_id })])
}

/// Most thresholds a budget alerts at.
pub(super) const MAX_BUDGET_THRESHOLDS: usize = 10;

pub(super) fn set_budget(
    ctx: &TenantContext,
    state: &TenantState,
    c: &SetBudget,
) -> Result<Vec<Event>, Rejection> {
    administered(ctx, state)?;
    if let Some(b) = &c.budget {
        require(b.monthly_nanos > 0, Rejection::invalid("monthly", "a positive amount"))?;
        require(
            b.currency.len() == 3 && b.currency.bytes().all(|x| x.is_ascii_uppercase()),
            Rejection::invalid("currency", "three capital letters (ISO 4217)"),
        )?;
        require(
            b.alert_at_permille.len() <= MAX_BUDGET_THRESHOLDS
                && b.alert_at_permille.iter().all(|t| (1..=10_000).contains(t))
                && b.alert_at_permille.windows(2).all(|w| w[0] < w[1]),
            Rejection::invalid(
                "alert_at",
                "up to 10 ascending fractions of the budget, each above 0 and at most 10",
            ),
        )?;
    }
    if state.budget == c.budget {
        return Ok(vec![]);
    }
    Ok(vec![Event::BudgetSet(BudgetSet { budget: c.budget.clone() })])
}

/// Place or release a legal hold: the platform's operators only. Placing one needs a reason;
/// setting what holds already writes nothing.
pub(super) fn set_legal_hold(
    ctx: &TenantContext,
    state: &TenantState,
    c: &SetLegalHold,
) -> Result<Vec<Event>, Rejection> {
    require(state.exists, Rejection::TenantNotFound)?;
    require(ctx.role == Role::SuperAdmin, Rejection::Forbidden)?;
    if c.held {
        validate::text("reason", &c.reason, 1, 500)?;
    }
    if state.legal_hold == c.held {
        return Ok(vec![]);
    }
    Ok(vec![Event::LegalHoldSet(LegalHoldSet { held: c.held, reason: c.reason.clone() })])
}

/// Longest retention a tenant may set, in days (ten years).
pub const MAX_RETENTION_DAYS: u32 = 3_650;

/// How long conversations are kept: the tenant's admins. Setting what holds writes nothing.
pub(super) fn set_retention(
    ctx: &TenantContext,
    state: &TenantState,
    c: &SetRetention,
) -> Result<Vec<Event>, Rejection> {
    open(ctx, state)?;
    if let Some(days) = c.conversations_days {
        require(
            (1..=MAX_RETENTION_DAYS).contains(&days),
            Rejection::invalid("conversations_days", format!("1 to {MAX_RETENTION_DAYS} days, or null")),
        )?;
    }
    if state.retention_days == c.conversations_days {
        return Ok(vec![]);
    }
    Ok(vec![Event::RetentionSet(RetentionSet { conversations_days: c.conversations_days })])
}
