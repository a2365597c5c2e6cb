//! Issuing and revoking API keys. Both wait until authentication sees the change, so a new
//! key works on the next request and a revoked one fails on it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use tenantry_domain::command::{IssueApiKey, RevokeApiKey};
use tenantry_domain::tenant::TenantCommand;
use tenantry_domain::{ApiKeyId, Role, TenantId, UserId};
use tenantry_projections::models::directory;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::auth::Scoped;
use crate::http::error::ApiError;
use crate::http::extract::{AppJson, AppPath};
use crate::http::{AppState, keys_retired, object, written};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    pub name: String,
    /// `admin` or `user`.
    #[schema(value_type = String)]
    pub role: Role,
    /// Required for a `user` key: the user it acts as.
    #[schema(value_type = Option<String>)]
    pub user_id: Option<UserId>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create)).routes(routes!(revoke))
}

/// `POST /v1/tenants/{id}/api-keys`: answers the secret once.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/api-keys", request_body = CreateKey, tag = "api_keys", params(("tenant_id" = String, Path, description = "tenant id (UUID)")), responses((status = 201, description = "Created: `id` and `position`"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
pub async fn create(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    AppJson(body): AppJson<CreateKey>,
) -> Result<Response, ApiError> {
    let (key_id, token, secret_hash) = state.keys.issue();
    let command = TenantCommand::IssueApiKey(IssueApiKey {
        key_id,
        name: body.name,
        role: body.role,
        secret_hash,
        user_id: body.user_id,
    });
    let out = state.commands.tenant(&ctx, &command).await?;
    // The key works once authentication's read model has it: the answer waits for that.
    let location = format!("/v1/tenants/{}/api-keys/{key_id}", ctx.tenant_id);
    let read = || directory::api_key(&ctx, state.projections.db(), key_id);
    let created = (StatusCode::CREATED, out, location);
    object(&state, &ctx, directory::NAME, created, key_id.to_string(), read, json!({ "key": token })).await
}

/// `DELETE /v1/tenants/{id}/api-keys/{key_id}`: effective before the answer.
#[utoipa::path(delete, path = "/v1/tenants/{tenant_id}/api-keys/{key_id}", tag = "api_keys", params(("tenant_id" = String, Path, description = "tenant id (UUID)"), ("key_id" = String, Path, description = "key id (UUID)")), responses((status = 200, description = "Done: `position`"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
pub async fn revoke(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    AppPath((_, key_id)): AppPath<(TenantId, ApiKeyId)>,
) -> Result<Response, ApiError> {
    let out = state.commands.tenant(&ctx, &TenantCommand::RevokeApiKey(RevokeApiKey { key_id })).await?;
    keys_retired(&state, &ctx, out.position).await?;
    Ok(written(StatusCode::OK, Some(key_id.to_string()), out, json!({})))
}
