//! Webhook endpoints as listed (a read model), and the state of their delivery (not a read
//! model: a rebuild keeps it, a purge deletes it): per endpoint the last position delivered
//! and the retry of the next, and a delivery log.

use async_trait::async_trait;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use tenantry_domain::{Event, TenantContext, TenantId, WebhookId};
use tenantry_store::RecordedEvent;

use super::{Page, id_cursor, int, opt_int, opt_text, page_size, text};
use crate::db::{ReadDb, exec};
use crate::error::ProjectionError;
use crate::runtime::Projector;

/// Persisted projector name.
pub const NAME: &str = "webhooks";

#[derive(Debug, Clone, Copy, Default)]
pub struct Webhooks;

#[async_trait]
impl Projector for Webhooks {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        tenant: &str,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        for e in events {
            let at = e.recorded_at.timestamp_millis();
            match &e.event {
                Event::WebhookCreated(w) => {
                    exec(
                        conn,
                        "INSERT INTO webhooks (tenant_id, webhook_id, url, event_types, enabled, removed,
                                               created_position, created_at, updated_at)
                         VALUES ($1, $2, $3, $4, 1, 0, $5, $6, $6) ON CONFLICT (tenant_id, webhook_id) DO NOTHING",
                        vec![
                            tenant.into(),
                            w.webhook_id.to_string().into(),
                            w.url.as_str().into(),
                            types_json(&w.event_types).into(),
                            e.position.into(),
                            at.into(),
                        ],
                    )
                    .await?;
                }
                Event::WebhookUpdated(w) => {
                    let id = w.webhook_id.to_string();
                    exec(
                        conn,
                        "UPDATE webhooks SET url = COALESCE($1, url), event_types = COALESCE($2, event_types),
                                enabled = COALESCE($3, enabled),
                                disabled_reason = CASE WHEN $3 = 1 THEN NULL ELSE disabled_reason END,
                                updated_at = $4
                         WHERE tenant_id = $5 AND webhook_id = $6",
                        vec![
                            w.url.as_deref().into(),
                            w.event_types.as_deref().map(types_json).into(),
                            w.enabled.into(),
                            at.into(),
                            tenant.into(),
                            id.as_str().into(),
                        ],
                    )
                    .await?;
                    if w.enabled == Some(true) {
                        // Enabled again: its retries start afresh.
                        exec(
                            conn,
                            "UPDATE webhook_cursors SET attempts = 0, failing_since = NULL, next_attempt_at = 0
                             WHERE tenant_id = $1 AND webhook_id = $2",
                            vec![tenant.into(), id.as_str().into()],
                        )
                        .await?;
                    }
                }
                Event::WebhookSecretRotated(w) => {
                    exec(
                        conn,
                        "UPDATE webhooks SET secret_rotated_at = $1, updated_at = $1
                         WHERE tenant_id = $2 AND webhook_id = $3",
                        vec![at.into(), tenant.into(), w.webhook_id.to_string().into()],
                    )
                    .await?;
                }
                Event::WebhookRemoved(w) => {
                    exec(
                        conn,
                        "UPDATE webhooks SET removed = 1, updated_at = $1 WHERE tenant_id = $2 AND webhook_id = $3",
                        vec![at.into(), tenant.into(), w.webhook_id.to_string().into()],
                    )
                    .await?;
                }
                Event::WebhookDisabled(w) => {
                    exec(
                        conn,
                        "UPDATE webhooks SET enabled = 0, disabled_reason = $1, updated_at = $2
                         WHERE tenant_id = $3 AND webhook_id = $4",
                        vec![
                            w.reason.as_str().into(),
                            at.into(),
                            tenant.into(),
                            w.webhook_id.to_string().into(),
                        ],
                    )
                    .await?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    async fn clear(&self, conn: &mut AnyConnection, tenant: &str) -> Result<u64, ProjectionError> {
        exec(conn, "DELETE FROM webhooks WHERE tenant_id = $1", vec![tenant.into()]).await
    }
}

fn types_json(types: &[String]) -> String {
    serde_json::Value::from(types.to_vec()).to_string()
}

fn types_of(text: &str) -> Result<Vec<String>, ProjectionError> {
    serde_json::from_str(text).map_err(|e| ProjectionError::Malformed(format!("webhook event types: {e}")))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookRow {
    #[serde(rename = "id")]
    pub webhook_id: String,
    pub url: String,
    /// The event types delivered; empty: every type.
    pub event_types: Vec<String>,
    pub enabled: bool,
    /// Why the platform disabled it, when it did (it kept failing).
    pub disabled_reason: Option<String>,
    #[serde(with = "super::time")]
    pub created_at: i64,
    #[serde(with = "super::time")]
    pub updated_at: i64,
    #[serde(with = "super::time::option")]
    pub secret_rotated_at: Option<i64>,
    #[serde(skip)]
    pub created_position: i64,
}

impl TryFrom<&AnyRow> for WebhookRow {
    type Error = ProjectionError;
    fn try_from(r: &AnyRow) -> Result<Self, Self::Error> {
        Ok(Self {
            webhook_id: text(r, "webhook_id")?,
            url: text(r, "url")?,
            event_types: types_of(&text(r, "event_types")?)?,
            enabled: int(r, "enabled")? != 0,
            disabled_reason: opt_text(r, "disabled_reason")?,
            created_at: int(r, "created_at")?,
            updated_at: int(r, "updated_at")?,
            secret_rotated_at: opt_int(r, "secret_rotated_at")?,
            created_position: int(r, "created_position")?,
        })
    }
}

pub async fn webhooks(
    ctx: &TenantContext,
    db: &ReadDb,
    after: Option<&str>,
    limit: u32,
) -> Result<Page<WebhookRow>, ProjectionError> {
    let rows = sqlx::query(
        "SELECT * FROM webhooks WHERE tenant_id = $1 AND removed = 0 AND webhook_id > $2
         ORDER BY webhook_id LIMIT $3",
    )
    .bind(ctx.tenant_id.to_string())
    .bind(id_cursor(after)?)
    .bind(page_size(limit))
    .fetch_all(&mut *db.scoped(ctx.tenant_id).await?)
    .await?;
    let rows = rows.iter().map(WebhookRow::try_from).collect::<Result<_, _>>()?;
    Ok(Page::from_rows(rows, limit, |w: &WebhookRow| w.webhook_id.clone()))
}

pub async fn webhook(
    ctx: &TenantContext,
    db: &ReadDb,
    id: WebhookId,
) -> Result<Option<WebhookRow>, ProjectionError> {
    let row = sqlx::query("SELECT * FROM webhooks WHERE tenant_id = $1 AND webhook_id = $2 AND removed = 0")
        .bind(ctx.tenant_id.to_string())
        .bind(id.to_string())
        .fetch_optional(&mut *db.scoped(ctx.tenant_id).await?)
        .await?;
    row.as_ref().map(WebhookRow::try_from).transpose()
}

/// An endpoint due for delivery: enabled, and not waiting for a retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub tenant: TenantId,
    pub webhook: WebhookId,
    pub url: String,
    pub event_types: Vec<String>,
    /// The last position delivered or passed over.
    pub position: u64,
    pub attempts: i64,
    pub failing_since: Option<i64>,
}

/// Endpoints due at `now` (Unix ms), at most `limit`, those waiting longest first.
pub async fn due(db: &ReadDb, now: i64, limit: i64) -> Result<Vec<Due>, ProjectionError> {
    let rows = sqlx::query(
        "SELECT w.tenant_id, w.webhook_id, w.url, w.event_types,
                COALESCE(c.position, w.created_position) AS position,
                COALESCE(c.attempts, 0) AS attempts, c.failing_since
         FROM webhooks w
         LEFT JOIN webhook_cursors c ON c.tenant_id = w.tenant_id AND c.webhook_id = w.webhook_id
         WHERE w.enabled = 1 AND w.removed = 0 AND COALESCE(c.next_attempt_at, 0) <= $1
         ORDER BY COALESCE(c.next_attempt_at, 0), w.tenant_id, w.webhook_id LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Due {
                tenant: text(r, "tenant_id")?
                    .parse()
                    .map_err(|_| ProjectionError::Malformed("tenant id".into()))?,
                webhook: text(r, "webhook_id")?
                    .parse()
                    .map_err(|_| ProjectionError::Malformed("webhook id".into()))?,
                url: text(r, "url")?,
                event_types: types_of(&text(r, "event_types")?)?,
                position: int(r, "position")?.max(0) as u64,
                attempts: int(r, "attempts")?,
                failing_since: r.try_get::<Option<i64>, _>("failing_since")?,
            })
        })
        .collect()
}

