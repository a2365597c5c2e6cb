//! How events become bytes and back: an envelope of (event type, schema version) around a
//! postcard payload. Older schema versions are upcast on read; stored bytes are never
//! rewritten.
//!
//! The type strings below are persisted: they are never renamed.

use serde::{Deserialize, Serialize};

use crate::event::*;

/// A payload as stored: its type, its schema version and its postcard bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub event_type: &'static str,
    pub schema_version: u16,
    pub payload: Vec<u8>,
}

/// Why stored bytes do not decode into an [`Event`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("unknown event type `{0}`")]
    UnknownEventType(String),
    #[error("event type `{event_type}` has no schema version {version}")]
    UnknownSchemaVersion { event_type: String, version: u16 },
    #[error("payload of `{event_type}` v{version} is malformed: {reason}")]
    Malformed { event_type: String, version: u16, reason: String },
    #[error("event could not be encoded: {0}")]
    Encode(String),
}

/// Shapes of earlier schema versions, kept so old events still decode.
pub mod v1 {
    use serde::{Deserialize, Serialize};

    use crate::context::Role;
    use crate::event::{MessageRole, TokenUsage};
    use crate::ids::{AgentId, ApiKeyId, ConversationId, MessageId, UserId};

    /// `user.added` v1: the email as a plain string.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct UserAdded {
        pub user_id: UserId,
        pub email: String,
        pub role: Role,
    }

    impl From<UserAdded> for crate::event::UserAdded {
        fn from(v1: UserAdded) -> Self {
            Self { user_id: v1.user_id, email: v1.email.into(), role: v1.role, identity: None }
        }
    }

    /// `user.updated` v1: the email as a plain string.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct UserUpdated {
        pub user_id: UserId,
        pub email: Option<String>,
        pub role: Option<Role>,
    }

    impl From<UserUpdated> for crate::event::UserUpdated {
        fn from(v1: UserUpdated) -> Self {
            Self { user_id: v1.user_id, email: v1.email.map(Into::into), role: v1.role }
        }
    }

    /// `conversation.opened` v1: the title as a plain string.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ConversationOpened {
        pub conversation_id: ConversationId,
        pub agent_id: AgentId,
        pub user_id: Option<UserId>,
        pub title: Option<String>,
    }

    impl From<ConversationOpened> for crate::event::ConversationOpened {
        fn from(v1: ConversationOpened) -> Self {
            Self {
                conversation_id: v1.conversation_id,
                agent_id: v1.agent_id,
                user_id: v1.user_id,
                title: v1.title.map(Into::into),
            }
        }
    }

    /// `message.appended` v1: plain content, no author.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct MessageAppended {
        pub conversation_id: ConversationId,
        pub message_id: MessageId,
        pub role: MessageRole,
        pub content: String,
        pub model: Option<String>,
        pub usage: Option<TokenUsage>,
    }

    impl From<MessageAppended> for crate::event::MessageAppended {
        fn from(v1: MessageAppended) -> Self {
            Self {
                conversation_id: v1.conversation_id,
                message_id: v1.message_id,
                role: v1.role,
                content: v1.content.into(),
                model: v1.model,
                usage: v1.usage,
                author: None,
            }
        }
    }

    /// `usage.recorded` v1, before a record carried its cost.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct UsageRecorded {
        pub model: String,
        pub kind: String,
        pub usage: TokenUsage,
        pub request_id: Option<String>,
        #[serde(with = "chrono::serde::ts_milliseconds")]
        pub occurred_at: chrono::DateTime<chrono::Utc>,
    }

    impl From<UsageRecorded> for crate::event::UsageRecorded {
        fn from(v1: UsageRecorded) -> Self {
            Self {
                model: v1.model,
                kind: v1.kind,
                usage: v1.usage,
                request_id: v1.request_id,
                occurred_at: v1.occurred_at,
                cost: None,
            }
        }
    }

    /// `apikey.issued` v1, before keys could act as a user.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ApiKeyIssued {
        pub key_id: ApiKeyId,
        pub name: String,
        pub role: Role,
        pub secret_hash: Vec<u8>,
    }

    impl From<ApiKeyIssued> for crate::event::ApiKeyIssued {
        fn from(v1: ApiKeyIssued) -> Self {
            Self {
                key_id: v1.key_id,
                name: v1.name,
                role: v1.role,
                secret_hash: v1.secret_hash,
                user_id: None,
                scopes: Vec::new(),
                expires_at: None,
            }
        }
    }

    /// `agent.created` v1, before agents had tools.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct AgentCreated {
        pub agent_id: AgentId,
        pub name: String,
        pub model: String,
        pub system_prompt: String,
    }

    impl From<AgentCreated> for crate::event::AgentCreated {
        fn from(v1: AgentCreated) -> Self {
            Self {
                agent_id: v1.agent_id,
                name: v1.name,
                model: v1.model,
                system_prompt: v1.system_prompt,
                tool_ids: Vec::new(),
            }
        }
    }
}

