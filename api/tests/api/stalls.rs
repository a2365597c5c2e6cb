//! A tenant whose events a read model cannot hold stalls that read model for that tenant
//! alone, with the reason in `status`; and authentication does not trust a read model that
//! may be stuck: a revoked key or a removed user fails from the moment the command is
//! answered.

use reqwest::{Method, StatusCode};
use serde_json::json;
use tenantry_domain::event::AgentCreated;
use tenantry_domain::{AgentId, Event, EventId, TenantContext, TenantId};
use tenantry_store::testing::Harness;
use tenantry_store::{AppendRequest, ExpectedVersion, NewEvent};

use crate::client::Api;
use crate::support::BOOTSTRAP;

/// Only PostgreSQL refuses a NUL in text: the fault the sweep found, written around the
/// API's own refusal of it, as an older version could have stored it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tenant_the_read_model_cannot_hold_stalls_alone_and_retired_keys_fail_at_once() {
    use Method as M;
    let Some(h) = Harness::postgres().await else { return };
    let api = Api::start(Some(h.url.clone())).await;
    let (t, _) = api.create(BOOTSTRAP, "/v1/tenants", json!({"slug": "stuck", "name": "Stuck"})).await;
    let t = t["id"].as_str().unwrap().to_owned();
    let keys = format!("/v1/tenants/{t}/api-keys");
    let (admin, _) = api.create(BOOTSTRAP, &keys, json!({"name": "admin", "role": "admin"})).await;
    let admin = admin["key"].as_str().unwrap().to_owned();
    let (spare, _) = api.create(&admin, &keys, json!({"name": "spare", "role": "admin"})).await;
    let (user, _) = api
        .create(
            &admin,
            &format!("/v1/tenants/{t}/users"),
            json!({"email": "u@stuck.example", "role": "user"}),
        )
        .await;
    let (user_key, _) =
        api.create(&admin, &keys, json!({"name": "u", "role": "user", "user_id": user["id"]})).await;

    let tenant: TenantId = t.parse().unwrap();
    let bad = Event::AgentCreated(AgentCreated {
        agent_id: AgentId::new(),
        name: "nul\u{0}name".into(),
        model: "m".into(),
        system_prompt: String::new(),
        tool_ids: Vec::new(),
    });
    let store = api.projections.store().clone();
    let written = store
        .append(
            &TenantContext::system(tenant),
            AppendRequest::to_stream(
                "tenant".parse().unwrap(),
                ExpectedVersion::Any,
                vec![NewEvent::new(EventId::new(), &bad).unwrap()],
            ),
        )
        .await
        .unwrap();

    // The directory stalls for this tenant, at that event, with the reason.
    let mut stalled = None;
    for _ in 0..200 {
        let status = api.projections.status().await.unwrap();
        let directory = status.iter().find(|s| s.projector == "directory").unwrap();
        if let Some(s) = directory.stalled.iter().find(|s| s.tenant == t) {
            stalled = Some(s.clone());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let stalled = stalled.expect("the directory stalls for the tenant");
    assert_eq!(stalled.position, written.last_position);
    assert!(stalled.reason.contains("agent"), "{}", stalled.reason);

    // Other tenants go on.
    let (other, _) = api.create(BOOTSTRAP, "/v1/tenants", json!({"slug": "fine", "name": "Fine"})).await;
    let other = other["id"].as_str().unwrap().to_owned();
    let (other_key, _) = api
        .create(BOOTSTRAP, &format!("/v1/tenants/{other}/api-keys"), json!({"name": "a", "role": "admin"}))
        .await;
    api.create(
        other_key["key"].as_str().unwrap(),
        &format!("/v1/tenants/{other}/agents"),
        json!({"name": "ok", "model": "m"}),
    )
    .await;

    // A revocation is answered, not 503, and the key fails from that moment.
    let spare_key = spare["key"].as_str().unwrap();
    let (s, _, _) = api.call(spare_key, M::GET, &format!("/v1/tenants/{t}"), None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, body, _) =
        api.call(&admin, M::DELETE, &format!("{keys}/{}", spare["id"].as_str().unwrap()), None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, _, _) = api.call(spare_key, M::GET, &format!("/v1/tenants/{t}"), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "a revoked key fails though the read model is stuck");
    // So does a removed user's key.
    let (s, body, _) = api
        .call(&admin, M::DELETE, &format!("/v1/tenants/{t}/users/{}", user["id"].as_str().unwrap()), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, _, _) =
        api.call(user_key["key"].as_str().unwrap(), M::GET, &format!("/v1/tenants/{t}/agents"), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "a removed user's key fails though the read model is stuck");
    // A create on the stuck tenant stands and says so: 202 with its id.
    let (s, body, _) = api
        .call(
            &admin,
            M::POST,
            &format!("/v1/tenants/{t}/agents"),
            Some(json!({"name": "later", "model": "m"})),
        )
        .await;
    assert_eq!((s, body["id"].is_string()), (StatusCode::ACCEPTED, true), "{body}");
}
