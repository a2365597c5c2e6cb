//! The contract every route keeps, and the defects an outside sweep found.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tenantry_store::testing::Harness;

use crate::client::Api;
use crate::support::BOOTSTRAP;

/// The defects an outside sweep found, each pinned: bad input is a typed 4xx and stops
/// nobody; errors are problems with a code; settings patch by merge; a suspended tenant
/// is closed to its own keys; exports carry no key hashes.
async fn contract(api: Api) {
    use Method as M;
    let (s, t, _) =
        api.call(BOOTSTRAP, M::POST, "/v1/tenants", Some(json!({"slug": "sweep", "name": "Sweep"}))).await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    let t = t["id"].as_str().unwrap().to_owned();
    let (_, k, _) = api
        .call(
            BOOTSTRAP,
            M::POST,
            &format!("/v1/tenants/{t}/api-keys"),
            Some(json!({"name": "k", "role": "admin"})),
        )
        .await;
    let key = k["key"].as_str().unwrap().to_owned();

    // GET /v1/me says who a credential is.
    let (s, me, _) = api.call(&key, M::GET, "/v1/me", None).await;
    assert_eq!(
        (s, me["role"].as_str(), me["tenant_id"].as_str()),
        (StatusCode::OK, Some("admin"), Some(t.as_str()))
    );
    assert_eq!(me["key_id"], k["id"]);
    let (_, me, _) = api.call(BOOTSTRAP, M::GET, "/v1/me", None).await;
    assert_eq!((me["role"].as_str(), me["tenant_id"].as_str()), (Some("super_admin"), None));

    // A NUL character anywhere is refused at the edge, and the tenant's read models
    // keep flowing: a key revoked afterwards fails at once.
    for (path, body) in [
        (format!("/v1/tenants/{t}/agents"), json!({"name": "a\u{0}b", "model": "m"})),
        (format!("/v1/tenants/{t}/users"), json!({"email": "x\u{0}@y.io", "role": "user"})),
        (format!("/v1/tenants/{t}"), json!({"name": "n\u{0}"})),
    ] {
        let (s, p, _) =
            api.call(&key, if path.ends_with(&t) { M::PATCH } else { M::POST }, &path, Some(body)).await;
        assert_eq!(
            (s, p["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed")),
            "{path}: {p}"
        );
        assert!(p["field"].is_string(), "{p}");
    }
    let (s, agent, _) = api
        .call(&key, M::POST, &format!("/v1/tenants/{t}/agents"), Some(json!({"name": "ok", "model": "m"})))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{agent}");
    let agent = agent["id"].as_str().unwrap().to_owned();
    let (s, conv, _) = api
        .call(&key, M::POST, &format!("/v1/tenants/{t}/conversations"), Some(json!({"agent_id": agent})))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{conv}");
    let conv = conv["id"].as_str().unwrap().to_owned();
    let msgs = format!("/v1/tenants/{t}/conversations/{conv}/messages");
    let (s, p, _) = api.call(&key, M::POST, &msgs, Some(json!({"role": "user", "content": "\u{0}"}))).await;
    assert_eq!((s, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("content")));
    // Token counts are bounded per record; past the bound is 422, not an overflow.
    let huge = json!({"role": "assistant", "content": "x", "model": "m", "usage": {"prompt_tokens": 1_000_000_000_001u64, "completion_tokens": 0}});
    let (s, p, _) = api.call(&key, M::POST, &msgs, Some(huge)).await;
    assert_eq!((s, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("usage.prompt_tokens")));
    let (s, p, _) = api.call(&key, M::POST, &format!("/v1/tenants/{t}/usage"), Some(json!({"model": "m", "kind": "chat", "prompt_tokens": u64::MAX, "completion_tokens": u64::MAX}))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    // A request id recorded before with other content is 422, not a silent no-op.
    let usage = format!("/v1/tenants/{t}/usage");
    let (s, _, _) = api.call(&key, M::POST, &usage, Some(json!({"model": "m", "kind": "chat", "prompt_tokens": 1, "completion_tokens": 1, "request_id": "q1"}))).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, p, _) = api.call(&key, M::POST, &usage, Some(json!({"model": "m", "kind": "chat", "prompt_tokens": 2, "completion_tokens": 1, "request_id": "q1"}))).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("idempotency_key_reused")));
    let (s, p, _) = api.call(&key, M::GET, &format!("/v1/tenants/{t}/usage?from=%00"), None).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::BAD_REQUEST, Some("bad_request")), "{p}");

    // Limits have ranges: one that would have panicked the limiter is 422, and the
    // limiter keeps working for everyone.
    let (s, p, _) = api
        .call(
            BOOTSTRAP,
            M::PATCH,
            &format!("/v1/tenants/{t}"),
            Some(json!({"limits": {"max_concurrent_requests": 4_611_686_018_427_387_904u64}})),
        )
        .await;
    assert_eq!(
        (s, p["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("limits.max_concurrent_requests"))
    );
    let (s, _, rev) = api.call(&key, M::GET, &format!("/v1/tenants/{t}/agents"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(rev.is_none());

    // Settings are a merge patch: naming only the flags keeps the models.
    let settings = format!("/v1/tenants/{t}/settings");
    let (s, _, _) = api
        .call(
            &key,
            M::PATCH,
            &settings,
            Some(json!({"allowed_models": ["m-large"], "default_model": "m-large"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, pos) =
        api.call(&key, M::PATCH, &settings, Some(json!({"feature_flags": {"beta": true}}))).await;
    assert_eq!(s, StatusCode::OK);
    let (_, got) = api.get_at(&key, &settings, pos.unwrap()).await;
    assert_eq!(got["allowed_models"], json!(["m-large"]), "{got}");
    assert_eq!(got["default_model"], "m-large");
    assert_eq!(got["feature_flags"], json!({"beta": true}));
    let (_, _, pos) = api.call(&key, M::PATCH, &settings, Some(json!({"default_model": null}))).await;
    let (_, got) = api.get_at(&key, &settings, pos.unwrap()).await;
    assert_eq!(
        (got["default_model"].clone(), got["allowed_models"].clone()),
        (Value::Null, json!(["m-large"]))
    );

    // Every error is a problem with a code: unknown routes, wrong methods, no key.
    for (method, path, status, code) in [
        (M::GET, "/v1/no-such-route".to_owned(), StatusCode::NOT_FOUND, "not_found"),
        (M::PUT, format!("/v1/tenants/{t}/agents"), StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
    ] {
        let res =
            api.client.request(method, format!("{}{path}", api.base)).bearer_auth(&key).send().await.unwrap();
        assert_eq!(res.status(), status, "{path}");
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["code"], code);
    }
    let res = api.client.get(format!("{}/v1/tenants/{t}/agents", api.base)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    let res = api
        .client
        .get(format!("{}/healthz", api.base))
        .header("x-request-id", "req-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "req-123", "a request id is echoed");

    // Exports leave API key hashes out.
    let res =
        api.client.get(format!("{}/v1/tenants/{t}/export", api.base)).bearer_auth(&key).send().await.unwrap();
    let text = res.text().await.unwrap();
    assert!(text.contains("apikey.issued") && !text.contains("secret_hash"), "{text}");

    // A suspended tenant is closed to its own keys and open to operators.
    let (s, _, _) = api.call(BOOTSTRAP, M::POST, &format!("/v1/tenants/{t}/suspend"), None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, p, _) = api.call(&key, M::GET, &format!("/v1/tenants/{t}/agents"), None).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")), "{p}");
    let (s, _, _) = api.call(BOOTSTRAP, M::GET, &format!("/v1/tenants/{t}/agents"), None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = api.call(BOOTSTRAP, M::POST, &format!("/v1/tenants/{t}/resume"), None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = api.call(&key, M::GET, &format!("/v1/tenants/{t}/agents"), None).await;
    assert_eq!(s, StatusCode::OK, "open again once resumed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_contract_holds_and_bad_input_stops_nobody_on_sqlite() {
    contract(Api::start(None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_contract_holds_and_bad_input_stops_nobody_on_postgres() {
    let Some(h) = Harness::postgres().await else { return };
    contract(Api::start(Some(h.url.clone())).await).await;
}
