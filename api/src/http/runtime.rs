//! `GET …/agents/{id}/runtime`: what a process that runs the agent needs, in one read: the
//! agent, the model to call, the system prompt with its variables filled in, the enabled
//! tools with their parameter schemas, the feature flags, the credential of the model's
//! provider, and what is left of the month's tokens and the day's calls.
//!
//! The credential's secret is answered only to a key that holds the `runtime:read` scope (or
//! to the platform's operator), read from the tenant's log, and each such answer is recorded
//! in the tenant's audit trail.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
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

/// How long a runtime configuration built from the read models is answered again without
/// reading them. A change made through this process shows at once (it moves the tenant's
/// stream), a request with `Tenantry-Min-Position` is answered from read models at or past
/// that position, and anything else (a change made through another process, the remaining
/// tokens and calls) shows within this time.
pub const FRESH_FOR: Duration = Duration::from_secs(1);

/// Entries kept before the cache starts afresh (a bound on memory).
const CACHED: usize = 100_000;

/// Agents' runtime configurations as last built, by tenant and agent.
#[derive(Debug, Default)]
pub struct RuntimeCache {
    // Guards only the map; never held across an await.
    map: std::sync::Mutex<HashMap<(TenantId, AgentId), Arc<Built>>>,
}

#[derive(Debug)]
struct Built {
    at: Instant,
    /// This process's version of the tenant's stream when it was built.
    seen: Option<u64>,
    /// The directory's checkpoint for the tenant, read before the rows.
    position: u64,
    /// The answer without a secret, and its JSON.
    answer: Value,
    json: Bytes,
    credential_id: Option<String>,
}

impl RuntimeCache {
    fn get(&self, key: (TenantId, AgentId)) -> Option<Arc<Built>> {
        self.map.lock().ok()?.get(&key).cloned()
    }

    fn put(&self, key: (TenantId, AgentId), built: Arc<Built>) {
        if let Ok(mut map) = self.map.lock() {
            if map.len() >= CACHED {
                map.clear();
            }
            map.insert(key, built);
        }
    }
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/agents/{agent_id}/runtime", tag = "runtime", params(("tenant_id" = String, Path, description = "tenant id (UUID)"), ("agent_id" = String, Path, description = "agent id (UUID)")), responses((status = 200, description = "OK"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 429 or 503")))]
pub async fn agent_runtime(
    State(state): State<AppState>,
    caller: Caller,
    Administering(ctx): Administering,
    min: MinPosition,
    AppPath((_, agent_id)): AppPath<(TenantId, AgentId)>,
) -> Result<Response, ApiError> {
    let key = (ctx.tenant_id, agent_id);
    let seen = state.commands.tenant_version_seen(ctx.tenant_id);
    let fresh = |b: &Arc<Built>| {
        b.at.elapsed() < FRESH_FOR && b.seen == seen && min.0.is_none_or(|p| b.position >= p)
    };
    let built = match state.runtime.get(key).filter(fresh) {
        Some(built) => built,
        None => {
            caught_up(&state, directory::NAME, &ctx, min).await?;
            let built = Arc::new(build(&state, &ctx, agent_id, seen).await?);
            state.runtime.put(key, built.clone());
            built
        }
    };
    let entitled = caller.role == Role::SuperAdmin || caller.scopes.contains(&Scope::RuntimeRead);
    match &built.credential_id {
        Some(id) if entitled => {
            let mut answer = built.answer.clone();
            answer["credential"]["secret"] = secret(&state, &ctx, id).await?;
            Ok(Json(answer).into_response())
        }
        _ => Ok(([(header::CONTENT_TYPE, "application/json")], built.json.clone()).into_response()),
    }
}

/// The runtime configuration of an agent as the read models show it, without a secret.
async fn build(
    state: &AppState,
    ctx: &TenantContext,
    agent_id: AgentId,
    seen: Option<u64>,
) -> Result<Built, ApiError> {
    let at = Instant::now();
    let db = state.projections.db();
    let position = state.projections.checkpoint(directory::NAME, ctx.tenant_id).await?;
    let agent =
        directory::agent(ctx, db, agent_id).await?.filter(|a| !a.archived).ok_or(ApiError::NotFound)?;
    let tenant = directory::tenant(ctx, db).await?.ok_or(ApiError::NotFound)?;
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
        if let Some(tool) = directory::tool(ctx, db, id).await?.filter(|t| t.enabled) {
            tools.push(json!({
                "id": tool.tool_id,
                "name": tool.name,
                "description": tool.description,
                "endpoint": tool.endpoint,
                "parameters": tool.parameters,
            }));
        }
    }
    let credential = directory::credential_for(ctx, db, provider_of(&agent.model)).await?;
    let credential_id = credential.as_ref().map(|c| c.credential_id.clone());
    let credential = credential.map(|row| {
        let mut shown = json!(row);
        shown["secret"] = Value::Null;
        shown
    });
    let used = quotas::period_usage(db, ctx.tenant_id, chrono::Utc::now()).await?;
    let left = |max: u64, used: i64| max.saturating_sub(used.max(0).unsigned_abs());
    let answer = json!({
        "agent": agent,
        "model": agent.model,
        "system_prompt": render_prompt(&template, values),
        "tools": tools,
        "feature_flags": directory::SettingsView::from(&effective.settings).feature_flags,
        "custom": tenantry_domain::command::custom_object(effective.settings.custom.as_deref()),
        "credential": credential,
        "remaining": {
            "tokens_per_month": left(effective.limits.tokens_per_month, used.tokens),
            "api_calls_per_day": left(effective.limits.api_calls_per_day, used.api_calls),
        },
    });
    let json = Bytes::from(serde_json::to_vec(&answer).map_err(ApiError::internal)?);
    Ok(Built { at, seen, position, answer, json, credential_id })
}

/// The secret of credential `id`, for a caller that holds `runtime:read` or is the platform's
/// operator: read from the log as it stands now (never from a read model or a cache), and
/// audited.
async fn secret(state: &AppState, ctx: &TenantContext, id: &str) -> Result<Value, ApiError> {
    let id: tenantry_domain::CredentialId =
        id.parse().map_err(|_| ApiError::internal(super::error::Bug("credential id in the directory")))?;
    let now = state.commands.tenant_now(&TenantContext::system(ctx.tenant_id)).await?;
    let Some(entry) = now.credentials.get(&id).filter(|c| !c.removed) else { return Ok(Value::Null) };
    super::auth::audit_read(state, ctx, format!("runtime read the secret of credential {id}")).await;
    Ok(json!(entry.secret))
}
