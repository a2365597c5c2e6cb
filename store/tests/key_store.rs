//! Data keys in a key store apart from the event database: a backup of the event database
//! holds no key; after a purge, an old backup of the event database opens nothing with the
//! current key store; an old backup of the key store opens nothing once a master key rotation
//! has retired the master key it was wrapped under. Keys of a store made before key stores
//! move over; a store opened with the wrong key store refuses rather than minting a new key.
//! On SQLite (files, backed up with `VACUUM INTO`) and PostgreSQL (databases, backed up with
//! `pg_dump` and restored with `psql`).

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

#[allow(dead_code, unused_imports)]
mod support;

use std::path::PathBuf;

use futures::TryStreamExt;
use support::{agent_created, new_event};
use tenantry_domain::event::UserAdded;
use tenantry_domain::{Event, EventId, Role, StreamId, TenantContext, TenantId, UserId};
use tenantry_store::testing::ScratchDatabase;
use tenantry_store::{
    AppendRequest, EventStore, ExpectedVersion, LocalKeyWrapper, MasterKey, NewEvent, StoreError,
};

/// Where one test's databases live, and how to back one up.
enum Place {
    Files(tempfile::TempDir),
    Postgres(Vec<ScratchDatabase>),
}

impl Place {
    async fn new(postgres: bool) -> Option<Self> {
        if postgres {
            // Probe the server once; every database after that is made the same way.
            let probe = ScratchDatabase::create().await?;
            Some(Self::Postgres(vec![probe]))
        } else {
            Some(Self::Files(tempfile::tempdir().unwrap()))
        }
    }

    /// A new, empty database's URL.
    async fn database(&mut self, name: &str) -> String {
        match self {
            Self::Files(dir) => format!("sqlite://{}", dir.path().join(format!("{name}.db")).display()),
            Self::Postgres(held) => {
                let db = ScratchDatabase::create().await.unwrap();
                let url = db.url.clone();
                held.push(db);
                url
            }
        }
    }

    /// A consistent copy of the database at `url`, as a backup taken now would hold.
    async fn backup(&mut self, url: &str, name: &str) -> String {
        let copy = self.database(name).await;
        match self {
            Self::Files(_) => {
                let path = PathBuf::from(url.trim_start_matches("sqlite://"));
                let target = copy.trim_start_matches("sqlite://").to_owned();
                let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
                sqlx::query("VACUUM INTO ?").bind(&target).execute(&pool).await.unwrap();
                pool.close().await;
            }
            Self::Postgres(_) => {
                let dump = std::process::Command::new("pg_dump").arg("--no-owner").arg(url).output().unwrap();
                assert!(dump.status.success(), "{}", String::from_utf8_lossy(&dump.stderr));
                let mut restore = std::process::Command::new("psql")
                    .args(["-q", "-v", "ON_ERROR_STOP=1", &copy])
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .unwrap();
                use std::io::Write;
                restore.stdin.take().unwrap().write_all(&dump.stdout).unwrap();
                assert!(restore.wait().unwrap().success());
            }
        }
        copy
    }
}

async fn open(events: &str, keys: &str, master: &MasterKey) -> EventStore {
    EventStore::open(events, master).await.unwrap().with_key_store(keys).await.unwrap()
}

/// A tenant with an agent and a person (so it has a tenant key and a person key).
async fn populated(store: &EventStore) -> TenantContext {
    let ctx = TenantContext::system(TenantId::new());
    let person = Event::UserAdded(UserAdded {
        user_id: UserId::new(),
        email: "canary@keys.example".to_owned().into(),
        role: Role::User,
        identity: None,
    });
    let events = vec![new_event(&agent_created("kept")), NewEvent::new(EventId::new(), &person).unwrap()];
    store
        .append(&ctx, AppendRequest::to_stream(StreamId::tenant(), ExpectedVersion::Any, events))
        .await
        .unwrap();
    ctx
}

async fn reads(store: &EventStore, ctx: &TenantContext) -> Result<usize, StoreError> {
    store.read_log(ctx, 0).try_collect::<Vec<_>>().await.map(|events| events.len())
}

