//! Identifiers that parse instead of validate: once a value of these types exists it is valid.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("`{value}` is not a valid {kind} id (expected a UUID)")]
    NotAUuid { kind: &'static str, value: String },
    #[error("stream id is empty")]
    EmptyStream,
    #[error("stream id is {len} bytes long; the limit is {max}")]
    StreamTooLong { len: usize, max: usize },
    #[error("stream id `{0}` may only hold ASCII letters, digits and `-_.:`")]
    StreamCharacters(String),
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new time-ordered (v7) id. Only the edges of the system call this: `decide`
            /// receives ids through its commands.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self).map_err(|_| IdError::NotAUuid {
                    kind: $kind,
                    value: s.chars().take(64).collect(),
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }
    };
}

uuid_id!(
    /// A customer organisation. Every key in every table starts with it.
    TenantId, "tenant"
);
impl TenantId {
    /// The platform's own log (the nil UUID): tombstones of purged tenants. No customer
    /// tenant ever has this id.
    pub const PLATFORM: Self = Self(Uuid::nil());
}

uuid_id!(
    /// One event, unique within its tenant; appends are idempotent by it.
    EventId, "event"
);
uuid_id!(PartnerId, "partner");
uuid_id!(OperatorId, "operator");
uuid_id!(AgentId, "agent");
uuid_id!(ToolId, "tool");
uuid_id!(UserId, "user");
uuid_id!(ApiKeyId, "api key");
uuid_id!(ConversationId, "conversation");
uuid_id!(MessageId, "message");
uuid_id!(CredentialId, "credential");
uuid_id!(DocumentId, "document");
uuid_id!(WebhookId, "webhook");
uuid_id!(RequestId, "request");

/// A stream inside a tenant's log (`tenant`, `agent-<id>`, `conversation-<id>` …).
///
/// At most [`StreamId::MAX_LEN`] bytes of `[A-Za-z0-9-_.:]`, so it can be used in keys and
/// broker subjects without escaping.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StreamId(String);

impl StreamId {
    pub const MAX_LEN: usize = 200;

    /// The stream holding the tenant's own lifecycle and its directory (agents, tools,
    /// users, keys): every limit counted against the tenant is decided on it.
    pub fn tenant() -> Self {
        Self("tenant".to_owned())
    }

    pub fn conversation(id: ConversationId) -> Self {
        Self(format!("conversation-{id}"))
    }

    /// One knowledge-base document: its metadata events (the body is kept beside the log).
    pub fn document(id: DocumentId) -> Self {
        Self(format!("document-{id}"))
    }

    /// The records of refused requests: nothing is decided on it.
    pub fn audit() -> Self {
        Self("audit".to_owned())
    }

    /// Usage of one calendar month (`usage-2026-11`): the monthly token limit is decided on it.
    pub fn usage(year: i32, month: u32) -> Self {
        Self(format!("usage-{year:04}-{month:02}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before the first `-`: `conversation` for `conversation-<id>`.
    pub fn kind(&self) -> &str {
        self.0.split('-').next().unwrap_or(&self.0)
    }
}

impl FromStr for StreamId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::try_from(s.to_owned())
    }
}

impl TryFrom<String> for StreamId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        if s.is_empty() {
            return Err(IdError::EmptyStream);
        }
        if s.len() > Self::MAX_LEN {
            return Err(IdError::StreamTooLong { len: s.len(), max: Self::MAX_LEN });
        }
        if !s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)) {
            return Err(IdError::StreamCharacters(s.chars().take(64).collect()));
        }
        Ok(Self(s))
    }
}

impl From<StreamId> for String {
    fn from(id: StreamId) -> Self {
        id.0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_parse_or_say_why_not() {
        assert_eq!("tenant".parse::<StreamId>().map(|s| s.kind().to_owned()), Ok("tenant".into()));
        let conv = StreamId::conversation(ConversationId::new());
        assert_eq!(conv.kind(), "conversation");
        assert_eq!("".parse::<StreamId>(), Err(IdError::EmptyStream));
        assert_eq!("a".repeat(201).parse::<StreamId>(), Err(IdError::StreamTooLong { len: 201, max: 200 }));
        assert!("a".repeat(200).parse::<StreamId>().is_ok());
        assert!(matches!("a b".parse::<StreamId>(), Err(IdError::StreamCharacters(_))));
    }

    #[test]
    fn uuid_ids_reject_garbage() {
        assert!(matches!("nope".parse::<TenantId>(), Err(IdError::NotAUuid { kind: "tenant", .. })));
        let id = TenantId::new();
        assert_eq!(id.to_string().parse::<TenantId>(), Ok(id));
    }
}
