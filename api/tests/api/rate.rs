//! Request rates charged to the credential that makes the requests.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::client::Api;
use crate::support::BOOTSTRAP;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tenant_past_its_request_rate_gets_429_and_others_do_not() {
    use Method as M;
    let api = Api::start(None).await;
    let (_, a, _) = api
        .call(
            BOOTSTRAP,
            M::POST,
            "/v1/tenants",
            Some(json!({"slug": "busy", "name": "Busy", "limits": {"requests_per_minute": 5}})),
        )
        .await;
    let (_, b, _) = api
        .call(
            BOOTSTRAP,
            M::POST,
            "/v1/tenants",
            Some(json!({"slug": "calm", "name": "Calm", "limits": {"requests_per_minute": 5}})),
        )
        .await;
    let (ta, tb) = (a["id"].as_str().unwrap().to_owned(), b["id"].as_str().unwrap().to_owned());
    let key = |t: String| {
        let api = &api;
        async move {
            let (s, k, _) = api
                .call(
                    BOOTSTRAP,
                    M::POST,
                    &format!("/v1/tenants/{t}/api-keys"),
                    Some(json!({"name": "k", "role": "admin"})),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED, "{k}");
            k["key"].as_str().unwrap().to_owned()
        }
    };
    let (key_a, key_b) = (key(ta.clone()).await, key(tb.clone()).await);
    // Nobody drains B's bucket: not requests without a key, not A's key aimed at B's
    // path, not percent-encoded ids or unknown routes under B's id.
    for path in [
        format!("/v1/tenants/{tb}/agents"),
        format!("/v1/tenants/%7B{tb}%7D/agents"),
        format!("/v1/tenants/{tb}/no-such-route"),
    ] {
        for _ in 0..6 {
            let (s, _, _) = api.call(&key_a, M::GET, &path, None).await;
            assert_ne!(s, StatusCode::OK, "{path}");
        }
    }
    for _ in 0..6 {
        let (s, _, _) = api.call("no-such-key", M::GET, &format!("/v1/tenants/{tb}/agents"), None).await;
        assert!(s == StatusCode::UNAUTHORIZED || s == StatusCode::TOO_MANY_REQUESTS, "{s}");
    }
    let (s, _) = api.get_at(&key_b, &format!("/v1/tenants/{tb}"), 1).await;
    assert_eq!(s, StatusCode::OK, "B's own key still has its whole bucket");
    // A's key spent A's bucket on the requests above (18 of them, past 5 a minute).
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let (s, body) = api.get_at(&key_a, &format!("/v1/tenants/{ta}"), 1).await;
        statuses.push((s, body));
    }
    let (s, problem) = &statuses[1];
    assert_eq!(
        (*s, problem["limit"].as_str(), problem["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("requests_per_minute"), Some("limit_exceeded"))
    );
    let res =
        api.client.get(format!("{}/v1/tenants/{ta}", api.base)).bearer_auth(&key_a).send().await.unwrap();
    let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // The operator has a bucket of its own: A's flood does not stop it acting on A.
    let (s, _) = api.get_at(BOOTSTRAP, &format!("/v1/tenants/{ta}"), 1).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = api.call(BOOTSTRAP, M::POST, &format!("/v1/tenants/{ta}/suspend"), None).await;
    assert_eq!(s, StatusCode::OK, "an operator's suspend is not refused for the tenant's flood");
}
