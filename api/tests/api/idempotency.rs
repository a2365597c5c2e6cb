//! `Idempotency-Key`: a retry replays the first answer and writes nothing; another request
//! under the same key is 422; racing duplicates make one effect; keys are scoped by tenant
//! and credential.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tenantry_store::testing::Harness;

use crate::client::Api;
use crate::support::BOOTSTRAP;

/// A write with an `Idempotency-Key`: status, body, and whether it was a replay.
async fn keyed(
    api: &Api,
    key: &str,
    method: Method,
    path: &str,
    idem: &str,
    body: Option<Value>,
) -> (StatusCode, Value, bool) {
    let mut req = api
        .client
        .request(method, format!("{}{path}", api.base))
        .bearer_auth(key)
        .header("idempotency-key", idem);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let replayed = res.headers().get("idempotent-replayed").is_some();
    (status, res.json().await.unwrap_or(Value::Null), replayed)
}

async fn retries(api: Api) {
    use Method as M;
    let mut keys = Vec::new();
    let mut tenants = Vec::new();
    for slug in ["idem-a", "idem-b"] {
        let (t, _) = api.create(BOOTSTRAP, "/v1/tenants", json!({"slug": slug, "name": slug})).await;
        let t = t["id"].as_str().unwrap().to_owned();
        let (k, _) = api
            .create(BOOTSTRAP, &format!("/v1/tenants/{t}/api-keys"), json!({"name": "a", "role": "admin"}))
            .await;
        keys.push(k["key"].as_str().unwrap().to_owned());
        tenants.push(t);
    }
    let (ta, key) = (&tenants[0], &keys[0]);

    // A retried create answers the first answer, and makes one agent.
    let agent = json!({"name": "support", "model": "m"});
    let agents = format!("/v1/tenants/{ta}/agents");
    let (s1, first, replay1) = keyed(&api, key, M::POST, &agents, "create-1", Some(agent.clone())).await;
    let (s2, again, replay2) = keyed(&api, key, M::POST, &agents, "create-1", Some(agent.clone())).await;
    assert_eq!((s1, replay1), (StatusCode::CREATED, false), "{first}");
    assert_eq!((s2, replay2), (StatusCode::CREATED, true));
    assert_eq!(first, again, "the same answer, the same id");
    // Another body under the same key is refused and writes nothing.
    let (s, problem, _) =
        keyed(&api, key, M::POST, &agents, "create-1", Some(json!({"name": "other", "model": "m"}))).await;
    assert_eq!(
        (s, problem["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("idempotency_key_reused")),
        "{problem}"
    );
    // So is the same body on another route.
    let (s, _, _) =
        keyed(&api, key, M::POST, &format!("/v1/tenants/{ta}/users"), "create-1", Some(agent.clone())).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);

    // Racing duplicates: one effect, and every one of them gets its answer.
    let racing = (0..8)
        .map(|_| keyed(&api, key, M::POST, &agents, "race-1", Some(json!({"name": "racer", "model": "m"}))));
    let answers = futures::future::join_all(racing).await;
    let ids: std::collections::BTreeSet<_> = answers
        .iter()
        .map(|(s, b, _)| {
            assert_eq!(*s, StatusCode::CREATED, "{b}");
            b["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "eight racing duplicates made one agent");
    let (_, listed, _) = api.call(key, M::GET, &agents, None).await;
    let names: Vec<_> =
        listed["items"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap().to_owned()).collect();
    assert_eq!(names.iter().filter(|n| *n == "racer").count(), 1, "{listed}");
    assert_eq!(names.iter().filter(|n| *n == "support").count(), 1, "{listed}");

    // A retried message is stored and billed once.
    let (c, _) =
        api.create(key, &format!("/v1/tenants/{ta}/conversations"), json!({"agent_id": first["id"]})).await;
    let messages = format!("/v1/tenants/{ta}/conversations/{}/messages", c["id"].as_str().unwrap());
    let sent = json!({"role": "assistant", "content": "hi", "model": "m", "usage": {"prompt_tokens": 10, "completion_tokens": 5}});
    let (s1, m1, _) = keyed(&api, key, M::POST, &messages, "msg-1", Some(sent.clone())).await;
    let (s2, m2, replayed) = keyed(&api, key, M::POST, &messages, "msg-1", Some(sent.clone())).await;
    assert_eq!((s1, s2, replayed), (StatusCode::CREATED, StatusCode::CREATED, true));
    assert_eq!(m1, m2);
    // A later write's position covers the message in both read models.
    let position =
        api.call(key, M::PATCH, &format!("/v1/tenants/{ta}/settings"), Some(json!({}))).await.2.unwrap();
    let (_, listed) = api.get_at(key, &messages, position).await;
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1), "{listed}");
    let (_, usage) = api.get_at(key, &format!("/v1/tenants/{ta}/usage"), position).await;
    assert_eq!(usage["total_tokens"], 15, "billed once: {usage}");

    // A retried DELETE answers as the first did, not 404.
    let racer = ids.first().unwrap();
    let one = format!("/v1/tenants/{ta}/agents/{racer}");
    let (s1, d1, _) = keyed(&api, key, M::DELETE, &one, "del-1", None).await;
    let (s2, d2, replayed) = keyed(&api, key, M::DELETE, &one, "del-1", None).await;
    assert_eq!((s1, s2, replayed), (StatusCode::OK, StatusCode::OK, true), "{d1} {d2}");
    assert_eq!(d1, d2);

    // Keys are scoped by tenant and credential: another tenant's same key is its own.
    let tb = &tenants[1];
    let (s, other, replayed) =
        keyed(&api, &keys[1], M::POST, &format!("/v1/tenants/{tb}/agents"), "create-1", Some(agent.clone()))
            .await;
    assert_eq!((s, replayed), (StatusCode::CREATED, false), "{other}");
    assert_ne!(other["id"], first["id"]);

    // A key is 1 to 255 visible characters.
    let (s, problem, _) = keyed(&api, key, M::POST, &agents, &"k".repeat(256), Some(agent.clone())).await;
    assert_eq!((s, problem["field"].as_str()), (StatusCode::BAD_REQUEST, Some("Idempotency-Key")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retries_replay_the_first_answer_on_sqlite() {
    retries(Api::start(None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retries_replay_the_first_answer_on_postgres() {
    let Some(h) = Harness::postgres().await else { return };
    retries(Api::start(Some(h.url.clone())).await).await;
}
