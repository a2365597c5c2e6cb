//! The knowledge base: documents added, listed, read back, searched and deleted; storage
//! counted exactly under racing uploads; a search never reaches another tenant.

use reqwest::{Method as M, StatusCode};
use serde_json::{Value, json};
use tenantry_store::testing::Harness;

use crate::client::Api;
use crate::support::BOOTSTRAP;

/// A tenant with an admin key and a user key: (tenant id, admin key, user key).
async fn tenant(api: &Api, slug: &str, limits: Value) -> (String, String, String) {
    let (t, _) =
        api.create(BOOTSTRAP, "/v1/tenants", json!({"slug": slug, "name": slug, "limits": limits})).await;
    let t = t["id"].as_str().unwrap().to_owned();
    let (k, _) = api
        .create(BOOTSTRAP, &format!("/v1/tenants/{t}/api-keys"), json!({"name": "a", "role": "admin"}))
        .await;
    let (u, _) = api
        .create(
            k["key"].as_str().unwrap(),
            &format!("/v1/tenants/{t}/users"),
            json!({"email": format!("u@{slug}.io"), "role": "user"}),
        )
        .await;
    let (uk, _) = api
        .create(
            k["key"].as_str().unwrap(),
            &format!("/v1/tenants/{t}/api-keys"),
            json!({"name": "u", "role": "user", "user_id": u["id"]}),
        )
        .await;
    (t, k["key"].as_str().unwrap().to_owned(), uk["key"].as_str().unwrap().to_owned())
}

fn stored(quotas: &Value) -> u64 {
    quotas["items"].as_array().unwrap().iter().find(|l| l["limit"] == "storage_bytes").unwrap()["used"]
        .as_u64()
        .unwrap()
}

