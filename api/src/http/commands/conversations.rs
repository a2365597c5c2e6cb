//! Opening conversations and appending messages.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use tenantry_domain::command::{
    AppendMessage as AppendMessageCommand, ArchiveConversation, DeleteConversation,
    OpenConversation as OpenCommand, Patch, RetitleConversation,
};
use tenantry_domain::conversation::ConversationCommand;
use tenantry_domain::event::{MessageRole, TokenUsage};
use tenantry_domain::{AgentId, ConversationId, MessageId, TenantId, UserId};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::auth::Scoped;
use crate::http::error::ApiError;
use crate::http::extract::{AppJson, AppPath};
use crate::http::{AppState, answer, object};
use tenantry_projections::models::conversations;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenConversation {
    #[schema(value_type = String)]
    pub agent_id: AgentId,
    #[schema(value_type = Option<String>)]
    pub user_id: Option<UserId>,
    pub title: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageBody {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppendMessage {
    /// `user`, `assistant`, `tool` or `system`.
    #[schema(value_type = String)]
    pub role: MessageRole,
    pub content: String,
    pub model: Option<String>,
    pub usage: Option<UsageBody>,
}

/// A JSON Merge Patch of a conversation: `title` absent stays, `null` clears it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchConversation {
    #[serde(default, deserialize_with = "super::tenants::nullable")]
    #[schema(value_type = Option<String>)]
    pub title: Option<Option<String>>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(open))
        .routes(routes!(append))
        .routes(routes!(retitle))
        .routes(routes!(archive))
        .routes(routes!(unarchive))
        .routes(routes!(delete))
}

/// A command on one conversation answered with the conversation as `GET` shows it.
async fn changed(
    state: &AppState,
    ctx: &tenantry_domain::TenantContext,
    id: ConversationId,
    command: ConversationCommand,
) -> Result<Response, ApiError> {
    let out = state.commands.conversation(ctx, id, &command).await?;
    let location = format!("/v1/tenants/{}/conversations/{id}", ctx.tenant_id);
    let read = || conversations::thread(ctx, state.projections.db(), id);
    object(state, ctx, conversations::NAME, (StatusCode::OK, out, location), id.to_string(), read, json!({}))
        .await
}

/// `PATCH …/conversations/{id}`: its title (the conversation's owner, or an admin).
#[utoipa::path(patch, path = "/v1/tenants/{tenant_id}/conversations/{conversation_id}", request_body = PatchConversation, tag = "conversations", params(("tenant_id" = String, Path, description = "tenant id (UUID)"), ("conversation_id" = String, Path, description = "conversation id (UUID)")), responses((status = 200, description = "The conversation"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 413, 422 or 429")))]
pub async fn retitle(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    AppPath((_, id)): AppPath<(TenantId, ConversationId)>,
    AppJson(body): AppJson<PatchConversation>,
) -> Result<Response, ApiError> {
    let title = Patch::from_nullable(body.title);
    changed(
        &state,
        &ctx,
        id,
        ConversationCommand::Retitle(RetitleConversation { conversation_id: id, title }),
    )
    .await
}

async fn set_archived(
    state: &AppState,
    ctx: &tenantry_domain::TenantContext,
    id: ConversationId,
    archived: bool,
) -> Result<Response, ApiError> {
    changed(
        state,
        ctx,
        id,
        ConversationCommand::Archive(ArchiveConversation { conversation_id: id, archived }),
    )
    .await
}

/// `POST …/conversations/{id}/archive`: closed to new messages until unarchived.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/conversations/{conversation_id}/archive", tag = "conversations", params(("tenant_id" = String, Path, description = "tenant id (UUID)"), ("conversation_id" = String, Path, description = "conversation id (UUID)")), responses((status = 200, description = "The conversation"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404 or 429")))]
pub async fn archive(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    AppPath((_, id)): AppPath<(TenantId, ConversationId)>,
) -> Result<Response, ApiError> {
    set_archived(&state, &ctx, id, true).await
}

