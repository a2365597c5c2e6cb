//! Keys narrowed to scopes, keys that expire, keys rotated with a grace, and when a key was
//! last used.

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use reqwest::{Method as M, StatusCode};
use serde_json::{Value, json};
use tenantry_store::testing::Harness;

use crate::client::Api;
use crate::support::BOOTSTRAP;

fn in_seconds(seconds: i64) -> String {
    (Utc::now() + chrono::Duration::seconds(seconds)).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A tenant with an admin key and an agent: (tenant id, admin key, agent id).
async fn new_tenant(api: &Api, slug: &str) -> (String, String, String) {
    let (t, _) = api.create(BOOTSTRAP, "/v1/tenants", json!({"slug": slug, "name": slug})).await;
    let tenant = t["id"].as_str().unwrap().to_owned();
    let (k, _) = api
        .create(BOOTSTRAP, &format!("/v1/tenants/{tenant}/api-keys"), json!({"name": "a", "role": "admin"}))
        .await;
    let admin = k["key"].as_str().unwrap().to_owned();
    let (a, _) = api
        .create(&admin, &format!("/v1/tenants/{tenant}/agents"), json!({"name": "bot", "model": "m"}))
        .await;
    (tenant, admin, a["id"].as_str().unwrap().to_owned())
}

async fn scopes_narrow_a_key(api: Api) {
    let (tenant, admin, agent) = new_tenant(&api, "scoped").await;
    let keys = format!("/v1/tenants/{tenant}/api-keys");
    let expires = in_seconds(3600);
    let (k, _) = api
        .create(
            &admin,
            &keys,
            json!({"name": "runtime", "role": "admin", "scopes": ["conversations:write", "conversations:read", "conversations:write"], "expires_at": expires}),
        )
        .await;
    assert_eq!(k["scopes"], json!(["conversations:read", "conversations:write"]), "kept sorted, once each");
    assert_eq!(k["expires_at"], json!(expires));
    let scoped = k["key"].as_str().unwrap().to_owned();
    let (s, me, _) = api.call(&scoped, M::GET, "/v1/me", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(me["scopes"], k["scopes"]);
    assert_eq!(me["expires_at"], json!(expires));
    assert_eq!(me["credential"], "api_key");

    // Inside its scopes it works as its role allows.
    let conversations = format!("/v1/tenants/{tenant}/conversations");
    let (c, _) = api.create(&scoped, &conversations, json!({"agent_id": agent})).await;
    let (s, _, _) = api
        .call(
            &scoped,
            M::POST,
            &format!("{conversations}/{}/messages", c["id"].as_str().unwrap()),
            Some(json!({"role": "user", "content": "hi"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    // Outside them: 403 naming the scope, in the body and in WWW-Authenticate.
    for (method, path, lacking) in [
        (M::GET, format!("/v1/tenants/{tenant}/agents"), "agents:read"),
        (M::POST, format!("/v1/tenants/{tenant}/usage"), "usage:write"),
        (M::GET, format!("/v1/tenants/{tenant}/usage"), "usage:read"),
        (M::GET, keys.clone(), "keys:read"),
        (M::GET, format!("/v1/tenants/{tenant}"), "tenant:read"),
    ] {
        let res = api.client.request(method.clone(), format!("{}{path}", api.base)).bearer_auth(&scoped);
        let res = res.json(&json!({"model": "m", "usage": {"prompt_tokens": 1}})).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{method} {path}");
        let challenge = res.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(challenge.contains(&format!("scope=\"{lacking}\"")), "{challenge}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            (body["code"].as_str(), body["scope"].as_str()),
            (Some("insufficient_scope"), Some(lacking))
        );
    }
    // An unknown scope and an expiry in the past are refused, naming the field.
    let (s, body, _) = api
        .call(&admin, M::POST, &keys, Some(json!({"name": "x", "role": "admin", "scopes": ["everything"]})))
        .await;
    assert_eq!((s, body["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("scopes")), "{body}");
    let (s, body, _) = api
        .call(
            &admin,
            M::POST,
            &keys,
            Some(json!({"name": "x", "role": "admin", "expires_at": in_seconds(-5)})),
        )
        .await;
    assert_eq!((s, body["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("expires_at")), "{body}");
}

async fn keys_expire_and_rotate(api: Api) {
    let (tenant, admin, _) = new_tenant(&api, "rotating").await;
    let keys = format!("/v1/tenants/{tenant}/api-keys");
    let agents = format!("/v1/tenants/{tenant}/agents");

    // A key with an expiry works until it, and is refused from it on.
    let (k, _) = api
        .create(&admin, &keys, json!({"name": "brief", "role": "admin", "expires_at": in_seconds(2)}))
        .await;
    let brief = k["key"].as_str().unwrap().to_owned();
    assert_eq!(api.call(&brief, M::GET, &agents, None).await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(api.call(&brief, M::GET, &agents, None).await.0, StatusCode::UNAUTHORIZED);

    // Rotation without grace: the new secret works at once, the old one is refused at once.
    let (k, _) = api.create(&admin, &keys, json!({"name": "svc", "role": "admin"})).await;
    let (id, old) = (k["id"].as_str().unwrap().to_owned(), k["key"].as_str().unwrap().to_owned());
    assert_eq!(api.call(&old, M::GET, &agents, None).await.0, StatusCode::OK);
    let (s, rotated, _) = api.call(&admin, M::POST, &format!("{keys}/{id}/rotate"), Some(json!({}))).await;
    assert_eq!(s, StatusCode::OK, "{rotated}");
    assert_eq!(rotated["id"], json!(id));
    assert!(rotated["rotated_at"].is_string(), "{rotated}");
    let new = rotated["key"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert_eq!(api.call(&new, M::GET, &agents, None).await.0, StatusCode::OK);
    assert_eq!(api.call(&old, M::GET, &agents, None).await.0, StatusCode::UNAUTHORIZED);

    // With a grace, both work until it ends; then only the new one.
    let (s, rotated, _) =
        api.call(&admin, M::POST, &format!("{keys}/{id}/rotate"), Some(json!({"grace_seconds": 2}))).await;
    assert_eq!(s, StatusCode::OK, "{rotated}");
    let newer = rotated["key"].as_str().unwrap().to_owned();
    assert_eq!(api.call(&new, M::GET, &agents, None).await.0, StatusCode::OK, "inside the grace");
    assert_eq!(api.call(&newer, M::GET, &agents, None).await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(api.call(&new, M::GET, &agents, None).await.0, StatusCode::UNAUTHORIZED, "past the grace");
    assert_eq!(api.call(&newer, M::GET, &agents, None).await.0, StatusCode::OK);

    let (s, body, _) = api
        .call(&admin, M::POST, &format!("{keys}/{id}/rotate"), Some(json!({"grace_seconds": 604_801})))
        .await;
    assert_eq!((s, body["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("grace_seconds")));
    let (s, _, _) = api.call(&admin, M::DELETE, &format!("{keys}/{id}"), None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = api.call(&admin, M::POST, &format!("{keys}/{id}/rotate"), Some(json!({}))).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "a revoked key is not rotated back to life");
    assert_eq!(api.call(&newer, M::GET, &agents, None).await.0, StatusCode::UNAUTHORIZED);

    // Another tenant's admin cannot rotate this tenant's key.
    let (_, stranger, _) = new_tenant(&api, "stranger").await;
    let (k, _) = api.create(&admin, &keys, json!({"name": "mine", "role": "admin"})).await;
    let mine = k["id"].as_str().unwrap();
    let (s, _, _) = api.call(&stranger, M::POST, &format!("{keys}/{mine}/rotate"), Some(json!({}))).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(api.call(k["key"].as_str().unwrap(), M::GET, &agents, None).await.0, StatusCode::OK);
}

async fn last_use_is_shown(api: Api) {
    let (tenant, admin, _) = new_tenant(&api, "used").await;
    let keys = format!("/v1/tenants/{tenant}/api-keys");
    let (k, _) = api.create(&admin, &keys, json!({"name": "idle", "role": "admin"})).await;
    assert_eq!(k["last_used_at"], Value::Null, "a key never used shows no use");
    let before = Utc::now() - chrono::Duration::seconds(1);
    let (s, _, _) = api.call(k["key"].as_str().unwrap(), M::GET, &keys, None).await;
    assert_eq!(s, StatusCode::OK);
    // Written off the request's path: it shows shortly after.
    let mut shown = Value::Null;
    for _ in 0..100 {
        let (_, got, _) =
            api.call(&admin, M::GET, &format!("{keys}/{}", k["id"].as_str().unwrap()), None).await;
        shown = got["last_used_at"].clone();
        if !shown.is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let at: chrono::DateTime<Utc> = shown.as_str().expect("last_used_at is set").parse().unwrap();
    assert!(at >= before && at <= Utc::now(), "{at}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_narrow_a_key_on_sqlite() {
    scopes_narrow_a_key(Api::start(None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_narrow_a_key_on_postgres() {
    let Some(h) = Harness::postgres().await else { return };
    scopes_narrow_a_key(Api::start(Some(h.url.clone())).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_expire_and_rotate_on_sqlite() {
    keys_expire_and_rotate(Api::start(None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_expire_and_rotate_on_postgres() {
    let Some(h) = Harness::postgres().await else { return };
    keys_expire_and_rotate(Api::start(Some(h.url.clone())).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_use_is_shown_on_sqlite() {
    last_use_is_shown(Api::start(None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_use_is_shown_on_postgres() {
    let Some(h) = Harness::postgres().await else { return };
    last_use_is_shown(Api::start(Some(h.url.clone())).await).await;
}