/// The tenant's wrapped key as the key store at `url` holds it.
async fn wrapped_key(url: &str, tenant: TenantId) -> Vec<u8> {
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        let row: (Vec<u8>,) = sqlx::query_as("SELECT wrapped_key FROM tenant_keys WHERE tenant_id = ?")
            .bind(tenant.as_uuid())
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        row.0
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let row: (Vec<u8>,) = sqlx::query_as("SELECT wrapped_key FROM tenant_keys WHERE tenant_id = $1")
            .bind(tenant.as_uuid())
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        row.0
    }
}

/// Wrapped keys held by the database at `url`: (tenant keys, person keys).
async fn keys_held(url: &str) -> (i64, i64) {
    let count = |table: &str| format!("SELECT count(*) FROM {table} WHERE wrapped_key IS NOT NULL");
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        let t: (i64,) = sqlx::query_as(&count("tenant_keys")).fetch_one(&pool).await.unwrap();
        let s: (i64,) = sqlx::query_as(&count("subject_keys")).fetch_one(&pool).await.unwrap();
        pool.close().await;
        (t.0, s.0)
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let t: (i64,) = sqlx::query_as(&count("tenant_keys")).fetch_one(&pool).await.unwrap();
        let s: (i64,) = sqlx::query_as(&count("subject_keys")).fetch_one(&pool).await.unwrap();
        pool.close().await;
        (t.0, s.0)
    }
}

async fn backups_after_a_purge_open_nothing(postgres: bool) {
    let Some(mut place) = Place::new(postgres).await else { return };
    let (events, keys) = (place.database("events").await, place.database("keys").await);
    let master = MasterKey::generate();
    let store = open(&events, &keys, &master).await;
    let purged = populated(&store).await;
    let kept = populated(&store).await;

    // The event database holds no key; the key store holds both tenants' and persons'.
    assert_eq!(keys_held(&events).await, (0, 0));
    assert_eq!(keys_held(&keys).await, (2, 2));

    // Backups taken before the purge.
    let events_backup = place.backup(&events, "events_backup").await;
    let keys_backup = place.backup(&keys, "keys_backup").await;
    let before = open(&events_backup, &keys_backup, &master).await;
    assert_eq!(reads(&before, &purged).await.unwrap(), 2, "the backups together open the tenant");

    let wrapped = wrapped_key(&keys, purged.tenant_id).await;
    store.purge_log(&purged).await.unwrap();
    store.scrub().await.unwrap();
    assert_eq!(keys_held(&keys).await, (1, 1), "the purged tenant's keys are gone from the key store");
    if let Some(path) = keys.strip_prefix("sqlite://") {
        // Scrubbed, not only unlinked: the file and its WAL no longer hold the wrapped bytes.
        for file in [path.to_owned(), format!("{path}-wal")] {
            let bytes = std::fs::read(&file).unwrap_or_default();
            assert!(!bytes.windows(wrapped.len()).any(|w| w == wrapped.as_slice()), "{file} keeps the key");
        }
    }

    // The old event database with today's key store: nothing of the purged tenant opens.
    let restored = open(&events_backup, &keys, &master).await;
    let refused = reads(&restored, &purged).await;
    assert!(matches!(refused, Err(StoreError::KeyDestroyed { .. })), "{refused:?}");
    assert_eq!(reads(&restored, &kept).await.unwrap(), 2, "the other tenant still reads");

    // The master key is rotated and the old one retired: the pre-purge key store copy then
    // opens nothing, whatever event database it is put with.
    let rotated = MasterKey::generate();
    let report = store.rewrap_keys(&LocalKeyWrapper::new(&rotated), &mut |_| {}).await.unwrap();
    assert_eq!(report.rewrapped, 2, "{report:?}");
    let stale = open(&events_backup, &keys_backup, &rotated).await;
    for ctx in [&purged, &kept] {
        let refused = reads(&stale, ctx).await;
        assert!(matches!(refused, Err(StoreError::WrongMasterKey { .. })), "{refused:?}");
    }
    let live = open(&events, &keys, &rotated).await;
    assert_eq!(reads(&live, &kept).await.unwrap(), 2, "the live stores read with the new master key");
    // The purged tenant has no log left to read.
    assert!(matches!(reads(&live, &purged).await, Ok(0) | Err(StoreError::KeyDestroyed { .. })));
}

