//! The first answer to an HTTP `Idempotency-Key`, kept so that retries get it again instead
//! of acting twice. A key is scoped by tenant and credential; its record is kept 24 hours.
//!
//! A request first *begins* its key: the row is inserted as running (status 0), or the row
//! already there says what to do: replay a finished answer, refuse another request under
//! the same key, or wait for the one still running. The primary key makes racing
//! duplicates agree on one runner.

use tenantry_domain::TenantId;

use crate::error::StoreError;
use crate::sqlite::Writer;
use crate::store::Database;

/// How long an answer is kept.
pub const KEPT_MILLIS: i64 = 24 * 60 * 60 * 1000;

/// A running request that has not finished by then is taken to have died with its process.
pub const ABANDONED_MILLIS: i64 = 60 * 1000;

/// Where a key belongs, and which key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    pub tenant: TenantId,
    /// The credential that sent the request: a key id, or an operator's actor.
    pub credential: String,
    pub key: String,
}

/// A finished answer, as it is replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    pub status: u16,
    /// The headers worth repeating (`Location`, `Tenantry-Position`, `Content-Type`), as
    /// JSON pairs.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What a request learns when it begins its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begun {
    /// The key is this request's to run; finish or abandon it.
    Run,
    /// The key ran before with this same request: here is its answer.
    Replay(StoredAnswer),
    /// The key ran (or runs) with another request.
    Reused,
    /// The same request is running elsewhere right now.
    Running,
}

/// The records, over the store's database.
#[derive(Debug, Clone)]
pub struct IdempotencyRecords {
    database: Database,
}

#[derive(sqlx::FromRow)]
struct Row {
    fingerprint: Vec<u8>,
    status: i64,
    headers: String,
    body: Vec<u8>,
    created_at: i64,
}

impl IdempotencyRecords {
    pub fn new(database: Database) -> Self {
        Self { database }
    }

    /// Begin `key` for a request whose method, target and body hash to `fingerprint`.
    pub async fn begin(
        &self,
        key: &IdempotencyKey,
        fingerprint: &[u8; 32],
        now_millis: i64,
    ) -> Result<Begun, StoreError> {
        // Twice at most: an expired or abandoned row is deleted, then the insert is retried.
        for _ in 0..2 {
            if self.insert(key, fingerprint, now_millis).await? {
                return Ok(Begun::Run);
            }
            let Some(row) = self.find(key).await? else { continue };
            let expired = now_millis - row.created_at > KEPT_MILLIS;
            let abandoned = row.status == 0 && now_millis - row.created_at > ABANDONED_MILLIS;
            if expired || abandoned {
                self.delete_if(key, Some(row.created_at)).await?;
                continue;
            }
            if row.fingerprint != fingerprint[..] {
                return Ok(Begun::Reused);
            }
            if row.status == 0 {
                return Ok(Begun::Running);
            }
            let headers = serde_json::from_str(&row.headers).unwrap_or_default();
            return Ok(Begun::Replay(StoredAnswer { status: row.status as u16, headers, body: row.body }));
        }
        Ok(Begun::Running)
    }

    /// Keep the answer of a request that ran `key`.
    pub async fn finish(&self, key: &IdempotencyKey, answer: &StoredAnswer) -> Result<(), StoreError> {
        let headers = serde_json::to_string(&answer.headers).unwrap_or_else(|_| "[]".into());
        let status = i64::from(answer.status);
        match &self.database {
            Database::Sqlite { write, turn, .. } => {
                sqlx::query(
                    "UPDATE http_idempotency SET status = ?, headers = ?, body = ?
                     WHERE tenant_id = ? AND credential = ? AND key = ?",
                )
                .bind(status)
                .bind(headers)
                .bind(&answer.body)
                .bind(key.tenant.to_string())
                .bind(&key.credential)
                .bind(&key.key)
                .execute(&mut *Writer::take(write, turn).await?)
                .await?;
            }
            Database::Postgres(pool) => {
                sqlx::query(
                    "UPDATE http_idempotency SET status = $1, headers = $2, body = $3
                     WHERE tenant_id = $4 AND credential = $5 AND key = $6",
                )
                .bind(status)
                .bind(headers)
                .bind(&answer.body)
                .bind(key.tenant.as_uuid())
                .bind(&key.credential)
                .bind(&key.key)
                .execute(pool)
                .await?;
            }
        }
        Ok(())
    }

    /// Give `key` up: the request failed in a way a retry may repair (a 5xx, a 429).
    pub async fn abandon(&self, key: &IdempotencyKey) -> Result<(), StoreError> {
        self.delete_if(key, None).await
    }

