//! Conversations and their messages.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tenantry_domain::{Actor, AgentId, ConversationId, MessageId, Role, TenantContext, TenantId, UserId};
use tenantry_projections::models::conversations::{self, ThreadFilter};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::PageParams;
use crate::http::auth::Scoped;
use crate::http::error::ApiError;
use crate::http::extract::{AppPath, AppQuery, MinPosition};
use crate::http::{AppState, caught_up};

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ThreadParams {
    /// Only the threads of this agent.
    #[param(value_type = Option<String>)]
    pub agent_id: Option<AgentId>,
    /// Only the threads of this user (a user key sees its own whatever it asks).
    #[param(value_type = Option<String>)]
    pub user_id: Option<UserId>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Items per page: 1 to 200, 50 when absent.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(one))
        .routes(routes!(messages))
        .routes(routes!(message))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/conversations", tag = "conversations", params(("tenant_id" = String, Path, description = "tenant id (UUID)")), responses((status = 200, description = "OK"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
pub async fn list(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    min: MinPosition,
    AppQuery(p): AppQuery<ThreadParams>,
) -> Result<Json<Value>, ApiError> {
    caught_up(&state, conversations::NAME, &ctx, min).await?;
    // A user sees its own threads only, whatever it asks for.
    let user_id = match own_user(&ctx)? {
        Some(me) => Some(me),
        None => p.user_id.map(|u| u.to_string()),
    };
    let filter = ThreadFilter { agent_id: p.agent_id.map(|a| a.to_string()), user_id };
    let page = conversations::threads(
        &ctx,
        state.projections.db(),
        &filter,
        p.cursor.as_deref(),
        super::page_limit(p.limit)?,
    )
    .await?;
    Ok(Json(json!(page)))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/conversations/{conversation_id}", tag = "conversations", params(("tenant_id" = String, Path, description = "tenant id (UUID)"), ("conversation_id" = String, Path, description = "conversation id (UUID)")), responses((status = 200, description = "OK"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
pub async fn one(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    min: MinPosition,
    AppPath((_, conversation)): AppPath<(TenantId, ConversationId)>,
) -> Result<Json<Value>, ApiError> {
    caught_up(&state, conversations::NAME, &ctx, min).await?;
    let row = visible_thread(&ctx, &state, conversation).await?;
    Ok(Json(json!(row)))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/conversations/{conversation_id}/messages", tag = "conversations", params(("tenant_id" = String, Path, description = "tenant id (UUID)"), ("conversation_id" = String, Path, description = "conversation id (UUID)")), responses((status = 200, description = "OK"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
pub async fn messages(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    min: MinPosition,
    AppPath((_, conversation)): AppPath<(TenantId, ConversationId)>,
    AppQuery(p): AppQuery<PageParams>,
) -> Result<Response, ApiError> {
    caught_up(&state, conversations::NAME, &ctx, min).await?;
    let db = state.projections.db();
    let (owner, page) = conversations::thread_messages(&ctx, db, conversation, p.cursor(), p.limit()?)
        .await?
        .ok_or(ApiError::NotFound)?;
    match own_user(&ctx)? {
        Some(me) if owner.as_deref() != Some(me.as_str()) => Err(ApiError::NotFound),
        // Written straight from the rows, not through a JSON tree.
        _ => Ok(Json(page).into_response()),
    }
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/conversations/{conversation_id}/messages/{message_id}", tag = "conversations", params(("tenant_id" = String, Path, description = "tenant id (UUID)"), ("conversation_id" = String, Path, description = "conversation id (UUID)"), ("message_id" = String, Path, description = "message id (UUID)")), responses((status = 200, description = "OK"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
pub async fn message(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    min: MinPosition,
    AppPath((_, conversation, message)): AppPath<(TenantId, ConversationId, MessageId)>,
) -> Result<Json<Value>, ApiError> {
    caught_up(&state, conversations::NAME, &ctx, min).await?;
    let (owner, row) = conversations::message(&ctx, state.projections.db(), conversation, message)
        .await?
        .ok_or(ApiError::NotFound)?;
    match own_user(&ctx)? {
        Some(me) if owner.as_deref() != Some(me.as_str()) => Err(ApiError::NotFound),
        _ => Ok(Json(json!(row))),
    }
}

/// For a `user` caller, the user it acts as; `Forbidden` for a user key bound to no user.
fn own_user(ctx: &TenantContext) -> Result<Option<String>, ApiError> {
    match (ctx.role, &ctx.actor) {
        (Role::User, Actor::User(me)) => Ok(Some(me.to_string())),
        (Role::User, _) => Err(ApiError::Forbidden("this user key acts as no user".into())),
        _ => Ok(None),
    }
}

/// A thread the caller may see: another user's thread is not there for a user (404).
async fn visible_thread(
    ctx: &TenantContext,
    state: &AppState,
    id: ConversationId,
) -> Result<conversations::ThreadRow, ApiError> {
    let row = conversations::thread(ctx, state.projections.db(), id).await?.ok_or(ApiError::NotFound)?;
    match own_user(ctx)? {
        Some(me) if row.user_id.as_deref() != Some(me.as_str()) => Err(ApiError::NotFound),
        _ => Ok(row),
    }
}
