//! The embedded SQLite backend: WAL, one writer connection taking `BEGIN IMMEDIATE`, a pool
//! of readers.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Connection, Row};
use tenantry_domain::{EventId, TenantId};
use tokio::sync::OwnedMutexGuard;
use uuid::Uuid;

use crate::backend::*;
use crate::chain::GENESIS;
use crate::error::StoreError;
use crate::model::Head;

pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static KEYS_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/keys/sqlite");

#[derive(Debug, Clone)]
pub(crate) struct Sqlite {
    /// One connection: SQLite has one writer at a time, and queueing in the pool is cheaper
    /// than `SQLITE_BUSY` retries.
    pub(crate) write: SqlitePool,
    pub(crate) read: SqlitePool,
    /// This process's turn at writing the file, shared with its other writers.
    turn: WriteTurn,
}

/// Turns at writing one SQLite file, shared by every writer of it in this process (the log's
/// appends, the projectors): they queue here, first come first served, before they take
/// SQLite's write lock. Writers that met at SQLite's lock instead waited in its busy handler,
/// which sleeps 1 ms, then 2, 5, 10 and up to 100 ms between tries, and could find the lock
/// taken again each time it woke. Another process still waits in the busy handler.
pub type WriteTurn = Arc<tokio::sync::Mutex<()>>;

/// Every file's turn, while anyone holds it.
static TURNS: LazyLock<Mutex<HashMap<PathBuf, Weak<tokio::sync::Mutex<()>>>>> = LazyLock::new(Mutex::default);

/// The turn at writing the SQLite file at `path` (however the path is spelled).
pub(crate) fn write_turn(path: &Path) -> WriteTurn {
    let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mut turns = TURNS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(turn) = turns.get(&key).and_then(Weak::upgrade) {
        return turn;
    }
    turns.retain(|_, turn| turn.strong_count() > 0);
    let turn = WriteTurn::default();
    turns.insert(key, Arc::downgrade(&turn));
    turn
}

/// The file a `sqlite://PATH` url names; `None` for another url.
pub(crate) fn url_path(url: &str) -> Option<PathBuf> {
    let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    PathBuf::from_str(path.split('?').next().unwrap_or(path)).ok()
}

/// The turn at writing the SQLite file a `sqlite://PATH` url names; `None` for another url.
pub fn sqlite_write_turn(url: &str) -> Option<WriteTurn> {
    url_path(url).map(|path| write_turn(&path))
}

/// The writer's connection, held with this process's turn at the file.
pub(crate) struct Writer {
    conn: PoolConnection<sqlx::Sqlite>,
    _turn: OwnedMutexGuard<()>,
}

impl Writer {
    /// `write`'s connection, taken in `turn`.
    pub(crate) async fn take(write: &SqlitePool, turn: &WriteTurn) -> Result<Self, StoreError> {
        let turn = turn.clone().lock_owned().await;
        Ok(Self { conn: write.acquire().await?, _turn: turn })
    }
}

impl Deref for Writer {
    type Target = sqlx::SqliteConnection;

    fn deref(&self) -> &Self::Target {
        &self.conn
    }
}

impl DerefMut for Writer {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.conn
    }
}

