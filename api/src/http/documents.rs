//! The tenant's knowledge base: `POST/GET …/documents` (admins add, every member reads),
//! `GET/DELETE …/documents/{id}`, `GET …/documents/{id}/content` (the body as stored) and
//! `GET …/documents/search?q=` (full-text search within the tenant, best chunks first).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tenantry_domain::document::{AddDocument, DocumentCommand};
use tenantry_domain::{DocumentId, TenantId};
use tenantry_projections::models::documents;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Administering, Scoped};
use super::error::ApiError;
use super::extract::{AppJson, AppPath, AppQuery, MinPosition};
use super::queries::PageParams;
use super::{AppState, caught_up, object, settled, written};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDocument {
    pub title: String,
    /// The text, up to 10 MiB of UTF-8.
    pub body: String,
    /// `text/plain` (when absent) or `text/markdown`.
    pub content_type: Option<String>,
    /// A JSON object of the platform's own, up to 16 KiB.
    pub metadata: Option<serde_json::Map<String, Value>>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// The words to find; a chunk must hold every one (case and accents aside).
    pub q: String,
    /// Results: 1 to 50, 10 when absent.
    #[param(minimum = 1, maximum = 50)]
    pub limit: Option<u32>,
}

pub fn commands() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_document)).routes(routes!(remove_document))
}

pub fn queries() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_documents))
        .routes(routes!(search_documents))
        .routes(routes!(get_document))
        .routes(routes!(document_content))
}

#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/documents", request_body = CreateDocument, tag = "documents", params(("tenant_id" = String, Path, description = "tenant id (UUID)")), responses((status = 201, description = "The document (without its body)"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 413, 422 or 429")))]
pub async fn create_document(
    State(state): State<AppState>,
    Administering(ctx): Administering,
    AppJson(body): AppJson<CreateDocument>,
) -> Result<Response, ApiError> {
    let document_id = DocumentId::new();
    let command = DocumentCommand::Add(AddDocument {
        document_id,
        title: body.title,
        content_type: body.content_type.unwrap_or_else(|| "text/plain".to_owned()),
        metadata: Value::Object(body.metadata.unwrap_or_default()).to_string(),
        body: body.body,
    });
    let out = state.commands.document(&ctx, &command).await?;
    let location = format!("/v1/tenants/{}/documents/{document_id}", ctx.tenant_id);
    let read = || documents::document(&ctx, state.projections.db(), document_id);
    let created = (StatusCode::CREATED, out, location);
    object(&state, &ctx, documents::NAME, created, document_id.to_string(), read, json!({})).await
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/documents", tag = "documents", params(("tenant_id" = String, Path, description = "tenant id (UUID)")), responses((status = 200, description = "OK"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404 or 429")))]
pub async fn list_documents(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    min: MinPosition,
    AppQuery(page): AppQuery<PageParams>,
) -> Result<Json<Value>, ApiError> {
    caught_up(&state, documents::NAME, &ctx, min).await?;
    let items = documents::documents(&ctx, state.projections.db(), page.cursor(), page.limit()?).await?;
    Ok(Json(json!(items)))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/documents/search", tag = "documents", params(("tenant_id" = String, Path, description = "tenant id (UUID)")), responses((status = 200, description = "OK: `items`, best first"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 422 or 429")))]
pub async fn search_documents(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    min: MinPosition,
    AppQuery(params): AppQuery<SearchParams>,
) -> Result<Json<Value>, ApiError> {
    let limit = params.limit.unwrap_or(10);
    if !(1..=documents::MAX_RESULTS).contains(&limit) {
        return Err(ApiError::BadRequest {
            detail: format!("limit must be between 1 and {}", documents::MAX_RESULTS),
            field: Some("limit".into()),
        });
    }
    let words = documents::query_words(&params.q);
    if words.is_empty() || words.len() > documents::MAX_QUERY_WORDS {
        return Err(ApiError::Unprocessable {
            field: "q".into(),
            reason: format!("must hold 1 to {} words", documents::MAX_QUERY_WORDS),
        });
    }
    caught_up(&state, documents::NAME, &ctx, min).await?;
    let items = documents::search(&ctx, state.projections.db(), &words, limit).await?;
    Ok(Json(json!({ "items": items })))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/documents/{document_id}", tag = "documents", params(("tenant_id" = String, Path, description = "tenant id (UUID)"), ("document_id" = String, Path, description = "document id (UUID)")), responses((status = 200, description = "OK"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404 or 429")))]
pub async fn get_document(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    min: MinPosition,
    AppPath((_, document)): AppPath<(TenantId, DocumentId)>,
) -> Result<Json<Value>, ApiError> {
    caught_up(&state, documents::NAME, &ctx, min).await?;
    let row = documents::document(&ctx, state.projections.db(), document).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(json!(row)))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/documents/{document_id}/content", tag = "documents", params(("tenant_id" = String, Path, description = "tenant id (UUID)"), ("document_id" = String, Path, description = "document id (UUID)")), responses((status = 200, description = "The body as stored, as `text/plain` or `text/markdown`", content((String = "text/plain"), (String = "text/markdown"))), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404 or 429")))]
pub async fn document_content(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    min: MinPosition,
    AppPath((_, document)): AppPath<(TenantId, DocumentId)>,
) -> Result<Response, ApiError> {
    caught_up(&state, documents::NAME, &ctx, min).await?;
    let row = documents::document(&ctx, state.projections.db(), document).await?.ok_or(ApiError::NotFound)?;
    let body = state.store.read_blob(&ctx, *document.as_uuid()).await?.ok_or(ApiError::NotFound)?;
    let mut response = body.into_response();
    let content_type = format!("{}; charset=utf-8", row.content_type);
    if let Ok(value) = HeaderValue::try_from(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    Ok(response)
}

#[utoipa::path(delete, path = "/v1/tenants/{tenant_id}/documents/{document_id}", tag = "documents", params(("tenant_id" = String, Path, description = "tenant id (UUID)"), ("document_id" = String, Path, description = "document id (UUID)")), responses((status = 200, description = "Done: `id` and `position`"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404 or 429")))]
pub async fn remove_document(
    State(state): State<AppState>,
    Administering(ctx): Administering,
    AppPath((_, document_id)): AppPath<(TenantId, DocumentId)>,
) -> Result<Response, ApiError> {
    let out = state.commands.document(&ctx, &DocumentCommand::Remove(document_id)).await?;
    settled(&state, &ctx, documents::NAME, out.position).await?;
    Ok(written(StatusCode::OK, Some(document_id.to_string()), out, json!({})))
}
