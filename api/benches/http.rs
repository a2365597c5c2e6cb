//! HTTP load: `cargo bench -p tenantry --bench http` (needs `wrk`: `apt-get install wrk`).
//!
//! Starts the server in this process on a fresh PostgreSQL database (SQLite with
//! `TENANTRY_BENCH_ONLY=sqlite`), creates 100 tenants each with an admin key, an agent and a
//! conversation, then drives it from a second process (wrk, 32 connections, 2 threads):
//! append-message commands, then conversation and usage queries, then the same queries
//! authenticated by an identity provider's token (ES256, its JWKS loaded at start) instead of
//! an API key, then reads of each agent's runtime configuration. Prints a table row per
//! workload and the server's peak RSS.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark that cannot run should stop loudly

use std::io::Write;
use std::process::Command;

use serde_json::{Value, json};
use tenantry::settings::StoreSettings;
use tenantry::{Application, Settings};
use tenantry_store::testing::{Harness, peak_rss_mib, print_raw_commit_rate};

/// The allocator the `tenantry` binary runs with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BOOTSTRAP: &str = "bench-bootstrap-key-0123456789abcdefghij";
const TENANTS: usize = 100;

async fn post(client: &reqwest::Client, base: &str, key: &str, path: &str, body: Value) -> Value {
    let res = client.post(format!("{base}{path}")).bearer_auth(key).json(&body).send().await.unwrap();
    assert!(res.status().is_success(), "{path}: {}", res.status());
    res.json().await.unwrap()
}

/// Run wrk with a Lua script that spreads requests over the tenants; returns (req/s, p99 ms).
fn wrk(base: &str, script: &str) -> (f64, f64) {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(script.as_bytes()).unwrap();
    let out = Command::new("wrk")
        .args(["-t2", "-c32", "-d15s", "--latency", "-s"])
        .arg(file.path())
        .arg(base)
        .output()
        .expect("wrk runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let rate = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    let p99 = text.lines().find_map(|l| l.trim().strip_prefix("99%")).map(|v| v.trim().to_owned()).map_or(
        0.0,
        |v| {
            let (n, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
            let n: f64 = n.parse().unwrap_or(0.0);
            match unit {
                "us" => n / 1000.0,
                "s" => n * 1000.0,
                _ => n,
            }
        },
    );
    let errors = text.lines().find(|l| l.contains("Non-2xx")).unwrap_or("").trim().to_owned();
    if !errors.is_empty() {
        eprintln!("wrk: {errors}");
    }
    (rate, p99)
}

/// An ES256 identity provider for the bench: the OIDC config file the server reads, and a
/// function that signs a token for a tenant.
fn identity_provider(dir: &std::path::Path) -> (std::path::PathBuf, impl Fn(&str) -> String) {
    use p256::pkcs8::EncodePrivateKey;
    let private = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
    let key = jsonwebtoken::EncodingKey::from_ec_der(private.to_pkcs8_der().unwrap().as_bytes());
    let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key, jsonwebtoken::Algorithm::ES256).unwrap();
    jwk.common.key_id = Some("bench".into());
    std::fs::write(dir.join("jwks.json"), json!({ "keys": [jwk] }).to_string()).unwrap();
    let config = json!({ "issuers": [{ "issuer": "https://id.bench", "audience": "tenantry", "jwks_file": "jwks.json" }] });
    std::fs::write(dir.join("oidc.json"), config.to_string()).unwrap();
    let sign = move |tenant: &str| {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some("bench".into());
        let exp = chrono::Utc::now().timestamp() + 3600;
        let claims = json!({ "iss": "https://id.bench", "aud": "tenantry", "sub": "bench-admin", "tenant_id": tenant, "roles": ["admin"], "exp": exp });
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    };
    (dir.join("oidc.json"), sign)
}

