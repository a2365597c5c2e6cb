//! The tenant aggregate: its lifecycle and directory (agents, tools, users, API keys), all on
//! the `tenant` stream so that every count limit is decided against one consistent version.

use std::collections::BTreeMap;

use crate::command::*;
use crate::context::{Role, TenantContext};
use crate::event::*;
use crate::ids::{AgentId, ApiKeyId, PartnerId, ToolId, UserId};
use crate::limits::{LimitOverrides, Limits, Plan, PlanCatalog};
use crate::personal::Personal;
use crate::rejection::Rejection;

mod decide;
pub mod webhooks;

pub use decide::{MAX_RETENTION_DAYS, MAX_ROTATION_GRACE_SECONDS};

/// The most levels a tree of tenants has: a root and three levels below it.
pub const MAX_DEPTH: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentEntry {
    pub archived: bool,
}

/// A provider credential as the command side holds it (secret included: it never leaves
/// the command side but through the runtime configuration, and is never printed).
#[derive(Clone, PartialEq, Eq)]
pub struct CredentialEntry {
    pub provider: String,
    pub name: String,
    pub secret: String,
    pub base_url: Option<String>,
    pub removed: bool,
}

impl std::fmt::Debug for CredentialEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialEntry")
            .field("provider", &self.provider)
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("removed", &self.removed)
            .finish_non_exhaustive()
    }
}

/// A webhook endpoint as the command side holds it (secrets included: they never leave the
/// command side but to sign deliveries, and are never printed).
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookEntry {
    pub url: String,
    pub event_types: Vec<String>,
    pub enabled: bool,
    pub removed: bool,
    pub secret: String,
    /// The secret before the last rotation, and until when it still signs.
    pub previous: Option<(String, chrono::DateTime<chrono::Utc>)>,
}

impl std::fmt::Debug for WebhookEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookEntry")
            .field("url", &self.url)
            .field("event_types", &self.event_types)
            .field("enabled", &self.enabled)
            .field("removed", &self.removed)
            .finish_non_exhaustive()
    }
}

/// The providers a credential may be for.
pub const PROVIDERS: [&str; 5] = ["openai", "anthropic", "azure_openai", "google", "custom"];

/// Credentials a tenant keeps at most.
pub const MAX_CREDENTIALS: u64 = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToolEntry {
    pub removed: bool,
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    pub email: Personal,
    pub role: Role,
    pub removed: bool,
    /// Erased: removed, and their personal data unreadable for good.
    pub erased: bool,
}

/// A key as the command side knows it: enough to refuse a revoked key or a replaced secret
/// before any read model has heard of the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    pub revoked: bool,
    pub secret_hash: Vec<u8>,
    /// The secret it had before its last rotation, and until when that one still works.
    pub previous: Option<(Vec<u8>, chrono::DateTime<chrono::Utc>)>,
}

impl KeyEntry {
    /// A key just issued with this secret.
    pub fn issued(secret_hash: &[u8]) -> Self {
        Self { revoked: false, secret_hash: secret_hash.to_vec(), previous: None }
    }

    /// The key with a new secret; the old one opens it until `grace_until`, if given.
    pub fn rotate(&mut self, secret_hash: &[u8], grace_until: Option<chrono::DateTime<chrono::Utc>>) {
        let old = std::mem::replace(&mut self.secret_hash, secret_hash.to_vec());
        self.previous = grace_until.map(|until| (old, until));
    }

