//! Tenants, API keys and agents as they stand.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use tenantry_domain::{AgentId, ApiKeyId, PartnerId, Role, TenantId, ToolId, UserId};
use tenantry_projections::models::{Page, directory};
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
        .routes(routes!(get_key))
        .routes(routes!(get_partner))
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
    let items = directory::users(&ctx, state.projections.db(), page.cursor(), page.limit()?).await?;
    Ok(Json(json!(items)))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/users/{user_id}", tag = "directory", params(("tenant_id" = String, Path, description = "tenant id (UUID)"), ("user_id" = String, Path, description = "user id (UUID)")), responses((status = 200, description = "OK"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
pub async fn get_user(
    State(state): State<AppState>,
    Administering(ctx): Administering,
    min: MinPosition,
    AppPath((_, user)): AppPath<(TenantId, UserId)>,
) -> Result<Json<Value>, ApiError> {
    caught_up(&state, directory::NAME, &ctx, min).await?;
    let row = directory::user(&ctx, state.projections.db(), user).await?.ok_or(ApiError::NotFound)?;
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
    let items = directory::tools(&ctx, state.projections.db(), page.cursor(), page.limit()?).await?;
    Ok(Json(json!(items)))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/tools/{tool_id}", tag = "directory", params(("tenant_id" = String, Path, description = "tenant id (UUID)"), ("tool_id" = String, Path, description = "tool id (UUID)")), responses((status = 200, description = "OK"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
pub async fn get_tool(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    min: MinPosition,
    AppPath((_, tool)): AppPath<(TenantId, ToolId)>,
) -> Result<Json<Value>, ApiError> {
    caught_up(&state, directory::NAME, &ctx, min).await?;
    let row = directory::tool(&ctx, state.projections.db(), tool).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(json!(row)))
}

/// A page of tenants, narrowed by slug or name.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TenantListParams {
    /// The `next_cursor` of the previous page; the first page when absent.
    pub cursor: Option<String>,
    /// Items per page: 1 to 200, 50 when absent.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// Only tenants whose slug or name holds this text (case-insensitive); at most 100
    /// characters.
    #[param(max_length = 100)]
    pub q: Option<String>,
}

fn matches_text(tenant: &directory::TenantRow, text: &str) -> bool {
    let text = text.to_lowercase();
    tenant.slug.to_lowercase().contains(&text) || tenant.name.to_lowercase().contains(&text)
}

/// `GET /v1/tenants`: every tenant for the platform, its own for a tenant key.
#[utoipa::path(get, path = "/v1/tenants", tag = "directory", responses((status = 200, description = "OK"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
pub async fn list_tenants(
    State(state): State<AppState>,
    caller: Caller,
    AppQuery(params): AppQuery<TenantListParams>,
) -> Result<Json<Value>, ApiError> {
    let db = state.projections.db();
    let text = params.q.as_deref().filter(|q| !q.is_empty());
    if text.is_some_and(|q| q.chars().count() > 100) {
        return Err(ApiError::BadRequest {
            detail: "q is at most 100 characters".into(),
            field: Some("q".into()),
        });
    }
    let page = PageParams { cursor: params.cursor, limit: params.limit };
    let items = match (caller.role, caller.tenant) {
        (Role::SuperAdmin, _) => directory::tenants(db, None, text, page.cursor(), page.limit()?).await?,
        (Role::PartnerAdmin, _) => {
            let partner = caller.partner.map(|p| p.to_string()).ok_or(ApiError::Unauthorized)?;
            directory::tenants(db, Some(&partner), text, page.cursor(), page.limit()?).await?
        }
        (_, Some(own)) => Page {
            items: directory::tenant(&caller.context(own)?, db)
                .await?
                .into_iter()
                .filter(|t| text.is_none_or(|q| matches_text(t, q)))
                .collect(),
            next_cursor: None,
        },
        _ => Page { items: Vec::new(), next_cursor: None },
    };
    Ok(Json(json!(items)))
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
    let items =
        directory::partners(state.projections.db(), only.as_deref(), page.cursor(), page.limit()?).await?;
    Ok(Json(json!(items)))
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
    AppQuery(p): AppQuery<SettingsParams>,
) -> Result<Json<Value>, ApiError> {
    caught_up(&state, directory::NAME, &ctx, min).await?;
    if p.effective.unwrap_or(false) {
        let e = directory::effective(state.projections.db(), ctx.tenant_id, &state.plans)
            .await?
            .ok_or(ApiError::NotFound)?;
        return Ok(Json(json!({
            "settings": directory::SettingsView::from(&e.settings),
            "settings_from": e.settings_from,
            "feature_flags_from": e.feature_flags_from,
            "limits": e.limits,
            "limits_from": e.limits_from,
        })));
    }
    let row = directory::tenant(&ctx, state.projections.db()).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(json!(directory::SettingsView::from(&row.settings))))
}

