//! Webhooks, delivered to a receiver the test runs: signed as Standard Webhooks says, only
//! the types asked for, in order per endpoint, everything once a receiver that was down is
//! back, a delivery log and manual redelivery, secret rotation, and no private address
//! without the setting that allows it.

use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use reqwest::{Method as M, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;
use tenantry_store::testing::Harness;

use crate::client::Api;
use crate::support::{BOOTSTRAP, free_port, post_ok, serve_process as serve, up};

/// One request the receiver got: its `webhook-*` headers and body.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    body: String,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// A webhook receiver on loopback that records what it gets and answers `status`.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
    /// How long it takes to answer, in milliseconds.
    delay: Arc<AtomicU64>,
}

impl Receiver {
    async fn start() -> Self {
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let status = Arc::new(AtomicU16::new(200));
        let delay = Arc::new(AtomicU64::new(0));
        let (g, s, d) = (got.clone(), status.clone(), delay.clone());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                let (g, s, d) = (g.clone(), s.clone(), d.clone());
                async move {
                    tokio::time::sleep(Duration::from_millis(d.load(Ordering::SeqCst))).await;
                    let h =
                        |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                    let answer = s.load(Ordering::SeqCst);
                    if answer == 200 {
                        g.lock().unwrap().push(Received {
                            id: h("webhook-id"),
                            timestamp: h("webhook-timestamp"),
                            signature: h("webhook-signature"),
                            body,
                        });
                    }
                    axum::http::StatusCode::from_u16(answer).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://127.0.0.1:{}/hook", listener.local_addr().unwrap().port());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, got, status, delay }
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Wait (at most 15 s) until `n` requests arrived.
    async fn wait_for(&self, n: usize) -> Vec<Received> {
        for _ in 0..1500 {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{n} deliveries did not arrive; got {:?}", self.received());
    }
}

/// Whether one of the signatures of `r` verifies with `secret`.
fn verifies(r: &Received, secret: &str) -> bool {
    let key = BASE64.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.{}", r.id, r.timestamp, r.body).as_bytes());
    let expected = format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()));
    r.signature.split(' ').any(|s| s == expected)
}

async fn server(database_url: Option<String>, allow_private: bool) -> Api {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = crate::support::server_settings(dir.path(), database_url, None);
    settings.webhooks.allow_private = allow_private;
    settings.webhooks.first_retry_ms = 50;
    Api::serve(&settings, dir).await
}

async fn tenant(api: &Api, slug: &str) -> (String, String) {
    let (t, _) =
        api.create(BOOTSTRAP, "/v1/tenants", json!({"slug": slug, "name": slug, "plan": "enterprise"})).await;
    let t = t["id"].as_str().unwrap().to_owned();
    let (k, _) = api
        .create(BOOTSTRAP, &format!("/v1/tenants/{t}/api-keys"), json!({"name": "a", "role": "admin"}))
        .await;
    (t, k["key"].as_str().unwrap().to_owned())
}

async fn webhooks_are_delivered(database_url: Option<String>) {
    let api = server(database_url.clone(), true).await;
    let receiver = Receiver::start().await;
    let (t, key) = tenant(&api, "hooks").await;
    let (other, other_key) = tenant(&api, "hooks-other").await;
    let hooks = format!("/v1/tenants/{t}/webhooks");
    let (hook, _) = api
        .create(
            &key,
            &hooks,
            json!({"url": receiver.url, "event_types": ["agent.created", "conversation.opened"]}),
        )
        .await;
    let secret = hook["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{hook}");
    let one = format!("{hooks}/{}", hook["id"].as_str().unwrap());
    let (_, shown, _) = api.call(&key, M::GET, &one, None).await;
    assert_eq!(shown.get("secret"), None, "the secret is shown once");
    assert_eq!(shown["event_types"], json!(["agent.created", "conversation.opened"]));

    // Three agents and a user: the agents are delivered, in order, signed; the user is not
    // of the types asked for; another tenant's events never come.
    let mut agents = Vec::new();
    for name in ["a1", "a2", "a3"] {
        let (a, at) =
            api.create(&key, &format!("/v1/tenants/{t}/agents"), json!({"name": name, "model": "m"})).await;
        agents.push((a["id"].as_str().unwrap().to_owned(), at));
    }
    api.create(&key, &format!("/v1/tenants/{t}/users"), json!({"email": "u@hooks.io", "role": "user"})).await;
    api.create(
        &other_key,
        &format!("/v1/tenants/{other}/agents"),
        json!({"name": "elsewhere", "model": "m"}),
    )
    .await;
    let got = receiver.wait_for(3).await;
    for (r, (agent, at)) in got.iter().zip(&agents) {
        assert!(verifies(r, &secret), "the signature verifies: {r:?}");
        let body = r.json();
        assert_eq!(body["type"], "agent.created");
        assert_eq!(body["data"]["position"].as_u64(), Some(*at));
        assert_eq!(body["data"]["data"]["agent_id"], agent.as_str());
    }
    assert!(!verifies(&got[0], "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), "another secret does not verify");

    // The receiver is down: the next events wait, retried; once it is back, every one
    // arrives, in order.
    receiver.status.store(503, Ordering::SeqCst);
    let (a4, at4) =
        api.create(&key, &format!("/v1/tenants/{t}/agents"), json!({"name": "a4", "model": "m"})).await;
    let (a5, at5) =
        api.create(&key, &format!("/v1/tenants/{t}/agents"), json!({"name": "a5", "model": "m"})).await;
    let mut retried = Value::Null;
    for _ in 0..500 {
        let (_, log, _) = api.call(&key, M::GET, &format!("{one}/deliveries"), None).await;
        if log["items"][0]["attempts"].as_u64().is_some_and(|n| n >= 3) {
            retried = log;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(retried["items"][0]["position"].as_u64(), Some(at4), "{retried}");
    assert_eq!(retried["items"][0]["status"], "retrying");
    assert_eq!(retried["items"][0]["response_status"], 503);
    assert_eq!(receiver.received().len(), 3, "nothing past the one failing");
    receiver.status.store(200, Ordering::SeqCst);
    let got = receiver.wait_for(5).await;
    let positions: Vec<u64> = got.iter().map(|r| r.json()["data"]["position"].as_u64().unwrap()).collect();
    assert_eq!(positions, [agents[0].1, agents[1].1, agents[2].1, at4, at5]);
    assert_eq!(got[3].json()["data"]["data"]["agent_id"], a4["id"]);
    assert_eq!(got[4].json()["data"]["data"]["agent_id"], a5["id"]);
    assert!(!got.iter().any(|r| r.body.contains(&other)), "another tenant's events never come");

    // The delivery log, and a manual redelivery of the first: same message id.
    // (The receiver records a request before the dispatcher records its answer.)
    let mut log = Value::Null;
    for _ in 0..500 {
        let (_, l, _) = api.call(&key, M::GET, &format!("{one}/deliveries"), None).await;
        log = l;
        if log["items"]
            .as_array()
            .is_some_and(|i| i.len() == 5 && i.iter().all(|d| d["status"] == "delivered"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let items = log["items"].as_array().unwrap();
    assert_eq!(items.len(), 5, "{log}");
    assert!(items.iter().all(|d| d["status"] == "delivered" && d["response_status"] == 200), "{log}");
    let first = agents[0].1;
    let (s, again, _) = api.call(&key, M::POST, &format!("{one}/deliveries/{first}/redeliver"), None).await;
    assert_eq!((s, again["attempts"].as_u64()), (StatusCode::OK, Some(2)), "{again}");
    let got = receiver.wait_for(6).await;
    assert_eq!(got[5].id, got[0].id, "a redelivery is the same message");

    // A new secret signs from now on; with a grace, the old one signs beside it.
    let (s, rotated, _) =
        api.call(&key, M::POST, &format!("{one}/rotate-secret"), Some(json!({"grace_seconds": 60}))).await;
    assert_eq!(s, StatusCode::OK, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    api.create(&key, &format!("/v1/tenants/{t}/agents"), json!({"name": "a6", "model": "m"})).await;
    let got = receiver.wait_for(7).await;
    assert!(verifies(&got[6], &new_secret) && verifies(&got[6], &secret), "{:?}", got[6]);

    // Paused: nothing goes; enabled again: it carries on where it stood.
    let (s, paused, _) = api.call(&key, M::PATCH, &one, Some(json!({"enabled": false}))).await;
    assert_eq!((s, paused["enabled"].as_bool()), (StatusCode::OK, Some(false)));
    let (_, at7) =
        api.create(&key, &format!("/v1/tenants/{t}/agents"), json!({"name": "a7", "model": "m"})).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(receiver.received().len(), 7, "a paused endpoint gets nothing");
    api.call(&key, M::PATCH, &one, Some(json!({"enabled": true}))).await;
    let got = receiver.wait_for(8).await;
    assert_eq!(got[7].json()["data"]["position"].as_u64(), Some(at7));

    // Refused by name; another tenant's key reaches none of it.
    for (bad, field) in [
        (json!({"url": "ftp://x.example/h"}), "url"),
        (json!({"url": "https://user:pw@x.example/h"}), "url"),
        (json!({"url": "https://x.example/h", "event_types": ["no.such"]}), "event_types"),
    ] {
        let (s, p, _) = api.call(&key, M::POST, &hooks, Some(bad)).await;
        assert_eq!((s, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some(field)), "{p}");
    }
    for (method, path) in
        [(M::GET, hooks.clone()), (M::GET, one.clone()), (M::GET, format!("{one}/deliveries"))]
    {
        assert_eq!(api.call(&other_key, method, &path, None).await.0, StatusCode::FORBIDDEN);
    }
    let (s, _, _) = api.call(&key, M::DELETE, &one, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(api.call(&key, M::GET, &one, None).await.0, StatusCode::NOT_FOUND);
    let (s, secrets, _) = api.call(&key, M::GET, &format!("/v1/tenants/{t}/events?limit=500"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(!secrets.to_string().contains(&secret) && !secrets.to_string().contains(&new_secret));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_delivered_on_sqlite() {
    webhooks_are_delivered(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_delivered_on_postgres() {
    let Some(h) = Harness::postgres().await else { return };
    webhooks_are_delivered(Some(h.url.clone())).await;
}

/// Without `--webhooks-allow-private`, a loopback receiver gets nothing: each attempt fails
/// naming why, and is retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_addresses_are_refused_by_default() {
    let api = server(None, false).await;
    let receiver = Receiver::start().await;
    let (t, key) = tenant(&api, "private").await;
    let (hook, _) =
        api.create(&key, &format!("/v1/tenants/{t}/webhooks"), json!({"url": receiver.url})).await;
    let one = format!("/v1/tenants/{t}/webhooks/{}", hook["id"].as_str().unwrap());
    api.create(&key, &format!("/v1/tenants/{t}/agents"), json!({"name": "a", "model": "m"})).await;
    let mut log = Value::Null;
    for _ in 0..500 {
        let (_, l, _) = api.call(&key, M::GET, &format!("{one}/deliveries"), None).await;
        if l["items"][0]["attempts"].as_u64().is_some_and(|n| n >= 2) {
            log = l;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(log["items"][0]["status"], "retrying", "{log}");
    assert!(log["items"][0]["error"].as_str().unwrap().contains("private"), "{log}");
    assert!(receiver.received().is_empty());

    // Failing for a day: the next failure disables it, and an event says so.
    let day_ago = chrono::Utc::now().timestamp_millis() - 25 * 3600 * 1000;
    sqlx::query("UPDATE webhook_cursors SET failing_since = $1, next_attempt_at = 0")
        .bind(day_ago)
        .execute(api.projections.db().pool())
        .await
        .unwrap();
    let mut shown = Value::Null;
    for _ in 0..500 {
        let (_, w, _) = api.call(&key, M::GET, &one, None).await;
        shown = w;
        if shown["enabled"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(shown["enabled"], false, "{shown}");
    assert!(shown["disabled_reason"].as_str().unwrap().contains("24 hours"), "{shown}");
    let (_, events, _) = api.call(&key, M::GET, &format!("/v1/tenants/{t}/events?limit=500"), None).await;
    assert!(events["items"].as_array().unwrap().iter().any(|e| e["type"] == "webhook.disabled"), "{events}");
    let (_, log, _) = api.call(&key, M::GET, &format!("{one}/deliveries"), None).await;
    assert_eq!(log["items"][0]["status"], "failed", "{log}");
}

/// The dispatcher killed with SIGKILL mid-way loses nothing: after a restart every event
/// arrives, in order of first arrival (one may arrive twice: at least once).
async fn a_killed_dispatcher_loses_nothing(database_url: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    receiver.delay.store(30, Ordering::SeqCst);
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut server = serve(dir.path(), port, database_url.as_deref());
    up(&client, &base).await;
    let post = |key: &str, path: String, body: Value| {
        post_ok(client.clone(), format!("{base}{path}"), key.to_owned(), body)
    };
    let t =
        post(BOOTSTRAP, "/v1/tenants".into(), json!({"slug": "killed", "name": "K", "plan": "enterprise"}))
            .await;
    let t = t["id"].as_str().unwrap().to_owned();
    let k = post(BOOTSTRAP, format!("/v1/tenants/{t}/api-keys"), json!({"name": "a", "role": "admin"})).await;
    let key = k["key"].as_str().unwrap().to_owned();
    post(
        &key,
        format!("/v1/tenants/{t}/webhooks"),
        json!({"url": receiver.url, "event_types": ["conversation.opened"]}),
    )
    .await;
    let agent = post(&key, format!("/v1/tenants/{t}/agents"), json!({"name": "a", "model": "m"})).await;
    let mut opened = Vec::new();
    for _ in 0..40 {
        let c = post(&key, format!("/v1/tenants/{t}/conversations"), json!({"agent_id": agent["id"]})).await;
        opened.push(c["id"].as_str().unwrap().to_owned());
    }
    receiver.wait_for(8).await;
    server.kill();
    let before = receiver.received().len();
    assert!(before < 40, "killed mid-way ({before} delivered)");

    let mut server = serve(dir.path(), port, database_url.as_deref());
    up(&client, &base).await;
    let mut firsts: Vec<String> = Vec::new();
    for _ in 0..1500 {
        firsts.clear();
        for r in receiver.received() {
            let id = r.json()["data"]["data"]["conversation_id"].as_str().unwrap().to_owned();
            if !firsts.contains(&id) {
                firsts.push(id);
            }
        }
        if firsts.len() == opened.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill();
    assert_eq!(firsts, opened, "every event arrives, in order");
    let total = receiver.received().len();
    assert!(total <= opened.len() + 1, "at most the one in flight twice: {total}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_dispatcher_loses_nothing_on_sqlite() {
    a_killed_dispatcher_loses_nothing(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_dispatcher_loses_nothing_on_postgres() {
    let Some(h) = Harness::postgres().await else { return };
    a_killed_dispatcher_loses_nothing(Some(h.url.clone())).await;
}
