//! The PostgreSQL backend: one row lock on the tenant's head per append, the batch written in
//! one statement with UNNEST.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, Executor, PgConnection, Row, postgres::PgConnectOptions};
use tenantry_domain::{EventId, TenantId};
use uuid::Uuid;

use crate::PgRoles;
use crate::backend::*;
use crate::error::{StoreError, quota_exceeded, unique_violation};
use crate::known::Known;
use crate::model::{AppendOutcome, ExpectedVersion, Head};
use crate::pool;

pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");
static KEYS_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/keys/postgres");

#[derive(Debug, Clone)]
pub(crate) struct Postgres {
    /// Platform-wide work, as the platform role (BYPASSRLS): listings across tenants, the
    /// relay's reads of many tenants, purges, keys kept in this database.
    pub(crate) pool: PgPool,
    /// Group commits, as the platform role (a batch holds several tenants; every row it
    /// writes is keyed by its own request's tenant), with [`COMMIT_SETTINGS`].
    commit_pool: PgPool,
    /// One tenant's reads and appends, as the tenant role, under row-level security: each
    /// use names its tenant first ([`Postgres::scoped`], or the append function itself).
    tenant_pool: PgPool,
    /// The login role, which owns the tables: migrations and VACUUM (only an owner may).
    owner: PgConnectOptions,
    /// Heads and streams as this process's last commits left them, so that a group commit
    /// can be decided and written in one checked statement.
    known: Arc<Known>,
}

/// The group commit's connections plan its statements once (generic plans: they take arrays,
/// whose custom plans never look dearer to the planner, so they were planned again on every
/// commit, which cost more than the writes) and join the arrays' rows to the tables by index
/// lookups, one a row (a hash or merge join would read a whole table for a batch of rows).
const COMMIT_SETTINGS: &[&str] =
    &["SET plan_cache_mode = force_generic_plan", "SET enable_hashjoin = off", "SET enable_mergejoin = off"];

/// Heads (and as many stream versions) a process keeps for its group commits: a few
/// megabytes at most.
const KNOWN: usize = 16_384;

/// Options for every pool of the store: at most 10 s to wait for a connection.
fn pool_options() -> PgPoolOptions {
    pool::pool_options().acquire_timeout(Duration::from_secs(10))
}

impl Postgres {
    /// A key store apart from the event database: the key tables only.
    pub(crate) async fn connect_keys(url: &str) -> Result<Self, StoreError> {
        let options: PgConnectOptions = url.parse()?;
        let pool = pool_options().max_connections(4).connect_with(options.clone()).await?;
        KEYS_MIGRATOR.run(&pool).await?;
        Ok(Self {
            tenant_pool: pool.clone(),
            commit_pool: pool.clone(),
            pool,
            owner: options,
            known: Arc::new(Known::new(KNOWN)),
        })
    }

