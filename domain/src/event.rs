//! The events of a tenant's log: facts in the past tense.
//!
//! Each payload struct is the *current* stored shape of its event type. postcard encodes
//! fields by position, so a field is only ever appended to a new schema version; the older
//! shapes live in [`crate::codec::v1`] and are upcast on read.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::context::Role;
use crate::ids::{
    AgentId, ApiKeyId, ConversationId, CredentialId, DocumentId, MessageId, OperatorId, PartnerId, ToolId,
    UserId, WebhookId,
};
use crate::limits::{LimitOverrides, Plan};
use crate::personal::Personal;

/// Whether a tenant is open to its own keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    Active,
    Suspended,
}

impl TenantStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
        }
    }

    /// The status an [`TenantStatus::as_str`] name stands for.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Active, Self::Suspended].into_iter().find(|s| s.as_str() == name)
    }
}

/// Tenant configuration that tenant admins may change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub agent_name: Option<String>,
    pub system_prompt: Option<String>,
    pub default_model: Option<String>,
    pub allowed_models: Vec<String>,
    /// Sorted by name, so equal settings encode to equal bytes.
    pub feature_flags: Vec<(String, bool)>,
    /// The platform's own settings: a JSON object (as its text, keys sorted), at most 16 KiB.
    #[serde(default)]
    pub custom: Option<String>,
}

/// Schema version 3: settings with `custom` (version 2 had none); version 2 added
/// `ancestors` (version 1 tenants are roots).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantCreated {
    pub slug: String,
    pub name: String,
    pub plan: Plan,
    pub partner_id: Option<PartnerId>,
    pub settings: Settings,
    pub limits: LimitOverrides,
    /// The tenants above this one, the root first and the parent last; empty for a root.
    pub ancestors: Vec<crate::ids::TenantId>,
}

/// Schema version 2: settings with `custom`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantUpdated {
    pub name: Option<String>,
    pub plan: Option<Plan>,
    pub settings: Option<Settings>,
    pub limits: Option<LimitOverrides>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantSuspended {
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantResumed {}

/// Schema version 2: version 1 had no `tool_ids`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentCreated {
    pub agent_id: AgentId,
    pub name: String,
    pub model: String,
    pub system_prompt: String,
    pub tool_ids: Vec<ToolId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentUpdated {
    pub agent_id: AgentId,
    pub name: Option<String>,
    pub model: Option<String>,
    pub system_prompt: Option<String>,
    pub tool_ids: Option<Vec<ToolId>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentArchived {
    pub agent_id: AgentId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolRegistered {
    pub tool_id: ToolId,
    pub name: String,
    pub description: String,
    pub endpoint: String,
    /// JSON Schema of the tool's parameters, as JSON text (postcard is not self-describing).
    pub parameters: String,
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolUpdated {
    pub tool_id: ToolId,
    pub description: Option<String>,
    pub endpoint: Option<String>,
    pub parameters: Option<String>,
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolRemoved {
    pub tool_id: ToolId,
}

/// Schema version 3: `scopes` and `expires_at` (version 2 had neither; version 1 no
/// `user_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyIssued {
    pub key_id: ApiKeyId,
    pub name: String,
    pub role: Role,
    /// Keyed hash of the secret; the secret itself is never stored. Exports leave it out,
    /// so an audit replay of one reads it as empty.
    #[serde(default)]
    pub secret_hash: Vec<u8>,
    /// The user a `user` key acts as: it reaches that user's conversations only.
    pub user_id: Option<UserId>,
    /// [`crate::Scope`] names the key is narrowed to; empty: all its role allows.
    pub scopes: Vec<String>,
    /// When the key stops working, if ever.
    #[serde(with = "chrono::serde::ts_milliseconds_option")]
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRevoked {
    pub key_id: ApiKeyId,
}

/// A key was given a new secret. The previous secret keeps working until `grace_until`
/// (not at all when `None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRotated {
    pub key_id: ApiKeyId,
    /// Keyed hash of the new secret; exports leave it out, as for `apikey.issued`.
    #[serde(default)]
    pub secret_hash: Vec<u8>,
    #[serde(with = "chrono::serde::ts_milliseconds_option")]
    pub grace_until: Option<DateTime<Utc>>,
}

/// Schema version 3: `identity` for a user provisioned from an identity provider's token
/// (version 2 had none); version 2 made the email [`Personal`] (version 1 held a string).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserAdded {
    pub user_id: UserId,
    pub email: Personal,
    pub role: Role,
    pub identity: Option<ExternalIdentity>,
}

/// The identity provider account a user was provisioned from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalIdentity {
    /// The issuer (`iss`) that vouched for the user.
    pub issuer: String,
    /// The user's subject at that issuer: personal, unreadable once the user is erased.
    pub subject: Personal,
    /// Keyed hash of issuer and subject: how later tokens find the user, also after an
    /// erasure (so an erased user's tokens stay refused).
    pub digest: Vec<u8>,
}

/// Schema version 2: the email is [`Personal`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserUpdated {
    pub user_id: UserId,
    pub email: Option<Personal>,
    pub role: Option<Role>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRemoved {
    pub user_id: UserId,
}

/// Schema version 2: the title is [`Personal`] of `user_id` (when there is one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationOpened {
    pub conversation_id: ConversationId,
    pub agent_id: AgentId,
    pub user_id: Option<UserId>,
    pub title: Option<Personal>,
}

/// A conversation's new title (`None`: no title). Personal of `user_id` when it has one, as
/// at its opening.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationRetitled {
    pub conversation_id: ConversationId,
    pub user_id: Option<UserId>,
    pub title: Option<Personal>,
}

