//! Issuing, rotating and revoking API keys. Each waits until authentication sees the change,
//! so a new secret works on the next request and a revoked one fails on it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use tenantry_domain::command::{IssueApiKey, RevokeApiKey, RotateApiKey};
use tenantry_domain::tenant::TenantCommand;
use tenantry_domain::{ApiKeyId, Role, Scope, TenantId, UserId};
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
    /// Narrow the key to these scopes (see the API description for the list); absent or
    /// empty: all its role allows.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// When the key stops working (RFC 3339); absent: never.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// `POST …/api-keys/{id}/rotate`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rotate {
    /// Seconds the old secret keeps working (0 to 604800); 0 when absent.
    #[serde(default)]
    pub grace_seconds: u64,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create)).routes(routes!(rotate)).routes(routes!(revoke))
}

/// Scope names as the domain knows them; an unknown one is a 422 naming it.
fn scopes(names: &[String]) -> Result<Vec<Scope>, ApiError> {
    names
        .iter()
        .map(|name| {
            Scope::parse(name).ok_or_else(|| ApiError::Unprocessable {
                field: "scopes".into(),
                reason: format!("unknown scope `{}`", name.chars().take(64).collect::<String>()),
            })
        })
        .collect()
}

/// `POST /v1/tenants/{id}/api-keys`: answers the secret once.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/api-keys", request_body = CreateKey, tag = "api_keys", params(("tenant_id" = String, Path, description = "tenant id (UUID)")), responses((status = 201, description = "Created: `id` and `position`"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
pub async fn create(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    AppJson(body): AppJson<CreateKey>,
) -> Result<Response, ApiError> {
    let scopes = scopes(&body.scopes)?;
    let (key_id, token, secret_hash) = state.keys.issue();
    let command = TenantCommand::IssueApiKey(IssueApiKey {
        key_id,
        name: body.name,
        role: body.role,
        secret_hash,
        user_id: body.user_id,
        scopes,
        expires_at: body.expires_at,
        now: Utc::now(),
    });
    let out = state.commands.tenant(&ctx, &command).await?;
    // The key works once authentication's read model has it: the answer waits for that.
    let location = format!("/v1/tenants/{}/api-keys/{key_id}", ctx.tenant_id);
    let read = || directory::api_key(&ctx, state.projections.db(), key_id);
    let created = (StatusCode::CREATED, out, location);
    object(&state, &ctx, directory::NAME, created, key_id.to_string(), read, json!({ "key": token })).await
}

/// `POST /v1/tenants/{id}/api-keys/{key_id}/rotate`: a new secret, answered once; the old
/// one works on for `grace_seconds` (not at all by default).
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/api-keys/{key_id}/rotate", request_body = Rotate, tag = "api_keys", params(("tenant_id" = String, Path, description = "tenant id (UUID)"), ("key_id" = String, Path, description = "key id (UUID)")), responses((status = 200, description = "The key as `GET` shows it, with the new secret `key`"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
pub async fn rotate(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    AppPath((_, key_id)): AppPath<(TenantId, ApiKeyId)>,
    AppJson(body): AppJson<Rotate>,
) -> Result<Response, ApiError> {
    let (token, secret_hash) = state.keys.secret_for(key_id);
    let command = RotateApiKey { key_id, secret_hash, grace_seconds: body.grace_seconds, now: Utc::now() };
    let out = state.commands.tenant(&ctx, &TenantCommand::RotateApiKey(command)).await?;
    // The old secret is refused from now on (past its grace); the new one works once
    // authentication's read model has it, which `object` waits for.
    keys_retired(&state, &ctx, out.position).await?;
    let location = format!("/v1/tenants/{}/api-keys/{key_id}", ctx.tenant_id);
    let read = || directory::api_key(&ctx, state.projections.db(), key_id);
    let rotated = (StatusCode::OK, out, location);
    object(&state, &ctx, directory::NAME, rotated, key_id.to_string(), read, json!({ "key": token })).await
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
