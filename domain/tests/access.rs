//! Decisions about who may act: API keys (scopes, expiry, rotation, revocation), users, and
//! users provisioned from an identity provider's token.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use chrono::{DateTime, Duration, TimeZone, Utc};
use tenantry_domain::command::*;
use tenantry_domain::event::*;
use tenantry_domain::limits::{LimitName, LimitOverrides};
use tenantry_domain::tenant::{self, TenantCommand};
use tenantry_domain::*;
use tenantry_domain::{operator, testing};

mod common;
use common::*;

// ---- API keys ----

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
}

fn key(role: Role, user_id: Option<UserId>) -> IssueApiKey {
    IssueApiKey {
        key_id: ApiKeyId::new(),
        name: "k".into(),
        role,
        secret_hash: vec![1],
        user_id,
        scopes: vec![],
        expires_at: None,
        now: now(),
    }
}

fn issued(k: &IssueApiKey) -> Event {
    Event::ApiKeyIssued(ApiKeyIssued {
        key_id: k.key_id,
        name: k.name.clone(),
        role: k.role,
        secret_hash: k.secret_hash.clone(),
        user_id: k.user_id,
        scopes: k.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
        expires_at: k.expires_at,
    })
}

#[test]
fn a_key_has_a_tenant_role_and_a_user_key_acts_as_an_existing_user() {
    let ctx = admin(TenantId::new());
    let user = UserId::new();
    let past = [tenant_with(5), user_added(user, "u@x.io")];
    let ok = key(Role::User, Some(user));
    given(&past)
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::IssueApiKey(ok.clone())))
        .then(&[issued(&ok)]);
    let stranger = UserId::new();
    given(&past)
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::IssueApiKey(key(Role::User, Some(stranger)))))
        .then_rejected(Rejection::UserNotFound(stranger));
    given(&past)
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::IssueApiKey(key(Role::User, None))))
        .then_rejected(Rejection::invalid("user_id", "a user key names the user it acts as"));
    given(&past)
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::IssueApiKey(key(Role::SuperAdmin, None))))
        .then_rejected(Rejection::invalid("role", "must be `admin` or `user`"));
}

#[test]
fn keys_stop_at_the_limit_and_revoking_frees_a_slot() {
    let ctx = admin(TenantId::new());
    let first = key(Role::Admin, None);
    let past = [created(LimitOverrides { max_api_keys: Some(1), ..Default::default() }), issued(&first)];
    given(&past)
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::IssueApiKey(key(Role::Admin, None))))
        .then_rejected(Rejection::LimitReached { limit: LimitName::MaxApiKeys, max: 1 });
    let revoke = TenantCommand::RevokeApiKey(RevokeApiKey { key_id: first.key_id });
    given(&past)
        .when(|s| tenant::decide(&ctx, s, &revoke))
        .then(&[Event::ApiKeyRevoked(ApiKeyRevoked { key_id: first.key_id })]);
    let mut revoked = past.to_vec();
    revoked.push(Event::ApiKeyRevoked(ApiKeyRevoked { key_id: first.key_id }));
    given(&revoked)
        .when(|s| tenant::decide(&ctx, s, &revoke))
        .then_rejected(Rejection::ApiKeyNotFound(first.key_id));
    assert_eq!(
        tenant::decide(&ctx, &state_of(&revoked), &TenantCommand::IssueApiKey(key(Role::Admin, None)))
            .map(|e| e.len()),
        Ok(1)
    );
}

// ---- users ----

#[test]
fn add_user_once_per_email_and_never_with_a_platform_role() {
    let ctx = admin(TenantId::new());
    let first = UserId::new();
    let past = [tenant_with(5), user_added(first, "Ann@example.com")];
    let same = AddUser { user_id: UserId::new(), email: "ann@EXAMPLE.com".into(), role: Role::User };
    given(&past)
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::AddUser(same.clone())))
        .then_rejected(Rejection::EmailTaken);
    let boss = AddUser { user_id: UserId::new(), email: "b@example.com".into(), role: Role::SuperAdmin };
    given(&past)
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::AddUser(boss.clone())))
        .then_rejected(Rejection::invalid("role", "must be `admin` or `user`"));
    let ok = AddUser { role: Role::Admin, ..boss };
    given(&past).when(|s| tenant::decide(&ctx, s, &TenantCommand::AddUser(ok.clone()))).then(&[
        Event::UserAdded(UserAdded {
            user_id: ok.user_id,
            email: "b@example.com".into(),
            role: Role::Admin,
            identity: None,
        }),
    ]);
}

