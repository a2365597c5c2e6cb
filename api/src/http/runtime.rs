//! `GET …/agents/{id}/runtime`: what a process that runs the agent needs, in one read: the
//! agent, the model to call, the system prompt with its variables filled in, the enabled
//! tools with their parameter schemas, the feature flags, the credential of the model's
//! provider, and what is left of the month's tokens and the day's calls.
//!
//! The credential's secret is answered only to a key that holds the `runtime:read` scope (or
//! to the platform's operator), read from the tenant's log, and each such answer is recorded
//! in the tenant's audit trail.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use tenantry_domain::runtime::{PromptValues, provider_of, render_prompt};
use tenantry_domain::{AgentId, Role, Scope, TenantContext, TenantId, ToolId};
use tenantry_projections::models::{directory, quotas};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Administering, Caller};
use super::error::ApiError;
use super::extract::{AppPath, MinPosition};
use super::{AppState, caught_up};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(agent_runtime))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/agents/{agent_id}/runtime", tag = "runtime", params(("tenant_id" = String, Path, description = "tenant id (UUID)"), ("agent_id" = String, Path, description = "agent id (UUID)")), responses((status = 200, description = "OK"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 429 or 503")))]
pub async fn agent_runtime(
    State(state): State<AppState>,
    caller: Caller,
    Administering(ctx): Administering,
    min: MinPosition,
    AppPath((_, agent_id)): AppPath<(TenantId, AgentId)>,
) -> Result<Json<Value>, ApiError> {
    caught_up(&state, directory::NAME, &ctx, min).await?;
    let db = state.projections.db();
    let agent =
        directory::agent(&ctx, db, agent_id).await?.filter(|a| !a.archived).ok_or(ApiError::NotFound)?;
    let tenant = directory::tenant(&ctx, db).await?.ok_or(ApiError::NotFound)?;
    let effective = directory::effective_of(db, &tenant, &state.plans).await?;
    let template = match agent.system_prompt.is_empty() {
        true => effective.settings.system_prompt.clone().unwrap_or_default(),
        false => agent.system_prompt.clone(),
    };
    let values = PromptValues {
        tenant_name: &tenant.name,
        tenant_slug: &tenant.slug,
        agent_name: &agent.name,
        custom: effective.settings.custom.as_deref(),
    };
    let mut tools = Vec::new();
    for id in &agent.tool_ids {
        let Ok(id) = id.parse::<ToolId>() else { continue };
        // Disabled and removed tools are left out.
        if let Some(tool) = directory::tool(&ctx, db, id).await?.filter(|t| t.enabled) {
            tools.push(json!({
                "id": tool.tool_id,
                "name": tool.name,
                "description": tool.description,
                "endpoint": tool.endpoint,
                "parameters": tool.parameters,
            }));
        }
    }
    let used = quotas::period_usage(db, ctx.tenant_id, chrono::Utc::now()).await?;
    let left = |max: u64, used: i64| max.saturating_sub(used.max(0).unsigned_abs());
    Ok(Json(json!({
        "agent": agent,
        "model": agent.model,
        "system_prompt": render_prompt(&template, values),
        "tools": tools,
        "feature_flags": directory::SettingsView::from(&effective.settings).feature_flags,
        "custom": tenantry_domain::command::custom_object(effective.settings.custom.as_deref()),
        "credential": credential(&state, &caller, &ctx, provider_of(&agent.model)).await?,
        "remaining": {
            "tokens_per_month": left(effective.limits.tokens_per_month, used.tokens),
            "api_calls_per_day": left(effective.limits.api_calls_per_day, used.api_calls),
        },
    })))
}

/// The tenant's credential for `provider` (the first by name), with its secret for a caller
/// that holds `runtime:read` or is the platform's operator: that answer is audited.
async fn credential(
    state: &AppState,
    caller: &Caller,
    ctx: &TenantContext,
    provider: &str,
) -> Result<Value, ApiError> {
    let Some(row) = directory::credential_for(ctx, state.projections.db(), provider).await? else {
        return Ok(Value::Null);
    };
    let entitled = caller.role == Role::SuperAdmin || caller.scopes.contains(&Scope::RuntimeRead);
    let mut shown = json!(row);
    shown["secret"] = Value::Null;
    if entitled {
        // From the log, as it stands now: never from a read model.
        let now = state.commands.tenant_now(&TenantContext::system(ctx.tenant_id)).await?;
        let id: tenantry_domain::CredentialId = row
            .credential_id
            .parse()
            .map_err(|_| ApiError::internal(super::error::Bug("credential id in the directory")))?;
        if let Some(entry) = now.credentials.get(&id).filter(|c| !c.removed) {
            shown["secret"] = json!(entry.secret);
            super::auth::audit_read(state, ctx, format!("runtime read the secret of credential {id}")).await;
        }
    }
    Ok(shown)
}