/// The Lua table of targets (`{messages path, usage path, credential}` each) and the
/// per-thread start. Each wrk thread has its own Lua state and counter: started at the same
/// tenant, the two threads would walk the tenants in step and send every request to a tenant
/// in pairs. Each thread starts half the tenants apart instead.
fn lua_targets(table: &[String]) -> String {
    format!(
        "local targets = {{{}}}\nn = 0\nlocal threads = 0\n\
         function setup(thread)\n  thread:set(\"first\", threads * {})\n  threads = threads + 1\nend\n\
         function init(args)\n  n = first\nend\n",
        table.join(",\n"),
        TENANTS / 2
    )
}

/// Conversation-message and usage queries, alternating, over the targets.
fn queries(prelude: &str) -> String {
    format!(
        "{prelude}request = function()\n  n = n + 1\n  local t = targets[(n % #targets) + 1]\n  \
         local path = (n % 2 == 0) and t[1] or t[2]\n  \
         return wrk.format(\"GET\", path, {{[\"Authorization\"] = \"Bearer \" .. t[3]}})\nend\n"
    )
}

async fn run(name: &str, database_url: Option<String>, raw: Option<f64>) {
    let of_raw = |rate: f64| raw.map(|raw| format!(" ({:.2}x raw)", rate / raw)).unwrap_or_default();
    let dir = tempfile::tempdir().unwrap();
    let (oidc_config, sign) = identity_provider(dir.path());
    let settings = Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        store: StoreSettings {
            data_dir: dir.path().join("data"),
            database_url,
            master_key_file: Some(dir.path().join("master.key")),
            // `TENANTRY_PG_TENANT_ROLE=postgres` (a superuser) measures the same without row-level security.
            pg_tenant_role: std::env::var("TENANTRY_PG_TENANT_ROLE").ok(),
            pg_platform_role: None,
            // `TENANTRY_NO_GROUP_COMMIT=1` measures each append as its own transaction.
            group_commit: tenantry::settings::GroupCommitSettings {
                no_group_commit: std::env::var("TENANTRY_NO_GROUP_COMMIT").is_ok(),
                ..Default::default()
            },
            key_store: None,
            prices_file: None,
            nats_url: None,
        },
        no_projectors: false,
        connections: Default::default(),
        role: Default::default(),
        bootstrap_key: Some(BOOTSTRAP.into()),
        oidc_config: Some(oidc_config),
        webhooks: Default::default(),
    };
    let app = Application::build(&settings).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until(std::future::pending()));
    let client = reqwest::Client::new();
    let mut targets = Vec::new();
    let mut agents = Vec::new();
    for i in 0..TENANTS {
        let limits = json!({"requests_per_minute": 1_000_000, "max_concurrent_requests": 64, "tokens_per_month": 1_000_000_000_000u64});
        let t = post(
            &client,
            &base,
            BOOTSTRAP,
            "/v1/tenants",
            json!({"slug": format!("t{i}"), "name": "T", "plan": "enterprise", "limits": limits}),
        )
        .await;
        let tenant = t["id"].as_str().unwrap().to_owned();
        let key = post(
            &client,
            &base,
            BOOTSTRAP,
            &format!("/v1/tenants/{tenant}/api-keys"),
            json!({"name": "bench", "role": "admin"}),
        )
        .await;
        let key = key["key"].as_str().unwrap().to_owned();
        let agent = post(
            &client,
            &base,
            &key,
            &format!("/v1/tenants/{tenant}/agents"),
            json!({"name": "a", "model": "model-small"}),
        )
        .await;
        let conv = post(
            &client,
            &base,
            &key,
            &format!("/v1/tenants/{tenant}/conversations"),
            json!({"agent_id": agent["id"]}),
        )
        .await;
        targets.push((tenant, key, conv["id"].as_str().unwrap().to_owned()));
        agents.push(agent["id"].as_str().unwrap().to_owned());
    }
    let table: Vec<String> = targets
        .iter()
        .map(|(t, k, c)| {
            format!("{{\"/v1/tenants/{t}/conversations/{c}/messages\", \"/v1/tenants/{t}/usage\", \"{k}\"}}")
        })
        .collect();
    let prelude = lua_targets(&table);
    let command = format!(
        "{prelude}request = function()\n  n = n + 1\n  local t = targets[(n % #targets) + 1]\n  \
         return wrk.format(\"POST\", t[1], {{[\"Authorization\"] = \"Bearer \" .. t[3], [\"Content-Type\"] = \"application/json\"}}, \
         '{{\"role\": \"user\", \"content\": \"hello there, this is a message of about one hundred bytes in length for the bench\", \"model\": \"model-small\", \"usage\": {{\"prompt_tokens\": 12, \"completion_tokens\": 30}}}}')\nend\n"
    );
    let (rate, p99) = wrk(&base, &command);
    println!(
        "| {name} | append-message commands, 32 connections, 100 tenants | {rate:.0} req/s{}, p99 {p99:.1} ms |",
        of_raw(rate)
    );
    let metrics = client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    let conflicts =
        metrics.lines().find(|l| l.starts_with("tenantry_command_conflicts_total")).unwrap_or("none");
    eprintln!("{name}: commands decided again after a conflict: {conflicts}");
    let (rate, p99) = wrk(&base, &queries(&prelude));
    println!(
        "| {name} | conversation-message and usage queries, 32 connections, 100 tenants | {rate:.0} req/s{}, p99 {p99:.1} ms |",
        of_raw(rate)
    );
    // The same queries with a token per tenant in place of the key. The first token of each
    // tenant provisions its user; that is done before the run.
    let mut tokens = Vec::new();
    for (tenant, _, _) in &targets {
        let token = sign(tenant);
        let res = client.get(format!("{base}/v1/me")).bearer_auth(&token).send().await.unwrap();
        assert!(res.status().is_success(), "token: {}", res.status());
        tokens.push(token);
    }
    let table: Vec<String> = targets
        .iter()
        .zip(&tokens)
        .map(|((t, _, c), token)| {
            format!(
                "{{\"/v1/tenants/{t}/conversations/{c}/messages\", \"/v1/tenants/{t}/usage\", \"{token}\"}}"
            )
        })
        .collect();
    let (rate, p99) = wrk(&base, &queries(&lua_targets(&table)));
    println!(
        "| {name} | the same queries with an ES256 token (JWKS held) instead of a key | {rate:.0} req/s, p99 {p99:.1} ms |"
    );
    // What an agent runtime reads before each turn: the agent's runtime configuration.
    let table: Vec<String> = targets
        .iter()
        .zip(&agents)
        .map(|((t, k, _), a)| {
            let path = format!("/v1/tenants/{t}/agents/{a}/runtime");
            format!("{{\"{path}\", \"{path}\", \"{k}\"}}")
        })
        .collect();
    let (rate, p99) = wrk(&base, &queries(&lua_targets(&table)));
    println!(
        "| {name} | agent runtime configuration reads (`GET …/agents/{{id}}/runtime`) | {rate:.0} req/s, p99 {p99:.1} ms |"
    );
    println!("| {name} | server and benchmark process peak RSS | {:.0} MiB |", peak_rss_mib());
}

#[tokio::main]
async fn main() {
    if Command::new("wrk").arg("--version").output().is_err() {
        println!("SKIPPED: wrk is not installed (apt-get install wrk)");
        return;
    }
    // Raw PostgreSQL's single-row commit rate on the same server and cores, for the ratios.
    let raw = print_raw_commit_rate(10).await;
    println!("| backend | workload | result |");
    println!("|---|---|---|");
    let only = std::env::var("TENANTRY_BENCH_ONLY").unwrap_or_default();
    if only != "sqlite"
        && let Some(h) = Harness::postgres().await
    {
        run("PostgreSQL", Some(h.url.clone()), raw).await;
    }
    if only != "postgres" {
        run("SQLite", None, raw).await;
    }
}
