//! A conversation after its opening: retitled (a merge patch), archived and taken back; its
//! title stays its owner's personal data.

use reqwest::{Method as M, StatusCode};
use serde_json::{Value, json};
use tenantry_store::testing::Harness;

use crate::client::Api;
use crate::support::BOOTSTRAP;

async fn conversations_are_retitled_and_archived(api: Api) {
    let (t, _) = api.create(BOOTSTRAP, "/v1/tenants", json!({"slug": "convs", "name": "Convs"})).await;
    let t = t["id"].as_str().unwrap().to_owned();
    let (k, _) = api
        .create(BOOTSTRAP, &format!("/v1/tenants/{t}/api-keys"), json!({"name": "a", "role": "admin"}))
        .await;
    let admin = k["key"].as_str().unwrap().to_owned();
    let user_key = |email: &'static str| {
        let (api, admin, t) = (&api, admin.clone(), t.clone());
        async move {
            let (u, _) = api
                .create(&admin, &format!("/v1/tenants/{t}/users"), json!({"email": email, "role": "user"}))
                .await;
            let (k, _) = api
                .create(
                    &admin,
                    &format!("/v1/tenants/{t}/api-keys"),
                    json!({"name": email, "role": "user", "user_id": u["id"]}),
                )
                .await;
            (u["id"].as_str().unwrap().to_owned(), k["key"].as_str().unwrap().to_owned())
        }
    };
    let (ann, ann_key) = user_key("ann@convs.io").await;
    let (_, bob_key) = user_key("bob@convs.io").await;
    let (agent, _) =
        api.create(&admin, &format!("/v1/tenants/{t}/agents"), json!({"name": "a", "model": "m"})).await;
    let (c, _) = api
        .create(
            &ann_key,
            &format!("/v1/tenants/{t}/conversations"),
            json!({"agent_id": agent["id"], "title": "first"}),
        )
        .await;
    let this = format!("/v1/tenants/{t}/conversations/{}", c["id"].as_str().unwrap());
    assert_eq!(c["archived"], false);

    let (s, r, _) = api.call(&ann_key, M::PATCH, &this, Some(json!({"title": "second"}))).await;
    assert_eq!((s, r["title"].as_str()), (StatusCode::OK, Some("second")), "{r}");
    let (s, r, _) = api.call(&ann_key, M::PATCH, &this, Some(json!({}))).await;
    assert_eq!((s, r["title"].as_str()), (StatusCode::OK, Some("second")), "an empty patch keeps it");
    assert_eq!(
        api.call(&bob_key, M::PATCH, &this, Some(json!({"title": "mine"}))).await.0,
        StatusCode::NOT_FOUND
    );

    // Archived: closed to new messages until taken back.
    let (s, r, _) = api.call(&ann_key, M::POST, &format!("{this}/archive"), None).await;
    assert_eq!((s, r["archived"].as_bool()), (StatusCode::OK, Some(true)), "{r}");
    let message = json!({"role": "user", "content": "hello"});
    let (s, p, _) = api.call(&ann_key, M::POST, &format!("{this}/messages"), Some(message.clone())).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::CONFLICT, Some("conflict")), "{p}");
    let (s, r, _) = api.call(&admin, M::POST, &format!("{this}/unarchive"), None).await;
    assert_eq!((s, r["archived"].as_bool()), (StatusCode::OK, Some(false)));
    assert_eq!(
        api.call(&ann_key, M::POST, &format!("{this}/messages"), Some(message)).await.0,
        StatusCode::CREATED
    );

    // The title is Ann's: erasing her erases it.
    let (s, _, _) = api.call(&admin, M::POST, &format!("/v1/tenants/{t}/users/{ann}/erase"), None).await;
    assert_eq!(s, StatusCode::OK);
    let (_, r, _) = api.call(&admin, M::GET, &this, None).await;
    assert_eq!(r["title"], json!("[erased]"), "{r}");
    let (s, r, _) = api.call(&admin, M::PATCH, &this, Some(json!({"title": null}))).await;
    assert_eq!((s, r["title"].clone()), (StatusCode::OK, Value::Null));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_are_retitled_and_archived_on_sqlite() {
    conversations_are_retitled_and_archived(Api::start(None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_are_retitled_and_archived_on_postgres() {
    let Some(h) = Harness::postgres().await else { return };
    conversations_are_retitled_and_archived(Api::start(Some(h.url.clone())).await).await;
}