#[test]
fn users_stop_at_the_limit() {
    let ctx = admin(TenantId::new());
    let past = [
        created(LimitOverrides { max_users: Some(1), ..Default::default() }),
        user_added(UserId::new(), "a@x.io"),
    ];
    let next = AddUser { user_id: UserId::new(), email: "b@x.io".into(), role: Role::User };
    given(&past)
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::AddUser(next.clone())))
        .then_rejected(Rejection::LimitReached { limit: LimitName::MaxUsers, max: 1 });
}

#[test]
fn update_user_changes_email_and_role_within_the_tenant_roles() {
    let ctx = admin(TenantId::new());
    let (ann, bob) = (UserId::new(), UserId::new());
    let past = [tenant_with(5), user_added(ann, "ann@x.io"), user_added(bob, "bob@x.io")];
    let change = UpdateUser { user_id: ann, email: Some("ann2@x.io".into()), role: Some(Role::Admin) };
    given(&past).when(|s| tenant::decide(&ctx, s, &TenantCommand::UpdateUser(change.clone()))).then(&[
        Event::UserUpdated(UserUpdated {
            user_id: ann,
            email: Some("ann2@x.io".into()),
            role: Some(Role::Admin),
        }),
    ]);
    let taken = UpdateUser { user_id: ann, email: Some("BOB@x.io".into()), role: None };
    given(&past)
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::UpdateUser(taken.clone())))
        .then_rejected(Rejection::EmailTaken);
    let boss = UpdateUser { user_id: ann, email: None, role: Some(Role::PartnerAdmin) };
    given(&past)
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::UpdateUser(boss.clone())))
        .then_rejected(Rejection::invalid("role", "must be `admin` or `user`"));
}

#[test]
fn remove_user_once() {
    let ctx = admin(TenantId::new());
    let ann = UserId::new();
    let remove = TenantCommand::RemoveUser(RemoveUser { user_id: ann });
    given(&[tenant_with(5), user_added(ann, "a@x.io")])
        .when(|s| tenant::decide(&ctx, s, &remove))
        .then(&[Event::UserRemoved(UserRemoved { user_id: ann })]);
    given(&[tenant_with(5), user_added(ann, "a@x.io"), Event::UserRemoved(UserRemoved { user_id: ann })])
        .when(|s| tenant::decide(&ctx, s, &remove))
        .then_rejected(Rejection::UserNotFound(ann));
}

#[test]
fn erasure_is_owed_by_a_suspended_tenant_and_repeats_harmlessly() {
    let ctx = admin(TenantId::new());
    let ann = UserId::new();
    let erase = TenantCommand::EraseUser(EraseUser { user_id: ann });
    let past = [
        tenant_with(5),
        user_added(ann, "a@x.io"),
        Event::TenantSuspended(TenantSuspended { reason: String::new() }),
    ];
    given(&past)
        .when(|s| tenant::decide(&ctx, s, &erase))
        .then(&[Event::UserErased(UserErased { user_id: ann })]);
    let mut erased = past.to_vec();
    erased.push(Event::UserErased(UserErased { user_id: ann }));
    given(&erased).when(|s| tenant::decide(&ctx, s, &erase)).then(&[]);
    let nobody = UserId::new();
    given(&past)
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::EraseUser(EraseUser { user_id: nobody })))
        .then_rejected(Rejection::UserNotFound(nobody));
}

#[test]
fn scopes_are_kept_sorted_once_and_an_expiry_must_lie_ahead() {
    let ctx = admin(TenantId::new());
    let past = [tenant_with(5)];
    let scoped = IssueApiKey {
        scopes: vec![Scope::UsageWrite, Scope::ConversationsWrite, Scope::UsageWrite],
        expires_at: Some(now() + Duration::days(30)),
        ..key(Role::Admin, None)
    };
    let expected =
        IssueApiKey { scopes: vec![Scope::ConversationsWrite, Scope::UsageWrite], ..scoped.clone() };
    given(&past)
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::IssueApiKey(scoped.clone())))
        .then(&[issued(&expected)]);
    let stale = IssueApiKey { expires_at: Some(now()), ..key(Role::Admin, None) };
    given(&past)
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::IssueApiKey(stale.clone())))
        .then_rejected(Rejection::invalid("expires_at", "must lie in the future"));
}