    /// Delete records older than the time they are kept; answers how many.
    pub async fn expire(&self, now_millis: i64) -> Result<u64, StoreError> {
        let before = now_millis - KEPT_MILLIS;
        let done = match &self.database {
            Database::Sqlite { write, turn, .. } => {
                sqlx::query("DELETE FROM http_idempotency WHERE created_at < ?")
                    .bind(before)
                    .execute(&mut *Writer::take(write, turn).await?)
                    .await?
                    .rows_affected()
            }
            Database::Postgres(pool) => sqlx::query("DELETE FROM http_idempotency WHERE created_at < $1")
                .bind(before)
                .execute(pool)
                .await?
                .rows_affected(),
        };
        Ok(done)
    }

    /// Delete every record of a tenant: its answers may hold personal data.
    pub async fn forget_tenant(&self, tenant: TenantId) -> Result<u64, StoreError> {
        let done = match &self.database {
            Database::Sqlite { write, turn, .. } => {
                sqlx::query("DELETE FROM http_idempotency WHERE tenant_id = ?")
                    .bind(tenant.to_string())
                    .execute(&mut *Writer::take(write, turn).await?)
                    .await?
                    .rows_affected()
            }
            Database::Postgres(pool) => sqlx::query("DELETE FROM http_idempotency WHERE tenant_id = $1")
                .bind(tenant.as_uuid())
                .execute(pool)
                .await?
                .rows_affected(),
        };
        Ok(done)
    }

    async fn insert(
        &self,
        key: &IdempotencyKey,
        fingerprint: &[u8; 32],
        now: i64,
    ) -> Result<bool, StoreError> {
        let inserted = match &self.database {
            Database::Sqlite { write, turn, .. } => sqlx::query(
                "INSERT INTO http_idempotency (tenant_id, credential, key, fingerprint, status, headers, body, created_at)
                 VALUES (?, ?, ?, ?, 0, '[]', x'', ?) ON CONFLICT DO NOTHING",
            )
            .bind(key.tenant.to_string())
            .bind(&key.credential)
            .bind(&key.key)
            .bind(&fingerprint[..])
            .bind(now)
            .execute(&mut *Writer::take(write, turn).await?)
            .await?
            .rows_affected(),
            Database::Postgres(pool) => sqlx::query(
                "INSERT INTO http_idempotency (tenant_id, credential, key, fingerprint, status, headers, body, created_at)
                 VALUES ($1, $2, $3, $4, 0, '[]', '', $5) ON CONFLICT DO NOTHING",
            )
            .bind(key.tenant.as_uuid())
            .bind(&key.credential)
            .bind(&key.key)
            .bind(&fingerprint[..])
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected(),
        };
        Ok(inserted == 1)
    }

    async fn find(&self, key: &IdempotencyKey) -> Result<Option<Row>, StoreError> {
        const SELECT: &str = "SELECT fingerprint, status, headers, body, created_at FROM http_idempotency";
        let row = match &self.database {
            Database::Sqlite { write, .. } => {
                // From the writer: a reader may not see a row just inserted by a racing request.
                sqlx::query_as::<_, Row>(&format!(
                    "{SELECT} WHERE tenant_id = ? AND credential = ? AND key = ?"
                ))
                .bind(key.tenant.to_string())
                .bind(&key.credential)
                .bind(&key.key)
                .fetch_optional(write)
                .await?
            }
            Database::Postgres(pool) => {
                sqlx::query_as::<_, Row>(&format!(
                    "{SELECT} WHERE tenant_id = $1 AND credential = $2 AND key = $3"
                ))
                .bind(key.tenant.as_uuid())
                .bind(&key.credential)
                .bind(&key.key)
                .fetch_optional(pool)
                .await?
            }
        };
        Ok(row)
    }

    /// Delete the record of `key`: only the one made at `created_at` when given.
    async fn delete_if(&self, key: &IdempotencyKey, created_at: Option<i64>) -> Result<(), StoreError> {
        match &self.database {
            Database::Sqlite { write, turn, .. } => {
                sqlx::query(
                    "DELETE FROM http_idempotency WHERE tenant_id = ? AND credential = ? AND key = ?
                     AND (? IS NULL OR created_at = ?)",
                )
                .bind(key.tenant.to_string())
                .bind(&key.credential)
                .bind(&key.key)
                .bind(created_at)
                .bind(created_at)
                .execute(&mut *Writer::take(write, turn).await?)
                .await?;
            }
            Database::Postgres(pool) => {
                sqlx::query(
                    "DELETE FROM http_idempotency WHERE tenant_id = $1 AND credential = $2 AND key = $3
                     AND ($4::BIGINT IS NULL OR created_at = $4)",
                )
                .bind(key.tenant.as_uuid())
                .bind(&key.credential)
                .bind(&key.key)
                .bind(created_at)
                .execute(pool)
                .await?;
            }
        }
        Ok(())
    }
}
