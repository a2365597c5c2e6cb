//! Properties of the event encoding: every event round-trips, old versions upcast, and no
//! byte string panics the decoder.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use tenantry_domain::codec;
use tenantry_domain::event::*;
use tenantry_domain::limits::{LimitOverrides, Plan};
use tenantry_domain::*;
fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 @.é😀-]{0,24}"
}

fn id<T: From<uuid::Uuid> + std::fmt::Debug>() -> impl Strategy<Value = T> {
    any::<u128>().prop_map(|n| T::from(uuid::Uuid::from_u128(n)))
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::SuperAdmin), Just(Role::PartnerAdmin), Just(Role::Admin), Just(Role::User)]
}

fn plan() -> impl Strategy<Value = Plan> {
    prop_oneof![Just(Plan::Starter), Just(Plan::Professional), Just(Plan::Enterprise)]
}

fn overrides() -> impl Strategy<Value = LimitOverrides> {
    (proptest::option::of(0u64..100), proptest::option::of(any::<u64>())).prop_map(|(a, t)| LimitOverrides {
        max_agents: a,
        tokens_per_month: t,
        ..Default::default()
    })
}

fn settings() -> impl Strategy<Value = Settings> {
    (
        proptest::option::of(text()),
        proptest::collection::vec(text(), 0..3),
        proptest::collection::vec((text(), any::<bool>()), 0..3),
    )
        .prop_map(|(agent_name, allowed_models, feature_flags)| Settings {
            custom: agent_name.as_ref().map(|name| serde_json::json!({ "name": name }).to_string()),
            agent_name,
            system_prompt: None,
            default_model: None,
            allowed_models,
            feature_flags,
        })
}

fn personal() -> impl Strategy<Value = Personal> {
    prop_oneof![
        text().prop_map(Personal::Text),
        proptest::collection::vec(any::<u8>(), 0..60).prop_map(Personal::Sealed),
        Just(Personal::Erased),
    ]
}

fn usage() -> impl Strategy<Value = TokenUsage> {
    (any::<u32>(), any::<u32>())
        .prop_map(|(p, c)| TokenUsage { prompt_tokens: p.into(), completion_tokens: c.into() })
}

