//! The verifiable export of a tenant's log, streamed as JSON Lines.

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::{Stream, TryStreamExt};
use tenantry_domain::{Actor, TenantId, UserId};
use tenantry_store::StoreError;
use tenantry_store::export::Exporter;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::AppState;
use crate::http::auth::{Administering, Scoped};
use crate::http::error::ApiError;
use crate::http::extract::AppPath;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(export)).routes(routes!(export_person))
}

/// The tenant's whole log up to its current head: a header, one line per event decoded to
/// JSON, a trailer. Streamed page by page; check it with `tenantry verify FILE`.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/export", tag = "compliance", params(("tenant_id" = String, Path, description = "tenant id (UUID)")), responses((status = 200, description = "JSON Lines (application/x-ndjson)", content_type = "application/x-ndjson"), (status = "default", description = "Problem (RFC 9457): 401, 403, 404 or 429")))]
pub async fn export(
    State(state): State<AppState>,
    Administering(ctx): Administering,
) -> Result<Response, ApiError> {
    let tenant = ctx.tenant_id;
    ndjson(tenant, Exporter::new(&state.store).chunks(&ctx).await, format!("tenant-{tenant}"))
}

/// An export as the answer: JSON Lines streamed as they are made, named `name.ndjson`.
fn ndjson(
    tenant: TenantId,
    chunks: Result<impl Stream<Item = Result<Vec<u8>, StoreError>> + Send + 'static, StoreError>,
    name: String,
) -> Result<Response, ApiError> {
    let chunks = chunks.map_err(|e| match e {
        StoreError::UnknownTenant { .. } => ApiError::NotFound,
        other => other.into(),
    })?;
    // A failure mid-stream cuts the body short: the file then has no trailer, which
    // `tenantry verify` reports as truncation.
    let body = Body::from_stream(chunks.inspect_err(move |e| {
        tracing::error!(%tenant, error = %e, "export stopped");
    }));
    let filename = format!("attachment; filename=\"{name}.ndjson\"");
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson".to_owned()), (header::CONTENT_DISPOSITION, filename)],
        body,
    )
        .into_response())
}

/// A person's own data (GDPR articles 15 and 20): their profile, their keys, the
/// conversations they opened with every message in them, their usage, and every audit record
/// naming them, as a verifiable export whose header names them (`subject`); positions
/// increase with the others left out. For the tenant's admins and for the person themself.
/// An erased person exports as `[erased]`.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/users/{user_id}/export", tag = "compliance", params(("tenant_id" = String, Path, description = "tenant id (UUID)"), ("user_id" = String, Path, description = "user id (UUID)")), responses((status = 200, description = "JSON Lines (application/x-ndjson)", content_type = "application/x-ndjson"), (status = "default", description = "Problem (RFC 9457): 401, 403, 404 or 429")))]
pub async fn export_person(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    AppPath((_, user)): AppPath<(TenantId, UserId)>,
) -> Result<Response, ApiError> {
    let own = matches!(ctx.actor, Actor::User(u) if u == user);
    if !(ctx.role.can_administer() || own) {
        return Err(ApiError::Forbidden(
            "a person's export is for the tenant's admins and for the person".into(),
        ));
    }
    let chunks = Exporter::new(&state.store).subject_chunks(&ctx, *user.as_uuid()).await;
    ndjson(ctx.tenant_id, chunks, format!("user-{user}"))
}
