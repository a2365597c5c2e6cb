//! Creating and changing tenants.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use tenantry_app::tenants;
use tenantry_domain::command::{self, Patch, SettingsPatch};
use tenantry_domain::event::Settings;
use tenantry_domain::tenant::TenantCommand;
use tenantry_domain::{LimitOverrides, PartnerId, Plan, Rejection, Role, TenantId, UserId};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::compliance::{PurgeError, PurgeStep};
use crate::http::auth::{Caller, Scoped};
use crate::http::error::ApiError;
use crate::http::extract::{AppJson, AppPath, AppQuery};
use crate::http::{AppState, keys_retired, object, written};
use tenantry_app::Written;
use tenantry_domain::TenantContext;
use tenantry_projections::models::directory;

/// Tenant settings as the API spells them.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsBody {
    pub agent_name: Option<String>,
    pub system_prompt: Option<String>,
    pub default_model: Option<String>,
    #[serde(default)]
    pub allowed_models: Vec<String>,
    #[serde(default)]
    pub feature_flags: std::collections::BTreeMap<String, bool>,
    /// The platform's own settings: any JSON object up to 16 KiB; its members may be used in
    /// system prompts as `{{settings.custom.KEY}}`.
    #[schema(value_type = Option<Object>)]
    pub custom: Option<serde_json::Map<String, serde_json::Value>>,
}

impl From<SettingsBody> for Settings {
    fn from(b: SettingsBody) -> Self {
        Self {
            agent_name: b.agent_name,
            system_prompt: b.system_prompt,
            default_model: b.default_model,
            allowed_models: b.allowed_models,
            feature_flags: b.feature_flags.into_iter().collect(),
            custom: b.custom.as_ref().and_then(command::custom_text),
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    pub slug: String,
    pub name: String,
    /// `starter`, `professional` or `enterprise`.
    #[schema(value_type = Option<String>)]
    pub plan: Option<Plan>,
    #[schema(value_type = Option<String>)]
    pub partner_id: Option<PartnerId>,
    /// The tenant to create it under (at most 4 levels deep); it then has its parent's partner.
    #[schema(value_type = Option<String>)]
    pub parent_id: Option<TenantId>,
    pub settings: Option<SettingsBody>,
    /// Absent limits keep the plan's value.
    /// Overrides by name: `max_agents`, `max_users`, `max_api_keys`, `api_calls_per_day`,
    /// `tokens_per_month`, `storage_bytes`, `requests_per_minute`, `max_concurrent_requests`.
    #[schema(value_type = Option<HashMap<String, u64>>)]
    pub limits: Option<LimitOverrides>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchTenant {
    pub name: Option<String>,
    /// `starter`, `professional` or `enterprise`.
    #[schema(value_type = Option<String>)]
    pub plan: Option<Plan>,
    /// A merge patch of the settings, as `PATCH …/settings` takes it.
    pub settings: Option<SettingsPatchBody>,
    /// Absent limits keep the plan's value.
    /// Overrides by name: `max_agents`, `max_users`, `max_api_keys`, `api_calls_per_day`,
    /// `tokens_per_month`, `storage_bytes`, `requests_per_minute`, `max_concurrent_requests`.
    #[schema(value_type = Option<HashMap<String, u64>>)]
    pub limits: Option<LimitOverrides>,
}

/// A JSON Merge Patch (RFC 7396) of the settings: an absent field stays, `null` clears it;
/// `feature_flags` merges by name, a flag set to `null` is removed.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatchBody {
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub agent_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub system_prompt: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub default_model: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Vec<String>>)]
    pub allowed_models: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<HashMap<String, bool>>)]
    pub feature_flags: Option<Option<std::collections::BTreeMap<String, Option<bool>>>>,
    /// A JSON Merge Patch of the `custom` object: members merge, `null` removes one;
    /// `"custom": null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Object>)]
    pub custom: Option<Option<serde_json::Map<String, serde_json::Value>>>,
}

/// A field that may be absent (`None`), `null` (`Some(None)`) or a value.
pub(crate) fn nullable<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

impl From<SettingsPatchBody> for SettingsPatch {
    fn from(b: SettingsPatchBody) -> Self {
        Self {
            agent_name: Patch::from_nullable(b.agent_name),
            system_prompt: Patch::from_nullable(b.system_prompt),
            default_model: Patch::from_nullable(b.default_model),
            allowed_models: Patch::from_nullable(b.allowed_models),
            feature_flags: Patch::from_nullable(b.feature_flags),
            custom: Patch::from_nullable(b.custom),
        }
    }
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Suspend {
    #[serde(default)]
    pub reason: String,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(update, purge_tenant))
        .routes(routes!(suspend))
        .routes(routes!(resume))
        .routes(routes!(update_settings))
        .routes(routes!(create_partner))
        .routes(routes!(erase_user))
        .routes(routes!(place_legal_hold, release_legal_hold))
        .routes(routes!(get_retention, set_retention))
}