fn message_role() -> impl Strategy<Value = MessageRole> {
    prop_oneof![
        Just(MessageRole::User),
        Just(MessageRole::Assistant),
        Just(MessageRole::Tool),
        Just(MessageRole::System)
    ]
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (text(), text(), plan(), proptest::option::of(id()), settings(), overrides()).prop_map(
            |(slug, name, plan, partner_id, settings, limits)| Event::TenantCreated(TenantCreated {
                slug,
                name,
                plan,
                partner_id,
                settings,
                limits,
                ancestors: Vec::new(),
            })
        ),
        (
            proptest::option::of(text()),
            proptest::option::of(plan()),
            proptest::option::of(settings()),
            proptest::option::of(overrides())
        )
            .prop_map(|(name, plan, settings, limits)| Event::TenantUpdated(TenantUpdated {
                name,
                plan,
                settings,
                limits
            })),
        text().prop_map(|reason| Event::TenantSuspended(TenantSuspended { reason })),
        Just(Event::TenantResumed(TenantResumed {})),
        (id(), text(), text(), text(), proptest::collection::vec(id(), 0..3)).prop_map(
            |(agent_id, name, model, system_prompt, tool_ids)| {
                Event::AgentCreated(AgentCreated { agent_id, name, model, system_prompt, tool_ids })
            }
        ),
        (id(), proptest::option::of(text()), proptest::option::of(proptest::collection::vec(id(), 0..2)))
            .prop_map(|(agent_id, name, tool_ids)| {
                Event::AgentUpdated(AgentUpdated {
                    agent_id,
                    name,
                    model: None,
                    system_prompt: None,
                    tool_ids,
                })
            }),
        id().prop_map(|agent_id| Event::AgentArchived(AgentArchived { agent_id })),
        (id(), text(), text(), any::<bool>()).prop_map(|(tool_id, name, endpoint, enabled)| {
            Event::ToolRegistered(ToolRegistered {
                tool_id,
                name,
                description: "d".into(),
                endpoint,
                parameters: "{\"type\":\"object\"}".into(),
                enabled,
            })
        }),
        (id(), proptest::option::of(any::<bool>())).prop_map(|(tool_id, enabled)| Event::ToolUpdated(
            ToolUpdated { tool_id, description: None, endpoint: None, parameters: None, enabled }
        )),
        id().prop_map(|tool_id| Event::ToolRemoved(ToolRemoved { tool_id })),
        (
            id(),
            text(),
            role(),
            proptest::collection::vec(any::<u8>(), 0..40),
            proptest::option::of(id()),
            proptest::collection::vec(text(), 0..3),
            proptest::option::of(0i64..4_000_000_000_000),
        )
            .prop_map(|(key_id, name, role, secret_hash, user_id, scopes, expires)| {
                Event::ApiKeyIssued(ApiKeyIssued {
                    key_id,
                    name,
                    role,
                    secret_hash,
                    user_id,
                    scopes,
                    expires_at: expires.and_then(chrono::DateTime::from_timestamp_millis),
                })
            }),
        id().prop_map(|key_id| Event::ApiKeyRevoked(ApiKeyRevoked { key_id })),
        (id(), proptest::collection::vec(any::<u8>(), 0..40), proptest::option::of(0i64..4_000_000_000_000))
            .prop_map(|(key_id, secret_hash, until)| Event::ApiKeyRotated(ApiKeyRotated {
                key_id,
                secret_hash,
                grace_until: until.and_then(chrono::DateTime::from_timestamp_millis),
            })),
        (
            id(),
            personal(),
            role(),
            proptest::option::of((text(), personal(), proptest::collection::vec(any::<u8>(), 32)))
        )
            .prop_map(|(user_id, email, role, identity)| Event::UserAdded(UserAdded {
                user_id,
                email,
                role,
                identity: identity.map(|(issuer, subject, digest)| ExternalIdentity {
                    issuer,
                    subject,
                    digest
                }),
            })),
        id().prop_map(|user_id| Event::UserErased(UserErased { user_id })),
        (id(), text(), proptest::collection::vec(any::<u8>(), 0..40)).prop_map(
            |(operator_id, name, secret_hash)| {
                Event::OperatorCreated(OperatorCreated { operator_id, name, secret_hash })
            }
        ),
        id().prop_map(|operator_id| Event::OperatorRemoved(OperatorRemoved { operator_id })),
        Just(Event::BootstrapKeyRetired(BootstrapKeyRetired {})),
        (text(), 1u64..1000).prop_map(|(action, reads)| Event::DataRead(DataRead { action, reads })),
        (id(), text(), text(), proptest::option::of(text())).prop_map(
            |(credential_id, name, secret, base_url)| {
                Event::CredentialAdded(CredentialAdded {
                    credential_id,
                    provider: "custom".into(),
                    name,
                    secret,
                    base_url,
                })
            }
        ),
        (id(), text()).prop_map(|(credential_id, secret)| Event::CredentialRotated(CredentialRotated {
            credential_id,
            secret
        })),
        id().prop_map(|credential_id| Event::CredentialRemoved(CredentialRemoved { credential_id })),
        (id(), proptest::option::of(id()), proptest::option::of(personal())).prop_map(
            |(conversation_id, user_id, title)| {
                Event::ConversationRetitled(ConversationRetitled { conversation_id, user_id, title })
            }
        ),
        (id(), any::<bool>()).prop_map(|(conversation_id, archived)| {
            Event::ConversationArchived(ConversationArchived { conversation_id, archived })
        }),
        (id(), text())
            .prop_map(|(partner_id, name)| Event::PartnerRenamed(PartnerRenamed { partner_id, name })),
        id().prop_map(|partner_id| Event::PartnerDeleted(PartnerDeleted { partner_id })),
        (id(), id(), proptest::collection::vec(any::<u8>(), 0..40)).prop_map(
            |(partner_id, key_id, secret_hash)| {
                Event::PartnerKeyIssued(PartnerKeyIssued { partner_id, key_id, secret_hash })
            }
        ),
        (id(), id()).prop_map(|(partner_id, key_id)| Event::PartnerKeyRevoked(PartnerKeyRevoked {
            partner_id,
            key_id
        })),
        (id(), id(), proptest::option::of(0i64..4_000_000_000_000)).prop_map(
            |(partner_id, key_id, until)| {
                Event::PartnerKeyRotated(PartnerKeyRotated {
                    partner_id,
                    key_id,
                    secret_hash: vec![3],
                    grace_until: until.and_then(chrono::DateTime::from_timestamp_millis),
                })
            }
        ),
        (id(), proptest::option::of(personal()), proptest::option::of(role()))
            .prop_map(|(user_id, email, role)| Event::UserUpdated(UserUpdated { user_id, email, role })),
        id().prop_map(|user_id| Event::UserRemoved(UserRemoved { user_id })),
        (id(), id(), proptest::option::of(id()), proptest::option::of(personal())).prop_map(
            |(conversation_id, agent_id, user_id, title)| {
                Event::ConversationOpened(ConversationOpened { conversation_id, agent_id, user_id, title })
            }
        ),
        (
            id(),
            id(),
            message_role(),
            personal(),
            proptest::option::of(text()),
            proptest::option::of(usage()),
            proptest::option::of(id())
        )
            .prop_map(|(conversation_id, message_id, role, content, model, usage, author)| {
                Event::MessageAppended(MessageAppended {
                    conversation_id,
                    message_id,
                    role,
                    content,
                    model,
                    usage,
                    author,
                })
            }),
        (text(), text(), usage(), proptest::option::of(text()), 0i64..4_000_000_000_000).prop_map(
            |(model, kind, usage, request_id, ms)| Event::UsageRecorded(UsageRecorded {
                model,
                kind,
                usage,
                request_id,
                occurred_at: Utc.timestamp_millis_opt(ms).unwrap(),
                cost: None,
            })
        ),
        (text(), proptest::option::of(text()), text()).prop_map(|(action, target, reason)| {
            Event::AccessDenied(AccessDenied { action, target, reason })
        }),
    ]
}