    /// The secret hashes that open this key at `now`.
    pub fn hashes_at(&self, now: chrono::DateTime<chrono::Utc>) -> Vec<&[u8]> {
        let mut hashes = vec![self.secret_hash.as_slice()];
        if let Some((previous, until)) = &self.previous
            && now < *until
        {
            hashes.push(previous);
        }
        hashes
    }
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
    /// The tenants above this one, the root first; empty for a root.
    pub ancestors: Vec<crate::ids::TenantId>,
    pub settings: Settings,
    pub overrides: LimitOverrides,
    /// The overrides it inherits from the tenants above it, nearest first; set by whoever
    /// decides on it (the stream alone does not know them). Its own overrides win.
    pub inherited: LimitOverrides,
    /// The settings in effect above it, set the same way. Its own settings win.
    pub inherited_settings: Settings,
    pub suspended: bool,
    pub agents: BTreeMap<AgentId, AgentEntry>,
    pub tools: BTreeMap<ToolId, ToolEntry>,
    pub api_keys: BTreeMap<ApiKeyId, KeyEntry>,
    pub users: BTreeMap<UserId, UserEntry>,
    pub credentials: BTreeMap<crate::ids::CredentialId, CredentialEntry>,
    pub webhooks: BTreeMap<crate::ids::WebhookId, WebhookEntry>,
    pub budget: Option<Budget>,
    /// Under a legal hold: no purge, erasure or retention until released.
    pub legal_hold: bool,
    /// Days a conversation without activity is kept (`None`: for ever).
    pub retention_days: Option<u32>,
    /// Identity digests ([`crate::event::ExternalIdentity::digest`]) to the user they made.
    pub identities: BTreeMap<Vec<u8>, UserId>,
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
            ancestors: Vec::new(),
            settings: Settings::default(),
            overrides: LimitOverrides::default(),
            inherited: LimitOverrides::default(),
            inherited_settings: Settings::default(),
            suspended: false,
            agents: BTreeMap::new(),
            tools: BTreeMap::new(),
            api_keys: BTreeMap::new(),
            users: BTreeMap::new(),
            credentials: BTreeMap::new(),
            webhooks: BTreeMap::new(),
            budget: None,
            legal_hold: false,
            retention_days: None,
            identities: BTreeMap::new(),
        }
    }

    /// The plan's limits with the inherited overrides, then this tenant's own, applied.
    pub fn limits(&self) -> Limits {
        self.inherited.merge(self.overrides).apply_to(self.plans.limits(self.plan))
    }

    pub fn active_agents(&self) -> u64 {
        self.agents.values().filter(|a| !a.archived).count() as u64
    }

    pub fn active_users(&self) -> u64 {
        self.users.values().filter(|u| !u.removed).count() as u64
    }

    pub fn active_api_keys(&self) -> u64 {
        self.api_keys.values().filter(|k| !k.revoked).count() as u64
    }

    pub fn agent_is_active(&self, id: AgentId) -> bool {
        self.agents.get(&id).is_some_and(|a| !a.archived)
    }

    pub fn tool_is_active(&self, id: ToolId) -> bool {
        self.tools.get(&id).is_some_and(|t| !t.removed)
    }

    /// The settings in effect: its own, over what it inherits.
    pub fn settings_in_effect(&self) -> Settings {
        crate::inherit::merge_settings(&self.inherited_settings, &self.settings)
    }

    /// Whether `model` may be used here: any when no `allowed_models` are in effect.
    pub fn allows_model(&self, model: &str) -> bool {
        let allowed = if self.settings.allowed_models.is_empty() {
            &self.inherited_settings.allowed_models
        } else {
            &self.settings.allowed_models
        };
        allowed.is_empty() || allowed.iter().any(|m| m == model)
    }

    pub fn key_is_active(&self, id: ApiKeyId) -> bool {
        self.api_keys.get(&id).is_some_and(|k| !k.revoked)
    }

    /// The user an identity provider's subject was provisioned as, removed or not.
    pub fn identity_user(&self, digest: &[u8]) -> Option<(UserId, &UserEntry)> {
        let id = *self.identities.get(digest)?;
        Some((id, self.users.get(&id)?))
    }
}

