//! Creating and changing tenants.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{patch, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tenantry_domain::event::{Settings, TenantCreated, TenantUpdated};
use tenantry_domain::tenant::TenantCommand;
use tenantry_domain::{LimitOverrides, PartnerId, Plan, Role, TenantId};
use tenantry_projections::models::directory;

use crate::http::auth::{Caller, Scoped};
use crate::http::error::ApiError;
use crate::http::extract::AppJson;
use crate::http::{AppState, written};

/// Tenant settings as the API spells them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsBody {
    pub agent_name: Option<String>,
    pub system_prompt: Option<String>,
    pub default_model: Option<String>,
    #[serde(default)]
    pub allowed_models: Vec<String>,
    #[serde(default)]
    pub feature_flags: std::collections::BTreeMap<String, bool>,
}

impl From<SettingsBody> for Settings {
    fn from(b: SettingsBody) -> Self {
        Self {
            agent_name: b.agent_name,
            system_prompt: b.system_prompt,
            default_model: b.default_model,
            allowed_models: b.allowed_models,
            feature_flags: b.feature_flags.into_iter().collect(),
        }
    }
}

/// Limits as the API spells them; absent ones keep the plan's value.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsBody {
    pub max_agents: Option<u64>,
    pub max_users: Option<u64>,
    pub max_api_keys: Option<u64>,
    pub api_calls_per_day: Option<u64>,
    pub tokens_per_month: Option<u64>,
    pub storage_bytes: Option<u64>,
    pub requests_per_minute: Option<u64>,
    pub max_concurrent_requests: Option<u64>,
}

impl From<LimitsBody> for LimitOverrides {
    fn from(b: LimitsBody) -> Self {
        Self {
            max_agents: b.max_agents,
            max_users: b.max_users,
            max_api_keys: b.max_api_keys,
            api_calls_per_day: b.api_calls_per_day,
            tokens_per_month: b.tokens_per_month,
            storage_bytes: b.storage_bytes,
            requests_per_minute: b.requests_per_minute,
            max_concurrent_requests: b.max_concurrent_requests,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    pub slug: String,
    pub name: String,
    pub plan: Option<Plan>,
    pub partner_id: Option<PartnerId>,
    pub settings: Option<SettingsBody>,
    pub limits: Option<LimitsBody>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchTenant {
    pub name: Option<String>,
    pub plan: Option<Plan>,
    pub settings: Option<SettingsBody>,
    pub limits: Option<LimitsBody>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suspend {
    #[serde(default)]
    pub reason: String,
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants", post(create))
        .route("/v1/tenants/{tenant_id}", patch(update).delete(purge))
        .route("/v1/tenants/{tenant_id}/suspend", post(suspend))
        .route("/v1/tenants/{tenant_id}/resume", post(resume))
        .route("/v1/tenants/{tenant_id}/settings", patch(update_settings))
        .route("/v1/partners", post(partners).get(partners))
        .route("/v1/tenants/{tenant_id}/users/{user_id}/erase", post(purge))
}

/// `POST /v1/tenants` (super_admin).
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(body): AppJson<CreateTenant>,
) -> Result<Response, ApiError> {
    if caller.role != Role::SuperAdmin {
        return Err(ApiError::Forbidden("only the platform operator creates tenants".into()));
    }
    // A slug names one tenant. Checked on the read model: two creates of the same slug in
    // the same instant can both pass (a platform slug stream would close that gap).
    if directory::tenant_by_slug(state.projections.db(), &body.slug).await?.is_some() {
        return Err(ApiError::Conflict(format!("slug `{}` is taken", body.slug)));
    }
    let tenant = TenantId::new();
    let ctx = caller.context(tenant)?;
    let command = TenantCommand::CreateTenant(TenantCreated {
        slug: body.slug,
        name: body.name,
        plan: body.plan.unwrap_or(Plan::Starter),
        partner_id: body.partner_id,
        settings: body.settings.map(Into::into).unwrap_or_default(),
        limits: body.limits.map(Into::into).unwrap_or_default(),
    });
    let out = state.commands.tenant(&ctx, &command).await?;
    Ok(written(StatusCode::CREATED, Some(tenant.to_string()), out, json!({})))
}

/// `PATCH /v1/tenants/{id}`: name and settings by its admin; plan and limits by the platform.
pub async fn update(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    AppJson(body): AppJson<PatchTenant>,
) -> Result<Response, ApiError> {
    let command = TenantCommand::UpdateTenant(TenantUpdated {
        name: body.name,
        plan: body.plan,
        settings: body.settings.map(Into::into),
        limits: body.limits.map(Into::into),
    });
    let out = state.commands.tenant(&ctx, &command).await?;
    Ok(written(StatusCode::OK, Some(ctx.tenant_id.to_string()), out, json!({})))
}

/// `PATCH /v1/tenants/{id}/settings`: replace the tenant's settings.
pub async fn update_settings(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    AppJson(body): AppJson<SettingsBody>,
) -> Result<Response, ApiError> {
    let command = TenantCommand::UpdateTenant(TenantUpdated {
        name: None,
        plan: None,
        settings: Some(body.into()),
        limits: None,
    });
    let out = state.commands.tenant(&ctx, &command).await?;
    Ok(written(StatusCode::OK, Some(ctx.tenant_id.to_string()), out, json!({})))
}

pub async fn suspend(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    // The body is optional: `{"reason": …}` or nothing.
    let reason = if body.iter().all(u8::is_ascii_whitespace) {
        String::new()
    } else {
        serde_json::from_slice::<Suspend>(&body).map_err(|e| ApiError::BadRequest(e.to_string()))?.reason
    };
    let out = state.commands.tenant(&ctx, &TenantCommand::SuspendTenant { reason }).await?;
    Ok(written(StatusCode::OK, Some(ctx.tenant_id.to_string()), out, json!({})))
}

pub async fn resume(State(state): State<AppState>, Scoped(ctx): Scoped) -> Result<Response, ApiError> {
    let out = state.commands.tenant(&ctx, &TenantCommand::ResumeTenant).await?;
    Ok(written(StatusCode::OK, Some(ctx.tenant_id.to_string()), out, json!({})))
}

/// Erasure (a tenant's GDPR purge, one person's erasure) and partners come with the
/// compliance and partner work; until then these answer 501 with a problem body.
pub async fn purge(caller: Caller) -> Result<Json<()>, ApiError> {
    let _ = caller;
    Err(ApiError::NotImplemented("erasure is not available in this build yet".into()))
}

pub async fn partners(caller: Caller) -> Result<Json<()>, ApiError> {
    let _ = caller;
    Err(ApiError::NotImplemented("partners are not available in this build yet".into()))
}
