//! The knowledge base over HTTP: `cargo bench -p tenantry --bench knowledge`.
//!
//! Starts the server in this process on a fresh PostgreSQL database (SQLite with
//! `TENANTRY_BENCH_ONLY=sqlite`; PostgreSQL only with `TENANTRY_BENCH_ONLY=postgres`), then:
//! ingest of 1,000 documents of 20 KiB of text into one tenant by 8 concurrent clients, each
//! upload answered once it is indexed (documents/s, MB/s); then 2,000 searches of two words
//! drawn from the documents' vocabulary, one at a time (latency p50/p99, hits per answer).
//! `TENANTRY_BENCH_DOCUMENTS` sets the number of documents (default 1,000).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark that cannot run should stop loudly

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tenantry::settings::StoreSettings;
use tenantry::{Application, Settings};
use tenantry_store::testing::Harness;

/// The allocator the `tenantry` binary runs with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BOOTSTRAP: &str = "bench-bootstrap-key-0123456789abcdefghij";
const DOCUMENT_BYTES: usize = 20 * 1024;
const CLIENTS: usize = 8;
const SEARCHES: usize = 2_000;

/// A vocabulary of 5,000 pronounceable words.
fn vocabulary() -> Vec<String> {
    let syllables =
        ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "da", "fi", "gu", "ha", "jo", "pe"];
    (0..5_000)
        .map(|i: usize| {
            let mut n = i + 15;
            let mut w = String::new();
            while n > 0 {
                w.push_str(syllables[n % syllables.len()]);
                n /= syllables.len();
            }
            w
        })
        .collect()
}

/// 20 KiB of sentences, with word frequencies skewed as in text (a few words very common).
fn document(rng: &mut impl Rng, words: &[String]) -> String {
    let mut text = String::with_capacity(DOCUMENT_BYTES + 64);
    while text.len() < DOCUMENT_BYTES {
        let len = rng.gen_range(6..18);
        for i in 0..len {
            let skew: f64 = rng.r#gen::<f64>().powi(3);
            let word = &words[(skew * words.len() as f64) as usize];
            if i > 0 {
                text.push(' ');
            }
            text.push_str(word);
        }
        text.push_str(if rng.gen_bool(0.15) { ".\n\n" } else { ". " });
    }
    text.truncate(DOCUMENT_BYTES);
    text
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

async fn run(name: &str, database_url: Option<String>, documents: usize) {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
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
    let app = Application::build(&settings).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until(std::future::pending()));
    let client = reqwest::Client::new();
    let post = |key: &str, path: &str, body: Value| {
        client.post(format!("{base}{path}")).bearer_auth(key.to_owned()).json(&body).send()
    };
    let limits = json!({"requests_per_minute": 1_000_000, "max_concurrent_requests": 64,
                        "api_calls_per_day": 10_000_000, "storage_bytes": 1u64 << 40});
    let t: Value = post(
        BOOTSTRAP,
        "/v1/tenants",
        json!({"slug": "kb", "name": "KB", "plan": "enterprise", "limits": limits}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let tenant = t["id"].as_str().unwrap().to_owned();
    let k: Value =
        post(BOOTSTRAP, &format!("/v1/tenants/{tenant}/api-keys"), json!({"name": "b", "role": "admin"}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let key = k["key"].as_str().unwrap().to_owned();
    let words = vocabulary();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let bodies: Vec<String> = (0..documents).map(|_| document(&mut rng, &words)).collect();
    let bytes: usize = bodies.iter().map(String::len).sum();

    let path = format!("/v1/tenants/{tenant}/documents");
    let started = Instant::now();
    let mut uploads = Vec::new();
    for (c, share) in bodies.chunks(documents.div_ceil(CLIENTS)).enumerate() {
        let (client, url, key, share) =
            (client.clone(), format!("{base}{path}"), key.clone(), share.to_vec());
        uploads.push(tokio::spawn(async move {
            for (i, body) in share.into_iter().enumerate() {
                let res = client
                    .post(&url)
                    .bearer_auth(&key)
                    .json(&json!({"title": format!("doc {c}-{i}"), "body": body}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), reqwest::StatusCode::CREATED, "{}", res.text().await.unwrap());
            }
        }));
    }
    for u in uploads {
        u.await.unwrap();
    }
    let took = started.elapsed().as_secs_f64();
    println!(
        "| {name} | ingest: {documents} documents of 20 KiB, {CLIENTS} clients, each answered once indexed | {:.0} documents/s, {:.1} MB/s |",
        documents as f64 / took,
        bytes as f64 / took / 1e6
    );

    let mut latencies = Vec::with_capacity(SEARCHES);
    let mut hits = 0;
    for _ in 0..SEARCHES {
        // Two words of middling frequency: found in some documents, not in all.
        let a = &words[rng.gen_range(50..1_500)];
        let b = &words[rng.gen_range(50..1_500)];
        let at = Instant::now();
        let res = client
            .get(format!("{base}{path}/search?q={a}+{b}&limit=10"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), reqwest::StatusCode::OK);
        let found: Value = res.json().await.unwrap();
        latencies.push(at.elapsed());
        hits += found["items"].as_array().unwrap().len();
    }
    latencies.sort();
    println!(
        "| {name} | search: {SEARCHES} two-word queries over them, one at a time, 10 best chunks | p50 {:.2} ms, p99 {:.2} ms; {:.1} hits per answer |",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        hits as f64 / SEARCHES as f64
    );
}

#[tokio::main]
async fn main() {
    let documents =
        std::env::var("TENANTRY_BENCH_DOCUMENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000);
    println!("| backend | workload | result |");
    println!("|---|---|---|");
    let only = std::env::var("TENANTRY_BENCH_ONLY").unwrap_or_default();
    if only != "sqlite"
        && let Some(h) = Harness::postgres().await
    {
        run("PostgreSQL", Some(h.url.clone()), documents).await;
    }
    if only != "postgres" {
        run("SQLite", None, documents).await;
    }
}
