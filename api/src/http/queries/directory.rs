//! Tenants, API keys and agents as they stand.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use tenantry_domain::{AgentId, Role, TenantId, ToolId, UserId};
use tenantry_projections::models::directory;

use super::PageParams;
use crate::http::auth::{Caller, Scoped};
use crate::http::error::ApiError;
use crate::http::extract::{AppPath, AppQuery, MinPosition};
use crate::http::{AppState, caught_up};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants", get(list_tenants))
        .route("/v1/tenants/{tenant_id}", get(get_tenant))
        .route("/v1/tenants/{tenant_id}/settings", get(get_settings))
        .route("/v1/tenants/{tenant_id}/api-keys", get(list_keys))
        .route("/v1/tenants/{tenant_id}/agents", get(list_agents))
        .route("/v1/tenants/{tenant_id}/agents/{agent_id}", get(get_agent))
        .route("/v1/tenants/{tenant_id}/users", get(list_users))
        .route("/v1/tenants/{tenant_id}/users/{user_id}", get(get_user))
        .route("/v1/tenants/{tenant_id}/tools", get(list_tools))
        .route("/v1/tenants/{tenant_id}/tools/{tool_id}", get(get_tool))
}

pub async fn list_users(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    min: MinPosition,
    AppQuery(page): AppQuery<PageParams>,
) -> Result<Json<Value>, ApiError> {
    if !ctx.role.can_administer() {
        return Err(ApiError::Forbidden("role may not do this".into()));
    }
    caught_up(&state, directory::NAME, &ctx, min).await?;
    let items =
        directory::users(&ctx, state.projections.db(), page.cursor.as_deref(), page.limit.unwrap_or(50))
            .await?;
    Ok(Json(json!({ "items": items })))
}

pub async fn get_user(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    min: MinPosition,
    AppPath((_, user)): AppPath<(TenantId, UserId)>,
) -> Result<Json<Value>, ApiError> {
    if !ctx.role.can_administer() {
        return Err(ApiError::Forbidden("role may not do this".into()));
    }
    caught_up(&state, directory::NAME, &ctx, min).await?;
    let row =
        directory::user(&ctx, state.projections.db(), &user.to_string()).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(json!(row)))
}

pub async fn list_tools(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    min: MinPosition,
    AppQuery(page): AppQuery<PageParams>,
) -> Result<Json<Value>, ApiError> {
    caught_up(&state, directory::NAME, &ctx, min).await?;
    let items =
        directory::tools(&ctx, state.projections.db(), page.cursor.as_deref(), page.limit.unwrap_or(50))
            .await?;
    Ok(Json(json!({ "items": items })))
}

pub async fn get_tool(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    min: MinPosition,
    AppPath((_, tool)): AppPath<(TenantId, ToolId)>,
) -> Result<Json<Value>, ApiError> {
    caught_up(&state, directory::NAME, &ctx, min).await?;
    let row =
        directory::tool(&ctx, state.projections.db(), &tool.to_string()).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(json!(row)))
}

/// `GET /v1/tenants`: every tenant for the platform, its own for a tenant key.
pub async fn list_tenants(
    State(state): State<AppState>,
    caller: Caller,
    AppQuery(page): AppQuery<PageParams>,
) -> Result<Json<Value>, ApiError> {
    let db = state.projections.db();
    let items = match (caller.role, caller.tenant) {
        (Role::SuperAdmin, _) => {
            directory::tenants(db, None, page.cursor.as_deref(), page.limit.unwrap_or(50)).await?
        }
        (_, Some(own)) => directory::tenant(&caller.context(own)?, db).await?.into_iter().collect(),
        _ => Vec::new(),
    };
    let next = (items.len() as u32 == page.limit.unwrap_or(50).clamp(1, 500))
        .then(|| items.last().map(|t| t.tenant_id.clone()))
        .flatten();
    Ok(Json(json!({ "items": items, "next_cursor": next })))
}

pub async fn get_tenant(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    min: MinPosition,
) -> Result<Json<Value>, ApiError> {
    caught_up(&state, directory::NAME, &ctx, min).await?;
    let row = directory::tenant(&ctx, state.projections.db()).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(json!(row)))
}

pub async fn get_settings(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    min: MinPosition,
) -> Result<Json<Value>, ApiError> {
    caught_up(&state, directory::NAME, &ctx, min).await?;
    let row = directory::tenant(&ctx, state.projections.db()).await?.ok_or(ApiError::NotFound)?;
    let s = row.settings;
    Ok(Json(json!({
        "agent_name": s.agent_name,
        "system_prompt": s.system_prompt,
        "default_model": s.default_model,
        "allowed_models": s.allowed_models,
        "feature_flags": s.feature_flags.into_iter().collect::<std::collections::BTreeMap<_, _>>(),
    })))
}

pub async fn list_keys(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    min: MinPosition,
    AppQuery(page): AppQuery<PageParams>,
) -> Result<Json<Value>, ApiError> {
    if !ctx.role.can_administer() {
        return Err(ApiError::Forbidden("role may not do this".into()));
    }
    caught_up(&state, directory::NAME, &ctx, min).await?;
    let items =
        directory::api_keys(&ctx, state.projections.db(), page.cursor.as_deref(), page.limit.unwrap_or(50))
            .await?;
    Ok(Json(json!({ "items": items })))
}

pub async fn list_agents(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    min: MinPosition,
    AppQuery(page): AppQuery<PageParams>,
) -> Result<Json<Value>, ApiError> {
    caught_up(&state, directory::NAME, &ctx, min).await?;
    let items =
        directory::agents(&ctx, state.projections.db(), page.cursor.as_deref(), page.limit.unwrap_or(50))
            .await?;
    Ok(Json(json!({ "items": items })))
}

pub async fn get_agent(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    min: MinPosition,
    AppPath((_, agent)): AppPath<(TenantId, AgentId)>,
) -> Result<Json<Value>, ApiError> {
    caught_up(&state, directory::NAME, &ctx, min).await?;
    let row = directory::agent(&ctx, state.projections.db(), &agent.to_string())
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(json!(row)))
}
