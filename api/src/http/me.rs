//! `GET /v1/me`: who a credential is.

use axum::Json;
use serde::Serialize;
use tenantry_domain::{Actor, Role};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;

/// What a credential stands for.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Me {
    /// The operator a named operator key stands for.
    #[schema(value_type = Option<String>)]
    pub operator_id: Option<String>,
    /// `super_admin`, `partner_admin`, `admin` or `user`.
    #[schema(value_type = String)]
    pub role: Role,
    /// The tenant of a tenant key; `null` for platform keys.
    #[schema(value_type = Option<String>)]
    pub tenant_id: Option<String>,
    /// The partner of a partner admin's key.
    #[schema(value_type = Option<String>)]
    pub partner_id: Option<String>,
    /// The user a user key acts as.
    #[schema(value_type = Option<String>)]
    pub user_id: Option<String>,
    /// The key's id; `null` for the bootstrap key.
    #[schema(value_type = Option<String>)]
    pub key_id: Option<String>,
    /// When the credential stops working: a key's expiry, a token's `exp`; `null`: never.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<String>,
    /// What a scoped key is narrowed to; empty: all its role allows.
    pub scopes: Vec<String>,
    /// `api_key`, `token` (from an identity provider), `operator_key` or `bootstrap`.
    pub credential: &'static str,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(me))
}

#[utoipa::path(get, path = "/v1/me", tag = "identity", responses((status = 200, description = "The credential", body = Me), (status = "default", description = "Problem (RFC 9457): 401 or 429")))]
pub async fn me(caller: Caller) -> Result<Json<Me>, ApiError> {
    let credential = match (&caller.actor, caller.key) {
        (_, Some(_)) => "api_key",
        (Actor::User(_), None) => "token",
        (Actor::Operator(_), None) => "operator_key",
        _ => "bootstrap",
    };
    let (user_id, key_id) = match &caller.actor {
        Actor::User(u) => (Some(u.to_string()), caller.key.map(|k| k.to_string())),
        Actor::ApiKey(k) => (None, Some(k.to_string())),
        Actor::System | Actor::Operator(_) => (None, None),
    };
    Ok(Json(Me {
        operator_id: match &caller.actor {
            Actor::Operator(o) => Some(o.to_string()),
            _ => None,
        },
        role: caller.role,
        tenant_id: caller.tenant.map(|t| t.to_string()),
        partner_id: caller.partner.map(|p| p.to_string()),
        user_id,
        key_id,
        expires_at: caller.expires_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        scopes: caller.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
        credential,
    }))
}
