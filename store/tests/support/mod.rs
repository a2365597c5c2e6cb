//! Test fixtures: a fresh store per test on either backend, and raw access to its rows for
//! tampering.

use tenantry_domain::event::AgentCreated;
use tenantry_domain::{AgentId, Event, EventId, TenantId};
pub(crate) use tenantry_store::testing::Harness;
use tenantry_store::{Database, EventStore, NewEvent};

pub(crate) fn agent_created(name: &str) -> Event {
    Event::AgentCreated(AgentCreated {
        agent_id: AgentId::new(),
        name: name.into(),
        model: "model-1".into(),
        system_prompt: "You help.".into(),
        tool_ids: vec![],
    })
}

pub(crate) fn new_event(event: &Event) -> NewEvent {
    NewEvent::new(EventId::new(), event).expect("encodes")
}

/// An agent named `name` created, appended to the tenant's stream wherever it stands.
#[allow(dead_code)] // the files that test connections use it, the conformance suite not
pub(crate) fn append_agent(name: &str) -> tenantry_store::AppendRequest {
    tenantry_store::AppendRequest::to_stream(
        tenantry_domain::StreamId::tenant(),
        tenantry_store::ExpectedVersion::Any,
        vec![new_event(&agent_created(name))],
    )
}

/// The stored payload column of a tenant's events, in position order.
pub(crate) async fn raw_payloads(store: &EventStore, tenant: TenantId) -> Vec<Vec<u8>> {
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
pub(crate) async fn set_column<T>(store: &EventStore, tenant: TenantId, position: i64, column: &str, value: T)
where
    T: for<'q> sqlx::Encode<'q, sqlx::Sqlite>
        + sqlx::Type<sqlx::Sqlite>
        + for<'q> sqlx::Encode<'q, sqlx::Postgres>
        + sqlx::Type<sqlx::Postgres>
        + Send
        + Sync,
{
    let done = match store.database() {
        Database::Sqlite { write, .. } => {
            sqlx::query(&format!("UPDATE events SET {column} = ? WHERE tenant_id = ? AND position = ?"))
                .bind(value)
                .bind(tenant.as_uuid())
                .bind(position)
                .execute(write)
                .await
                .map(|r| r.rows_affected())
        }
        Database::Postgres(pool) => {
            sqlx::query(&format!("UPDATE events SET {column} = $1 WHERE tenant_id = $2 AND position = $3"))
                .bind(value)
                .bind(tenant.as_uuid())
                .bind(position)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        }
    }
    .expect("update");
    assert_eq!(done, 1);
}

pub(crate) async fn delete_event(store: &EventStore, tenant: TenantId, position: i64) {
    match store.database() {
        Database::Sqlite { write, .. } => {
            sqlx::query("DELETE FROM events WHERE tenant_id = ? AND position = ?")
                .bind(tenant.as_uuid())
                .bind(position)
                .execute(write)
                .await
                .map(|r| r.rows_affected())
        }
        Database::Postgres(pool) => sqlx::query("DELETE FROM events WHERE tenant_id = $1 AND position = $2")
            .bind(tenant.as_uuid())
            .bind(position)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()),
    }
    .expect("delete");
}

/// Rows of the blobs table the tenant holds, whatever their state.
pub(crate) async fn blob_rows(store: &EventStore, tenant: TenantId) -> i64 {
    let rows: Result<(i64,), sqlx::Error> = match store.database() {
        Database::Sqlite { write, .. } => {
            sqlx::query_as("SELECT count(*) FROM blobs WHERE tenant_id = ?")
                .bind(tenant.as_uuid())
                .fetch_one(write)
                .await
        }
        Database::Postgres(pool) => {
            sqlx::query_as("SELECT count(*) FROM blobs WHERE tenant_id = $1")
                .bind(tenant.as_uuid())
                .fetch_one(pool)
                .await
        }
    };
    rows.expect("blobs count").0
}

/// One test body per name, instantiated for SQLite (always) and PostgreSQL (when a server
/// answers): `async fn name(store: &EventStore)` gets a fresh store of each backend.
#[allow(unused_macros)] // not every test file uses it
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let h = super::Harness::sqlite().await;
                    super::$name(&h.store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(h) = super::Harness::postgres().await else { return };
                    super::$name(&h.store).await;
                }
            )*
        }
    };
}
