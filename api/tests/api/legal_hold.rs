//! A legal hold: while it is on, a tenant's data is not deleted (no purge, no erasure), each
//! attempt is refused with 409 and written to its audit trail; released, deletion works again.

use reqwest::{Method as M, StatusCode};
use serde_json::json;
use tenantry_store::testing::Harness;

use crate::client::Api;
use crate::support::BOOTSTRAP;

async fn a_legal_hold_stops_deletion(api: Api) {
    let (t, _) = api.create(BOOTSTRAP, "/v1/tenants", json!({"slug": "held", "name": "Held"})).await;
    let t = t["id"].as_str().unwrap().to_owned();
    let (k, _) = api
        .create(BOOTSTRAP, &format!("/v1/tenants/{t}/api-keys"), json!({"name": "a", "role": "admin"}))
        .await;
    let admin = k["key"].as_str().unwrap().to_owned();
    let (u, _) = api
        .create(&admin, &format!("/v1/tenants/{t}/users"), json!({"email": "kept@held.io", "role": "user"}))
        .await;
    let user = u["id"].as_str().unwrap().to_owned();
    let hold = format!("/v1/tenants/{t}/legal-hold");

    // Only the platform's operators place or release one; a reason is needed.
    let (s, _, _) = api.call(&admin, M::POST, &hold, Some(json!({"reason": "case 42"}))).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, p, _) = api.call(BOOTSTRAP, M::POST, &hold, Some(json!({"reason": ""}))).await;
    assert_eq!((s, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("reason")), "{p}");
    let (s, held, _) = api.call(BOOTSTRAP, M::POST, &hold, Some(json!({"reason": "case 42"}))).await;
    assert_eq!((s, held["held"].as_bool()), (StatusCode::OK, Some(true)), "{held}");

    // No erasure, no purge: 409, and the data is all there.
    let erase = format!("/v1/tenants/{t}/users/{user}/erase");
    let (s, p, _) = api.call(&admin, M::POST, &erase, None).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::CONFLICT, Some("conflict")), "{p}");
    let (s, p, _) = api.call(BOOTSTRAP, M::DELETE, &format!("/v1/tenants/{t}"), None).await;
    assert_eq!(s, StatusCode::CONFLICT, "{p}");
    let (_, got, _) = api.call(&admin, M::GET, &format!("/v1/tenants/{t}/users/{user}"), None).await;
    assert_eq!(got["email"], "kept@held.io", "{got}");
    // Both refusals are in the audit trail, naming the hold.
    let (_, _, at) = api.call(&admin, M::PATCH, &format!("/v1/tenants/{t}/settings"), Some(json!({}))).await;
    let (_, audit) = api.get_at(&admin, &format!("/v1/tenants/{t}/audit?limit=200"), at.unwrap()).await;
    let refused: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "denied" && e["reason"] == "legal hold")
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(refused.len(), 2, "{audit}");
    assert!(refused.iter().any(|a| a.starts_with("erase user")) && refused.contains(&"purge the tenant"));

    // Released: the erasure goes through.
    let (s, released, _) = api.call(BOOTSTRAP, M::DELETE, &hold, None).await;
    assert_eq!((s, released["held"].as_bool()), (StatusCode::OK, Some(false)));
    let (s, _, _) = api.call(&admin, M::POST, &erase, None).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legal_hold_stops_deletion_on_sqlite() {
    a_legal_hold_stops_deletion(Api::start(None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legal_hold_stops_deletion_on_postgres() {
    let Some(h) = Harness::postgres().await else { return };
    a_legal_hold_stops_deletion(Api::start(Some(h.url.clone())).await).await;
}

/// Retention: a sweep deletes (shreds) the conversations of a tenant with a retention once
/// they are inactive past it; a tenant without one, and a tenant under a legal hold, keep
/// theirs; a second sweep finds nothing more.
async fn retention_deletes_old_conversations(api: Api) {
    let tenant = |slug: &'static str| {
        let api = &api;
        async move {
            let (t, _) = api.create(BOOTSTRAP, "/v1/tenants", json!({"slug": slug, "name": slug})).await;
            let t = t["id"].as_str().unwrap().to_owned();
            let (k, _) = api
                .create(
                    BOOTSTRAP,
                    &format!("/v1/tenants/{t}/api-keys"),
                    json!({"name": "a", "role": "admin"}),
                )
                .await;
            let key = k["key"].as_str().unwrap().to_owned();
            let (agent, _) = api
                .create(&key, &format!("/v1/tenants/{t}/agents"), json!({"name": "a", "model": "m"}))
                .await;
            let (c, _) = api
                .create(&key, &format!("/v1/tenants/{t}/conversations"), json!({"agent_id": agent["id"]}))
                .await;
            let conv = format!("/v1/tenants/{t}/conversations/{}", c["id"].as_str().unwrap());
            api.create(&key, &format!("{conv}/messages"), json!({"role": "user", "content": "old words"}))
                .await;
            (t, key, conv)
        }
    };
    let (kept_t, kept_key, kept) = tenant("ret-none").await;
    let (t, key, gone) = tenant("ret-days").await;
    let (held_t, held_key, held) = tenant("ret-held").await;
    for (t, key) in [(&t, &key), (&held_t, &held_key)] {
        let (s, r, _) = api
            .call(
                key,
                M::PATCH,
                &format!("/v1/tenants/{t}/retention"),
                Some(json!({"conversations_days": 30})),
            )
            .await;
        assert_eq!((s, r["conversations_days"].as_u64()), (StatusCode::OK, Some(30)), "{r}");
    }
    let (s, p, _) = api
        .call(&key, M::PATCH, &format!("/v1/tenants/{t}/retention"), Some(json!({"conversations_days": 0})))
        .await;
    assert_eq!((s, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("conversations_days")));
    api.call(
        BOOTSTRAP,
        M::POST,
        &format!("/v1/tenants/{held_t}/legal-hold"),
        Some(json!({"reason": "case"})),
    )
    .await;
    let (_, r, _) = api.call(&held_key, M::GET, &format!("/v1/tenants/{held_t}/retention"), None).await;
    assert_eq!(r, json!({"conversations_days": 30, "legal_hold": true}));

    // A sweep as if 31 days had passed.
    let commands = tenantry_app::Commands::new(api.projections.store().clone(), Default::default());
    let later = chrono::Utc::now() + chrono::Duration::days(31);
    let swept =
        tenantry_app::retention::sweep(&commands, &api.projections, later, &mut |_| {}).await.unwrap();
    assert_eq!((swept.tenants, swept.held, swept.conversations_deleted), (2, 1, 1), "{swept:?}");
    assert_eq!(api.call(&key, M::GET, &gone, None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(api.call(&kept_key, M::GET, &kept, None).await.0, StatusCode::OK, "no retention: kept");
    assert_eq!(api.call(&held_key, M::GET, &held, None).await.0, StatusCode::OK, "a legal hold: kept");
    let _ = kept_t;
    // The deletion is in the audit trail, and a second sweep has nothing to do.
    let (_, _, at) = api.call(&key, M::PATCH, &format!("/v1/tenants/{t}/settings"), Some(json!({}))).await;
    let (_, audit) = api.get_at(&key, &format!("/v1/tenants/{t}/audit?limit=200"), at.unwrap()).await;
    assert!(
        audit["items"].as_array().unwrap().iter().any(|e| e["action"] == "conversation.deleted"),
        "{audit}"
    );
    let again =
        tenantry_app::retention::sweep(&commands, &api.projections, later, &mut |_| {}).await.unwrap();
    assert_eq!(again.conversations_deleted, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_old_conversations_on_sqlite() {
    retention_deletes_old_conversations(Api::start(None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_old_conversations_on_postgres() {
    let Some(h) = Harness::postgres().await else { return };
    retention_deletes_old_conversations(Api::start(Some(h.url.clone())).await).await;
}