/// A database file in WAL mode, created if missing, waiting on the writer's lock.
fn connect_options(path: &Path, synchronous: SqliteSynchronous) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(synchronous)
        .busy_timeout(Duration::from_secs(30))
        // Deleted content is overwritten with zeros: a purged tenant's rows (a destroyed key)
        // do not linger in free pages of the file.
        .pragma("secure_delete", "ON")
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Sqlite {
    pub(crate) async fn open(path: &Path) -> Result<Self, StoreError> {
        // In WAL mode NORMAL loses no committed transaction on a process crash; only a power
        // loss can drop the last few. FULL halves the append rate.
        let options = connect_options(path, SqliteSynchronous::Normal).pragma("cache_size", "-16384");
        // The writer's statement journals (what a multi-row statement undoes if it fails half
        // way) stay in memory: on disk they were a write of every page a batch touched, beside
        // its WAL frame.
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(options.clone().pragma("temp_store", "MEMORY"))
            .await?;
        MIGRATOR.run(&write).await?;
        let read = SqlitePoolOptions::new().max_connections(4).connect_with(options.read_only(true)).await?;
        Ok(Self { write, read, turn: write_turn(path) })
    }

    /// Open a key store apart from the event database (`keys.db`): the key tables only.
    pub(crate) async fn open_keys(path: &Path) -> Result<Self, StoreError> {
        // A key is written once per tenant or person: durability over speed.
        let options = connect_options(path, SqliteSynchronous::Full);
        let write = SqlitePoolOptions::new().max_connections(1).connect_with(options.clone()).await?;
        KEYS_MIGRATOR.run(&write).await?;
        let read = SqlitePoolOptions::new().max_connections(2).connect_with(options.read_only(true)).await?;
        Ok(Self { write, read, turn: write_turn(path) })
    }

    /// Open from a `sqlite://PATH` url.
    pub(crate) async fn open_url(url: &str) -> Result<Self, StoreError> {
        Self::open(&url_path(url).ok_or_else(|| StoreError::UnsupportedUrl(url.to_owned()))?).await
    }

    /// The writer's connection, once this process's other writers of the file are done.
    pub(crate) async fn writer(&self) -> Result<Writer, StoreError> {
        Writer::take(&self.write, &self.turn).await
    }

    /// This process's turn at writing the file.
    pub(crate) fn turn(&self) -> WriteTurn {
        self.turn.clone()
    }
}

const COLUMNS: &str = "position, stream_id, stream_version, event_id, event_type, schema_version, \
                       recorded_at, payload, metadata, prev_hash, hash";

fn raw(row: &SqliteRow) -> Result<RawEvent, sqlx::Error> {
    Ok(RawEvent {
        position: row.try_get::<i64, _>(0)? as u64,
        stream_id: row.try_get(1)?,
        stream_version: row.try_get::<i64, _>(2)? as u64,
        event_id: EventId::from_uuid(row.try_get(3)?),
        event_type: row.try_get(4)?,
        schema_version: row.try_get::<i64, _>(5)? as u16,
        recorded_at: row.try_get(6)?,
        payload: row.try_get(7)?,
        metadata: row.try_get(8)?,
        prev_hash: row.try_get(9)?,
        hash: row.try_get(10)?,
    })
}

#[async_trait]
impl Backend for Sqlite {
    async fn purge_log(&self, tenant: TenantId) -> Result<u64, StoreError> {
        let mut writer = self.writer().await?;
        let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
        let id = tenant.as_uuid();
        let events = sqlx::query("DELETE FROM events WHERE tenant_id = ?").bind(id).execute(&mut *tx).await?;
        for table in ["streams", "idempotency_keys", "subject_keys", "blobs", "tenant_heads"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE tenant_id = ?"))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO tenant_keys (tenant_id, wrapped_key, created_at, destroyed_at) VALUES (?1, NULL, ?2, ?2)
             ON CONFLICT (tenant_id) DO UPDATE SET wrapped_key = NULL,
                 destroyed_at = COALESCE(destroyed_at, excluded.destroyed_at)",
        )
        .bind(id)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(events.rows_affected())
    }

