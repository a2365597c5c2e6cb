//! Partners: created with a first partner_admin key, renamed, deleted once they have no
//! tenants, their keys rotated and revoked, all on the partner's stream of the platform log.

use chrono::Utc;
use tenantry_domain::partner::{self, PartnerCommand};
use tenantry_domain::{ApiKeyId, PartnerId, TenantContext};
use tenantry_projections::ReadDb;
use tenantry_projections::models::directory;

use crate::commands::{Commands, Written};
use crate::error::AppError;
use crate::keys::KeyHasher;

/// A partner, and the partner_admin key that manages it: the secret is answered once.
#[derive(Debug)]
pub struct NewPartner {
    pub partner_id: PartnerId,
    pub written: Written,
    pub key: String,
}

/// Create a partner on the platform's log with its first partner_admin key, in one append.
pub async fn create_partner(
    commands: &Commands,
    hasher: &KeyHasher,
    ctx: &TenantContext,
    name: &str,
) -> Result<NewPartner, AppError> {
    let partner_id = PartnerId::new();
    let (key_id, key, secret_hash) = hasher.issue();
    let written = commands
        .partner(ctx, partner_id, |state| {
            if state.exists {
                return Ok(vec![]);
            }
            let mut events = partner::decide_create(ctx, partner_id, name)?;
            let key = PartnerCommand::IssueKey { key_id, secret_hash: secret_hash.clone() };
            let created = events.iter().fold(state.clone(), partner::evolve);
            events.extend(partner::decide(ctx, partner_id, &created, &key)?);
            Ok(events)
        })
        .await?;
    Ok(NewPartner { partner_id, written, key })
}

/// A decision on a partner that is not its creation.
pub async fn change_partner(
    commands: &Commands,
    ctx: &TenantContext,
    partner_id: PartnerId,
    command: PartnerCommand,
) -> Result<Written, AppError> {
    Ok(commands.partner(ctx, partner_id, |state| partner::decide(ctx, partner_id, state, &command)).await?)
}

/// Delete a partner that has no tenants left (counted in the directory: a tenant created
/// under it in the same instant may be missed, and keeps working as a tenant without its
/// partner's admins).
pub async fn delete_partner(
    commands: &Commands,
    db: &ReadDb,
    ctx: &TenantContext,
    partner_id: PartnerId,
) -> Result<Written, AppError> {
    let tenants = directory::partner_tenant_count(db, partner_id).await?;
    change_partner(commands, ctx, partner_id, PartnerCommand::Delete { tenants }).await
}

/// The hash a key made before keys were events is kept under, when `key_id` is such a key
/// of `partner_id`.
async fn stored_hash(
    db: &ReadDb,
    partner_id: PartnerId,
    key_id: ApiKeyId,
) -> Result<Option<Vec<u8>>, AppError> {
    let record = tenantry_projections::platform::partner_key(db, &key_id.as_uuid().to_string()).await?;
    Ok(record.filter(|r| r.partner == Some(partner_id)).map(|r| r.secret_hash))
}

/// Revoke one of a partner's keys: refused from the answer on.
pub async fn revoke_partner_key(
    commands: &Commands,
    db: &ReadDb,
    ctx: &TenantContext,
    partner_id: PartnerId,
    key_id: ApiKeyId,
) -> Result<Written, AppError> {
    let stored_hash = stored_hash(db, partner_id, key_id).await?;
    change_partner(commands, ctx, partner_id, PartnerCommand::RevokeKey { key_id, stored_hash }).await
}

/// Give one of a partner's keys a new secret, answered once; the old one works for
/// `grace_seconds`.
pub async fn rotate_partner_key(
    commands: &Commands,
    db: &ReadDb,
    hasher: &KeyHasher,
    ctx: &TenantContext,
    partner_id: PartnerId,
    key_id: ApiKeyId,
    grace_seconds: u64,
) -> Result<(Written, String), AppError> {
    let stored_hash = stored_hash(db, partner_id, key_id).await?;
    let (token, secret_hash) = hasher.secret_for(key_id);
    let command =
        PartnerCommand::RotateKey { key_id, secret_hash, stored_hash, grace_seconds, now: Utc::now() };
    Ok((change_partner(commands, ctx, partner_id, command).await?, token))
}

/// Whether `ctx` may read `partner_id`'s data: the platform, or that partner's admins.
pub fn reads_partner(ctx: &TenantContext, partner_id: PartnerId) -> bool {
    use tenantry_domain::Role;
    match ctx.role {
        Role::SuperAdmin => true,
        Role::PartnerAdmin => ctx.partner_id == Some(partner_id),
        Role::Admin | Role::User => false,
    }
}
