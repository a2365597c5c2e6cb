//! Test fixtures: a fresh store per test on either backend, and raw access to its rows for
//! tampering.

use std::time::Duration;

use sqlx::{Connection, Executor};
use tenantry_domain::event::AgentCreated;
use tenantry_domain::{AgentId, Event, EventId, TenantId};
use tenantry_store::{Database, EventStore, MasterKey, NewEvent};

pub fn agent_created(name: &str) -> Event {
    Event::AgentCreated(AgentCreated {
        agent_id: AgentId::new(),
        name: name.into(),
        model: "model-1".into(),
        system_prompt: "You help.".into(),
        tool_ids: vec![],
    })
}

pub fn new_event(event: &Event) -> NewEvent {
    NewEvent::new(EventId::new(), event).expect("encodes")
}

/// A store on a fresh database, removed when dropped.
pub struct Harness {
    pub store: EventStore,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

pub fn postgres_url() -> String {
    std::env::var("TENANTRY_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

impl Harness {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = EventStore::open_sqlite(&dir.path().join("events.db"), &MasterKey::generate())
            .await
            .expect("sqlite store opens");
        Self {
            store,
            _dir: Some(dir),
            pg: None,
        }
    }

    /// A store on a new PostgreSQL database, or `None` (with a SKIPPED line) when no server
    /// answers. Under `CI=true` an unreachable server fails the test instead.
    pub async fn postgres() -> Option<Self> {
        let admin_url = postgres_url();
        let connect = tokio::time::timeout(
            Duration::from_secs(5),
            sqlx::PgConnection::connect(&admin_url),
        )
        .await;
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
        let name = format!("tenantry_test_{}", uuid::Uuid::new_v4().simple());
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create database");
        let url = match admin_url.rfind('/') {
            Some(i) if admin_url[..i].contains('@') || admin_url[..i].ends_with(':') || i > 12 => {
                format!("{}/{name}", &admin_url[..i])
            }
            _ => format!("{admin_url}/{name}"),
        };
        let store = EventStore::open_postgres(&url, &MasterKey::generate(), 20)
            .await
            .expect("postgres store opens");
        Some(Self {
            store,
            _dir: None,
            pg: Some((admin_url, name)),
        })
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.pg.take() else {
            return;
        };
        // Dropping runs outside the test's runtime; a helper thread has its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&admin_url).await.ok()?;
                admin
                    .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await
                    .ok()
            })
        })
        .join();
    }
}

/// The stored payload column of a tenant's events, in position order.
pub async fn raw_payloads(store: &EventStore, tenant: TenantId) -> Vec<Vec<u8>> {
    let rows: Vec<(Vec<u8>,)> = match store.database() {
        Database::Sqlite { read, .. } => {
            sqlx::query_as("SELECT payload FROM events WHERE tenant_id = ? ORDER BY position")
                .bind(tenant.as_uuid())
                .fetch_all(read)
                .await
        }
        Database::Postgres(pool) => {
            sqlx::query_as("SELECT payload FROM events WHERE tenant_id = $1 ORDER BY position")
                .bind(tenant.as_uuid())
                .fetch_all(pool)
                .await
        }
    }
    .expect("raw read");
    rows.into_iter().map(|(p,)| p).collect()
}

/// Overwrite one column of one stored event, as an attacker with database access would.
pub async fn set_column<T>(
    store: &EventStore,
    tenant: TenantId,
    position: i64,
    column: &str,
    value: T,
) where
    T: for<'q> sqlx::Encode<'q, sqlx::Sqlite>
        + sqlx::Type<sqlx::Sqlite>
        + for<'q> sqlx::Encode<'q, sqlx::Postgres>
        + sqlx::Type<sqlx::Postgres>
        + Send
        + Sync,
{
    let done = match store.database() {
        Database::Sqlite { write, .. } => sqlx::query(&format!(
            "UPDATE events SET {column} = ? WHERE tenant_id = ? AND position = ?"
        ))
        .bind(value)
        .bind(tenant.as_uuid())
        .bind(position)
        .execute(write)
        .await
        .map(|r| r.rows_affected()),
        Database::Postgres(pool) => sqlx::query(&format!(
            "UPDATE events SET {column} = $1 WHERE tenant_id = $2 AND position = $3"
        ))
        .bind(value)
        .bind(tenant.as_uuid())
        .bind(position)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()),
    }
    .expect("update");
    assert_eq!(done, 1);
}

pub async fn delete_event(store: &EventStore, tenant: TenantId, position: i64) {
    match store.database() {
        Database::Sqlite { write, .. } => {
            sqlx::query("DELETE FROM events WHERE tenant_id = ? AND position = ?")
                .bind(tenant.as_uuid())
                .bind(position)
                .execute(write)
                .await
                .map(|r| r.rows_affected())
        }
        Database::Postgres(pool) => {
            sqlx::query("DELETE FROM events WHERE tenant_id = $1 AND position = $2")
                .bind(tenant.as_uuid())
                .bind(position)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        }
    }
    .expect("delete");
}
