//! Fixtures for tests of this and later crates: a store on a fresh database per test.
//!
//! PostgreSQL tests read `TENANTRY_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). Where no server answers they print one
//! `SKIPPED` line and return `None`, except under `CI=true`, where they fail.

use std::time::Duration;

use sqlx::{Connection, Executor};

use crate::{EventStore, MasterKey};

/// A store on a fresh database, removed when dropped.
#[derive(Debug)]
pub struct Harness {
    pub store: EventStore,
    /// The database url, for processes a test starts.
    pub url: String,
    /// The master key, for processes a test starts.
    pub master: MasterKey,
    dir: Option<tempfile::TempDir>,
    /// The database, dropped with the harness.
    _pg: Option<ScratchDatabase>,
}

/// The server PostgreSQL tests use.
pub fn postgres_url() -> String {
    std::env::var("TENANTRY_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

impl Harness {
    /// A directory that lives as long as the harness (SQLite only; `None` on PostgreSQL).
    pub fn dir(&self) -> Option<&std::path::Path> {
        self.dir.as_ref().map(|d| d.path())
    }

    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let master = MasterKey::generate();
        let path = dir.path().join("events.db");
        let store = EventStore::open_sqlite(&path, &master).await.expect("sqlite store opens");
        Self { store, url: format!("sqlite://{}", path.display()), master, dir: Some(dir), _pg: None }
    }

    /// A store on a new PostgreSQL database, or `None` (with a SKIPPED line) when no server
    /// answers. Under `CI=true` an unreachable server fails the test instead.
    pub async fn postgres() -> Option<Self> {
        let database = ScratchDatabase::create().await?;
        let master = MasterKey::generate();
        let store =
            EventStore::open_postgres(&database.url, &master, 20).await.expect("postgres store opens");
        Some(Self { store, url: database.url.clone(), master, dir: None, _pg: Some(database) })
    }
}

/// An empty PostgreSQL database of a test's own (for a key store apart, or a restored
/// backup), dropped with this value; `None` where no server answers, as [`Harness::postgres`].
#[derive(Debug)]
pub struct ScratchDatabase {
    pub url: String,
    admin_url: String,
    name: String,
}

impl ScratchDatabase {
    pub async fn create() -> Option<Self> {
        let admin_url = postgres_url();
        let connect =
            tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(&admin_url)).await;
        let mut admin = match connect {
            Ok(Ok(conn)) => conn,
            failure => {
                let why = match failure {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".to_owned(),
                };
                if std::env::var("CI").is_ok_and(|v| v == "true") {
                    panic!("PostgreSQL at {admin_url} is unreachable under CI: {why}");
                }
                eprintln!("SKIPPED: PostgreSQL at {admin_url} is unreachable ({why})");
                return None;
            }
        };
        let name = format!("tenantry_scratch_{}", uuid::Uuid::new_v4().simple());
        admin.execute(format!("CREATE DATABASE {name}").as_str()).await.expect("create database");
        Some(Self { url: database_url(&admin_url, &name), admin_url, name })
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&admin_url).await.ok()?;
                admin.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str()).await.ok()
            })
        })
        .join();
    }
}

/// `admin_url` pointed at database `name` (any path and query of `admin_url` replaced).
fn database_url(admin_url: &str, name: &str) -> String {
    let authority_start = admin_url.find("://").map_or(0, |i| i + 3);
    let end = admin_url[authority_start..].find(['/', '?']).map_or(admin_url.len(), |i| authority_start + i);
    format!("{}/{name}", &admin_url[..end])
}

/// Resident memory of this process from `/proc/self/status`, in MiB: `field` is `VmRSS:`
/// (now) or `VmHWM:` (the peak since start or [`reset_peak_rss`]). 0 where there is no
/// `/proc`.
pub fn rss_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The peak resident memory of this process, in MiB.
pub fn peak_rss_mib() -> f64 {
    rss_mib("VmHWM:")
}

/// Start measuring the peak resident memory again from now (Linux `clear_refs`).
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Raw PostgreSQL's single-row commit rate, for benchmarks to print their figures beside:
/// `pgbench` with `clients` clients for `seconds` seconds, each transaction one INSERT of a
/// 200-byte row, in a scratch database on the server of [`postgres_url`]. `None` where no
/// server answers or `pgbench` is not installed.
pub async fn raw_commit_rate(clients: u32, seconds: u32) -> Option<f64> {
    let scratch = ScratchDatabase::create().await?;
    let mut conn = sqlx::PgConnection::connect(&scratch.url).await.ok()?;
    conn.execute("CREATE TABLE raw_commits (id BIGSERIAL PRIMARY KEY, payload BYTEA NOT NULL)").await.ok()?;
    conn.close().await.ok()?;
    let script = tempfile::Builder::new().suffix(".sql").tempfile().ok()?;
    std::fs::write(
        script.path(),
        "INSERT INTO raw_commits (payload) VALUES (convert_to(repeat('x', 200), 'UTF8'));\n",
    )
    .ok()?;
    let out = tokio::process::Command::new("pgbench")
        .args(["-n", "-c", &clients.to_string(), "-j", &clients.min(2).to_string()])
        .args(["-T", &seconds.to_string(), "-f"])
        .arg(script.path())
        .arg(&scratch.url)
        .output()
        .await;
    let out = match out {
        Ok(out) if out.status.success() => out,
        Ok(out) => {
            eprintln!("pgbench failed: {}", String::from_utf8_lossy(&out.stderr));
            return None;
        }
        Err(e) => {
            eprintln!("SKIPPED: pgbench: {e}");
            return None;
        }
    };
    // "tps = 8415.123456 (without initial connection time)"
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// [`raw_commit_rate`] at 8 clients for `seconds`, printed as the line benchmarks show their
/// ratios against.
pub async fn print_raw_commit_rate(seconds: u32) -> Option<f64> {
    let raw = raw_commit_rate(8, seconds).await;
    match raw {
        Some(rate) => {
            println!("raw PostgreSQL, one INSERT a transaction, 8 pgbench clients: {rate:.0} commits/s")
        }
        None => println!("raw PostgreSQL: pgbench did not run"),
    }
    raw
}
