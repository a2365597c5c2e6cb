//! Named operators: made by the platform, named in what they do, removable, and the
//! bootstrap key retired once one exists.

use std::time::Duration;

use reqwest::{Method as M, StatusCode};
use serde_json::json;
use tenantry_store::testing::Harness;

use crate::client::Api;
use crate::support::BOOTSTRAP;

/// Wait (bounded) until `key` is refused by `api`: a change made on another server is heard
/// through PostgreSQL's notifications.
async fn refused_on(api: &Api, key: &str) -> StatusCode {
    let mut last = StatusCode::OK;
    for _ in 0..500 {
        last = api.call(key, M::GET, "/v1/operators", None).await.0;
        if last == StatusCode::UNAUTHORIZED {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    last
}

async fn operators_run_the_platform(api: Api, other: Option<Api>) {
    // Retiring the bootstrap key before any operator would lock the platform out.
    let (s, body, _) = api.call(BOOTSTRAP, M::DELETE, "/v1/bootstrap-key", None).await;
    assert_eq!((s, body["code"].as_str()), (StatusCode::CONFLICT, Some("conflict")), "{body}");

    let (first, _) = api.create(BOOTSTRAP, "/v1/operators", json!({"name": "Ada"})).await;
    let (first_id, first_key) =
        (first["id"].as_str().unwrap().to_owned(), first["key"].as_str().unwrap().to_owned());
    assert!(first_key.starts_with("tnt_op_"), "{first_key}");
    assert_eq!((first["name"].as_str(), first["removed"].as_bool()), (Some("Ada"), Some(false)));
    let (s, me, _) = api.call(&first_key, M::GET, "/v1/me", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (me["role"].as_str(), me["credential"].as_str(), me["operator_id"].as_str()),
        (Some("super_admin"), Some("operator_key"), Some(first_id.as_str()))
    );

    // What an operator does names the operator.
    let (t, position) =
        api.create(&first_key, "/v1/tenants", json!({"slug": "opsco", "name": "Ops Co"})).await;
    let tenant = t["id"].as_str().unwrap().to_owned();
    let (s, audit) = api.get_at(&first_key, &format!("/v1/tenants/{tenant}/audit"), position).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(audit["items"][0]["actor"], json!(format!("operator:{first_id}")), "{audit}");

    // Only the platform manages operators.
    let (k, _) = api
        .create(&first_key, &format!("/v1/tenants/{tenant}/api-keys"), json!({"name": "a", "role": "admin"}))
        .await;
    let tenant_admin = k["key"].as_str().unwrap().to_owned();
    let (p, _) = api.create(&first_key, "/v1/partners", json!({"name": "Resell"})).await;
    let partner_admin = p["key"].as_str().unwrap().to_owned();
    for key in [&tenant_admin, &partner_admin] {
        assert_eq!(api.call(key, M::GET, "/v1/operators", None).await.0, StatusCode::FORBIDDEN);
        let (s, _, _) = api.call(key, M::POST, "/v1/operators", Some(json!({"name": "Eve"}))).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        assert_eq!(
            api.call(key, M::DELETE, &format!("/v1/operators/{first_id}"), None).await.0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(api.call(key, M::DELETE, "/v1/bootstrap-key", None).await.0, StatusCode::FORBIDDEN);
    }

    // The bootstrap key retires; the operators carry on.
    let (s, _, _) = api.call(&first_key, M::DELETE, "/v1/bootstrap-key", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(api.call(BOOTSTRAP, M::GET, "/v1/tenants", None).await.0, StatusCode::UNAUTHORIZED);
    if let Some(other) = &other {
        assert_eq!(refused_on(other, BOOTSTRAP).await, StatusCode::UNAUTHORIZED, "retired on every server");
    }
    assert_eq!(api.call(&first_key, M::GET, "/v1/tenants", None).await.0, StatusCode::OK);

    // The last operator stays; with a second one, the first can go, and its key with it.
    let (s, _, _) = api.call(&first_key, M::DELETE, &format!("/v1/operators/{first_id}"), None).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (second, _) = api.create(&first_key, "/v1/operators", json!({"name": "Grace"})).await;
    let second_key = second["key"].as_str().unwrap().to_owned();
    if let Some(other) = &other {
        // The other server learns of the first operator before it is removed.
        assert_eq!(other.call(&first_key, M::GET, "/v1/operators", None).await.0, StatusCode::OK);
    }
    let (s, _, _) = api.call(&second_key, M::DELETE, &format!("/v1/operators/{first_id}"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(api.call(&first_key, M::GET, "/v1/operators", None).await.0, StatusCode::UNAUTHORIZED);
    if let Some(other) = &other {
        assert_eq!(refused_on(other, &first_key).await, StatusCode::UNAUTHORIZED, "removed on every server");
    }
    let (s, listed, _) = api.call(&second_key, M::GET, "/v1/operators", None).await;
    assert_eq!(s, StatusCode::OK);
    let removed: Vec<bool> =
        listed["items"].as_array().unwrap().iter().map(|o| o["removed"].as_bool().unwrap()).collect();
    assert_eq!(removed.iter().filter(|r| **r).count(), 1, "{listed}");
    assert_eq!(removed.len(), 2);
    let (s, shown, _) = api.call(&second_key, M::GET, &format!("/v1/operators/{first_id}"), None).await;
    assert_eq!((s, shown["removed"].as_bool()), (StatusCode::OK, Some(true)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_run_the_platform_on_sqlite() {
    operators_run_the_platform(Api::start(None).await, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operators_run_the_platform_on_postgres() {
    let Some(h) = Harness::postgres().await else { return };
    let api = Api::start(Some(h.url.clone())).await;
    let other = api.another(Some(h.url.clone())).await;
    operators_run_the_platform(api, Some(other)).await;
}