/// `DELETE …/conversations/{id}` (its owner, or an admin): the content is shredded (the
/// conversation's key destroyed, so every copy of its titles and messages reads as erased)
/// and the read models drop it; its usage and the log's chain stay.
#[utoipa::path(delete, path = "/v1/tenants/{tenant_id}/conversations/{conversation_id}", tag = "conversations", params(("tenant_id" = String, Path, description = "tenant id (UUID)"), ("conversation_id" = String, Path, description = "conversation id (UUID)")), responses((status = 200, description = "Done: `id` and `position`"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404 or 429")))]
pub async fn delete(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    AppPath((_, id)): AppPath<(TenantId, ConversationId)>,
) -> Result<Response, ApiError> {
    let command = ConversationCommand::Delete(DeleteConversation { conversation_id: id });
    let out = state.commands.conversation(&ctx, id, &command).await?;
    crate::http::settled(&state, &ctx, conversations::NAME, out.position).await?;
    Ok(crate::http::written(StatusCode::OK, Some(id.to_string()), out, json!({})))
}

/// `POST …/conversations/{id}/unarchive`.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/conversations/{conversation_id}/unarchive", tag = "conversations", params(("tenant_id" = String, Path, description = "tenant id (UUID)"), ("conversation_id" = String, Path, description = "conversation id (UUID)")), responses((status = 200, description = "The conversation"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404 or 429")))]
pub async fn unarchive(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    AppPath((_, id)): AppPath<(TenantId, ConversationId)>,
) -> Result<Response, ApiError> {
    set_archived(&state, &ctx, id, false).await
}

#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/conversations", request_body = OpenConversation, tag = "conversations", params(("tenant_id" = String, Path, description = "tenant id (UUID)")), responses((status = 201, description = "Created: `id` and `position`"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
pub async fn open(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    AppJson(body): AppJson<OpenConversation>,
) -> Result<Response, ApiError> {
    let id = ConversationId::new();
    let command = ConversationCommand::Open(OpenCommand {
        conversation_id: id,
        agent_id: body.agent_id,
        user_id: body.user_id,
        title: body.title,
    });
    let out = state.commands.conversation(&ctx, id, &command).await?;
    let location = format!("/v1/tenants/{}/conversations/{id}", ctx.tenant_id);
    let read = || conversations::thread(&ctx, state.projections.db(), id);
    let created = (StatusCode::CREATED, out, location);
    object(&state, &ctx, conversations::NAME, created, id.to_string(), read, json!({})).await
}

#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/conversations/{conversation_id}/messages", request_body = AppendMessage, tag = "conversations", params(("tenant_id" = String, Path, description = "tenant id (UUID)"), ("conversation_id" = String, Path, description = "conversation id (UUID)")), responses((status = 201, description = "Created: `id` and `position`"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
pub async fn append(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    AppPath((_, conversation)): AppPath<(TenantId, ConversationId)>,
    AppJson(body): AppJson<AppendMessage>,
) -> Result<Response, ApiError> {
    let id = MessageId::new();
    let message = AppendMessageCommand {
        conversation_id: conversation,
        message_id: id,
        role: body.role,
        content: body.content,
        model: body.model,
        usage: body
            .usage
            .map(|u| TokenUsage { prompt_tokens: u.prompt_tokens, completion_tokens: u.completion_tokens }),
    };
    let command = ConversationCommand::AppendMessage(message.clone());
    let out = state.commands.conversation(&ctx, conversation, &command).await?;
    // The row is known from the append itself: a message, the hot path, does not wait for
    // the read model to answer as a read of it will.
    let row = conversations::MessageRow::appended(&message, out.stream_version, out.recorded_at);
    let location = format!("/v1/tenants/{}/conversations/{conversation}/messages/{id}", ctx.tenant_id);
    Ok(answer(StatusCode::CREATED, row, out.position, Some(location)))
}
