//! What an agent runtime reads: the agent as configured for its tenant, in one answer, with
//! the provider's secret for runtime keys only.

use std::time::Duration;

use reqwest::{Method as M, StatusCode};
use serde_json::{Value, json};
use tenantry_store::testing::Harness;

use crate::client::Api;
use crate::support::BOOTSTRAP;

async fn the_runtime_reads_its_agent(api: Api) {
    let body = json!({"slug": "rt", "name": "Runtime Co", "settings": {
        "default_model": "gpt-4o", "system_prompt": "You are {{agent.name}} of {{tenant.name}} ({{tenant.slug}}). Answer in {{settings.custom.lang}}.",
        "feature_flags": {"beta": true}, "custom": {"lang": "de", "ui": {"theme": "dark"}}}});
    let (t, _) = api.create(BOOTSTRAP, "/v1/tenants", body).await;
    let t = t["id"].as_str().unwrap().to_owned();
    let (k, _) = api
        .create(BOOTSTRAP, &format!("/v1/tenants/{t}/api-keys"), json!({"name": "a", "role": "admin"}))
        .await;
    let admin = k["key"].as_str().unwrap().to_owned();
    let tool = |name: &str| json!({"name": name, "description": "d", "endpoint": "https://t.example/x", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}});
    let (search, _) = api.create(&admin, &format!("/v1/tenants/{t}/tools"), tool("search")).await;
    let (calc, _) = api.create(&admin, &format!("/v1/tenants/{t}/tools"), tool("calc")).await;
    let (agent, _) = api
        .create(
            &admin,
            &format!("/v1/tenants/{t}/agents"),
            json!({"name": "Ava", "tool_ids": [search["id"], calc["id"]]}),
        )
        .await;
    // A tool disabled after it was attached is left out of what the runtime gets.
    let calc_path = format!("/v1/tenants/{t}/tools/{}", calc["id"].as_str().unwrap());
    let (s, _, _) = api.call(&admin, M::PATCH, &calc_path, Some(json!({"enabled": false}))).await;
    assert_eq!(s, StatusCode::OK);
    let (cred, position) = api
        .create(
            &admin,
            &format!("/v1/tenants/{t}/credentials"),
            json!({"provider": "openai", "name": "main", "secret": "sk-runtime-secret-9999"}),
        )
        .await;
    let runtime = format!("/v1/tenants/{t}/agents/{}/runtime", agent["id"].as_str().unwrap());

    let (s, r) = api.get_at(&admin, &runtime, position).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["model"], "gpt-4o", "the default model");
    assert_eq!(r["system_prompt"], "You are Ava of Runtime Co (rt). Answer in de.");
    assert_eq!(r["custom"], json!({"lang": "de", "ui": {"theme": "dark"}}));
    let names: Vec<Value> = r["tools"].as_array().unwrap().iter().map(|t| t["name"].clone()).collect();
    assert_eq!(names, [json!("search")]);
    assert_eq!(r["tools"][0]["parameters"]["properties"]["q"]["type"], "string");
    assert_eq!(r["feature_flags"], json!({"beta": true}));
    assert_eq!(r["credential"]["id"], cred["id"]);
    assert_eq!(r["credential"]["secret"], Value::Null, "no secret without runtime:read");
    assert!(r["remaining"]["tokens_per_month"].as_u64().unwrap() > 0);

    // `custom` is merge-patched member by member.
    let settings = format!("/v1/tenants/{t}/settings");
    let patch = json!({"custom": {"ui": {"theme": null, "font": "large"}, "region": "eu"}});
    let (s, got, _) = api.call(&admin, M::PATCH, &settings, Some(patch)).await;
    assert_eq!(s, StatusCode::OK, "{got}");
    assert_eq!(got["custom"], json!({"lang": "de", "region": "eu", "ui": {"font": "large"}}));
    let (s, p, _) =
        api.call(&admin, M::PATCH, &settings, Some(json!({"custom": {"x": "y".repeat(17_000)}}))).await;
    assert_eq!((s, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("settings.custom")), "{p}");

    // A runtime key gets the secret, and that is audited.
    let (k, _) = api
        .create(
            BOOTSTRAP,
            &format!("/v1/tenants/{t}/api-keys"),
            json!({"name": "rt", "role": "admin", "scopes": ["runtime:read"]}),
        )
        .await;
    let runtime_key = k["key"].as_str().unwrap().to_owned();
    let (s, r, _) = api.call(&runtime_key, M::GET, &runtime, None).await;
    assert_eq!(
        (s, r["credential"]["secret"].as_str()),
        (StatusCode::OK, Some("sk-runtime-secret-9999")),
        "{r}"
    );
    let mut audited = false;
    for _ in 0..200 {
        let (_, page, _) = api.call(&admin, M::GET, &format!("/v1/tenants/{t}/audit"), None).await;
        audited = page["items"].as_array().unwrap().iter().any(|e| {
            e["outcome"] == "read" && e["action"].as_str().is_some_and(|a| a.contains("secret of credential"))
        });
        if audited {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(audited, "the secret's read is in the audit trail");
    // Other keys: a key narrowed elsewhere is refused naming the scope; a user key too.
    let (k, _) = api
        .create(
            BOOTSTRAP,
            &format!("/v1/tenants/{t}/api-keys"),
            json!({"name": "ag", "role": "admin", "scopes": ["agents:read"]}),
        )
        .await;
    let (s, p, _) = api.call(k["key"].as_str().unwrap(), M::GET, &runtime, None).await;
    assert_eq!((s, p["scope"].as_str()), (StatusCode::FORBIDDEN, Some("runtime:read")));
    let (u, _) = api
        .create(&admin, &format!("/v1/tenants/{t}/users"), json!({"email": "u@rt.io", "role": "user"}))
        .await;
    let (uk, _) = api
        .create(
            &admin,
            &format!("/v1/tenants/{t}/api-keys"),
            json!({"name": "u", "role": "user", "user_id": u["id"]}),
        )
        .await;
    assert_eq!(api.call(uk["key"].as_str().unwrap(), M::GET, &runtime, None).await.0, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runtime_reads_its_agent_on_sqlite() {
    the_runtime_reads_its_agent(Api::start(None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runtime_reads_its_agent_on_postgres() {
    let Some(h) = Harness::postgres().await else { return };
    the_runtime_reads_its_agent(Api::start(Some(h.url.clone())).await).await;
}

/// The runtime answer is kept for a moment: a change made through this process shows at
/// once, a request with `Tenantry-Min-Position` reads at or past that position (usage
/// included), and a change made through another process shows within `FRESH_FOR`.
async fn the_runtime_answer_follows_changes(api: Api, database_url: Option<String>) {
    let (t, _) = api.create(BOOTSTRAP, "/v1/tenants", json!({"slug": "rtc", "name": "RT"})).await;
    let t = t["id"].as_str().unwrap().to_owned();
    let (k, _) = api
        .create(BOOTSTRAP, &format!("/v1/tenants/{t}/api-keys"), json!({"name": "a", "role": "admin"}))
        .await;
    let admin = k["key"].as_str().unwrap().to_owned();
    let (agent, _) = api
        .create(
            &admin,
            &format!("/v1/tenants/{t}/agents"),
            json!({"name": "Ava", "model": "m", "system_prompt": "one"}),
        )
        .await;
    let agent_path = format!("/v1/tenants/{t}/agents/{}", agent["id"].as_str().unwrap());
    let runtime = format!("{agent_path}/runtime");
    let (_, first, _) = api.call(&admin, M::GET, &runtime, None).await;
    assert_eq!(first["system_prompt"], "one");

    // Through this process: at once, with no header.
    let (s, _, _) = api.call(&admin, M::PATCH, &agent_path, Some(json!({"system_prompt": "two"}))).await;
    assert_eq!(s, StatusCode::OK);
    let (_, r, _) = api.call(&admin, M::GET, &runtime, None).await;
    assert_eq!(r["system_prompt"], "two");

    // Usage recorded: read at its position, the tokens are gone from what remains.
    let (conv, _) =
        api.create(&admin, &format!("/v1/tenants/{t}/conversations"), json!({"agent_id": agent["id"]})).await;
    let (m, at) = api
        .create(
            &admin,
            &format!("/v1/tenants/{t}/conversations/{}/messages", conv["id"].as_str().unwrap()),
            json!({"role": "assistant", "content": "hi", "model": "m", "usage": {"prompt_tokens": 70, "completion_tokens": 30}}),
        )
        .await;
    assert!(m["id"].is_string());
    let (_, r) = api.get_at(&admin, &runtime, at).await;
    let before = r["remaining"]["tokens_per_month"].as_u64().unwrap();
    let (_, _, at) = api.call(&admin, M::PATCH, &format!("/v1/tenants/{t}/settings"), Some(json!({}))).await;
    let (_, again) = api.get_at(&admin, &runtime, at.unwrap()).await;
    assert_eq!(again["remaining"]["tokens_per_month"].as_u64(), Some(before));
    let limit = first["remaining"]["tokens_per_month"].as_u64().unwrap();
    assert_eq!(before, limit - 100, "the 100 tokens are spent");

    // Through another process: this one shows it within a second, or at once when asked for
    // the position.
    let other = api.another(database_url).await;
    let (s, _, at) = other.call(&admin, M::PATCH, &agent_path, Some(json!({"system_prompt": "three"}))).await;
    assert_eq!(s, StatusCode::OK);
    let (_, r) = api.get_at(&admin, &runtime, at.unwrap()).await;
    assert_eq!(r["system_prompt"], "three");
    let (s, _, _) = other.call(&admin, M::PATCH, &agent_path, Some(json!({"system_prompt": "four"}))).await;
    assert_eq!(s, StatusCode::OK);
    let started = std::time::Instant::now();
    loop {
        let (_, r, _) = api.call(&admin, M::GET, &runtime, None).await;
        if r["system_prompt"] == "four" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(3), "another process's change never showed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runtime_answer_follows_changes_on_sqlite() {
    the_runtime_answer_follows_changes(Api::start(None).await, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runtime_answer_follows_changes_on_postgres() {
    let Some(h) = Harness::postgres().await else { return };
    the_runtime_answer_follows_changes(Api::start(Some(h.url.clone())).await, Some(h.url.clone())).await;
}
