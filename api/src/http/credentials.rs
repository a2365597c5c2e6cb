//! A tenant's model provider credentials (tenant admins): `POST/GET …/credentials`,
//! `GET/DELETE …/credentials/{id}`, `POST …/credentials/{id}/rotate`. A secret goes in and
//! never comes out of these routes: they show the provider, the name, the secret's last four
//! characters and a fingerprint.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use tenantry_domain::command::{AddCredential, RemoveCredential, RotateCredential};
use tenantry_domain::tenant::TenantCommand;
use tenantry_domain::{CredentialId, TenantId};
use tenantry_projections::models::directory;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Administering;
use super::error::ApiError;
use super::extract::{AppJson, AppPath, AppQuery, MinPosition};
use super::queries::PageParams;
use super::{AppState, caught_up, object, settled, written};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCredential {
    /// `openai`, `anthropic`, `azure_openai`, `google` or `custom`.
    pub provider: String,
    pub name: String,
    /// Kept in the tenant's encrypted log; never answered by these routes.
    pub secret: String,
    pub base_url: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateCredentialBody {
    pub secret: String,
}

pub fn commands() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_credential))
        .routes(routes!(remove_credential))
        .routes(routes!(rotate_credential))
}

pub fn queries() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_credentials)).routes(routes!(get_credential))
}

#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/credentials", request_body = CreateCredential, tag = "credentials", params(("tenant_id" = String, Path, description = "tenant id (UUID)")), responses((status = 201, description = "The credential, without its secret"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 413, 422 or 429")))]
pub async fn create_credential(
    State(state): State<AppState>,
    Administering(ctx): Administering,
    AppJson(body): AppJson<CreateCredential>,
) -> Result<Response, ApiError> {
    let credential_id = CredentialId::new();
    let command = TenantCommand::AddCredential(AddCredential {
        credential_id,
        provider: body.provider,
        name: body.name,
        secret: body.secret,
        base_url: body.base_url,
    });
    let out = state.commands.tenant(&ctx, &command).await?;
    let location = format!("/v1/tenants/{}/credentials/{credential_id}", ctx.tenant_id);
    let read = || directory::credential(&ctx, state.projections.db(), credential_id);
    let created = (StatusCode::CREATED, out, location);
    object(&state, &ctx, directory::NAME, created, credential_id.to_string(), read, json!({})).await
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/credentials", tag = "credentials", params(("tenant_id" = String, Path, description = "tenant id (UUID)")), responses((status = 200, description = "OK"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404 or 429")))]
pub async fn list_credentials(
    State(state): State<AppState>,
    Administering(ctx): Administering,
    min: MinPosition,
    AppQuery(page): AppQuery<PageParams>,
) -> Result<Json<Value>, ApiError> {
    caught_up(&state, directory::NAME, &ctx, min).await?;
    let items = directory::credentials(&ctx, state.projections.db(), page.cursor(), page.limit()?).await?;
    Ok(Json(json!(items)))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/credentials/{credential_id}", tag = "credentials", params(("tenant_id" = String, Path, description = "tenant id (UUID)"), ("credential_id" = String, Path, description = "credential id (UUID)")), responses((status = 200, description = "OK"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404 or 429")))]
pub async fn get_credential(
    State(state): State<AppState>,
    Administering(ctx): Administering,
    min: MinPosition,
    AppPath((_, credential)): AppPath<(TenantId, CredentialId)>,
) -> Result<Json<Value>, ApiError> {
    caught_up(&state, directory::NAME, &ctx, min).await?;
    let row =
        directory::credential(&ctx, state.projections.db(), credential).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(json!(row)))
}

#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/credentials/{credential_id}/rotate", request_body = RotateCredentialBody, tag = "credentials", params(("tenant_id" = String, Path, description = "tenant id (UUID)"), ("credential_id" = String, Path, description = "credential id (UUID)")), responses((status = 200, description = "The credential, without its secret"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 413, 422 or 429")))]
pub async fn rotate_credential(
    State(state): State<AppState>,
    Administering(ctx): Administering,
    AppPath((_, credential_id)): AppPath<(TenantId, CredentialId)>,
    AppJson(body): AppJson<RotateCredentialBody>,
) -> Result<Response, ApiError> {
    let command = TenantCommand::RotateCredential(RotateCredential { credential_id, secret: body.secret });
    let out = state.commands.tenant(&ctx, &command).await?;
    let location = format!("/v1/tenants/{}/credentials/{credential_id}", ctx.tenant_id);
    let read = || directory::credential(&ctx, state.projections.db(), credential_id);
    let changed = (StatusCode::OK, out, location);
    object(&state, &ctx, directory::NAME, changed, credential_id.to_string(), read, json!({})).await
}

#[utoipa::path(delete, path = "/v1/tenants/{tenant_id}/credentials/{credential_id}", tag = "credentials", params(("tenant_id" = String, Path, description = "tenant id (UUID)"), ("credential_id" = String, Path, description = "credential id (UUID)")), responses((status = 200, description = "Done: `id` and `position`"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404 or 429")))]
pub async fn remove_credential(
    State(state): State<AppState>,
    Administering(ctx): Administering,
    AppPath((_, credential_id)): AppPath<(TenantId, CredentialId)>,
) -> Result<Response, ApiError> {
    let command = TenantCommand::RemoveCredential(RemoveCredential { credential_id });
    let out = state.commands.tenant(&ctx, &command).await?;
    settled(&state, &ctx, directory::NAME, out.position).await?;
    Ok(written(StatusCode::OK, Some(credential_id.to_string()), out, json!({})))
}
