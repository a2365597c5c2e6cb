//! Analytics: what a tenant's agents and users did, grouped by day, agent, user or model; a
//! partner's tenants and the whole platform rolled up; nobody sees past their reach.

use reqwest::{Method as M, StatusCode};
use serde_json::{Value, json};
use tenantry_store::testing::Harness;

use crate::client::Api;
use crate::support::BOOTSTRAP;

fn group<'a>(report: &'a Value, key: Option<&str>) -> &'a Value {
    report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["key"].as_str() == key)
        .unwrap_or_else(|| panic!("no group {key:?} in {report}"))
}

async fn analytics_add_up(api: Api) {
    let (p, _) = api.create(BOOTSTRAP, "/v1/partners", json!({"name": "Resell"})).await;
    let (partner, partner_key) =
        (p["id"].as_str().unwrap().to_owned(), p["key"].as_str().unwrap().to_owned());
    let (other_p, _) = api.create(BOOTSTRAP, "/v1/partners", json!({"name": "Other"})).await;
    let other_partner_key = other_p["key"].as_str().unwrap().to_owned();
    let tenant = |slug: &'static str, partner: Option<String>| {
        let api = &api;
        async move {
            let (t, _) = api
                .create(BOOTSTRAP, "/v1/tenants", json!({"slug": slug, "name": slug, "partner_id": partner}))
                .await;
            let t = t["id"].as_str().unwrap().to_owned();
            let (k, _) = api
                .create(
                    BOOTSTRAP,
                    &format!("/v1/tenants/{t}/api-keys"),
                    json!({"name": "a", "role": "admin"}),
                )
                .await;
            (t, k["key"].as_str().unwrap().to_owned())
        }
    };
    let (t1, k1) = tenant("an-one", Some(partner.clone())).await;
    let (t2, k2) = tenant("an-two", Some(partner.clone())).await;
    let (t3, _) = tenant("an-three", None).await;

    let make = |key: &str, path: String, body: Value| {
        let (api, key) = (&api, key.to_owned());
        async move { api.create(&key, &path, body).await.0 }
    };
    let a1 = make(&k1, format!("/v1/tenants/{t1}/agents"), json!({"name": "a1", "model": "gpt-4o"})).await;
    let a2 = make(&k1, format!("/v1/tenants/{t1}/agents"), json!({"name": "a2", "model": "gpt-4o"})).await;
    let u1 = make(&k1, format!("/v1/tenants/{t1}/users"), json!({"email": "u1@an.io", "role": "user"})).await;
    let u2 = make(&k1, format!("/v1/tenants/{t1}/users"), json!({"email": "u2@an.io", "role": "user"})).await;
    let c1 = make(
        &k1,
        format!("/v1/tenants/{t1}/conversations"),
        json!({"agent_id": a1["id"], "user_id": u1["id"]}),
    )
    .await;
    let c2 = make(
        &k1,
        format!("/v1/tenants/{t1}/conversations"),
        json!({"agent_id": a2["id"], "user_id": u2["id"]}),
    )
    .await;
    let msg = |c: &Value, body: Value| {
        make(&k1, format!("/v1/tenants/{t1}/conversations/{}/messages", c["id"].as_str().unwrap()), body)
    };
    msg(&c1, json!({"role": "user", "content": "hi"})).await;
    msg(&c1, json!({"role": "user", "content": "again"})).await;
    msg(&c1, json!({"role": "assistant", "content": "yes", "model": "gpt-4o", "usage": {"prompt_tokens": 100, "completion_tokens": 50}})).await;
    msg(&c2, json!({"role": "user", "content": "q"})).await;
    msg(&c2, json!({"role": "tool", "content": "{}"})).await;
    // Usage recorded outside a conversation: no agent, no user.
    let (s, _, _) = api
        .call(
            &k1,
            M::POST,
            &format!("/v1/tenants/{t1}/usage"),
            Some(json!({"model": "emb", "kind": "embedding", "prompt_tokens": 30, "completion_tokens": 0})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let c3 = make(&k2, format!("/v1/tenants/{t2}/conversations"), json!({"agent_id": make(&k2, format!("/v1/tenants/{t2}/agents"), json!({"name": "b", "model": "m"})).await["id"]})).await;
    make(&k2, format!("/v1/tenants/{t2}/conversations/{}/messages", c3["id"].as_str().unwrap()), json!({"role": "assistant", "content": "x", "model": "m", "usage": {"prompt_tokens": 7, "completion_tokens": 3}})).await;
    let (_, _, at) = api.call(&k1, M::PATCH, &format!("/v1/tenants/{t1}/settings"), Some(json!({}))).await;
    let at = at.unwrap();

    // By agent: each agent's conversations and messages; the usage with no agent apart.
    let (s, by_agent) = api.get_at(&k1, &format!("/v1/tenants/{t1}/analytics?group_by=agent"), at).await;
    assert_eq!(s, StatusCode::OK, "{by_agent}");
    let g1 = group(&by_agent, a1["id"].as_str());
    assert_eq!(g1["conversations"], 1);
    assert_eq!(g1["messages"], json!({"user": 2, "assistant": 1, "tool": 0, "system": 0}));
    assert_eq!(
        (g1["active_users"].as_i64(), g1["prompt_tokens"].as_i64(), g1["completion_tokens"].as_i64()),
        (Some(1), Some(100), Some(50))
    );
    let g2 = group(&by_agent, a2["id"].as_str());
    assert_eq!(g2["messages"], json!({"user": 1, "assistant": 0, "tool": 1, "system": 0}));
    assert_eq!(group(&by_agent, None)["prompt_tokens"], 30);
    let totals = &by_agent["totals"];
    assert_eq!((totals["conversations"].as_i64(), totals["active_users"].as_i64()), (Some(2), Some(2)));
    assert_eq!(
        (totals["prompt_tokens"].as_i64(), totals["completion_tokens"].as_i64()),
        (Some(130), Some(50))
    );
    assert_eq!(by_agent["currency"], "USD");
    // The cost is the usage report's, priced the same way.
    let (_, usage) = api.get_at(&k1, &format!("/v1/tenants/{t1}/usage"), at).await;
    assert_eq!(totals["cost"], usage["total_cost"], "{usage}");

    // By user and by model.
    let (_, by_user) = api.get_at(&k1, &format!("/v1/tenants/{t1}/analytics?group_by=user"), at).await;
    assert_eq!(group(&by_user, u1["id"].as_str())["messages"]["user"], 2);
    assert_eq!(group(&by_user, u2["id"].as_str())["active_users"], 1);
    let (_, by_model) = api.get_at(&k1, &format!("/v1/tenants/{t1}/analytics?group_by=model"), at).await;
    assert_eq!(group(&by_model, Some("gpt-4o"))["completion_tokens"], 50);
    assert_eq!(group(&by_model, Some("emb"))["prompt_tokens"], 30);
    let (_, by_day) = api.get_at(&k1, &format!("/v1/tenants/{t1}/analytics"), at).await;
    assert_eq!(
        (by_day["group_by"].as_str(), by_day["groups"].as_array().map(Vec::len)),
        (Some("day"), Some(1))
    );
    // A period with nothing in it, and bad parameters.
    let (_, empty) =
        api.get_at(&k1, &format!("/v1/tenants/{t1}/analytics?from=2020-01-01&to=2020-01-31"), at).await;
    assert_eq!((empty["groups"].clone(), empty["totals"]["conversations"].as_i64()), (json!([]), Some(0)));
    let (s, _, _) = api.call(&k1, M::GET, &format!("/v1/tenants/{t1}/analytics?group_by=tenant"), None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _, _) = api
        .call(&k1, M::GET, &format!("/v1/tenants/{t1}/analytics?from=2026-02-01&to=2026-01-01"), None)
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    // Another tenant's admin is refused.
    assert_eq!(
        api.call(&k2, M::GET, &format!("/v1/tenants/{t1}/analytics"), None).await.0,
        StatusCode::FORBIDDEN
    );

    // The partner's tenants, by tenant; not the tenant of no partner.
    let (s, fleet, _) = api
        .call(&partner_key, M::GET, &format!("/v1/partners/{partner}/analytics?group_by=tenant"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{fleet}");
    assert_eq!(group(&fleet, Some(&t1))["prompt_tokens"], 130);
    assert_eq!(group(&fleet, Some(&t2))["prompt_tokens"], 7);
    assert!(!fleet.to_string().contains(&t3));
    assert_eq!(fleet["totals"]["prompt_tokens"], 137);
    let (s, _, _) =
        api.call(&other_partner_key, M::GET, &format!("/v1/partners/{partner}/analytics"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(
        api.call(&k1, M::GET, &format!("/v1/partners/{partner}/analytics"), None).await.0,
        StatusCode::FORBIDDEN
    );

    // The platform: every tenant; only for operators.
    let (s, all, _) = api.call(BOOTSTRAP, M::GET, "/v1/analytics?group_by=tenant", None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(all["totals"]["prompt_tokens"].as_i64().unwrap() >= 137);
    for key in [&k1, &partner_key] {
        assert_eq!(api.call(key, M::GET, "/v1/analytics", None).await.0, StatusCode::FORBIDDEN);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analytics_add_up_on_sqlite() {
    analytics_add_up(Api::start(None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analytics_add_up_on_postgres() {
    let Some(h) = Harness::postgres().await else { return };
    analytics_add_up(Api::start(Some(h.url.clone())).await).await;
}
