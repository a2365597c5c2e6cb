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

/// A partner's key id, from its token `tnt_<id>_<secret>`.
fn key_id(token: &str) -> String {
    let id = token.strip_prefix("tnt_").and_then(|t| t.split('_').next()).unwrap();
    uuid::Uuid::parse_str(id).unwrap().to_string()
}

/// After its creation: renamed, its usage rolled up, its keys rotated and revoked, and
/// deleted once it has no tenants.
async fn partner_lifecycle(api: Api) {
    use Method as M;
    let (p, _) = api.create(BOOTSTRAP, "/v1/partners", json!({"name": "Resell"})).await;
    let (partner, key) = (p["id"].as_str().unwrap().to_owned(), p["key"].as_str().unwrap().to_owned());
    let (q, _) = api.create(BOOTSTRAP, "/v1/partners", json!({"name": "Other"})).await;
    let (other, other_key) = (q["id"].as_str().unwrap().to_owned(), q["key"].as_str().unwrap().to_owned());

    // Usage of all its tenants, per tenant and in total.
    let (a, _) = api.create(&key, "/v1/tenants", json!({"slug": "pl-a", "name": "A"})).await;
    let (b, _) = api.create(&key, "/v1/tenants", json!({"slug": "pl-b", "name": "B"})).await;
    let (a, b) = (a["id"].as_str().unwrap().to_owned(), b["id"].as_str().unwrap().to_owned());
    let (k, _) =
        api.create(&key, &format!("/v1/tenants/{a}/api-keys"), json!({"name": "a", "role": "admin"})).await;
    let tenant_admin = k["key"].as_str().unwrap().to_owned();
    let record = json!({"model": "m", "kind": "completion", "prompt_tokens": 100, "completion_tokens": 20});
    let (s, _, pos) = api.call(&tenant_admin, M::POST, &format!("/v1/tenants/{a}/usage"), Some(record)).await;
    assert_eq!(s, StatusCode::CREATED);
    let usage = format!("/v1/partners/{partner}/usage");
    let (s, report) = api.get_at(&key, &format!("/v1/tenants/{a}/usage"), pos.unwrap()).await;
    assert_eq!(s, StatusCode::OK, "{report}");
    let (s, rolled, _) = api.call(&key, M::GET, &usage, None).await;
    assert_eq!(s, StatusCode::OK, "{rolled}");
    let tenants = rolled["tenants"].as_array().unwrap();
    assert_eq!(tenants.iter().map(|t| t["slug"].as_str().unwrap()).collect::<Vec<_>>(), ["pl-a", "pl-b"]);
    assert_eq!(
        (tenants[0]["prompt_tokens"].as_i64(), tenants[0]["completion_tokens"].as_i64()),
        (Some(100), Some(20))
    );
    assert_eq!(tenants[0]["tenant_id"], json!(a));
    assert_eq!(
        (tenants[1]["tenant_id"].as_str(), tenants[1]["requests"].as_i64()),
        (Some(b.as_str()), Some(0))
    );
    assert_eq!((rolled["prompt_tokens"].as_i64(), rolled["requests"].as_i64()), (Some(100), Some(1)));
    assert_eq!(rolled["total_cost"], report["total_cost"], "the partner's total is its tenants' costs");
    assert_eq!(api.call(BOOTSTRAP, M::GET, &usage, None).await.0, StatusCode::OK);
    assert_eq!(api.call(&other_key, M::GET, &usage, None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(api.call(&tenant_admin, M::GET, &usage, None).await.0, StatusCode::FORBIDDEN);
    let (s, _, _) = api.call(&key, M::GET, &format!("{usage}?from=2026-02-01&to=2026-01-01"), None).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);

    // What the partner's admin reads of a tenant is in that tenant's audit trail, a listing
    // read twice in a minute one record; the tenant's own reads are not recorded.
    let agents = format!("/v1/tenants/{a}/agents");
    for reader in [&key, &key, &tenant_admin] {
        assert_eq!(api.call(reader, M::GET, &agents, None).await.0, StatusCode::OK);
    }
    let audit = format!("/v1/tenants/{a}/audit?actor=apikey:{}", key_id(&key));
    let mut reads = Vec::new();
    for _ in 0..200 {
        let (_, page, _) = api.call(&tenant_admin, M::GET, &audit, None).await;
        reads =
            page["items"].as_array().unwrap().iter().filter(|e| e["outcome"] == "read").cloned().collect();
        if reads.iter().any(|e| e["action"] == json!(format!("GET {agents}"))) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let agent_reads: Vec<_> =
        reads.iter().filter(|e| e["action"] == json!(format!("GET {agents}"))).collect();
    assert_eq!(agent_reads.len(), 1, "{reads:?}");
    let (_, own, _) = api
        .call(
            &tenant_admin,
            M::GET,
            &format!("/v1/tenants/{a}/audit?actor=apikey:{}", key_id(&tenant_admin)),
            None,
        )
        .await;
    assert!(own["items"].as_array().unwrap().iter().all(|e| e["outcome"] != "read"), "{own}");

    // Renamed by the platform or its own admins.
    let (s, renamed, _) = api
        .call(&key, M::PATCH, &format!("/v1/partners/{partner}"), Some(json!({"name": "Resell Two"})))
        .await;
    assert_eq!((s, renamed["name"].as_str()), (StatusCode::OK, Some("Resell Two")), "{renamed}");
    let (s, _, _) = api
        .call(&other_key, M::PATCH, &format!("/v1/partners/{partner}"), Some(json!({"name": "Mine"})))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Its key rotated, without grace: the new secret works, the old one no more.
    let id = key_id(&key);
    let rotate = format!("/v1/partners/{partner}/keys/{id}/rotate");
    assert_eq!(api.call(&other_key, M::POST, &rotate, Some(json!({}))).await.0, StatusCode::FORBIDDEN);
    let revoke = format!("/v1/partners/{partner}/keys/{id}");
    assert_eq!(api.call(&other_key, M::DELETE, &revoke, None).await.0, StatusCode::FORBIDDEN);
    assert_eq!(api.call(&tenant_admin, M::DELETE, &revoke, None).await.0, StatusCode::FORBIDDEN);
    let (s, rotated, _) = api.call(&key, M::POST, &rotate, Some(json!({}))).await;
    assert_eq!(s, StatusCode::OK, "{rotated}");
    let new_key = rotated["key"].as_str().unwrap().to_owned();
    assert_eq!(api.call(&new_key, M::GET, &usage, None).await.0, StatusCode::OK);
    assert_eq!(api.call(&key, M::GET, &usage, None).await.0, StatusCode::UNAUTHORIZED);

    // Not deleted while it has tenants, nor by its own admins.
    let this = format!("/v1/partners/{partner}");
    assert_eq!(api.call(BOOTSTRAP, M::DELETE, &this, None).await.0, StatusCode::CONFLICT);
    assert_eq!(api.call(&new_key, M::DELETE, &this, None).await.0, StatusCode::FORBIDDEN);

    // The other partner: its key revoked, then the partner deleted (it has no tenants).
    let (s, _, _) = api
        .call(BOOTSTRAP, M::DELETE, &format!("/v1/partners/{other}/keys/{}", key_id(&other_key)), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(api.call(&other_key, M::GET, "/v1/partners", None).await.0, StatusCode::UNAUTHORIZED);
    let (s, _, _) = api.call(BOOTSTRAP, M::DELETE, &format!("/v1/partners/{other}"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        api.call(BOOTSTRAP, M::GET, &format!("/v1/partners/{other}"), None).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, listed, _) = api.call(BOOTSTRAP, M::GET, "/v1/partners", None).await;
    assert!(listed["items"].as_array().unwrap().iter().all(|p| p["id"] != json!(other)), "{listed}");
    let (s, _, _) = api.call(BOOTSTRAP, M::DELETE, &format!("/v1/partners/{other}"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "deleted once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_lives_through_the_log_on_sqlite() {
    partner_lifecycle(Api::start(None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_lives_through_the_log_on_postgres() {
    let Some(h) = Harness::postgres().await else { return };
    partner_lifecycle(Api::start(Some(h.url.clone())).await).await;
}
