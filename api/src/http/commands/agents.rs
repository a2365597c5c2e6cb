//! Agents of a tenant.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use tenantry_domain::command;
use tenantry_domain::tenant::TenantCommand;
use tenantry_domain::{AgentId, TenantId, ToolId};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::auth::Scoped;
use crate::http::error::ApiError;
use crate::http::extract::{AppJson, AppPath};
use crate::http::{AppState, object, written};
use tenantry_app::Written;
use tenantry_domain::TenantContext;
use tenantry_projections::models::directory;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAgent {
    pub name: String,
    /// The model to call; the tenant's `default_model` when absent. Must be among the
    /// tenant's `allowed_models` when it has any (422 `model_not_allowed`).
    pub model: Option<String>,
    #[serde(default)]
    pub system_prompt: String,
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub tool_ids: Vec<ToolId>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchAgent {
    pub name: Option<String>,
    pub model: Option<String>,
    pub system_prompt: Option<String>,
    #[schema(value_type = Option<Vec<String>>)]
    pub tool_ids: Option<Vec<ToolId>>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create)).routes(routes!(update, archive))
}

#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/agents", request_body = CreateAgent, tag = "agents", params(("tenant_id" = String, Path, description = "tenant id (UUID)")), responses((status = 201, description = "Created: `id` and `position`"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
pub async fn create(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    AppJson(body): AppJson<CreateAgent>,
) -> Result<Response, ApiError> {
    let agent_id = AgentId::new();
    let command = TenantCommand::CreateAgent(command::CreateAgent {
        agent_id,
        name: body.name,
        model: body.model.unwrap_or_default(),
        system_prompt: body.system_prompt,
        tool_ids: body.tool_ids,
    });
    let out = state.commands.tenant(&ctx, &command).await?;
    agent(&state, &ctx, StatusCode::CREATED, out, agent_id).await
}

#[utoipa::path(patch, path = "/v1/tenants/{tenant_id}/agents/{agent_id}", request_body = PatchAgent, tag = "agents", params(("tenant_id" = String, Path, description = "tenant id (UUID)"), ("agent_id" = String, Path, description = "agent id (UUID)")), responses((status = 200, description = "Changed: `position`"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
pub async fn update(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    AppPath((_, agent_id)): AppPath<(TenantId, AgentId)>,
    AppJson(body): AppJson<PatchAgent>,
) -> Result<Response, ApiError> {
    let command = TenantCommand::UpdateAgent(command::UpdateAgent {
        agent_id,
        name: body.name,
        model: body.model,
        system_prompt: body.system_prompt,
        tool_ids: body.tool_ids,
    });
    let out = state.commands.tenant(&ctx, &command).await?;
    agent(&state, &ctx, StatusCode::OK, out, agent_id).await
}

/// The agent as `GET` shows it, after a write.
async fn agent(
    state: &AppState,
    ctx: &TenantContext,
    status: StatusCode,
    out: Written,
    id: AgentId,
) -> Result<Response, ApiError> {
    let location = format!("/v1/tenants/{}/agents/{id}", ctx.tenant_id);
    let read = || directory::agent(ctx, state.projections.db(), id);
    object(state, ctx, directory::NAME, (status, out, location), id.to_string(), read, json!({})).await
}

#[utoipa::path(delete, path = "/v1/tenants/{tenant_id}/agents/{agent_id}", tag = "agents", params(("tenant_id" = String, Path, description = "tenant id (UUID)"), ("agent_id" = String, Path, description = "agent id (UUID)")), responses((status = 200, description = "Done: `position`"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
pub async fn archive(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    AppPath((_, agent_id)): AppPath<(TenantId, AgentId)>,
) -> Result<Response, ApiError> {
    let out =
        state.commands.tenant(&ctx, &TenantCommand::ArchiveAgent(command::ArchiveAgent { agent_id })).await?;
    Ok(written(StatusCode::OK, Some(agent_id.to_string()), out, json!({})))
}
