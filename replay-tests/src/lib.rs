//! Golden event logs in a readable form, and a dump of the read models to compare.
//!
//! A fixture is JSON: a tenant id and a list of appends, each with its recording time,
//! request id, actor and role, and per stream the events as `{id, type, version, data}` with
//! `data` in the event's own field names at that schema version. Old versions stay old: they
//! are stored as they were and upcast on read, as in production.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::Row;
use tenantry_domain::{Actor, EventId, RequestId, Role, StreamId, TenantContext, TenantId, codec};
use tenantry_projections::ReadDb;
use tenantry_store::{AppendRequest, EventStore, ExpectedVersion, NewEvent, StoreError};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    pub tenant_id: TenantId,
    pub appends: Vec<FixtureAppend>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureAppend {
    pub at: DateTime<Utc>,
    pub request_id: RequestId,
    /// `system`, `apikey:<id>` or `user:<id>`.
    pub actor: String,
    pub role: Role,
    pub source_ip: Option<String>,
    pub writes: Vec<FixtureWrite>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureWrite {
    pub stream: StreamId,
    pub events: Vec<FixtureEvent>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureEvent {
    pub id: EventId,
    #[serde(rename = "type")]
    pub event_type: String,
    pub version: u16,
    pub data: serde_json::Value,
}

fn actor(text: &str) -> Actor {
    match text.split_once(':') {
        Some(("apikey", id)) => id.parse().map(Actor::ApiKey).unwrap_or(Actor::System),
        Some(("user", id)) => id.parse().map(Actor::User).unwrap_or(Actor::System),
        _ => Actor::System,
    }
}

impl Fixture {
    pub fn load(path: &Path) -> Self {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The fixture's events as append requests, with the context each was made in.
    pub fn requests(&self) -> Vec<(TenantContext, AppendRequest)> {
        self.appends
            .iter()
            .map(|a| {
                let ctx = TenantContext {
                    tenant_id: self.tenant_id,
                    actor: actor(&a.actor),
                    role: a.role,
                    partner_id: None,
                    request_id: a.request_id,
                    source_ip: a.source_ip.clone(),
                };
                let mut writes = a.writes.iter().map(|w| {
                    let events = w
                        .events
                        .iter()
                        .map(|e| {
                            let bytes = codec::transcode(&e.event_type, e.version, &e.data)
                                .unwrap_or_else(|err| panic!("event {}: {err}", e.id));
                            NewEvent::encoded(e.id, &e.event_type, e.version, bytes).expect("valid event")
                        })
                        .collect();
                    (w.stream.clone(), events)
                });
                let (stream, events) = writes.next().expect("an append writes at least one stream");
                let mut request =
                    AppendRequest::to_stream(stream, ExpectedVersion::Any, events).recorded_at(a.at);
                for (stream, events) in writes {
                    request = request.and(stream, ExpectedVersion::Any, events);
                }
                (ctx, request)
            })
            .collect()
    }

    /// Append every event of the fixture.
    pub async fn append_all(&self, store: &EventStore) -> Result<(), StoreError> {
        for (ctx, request) in self.requests() {
            store.append(&ctx, request).await?;
        }
        Ok(())
    }
}

/// Tables of the read models with the order that makes their dump deterministic.
const TABLES: &[(&str, &str)] = &[
    ("dir_tenants", "tenant_id"),
    ("dir_agents", "agent_id"),
    ("dir_tools", "tool_id"),
    ("dir_users", "user_id"),
    ("dir_api_keys", "key_id"),
    ("conv_threads", "conversation_id"),
    ("conv_messages", "conversation_id, seq"),
    ("quota_counters", "period"),
    ("usage_daily", "day, model"),
    ("analytics_daily", "day, agent_id, user_id, model"),
    ("analytics_conversations", "conversation_id"),
    ("analytics_billed", "request_id"),
    ("audit_entries", "position"),
    ("projection_checkpoints", "projector"),
];

/// Every read-model row of a tenant, as JSON, table by table.
pub async fn dump(db: &ReadDb, tenant: TenantId) -> serde_json::Value {
    let mut out = BTreeMap::new();
    for (table, order) in TABLES {
        let rows = sqlx::query(&format!("SELECT * FROM {table} WHERE tenant_id = $1 ORDER BY {order}"))
            .bind(tenant.to_string())
            .fetch_all(db.pool())
            .await
            .expect("dump query");
        let mut dumped = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut obj = serde_json::Map::new();
            for (i, column) in row.columns().iter().enumerate() {
                use sqlx::Column;
                let name = column.name();
                if name == "tenant_id" {
                    continue;
                }
                let value = match row.try_get::<Option<i64>, _>(i) {
                    Ok(v) => v.map_or(serde_json::Value::Null, Into::into),
                    // Sealed values as they read (their ciphertext differs from run to run).
                    Err(_) => match row.try_get::<Option<String>, _>(i).expect("text or integer") {
                        Some(text) => db.open_within(&tenant.to_string(), &text).await.expect("opens").into(),
                        None => serde_json::Value::Null,
                    },
                };
                obj.insert(name.to_owned(), value);
            }
            dumped.push(serde_json::Value::Object(obj));
        }
        let rows = dumped;
        out.insert(table.to_string(), serde_json::Value::Array(rows));
    }
    serde_json::to_value(out).expect("json")
}

/// The fixtures folder.
pub fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}
