//! The PostgreSQL backend: one row lock on the tenant's head per append, the batch written in
//! one statement with UNNEST.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{Row, postgres::PgConnectOptions};
use tenantry_domain::{EventId, TenantId};
use uuid::Uuid;

use crate::backend::*;
use crate::chain::GENESIS;
use crate::error::{StoreError, unique_violation};
use crate::model::{AppendOutcome, Head};

pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

#[derive(Debug, Clone)]
pub(crate) struct Postgres {
    pub(crate) pool: PgPool,
}

impl Postgres {
    pub(crate) async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options: PgConnectOptions = url.parse()?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }
}

const COLUMNS: &str = "position, stream_id, stream_version, event_id, event_type, schema_version, \
                       recorded_at, payload, metadata, prev_hash, hash";

fn raw(row: &PgRow) -> Result<RawEvent, sqlx::Error> {
    Ok(RawEvent {
        position: row.try_get::<i64, _>(0)? as u64,
        stream_id: row.try_get(1)?,
        stream_version: row.try_get::<i64, _>(2)? as u64,
        event_id: EventId::from_uuid(row.try_get(3)?),
        event_type: row.try_get(4)?,
        schema_version: row.try_get::<i16, _>(5)? as u16,
        recorded_at: row.try_get(6)?,
        payload: row.try_get(7)?,
        metadata: row.try_get(8)?,
        prev_hash: row.try_get(9)?,
        hash: row.try_get(10)?,
    })
}

const WRITE: &str = "
WITH ev AS (
    INSERT INTO events (tenant_id, position, stream_id, stream_version, event_id, event_type,
                        schema_version, recorded_at, payload, metadata, prev_hash, hash)
    SELECT $1, e.* FROM UNNEST($2::bigint[], $3::text[], $4::bigint[], $5::uuid[], $6::text[],
                               $7::smallint[], $8::bigint[], $9::bytea[], $10::bytea[],
                               $11::bytea[], $12::bytea[]) AS e
    RETURNING 1
), st AS (
    INSERT INTO streams (tenant_id, stream_id, version)
    SELECT $1, s.* FROM UNNEST($13::text[], $14::bigint[]) AS s
    ON CONFLICT (tenant_id, stream_id) DO UPDATE SET version = EXCLUDED.version
    RETURNING 1
)
UPDATE tenant_heads SET position = $15, last_hash = $16
WHERE tenant_id = $1 AND (SELECT count(*) FROM ev) > 0 AND (SELECT count(*) FROM st) > 0";

#[async_trait]
impl Backend for Postgres {
    async fn load_key(&self, tenant: TenantId) -> Result<StoredKey, StoreError> {
        let row: Option<(Option<Vec<u8>>,)> =
            sqlx::query_as("SELECT wrapped_key FROM tenant_keys WHERE tenant_id = $1")
                .bind(tenant.as_uuid())
                .fetch_optional(&self.pool)
                .await?;
        Ok(match row {
            None => StoredKey::Missing,
            Some((Some(k),)) => StoredKey::Wrapped(k),
            Some((None,)) => StoredKey::Destroyed,
        })
    }