/// What can be asked of a tenant: one variant per command type of [`crate::command`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantCommand {
    CreateTenant(CreateTenant),
    UpdateTenant(UpdateTenant),
    SuspendTenant(SuspendTenant),
    ResumeTenant(ResumeTenant),
    CreateAgent(CreateAgent),
    UpdateAgent(UpdateAgent),
    ArchiveAgent(ArchiveAgent),
    RegisterTool(RegisterTool),
    UpdateTool(UpdateTool),
    RemoveTool(RemoveTool),
    IssueApiKey(IssueApiKey),
    RevokeApiKey(RevokeApiKey),
    RotateApiKey(RotateApiKey),
    AddUser(AddUser),
    ProvisionUser(ProvisionUser),
    UpdateUser(UpdateUser),
    RemoveUser(RemoveUser),
    EraseUser(EraseUser),
    AddCredential(AddCredential),
    RotateCredential(RotateCredential),
    RemoveCredential(RemoveCredential),
    CreateWebhook(CreateWebhook),
    UpdateWebhook(UpdateWebhook),
    RotateWebhookSecret(RotateWebhookSecret),
    RemoveWebhook(RemoveWebhook),
    DisableWebhook(DisableWebhook),
    SetBudget(SetBudget),
    SetLegalHold(SetLegalHold),
    SetRetention(SetRetention),
}

impl TenantCommand {
    /// Whether the command is exempt from the tenant's stored-bytes and daily-calls limits:
    /// the platform's own commands, and an erasure the law requires, are never refused for
    /// the tenant's usage.
    pub const fn exempt_from_quota(&self) -> bool {
        matches!(
            self,
            Self::CreateTenant(_)
                | Self::SuspendTenant(_)
                | Self::ResumeTenant(_)
                | Self::EraseUser(_)
                | Self::DisableWebhook(_)
                | Self::SetLegalHold(_)
        )
    }
}

/// Decide which events a command produces, or why it is refused. Pure.
pub fn decide(
    ctx: &TenantContext,
    state: &TenantState,
    command: &TenantCommand,
) -> Result<Vec<Event>, Rejection> {
    use TenantCommand as C;
    match command {
        C::CreateTenant(c) => decide::create_tenant(ctx, state, c),
        C::UpdateTenant(c) => decide::update_tenant(ctx, state, c),
        C::SuspendTenant(c) => decide::suspend_tenant(ctx, state, c),
        C::ResumeTenant(c) => decide::resume_tenant(ctx, state, c),
        C::CreateAgent(c) => decide::create_agent(ctx, state, c),
        C::UpdateAgent(c) => decide::update_agent(ctx, state, c),
        C::ArchiveAgent(c) => decide::archive_agent(ctx, state, c),
        C::RegisterTool(c) => decide::register_tool(ctx, state, c),
        C::UpdateTool(c) => decide::update_tool(ctx, state, c),
        C::RemoveTool(c) => decide::remove_tool(ctx, state, c),
        C::IssueApiKey(c) => decide::issue_api_key(ctx, state, c),
        C::RevokeApiKey(c) => decide::revoke_api_key(ctx, state, c),
        C::RotateApiKey(c) => decide::rotate_api_key(ctx, state, c),
        C::AddUser(c) => decide::add_user(ctx, state, c),
        C::ProvisionUser(c) => decide::provision_user(ctx, state, c),
        C::UpdateUser(c) => decide::update_user(ctx, state, c),
        C::RemoveUser(c) => decide::remove_user(ctx, state, c),
        C::EraseUser(c) => decide::erase_user(ctx, state, c),
        C::AddCredential(c) => decide::add_credential(ctx, state, c),
        C::RotateCredential(c) => decide::rotate_credential(ctx, state, c),
        C::RemoveCredential(c) => decide::remove_credential(ctx, state, c),
        C::CreateWebhook(c) => webhooks::create(ctx, state, c),
        C::UpdateWebhook(c) => webhooks::update(ctx, state, c),
        C::RotateWebhookSecret(c) => webhooks::rotate_secret(ctx, state, c),
        C::RemoveWebhook(c) => webhooks::remove(ctx, state, c),
        C::DisableWebhook(c) => webhooks::disable(ctx, state, c),
        C::SetBudget(c) => decide::set_budget(ctx, state, c),
        C::SetLegalHold(c) => decide::set_legal_hold(ctx, state, c),
        C::SetRetention(c) => decide::set_retention(ctx, state, c),
    }
}

