//! The read database: the same database as the event store, reached through sqlx's `Any`
//! driver so one SQL text serves SQLite and PostgreSQL. Placeholders are `$1, $2 …`, numbered
//! in order of first appearance (both backends accept that form).

use std::time::Duration;

use sqlx::any::{AnyArguments, AnyPoolOptions};
use sqlx::pool::PoolConnection;
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, AnyPool, Executor};
use tenantry_domain::TenantId;

use crate::error::ProjectionError;

/// One bound value. NULLs keep their type: PostgreSQL will not put a text NULL in an
/// integer column.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    I(Option<i64>),
    T(Option<String>),
}

impl From<i64> for Val {
    fn from(v: i64) -> Self {
        Self::I(Some(v))
    }
}

impl From<u64> for Val {
    fn from(v: u64) -> Self {
        Self::I(Some(i64::try_from(v).unwrap_or(i64::MAX)))
    }
}

impl From<bool> for Val {
    fn from(v: bool) -> Self {
        Self::I(Some(i64::from(v)))
    }
}

impl From<String> for Val {
    fn from(v: String) -> Self {
        Self::T(Some(v))
    }
}

impl From<&str> for Val {
    fn from(v: &str) -> Self {
        Self::T(Some(v.to_owned()))
    }
}

impl From<Option<i64>> for Val {
    fn from(v: Option<i64>) -> Self {
        Self::I(v)
    }
}

impl From<Option<u64>> for Val {
    fn from(v: Option<u64>) -> Self {
        Self::I(v.map(|v| i64::try_from(v).unwrap_or(i64::MAX)))
    }
}

impl From<Option<bool>> for Val {
    fn from(v: Option<bool>) -> Self {
        Self::I(v.map(i64::from))
    }
}

impl From<Option<String>> for Val {
    fn from(v: Option<String>) -> Self {
        Self::T(v)
    }
}

impl From<Option<&str>> for Val {
    fn from(v: Option<&str>) -> Self {
        Self::T(v.map(str::to_owned))
    }
}

/// Bind values in order.
pub(crate) fn bind<'q>(
    mut query: Query<'q, Any, AnyArguments<'q>>,
    vals: Vec<Val>,
) -> Query<'q, Any, AnyArguments<'q>> {
    for v in vals {
        query = match v {
            Val::I(i) => query.bind(i),
            Val::T(s) => query.bind(s),
        };
    }
    query
}

/// Run one statement with values bound in order; returns the rows affected.
pub async fn exec(conn: &mut AnyConnection, sql: &str, vals: Vec<Val>) -> Result<u64, ProjectionError> {
    Ok(bind(sqlx::query(sql), vals).execute(conn).await?.rows_affected())
}

/// Insert many rows with multi-row `VALUES` statements, chunked under the backends' bind
/// limits. `suffix` follows each statement (e.g. an `ON CONFLICT` clause).
pub(crate) async fn insert_many(
    conn: &mut AnyConnection,
    table: &str,
    columns: &[&str],
    rows: Vec<Vec<Val>>,
    suffix: &str,
) -> Result<(), ProjectionError> {
    insert_many_counted(conn, table, columns, rows, suffix).await.map(|_| ())
}

/// [`insert_many`], returning the rows the statements affected.
pub(crate) async fn insert_many_counted(
    conn: &mut AnyConnection,
    table: &str,
    columns: &[&str],
    rows: Vec<Vec<Val>>,
    suffix: &str,
) -> Result<u64, ProjectionError> {
    let mut affected = 0;
    // sqlx binds SQLite parameters by name, a linear search per parameter: keep SQLite
    // statements small. PostgreSQL takes up to 65,535 parameters and likes fewer trips.
    let max_binds = if conn.backend_name() == "SQLite" { 400 } else { 20_000 };
    let most = (max_binds / columns.len()).max(1);
    let mut left = rows.len();
    let mut rows = rows.into_iter();
    while left > 0 {
        // Chunks of a power of two rows: a table's inserts are a handful of statement texts,
        // each prepared once per connection, instead of one text (prepared, planned and
        // evicted) for every row count a pass happens to have.
        let take = 1 << left.min(most).ilog2();
        left -= take;
        let chunk: Vec<Vec<Val>> = rows.by_ref().take(take).collect();
        let mut sql = format!("INSERT INTO {table} ({}) VALUES ", columns.join(", "));
        let mut n = 0;
        for (i, row) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for j in 0..row.len() {
                if j > 0 {
                    sql.push_str(", ");
                }
                n += 1;
                sql.push_str(&format!("${n}"));
            }
            sql.push(')');
        }
        sql.push(' ');
        sql.push_str(suffix);
        affected += exec(conn, &sql, chunk.into_iter().flatten().collect()).await?;
    }
    Ok(affected)
}