/// The endpoint has everything up to `position` (delivered, or not of its types).
pub async fn passed(
    db: &ReadDb,
    tenant: TenantId,
    webhook: WebhookId,
    position: u64,
) -> Result<(), ProjectionError> {
    let mut conn = db.pool().acquire().await?;
    exec(
        &mut conn,
        "INSERT INTO webhook_cursors (tenant_id, webhook_id, position, attempts, failing_since, next_attempt_at)
         VALUES ($1, $2, $3, 0, NULL, 0)
         ON CONFLICT (tenant_id, webhook_id) DO UPDATE SET position = excluded.position, attempts = 0,
             failing_since = NULL, next_attempt_at = 0",
        vec![tenant.to_string().into(), webhook.to_string().into(), position.into()],
    )
    .await?;
    Ok(())
}

/// One attempt at delivering an event to an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub position: u64,
    pub message_id: String,
    pub event_type: String,
    /// `delivered`, `retrying` or `failed` (given up: the endpoint was disabled).
    pub status: &'static str,
    pub response_status: Option<i64>,
    pub latency_ms: Option<i64>,
    pub error: Option<String>,
    pub at: i64,
}

/// What an attempt does to where its endpoint stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// Delivered: the endpoint has it.
    Advance,
    /// Failed: try again at `retry_at` (Unix ms), `attempts` made, failing since `since`.
    Retry { attempts: i64, since: i64, retry_at: i64 },
    /// Nothing moves (a manual redelivery, or the endpoint given up on).
    Stay,
}

