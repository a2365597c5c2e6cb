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
use crate::error::StoreError;
use crate::model::Head;
use crate::sqlite_log::LogWriter;

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
    /// The log's appends, on a connection and thread of their own (none for a key store).
    log: Option<LogWriter>,
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

/// The settings of every connection that writes the event database, whichever driver opens
/// it (the store's two writers, the projectors'), as `PRAGMA name = value`:
/// - `synchronous = NORMAL`: in WAL mode it loses no committed transaction on a process
///   crash, only the last few on a power loss; FULL halves the append rate.
/// - `secure_delete = ON`: deleted rows (a purged tenant's) are zeroed in the file.
/// - `temp_store = MEMORY`: a multi-row statement's journal (what it undoes if it fails half
///   way) stays in memory; on disk it was a write of every page a batch touched.
/// - `wal_autocheckpoint = 0`: checkpoints are the file's checkpointer's
///   ([`crate::sqlite_checkpointer`]), not a commit's.
pub const SQLITE_WRITER_PRAGMAS: [(&str, &str); 4] = [
    ("synchronous", "NORMAL"),
    ("secure_delete", "ON"),
    ("temp_store", "MEMORY"),
    ("wal_autocheckpoint", "0"),
];

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
        let options = connect_options(path, SqliteSynchronous::Normal).pragma("cache_size", "-16384");
        // Checkpoints are the file's checkpointer's, started with the log's writer.
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(
                SQLITE_WRITER_PRAGMAS
                    .iter()
                    .fold(options.clone(), |options, (pragma, value)| options.pragma(*pragma, *value)),
            )
            .await?;
        MIGRATOR.run(&write).await?;
        let read = SqlitePoolOptions::new().max_connections(4).connect_with(options.read_only(true)).await?;
        let log = Some(LogWriter::open(path)?);
        Ok(Self { write, read, turn: write_turn(path), log })
    }

    /// Open a key store apart from the event database (`keys.db`): the key tables only.
    pub(crate) async fn open_keys(path: &Path) -> Result<Self, StoreError> {
        // A key is written once per tenant or person: durability over speed.
        let options = connect_options(path, SqliteSynchronous::Full);
        let write = SqlitePoolOptions::new().max_connections(1).connect_with(options.clone()).await?;
        KEYS_MIGRATOR.run(&write).await?;
        let read = SqlitePoolOptions::new().max_connections(2).connect_with(options.read_only(true)).await?;
        Ok(Self { write, read, turn: write_turn(path), log: None })
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

    /// The log's writer; a key store has none.
    fn log(&self) -> Result<&LogWriter, StoreError> {
        self.log.as_ref().ok_or_else(|| StoreError::Io(std::io::Error::other("a key store holds no log")))
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

    async fn append(&self, tenant: TenantId, batch: &Arc<SealedBatch>) -> Result<Attempt, StoreError> {
        let turn = self.turn.clone().lock_owned().await;
        self.log()?.append(turn, tenant, batch.clone()).await
    }

    async fn append_many(
        &self,
        requests: &[(TenantId, Arc<SealedBatch>)],
    ) -> Result<Vec<Result<Attempt, StoreError>>, StoreError> {
        // One transaction of the one writer, one commit for every request in it.
        let turn = self.turn.clone().lock_owned().await;
        self.log()?.append_many(turn, requests.to_vec()).await
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