    pub(crate) async fn connect(
        url: &str,
        max_connections: u32,
        roles: &PgRoles,
    ) -> Result<Self, StoreError> {
        let options: PgConnectOptions = url.parse()?;
        // The login role owns the tables and runs the migrations; the pools then work as the
        // two roles the migrations grant.
        let mut owner = PgConnection::connect_with(&options).await?;
        MIGRATOR.run(&mut owner).await?;
        owner.close().await?;
        let options_owner = options.clone();
        let as_role = |role: String, settings: &'static [&'static str]| {
            pool_options().max_connections(max_connections).after_connect(move |conn, _| {
                let set = format!("SET ROLE {role}");
                Box::pin(async move {
                    conn.execute(set.as_str()).await?;
                    for setting in settings {
                        conn.execute(*setting).await?;
                    }
                    Ok(())
                })
            })
        };
        let pool = as_role(roles.platform_ident()?, &[]).connect_with(options.clone()).await?;
        let commit_pool =
            as_role(roles.platform_ident()?, COMMIT_SETTINGS).connect_lazy_with(options.clone());
        // Used only through `scoped` (which names the tenant before every use) and by the
        // append function (which names it for its transaction).
        let tenant_pool = as_role(roles.tenant_ident()?, &[]).connect_with(options).await?;
        Ok(Self { pool, commit_pool, tenant_pool, owner: options_owner, known: Arc::new(Known::new(KNOWN)) })
    }

    /// One connection as the login role, which owns the tables (for VACUUM).
    async fn as_owner(&self) -> Result<PgPool, StoreError> {
        Ok(PgPoolOptions::new().max_connections(1).connect_with(self.owner.clone()).await?)
    }

    /// One append by the append function, in autocommit under the tenant's row-level
    /// security (one round trip), or with the bodies it keeps beside the log in a transaction.
    async fn append_alone(&self, tenant: TenantId, batch: &SealedBatch) -> Result<Attempt, StoreError> {
        let args = AppendArgs::of(batch);
        let (idem_key, idem_hash) = batch.idempotency.as_ref().map(|(k, h)| (k.as_str(), &h[..])).unzip();
        // One round trip in autocommit: the function locks, checks, chains and writes.
        let query = sqlx::query_as(
            // The limits go in a transaction-local setting, set first (the function's first
            // argument depends on it), for the head trigger to check under the lock.
            "SELECT r.* FROM (SELECT set_config('tenantry.quota', $13, true) AS q) s,
                 LATERAL tenantry_append(CASE WHEN s.q IS NULL THEN NULL ELSE $1 END,
                                         $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) r",
        )
        .bind(tenant.as_uuid())
        .bind(&args.streams)
        .bind(&args.expected)
        .bind(&args.ev_streams)
        .bind(&args.event_ids)
        .bind(&args.types)
        .bind(&args.schema_versions)
        .bind(&args.payloads)
        .bind(&args.metadata)
        .bind(batch.recorded_at)
        .bind(idem_key)
        .bind(idem_hash)
        .bind(quota_code(batch));
        // Status, first and last position, and the stream and version of a conflict.
        type Appended = (String, i64, i64, Option<String>, Option<i64>);
        let row: Result<Appended, sqlx::Error> = if batch.blobs.is_empty() && batch.minted.is_empty() {
            query.fetch_one(&self.tenant_pool).await
        } else {
            // Bodies kept beside the log and keys minted for the append go in the same
            // transaction, before the call that counts the bodies' bytes; anything but a
            // written append rolls them back.
            let mut tx = self.tenant_pool.begin().await?;
            sqlx::query("SELECT set_config('tenantry.tenant_id', $1, true)")
                .bind(tenant.to_string())
                .execute(&mut *tx)
                .await?;
            if let Some(Some(subject)) = store_minted(&mut tx, &[(tenant, batch)]).await?.pop() {
                return Err(StoreError::KeyRace { subject });
            }
            let mut bytes = 0_i64;
            for blob in &batch.blobs {
                match &blob.sealed {
                    Some(sealed) => {
                        sqlx::query(
                            "INSERT INTO blobs (tenant_id, blob_id, sealed, size) VALUES ($1, $2, $3, $4)",
                        )
                        .bind(tenant.as_uuid())
                        .bind(blob.id)
                        .bind(sealed)
                        .bind(blob.size)
                        .execute(&mut *tx)
                        .await?;
                        bytes += blob.size;
                    }
                    None => {
                        let gone: Option<(i64,)> = sqlx::query_as(
                            "DELETE FROM blobs WHERE tenant_id = $1 AND blob_id = $2 RETURNING size",
                        )
                        .bind(tenant.as_uuid())
                        .bind(blob.id)
                        .fetch_optional(&mut *tx)
                        .await?;
                        bytes -= gone.map_or(0, |(size,)| size);
                    }
                }
            }
            sqlx::query("SELECT set_config('tenantry.blob_bytes', $1, true)")
                .bind(bytes.to_string())
                .execute(&mut *tx)
                .await?;
            let row = query.fetch_one(&mut *tx).await;
            if matches!(&row, Ok((status, ..)) if status == "ok") {
                tx.commit().await?;
            }
            row
        };
        match row {
            Ok((status, first, last, _, _)) if status == "ok" => Ok(Attempt::Written(AppendOutcome {
                first_position: first as u64,
                last_position: last as u64,
                deduplicated: false,
                recorded_at: batch.recorded_at,
            })),
            Ok((_, _, _, stream, actual)) => {
                let stream = stream.unwrap_or_default();
                let (stream_id, expected) =
                    batch.expectations.iter().find(|(s, _)| s.as_str() == stream).cloned().ok_or_else(
                        || sqlx::Error::Protocol(format!("conflict on unknown stream {stream}")),
                    )?;
                Err(StoreError::Conflict { stream: stream_id, expected, actual: actual.unwrap_or(0) as u64 })
            }
            Err(e) => match unique_violation(&e).as_deref() {
                Some("events_event_id_key") => Ok(Attempt::DuplicateEvent),
                Some("idempotency_keys_pkey") => Ok(Attempt::DuplicateKey),
                // The head trigger refused the append for a limit.
                _ => Err(quota_exceeded(&e).unwrap_or_else(|| e.into())),
            },
        }
    }

    /// A group commit (see [`Backend::append_many`]).
    async fn group(
        &self,
        requests: &[(TenantId, &SealedBatch)],
    ) -> Result<Vec<Result<Attempt, StoreError>>, StoreError> {
        // Heads and streams this process knows: the batch is decided at once and written by
        // one checked statement in autocommit, one round trip. Only when every request is
        // written as assumed: a refusal is decided under the locks, on what they read.
        if let Some(found) = self.known.assume(requests) {
            let assumed = Held::of(&found);
            let decided = decide(requests, found, 0);
            let held = assumed.unwritten(&decided);
            if decided.outcomes.iter().all(|o| matches!(o, Ok(Attempt::Written(_)))) {
                match write(&self.commit_pool, &decided, &held, &Minted::of(requests)).await {
                    Ok(()) => {
                        self.known.learn(&decided);
                        return Ok(decided.outcomes);
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "a group commit found its tenants moved; deciding it under their locks");
                    }
                }
            }
            self.known.forget(requests);
        }
        self.append_locked(requests).await
    }

    /// A group commit decided under its tenants' head locks, on what it reads under them: one
    /// transaction, BEGIN, one call that locks and reads, one statement that writes, COMMIT.
    /// A batch holds several tenants, so it runs as the platform role; every row is keyed by
    /// its own request's tenant.
    async fn append_locked(
        &self,
        requests: &[(TenantId, &SealedBatch)],
    ) -> Result<Vec<Result<Attempt, StoreError>>, StoreError> {
        let tenants = batch_tenants(requests);
        let mut named = Named::default();
        for (tenant, batch) in requests {
            named.push(*tenant.as_uuid(), batch);
        }
        let mut tx = self.commit_pool.begin().await?;
        // Every head of the batch locked in tenant order (two batches of two processes never
        // wait on each other in a cycle), a first append's head made, and then what is stored
        // of the streams, event ids and keys the batch names: one call (migration 0026).
        type Locked =
            (i16, Uuid, Option<String>, Option<i64>, Option<Vec<u8>>, Option<i64>, Option<i64>, Option<i64>);
        let rows: Vec<Locked> =
            sqlx::query_as("SELECT * FROM tenantry_lock_batch($1, $2, $3, $4, $5, $6, $7)")
                .bind(&tenants)
                .bind(&named.stream_tenants)
                .bind(&named.streams)
                .bind(&named.event_tenants)
                .bind(&named.event_ids)
                .bind(&named.key_tenants)
                .bind(&named.keys)
                .fetch_all(&mut *tx)
                .await?;
        let mut found = crate::backend::Found::default();
        for (kind, tenant, name, version, last_hash, stored_bytes, day, day_calls) in rows {
            let tenant = TenantId::from_uuid(tenant);
            match (kind, name) {
                // A head: its position comes in `version`.
                (0, _) => {
                    let head = Head {
                        position: version.unwrap_or(0) as u64,
                        last_hash: to_hash(&last_hash.unwrap_or_default()),
                    };
                    let state = HeadState {
                        head,
                        stored_bytes: stored_bytes.unwrap_or(0),
                        day: day.unwrap_or(0),
                        day_calls: day_calls.unwrap_or(0),
                    };
                    found.heads.insert(tenant, state);
                }
                (1, Some(stream)) => {
                    found.versions.insert((tenant, stream), version.unwrap_or(0) as u64);
                }
                (2, Some(id)) => {
                    let id = id.parse::<Uuid>().map_err(|e| sqlx::Error::Decode(e.into()))?;
                    found.events.insert((tenant, EventId::from_uuid(id)));
                }
                (3, Some(key)) => {
                    found.keys.insert((tenant, key));
                }
                (kind, _) => {
                    return Err(
                        sqlx::Error::Protocol(format!("a batch's read gave a row of kind {kind}")).into()
                    );
                }
            }
        }
        // Keys minted for the batch, stored first: a request whose key another append stored
        // meanwhile is refused (sealed again, it uses that key) and the others decided.
        let raced = store_minted(&mut tx, requests).await?;
        let deciding: Vec<(TenantId, &SealedBatch)> =
            requests.iter().zip(&raced).filter(|(_, r)| r.is_none()).map(|(r, _)| *r).collect();
        let decided = decide(&deciding, found, 0);
        if !decided.events.is_empty() {
            // Read under the locks: no stream it was decided on can have moved.
            write(&mut *tx, &decided, &Held::default(), &Minted::default()).await?;
        }
        tx.commit().await?;
        self.known.learn(&decided);
        let mut outcomes = decided.outcomes.into_iter();
        Ok(raced
            .into_iter()
            .map(|r| match r {
                Some(subject) => Err(StoreError::KeyRace { subject }),
                // `decide` answers each request it is given, in order.
                None => outcomes.next().unwrap_or_else(|| {
                    Err(sqlx::Error::Protocol("a request of the batch was not decided".into()).into())
                }),
            })
            .collect())
    }

    /// A connection that sees `tenant`'s rows only.
    async fn scoped(&self, tenant: TenantId) -> Result<PoolConnection<sqlx::Postgres>, StoreError> {
        let mut conn = self.tenant_pool.acquire().await?;
        sqlx::query("SELECT set_config('tenantry.tenant_id', $1, false)")
            .bind(tenant.to_string())
            .execute(&mut *conn)
            .await?;
        Ok(conn)
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

#[async_trait]
impl Backend for Postgres {
    async fn purge_log(&self, tenant: TenantId) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let id = tenant.as_uuid();
        // The head lock: an append in flight finishes first, and none starts meanwhile.
        sqlx::query("SELECT 1 FROM tenant_heads WHERE tenant_id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let events =
            sqlx::query("DELETE FROM events WHERE tenant_id = $1").bind(id).execute(&mut *tx).await?;
        for table in ["idempotency_keys", "subject_keys", "blobs", "tenant_heads"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE tenant_id = $1"))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO tenant_keys (tenant_id, wrapped_key, destroyed_at) VALUES ($1, NULL, now())
             ON CONFLICT (tenant_id) DO UPDATE SET wrapped_key = NULL,
                 destroyed_at = COALESCE(tenant_keys.destroyed_at, now())",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(events.rows_affected())
    }

    async fn scrub(&self) -> Result<(), StoreError> {
        // The last step of a purge: every table that holds rows by tenant is vacuumed, so the
        // deleted rows' tuples are pruned and their space reused, not kept as dead versions.
        // (VACUUM does not zero the space it frees: see the README on purge.)
        let tables: Vec<(String,)> = sqlx::query_as(
            "SELECT DISTINCT c.table_name::text FROM information_schema.columns c
             JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
             WHERE c.column_name = 'tenant_id' AND c.table_schema = current_schema()
               AND t.table_type = 'BASE TABLE'
             ORDER BY 1",
        )
        .fetch_all(&self.pool)
        .await?;
        if tables.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = tables.iter().map(|(t,)| format!("\"{}\"", t.replace('"', "\"\""))).collect();
        // Outside any transaction, in the simple protocol, as VACUUM must be; as the tables'
        // owner (a role that does not own them is skipped with a warning).
        let owner = self.as_owner().await?;
        sqlx::raw_sql(&format!("VACUUM {}", list.join(", "))).execute(&owner).await?;
        owner.close().await;
        Ok(())
    }

    fn stores_minted_keys(&self) -> bool {
        true
    }

    async fn append(&self, tenant: TenantId, batch: &Arc<SealedBatch>) -> Result<Attempt, StoreError> {
        let batch = batch.as_ref();
        // A group commit of one: one checked statement when the tenant's head is known, else
        // decided under its lock (which makes it known). Bodies kept beside the log, and an
        // append that path could not commit, go through the append function.
        if batch.blobs.is_empty() {
            match self.group(&[(tenant, batch)]).await {
                Ok(mut outcomes) if outcomes.len() == 1 => return outcomes.remove(0),
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "a group commit of one failed; appending through the function")
                }
            }
        }
        let attempt = self.append_alone(tenant, batch).await;
        // The head moved without this process learning where to.
        self.known.forget(&[(tenant, batch)]);
        attempt
    }

    async fn append_many(
        &self,
        requests: &[(TenantId, Arc<SealedBatch>)],
    ) -> Result<Vec<Result<Attempt, StoreError>>, StoreError> {
        let requests: Vec<(TenantId, &SealedBatch)> =
            requests.iter().map(|(t, b)| (*t, b.as_ref())).collect();
        self.group(&requests).await
    }

    async fn read_blob(&self, tenant: TenantId, id: Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        let row: Option<(Vec<u8>,)> =
            sqlx::query_as("SELECT sealed FROM blobs WHERE tenant_id = $1 AND blob_id = $2")
                .bind(tenant.as_uuid())
                .bind(id)
                .fetch_optional(&mut *self.scoped(tenant).await?)
                .await?;
        Ok(row.map(|(b,)| b))
    }

    async fn find_events(&self, tenant: TenantId, ids: &[EventId]) -> Result<Vec<u64>, StoreError> {
        let ids: Vec<Uuid> = ids.iter().map(|i| *i.as_uuid()).collect();
        let rows: Vec<(i64,)> =
            sqlx::query_as("SELECT position FROM events WHERE tenant_id = $1 AND event_id = ANY($2)")
                .bind(tenant.as_uuid())
                .bind(&ids)
                .fetch_all(&mut *self.scoped(tenant).await?)
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
        .fetch_optional(&mut *self.scoped(tenant).await?)
        .await?;
        Ok(row.map(|(request_hash, f, l)| StoredIdempotency {
            request_hash,
            first_position: f as u64,
            last_position: l as u64,
        }))
    }

    // Positions and stream versions have no gaps, so a page is a closed range: the plan
    // stays an index range scan whatever the table statistics say.
    async fn read_log(&self, tenant: TenantId, after: u64, limit: u32) -> Result<Vec<RawEvent>, StoreError> {
        // Far past any position, the range is empty (and its end cannot overflow).
        let from = i64::try_from(after).unwrap_or(i64::MAX);
        let sql = format!(
            "SELECT {COLUMNS} FROM events WHERE tenant_id = $1 AND position > $2 AND position <= $3
             ORDER BY position"
        );
        let rows = sqlx::query(&sql)
            .bind(tenant.as_uuid())
            .bind(from)
            .bind(from.saturating_add(i64::from(limit)))
            .fetch_all(&mut *self.scoped(tenant).await?)
            .await?;
        Ok(rows.iter().map(raw).collect::<Result<_, _>>()?)
    }

    async fn read_logs(
        &self,
        from: &[(TenantId, u64)],
        limit: u32,
    ) -> Result<Vec<Vec<RawEvent>>, StoreError> {
        let (tenants, after): (Vec<Uuid>, Vec<i64>) =
            from.iter().map(|(t, a)| (*t.as_uuid(), *a as i64)).unzip();
        let sql = format!(
            "SELECT e.*, c.i FROM unnest($1::uuid[], $2::bigint[]) WITH ORDINALITY AS c(t, p, i)
             CROSS JOIN LATERAL (SELECT {COLUMNS} FROM events WHERE tenant_id = c.t AND position > c.p
                                 AND position <= c.p + $3 ORDER BY position) e
             ORDER BY c.i, e.position"
        );
        let rows =
            sqlx::query(&sql).bind(tenants).bind(after).bind(limit as i64).fetch_all(&self.pool).await?;
        let mut pages: Vec<Vec<RawEvent>> = from.iter().map(|_| Vec::new()).collect();
        for row in &rows {
            let i = row.try_get::<i64, _>(11)? as usize - 1;
            pages[i].push(raw(row)?);
        }
        Ok(pages)
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
             AND stream_version <= $3 + $4 ORDER BY stream_version"
        );
        let rows = sqlx::query(&sql)
            .bind(tenant.as_uuid())
            .bind(stream)
            .bind(after_version as i64)
            .bind(limit as i64)
            .fetch_all(&mut *self.scoped(tenant).await?)
            .await?;
        Ok(rows.iter().map(raw).collect::<Result<_, _>>()?)
    }

    async fn head(&self, tenant: TenantId) -> Result<Option<Head>, StoreError> {
        let row: Option<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT position, last_hash FROM tenant_heads WHERE tenant_id = $1")
                .bind(tenant.as_uuid())
                .fetch_optional(&mut *self.scoped(tenant).await?)
                .await?;
        Ok(row.map(|(p, h)| Head { position: p as u64, last_hash: to_hash(&h) }))
    }

    async fn stream_version(&self, tenant: TenantId, stream: &str) -> Result<u64, StoreError> {
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT stream_version FROM events WHERE tenant_id = $1 AND stream_id = $2
                 ORDER BY stream_version DESC LIMIT 1",
        )
        .bind(tenant.as_uuid())
        .bind(stream)
        .fetch_optional(&mut *self.scoped(tenant).await?)
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

