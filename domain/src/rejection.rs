//! Why a command was refused. Nouns, comparable, so tests assert them exactly.

use crate::ids::{
    AgentId, ApiKeyId, ConversationId, CredentialId, DocumentId, OperatorId, PartnerId, ToolId, UserId,
    WebhookId,
};
use crate::limits::LimitName;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("tenant does not exist")]
    TenantNotFound,
    #[error("tenant already exists")]
    TenantAlreadyExists,
    #[error("tenant is suspended")]
    TenantSuspended,
    #[error("tenant is not suspended")]
    TenantNotSuspended,
    #[error("limit {limit} reached ({max})")]
    LimitReached { limit: LimitName, max: u64 },
    #[error("role may not do this")]
    Forbidden,
    #[error("agent {0} does not exist")]
    AgentNotFound(AgentId),
    #[error("agent {0} already exists")]
    AgentAlreadyExists(AgentId),
    #[error("tool {0} does not exist")]
    ToolNotFound(ToolId),
    #[error("tool {0} already exists")]
    ToolAlreadyExists(ToolId),
    #[error("api key {0} does not exist")]
    ApiKeyNotFound(ApiKeyId),
    #[error("api key {0} already exists")]
    ApiKeyAlreadyExists(ApiKeyId),
    #[error("user {0} does not exist")]
    UserNotFound(UserId),
    #[error("user {0} already exists")]
    UserAlreadyExists(UserId),
    #[error("user {0} was removed: their identity provider's tokens no longer open this tenant")]
    IdentityRetired(UserId),
    #[error("credential {0} does not exist")]
    CredentialNotFound(CredentialId),
    #[error("webhook {0} does not exist")]
    WebhookNotFound(WebhookId),
    #[error("document {0} does not exist")]
    DocumentNotFound(DocumentId),
    #[error("document {0} already exists")]
    DocumentAlreadyExists(DocumentId),
    #[error("partner {0} does not exist")]
    PartnerNotFound(PartnerId),
    #[error("the partner still has {0} tenants: purge or move them first")]
    PartnerHasTenants(u64),
    #[error("operator {0} does not exist")]
    OperatorNotFound(OperatorId),
    #[error("operator {0} already exists")]
    OperatorAlreadyExists(OperatorId),
    #[error("the platform would have no key left: keep one operator, or the bootstrap key")]
    LastWayIn,
    #[error("email is already used by another user of this tenant")]
    EmailTaken,
    #[error("conversation {0} does not exist")]
    ConversationNotFound(ConversationId),
    #[error("conversation {0} already exists")]
    ConversationAlreadyExists(ConversationId),
    #[error("conversation {0} is archived: unarchive it to add to it")]
    ConversationArchived(ConversationId),
    #[error("request id {0} was recorded before with other content")]
    RequestIdReused(String),
    #[error("slug `{0}` is taken")]
    SlugTaken(String),
    #[error("model `{0}` is not among the tenant's allowed_models")]
    ModelNotAllowed(String),
    #[error("the monthly budget of {budget} {currency} would be exceeded")]
    BudgetExceeded { budget: String, currency: String },
    #[error("the tenant is under a legal hold: nothing of it may be deleted until it is released")]
    LegalHold,
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

impl Rejection {
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid { field, reason: reason.into() }
    }
}
