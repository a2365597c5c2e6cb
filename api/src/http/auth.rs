//! Credentials: API keys `tnt_<key id>_<secret>` of a tenant, tokens (JWTs) of the
//! identity providers `--oidc-config` trusts, and the bootstrap super_admin key. Only a
//! keyed hash of a key's secret is stored; comparison is constant-time.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use tenantry_app::CommandError;
use tenantry_domain::command::ProvisionUser;
use tenantry_domain::{
    Actor, ApiKeyId, OperatorId, PartnerId, Rejection, RequestId, Role, Scope, TenantContext, TenantId,
    UserId,
};
use tenantry_projections::models::directory;
use tenantry_projections::platform;
use uuid::Uuid;

use super::AppState;
use super::error::ApiError;
use super::key_cache::CachedKey;

/// Whether a bootstrap key given in config has the required form.
pub fn valid_bootstrap_key(key: &str) -> bool {
    (32..=128).contains(&key.len())
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Who is calling, from the credential alone (before any tenant in the path is considered).
#[derive(Debug, Clone)]
pub struct Caller {
    pub role: Role,
    /// The tenant of a tenant key; `None` for platform keys.
    pub tenant: Option<TenantId>,
    /// The partner of a partner_admin key.
    pub partner: Option<PartnerId>,
    pub actor: Actor,
    /// The key presented, when it is a tenant or partner key.
    pub key: Option<ApiKeyId>,
    pub request_id: RequestId,
    pub source_ip: Option<String>,
    /// What a scoped key is narrowed to; empty: all its role allows.
    pub scopes: Vec<Scope>,
    /// When the credential stops working: a key's expiry, a token's `exp`.
    pub expires_at: Option<DateTime<Utc>>,
}

impl Caller {
    /// The context for acting on `tenant`, or why the caller may not. A partner admin's
    /// reach depends on the tenant's partner, which [`Scoped`] looks up; here it may only act
    /// on a tenant it is creating ([`Caller::acting_on`]).
    pub fn context(&self, tenant: TenantId) -> Result<TenantContext, ApiError> {
        match (self.role, self.tenant) {
            (Role::SuperAdmin, _) => {}
            (_, Some(own)) if own == tenant => {}
            _ => return Err(ApiError::Forbidden("this key belongs to another tenant".into())),
        }
        Ok(self.acting_on(tenant))
    }

    /// The context for `tenant`, with no check: for a tenant this caller's command creates,
    /// and after the caller's reach over it was checked.
    pub fn acting_on(&self, tenant: TenantId) -> TenantContext {
        TenantContext {
            tenant_id: tenant,
            actor: self.actor.clone(),
            role: self.role,
            partner_id: self.partner,
            request_id: self.request_id,
            source_ip: self.source_ip.clone(),
        }
    }

    /// Whether a partner admin reaches `tenant` (created under its partner), or a tenant
    /// admin reaches it from above (its own tenant is one of the tenant's ancestors): the
    /// domain's rule, decided on the tenant's own stream, so a tenant just created is
    /// reachable at once. Ancestors and partner never change after creation, so the state
    /// this process holds decides it.
    async fn reaches_from_outside(&self, state: &AppState, tenant: TenantId) -> bool {
        let outside = match self.role {
            Role::PartnerAdmin => self.partner.is_some(),
            Role::Admin => self.tenant.is_some_and(|own| own != tenant),
            Role::SuperAdmin | Role::User => false,
        };
        if !outside {
            return false;
        }
        let reaches = |t: &tenantry_domain::tenant::TenantState| {
            tenantry_domain::tenant::reaches(&self.acting_on(tenant), self.tenant, t)
        };
        match state.commands.tenant_known(tenant).await {
            Ok(known) if known.exists => reaches(&known),
            // Created elsewhere since this process last read it: read it now.
            Ok(_) => {
                matches!(state.commands.tenant_now(&TenantContext::system(tenant)).await, Ok(t) if reaches(&t))
            }
            Err(_) => false,
        }
    }
}

/// The caller acting on the tenant named in the path (`{tenant_id}`), checked before any
/// body is read: a key of another tenant gets 403, and the attempt is written to the target
/// tenant's audit trail.
#[derive(Debug, Clone)]
pub struct Scoped(pub TenantContext);

impl FromRequestParts<AppState> for Scoped {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let params = axum::extract::RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::bad_request("the path is not valid UTF-8"))?;
        let tenant: TenantId = params
            .iter()
            .find(|(name, _)| *name == "tenant_id")
            .ok_or_else(|| ApiError::internal(super::error::Bug("route without {tenant_id} uses Scoped")))?
            .1
            .parse()
            .map_err(|e: tenantry_domain::ids::IdError| ApiError::BadRequest {
                detail: e.to_string(),
                field: Some("tenant_id".into()),
            })?;
        if caller.reaches_from_outside(state, tenant).await {
            let ctx = caller.acting_on(tenant);
            check_scope(&caller, parts)?;
            record_read(state, parts, &ctx, caller.tenant).await;
            return Ok(Self(ctx));
        }
        match caller.context(tenant) {
            Ok(ctx) => {
                check_scope(&caller, parts)?;
                record_read(state, parts, &ctx, caller.tenant).await;
                Ok(Self(ctx))
            }
            Err(denied) => {
                let action = format!("{} {}", parts.method, parts.uri.path());
                record_denial(state, &caller, tenant, action).await;
                Err(denied)
            }
        }
    }
}

