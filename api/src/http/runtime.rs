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
use tenantry_domain::{AgentId, LimitName, Role, Scope, TenantContext, TenantId, ToolId};
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
    let effective = directory::effective(db, ctx.tenant_id, &state.plans).await?.ok_or(ApiError::NotFound)?;
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
    let remaining = quotas::quotas(&ctx, db, &state.plans, chrono::Utc::now()).await?.unwrap_or_default();
    let left = |name: LimitName| remaining.iter().find(|q| q.limit == name).map(|q| q.remaining);
    Ok(Json(json!({
        "agent": agent,
        "model": agent.model,
        "system_prompt": render_prompt(&template, values),
        "tools": tools,
        "feature_flags": directory::SettingsView::from(&effective.settings).feature_flags,
        "custom": tenantry_domain::command::custom_object(effective.settings.custom.as_deref()),
        "credential": credential(&state, &caller, &ctx, provider_of(&agent.model)).await?,
        "remaining": {
            "tokens_per_month": left(LimitName::TokensPerMonth),
            "api_calls_per_day": left(LimitName::ApiCallsPerDay),
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
    let db = state.projections.db();
    let mut found = None;
    let mut after = None;
    loop {
        let page = directory::credentials(ctx, db, after.as_deref(), 200).await?;
        for c in page.items.into_iter().filter(|c| c.provider == provider) {
            if found.as_ref().is_none_or(|f: &directory::CredentialRow| c.name < f.name) {
                found = Some(c);
            }
        }
        match page.next_cursor {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let Some(row) = found else { return Ok(Value::Null) };
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
            let action = format!("runtime read the secret of credential {id}");
            let at = std::time::Instant::now();
            if let Some(folded) = state.reads.admit(ctx.tenant_id, &ctx.actor.to_string(), &action, at)
                && let Err(e) = state.commands.record_read(ctx, &action, folded + 1).await
            {
                tracing::warn!(error = %e, tenant = %ctx.tenant_id, "could not record a read of a credential's secret");
            }
        }
    }
    Ok(shown)
}