    async fn scrub(&self) -> Result<(), StoreError> {
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&mut *self.writer().await?).await?;
        Ok(())
    }

    async fn append(&self, tenant: TenantId, batch: &SealedBatch) -> Result<Attempt, StoreError> {
        let tid = tenant.as_uuid();
        // IMMEDIATE takes the write lock up front, so the reads below are current.
        let mut writer = self.writer().await?;
        let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
        // Bodies kept beside the log: written (or deleted) here, counted with the events.
        let mut blob_bytes = 0_i64;
        for blob in &batch.blobs {
            match &blob.sealed {
                Some(sealed) => {
                    sqlx::query("INSERT INTO blobs (tenant_id, blob_id, sealed, size) VALUES (?, ?, ?, ?)")
                        .bind(tid)
                        .bind(blob.id)
                        .bind(sealed)
                        .bind(blob.size)
                        .execute(&mut *tx)
                        .await?;
                    blob_bytes += blob.size;
                }
                None => {
                    let gone: Option<(i64,)> = sqlx::query_as(
                        "DELETE FROM blobs WHERE tenant_id = ? AND blob_id = ? RETURNING size",
                    )
                    .bind(tid)
                    .bind(blob.id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    blob_bytes -= gone.map_or(0, |(size,)| size);
                }
            }
        }
        // Decided and written as a batch of one, its bodies' bytes counted with it.
        let attempt = match decide_and_write(&mut tx, &[(tenant, batch)], blob_bytes).await {
            // `decide` answers each request it is given.
            Ok(mut outcomes) => outcomes
                .pop()
                .unwrap_or_else(|| Err(sqlx::Error::Protocol("an append decided nothing".into()).into())),
            Err(e) => Err(e),
        };
        if matches!(attempt, Ok(Attempt::Written(_))) {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        attempt
    }

    async fn append_many(
        &self,
        requests: &[(TenantId, &SealedBatch)],
    ) -> Result<Vec<Result<Attempt, StoreError>>, StoreError> {
        // One transaction of the one writer, one commit for every request in it.
        let mut writer = self.writer().await?;
        let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
        match decide_and_write(&mut tx, requests, 0).await {
            Ok(outcomes) => {
                tx.commit().await?;
                Ok(outcomes)
            }
            Err(e) => {
                tx.rollback().await?;
                Err(e)
            }
        }
    }

    async fn read_blob(&self, tenant: TenantId, id: Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        let row: Option<(Vec<u8>,)> =
            sqlx::query_as("SELECT sealed FROM blobs WHERE tenant_id = ? AND blob_id = ?")
                .bind(tenant.as_uuid())
                .bind(id)
                .fetch_optional(&self.read)
                .await?;
        Ok(row.map(|(b,)| b))
    }

    async fn find_events(&self, tenant: TenantId, ids: &[EventId]) -> Result<Vec<u64>, StoreError> {
        let mut out = Vec::new();
        for id in ids {
            let row: Option<(i64,)> =
                sqlx::query_as("SELECT position FROM events WHERE tenant_id = ? AND event_id = ?")
                    .bind(tenant.as_uuid())
                    .bind(id.as_uuid())
                    .fetch_optional(&self.read)
                    .await?;
            out.extend(row.map(|(p,)| p as u64));
        }
        Ok(out)
    }

    async fn find_idempotency(
        &self,
        tenant: TenantId,
        key: &str,
    ) -> Result<Option<StoredIdempotency>, StoreError> {
        let row: Option<(Vec<u8>, i64, i64)> = sqlx::query_as(
            "SELECT request_hash, first_position, last_position FROM idempotency_keys
             WHERE tenant_id = ? AND key = ?",
        )
        .bind(tenant.as_uuid())
        .bind(key)
        .fetch_optional(&self.read)
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
            "SELECT {COLUMNS} FROM events WHERE tenant_id = ?1 AND position > ?2 AND position <= ?3
             ORDER BY position"
        );
        let rows = sqlx::query(&sql)
            .bind(tenant.as_uuid())
            .bind(from)
            .bind(from.saturating_add(i64::from(limit)))
            .fetch_all(&self.read)
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
            "SELECT {COLUMNS} FROM events WHERE tenant_id = ?1 AND stream_id = ?2 AND stream_version > ?3
             AND stream_version <= ?3 + ?4 ORDER BY stream_version"
        );
        let rows = sqlx::query(&sql)
            .bind(tenant.as_uuid())
            .bind(stream)
            .bind(after_version as i64)
            .bind(limit as i64)
            .fetch_all(&self.read)
            .await?;
        Ok(rows.iter().map(raw).collect::<Result<_, _>>()?)
    }

    async fn head(&self, tenant: TenantId) -> Result<Option<Head>, StoreError> {
        let row: Option<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT position, last_hash FROM tenant_heads WHERE tenant_id = ?")
                .bind(tenant.as_uuid())
                .fetch_optional(&self.read)
                .await?;
        Ok(row.map(|(p, h)| Head { position: p as u64, last_hash: to_hash(&h) }))
    }

    async fn stream_version(&self, tenant: TenantId, stream: &str) -> Result<u64, StoreError> {
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT version FROM streams WHERE tenant_id = ? AND stream_id = ?")
                .bind(tenant.as_uuid())
                .bind(stream)
                .fetch_optional(&self.read)
                .await?;
        Ok(row.map_or(0, |(v,)| v as u64))
    }

    async fn tenant_heads(
        &self,
        after: Option<TenantId>,
        limit: u32,
    ) -> Result<Vec<(TenantId, u64)>, StoreError> {
        let rows: Vec<(Uuid, i64)> = sqlx::query_as(
            "SELECT tenant_id, position FROM tenant_heads WHERE tenant_id > ? AND position > 0
             ORDER BY tenant_id LIMIT ?",
        )
        .bind(after.map_or(Uuid::nil(), |t| *t.as_uuid()))
        .bind(limit as i64)
        .fetch_all(&self.read)
        .await?;
        Ok(rows.into_iter().map(|(t, p)| (TenantId::from_uuid(t), p as u64)).collect())
    }
}