/// A conversation is put away (`archived`) or taken back (`!archived`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationArchived {
    pub conversation_id: ConversationId,
    pub archived: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageRole {
    User,
    Assistant,
    Tool,
    System,
}

impl MessageRole {
    /// The role an [`MessageRole::as_str`] name stands for.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::User, Self::Assistant, Self::Tool, Self::System].into_iter().find(|r| r.as_str() == name)
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Assistant => "assistant",
            Self::Tool => "tool",
            Self::System => "system",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

impl TokenUsage {
    pub const fn total(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }
}

/// Schema version 2: the content is [`Personal`] of `author`, the user who wrote it (set by
/// `decide` for `user` messages in a user's conversation; version 1 had neither).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageAppended {
    pub conversation_id: ConversationId,
    pub message_id: MessageId,
    pub role: MessageRole,
    pub content: Personal,
    pub model: Option<String>,
    pub usage: Option<TokenUsage>,
    pub author: Option<UserId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRecorded {
    pub model: String,
    /// What the tokens were spent on (`chat`, `embedding`, `message` …).
    pub kind: String,
    pub usage: TokenUsage,
    /// The caller's request id; usage is idempotent on it.
    pub request_id: Option<String>,
    /// When the usage happened: it decides the billing day and month.
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub occurred_at: DateTime<Utc>,
    /// Its cost, decided with the price in force when it happened (`None`: recorded before
    /// prices were on the platform's log; priced from the configured table then).
    pub cost: Option<RecordedCost>,
}

/// What a usage record cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedCost {
    /// In 1e-9 units of `currency`.
    pub nanos: i64,
    pub currency: String,
    /// The model had no price of its own: the table's default applied.
    pub unpriced: bool,
}

/// A price table on the platform's log, in force from `effective_from` until one that
/// starts later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricesSet {
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub effective_from: DateTime<Utc>,
    pub currency: String,
    pub default: crate::price::Price,
    pub models: std::collections::BTreeMap<String, crate::price::Price>,
}

/// A tenant's monthly budget (`None`: none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetSet {
    pub budget: Option<Budget>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    /// The monthly amount, in 1e-9 units of `currency`.
    pub monthly_nanos: i64,
    pub currency: String,
    /// Thresholds as thousandths of the budget (`[500, 800, 1000]`), ascending.
    pub alert_at_permille: Vec<u16>,
    /// Refuse what would cost past the budget.
    pub hard_stop: bool,
}