#[async_trait]
impl KeyBackend for Postgres {
    async fn load_key(&self, tenant: TenantId) -> Result<StoredKey, StoreError> {
        let row: Option<(Option<Vec<u8>>,)> =
            sqlx::query_as("SELECT wrapped_key FROM tenant_keys WHERE tenant_id = $1")
                .bind(tenant.as_uuid())
                .fetch_optional(&self.pool)
                .await?;
        Ok(StoredKey::from_row(row))
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

    async fn load_subject_key(&self, tenant: TenantId, subject: Uuid) -> Result<StoredKey, StoreError> {
        let row: Option<(Option<Vec<u8>>,)> =
            sqlx::query_as("SELECT wrapped_key FROM subject_keys WHERE tenant_id = $1 AND subject_id = $2")
                .bind(tenant.as_uuid())
                .bind(subject)
                .fetch_optional(&self.pool)
                .await?;
        Ok(StoredKey::from_row(row))
    }

    async fn insert_subject_key(
        &self,
        tenant: TenantId,
        subject: Uuid,
        wrapped: &[u8],
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO subject_keys (tenant_id, subject_id, wrapped_key) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(tenant.as_uuid())
        .bind(subject)
        .bind(wrapped)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn tenant_keys_after(
        &self,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<(Uuid, Vec<u8>)>, StoreError> {
        let rows: Vec<(Uuid, Vec<u8>)> = match after {
            None => sqlx::query_as(
                "SELECT tenant_id, wrapped_key FROM tenant_keys WHERE wrapped_key IS NOT NULL
                 ORDER BY tenant_id LIMIT $1",
            )
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?,
            Some(after) => sqlx::query_as(
                "SELECT tenant_id, wrapped_key FROM tenant_keys WHERE wrapped_key IS NOT NULL AND tenant_id > $1
                 ORDER BY tenant_id LIMIT $2",
            )
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?,
        };
        Ok(rows)
    }

    async fn subject_keys_after(
        &self,
        after: Option<(Uuid, Uuid)>,
        limit: u32,
    ) -> Result<Vec<(Uuid, Uuid, Vec<u8>)>, StoreError> {
        let rows: Vec<(Uuid, Uuid, Vec<u8>)> = match after {
            None => sqlx::query_as(
                "SELECT tenant_id, subject_id, wrapped_key FROM subject_keys WHERE wrapped_key IS NOT NULL
                 ORDER BY tenant_id, subject_id LIMIT $1",
            )
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?,
            Some((tenant, subject)) => {
                sqlx::query_as(
                    "SELECT tenant_id, subject_id, wrapped_key FROM subject_keys
                 WHERE wrapped_key IS NOT NULL AND (tenant_id > $1 OR (tenant_id = $2 AND subject_id > $3))
                 ORDER BY tenant_id, subject_id LIMIT $4",
                )
                .bind(tenant)
                .bind(tenant)
                .bind(subject)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
            }
        };
        Ok(rows)
    }

    async fn rewrap(
        &self,
        tenant: Uuid,
        subject: Option<Uuid>,
        old: &[u8],
        new: &[u8],
    ) -> Result<bool, StoreError> {
        let done = match subject {
            None => sqlx::query("UPDATE tenant_keys SET wrapped_key = $1 WHERE tenant_id = $2 AND wrapped_key = $3")
                .bind(new)
                .bind(tenant)
                .bind(old)
                .execute(&self.pool)
                .await?,
            Some(subject) => sqlx::query(
                "UPDATE subject_keys SET wrapped_key = $1 WHERE tenant_id = $2 AND subject_id = $3 AND wrapped_key = $4",
            )
            .bind(new)
            .bind(tenant)
            .bind(subject)
            .bind(old)
            .execute(&self.pool)
            .await?,
        };
        Ok(done.rows_affected() == 1)
    }

    async fn destroy_subject_key(&self, tenant: TenantId, subject: Uuid) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO subject_keys (tenant_id, subject_id, wrapped_key, destroyed_at) VALUES ($1, $2, NULL, now())
             ON CONFLICT (tenant_id, subject_id) DO UPDATE SET wrapped_key = NULL,
                 destroyed_at = COALESCE(subject_keys.destroyed_at, now())",
        )
        .bind(tenant.as_uuid())
        .bind(subject)
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

    async fn delete_subject_keys(&self, tenant: TenantId) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM subject_keys WHERE tenant_id = $1")
            .bind(tenant.as_uuid())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn scrub_keys(&self) -> Result<(), StoreError> {
        // Dead versions of destroyed keys are pruned (VACUUM does not zero the space it
        // frees; the README says what that leaves and for how long).
        let owner = self.as_owner().await?;
        sqlx::raw_sql("VACUUM tenant_keys, subject_keys").execute(&owner).await?;
        owner.close().await;
        Ok(())
    }

    async fn export_keys(&self) -> Result<Vec<KeyRow>, StoreError> {
        let tenants: Vec<(Uuid, Option<Vec<u8>>)> =
            sqlx::query_as("SELECT tenant_id, wrapped_key FROM tenant_keys").fetch_all(&self.pool).await?;
        let subjects: Vec<(Uuid, Uuid, Option<Vec<u8>>)> =
            sqlx::query_as("SELECT tenant_id, subject_id, wrapped_key FROM subject_keys")
                .fetch_all(&self.pool)
                .await?;
        Ok(key_rows(tenants, subjects))
    }

    async fn import_keys(&self, rows: &[KeyRow]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for row in rows {
            let destroyed = row.wrapped.is_none().then(chrono::Utc::now);
            let query = match row.subject {
                None => sqlx::query(
                    "INSERT INTO tenant_keys (tenant_id, wrapped_key, destroyed_at) VALUES ($1, $2, $3)
                     ON CONFLICT DO NOTHING",
                )
                .bind(row.tenant),
                Some(subject) => sqlx::query(
                    "INSERT INTO subject_keys (tenant_id, subject_id, wrapped_key, destroyed_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT DO NOTHING",
                )
                .bind(row.tenant)
                .bind(subject),
            };
            query.bind(row.wrapped.as_deref()).bind(destroyed).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn drop_wrapped_keys(&self) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let subjects = sqlx::query("DELETE FROM subject_keys").execute(&mut *tx).await?.rows_affected();
        let tenants = sqlx::query("DELETE FROM tenant_keys WHERE wrapped_key IS NOT NULL")
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(subjects + tenants)
    }
}

/// The array arguments of `tenantry_append`: one request's expectations and events.
struct AppendArgs<'a> {
    streams: Vec<&'a str>,
    expected: Vec<i64>,
    ev_streams: Vec<&'a str>,
    event_ids: Vec<Uuid>,
    types: Vec<&'a str>,
    schema_versions: Vec<i16>,
    payloads: Vec<&'a [u8]>,
    metadata: Vec<&'a [u8]>,
}

impl<'a> AppendArgs<'a> {
    fn of(batch: &'a SealedBatch) -> Self {
        let events = &batch.events;
        Self {
            streams: batch.expectations.iter().map(|(s, _)| s.as_str()).collect(),
            expected: batch.expectations.iter().map(|(_, e)| expected_code(*e)).collect(),
            ev_streams: events.iter().map(|e| e.stream.as_str()).collect(),
            event_ids: events.iter().map(|e| *e.event_id.as_uuid()).collect(),
            types: events.iter().map(|e| e.event_type.as_str()).collect(),
            schema_versions: events.iter().map(|e| e.schema_version as i16).collect(),
            payloads: events.iter().map(|e| &e.payload[..]).collect(),
            metadata: events.iter().map(|e| &e.metadata[..]).collect(),
        }
    }
}

/// An expected version as the append functions take it: -1 any, 0 no stream, else exact.
fn expected_code(expected: ExpectedVersion) -> i64 {
    match expected {
        ExpectedVersion::Any => -1,
        ExpectedVersion::NoStream => 0,
        ExpectedVersion::Exact(v) => v as i64,
    }
}

/// The limits as the append functions take them: '' none, `uncharged`, or the quota's setting.
fn quota_code(batch: &SealedBatch) -> String {
    if batch.uncharged {
        "uncharged".to_owned()
    } else {
        batch.quota.map(|q| q.setting()).unwrap_or_default()
    }
}

/// The streams, event ids and idempotency keys a group commit names, as array arguments.
#[derive(Default)]
struct Named<'a> {
    stream_tenants: Vec<Uuid>,
    streams: Vec<&'a str>,
    event_tenants: Vec<Uuid>,
    event_ids: Vec<Uuid>,
    key_tenants: Vec<Uuid>,
    keys: Vec<&'a str>,
}

impl<'a> Named<'a> {
    fn push(&mut self, tenant: Uuid, batch: &'a SealedBatch) {
        for (stream, _) in &batch.expectations {
            self.stream_tenants.push(tenant);
            self.streams.push(stream.as_str());
        }
        for e in &batch.events {
            self.event_tenants.push(tenant);
            self.event_ids.push(*e.event_id.as_uuid());
        }
        if let Some((key, _)) = &batch.idempotency {
            self.key_tenants.push(tenant);
            self.keys.push(key);
        }
    }
}

/// Stream versions a group commit was decided on (0: no stream).
#[derive(Default)]
struct Held {
    tenants: Vec<Uuid>,
    streams: Vec<String>,
    versions: Vec<i64>,
}

impl Held {
    fn of(found: &Found) -> Self {
        let mut held = Self::default();
        for ((tenant, stream), version) in &found.versions {
            held.tenants.push(*tenant.as_uuid());
            held.streams.push(stream.clone());
            held.versions.push(*version as i64);
        }
        held
    }

