//! The platform's own keys (`platform_keys`): the bootstrap super_admin key and partner
//! admins' keys. Only keyed hashes of secrets are stored.

use sqlx::Row;
use tenantry_domain::{PartnerId, Role, Scope, TenantId, UserId};

use crate::db::ReadDb;
use crate::error::ProjectionError;

/// The id the bootstrap key is stored under.
const BOOTSTRAP: &str = "bootstrap";

/// A key as authentication needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub secret_hash: Vec<u8>,
    pub role: Role,
    /// The tenant of a tenant key.
    pub tenant: Option<TenantId>,
    /// The user a `user` key acts as.
    pub user: Option<UserId>,
    /// The partner of a partner_admin key.
    pub partner: Option<PartnerId>,
    /// What a tenant key is narrowed to; empty: all its role allows.
    pub scopes: Vec<Scope>,
    /// When the key stops working (Unix ms).
    pub expires_at: Option<i64>,
    /// The secret before the key's last rotation, and until when it works (Unix ms).
    pub previous: Option<(Vec<u8>, i64)>,
}

fn malformed(what: &str) -> ProjectionError {
    ProjectionError::Malformed(format!("platform key: {what}"))
}

fn hash(text: &str) -> Result<Vec<u8>, ProjectionError> {
    hex::decode(text).map_err(|_| malformed("secret hash"))
}

/// A partner admin's key by id.
pub async fn partner_key(db: &ReadDb, key_id: &str) -> Result<Option<KeyRecord>, ProjectionError> {
    let row = sqlx::query(
        "SELECT secret_hash, partner_id FROM platform_keys WHERE key_id = $1 AND role = 'partner_admin'",
    )
    .bind(key_id)
    .fetch_optional(db.platform_readers())
    .await?;
    let Some(row) = row else { return Ok(None) };
    let partner = row
        .try_get::<Option<String>, _>(1)?
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| malformed("partner id"))?;
    Ok(Some(KeyRecord {
        secret_hash: hash(&row.try_get::<String, _>(0)?)?,
        role: Role::PartnerAdmin,
        tenant: None,
        user: None,
        partner: Some(partner),
        scopes: Vec::new(),
        expires_at: None,
        previous: None,
    }))
}

/// The bootstrap key's hash, once one is stored.
pub async fn bootstrap_hash(db: &ReadDb) -> Result<Option<Vec<u8>>, ProjectionError> {
    let row = sqlx::query("SELECT secret_hash FROM platform_keys WHERE key_id = $1")
        .bind(BOOTSTRAP)
        .fetch_optional(db.pool())
        .await?;
    row.map(|r| hash(&r.try_get::<String, _>(0)?)).transpose()
}

/// Store the bootstrap key's hash, unless one is stored already (never replaced).
pub async fn store_bootstrap(db: &ReadDb, secret_hash: &[u8]) -> Result<(), ProjectionError> {
    sqlx::query(
        "INSERT INTO platform_keys (key_id, secret_hash, role) VALUES ($1, $2, 'super_admin')
         ON CONFLICT (key_id) DO NOTHING",
    )
    .bind(BOOTSTRAP)
    .bind(hex::encode(secret_hash))
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Keep a partner key issued through the log (nothing when it is kept already).
pub async fn keep_partner_key(
    conn: &mut sqlx::AnyConnection,
    key: tenantry_domain::ApiKeyId,
    partner: PartnerId,
    secret_hash: &[u8],
) -> Result<(), ProjectionError> {
    crate::db::exec(
        conn,
        "INSERT INTO platform_keys (key_id, secret_hash, role, partner_id) VALUES ($1, $2, 'partner_admin', $3)
         ON CONFLICT (key_id) DO NOTHING",
        vec![key.as_uuid().to_string().into(), hex::encode(secret_hash).into(), partner.to_string().into()],
    )
    .await?;
    Ok(())
}

/// Forget a revoked partner key.
pub async fn forget_partner_key(
    conn: &mut sqlx::AnyConnection,
    key: tenantry_domain::ApiKeyId,
) -> Result<(), ProjectionError> {
    crate::db::exec(
        conn,
        "DELETE FROM platform_keys WHERE key_id = $1 AND role = 'partner_admin'",
        vec![key.as_uuid().to_string().into()],
    )
    .await?;
    Ok(())
}

/// Forget every key of a deleted partner.
pub async fn forget_partner_keys(
    conn: &mut sqlx::AnyConnection,
    partner: PartnerId,
) -> Result<(), ProjectionError> {
    crate::db::exec(
        conn,
        "DELETE FROM platform_keys WHERE partner_id = $1 AND role = 'partner_admin'",
        vec![partner.to_string().into()],
    )
    .await?;
    Ok(())
}