/// `POST /v1/tenants` (super_admin).
#[utoipa::path(post, path = "/v1/tenants", request_body = CreateTenant, tag = "tenants", responses((status = 201, description = "Created: `id` and `position`"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(body): AppJson<CreateTenant>,
) -> Result<Response, ApiError> {
    // A partner admin's tenants are its partner's; `decide` refuses any other partner.
    let partner_id = match caller.role {
        Role::PartnerAdmin => body.partner_id.or(caller.partner),
        _ => body.partner_id,
    };
    let tenant = TenantId::new();
    let ctx = caller.acting_on(tenant);
    let command = command::CreateTenant {
        slug: body.slug,
        name: body.name,
        plan: body.plan.unwrap_or(Plan::Starter),
        partner_id,
        settings: body.settings.map(Into::into).unwrap_or_default(),
        limits: body.limits.unwrap_or_default(),
        parent: None,
    };
    let out = tenants::create_tenant(&state.commands, state.plans, &ctx, command, body.parent_id).await?;
    tenant_object(&state, &ctx, StatusCode::CREATED, out).await
}

/// `PATCH /v1/tenants/{id}`: name and settings by its admin; plan and limits by the platform.
#[utoipa::path(patch, path = "/v1/tenants/{tenant_id}", request_body = PatchTenant, tag = "tenants", params(("tenant_id" = String, Path, description = "tenant id (UUID)")), responses((status = 200, description = "Changed: `position`"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
pub async fn update(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    AppJson(body): AppJson<PatchTenant>,
) -> Result<Response, ApiError> {
    let command = TenantCommand::UpdateTenant(command::UpdateTenant {
        name: body.name,
        plan: body.plan,
        settings: body.settings.map(Into::into),
        limits: body.limits,
    });
    let out = state.commands.tenant(&ctx, &command).await?;
    state.gates.forget_tenant(ctx.tenant_id);
    tenant_object(&state, &ctx, StatusCode::OK, out).await
}

/// `PATCH /v1/tenants/{id}/settings`: a JSON Merge Patch of the tenant's settings.
#[utoipa::path(patch, path = "/v1/tenants/{tenant_id}/settings", request_body = SettingsPatchBody, tag = "tenants", params(("tenant_id" = String, Path, description = "tenant id (UUID)")), responses((status = 200, description = "Changed: `position`"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
pub async fn update_settings(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    AppJson(body): AppJson<SettingsPatchBody>,
) -> Result<Response, ApiError> {
    let command = TenantCommand::UpdateTenant(command::UpdateTenant {
        settings: Some(body.into()),
        ..Default::default()
    });
    let out = state.commands.tenant(&ctx, &command).await?;
    let location = format!("/v1/tenants/{}/settings", ctx.tenant_id);
    let read = || async {
        let row = directory::tenant(&ctx, state.projections.db()).await?;
        Ok(row.map(|t| json!(directory::SettingsView::from(&t.settings))))
    };
    let changed = (StatusCode::OK, out, location);
    object(&state, &ctx, directory::NAME, changed, ctx.tenant_id.to_string(), read, json!({})).await
}

/// The tenant as `GET /v1/tenants/{id}` shows it, after a write.
async fn tenant_object(
    state: &AppState,
    ctx: &TenantContext,
    status: StatusCode,
    out: Written,
) -> Result<Response, ApiError> {
    let location = format!("/v1/tenants/{}", ctx.tenant_id);
    let read = || directory::tenant(ctx, state.projections.db());
    object(state, ctx, directory::NAME, (status, out, location), ctx.tenant_id.to_string(), read, json!({}))
        .await
}

#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/suspend", request_body(content = Suspend, description = "optional: `{\"reason\": …}` or no body"), tag = "tenants", params(("tenant_id" = String, Path, description = "tenant id (UUID)")), responses((status = 201, description = "Created: `id` and `position`"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
pub async fn suspend(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    // The body is optional: `{"reason": …}` or nothing.
    let reason = if body.iter().all(u8::is_ascii_whitespace) {
        String::new()
    } else {
        serde_json::from_slice::<Suspend>(&body).map_err(|e| ApiError::bad_request(e.to_string()))?.reason
    };
    let out =
        state.commands.tenant(&ctx, &TenantCommand::SuspendTenant(command::SuspendTenant { reason })).await?;
    // Its keys are refused here from the next request on.
    keys_retired(&state, &ctx, out.position).await?;
    state.gates.forget_tenant(ctx.tenant_id);
    tenant_object(&state, &ctx, StatusCode::OK, out).await
}

