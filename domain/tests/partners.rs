//! Partners after their creation: renamed, deleted without tenants, their keys issued,
//! rotated and revoked through the log.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use chrono::{TimeZone, Utc};
use tenantry_domain::event::*;
use tenantry_domain::partner::{self, PartnerCommand, PartnerState};
use tenantry_domain::testing::Scenario;
use tenantry_domain::*;

fn given(events: &[Event]) -> Scenario<PartnerState, fn(PartnerState, &Event) -> PartnerState> {
    Scenario::new(PartnerState::default(), partner::evolve as fn(_, &_) -> _).given(events)
}

fn operator() -> TenantContext {
    TenantContext::system(TenantId::PLATFORM)
}

fn partner_admin(partner: PartnerId) -> TenantContext {
    TenantContext { role: Role::PartnerAdmin, partner_id: Some(partner), ..operator() }
}

fn created(p: PartnerId) -> Event {
    Event::PartnerCreated(PartnerCreated { partner_id: p, name: "Resell".into() })
}

fn key_issued(p: PartnerId, key_id: ApiKeyId) -> Event {
    Event::PartnerKeyIssued(PartnerKeyIssued { partner_id: p, key_id, secret_hash: vec![1] })
}

#[test]
fn a_partner_admin_renames_its_own_partner_only_and_never_deletes_it() {
    let (p, other) = (PartnerId::new(), PartnerId::new());
    let rename = PartnerCommand::Rename { name: " Resell Two ".into() };
    given(&[created(p)])
        .when(|s| partner::decide(&partner_admin(p), p, s, &rename))
        .then(&[Event::PartnerRenamed(PartnerRenamed { partner_id: p, name: "Resell Two".into() })]);
    given(&[created(p)])
        .when(|s| partner::decide(&partner_admin(other), p, s, &rename))
        .then_rejected(Rejection::Forbidden);
    given(&[created(p)])
        .when(|s| partner::decide(&partner_admin(p), p, s, &PartnerCommand::Delete { tenants: 0 }))
        .then_rejected(Rejection::Forbidden);
    given(&[created(p)])
        .when(|s| partner::decide(&operator(), p, s, &PartnerCommand::Rename { name: "Resell".into() }))
        .then(&[]);
}

#[test]
fn a_partner_is_deleted_only_without_tenants_and_is_then_gone() {
    let p = PartnerId::new();
    given(&[created(p)])
        .when(|s| partner::decide(&operator(), p, s, &PartnerCommand::Delete { tenants: 2 }))
        .then_rejected(Rejection::PartnerHasTenants(2));
    let deleted = Event::PartnerDeleted(PartnerDeleted { partner_id: p });
    given(&[created(p)])
        .when(|s| partner::decide(&operator(), p, s, &PartnerCommand::Delete { tenants: 0 }))
        .then(std::slice::from_ref(&deleted));
    given(&[created(p), deleted])
        .when(|s| partner::decide(&operator(), p, s, &PartnerCommand::Rename { name: "x".into() }))
        .then_rejected(Rejection::PartnerNotFound(p));
    given(&[])
        .when(|s| partner::decide(&operator(), p, s, &PartnerCommand::Delete { tenants: 0 }))
        .then_rejected(Rejection::PartnerNotFound(p));
}

#[test]
fn keys_rotate_with_a_grace_and_revoke_and_a_key_from_before_the_log_is_recorded_first() {
    let p = PartnerId::new();
    let key = ApiKeyId::new();
    let now = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
    let rotate = |stored: Option<Vec<u8>>| PartnerCommand::RotateKey {
        key_id: key,
        secret_hash: vec![2],
        stored_hash: stored,
        grace_seconds: 60,
        now,
    };
    let rotated = Event::PartnerKeyRotated(PartnerKeyRotated {
        partner_id: p,
        key_id: key,
        secret_hash: vec![2],
        grace_until: Some(now + chrono::Duration::seconds(60)),
    });
    given(&[created(p), key_issued(p, key)])
        .when(|s| partner::decide(&partner_admin(p), p, s, &rotate(None)))
        .then(std::slice::from_ref(&rotated));
    // A key kept only in the platform's key table (made before keys were events).
    given(&[created(p)])
        .when(|s| partner::decide(&partner_admin(p), p, s, &rotate(Some(vec![1]))))
        .then(&[key_issued(p, key), rotated.clone()]);
    given(&[created(p)])
        .when(|s| partner::decide(&partner_admin(p), p, s, &rotate(None)))
        .then_rejected(Rejection::ApiKeyNotFound(key));
    let revoked = Event::PartnerKeyRevoked(PartnerKeyRevoked { partner_id: p, key_id: key });
    let revoke = PartnerCommand::RevokeKey { key_id: key, stored_hash: None };
    given(&[created(p), key_issued(p, key)])
        .when(|s| partner::decide(&partner_admin(p), p, s, &revoke))
        .then(std::slice::from_ref(&revoked));
    given(&[created(p), key_issued(p, key), revoked])
        .when(|s| partner::decide(&partner_admin(p), p, s, &revoke))
        .then_rejected(Rejection::ApiKeyNotFound(key));
    // Inside the grace both secrets open the key.
    let state =
        [created(p), key_issued(p, key), rotated].iter().fold(PartnerState::default(), partner::evolve);
    assert_eq!(state.keys[&key].hashes_at(now + chrono::Duration::seconds(59)).len(), 2);
    assert_eq!(state.keys[&key].hashes_at(now + chrono::Duration::seconds(60)), vec![&[2u8][..]]);
}
