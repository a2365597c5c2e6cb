//! Revoked keys fail on every server at once.

use reqwest::{Method, StatusCode};
use serde_json::json;
use tenantry_store::testing::Harness;

use crate::client::Api;
use crate::support::BOOTSTRAP;

/// A key revoked, or a user removed, through one server stops working on every server:
/// at once on the one that did it, as soon as the change is heard on the others.
async fn keys_die_everywhere(one: Api, database_url: Option<String>) {
    use Method as M;
    let two = one.another(database_url).await;
    let (_, t, _) =
        one.call(BOOTSTRAP, M::POST, "/v1/tenants", Some(json!({"slug": "nodes", "name": "N"}))).await;
    let tenant = t["id"].as_str().unwrap().to_owned();
    let keys = format!("/v1/tenants/{tenant}/api-keys");
    let (_, k, _) = one.call(BOOTSTRAP, M::POST, &keys, Some(json!({"name": "k", "role": "admin"}))).await;
    let (admin, admin_id) = (k["key"].as_str().unwrap().to_owned(), k["id"].as_str().unwrap().to_owned());
    let (_, u, _) = one
        .call(
            &admin,
            M::POST,
            &format!("/v1/tenants/{tenant}/users"),
            Some(json!({"email": "u@n.example", "role": "user"})),
        )
        .await;
    let user_id = u["id"].as_str().unwrap().to_owned();
    let (s, k, _) = one
        .call(&admin, M::POST, &keys, Some(json!({"name": "u", "role": "user", "user_id": user_id})))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{k}");
    let user_key = k["key"].as_str().unwrap().to_owned();
    let other_admin = {
        let (_, k, _) =
            one.call(BOOTSTRAP, M::POST, &keys, Some(json!({"name": "k2", "role": "admin"}))).await;
        k["key"].as_str().unwrap().to_owned()
    };
    let conversations = format!("/v1/tenants/{tenant}/conversations");
    // Both servers have seen both keys work.
    for api in [&one, &two] {
        for key in [&admin, &user_key] {
            let (s, body, _) = api.call(key, M::GET, &conversations, None).await;
            assert_eq!(s, StatusCode::OK, "{body}");
        }
    }
    // The status the key gets once the change is heard, or the last one while it is not.
    let refused_on = |api: &Api, key: String| {
        let (client, url) = (api.client.clone(), format!("{}{conversations}", api.base));
        async move {
            let mut last = None;
            // Bounded: a change not heard within it fails the test.
            for _ in 0..500 {
                let res = client.get(&url).bearer_auth(&key).send().await.unwrap();
                let status = res.status();
                last = Some((status, res.text().await.unwrap()));
                if status == StatusCode::UNAUTHORIZED {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            last.unwrap()
        }
    };
    let (s, _, _) = two.call(&other_admin, M::DELETE, &format!("{keys}/{admin_id}"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(two.call(&admin, M::GET, &conversations, None).await.0, StatusCode::UNAUTHORIZED);
    let (s, body) = refused_on(&one, admin.clone()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "the revoked key still works on the other server: {body}");

    let (s, _, _) =
        two.call(&other_admin, M::DELETE, &format!("/v1/tenants/{tenant}/users/{user_id}"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(two.call(&user_key, M::GET, &conversations, None).await.0, StatusCode::UNAUTHORIZED);
    let (s, body) = refused_on(&one, user_key.clone()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "a removed user's key still works on the other server: {body}");
    // The keys of the tenant that did not change still work on both.
    for api in [&one, &two] {
        assert_eq!(api.call(&other_admin, M::GET, &conversations, None).await.0, StatusCode::OK);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_revoked_through_one_server_die_on_every_server_on_sqlite() {
    keys_die_everywhere(Api::start(None).await, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_revoked_through_one_server_die_on_every_server_on_postgres() {
    let Some(h) = Harness::postgres().await else { return };
    keys_die_everywhere(Api::start(Some(h.url.clone())).await, Some(h.url.clone())).await;
}

pub(crate) fn uuid_like() -> String {
    tenantry_domain::TenantId::new().to_string()
}
