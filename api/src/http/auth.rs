//! Credentials: API keys `tnt_<key id>_<secret>` of a tenant, and the bootstrap super_admin
//! key. Only a keyed hash of a secret is stored; comparison is constant-time.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::Row;
use tenantry_domain::{Actor, ApiKeyId, PartnerId, RequestId, Role, TenantContext, TenantId, UserId};
use tenantry_projections::ProjectionError;
use uuid::Uuid;

use super::AppState;
use super::error::ApiError;
use super::key_cache::CachedKey;

/// Hashes secrets with a key derived from the master key.
#[derive(Clone)]
pub struct KeyHasher {
    key: [u8; 32],
}

impl std::fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyHasher(..)")
    }
}

impl KeyHasher {
    pub fn new(master: &tenantry_store::MasterKey) -> Self {
        Self { key: *master.derive("api-keys") }
    }

    fn mac(&self) -> Hmac<Sha256> {
        <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
    }

    pub fn hash(&self, secret: &str) -> Vec<u8> {
        let mut mac = self.mac();
        mac.update(secret.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// Constant-time comparison of a presented secret with a stored hash.
    pub fn verify(&self, secret: &str, stored: &[u8]) -> bool {
        let mut mac = self.mac();
        mac.update(secret.as_bytes());
        mac.verify_slice(stored).is_ok()
    }

    /// A new key: its id, the full token to hand out once, and the hash to store.
    pub fn issue(&self) -> (ApiKeyId, String, Vec<u8>) {
        let id = ApiKeyId::new();
        let secret = hex::encode(rand::random::<[u8; 32]>());
        let token = format!("tnt_{}_{secret}", id.as_uuid().simple());
        (id, token, self.hash(&secret))
    }
}

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
    pub request_id: RequestId,
    pub source_ip: Option<String>,
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

    /// Whether a partner admin reaches `tenant`: the tenant was created under its partner.
    /// Decided on the tenant's own stream, not a read model, so a tenant it has just created
    /// is reachable at once.
    async fn partner_reaches(&self, state: &AppState, tenant: TenantId) -> bool {
        let Some(partner) = self.partner.filter(|_| self.role == Role::PartnerAdmin) else { return false };
        let owner = state.commands.tenant_now(&TenantContext::system(tenant)).await;
        matches!(owner, Ok(t) if t.exists && t.partner_id == Some(partner))
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
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        let tenant: TenantId = params
            .iter()
            .find(|(name, _)| *name == "tenant_id")
            .ok_or_else(|| ApiError::Internal("route without {tenant_id} uses Scoped".into()))?
            .1
            .parse()
            .map_err(|e: tenantry_domain::ids::IdError| ApiError::BadRequest(e.to_string()))?;
        if caller.partner_reaches(state, tenant).await {
            return Ok(Self(caller.acting_on(tenant)));
        }
        match caller.context(tenant) {
            Ok(ctx) => Ok(Self(ctx)),
            Err(denied) => {
                let action = format!("{} {}", parts.method, parts.uri.path());
                record_denial(state, &caller, tenant, action).await;
                Err(denied)
            }
        }
    }
}

/// Write an `access.denied` event to the target tenant's log, when that tenant exists.
async fn record_denial(state: &AppState, caller: &Caller, tenant: TenantId, action: String) {
    use tenantry_domain::Event;
    use tenantry_domain::event::AccessDenied;
    use tenantry_store::{AppendRequest, ExpectedVersion, NewEvent};
    let ctx = TenantContext {
        tenant_id: tenant,
        actor: caller.actor.clone(),
        role: caller.role,
        partner_id: None,
        request_id: caller.request_id,
        source_ip: caller.source_ip.clone(),
    };
    if !matches!(state.store.head(&ctx).await, Ok(Some(_))) {
        return;
    }
    let reason = match caller.tenant {
        Some(own) => format!("key of tenant {own}"),
        None => "role may not act on this tenant".to_owned(),
    };
    let event = Event::AccessDenied(AccessDenied {
        action: action.chars().take(300).collect(),
        target: None,
        reason,
    });
    let Ok(new) = NewEvent::new(tenantry_domain::EventId::new(), &event) else { return };
    let audit: tenantry_domain::StreamId = match "audit".parse() {
        Ok(s) => s,
        Err(_) => return,
    };
    if let Err(e) =
        state.store.append(&ctx, AppendRequest::to_stream(audit, ExpectedVersion::Any, vec![new])).await
    {
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
    let row = sqlx::query(
        "SELECT secret_hash, partner_id FROM platform_keys WHERE key_id = $1 AND role = 'partner_admin'",
    )
    .bind(key_id.to_string())
    .fetch_optional(state.projections.db().pool())
    .await
    .map_err(|e| ApiError::from(ProjectionError::from(e)))?
    .ok_or(ApiError::Unauthorized)?;
    let stored = hex::decode(row.try_get::<String, _>(0).map_err(|_| ApiError::Unauthorized)?)
        .map_err(|_| ApiError::Unauthorized)?;
    if !state.keys.verify(secret, &stored) {
        return Err(ApiError::Unauthorized);
    }
    let partner: PartnerId = row
        .try_get::<Option<String>, _>(1)
        .ok()
        .flatten()
        .and_then(|p| p.parse().ok())
        .ok_or(ApiError::Unauthorized)?;
    Ok(Caller {
        role: Role::PartnerAdmin,
        tenant: None,
        partner: Some(partner),
        actor: Actor::ApiKey(ApiKeyId::from_uuid(key_id)),
        request_id,
        source_ip,
    })
}

/// A tenant key as the directory holds it: `None` when there is no such tenant key (it may
/// be a partner's), `Some(None)` when it no longer works (revoked, or its user removed).
async fn tenant_key(state: &AppState, key_id: Uuid) -> Result<Option<Option<CachedKey>>, ApiError> {
    let row = sqlx::query(
        // A user key stops working with its user: removed or erased.
        "SELECT k.tenant_id, k.secret_hash, k.role,
                CASE WHEN k.revoked <> 0 OR COALESCE(u.removed, 0) <> 0 THEN 1 ELSE 0 END AS revoked,
                k.user_id
         FROM dir_api_keys k
         LEFT JOIN dir_users u ON u.tenant_id = k.tenant_id AND u.user_id = k.user_id
         WHERE k.key_id = $1",
    )
    .bind(key_id.to_string())
    .fetch_optional(state.projections.db().readers())
    .await
    .map_err(|e| ApiError::from(ProjectionError::from(e)))?;
    let Some(row) = row else { return Ok(None) };
    let revoked: i64 = row.try_get("revoked").map_err(|_| ApiError::Unauthorized)?;
    if revoked != 0 {
        return Ok(Some(None));
    }
    let secret_hash =
        hex::decode(row.try_get::<String, _>("secret_hash").map_err(|_| ApiError::Unauthorized)?)
            .map_err(|_| ApiError::Unauthorized)?;
    let tenant: TenantId = row
        .try_get::<String, _>("tenant_id")
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or(ApiError::Unauthorized)?;
    let role = match row.try_get::<String, _>("role").as_deref() {
        Ok("admin") => Role::Admin,
        Ok("user") => Role::User,
        _ => return Err(ApiError::Unauthorized),
    };
    let user: Option<UserId> =
        row.try_get::<Option<String>, _>("user_id").ok().flatten().and_then(|u| u.parse().ok());
    Ok(Some(Some(CachedKey { tenant, secret_hash, role, user })))
}

fn parse_tenant_key(token: &str) -> Option<(Uuid, &str)> {
    let rest = token.strip_prefix("tnt_")?;
    let (id, secret) = rest.split_once('_')?;
    Some((Uuid::parse_str(id).ok()?, secret))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or(ApiError::Unauthorized)?;
        let request_id = RequestId::new();
        let source_ip = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        let pool = state.projections.db().pool();
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
            if !state.keys.verify(secret, &key.secret_hash) {
                return Err(ApiError::Unauthorized);
            }
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
                request_id,
                source_ip,
            });
        }
        let row = sqlx::query("SELECT secret_hash FROM platform_keys WHERE key_id = 'bootstrap'")
            .fetch_optional(pool)
            .await
            .map_err(|e| ApiError::from(ProjectionError::from(e)))?
            .ok_or(ApiError::Unauthorized)?;
        let stored = hex::decode(row.try_get::<String, _>(0).map_err(|_| ApiError::Unauthorized)?)
            .map_err(|_| ApiError::Unauthorized)?;
        if !state.keys.verify(token, &stored) {
            return Err(ApiError::Unauthorized);
        }
        Ok(Caller {
            role: Role::SuperAdmin,
            tenant: None,
            partner: None,
            actor: Actor::System,
            request_id,
            source_ip,
        })
    }
}

