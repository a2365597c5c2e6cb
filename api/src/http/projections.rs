//! The read side's standing for the platform's operators: `GET /v1/projections` (per
//! projection: tenants, tenants behind, lag, stalled tenants with their reason) and
//! `POST /v1/projections/rebuild` (one tenant's read models rebuilt from its log, which also
//! clears its stalls). A rebuild of every tenant is a long job for `tenantry replay`, which
//! shows progress and resumes.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use tenantry_domain::{Role, TenantId};
use tenantry_projections::models::directory;
use tenantry_projections::{ProjectorStatus, Silent};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::extract::AppJson;

pub fn queries() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(status))
}

pub fn commands() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(rebuild))
}

fn operators_only(caller: &Caller) -> Result<(), ApiError> {
    if caller.role == Role::SuperAdmin {
        Ok(())
    } else {
        Err(ApiError::Forbidden("only the platform's operators see and rebuild read models".into()))
    }
}

/// `GET /v1/projections`.
#[utoipa::path(get, path = "/v1/projections", tag = "operators", responses((status = 200, description = "OK"), (status = "default", description = "Problem (RFC 9457): 401, 403 or 429")))]
pub async fn status(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    operators_only(&caller)?;
    let items: Vec<ProjectorStatus> = state.projections.status().await?;
    Ok(Json(json!({ "items": items })))
}

/// What to rebuild.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rebuild {
    /// The tenant whose read models are rebuilt.
    #[schema(value_type = String)]
    pub tenant_id: TenantId,
    /// One projection (`directory`, `conversations`, …); all when absent.
    #[schema(max_length = 64)]
    pub projection: Option<String>,
}

/// `POST /v1/projections/rebuild`: answers once the tenant's read models are rebuilt, with
/// the events read.
#[utoipa::path(post, path = "/v1/projections/rebuild", request_body = Rebuild, tag = "operators", responses((status = 200, description = "Rebuilt: `events`"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 413, 422 or 429")))]
pub async fn rebuild(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(body): AppJson<Rebuild>,
) -> Result<Json<Value>, ApiError> {
    operators_only(&caller)?;
    let names = state.projections.names();
    if let Some(name) = body.projection.as_deref().filter(|n| !names.iter().any(|known| known == n)) {
        return Err(ApiError::Unprocessable {
            field: "projection".into(),
            reason: format!("unknown projection {name:?}; one of {}", names.join(", ")),
        });
    }
    let ctx = caller.acting_on(body.tenant_id);
    directory::tenant(&ctx, state.projections.db()).await?.ok_or(ApiError::NotFound)?;
    let events = state.projections.rebuild(body.projection.as_deref(), Some(body.tenant_id), &Silent).await?;
    Ok(Json(json!({ "tenant_id": body.tenant_id, "events": events })))
}
