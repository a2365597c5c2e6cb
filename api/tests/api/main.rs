//! End-to-end tests over real HTTP against a server on port 0: one binary, a module per
//! feature.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::os::unix::fs::PermissionsExt;

use tenantry::settings::StoreSettings;
use tenantry::{Application, Settings};

mod analytics;
mod budgets;
mod client;
mod configuration;
mod connections;
mod console;
mod contract;
mod conversations;
mod credentials;
mod documents;
mod events;
mod group_commit;
mod hierarchy;
mod idempotency;
mod keys;
mod legal_hold;
mod lists;
mod operators;
mod partners;
mod person_export;
mod quotas;
mod rate;
mod runtime;
mod scoped_keys;
mod slugs;
mod stalls;
#[path = "../support/mod.rs"]
mod support;
mod tokens;
mod walkthrough;
mod webhooks;

use support::BOOTSTRAP;

fn settings(dir: &std::path::Path) -> Settings {
    Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        store: StoreSettings {
            data_dir: dir.join("data"),
            database_url: None,
            master_key_file: None,
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
    }
}

async fn spawn(settings: &Settings) -> (u16, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let app = Application::build(settings).await.expect("builds");
    let port = app.port();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        app.run_until(async {
            let _ = rx.await;
        })
        .await
        .expect("serves");
    });
    (port, tx, handle)
}

#[tokio::test]
async fn serve_starts_on_embedded_sqlite_and_answers_healthz() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(dir.path());
    let (port, stop, handle) = spawn(&settings).await;
    let body: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "ok");
    stop.send(()).unwrap();
    handle.await.unwrap();

    // The data directory holds the database and a master key readable by its owner only.
    let key = settings.store.data_dir.join("master.key");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(settings.store.data_dir.join("tenantry.db").exists());

    // A restart keeps the same key.
    let first = std::fs::read_to_string(&key).unwrap();
    let (_, stop, handle) = spawn(&settings).await;
    stop.send(()).unwrap();
    handle.await.unwrap();
    assert_eq!(std::fs::read_to_string(&key).unwrap(), first);
}

fn tenantry(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tenantry"))
        .args(args)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .output()
        .unwrap();
    assert!(out.status.success(), "tenantry {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_projects_live_and_the_cli_rebuilds_and_reports_status() {
    use tenantry_domain::event::{Settings as TenantSettings, TenantCreated};
    use tenantry_domain::{Event, EventId, Plan, StreamId, TenantContext, TenantId};
    use tenantry_projections::models::directory;
    use tenantry_store::{AppendRequest, ExpectedVersion, NewEvent};

    let dir = tempfile::tempdir().unwrap();
    let settings = settings(dir.path());
    let app = Application::build(&settings).await.unwrap();
    let (store, projections) = (app.store().clone(), app.projections().clone());
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));

    let ctx = TenantContext::system(TenantId::new());
    let created = Event::TenantCreated(TenantCreated {
        slug: "acme".into(),
        name: "Acme".into(),
        plan: Plan::Starter,
        partner_id: None,
        settings: TenantSettings::default(),
        limits: Default::default(),
        ancestors: Vec::new(),
    });
    let out = store
        .append(
            &ctx,
            AppendRequest::to_stream(
                StreamId::tenant(),
                ExpectedVersion::NoStream,
                vec![NewEvent::new(EventId::new(), &created).unwrap()],
            ),
        )
        .await
        .unwrap();
    // The server projects in-process: the write becomes readable without any other step.
    projections
        .wait_for(directory::NAME, ctx.tenant_id, out.last_position, std::time::Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(directory::tenant(&ctx, projections.db()).await.unwrap().unwrap().slug, "acme");
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    drop((store, projections));

    let status = tenantry(dir.path(), &["status"]);
    assert!(
        status.lines().any(|l| l.starts_with("directory") && l.split_whitespace().nth(2) == Some("0")),
        "{status}"
    );
    let replay = tenantry(dir.path(), &["replay", "--projection", "directory"]);
    assert_eq!(replay.trim(), "rebuilt from 1 events");
    let replay = tenantry(dir.path(), &["replay", "--tenant", &ctx.tenant_id.to_string()]);
    assert_eq!(replay.trim(), "rebuilt from 1 events");

    // A key made on the command line authenticates against a server on the same data.
    let key =
        tenantry(dir.path(), &["keys", "create", "--tenant", &ctx.tenant_id.to_string(), "--role", "admin"]);
    let key = key.trim().to_owned();
    assert!(key.starts_with("tnt_"), "{key}");
    let app = Application::build(&settings).await.unwrap();
    let port = app.port();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    let tenant_url = format!("http://127.0.0.1:{port}/v1/tenants/{}", ctx.tenant_id);
    let status = |key: String| {
        let url = tenant_url.clone();
        async move { reqwest::Client::new().get(url).bearer_auth(key).send().await.unwrap().status() }
    };
    assert_eq!(status(key.clone()).await, reqwest::StatusCode::OK);

    // The command line lists the tenant's keys (never a secret) and revokes one.
    let scoped = tenantry(
        dir.path(),
        &[
            "keys",
            "create",
            "--tenant",
            &ctx.tenant_id.to_string(),
            "--role",
            "admin",
            "--scope",
            "usage:write",
        ],
    );
    let key_id = key.strip_prefix("tnt_").and_then(|k| k.split('_').next()).unwrap().to_owned();
    let key_id = uuid::Uuid::parse_str(&key_id).unwrap().to_string();
    let listed = tenantry(dir.path(), &["keys", "list", "--tenant", &ctx.tenant_id.to_string()]);
    let line = listed.lines().find(|l| l.starts_with(&key_id)).unwrap_or_else(|| panic!("{listed}"));
    assert!(line.contains("active") && line.ends_with(" *"), "{line}");
    assert!(listed.lines().any(|l| l.ends_with("usage:write")), "{listed}");
    assert!(!listed.contains(key.rsplit('_').next().unwrap()), "a secret is never listed");
    assert_eq!(
        status(scoped.trim().to_owned()).await,
        reqwest::StatusCode::FORBIDDEN,
        "tenant:read is not held"
    );
    tenantry(dir.path(), &["keys", "revoke", "--tenant", &ctx.tenant_id.to_string(), &key_id]);
    assert_eq!(status(key.clone()).await, reqwest::StatusCode::UNAUTHORIZED);
    let listed = tenantry(dir.path(), &["keys", "list", "--tenant", &ctx.tenant_id.to_string()]);
    assert!(listed.lines().any(|l| l.starts_with(&key_id) && l.contains("revoked")), "{listed}");
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

/// Clients can generate code from the description: every body a route takes has a schema.
#[test]
fn every_request_body_is_described() {
    let doc = serde_json::to_value(tenantry::http::openapi()).unwrap();
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    let mut described = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let takes_body = method == "patch"
                || (method == "post"
                    && !["/resume", "/erase", "/archive", "/unarchive", "/redeliver"]
                        .iter()
                        .any(|end| path.ends_with(end)));
            if !takes_body {
                continue;
            }
            let schema = &op["requestBody"]["content"]["application/json"]["schema"]["$ref"];
            let name =
                schema.as_str().unwrap_or_else(|| panic!("{method} {path} has no request body schema"));
            let name = name.trim_start_matches("#/components/schemas/");
            assert!(schemas.contains_key(name), "{method} {path}: {name} is not in the components");
            described += 1;
        }
    }
    assert!(described >= 15, "{described} bodies described");
    assert!(schemas["CreateTenant"]["properties"]["limits"].is_object());
}