    /// Those of the streams no request of `decided` writes (only checked): a written one is
    /// checked by its own write.
    fn unwritten(self, decided: &Decided<'_>) -> Self {
        let mut held = Self::default();
        for ((tenant, stream), version) in self.tenants.into_iter().zip(self.streams).zip(self.versions) {
            if !decided.streams.iter().any(|w| *w.tenant.as_uuid() == tenant && w.stream == stream) {
                held.tenants.push(tenant);
                held.streams.push(stream);
                held.versions.push(version);
            }
        }
        held
    }
}

/// Store the keys minted for `requests` where no key of their subject is stored yet: for each
/// request, the subject of a key of its that another append stored first (`None`: all its
/// own are stored).
async fn store_minted(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    requests: &[(TenantId, &SealedBatch)],
) -> Result<Vec<Option<Uuid>>, sqlx::Error> {
    let minted = Minted::of(requests);
    if minted.tenants.is_empty() {
        return Ok(vec![None; requests.len()]);
    }
    // Two requests of a batch may mint for the same subject: the one whose bytes were stored
    // keeps it.
    let stored: HashMap<(Uuid, Uuid), Vec<u8>> = sqlx::query_as::<_, (Uuid, Uuid, Vec<u8>)>(
        "INSERT INTO subject_keys (tenant_id, subject_id, wrapped_key)
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::bytea[])
         ON CONFLICT DO NOTHING
         RETURNING tenant_id, subject_id, wrapped_key",
    )
    .bind(&minted.tenants)
    .bind(&minted.subjects)
    .bind(&minted.wrapped)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .map(|(tenant, subject, wrapped)| ((tenant, subject), wrapped))
    .collect();
    Ok(requests
        .iter()
        .map(|(tenant, batch)| {
            batch
                .minted
                .iter()
                .find(|m| stored.get(&(*tenant.as_uuid(), m.subject)) != Some(&m.wrapped))
                .map(|m| m.subject)
        })
        .collect())
}