/// The pools the read side writes and queries with.
#[derive(Debug, Clone)]
pub struct ReadDb {
    /// Opens the sealed values of read models (see [`EventStore::seal_value`]).
    store: Option<tenantry_store::EventStore>,
    pool: AnyPool,
    /// Where queries read: the same pool on PostgreSQL; on SQLite, read-only connections
    /// beside the one that writes, so queries do not queue behind the projector's writes.
    readers: AnyPool,
    postgres: bool,
    /// On SQLite, this process's turn at writing the file, shared with the log's appends.
    turn: Option<tenantry_store::WriteTurn>,
    /// On SQLite, the file's checkpointer, which copies the writer's commits into the file.
    _checkpointer: Option<std::sync::Arc<tenantry_store::Checkpointer>>,
}

/// Read-only connections to the SQLite read models (WAL mode lets them read while the
/// writer writes).
const SQLITE_READERS: u32 = 4;

impl ReadDb {
    /// Connect to the store's database (`sqlite://PATH` or `postgres://…`). The store has
    /// already run the migrations, read models included.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, ProjectionError> {
        Self::connect_as(url, max_connections, &tenantry_store::PgRoles::default()).await
    }

    /// [`ReadDb::connect`], working on PostgreSQL as `roles`: the platform's for the
    /// projectors' writes and reads across tenants, the tenant role (row-level security) for
    /// reads of one tenant ([`ReadDb::scoped`]).
    pub async fn connect_as(
        url: &str,
        max_connections: u32,
        roles: &tenantry_store::PgRoles,
    ) -> Result<Self, ProjectionError> {
        sqlx::any::install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        let options = |connections: u32, writes: bool, role: Option<String>| {
            // PostgreSQL's pings only an idle connection; SQLite's keeps sqlx's ping on every
            // acquire (see `tenantry_store::pool_options`).
            if sqlite { AnyPoolOptions::new() } else { tenantry_store::pool_options::<sqlx::Any>() }
                .max_connections(connections)
                .acquire_timeout(Duration::from_secs(60))
                .after_connect(move |conn, _| {
                    let role = role.clone();
                    Box::pin(async move {
                        if sqlite {
                            // The store's writer holds the lock briefly; wait instead of failing.
                            conn.execute("PRAGMA busy_timeout = 30000").await?;
                        }
                        if sqlite && writes {
                            // Those of every writer of the file; checkpoints are the file's
                            // checkpointer's (held below).
                            for (pragma, value) in tenantry_store::SQLITE_WRITER_PRAGMAS {
                                conn.execute(format!("PRAGMA {pragma} = {value}").as_str()).await?;
                            }
                        }
                        if let Some(role) = role {
                            conn.execute(format!("SET ROLE {role}").as_str()).await?;
                        }
                        Ok(())
                    })
                })
        };
        let (platform, tenant) =
            if sqlite { (None, None) } else { (Some(roles.platform_ident()?), Some(roles.tenant_ident()?)) };
        let pool = options(if sqlite { 1 } else { max_connections }, true, platform).connect(url).await?;
        let readers = if sqlite {
            let separator = if url.contains('?') { '&' } else { '?' };
            options(SQLITE_READERS, false, None).connect(&format!("{url}{separator}mode=ro")).await?
        } else {
            // Reached only through `scoped`, which names the tenant before every use.
            options(max_connections, false, tenant).connect(url).await?
        };
        Ok(Self {
            store: None,
            pool,
            readers,
            postgres: !sqlite,
            turn: tenantry_store::sqlite_write_turn(url),
            _checkpointer: tenantry_store::sqlite_checkpointer(url)?,
        })
    }

    /// The read models of `store`: their sealed values open with its keys.
    pub fn with_store(self, store: tenantry_store::EventStore) -> Self {
        Self { store: Some(store), ..self }
    }

    /// A value of a sealed column as text (`[erased]` when its key is destroyed).
    pub async fn open_value(&self, tenant: &str, stored: &str) -> Result<String, ProjectionError> {
        if !stored.starts_with(tenantry_store::SEALED_VALUE_PREFIX) {
            return Ok(stored.to_owned());
        }
        let store = self
            .store
            .as_ref()
            .ok_or_else(|| ProjectionError::Malformed("a sealed value, and no store to open it".into()))?;
        let tenant =
            tenant.parse().map_err(|_| ProjectionError::Malformed(format!("tenant id {tenant:?}")))?;
        Ok(store.open_value(tenant, stored).await?)
    }

    /// `text` with every sealed value in it opened (a JSON column holding one, a dump of a
    /// row): for comparing rows whose ciphertext differs from write to write.
    pub async fn open_within(&self, tenant: &str, text: &str) -> Result<String, ProjectionError> {
        let prefix = tenantry_store::SEALED_VALUE_PREFIX;
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(at) = rest.find(prefix) {
            out.push_str(&rest[..at]);
            let len = rest[at..]
                .char_indices()
                .find(|(i, c)| {
                    *i >= prefix.len() && !(c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '+' | '/'))
                })
                .map_or(rest.len() - at, |(i, _)| i);
            out.push_str(&self.open_value(tenant, &rest[at..at + len]).await?);
            rest = &rest[at + len..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// [`ReadDb::open_value`] for a column that may be NULL.
    pub async fn open_optional(
        &self,
        tenant: &str,
        stored: Option<String>,
    ) -> Result<Option<String>, ProjectionError> {
        match stored {
            Some(s) => Ok(Some(self.open_value(tenant, &s).await?)),
            None => Ok(None),
        }
    }

    /// The pool that writes (and reads what must be read with the writes).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// On SQLite, this process's turn at writing the file ([`tenantry_store::WriteTurn`]):
    /// taken before a write transaction and held until it ends, so that the projectors and the
    /// log's appends queue in order instead of sleeping in SQLite's busy handler. Nothing on
    /// PostgreSQL.
    pub async fn write_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        Some(self.turn.clone()?.lock_owned().await)
    }

    /// A write transaction begun in this process's turn at the file ([`ReadDb::write_turn`]);
    /// keep the turn as long as the transaction.
    pub async fn begin_write(
        &self,
    ) -> Result<(Option<tokio::sync::OwnedMutexGuard<()>>, sqlx::Transaction<'static, Any>), ProjectionError>
    {
        let turn = self.write_turn().await;
        Ok((turn, self.pool.begin().await?))
    }

    /// Whether the database is PostgreSQL (else SQLite): for the few queries whose SQL differs,
    /// such as full-text search.
    pub fn is_postgres(&self) -> bool {
        self.postgres
    }

    /// A connection for reading one tenant's read models: on PostgreSQL as the tenant role,
    /// with row-level security showing it that tenant's rows only; on SQLite a read-only
    /// connection.
    pub async fn scoped(&self, tenant: TenantId) -> Result<PoolConnection<Any>, ProjectionError> {
        let mut conn = self.readers.acquire().await?;
        if self.postgres {
            sqlx::query("SELECT set_config('tenantry.tenant_id', $1, false)")
                .bind(tenant.to_string())
                .execute(&mut *conn)
                .await?;
        }
        Ok(conn)
    }

    /// Where reads across tenants go (listings for the platform, key lookups): the platform
    /// role on PostgreSQL, the read-only connections on SQLite.
    pub fn platform_readers(&self) -> &AnyPool {
        if self.postgres { &self.pool } else { &self.readers }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

    use super::{ReadDb, Val, insert_many_counted};

    /// On SQLite the projectors' write turn is the one the log's appends take: held here, the
    /// file's turn is taken; released, it is free.
    #[tokio::test]
    async fn projectors_take_the_same_write_turn_as_the_log() {
        let h = tenantry_store::testing::Harness::sqlite().await;
        let db = ReadDb::connect(&h.url, 1).await.unwrap();
        let turn = tenantry_store::sqlite_write_turn(&h.url).unwrap();
        let held = db.write_turn().await.unwrap();
        assert!(turn.try_lock().is_err());
        drop(held);
        assert!(turn.try_lock().is_ok());
    }

    /// Rows go in chunks of a power of two under each backend's bind limit: every row is
    /// written once, whatever the count, on both backends.
    #[tokio::test]
    async fn many_rows_are_inserted_each_once_in_chunks() {
        for h in [
            Some(tenantry_store::testing::Harness::sqlite().await),
            tenantry_store::testing::Harness::postgres().await,
        ]
        .into_iter()
        .flatten()
        {
            let db = ReadDb::connect(&h.url, 1).await.unwrap();
            let mut conn = db.pool().acquire().await.unwrap();
            for n in [1_usize, 2, 3, 31, 37, 64, 100, 2_000] {
                let tenant = format!("chunks-{n}");
                let rows: Vec<Vec<Val>> = (0..n)
                    .map(|i| {
                        vec![
                            tenant.as_str().into(),
                            Val::from(i as i64),
                            Val::from(0_i64),
                            "x".into(),
                            "y".into(),
                            "z".into(),
                            Val::T(None),
                            "ok".into(),
                            Val::T(None),
                            "r".into(),
                            Val::T(None),
                        ]
                    })
                    .collect();
                let columns = crate::models::audit::COLUMNS;
                let affected =
                    insert_many_counted(&mut conn, "audit_entries", &columns, rows, "").await.unwrap();
                assert_eq!(affected, n as u64);
                let (count, distinct): (i64, i64) = sqlx::query_as(
                    "SELECT COUNT(*), COUNT(DISTINCT position) FROM audit_entries WHERE tenant_id = $1",
                )
                .bind(&tenant)
                .fetch_one(&mut *conn)
                .await
                .unwrap();
                assert_eq!((count, distinct), (n as i64, n as i64), "{n} rows");
            }
        }
    }
}