async fn documents_round_trip(api: Api) {
    let (a, ak, au) = tenant(&api, "kb-a", json!({})).await;
    let (b, bk, _) = tenant(&api, "kb-b", json!({})).await;
    let list = format!("/v1/tenants/{a}/documents");
    let body = format!(
        "# Refunds\n\nCustomers may ask for a refund within thirty days.\n\n{}\n\nThe zephyrine clause ends it.",
        "Filler sentence about nothing in particular. ".repeat(120)
    );
    let (_, _, at) = api.call(&ak, M::PATCH, &format!("/v1/tenants/{a}/settings"), Some(json!({}))).await;
    let (_, before) = api.get_at(&ak, &format!("/v1/tenants/{a}/quotas"), at.unwrap()).await;

    let (doc, pos) = api
        .create(
            &ak,
            &list,
            json!({"title": "Refund policy", "body": body, "content_type": "text/markdown",
                   "metadata": {"lang": "en", "source": "wiki"}}),
        )
        .await;
    assert_eq!(doc["size"].as_u64(), Some(body.len() as u64), "{doc}");
    assert_eq!(doc["sha256"].as_str().map(str::len), Some(64));
    assert_eq!(doc["metadata"], json!({"lang": "en", "source": "wiki"}));
    assert!(doc["chunks"].as_u64().unwrap() >= 3, "{doc}");
    let id = doc["id"].as_str().unwrap().to_owned();
    let one = format!("{list}/{id}");

    // The body comes back byte for byte, with its type; every member may read it.
    let res = api.client.get(format!("{}{one}/content", api.base)).bearer_auth(&au).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/markdown"));
    assert_eq!(res.text().await.unwrap(), body);
    let (_, after) = api.get_at(&ak, &format!("/v1/tenants/{a}/quotas"), pos).await;
    assert!(stored(&after) >= stored(&before) + body.len() as u64, "the body counts toward storage_bytes");

    // Search: every word must be there, ranked, with the match marked in a snippet.
    let (s, found, _) = api.call(&au, M::GET, &format!("{list}/search?q=Zephyrine%20clause"), None).await;
    assert_eq!(s, StatusCode::OK, "{found}");
    let hits = found["items"].as_array().unwrap();
    assert_eq!(hits.len(), 1, "{found}");
    assert_eq!(hits[0]["document_id"], id.as_str());
    assert_eq!(hits[0]["title"], "Refund policy");
    assert!(hits[0]["snippet"].as_str().unwrap().to_lowercase().contains("**zephyrine**"), "{found}");
    let (_, none, _) = api.call(&au, M::GET, &format!("{list}/search?q=zephyrine%20banana"), None).await;
    assert_eq!(none["items"], json!([]));
    // Query syntax is only words: quotes, operators and column names are not read as syntax.
    for q in ["%22refund", "refund%20OR%20x", "body%3Arefund", "tenant_id%3A*", "NEAR(refund)"] {
        let (s, p, _) = api.call(&au, M::GET, &format!("{list}/search?q={q}"), None).await;
        assert_eq!(s, StatusCode::OK, "{q}: {p}");
    }
    let (s, p, _) = api.call(&au, M::GET, &format!("{list}/search?q=%20%2B%2B"), None).await;
    assert_eq!((s, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("q")), "{p}");

    // Another tenant holding the same words finds only its own; A's search never shows B's.
    let (bdoc, _) = api
        .create(
            &bk,
            &format!("/v1/tenants/{b}/documents"),
            json!({"title": "B", "body": "zephyrine clause of B"}),
        )
        .await;
    let (_, found_b, _) =
        api.call(&bk, M::GET, &format!("/v1/tenants/{b}/documents/search?q=zephyrine"), None).await;
    assert_eq!(found_b["items"].as_array().unwrap().len(), 1);
    assert_eq!(found_b["items"][0]["document_id"], bdoc["id"]);
    let (_, found_a, _) = api.call(&ak, M::GET, &format!("{list}/search?q=zephyrine"), None).await;
    assert_eq!(found_a["items"].as_array().unwrap().len(), 1);
    assert_eq!(found_a["items"][0]["document_id"], id.as_str());
    // B's key reaches nothing of A: not the list, the search, the document or its body.
    for path in [list.clone(), format!("{list}/search?q=refund"), one.clone(), format!("{one}/content")] {
        assert_eq!(api.call(&bk, M::GET, &path, None).await.0, StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(api.call(&bk, M::DELETE, &one, None).await.0, StatusCode::FORBIDDEN);
    let (s, _, _) = api.call(&bk, M::POST, &list, Some(json!({"title": "x", "body": "y"}))).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // A's id under B's path is not found there.
    let (s, _, _) = api.call(&bk, M::GET, &format!("/v1/tenants/{b}/documents/{id}/content"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Users read; only admins write.
    let (s, _, _) = api.call(&au, M::POST, &list, Some(json!({"title": "x", "body": "y"}))).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Bad input is refused by name and writes nothing.
    for (bad, field) in [
        (json!({"title": " ", "body": "x"}), "title"),
        (json!({"title": "t", "body": "  "}), "body"),
        (json!({"title": "t", "body": "x", "content_type": "application/pdf"}), "content_type"),
        (json!({"title": "t", "body": "x", "metadata": {"big": "m".repeat(17_000)}}), "metadata"),
    ] {
        let (s, p, _) = api.call(&ak, M::POST, &list, Some(bad)).await;
        assert_eq!((s, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some(field)), "{p}");
    }
    let too_big = "a".repeat(tenantry_domain::document::MAX_BODY_BYTES + 1);
    let (s, p, _) = api.call(&ak, M::POST, &list, Some(json!({"title": "t", "body": too_big}))).await;
    assert_eq!((s, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("body")), "{p}");
    let (_, listed, _) = api.call(&ak, M::GET, &list, None).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");

    // The export names the document (metadata, size and hash), not its body.
    let export =
        api.client.get(format!("{}/v1/tenants/{a}/export", api.base)).bearer_auth(&ak).send().await.unwrap();
    let text = export.text().await.unwrap();
    assert!(text.contains("document.added") && text.contains(doc["sha256"].as_str().unwrap()), "{text}");
    assert!(!text.contains("zephyrine"), "the export holds no body");

    // Deleted: gone from the list, the search and the store; its bytes no longer count.
    let (s, _, at) = api.call(&ak, M::DELETE, &one, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(api.call(&ak, M::GET, &one, None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(api.call(&ak, M::GET, &format!("{one}/content"), None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(api.call(&ak, M::DELETE, &one, None).await.0, StatusCode::NOT_FOUND);
    let (_, gone, _) = api.call(&ak, M::GET, &format!("{list}/search?q=zephyrine"), None).await;
    assert_eq!(gone["items"], json!([]));
    let (_, freed) = api.get_at(&ak, &format!("/v1/tenants/{a}/quotas"), at.unwrap()).await;
    assert!(stored(&freed) < stored(&before) + 2_000, "{} then {}", stored(&before), stored(&freed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_round_trip_on_sqlite() {
    documents_round_trip(Api::start(None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_round_trip_on_postgres() {
    let Some(h) = Harness::postgres().await else { return };
    documents_round_trip(Api::start(Some(h.url.clone())).await).await;
}

/// Racing uploads past `storage_bytes`: exactly as many are kept as fit, the others are 429
/// naming the limit, and each one kept is whole.
async fn storage_holds_under_racing_uploads(api: Api) {
    let (t, key, _) = tenant(&api, "kb-race", json!({"storage_bytes": 100_000})).await;
    let list = format!("/v1/tenants/{t}/documents");
    let uploads: Vec<_> = (0..16)
        .map(|i| {
            let (client, url, key) = (api.client.clone(), format!("{}{list}", api.base), key.clone());
            tokio::spawn(async move {
                let body = format!("upload {i} ").repeat(1_000);
                let res = client
                    .post(url)
                    .bearer_auth(key)
                    .json(&json!({"title": format!("u{i}"), "body": body}))
                    .send()
                    .await
                    .unwrap();
                let status = res.status();
                (status, res.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut kept = 0;
    for upload in uploads {
        let (status, body) = upload.await.unwrap();
        match status {
            StatusCode::CREATED | StatusCode::ACCEPTED => kept += 1,
            StatusCode::TOO_MANY_REQUESTS => assert_eq!(body["limit"], "storage_bytes", "{body}"),
            other => panic!("{other}: {body}"),
        }
    }
    // Each body is some 9,000 bytes: at most 11 fit in 100,000 with the other events.
    assert!((6..=11).contains(&kept), "{kept} kept");
    let (_, _, at) = api.call(&key, M::PATCH, &format!("/v1/tenants/{t}/settings"), Some(json!({}))).await;
    let (_, listed) = api.get_at(&key, &format!("{list}?limit=50"), at.unwrap()).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), kept);
    let (_, quotas) = api.get_at(&key, &format!("/v1/tenants/{t}/quotas"), at.unwrap()).await;
    assert!(stored(&quotas) <= 100_000, "{quotas}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn storage_holds_under_racing_uploads_on_sqlite() {
    storage_holds_under_racing_uploads(Api::start(None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn storage_holds_under_racing_uploads_on_postgres() {
    let Some(h) = Harness::postgres().await else { return };
    storage_holds_under_racing_uploads(Api::start(Some(h.url.clone())).await).await;
}
