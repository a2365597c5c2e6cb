//! Tenants under tenants: an admin reaches down its tree and never up or sideways, usage
//! rolls up, and a purge of a tenant with tenants below it cascades only when asked.

use std::time::Duration;

use reqwest::{Method as M, StatusCode};
use serde_json::{Value, json};
use tenantry_store::testing::Harness;

use crate::client::Api;
use crate::support::BOOTSTRAP;

/// A tenant (under `parent` when given) with an admin key: (id, key).
async fn tenant(api: &Api, slug: &str, parent: Option<&str>) -> (String, String) {
    let mut body = json!({"slug": slug, "name": slug});
    if let Some(parent) = parent {
        body["parent_id"] = json!(parent);
    }
    let (t, _) = api.create(BOOTSTRAP, "/v1/tenants", body).await;
    assert_eq!(t["parent_id"].as_str(), parent, "{t}");
    let id = t["id"].as_str().unwrap().to_owned();
    let (k, _) = api
        .create(BOOTSTRAP, &format!("/v1/tenants/{id}/api-keys"), json!({"name": "a", "role": "admin"}))
        .await;
    (id, k["key"].as_str().unwrap().to_owned())
}

async fn record(api: &Api, key: &str, tenant: &str, tokens: u64) -> u64 {
    let body = json!({"model": "m", "kind": "completion", "prompt_tokens": tokens, "completion_tokens": 0});
    let (s, p, pos) = api.call(key, M::POST, &format!("/v1/tenants/{tenant}/usage"), Some(body)).await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    pos.unwrap()
}

