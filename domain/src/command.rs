//! What can be asked: one type per command, apart from the events they produce. A command
//! carries what its caller knows; what only `decide` may set (a message's author, a
//! settings value merged over the stored one) is not a field here.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::context::Role;
use crate::event::{MessageRole, Settings, TokenUsage};
use crate::ids::{AgentId, ApiKeyId, ConversationId, MessageId, PartnerId, ToolId, UserId};
use crate::limits::{LimitOverrides, Plan};
use crate::scope::Scope;

/// A change to one field of a JSON Merge Patch (RFC 7396): absent keeps the value, `null`
/// clears it, a value replaces it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Patch<T> {
    #[default]
    Keep,
    Clear,
    Set(T),
}

impl<T> Patch<T> {
    /// From the `Option<Option<T>>` a deserializer gives for an optional, nullable field.
    pub fn from_nullable(value: Option<Option<T>>) -> Self {
        match value {
            None => Self::Keep,
            Some(None) => Self::Clear,
            Some(Some(v)) => Self::Set(v),
        }
    }

    /// The value of an optional field after the patch.
    pub fn apply_option(self, current: Option<T>) -> Option<T> {
        match self {
            Self::Keep => current,
            Self::Clear => None,
            Self::Set(v) => Some(v),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateTenant {
    pub slug: String,
    pub name: String,
    pub plan: Plan,
    pub partner_id: Option<PartnerId>,
    pub settings: Settings,
    pub limits: LimitOverrides,
    /// The tenant to create it under, as its own stream tells it.
    pub parent: Option<Parent>,
}

/// A parent tenant as its stream tells it, for the decision on a child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parent {
    pub tenant_id: crate::ids::TenantId,
    /// Whether it exists (and is not purged).
    pub exists: bool,
    pub ancestors: Vec<crate::ids::TenantId>,
    pub partner_id: Option<PartnerId>,
}

/// A merge patch of the tenant: absent fields stay. Limits merge by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateTenant {
    pub name: Option<String>,
    pub plan: Option<Plan>,
    pub settings: Option<SettingsPatch>,
    pub limits: Option<LimitOverrides>,
}

/// A merge patch of the tenant's settings: every field may be kept, cleared or set; feature
/// flags merge by name (`null` removes one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettingsPatch {
    pub agent_name: Patch<String>,
    pub system_prompt: Patch<String>,
    pub default_model: Patch<String>,
    pub allowed_models: Patch<Vec<String>>,
    pub feature_flags: Patch<BTreeMap<String, Option<bool>>>,
    /// A JSON Merge Patch (RFC 7396) of the `custom` object.
    pub custom: Patch<serde_json::Map<String, serde_json::Value>>,
}

/// `patch` merged over `target` as RFC 7396 says: `null` removes a member, an object merges
/// into an object, anything else replaces.
pub fn merge_json(
    target: &mut serde_json::Map<String, serde_json::Value>,
    patch: serde_json::Map<String, serde_json::Value>,
) {
    for (key, value) in patch {
        match value {
            serde_json::Value::Null => {
                target.remove(&key);
            }
            serde_json::Value::Object(inner) => {
                let slot = target.entry(key).or_insert_with(|| serde_json::Value::Object(Default::default()));
                if !slot.is_object() {
                    *slot = serde_json::Value::Object(Default::default());
                }
                if let serde_json::Value::Object(existing) = slot {
                    merge_json(existing, inner);
                }
            }
            other => {
                target.insert(key, other);
            }
        }
    }
}

/// A `custom` object as settings keep it: its text, `None` when empty.
pub fn custom_text(custom: &serde_json::Map<String, serde_json::Value>) -> Option<String> {
    (!custom.is_empty()).then(|| serde_json::Value::Object(custom.clone()).to_string())
}

/// The `custom` object a settings text holds (empty when none, or unreadable).
pub fn custom_object(text: Option<&str>) -> serde_json::Map<String, serde_json::Value> {
    text.and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default()
}