/// Whether the caller reaches this tenant: the platform operator every tenant, a partner
/// admin the tenants created under its partner, a tenant's own keys their tenant, and an
/// admin of a tenant above it (never a user, never up or sideways). Decided on the tenant's
/// own stream, so a tenant just created is reachable at once.
pub fn reaches(ctx: &TenantContext, own_tenant: Option<crate::ids::TenantId>, state: &TenantState) -> bool {
    match ctx.role {
        Role::SuperAdmin => true,
        Role::PartnerAdmin => state.exists && ctx.partner_id.is_some() && state.partner_id == ctx.partner_id,
        Role::Admin => {
            own_tenant == Some(ctx.tenant_id)
                || (state.exists && own_tenant.is_some_and(|own| state.ancestors.contains(&own)))
        }
        Role::User => own_tenant == Some(ctx.tenant_id),
    }
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
            state.ancestors = e.ancestors.clone();
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
            state.tools.insert(e.tool_id, ToolEntry { removed: false, enabled: e.enabled });
        }
        Event::ToolUpdated(e) => {
            if let (Some(tool), Some(enabled)) = (state.tools.get_mut(&e.tool_id), e.enabled) {
                tool.enabled = enabled;
            }
        }
        Event::ToolRemoved(e) => {
            if let Some(tool) = state.tools.get_mut(&e.tool_id) {
                tool.removed = true;
            }
        }
        Event::ApiKeyIssued(e) => {
            state.api_keys.insert(e.key_id, KeyEntry::issued(&e.secret_hash));
        }
        Event::ApiKeyRevoked(e) => {
            if let Some(key) = state.api_keys.get_mut(&e.key_id) {
                key.revoked = true;
            }
        }
        Event::ApiKeyRotated(e) => {
            if let Some(key) = state.api_keys.get_mut(&e.key_id) {
                key.rotate(&e.secret_hash, e.grace_until);
            }
        }
        Event::UserAdded(e) => {
            if let Some(identity) = &e.identity {
                state.identities.insert(identity.digest.clone(), e.user_id);
            }
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
        | Event::ConversationOpened(_)
        | Event::MessageAppended(_)
        | Event::UsageRecorded(_)
        | Event::AccessDenied(_)
        | Event::TenantPurged(_)
        | Event::PartnerCreated(_)
        | Event::SlugClaimed(_)
        | Event::SlugReleased(_)
        | Event::OperatorCreated(_)
        | Event::OperatorRemoved(_)
        | Event::BootstrapKeyRetired(_)
        | Event::PartnerRenamed(_)
        | Event::PartnerDeleted(_)
        | Event::PartnerKeyIssued(_)
        | Event::PartnerKeyRevoked(_)
        | Event::PartnerKeyRotated(_)
        | Event::DataRead(_)
        | Event::ConversationRetitled(_)
        | Event::ConversationArchived(_)
        | Event::DocumentAdded(_)
        | Event::DocumentRemoved(_)
        | Event::ConversationDeleted(_) => {}
        Event::WebhookCreated(_)
        | Event::WebhookUpdated(_)
        | Event::WebhookSecretRotated(_)
        | Event::WebhookRemoved(_)
        | Event::WebhookDisabled(_) => webhooks::evolve(&mut state, event),
        Event::BudgetSet(e) => state.budget = e.budget.clone(),
        Event::LegalHoldSet(e) => state.legal_hold = e.held,
        Event::RetentionSet(e) => state.retention_days = e.conversations_days,
        Event::PricesSet(_) | Event::BudgetThresholdCrossed(_) => {}
        Event::CredentialAdded(e) => {
            state.credentials.insert(
                e.credential_id,
                CredentialEntry {
                    provider: e.provider.clone(),
                    name: e.name.clone(),
                    secret: e.secret.clone(),
                    base_url: e.base_url.clone(),
                    removed: false,
                },
            );
        }
        Event::CredentialRotated(e) => {
            if let Some(c) = state.credentials.get_mut(&e.credential_id) {
                c.secret = e.secret.clone();
            }
        }
        Event::CredentialRemoved(e) => {
            if let Some(c) = state.credentials.get_mut(&e.credential_id) {
                c.removed = true;
            }
        }
    }
    state
}
