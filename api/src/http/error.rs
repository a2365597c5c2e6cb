//! One error type for every route, answered as `application/problem+json` (RFC 9457).
//! Logging happens in the tracing middleware, not here; internal details never reach a
//! client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tenantry_domain::{LimitName, Rejection};
use tenantry_projections::ProjectionError;
use tenantry_store::StoreError;

use crate::service::CommandError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: malformed JSON, unknown fields, a bad id or cursor.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no credential, or one that does not authenticate.
    #[error("missing or invalid API key")]
    Unauthorized,
    /// 403: the role may not do this, or the key belongs to another tenant.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such object for this tenant (also for another tenant's objects).
    #[error("not found")]
    NotFound,
    /// 409: a version conflict or a taken name.
    #[error("{0}")]
    Conflict(String),
    /// 413: the body is over 1 MiB.
    #[error("request body is over 1 MiB")]
    PayloadTooLarge,
    /// 422: well-formed but invalid.
    #[error("invalid {field}: {reason}")]
    Unprocessable { field: String, reason: String },
    /// 429: a limit is reached.
    #[error("limit {limit} reached ({max})")]
    LimitReached { limit: LimitName, max: u64, retry_after: Option<u64> },
    /// 503: the read model has not caught up with the position asked for, or the tenant is
    /// too busy; retry.
    #[error("{0}")]
    Unavailable(String),
    /// 500: anything else; the body says nothing more.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::LimitReached { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
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
            "detail": self.to_string(),
        });
        let mut retry_after = None;
        match &self {
            Self::LimitReached { limit, max, retry_after: r } => {
                body["limit"] = json!(limit.as_str());
                body["max"] = json!(max);
                retry_after = *r;
            }
            Self::Unavailable(_) => retry_after = Some(1),
            Self::Internal(detail) => tracing::error!(detail, "internal error"),
            _ => {}
        }
        let mut response = (status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        match r {
            Rejection::TenantNotFound
            | Rejection::AgentNotFound(_)
            | Rejection::ToolNotFound(_)
            | Rejection::ApiKeyNotFound(_)
            | Rejection::UserNotFound(_)
            | Rejection::ConversationNotFound(_) => Self::NotFound,
            Rejection::TenantSuspended => Self::Forbidden("tenant is suspended".into()),
            Rejection::Forbidden => Self::Forbidden("role may not do this".into()),
            Rejection::LimitReached { limit, max } => Self::LimitReached { limit, max, retry_after: None },
            Rejection::Invalid { field, reason } => Self::Unprocessable { field: field.into(), reason },
            other @ (Rejection::TenantAlreadyExists
            | Rejection::TenantNotSuspended
            | Rejection::AgentAlreadyExists(_)
            | Rejection::ToolAlreadyExists(_)
            | Rejection::ApiKeyAlreadyExists(_)
            | Rejection::UserAlreadyExists(_)
            | Rejection::EmailTaken
            | Rejection::ConversationAlreadyExists(_)) => Self::Conflict(other.to_string()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { .. } | StoreError::IdempotencyMismatch { .. } => {
                Self::Conflict(e.to_string())
            }
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
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Rejected(r) => r.into(),
            CommandError::Store(s) => s.into(),
            CommandError::Contended => Self::Unavailable(e.to_string()),
        }
    }
}

impl From<ProjectionError> for ApiError {
    fn from(e: ProjectionError) -> Self {
        match e {
            ProjectionError::InvalidCursor => Self::BadRequest("invalid cursor".into()),
            ProjectionError::NotCaughtUp { .. } => Self::Unavailable(e.to_string()),
            other => Self::Internal(other.to_string()),
        }
    }
}