proptest! {
    #[test]
    fn every_event_round_trips_through_postcard(e in event()) {
        let encoded = codec::encode(&e).unwrap();
        prop_assert_eq!(codec::current_version(encoded.event_type), Some(encoded.schema_version));
        let decoded = codec::decode(encoded.event_type, encoded.schema_version, &encoded.payload).unwrap();
        prop_assert_eq!(decoded, e);
    }

    #[test]
    fn random_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..64), t in 0usize..codec::types::ALL.len()) {
        let event_type = codec::types::ALL[t];
        let _ = codec::decode(event_type, codec::current_version(event_type).unwrap(), &bytes);
    }
}

#[test]
fn a_v1_api_key_decodes_as_a_key_acting_as_no_user() {
    let v1 = codec::v1::ApiKeyIssued {
        key_id: ApiKeyId::new(),
        name: "k".into(),
        role: Role::Admin,
        secret_hash: vec![1],
    };
    let event = codec::decode(codec::types::ApiKeyIssued, 1, &codec::to_bytes(&v1).unwrap()).unwrap();
    assert_eq!(
        event,
        Event::ApiKeyIssued(ApiKeyIssued {
            key_id: v1.key_id,
            name: "k".into(),
            role: Role::Admin,
            secret_hash: vec![1],
            user_id: None,
            scopes: vec![],
            expires_at: None,
        })
    );
}

#[test]
fn v2_keys_and_users_decode_unscoped_unexpiring_and_from_no_provider() {
    let key = codec::v2::ApiKeyIssued {
        key_id: ApiKeyId::new(),
        name: "k".into(),
        role: Role::User,
        secret_hash: vec![1],
        user_id: Some(UserId::new()),
    };
    let event = codec::decode(codec::types::ApiKeyIssued, 2, &codec::to_bytes(&key).unwrap()).unwrap();
    assert_eq!(
        event,
        Event::ApiKeyIssued(ApiKeyIssued {
            key_id: key.key_id,
            name: "k".into(),
            role: Role::User,
            secret_hash: vec![1],
            user_id: key.user_id,
            scopes: vec![],
            expires_at: None,
        })
    );
    let user = codec::v2::UserAdded { user_id: UserId::new(), email: "a@x.io".into(), role: Role::Admin };
    let event = codec::decode(codec::types::UserAdded, 2, &codec::to_bytes(&user).unwrap()).unwrap();
    assert_eq!(
        event,
        Event::UserAdded(UserAdded {
            user_id: user.user_id,
            email: "a@x.io".into(),
            role: Role::Admin,
            identity: None
        })
    );
}