fn rotate(key_id: ApiKeyId, grace_seconds: u64) -> RotateApiKey {
    RotateApiKey { key_id, secret_hash: vec![2], grace_seconds, now: now() }
}

#[test]
fn rotation_replaces_the_secret_and_keeps_the_old_one_only_for_the_grace_asked() {
    let ctx = admin(TenantId::new());
    let k = key(Role::Admin, None);
    let past = [tenant_with(5), issued(&k)];
    let rotated = ApiKeyRotated {
        key_id: k.key_id,
        secret_hash: vec![2],
        grace_until: Some(now() + Duration::seconds(300)),
    };
    given(&past)
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::RotateApiKey(rotate(k.key_id, 300))))
        .then(&[Event::ApiKeyRotated(rotated.clone())]);
    given(&past)
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::RotateApiKey(rotate(k.key_id, 0))))
        .then(&[Event::ApiKeyRotated(ApiKeyRotated { grace_until: None, ..rotated.clone() })]);
    given(&past)
        .when(|s| {
            tenant::decide(
                &ctx,
                s,
                &TenantCommand::RotateApiKey(rotate(k.key_id, tenant::MAX_ROTATION_GRACE_SECONDS + 1)),
            )
        })
        .then_rejected(Rejection::invalid("grace_seconds", "at most 604800 (a week)"));
    let stranger = ApiKeyId::new();
    given(&past)
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::RotateApiKey(rotate(stranger, 0))))
        .then_rejected(Rejection::ApiKeyNotFound(stranger));
    let revoked = [tenant_with(5), issued(&k), Event::ApiKeyRevoked(ApiKeyRevoked { key_id: k.key_id })];
    given(&revoked)
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::RotateApiKey(rotate(k.key_id, 0))))
        .then_rejected(Rejection::ApiKeyNotFound(k.key_id));

    // What the command side then accepts: both secrets inside the grace, the new one after.
    let state = state_of(&[tenant_with(5), issued(&k), Event::ApiKeyRotated(rotated)]);
    let entry = &state.api_keys[&k.key_id];
    assert_eq!(entry.hashes_at(now() + Duration::seconds(299)), vec![&[2u8][..], &[1u8][..]]);
    assert_eq!(entry.hashes_at(now() + Duration::seconds(300)), vec![&[2u8][..]]);
}

fn provision(digest: u8) -> ProvisionUser {
    ProvisionUser {
        user_id: UserId::new(),
        issuer: "https://id.example".into(),
        subject: format!("sub-{digest}"),
        digest: vec![digest; 32],
        email: Some("ann@example.com".into()),
        role: Role::User,
    }
}

fn provisioned(c: &ProvisionUser, email: &str) -> Event {
    Event::UserAdded(UserAdded {
        user_id: c.user_id,
        email: email.into(),
        role: c.role,
        identity: Some(ExternalIdentity {
            issuer: c.issuer.clone(),
            subject: Personal::Text(c.subject.clone()),
            digest: c.digest.clone(),
        }),
    })
}

#[test]
fn a_subject_is_provisioned_once_and_stays_refused_once_removed_or_erased() {
    let ctx = platform(TenantId::new());
    let first = provision(7);
    given(&[tenant_with(5)])
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::ProvisionUser(first.clone())))
        .then(&[provisioned(&first, "ann@example.com")]);
    // Another token of the same subject (a new user id is offered) writes nothing.
    let past = [tenant_with(5), provisioned(&first, "ann@example.com")];
    given(&past).when(|s| tenant::decide(&ctx, s, &TenantCommand::ProvisionUser(provision(7)))).then(&[]);
    assert_eq!(state_of(&past).identity_user(&[7; 32]).map(|(id, _)| id), Some(first.user_id));
    for gone in [
        Event::UserRemoved(UserRemoved { user_id: first.user_id }),
        Event::UserErased(UserErased { user_id: first.user_id }),
    ] {
        let mut history = past.to_vec();
        history.push(gone);
        given(&history)
            .when(|s| tenant::decide(&ctx, s, &TenantCommand::ProvisionUser(provision(7))))
            .then_rejected(Rejection::IdentityRetired(first.user_id));
    }
}