#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/resume", tag = "tenants", params(("tenant_id" = String, Path, description = "tenant id (UUID)")), responses((status = 201, description = "Created: `id` and `position`"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
pub async fn resume(State(state): State<AppState>, Scoped(ctx): Scoped) -> Result<Response, ApiError> {
    let out = state.commands.tenant(&ctx, &TenantCommand::ResumeTenant(command::ResumeTenant)).await?;
    keys_retired(&state, &ctx, out.position).await?;
    state.gates.forget_tenant(ctx.tenant_id);
    tenant_object(&state, &ctx, StatusCode::OK, out).await
}

/// `DELETE /v1/tenants/{id}` (super_admin): the GDPR purge of the whole tenant. Answers 202
/// while it runs (in the background, resumed on restart if the process dies) and 200 with
/// the counts once done; asking again is how to follow it.
#[utoipa::path(delete, path = "/v1/tenants/{tenant_id}", tag = "tenants", params(("tenant_id" = String, Path, description = "tenant id (UUID)")), responses((status = 202, description = "Purge under way: `step`"), (status = 200, description = "Purged: `step` is `done`, with counts"), (status = "default", description = "Problem (RFC 9457): 401, 403, 404 or 429")))]
pub async fn purge_tenant(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    AppQuery(p): AppQuery<PurgeParams>,
) -> Result<Response, ApiError> {
    if ctx.role != Role::SuperAdmin {
        return Err(ApiError::Forbidden("only the platform operator may purge a tenant".into()));
    }
    let cascade = p.cascade.unwrap_or(false);
    let started = state.purger.start_tree(&ctx, ctx.tenant_id, cascade).await;
    if let Err(PurgeError::LegalHold) = started {
        return Err(held(&state, &ctx, "purge the tenant".into()).await);
    }
    let (report, below) = started.map_err(|e| match e {
        PurgeError::UnknownTenant(_) | PurgeError::Platform => ApiError::NotFound,
        PurgeError::HasChildren(n) => ApiError::Conflict {
            detail: format!(
                "the tenant has {n} tenants below it: purge them first, or ask with ?cascade=true"
            ),
            field: Some("cascade".into()),
        },
        other => ApiError::internal(other),
    })?;
    let status = if report.step == PurgeStep::Done { StatusCode::OK } else { StatusCode::ACCEPTED };
    let mut body = json!(report);
    body["descendants"] = json!(below);
    Ok((status, Json(body)).into_response())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchRetention {
    /// Days a conversation without activity is kept, 1 to 3650; `null`: for ever.
    pub conversations_days: Option<u32>,
}

/// `PATCH …/retention` (the tenant's admins): conversations with no activity for longer are
/// deleted (shredded) by the hourly retention sweep, unless the tenant is under a legal hold.
#[utoipa::path(patch, path = "/v1/tenants/{tenant_id}/retention", request_body = PatchRetention, tag = "tenants", params(("tenant_id" = String, Path, description = "tenant id (UUID)")), responses((status = 200, description = "The retention in force"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 413, 422 or 429")))]
pub async fn set_retention(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    AppJson(body): AppJson<PatchRetention>,
) -> Result<Response, ApiError> {
    let command = command::SetRetention { conversations_days: body.conversations_days };
    let out = state.commands.tenant(&ctx, &TenantCommand::SetRetention(command)).await?;
    let now = state.commands.tenant_now(&ctx).await?;
    Ok(written(
        StatusCode::OK,
        None,
        out,
        json!({ "conversations_days": now.retention_days, "legal_hold": now.legal_hold }),
    ))
}

/// `GET …/retention`: the retention in force, and whether a legal hold suspends it.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/retention", tag = "tenants", params(("tenant_id" = String, Path, description = "tenant id (UUID)")), responses((status = 200, description = "The retention in force"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404 or 429")))]
pub async fn get_retention(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
) -> Result<Json<serde_json::Value>, ApiError> {
    let now = state.commands.tenant_now(&ctx).await?;
    if !now.exists {
        return Err(ApiError::NotFound);
    }
    Ok(Json(json!({ "conversations_days": now.retention_days, "legal_hold": now.legal_hold })))
}

/// A deletion refused for a legal hold: recorded in the tenant's audit trail, answered 409.
async fn held(state: &AppState, ctx: &TenantContext, action: String) -> ApiError {
    if let Err(e) = state.commands.record_refusal(ctx, &action, "legal hold".into()).await {
        tracing::warn!(error = %e, tenant = %ctx.tenant_id, "could not record a refusal for a legal hold");
    }
    Rejection::LegalHold.into()
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceLegalHold {
    /// Why (a case, a request): kept in the log.
    pub reason: String,
}

/// `POST …/legal-hold` (the platform's operators): from now on no purge, erasure or retention
/// deletes anything of the tenant; each attempt is refused (409) and audited.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/legal-hold", request_body = PlaceLegalHold, tag = "tenants", params(("tenant_id" = String, Path, description = "tenant id (UUID)")), responses((status = 200, description = "`held` and `position`"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 413, 422 or 429")))]
pub async fn place_legal_hold(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    AppJson(body): AppJson<PlaceLegalHold>,
) -> Result<Response, ApiError> {
    let command = TenantCommand::SetLegalHold(command::SetLegalHold { held: true, reason: body.reason });
    let out = state.commands.tenant(&ctx, &command).await?;
    Ok(written(StatusCode::OK, None, out, json!({ "held": true })))
}

/// `DELETE …/legal-hold` (the platform's operators): the hold is released.
#[utoipa::path(delete, path = "/v1/tenants/{tenant_id}/legal-hold", tag = "tenants", params(("tenant_id" = String, Path, description = "tenant id (UUID)")), responses((status = 200, description = "`held` and `position`"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404 or 429")))]
pub async fn release_legal_hold(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
) -> Result<Response, ApiError> {
    let command = TenantCommand::SetLegalHold(command::SetLegalHold { held: false, reason: String::new() });
    let out = state.commands.tenant(&ctx, &command).await?;
    Ok(written(StatusCode::OK, None, out, json!({ "held": false })))
}

/// `DELETE /v1/tenants/{id}`: whether the tenants below it go too.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PurgeParams {
    /// `true`: purge every tenant below this one as well (each resumably, on its own).
    /// Without it, a tenant with tenants below it is 409.
    pub cascade: Option<bool>,
}

/// `POST /v1/tenants/{id}/users/{user_id}/erase` (admin): erase one person. Their data key
/// is destroyed first, so their email, conversation titles and what they wrote read as
/// `[erased]` in every copy of the log from then on; then `user.erased` removes the user and
/// scrubs the read models. The rest of the tenant, its usage and its hash chain stay intact.
/// Repeating it is harmless.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/users/{user_id}/erase", tag = "directory", params(("tenant_id" = String, Path, description = "tenant id (UUID)"), ("user_id" = String, Path, description = "user id (UUID)")), responses((status = 200, description = "Erased: `id` and `position`"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404 or 429")))]
pub async fn erase_user(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    AppPath((_, user_id)): AppPath<(TenantId, UserId)>,
) -> Result<Response, ApiError> {
    let out = match tenants::erase_user(&state.commands, &state.store, &ctx, user_id).await {
        Err(tenantry_app::AppError::Rejected(Rejection::LegalHold)) => {
            return Err(held(&state, &ctx, format!("erase user {user_id}")).await);
        }
        other => other?,
    };
    keys_retired(&state, &ctx, out.position).await?;
    Ok(written(StatusCode::OK, Some(user_id.to_string()), out, json!({})))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePartner {
    pub name: String,
}

/// `POST /v1/partners` (super_admin): a partner (reseller), written to the platform's log,
/// with a partner_admin key answered once: it creates and manages that partner's tenants.
#[utoipa::path(post, path = "/v1/partners", request_body = CreatePartner, tag = "tenants", responses((status = 201, description = "Created: `id`, `position` and the partner_admin `key`"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 413, 422 or 429")))]
pub async fn create_partner(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(body): AppJson<CreatePartner>,
) -> Result<Response, ApiError> {
    let ctx = caller.acting_on(TenantId::PLATFORM);
    let partner =
        tenantry_app::partners::create_partner(&state.commands, &state.keys, &ctx, &body.name).await?;
    let (id, location) = (partner.partner_id.to_string(), format!("/v1/partners/{}", partner.partner_id));
    let read = || directory::partner(state.projections.db(), partner.partner_id);
    let created = (StatusCode::CREATED, partner.written, location);
    object(&state, &ctx, directory::NAME, created, id.clone(), read, json!({ "key": partner.key })).await
}
