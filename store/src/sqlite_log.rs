//! The SQLite log's writer: one connection on a thread of its own that runs an append's
//! whole transaction (`BEGIN IMMEDIATE`, the reads, the decision, the writes, the commit) in
//! one go, with each statement prepared once for the connection's life.
//!
//! Through the async driver each statement of a group commit was a hop to its connection's
//! thread and back, and a statement naming a batch's rows had to be prepared again for every
//! batch size: the writer, SQLite's one, spent about a quarter of its time preparing
//! statements, beside the hand-offs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, Weak, mpsc};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tenantry_domain::TenantId;
use tokio::sync::{OwnedMutexGuard, oneshot};
use uuid::Uuid;

use crate::backend::*;
use crate::chain::GENESIS;
use crate::error::{StoreError, sqlite_shredded};
use crate::model::Head;
use crate::sqlite::{SQLITE_WRITER_PRAGMAS, WriteTurn, url_path, write_turn};

/// How long the checkpointer lets the log grow before it copies it into the file: a
/// checkpoint costs two flushes, and the pages rewritten meanwhile are copied once.
const CHECKPOINT_PAUSE: Duration = Duration::from_millis(100);

/// Passes beside the writers before one in the turn.
const CHECKPOINT_PASSES: usize = 4;

/// Checkpoints of one SQLite file, off its writers: on a thread of their own, with a
/// connection of their own, a while after the log wrote (and once a second). They copy the log
/// beside the writers' commits (a passive checkpoint takes no write lock), again while commits
/// came during the pass; a pass that leaves nothing lets the next commit start the log over.
/// When commits came during every one of a few passes, the rest is copied in this process's
/// turn at the file, so the log stays bounded under a load that never pauses. A checkpoint in
/// the writer's commit kept every append waiting on its two flushes (a third of the writer's
/// time with 64 appenders).
///
/// One a file in a process, shared by its writers ([`sqlite_checkpointer`]), whose connections set
/// `wal_autocheckpoint = 0`; the thread ends with the last of them.
#[derive(Debug)]
pub struct Checkpointer {
    nudges: mpsc::SyncSender<()>,
}

/// Every file's checkpointer, while any writer of it holds it.
static CHECKPOINTERS: LazyLock<Mutex<HashMap<PathBuf, Weak<Checkpointer>>>> = LazyLock::new(Mutex::default);

/// The checkpointer of the SQLite file at `path` (however the path is spelled), started by its
/// first writer in this process.
pub(crate) fn checkpointer(path: &Path) -> Result<Arc<Checkpointer>, StoreError> {
    let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mut all = CHECKPOINTERS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(running) = all.get(&key).and_then(Weak::upgrade) {
        return Ok(running);
    }
    all.retain(|_, c| c.strong_count() > 0);
    let started = Arc::new(Checkpointer::start(path, write_turn(path))?);
    all.insert(key, Arc::downgrade(&started));
    Ok(started)
}

/// The checkpointer of the SQLite file a `sqlite://PATH` url names, for a writer of it that
/// leaves checkpoints to it (`PRAGMA wal_autocheckpoint = 0`); `None` for another url.
pub fn sqlite_checkpointer(url: &str) -> Result<Option<Arc<Checkpointer>>, StoreError> {
    url_path(url).map(|path| checkpointer(&path)).transpose()
}

