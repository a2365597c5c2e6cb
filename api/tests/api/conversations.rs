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

/// A deleted conversation is shredded: every copy of its titles and messages (the log, the
/// export, a rebuild) reads as erased, the read models drop it, nothing reaches it again; its
/// usage stays billed, its neighbours untouched.
async fn a_deleted_conversation_is_shredded(api: Api, database_url: Option<String>) {
    let (t, _) = api.create(BOOTSTRAP, "/v1/tenants", json!({"slug": "shred", "name": "Shred"})).await;
    let t = t["id"].as_str().unwrap().to_owned();
    let (k, _) = api
        .create(BOOTSTRAP, &format!("/v1/tenants/{t}/api-keys"), json!({"name": "a", "role": "admin"}))
        .await;
    let admin = k["key"].as_str().unwrap().to_owned();
    let (u, _) = api
        .create(&admin, &format!("/v1/tenants/{t}/users"), json!({"email": "cy@shred.io", "role": "user"}))
        .await;
    let (uk, _) = api
        .create(
            &admin,
            &format!("/v1/tenants/{t}/api-keys"),
            json!({"name": "cy", "role": "user", "user_id": u["id"]}),
        )
        .await;
    let cy = uk["key"].as_str().unwrap().to_owned();
    let (agent, _) =
        api.create(&admin, &format!("/v1/tenants/{t}/agents"), json!({"name": "a", "model": "m"})).await;
    let open = |title: &'static str| {
        let (api, cy, t, agent) = (&api, cy.clone(), t.clone(), agent["id"].clone());
        async move {
            let (c, _) = api
                .create(
                    &cy,
                    &format!("/v1/tenants/{t}/conversations"),
                    json!({"agent_id": agent, "title": title}),
                )
                .await;
            format!("/v1/tenants/{t}/conversations/{}", c["id"].as_str().unwrap())
        }
    };
    let gone = open("zqshredtitle").await;
    let kept = open("kept title").await;
    for (path, text, reply) in [(&gone, "zqshreduser", "zqshredbot"), (&kept, "kept words", "kept reply")] {
        api.create(&cy, &format!("{path}/messages"), json!({"role": "user", "content": text})).await;
        api.create(
            &admin,
            &format!("{path}/messages"),
            json!({"role": "assistant", "content": reply, "model": "m",
                   "usage": {"prompt_tokens": 10, "completion_tokens": 5}}),
        )
        .await;
    }
    let (_, before, _) = api.call(&admin, M::GET, &format!("/v1/tenants/{t}/usage"), None).await;

    // Another user's key does not reach it; its owner deletes it.
    let (s, _, _) = api.call(&admin, M::GET, &gone, None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, done, at) = api.call(&cy, M::DELETE, &gone, None).await;
    assert_eq!(s, StatusCode::OK, "{done}");
    for path in [gone.clone(), format!("{gone}/messages")] {
        assert_eq!(api.call(&admin, M::GET, &path, None).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    let (s, _, _) = api
        .call(&cy, M::POST, &format!("{gone}/messages"), Some(json!({"role": "user", "content": "x"})))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(api.call(&cy, M::DELETE, &gone, None).await.0, StatusCode::NOT_FOUND);
    let (_, listed) = api.get_at(&admin, &format!("/v1/tenants/{t}/conversations"), at.unwrap()).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");
    let (_, messages, _) = api.call(&admin, M::GET, &format!("{kept}/messages"), None).await;
    assert_eq!(messages["items"][1]["content"], "kept reply", "the other conversation is whole");
    // Usage stays: the tokens were spent.
    let (_, after, _) = api.call(&admin, M::GET, &format!("/v1/tenants/{t}/usage"), None).await;
    assert_eq!(before["totals"], after["totals"], "{after}");

    // The export (the log decoded with the keys there are) holds the events, erased.
    let export = api
        .client
        .get(format!("{}/v1/tenants/{t}/export", api.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let text = export.text().await.unwrap();
    assert!(text.contains("conversation.deleted") && text.contains("kept words"), "{text}");
    let leaks: Vec<&str> = text.lines().filter(|l| l.contains("zqshred")).collect();
    assert!(leaks.is_empty(), "the deleted conversation's words are gone from the export: {leaks:?}");
    // No row of the database holds them in plaintext (the log holds them only sealed).
    let url =
        database_url.unwrap_or_else(|| format!("sqlite://{}", api.data_dir().join("tenantry.db").display()));
    for (table, rows) in crate::support::dump(&url).await {
        for row in rows {
            assert!(!row.contains("zqshred"), "{table} holds the deleted conversation: {row}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_conversation_is_shredded_on_sqlite() {
    a_deleted_conversation_is_shredded(Api::start(None).await, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_conversation_is_shredded_on_postgres() {
    let Some(h) = Harness::postgres().await else { return };
    a_deleted_conversation_is_shredded(Api::start(Some(h.url.clone())).await, Some(h.url.clone())).await;
}
