//! The tenant's configuration holds over HTTP: allowed models and the default model, enabled
//! tools only, known prompt variables only.

use reqwest::{Method as M, StatusCode};
use serde_json::json;
use tenantry_store::testing::Harness;

use crate::client::Api;
use crate::support::BOOTSTRAP;

async fn configuration_is_enforced(api: Api) {
    let body = json!({"slug": "conf", "name": "Conf",
        "settings": {"allowed_models": ["small", "medium"], "default_model": "small"}});
    let (t, _) = api.create(BOOTSTRAP, "/v1/tenants", body).await;
    let t = t["id"].as_str().unwrap().to_owned();
    let (k, _) = api
        .create(BOOTSTRAP, &format!("/v1/tenants/{t}/api-keys"), json!({"name": "a", "role": "admin"}))
        .await;
    let key = k["key"].as_str().unwrap().to_owned();
    let agents = format!("/v1/tenants/{t}/agents");

    let (a, _) = api.create(&key, &agents, json!({"name": "plain"})).await;
    assert_eq!(a["model"], "small", "the default model");
    let (s, p, _) = api.call(&key, M::POST, &agents, Some(json!({"name": "big", "model": "large"}))).await;
    assert_eq!(
        (s, p["code"].as_str(), p["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("model_not_allowed"), Some("model")),
        "{p}"
    );
    let agent = format!("{agents}/{}", a["id"].as_str().unwrap());
    let (s, p, _) = api.call(&key, M::PATCH, &agent, Some(json!({"model": "large"}))).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("model_not_allowed")));
    let (s, _, _) = api.call(&key, M::PATCH, &agent, Some(json!({"model": "medium"}))).await;
    assert_eq!(s, StatusCode::OK);

    let (c, _) =
        api.create(&key, &format!("/v1/tenants/{t}/conversations"), json!({"agent_id": a["id"]})).await;
    let messages = format!("/v1/tenants/{t}/conversations/{}/messages", c["id"].as_str().unwrap());
    let (s, p, _) = api
        .call(&key, M::POST, &messages, Some(json!({"role": "assistant", "content": "x", "model": "large"})))
        .await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("model_not_allowed")), "{p}");

    let tool = json!({"name": "search", "description": "d", "endpoint": "https://t.example/s", "parameters": {"type": "object"}, "enabled": false});
    let (tool, _) = api.create(&key, &format!("/v1/tenants/{t}/tools"), tool).await;
    let (s, p, _) =
        api.call(&key, M::POST, &agents, Some(json!({"name": "tooled", "tool_ids": [tool["id"]]}))).await;
    assert_eq!((s, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("tool_ids")), "{p}");

    let (s, p, _) = api
        .call(&key, M::POST, &agents, Some(json!({"name": "vars", "system_prompt": "Hi {{user.secret}}"})))
        .await;
    assert_eq!((s, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("system_prompt")), "{p}");
    assert!(p["detail"].as_str().unwrap().contains("{{user.secret}}"), "{p}");
    api.create(
        &key,
        &agents,
        json!({"name": "vars", "system_prompt": "You are {{agent.name}} of {{tenant.name}}"}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_is_enforced_on_sqlite() {
    configuration_is_enforced(Api::start(None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_is_enforced_on_postgres() {
    let Some(h) = Harness::postgres().await else { return };
    configuration_is_enforced(Api::start(Some(h.url.clone())).await).await;
}