/// Store the bootstrap key's hash, once. With `configured`, that exact string is the key;
/// otherwise a key is generated on a fresh database and returned to be printed once.
pub async fn ensure_bootstrap_key(
    state: &AppState,
    configured: Option<&str>,
) -> anyhow::Result<Option<String>> {
    let pool = state.projections.db().pool();
    let exists = sqlx::query("SELECT key_id FROM platform_keys WHERE key_id = 'bootstrap'")
        .fetch_optional(pool)
        .await?;
    let (key, announce) = match configured {
        Some(k) if !valid_bootstrap_key(k) => {
            anyhow::bail!("TENANTRY_BOOTSTRAP_KEY must be 32 to 128 characters of A-Za-z0-9_-")
        }
        Some(k) => (k.to_owned(), false),
        None if exists.is_some() => return Ok(None),
        None => (format!("tnt_root_{}", hex::encode(rand::random::<[u8; 24]>())), true),
    };
    let hash = hex::encode(state.keys.hash(&key));
    sqlx::query(
        "INSERT INTO platform_keys (key_id, secret_hash, role) VALUES ('bootstrap', $1, 'super_admin')
         ON CONFLICT (key_id) DO UPDATE SET secret_hash = excluded.secret_hash",
    )
    .bind(hash)
    .execute(pool)
    .await?;
    Ok(announce.then_some(key))
}
