//! Creating and changing tenants.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use tenantry_domain::event::{Settings, TenantCreated, TenantUpdated};
use tenantry_domain::tenant::TenantCommand;
use tenantry_domain::{LimitOverrides, PartnerId, Plan, Role, TenantId, UserId};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::compliance::{PurgeError, PurgeStep};
use crate::http::auth::{Caller, Scoped};
use crate::http::error::ApiError;
use crate::http::extract::{AppJson, AppPath};
use crate::http::{AppState, keys_retired, written};

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
    pub settings: Option<SettingsBody>,
    /// Absent limits keep the plan's value.
    /// Overrides by name: `max_agents`, `max_users`, `max_api_keys`, `api_calls_per_day`,
    /// `tokens_per_month`, `storage_bytes`, `requests_per_minute`, `max_concurrent_requests`.
    #[schema(value_type = Option<HashMap<String, u64>>)]
    pub limits: Option<LimitOverrides>,
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
}

/// `POST /v1/tenants` (super_admin).
#[utoipa::path(post, path = "/v1/tenants", request_body = CreateTenant, tag = "tenants", responses((status = 201, description = "Created: `id` and `position`"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(body): AppJson<CreateTenant>,
) -> Result<Response, ApiError> {
    // The platform operator creates any tenant; a partner admin, tenants of its partner.
    let partner_id = match (caller.role, caller.partner) {
        (Role::SuperAdmin, _) => body.partner_id,
        (Role::PartnerAdmin, Some(own)) if body.partner_id.is_none_or(|p| p == own) => Some(own),
        _ => {
            return Err(ApiError::Forbidden(
                "only the platform operator or a partner admin creates tenants".into(),
            ));
        }
    };
    let tenant = TenantId::new();
    let ctx = caller.acting_on(tenant);
    let command = TenantCommand::CreateTenant(TenantCreated {
        slug: body.slug,
        name: body.name,
        plan: body.plan.unwrap_or(Plan::Starter),
        partner_id,
        settings: body.settings.map(Into::into).unwrap_or_default(),
        limits: body.limits.unwrap_or_default(),
    });
    // A slug names one tenant: claimed on the platform's log before the tenant is created,
    // so of two racing creates one gets 409. Checked for form first, so a bad slug claims
    // nothing.
    let TenantCommand::CreateTenant(created) = &command else { unreachable!("built above") };
    tenantry_domain::tenant::decide(&ctx, &tenantry_domain::tenant::TenantState::new(state.plans), &command)?;
    if !crate::slugs::claim(&state.store, &created.slug, tenant).await? {
        return Err(ApiError::Conflict(format!("slug `{}` is taken", created.slug)));
    }
    let slug = created.slug.clone();
    let out = match state.commands.tenant(&ctx, &command).await {
        Ok(out) => out,
        Err(e) => {
            if let Err(release) = crate::slugs::release(&state.store, &slug, tenant).await {
                tracing::warn!(error = %release, %tenant, "could not release the slug of a failed create");
            }
            return Err(e.into());
        }
    };
    Ok(written(StatusCode::CREATED, Some(tenant.to_string()), out, json!({})))
}

/// `PATCH /v1/tenants/{id}`: name and settings by its admin; plan and limits by the platform.
#[utoipa::path(patch, path = "/v1/tenants/{tenant_id}", request_body = PatchTenant, tag = "tenants", params(("tenant_id" = String, Path, description = "tenant id (UUID)")), responses((status = 200, description = "Changed: `position`"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
pub async fn update(
    State(state): State<AppState>,
    Scoped(ctx): Scoped,
    AppJson(body): AppJson<PatchTenant>,
) -> Result<Response, ApiError> {
    let command = TenantCommand::UpdateTenant(TenantUpdated {
        name: body.name,
        plan: body.plan,
        settings: body.settings.map(Into::into),
        limits: body.limits,
    });
    let out = state.commands.tenant(&ctx, &command).await?;
    Ok(written(StatusCode::OK, Some(ctx.tenant_id.to_string()), out, json!({})))
}

/// `PATCH /v1/tenants/{id}/settings`: replace the tenant's settings.
#[utoipa::path(patch, path = "/v1/tenants/{tenant_id}/settings", request_body = SettingsBody, tag = "tenants", params(("tenant_id" = String, Path, description = "tenant id (UUID)")), responses((status = 200, description = "Changed: `position`"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
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
        serde_json::from_slice::<Suspend>(&body).map_err(|e| ApiError::BadRequest(e.to_string()))?.reason
    };
    let out = state.commands.tenant(&ctx, &TenantCommand::SuspendTenant { reason }).await?;
    Ok(written(StatusCode::OK, Some(ctx.tenant_id.to_string()), out, json!({})))
}

