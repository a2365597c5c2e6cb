//! End-to-end tests over real HTTP against a server on port 0.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::os::unix::fs::PermissionsExt;

use tenantry::settings::StoreSettings;
use tenantry::{Application, Settings};

mod support;

use support::BOOTSTRAP;

fn settings(dir: &std::path::Path) -> Settings {
    Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        store: StoreSettings {
            data_dir: dir.join("data"),
            database_url: None,
            master_key_file: None,
            prices_file: None,
            nats_url: None,
        },
        no_projectors: false,
        role: Default::default(),
        bootstrap_key: Some(BOOTSTRAP.into()),
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
    let res = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/v1/tenants/{}", ctx.tenant_id))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), reqwest::StatusCode::OK);
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

mod http {
    use reqwest::{Client, Method, StatusCode};
    use serde_json::{Value, json};
    use tenantry::Application;
    use tenantry_store::testing::Harness;

    use super::BOOTSTRAP;

    struct Api {
        base: String,
        client: Client,
        _stop: tokio::sync::oneshot::Sender<()>,
        _dir: tempfile::TempDir,
    }

    impl Api {
        async fn start(database_url: Option<String>) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let settings = super::support::server_settings(dir.path(), database_url, None);
            Self::serve(&settings, dir).await
        }

        /// A second server over the same store and master key, as another node would be.
        async fn another(&self, database_url: Option<String>) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let mut settings = super::support::server_settings(self._dir.path(), database_url, None);
            settings.store.master_key_file = Some(self._dir.path().join("master.key"));
            Self::serve(&settings, dir).await
        }

        async fn serve(settings: &tenantry::Settings, dir: tempfile::TempDir) -> Self {
            let app = Application::build(settings).await.unwrap();
            let base = format!("http://127.0.0.1:{}", app.port());
            let (stop, rx) = tokio::sync::oneshot::channel::<()>();
            tokio::spawn(app.run_until(async {
                let _ = rx.await;
            }));
            Self { base, client: Client::new(), _stop: stop, _dir: dir }
        }

        async fn call(
            &self,
            key: &str,
            method: Method,
            path: &str,
            body: Option<Value>,
        ) -> (StatusCode, Value, Option<u64>) {
            let mut req = self.client.request(method, format!("{}{path}", self.base)).bearer_auth(key);
            if let Some(b) = body {
                req = req.json(&b);
            }
            self.send(req).await
        }

        async fn send(&self, req: reqwest::RequestBuilder) -> (StatusCode, Value, Option<u64>) {
            let res = req.send().await.unwrap();
            let status = res.status();
            let position = res
                .headers()
                .get("tenantry-position")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
            let text = res.text().await.unwrap();
            assert!(
                !status.is_server_error() || status == StatusCode::SERVICE_UNAVAILABLE,
                "{status}: {text}"
            );
            (status, serde_json::from_str(&text).unwrap_or(Value::Null), position)
        }

        /// A query that first waits for the read model to reach `position`.
        async fn get_at(&self, key: &str, path: &str, position: u64) -> (StatusCode, Value) {
            let req = self
                .client
                .get(format!("{}{path}", self.base))
                .bearer_auth(key)
                .header("tenantry-min-position", position.to_string());
            let (s, v, _) = self.send(req).await;
            (s, v)
        }
    }

    async fn walkthrough(api: Api) {
        use Method as M;
        // Tenants, by the platform operator.
        let (s, a, pos) = api
            .call(
                BOOTSTRAP,
                M::POST,
                "/v1/tenants",
                Some(json!({"slug": "acme", "name": "Acme", "limits": {"max_agents": 2}})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{a}");
        assert_eq!(pos, a["position"].as_u64());
        let ta = a["id"].as_str().unwrap().to_owned();
        let (s, b, _) =
            api.call(BOOTSTRAP, M::POST, "/v1/tenants", Some(json!({"slug": "bolt", "name": "Bolt"}))).await;
        assert_eq!(s, StatusCode::CREATED);
        let tb = b["id"].as_str().unwrap().to_owned();
        let (s, got) = api.get_at(BOOTSTRAP, &format!("/v1/tenants/{ta}"), 1).await;
        assert_eq!((s, got["slug"].as_str()), (StatusCode::OK, Some("acme")));
        let (s, _, _) =
            api.call(BOOTSTRAP, M::POST, "/v1/tenants", Some(json!({"slug": "acme", "name": "Again"}))).await;
        assert_eq!(s, StatusCode::CONFLICT, "a taken slug");
        let (s, _, _) = api
            .call(
                BOOTSTRAP,
                M::POST,
                "/v1/tenants",
                Some(json!({"slug": "typo", "name": "T", "limits": {"max_agentz": 1}})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "an unknown limit name");

        // Keys: the secret is answered once and works at once.
        let (s, ka, _) = api
            .call(
                BOOTSTRAP,
                M::POST,
                &format!("/v1/tenants/{ta}/api-keys"),
                Some(json!({"name": "ops", "role": "admin"})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{ka}");
        let key_a = ka["key"].as_str().unwrap().to_owned();
        let (_, kb, _) = api
            .call(
                BOOTSTRAP,
                M::POST,
                &format!("/v1/tenants/{tb}/api-keys"),
                Some(json!({"name": "ops", "role": "admin"})),
            )
            .await;
        let key_b = kb["key"].as_str().unwrap().to_owned();
        // A user key acts as one user of the tenant, and must name it.
        let (s, _, _) = api
            .call(
                &key_a,
                M::POST,
                &format!("/v1/tenants/{ta}/api-keys"),
                Some(json!({"name": "bot", "role": "user"})),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        let (_, bot, _) = api
            .call(
                &key_a,
                M::POST,
                &format!("/v1/tenants/{ta}/users"),
                Some(json!({"email": "bot@acme.example", "role": "user"})),
            )
            .await;
        let bot = bot["id"].as_str().unwrap().to_owned();
        let (_, ku, _) = api
            .call(
                &key_a,
                M::POST,
                &format!("/v1/tenants/{ta}/api-keys"),
                Some(json!({"name": "bot", "role": "user", "user_id": bot})),
            )
            .await;
        let key_user = ku["key"].as_str().unwrap().to_owned();
        let (s, _, _) = api
            .call(
                &key_a,
                M::POST,
                &format!("/v1/tenants/{ta}/api-keys"),
                Some(json!({"name": "x", "role": "super_admin"})),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "no key above its maker");

        // Agents, within the limit of 2.
        let (s, ag, pos) = api
            .call(
                &key_a,
                M::POST,
                &format!("/v1/tenants/{ta}/agents"),
                Some(json!({"name": "support", "model": "model-small"})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{ag}");
        let agent = ag["id"].as_str().unwrap().to_owned();
        let (s, list) = api.get_at(&key_a, &format!("/v1/tenants/{ta}/agents"), pos.unwrap()).await;
        assert_eq!((s, list["items"].as_array().map(Vec::len)), (StatusCode::OK, Some(1)));
        let (s, _, _) = api
            .call(
                &key_a,
                M::PATCH,
                &format!("/v1/tenants/{ta}/agents/{agent}"),
                Some(json!({"name": "helpdesk"})),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        api.call(
            &key_a,
            M::POST,
            &format!("/v1/tenants/{ta}/agents"),
            Some(json!({"name": "second", "model": "m"})),
        )
        .await;
        let (s, limit, _) = api
            .call(
                &key_a,
                M::POST,
                &format!("/v1/tenants/{ta}/agents"),
                Some(json!({"name": "third", "model": "m"})),
            )
            .await;
        assert_eq!((s, limit["limit"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("max_agents")));
        let (s, _, _) = api
            .call(
                &key_user,
                M::POST,
                &format!("/v1/tenants/{ta}/agents"),
                Some(json!({"name": "u", "model": "m"})),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "a user key cannot manage agents");

        // A conversation with a message that carries usage.
        let (s, conv, _) = api
            .call(
                &key_a,
                M::POST,
                &format!("/v1/tenants/{ta}/conversations"),
                Some(json!({"agent_id": agent, "title": "hi"})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{conv}");
        let conv = conv["id"].as_str().unwrap().to_owned();
        let (s, msg, pos) = api
            .call(&key_a, M::POST, &format!("/v1/tenants/{ta}/conversations/{conv}/messages"), Some(json!({"role": "assistant", "content": "hello", "model": "model-small", "usage": {"prompt_tokens": 10, "completion_tokens": 5}})))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{msg}");
        let pos = pos.unwrap();
        let (_, msgs) =
            api.get_at(&key_a, &format!("/v1/tenants/{ta}/conversations/{conv}/messages"), pos).await;
        assert_eq!(msgs["items"][0]["content"], "hello");
        let (_, threads) =
            api.get_at(&key_a, &format!("/v1/tenants/{ta}/conversations?agent_id={agent}"), pos).await;
        assert_eq!(threads["items"][0]["message_count"], 1);
        let (_, usage) = api.get_at(&key_a, &format!("/v1/tenants/{ta}/usage"), pos).await;
        assert_eq!(usage["total_tokens"], 15, "message usage is billed once");
        let (s, rec, _) = api.call(&key_a, M::POST, &format!("/v1/tenants/{ta}/usage"), Some(json!({"model": "model-small", "kind": "embedding", "prompt_tokens": 7, "completion_tokens": 0, "request_id": "r-1"}))).await;
        assert_eq!((s, rec["recorded"].as_bool()), (StatusCode::CREATED, Some(true)));
        let (s, rec, pos) = api.call(&key_a, M::POST, &format!("/v1/tenants/{ta}/usage"), Some(json!({"model": "model-small", "kind": "embedding", "prompt_tokens": 7, "completion_tokens": 0, "request_id": "r-1"}))).await;
        assert_eq!((s, rec["recorded"].as_bool()), (StatusCode::OK, Some(false)), "idempotent on request_id");
        let (_, quotas) = api.get_at(&key_a, &format!("/v1/tenants/{ta}/quotas"), pos.unwrap()).await;
        let tokens =
            quotas["quotas"].as_array().unwrap().iter().find(|q| q["limit"] == "tokens_per_month").unwrap();
        assert_eq!(tokens["used"], 22);
        let (s, audit) =
            api.get_at(&key_a, &format!("/v1/tenants/{ta}/audit?action=agent.created"), pos.unwrap()).await;
        assert_eq!((s, audit["items"].as_array().map(Vec::len)), (StatusCode::OK, Some(2)));

        // The user key sees its own conversations only.
        let (s, mine, _) = api
            .call(
                &key_user,
                M::POST,
                &format!("/v1/tenants/{ta}/conversations"),
                Some(json!({"agent_id": agent, "user_id": bot})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{mine}");
        let (s, own, _) = api
            .call(
                &key_user,
                M::POST,
                &format!("/v1/tenants/{ta}/conversations"),
                Some(json!({"agent_id": agent})),
            )
            .await;
        assert_eq!(
            s,
            StatusCode::CREATED,
            "a user key naming no user opens the conversation as its user: {own}"
        );
        let (_, listed) = api
            .get_at(&key_user, &format!("/v1/tenants/{ta}/conversations"), own["position"].as_u64().unwrap())
            .await;
        let mut ids: Vec<_> = listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["conversation_id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        let mut expected =
            vec![mine["id"].as_str().unwrap().to_owned(), own["id"].as_str().unwrap().to_owned()];
        expected.sort();
        assert_eq!(ids, expected, "only its own threads");
        let (s, none) = api
            .get_at(
                &key_user,
                &format!("/v1/tenants/{ta}/conversations/{}/messages", mine["id"].as_str().unwrap()),
                mine["position"].as_u64().unwrap(),
            )
            .await;
        assert_eq!((s, none["items"].as_array().map(Vec::len)), (StatusCode::OK, Some(0)), "{none}");
        let (s, _, _) =
            api.call(&key_user, M::GET, &format!("/v1/tenants/{ta}/conversations/{conv}"), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "another's thread is not there");
        let (s, _, _) = api
            .call(&key_user, M::GET, &format!("/v1/tenants/{ta}/conversations/{conv}/messages"), None)
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, _, _) = api
            .call(
                &key_user,
                M::POST,
                &format!("/v1/tenants/{ta}/conversations/{conv}/messages"),
                Some(json!({"role": "user", "content": "hi"})),
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);

        // Users and tools.
        let (s, user, _) = api
            .call(
                &key_a,
                M::POST,
                &format!("/v1/tenants/{ta}/users"),
                Some(json!({"email": "ann@acme.example", "role": "user"})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{user}");
        let user = user["id"].as_str().unwrap().to_owned();
        let (s, _, _) = api
            .call(
                &key_a,
                M::POST,
                &format!("/v1/tenants/{ta}/users"),
                Some(json!({"email": "ANN@acme.example", "role": "user"})),
            )
            .await;
        assert_eq!(s, StatusCode::CONFLICT, "emails are unique per tenant");
        let (s, _, _) = api
            .call(
                &key_a,
                M::POST,
                &format!("/v1/tenants/{ta}/users"),
                Some(json!({"email": "not-an-email", "role": "user"})),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        let (s, tool, _) = api
            .call(&key_a, M::POST, &format!("/v1/tenants/{ta}/tools"), Some(json!({"name": "search", "endpoint": "https://tools.example/s", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}})))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{tool}");
        let tool = tool["id"].as_str().unwrap().to_owned();
        let (s, _, _) = api
            .call(
                &key_a,
                M::POST,
                &format!("/v1/tenants/{ta}/tools"),
                Some(json!({"name": "bad", "endpoint": "x", "parameters": 3})),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        let (s, _, pos) = api
            .call(
                &key_a,
                M::PATCH,
                &format!("/v1/tenants/{ta}/tools/{tool}"),
                Some(json!({"enabled": false})),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let (_, got) = api.get_at(&key_a, &format!("/v1/tenants/{ta}/tools/{tool}"), pos.unwrap()).await;
        assert_eq!(got["enabled"], false);
        let (_, got) = api.get_at(&key_a, &format!("/v1/tenants/{ta}/users/{user}"), pos.unwrap()).await;
        assert_eq!(got["email"], "ann@acme.example");
        let (s, _, _) = api.call(&key_user, M::GET, &format!("/v1/tenants/{ta}/users"), None).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "a user key cannot list users");

        // Tenant B's admin reaches nothing of A on any route, and learns nothing.
        // A key the matrix may revoke without harm.
        let (_, spare, _) = api
            .call(
                &key_a,
                M::POST,
                &format!("/v1/tenants/{ta}/api-keys"),
                Some(json!({"name": "spare", "role": "admin"})),
            )
            .await;
        let spare_key = spare["id"].as_str().unwrap().to_owned();
        // Every tenant route of the OpenAPI description, with A's ids: adding a route with a
        // parameter this table does not know fails the test until it is covered.
        let ids = [
            ("tenant_id", ta.clone()),
            ("agent_id", agent.clone()),
            ("conversation_id", conv.clone()),
            ("user_id", user.clone()),
            ("tool_id", tool.clone()),
            ("key_id", spare_key.clone()),
        ];
        let doc = serde_json::to_value(tenantry::http::openapi()).unwrap();
        let mut a_paths = Vec::new();
        for (template, item) in doc["paths"].as_object().unwrap() {
            if !template.contains("{tenant_id}") {
                continue;
            }
            let mut path = template.clone();
            for (name, value) in &ids {
                path = path.replace(&format!("{{{name}}}"), value);
            }
            assert!(!path.contains('{'), "the cross-tenant matrix does not cover {template}");
            for method in item.as_object().unwrap().keys() {
                a_paths.push((method.to_uppercase().parse::<M>().unwrap(), path.clone()));
            }
        }
        assert!(
            a_paths.len() >= 35,
            "{} tenant routes: one went missing from the description",
            a_paths.len()
        );
        for (method, path) in &a_paths {
            let (s, body, _) = api.call(&key_b, method.clone(), path, Some(json!({}))).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{method} {path}");
            let text = body.to_string();
            assert!(
                !text.contains("acme") && !text.contains("helpdesk") && !text.contains("hello"),
                "{method} {path} leaked: {text}"
            );
        }
        // Malformed input on every route: never a 5xx.
        for (method, path) in &a_paths {
            let url = format!("{}{path}", api.base);
            let bad_json = api
                .client
                .request(method.clone(), &url)
                .bearer_auth(&key_a)
                .header("content-type", "application/json")
                .body("{\"name\": ");
            let unknown = api
                .client
                .request(method.clone(), &url)
                .bearer_auth(&key_a)
                .json(&json!({"zzz": 1, "name": [1, 2]}));
            let bad_id = api
                .client
                .request(method.clone(), format!("{}{}", api.base, path.replace(&ta, "0000-not-a-uuid")))
                .bearer_auth(&key_a);
            for req in [bad_json, unknown, bad_id] {
                let status = req.send().await.unwrap().status();
                assert!(!status.is_server_error(), "{method} {path}: {status}");
            }
        }

        // A user key: conversations, messages and usage; no management, no audit, no keys.
        for (method, path) in &a_paths {
            // Tenant-wide reports, settings and usage records are for administrators.
            let user_may = *method == M::GET
                && !["/api-keys", "/users", "/audit", "/export", "/usage", "/quotas", "/settings"]
                    .iter()
                    .any(|p| path.contains(p))
                || (*method == M::POST && (path.ends_with("/conversations") || path.ends_with("/messages")));
            let (s, _, _) = api.call(&key_user, method.clone(), path, Some(json!({}))).await;
            if user_may {
                assert_ne!(s, StatusCode::FORBIDDEN, "user {method} {path}");
            } else {
                assert!(
                    s == StatusCode::FORBIDDEN
                        || s == StatusCode::BAD_REQUEST
                        || s == StatusCode::UNPROCESSABLE_ENTITY,
                    "user {method} {path}: {s}"
                );
            }
        }

        // A's objects under B's own path are simply not there.
        let (s, _, _) = api.call(&key_b, M::GET, &format!("/v1/tenants/{tb}/agents/{agent}"), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, _, _) =
            api.call(&key_b, M::GET, &format!("/v1/tenants/{tb}/conversations/{conv}/messages"), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        // Every refusal is in A's audit trail, with the key that tried.
        let (_, _, after) = api
            .call(
                BOOTSTRAP,
                M::PATCH,
                &format!("/v1/tenants/{ta}/settings"),
                Some(json!({"agent_name": "Ava"})),
            )
            .await;
        let (_, denied) =
            api.get_at(BOOTSTRAP, &format!("/v1/tenants/{ta}/audit?limit=500"), after.unwrap()).await;
        let denials = denied["items"].as_array().unwrap().iter().filter(|e| e["outcome"] == "denied").count();
        assert_eq!(denials, a_paths.len());
        let (_, settings) = api.get_at(&key_a, &format!("/v1/tenants/{ta}/settings"), after.unwrap()).await;
        assert_eq!(settings["agent_name"], "Ava");
        // The export holds the whole log up to now, and verifies offline.
        let res = api
            .client
            .get(format!("{}/v1/tenants/{ta}/export", api.base))
            .bearer_auth(&key_a)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-type"], "application/x-ndjson");
        let bytes = res.bytes().await.unwrap();
        let summary = tenantry_store::export::verify(&bytes[..], |_, _| Ok(())).unwrap();
        assert_eq!(summary.head_position, after.unwrap());
        assert_eq!(summary.events, after.unwrap());
        assert!(String::from_utf8_lossy(&bytes).contains("helpdesk"));
        let (_, listed, _) = api.call(&key_b, M::GET, "/v1/tenants", None).await;
        assert_eq!(
            listed["items"].as_array().map(Vec::len),
            Some(1),
            "a tenant key lists its own tenant only"
        );

        // Bad credentials and bad input.
        let (s, problem, _) = api.call("nope", M::GET, &format!("/v1/tenants/{ta}"), None).await;
        assert_eq!((s, problem["status"].as_u64()), (StatusCode::UNAUTHORIZED, Some(401)));
        let (s, _, _) = api.send(api.client.get(format!("{}/v1/tenants", api.base))).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let (s, _, _) = api
            .call(
                &key_a,
                M::POST,
                &format!("/v1/tenants/{ta}/agents"),
                Some(json!({"name": "x", "model": "m", "tenant_id": tb})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "unknown fields, tenant_id never from a body");
        let (s, _, _) = api
            .call(
                &key_a,
                M::POST,
                &format!("/v1/tenants/{ta}/agents"),
                Some(json!({"name": 5, "model": "m"})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let (s, _, _) = api
            .send(
                api.client
                    .post(format!("{}/v1/tenants/{ta}/agents", api.base))
                    .bearer_auth(&key_a)
                    .header("content-type", "application/json")
                    .body("{not json"),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let (s, _, _) = api.call(&key_a, M::GET, "/v1/tenants/not-a-uuid/agents", None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        // The server answers 413 as soon as it sees the length, and may close the connection
        // while the client is still sending: a try that ends before the answer is repeated.
        let huge = json!({"role": "user", "content": "x".repeat(1_100_000)}).to_string();
        let url = format!("{}/v1/tenants/{ta}/conversations/{conv}/messages", api.base);
        let mut answered = None;
        for _ in 0..5 {
            // `Connection: close`: the server stops reading at the length, so this connection
            // must not go back to the client's pool for the next request.
            let req = api
                .client
                .post(&url)
                .bearer_auth(&key_a)
                .header("content-type", "application/json")
                .header("connection", "close")
                .body(huge.clone());
            if let Ok(res) = req.send().await {
                answered = Some(res.status());
                break;
            }
        }
        assert_eq!(answered, Some(StatusCode::PAYLOAD_TOO_LARGE));
        let (s, _, _) = api
            .call(
                &key_a,
                M::POST,
                &format!("/v1/tenants/{ta}/agents"),
                Some(json!({"name": "", "model": "m"})),
            )
            .await;
        assert!(s == StatusCode::UNPROCESSABLE_ENTITY || s == StatusCode::TOO_MANY_REQUESTS, "{s}");
        let (s, _, _) =
            api.call(&key_a, M::GET, &format!("/v1/tenants/{ta}/conversations?limit=abc"), None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let (s, _, _) = api.call(&key_a, M::DELETE, &format!("/v1/tenants/{ta}"), None).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "only the platform operator purges a tenant");

        // Suspension stops the tenant's commands; resuming restores them.
        let (s, _, _) = api
            .call(BOOTSTRAP, M::POST, &format!("/v1/tenants/{ta}/suspend"), Some(json!({"reason": "unpaid"})))
            .await;
        assert_eq!(s, StatusCode::OK);
        let (s, _, _) = api
            .call(
                &key_a,
                M::POST,
                &format!("/v1/tenants/{ta}/conversations"),
                Some(json!({"agent_id": agent})),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _, _) = api.call(&key_a, M::POST, &format!("/v1/tenants/{ta}/resume"), None).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "only the platform resumes");
        api.call(BOOTSTRAP, M::POST, &format!("/v1/tenants/{ta}/resume"), None).await;

        // Metrics name routes, never tenant ids.
        let metrics =
            api.client.get(format!("{}/metrics", api.base)).send().await.unwrap().text().await.unwrap();
        assert!(metrics.contains("tenantry_http_requests_total"), "{metrics}");
        assert!(metrics.contains("route=\"/v1/tenants/{tenant_id}/agents\""));
        assert!(metrics.contains("tenantry_projection_lag_events{projector=\"directory\"}"));
        assert!(metrics.contains("tenantry_events_appended_total"), "{metrics}");
        assert!(!metrics.contains(&ta), "tenant ids stay out of metrics");
        let (s, _, _) = api.call(BOOTSTRAP, M::GET, "/readyz", None).await;
        assert_eq!(s, StatusCode::OK);
        let (s, spec, _) = api.call(BOOTSTRAP, M::GET, "/openapi.json", None).await;
        assert!(spec["paths"]["/v1/tenants/{tenant_id}/agents"]["post"].is_object(), "{spec}");
        assert_eq!(s, StatusCode::OK);

        // Revocation is effective before the answer.
        let key_user_id = ku["id"].as_str().unwrap();
        let (s, _, _) =
            api.call(&key_a, M::DELETE, &format!("/v1/tenants/{ta}/api-keys/{key_user_id}"), None).await;
        assert_eq!(s, StatusCode::OK);
        let (s, _, _) = api.call(&key_user, M::GET, &format!("/v1/tenants/{ta}/agents"), None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        // A wrong secret for a real key id does not authenticate.
        let forged = format!("{}{}", &key_a[..key_a.len() - 4], "0000");
        let (s, _, _) = api.call(&forged, M::GET, &format!("/v1/tenants/{ta}/agents"), None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_tenant_past_its_request_rate_gets_429_and_others_do_not() {
        use Method as M;
        let api = Api::start(None).await;
        let (_, a, _) = api
            .call(
                BOOTSTRAP,
                M::POST,
                "/v1/tenants",
                Some(json!({"slug": "busy", "name": "Busy", "limits": {"requests_per_minute": 5}})),
            )
            .await;
        let (_, b, _) = api
            .call(
                BOOTSTRAP,
                M::POST,
                "/v1/tenants",
                Some(json!({"slug": "calm", "name": "Calm", "limits": {"requests_per_minute": 5}})),
            )
            .await;
        let (ta, tb) = (a["id"].as_str().unwrap().to_owned(), b["id"].as_str().unwrap().to_owned());
        let key = |t: String| {
            let api = &api;
            async move {
                let (s, k, _) = api
                    .call(
                        BOOTSTRAP,
                        M::POST,
                        &format!("/v1/tenants/{t}/api-keys"),
                        Some(json!({"name": "k", "role": "admin"})),
                    )
                    .await;
                assert_eq!(s, StatusCode::CREATED, "{k}");
                k["key"].as_str().unwrap().to_owned()
            }
        };
        let (key_a, key_b) = (key(ta.clone()).await, key(tb.clone()).await);
        // Nobody drains B's bucket: not requests without a key, not A's key aimed at B's
        // path, not percent-encoded ids or unknown routes under B's id.
        for path in [
            format!("/v1/tenants/{tb}/agents"),
            format!("/v1/tenants/%7B{tb}%7D/agents"),
            format!("/v1/tenants/{tb}/no-such-route"),
        ] {
            for _ in 0..6 {
                let (s, _, _) = api.call(&key_a, M::GET, &path, None).await;
                assert_ne!(s, StatusCode::OK, "{path}");
            }
        }
        for _ in 0..6 {
            let (s, _, _) = api.call("no-such-key", M::GET, &format!("/v1/tenants/{tb}/agents"), None).await;
            assert!(s == StatusCode::UNAUTHORIZED || s == StatusCode::TOO_MANY_REQUESTS, "{s}");
        }
        let (s, _) = api.get_at(&key_b, &format!("/v1/tenants/{tb}"), 1).await;
        assert_eq!(s, StatusCode::OK, "B's own key still has its whole bucket");
        // A's key spent A's bucket on the requests above (18 of them, past 5 a minute).
        let mut statuses = Vec::new();
        for _ in 0..2 {
            let (s, body) = api.get_at(&key_a, &format!("/v1/tenants/{ta}"), 1).await;
            statuses.push((s, body));
        }
        let (s, problem) = &statuses[1];
        assert_eq!(
            (*s, problem["limit"].as_str(), problem["code"].as_str()),
            (StatusCode::TOO_MANY_REQUESTS, Some("requests_per_minute"), Some("limit_exceeded"))
        );
        let res =
            api.client.get(format!("{}/v1/tenants/{ta}", api.base)).bearer_auth(&key_a).send().await.unwrap();
        let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry), "{retry}");
        // The operator has a bucket of its own: A's flood does not stop it acting on A.
        let (s, _) = api.get_at(BOOTSTRAP, &format!("/v1/tenants/{ta}"), 1).await;
        assert_eq!(s, StatusCode::OK);
        let (s, _, _) = api.call(BOOTSTRAP, M::POST, &format!("/v1/tenants/{ta}/suspend"), None).await;
        assert_eq!(s, StatusCode::OK, "an operator's suspend is not refused for the tenant's flood");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn every_route_works_and_tenants_stay_apart_on_sqlite() {
        walkthrough(Api::start(None).await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn every_route_works_and_tenants_stay_apart_on_postgres() {
        let Some(h) = Harness::postgres().await else { return };
        walkthrough(Api::start(Some(h.url.clone())).await).await;
    }

    /// The defects an outside sweep found, each pinned: bad input is a typed 4xx and stops
    /// nobody; errors are problems with a code; settings patch by merge; a suspended tenant
    /// is closed to its own keys; exports carry no key hashes.
    async fn contract(api: Api) {
        use Method as M;
        let (s, t, _) = api
            .call(BOOTSTRAP, M::POST, "/v1/tenants", Some(json!({"slug": "sweep", "name": "Sweep"})))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{t}");
        let t = t["id"].as_str().unwrap().to_owned();
        let (_, k, _) = api
            .call(
                BOOTSTRAP,
                M::POST,
                &format!("/v1/tenants/{t}/api-keys"),
                Some(json!({"name": "k", "role": "admin"})),
            )
            .await;
        let key = k["key"].as_str().unwrap().to_owned();

        // GET /v1/me says who a credential is.
        let (s, me, _) = api.call(&key, M::GET, "/v1/me", None).await;
        assert_eq!(
            (s, me["role"].as_str(), me["tenant_id"].as_str()),
            (StatusCode::OK, Some("admin"), Some(t.as_str()))
        );
        assert_eq!(me["key_id"], k["id"]);
        let (_, me, _) = api.call(BOOTSTRAP, M::GET, "/v1/me", None).await;
        assert_eq!((me["role"].as_str(), me["tenant_id"].as_str()), (Some("super_admin"), None));

        // A NUL character anywhere is refused at the edge, and the tenant's read models
        // keep flowing: a key revoked afterwards fails at once.
        for (path, body) in [
            (format!("/v1/tenants/{t}/agents"), json!({"name": "a\u{0}b", "model": "m"})),
            (format!("/v1/tenants/{t}/users"), json!({"email": "x\u{0}@y.io", "role": "user"})),
            (format!("/v1/tenants/{t}"), json!({"name": "n\u{0}"})),
        ] {
            let (s, p, _) =
                api.call(&key, if path.ends_with(&t) { M::PATCH } else { M::POST }, &path, Some(body)).await;
            assert_eq!(
                (s, p["code"].as_str()),
                (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed")),
                "{path}: {p}"
            );
            assert!(p["field"].is_string(), "{p}");
        }
        let (s, agent, _) = api
            .call(
                &key,
                M::POST,
                &format!("/v1/tenants/{t}/agents"),
                Some(json!({"name": "ok", "model": "m"})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{agent}");
        let agent = agent["id"].as_str().unwrap().to_owned();
        let (s, conv, _) = api
            .call(&key, M::POST, &format!("/v1/tenants/{t}/conversations"), Some(json!({"agent_id": agent})))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{conv}");
        let conv = conv["id"].as_str().unwrap().to_owned();
        let msgs = format!("/v1/tenants/{t}/conversations/{conv}/messages");
        let (s, p, _) =
            api.call(&key, M::POST, &msgs, Some(json!({"role": "user", "content": "\u{0}"}))).await;
        assert_eq!((s, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("content")));
        // Token counts are bounded per record; past the bound is 422, not an overflow.
        let huge = json!({"role": "assistant", "content": "x", "model": "m", "usage": {"prompt_tokens": 1_000_000_000_001u64, "completion_tokens": 0}});
        let (s, p, _) = api.call(&key, M::POST, &msgs, Some(huge)).await;
        assert_eq!((s, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("usage.prompt_tokens")));
        let (s, p, _) = api.call(&key, M::POST, &format!("/v1/tenants/{t}/usage"), Some(json!({"model": "m", "kind": "chat", "prompt_tokens": u64::MAX, "completion_tokens": u64::MAX}))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
        // A request id recorded before with other content is 422, not a silent no-op.
        let usage = format!("/v1/tenants/{t}/usage");
        let (s, _, _) = api.call(&key, M::POST, &usage, Some(json!({"model": "m", "kind": "chat", "prompt_tokens": 1, "completion_tokens": 1, "request_id": "q1"}))).await;
        assert_eq!(s, StatusCode::CREATED);
        let (s, p, _) = api.call(&key, M::POST, &usage, Some(json!({"model": "m", "kind": "chat", "prompt_tokens": 2, "completion_tokens": 1, "request_id": "q1"}))).await;
        assert_eq!(
            (s, p["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("idempotency_key_reused"))
        );
        let (s, p, _) = api.call(&key, M::GET, &format!("/v1/tenants/{t}/usage?from=%00"), None).await;
        assert_eq!((s, p["code"].as_str()), (StatusCode::BAD_REQUEST, Some("bad_request")), "{p}");

        // Limits have ranges: one that would have panicked the limiter is 422, and the
        // limiter keeps working for everyone.
        let (s, p, _) = api
            .call(
                BOOTSTRAP,
                M::PATCH,
                &format!("/v1/tenants/{t}"),
                Some(json!({"limits": {"max_concurrent_requests": 4_611_686_018_427_387_904u64}})),
            )
            .await;
        assert_eq!(
            (s, p["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("limits.max_concurrent_requests"))
        );
        let (s, _, rev) = api.call(&key, M::GET, &format!("/v1/tenants/{t}/agents"), None).await;
        assert_eq!(s, StatusCode::OK);
        assert!(rev.is_none());

        // Settings are a merge patch: naming only the flags keeps the models.
        let settings = format!("/v1/tenants/{t}/settings");
        let (s, _, _) = api
            .call(
                &key,
                M::PATCH,
                &settings,
                Some(json!({"allowed_models": ["m-large"], "default_model": "m-large"})),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let (s, _, pos) =
            api.call(&key, M::PATCH, &settings, Some(json!({"feature_flags": {"beta": true}}))).await;
        assert_eq!(s, StatusCode::OK);
        let (_, got) = api.get_at(&key, &settings, pos.unwrap()).await;
        assert_eq!(got["allowed_models"], json!(["m-large"]), "{got}");
        assert_eq!(got["default_model"], "m-large");
        assert_eq!(got["feature_flags"], json!({"beta": true}));
        let (_, _, pos) = api.call(&key, M::PATCH, &settings, Some(json!({"default_model": null}))).await;
        let (_, got) = api.get_at(&key, &settings, pos.unwrap()).await;
        assert_eq!(
            (got["default_model"].clone(), got["allowed_models"].clone()),
            (Value::Null, json!(["m-large"]))
        );

        // Every error is a problem with a code: unknown routes, wrong methods, no key.
        for (method, path, status, code) in [
            (M::GET, "/v1/no-such-route".to_owned(), StatusCode::NOT_FOUND, "not_found"),
            (M::PUT, format!("/v1/tenants/{t}/agents"), StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        ] {
            let res = api
                .client
                .request(method, format!("{}{path}", api.base))
                .bearer_auth(&key)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), status, "{path}");
            assert_eq!(res.headers()["content-type"], "application/problem+json");
            let body: Value = res.json().await.unwrap();
            assert_eq!(body["code"], code);
        }
        let res = api.client.get(format!("{}/v1/tenants/{t}/agents", api.base)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(res.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
        let res = api
            .client
            .get(format!("{}/healthz", api.base))
            .header("x-request-id", "req-123")
            .send()
            .await
            .unwrap();
        assert_eq!(res.headers()["x-request-id"], "req-123", "a request id is echoed");

        // Exports leave API key hashes out.
        let res = api
            .client
            .get(format!("{}/v1/tenants/{t}/export", api.base))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        let text = res.text().await.unwrap();
        assert!(text.contains("apikey.issued") && !text.contains("secret_hash"), "{text}");

        // A suspended tenant is closed to its own keys and open to operators.
        let (s, _, _) = api.call(BOOTSTRAP, M::POST, &format!("/v1/tenants/{t}/suspend"), None).await;
        assert_eq!(s, StatusCode::OK);
        let (s, p, _) = api.call(&key, M::GET, &format!("/v1/tenants/{t}/agents"), None).await;
        assert_eq!((s, p["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")), "{p}");
        let (s, _, _) = api.call(BOOTSTRAP, M::GET, &format!("/v1/tenants/{t}/agents"), None).await;
        assert_eq!(s, StatusCode::OK);
        let (s, _, _) = api.call(BOOTSTRAP, M::POST, &format!("/v1/tenants/{t}/resume"), None).await;
        assert_eq!(s, StatusCode::OK);
        let (s, _, _) = api.call(&key, M::GET, &format!("/v1/tenants/{t}/agents"), None).await;
        assert_eq!(s, StatusCode::OK, "open again once resumed");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_contract_holds_and_bad_input_stops_nobody_on_sqlite() {
        contract(Api::start(None).await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_contract_holds_and_bad_input_stops_nobody_on_postgres() {
        let Some(h) = Harness::postgres().await else { return };
        contract(Api::start(Some(h.url.clone())).await).await;
    }

    /// Partners: the platform creates them; a partner admin creates and manages its own
    /// partner's tenants and reaches no other tenant.
    async fn partners(api: Api) {
        use Method as M;
        let (s, p, _) =
            api.call(BOOTSTRAP, M::POST, "/v1/partners", Some(json!({"name": "Resell Co"}))).await;
        assert_eq!(s, StatusCode::CREATED, "{p}");
        let (partner, partner_key) =
            (p["id"].as_str().unwrap().to_owned(), p["key"].as_str().unwrap().to_owned());
        let (_, other, _) =
            api.call(BOOTSTRAP, M::POST, "/v1/partners", Some(json!({"name": "Other Co"}))).await;
        let other = other["id"].as_str().unwrap().to_owned();
        let (s, _, _) = api.call(BOOTSTRAP, M::POST, "/v1/partners", Some(json!({"name": ""}))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);

        // Its tenants: created under its partner whatever the body says, or refused.
        let (s, t, pos) = api
            .call(&partner_key, M::POST, "/v1/tenants", Some(json!({"slug": "pt-one", "name": "One"})))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{t}");
        let mine = t["id"].as_str().unwrap().to_owned();
        let (s, _, _) = api
            .call(
                &partner_key,
                M::POST,
                "/v1/tenants",
                Some(json!({"slug": "pt-x", "name": "X", "partner_id": other})),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "not under another partner");
        let (_, theirs, _) =
            api.call(BOOTSTRAP, M::POST, "/v1/tenants", Some(json!({"slug": "pt-two", "name": "Two"}))).await;
        let theirs = theirs["id"].as_str().unwrap().to_owned();

        let (s, got) = api.get_at(&partner_key, &format!("/v1/tenants/{mine}"), pos.unwrap()).await;
        assert_eq!((s, got["partner_id"].as_str()), (StatusCode::OK, Some(partner.as_str())), "{got}");
        let (_, listed, _) = api.call(&partner_key, M::GET, "/v1/tenants", None).await;
        let ids: Vec<&str> =
            listed["items"].as_array().unwrap().iter().map(|t| t["tenant_id"].as_str().unwrap()).collect();
        assert_eq!(ids, [mine.as_str()], "a partner admin lists its own tenants");
        // It manages them: keys, agents, suspension.
        let (s, _, _) = api
            .call(
                &partner_key,
                M::POST,
                &format!("/v1/tenants/{mine}/api-keys"),
                Some(json!({"name": "a", "role": "admin"})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
        let (s, _, _) = api
            .call(
                &partner_key,
                M::POST,
                &format!("/v1/tenants/{mine}/agents"),
                Some(json!({"name": "a", "model": "m"})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
        let (s, _, _) = api
            .call(
                &partner_key,
                M::POST,
                &format!("/v1/tenants/{mine}/suspend"),
                Some(json!({"reason": "late"})),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        // Nothing of another tenant, not even whether it exists.
        for (method, path) in [
            (M::GET, format!("/v1/tenants/{theirs}")),
            (M::PATCH, format!("/v1/tenants/{theirs}")),
            (M::GET, format!("/v1/tenants/{theirs}/agents")),
            (M::POST, format!("/v1/tenants/{theirs}/api-keys")),
            (M::DELETE, format!("/v1/tenants/{theirs}")),
            (M::GET, format!("/v1/tenants/{}", uuid_like())),
        ] {
            let (s, body, _) = api
                .call(&partner_key, method.clone(), &path, Some(json!({"name": "x", "role": "admin"})))
                .await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{method} {path}: {body}");
        }
        // Partners are listed by the platform, and a partner admin sees its own.
        let (_, all, _) = api.call(BOOTSTRAP, M::GET, "/v1/partners", None).await;
        assert_eq!(all["items"].as_array().map(Vec::len), Some(2), "{all}");
        let (_, own, _) = api.call(&partner_key, M::GET, "/v1/partners", None).await;
        assert_eq!(own["items"][0]["name"], "Resell Co");
        assert_eq!(own["items"].as_array().map(Vec::len), Some(1));
        let (s, _, _) =
            api.call(&partner_key, M::POST, "/v1/partners", Some(json!({"name": "Mine too"}))).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        // A tenant admin has no business with partners.
        let (_, k, _) = api
            .call(
                BOOTSTRAP,
                M::POST,
                &format!("/v1/tenants/{theirs}/api-keys"),
                Some(json!({"name": "a", "role": "admin"})),
            )
            .await;
        let admin = k["key"].as_str().unwrap();
        let (s, _, _) = api.call(admin, M::GET, "/v1/partners", None).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _, _) =
            api.call(admin, M::POST, "/v1/tenants", Some(json!({"slug": "nope", "name": "N"}))).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }

    /// Stored bytes and API calls per day are decided with each command, exactly.
    async fn daily_calls_and_stored_bytes(api: Api) {
        use Method as M;
        let (_, t, _) = api
            .call(
                BOOTSTRAP,
                M::POST,
                "/v1/tenants",
                Some(json!({"slug": "calls", "name": "C", "limits": {"api_calls_per_day": 4}})),
            )
            .await;
        let t = t["id"].as_str().unwrap().to_owned();
        let mut statuses = Vec::new();
        for i in 0..6 {
            let (s, body, _) = api
                .call(
                    BOOTSTRAP,
                    M::POST,
                    &format!("/v1/tenants/{t}/agents"),
                    Some(json!({"name": format!("a{i}"), "model": "m"})),
                )
                .await;
            statuses.push(s);
            if s == StatusCode::TOO_MANY_REQUESTS {
                assert!(body.to_string().contains("api_calls_per_day"), "{body}");
            }
        }
        assert_eq!(&statuses[..4], &[StatusCode::CREATED; 4]);
        assert_eq!(&statuses[4..], &[StatusCode::TOO_MANY_REQUESTS; 2]);
        let res = api
            .client
            .post(format!("{}/v1/tenants/{t}/tools", api.base))
            .bearer_auth(BOOTSTRAP)
            .json(&json!({"name": "t", "endpoint": "https://x.example"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=86_400).contains(&retry), "until the next UTC midnight: {retry}");
        // Erasure is owed whatever the usage.
        let (s, _, _) =
            api.call(BOOTSTRAP, M::POST, &format!("/v1/tenants/{t}/suspend"), Some(json!({}))).await;
        assert_eq!(s, StatusCode::OK, "the platform's own commands are not the tenant's calls");

        let (_, t, _) = api
            .call(
                BOOTSTRAP,
                M::POST,
                "/v1/tenants",
                Some(json!({"slug": "bytes", "name": "B", "limits": {"storage_bytes": 4000}})),
            )
            .await;
        let t = t["id"].as_str().unwrap().to_owned();
        let (_, agent, _) = api
            .call(
                BOOTSTRAP,
                M::POST,
                &format!("/v1/tenants/{t}/agents"),
                Some(json!({"name": "a", "model": "m"})),
            )
            .await;
        let (_, conv, _) = api
            .call(
                BOOTSTRAP,
                M::POST,
                &format!("/v1/tenants/{t}/conversations"),
                Some(json!({"agent_id": agent["id"]})),
            )
            .await;
        let path = format!("/v1/tenants/{t}/conversations/{}/messages", conv["id"].as_str().unwrap());
        let mut stored = 0;
        let mut refused = None;
        for _ in 0..20 {
            let (s, body, _) = api
                .call(
                    BOOTSTRAP,
                    M::POST,
                    &path,
                    Some(json!({"role": "assistant", "content": "x".repeat(700)})),
                )
                .await;
            if s == StatusCode::CREATED {
                stored += 1;
            } else {
                refused = Some((s, body));
                break;
            }
        }
        let (s, body) = refused.expect("the storage limit is reached");
        assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
        assert!(body.to_string().contains("storage_bytes"), "{body}");
        assert!((3..=5).contains(&stored), "about 4000 bytes of 700-byte messages: {stored}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn daily_calls_and_stored_bytes_are_limited_on_sqlite() {
        daily_calls_and_stored_bytes(Api::start(None).await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn daily_calls_and_stored_bytes_are_limited_on_postgres() {
        let Some(h) = Harness::postgres().await else { return };
        daily_calls_and_stored_bytes(Api::start(Some(h.url.clone())).await).await;
    }

    /// A slug names one tenant even when creates race, and a purge frees it.
    async fn one_tenant_per_slug(api: Api) {
        let mut tasks = Vec::new();
        for i in 0..10 {
            let (client, url) = (api.client.clone(), format!("{}/v1/tenants", api.base));
            tasks.push(tokio::spawn(async move {
                let res = client
                    .post(url)
                    .bearer_auth(BOOTSTRAP)
                    .json(&json!({"slug": "racy", "name": format!("R{i}")}))
                    .send()
                    .await
                    .unwrap();
                let status = res.status();
                (status, res.json::<Value>().await.unwrap())
            }));
        }
        let mut created = Vec::new();
        for t in tasks {
            let (status, body) = t.await.unwrap();
            match status {
                StatusCode::CREATED => created.push(body["id"].as_str().unwrap().to_owned()),
                StatusCode::CONFLICT => {}
                other => panic!("{other}: {body}"),
            }
        }
        assert_eq!(created.len(), 1, "exactly one create of a slug wins");
        // A bad slug claims nothing; a purge frees the slug.
        let (s, _, _) = api
            .call(BOOTSTRAP, Method::POST, "/v1/tenants", Some(json!({"slug": "Bad Slug!", "name": "B"})))
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        let url = format!("/v1/tenants/{}", created[0]);
        let mut purged = false;
        for _ in 0..200 {
            let (s, _, _) = api.call(BOOTSTRAP, Method::DELETE, &url, None).await;
            if s == StatusCode::OK {
                purged = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        assert!(purged);
        let (s, _, _) = api
            .call(BOOTSTRAP, Method::POST, "/v1/tenants", Some(json!({"slug": "racy", "name": "Again"})))
            .await;
        assert_eq!(s, StatusCode::CREATED, "the slug is free after the purge");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn one_tenant_per_slug_on_sqlite() {
        one_tenant_per_slug(Api::start(None).await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn one_tenant_per_slug_on_postgres() {
        let Some(h) = Harness::postgres().await else { return };
        one_tenant_per_slug(Api::start(Some(h.url.clone())).await).await;
    }

    /// A key revoked, or a user removed, through one server stops working on every server:
    /// at once on the one that did it, as soon as the change is heard on the others.
    async fn keys_die_everywhere(one: Api, database_url: Option<String>) {
        use Method as M;
        let two = one.another(database_url).await;
        let (_, t, _) =
            one.call(BOOTSTRAP, M::POST, "/v1/tenants", Some(json!({"slug": "nodes", "name": "N"}))).await;
        let tenant = t["id"].as_str().unwrap().to_owned();
        let keys = format!("/v1/tenants/{tenant}/api-keys");
        let (_, k, _) =
            one.call(BOOTSTRAP, M::POST, &keys, Some(json!({"name": "k", "role": "admin"}))).await;
        let (admin, admin_id) = (k["key"].as_str().unwrap().to_owned(), k["id"].as_str().unwrap().to_owned());
        let (_, u, _) = one
            .call(
                &admin,
                M::POST,
                &format!("/v1/tenants/{tenant}/users"),
                Some(json!({"email": "u@n.example", "role": "user"})),
            )
            .await;
        let user_id = u["id"].as_str().unwrap().to_owned();
        let (s, k, _) = one
            .call(&admin, M::POST, &keys, Some(json!({"name": "u", "role": "user", "user_id": user_id})))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{k}");
        let user_key = k["key"].as_str().unwrap().to_owned();
        let other_admin = {
            let (_, k, _) =
                one.call(BOOTSTRAP, M::POST, &keys, Some(json!({"name": "k2", "role": "admin"}))).await;
            k["key"].as_str().unwrap().to_owned()
        };
        let conversations = format!("/v1/tenants/{tenant}/conversations");
        // Both servers have seen both keys work.
        for api in [&one, &two] {
            for key in [&admin, &user_key] {
                let (s, body, _) = api.call(key, M::GET, &conversations, None).await;
                assert_eq!(s, StatusCode::OK, "{body}");
            }
        }
        // The status the key gets once the change is heard, or the last one while it is not.
        let refused_on = |api: &Api, key: String| {
            let (client, url) = (api.client.clone(), format!("{}{conversations}", api.base));
            async move {
                let mut last = None;
                // Bounded: a change not heard within it fails the test.
                for _ in 0..500 {
                    let res = client.get(&url).bearer_auth(&key).send().await.unwrap();
                    let status = res.status();
                    last = Some((status, res.text().await.unwrap()));
                    if status == StatusCode::UNAUTHORIZED {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                last.unwrap()
            }
        };
        let (s, _, _) = two.call(&other_admin, M::DELETE, &format!("{keys}/{admin_id}"), None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(two.call(&admin, M::GET, &conversations, None).await.0, StatusCode::UNAUTHORIZED);
        let (s, body) = refused_on(&one, admin.clone()).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "the revoked key still works on the other server: {body}");

        let (s, _, _) =
            two.call(&other_admin, M::DELETE, &format!("/v1/tenants/{tenant}/users/{user_id}"), None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(two.call(&user_key, M::GET, &conversations, None).await.0, StatusCode::UNAUTHORIZED);
        let (s, body) = refused_on(&one, user_key.clone()).await;
        assert_eq!(
            s,
            StatusCode::UNAUTHORIZED,
            "a removed user's key still works on the other server: {body}"
        );
        // The keys of the tenant that did not change still work on both.
        for api in [&one, &two] {
            assert_eq!(api.call(&other_admin, M::GET, &conversations, None).await.0, StatusCode::OK);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn keys_revoked_through_one_server_die_on_every_server_on_sqlite() {
        keys_die_everywhere(Api::start(None).await, None).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn keys_revoked_through_one_server_die_on_every_server_on_postgres() {
        let Some(h) = Harness::postgres().await else { return };
        keys_die_everywhere(Api::start(Some(h.url.clone())).await, Some(h.url.clone())).await;
    }

    fn uuid_like() -> String {
        tenantry_domain::TenantId::new().to_string()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn partner_admins_reach_their_partners_tenants_only_on_sqlite() {
        partners(Api::start(None).await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn partner_admins_reach_their_partners_tenants_only_on_postgres() {
        let Some(h) = Harness::postgres().await else { return };
        partners(Api::start(Some(h.url.clone())).await).await;
    }
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
                || (method == "post" && !path.ends_with("/resume") && !path.ends_with("/erase"));
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