/// `tenant.created` v1 and v2 and `tenant.updated` v1: settings without `custom`.
pub mod v1_tenant {
    use serde::{Deserialize, Serialize};

    use crate::ids::{PartnerId, TenantId};
    use crate::limits::{LimitOverrides, Plan};

    /// Settings before `custom`.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Settings {
        pub agent_name: Option<String>,
        pub system_prompt: Option<String>,
        pub default_model: Option<String>,
        pub allowed_models: Vec<String>,
        pub feature_flags: Vec<(String, bool)>,
    }

    impl From<Settings> for crate::event::Settings {
        fn from(old: Settings) -> Self {
            Self {
                agent_name: old.agent_name,
                system_prompt: old.system_prompt,
                default_model: old.default_model,
                allowed_models: old.allowed_models,
                feature_flags: old.feature_flags,
                custom: None,
            }
        }
    }

    /// `tenant.created` v1, before tenants had parents.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct TenantCreated {
        pub slug: String,
        pub name: String,
        pub plan: Plan,
        pub partner_id: Option<PartnerId>,
        pub settings: Settings,
        pub limits: LimitOverrides,
    }

    impl From<TenantCreated> for crate::event::TenantCreated {
        fn from(v1: TenantCreated) -> Self {
            Self {
                slug: v1.slug,
                name: v1.name,
                plan: v1.plan,
                partner_id: v1.partner_id,
                settings: v1.settings.into(),
                limits: v1.limits,
                ancestors: Vec::new(),
            }
        }
    }

    /// `tenant.created` v2: with ancestors, settings without `custom`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct TenantCreatedV2 {
        pub slug: String,
        pub name: String,
        pub plan: Plan,
        pub partner_id: Option<PartnerId>,
        pub settings: Settings,
        pub limits: LimitOverrides,
        pub ancestors: Vec<TenantId>,
    }

    impl From<TenantCreatedV2> for crate::event::TenantCreated {
        fn from(v2: TenantCreatedV2) -> Self {
            Self {
                slug: v2.slug,
                name: v2.name,
                plan: v2.plan,
                partner_id: v2.partner_id,
                settings: v2.settings.into(),
                limits: v2.limits,
                ancestors: v2.ancestors,
            }
        }
    }

    /// `tenant.updated` v1: settings without `custom`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct TenantUpdated {
        pub name: Option<String>,
        pub plan: Option<Plan>,
        pub settings: Option<Settings>,
        pub limits: Option<LimitOverrides>,
    }

    impl From<TenantUpdated> for crate::event::TenantUpdated {
        fn from(v1: TenantUpdated) -> Self {
            Self { name: v1.name, plan: v1.plan, settings: v1.settings.map(Into::into), limits: v1.limits }
        }
    }
}

/// Shapes of schema version 2, kept so old events still decode.
pub mod v2 {
    use serde::{Deserialize, Serialize};

    use crate::context::Role;
    use crate::ids::{ApiKeyId, UserId};
    use crate::personal::Personal;