/// [`Scoped`], for what only the tenant's administrators (and the platform) may see or do:
/// a user key gets 403.
#[derive(Debug, Clone)]
pub struct Administering(pub TenantContext);

impl FromRequestParts<AppState> for Administering {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Scoped(ctx) = Scoped::from_request_parts(parts, state).await?;
        if !ctx.role.can_administer() {
            return Err(ApiError::Forbidden("a user key may not do this".into()));
        }
        Ok(Self(ctx))
    }
}

/// Whether the caller's scopes reach the route of this request.
fn check_scope(caller: &Caller, parts: &Parts) -> Result<(), ApiError> {
    let Some(route) = parts.extensions.get::<axum::extract::MatchedPath>() else { return Ok(()) };
    super::scopes::check(&caller.scopes, &parts.method, route.as_str()).map_err(|lacking| match lacking {
        Some(scope) => ApiError::InsufficientScope(scope),
        None => ApiError::Forbidden("no scope of this key reaches this route".into()),
    })
}

/// A read of a tenant's data from outside it (the platform's operator, a partner's admin,
/// an admin of a tenant above it; `own` is the caller's own tenant): recorded in the
/// tenant's audit trail as `data.read`, one record for the request however many rows it
/// lists, repeats of the same read within a minute folded into the next record.
async fn record_read(state: &AppState, parts: &Parts, ctx: &TenantContext, own: Option<TenantId>) {
    let outside = own != Some(ctx.tenant_id);
    if !outside || !matches!(parts.method, axum::http::Method::GET | axum::http::Method::HEAD) {
        return;
    }
    audit_read(state, ctx, format!("{} {}", parts.method, parts.uri.path())).await;
}

/// Record `action`, a read of the tenant's data, in its audit trail as `data.read`: repeats
/// by the same credential within a minute are folded into the next record. A failure to
/// record is logged, never the caller's.
pub(crate) async fn audit_read(state: &AppState, ctx: &TenantContext, action: String) {
    let now = std::time::Instant::now();
    let Some(folded) = state.reads.admit(ctx.tenant_id, &ctx.actor.to_string(), &action, now) else { return };
    if let Err(e) = state.commands.record_read(ctx, &action, folded + 1).await {
        tracing::warn!(error = %e, tenant = %ctx.tenant_id, "could not record a read of a tenant's data");
    }
}

/// Write an `access.denied` event to the target tenant's log, when that tenant exists.
async fn record_denial(state: &AppState, caller: &Caller, tenant: TenantId, action: String) {
    let ctx = TenantContext {
        tenant_id: tenant,
        actor: caller.actor.clone(),
        role: caller.role,
        partner_id: None,
        request_id: caller.request_id,
        source_ip: caller.source_ip.clone(),
    };
    let Some(folded) =
        state.denials.admit(tenant, &caller.actor.to_string(), &action, std::time::Instant::now())
    else {
        return;
    };
    let mut reason = match caller.tenant {
        Some(own) => format!("key of tenant {own}"),
        None => "role may not act on this tenant".to_owned(),
    };
    if folded > 0 {
        reason.push_str(&format!(
            " ({folded} more like it refused in the minute before, not recorded one by one)"
        ));
    }
    if let Err(e) = state.commands.record_refusal(&ctx, &action, reason).await {
        tracing::warn!(error = %e, %tenant, "could not record a denied request");
    }
}

/// A partner_admin key: kept with the platform's keys, scoped to one partner.
async fn partner_key(
    state: &AppState,
    key_id: Uuid,
    secret: &str,
    request_id: RequestId,
    source_ip: Option<String>,
) -> Result<Caller, ApiError> {
    let key = platform::partner_key(state.projections.db(), &key_id.to_string())
        .await?
        .ok_or(ApiError::Unauthorized)?;
    let partner = key.partner.ok_or(ApiError::Unauthorized)?;
    // The partner's stream has the last word: a key it holds opens with its current secret
    // (or the previous one inside a rotation's grace), a revoked key or a deleted partner's
    // not at all. A key made before keys were events opens with the secret kept for it.
    let known = state.commands.partner_known(partner).await?;
    let opens = |hash: &[u8]| state.keys.verify(secret, hash);
    let valid = match known.keys.get(&ApiKeyId::from_uuid(key_id)) {
        Some(entry) => !entry.revoked && entry.hashes_at(Utc::now()).into_iter().any(opens),
        None => opens(&key.secret_hash),
    };
    if !known.live() || !valid {
        return Err(ApiError::Unauthorized);
    }
    Ok(Caller {
        role: Role::PartnerAdmin,
        tenant: None,
        partner: key.partner,
        actor: Actor::ApiKey(ApiKeyId::from_uuid(key_id)),
        key: Some(ApiKeyId::from_uuid(key_id)),
        request_id,
        source_ip,
        scopes: Vec::new(),
        expires_at: None,
    })
}

