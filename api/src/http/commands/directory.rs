//! Users and tools of a tenant.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use tenantry_domain::command::{AddUser, RegisterTool, RemoveTool, RemoveUser, UpdateTool, UpdateUser};
use tenantry_domain::tenant::TenantCommand;
use tenantry_domain::{Role, TenantId, ToolId, UserId};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::auth::Scoped;
use crate::http::error::ApiError;
use crate::http::extract::{AppJson, AppPath};
use crate::http::{AppState, keys_retired, object, written};
use tenantry_app::Written;
use tenantry_domain::TenantContext;
use tenantry_projections::models::directory;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub email: String,
    /// `admin` or `user`.
    #[schema(value_type = String)]
    pub role: Role,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchUser {
    pub email: Option<String>,
    #[schema(value_type = Option<String>)]
    pub role: Option<Role>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTool {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub endpoint: String,
    /// A JSON Schema object.
    #[serde(default = "empty_schema")]
    #[schema(value_type = Object)]
    pub parameters: serde_json::Value,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn empty_schema() -> serde_json::Value {
    json!({ "type": "object" })
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchTool {
    pub description: Option<String>,
    pub endpoint: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<serde_json::Value>,
    pub enabled: Option<bool>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_user))
        .routes(routes!(update_user, remove_user))
        .routes(routes!(create_tool))
        .routes(routes!(update_tool, remove_tool))
}

#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/users", request_body = CreateUser, tag = "directory", params(("tenant_id" = String, Path, description = "tenant id (UUID)")), responses((status = 201, description = "Created: `id` and `position`"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
pub async fn create_user(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    AppJson(body): AppJson<CreateUser>,
) -> Result<Response, ApiError> {
    let user_id = UserId::new();
    let command = TenantCommand::AddUser(AddUser { user_id, email: body.email, role: body.role });
    let out = state.commands.tenant(&ctx, &command).await?;
    user(&state, &ctx, StatusCode::CREATED, out, user_id).await
}

#[utoipa::path(patch, path = "/v1/tenants/{tenant_id}/users/{user_id}", request_body = PatchUser, tag = "directory", params(("tenant_id" = String, Path, description = "tenant id (UUID)"), ("user_id" = String, Path, description = "user id (UUID)")), responses((status = 200, description = "Changed: `position`"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
pub async fn update_user(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    AppPath((_, user_id)): AppPath<(TenantId, UserId)>,
    AppJson(body): AppJson<PatchUser>,
) -> Result<Response, ApiError> {
    let command = TenantCommand::UpdateUser(UpdateUser { user_id, email: body.email, role: body.role });
    let out = state.commands.tenant(&ctx, &command).await?;
    user(&state, &ctx, StatusCode::OK, out, user_id).await
}

#[utoipa::path(delete, path = "/v1/tenants/{tenant_id}/users/{user_id}", tag = "directory", params(("tenant_id" = String, Path, description = "tenant id (UUID)"), ("user_id" = String, Path, description = "user id (UUID)")), responses((status = 200, description = "Done: `position`"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
pub async fn remove_user(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    AppPath((_, user_id)): AppPath<(TenantId, UserId)>,
) -> Result<Response, ApiError> {
    let out = state.commands.tenant(&ctx, &TenantCommand::RemoveUser(RemoveUser { user_id })).await?;
    keys_retired(&state, &ctx, out.position).await?;
    Ok(written(StatusCode::OK, Some(user_id.to_string()), out, json!({})))
}

#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/tools", request_body = CreateTool, tag = "directory", params(("tenant_id" = String, Path, description = "tenant id (UUID)")), responses((status = 201, description = "Created: `id` and `position`"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
pub async fn create_tool(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    AppJson(body): AppJson<CreateTool>,
) -> Result<Response, ApiError> {
    let tool_id = ToolId::new();
    let command = TenantCommand::RegisterTool(RegisterTool {
        tool_id,
        name: body.name,
        description: body.description,
        endpoint: body.endpoint,
        parameters: body.parameters.to_string(),
        enabled: body.enabled,
    });
    let out = state.commands.tenant(&ctx, &command).await?;
    tool(&state, &ctx, StatusCode::CREATED, out, tool_id).await
}

#[utoipa::path(patch, path = "/v1/tenants/{tenant_id}/tools/{tool_id}", request_body = PatchTool, tag = "directory", params(("tenant_id" = String, Path, description = "tenant id (UUID)"), ("tool_id" = String, Path, description = "tool id (UUID)")), responses((status = 200, description = "Changed: `position`"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
pub async fn update_tool(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    AppPath((_, tool_id)): AppPath<(TenantId, ToolId)>,
    AppJson(body): AppJson<PatchTool>,
) -> Result<Response, ApiError> {
    let command = TenantCommand::UpdateTool(UpdateTool {
        tool_id,
        description: body.description,
        endpoint: body.endpoint,
        parameters: body.parameters.map(|p| p.to_string()),
        enabled: body.enabled,
    });
    let out = state.commands.tenant(&ctx, &command).await?;
    tool(&state, &ctx, StatusCode::OK, out, tool_id).await
}

#[utoipa::path(delete, path = "/v1/tenants/{tenant_id}/tools/{tool_id}", tag = "directory", params(("tenant_id" = String, Path, description = "tenant id (UUID)"), ("tool_id" = String, Path, description = "tool id (UUID)")), responses((status = 200, description = "Done: `position`"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
pub async fn remove_tool(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    AppPath((_, tool_id)): AppPath<(TenantId, ToolId)>,
) -> Result<Response, ApiError> {
    let out = state.commands.tenant(&ctx, &TenantCommand::RemoveTool(RemoveTool { tool_id })).await?;
    Ok(written(StatusCode::OK, Some(tool_id.to_string()), out, json!({})))
}

/// The user as `GET` shows it, after a write.
async fn user(
    state: &AppState,
    ctx: &TenantContext,
    status: StatusCode,
    out: Written,
    id: UserId,
) -> Result<Response, ApiError> {
    let location = format!("/v1/tenants/{}/users/{id}", ctx.tenant_id);
    let read = || directory::user(ctx, state.projections.db(), id);
    object(state, ctx, directory::NAME, (status, out, location), id.to_string(), read, json!({})).await
}

/// The tool as `GET` shows it, after a write.
async fn tool(
    state: &AppState,
    ctx: &TenantContext,
    status: StatusCode,
    out: Written,
    id: ToolId,
) -> Result<Response, ApiError> {
    let location = format!("/v1/tenants/{}/tools/{id}", ctx.tenant_id);
    let read = || directory::tool(ctx, state.projections.db(), id);
    object(state, ctx, directory::NAME, (status, out, location), id.to_string(), read, json!({})).await
}
