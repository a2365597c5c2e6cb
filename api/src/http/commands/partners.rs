//! A partner after its creation: renamed (`PATCH`), deleted once it has no tenants
//! (`DELETE`), its keys rotated and revoked. All on the partner's stream of the platform log.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use tenantry_app::partners;
use tenantry_domain::partner::PartnerCommand;
use tenantry_domain::{ApiKeyId, PartnerId, TenantId};
use tenantry_projections::models::directory;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::auth::Caller;
use crate::http::commands::api_keys::Rotate;
use crate::http::error::ApiError;
use crate::http::extract::{AppJson, AppPath};
use crate::http::{AppState, answer, keys_retired, object, written};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchPartner {
    pub name: String,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(update_partner, delete_partner))
        .routes(routes!(rotate_partner_key))
        .routes(routes!(revoke_partner_key))
}

/// `PATCH /v1/partners/{id}`: the platform, or the partner's own admins.
#[utoipa::path(patch, path = "/v1/partners/{partner_id}", request_body = PatchPartner, tag = "partners", params(("partner_id" = String, Path, description = "partner id (UUID)")), responses((status = 200, description = "The partner as `GET` shows it"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 413, 422 or 429")))]
pub async fn update_partner(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(partner_id): AppPath<PartnerId>,
    AppJson(body): AppJson<PatchPartner>,
) -> Result<Response, ApiError> {
    let ctx = caller.acting_on(TenantId::PLATFORM);
    let command = PartnerCommand::Rename { name: body.name };
    let out = partners::change_partner(&state.commands, &ctx, partner_id, command).await?;
    let read = || directory::partner(state.projections.db(), partner_id);
    let changed = (StatusCode::OK, out, format!("/v1/partners/{partner_id}"));
    object(&state, &ctx, directory::NAME, changed, partner_id.to_string(), read, json!({})).await
}

/// `DELETE /v1/partners/{id}` (the platform): 409 while the partner has tenants. Its keys
/// stop working before the answer.
#[utoipa::path(delete, path = "/v1/partners/{partner_id}", tag = "partners", params(("partner_id" = String, Path, description = "partner id (UUID)")), responses((status = 200, description = "Done: `id` and `position`"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409 or 429")))]
pub async fn delete_partner(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(partner_id): AppPath<PartnerId>,
) -> Result<Response, ApiError> {
    let ctx = caller.acting_on(TenantId::PLATFORM);
    let out = partners::delete_partner(&state.commands, state.projections.db(), &ctx, partner_id).await?;
    keys_retired(&state, &ctx, out.position).await?;
    Ok(written(StatusCode::OK, Some(partner_id.to_string()), out, json!({})))
}

/// `POST /v1/partners/{id}/keys/{key_id}/rotate`: a new secret, answered once; the old one
/// works on for `grace_seconds` (not at all by default).
#[utoipa::path(post, path = "/v1/partners/{partner_id}/keys/{key_id}/rotate", request_body = Rotate, tag = "partners", params(("partner_id" = String, Path, description = "partner id (UUID)"), ("key_id" = String, Path, description = "key id (UUID)")), responses((status = 200, description = "`id`, `position` and the new `key`"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 413, 422 or 429")))]
pub async fn rotate_partner_key(
    State(state): State<AppState>,
    caller: Caller,
    AppPath((partner_id, key_id)): AppPath<(PartnerId, ApiKeyId)>,
    AppJson(body): AppJson<Rotate>,
) -> Result<Response, ApiError> {
    let ctx = caller.acting_on(TenantId::PLATFORM);
    let db = state.projections.db();
    let (out, token) = partners::rotate_partner_key(
        &state.commands,
        db,
        &state.keys,
        &ctx,
        partner_id,
        key_id,
        body.grace_seconds,
    )
    .await?;
    keys_retired(&state, &ctx, out.position).await?;
    Ok(answer(
        StatusCode::OK,
        json!({ "id": key_id, "position": out.position, "key": token }),
        out.position,
        None,
    ))
}

/// `DELETE /v1/partners/{id}/keys/{key_id}`: refused from the answer on, on every server.
#[utoipa::path(delete, path = "/v1/partners/{partner_id}/keys/{key_id}", tag = "partners", params(("partner_id" = String, Path, description = "partner id (UUID)"), ("key_id" = String, Path, description = "key id (UUID)")), responses((status = 200, description = "Done: `id` and `position`"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404 or 429")))]
pub async fn revoke_partner_key(
    State(state): State<AppState>,
    caller: Caller,
    AppPath((partner_id, key_id)): AppPath<(PartnerId, ApiKeyId)>,
) -> Result<Response, ApiError> {
    let ctx = caller.acting_on(TenantId::PLATFORM);
    let out = partners::revoke_partner_key(&state.commands, state.projections.db(), &ctx, partner_id, key_id)
        .await?;
    keys_retired(&state, &ctx, out.position).await?;
    Ok(written(StatusCode::OK, Some(key_id.to_string()), out, json!({})))
}