async fn keys_held_with_the_events_move_to_the_key_store(postgres: bool) {
    let Some(mut place) = Place::new(postgres).await else { return };
    let (events, keys) = (place.database("events").await, place.database("keys").await);
    let master = MasterKey::generate();
    // A store made before key stores: keys beside the events.
    let old = EventStore::open(&events, &master).await.unwrap();
    let ctx = populated(&old).await;
    let gone = populated(&old).await;
    old.purge_log(&gone).await.unwrap();
    assert_eq!(keys_held(&events).await, (1, 1));
    drop(old);

    let store = open(&events, &keys, &master).await;
    assert_eq!(keys_held(&events).await, (0, 0), "the event database keeps no key");
    assert_eq!(keys_held(&keys).await, (1, 1));
    assert_eq!(reads(&store, &ctx).await.unwrap(), 2);
    assert!(matches!(reads(&store, &gone).await, Ok(0) | Err(StoreError::KeyDestroyed { .. })));
    // The purged tenant stays purged: no new key, no new log.
    let again = store
        .append(
            &gone,
            AppendRequest::to_stream(
                StreamId::tenant(),
                ExpectedVersion::Any,
                vec![new_event(&agent_created("x"))],
            ),
        )
        .await;
    assert!(again.is_err(), "{again:?}");
    // Opening again moves nothing more and reads the same.
    let reopened = open(&events, &keys, &master).await;
    assert_eq!(reads(&reopened, &ctx).await.unwrap(), 2);
}

async fn the_wrong_key_store_mints_no_key(postgres: bool) {
    let Some(mut place) = Place::new(postgres).await else { return };
    let (events, keys, other) =
        (place.database("events").await, place.database("keys").await, place.database("other").await);
    let master = MasterKey::generate();
    let ctx = populated(&open(&events, &keys, &master).await).await;
    let wrong = open(&events, &other, &master).await;
    let refused = reads(&wrong, &ctx).await;
    assert!(matches!(refused, Err(StoreError::KeyMissing { .. })), "{refused:?}");
    let refused = wrong
        .append(
            &ctx,
            AppendRequest::to_stream(
                StreamId::tenant(),
                ExpectedVersion::Any,
                vec![new_event(&agent_created("y"))],
            ),
        )
        .await;
    assert!(matches!(refused, Err(StoreError::KeyMissing { .. })), "{refused:?}");
    assert_eq!(keys_held(&other).await, (0, 0), "no key was made in the wrong key store");
}

/// The first appends of a tenant, racing, with its key stored apart: one key is made and
/// every append succeeds (one that finds the log before the key reads the key again).
async fn racing_first_appends_share_one_key(postgres: bool) {
    let Some(mut place) = Place::new(postgres).await else { return };
    let (events, keys) = (place.database("events").await, place.database("keys").await);
    let master = MasterKey::generate();
    let store = open(&events, &keys, &master).await;
    for _ in 0..5 {
        let ctx = TenantContext::system(TenantId::new());
        let appends = (0..16).map(|i| {
            let (store, ctx) = (store.clone(), ctx.clone());
            tokio::spawn(async move {
                let stream: StreamId = format!("s-{i}").parse().unwrap();
                let events = vec![new_event(&agent_created("racer"))];
                store.append(&ctx, AppendRequest::to_stream(stream, ExpectedVersion::NoStream, events)).await
            })
        });
        for outcome in futures::future::join_all(appends).await {
            outcome.unwrap().expect("every first append succeeds");
        }
        assert_eq!(reads(&store, &ctx).await.unwrap(), 16);
    }
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(false).await; })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(true).await; })*
        }
    };
}

on_both!(
    backups_after_a_purge_open_nothing,
    keys_held_with_the_events_move_to_the_key_store,
    the_wrong_key_store_mints_no_key,
    racing_first_appends_share_one_key,
);
