//! Platform tables next to the read models: the state of tenant purges (`tenant_purges`) and
//! what the broker relay has published (`relay_positions`). Their SQL lives here, with the
//! database that holds them; the purge and the relay call these.

use sqlx::{AnyConnection, Row};
use tenantry_domain::TenantId;

use crate::db::{ReadDb, Val, exec};
use crate::error::ProjectionError;

/// A tenant's purge as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeRecord {
    pub step: String,
    pub requested_by: String,
    /// Unix milliseconds.
    pub requested_at: i64,
    pub events_deleted: u64,
    pub rows_deleted: u64,
    pub finished_at: Option<i64>,
}

/// The recorded purge of `tenant`, if one was ever requested.
pub async fn find(db: &ReadDb, tenant: TenantId) -> Result<Option<PurgeRecord>, ProjectionError> {
    let row = sqlx::query(
        "SELECT step, requested_by, requested_at, events_deleted, rows_deleted, finished_at
         FROM tenant_purges WHERE tenant_id = $1",
    )
    .bind(tenant.to_string())
    .fetch_optional(db.pool())
    .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(PurgeRecord {
        step: row.try_get(0)?,
        requested_by: row.try_get(1)?,
        requested_at: row.try_get(2)?,
        events_deleted: row.try_get::<i64, _>(3)? as u64,
        rows_deleted: row.try_get::<i64, _>(4)? as u64,
        finished_at: row.try_get(5)?,
    }))
}

/// Record a purge request at `step`; a tenant already recorded keeps its first record.
pub async fn request(
    db: &ReadDb,
    tenant: TenantId,
    requested_by: &str,
    requested_at: i64,
    step: &str,
) -> Result<(), ProjectionError> {
    let mut conn = db.pool().acquire().await?;
    exec(
        &mut conn,
        "INSERT INTO tenant_purges (tenant_id, requested_by, requested_at, step) VALUES ($1, $2, $3, $4)
         ON CONFLICT (tenant_id) DO NOTHING",
        vec![tenant.to_string().into(), requested_by.into(), requested_at.into(), step.into()],
    )
    .await?;
    Ok(())
}

/// What a step of a purge records with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    Nothing,
    EventsDeleted(u64),
    RowsDeleted(u64),
    /// The purge is over, at this time (Unix milliseconds).
    FinishedAt(i64),
}

/// Move a purge to `step`, inside the caller's transaction when it has one.
pub async fn advance(
    conn: &mut AnyConnection,
    tenant: TenantId,
    step: &str,
    recorded: Recorded,
) -> Result<(), ProjectionError> {
    let mut vals: Vec<Val> = vec![step.into(), tenant.to_string().into()];
    let sql = match recorded {
        Recorded::Nothing => "UPDATE tenant_purges SET step = $1 WHERE tenant_id = $2",
        Recorded::EventsDeleted(n) => {
            vals.push(n.into());
            "UPDATE tenant_purges SET step = $1, events_deleted = $3 WHERE tenant_id = $2"
        }
        Recorded::RowsDeleted(n) => {
            vals.push(n.into());
            "UPDATE tenant_purges SET step = $1, rows_deleted = $3 WHERE tenant_id = $2"
        }
        Recorded::FinishedAt(at) => {
            vals.push(at.into());
            "UPDATE tenant_purges SET step = $1, finished_at = $3 WHERE tenant_id = $2"
        }
    };
    exec(conn, sql, vals).await?;
    Ok(())
}

/// Tenants whose purge is recorded at a step other than `done`.
pub async fn unfinished(db: &ReadDb, done: &str) -> Result<Vec<TenantId>, ProjectionError> {
    let rows = sqlx::query("SELECT tenant_id FROM tenant_purges WHERE step <> $1")
        .bind(done)
        .fetch_all(db.pool())
        .await?;
    rows.iter()
        .map(|r| Ok(r.try_get::<String, _>(0)?))
        .filter_map(|t: Result<String, ProjectionError>| t.map(|t| t.parse().ok()).transpose())
        .collect()
}

/// Forget what the relay published of a purged tenant.
pub async fn forget_relay_position(db: &ReadDb, tenant: TenantId) -> Result<(), ProjectionError> {
    let mut conn = db.pool().acquire().await?;
    exec(&mut conn, "DELETE FROM relay_positions WHERE tenant_id = $1", vec![tenant.to_string().into()])
        .await?;
    Ok(())
}

/// Record what the broker acknowledged, for many tenants in one statement; a position only
/// moves forward.
pub async fn record_relay_positions(
    db: &ReadDb,
    positions: &[(TenantId, u64)],
) -> Result<(), ProjectionError> {
    if positions.is_empty() {
        return Ok(());
    }
    let mut sql = "INSERT INTO relay_positions (tenant_id, position) VALUES ".to_owned();
    let mut vals = Vec::with_capacity(positions.len() * 2);
    for (i, (tenant, position)) in positions.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("(${}, ${})", 2 * i + 1, 2 * i + 2));
        vals.push(tenant.to_string().into());
        vals.push((*position).into());
    }
    sql.push_str(
        " ON CONFLICT (tenant_id) DO UPDATE SET position =
             CASE WHEN relay_positions.position > excluded.position THEN relay_positions.position
                  ELSE excluded.position END",
    );
    let mut conn = db.pool().acquire().await?;
    exec(&mut conn, &sql, vals).await?;
    Ok(())
}

/// What the relay has published, by tenant: of one tenant, or of all.
pub async fn relay_positions(
    db: &ReadDb,
    tenant: Option<TenantId>,
) -> Result<std::collections::HashMap<String, u64>, ProjectionError> {
    let rows = match tenant {
        Some(t) => {
            sqlx::query("SELECT tenant_id, position FROM relay_positions WHERE tenant_id = $1")
                .bind(t.to_string())
                .fetch_all(db.pool())
                .await?
        }
        None => sqlx::query("SELECT tenant_id, position FROM relay_positions").fetch_all(db.pool()).await?,
    };
    rows.iter().map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)? as u64))).collect()
}