/// `GET …/settings`: the tenant's own settings, or what it has in effect.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SettingsParams {
    /// `true`: the settings and limits in effect, inherited from the tenants above unless set
    /// here, each with the tenant it came from (`null`: the default, or the plan for a limit).
    pub effective: Option<bool>,
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/api-keys", tag = "directory", params(("tenant_id" = String, Path, description = "tenant id (UUID)")), responses((status = 200, description = "OK"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
pub async fn list_keys(
    State(state): State<AppState>,
    Administering(ctx): Administering,
    min: MinPosition,
    AppQuery(page): AppQuery<PageParams>,
) -> Result<Json<Value>, ApiError> {
    caught_up(&state, directory::NAME, &ctx, min).await?;
    let items = directory::api_keys(&ctx, state.projections.db(), page.cursor(), page.limit()?).await?;
    Ok(Json(json!(items)))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/api-keys/{key_id}", tag = "directory", params(("tenant_id" = String, Path, description = "tenant id (UUID)"), ("key_id" = String, Path, description = "key id (UUID)")), responses((status = 200, description = "OK"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
pub async fn get_key(
    State(state): State<AppState>,
    Administering(ctx): Administering,
    min: MinPosition,
    AppPath((_, key)): AppPath<(TenantId, ApiKeyId)>,
) -> Result<Json<Value>, ApiError> {
    caught_up(&state, directory::NAME, &ctx, min).await?;
    let row = directory::api_key(&ctx, state.projections.db(), key).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(json!(row)))
}

/// `GET /v1/partners/{id}`: the platform's partners, or a partner admin's own.
#[utoipa::path(get, path = "/v1/partners/{partner_id}", tag = "directory", params(("partner_id" = String, Path, description = "partner id (UUID)")), responses((status = 200, description = "OK"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404 or 429")))]
pub async fn get_partner(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(partner): AppPath<PartnerId>,
) -> Result<Json<Value>, ApiError> {
    match (caller.role, caller.partner) {
        (Role::SuperAdmin, _) => {}
        (Role::PartnerAdmin, Some(own)) if own == partner => {}
        // Another partner's is not there for a partner admin.
        (Role::PartnerAdmin, _) => return Err(ApiError::NotFound),
        _ => {
            return Err(ApiError::Forbidden(
                "only the platform operator and partner admins see partners".into(),
            ));
        }
    }
    let row = directory::partner(state.projections.db(), partner).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(json!(row)))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/agents", tag = "directory", params(("tenant_id" = String, Path, description = "tenant id (UUID)")), responses((status = 200, description = "OK"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
pub async fn list_agents(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    min: MinPosition,
    AppQuery(page): AppQuery<PageParams>,
) -> Result<Json<Value>, ApiError> {
    caught_up(&state, directory::NAME, &ctx, min).await?;
    let mut items = directory::agents(&ctx, state.projections.db(), page.cursor(), page.limit()?).await?;
    items.items.iter_mut().for_each(|a| hide_prompt(&ctx, a));
    Ok(Json(json!(items)))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/agents/{agent_id}", tag = "directory", params(("tenant_id" = String, Path, description = "tenant id (UUID)"), ("agent_id" = String, Path, description = "agent id (UUID)")), responses((status = 200, description = "OK"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
pub async fn get_agent(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    min: MinPosition,
    AppPath((_, agent)): AppPath<(TenantId, AgentId)>,
) -> Result<Json<Value>, ApiError> {
    caught_up(&state, directory::NAME, &ctx, min).await?;
    let mut row = directory::agent(&ctx, state.projections.db(), agent).await?.ok_or(ApiError::NotFound)?;
    hide_prompt(&ctx, &mut row);
    Ok(Json(json!(row)))
}

/// A user key sees which agents there are, not how the tenant instructs them.
fn hide_prompt(ctx: &tenantry_domain::TenantContext, agent: &mut directory::AgentRow) {
    if !ctx.role.can_administer() {
        agent.system_prompt.clear();
    }
}
