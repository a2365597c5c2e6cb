//! Helpers shared by the end-to-end tests: a look at every row of the database, and a NATS
//! server of the test's own.

#![allow(dead_code)] // each test file uses a part

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tenantry::Settings;
use tenantry::settings::StoreSettings;

/// The platform operator's key every test server starts with.
pub(crate) const BOOTSTRAP: &str = "test-bootstrap-key-0123456789abcdef";

/// A server on a free port over a store in `dir` (SQLite there unless `database_url`), with
/// the master key in `dir` so the command line can open the same store.
pub(crate) fn server_settings(
    dir: &std::path::Path,
    database_url: Option<String>,
    nats_url: Option<String>,
) -> Settings {
    Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        store: StoreSettings {
            data_dir: dir.join("data"),
            database_url,
            master_key_file: Some(dir.join("master.key")),
            pg_tenant_role: None,
            pg_platform_role: None,
            group_commit: Default::default(),
            key_store: None,
            prices_file: None,
            nats_url,
        },
        no_projectors: false,
        connections: Default::default(),
        role: Default::default(),
        bootstrap_key: Some(BOOTSTRAP.into()),
        oidc_config: None,
        webhooks: Default::default(),
    }
}

/// Every row of every table, as text (bytes as hex), by table.
pub(crate) async fn dump(url: &str) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let tables: Vec<(String,)> =
            sqlx::query_as("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'")
                .fetch_all(&pool)
                .await
                .unwrap();
        for (table,) in tables {
            let rows: Vec<(String,)> =
                sqlx::query_as(&format!("SELECT t::text FROM {table} t")).fetch_all(&pool).await.unwrap();
            let mut rows: Vec<String> = rows.into_iter().map(|r| r.0).collect();
            rows.sort();
            out.insert(table, rows);
        }
        pool.close().await;
    } else {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        let tables: Vec<(String,)> = sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table'")
            .fetch_all(&pool)
            .await
            .unwrap();
        for (table,) in tables {
            let columns: Vec<(String,)> = sqlx::query_as("SELECT name FROM pragma_table_info(?)")
                .bind(&table)
                .fetch_all(&pool)
                .await
                .unwrap();
            let expr: Vec<String> = columns.iter().map(|(c,)| format!("quote(\"{c}\")")).collect();
            let sql = format!("SELECT {} FROM \"{table}\"", expr.join(" || '|' || "));
            let rows: Vec<(String,)> = sqlx::query_as(&sql).fetch_all(&pool).await.unwrap();
            let mut rows: Vec<String> = rows.into_iter().map(|r| r.0).collect();
            rows.sort();
            out.insert(table, rows);
        }
        pool.close().await;
    }
    out
}

/// A NATS server with JetStream on a free loopback port and a store directory of its own,
/// so a test may stop and start it without touching anything else. Killed when dropped.
pub(crate) struct NatsServer {
    pub(crate) port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

const NATS_SERVER: &str = "/usr/sbin/nats-server";

impl NatsServer {
    /// `None` (with a SKIPPED line) where nats-server is not installed; under `CI=true` that
    /// fails the test instead.
    pub(crate) fn start() -> Option<Self> {
        if !std::path::Path::new(NATS_SERVER).exists() {
            assert!(std::env::var("CI").ok().as_deref() != Some("true"), "{NATS_SERVER} missing under CI");
            eprintln!("SKIPPED: {NATS_SERVER} is not installed");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut server = Self { port, dir: tempfile::tempdir().unwrap(), child: None };
        server.resume();
        Some(server)
    }

    pub(crate) fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub(crate) fn store_dir(&self) -> PathBuf {
        self.dir.path().join("js")
    }

    /// Start (again) on the same port and store; returns once it accepts connections.
    pub(crate) fn resume(&mut self) {
        let child = Command::new(NATS_SERVER)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-js", "-sd"])
            .arg(self.store_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop it, as an outage would.
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether any file under `dir` holds `needle`.
pub(crate) fn any_file_contains(dir: &std::path::Path, needle: &[u8]) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else { return false };
    entries.flatten().any(|e| {
        let path = e.path();
        if path.is_dir() {
            any_file_contains(&path, needle)
        } else {
            std::fs::read(&path).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
        }
    })
}

/// A free port on loopback.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A `tenantry serve` process, killed with SIGKILL when dropped (a failed test leaves none
/// running).
pub(crate) struct Served(Child);

impl Served {
    /// SIGKILL, as a crash would, and reap it.
    pub(crate) fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `tenantry serve` as a process of its own, delivering webhooks to loopback.
pub(crate) fn serve_process(dir: &std::path::Path, port: u16, database_url: Option<&str>) -> Served {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tenantry"));
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--webhooks-allow-private"])
        .args(["--webhooks-first-retry-ms", "50", "--data-dir"])
        .arg(dir.join("data"))
        .env("TENANTRY_BOOTSTRAP_KEY", BOOTSTRAP)
        .env("TENANTRY_LOG", "warn")
        .stdout(std::process::Stdio::null());
    if let Some(url) = database_url {
        command.args(["--database-url", url]);
    }
    Served(command.spawn().unwrap())
}

/// Wait (at most 30 s) until the server answers.
pub(crate) async fn up(client: &reqwest::Client, base: &str) {
    for _ in 0..300 {
        if client.get(format!("{base}/healthz")).send().await.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server did not come up");
}

/// POST `body` to `url` with a bearer key, asserting success; the answer's JSON.
pub(crate) async fn post_ok(
    client: reqwest::Client,
    url: String,
    key: String,
    body: serde_json::Value,
) -> serde_json::Value {
    let res = client.post(url).bearer_auth(key).json(&body).send().await.unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    res.json().await.unwrap()
}
