//! Compliance end to end: tenant purge over HTTP and the CLI's state machine, on SQLite and
//! PostgreSQL. A purge leaves other tenants byte for byte as they were, finds no trace of
//! the purged tenant's data in any table or file, and resumes from any step.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use tenantry::Application;
use tenantry::compliance::{PurgeReport, PurgeStep, Purger};
use tenantry_domain::{TenantContext, TenantId};
use tenantry_store::testing::Harness;

mod support;

use support::{BOOTSTRAP, dump, server_settings};

struct Api {
    base: String,
    client: Client,
    url: String,
    app: tenantry::http::AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// Flags that open the same store from the command line.
    store_flags: Vec<String>,
    _dir: tempfile::TempDir,
    _pg: Option<Harness>,
}

impl Api {
    async fn start(pg: Option<Harness>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database_url = pg.as_ref().map(|h| h.url.clone());
        let settings = server_settings(dir.path(), database_url.clone(), None);
        let url = settings.store.database_url();
        let app = Application::build(&settings).await.unwrap();
        let base = format!("http://127.0.0.1:{}", app.port());
        let state = app.state().clone();
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run_until(async {
            let _ = rx.await;
        }));
        let mut store_flags = vec![
            "--data-dir".to_owned(),
            dir.path().join("data").display().to_string(),
            "--master-key-file".to_owned(),
            dir.path().join("master.key").display().to_string(),
        ];
        if let Some(url) = &database_url {
            store_flags.extend(["--database-url".to_owned(), url.clone()]);
        }
        Self {
            base,
            client: Client::new(),
            url,
            app: state,
            stop: Some(stop),
            store_flags,
            _dir: dir,
            _pg: pg,
        }
    }

    async fn call(&self, key: &str, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base)).bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        assert!(!status.is_server_error(), "{path}: {status}");
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, key: &str, path: &str, body: Value) -> Value {
        let (s, v) = self.call(key, Method::POST, path, Some(body)).await;
        assert!(s.is_success(), "{path}: {s} {v}");
        v
    }

    /// A tenant with every kind of data, each carrying `mark`; returns its id and the
    /// position of its last write.
    async fn seed(&self, mark: &str) -> (String, u64) {
        let t = self
            .post(
                BOOTSTRAP,
                "/v1/tenants",
                json!({"slug": format!("s{mark}"), "name": format!("Org {mark}"),
                       "settings": {"system_prompt": format!("prompt {mark}")}}),
            )
            .await;
        let t = t["id"].as_str().unwrap().to_owned();
        let key = self
            .post(
                BOOTSTRAP,
                &format!("/v1/tenants/{t}/api-keys"),
                json!({"name": format!("key {mark}"), "role": "admin"}),
            )
            .await;
        let key = key["key"].as_str().unwrap().to_owned();
        let user = self
            .post(
                &key,
                &format!("/v1/tenants/{t}/users"),
                json!({"email": format!("{mark}@example.com"), "role": "user"}),
            )
            .await;
        let user = user["id"].as_str().unwrap();
        let tool = self
            .post(
                &key,
                &format!("/v1/tenants/{t}/tools"),
                json!({"name": format!("tool{mark}"), "description": format!("finds {mark}"),
                       "endpoint": format!("https://{mark}.example/x"),
                       "parameters": {"type": "object", "properties": {mark: {"type": "string"}}}}),
            )
            .await;
        let agent = self
            .post(
                &key,
                &format!("/v1/tenants/{t}/agents"),
                json!({"name": format!("agent {mark}"), "model": format!("model-{mark}"),
                       "system_prompt": format!("you are {mark}"), "tool_ids": [tool["id"]]}),
            )
            .await;
        // A knowledge-base document: body beside the log, chunks and the search index.
        self.post(
            &key,
            &format!("/v1/tenants/{t}/documents"),
            json!({"title": format!("handbook {mark}"), "metadata": {"source": mark},
                   "body": format!("The {mark} handbook.\n\n{}", format!("{mark} policy line. ").repeat(200))}),
        )
        .await;
        let conv = self
            .post(
                &key,
                &format!("/v1/tenants/{t}/conversations"),
                json!({"agent_id": agent["id"], "user_id": user, "title": format!("about {mark}")}),
            )
            .await;
        let conv = conv["id"].as_str().unwrap();
        for i in 0..3 {
            self.post(
                &key,
                &format!("/v1/tenants/{t}/conversations/{conv}/messages"),
                json!({"role": "user", "content": format!("message {i} {mark}"), "model": format!("model-{mark}"),
                       "usage": {"prompt_tokens": 3, "completion_tokens": 4}}),
            )
            .await;
        }
        let last = self
            .post(
                &key,
                &format!("/v1/tenants/{t}/usage"),
                json!({"model": format!("model-{mark}"), "kind": "chat", "prompt_tokens": 5,
                       "completion_tokens": 6, "request_id": format!("req-{mark}")}),
            )
            .await;
        // Wait until every projection has it, so the read models hold the mark too. (With the
        // tenant's own key: a read by the operator would add a `data.read` to the log.)
        let pos = last["position"].as_u64().unwrap();
        let res = self
            .client
            .get(format!("{}/v1/tenants/{t}/audit", self.base))
            .bearer_auth(&key)
            .header("tenantry-min-position", pos.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        self.app.projections.run_once().await.unwrap();
        (t, pos)
    }

    /// Ask for the purge until it reports done (bounded).
    async fn purge(&self, tenant: &str) -> Value {
        let path = format!("/v1/tenants/{tenant}");
        let (s, first) = self.call(BOOTSTRAP, Method::DELETE, &path, None).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{first}");
        for _ in 0..200 {
            let (s, report) = self.call(BOOTSTRAP, Method::DELETE, &path, None).await;
            if s == StatusCode::OK {
                assert_eq!(report["step"], "done");
                return report;
            }
            assert_eq!(s, StatusCode::ACCEPTED);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the purge of {tenant} did not finish in 10 s");
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The rows that name a tenant: its id as text, or as the bytes of a UUID column.
fn rows_of(dump: &BTreeMap<String, Vec<String>>, tenant: &str) -> BTreeMap<String, Vec<String>> {
    let simple = tenant.replace('-', "").to_lowercase();
    dump.iter()
        .map(|(table, rows)| {
            let mine = rows
                .iter()
                .filter(|r| {
                    let lower = r.to_lowercase();
                    lower.contains(tenant) || lower.contains(&simple)
                })
                .cloned()
                .collect();
            (table.clone(), mine)
        })
        .collect()
}

/// Where `mark` appears: as text, or hex-encoded inside a byte column.
fn traces(dump: &BTreeMap<String, Vec<String>>, mark: &str) -> Vec<String> {
    let hex_mark = hex::encode(mark.as_bytes());
    dump.iter()
        .flat_map(|(table, rows)| rows.iter().map(move |r| (table, r)))
        .filter(|(_, r)| {
            let lower = r.to_lowercase();
            lower.contains(mark) || lower.contains(&hex_mark)
        })
        .map(|(table, r)| format!("{table}: {}", r.chars().take(200).collect::<String>()))
        .collect()
}

fn file_contains(path: &std::path::Path, needle: &[u8]) -> bool {
    std::fs::read(path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
}

async fn purge_leaves_no_trace_and_the_others_untouched(pg: Option<Harness>) {
    let api = Api::start(pg).await;
    let (a, _) = api.seed("zqcanaryalpha").await;
    let (b, _) = api.seed("zqkeepbravo").await;
    let (c, _) = api.seed("zqkeepcharlie").await;

    let before = dump(&api.url).await;
    assert!(traces(&before, "zqcanaryalpha").len() > 10, "the scan sees the canary where it lives");
    // Documents included: the listing, the chunks, and (on SQLite) the search index's own rows.
    let tables: BTreeSet<String> = traces(&before, "zqcanaryalpha")
        .iter()
        .filter_map(|t| t.split(':').next().map(str::to_owned))
        .collect();
    for table in ["documents", "document_chunks"] {
        assert!(tables.contains(table), "the canary is in {table} before the purge: {tables:?}");
    }
    let report = api.purge(&a).await;
    assert_eq!(report["tenant_id"], a);
    assert!(report["events_deleted"].as_u64().unwrap() >= 10, "{report}");
    assert!(report["rows_deleted"].as_u64().unwrap() >= 10, "{report}");
    let after = dump(&api.url).await;

    // Nothing of A anywhere in the database, in any column.
    assert_eq!(traces(&after, "zqcanaryalpha"), Vec::<String>::new());
    // B and C, byte for byte as they were.
    for other in [&b, &c] {
        assert_eq!(rows_of(&before, other), rows_of(&after, other), "tenant {other} changed");
    }
    // The SQLite file and its WAL, after the purge's checkpoint: no canary either.
    if api.url.starts_with("sqlite") {
        let path = std::path::PathBuf::from(api.url.trim_start_matches("sqlite://"));
        for file in [path.clone(), path.with_extension("db-wal")] {
            assert!(!file_contains(&file, b"zqcanaryalpha"), "{} holds the canary", file.display());
        }
        assert!(
            file_contains(&path, b"zqkeepbravo")
                || file_contains(&path.with_extension("db-wal"), b"zqkeepbravo")
        );
    }

    // PostgreSQL: the purge's last step vacuumed the tables that held the tenant's rows.
    if !api.url.starts_with("sqlite") {
        let pool = sqlx::PgPool::connect(&api.url).await.unwrap();
        let mut vacuumed = Vec::new();
        for _ in 0..50 {
            vacuumed = sqlx::query_as::<_, (String,)>(
                "SELECT relname::text FROM pg_stat_user_tables WHERE vacuum_count > 0 OR autovacuum_count > 0",
            )
            .fetch_all(&pool)
            .await
            .unwrap()
            .into_iter()
            .map(|(t,)| t)
            .collect();
            if ["events", "conv_messages", "documents", "document_chunks"]
                .iter()
                .all(|t| vacuumed.iter().any(|v| v == t))
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for table in ["events", "blobs", "conv_messages", "dir_users", "documents", "document_chunks"] {
            assert!(vacuumed.iter().any(|v| v == table), "{table} was not vacuumed: {vacuumed:?}");
        }
    }

    // A is gone on every route; its key no longer authenticates; B works on.
    let (s, _) = api.call(BOOTSTRAP, Method::GET, &format!("/v1/tenants/{a}"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = api.call(BOOTSTRAP, Method::GET, &format!("/v1/tenants/{a}/export"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = api
        .call(
            BOOTSTRAP,
            Method::POST,
            &format!("/v1/tenants/{a}/agents"),
            Some(json!({"name": "x", "model": "m"})),
        )
        .await;
    assert!(s == StatusCode::NOT_FOUND || s == StatusCode::FORBIDDEN, "{s}");
    let (s, listed) = api.call(BOOTSTRAP, Method::GET, "/v1/tenants", None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(!listed.to_string().contains(&a));
    let (s, _) = api.call(BOOTSTRAP, Method::GET, &format!("/v1/tenants/{b}/agents"), None).await;
    assert_eq!(s, StatusCode::OK);

    // Purging again reports it as done; an unknown tenant is 404.
    let (s, again) = api.call(BOOTSTRAP, Method::DELETE, &format!("/v1/tenants/{a}"), None).await;
    assert_eq!((s, &again["step"]), (StatusCode::OK, &json!("done")));
    assert_eq!(again["events_deleted"], report["events_deleted"]);
    let (s, _) = api.call(BOOTSTRAP, Method::DELETE, &format!("/v1/tenants/{}", TenantId::new()), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // The tombstone: one `tenant.purged` in the platform log, with counts and no data.
    let platform = TenantContext::system(TenantId::PLATFORM);
    let log: Vec<_> =
        futures::TryStreamExt::try_collect::<Vec<_>>(api.app.store.read_log(&platform, 0)).await.unwrap();
    let tombstones: Vec<_> = log.iter().filter(|e| e.event_type == "tenant.purged").collect();
    assert_eq!(tombstones.len(), 1);
    let text = serde_json::to_string(&tombstones[0].event).unwrap();
    assert!(text.contains(&a) && !text.contains("zqcanaryalpha"), "{text}");
}

async fn only_the_platform_operator_purges(pg: Option<Harness>) {
    let api = Api::start(pg).await;
    let (a, _) = api.seed("zqowner").await;
    let key = api
        .post(BOOTSTRAP, &format!("/v1/tenants/{a}/api-keys"), json!({"name": "k", "role": "admin"}))
        .await;
    let key = key["key"].as_str().unwrap();
    let (s, _) = api.call(key, Method::DELETE, &format!("/v1/tenants/{a}"), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "a tenant admin may not purge its own tenant");
    let (s, _) = api.call(BOOTSTRAP, Method::GET, &format!("/v1/tenants/{a}"), None).await;
    assert_eq!(s, StatusCode::OK);
}

/// A purge interrupted before each of its steps resumes and ends exactly as an
/// uninterrupted one: no rows left, one tombstone, the same counts.
async fn an_interrupted_purge_resumes_from_every_step(pg: Option<Harness>) {
    let api = Api::start(pg).await;
    let purger = Purger::new(api.app.projections.clone(), None, None);
    let steps = [
        PurgeStep::Requested,
        PurgeStep::KeyDestroyed,
        PurgeStep::LogDeleted,
        PurgeStep::ReadModelsDeleted,
        PurgeStep::BrokerPurged,
    ];
    for (i, stop_at) in steps.into_iter().enumerate() {
        let mark = format!("zqstep{i}x");
        let (t, head) = api.seed(&mark).await;
        let tenant: TenantId = t.parse().unwrap();
        purger.request(&TenantContext::system(tenant), tenant).await.unwrap();
        // The "process" dies as it reaches `stop_at`, before doing it.
        let p = purger.clone();
        let killed = tokio::spawn(async move {
            let die = move |r: &PurgeReport| assert!(r.step != stop_at, "killed at {}", r.step.as_str());
            p.run(tenant, &die).await
        })
        .await;
        assert!(killed.is_err(), "the run died at {stop_at:?}");
        assert_eq!(purger.status(tenant).await.unwrap().unwrap().step, stop_at);
        let report = purger.run(tenant, &|_| {}).await.unwrap();
        assert_eq!(report.step, PurgeStep::Done);
        assert_eq!(report.events_deleted, head, "the count survives the interruption");
        assert!(report.rows_deleted > 0);
        // Running it again is harmless.
        assert_eq!(purger.run(tenant, &|_| {}).await.unwrap(), report);
        assert_eq!(traces(&dump(&api.url).await, &mark), Vec::<String>::new(), "step {stop_at:?}");
    }
    let platform = TenantContext::system(TenantId::PLATFORM);
    let log: Vec<_> =
        futures::TryStreamExt::try_collect::<Vec<_>>(api.app.store.read_log(&platform, 0)).await.unwrap();
    let tombstones = log.iter().filter(|e| e.event_type == "tenant.purged").count();
    assert_eq!(tombstones, steps.len(), "one tombstone per purged tenant");
    let released = log.iter().filter(|e| e.event_type == "slug.released").count();
    assert_eq!(released, steps.len(), "each slug released once");
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(None).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(h) = super::Harness::postgres().await else { return };
                    super::$name(Some(h)).await;
                }
            )*
        }
    };
}

on_both!(
    purge_leaves_no_trace_and_the_others_untouched,
    only_the_platform_operator_purges,
    an_interrupted_purge_resumes_from_every_step,
    an_export_replays_as_of_any_position,
    erasing_a_person_leaves_the_rest_of_the_tenant_intact,
);

async fn an_export_replays_as_of_any_position(pg: Option<Harness>) {
    use tenantry::cli::replay::{Cut, from_export, summary};
    let api = Api::start(pg).await;
    let (t, head) = api.seed("zqreplay").await;
    let res = api
        .client
        .get(format!("{}/v1/tenants/{t}/export", api.base))
        .bearer_auth(BOOTSTRAP)
        .send()
        .await
        .unwrap();
    let bytes = res.bytes().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("export.ndjson");
    std::fs::write(&file, &bytes).unwrap();
    let tenant: TenantId = t.parse().unwrap();

    // The whole export: the read models as they stand live. (The operator's export is a
    // read of the tenant's data, recorded in its log before the export: projected first.)
    api.app.projections.run_once().await.unwrap();
    let live = summary(&api.app.projections, tenant).await.unwrap();
    let full = from_export(&file, &dir.path().join("full"), Cut::default()).await.unwrap();
    let exported = head + 1;
    assert!(
        full.starts_with(&format!("tenant {t}: replayed {exported} of {exported} verified events")),
        "{full}"
    );
    assert!(full.ends_with(&live), "replayed:\n{full}\nlive:\n{live}");
    assert!(live.contains("agents:        1") && live.contains("model-zqreplay"), "{live}");

    // As of the position before the last usage record: one fewer audit entry, less usage.
    let before = from_export(&file, &dir.path().join("before"), Cut { position: Some(head - 1), time: None })
        .await
        .unwrap();
    assert!(before.contains(&format!("replayed {} of {exported}", head - 1)), "{before}");
    assert!(before.contains(&format!("audit entries: {}", head - 1)), "{before}");
    assert_ne!(before.lines().last(), full.lines().last(), "the last usage record is not in it");
    // As of a moment before the tenant existed: nothing.
    let epoch = chrono::DateTime::UNIX_EPOCH;
    let nothing = from_export(&file, &dir.path().join("epoch"), Cut { position: None, time: Some(epoch) })
        .await
        .unwrap();
    assert!(
        nothing.contains(&format!("replayed 0 of {exported}")) && nothing.contains("agents:        0"),
        "{nothing}"
    );

    // Bad files: a clear error naming the line, nothing replayed as if it were whole.
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let cut_short: String = text.lines().take(5).map(|l| format!("{l}\n")).collect();
    std::fs::write(&file, cut_short).unwrap();
    let err = from_export(&file, &dir.path().join("short"), Cut::default()).await.unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
    std::fs::write(&file, "this is not an export\n").unwrap();
    let err = from_export(&file, &dir.path().join("junk"), Cut::default()).await.unwrap_err();
    assert!(err.to_string().contains("line 1"), "{err}");
    let err = from_export(&file, &dir.path().join("full"), Cut::default()).await.unwrap_err();
    assert!(err.to_string().contains("already holds a database"), "{err}");
}

async fn erasing_a_person_leaves_the_rest_of_the_tenant_intact(pg: Option<Harness>) {
    let api = Api::start(pg).await;
    let t = api.post(BOOTSTRAP, "/v1/tenants", json!({"slug": "erasure", "name": "Erasure"})).await;
    let t = t["id"].as_str().unwrap().to_owned();
    let key = api
        .post(BOOTSTRAP, &format!("/v1/tenants/{t}/api-keys"), json!({"name": "k", "role": "admin"}))
        .await;
    let key = key["key"].as_str().unwrap().to_owned();
    let agent = api.post(&key, &format!("/v1/tenants/{t}/agents"), json!({"name": "a", "model": "m"})).await;
    let mut people = Vec::new();
    for name in ["zqannerase", "zqbobkeep"] {
        let user = api
            .post(
                &key,
                &format!("/v1/tenants/{t}/users"),
                json!({"email": format!("{name}@example.com"), "role": "user"}),
            )
            .await;
        let user = user["id"].as_str().unwrap().to_owned();
        let conv = api
            .post(
                &key,
                &format!("/v1/tenants/{t}/conversations"),
                json!({"agent_id": agent["id"], "user_id": user, "title": format!("title {name}")}),
            )
            .await;
        let conv = conv["id"].as_str().unwrap().to_owned();
        let path = format!("/v1/tenants/{t}/conversations/{conv}/messages");
        api.post(&key, &path, json!({"role": "user", "content": format!("I am {name}")})).await;
        api.post(
            &key,
            &path,
            json!({"role": "assistant", "content": "the agent answers", "model": "m",
                   "usage": {"prompt_tokens": 10, "completion_tokens": 20}}),
        )
        .await;
        people.push((user, conv));
    }
    let (ann, ann_conv) = people[0].clone();
    let (bob, bob_conv) = people[1].clone();
    let get = |path: String| {
        let api = &api;
        async move {
            let res = api
                .client
                .get(format!("{}{path}", api.base))
                .bearer_auth(BOOTSTRAP)
                .header("tenantry-min-position", "1")
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK, "{path}");
            res.json::<Value>().await.unwrap()
        }
    };
    api.app.projections.run_once().await.unwrap();
    let usage_before = get(format!("/v1/tenants/{t}/usage")).await;

    // Only an admin of the tenant erases; a user key and another tenant's key may not.
    let user_key = api
        .post(
            &key,
            &format!("/v1/tenants/{t}/api-keys"),
            json!({"name": "u", "role": "user", "user_id": bob}),
        )
        .await;
    let (s, _) = api
        .call(
            user_key["key"].as_str().unwrap(),
            Method::POST,
            &format!("/v1/tenants/{t}/users/{ann}/erase"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) =
        api.call(&key, Method::POST, &format!("/v1/tenants/{t}/users/{}/erase", TenantId::new()), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let ann_key = api
        .post(
            &key,
            &format!("/v1/tenants/{t}/api-keys"),
            json!({"name": "ann", "role": "user", "user_id": ann}),
        )
        .await;
    let ann_key = ann_key["key"].as_str().unwrap().to_owned();
    let (s, _) = api.call(&ann_key, Method::GET, &format!("/v1/tenants/{t}/conversations"), None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, erased) = api.call(&key, Method::POST, &format!("/v1/tenants/{t}/users/{ann}/erase"), None).await;
    assert_eq!(s, StatusCode::OK, "{erased}");
    let (s, _) = api.call(&key, Method::POST, &format!("/v1/tenants/{t}/users/{ann}/erase"), None).await;
    assert_eq!(s, StatusCode::OK, "erasing twice is harmless");
    api.app.projections.run_once().await.unwrap();
    // Her key went with her.
    let (s, _) = api.call(&ann_key, Method::GET, &format!("/v1/tenants/{t}/conversations"), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let check = |label: &'static str| {
        let (t, ann, ann_conv, bob, bob_conv): (String, String, String, String, String) =
            (t.clone(), ann.clone(), ann_conv.clone(), bob.clone(), bob_conv.clone());
        let get = &get;
        async move {
            // An erased person is removed from the directory (their row keeps `[erased]`).
            let users = get(format!("/v1/tenants/{t}/users")).await.to_string();
            assert!(!users.contains(&ann) && users.contains(&bob), "{label}: {users}");
            let user = get(format!("/v1/tenants/{t}/users/{bob}")).await;
            assert_eq!(user["email"], "zqbobkeep@example.com", "{label}");
            let conv = get(format!("/v1/tenants/{t}/conversations/{ann_conv}")).await;
            assert_eq!(conv["title"], "[erased]", "{label}: {conv}");
            let conv = get(format!("/v1/tenants/{t}/conversations/{bob_conv}")).await;
            assert_eq!(conv["title"], "title zqbobkeep", "{label}");
            let messages =
                get(format!("/v1/tenants/{t}/conversations/{ann_conv}/messages")).await.to_string();
            assert!(
                messages.contains("[erased]") && messages.contains("the agent answers"),
                "{label}: {messages}"
            );
            assert!(!messages.contains("zqannerase"), "{label}: {messages}");
            let messages =
                get(format!("/v1/tenants/{t}/conversations/{bob_conv}/messages")).await.to_string();
            assert!(messages.contains("I am zqbobkeep"), "{label}");
        }
    };
    check("live").await;
    let usage_after = get(format!("/v1/tenants/{t}/usage")).await;
    assert_eq!(usage_before["totals"], usage_after["totals"], "usage totals stay");
    assert_eq!(usage_before, usage_after);

    // A rebuild from the log shows the same: the old events decode to `[erased]`.
    api.app.projections.rebuild(None, Some(t.parse().unwrap()), &tenantry_projections::Silent).await.unwrap();
    check("rebuilt").await;
    // The chain still verifies, and nothing of ann is left in any table.
    let ctx = TenantContext::system(t.parse().unwrap());
    api.app.store.verify_chain(&ctx, 1, None).await.unwrap();
    assert_eq!(traces(&dump(&api.url).await, "zqannerase"), Vec::<String>::new());
    // The kept person's values are in the read models too, but only sealed: what the API
    // shows of bob (above) is in no row in plaintext either.
    assert_eq!(traces(&dump(&api.url).await, "zqbobkeep"), Vec::<String>::new());
    // The export says `[erased]` where ann's data was, and verifies.
    let res =
        api.client.get(format!("{}/v1/tenants/{t}/export", api.base)).bearer_auth(&key).send().await.unwrap();
    let bytes = res.bytes().await.unwrap();
    tenantry_store::export::verify(&bytes[..], |_, _| Ok(())).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(!text.contains("zqannerase") && text.contains("[erased]") && text.contains("zqbobkeep"));
}

/// Run the binary; returns (success, stdout, stderr).
fn tenantry(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tenantry"))
        .args(args)
        .env("TENANTRY_LOG", "warn")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn the_command_line_exports_verifies_replays_and_purges(pg: Option<Harness>) {
    let api = Api::start(pg).await;
    let (t, head) = api.seed("zqcli").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.ndjson");
    let file_arg = file.display().to_string();
    let flags: Vec<&str> = api.store_flags.iter().map(String::as_str).collect();
    let with = |args: &[&str]| -> Vec<String> { args.iter().chain(&flags).map(|s| s.to_string()).collect() };
    let run = |args: Vec<String>| tenantry(&args.iter().map(String::as_str).collect::<Vec<_>>());

    let (ok, _, err) = run(with(&["export", "--tenant", &t, "-o", &file_arg]));
    assert!(ok, "{err}");
    assert!(file.exists() && !dir.path().join("t.ndjson.partial").exists(), "renamed when complete");
    let (ok, out, err) = tenantry(&["verify", &file_arg]);
    assert!(ok, "{err}");
    assert!(out.starts_with(&format!("OK: tenant {t}, {head} events")), "{out}");

    let into = dir.path().join("replayed").display().to_string();
    let (ok, out, err) =
        tenantry(&["replay", "--from-export", &file_arg, "--until-position", "3", "--into", &into]);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("replayed 3 of {head}")), "{out}");

    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.len() / 2;
    bytes[at] = if bytes[at] == b'7' { b'8' } else { b'7' };
    std::fs::write(&file, bytes).unwrap();
    let (ok, _, err) = tenantry(&["verify", &file_arg]);
    assert!(!ok && err.contains("FAILED at position"), "{err}");

    let unknown = TenantId::new().to_string();
    let (ok, _, err) = run(with(&["export", "--tenant", &unknown]));
    assert!(!ok && err.contains("has no events"), "{err}");
    let (ok, _, err) = run(with(&["purge", "--tenant", &unknown]));
    assert!(!ok && err.contains("does not exist"), "{err}");

    // On a terminal the slug is asked for first: a wrong one purges nothing.
    let mut line =
        vec![env!("CARGO_BIN_EXE_tenantry").to_owned(), "purge".into(), "--tenant".into(), t.clone()];
    line.extend(flags.iter().map(|f| f.to_string()));
    let typed = |answer: &str| {
        let mut child = std::process::Command::new("script")
            .args(["-qec", &line.join(" "), "/dev/null"])
            .env("TENANTRY_LOG", "warn")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(format!("{answer}\n").as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (ok, out) = typed("not-the-slug");
    assert!(!ok && out.contains("Type its slug") && out.contains("nothing was purged"), "{out}");
    let (ok, out, _) = run(with(&["export", "--tenant", &t]));
    assert!(ok && !out.is_empty(), "still there");
    let (ok, out, err) = run(with(&["purge", "--tenant", &t, "--yes"]));
    assert!(ok, "{err}");
    assert!(out.starts_with(&format!("purged: tenant {t}, {head} events")), "{out}");
    let (ok, out, _) = run(with(&["purge", "--tenant", &t]));
    assert!(ok && out.starts_with("already purged"), "{out}");

    // Only `serve` makes a store: a mistyped data directory is an error naming it, and
    // nothing is created there.
    let typo = dir.path().join("tenantry-dtaa");
    let typo_arg = typo.display().to_string();
    for args in
        [vec!["status", "--data-dir", &typo_arg], vec!["export", "--tenant", &t, "--data-dir", &typo_arg]]
    {
        let (ok, _, err) = tenantry(&args);
        assert!(!ok && err.contains(&typo_arg), "{args:?}: {err}");
        assert!(!typo.exists(), "{args:?} made {typo_arg}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_exports_verifies_replays_and_purges_on_sqlite() {
    the_command_line_exports_verifies_replays_and_purges(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_exports_verifies_replays_and_purges_on_postgres() {
    let Some(h) = Harness::postgres().await else { return };
    the_command_line_exports_verifies_replays_and_purges(Some(h)).await;
}

/// The files among `files` that hold `needle`.
fn files_holding(files: &[std::path::PathBuf], needle: &str) -> Vec<String> {
    files.iter().filter(|f| file_contains(f, needle.as_bytes())).map(|f| f.display().to_string()).collect()
}

/// The heap files of every relation of the database at `url` (every segment), after a
/// checkpoint has written them out; and the server's WAL segments.
async fn postgres_files(url: &str) -> (Vec<std::path::PathBuf>, Vec<std::path::PathBuf>) {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    sqlx::query("CHECKPOINT").execute(&pool).await.unwrap();
    let (data,): (String,) = sqlx::query_as("SHOW data_directory").fetch_one(&pool).await.unwrap();
    let relations: Vec<(Option<String>,)> = sqlx::query_as(
        "SELECT pg_relation_filepath(oid) FROM pg_class WHERE relkind IN ('r', 'i', 't', 'm')",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    let data = std::path::PathBuf::from(data);
    let mut heap = Vec::new();
    for path in relations.into_iter().filter_map(|(p,)| p) {
        let main = data.join(&path);
        for segment in 0.. {
            let file = if segment == 0 { main.clone() } else { data.join(format!("{path}.{segment}")) };
            if !file.exists() {
                break;
            }
            heap.push(file);
        }
    }
    let wal = std::fs::read_dir(data.join("pg_wal"))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    (heap, wal)
}

/// On PostgreSQL, the personal and secret text of read models (a person's email, a tool's
/// description, the tenant's and an agent's system prompts, a conversation's title and
/// messages) is written
/// sealed: the WAL never holds it in plaintext, and after a purge and its vacuum no heap
/// file of the database does either. A value that is not sealed (an agent's name) is found
/// in both, so the scan reads the right files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_values_never_reach_the_heap_or_the_wal_in_plaintext_on_postgres() {
    let Some(h) = Harness::postgres().await else { return };
    let api = Api::start(Some(h)).await;
    let canary = format!("zqsealed{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let control = format!("zqplain{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let t = api
        .post(
            BOOTSTRAP,
            "/v1/tenants",
            json!({"slug": "sealed-org", "name": "Sealed Org", "settings": {"system_prompt": format!("be {canary}")}}),
        )
        .await;
    let t = t["id"].as_str().unwrap().to_owned();
    let key = api
        .post(BOOTSTRAP, &format!("/v1/tenants/{t}/api-keys"), json!({"name": "k", "role": "admin"}))
        .await;
    let key = key["key"].as_str().unwrap().to_owned();
    api.post(
        &key,
        &format!("/v1/tenants/{t}/users"),
        json!({"email": format!("{canary}@example.com"), "role": "user"}),
    )
    .await;
    let tool = api
        .post(
            &key,
            &format!("/v1/tenants/{t}/tools"),
            json!({"name": "lookup", "description": format!("finds {canary}"), "endpoint": "https://tools.example/x"}),
        )
        .await;
    let agent = api
        .post(
            &key,
            &format!("/v1/tenants/{t}/agents"),
            json!({"name": format!("agent {control}"), "model": "m-1", "system_prompt": format!("you are {canary}"),
                   "tool_ids": [tool["id"]]}),
        )
        .await;
    let conv = api
        .post(
            &key,
            &format!("/v1/tenants/{t}/conversations"),
            json!({"agent_id": agent["id"], "title": format!("title {canary}")}),
        )
        .await;
    let messages = format!("/v1/tenants/{t}/conversations/{}/messages", conv["id"].as_str().unwrap());
    api.post(&key, &messages, json!({"role": "user", "content": format!("says {canary}")})).await;
    // The read models hold all of it (the API reads it back from them).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, page) = api.call(&key, Method::GET, &messages, None).await;
        if page.to_string().contains(&format!("says {canary}")) {
            break;
        }
        assert!(Instant::now() < deadline, "the message never reached the read model");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (heap, wal) = postgres_files(&api.url).await;
    assert!(!files_holding(&heap, &control).is_empty(), "the scan finds an unsealed value in the heap");
    assert!(!files_holding(&wal, &control).is_empty(), "and in the WAL");
    assert_eq!(
        files_holding(&heap, &canary),
        Vec::<String>::new(),
        "a sealed value in plaintext in the heap"
    );
    assert_eq!(files_holding(&wal, &canary), Vec::<String>::new(), "a sealed value in plaintext in the WAL");

    api.purge(&t).await;
    let (heap, wal) = postgres_files(&api.url).await;
    assert_eq!(files_holding(&heap, &canary), Vec::<String>::new(), "after the purge and its vacuum");
    assert_eq!(files_holding(&wal, &canary), Vec::<String>::new(), "ever, in the WAL");
}

/// Row-level security on PostgreSQL: as the server's tenant role, a session that names no
/// tenant sees no row of any tenant table; naming tenant A it sees all of A's rows and none of
/// B's, on every table; and it cannot write a row of B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_level_security_shows_a_session_its_own_tenant_only_on_postgres() {
    let Some(h) = Harness::postgres().await else { return };
    let api = Api::start(Some(h)).await;
    let (a, _) = api.seed("zqrlsalpha").await;
    let (b, _) = api.seed("zqrlsbravo").await;
    let pool = sqlx::PgPool::connect(&api.url).await.unwrap();
    let tables: Vec<(String,)> = sqlx::query_as(
        "SELECT c.table_name::text FROM information_schema.columns c
         JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
         WHERE c.column_name = 'tenant_id' AND c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
         ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(tables.len() > 25, "{tables:?}");
    let mut seen_a = 0;
    for (table,) in &tables {
        // As the owner (a superuser here): what is really there.
        let count = |tenant: &str| format!("SELECT count(*) FROM {table} WHERE tenant_id::text = '{tenant}'");
        let (a_rows,): (i64,) = sqlx::query_as(&count(&a)).fetch_one(&pool).await.unwrap();
        let (b_rows,): (i64,) = sqlx::query_as(&count(&b)).fetch_one(&pool).await.unwrap();

        let mut tx = pool.begin().await.unwrap();
        sqlx::query("SET LOCAL ROLE tenantry_app").execute(&mut *tx).await.unwrap();
        let (none,): (i64,) =
            sqlx::query_as(&format!("SELECT count(*) FROM {table}")).fetch_one(&mut *tx).await.unwrap();
        assert_eq!(none, 0, "{table}: rows seen without a tenant named");
        sqlx::query("SELECT set_config('tenantry.tenant_id', $1, true)")
            .bind(&a)
            .execute(&mut *tx)
            .await
            .unwrap();
        let (all,): (i64,) =
            sqlx::query_as(&format!("SELECT count(*) FROM {table}")).fetch_one(&mut *tx).await.unwrap();
        let (theirs,): (i64,) = sqlx::query_as(&count(&b)).fetch_one(&mut *tx).await.unwrap();
        assert_eq!(
            (all, theirs),
            (a_rows, 0),
            "{table}: A sees {all} of its {a_rows} rows, {theirs} of B's {b_rows}"
        );
        seen_a += usize::from(a_rows > 0 && b_rows > 0);
        tx.rollback().await.unwrap();
    }
    assert!(seen_a >= 15, "both tenants have rows in {seen_a} tables: the check above compared real rows");

    // Writing another tenant's row is refused, whatever the statement says.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SET LOCAL ROLE tenantry_app").execute(&mut *tx).await.unwrap();
    sqlx::query("SELECT set_config('tenantry.tenant_id', $1, true)")
        .bind(&a)
        .execute(&mut *tx)
        .await
        .unwrap();
    let refused = sqlx::query(
        "INSERT INTO projection_stalls (tenant_id, projector, position, reason, since) VALUES ($1, 'x', 1, 'y', 0)",
    )
    .bind(&b)
    .execute(&mut *tx)
    .await;
    let code =
        refused.err().and_then(|e| e.as_database_error().and_then(|d| d.code().map(|c| c.into_owned())));
    assert_eq!(code.as_deref(), Some("42501"), "a row of B written as A");
    tx.rollback().await.unwrap();
    pool.close().await;
}