/// The keys minted for a batch's requests ([`SealedBatch::minted`]), as array arguments.
#[derive(Default)]
struct Minted<'a> {
    tenants: Vec<Uuid>,
    subjects: Vec<Uuid>,
    wrapped: Vec<&'a [u8]>,
}

impl<'a> Minted<'a> {
    fn of<'r>(requests: impl IntoIterator<Item = &'r (TenantId, &'a SealedBatch)>) -> Self
    where
        'a: 'r,
    {
        let mut m = Self::default();
        for (tenant, batch) in requests {
            for key in &batch.minted {
                m.tenants.push(*tenant.as_uuid());
                m.subjects.push(key.subject);
                m.wrapped.push(&key.wrapped);
            }
        }
        m
    }
}

/// Write a decided group commit with one statement: its events, heads and keys. Each head
/// moves only from the position the decision found it at, and each stream it was decided on,
/// written or not, still has its newest event at the version decided on (migration 0028: a
/// stream's version is its newest event's; a stream another process appends to meanwhile
/// moves its tenant's head), so a decision made on what was known, not read under the locks,
/// is refused whole (by `tenantry_stale`, migration 0027, or a unique index) when something
/// moved.
async fn write<'e>(
    executor: impl Executor<'e, Database = sqlx::Postgres>,
    decided: &Decided<'_>,
    held: &Held,
    minted: &Minted<'_>,
) -> Result<(), sqlx::Error> {
    let w = Writes::of(decided);
    let moved_streams = w.stream_was.iter().filter(|v| **v > 0).count();
    let checks = w.head_tenants.len() + moved_streams + held.tenants.len();
    // A statement that names a table costs its executor the table's opening even for no rows:
    // each part is in the statement only when the batch has rows for it.
    let parts = [moved_streams > 0, !held.tenants.is_empty(), !w.keys.is_empty(), !minted.tenants.is_empty()];
    let sql = &WRITE[parts.iter().enumerate().map(|(i, on)| usize::from(*on) << i).sum::<usize>()];
    sqlx::query(sql)
        .bind(&w.tenants)
        .bind(&w.positions)
        .bind(&w.streams)
        .bind(&w.versions)
        .bind(&w.event_ids)
        .bind(&w.types)
        .bind(&w.schema_versions)
        .bind(&w.recorded_at)
        .bind(&w.payloads)
        .bind(&w.metadata)
        .bind(&w.prev_hashes)
        .bind(&w.hashes)
        .bind(&w.stream_tenants)
        .bind(&w.stream_ids)
        .bind(&w.stream_was)
        .bind(&w.head_tenants)
        .bind(&w.head_was)
        .bind(&w.head_positions)
        .bind(&w.head_hashes)
        .bind(&w.head_stored)
        .bind(&w.head_days)
        .bind(&w.head_calls)
        .bind(checks as i64)
        .bind(&held.tenants)
        .bind(&held.streams)
        .bind(&held.versions)
        .bind(&w.key_tenants)
        .bind(&w.keys)
        .bind(&w.key_hashes)
        .bind(&w.key_first)
        .bind(&w.key_last)
        .bind(&minted.tenants)
        .bind(&minted.subjects)
        .bind(&minted.wrapped)
        .execute(executor)
        .await?;
    Ok(())
}

