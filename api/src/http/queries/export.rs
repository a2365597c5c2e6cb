//! The verifiable export of a tenant's log, streamed as JSON Lines.

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use tenantry_store::export::Exporter;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::AppState;
use crate::http::auth::Administering;
use crate::http::error::ApiError;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(export))
}

/// The tenant's whole log up to its current head: a header, one line per event decoded to
/// JSON, a trailer. Streamed page by page; check it with `tenantry verify FILE`.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/export", tag = "compliance", params(("tenant_id" = String, Path, description = "tenant id (UUID)")), responses((status = 200, description = "JSON Lines (application/x-ndjson)", content_type = "application/x-ndjson"), (status = "default", description = "Problem (RFC 9457): 401, 403, 404 or 429")))]
pub async fn export(
    State(state): State<AppState>,
    Administering(ctx): Administering,
) -> Result<Response, ApiError> {
    let tenant = ctx.tenant_id;
    let chunks = Exporter::new(&state.store).chunks(&ctx).await.map_err(|e| match e {
        tenantry_store::StoreError::UnknownTenant { .. } => ApiError::NotFound,
        other => other.into(),
    })?;
    // A failure mid-stream cuts the body short: the file then has no trailer, which
    // `tenantry verify` reports as truncation.
    let body = Body::from_stream(chunks.inspect_err(move |e| {
        tracing::error!(%tenant, error = %e, "export stopped");
    }));
    let filename = format!("attachment; filename=\"tenant-{tenant}.ndjson\"");
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson".to_owned()), (header::CONTENT_DISPOSITION, filename)],
        body,
    )
        .into_response())
}