/// The month's recorded cost went past a threshold of the budget: once per month and
/// threshold, on the month's usage stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetThresholdCrossed {
    /// `YYYY-MM`.
    pub month: String,
    pub threshold_permille: u16,
    pub spent_nanos: i64,
    pub budget_nanos: i64,
    pub currency: String,
}

/// A request refused for lack of rights (another tenant's object, a role too weak). Kept
/// in the target tenant's log so its audit trail shows the attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessDenied {
    /// What was attempted (`GET /v1/tenants/{id}/agents`, `agent.create` …).
    pub action: String,
    /// The object it was aimed at, when known.
    pub target: Option<String>,
    pub reason: String,
}

/// The tenant's data was read from outside it: by the platform's operator or a partner's
/// admin. Kept in the tenant's audit trail (who looked at what), charged to no one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataRead {
    /// What was read (`GET /v1/tenants/<id>/conversations` …): one record for a listing.
    pub action: String,
    /// The requests this record stands for: repeats within a minute are folded into the
    /// next record.
    pub reads: u64,
}

/// The tombstone of a purged tenant, kept in the platform log ([`crate::TenantId::PLATFORM`]).
/// It holds no personal data: ids, who asked, when, and what was deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantPurged {
    pub tenant_id: crate::ids::TenantId,
    /// The actor that asked (`system`, `apikey:<id>` …).
    pub requested_by: String,
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub requested_at: DateTime<Utc>,
    pub events_deleted: u64,
    pub rows_deleted: u64,
}

/// A person's data in this tenant was erased: their key is destroyed, so their emails,
/// titles and messages read as `[erased]` from now on, and the user is removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserErased {
    pub user_id: UserId,
}

/// A partner (reseller) was created; kept in the platform log ([`crate::TenantId::PLATFORM`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartnerCreated {
    pub partner_id: PartnerId,
    pub name: String,
}

/// A partner's new name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartnerRenamed {
    pub partner_id: PartnerId,
    pub name: String,
}

/// A partner without tenants is gone: its keys stop working.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartnerDeleted {
    pub partner_id: PartnerId,
}

/// A partner_admin key of a partner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartnerKeyIssued {
    pub partner_id: PartnerId,
    pub key_id: ApiKeyId,
    /// Keyed hash of the secret; exports leave it out.
    #[serde(default)]
    pub secret_hash: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartnerKeyRevoked {
    pub partner_id: PartnerId,
    pub key_id: ApiKeyId,
}

/// A partner key's new secret; the old one works until `grace_until`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartnerKeyRotated {
    pub partner_id: PartnerId,
    pub key_id: ApiKeyId,
    #[serde(default)]
    pub secret_hash: Vec<u8>,
    #[serde(with = "chrono::serde::ts_milliseconds_option")]
    pub grace_until: Option<DateTime<Utc>>,
}

/// A tenant took a slug; kept in the platform log, in a stream named by a hash of the slug
/// (the slug itself is not stored there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlugClaimed {
    pub tenant_id: crate::ids::TenantId,
}

/// A purged tenant's slug is free again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlugReleased {
    pub tenant_id: crate::ids::TenantId,
}

/// A named operator (a super_admin key) was created; kept in the platform log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorCreated {
    pub operator_id: OperatorId,
    pub name: String,
    /// Keyed hash of the key's secret; exports leave it out.
    #[serde(default)]
    pub secret_hash: Vec<u8>,
}

/// An operator's key stops working.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorRemoved {
    pub operator_id: OperatorId,
}

/// The bootstrap key stops working: only named operators act for the platform from then on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootstrapKeyRetired {}

