//! Scale-out end to end, against a NATS server of the test's own and PostgreSQL (SQLite for
//! the relay too): the relay publishes every event once and survives outages and a deleted
//! stream; an API node and two worker processes keep every read model exact, also when a
//! worker is killed mid-batch. Every wait is bounded.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use support::{BOOTSTRAP, NatsServer, any_file_contains, dump, server_settings};
use tenantry::relay::STREAM;
use tenantry::settings::StoreSettings;
use tenantry::{Application, Settings};
use tenantry_domain::{TenantContext, TenantId};
use tenantry_store::testing::Harness;

struct Api {
    base: String,
    client: Client,
    app: tenantry::http::AppState,
    store: StoreSettings,
    _stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

impl Api {
    async fn start(database_url: Option<String>, nats_url: String, project: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let settings =
            Settings { no_projectors: !project, ..server_settings(dir.path(), database_url, Some(nats_url)) };
        let store = settings.store.clone();
        let app = Application::build(&settings).await.unwrap();
        let base = format!("http://127.0.0.1:{}", app.port());
        let state = app.state().clone();
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run_until(async {
            let _ = rx.await;
        }));
        Self { base, client: Client::new(), app: state, store, _stop: stop, _dir: dir }
    }

    async fn post(&self, key: &str, path: &str, body: Value) -> Value {
        let res = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    /// A tenant with an admin key, an agent and a conversation; returns (tenant, key, path of
    /// the conversation's messages).
    async fn tenant(&self, slug: &str) -> (String, String, String) {
        let t = self.post(BOOTSTRAP, "/v1/tenants", json!({"slug": slug, "name": slug})).await;
        let t = t["id"].as_str().unwrap().to_owned();
        let key = self
            .post(BOOTSTRAP, &format!("/v1/tenants/{t}/api-keys"), json!({"name": "k", "role": "admin"}))
            .await;
        let key = key["key"].as_str().unwrap().to_owned();
        let agent =
            self.post(&key, &format!("/v1/tenants/{t}/agents"), json!({"name": "a", "model": "m"})).await;
        let conv = self
            .post(&key, &format!("/v1/tenants/{t}/conversations"), json!({"agent_id": agent["id"]}))
            .await;
        let messages = format!("/v1/tenants/{t}/conversations/{}/messages", conv["id"].as_str().unwrap());
        (t, key, messages)
    }

    async fn head(&self, tenant: &str) -> u64 {
        let ctx = TenantContext::system(tenant.parse().unwrap());
        self.app.store.head(&ctx).await.unwrap().map_or(0, |h| h.position)
    }

    async fn relayed(&self, tenant: &str) -> u64 {
        let row: Option<(i64,)> = sqlx::query_as("SELECT position FROM relay_positions WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_optional(self.app.projections.db().pool())
            .await
            .unwrap();
        row.map_or(0, |r| r.0 as u64)
    }

    /// Wait (at most 20 s) until the relay has published the tenant's whole log.
    async fn relayed_all(&self, tenant: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.relayed(tenant).await < self.head(tenant).await {
            assert!(Instant::now() < deadline, "the relay did not catch up with {tenant}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Every message of the tenant in the stream, in stream order.
async fn messages_of(js: &jetstream::Context, tenant: &str) -> Vec<jetstream::Message> {
    let stream = js.get_stream(STREAM).await.unwrap();
    let consumer: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            filter_subject: format!("tenantry.{tenant}.>"),
            deliver_policy: consumer::DeliverPolicy::All,
            ack_policy: consumer::AckPolicy::None,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut out = Vec::new();
    for _ in 0..100 {
        let mut batch =
            consumer.fetch().max_messages(500).expires(Duration::from_millis(300)).messages().await.unwrap();
        let mut got = 0;
        while let Some(m) = batch.next().await {
            out.push(m.unwrap());
            got += 1;
        }
        if got == 0 {
            break;
        }
    }
    out
}

fn header(m: &jetstream::Message, name: &str) -> String {
    m.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str().to_owned()).unwrap_or_default()
}

async fn the_relay_publishes_each_event_once_through_outages(database_url: Option<String>) {
    let Some(mut nats) = NatsServer::start() else { return };
    let api = Api::start(database_url, nats.url(), true).await;
    let (a, key_a, msgs_a) = api.tenant("relay-a").await;
    let (b, key_b, msgs_b) = api.tenant("relay-b").await;
    for i in 0..20 {
        api.post(&key_a, &msgs_a, json!({"role": "user", "content": format!("zqrelaycanary {i}")})).await;
    }
    api.relayed_all(&a).await;
    let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let got = messages_of(&js, &a).await;
    let head = api.head(&a).await;
    assert_eq!(got.len() as u64, head, "every event once");
    let ctx = TenantContext::system(a.parse().unwrap());
    let log: Vec<_> =
        futures::TryStreamExt::try_collect::<Vec<_>>(api.app.store.read_log(&ctx, 0)).await.unwrap();
    for (m, e) in got.iter().zip(&log) {
        let id = m.headers.as_ref().and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID)).unwrap();
        assert_eq!(id.as_str(), e.event_id.to_string(), "the message id is the event id");
        assert_eq!(header(m, "Tenantry-Position"), e.position.to_string(), "in log order");
        assert_eq!(header(m, "Tenantry-Tenant"), a);
        let kind = e.stream_id.split('-').next().unwrap();
        assert_eq!(m.subject.as_str(), format!("tenantry.{a}.{kind}"));
        assert!(!String::from_utf8_lossy(&m.payload).contains("zqrelaycanary"), "the payload stays sealed");
    }

    // NATS goes away: commands still succeed at once; nothing is lost when it returns.
    nats.stop();
    for i in 0..30 {
        api.post(&key_b, &msgs_b, json!({"role": "user", "content": format!("during the outage {i}")})).await;
    }
    assert!(api.relayed(&b).await < api.head(&b).await);
    nats.resume();
    api.relayed_all(&b).await;
    let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let got = messages_of(&js, &b).await;
    let positions: Vec<String> = got.iter().map(|m| header(m, "Tenantry-Position")).collect();
    let expected: Vec<String> = (1..=api.head(&b).await).map(|p| p.to_string()).collect();
    assert_eq!(positions, expected, "in order, none missing, none twice");

    // The stream deleted entirely: the relay creates it again and carries on.
    js.delete_stream(STREAM).await.unwrap();
    api.post(&key_b, &msgs_b, json!({"role": "user", "content": "after the deletion"})).await;
    api.relayed_all(&b).await;
    let got = messages_of(&js, &b).await;
    assert_eq!(got.len(), 1, "only what came after the deletion");
    assert_eq!(header(&got[0], "Tenantry-Position"), api.head(&b).await.to_string());

    // A purge deletes the tenant's messages from the stream, and no other tenant's.
    for i in 0..3 {
        api.post(&key_a, &msgs_a, json!({"role": "user", "content": format!("zqrelaycanary late {i}")}))
            .await;
    }
    api.relayed_all(&a).await;
    assert_eq!(messages_of(&js, &a).await.len(), 3);
    let url = format!("{}/v1/tenants/{a}", api.base);
    let mut done = false;
    for _ in 0..200 {
        let res = api.client.delete(&url).bearer_auth(BOOTSTRAP).send().await.unwrap();
        if res.status() == StatusCode::OK {
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(done, "the purge finished");
    assert_eq!(messages_of(&js, &a).await.len(), 0);
    assert_eq!(messages_of(&js, &b).await.len(), 1);
    assert_eq!(api.relayed(&a).await, 0, "its relay position is gone too");
    // Nothing readable of the tenant ever reached the broker's files: payloads are sealed.
    assert!(!any_file_contains(&nats.store_dir(), b"zqrelaycanary"));
    assert!(any_file_contains(&nats.store_dir(), b.as_bytes()), "the scan reads the files it should");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_publishes_each_event_once_through_outages_on_sqlite() {
    the_relay_publishes_each_event_once_through_outages(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_publishes_each_event_once_through_outages_on_postgres() {
    let Some(h) = Harness::postgres().await else { return };
    the_relay_publishes_each_event_once_through_outages(Some(h.url.clone())).await;
}

/// A worker process of the test binary's build.
fn worker(store: &StoreSettings) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_tenantry"))
        .arg("worker")
        .arg("--data-dir")
        .arg(&store.data_dir)
        .arg("--database-url")
        .arg(store.database_url.as_deref().unwrap())
        .arg("--master-key-file")
        .arg(store.master_key_file.as_deref().unwrap())
        .arg("--nats-url")
        .arg(store.nats_url.as_deref().unwrap())
        .env("TENANTRY_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Read-model rows of one tenant, by table.
/// The tenant's rows of the read models, sealed values opened (a rebuild seals them anew).
async fn rows_of(
    all: &BTreeMap<String, Vec<String>>,
    db: &tenantry_projections::ReadDb,
    tenant: &str,
) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for table in [
        "conv_threads",
        "conv_messages",
        "quota_counters",
        "usage_daily",
        "audit_entries",
        "dir_agents",
        "dir_tenants",
    ] {
        let mut rows = Vec::new();
        for row in all[table].iter().filter(|r| r.contains(tenant)) {
            rows.push(db.open_within(tenant, row).await.unwrap());
        }
        rows.sort();
        out.insert(table.to_owned(), rows);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_api_node_and_two_workers_project_every_event_once() {
    let Some(h) = Harness::postgres().await else { return };
    let Some(mut nats) = NatsServer::start() else { return };
    let api = Api::start(Some(h.url.clone()), nats.url(), false).await;
    // The API node projects nothing; two workers share the work.
    let mut first = worker(&api.store);
    let mut second = worker(&api.store);
    let (t, key, messages) = api.tenant("workers").await;
    let sent = 240;
    let mut tasks = Vec::new();
    for task in 0..4 {
        let (client, url, key) = (api.client.clone(), format!("{}{messages}", api.base), key.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..sent / 4 {
                let body = json!({"role": "assistant", "content": format!("m{task}-{i}"), "model": "m",
                                  "usage": {"prompt_tokens": 1, "completion_tokens": 2}});
                let res = client.post(&url).bearer_auth(&key).json(&body).send().await.unwrap();
                assert_eq!(res.status(), StatusCode::CREATED);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    // One worker dies mid-load, as hard as it can.
    tokio::time::sleep(Duration::from_millis(400)).await;
    first.kill().unwrap();
    first.wait().unwrap();
    // The broker goes away for a while, then its stream is deleted outright: the workers
    // still converge, from the database.
    nats.stop();
    tokio::time::sleep(Duration::from_millis(500)).await;
    nats.resume();
    let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = js.delete_stream(STREAM).await;
    for task in tasks {
        task.await.unwrap();
    }
    let tenant: TenantId = t.parse().unwrap();
    let head = api.head(&t).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    for name in api.app.projections.names() {
        while api.app.projections.checkpoint(name, tenant).await.unwrap() < head {
            assert!(Instant::now() < deadline, "{name} did not reach {head}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let projected = rows_of(&dump(&h.url).await, api.app.projections.db(), &t).await;
    assert_eq!(projected["conv_messages"].len(), sent, "every message once");
    // The rows equal a clean rebuild.
    api.app.projections.rebuild(None, Some(tenant), &tenantry_projections::Silent).await.unwrap();
    assert_eq!(projected, rows_of(&dump(&h.url).await, api.app.projections.db(), &t).await);
    // SIGTERM: the surviving worker finishes what it is doing and exits cleanly.
    let pid = second.id().to_string();
    std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the worker did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}");
    drop(nats);
}