impl Checkpointer {
    fn start(path: &Path, turn: WriteTurn) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(30))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let (nudges, nudged) = mpsc::sync_channel::<()>(1);
        std::thread::Builder::new().name("tenantry-sqlite-checkpoint".into()).spawn(move || {
            // Until the last writer is gone; also once a second without a nudge (the file's
            // other writers, the projectors, commit without one).
            while !matches!(
                nudged.recv_timeout(Duration::from_secs(1)),
                Err(mpsc::RecvTimeoutError::Disconnected)
            ) {
                std::thread::sleep(CHECKPOINT_PAUSE);
                // Frames left in the log after a pass: those written meanwhile, or held by a
                // reader's snapshot.
                let passive = |conn: &Connection| {
                    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                        Ok(row.get::<_, i64>(1)? - row.get::<_, i64>(2)?)
                    })
                };
                // Beside the writers, until a pass leaves nothing: the next commit then starts
                // the log over.
                let mut left = None;
                for _ in 0..CHECKPOINT_PASSES {
                    left = passive(&conn)
                        .inspect_err(|e| tracing::warn!(error = %e, "a checkpoint of the SQLite log failed"))
                        .ok();
                    if left == Some(0) {
                        break;
                    }
                }
                // Commits came during every pass: the rest in the turn, where none can, so the
                // log does not grow for as long as they keep coming. It holds the writers
                // for a checkpoint's two flushes, so only then.
                if left != Some(0) {
                    let _turn = turn.blocking_lock();
                    if let Err(e) = passive(&conn) {
                        tracing::warn!(error = %e, "a checkpoint of the SQLite log failed");
                    }
                }
            }
        })?;
        Ok(Self { nudges })
    }

    /// The log wrote: checkpoint a while from now, if no checkpoint is due already.
    fn nudge(&self) {
        let _ = self.nudges.try_send(());
    }
}

/// Work for the writer's thread.
type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// The writer's thread, fed through a channel; it ends when the last handle is dropped.
#[derive(Debug, Clone)]
pub(crate) struct LogWriter {
    jobs: mpsc::Sender<Job>,
}

impl LogWriter {
    /// A writer of the (migrated) database at `path`, in WAL mode with the settings of every
    /// writer of the file ([`SQLITE_WRITER_PRAGMAS`]).
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        for (pragma, value) in SQLITE_WRITER_PRAGMAS {
            conn.execute_batch(&format!("PRAGMA {pragma} = {value}"))?;
        }
        conn.pragma_update(None, "cache_size", -16384)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Its commits leave the checkpoints to the checkpointer's thread. Under a sustained
        // load the log grows between them (tens of megabytes at thousands of appends a
        // second); once it starts over, its file is cut back to this.
        conn.pragma_update(None, "journal_size_limit", 64 << 20)?;
        // Every statement of an append kept prepared.
        conn.set_prepared_statement_cache_capacity(32);
        let checkpoints = checkpointer(path)?;
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new().name("tenantry-sqlite-log".into()).spawn(move || {
            let mut conn = conn;
            while let Ok(job) = queue.recv() {
                job(&mut conn);
                checkpoints.nudge();
            }
        })?;
        Ok(Self { jobs })
    }

    /// Run `work` on the writer's thread, holding `turn` (this process's turn at the file)
    /// until it is done, even when the caller stops waiting.
    async fn run<T: Send + 'static>(
        &self,
        turn: OwnedMutexGuard<()>,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = work(conn);
            drop(turn);
            let _ = answer.send(result);
        });
        self.jobs.send(job).map_err(|_| gone())?;
        answered.await.map_err(|_| gone())?
    }

    /// One append, with the bodies it keeps beside the log, in a transaction of its own.
    pub(crate) async fn append(
        &self,
        turn: OwnedMutexGuard<()>,
        tenant: TenantId,
        batch: Arc<SealedBatch>,
    ) -> Result<Attempt, StoreError> {
        self.run(turn, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let blob_bytes = write_blobs(&tx, tenant, &batch)?;
            // Decided and written as a batch of one, its bodies' bytes counted with it.
            let attempt = decide_and_write(&tx, &[(tenant, &batch)], blob_bytes)?
                .pop()
                .unwrap_or_else(|| Err(StoreError::Io(std::io::Error::other("an append decided nothing"))))?;
            if matches!(attempt, Attempt::Written(_)) {
                tx.commit()?;
            }
            // Otherwise dropped: rolled back, bodies with it.
            Ok(attempt)
        })
        .await
    }

    /// Appends of any tenants in one transaction and one commit, each with its own outcome.
    pub(crate) async fn append_many(
        &self,
        turn: OwnedMutexGuard<()>,
        requests: Vec<(TenantId, Arc<SealedBatch>)>,
    ) -> Result<Vec<Result<Attempt, StoreError>>, StoreError> {
        self.run(turn, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let requests: Vec<(TenantId, &SealedBatch)> =
                requests.iter().map(|(t, b)| (*t, b.as_ref())).collect();
            let outcomes = decide_and_write(&tx, &requests, 0)?;
            tx.commit()?;
            Ok(outcomes)
        })
        .await
    }
}

