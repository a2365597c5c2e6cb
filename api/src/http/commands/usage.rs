//! Recording token usage (idempotent on `request_id`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use tenantry_domain::command::RecordUsage;
use tenantry_domain::event::TokenUsage;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::auth::Scoped;
use crate::http::error::ApiError;
use crate::http::extract::AppJson;
use crate::http::{AppState, written};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordBody {
    pub model: String,
    pub kind: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub request_id: Option<String>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(record))
}

#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/usage", request_body = RecordBody, tag = "usage", params(("tenant_id" = String, Path, description = "tenant id (UUID)")), responses((status = 201, description = "Created: `id` and `position`"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
pub async fn record(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    AppJson(body): AppJson<RecordBody>,
) -> Result<Response, ApiError> {
    let command = RecordUsage {
        model: body.model,
        kind: body.kind,
        usage: TokenUsage { prompt_tokens: body.prompt_tokens, completion_tokens: body.completion_tokens },
        request_id: body.request_id,
        occurred_at: chrono::Utc::now(),
    };
    let out = state.commands.usage(&ctx, &command).await?;
    let status = if out.events == 0 { StatusCode::OK } else { StatusCode::CREATED };
    Ok(written(status, None, out, json!({ "recorded": out.events > 0 })))
}