/// [`write`]'s statement: events and heads written, then checked (`$23`: how many heads must
/// have moved, written streams been where decided, and streams be held); the [`WRITE_PARTS`]
/// between them. Parameters a form leaves out are bound all the same (typed, empty).
const WRITE_FORM: &str = "WITH written_events AS (
         INSERT INTO events (tenant_id, position, stream_id, stream_version, event_id, event_type,
                             schema_version, recorded_at, payload, metadata, prev_hash, hash)
         SELECT * FROM unnest($1::uuid[], $2::int8[], $3::text[], $4::int8[], $5::uuid[],
                              $6::text[], $7::int2[], $8::int8[], $9::bytea[], $10::bytea[],
                              $11::bytea[], $12::bytea[])
     ), moved_heads AS (
         UPDATE tenant_heads h
         SET position = x.position, last_hash = x.last_hash, stored_bytes = x.stored_bytes,
             day = x.day, day_calls = x.day_calls
         FROM unnest($16::uuid[], $17::int8[], $18::int8[], $19::bytea[], $20::int8[], $21::int8[],
                     $22::int8[])
              AS x(tenant_id, was, position, last_hash, stored_bytes, day, day_calls)
         WHERE h.tenant_id = x.tenant_id AND h.position = x.was
         RETURNING 1
     ){parts}, checked AS MATERIALIZED (
         SELECT (SELECT count(*) FROM moved_heads){counts} AS n
     )
     SELECT tenantry_stale(n, $23) FROM checked WHERE n <> $23";

