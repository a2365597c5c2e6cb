//! A tenant's webhook endpoints (tenant admins): `POST/GET …/webhooks`, `GET/PATCH/DELETE
//! …/webhooks/{id}`, `POST …/webhooks/{id}/rotate-secret`, the delivery log `GET
//! …/webhooks/{id}/deliveries`, and `POST …/webhooks/{id}/deliveries/{position}/redeliver`.
//! The signing secret is answered once, by the create and by a rotation.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use tenantry_domain::command::{CreateWebhook, RemoveWebhook, RotateWebhookSecret, UpdateWebhook};
use tenantry_domain::tenant::TenantCommand;
use tenantry_domain::{TenantId, WebhookId};
use tenantry_projections::models::webhooks;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Administering;
use super::error::ApiError;
use super::extract::{AppJson, AppPath, AppQuery, MinPosition};
use super::queries::PageParams;
use super::{AppState, caught_up, object, settled, written};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookBody {
    /// Where deliveries are POSTed: an `http(s)` URL.
    pub url: String,
    /// The event types to deliver (`agent.created`, `message.appended` …); absent or empty:
    /// every type.
    pub event_types: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchWebhook {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    /// `true` enables an endpoint again (its retries start afresh), `false` pauses it.
    pub enabled: Option<bool>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateWebhookBody {
    /// How long the old secret keeps signing beside the new one (0 to 604800 s; 0 when
    /// absent). The body may be `{}`.
    pub grace_seconds: Option<u64>,
}

pub fn commands() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook))
        .routes(routes!(patch_webhook, remove_webhook))
        .routes(routes!(rotate_secret))
        .routes(routes!(redeliver))
}

pub fn queries() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_webhooks))
        .routes(routes!(get_webhook))
        .routes(routes!(deliveries))
}

fn location(tenant: TenantId, id: WebhookId) -> String {
    format!("/v1/tenants/{tenant}/webhooks/{id}")
}

#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/webhooks", request_body = CreateWebhookBody, tag = "webhooks", params(("tenant_id" = String, Path, description = "tenant id (UUID)")), responses((status = 201, description = "The endpoint, with its signing `secret` (shown once)"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 413, 422 or 429")))]
pub async fn create_webhook(
    State(state): State<AppState>,
    Administering(ctx): Administering,
    AppJson(body): AppJson<CreateWebhookBody>,
) -> Result<Response, ApiError> {
    let webhook_id = WebhookId::new();
    let secret = crate::webhooks::new_secret();
    let command = TenantCommand::CreateWebhook(CreateWebhook {
        webhook_id,
        url: body.url,
        event_types: body.event_types.unwrap_or_default(),
        secret: secret.clone(),
    });
    let out = state.commands.tenant(&ctx, &command).await?;
    let read = || webhooks::webhook(&ctx, state.projections.db(), webhook_id);
    let created = (StatusCode::CREATED, out, location(ctx.tenant_id, webhook_id));
    object(&state, &ctx, webhooks::NAME, created, webhook_id.to_string(), read, json!({ "secret": secret }))
        .await
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/webhooks", tag = "webhooks", params(("tenant_id" = String, Path, description = "tenant id (UUID)")), responses((status = 200, description = "OK"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404 or 429")))]
pub async fn list_webhooks(
    State(state): State<AppState>,
    Administering(ctx): Administering,
    min: MinPosition,
    AppQuery(page): AppQuery<PageParams>,
) -> Result<Json<Value>, ApiError> {
    caught_up(&state, webhooks::NAME, &ctx, min).await?;
    let items = webhooks::webhooks(&ctx, state.projections.db(), page.cursor(), page.limit()?).await?;
    Ok(Json(json!(items)))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/webhooks/{webhook_id}", tag = "webhooks", params(("tenant_id" = String, Path, description = "tenant id (UUID)"), ("webhook_id" = String, Path, description = "webhook id (UUID)")), responses((status = 200, description = "OK"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404 or 429")))]
pub async fn get_webhook(
    State(state): State<AppState>,
    Administering(ctx): Administering,
    min: MinPosition,
    AppPath((_, id)): AppPath<(TenantId, WebhookId)>,
) -> Result<Json<Value>, ApiError> {
    caught_up(&state, webhooks::NAME, &ctx, min).await?;
    let row = webhooks::webhook(&ctx, state.projections.db(), id).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(json!(row)))
}