    async fn insert_key(&self, tenant: TenantId, wrapped: &[u8]) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tenant_keys (tenant_id, wrapped_key) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(tenant.as_uuid())
        .bind(wrapped)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn destroy_key(&self, tenant: TenantId) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tenant_keys (tenant_id, wrapped_key, destroyed_at) VALUES ($1, NULL, now())
             ON CONFLICT (tenant_id) DO UPDATE SET wrapped_key = NULL,
                 destroyed_at = COALESCE(tenant_keys.destroyed_at, now())",
        )
        .bind(tenant.as_uuid())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn append(&self, tenant: TenantId, batch: &SealedBatch) -> Result<Attempt, StoreError> {
        let tid = tenant.as_uuid();
        let mut tx = self.pool.begin().await?;
        // The upsert takes the row lock on the tenant's head: appends of one tenant queue
        // here, so positions are allocated and committed in order.
        let (position, last_hash): (i64, Vec<u8>) = sqlx::query_as(
            "INSERT INTO tenant_heads (tenant_id, position, last_hash) VALUES ($1, 0, $2)
             ON CONFLICT (tenant_id) DO UPDATE SET position = tenant_heads.position
             RETURNING position, last_hash",
        )
        .bind(tid)
        .bind(&GENESIS[..])
        .fetch_one(&mut *tx)
        .await?;
        let streams = batch.streams();
        let versions: HashMap<String, u64> = sqlx::query_as::<_, (String, i64)>(
            "SELECT stream_id, version FROM streams WHERE tenant_id = $1 AND stream_id = ANY($2)",
        )
        .bind(tid)
        .bind(&streams)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|(s, v)| (s, v as u64))
        .collect();
        let head = Head { position: position as u64, last_hash: to_hash(&last_hash) };
        let plan = plan(tenant, &head, &versions, batch)?;

        let n = batch.events.len();
        let mut positions = Vec::with_capacity(n);
        let mut stream_ids = Vec::with_capacity(n);
        let mut stream_versions = Vec::with_capacity(n);
        let mut event_ids = Vec::with_capacity(n);
        let mut types = Vec::with_capacity(n);
        let mut schema_versions = Vec::with_capacity(n);
        let mut recorded = Vec::with_capacity(n);
        let mut payloads = Vec::with_capacity(n);
        let mut metadata = Vec::with_capacity(n);
        let mut prevs = Vec::with_capacity(n);
        let mut hashes = Vec::with_capacity(n);
        for (e, row) in batch.events.iter().zip(&plan.rows) {
            positions.push(row.position as i64);
            stream_ids.push(e.stream.as_str());
            stream_versions.push(row.stream_version as i64);
            event_ids.push(*e.event_id.as_uuid());
            types.push(e.event_type.as_str());
            schema_versions.push(e.schema_version as i16);
            recorded.push(batch.recorded_at);
            payloads.push(e.payload.as_slice());
            metadata.push(e.metadata.as_slice());
            prevs.push(&row.prev_hash[..]);
            hashes.push(&row.hash[..]);
        }
        let (names, finals): (Vec<&str>, Vec<i64>) =
            plan.streams.iter().map(|(s, v)| (s.as_str(), *v as i64)).unzip();
        let written = sqlx::query(WRITE)
            .bind(tid)
            .bind(&positions)
            .bind(&stream_ids)
            .bind(&stream_versions)
            .bind(&event_ids)
            .bind(&types)
            .bind(&schema_versions)
            .bind(&recorded)
            .bind(&payloads)
            .bind(&metadata)
            .bind(&prevs)
            .bind(&hashes)
            .bind(&names)
            .bind(&finals)
            .bind(plan.head.position as i64)
            .bind(&plan.head.last_hash[..])
            .execute(&mut *tx)
            .await;
        if let Err(e) = written {
            if unique_violation(&e).is_some_and(|c| c == "events_event_id_key") {
                tx.rollback().await?;
                return Ok(Attempt::DuplicateEvent);
            }
            return Err(e.into());
        }
        let outcome = AppendOutcome {
            first_position: head.position + 1,
            last_position: plan.head.position,
            deduplicated: false,
        };
        if let Some((key, hash)) = &batch.idempotency {
            let inserted = sqlx::query(
                "INSERT INTO idempotency_keys (tenant_id, key, request_hash, first_position, last_position)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(tid)
            .bind(key)
            .bind(&hash[..])
            .bind(outcome.first_position as i64)
            .bind(outcome.last_position as i64)
            .execute(&mut *tx)
            .await;
            if let Err(e) = inserted {
                if unique_violation(&e).is_some() {
                    tx.rollback().await?;
                    return Ok(Attempt::DuplicateKey);
                }
                return Err(e.into());
            }
        }
        tx.commit().await?;
        Ok(Attempt::Written(outcome))
    }

    async fn find_events(&self, tenant: TenantId, ids: &[EventId]) -> Result<Vec<u64>, StoreError> {
        let ids: Vec<Uuid> = ids.iter().map(|i| *i.as_uuid()).collect();
        let rows: Vec<(i64,)> =
            sqlx::query_as("SELECT position FROM events WHERE tenant_id = $1 AND event_id = ANY($2)")
                .bind(tenant.as_uuid())
                .bind(&ids)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|(p,)| p as u64).collect())
    }

    async fn find_idempotency(
        &self,
        tenant: TenantId,
        key: &str,
    ) -> Result<Option<StoredIdempotency>, StoreError> {
        let row: Option<(Vec<u8>, i64, i64)> = sqlx::query_as(
            "SELECT request_hash, first_position, last_position FROM idempotency_keys
             WHERE tenant_id = $1 AND key = $2",
        )
        .bind(tenant.as_uuid())
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(request_hash, f, l)| StoredIdempotency {
            request_hash,
            first_position: f as u64,
            last_position: l as u64,
        }))
    }

    async fn read_log(&self, tenant: TenantId, after: u64, limit: u32) -> Result<Vec<RawEvent>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM events WHERE tenant_id = $1 AND position > $2 ORDER BY position LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(tenant.as_uuid())
            .bind(after as i64)
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(raw).collect::<Result<_, _>>()?)
    }

    async fn read_stream(
        &self,
        tenant: TenantId,
        stream: &str,
        after_version: u64,
        limit: u32,
    ) -> Result<Vec<RawEvent>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM events WHERE tenant_id = $1 AND stream_id = $2 AND stream_version > $3
             ORDER BY stream_version LIMIT $4"
        );
        let rows = sqlx::query(&sql)
            .bind(tenant.as_uuid())
            .bind(stream)
            .bind(after_version as i64)
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(raw).collect::<Result<_, _>>()?)
    }

    async fn head(&self, tenant: TenantId) -> Result<Option<Head>, StoreError> {
        let row: Option<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT position, last_hash FROM tenant_heads WHERE tenant_id = $1")
                .bind(tenant.as_uuid())
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(p, h)| Head { position: p as u64, last_hash: to_hash(&h) }))
    }

    async fn stream_version(&self, tenant: TenantId, stream: &str) -> Result<u64, StoreError> {
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT version FROM streams WHERE tenant_id = $1 AND stream_id = $2")
                .bind(tenant.as_uuid())
                .bind(stream)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map_or(0, |(v,)| v as u64))
    }

    async fn tenant_heads(
        &self,
        after: Option<TenantId>,
        limit: u32,
    ) -> Result<Vec<(TenantId, u64)>, StoreError> {
        let rows: Vec<(Uuid, i64)> = sqlx::query_as(
            "SELECT tenant_id, position FROM tenant_heads WHERE tenant_id > $1 AND position > 0
             ORDER BY tenant_id LIMIT $2",
        )
        .bind(after.map_or(Uuid::nil(), |t| *t.as_uuid()))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(t, p)| (TenantId::from_uuid(t), p as u64)).collect())
    }
}