/// The optional parts of [`WRITE_FORM`], each with what it adds to the check: streams written
/// that were there before and streams decided on but only checked (each stream's newest event
/// at the version decided on: a backward scan of the events' (tenant, stream, version) index,
/// which a generic plan keeps to, where an equality on the version let it pick the event-id
/// index and scan the tenant's events; a new stream's first event is refused by that unique
/// index if the stream was not new), idempotency keys, and the person and conversation keys
/// minted for the batch.
const WRITE_PARTS: [(&str, &str); 4] = [
    (
        ", moved_streams AS (
         SELECT count(*) AS n
         FROM unnest($13::uuid[], $14::text[], $15::int8[]) AS x(tenant_id, stream_id, was)
         WHERE x.was > 0
           AND (SELECT e.stream_version FROM events e
                WHERE e.tenant_id = x.tenant_id AND e.stream_id = x.stream_id
                ORDER BY e.stream_version DESC LIMIT 1) = x.was
     )",
        " + (SELECT n FROM moved_streams)",
    ),
    (
        ", held_streams AS (
         SELECT count(*) AS n
         FROM unnest($24::uuid[], $25::text[], $26::int8[]) AS x(tenant_id, stream_id, version)
         WHERE COALESCE((SELECT e.stream_version FROM events e
                         WHERE e.tenant_id = x.tenant_id AND e.stream_id = x.stream_id
                         ORDER BY e.stream_version DESC LIMIT 1), 0) = x.version
     )",
        " + (SELECT n FROM held_streams)",
    ),
    (
        ", written_keys AS (
         INSERT INTO idempotency_keys (tenant_id, key, request_hash, first_position, last_position)
         SELECT * FROM unnest($27::uuid[], $28::text[], $29::bytea[], $30::int8[], $31::int8[])
     )",
        "",
    ),
    (
        // Never over another key: a subject's key stored meanwhile fails the statement.
        ", minted_keys AS (
         INSERT INTO subject_keys (tenant_id, subject_id, wrapped_key)
         SELECT * FROM unnest($32::uuid[], $33::uuid[], $34::bytea[])
     )",
        "",
    ),
];