/// A model provider's credential of the tenant. The secret lives in the log only, encrypted
/// with the tenant's key like every payload (so a purge shreds it); read models keep its last
/// characters and a fingerprint, exports leave it out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialAdded {
    pub credential_id: CredentialId,
    /// `openai`, `anthropic`, `azure_openai`, `google` or `custom`.
    pub provider: String,
    pub name: String,
    #[serde(default)]
    pub secret: String,
    pub base_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialRotated {
    pub credential_id: CredentialId,
    #[serde(default)]
    pub secret: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialRemoved {
    pub credential_id: CredentialId,
}

/// A knowledge-base document was added. Its body is not in the log: it is kept beside it,
/// sealed with the tenant's key, written in the same transaction; the log records its size
/// and SHA-256, so an export can name what was stored without holding it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentAdded {
    pub document_id: DocumentId,
    pub title: String,
    /// `text/plain` or `text/markdown`.
    pub content_type: String,
    /// A JSON object, as text.
    pub metadata: String,
    /// Bytes of the body (UTF-8), counted toward `storage_bytes`.
    pub size: u64,
    /// SHA-256 of the body, lowercase hex.
    pub sha256: String,
}

/// A document was deleted: its body and chunks are gone, its bytes no longer count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentRemoved {
    pub document_id: DocumentId,
    pub size: u64,
}

/// A webhook endpoint of the tenant. The signing secret lives in the log only (encrypted
/// with the tenant's key; exports and read models leave it out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookCreated {
    pub webhook_id: WebhookId,
    pub url: String,
    /// The event types delivered; empty: every type.
    pub event_types: Vec<String>,
    #[serde(default)]
    pub secret: String,
}

/// What changed of an endpoint (`None`: unchanged).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookUpdated {
    pub webhook_id: WebhookId,
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

/// A new signing secret; the old one signs too until `previous_until`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookSecretRotated {
    pub webhook_id: WebhookId,
    #[serde(default)]
    pub secret: String,
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub previous_until: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookRemoved {
    pub webhook_id: WebhookId,
}

/// The platform stopped delivering to an endpoint that kept failing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookDisabled {
    pub webhook_id: WebhookId,
    pub reason: String,
}

/// A legal hold on the tenant placed (`held`) or released: while held, no purge, erasure or
/// retention deletes anything of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegalHoldSet {
    pub held: bool,
    pub reason: String,
}

/// How long the tenant keeps conversations without activity (`None`: for ever): older ones
/// are deleted (shredded) by the retention job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionSet {
    pub conversations_days: Option<u32>,
}

/// Every event a tenant's log can hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    TenantCreated(TenantCreated),
    TenantUpdated(TenantUpdated),
    TenantSuspended(TenantSuspended),
    TenantResumed(TenantResumed),
    AgentCreated(AgentCreated),
    AgentUpdated(AgentUpdated),
    AgentArchived(AgentArchived),
    ToolRegistered(ToolRegistered),
    ToolUpdated(ToolUpdated),
    ToolRemoved(ToolRemoved),
    ApiKeyIssued(ApiKeyIssued),
    ApiKeyRevoked(ApiKeyRevoked),
    UserAdded(UserAdded),
    UserUpdated(UserUpdated),
    UserRemoved(UserRemoved),
    ConversationOpened(ConversationOpened),
    MessageAppended(MessageAppended),
    UsageRecorded(UsageRecorded),
    AccessDenied(AccessDenied),
    TenantPurged(TenantPurged),
    UserErased(UserErased),
    PartnerCreated(PartnerCreated),
    SlugClaimed(SlugClaimed),
    SlugReleased(SlugReleased),
    ApiKeyRotated(ApiKeyRotated),
    OperatorCreated(OperatorCreated),
    OperatorRemoved(OperatorRemoved),
    BootstrapKeyRetired(BootstrapKeyRetired),
    PartnerRenamed(PartnerRenamed),
    PartnerDeleted(PartnerDeleted),
    PartnerKeyIssued(PartnerKeyIssued),
    PartnerKeyRevoked(PartnerKeyRevoked),
    PartnerKeyRotated(PartnerKeyRotated),
    DataRead(DataRead),
    CredentialAdded(CredentialAdded),
    CredentialRotated(CredentialRotated),
    CredentialRemoved(CredentialRemoved),
    ConversationRetitled(ConversationRetitled),
    ConversationArchived(ConversationArchived),
    DocumentAdded(DocumentAdded),
    DocumentRemoved(DocumentRemoved),
    ConversationDeleted(ConversationDeleted),
    WebhookCreated(WebhookCreated),
    WebhookUpdated(WebhookUpdated),
    WebhookSecretRotated(WebhookSecretRotated),
    WebhookRemoved(WebhookRemoved),
    WebhookDisabled(WebhookDisabled),
    PricesSet(PricesSet),
    BudgetSet(BudgetSet),
    BudgetThresholdCrossed(BudgetThresholdCrossed),
    LegalHoldSet(LegalHoldSet),
    RetentionSet(RetentionSet),
}

