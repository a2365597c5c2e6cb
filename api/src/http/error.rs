//! One error type for every route, answered as `application/problem+json` (RFC 9457) with a
//! stable `code`, and `field` where one field is at fault. Internal errors are logged by the
//! access-log middleware (which finds them in the response's extensions), never here, and
//! their details never reach a client.

use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tenantry_app::{AppError, CommandError};
use tenantry_domain::{LimitName, Rejection};
use tenantry_projections::ProjectionError;
use tenantry_store::StoreError;

/// What went wrong inside, kept for the access log.
pub type Cause = Arc<dyn std::error::Error + Send + Sync>;

/// The cause of a 5xx answer, attached to the response for the access log.
#[derive(Debug, Clone)]
pub struct InternalCause(pub Cause);

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 `bad_request`: malformed JSON, a wrong type, an unknown field, a bad id or query.
    #[error("{detail}")]
    BadRequest { detail: String, field: Option<String> },
    /// 400 `invalid_cursor`: a cursor this list did not hand out.
    #[error("invalid cursor")]
    InvalidCursor,
    /// 401 `unauthorized`: no credential, or one that does not authenticate.
    #[error("missing or invalid credential")]
    Unauthorized,
    /// 403 `forbidden`: the role may not do this, or the key belongs to another tenant.
    #[error("{0}")]
    Forbidden(String),
    /// 403 `insufficient_scope`: the key's scopes do not include the one the route needs.
    #[error("this key lacks the scope `{0}`")]
    InsufficientScope(tenantry_domain::Scope),
    /// 404 `not_found`: no such object for this tenant (also another tenant's objects).
    #[error("not found")]
    NotFound,
    /// 405 `method_not_allowed`.
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// 408 `request_timeout`: the body did not arrive within the body-read timeout.
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    /// 409 `conflict`: a version conflict or a taken name.
    #[error("{detail}")]
    Conflict { detail: String, field: Option<String> },
    /// 413 `payload_too_large`: the body is over the route's limit (1 MiB; 24 MiB to add a document).
    #[error("request body is over 1 MiB")]
    PayloadTooLarge,
    /// 414 `uri_too_long`.
    #[error("request target is too long")]
    UriTooLong,
    /// 422 `validation_failed`: well-formed but invalid.
    #[error("invalid {field}: {reason}")]
    Unprocessable { field: String, reason: String },
    /// 422 `model_not_allowed`: a model outside the tenant's `allowed_models`.
    #[error("{0}")]
    ModelNotAllowed(String),
    /// 422 `idempotency_key_reused`: a key (or request id) seen before with other content.
    #[error("{detail}")]
    IdempotencyKeyReused { detail: String, field: Option<String> },
    /// 429 `limit_exceeded`: a limit is reached.
    #[error("limit {limit} reached ({max})")]
    LimitReached { limit: LimitName, max: u64, retry_after: Option<u64> },
    /// 429 `budget`: the tenant's monthly budget has a hard stop, and this would cost past it.
    #[error("{0}")]
    Budget(String),
    /// 431 `headers_too_large`.
    #[error("request headers are too large")]
    HeadersTooLarge,
    /// 503 `unavailable`: the read model has not caught up with the position asked for, or
    /// the tenant is too busy; retry.
    #[error("{0}")]
    Unavailable(String),
    /// 500 `internal`: anything else; the body says nothing more.
    #[error("internal error")]
    Internal(Cause),
}

