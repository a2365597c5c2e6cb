//! Who is acting, for which tenant. Built once per request from the credential and passed
//! as the first parameter to every store, projector and query function.

use serde::{Deserialize, Serialize};

use crate::ids::{ApiKeyId, OperatorId, PartnerId, RequestId, TenantId, UserId};

/// What a credential may do. Ordered from most to least powerful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The platform operator: every tenant.
    SuperAdmin,
    /// Manages the tenants of one partner.
    PartnerAdmin,
    /// Manages one tenant.
    Admin,
    /// Uses one tenant: its own conversations and usage.
    User,
}

impl Role {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::SuperAdmin => "super_admin",
            Self::PartnerAdmin => "partner_admin",
            Self::Admin => "admin",
            Self::User => "user",
        }
    }

    /// The role an [`Role::as_str`] name stands for.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::SuperAdmin, Self::PartnerAdmin, Self::Admin, Self::User]
            .into_iter()
            .find(|r| r.as_str() == name)
    }

    /// Whether this role may manage the tenant's directory (agents, tools, users, keys).
    pub const fn can_administer(self) -> bool {
        !matches!(self, Self::User)
    }
}

/// Who acts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Actor {
    /// A request authenticated by an API key.
    ApiKey(ApiKeyId),
    /// A request made on behalf of a user of the tenant.
    User(UserId),
    /// A named operator of the platform.
    Operator(OperatorId),
    /// The platform itself (bootstrap key, CLI, background jobs).
    System,
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ApiKey(id) => write!(f, "apikey:{id}"),
            Self::User(id) => write!(f, "user:{id}"),
            Self::Operator(id) => write!(f, "operator:{id}"),
            Self::System => f.write_str("system"),
        }
    }
}

impl std::str::FromStr for Actor {
    type Err = crate::ids::IdError;

    /// The form [`Actor`] displays as: `system`, `apikey:<id>`, `user:<id>`, `operator:<id>`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.split_once(':') {
            Some(("apikey", id)) => Ok(Self::ApiKey(id.parse()?)),
            Some(("user", id)) => Ok(Self::User(id.parse()?)),
            Some(("operator", id)) => Ok(Self::Operator(id.parse()?)),
            _ if text == "system" => Ok(Self::System),
            _ => Err(crate::ids::IdError::NotAUuid { kind: "actor", value: text.chars().take(64).collect() }),
        }
    }
}

/// The tenant a piece of work is for, and who does it. Plain data: no global "current
/// tenant" exists anywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantContext {
    pub tenant_id: TenantId,
    pub actor: Actor,
    pub role: Role,
    /// Set for a partner_admin: the partner whose tenants it manages.
    pub partner_id: Option<PartnerId>,
    pub request_id: RequestId,
    /// Source address when known, kept (encrypted) in event metadata for the audit log.
    pub source_ip: Option<String>,
}

impl TenantContext {
    /// A context for platform work on one tenant (CLI, jobs, tests).
    pub fn system(tenant_id: TenantId) -> Self {
        Self {
            tenant_id,
            actor: Actor::System,
            role: Role::SuperAdmin,
            partner_id: None,
            request_id: RequestId::new(),
            source_ip: None,
        }
    }
}