    /// `apikey.issued` v2, before keys had scopes and an expiry.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ApiKeyIssued {
        pub key_id: ApiKeyId,
        pub name: String,
        pub role: Role,
        #[serde(default)]
        pub secret_hash: Vec<u8>,
        pub user_id: Option<UserId>,
    }

    impl From<ApiKeyIssued> for crate::event::ApiKeyIssued {
        fn from(v2: ApiKeyIssued) -> Self {
            Self {
                key_id: v2.key_id,
                name: v2.name,
                role: v2.role,
                secret_hash: v2.secret_hash,
                user_id: v2.user_id,
                scopes: Vec::new(),
                expires_at: None,
            }
        }
    }

    /// `user.added` v2, before users could come from an identity provider.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct UserAdded {
        pub user_id: UserId,
        pub email: Personal,
        pub role: Role,
    }

    impl From<UserAdded> for crate::event::UserAdded {
        fn from(v2: UserAdded) -> Self {
            Self { user_id: v2.user_id, email: v2.email, role: v2.role, identity: None }
        }
    }
}

fn from_bytes<'a, T: Deserialize<'a>>(
    event_type: &str,
    version: u16,
    bytes: &'a [u8],
) -> Result<T, CodecError> {
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(|e| CodecError::Malformed {
        event_type: event_type.to_owned(),
        version,
        reason: e.to_string(),
    })?;
    if !rest.is_empty() {
        return Err(CodecError::Malformed {
            event_type: event_type.to_owned(),
            version,
            reason: format!("{} trailing bytes", rest.len()),
        });
    }
    Ok(value)
}

/// Encode any serialisable value with postcard (used for payloads of older versions in
/// tests and tools, and for metadata).
pub fn to_bytes<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    postcard::to_stdvec(value).map_err(|e| CodecError::Encode(e.to_string()))
}

macro_rules! events {
    ($( $variant:ident => $name:literal v $version:literal ),* $(,)?) => {
        /// The persisted type string of every event, in one place.
        pub mod types {
            $( #[allow(non_upper_case_globals)] pub const $variant: &str = $name; )*

            /// Every type string, for tools that enumerate them.
            pub const ALL: &[&str] = &[$($name),*];
        }

        impl Event {
            /// The persisted type string.
            pub const fn event_type(&self) -> &'static str {
                match self { $( Self::$variant(_) => $name, )* }
            }

            /// The schema version this build writes.
            pub const fn schema_version(&self) -> u16 {
                match self { $( Self::$variant(_) => $version, )* }
            }
        }

        /// The schema version this build writes for a type string, if the type is known.
        pub fn current_version(event_type: &str) -> Option<u16> {
            match event_type {
                $( $name => Some($version), )*
                _ => None,
            }
        }

        /// Encode an event at its current schema version.
        pub fn encode(event: &Event) -> Result<Encoded, CodecError> {
            let payload = match event { $( Event::$variant(p) => to_bytes(p)?, )* };
            Ok(Encoded {
                event_type: event.event_type(),
                schema_version: event.schema_version(),
                payload,
            })
        }

        fn decode_current(event_type: &str, version: u16, bytes: &[u8]) -> Result<Event, CodecError> {
            match event_type {
                $( $name if version == $version => {
                    Ok(Event::$variant(from_bytes(event_type, version, bytes)?))
                } )*
                other => Err(match current_version(other) {
                    Some(_) => CodecError::UnknownSchemaVersion { event_type: other.to_owned(), version },
                    None => CodecError::UnknownEventType(other.chars().take(64).collect()),
                }),
            }
        }

        fn transcode_current<'de, D: serde::Deserializer<'de>>(
            event_type: &str,
            version: u16,
            data: D,
        ) -> Result<Vec<u8>, CodecError> {
            let malformed = |reason: String| CodecError::Malformed {
                event_type: event_type.to_owned(),
                version,
                reason,
            };
            match event_type {
                $( $name if version == $version => {
                    to_bytes(&<$variant as Deserialize>::deserialize(data).map_err(|e| malformed(e.to_string()))?)
                } )*
                other => Err(match current_version(other) {
                    Some(_) => CodecError::UnknownSchemaVersion { event_type: other.to_owned(), version },
                    None => CodecError::UnknownEventType(other.chars().take(64).collect()),
                }),
            }
        }

        /// The payload alone, serialised with its own field names (for JSON export).
        impl Serialize for Event {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                match self { $( Self::$variant(p) => p.serialize(s), )* }
            }
        }
    };
}