#[test]
fn provisioning_counts_against_max_users_ignores_a_bad_email_and_keeps_tenant_roles() {
    let ctx = platform(TenantId::new());
    let full = [
        created(LimitOverrides { max_users: Some(1), ..Default::default() }),
        user_added(UserId::new(), "a@x.io"),
    ];
    given(&full)
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::ProvisionUser(provision(1))))
        .then_rejected(Rejection::LimitReached { limit: LimitName::MaxUsers, max: 1 });
    let odd = ProvisionUser { email: Some("not an address".into()), ..provision(2) };
    given(&[tenant_with(5)])
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::ProvisionUser(odd.clone())))
        .then(&[provisioned(&odd, "")]);
    let boss = ProvisionUser { role: Role::SuperAdmin, ..provision(3) };
    given(&[tenant_with(5)])
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::ProvisionUser(boss.clone())))
        .then_rejected(Rejection::invalid("role", "must be `admin` or `user`"));
    given(&[tenant_with(5), Event::TenantSuspended(TenantSuspended { reason: String::new() })])
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::ProvisionUser(provision(4))))
        .then_rejected(Rejection::TenantSuspended);
    given(&[])
        .when(|s| tenant::decide(&ctx, s, &TenantCommand::ProvisionUser(provision(4))))
        .then_rejected(Rejection::TenantNotFound);
}

// ---- operators ----

fn create_operator(id: OperatorId) -> operator::OperatorCommand {
    operator::OperatorCommand::Create { operator_id: id, name: " ops-1 ".into(), secret_hash: vec![9] }
}

fn operators_given(
    events: &[Event],
) -> testing::Scenario<
    operator::OperatorsState,
    fn(operator::OperatorsState, &Event) -> operator::OperatorsState,
> {
    testing::Scenario::new(operator::OperatorsState::default(), operator::evolve as fn(_, &_) -> _)
        .given(events)
}

#[test]
fn operators_are_made_by_the_platform_alone_and_the_platform_keeps_a_way_in() {
    let ctx = platform(TenantId::PLATFORM);
    let (first, second) = (OperatorId::new(), OperatorId::new());
    let created = |id| {
        Event::OperatorCreated(OperatorCreated {
            operator_id: id,
            name: "ops-1".into(),
            secret_hash: vec![9],
        })
    };
    operators_given(&[]).when(|s| operator::decide(&ctx, s, &create_operator(first))).then(&[created(first)]);
    operators_given(&[])
        .when(|s| operator::decide(&admin(TenantId::new()), s, &create_operator(first)))
        .then_rejected(Rejection::Forbidden);
    operators_given(&[created(first)])
        .when(|s| operator::decide(&ctx, s, &create_operator(first)))
        .then_rejected(Rejection::OperatorAlreadyExists(first));
    // The bootstrap key is retired only once an operator exists, and only once.
    operators_given(&[])
        .when(|s| operator::decide(&ctx, s, &operator::OperatorCommand::RetireBootstrap))
        .then_rejected(Rejection::LastWayIn);
    let retired = Event::BootstrapKeyRetired(BootstrapKeyRetired {});
    operators_given(&[created(first)])
        .when(|s| operator::decide(&ctx, s, &operator::OperatorCommand::RetireBootstrap))
        .then(std::slice::from_ref(&retired));
    operators_given(&[created(first), retired.clone()])
        .when(|s| operator::decide(&ctx, s, &operator::OperatorCommand::RetireBootstrap))
        .then(&[]);
    // Then the last operator stays; with two, one may go, and once gone it is gone.
    let remove = |id| operator::OperatorCommand::Remove { operator_id: id };
    operators_given(&[created(first), retired.clone()])
        .when(|s| operator::decide(&ctx, s, &remove(first)))
        .then_rejected(Rejection::LastWayIn);
    let removed = Event::OperatorRemoved(OperatorRemoved { operator_id: first });
    operators_given(&[created(first), created(second), retired.clone()])
        .when(|s| operator::decide(&ctx, s, &remove(first)))
        .then(std::slice::from_ref(&removed));
    operators_given(&[created(first), created(second), retired, removed])
        .when(|s| operator::decide(&ctx, s, &remove(first)))
        .then_rejected(Rejection::OperatorNotFound(first));
}