/// Every operation has its own id, the bearer scheme, a schema for every answer (problems
/// included) and a schema for every query parameter: a route added without them fails here.
#[test]
fn every_operation_is_fully_described() {
    let doc = tenantry::http::openapi();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let mut ids = std::collections::BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_owned()), "{method} {path}: operationId {id} is not unique");
            assert_eq!(op["security"][0]["bearer"], serde_json::json!([]), "{method} {path}: no security");
            for (status, answer) in op["responses"].as_object().unwrap() {
                let content = answer["content"]
                    .as_object()
                    .unwrap_or_else(|| panic!("{method} {path} {status}: no content"));
                assert!(
                    content.values().all(|c| c["schema"].is_object()),
                    "{method} {path} {status}: no schema"
                );
            }
            assert!(op["responses"]["default"]["content"]["application/problem+json"].is_object());
            for p in op["parameters"].as_array().into_iter().flatten() {
                assert!(p["schema"].is_object(), "{method} {path}: parameter {} has no schema", p["name"]);
            }
        }
    }
    assert!(ids.len() >= 44);
    // What is not JSON says what it is.
    let media = |path: &str| -> Vec<String> {
        doc["paths"][path]["get"]["responses"]["200"]["content"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    assert_eq!(media("/v1/tenants/{tenant_id}/export"), ["application/x-ndjson"]);
    assert_eq!(
        media("/v1/tenants/{tenant_id}/documents/{document_id}/content"),
        ["text/markdown", "text/plain"]
    );
    assert_eq!(media("/v1/tenants/{tenant_id}/events/stream"), ["text/event-stream"]);
}

/// `tenantry keys rotate-master`: every data key wrapped with the new master key; a server
/// started with the new key reads the tenant's data, one with the old key does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_master_key_is_rotated_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(dir.path());
    let (port, stop, handle) = spawn(&settings).await;
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let created: serde_json::Value = client
        .post(format!("{base}/v1/tenants"))
        .bearer_auth(BOOTSTRAP)
        .json(&serde_json::json!({"slug": "rotated", "name": "Rotated Co"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tenant = created["id"].as_str().unwrap().to_owned();
    stop.send(()).unwrap();
    handle.await.unwrap();

    let new_key = dir.path().join("new.key");
    let out = tenantry(dir.path(), &["keys", "rotate-master", "--new-key-file", new_key.to_str().unwrap()]);
    assert!(out.contains("every key is under the new master key"), "{out}");
    let again = tenantry(dir.path(), &["keys", "rotate-master", "--new-key-file", new_key.to_str().unwrap()]);
    assert!(again.starts_with("0 keys rewrapped"), "{again}");

    // The old key opens nothing of the tenant any more; the new one does.
    let old_key = dir.path().join("data").join("master.key");
    let export = |key: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_tenantry"))
            .args(["export", "--tenant", &tenant, "--output"])
            .arg(dir.path().join("export.ndjson"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--master-key-file")
            .arg(key)
            .output()
            .unwrap()
    };
    assert!(!export(&old_key).status.success(), "the old master key no longer opens the tenant");
    let with_new = export(&new_key);
    assert!(with_new.status.success(), "{}", String::from_utf8_lossy(&with_new.stderr));
    let file = std::fs::read_to_string(dir.path().join("export.ndjson")).unwrap();
    assert!(file.contains("Rotated Co"), "the export reads the tenant with the new key");
}