#[utoipa::path(patch, path = "/v1/tenants/{tenant_id}/webhooks/{webhook_id}", request_body = PatchWebhook, tag = "webhooks", params(("tenant_id" = String, Path, description = "tenant id (UUID)"), ("webhook_id" = String, Path, description = "webhook id (UUID)")), responses((status = 200, description = "The endpoint"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 413, 422 or 429")))]
pub async fn patch_webhook(
    State(state): State<AppState>,
    Administering(ctx): Administering,
    AppPath((_, webhook_id)): AppPath<(TenantId, WebhookId)>,
    AppJson(body): AppJson<PatchWebhook>,
) -> Result<Response, ApiError> {
    let command = TenantCommand::UpdateWebhook(UpdateWebhook {
        webhook_id,
        url: body.url,
        event_types: body.event_types,
        enabled: body.enabled,
    });
    let out = state.commands.tenant(&ctx, &command).await?;
    let read = || webhooks::webhook(&ctx, state.projections.db(), webhook_id);
    let changed = (StatusCode::OK, out, location(ctx.tenant_id, webhook_id));
    object(&state, &ctx, webhooks::NAME, changed, webhook_id.to_string(), read, json!({})).await
}

#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/webhooks/{webhook_id}/rotate-secret", request_body = RotateWebhookBody, tag = "webhooks", params(("tenant_id" = String, Path, description = "tenant id (UUID)"), ("webhook_id" = String, Path, description = "webhook id (UUID)")), responses((status = 200, description = "The endpoint, with its new `secret` (shown once)"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 413, 422 or 429")))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    Administering(ctx): Administering,
    AppPath((_, webhook_id)): AppPath<(TenantId, WebhookId)>,
    AppJson(body): AppJson<RotateWebhookBody>,
) -> Result<Response, ApiError> {
    let grace_seconds = body.grace_seconds.unwrap_or(0);
    let secret = crate::webhooks::new_secret();
    let command = TenantCommand::RotateWebhookSecret(RotateWebhookSecret {
        webhook_id,
        secret: secret.clone(),
        grace_seconds,
        now: chrono::Utc::now(),
    });
    let out = state.commands.tenant(&ctx, &command).await?;
    let read = || webhooks::webhook(&ctx, state.projections.db(), webhook_id);
    let changed = (StatusCode::OK, out, location(ctx.tenant_id, webhook_id));
    object(&state, &ctx, webhooks::NAME, changed, webhook_id.to_string(), read, json!({ "secret": secret }))
        .await
}

#[utoipa::path(delete, path = "/v1/tenants/{tenant_id}/webhooks/{webhook_id}", tag = "webhooks", params(("tenant_id" = String, Path, description = "tenant id (UUID)"), ("webhook_id" = String, Path, description = "webhook id (UUID)")), responses((status = 200, description = "Done: `id` and `position`"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404 or 429")))]
pub async fn remove_webhook(
    State(state): State<AppState>,
    Administering(ctx): Administering,
    AppPath((_, webhook_id)): AppPath<(TenantId, WebhookId)>,
) -> Result<Response, ApiError> {
    let out =
        state.commands.tenant(&ctx, &TenantCommand::RemoveWebhook(RemoveWebhook { webhook_id })).await?;
    settled(&state, &ctx, webhooks::NAME, out.position).await?;
    Ok(written(StatusCode::OK, Some(webhook_id.to_string()), out, json!({})))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/webhooks/{webhook_id}/deliveries", tag = "webhooks", params(("tenant_id" = String, Path, description = "tenant id (UUID)"), ("webhook_id" = String, Path, description = "webhook id (UUID)")), responses((status = 200, description = "The delivery log, newest first"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404 or 429")))]
pub async fn deliveries(
    State(state): State<AppState>,
    Administering(ctx): Administering,
    AppPath((_, id)): AppPath<(TenantId, WebhookId)>,
    AppQuery(page): AppQuery<PageParams>,
) -> Result<Json<Value>, ApiError> {
    let db = state.projections.db();
    webhooks::webhook(&ctx, db, id).await?.ok_or(ApiError::NotFound)?;
    let items = webhooks::deliveries(&ctx, db, id, page.cursor(), page.limit()?).await?;
    Ok(Json(json!(items)))
}

#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/webhooks/{webhook_id}/deliveries/{position}/redeliver", tag = "webhooks", params(("tenant_id" = String, Path, description = "tenant id (UUID)"), ("webhook_id" = String, Path, description = "webhook id (UUID)"), ("position" = u64, Path, description = "the event's position in the tenant's log")), responses((status = 200, description = "The delivery as the log now shows it"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404 or 429")))]
pub async fn redeliver(
    State(state): State<AppState>,
    Administering(ctx): Administering,
    AppPath((_, id, position)): AppPath<(TenantId, WebhookId, u64)>,
) -> Result<Json<Value>, ApiError> {
    let db = state.projections.db();
    webhooks::webhook(&ctx, db, id).await?.ok_or(ApiError::NotFound)?;
    let sent = state.webhooks.redeliver(&ctx, id, position).await;
    sent.map_err(|e| ApiError::internal(crate::webhooks::DispatchError(e)))?.ok_or(ApiError::NotFound)?;
    let row = webhooks::delivery(&ctx, db, id, position).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(json!(row)))
}
