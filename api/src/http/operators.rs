//! The platform's named operators: `POST/GET /v1/operators`, `GET/DELETE
//! /v1/operators/{id}`, and `DELETE /v1/bootstrap-key` to retire the bootstrap key once an
//! operator exists. super_admin only; an operator's key is answered once.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use tenantry_domain::operator::OperatorCommand;
use tenantry_domain::{OperatorId, Role, TenantId};
use tenantry_projections::models::directory;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::error::ApiError;
use super::extract::{AppJson, AppPath, AppQuery};
use super::queries::PageParams;
use super::{AppState, keys_retired, object, written};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOperator {
    pub name: String,
}

/// The writes: create, remove, retire the bootstrap key.
pub fn commands() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_operator))
        .routes(routes!(remove_operator))
        .routes(routes!(retire_bootstrap_key))
}

/// The reads.
pub fn queries() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_operators)).routes(routes!(get_operator))
}

fn platform_only(caller: &Caller) -> Result<(), ApiError> {
    if caller.role == Role::SuperAdmin {
        Ok(())
    } else {
        Err(ApiError::Forbidden("only the platform's operators manage operators".into()))
    }
}

/// `POST /v1/operators`: a named super_admin key, answered once.
#[utoipa::path(post, path = "/v1/operators", request_body = CreateOperator, tag = "operators", responses((status = 201, description = "The operator, with its key"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 413, 422 or 429")))]
pub async fn create_operator(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(body): AppJson<CreateOperator>,
) -> Result<Response, ApiError> {
    let ctx = caller.acting_on(TenantId::PLATFORM);
    let operator_id = OperatorId::new();
    let (token, secret_hash) = state.keys.operator_secret(operator_id);
    let command = OperatorCommand::Create { operator_id, name: body.name, secret_hash };
    let out = state.commands.operators(&ctx, &command).await?;
    let read = || directory::operator(state.projections.db(), operator_id);
    let created = (StatusCode::CREATED, out, format!("/v1/operators/{operator_id}"));
    object(&state, &ctx, directory::NAME, created, operator_id.to_string(), read, json!({ "key": token }))
        .await
}

/// `GET /v1/operators`: every operator, removed ones included.
#[utoipa::path(get, path = "/v1/operators", tag = "operators", responses((status = 200, description = "OK"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403 or 429")))]
pub async fn list_operators(
    State(state): State<AppState>,
    caller: Caller,
    AppQuery(page): AppQuery<PageParams>,
) -> Result<Json<Value>, ApiError> {
    platform_only(&caller)?;
    let items = directory::operators(state.projections.db(), page.cursor(), page.limit()?).await?;
    Ok(Json(json!(items)))
}

/// `GET /v1/operators/{id}`.
#[utoipa::path(get, path = "/v1/operators/{operator_id}", tag = "operators", params(("operator_id" = String, Path, description = "operator id (UUID)")), responses((status = 200, description = "OK"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404 or 429")))]
pub async fn get_operator(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(operator): AppPath<OperatorId>,
) -> Result<Json<Value>, ApiError> {
    platform_only(&caller)?;
    let row = directory::operator(state.projections.db(), operator).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(json!(row)))
}

/// `DELETE /v1/operators/{id}`: the operator's key stops working before the answer, on
/// every server. The last operator stays while the bootstrap key is retired (409).
#[utoipa::path(delete, path = "/v1/operators/{operator_id}", tag = "operators", params(("operator_id" = String, Path, description = "operator id (UUID)")), responses((status = 200, description = "Done: `id` and `position`"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409 or 429")))]
pub async fn remove_operator(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(operator_id): AppPath<OperatorId>,
) -> Result<Response, ApiError> {
    let ctx = caller.acting_on(TenantId::PLATFORM);
    let out = state.commands.operators(&ctx, &OperatorCommand::Remove { operator_id }).await?;
    // Refused here at once; the other servers are told, and the listing waits (bounded).
    keys_retired(&state, &ctx, out.position).await?;
    Ok(written(StatusCode::OK, Some(operator_id.to_string()), out, json!({})))
}

/// `DELETE /v1/bootstrap-key`: retire the bootstrap key once a named operator exists (409
/// before); from then on only operators act for the platform.
#[utoipa::path(delete, path = "/v1/bootstrap-key", tag = "operators", responses((status = 200, description = "Done: `position`"), (status = "default", description = "Problem (RFC 9457): 401, 403, 409 or 429")))]
pub async fn retire_bootstrap_key(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let ctx = caller.acting_on(TenantId::PLATFORM);
    let out = state.commands.operators(&ctx, &OperatorCommand::RetireBootstrap).await?;
    keys_retired(&state, &ctx, out.position).await?;
    Ok(written(StatusCode::OK, None, out, json!({})))
}
