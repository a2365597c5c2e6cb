//! Daily calls and stored bytes.

use reqwest::{Method, StatusCode};
use serde_json::json;
use tenantry_store::testing::Harness;

use crate::client::Api;
use crate::support::BOOTSTRAP;

/// Stored bytes and API calls per day are decided with each command, exactly.
async fn daily_calls_and_stored_bytes(api: Api) {
    use Method as M;
    let (_, t, _) = api
        .call(
            BOOTSTRAP,
            M::POST,
            "/v1/tenants",
            Some(json!({"slug": "calls", "name": "C", "limits": {"api_calls_per_day": 4}})),
        )
        .await;
    let t = t["id"].as_str().unwrap().to_owned();
    let mut statuses = Vec::new();
    for i in 0..6 {
        let (s, body, _) = api
            .call(
                BOOTSTRAP,
                M::POST,
                &format!("/v1/tenants/{t}/agents"),
                Some(json!({"name": format!("a{i}"), "model": "m"})),
            )
            .await;
        statuses.push(s);
        if s == StatusCode::TOO_MANY_REQUESTS {
            assert!(body.to_string().contains("api_calls_per_day"), "{body}");
        }
    }
    assert_eq!(&statuses[..4], &[StatusCode::CREATED; 4]);
    assert_eq!(&statuses[4..], &[StatusCode::TOO_MANY_REQUESTS; 2]);
    let res = api
        .client
        .post(format!("{}/v1/tenants/{t}/tools", api.base))
        .bearer_auth(BOOTSTRAP)
        .json(&json!({"name": "t", "endpoint": "https://x.example"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&retry), "until the next UTC midnight: {retry}");
    // Erasure is owed whatever the usage.
    let (s, _, _) = api.call(BOOTSTRAP, M::POST, &format!("/v1/tenants/{t}/suspend"), Some(json!({}))).await;
    assert_eq!(s, StatusCode::OK, "the platform's own commands are not the tenant's calls");

    let (_, t, _) = api
        .call(
            BOOTSTRAP,
            M::POST,
            "/v1/tenants",
            Some(json!({"slug": "bytes", "name": "B", "limits": {"storage_bytes": 4000}})),
        )
        .await;
    let t = t["id"].as_str().unwrap().to_owned();
    let (_, agent, _) = api
        .call(
            BOOTSTRAP,
            M::POST,
            &format!("/v1/tenants/{t}/agents"),
            Some(json!({"name": "a", "model": "m"})),
        )
        .await;
    let (_, conv, _) = api
        .call(
            BOOTSTRAP,
            M::POST,
            &format!("/v1/tenants/{t}/conversations"),
            Some(json!({"agent_id": agent["id"]})),
        )
        .await;
    let path = format!("/v1/tenants/{t}/conversations/{}/messages", conv["id"].as_str().unwrap());
    let mut stored = 0;
    let mut refused = None;
    for _ in 0..20 {
        let (s, body, _) = api
            .call(BOOTSTRAP, M::POST, &path, Some(json!({"role": "assistant", "content": "x".repeat(700)})))
            .await;
        if s == StatusCode::CREATED {
            stored += 1;
        } else {
            refused = Some((s, body));
            break;
        }
    }
    let (s, body) = refused.expect("the storage limit is reached");
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert!(body.to_string().contains("storage_bytes"), "{body}");
    assert!((3..=5).contains(&stored), "about 4000 bytes of 700-byte messages: {stored}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn daily_calls_and_stored_bytes_are_limited_on_sqlite() {
    daily_calls_and_stored_bytes(Api::start(None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn daily_calls_and_stored_bytes_are_limited_on_postgres() {
    let Some(h) = Harness::postgres().await else { return };
    daily_calls_and_stored_bytes(Api::start(Some(h.url.clone())).await).await;
}

/// Refusals are audited without charging their target, and a flood of one refusal is one
/// record: another tenant's key cannot fill a tenant's storage or its shown calls.
async fn refusals_cost_the_target_nothing(api: Api) {
    use Method as M;
    let (victim, _) = api
        .create(
            BOOTSTRAP,
            "/v1/tenants",
            json!({"slug": "victim", "name": "V", "limits": {"storage_bytes": 8000}}),
        )
        .await;
    let victim = victim["id"].as_str().unwrap().to_owned();
    let (vk, _) = api
        .create(BOOTSTRAP, &format!("/v1/tenants/{victim}/api-keys"), json!({"name": "a", "role": "admin"}))
        .await;
    let vk = vk["key"].as_str().unwrap().to_owned();
    let (other, _) = api.create(BOOTSTRAP, "/v1/tenants", json!({"slug": "prober", "name": "P"})).await;
    let other = other["id"].as_str().unwrap().to_owned();
    let (pk, _) = api
        .create(BOOTSTRAP, &format!("/v1/tenants/{other}/api-keys"), json!({"name": "a", "role": "admin"}))
        .await;
    let pk = pk["key"].as_str().unwrap().to_owned();
    let (_, _, at) =
        api.call(&vk, M::PATCH, &format!("/v1/tenants/{victim}/settings"), Some(json!({}))).await;
    let (_, quotas_before) = api.get_at(&vk, &format!("/v1/tenants/{victim}/quotas"), at.unwrap()).await;
    // 100 refusals of one request, folded into one record.
    for _ in 0..100 {
        let (s, _, _) = api.call(&pk, M::GET, &format!("/v1/tenants/{victim}/agents"), None).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
    // 150 distinct refusals, each recorded: before, each stored its bytes against the victim
    // (150 records of some 100 bytes are well past its 8,000).
    for _ in 0..150 {
        let path = format!("/v1/tenants/{victim}/agents/{}", crate::keys::uuid_like());
        let (s, _, _) = api.call(&pk, M::GET, &path, None).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
    let (agent, at) = api
        .create(&vk, &format!("/v1/tenants/{victim}/agents"), json!({"name": "still", "model": "m"}))
        .await;
    assert_eq!(agent["name"], "still", "the victim's storage is its own");
    let (_, quotas_after) = api.get_at(&vk, &format!("/v1/tenants/{victim}/quotas"), at).await;
    let used = |q: &serde_json::Value, name: &str| {
        q["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["limit"] == name)
            .map(|l| l["used"].as_i64().unwrap())
            .unwrap()
    };
    assert_eq!(
        used(&quotas_after, "api_calls_per_day"),
        used(&quotas_before, "api_calls_per_day") + 1,
        "one call: the victim's own create"
    );
    let (_, audit) = api.get_at(BOOTSTRAP, &format!("/v1/tenants/{victim}/audit?limit=200"), at).await;
    let denied: Vec<_> =
        audit["items"].as_array().unwrap().iter().filter(|e| e["outcome"] == "denied").collect();
    assert_eq!(denied.len(), 151, "a flood of one refusal is one record, the others one each");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refusals_cost_the_target_nothing_on_sqlite() {
    refusals_cost_the_target_nothing(Api::start(None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refusals_cost_the_target_nothing_on_postgres() {
    let Some(h) = Harness::postgres().await else { return };
    refusals_cost_the_target_nothing(Api::start(Some(h.url.clone())).await).await;
}
