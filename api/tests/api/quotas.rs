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