#[async_trait]
impl KeyBackend for Sqlite {
    async fn load_key(&self, tenant: TenantId) -> Result<StoredKey, StoreError> {
        let row: Option<(Option<Vec<u8>>,)> =
            sqlx::query_as("SELECT wrapped_key FROM tenant_keys WHERE tenant_id = ?")
                .bind(tenant.as_uuid())
                .fetch_optional(&self.read)
                .await?;
        Ok(StoredKey::from_row(row))
    }

    async fn insert_key(&self, tenant: TenantId, wrapped: &[u8]) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tenant_keys (tenant_id, wrapped_key, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(tenant.as_uuid())
        .bind(wrapped)
        .bind(now_ms())
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(())
    }

    async fn load_subject_key(&self, tenant: TenantId, subject: Uuid) -> Result<StoredKey, StoreError> {
        let row: Option<(Option<Vec<u8>>,)> =
            sqlx::query_as("SELECT wrapped_key FROM subject_keys WHERE tenant_id = ? AND subject_id = ?")
                .bind(tenant.as_uuid())
                .bind(subject)
                .fetch_optional(&self.read)
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
            "INSERT INTO subject_keys (tenant_id, subject_id, wrapped_key, created_at) VALUES (?, ?, ?, ?)
             ON CONFLICT DO NOTHING",
        )
        .bind(tenant.as_uuid())
        .bind(subject)
        .bind(wrapped)
        .bind(now_ms())
        .execute(&mut *self.writer().await?)
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
                 ORDER BY tenant_id LIMIT ?",
            )
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await?,
            Some(after) => sqlx::query_as(
                "SELECT tenant_id, wrapped_key FROM tenant_keys WHERE wrapped_key IS NOT NULL AND tenant_id > ?
                 ORDER BY tenant_id LIMIT ?",
            )
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.read)
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
                 ORDER BY tenant_id, subject_id LIMIT ?",
            )
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await?,
            Some((tenant, subject)) => {
                sqlx::query_as(
                    "SELECT tenant_id, subject_id, wrapped_key FROM subject_keys
                 WHERE wrapped_key IS NOT NULL AND (tenant_id > ? OR (tenant_id = ? AND subject_id > ?))
                 ORDER BY tenant_id, subject_id LIMIT ?",
                )
                .bind(tenant)
                .bind(tenant)
                .bind(subject)
                .bind(i64::from(limit))
                .fetch_all(&self.read)
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
            None => sqlx::query("UPDATE tenant_keys SET wrapped_key = ? WHERE tenant_id = ? AND wrapped_key = ?")
                .bind(new)
                .bind(tenant)
                .bind(old)
                .execute(&mut *self.writer().await?)
                .await?,
            Some(subject) => sqlx::query(
                "UPDATE subject_keys SET wrapped_key = ? WHERE tenant_id = ? AND subject_id = ? AND wrapped_key = ?",
            )
            .bind(new)
            .bind(tenant)
            .bind(subject)
            .bind(old)
            .execute(&mut *self.writer().await?)
            .await?,
        };
        Ok(done.rows_affected() == 1)
    }

    async fn destroy_subject_key(&self, tenant: TenantId, subject: Uuid) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO subject_keys (tenant_id, subject_id, wrapped_key, created_at, destroyed_at)
             VALUES (?1, ?2, NULL, ?3, ?3)
             ON CONFLICT (tenant_id, subject_id) DO UPDATE SET wrapped_key = NULL,
                 destroyed_at = COALESCE(destroyed_at, excluded.destroyed_at)",
        )
        .bind(tenant.as_uuid())
        .bind(subject)
        .bind(now_ms())
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(())
    }

    async fn destroy_key(&self, tenant: TenantId) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tenant_keys (tenant_id, wrapped_key, created_at, destroyed_at) VALUES (?1, NULL, ?2, ?2)
             ON CONFLICT (tenant_id) DO UPDATE SET wrapped_key = NULL,
                 destroyed_at = COALESCE(destroyed_at, excluded.destroyed_at)",
        )
        .bind(tenant.as_uuid())
        .bind(now_ms())
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(())
    }

    async fn delete_subject_keys(&self, tenant: TenantId) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM subject_keys WHERE tenant_id = ?")
            .bind(tenant.as_uuid())
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(())
    }

    async fn scrub_keys(&self) -> Result<(), StoreError> {
        // secure_delete zeroed the freed bytes in the pages; the WAL's copies go here.
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&mut *self.writer().await?).await?;
        Ok(())
    }

    async fn export_keys(&self) -> Result<Vec<KeyRow>, StoreError> {
        let tenants: Vec<(Uuid, Option<Vec<u8>>)> =
            sqlx::query_as("SELECT tenant_id, wrapped_key FROM tenant_keys").fetch_all(&self.write).await?;
        let subjects: Vec<(Uuid, Uuid, Option<Vec<u8>>)> =
            sqlx::query_as("SELECT tenant_id, subject_id, wrapped_key FROM subject_keys")
                .fetch_all(&self.write)
                .await?;
        Ok(key_rows(tenants, subjects))
    }

    async fn import_keys(&self, rows: &[KeyRow]) -> Result<(), StoreError> {
        let mut writer = self.writer().await?;
        let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
        for row in rows {
            let (now, destroyed) = (now_ms(), row.wrapped.is_none().then(now_ms));
            let query = match row.subject {
                None => sqlx::query(
                    "INSERT INTO tenant_keys (tenant_id, wrapped_key, created_at, destroyed_at) VALUES (?, ?, ?, ?)
                     ON CONFLICT DO NOTHING",
                )
                .bind(row.tenant),
                Some(subject) => sqlx::query(
                    "INSERT INTO subject_keys (tenant_id, subject_id, wrapped_key, created_at, destroyed_at)
                     VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                )
                .bind(row.tenant)
                .bind(subject),
            };
            query.bind(row.wrapped.as_deref()).bind(now).bind(destroyed).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn drop_wrapped_keys(&self) -> Result<u64, StoreError> {
        let mut writer = self.writer().await?;
        let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
        let subjects = sqlx::query("DELETE FROM subject_keys").execute(&mut *tx).await?.rows_affected();
        let tenants = sqlx::query("DELETE FROM tenant_keys WHERE wrapped_key IS NOT NULL")
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(subjects + tenants)
    }
}

/// Appends in the writer's open transaction, with a few statements whatever their number:
/// read the heads and what they name, decide each in order in memory (`decide`, the same as
/// PostgreSQL's group commit), write every row of the written ones. A refused request leaves
/// nothing. `blob_bytes`: bytes of bodies the caller wrote (or freed) before, counted with the
/// request that carries them (only a single append does).
async fn decide_and_write(
    tx: &mut sqlx::SqliteConnection,
    requests: &[(TenantId, &SealedBatch)],
    blob_bytes: i64,
) -> Result<Vec<Result<Attempt, StoreError>>, StoreError> {
    let tenants = batch_tenants(requests);
    let found = read_batch(&mut *tx, &tenants, requests).await?;
    let decided = decide(requests, found, blob_bytes);
    write_batch(tx, &decided).await?;
    Ok(decided.outcomes)
}

/// Most bound values in one statement (SQLite allows 32,766).
const MAX_VARIABLES: usize = 30_000;

/// Events inserted by one statement of a batch.
const EVENT_ROWS: usize = 32;

/// `n` rows of `width` placeholders: `(?, ?), (?, ?)`.
fn placeholders(n: usize, width: usize) -> String {
    let row = format!("({})", vec!["?"; width].join(", "));
    vec![row; n].join(", ")
}

/// What a batch finds stored, in the writer's open transaction: its tenants' heads (a first
/// append's made, never a purged tenant's), the versions of the streams it names, and which of
/// its event ids and idempotency keys are taken.
async fn read_batch(
    tx: &mut sqlx::SqliteConnection,
    tenants: &[Uuid],
    requests: &[(TenantId, &SealedBatch)],
) -> Result<Found, StoreError> {
    let mut found = Found::default();
    for chunk in tenants.chunks(MAX_VARIABLES) {
        let sql = format!(
            "SELECT tenant_id, position, last_hash, stored_bytes, day, day_calls FROM tenant_heads
             WHERE tenant_id IN ({})",
            vec!["?"; chunk.len()].join(", ")
        );
        let mut query = sqlx::query_as::<_, (Uuid, i64, Vec<u8>, i64, i64, i64)>(&sql).persistent(false);
        for t in chunk {
            query = query.bind(t);
        }
        for (tenant, position, hash, stored_bytes, day, day_calls) in query.fetch_all(&mut *tx).await? {
            let head = Head { position: position as u64, last_hash: to_hash(&hash) };
            found.heads.insert(TenantId::from_uuid(tenant), HeadState { head, stored_bytes, day, day_calls });
        }
    }
    for tenant in tenants {
        let tenant = TenantId::from_uuid(*tenant);
        if found.heads.contains_key(&tenant) {
            continue;
        }
        // A purged tenant's head may not be made again: the trigger refuses this statement
        // alone, and the tenant's requests are refused (it has no head).
        let made = sqlx::query("INSERT INTO tenant_heads (tenant_id, position, last_hash) VALUES (?, 0, ?)")
            .bind(tenant.as_uuid())
            .bind(&GENESIS[..])
            .execute(&mut *tx)
            .await;
        match made {
            Ok(_) => {
                let head = Head { position: 0, last_hash: GENESIS };
                found.heads.insert(tenant, HeadState { head, stored_bytes: 0, day: 0, day_calls: 0 });
            }
            Err(e) if crate::error::shredded(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut streams: Vec<(Uuid, &str)> = Vec::new();
    let mut events: Vec<(Uuid, Uuid)> = Vec::new();
    let mut keys: Vec<(Uuid, &str)> = Vec::new();
    for (tenant, batch) in requests {
        let t = *tenant.as_uuid();
        streams.extend(batch.expectations.iter().map(|(s, _)| (t, s.as_str())));
        events.extend(batch.events.iter().map(|e| (t, *e.event_id.as_uuid())));
        if let Some((key, _)) = &batch.idempotency {
            keys.push((t, key.as_str()));
        }
    }
    // CROSS JOIN keeps the names the outer loop (SQLite's planner takes it as the join
    // order): one index lookup a name, never a scan of the table.
    for chunk in streams.chunks(MAX_VARIABLES / 2) {
        let sql = format!(
            "WITH w(t, s) AS (VALUES {})
             SELECT w.t, w.s, x.version FROM w CROSS JOIN streams x ON x.tenant_id = w.t AND x.stream_id = w.s",
            placeholders(chunk.len(), 2)
        );
        let mut query = sqlx::query_as::<_, (Uuid, String, i64)>(&sql).persistent(false);
        for (t, stream) in chunk {
            query = query.bind(t).bind(*stream);
        }
        for (tenant, stream, version) in query.fetch_all(&mut *tx).await? {
            found.versions.insert((TenantId::from_uuid(tenant), stream), version as u64);
        }
    }
    for chunk in events.chunks(MAX_VARIABLES / 2) {
        let sql = format!(
            "WITH w(t, e) AS (VALUES {})
             SELECT w.t, w.e FROM w CROSS JOIN events x ON x.tenant_id = w.t AND x.event_id = w.e",
            placeholders(chunk.len(), 2)
        );
        let mut query = sqlx::query_as::<_, (Uuid, Uuid)>(&sql).persistent(false);
        for (t, id) in chunk {
            query = query.bind(t).bind(id);
        }
        for (tenant, id) in query.fetch_all(&mut *tx).await? {
            found.events.insert((TenantId::from_uuid(tenant), EventId::from_uuid(id)));
        }
    }
    for chunk in keys.chunks(MAX_VARIABLES / 2) {
        let sql = format!(
            "WITH w(t, k) AS (VALUES {})
             SELECT w.t, w.k FROM w CROSS JOIN idempotency_keys x ON x.tenant_id = w.t AND x.key = w.k",
            placeholders(chunk.len(), 2)
        );
        let mut query = sqlx::query_as::<_, (Uuid, String)>(&sql).persistent(false);
        for (t, key) in chunk {
            query = query.bind(t).bind(*key);
        }
        for (tenant, key) in query.fetch_all(&mut *tx).await? {
            found.keys.insert((TenantId::from_uuid(tenant), key));
        }
    }
    Ok(found)
}

/// Every row a decided batch leaves: its events, streams, heads and idempotency keys, a few
/// multi-row statements each.
async fn write_batch(tx: &mut sqlx::SqliteConnection, decided: &Decided<'_>) -> Result<(), sqlx::Error> {
    // Events a few dozen rows a statement: a statement of hundreds of rows cost more to
    // prepare than its rows to insert, and a full chunk's statement is prepared once.
    for chunk in decided.events.chunks(EVENT_ROWS) {
        let sql = format!(
            "INSERT INTO events (tenant_id, position, stream_id, stream_version, event_id, event_type,
                                 schema_version, recorded_at, payload, metadata, prev_hash, hash)
             VALUES {}",
            placeholders(chunk.len(), 12)
        );
        let mut query = sqlx::query(&sql).persistent(chunk.len() == EVENT_ROWS);
        for e in chunk {
            query = query
                .bind(e.tenant.as_uuid())
                .bind(e.row.position as i64)
                .bind(e.event.stream.as_str())
                .bind(e.row.stream_version as i64)
                .bind(e.event.event_id.as_uuid())
                .bind(&e.event.event_type)
                .bind(e.event.schema_version as i64)
                .bind(e.recorded_at)
                .bind(&e.event.payload)
                .bind(&e.event.metadata)
                .bind(&e.row.prev_hash[..])
                .bind(&e.row.hash[..]);
        }
        query.execute(&mut *tx).await?;
    }
    for chunk in decided.streams.chunks(MAX_VARIABLES / 3) {
        let sql = format!(
            "INSERT INTO streams (tenant_id, stream_id, version) VALUES {}
             ON CONFLICT (tenant_id, stream_id) DO UPDATE SET version = excluded.version",
            placeholders(chunk.len(), 3)
        );
        let mut query = sqlx::query(&sql).persistent(false);
        for s in chunk {
            query = query.bind(s.tenant.as_uuid()).bind(&s.stream).bind(s.version as i64);
        }
        query.execute(&mut *tx).await?;
    }
    for chunk in decided.heads.chunks(MAX_VARIABLES / 6) {
        let sql = format!(
            "WITH w(t, p, h, s, d, c) AS (VALUES {})
             UPDATE tenant_heads SET position = w.p, last_hash = w.h, stored_bytes = w.s, day = w.d,
                                     day_calls = w.c
             FROM w WHERE tenant_heads.tenant_id = w.t",
            placeholders(chunk.len(), 6)
        );
        let mut query = sqlx::query(&sql).persistent(false);
        for WrittenHead { tenant, state, .. } in chunk {
            query = query
                .bind(tenant.as_uuid())
                .bind(state.head.position as i64)
                .bind(&state.head.last_hash[..])
                .bind(state.stored_bytes)
                .bind(state.day)
                .bind(state.day_calls);
        }
        query.execute(&mut *tx).await?;
    }
    for chunk in decided.keys.chunks(MAX_VARIABLES / 5) {
        let sql = format!(
            "INSERT INTO idempotency_keys (tenant_id, key, request_hash, first_position, last_position)
             VALUES {}",
            placeholders(chunk.len(), 5)
        );
        let mut query = sqlx::query(&sql).persistent(false);
        for (tenant, key, hash, first, last) in chunk {
            query = query
                .bind(tenant.as_uuid())
                .bind(*key)
                .bind(&hash[..])
                .bind(*first as i64)
                .bind(*last as i64);
        }
        query.execute(&mut *tx).await?;
    }
    Ok(())
}