events! {
    TenantCreated => "tenant.created" v 3,
    TenantUpdated => "tenant.updated" v 2,
    TenantSuspended => "tenant.suspended" v 1,
    TenantResumed => "tenant.resumed" v 1,
    AgentCreated => "agent.created" v 2,
    AgentUpdated => "agent.updated" v 1,
    AgentArchived => "agent.archived" v 1,
    ToolRegistered => "tool.registered" v 1,
    ToolUpdated => "tool.updated" v 1,
    ToolRemoved => "tool.removed" v 1,
    ApiKeyIssued => "apikey.issued" v 3,
    ApiKeyRevoked => "apikey.revoked" v 1,
    UserAdded => "user.added" v 3,
    UserUpdated => "user.updated" v 2,
    UserRemoved => "user.removed" v 1,
    ConversationOpened => "conversation.opened" v 3,
    MessageAppended => "message.appended" v 3,
    UsageRecorded => "usage.recorded" v 2,
    AccessDenied => "access.denied" v 1,
    TenantPurged => "tenant.purged" v 1,
    UserErased => "user.erased" v 1,
    PartnerCreated => "partner.created" v 1,
    SlugClaimed => "slug.claimed" v 1,
    SlugReleased => "slug.released" v 1,
    ApiKeyRotated => "apikey.rotated" v 1,
    OperatorCreated => "operator.created" v 1,
    OperatorRemoved => "operator.removed" v 1,
    BootstrapKeyRetired => "bootstrap_key.retired" v 1,
    PartnerRenamed => "partner.renamed" v 1,
    PartnerDeleted => "partner.deleted" v 1,
    PartnerKeyIssued => "partner_key.issued" v 1,
    PartnerKeyRevoked => "partner_key.revoked" v 1,
    PartnerKeyRotated => "partner_key.rotated" v 1,
    DataRead => "data.read" v 1,
    CredentialAdded => "credential.added" v 1,
    CredentialRotated => "credential.rotated" v 1,
    CredentialRemoved => "credential.removed" v 1,
    ConversationRetitled => "conversation.retitled" v 2,
    ConversationArchived => "conversation.archived" v 1,
    DocumentAdded => "document.added" v 1,
    DocumentRemoved => "document.removed" v 1,
    ConversationDeleted => "conversation.deleted" v 1,
    WebhookCreated => "webhook.created" v 1,
    WebhookUpdated => "webhook.updated" v 1,
    WebhookSecretRotated => "webhook.secret_rotated" v 1,
    WebhookRemoved => "webhook.removed" v 1,
    WebhookDisabled => "webhook.disabled" v 1,
    PricesSet => "prices.set" v 1,
    BudgetSet => "budget.set" v 1,
    BudgetThresholdCrossed => "budget.threshold_crossed" v 1,
    LegalHoldSet => "legal_hold.set" v 1,
    RetentionSet => "retention.set" v 1,
}

/// The shapes of earlier schema versions, by type and version: decoded with the old shape,
/// then upcast.
macro_rules! older {
    ($($variant:ident v $version:literal => $shape:ty),* $(,)?) => {
        fn decode_older(event_type: &str, version: u16, bytes: &[u8]) -> Option<Result<Event, CodecError>> {
            match (event_type, version) {
                $( (types::$variant, $version) => Some(
                    from_bytes::<$shape>(event_type, version, bytes).map(|old| Event::$variant(old.into())),
                ), )*
                _ => None,
            }
        }

        fn transcode_older<'de, D: serde::Deserializer<'de>>(
            event_type: &str,
            version: u16,
            data: D,
        ) -> Option<Result<Vec<u8>, CodecError>> {
            match (event_type, version) {
                $( (types::$variant, $version) => Some(
                    <$shape as Deserialize>::deserialize(data)
                        .map_err(|e| CodecError::Malformed {
                            event_type: event_type.to_owned(),
                            version,
                            reason: e.to_string(),
                        })
                        .and_then(|old| to_bytes(&old)),
                ), )*
                _ => None,
            }
        }
    };
}