/// Record an attempt in the delivery log and, in the same transaction, what it does to
/// where its endpoint stands.
pub async fn record(
    db: &ReadDb,
    tenant: TenantId,
    webhook: WebhookId,
    attempt: &Attempt,
    then: Then,
) -> Result<(), ProjectionError> {
    let (_turn, mut tx) = db.begin_write().await?;
    let (t, w) = (tenant.to_string(), webhook.to_string());
    exec(
        &mut tx,
        "INSERT INTO webhook_deliveries (tenant_id, webhook_id, position, message_id, event_type, status, attempts,
                                         response_status, latency_ms, error, first_attempt_at, last_attempt_at)
         VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, $9, $10, $10)
         ON CONFLICT (tenant_id, webhook_id, position) DO UPDATE SET status = excluded.status,
             attempts = webhook_deliveries.attempts + 1, response_status = excluded.response_status,
             latency_ms = excluded.latency_ms, error = excluded.error, last_attempt_at = excluded.last_attempt_at",
        vec![
            t.as_str().into(),
            w.as_str().into(),
            attempt.position.into(),
            attempt.message_id.as_str().into(),
            attempt.event_type.as_str().into(),
            attempt.status.into(),
            attempt.response_status.into(),
            attempt.latency_ms.into(),
            attempt.error.as_deref().into(),
            attempt.at.into(),
        ],
    )
    .await?;
    match then {
        Then::Advance => {
            exec(
                &mut tx,
                "INSERT INTO webhook_cursors (tenant_id, webhook_id, position, attempts, failing_since, next_attempt_at)
                 VALUES ($1, $2, $3, 0, NULL, 0)
                 ON CONFLICT (tenant_id, webhook_id) DO UPDATE SET position = excluded.position, attempts = 0,
                     failing_since = NULL, next_attempt_at = 0",
                vec![t.as_str().into(), w.as_str().into(), attempt.position.into()],
            )
            .await?;
        }
        Then::Stay => {}
        Then::Retry { attempts, since, retry_at } => {
            exec(
                &mut tx,
                "INSERT INTO webhook_cursors (tenant_id, webhook_id, position, attempts, failing_since, next_attempt_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (tenant_id, webhook_id) DO UPDATE SET attempts = excluded.attempts,
                     failing_since = excluded.failing_since, next_attempt_at = excluded.next_attempt_at",
                vec![
                    t.as_str().into(),
                    w.as_str().into(),
                    (attempt.position.saturating_sub(1)).into(),
                    attempts.into(),
                    since.into(),
                    retry_at.into(),
                ],
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryRow {
    pub position: i64,
    pub message_id: String,
    pub event_type: String,
    /// `delivered`, `retrying`, or `failed`.
    pub status: String,
    pub attempts: i64,
    pub response_status: Option<i64>,
    pub latency_ms: Option<i64>,
    pub error: Option<String>,
    #[serde(with = "super::time")]
    pub first_attempt_at: i64,
    #[serde(with = "super::time")]
    pub last_attempt_at: i64,
}

impl TryFrom<&AnyRow> for DeliveryRow {
    type Error = ProjectionError;
    fn try_from(r: &AnyRow) -> Result<Self, Self::Error> {
        Ok(Self {
            position: int(r, "position")?,
            message_id: text(r, "message_id")?,
            event_type: text(r, "event_type")?,
            status: text(r, "status")?,
            attempts: int(r, "attempts")?,
            response_status: opt_int(r, "response_status")?,
            latency_ms: opt_int(r, "latency_ms")?,
            error: opt_text(r, "error")?,
            first_attempt_at: int(r, "first_attempt_at")?,
            last_attempt_at: int(r, "last_attempt_at")?,
        })
    }
}

/// An endpoint's deliveries, newest first. The cursor is the last position shown.
pub async fn deliveries(
    ctx: &TenantContext,
    db: &ReadDb,
    webhook: WebhookId,
    before: Option<&str>,
    limit: u32,
) -> Result<Page<DeliveryRow>, ProjectionError> {
    let before = match before {
        None => i64::MAX,
        Some(c) => c.parse().map_err(|_| ProjectionError::InvalidCursor)?,
    };
    let rows = sqlx::query(
        "SELECT * FROM webhook_deliveries WHERE tenant_id = $1 AND webhook_id = $2 AND position < $3
         ORDER BY position DESC LIMIT $4",
    )
    .bind(ctx.tenant_id.to_string())
    .bind(webhook.to_string())
    .bind(before)
    .bind(page_size(limit))
    .fetch_all(&mut *db.scoped(ctx.tenant_id).await?)
    .await?;
    let rows = rows.iter().map(DeliveryRow::try_from).collect::<Result<_, _>>()?;
    Ok(Page::from_rows(rows, limit, |d: &DeliveryRow| d.position.to_string()))
}

/// One delivery of the log.
pub async fn delivery(
    ctx: &TenantContext,
    db: &ReadDb,
    webhook: WebhookId,
    position: u64,
) -> Result<Option<DeliveryRow>, ProjectionError> {
    let row = sqlx::query(
        "SELECT * FROM webhook_deliveries WHERE tenant_id = $1 AND webhook_id = $2 AND position = $3",
    )
    .bind(ctx.tenant_id.to_string())
    .bind(webhook.to_string())
    .bind(i64::try_from(position).unwrap_or(i64::MAX))
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(DeliveryRow::try_from).transpose()
}

/// A purged tenant's delivery state: cursors and log.
pub async fn forget_tenant(db: &ReadDb, tenant: TenantId) -> Result<(), ProjectionError> {
    let mut conn = db.pool().acquire().await?;
    for table in ["webhook_cursors", "webhook_deliveries"] {
        exec(
            &mut conn,
            &format!("DELETE FROM {table} WHERE tenant_id = $1"),
            vec![tenant.to_string().into()],
        )
        .await?;
    }
    Ok(())
}
