//! Usage, quotas and the audit log.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::{Datelike, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use tenantry_projections::models::{audit, billing, directory, quotas};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::auth::Administering;
use crate::http::error::ApiError;
use crate::http::extract::{AppQuery, MinPosition, TimeBound};
use crate::http::{AppState, caught_up};

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Period {
    /// First day (a date, or an RFC 3339 time on that UTC day); the first of this month
    /// when absent.
    #[param(value_type = Option<String>)]
    pub from: Option<TimeBound>,
    /// Last day, inclusive (a date or an RFC 3339 time); today when absent.
    #[param(value_type = Option<String>)]
    pub to: Option<TimeBound>,
}

/// `GET …/usage`: a period, and whether the tenants below this one count too.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageParams {
    /// First day (a date, or an RFC 3339 time on that UTC day); the first of this month
    /// when absent.
    #[param(value_type = Option<String>)]
    pub from: Option<TimeBound>,
    /// Last day, inclusive (a date or an RFC 3339 time); today when absent.
    #[param(value_type = Option<String>)]
    pub to: Option<TimeBound>,
    /// `true`: the usage of this tenant and every tenant below it, together.
    pub include_descendants: Option<bool>,
}

impl Period {
    /// The first and last day asked for (`YYYY-MM-DD`): this month so far by default; 422
    /// when `from` is after `to`.
    pub fn days(&self) -> Result<(String, String), ApiError> {
        let today = Utc::now().date_naive();
        let from = self.from.as_ref().map_or_else(|| today.with_day(1).unwrap_or(today), |b| b.day());
        let to = self.to.as_ref().map_or(today, |b| b.day());
        if from > to {
            return Err(ApiError::Unprocessable { field: "from".into(), reason: "after `to`".into() });
        }
        Ok((from.to_string(), to.to_string()))
    }
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only entries of this actor (`user:<id>`, `key:<id>`, `system`, ...).
    pub actor: Option<String>,
    /// Only entries of this action (`agent.created`, `access.denied`, ...).
    pub action: Option<String>,
    /// From this time (RFC 3339), inclusive; a date means its start.
    #[param(value_type = Option<String>)]
    pub from: Option<TimeBound>,
    /// Before this time (RFC 3339), exclusive; a date includes its whole day.
    #[param(value_type = Option<String>)]
    pub to: Option<TimeBound>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Items per page: 1 to 200, 50 when absent.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(usage)).routes(routes!(quota)).routes(routes!(audit_log))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/usage", tag = "reports", params(("tenant_id" = String, Path, description = "tenant id (UUID)")), responses((status = 200, description = "OK"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
pub async fn usage(
    State(state): State<AppState>,
    Administering(ctx): Administering,
    min: MinPosition,
    AppQuery(p): AppQuery<UsageParams>,
) -> Result<Response, ApiError> {
    caught_up(&state, billing::NAME, &ctx, min).await?;
    let period = Period { from: p.from, to: p.to };
    let (from, to) = period.days()?;
    let mut tenants = vec![ctx.tenant_id];
    if p.include_descendants.unwrap_or(false) {
        tenants.extend(directory::descendants(state.projections.db(), ctx.tenant_id).await?);
    }
    let report = billing::usage_of(state.projections.db(), &tenants, &from, &to).await?;
    Ok(Json(report).into_response())
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/quotas", tag = "reports", params(("tenant_id" = String, Path, description = "tenant id (UUID)")), responses((status = 200, description = "OK"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
pub async fn quota(
    State(state): State<AppState>,
    Administering(ctx): Administering,
    min: MinPosition,
) -> Result<Json<Value>, ApiError> {
    caught_up(&state, quotas::NAME, &ctx, min).await?;
    let lines = quotas::quotas(&ctx, state.projections.db(), &state.plans, Utc::now())
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(json!({ "items": lines, "next_cursor": null })))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/audit", tag = "reports", params(("tenant_id" = String, Path, description = "tenant id (UUID)")), responses((status = 200, description = "OK"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
pub async fn audit_log(
    State(state): State<AppState>,
    Administering(ctx): Administering,
    min: MinPosition,
    AppQuery(p): AppQuery<AuditParams>,
) -> Result<Json<Value>, ApiError> {
    caught_up(&state, audit::NAME, &ctx, min).await?;
    let filter = audit::AuditFilter {
        actor: p.actor,
        action: p.action,
        from: p.from.map(|t| t.start().timestamp_millis()),
        to: p.to.map(|t| t.end().timestamp_millis()),
    };
    let page = audit::entries(
        &ctx,
        state.projections.db(),
        &filter,
        p.cursor.as_deref(),
        super::page_limit(p.limit)?,
    )
    .await?;
    Ok(Json(json!(page)))
}
