//! `GET /v1/partners/{id}/usage`: the usage and cost of all a partner's tenants, per tenant
//! and in total, for the platform and the partner's own admins.

use axum::Json;
use axum::extract::State;
use tenantry_domain::{PartnerId, TenantId};
use tenantry_projections::models::{billing, directory};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::reports::Period;
use crate::http::AppState;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::{AppPath, AppQuery};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(partner_usage))
}

#[utoipa::path(get, path = "/v1/partners/{partner_id}/usage", tag = "partners", params(("partner_id" = String, Path, description = "partner id (UUID)"), Period), responses((status = 200, description = "OK"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 422 or 429")))]
pub async fn partner_usage(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(partner): AppPath<PartnerId>,
    AppQuery(period): AppQuery<Period>,
) -> Result<Json<billing::PartnerUsage>, ApiError> {
    if !tenantry_app::partners::reads_partner(&caller.acting_on(TenantId::PLATFORM), partner) {
        // Another partner's is not there for a partner admin; the rest may not ask.
        return Err(match caller.role {
            tenantry_domain::Role::PartnerAdmin => ApiError::NotFound,
            _ => ApiError::Forbidden("only the platform and the partner's admins see its usage".into()),
        });
    }
    directory::partner(state.projections.db(), partner).await?.ok_or(ApiError::NotFound)?;
    let (from, to) = period.days()?;
    Ok(Json(billing::partner_usage(state.projections.db(), partner, &from, &to).await?))
}
