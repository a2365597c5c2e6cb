//! Tenants, API keys and agents as they stand.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use tenantry_domain::{AgentId, Role, TenantId, ToolId, UserId};
use tenantry_projections::models::directory;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::PageParams;
use crate::http::auth::{Administering, Caller, Scoped};
use crate::http::error::ApiError;
use crate::http::extract::{AppPath, AppQuery, MinPosition};
use crate::http::{AppState, caught_up};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tenants))
        .routes(routes!(list_partners))
        .routes(routes!(get_tenant))
        .routes(routes!(get_settings))
        .routes(routes!(list_keys))
        .routes(routes!(list_agents))
        .routes(routes!(get_agent))
        .routes(routes!(list_users))
        .routes(routes!(get_user))
        .routes(routes!(list_tools))
        .routes(routes!(get_tool))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/users", tag = "directory", params(("tenant_id" = String, Path, description = "tenant id (UUID)")), responses((status = 200, description = "OK"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
pub async fn list_users(
    State(state): State<AppState>,
    Administering(ctx): Administering,
    min: MinPosition,
    AppQuery(page): AppQuery<PageParams>,
) -> Result<Json<Value>, ApiError> {
    caught_up(&state, directory::NAME, &ctx, min).await?;
    let items =
        directory::users(&ctx, state.projections.db(), page.cursor.as_deref(), page.limit.unwrap_or(50))
            .await?;
    Ok(Json(json!({ "items": items })))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/users/{user_id}", tag = "directory", params(("tenant_id" = String, Path, description = "tenant id (UUID)"), ("user_id" = String, Path, description = "user id (UUID)")), responses((status = 200, description = "OK"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
pub async fn get_user(
    State(state): State<AppState>,
    Administering(ctx): Administering,
    min: MinPosition,
    AppPath((_, user)): AppPath<(TenantId, UserId)>,
) -> Result<Json<Value>, ApiError> {
    caught_up(&state, directory::NAME, &ctx, min).await?;
    let row =
        directory::user(&ctx, state.projections.db(), &user.to_string()).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(json!(row)))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/tools", tag = "directory", params(("tenant_id" = String, Path, description = "tenant id (UUID)")), responses((status = 200, description = "OK"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
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

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/tools/{tool_id}", tag = "directory", params(("tenant_id" = String, Path, description = "tenant id (UUID)"), ("tool_id" = String, Path, description = "tool id (UUID)")), responses((status = 200, description = "OK"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
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
#[utoipa::path(get, path = "/v1/tenants", tag = "directory", responses((status = 200, description = "OK"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
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
        (Role::PartnerAdmin, _) => {
            let partner = caller.partner.map(|p| p.to_string()).ok_or(ApiError::Unauthorized)?;
            directory::tenants(db, Some(&partner), page.cursor.as_deref(), page.limit.unwrap_or(50)).await?
        }
        (_, Some(own)) => directory::tenant(&caller.context(own)?, db).await?.into_iter().collect(),
        _ => Vec::new(),
    };
    let next = (items.len() as u32 == page.limit.unwrap_or(50).clamp(1, 500))
        .then(|| items.last().map(|t| t.tenant_id.clone()))
        .flatten();
    Ok(Json(json!({ "items": items, "next_cursor": next })))
}

/// `GET /v1/partners`: every partner for the platform, its own for a partner admin.
#[utoipa::path(get, path = "/v1/partners", tag = "directory", responses((status = 200, description = "OK"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403 or 429")))]
pub async fn list_partners(
    State(state): State<AppState>,
    caller: Caller,
    AppQuery(page): AppQuery<PageParams>,
) -> Result<Json<Value>, ApiError> {
    let only = match (caller.role, caller.partner) {
        (Role::SuperAdmin, _) => None,
        (Role::PartnerAdmin, Some(own)) => Some(own.to_string()),
        _ => {
            return Err(ApiError::Forbidden(
                "only the platform operator and partner admins list partners".into(),
            ));
        }
    };
    let limit = page.limit.unwrap_or(50);
    let items =
        directory::partners(state.projections.db(), only.as_deref(), page.cursor.as_deref(), limit).await?;
    let next = (items.len() as u32 == limit.clamp(1, 500))
        .then(|| items.last().map(|p| p.partner_id.clone()))
        .flatten();
    Ok(Json(json!({ "items": items, "next_cursor": next })))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}", tag = "directory", params(("tenant_id" = String, Path, description = "tenant id (UUID)")), responses((status = 200, description = "OK"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
pub async fn get_tenant(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    min: MinPosition,
) -> Result<Json<Value>, ApiError> {
    caught_up(&state, directory::NAME, &ctx, min).await?;
    let row = directory::tenant(&ctx, state.projections.db()).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(json!(row)))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/settings", tag = "directory", params(("tenant_id" = String, Path, description = "tenant id (UUID)")), responses((status = 200, description = "OK"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
pub async fn get_settings(
    State(state): State<AppState>,
    Administering(ctx): Administering,
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

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/api-keys", tag = "directory", params(("tenant_id" = String, Path, description = "tenant id (UUID)")), responses((status = 200, description = "OK"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
pub async fn list_keys(
    State(state): State<AppState>,
    Administering(ctx): Administering,
    min: MinPosition,
    AppQuery(page): AppQuery<PageParams>,
) -> Result<Json<Value>, ApiError> {
    caught_up(&state, directory::NAME, &ctx, min).await?;
    let items =
        directory::api_keys(&ctx, state.projections.db(), page.cursor.as_deref(), page.limit.unwrap_or(50))
            .await?;
    Ok(Json(json!({ "items": items })))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/agents", tag = "directory", params(("tenant_id" = String, Path, description = "tenant id (UUID)")), responses((status = 200, description = "OK"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
pub async fn list_agents(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    min: MinPosition,
    AppQuery(page): AppQuery<PageParams>,
) -> Result<Json<Value>, ApiError> {
    caught_up(&state, directory::NAME, &ctx, min).await?;
    let mut items =
        directory::agents(&ctx, state.projections.db(), page.cursor.as_deref(), page.limit.unwrap_or(50))
            .await?;
    items.iter_mut().for_each(|a| hide_prompt(&ctx, a));
    Ok(Json(json!({ "items": items })))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/agents/{agent_id}", tag = "directory", params(("tenant_id" = String, Path, description = "tenant id (UUID)"), ("agent_id" = String, Path, description = "agent id (UUID)")), responses((status = 200, description = "OK"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
pub async fn get_agent(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    min: MinPosition,
    AppPath((_, agent)): AppPath<(TenantId, AgentId)>,
) -> Result<Json<Value>, ApiError> {
    caught_up(&state, directory::NAME, &ctx, min).await?;
    let mut row = directory::agent(&ctx, state.projections.db(), &agent.to_string())
        .await?
        .ok_or(ApiError::NotFound)?;
    hide_prompt(&ctx, &mut row);
    Ok(Json(json!(row)))
}

/// A user key sees which agents there are, not how the tenant instructs them.
fn hide_prompt(ctx: &tenantry_domain::TenantContext, agent: &mut directory::AgentRow) {
    if !ctx.role.can_administer() {
        agent.system_prompt.clear();
    }
}