impl SettingsPatch {
    /// The settings after this patch.
    pub fn apply_to(self, current: &Settings) -> Settings {
        let flags = match self.feature_flags {
            Patch::Keep => current.feature_flags.clone(),
            Patch::Clear => Vec::new(),
            Patch::Set(changes) => {
                let mut flags: BTreeMap<String, bool> = current.feature_flags.iter().cloned().collect();
                for (name, value) in changes {
                    match value {
                        Some(on) => flags.insert(name, on),
                        None => flags.remove(&name),
                    };
                }
                flags.into_iter().collect()
            }
        };
        Settings {
            agent_name: self.agent_name.apply_option(current.agent_name.clone()),
            system_prompt: self.system_prompt.apply_option(current.system_prompt.clone()),
            default_model: self.default_model.apply_option(current.default_model.clone()),
            allowed_models: self
                .allowed_models
                .apply_option(Some(current.allowed_models.clone()))
                .unwrap_or_default(),
            feature_flags: flags,
            custom: match self.custom {
                Patch::Keep => current.custom.clone(),
                Patch::Clear => None,
                Patch::Set(patch) => {
                    let mut custom = custom_object(current.custom.as_deref());
                    merge_json(&mut custom, patch);
                    custom_text(&custom)
                }
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuspendTenant {
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumeTenant;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateAgent {
    pub agent_id: AgentId,
    pub name: String,
    pub model: String,
    pub system_prompt: String,
    pub tool_ids: Vec<ToolId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateAgent {
    pub agent_id: AgentId,
    pub name: Option<String>,
    pub model: Option<String>,
    pub system_prompt: Option<String>,
    pub tool_ids: Option<Vec<ToolId>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveAgent {
    pub agent_id: AgentId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterTool {
    pub tool_id: ToolId,
    pub name: String,
    pub description: String,
    pub endpoint: String,
    /// A JSON Schema object, as JSON text.
    pub parameters: String,
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateTool {
    pub tool_id: ToolId,
    pub description: Option<String>,
    pub endpoint: Option<String>,
    pub parameters: Option<String>,
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoveTool {
    pub tool_id: ToolId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueApiKey {
    pub key_id: ApiKeyId,
    pub name: String,
    pub role: Role,
    /// Keyed hash of the secret the caller made; the secret itself never reaches here.
    pub secret_hash: Vec<u8>,
    pub user_id: Option<UserId>,
    /// Empty: all the role allows.
    pub scopes: Vec<Scope>,
    pub expires_at: Option<DateTime<Utc>>,
    /// When the command is made: an expiry must lie after it.
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevokeApiKey {
    pub key_id: ApiKeyId,
}

/// A model provider's credential for the tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCredential {
    pub credential_id: crate::ids::CredentialId,
    pub provider: String,
    pub name: String,
    pub secret: String,
    pub base_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotateCredential {
    pub credential_id: crate::ids::CredentialId,
    pub secret: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoveCredential {
    pub credential_id: crate::ids::CredentialId,
}

/// How long conversations without activity are kept (`None`: for ever).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetRetention {
    pub conversations_days: Option<u32>,
}

/// Place (`held`) or release a legal hold on the tenant (the platform's operators).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetLegalHold {
    pub held: bool,
    pub reason: String,
}

/// A tenant's monthly budget (`None`: none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetBudget {
    pub budget: Option<crate::event::Budget>,
}

/// A webhook endpoint; the secret is minted by the caller (the domain draws no randomness).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateWebhook {
    pub webhook_id: crate::ids::WebhookId,
    pub url: String,
    pub event_types: Vec<String>,
    pub secret: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateWebhook {
    pub webhook_id: crate::ids::WebhookId,
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotateWebhookSecret {
    pub webhook_id: crate::ids::WebhookId,
    pub secret: String,
    pub grace_seconds: u64,
    pub now: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoveWebhook {
    pub webhook_id: crate::ids::WebhookId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisableWebhook {
    pub webhook_id: crate::ids::WebhookId,
    pub reason: String,
}

/// Give a key a new secret; the old one keeps working for `grace_seconds`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotateApiKey {
    pub key_id: ApiKeyId,
    /// Keyed hash of the new secret.
    pub secret_hash: Vec<u8>,
    pub grace_seconds: u64,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddUser {
    pub user_id: UserId,
    pub email: String,
    pub role: Role,
}

/// A user an identity provider vouches for, on their first token. Made again for a subject
/// already known, it writes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionUser {
    pub user_id: UserId,
    pub issuer: String,
    pub subject: String,
    /// Keyed hash of issuer and subject, made by the caller (it holds the key).
    pub digest: Vec<u8>,
    /// The token's email claim, when it has a usable one.
    pub email: Option<String>,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateUser {
    pub user_id: UserId,
    pub email: Option<String>,
    pub role: Option<Role>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoveUser {
    pub user_id: UserId,
}

/// Erase a person: remove the user; the store destroys their key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EraseUser {
    pub user_id: UserId,
}

/// Open a conversation. A `user` caller acting as a user opens it as that user when
/// `user_id` is absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenConversation {
    pub conversation_id: ConversationId,
    pub agent_id: AgentId,
    pub user_id: Option<UserId>,
    pub title: Option<String>,
}

/// A merge patch of a conversation's title: kept, cleared or set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetitleConversation {
    pub conversation_id: ConversationId,
    pub title: Patch<String>,
}

/// Delete a conversation: its content is shredded, its usage stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeleteConversation {
    pub conversation_id: ConversationId,
}

/// Put a conversation away (`archived`), or take it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveConversation {
    pub conversation_id: ConversationId,
    pub archived: bool,
}

/// Append a message; with `usage` (which needs `model`) it also bills the tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendMessage {
    pub conversation_id: ConversationId,
    pub message_id: MessageId,
    pub role: MessageRole,
    pub content: String,
    pub model: Option<String>,
    pub usage: Option<TokenUsage>,
}

/// Record token usage, idempotent on `request_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordUsage {
    pub model: String,
    pub kind: String,
    pub usage: TokenUsage,
    pub request_id: Option<String>,
    pub occurred_at: DateTime<Utc>,
}