impl ApiError {
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::BadRequest { detail: detail.into(), field: None }
    }

    pub fn internal(cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Arc::new(cause))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } | Self::InvalidCursor => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) | Self::InsufficientScope(_) => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UriTooLong => StatusCode::URI_TOO_LONG,
            Self::Unprocessable { .. } | Self::IdempotencyKeyReused { .. } | Self::ModelNotAllowed(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::LimitReached { .. } | Self::Budget(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code clients branch on.
    pub const fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { .. } => "bad_request",
            Self::InvalidCursor => "invalid_cursor",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::InsufficientScope(_) => "insufficient_scope",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::RequestTimeout => "request_timeout",
            Self::Conflict { .. } => "conflict",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UriTooLong => "uri_too_long",
            Self::Unprocessable { .. } => "validation_failed",
            Self::IdempotencyKeyReused { .. } => "idempotency_key_reused",
            Self::ModelNotAllowed(_) => "model_not_allowed",
            Self::LimitReached { .. } => "limit_exceeded",
            Self::Budget(_) => "budget",
            Self::HeadersTooLarge => "headers_too_large",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            Self::BadRequest { field, .. }
            | Self::Conflict { field, .. }
            | Self::IdempotencyKeyReused { field, .. } => field.as_deref(),
            Self::Unprocessable { field, .. } => Some(field),
            Self::ModelNotAllowed(_) => Some("model"),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut body = json!({
            "type": "about:blank",
            "title": status.canonical_reason().unwrap_or("error"),
            "status": status.as_u16(),
            "code": self.code(),
            "detail": self.to_string(),
        });
        if let Some(field) = self.field() {
            body["field"] = json!(field);
        }
        let mut retry_after = None;
        match &self {
            Self::LimitReached { limit, max, retry_after: r } => {
                body["limit"] = json!(limit.as_str());
                body["max"] = json!(max);
                retry_after = *r;
            }
            Self::Unavailable(_) => retry_after = Some(1),
            Self::InsufficientScope(scope) => body["scope"] = json!(scope.as_str()),
            _ => {}
        }
        let mut response = (status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if matches!(self, Self::Unauthorized) {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"tenantry\""));
        }
        if let Self::InsufficientScope(scope) = &self
            && let Ok(value) = HeaderValue::from_str(&format!(
                "Bearer realm=\"tenantry\", error=\"insufficient_scope\", scope=\"{scope}\""
            ))
        {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        if let Self::Internal(cause) = self {
            response.extensions_mut().insert(InternalCause(cause));
        }
        response
    }
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        match r {
            // Authentication maps this one to 401 itself; elsewhere it is a refusal.
            Rejection::IdentityRetired(_) => Self::Forbidden(r.to_string()),
            Rejection::TenantNotFound
            | Rejection::AgentNotFound(_)
            | Rejection::ToolNotFound(_)
            | Rejection::ApiKeyNotFound(_)
            | Rejection::UserNotFound(_)
            | Rejection::ConversationNotFound(_)
            | Rejection::OperatorNotFound(_)
            | Rejection::PartnerNotFound(_)
            | Rejection::CredentialNotFound(_)
            | Rejection::DocumentNotFound(_)
            | Rejection::WebhookNotFound(_) => Self::NotFound,
            Rejection::LastWayIn
            | Rejection::PartnerHasTenants(_)
            | Rejection::ConversationArchived(_)
            | Rejection::LegalHold => Self::Conflict { detail: r.to_string(), field: None },
            Rejection::TenantSuspended => Self::Forbidden("tenant is suspended".into()),
            Rejection::Forbidden => Self::Forbidden("role may not do this".into()),
            Rejection::LimitReached { limit, max } => Self::LimitReached { limit, max, retry_after: None },
            Rejection::Invalid { field, reason } => Self::Unprocessable { field: field.into(), reason },
            Rejection::ModelNotAllowed(_) => Self::ModelNotAllowed(r.to_string()),
            Rejection::BudgetExceeded { .. } => Self::Budget(r.to_string()),
            Rejection::RequestIdReused(_) => {
                Self::IdempotencyKeyReused { detail: r.to_string(), field: Some("request_id".into()) }
            }
            Rejection::SlugTaken(_) => Self::Conflict { detail: r.to_string(), field: Some("slug".into()) },
            Rejection::EmailTaken => Self::Conflict { detail: r.to_string(), field: Some("email".into()) },
            other @ (Rejection::TenantAlreadyExists
            | Rejection::TenantNotSuspended
            | Rejection::AgentAlreadyExists(_)
            | Rejection::ToolAlreadyExists(_)
            | Rejection::ApiKeyAlreadyExists(_)
            | Rejection::UserAlreadyExists(_)
            | Rejection::ConversationAlreadyExists(_)
            | Rejection::OperatorAlreadyExists(_)
            | Rejection::DocumentAlreadyExists(_)) => {
                Self::Conflict { detail: other.to_string(), field: None }
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { .. } | StoreError::KeyRace { .. } => {
                Self::Conflict { detail: e.to_string(), field: None }
            }
            StoreError::IdempotencyMismatch { .. } => Self::IdempotencyKeyReused {
                detail: "this Idempotency-Key was used before with another request".into(),
                field: None,
            },
            StoreError::PayloadTooLarge { .. } => Self::PayloadTooLarge,
            StoreError::KeyDestroyed { .. } => Self::NotFound,
            StoreError::QuotaExceeded { limit, max } => {
                let (limit, retry_after) = match limit {
                    "api_calls_per_day" => {
                        // The count starts again at the next UTC midnight.
                        let now = chrono::Utc::now().timestamp();
                        (LimitName::ApiCallsPerDay, Some((86_400 - now.rem_euclid(86_400)) as u64))
                    }
                    _ => (LimitName::StorageBytes, None),
                };
                Self::LimitReached { limit, max, retry_after }
            }
            other => Self::internal(other),
        }
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        AppError::from(e).into()
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Rejected(r) => r.into(),
            AppError::Store(s) => s.into(),
            AppError::Projection(p) => p.into(),
            AppError::Contended => Self::Unavailable(e.to_string()),
        }
    }
}

impl From<ProjectionError> for ApiError {
    fn from(e: ProjectionError) -> Self {
        match e {
            ProjectionError::InvalidCursor => Self::InvalidCursor,
            ProjectionError::NotCaughtUp { .. } => Self::Unavailable(e.to_string()),
            // The read model cannot show this tenant's newest writes until the stall is
            // cleared (see `tenantry status`); the writes themselves stand.
            ProjectionError::Stalled { projector, .. } => {
                Self::Unavailable(format!("the {projector} read model of this tenant is stalled"))
            }
            other => Self::internal(other),
        }
    }
}

/// A state the code should never reach (a route wired wrongly, a recorder missing).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Bug(pub &'static str);
