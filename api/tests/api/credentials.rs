//! Provider credentials: a secret goes in and never comes out of the credential routes, the
//! export or the read models.

use reqwest::{Method as M, StatusCode};
use serde_json::json;
use tenantry_store::testing::Harness;

use crate::client::Api;
use crate::support::BOOTSTRAP;

const SECRET: &str = "sk-live-0123456789abcdefWXYZ";
const ROTATED: &str = "sk-live-fedcba9876543210QRST";

async fn secrets_never_come_back(api: Api, database_url: Option<String>) {
    let (t, _) = api.create(BOOTSTRAP, "/v1/tenants", json!({"slug": "creds", "name": "Creds"})).await;
    let t = t["id"].as_str().unwrap().to_owned();
    let (k, _) = api
        .create(BOOTSTRAP, &format!("/v1/tenants/{t}/api-keys"), json!({"name": "a", "role": "admin"}))
        .await;
    let key = k["key"].as_str().unwrap().to_owned();
    let list = format!("/v1/tenants/{t}/credentials");

    let (c, _) = api
        .create(&key, &list, json!({"provider": "openai", "name": "main", "secret": SECRET, "base_url": "https://api.example/v1"}))
        .await;
    assert_eq!((c["provider"].as_str(), c["last4"].as_str()), (Some("openai"), Some("WXYZ")), "{c}");
    assert_eq!(c["fingerprint"].as_str().map(str::len), Some(16));
    let one = format!("{list}/{}", c["id"].as_str().unwrap());
    let (s, rotated, _) =
        api.call(&key, M::POST, &format!("{one}/rotate"), Some(json!({"secret": ROTATED}))).await;
    assert_eq!((s, rotated["last4"].as_str()), (StatusCode::OK, Some("QRST")), "{rotated}");
    assert!(rotated["rotated_at"].is_string());
    assert_ne!(rotated["fingerprint"], c["fingerprint"]);
    let (s, listed, _) = api.call(&key, M::GET, &list, None).await;
    assert_eq!((s, listed["items"].as_array().map(Vec::len)), (StatusCode::OK, Some(1)));

    // Refused by name: an unknown provider, a secret with spaces.
    for (body, field) in [
        (json!({"provider": "acme-ai", "name": "x", "secret": "s"}), "provider"),
        (json!({"provider": "custom", "name": "x", "secret": "two words"}), "secret"),
    ] {
        let (s, p, _) = api.call(&key, M::POST, &list, Some(body)).await;
        assert_eq!((s, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some(field)), "{p}");
    }
    // A user key and a key narrowed elsewhere see none of it.
    let (u, _) =
        api.create(&key, &format!("/v1/tenants/{t}/users"), json!({"email": "u@c.io", "role": "user"})).await;
    let (uk, _) = api
        .create(
            &key,
            &format!("/v1/tenants/{t}/api-keys"),
            json!({"name": "u", "role": "user", "user_id": u["id"]}),
        )
        .await;
    assert_eq!(api.call(uk["key"].as_str().unwrap(), M::GET, &list, None).await.0, StatusCode::FORBIDDEN);
    let (rk, _) = api
        .create(
            &key,
            &format!("/v1/tenants/{t}/api-keys"),
            json!({"name": "r", "role": "admin", "scopes": ["credentials:read"]}),
        )
        .await;
    let reader = rk["key"].as_str().unwrap();
    assert_eq!(api.call(reader, M::GET, &list, None).await.0, StatusCode::OK);
    let (s, _, _) = api.call(reader, M::POST, &format!("{one}/rotate"), Some(json!({"secret": "x"}))).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Neither secret is in the export or in any row of the database.
    let export =
        api.client.get(format!("{}/v1/tenants/{t}/export", api.base)).bearer_auth(&key).send().await.unwrap();
    let text = export.text().await.unwrap();
    assert!(text.contains("credential.added") && !text.contains(SECRET) && !text.contains(ROTATED));
    let url =
        database_url.unwrap_or_else(|| format!("sqlite://{}", api.data_dir().join("tenantry.db").display()));
    let rows = crate::support::dump(&url).await;
    for (table, rows) in &rows {
        for row in rows {
            assert!(!row.contains(SECRET) && !row.contains(ROTATED), "{table} holds a secret: {row}");
        }
    }

    let (s, _, _) = api.call(&key, M::DELETE, &one, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(api.call(&key, M::GET, &one, None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(api.call(&key, M::DELETE, &one, None).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_come_back_on_sqlite() {
    secrets_never_come_back(Api::start(None).await, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_come_back_on_postgres() {
    let Some(h) = Harness::postgres().await else { return };
    secrets_never_come_back(Api::start(Some(h.url.clone())).await, Some(h.url.clone())).await;
}
