//! Usage, quotas and the audit log.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::{Datelike, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use tenantry_projections::models::{audit, billing, quotas};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::auth::Administering;
use crate::http::error::ApiError;
use crate::http::extract::{AppQuery, MinPosition};
use crate::http::{AppState, caught_up};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Period {
    /// First day, `YYYY-MM-DD`; the first of this month when absent.
    pub from: Option<NaiveDate>,
    /// Last day, inclusive; today when absent.
    pub to: Option<NaiveDate>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    pub actor: Option<String>,
    pub action: Option<String>,
    /// Unix milliseconds, inclusive.
    pub from: Option<i64>,
    /// Unix milliseconds, exclusive.
    pub to: Option<i64>,
    pub cursor: Option<String>,
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
    AppQuery(p): AppQuery<Period>,
) -> Result<Response, ApiError> {
    caught_up(&state, billing::NAME, &ctx, min).await?;
    let today = Utc::now().date_naive();
    let from = p.from.unwrap_or_else(|| today.with_day(1).unwrap_or(today));
    let to = p.to.unwrap_or(today);
    if from > to {
        return Err(ApiError::Unprocessable { field: "from".into(), reason: "after `to`".into() });
    }
    let report = billing::usage(&ctx, state.projections.db(), &from.to_string(), &to.to_string()).await?;
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
    Ok(Json(json!({ "quotas": lines })))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/audit", tag = "reports", params(("tenant_id" = String, Path, description = "tenant id (UUID)")), responses((status = 200, description = "OK"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
pub async fn audit_log(
    State(state): State<AppState>,
    Administering(ctx): Administering,
    min: MinPosition,
    AppQuery(p): AppQuery<AuditParams>,
) -> Result<Json<Value>, ApiError> {
    caught_up(&state, audit::NAME, &ctx, min).await?;
    let filter = audit::AuditFilter { actor: p.actor, action: p.action, from: p.from, to: p.to };
    let page =
        audit::entries(&ctx, state.projections.db(), &filter, p.cursor.as_deref(), p.limit.unwrap_or(50))
            .await?;
    Ok(Json(json!(page)))
}