#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/resume", tag = "tenants", params(("tenant_id" = String, Path, description = "tenant id (UUID)")), responses((status = 201, description = "Created: `id` and `position`"), (status = "default", description = "Problem (RFC 9457): 400, 401, 403, 404, 409, 413, 422, 429 or 503")))]
pub async fn resume(State(state): State<AppState>, Scoped(ctx): Scoped) -> Result<Response, ApiError> {
    let out = state.commands.tenant(&ctx, &TenantCommand::ResumeTenant).await?;
    Ok(written(StatusCode::OK, Some(ctx.tenant_id.to_string()), out, json!({})))
}

/// `DELETE /v1/tenants/{id}` (super_admin): the GDPR purge of the whole tenant. Answers 202
/// while it runs (in the background, resumed on restart if the process dies) and 200 with
/// the counts once done; asking again is how to follow it.
#[utoipa::path(delete, path = "/v1/tenants/{tenant_id}", tag = "tenants", params(("tenant_id" = String, Path, description = "tenant id (UUID)")), responses((status = 202, description = "Purge under way: `step`"), (status = 200, description = "Purged: `step` is `done`, with counts"), (status = "default", description = "Problem (RFC 9457): 401, 403, 404 or 429")))]
pub async fn purge_tenant(State(state): State<AppState>, Scoped(ctx): Scoped) -> Result<Response, ApiError> {
    if ctx.role != Role::SuperAdmin {
        return Err(ApiError::Forbidden("only the platform operator may purge a tenant".into()));
    }
    let report = state.purger.start(&ctx, ctx.tenant_id).await.map_err(|e| match e {
        PurgeError::UnknownTenant(_) | PurgeError::Platform => ApiError::NotFound,
        other => ApiError::Internal(other.to_string()),
    })?;
    let status = if report.step == PurgeStep::Done { StatusCode::OK } else { StatusCode::ACCEPTED };
    Ok((status, Json(json!(report))).into_response())
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
    if !ctx.role.can_administer() {
        return Err(ApiError::Forbidden("role may not do this".into()));
    }
    let tenant = state.commands.tenant_now(&ctx).await?;
    if !tenant.exists || !tenant.users.contains_key(&user_id) {
        return Err(ApiError::NotFound);
    }
    // The key goes first: should the process die before the event is written, the data is
    // already unreadable, and repeating the call writes the event.
    state.store.erase_subject(&ctx, user_id).await?;
    let out = state.commands.tenant(&ctx, &TenantCommand::EraseUser { user_id }).await?;
    // Cached states held the person's email.
    state.commands.forget_tenant(ctx.tenant_id);
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
    use tenantry_domain::event::PartnerCreated;
    use tenantry_domain::{Event, EventId, StreamId};
    use tenantry_store::{AppendRequest, ExpectedVersion, NewEvent};
    if caller.role != Role::SuperAdmin {
        return Err(ApiError::Forbidden("only the platform operator creates partners".into()));
    }
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::Unprocessable { field: "name".into(), reason: "1 to 200 characters".into() });
    }
    let partner = PartnerId::new();
    let ctx = caller.acting_on(TenantId::PLATFORM);
    let event = Event::PartnerCreated(PartnerCreated { partner_id: partner, name: name.to_owned() });
    let stream: StreamId =
        format!("partner-{partner}").parse().map_err(|e| ApiError::Internal(format!("{e}")))?;
    let out = state
        .store
        .append(
            &ctx,
            AppendRequest::to_stream(
                stream,
                ExpectedVersion::NoStream,
                vec![NewEvent::new(EventId::new(), &event)?],
            ),
        )
        .await?;
    let (key_id, key, hash) = state.keys.issue();
    sqlx::query("INSERT INTO platform_keys (key_id, secret_hash, role, partner_id) VALUES ($1, $2, 'partner_admin', $3)")
        .bind(key_id.as_uuid().to_string())
        .bind(hex::encode(hash))
        .bind(partner.to_string())
        .execute(state.projections.db().pool())
        .await
        .map_err(|e| ApiError::from(tenantry_projections::ProjectionError::from(e)))?;
    let written = crate::service::Written { position: out.last_position, events: 1 };
    Ok(crate::http::written(StatusCode::CREATED, Some(partner.to_string()), written, json!({ "key": key })))
}
