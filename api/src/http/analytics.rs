//! Analytics: `GET …/analytics` for a tenant's admins, `GET /v1/partners/{id}/analytics` for
//! the platform and the partner's admins, `GET /v1/analytics` for the platform: conversations,
//! messages by role, active users, tokens and cost over a period, grouped as asked.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use tenantry_domain::{PartnerId, Role, TenantId};
use tenantry_projections::models::analytics::{self, GroupBy, Report, Scope};
use tenantry_projections::models::directory;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Administering, Caller};
use super::error::ApiError;
use super::extract::{AppPath, AppQuery, MinPosition, TimeBound};
use super::queries::reports::Period;
use super::{AppState, caught_up};

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AnalyticsParams {
    /// First day (a date, or an RFC 3339 time on that UTC day); the first of this month
    /// when absent.
    #[param(value_type = Option<String>)]
    pub from: Option<TimeBound>,
    /// Last day, inclusive; today when absent.
    #[param(value_type = Option<String>)]
    pub to: Option<TimeBound>,
    /// `day` (when absent), `agent`, `user` or `model`; across tenants also `tenant`.
    pub group_by: Option<String>,
}

impl AnalyticsParams {
    fn read(self, across_tenants: bool) -> Result<(String, String, GroupBy), ApiError> {
        let group_by = match self.group_by.as_deref() {
            None => GroupBy::Day,
            Some(name) => GroupBy::parse(name)
                .filter(|g| across_tenants || *g != GroupBy::Tenant)
                .ok_or_else(|| ApiError::BadRequest {
                    detail: format!(
                        "group_by is one of day, agent, user, model{}",
                        if across_tenants { ", tenant" } else { "" }
                    ),
                    field: Some("group_by".into()),
                })?,
        };
        let (from, to) = Period { from: self.from, to: self.to }.days()?;
        Ok((from, to, group_by))
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(tenant_analytics))
        .routes(routes!(partner_analytics))
        .routes(routes!(platform_analytics))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/analytics", tag = "analytics", params(("tenant_id" = String, Path, description = "tenant id (UUID)")), responses((status = 200, description = "OK"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 422 or 429")))]
pub async fn tenant_analytics(
    State(state): State<AppState>,
    Administering(ctx): Administering,
    min: MinPosition,
    AppQuery(params): AppQuery<AnalyticsParams>,
) -> Result<Json<Report>, ApiError> {
    caught_up(&state, analytics::NAME, &ctx, min).await?;
    let (from, to, group_by) = params.read(false)?;
    let db = state.projections.db();
    Ok(Json(analytics::report(db, Scope::Tenant(&ctx), &from, &to, group_by, &state.currency).await?))
}

#[utoipa::path(get, path = "/v1/partners/{partner_id}/analytics", tag = "analytics", params(("partner_id" = String, Path, description = "partner id (UUID)")), responses((status = 200, description = "OK"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 422 or 429")))]
pub async fn partner_analytics(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(partner): AppPath<PartnerId>,
    AppQuery(params): AppQuery<AnalyticsParams>,
) -> Result<Json<Report>, ApiError> {
    if !tenantry_app::partners::reads_partner(&caller.acting_on(TenantId::PLATFORM), partner) {
        // Another partner's is not there for a partner admin; the rest may not ask.
        return Err(match caller.role {
            Role::PartnerAdmin => ApiError::NotFound,
            _ => ApiError::Forbidden("only the platform and the partner's admins see its analytics".into()),
        });
    }
    let db = state.projections.db();
    directory::partner(db, partner).await?.ok_or(ApiError::NotFound)?;
    let (from, to, group_by) = params.read(true)?;
    Ok(Json(analytics::report(db, Scope::Partner(partner), &from, &to, group_by, &state.currency).await?))
}

#[utoipa::path(get, path = "/v1/analytics", tag = "analytics", responses((status = 200, description = "OK"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 422 or 429")))]
pub async fn platform_analytics(
    State(state): State<AppState>,
    caller: Caller,
    AppQuery(params): AppQuery<AnalyticsParams>,
) -> Result<Json<Report>, ApiError> {
    if caller.role != Role::SuperAdmin {
        return Err(ApiError::Forbidden("only the platform's operators see every tenant's analytics".into()));
    }
    let (from, to, group_by) = params.read(true)?;
    let db = state.projections.db();
    Ok(Json(analytics::report(db, Scope::Platform, &from, &to, group_by, &state.currency).await?))
}