/// A token of a trusted identity provider: its tenant from the tenant claim (an id or a
/// slug), its user found, or provisioned on the subject's first token.
async fn token_caller(
    state: &AppState,
    token: &str,
    request_id: RequestId,
    source_ip: Option<String>,
) -> Result<Caller, ApiError> {
    let oidc = state.oidc.as_ref().ok_or(ApiError::Unauthorized)?;
    let verified = oidc.verify(token).await.map_err(|e| {
        tracing::info!(reason = %e, "bearer token refused");
        ApiError::Unauthorized
    })?;
    let tenant = match verified.tenant.parse::<TenantId>() {
        Ok(id) => id,
        Err(_) => state.commands.slug_holder(&verified.tenant).await?.ok_or(ApiError::Unauthorized)?,
    };
    let ctx = TenantContext { request_id, source_ip: source_ip.clone(), ..TenantContext::system(tenant) };
    let command = ProvisionUser {
        user_id: UserId::new(),
        digest: state.keys.identity(&verified.issuer, &verified.subject),
        issuer: verified.issuer,
        subject: verified.subject,
        email: verified.email,
        role: verified.role,
    };
    let user = match state.commands.identity_user(&ctx, command).await {
        Ok((user, None)) => user,
        Ok((user, Some(position))) => {
            // A user just provisioned shows in the directory on their first answer.
            let directory = tenantry_projections::models::directory::NAME;
            match state.projections.wait_for(directory, tenant, position, super::MIN_POSITION_WAIT).await {
                Ok(())
                | Err(
                    tenantry_projections::ProjectionError::NotCaughtUp { .. }
                    | tenantry_projections::ProjectionError::Stalled { .. },
                ) => {}
                Err(e) => return Err(e.into()),
            }
            user
        }
        // A purged tenant, or a person removed from it: the token opens nothing.
        Err(CommandError::Rejected(Rejection::TenantNotFound | Rejection::IdentityRetired(_))) => {
            return Err(ApiError::Unauthorized);
        }
        Err(other) => return Err(other.into()),
    };
    Ok(Caller {
        role: verified.role,
        tenant: Some(tenant),
        partner: None,
        actor: Actor::User(user),
        key: None,
        request_id,
        source_ip,
        scopes: Vec::new(),
        expires_at: DateTime::from_timestamp(verified.expires_at, 0),
    })
}

/// A tenant key as the directory holds it: `None` when there is no such tenant key (it may
/// be a partner's), `Some(None)` when it no longer works (revoked, or its user removed).
async fn tenant_key(state: &AppState, key_id: Uuid) -> Result<Option<Option<CachedKey>>, ApiError> {
    let found = directory::auth_key(state.projections.db(), &key_id.to_string()).await?;
    Ok(found.map(|key| {
        key.and_then(|k| {
            Some(CachedKey {
                tenant: k.tenant?,
                secret_hash: k.secret_hash,
                role: k.role,
                user: k.user,
                scopes: k.scopes,
                expires_at: k.expires_at,
                previous: k.previous,
            })
        })
    }))
}

/// The address the request came from, when the server knows it.
pub fn source_ip(parts: &Parts) -> Option<String> {
    parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip().to_string())
}

fn parse_operator_key(token: &str) -> Option<(OperatorId, &str)> {
    let rest = token.strip_prefix("tnt_op_")?;
    let (id, secret) = rest.split_once('_')?;
    Some((OperatorId::from_uuid(Uuid::parse_str(id).ok()?), secret))
}

/// A named operator's key, checked against the platform's operators as the command side
/// holds them: a removed operator is refused from the moment the removal is answered.
async fn operator_caller(
    state: &AppState,
    operator: OperatorId,
    secret: &str,
    request_id: RequestId,
    source_ip: Option<String>,
) -> Result<Caller, ApiError> {
    let operators = state.commands.operators_known().await?;
    let entry = operators.live(operator).ok_or(ApiError::Unauthorized)?;
    if !state.keys.verify(secret, &entry.secret_hash) {
        return Err(ApiError::Unauthorized);
    }
    Ok(Caller {
        role: Role::SuperAdmin,
        tenant: None,
        partner: None,
        actor: Actor::Operator(operator),
        key: None,
        request_id,
        source_ip,
        scopes: Vec::new(),
        expires_at: None,
    })
}

