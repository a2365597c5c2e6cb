//! Partners (resellers) on the platform's log, one stream each: created, renamed and
//! deleted by the platform operator; their partner_admin keys issued, rotated and revoked
//! as events, so a key's history is in the log like everything else.

use std::collections::BTreeMap;

use crate::context::{Role, TenantContext};
use crate::event::{
    Event, PartnerCreated, PartnerDeleted, PartnerKeyIssued, PartnerKeyRevoked, PartnerKeyRotated,
    PartnerRenamed,
};
use crate::ids::{ApiKeyId, PartnerId, StreamId};
use crate::rejection::Rejection;
use crate::tenant::{KeyEntry, MAX_ROTATION_GRACE_SECONDS};
use crate::validate;

/// The platform stream of one partner.
pub fn stream(partner: PartnerId) -> StreamId {
    format!("partner-{partner}").parse().unwrap_or_else(|_| unreachable!("a uuid makes a valid stream id"))
}

/// A partner as its stream tells it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartnerState {
    pub exists: bool,
    pub name: String,
    pub deleted: bool,
    /// Keys issued through the log (a key made before keys were events is not here).
    pub keys: BTreeMap<ApiKeyId, KeyEntry>,
}

impl PartnerState {
    pub fn live(&self) -> bool {
        self.exists && !self.deleted
    }
}

/// What can be asked of a partner after its creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartnerCommand {
    Rename {
        name: String,
    },
    /// Delete a partner that has no tenants left; `tenants` is how many its caller found.
    Delete {
        tenants: u64,
    },
    IssueKey {
        key_id: ApiKeyId,
        secret_hash: Vec<u8>,
    },
    /// Revoke a key. `stored_hash` is the hash kept for a key made before keys were events,
    /// so such a key is recorded as issued, then revoked.
    RevokeKey {
        key_id: ApiKeyId,
        stored_hash: Option<Vec<u8>>,
    },
    RotateKey {
        key_id: ApiKeyId,
        secret_hash: Vec<u8>,
        stored_hash: Option<Vec<u8>>,
        grace_seconds: u64,
        now: chrono::DateTime<chrono::Utc>,
    },
}

pub fn decide_create(ctx: &TenantContext, partner: PartnerId, name: &str) -> Result<Vec<Event>, Rejection> {
    if ctx.role != Role::SuperAdmin {
        return Err(Rejection::Forbidden);
    }
    let name = name.trim();
    validate::text("name", name, 1, 200)?;
    Ok(vec![Event::PartnerCreated(PartnerCreated { partner_id: partner, name: name.to_owned() })])
}

/// The platform operator may do anything to a partner; a partner admin may rename its own
/// partner and manage its own keys, never delete it.
fn allowed(ctx: &TenantContext, partner: PartnerId, command: &PartnerCommand) -> bool {
    match ctx.role {
        Role::SuperAdmin => true,
        Role::PartnerAdmin => {
            ctx.partner_id == Some(partner) && !matches!(command, PartnerCommand::Delete { .. })
        }
        Role::Admin | Role::User => false,
    }
}

/// A key of this partner that works, or one made before keys were events (`stored`): the
/// events that put it into the log first.
fn known_key(
    partner: PartnerId,
    state: &PartnerState,
    key_id: ApiKeyId,
    stored: Option<&Vec<u8>>,
) -> Result<Vec<Event>, Rejection> {
    match (state.keys.get(&key_id), stored) {
        (Some(key), _) if !key.revoked => Ok(vec![]),
        (None, Some(hash)) => Ok(vec![Event::PartnerKeyIssued(PartnerKeyIssued {
            partner_id: partner,
            key_id,
            secret_hash: hash.clone(),
        })]),
        _ => Err(Rejection::ApiKeyNotFound(key_id)),
    }
}

pub fn decide(
    ctx: &TenantContext,
    partner: PartnerId,
    state: &PartnerState,
    command: &PartnerCommand,
) -> Result<Vec<Event>, Rejection> {
    if !allowed(ctx, partner, command) {
        return Err(Rejection::Forbidden);
    }
    if !state.live() {
        return Err(Rejection::PartnerNotFound(partner));
    }
    match command {
        PartnerCommand::Rename { name } => {
            let name = name.trim();
            validate::text("name", name, 1, 200)?;
            if name == state.name {
                return Ok(vec![]);
            }
            Ok(vec![Event::PartnerRenamed(PartnerRenamed { partner_id: partner, name: name.to_owned() })])
        }
        PartnerCommand::Delete { tenants } => {
            if *tenants > 0 {
                return Err(Rejection::PartnerHasTenants(*tenants));
            }
            Ok(vec![Event::PartnerDeleted(PartnerDeleted { partner_id: partner })])
        }
        PartnerCommand::IssueKey { key_id, secret_hash } => {
            if state.keys.contains_key(key_id) {
                return Err(Rejection::ApiKeyAlreadyExists(*key_id));
            }
            Ok(vec![Event::PartnerKeyIssued(PartnerKeyIssued {
                partner_id: partner,
                key_id: *key_id,
                secret_hash: secret_hash.clone(),
            })])
        }
        PartnerCommand::RevokeKey { key_id, stored_hash } => {
            let mut events = known_key(partner, state, *key_id, stored_hash.as_ref())?;
            events.push(Event::PartnerKeyRevoked(PartnerKeyRevoked { partner_id: partner, key_id: *key_id }));
            Ok(events)
        }
        PartnerCommand::RotateKey { key_id, secret_hash, stored_hash, grace_seconds, now } => {
            if *grace_seconds > MAX_ROTATION_GRACE_SECONDS {
                return Err(Rejection::invalid(
                    "grace_seconds",
                    format!("at most {MAX_ROTATION_GRACE_SECONDS} (a week)"),
                ));
            }
            let mut events = known_key(partner, state, *key_id, stored_hash.as_ref())?;
            let grace = i64::try_from(*grace_seconds).unwrap_or(i64::MAX);
            events.push(Event::PartnerKeyRotated(PartnerKeyRotated {
                partner_id: partner,
                key_id: *key_id,
                secret_hash: secret_hash.clone(),
                grace_until: (*grace_seconds > 0).then(|| *now + chrono::Duration::seconds(grace)),
            }));
            Ok(events)
        }
    }
}

pub fn evolve(mut state: PartnerState, event: &Event) -> PartnerState {
    match event {
        Event::PartnerCreated(e) => {
            state.exists = true;
            state.name = e.name.clone();
        }
        Event::PartnerRenamed(e) => state.name = e.name.clone(),
        Event::PartnerDeleted(_) => state.deleted = true,
        Event::PartnerKeyIssued(e) => {
            state.keys.insert(e.key_id, KeyEntry::issued(&e.secret_hash));
        }
        Event::PartnerKeyRevoked(e) => {
            if let Some(key) = state.keys.get_mut(&e.key_id) {
                key.revoked = true;
            }
        }
        Event::PartnerKeyRotated(e) => {
            if let Some(key) = state.keys.get_mut(&e.key_id) {
                key.rotate(&e.secret_hash, e.grace_until);
            }
        }
        _ => {}
    }
    state
}