impl Event {
    /// Whether the event carries personal text still to be sealed: a person's, or a
    /// conversation's (every title and message is sealed with its conversation's key).
    pub fn has_personal_text(&self) -> bool {
        let text = |p: &Personal| matches!(p, Personal::Text(_));
        match self {
            Self::UserAdded(e) => text(&e.email) || e.identity.as_ref().is_some_and(|i| text(&i.subject)),
            Self::UserUpdated(e) => e.email.as_ref().is_some_and(text),
            Self::ConversationOpened(e) => e.title.as_ref().is_some_and(text),
            Self::ConversationRetitled(e) => e.title.as_ref().is_some_and(text),
            Self::MessageAppended(e) => text(&e.content),
            _ => false,
        }
    }

    /// The personal values the event carries, each with the keys that seal it: the person it
    /// belongs to, and the conversation it was said in.
    pub fn personal_mut(&mut self) -> Vec<(Sealers, &mut Personal)> {
        let person = |user| Sealers { person: Some(user), conversation: None };
        let said = |user, conversation| Sealers { person: user, conversation: Some(conversation) };
        match self {
            Self::UserAdded(e) => {
                let mut values = vec![(person(e.user_id), &mut e.email)];
                if let Some(identity) = e.identity.as_mut() {
                    values.push((person(e.user_id), &mut identity.subject));
                }
                values
            }
            Self::UserUpdated(e) => {
                e.email.as_mut().map(|m| vec![(person(e.user_id), m)]).unwrap_or_default()
            }
            Self::ConversationOpened(e) => {
                e.title.as_mut().map(|t| vec![(said(e.user_id, e.conversation_id), t)]).unwrap_or_default()
            }
            Self::MessageAppended(e) => vec![(said(e.author, e.conversation_id), &mut e.content)],
            Self::ConversationRetitled(e) => {
                e.title.as_mut().map(|t| vec![(said(e.user_id, e.conversation_id), t)]).unwrap_or_default()
            }
            _ => vec![],
        }
    }
}

/// The keys a personal value is sealed with: its person's (inner), then its conversation's
/// (outer). Destroying either makes it read as erased: erasing the person, or deleting the
/// conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sealers {
    pub person: Option<UserId>,
    pub conversation: Option<ConversationId>,
}

/// A conversation was deleted: its titles and messages are shredded (its key destroyed, so
/// every copy reads as erased), the read models drop it; its usage and the chain stay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationDeleted {
    pub conversation_id: ConversationId,
}

/// Who caused an event, from where. Stored encrypted beside the payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub actor: String,
    pub role: Role,
    pub request_id: String,
    pub source_ip: Option<String>,
}

impl Metadata {
    pub fn from_context(ctx: &crate::context::TenantContext) -> Self {
        Self {
            actor: ctx.actor.to_string(),
            role: ctx.role,
            request_id: ctx.request_id.to_string(),
            source_ip: ctx.source_ip.clone(),
        }
    }
}