fn parse_tenant_key(token: &str) -> Option<(Uuid, &str)> {
    let rest = token.strip_prefix("tnt_")?;
    let (id, secret) = rest.split_once('_')?;
    Some((Uuid::parse_str(id).ok()?, secret))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        // Authenticated once per request, by the limits middleware.
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or(ApiError::Unauthorized)?;
        let request_id = RequestId::new();
        let source_ip = source_ip(parts);
        if !token.starts_with("tnt_") && super::oidc::Oidc::looks_like_jwt(token) {
            return token_caller(state, token, request_id, source_ip).await;
        }
        if let Some((operator, secret)) = parse_operator_key(token) {
            return operator_caller(state, operator, secret, request_id, source_ip).await;
        }
        if let Some((key_id, secret)) = parse_tenant_key(token) {
            let key = match state.key_cache.get(key_id) {
                Some(key) => key,
                None => {
                    let ticket = state.key_cache.ticket();
                    match tenant_key(state, key_id).await? {
                        Some(Some(key)) => {
                            state.key_cache.fill(ticket, key_id, key.clone());
                            key
                        }
                        Some(None) => return Err(ApiError::Unauthorized),
                        None => return partner_key(state, key_id, secret, request_id, source_ip).await,
                    }
                }
            };
            let now = Utc::now().timestamp_millis();
            if key.expires_at.is_some_and(|at| now >= at) {
                return Err(ApiError::Unauthorized);
            }
            let opens = |hash: &[u8]| state.keys.verify(secret, hash);
            let in_grace = || key.previous.as_ref().is_some_and(|(hash, until)| now < *until && opens(hash));
            if !opens(&key.secret_hash) && !in_grace() {
                return Err(ApiError::Unauthorized);
            }
            // The command side has the last word: a key revoked or rotated, or its user
            // removed, is refused from the moment that command was answered, even while the
            // read model above is behind or stalled.
            if state.commands.retired(key.tenant, ApiKeyId::from_uuid(key_id), key.user, opens) {
                return Err(ApiError::Unauthorized);
            }
            state.last_used.touch(state, key.tenant, ApiKeyId::from_uuid(key_id));
            // A user key acts as its user: conversations are then decided and listed as theirs.
            let actor = match (key.role, key.user) {
                (Role::User, Some(user)) => Actor::User(user),
                _ => Actor::ApiKey(ApiKeyId::from_uuid(key_id)),
            };
            return Ok(Caller {
                role: key.role,
                tenant: Some(key.tenant),
                partner: None,
                actor,
                key: Some(ApiKeyId::from_uuid(key_id)),
                request_id,
                source_ip,
                scopes: key.scopes,
                expires_at: key.expires_at.and_then(DateTime::from_timestamp_millis),
            });
        }
        let stored = platform::bootstrap_hash(state.projections.db()).await?.ok_or(ApiError::Unauthorized)?;
        if !state.keys.verify(token, &stored) || state.commands.operators_known().await?.bootstrap_retired {
            return Err(ApiError::Unauthorized);
        }
        Ok(Caller {
            role: Role::SuperAdmin,
            tenant: None,
            partner: None,
            actor: Actor::System,
            key: None,
            request_id,
            source_ip,
            scopes: Vec::new(),
            expires_at: None,
        })
    }
}

/// Store the bootstrap key's hash, once. With `configured`, that exact string is the key;
/// otherwise a key is generated on a fresh database and returned to be printed once.
pub async fn ensure_bootstrap_key(
    state: &AppState,
    configured: Option<&str>,
) -> anyhow::Result<Option<String>> {
    let db = state.projections.db();
    let stored = platform::bootstrap_hash(db).await?;
    let (key, announce) = match (configured, stored) {
        (Some(k), _) if !valid_bootstrap_key(k) => {
            anyhow::bail!("TENANTRY_BOOTSTRAP_KEY must be 32 to 128 characters of A-Za-z0-9_-")
        }
        // The operator key of an existing store is never replaced silently.
        (Some(k), Some(stored)) if state.keys.verify(k, &stored) => return Ok(None),
        (Some(_), Some(_)) => anyhow::bail!(
            "this store already has a different bootstrap key; start without --bootstrap-key (TENANTRY_BOOTSTRAP_KEY) to keep it"
        ),
        (Some(k), None) => (k.to_owned(), false),
        (None, Some(_)) => return Ok(None),
        (None, None) => (format!("tnt_root_{}", hex::encode(rand::random::<[u8; 24]>())), true),
    };
    platform::store_bootstrap(db, &state.keys.hash(&key)).await?;
    Ok(announce.then_some(key))
}
