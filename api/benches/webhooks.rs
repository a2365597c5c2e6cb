//! Webhook deliveries and the event stream: `cargo bench -p tenantry --bench webhooks`.
//!
//! Server in this process on a fresh PostgreSQL database (SQLite with
//! `TENANTRY_BENCH_ONLY=sqlite`; PostgreSQL only with `TENANTRY_BENCH_ONLY=postgres`), a webhook
//! receiver on loopback, 10 tenants each with an endpoint for `message.appended` and an open
//! `GET …/events/stream`. Rows: (1) lag from commit (the event's recorded time) to delivery,
//! p50/p99, for webhooks and for the stream, while messages are appended at 1,000 a second
//! over HTTP for 10 s; (2) delivery throughput: 5,000 events waiting behind paused endpoints,
//! delivered once they are enabled again.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark that cannot run should stop loudly

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tenantry::settings::StoreSettings;
use tenantry::{Application, Settings};
use tenantry_store::testing::Harness;

/// The allocator the `tenantry` binary runs with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BOOTSTRAP: &str = "bench-bootstrap-key-0123456789abcdefghij";
const TENANTS: usize = 10;
const RATE: u64 = 1_000;
const SECONDS: u64 = 10;
const BACKLOG: usize = 5_000;
/// Conversations each tenant's messages go to, in turn.
const CONVERSATIONS: usize = 20;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Milliseconds from an event's recorded time to now.
fn lag(event: &Value) -> Option<f64> {
    let at = chrono::DateTime::parse_from_rfc3339(event["recorded_at"].as_str()?).ok()?;
    Some((now_ms() - at.timestamp_millis()) as f64)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn run(name: &str, database_url: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        store: StoreSettings {
            data_dir: dir.path().join("data"),
            database_url,
            master_key_file: Some(dir.path().join("master.key")),
            pg_tenant_role: None,
            pg_platform_role: None,
            group_commit: Default::default(),
            key_store: None,
            prices_file: None,
            nats_url: None,
        },
        no_projectors: false,
        connections: Default::default(),
        role: Default::default(),
        bootstrap_key: Some(BOOTSTRAP.into()),
        oidc_config: None,
        webhooks: Default::default(),
    };
    settings.webhooks.allow_private = true;
    let app = Application::build(&settings).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until(std::future::pending()));

    // The receiver: the lag of each delivery, and how many arrived.
    let hooks: Arc<Mutex<Vec<f64>>> = Arc::default();
    let got = hooks.clone();
    let receiver = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let got = got.clone();
            async move {
                if let Ok(v) = serde_json::from_slice::<Value>(&body)
                    && let Some(ms) = lag(&v["data"])
                {
                    got.lock().unwrap().push(ms);
                }
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://127.0.0.1:{}/hook", listener.local_addr().unwrap().port());
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    let client = reqwest::Client::new();
    let post = |key: String, path: String, body: Value| {
        let (client, url) = (client.clone(), format!("{base}{path}"));
        async move {
            let res = client.post(url).bearer_auth(key).json(&body).send().await.unwrap();
            assert!(res.status().is_success(), "{}", res.status());
            res.json::<Value>().await.unwrap()
        }
    };
    let limits = json!({"requests_per_minute": 10_000_000, "max_concurrent_requests": 10_000,
                        "api_calls_per_day": 100_000_000, "storage_bytes": 1u64 << 40});
    let mut targets = Vec::new();
    let streams: Arc<Mutex<Vec<f64>>> = Arc::default();
    for i in 0..TENANTS {
        let t = post(
            BOOTSTRAP.into(),
            "/v1/tenants".into(),
            json!({"slug": format!("w{i}"), "name": "W", "plan": "enterprise", "limits": limits}),
        )
        .await;
        let t = t["id"].as_str().unwrap().to_owned();
        let k = post(
            BOOTSTRAP.into(),
            format!("/v1/tenants/{t}/api-keys"),
            json!({"name": "b", "role": "admin"}),
        )
        .await;
        let key = k["key"].as_str().unwrap().to_owned();
        let hook = post(
            key.clone(),
            format!("/v1/tenants/{t}/webhooks"),
            json!({"url": hook_url, "event_types": ["message.appended"]}),
        )
        .await;
        let agent =
            post(key.clone(), format!("/v1/tenants/{t}/agents"), json!({"name": "a", "model": "m"})).await;
        // Runtimes append to many conversations at once, not all to one.
        let mut urls = Vec::new();
        let mut conv = Value::Null;
        for _ in 0..CONVERSATIONS {
            conv =
                post(key.clone(), format!("/v1/tenants/{t}/conversations"), json!({"agent_id": agent["id"]}))
                    .await;
            urls.push(format!(
                "{base}/v1/tenants/{t}/conversations/{}/messages",
                conv["id"].as_str().unwrap()
            ));
        }
        // The tenant's event stream, from its head on.
        let head = conv["position"].as_u64().unwrap_or(0);
        let (client, url, key2, streams) = (
            client.clone(),
            format!("{base}/v1/tenants/{t}/events/stream?after={head}"),
            key.clone(),
            streams.clone(),
        );
        tokio::spawn(async move {
            let mut res = client.get(url).bearer_auth(key2).send().await.unwrap();
            let mut text = String::new();
            while let Ok(Some(chunk)) = res.chunk().await {
                text.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = text.find("\n\n") {
                    let block: String = text.drain(..end + 2).collect();
                    if let Some(data) = block.lines().find_map(|l| l.strip_prefix("data:"))
                        && let Ok(v) = serde_json::from_str::<Value>(data.trim_start())
                        && v["type"] == "message.appended"
                        && let Some(ms) = lag(&v)
                    {
                        streams.lock().unwrap().push(ms);
                    }
                }
            }
        });
        targets.push((t, key, hook["id"].as_str().unwrap().to_owned(), urls));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // (1) Lag at 1,000 events/s: each tenant's appender paced at RATE / TENANTS a second.
    let started = Instant::now();
    let per_tenant = RATE / TENANTS as u64;
    let mut appenders = Vec::new();
    for (_, key, _, urls) in &targets {
        let (client, key, urls) = (client.clone(), key.clone(), urls.clone());
        appenders.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / per_tenant));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut inflight = tokio::task::JoinSet::new();
            for i in 0..per_tenant * SECONDS {
                tick.tick().await;
                let (client, url, key) = (client.clone(), urls[i as usize % urls.len()].clone(), key.clone());
                inflight.spawn(async move {
                    let res = client
                        .post(url)
                        .bearer_auth(key)
                        .json(&json!({"role": "assistant", "content": "hello"}))
                        .send()
                        .await
                        .unwrap();
                    let status = res.status();
                    assert!(status.is_success(), "{status}: {}", res.text().await.unwrap_or_default());
                });
            }
            while inflight.join_next().await.is_some() {}
        }));
    }
    for a in appenders {
        a.await.unwrap();
    }
    let sent = (per_tenant * SECONDS) as usize * TENANTS;
    let offered = sent as f64 / started.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(60);
    while (hooks.lock().unwrap().len() < sent || streams.lock().unwrap().len() < sent)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let summarize = |v: &Arc<Mutex<Vec<f64>>>| {
        let mut l = v.lock().unwrap().clone();
        l.sort_by(f64::total_cmp);
        (l.len(), percentile(&l, 0.5), percentile(&l, 0.99))
    };
    let (n, p50, p99) = summarize(&hooks);
    println!(
        "| {name} | webhooks: commit to delivery, {offered:.0} events/s appended over HTTP to {TENANTS} tenants for {SECONDS} s | p50 {p50:.1} ms, p99 {p99:.1} ms ({n} of {sent} delivered) |"
    );
    let (n, p50, p99) = summarize(&streams);
    println!(
        "| {name} | event stream (SSE): commit to received, same load | p50 {p50:.1} ms, p99 {p99:.1} ms ({n} of {sent} received) |"
    );

    // (2) Throughput: a backlog behind paused endpoints, then enabled.
    let patch = |t: &str, key: &str, hook: &str, enabled: bool| {
        let (client, url, key) =
            (client.clone(), format!("{base}/v1/tenants/{t}/webhooks/{hook}"), key.to_owned());
        async move {
            let res =
                client.patch(url).bearer_auth(key).json(&json!({"enabled": enabled})).send().await.unwrap();
            assert!(res.status().is_success());
        }
    };
    for (t, key, hook, _) in &targets {
        patch(t, key, hook, false).await;
    }
    hooks.lock().unwrap().clear();
    let mut fills = Vec::new();
    for (_, key, _, urls) in &targets {
        let (client, key, urls) = (client.clone(), key.clone(), urls.clone());
        fills.push(tokio::spawn(async move {
            for i in 0..BACKLOG / TENANTS {
                let res = client
                    .post(&urls[i % urls.len()])
                    .bearer_auth(&key)
                    .json(&json!({"role": "assistant", "content": "backlog"}))
                    .send()
                    .await
                    .unwrap();
                assert!(res.status().is_success());
            }
        }));
    }
    for f in fills {
        f.await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(hooks.lock().unwrap().is_empty(), "paused endpoints got nothing");
    let started = Instant::now();
    for (t, key, hook, _) in &targets {
        patch(t, key, hook, true).await;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while hooks.lock().unwrap().len() < BACKLOG && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed().as_secs_f64();
    let delivered = hooks.lock().unwrap().len();
    println!(
        "| {name} | webhooks: a backlog of {BACKLOG} events over {TENANTS} endpoints, delivered once enabled | {:.0} deliveries/s ({delivered} in {took:.1} s) |",
        delivered as f64 / took
    );
}

#[tokio::main]
async fn main() {
    println!("| backend | workload | result |");
    println!("|---|---|---|");
    let only = std::env::var("TENANTRY_BENCH_ONLY").unwrap_or_default();
    if only != "sqlite"
        && let Some(h) = Harness::postgres().await
    {
        run("PostgreSQL", Some(h.url.clone())).await;
    }
    if only != "postgres" {
        run("SQLite", None).await;
    }
}