async fn tenants_form_trees(api: Api) {
    let (root, root_key) = tenant(&api, "tree-root", None).await;
    let (child, child_key) = tenant(&api, "tree-child", Some(&root)).await;
    let (grand, grand_key) = tenant(&api, "tree-grand", Some(&child)).await;
    let (great, _) = tenant(&api, "tree-great", Some(&grand)).await;
    let (sibling, sibling_key) = tenant(&api, "tree-sibling", Some(&root)).await;
    // Four levels at most.
    let body = json!({"slug": "tree-deep", "name": "D", "parent_id": great});
    let (s, p, _) = api.call(BOOTSTRAP, M::POST, "/v1/tenants", Some(body)).await;
    assert_eq!((s, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("parent_id")), "{p}");
    let body = json!({"slug": "tree-orphan", "name": "O", "parent_id": tenantry_domain::TenantId::new()});
    let (s, p, _) = api.call(BOOTSTRAP, M::POST, "/v1/tenants", Some(body)).await;
    assert_eq!((s, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("parent_id")), "{p}");

    // An admin reaches down its tree; a child's keys reach neither up nor sideways.
    let agents = |t: &str| format!("/v1/tenants/{t}/agents");
    for (key, target, expected) in [
        (&root_key, &child, StatusCode::OK),
        (&root_key, &grand, StatusCode::OK),
        (&root_key, &great, StatusCode::OK),
        (&child_key, &grand, StatusCode::OK),
        (&child_key, &root, StatusCode::FORBIDDEN),
        (&child_key, &sibling, StatusCode::FORBIDDEN),
        (&grand_key, &child, StatusCode::FORBIDDEN),
        (&sibling_key, &child, StatusCode::FORBIDDEN),
    ] {
        assert_eq!(api.call(key, M::GET, &agents(target), None).await.0, expected, "{target}");
    }
    let (agent, _) =
        api.create(&root_key, &agents(&grand), json!({"name": "made-above", "model": "m"})).await;
    assert_eq!(agent["name"], "made-above");
    // A user of the root reaches nothing below.
    let (u, _) = api
        .create(
            &root_key,
            &format!("/v1/tenants/{root}/users"),
            json!({"email": "u@root.io", "role": "user"}),
        )
        .await;
    let (k, _) = api
        .create(
            &root_key,
            &format!("/v1/tenants/{root}/api-keys"),
            json!({"name": "u", "role": "user", "user_id": u["id"]}),
        )
        .await;
    assert_eq!(
        api.call(k["key"].as_str().unwrap(), M::GET, &agents(&child), None).await.0,
        StatusCode::FORBIDDEN
    );
    // What the root's admin read of the child is in the child's audit trail.
    let root_key_id = root_key.strip_prefix("tnt_").and_then(|k| k.split('_').next()).unwrap();
    let root_key_id = uuid::Uuid::parse_str(root_key_id).unwrap();
    let audit = format!("/v1/tenants/{child}/audit?actor=apikey:{root_key_id}");
    let mut found = Value::Null;
    for _ in 0..200 {
        let (_, page, _) = api.call(&child_key, M::GET, &audit, None).await;
        found = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["outcome"] == "read")
            .cloned()
            .unwrap_or_default();
        if !found.is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(found["action"], json!(format!("GET /v1/tenants/{child}/agents")), "{found}");

    // Usage rolls up from the tenants below, when asked.
    // (Each tenant's billing read model is waited for at its own position first.)
    for (key, t, tokens) in [(&root_key, &root, 1), (&child_key, &child, 10), (&root_key, &grand, 100)] {
        let position = record(&api, key, t, tokens).await;
        let (s, own) = api.get_at(key, &format!("/v1/tenants/{t}/usage"), position).await;
        assert_eq!((s, own["total_tokens"].as_u64()), (StatusCode::OK, Some(tokens)), "{own}");
    }
    let usage = format!("/v1/tenants/{root}/usage");
    let (_, all, _) = api.call(&root_key, M::GET, &format!("{usage}?include_descendants=true"), None).await;
    assert_eq!(all["total_tokens"].as_i64(), Some(111), "{all}");
    let (_, mid, _) = api
        .call(&child_key, M::GET, &format!("/v1/tenants/{child}/usage?include_descendants=true"), None)
        .await;
    assert_eq!(mid["total_tokens"].as_i64(), Some(110), "{mid}");

    // A tenant with tenants below it is purged only with them, when asked.
    let this = format!("/v1/tenants/{root}");
    let (s, p, _) = api.call(BOOTSTRAP, M::DELETE, &this, None).await;
    assert_eq!((s, p["field"].as_str()), (StatusCode::CONFLICT, Some("cascade")), "{p}");
    assert_eq!(api.call(&root_key, M::GET, &agents(&root), None).await.0, StatusCode::OK, "nothing purged");
    let (s, p, _) = api.call(BOOTSTRAP, M::DELETE, &format!("{this}?cascade=true"), None).await;
    assert!(matches!(s, StatusCode::ACCEPTED | StatusCode::OK), "{s}: {p}");
    assert_eq!(p["descendants"].as_u64(), Some(4));
    for t in [&root, &child, &grand, &great, &sibling] {
        let mut status = StatusCode::OK;
        for _ in 0..500 {
            status = api.call(BOOTSTRAP, M::GET, &format!("/v1/tenants/{t}"), None).await.0;
            if status == StatusCode::NOT_FOUND {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(status, StatusCode::NOT_FOUND, "{t} is purged with its tree");
    }
}

/// A child of a partner's tenant is the partner's too.
async fn children_keep_their_partner(api: Api) {
    let (p, _) = api.create(BOOTSTRAP, "/v1/partners", json!({"name": "Resell"})).await;
    let partner_key = p["key"].as_str().unwrap().to_owned();
    let (parent, _) = api.create(&partner_key, "/v1/tenants", json!({"slug": "ptree", "name": "P"})).await;
    let (child, _) = api
        .create(
            BOOTSTRAP,
            "/v1/tenants",
            json!({"slug": "ptree-child", "name": "C", "parent_id": parent["id"]}),
        )
        .await;
    assert_eq!(child["partner_id"], p["id"]);
    let path = format!("/v1/tenants/{}/agents", child["id"].as_str().unwrap());
    assert_eq!(api.call(&partner_key, M::GET, &path, None).await.0, StatusCode::OK);
    let (q, _) = api.create(BOOTSTRAP, "/v1/partners", json!({"name": "Other"})).await;
    let body = json!({"slug": "ptree-x", "name": "X", "parent_id": parent["id"]});
    let (s, _, _) = api.call(q["key"].as_str().unwrap(), M::POST, "/v1/tenants", Some(body)).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "not under another partner's tenant");
}

/// A child has its ancestors' settings and limits unless it sets its own; `?effective=true`
/// says which tenant each came from, and the inherited limits hold.
async fn settings_and_limits_flow_down(api: Api) {
    let body = json!({"slug": "flow-root", "name": "R",
        "settings": {"agent_name": "Ava", "system_prompt": "root", "feature_flags": {"beta": true, "chat": true}},
        "limits": {"max_agents": 1, "max_users": 40}});
    let (root, _) = api.create(BOOTSTRAP, "/v1/tenants", body).await;
    let root = root["id"].as_str().unwrap().to_owned();
    let body = json!({"slug": "flow-child", "name": "C", "parent_id": root,
        "settings": {"system_prompt": "child", "feature_flags": {"beta": false}}, "limits": {"max_users": 5}});
    let (child, _) = api.create(BOOTSTRAP, "/v1/tenants", body).await;
    let child = child["id"].as_str().unwrap().to_owned();
    let (k, _) = api
        .create(BOOTSTRAP, &format!("/v1/tenants/{child}/api-keys"), json!({"name": "a", "role": "admin"}))
        .await;
    let key = k["key"].as_str().unwrap().to_owned();

    let (s, own, _) = api.call(&key, M::GET, &format!("/v1/tenants/{child}/settings"), None).await;
    assert_eq!((s, own["agent_name"].clone()), (StatusCode::OK, Value::Null), "its own settings: {own}");
    let (s, e, _) =
        api.call(&key, M::GET, &format!("/v1/tenants/{child}/settings?effective=true"), None).await;
    assert_eq!(s, StatusCode::OK, "{e}");
    assert_eq!(e["settings"]["agent_name"], "Ava");
    assert_eq!(e["settings"]["system_prompt"], "child");
    assert_eq!(e["settings"]["feature_flags"], json!({"beta": false, "chat": true}));
    assert_eq!(e["settings_from"]["agent_name"], json!(root));
    assert_eq!(e["settings_from"]["system_prompt"], json!(child));
    assert_eq!(e["settings_from"]["default_model"], Value::Null);
    assert_eq!(e["feature_flags_from"], json!({"beta": child, "chat": root}));
    assert_eq!((e["limits"]["max_agents"].as_u64(), e["limits"]["max_users"].as_u64()), (Some(1), Some(5)));
    assert_eq!(
        (e["limits_from"]["max_agents"].clone(), e["limits_from"]["max_users"].clone()),
        (json!(root), json!(child))
    );
    assert_eq!(e["limits_from"]["max_api_keys"], Value::Null, "from the plan");

    // The inherited limit holds for the child's commands.
    let agents = format!("/v1/tenants/{child}/agents");
    api.create(&key, &agents, json!({"name": "one", "model": "m"})).await;
    let (s, p, _) = api.call(&key, M::POST, &agents, Some(json!({"name": "two", "model": "m"}))).await;
    assert_eq!((s, p["limit"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("max_agents")), "{p}");
    // Set on the child itself, its own value wins.
    let (s, _, _) = api
        .call(
            BOOTSTRAP,
            M::PATCH,
            &format!("/v1/tenants/{child}"),
            Some(json!({"limits": {"max_agents": 2}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    api.create(&key, &agents, json!({"name": "two", "model": "m"})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_and_limits_flow_down_on_sqlite() {
    settings_and_limits_flow_down(Api::start(None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_and_limits_flow_down_on_postgres() {
    let Some(h) = Harness::postgres().await else { return };
    settings_and_limits_flow_down(Api::start(Some(h.url.clone())).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_form_trees_on_sqlite() {
    tenants_form_trees(Api::start(None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_form_trees_on_postgres() {
    let Some(h) = Harness::postgres().await else { return };
    tenants_form_trees(Api::start(Some(h.url.clone())).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_keep_their_partner_on_sqlite() {
    children_keep_their_partner(Api::start(None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_keep_their_partner_on_postgres() {
    let Some(h) = Harness::postgres().await else { return };
    children_keep_their_partner(Api::start(Some(h.url.clone())).await).await;
}
