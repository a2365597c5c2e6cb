//! Partners and the tenants they reach.

use reqwest::{Method, StatusCode};
use serde_json::json;
use tenantry_store::testing::Harness;

use crate::client::Api;
use crate::keys::uuid_like;
use crate::support::BOOTSTRAP;

/// Partners: the platform creates them; a partner admin creates and manages its own
/// partner's tenants and reaches no other tenant.
async fn partners(api: Api) {
    use Method as M;
    let (s, p, _) = api.call(BOOTSTRAP, M::POST, "/v1/partners", Some(json!({"name": "Resell Co"}))).await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let (partner, partner_key) =
        (p["id"].as_str().unwrap().to_owned(), p["key"].as_str().unwrap().to_owned());
    let (_, other, _) = api.call(BOOTSTRAP, M::POST, "/v1/partners", Some(json!({"name": "Other Co"}))).await;
    let other = other["id"].as_str().unwrap().to_owned();
    let (s, _, _) = api.call(BOOTSTRAP, M::POST, "/v1/partners", Some(json!({"name": ""}))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);

    // Its tenants: created under its partner whatever the body says, or refused.
    let (s, t, pos) =
        api.call(&partner_key, M::POST, "/v1/tenants", Some(json!({"slug": "pt-one", "name": "One"}))).await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    let mine = t["id"].as_str().unwrap().to_owned();
    let (s, _, _) = api
        .call(
            &partner_key,
            M::POST,
            "/v1/tenants",
            Some(json!({"slug": "pt-x", "name": "X", "partner_id": other})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "not under another partner");
    let (_, theirs, _) =
        api.call(BOOTSTRAP, M::POST, "/v1/tenants", Some(json!({"slug": "pt-two", "name": "Two"}))).await;
    let theirs = theirs["id"].as_str().unwrap().to_owned();

    let (s, got) = api.get_at(&partner_key, &format!("/v1/tenants/{mine}"), pos.unwrap()).await;
    assert_eq!((s, got["partner_id"].as_str()), (StatusCode::OK, Some(partner.as_str())), "{got}");
    let (_, listed, _) = api.call(&partner_key, M::GET, "/v1/tenants", None).await;
    let ids: Vec<&str> =
        listed["items"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [mine.as_str()], "a partner admin lists its own tenants");
    // It manages them: keys, agents, suspension.
    let (s, _, _) = api
        .call(
            &partner_key,
            M::POST,
            &format!("/v1/tenants/{mine}/api-keys"),
            Some(json!({"name": "a", "role": "admin"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _, _) = api
        .call(
            &partner_key,
            M::POST,
            &format!("/v1/tenants/{mine}/agents"),
            Some(json!({"name": "a", "model": "m"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _, _) = api
        .call(&partner_key, M::POST, &format!("/v1/tenants/{mine}/suspend"), Some(json!({"reason": "late"})))
        .await;
    assert_eq!(s, StatusCode::OK);
    // Nothing of another tenant, not even whether it exists.
    for (method, path) in [
        (M::GET, format!("/v1/tenants/{theirs}")),
        (M::PATCH, format!("/v1/tenants/{theirs}")),
        (M::GET, format!("/v1/tenants/{theirs}/agents")),
        (M::POST, format!("/v1/tenants/{theirs}/api-keys")),
        (M::DELETE, format!("/v1/tenants/{theirs}")),
        (M::GET, format!("/v1/tenants/{}", uuid_like())),
    ] {
        let (s, body, _) =
            api.call(&partner_key, method.clone(), &path, Some(json!({"name": "x", "role": "admin"}))).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{method} {path}: {body}");
    }
    // Partners are listed by the platform, and a partner admin sees its own.
    let (_, all, _) = api.call(BOOTSTRAP, M::GET, "/v1/partners", None).await;
    assert_eq!(all["items"].as_array().map(Vec::len), Some(2), "{all}");
    let (_, own, _) = api.call(&partner_key, M::GET, "/v1/partners", None).await;
    assert_eq!(own["items"][0]["name"], "Resell Co");
    assert_eq!(own["items"].as_array().map(Vec::len), Some(1));
    let (s, _, _) = api.call(&partner_key, M::POST, "/v1/partners", Some(json!({"name": "Mine too"}))).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // A tenant admin has no business with partners.
    let (_, k, _) = api
        .call(
            BOOTSTRAP,
            M::POST,
            &format!("/v1/tenants/{theirs}/api-keys"),
            Some(json!({"name": "a", "role": "admin"})),
        )
        .await;
    let admin = k["key"].as_str().unwrap();
    let (s, _, _) = api.call(admin, M::GET, "/v1/partners", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, _) = api.call(admin, M::POST, "/v1/tenants", Some(json!({"slug": "nope", "name": "N"}))).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partner_admins_reach_their_partners_tenants_only_on_sqlite() {
    partners(Api::start(None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partner_admins_reach_their_partners_tenants_only_on_postgres() {
    let Some(h) = Harness::postgres().await else { return };
    partners(Api::start(Some(h.url.clone())).await).await;
}