/// Every form of [`WRITE_FORM`], by which of [`WRITE_PARTS`] it has (bit `i`: part `i`).
static WRITE: LazyLock<Vec<String>> = LazyLock::new(|| {
    (0..1 << WRITE_PARTS.len())
        .map(|form: usize| {
            let on = || WRITE_PARTS.iter().enumerate().filter(move |(i, _)| form & (1 << i) != 0);
            let parts: String = on().map(|(_, (part, _))| *part).collect();
            let counts: String = on().map(|(_, (_, count))| *count).collect();
            WRITE_FORM.replace("{parts}", &parts).replace("{counts}", &counts)
        })
        .collect()
});

/// Every row a decided group commit writes, as array arguments.
#[derive(Default)]
struct Writes<'a> {
    tenants: Vec<Uuid>,
    positions: Vec<i64>,
    streams: Vec<&'a str>,
    versions: Vec<i64>,
    event_ids: Vec<Uuid>,
    types: Vec<&'a str>,
    schema_versions: Vec<i16>,
    recorded_at: Vec<i64>,
    payloads: Vec<&'a [u8]>,
    metadata: Vec<&'a [u8]>,
    prev_hashes: Vec<&'a [u8]>,
    hashes: Vec<&'a [u8]>,
    stream_tenants: Vec<Uuid>,
    stream_ids: Vec<&'a str>,
    stream_was: Vec<i64>,
    head_tenants: Vec<Uuid>,
    head_was: Vec<i64>,
    head_positions: Vec<i64>,
    head_hashes: Vec<&'a [u8]>,
    head_stored: Vec<i64>,
    head_days: Vec<i64>,
    head_calls: Vec<i64>,
    key_tenants: Vec<Uuid>,
    keys: Vec<&'a str>,
    key_hashes: Vec<&'a [u8]>,
    key_first: Vec<i64>,
    key_last: Vec<i64>,
}

impl<'a> Writes<'a> {
    fn of(decided: &'a Decided<'a>) -> Self {
        let mut w = Self::default();
        for e in &decided.events {
            w.tenants.push(*e.tenant.as_uuid());
            w.positions.push(e.row.position as i64);
            w.streams.push(e.event.stream.as_str());
            w.versions.push(e.row.stream_version as i64);
            w.event_ids.push(*e.event.event_id.as_uuid());
            w.types.push(&e.event.event_type);
            w.schema_versions.push(e.event.schema_version as i16);
            w.recorded_at.push(e.recorded_at);
            w.payloads.push(&e.event.payload);
            w.metadata.push(&e.event.metadata);
            w.prev_hashes.push(&e.row.prev_hash);
            w.hashes.push(&e.row.hash);
        }
        for s in &decided.streams {
            w.stream_tenants.push(*s.tenant.as_uuid());
            w.stream_ids.push(&s.stream);
            w.stream_was.push(s.was as i64);
        }
        for WrittenHead { tenant, was, state } in &decided.heads {
            w.head_tenants.push(*tenant.as_uuid());
            w.head_was.push(*was as i64);
            w.head_positions.push(state.head.position as i64);
            w.head_hashes.push(&state.head.last_hash);
            w.head_stored.push(state.stored_bytes);
            w.head_days.push(state.day);
            w.head_calls.push(state.day_calls);
        }
        for (tenant, key, hash, first, last) in &decided.keys {
            w.key_tenants.push(*tenant.as_uuid());
            w.keys.push(key);
            w.key_hashes.push(&hash[..]);
            w.key_first.push(*first as i64);
            w.key_last.push(*last as i64);
        }
        w
    }
}
