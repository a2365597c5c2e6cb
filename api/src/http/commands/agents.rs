//! Agents of a tenant.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{patch, post};
use serde::Deserialize;
use serde_json::json;
use tenantry_domain::event::{AgentCreated, AgentUpdated};
use tenantry_domain::tenant::TenantCommand;
use tenantry_domain::{AgentId, TenantId, ToolId};

use crate::http::auth::Scoped;
use crate::http::error::ApiError;
use crate::http::extract::{AppJson, AppPath};
use crate::http::{AppState, written};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAgent {
    pub name: String,
    pub model: String,
    #[serde(default)]
    pub system_prompt: String,
    #[serde(default)]
    pub tool_ids: Vec<ToolId>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchAgent {
    pub name: Option<String>,
    pub model: Option<String>,
    pub system_prompt: Option<String>,
    pub tool_ids: Option<Vec<ToolId>>,
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants/{tenant_id}/agents", post(create))
        .route("/v1/tenants/{tenant_id}/agents/{agent_id}", patch(update).delete(archive))
}

pub async fn create(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    AppJson(body): AppJson<CreateAgent>,
) -> Result<Response, ApiError> {
    let agent_id = AgentId::new();
    let command = TenantCommand::CreateAgent(AgentCreated {
        agent_id,
        name: body.name,
        model: body.model,
        system_prompt: body.system_prompt,
        tool_ids: body.tool_ids,
    });
    let out = state.commands.tenant(&ctx, &command).await?;
    Ok(written(StatusCode::CREATED, Some(agent_id.to_string()), out, json!({})))
}

pub async fn update(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    AppPath((_, agent_id)): AppPath<(TenantId, AgentId)>,
    AppJson(body): AppJson<PatchAgent>,
) -> Result<Response, ApiError> {
    let command = TenantCommand::UpdateAgent(AgentUpdated {
        agent_id,
        name: body.name,
        model: body.model,
        system_prompt: body.system_prompt,
        tool_ids: body.tool_ids,
    });
    let out = state.commands.tenant(&ctx, &command).await?;
    Ok(written(StatusCode::OK, Some(agent_id.to_string()), out, json!({})))
}

pub async fn archive(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    AppPath((_, agent_id)): AppPath<(TenantId, AgentId)>,
) -> Result<Response, ApiError> {
    let out = state.commands.tenant(&ctx, &TenantCommand::ArchiveAgent { agent_id }).await?;
    Ok(written(StatusCode::OK, Some(agent_id.to_string()), out, json!({})))
}