older! {
    TenantCreated v 1 => v1_tenant::TenantCreated,
    TenantCreated v 2 => v1_tenant::TenantCreatedV2,
    TenantUpdated v 1 => v1_tenant::TenantUpdated,
    AgentCreated v 1 => v1::AgentCreated,
    ApiKeyIssued v 1 => v1::ApiKeyIssued,
    ApiKeyIssued v 2 => v2::ApiKeyIssued,
    UserAdded v 1 => v1::UserAdded,
    UserAdded v 2 => v2::UserAdded,
    UserUpdated v 1 => v1::UserUpdated,
    ConversationOpened v 1 => v1::ConversationOpened,
    MessageAppended v 1 => v1::MessageAppended,
    UsageRecorded v 1 => v1::UsageRecorded,
    // Same shapes as now; their personal values were sealed with the person's key only (now
    // with the conversation's too, see `conversation_sealed`).
    ConversationOpened v 2 => crate::event::ConversationOpened,
    MessageAppended v 2 => crate::event::MessageAppended,
    ConversationRetitled v 1 => crate::event::ConversationRetitled,
}

/// Whether an event stored as `event_type` v`version` has its personal values sealed with
/// its conversation's key (outside the person's): conversation.opened from v3,
/// message.appended from v3, conversation.retitled from v2. Earlier ones have the person's
/// key only, and a message without an author none.
pub fn conversation_sealed(event_type: &str, version: u16) -> bool {
    match event_type {
        types::ConversationOpened | types::MessageAppended => version >= 3,
        types::ConversationRetitled => version >= 2,
        _ => false,
    }
}

/// Decode a stored payload, upcasting older schema versions to the current shape.
pub fn decode(event_type: &str, version: u16, bytes: &[u8]) -> Result<Event, CodecError> {
    decode_older(event_type, version, bytes).unwrap_or_else(|| decode_current(event_type, version, bytes))
}

/// Read a payload of exactly `event_type` v`version` from a self-describing format (JSON
/// fixtures, exports) and encode it as stored, keeping its version: old versions stay old.
pub fn transcode<'de, D: serde::Deserializer<'de>>(
    event_type: &str,
    version: u16,
    data: D,
) -> Result<Vec<u8>, CodecError> {
    // `data` is consumed by one of the two: the older shapes are tried by (type, version)
    // before anything is read from it.
    if older_version(event_type, version) {
        return transcode_older(event_type, version, data).unwrap_or_else(|| {
            Err(CodecError::UnknownSchemaVersion { event_type: event_type.to_owned(), version })
        });
    }
    transcode_current(event_type, version, data)
}

fn older_version(event_type: &str, version: u16) -> bool {
    current_version(event_type).is_some_and(|current| version < current) && version >= 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::AgentId;

    #[test]
    fn agent_created_v1_upcasts_to_v2_with_no_tools() {
        let agent_id = AgentId::new();
        let old = v1::AgentCreated {
            agent_id,
            name: "support".into(),
            model: "gpt-x".into(),
            system_prompt: "be kind".into(),
        };
        let bytes = to_bytes(&old).unwrap();
        let event = decode(types::AgentCreated, 1, &bytes).unwrap();
        assert_eq!(
            event,
            Event::AgentCreated(AgentCreated {
                agent_id,
                name: "support".into(),
                model: "gpt-x".into(),
                system_prompt: "be kind".into(),
                tool_ids: vec![],
            })
        );
        // A v1 payload is not a valid v2 payload: the version in the envelope matters.
        assert!(matches!(decode(types::AgentCreated, 2, &bytes), Err(CodecError::Malformed { .. })));
    }

    #[test]
    fn unknown_types_versions_and_bytes_are_typed_errors() {
        assert_eq!(
            decode("agent.exploded", 1, &[]),
            Err(CodecError::UnknownEventType("agent.exploded".into()))
        );
        assert_eq!(
            decode(types::TenantResumed, 9, &[]),
            Err(CodecError::UnknownSchemaVersion { event_type: "tenant.resumed".into(), version: 9 })
        );
        assert!(matches!(
            decode(types::UserAdded, 1, &[0xff, 0xff, 0xff]),
            Err(CodecError::Malformed { .. })
        ));
        assert!(matches!(decode(types::TenantResumed, 1, &[0]), Err(CodecError::Malformed { .. })));
    }
}