fn gone() -> StoreError {
    StoreError::Io(std::io::Error::other("the SQLite log's writer thread is gone"))
}

/// Write (or delete) the bodies an append keeps beside the log; the bytes they add.
fn write_blobs(tx: &Connection, tenant: TenantId, batch: &SealedBatch) -> Result<i64, StoreError> {
    let tid = tenant.as_uuid().as_bytes();
    let mut bytes = 0_i64;
    for blob in &batch.blobs {
        match &blob.sealed {
            Some(sealed) => {
                tx.prepare_cached(
                    "INSERT INTO blobs (tenant_id, blob_id, sealed, size) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![tid, blob.id.as_bytes(), sealed, blob.size])?;
                bytes += blob.size;
            }
            None => {
                let gone: Option<i64> = tx
                    .prepare_cached("DELETE FROM blobs WHERE tenant_id = ?1 AND blob_id = ?2 RETURNING size")?
                    .query_row(params![tid, blob.id.as_bytes()], |row| row.get(0))
                    .optional()?;
                bytes -= gone.unwrap_or(0);
            }
        }
    }
    Ok(bytes)
}

/// Appends in the writer's open transaction: read the heads and what they name, decide each
/// in order in memory (`decide`, the same as PostgreSQL's group commit), write every row of
/// the written ones. A refused request leaves nothing. `blob_bytes`: bytes of bodies written
/// (or freed) before, counted with the request that carries them (only a single append does).
fn decide_and_write(
    tx: &Connection,
    requests: &[(TenantId, &SealedBatch)],
    blob_bytes: i64,
) -> Result<Vec<Result<Attempt, StoreError>>, StoreError> {
    let found = read_batch(tx, &batch_tenants(requests), requests)?;
    let decided = decide(requests, found, blob_bytes);
    write_batch(tx, &decided)?;
    Ok(decided.outcomes)
}

/// What a batch finds stored, in the writer's open transaction: its tenants' heads (a first
/// append's made, never a purged tenant's), the versions of the streams it names, and which of
/// its event ids and idempotency keys are taken. A lookup by key a name.
fn read_batch(
    tx: &Connection,
    tenants: &[Uuid],
    requests: &[(TenantId, &SealedBatch)],
) -> Result<Found, StoreError> {
    let mut found = Found::default();
    let mut heads = tx.prepare_cached(
        "SELECT position, last_hash, stored_bytes, day, day_calls FROM tenant_heads WHERE tenant_id = ?1",
    )?;
    let mut make =
        tx.prepare_cached("INSERT INTO tenant_heads (tenant_id, position, last_hash) VALUES (?1, 0, ?2)")?;
    for tenant in tenants {
        let stored = heads
            .query_row([tenant.as_bytes()], |row| {
                let head = Head {
                    position: row.get::<_, i64>(0)? as u64,
                    last_hash: to_hash(&row.get::<_, Vec<u8>>(1)?),
                };
                Ok(HeadState { head, stored_bytes: row.get(2)?, day: row.get(3)?, day_calls: row.get(4)? })
            })
            .optional()?;
        let state = match stored {
            Some(state) => state,
            // A purged tenant's head may not be made again: the trigger refuses this statement
            // alone, and the tenant's requests are refused (it has no head).
            None => match make.execute(params![tenant.as_bytes(), &GENESIS[..]]) {
                Ok(_) => HeadState {
                    head: Head { position: 0, last_hash: GENESIS },
                    stored_bytes: 0,
                    day: 0,
                    day_calls: 0,
                },
                Err(e) if sqlite_shredded(&e) => continue,
                Err(e) => return Err(e.into()),
            },
        };
        found.heads.insert(TenantId::from_uuid(*tenant), state);
    }
    let mut version =
        tx.prepare_cached("SELECT version FROM streams WHERE tenant_id = ?1 AND stream_id = ?2")?;
    let mut event = tx.prepare_cached("SELECT 1 FROM events WHERE tenant_id = ?1 AND event_id = ?2")?;
    let mut key = tx.prepare_cached("SELECT 1 FROM idempotency_keys WHERE tenant_id = ?1 AND key = ?2")?;
    for &(tenant, batch) in requests {
        let t = tenant.as_uuid().as_bytes();
        for (stream, _) in &batch.expectations {
            let name = (tenant, stream.as_str().to_owned());
            if found.versions.contains_key(&name) {
                continue;
            }
            let stored: Option<i64> =
                version.query_row(params![t, stream.as_str()], |row| row.get(0)).optional()?;
            if let Some(v) = stored {
                found.versions.insert(name, v as u64);
            }
        }
        for e in &batch.events {
            if event.exists(params![t, e.event_id.as_uuid().as_bytes()])? {
                found.events.insert((tenant, e.event_id));
            }
        }
        if let Some((k, _)) = &batch.idempotency
            && key.exists(params![t, k])?
        {
            found.keys.insert((tenant, k.clone()));
        }
    }
    Ok(found)
}

/// Every row a decided batch leaves: its events, streams, heads and idempotency keys, a
/// prepared statement a row.
fn write_batch(tx: &Connection, decided: &Decided<'_>) -> Result<(), StoreError> {
    let mut events = tx.prepare_cached(
        "INSERT INTO events (tenant_id, position, stream_id, stream_version, event_id, event_type,
                             schema_version, recorded_at, payload, metadata, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?;
    for e in &decided.events {
        events.execute(params![
            e.tenant.as_uuid().as_bytes(),
            e.row.position as i64,
            e.event.stream.as_str(),
            e.row.stream_version as i64,
            e.event.event_id.as_uuid().as_bytes(),
            e.event.event_type,
            e.event.schema_version,
            e.recorded_at,
            e.event.payload,
            e.event.metadata,
            &e.row.prev_hash[..],
            &e.row.hash[..],
        ])?;
    }
    let mut streams = tx.prepare_cached(
        "INSERT INTO streams (tenant_id, stream_id, version) VALUES (?1, ?2, ?3)
         ON CONFLICT (tenant_id, stream_id) DO UPDATE SET version = excluded.version",
    )?;
    for s in &decided.streams {
        streams.execute(params![s.tenant.as_uuid().as_bytes(), s.stream, s.version as i64])?;
    }
    let mut heads = tx.prepare_cached(
        "UPDATE tenant_heads SET position = ?2, last_hash = ?3, stored_bytes = ?4, day = ?5, day_calls = ?6
         WHERE tenant_id = ?1",
    )?;
    for WrittenHead { tenant, state, .. } in &decided.heads {
        heads.execute(params![
            tenant.as_uuid().as_bytes(),
            state.head.position as i64,
            &state.head.last_hash[..],
            state.stored_bytes,
            state.day,
            state.day_calls,
        ])?;
    }
    let mut keys = tx.prepare_cached(
        "INSERT INTO idempotency_keys (tenant_id, key, request_hash, first_position, last_position)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (tenant, key, hash, first, last) in &decided.keys {
        keys.execute(params![tenant.as_uuid().as_bytes(), key, &hash[..], *first as i64, *last as i64])?;
    }
    Ok(())
}
