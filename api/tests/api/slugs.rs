//! One tenant per slug.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tenantry_store::testing::Harness;

use crate::client::Api;
use crate::support::BOOTSTRAP;

/// A slug names one tenant even when creates race, and a purge frees it.
async fn one_tenant_per_slug(api: Api) {
    let mut tasks = Vec::new();
    for i in 0..10 {
        let (client, url) = (api.client.clone(), format!("{}/v1/tenants", api.base));
        tasks.push(tokio::spawn(async move {
            let res = client
                .post(url)
                .bearer_auth(BOOTSTRAP)
                .json(&json!({"slug": "racy", "name": format!("R{i}")}))
                .send()
                .await
                .unwrap();
            let status = res.status();
            (status, res.json::<Value>().await.unwrap())
        }));
    }
    let mut created = Vec::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            StatusCode::CREATED => created.push(body["id"].as_str().unwrap().to_owned()),
            StatusCode::CONFLICT => {}
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(created.len(), 1, "exactly one create of a slug wins");
    // A bad slug claims nothing; a purge frees the slug.
    let (s, _, _) = api
        .call(BOOTSTRAP, Method::POST, "/v1/tenants", Some(json!({"slug": "Bad Slug!", "name": "B"})))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let url = format!("/v1/tenants/{}", created[0]);
    let mut purged = false;
    for _ in 0..200 {
        let (s, _, _) = api.call(BOOTSTRAP, Method::DELETE, &url, None).await;
        if s == StatusCode::OK {
            purged = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(purged);
    let (s, _, _) = api
        .call(BOOTSTRAP, Method::POST, "/v1/tenants", Some(json!({"slug": "racy", "name": "Again"})))
        .await;
    assert_eq!(s, StatusCode::CREATED, "the slug is free after the purge");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_tenant_per_slug_on_sqlite() {
    one_tenant_per_slug(Api::start(None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_tenant_per_slug_on_postgres() {
    let Some(h) = Harness::postgres().await else { return };
    one_tenant_per_slug(Api::start(Some(h.url.clone())).await).await;
}
