//! Usage against limits: commands per day, tokens per month, stored bytes, and the directory
//! counts (agents, users, keys).

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use serde::Serialize;
use sqlx::{AnyConnection, Row};
use tenantry_domain::{Event, LimitName, PlanCatalog, TenantContext, TenantId};
use tenantry_store::RecordedEvent;

use super::{int, opt_text, text};
use crate::db::{ReadDb, Val, exec, insert_many};
use crate::error::ProjectionError;
use crate::models::directory;
use crate::runtime::Projector;

/// Persisted projector name.
pub const NAME: &str = "quotas";

#[derive(Debug, Clone, Copy, Default)]
pub struct Quotas;

/// Tenants whose last requests one statement reads (under SQLite's bind limit).
const TENANTS_A_READ: usize = 256;

fn day(at: DateTime<Utc>) -> String {
    format!("day:{}", at.format("%Y-%m-%d"))
}

fn month(at: DateTime<Utc>) -> String {
    format!("month:{}", at.format("%Y-%m"))
}

#[derive(Debug, Default, Clone, Copy)]
struct Delta {
    api_calls: i64,
    tokens: i64,
    bytes: i64,
}

#[async_trait]
impl Projector for Quotas {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        tenant: &str,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        self.apply_many(conn, &[(tenant, events)]).await
    }

    /// One read of the tenants' last requests and one multi-row upsert of their counters.
    async fn apply_many(
        &self,
        conn: &mut AnyConnection,
        pages: &[(&str, &[RecordedEvent])],
    ) -> Result<(), ProjectionError> {
        let mut last_request: HashMap<&str, Option<String>> =
            pages.iter().map(|(tenant, _)| (*tenant, None)).collect();
        let tenants: Vec<&str> = last_request.keys().copied().collect();
        for chunk in tenants.chunks(TENANTS_A_READ) {
            let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let rows = crate::db::bind(
                sqlx::query(&format!(
                    "SELECT tenant_id, last_request FROM quota_counters
                     WHERE period = 'all' AND tenant_id IN ({})",
                    marks.join(", ")
                )),
                chunk.iter().map(|t| Val::from(*t)).collect(),
            )
            .fetch_all(&mut *conn)
            .await?;
            for r in &rows {
                if let Some(last) = last_request.get_mut(text(r, "tenant_id")?.as_str()) {
                    *last = opt_text(r, "last_request")?;
                }
            }
        }
        let mut deltas: BTreeMap<(&str, String), Delta> = BTreeMap::new();
        for (tenant, e) in super::each_event(pages) {
            // The audit record of a refused request, or of a read from outside the tenant, is
            // stored uncharged: neither bytes nor a call of the tenant.
            if matches!(e.event, Event::AccessDenied(_) | Event::DataRead(_)) {
                continue;
            }
            // A document's body is kept beside the log and counted with it while it is kept.
            let beside = match &e.event {
                Event::DocumentAdded(d) => i64::try_from(d.size).unwrap_or(i64::MAX),
                Event::DocumentRemoved(d) => -i64::try_from(d.size).unwrap_or(i64::MAX),
                _ => 0,
            };
            deltas.entry((tenant, "all".into())).or_default().bytes += e.payload_bytes as i64 + beside;
            // A command's events share its request id: count the command once.
            let last = last_request.entry(tenant).or_default();
            if last.as_deref() != Some(e.metadata.request_id.as_str()) {
                deltas.entry((tenant, day(e.recorded_at))).or_default().api_calls += 1;
                *last = Some(e.metadata.request_id.clone());
            }
            if let Event::UsageRecorded(u) = &e.event {
                deltas.entry((tenant, month(u.occurred_at))).or_default().tokens +=
                    i64::try_from(u.usage.total()).unwrap_or(i64::MAX);
            }
        }
        let rows = deltas
            .into_iter()
            .map(|((tenant, period), d)| {
                let last = if period == "all" { last_request.get(tenant).cloned().flatten() } else { None };
                vec![
                    tenant.into(),
                    period.into(),
                    d.api_calls.into(),
                    d.tokens.into(),
                    d.bytes.into(),
                    last.into(),
                ]
            })
            .collect();
        insert_many(
            conn,
            "quota_counters",
            &["tenant_id", "period", "api_calls", "tokens", "bytes", "last_request"],
            rows,
            "ON CONFLICT (tenant_id, period) DO UPDATE SET
                 api_calls = quota_counters.api_calls + excluded.api_calls,
                 tokens = quota_counters.tokens + excluded.tokens,
                 bytes = quota_counters.bytes + excluded.bytes,
                 last_request = COALESCE(excluded.last_request, quota_counters.last_request)",
        )
        .await
    }

    async fn clear(&self, conn: &mut AnyConnection, tenant: &str) -> Result<u64, ProjectionError> {
        exec(conn, "DELETE FROM quota_counters WHERE tenant_id = $1", vec![Val::from(tenant)]).await
    }
}

/// One limit as it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Quota {
    pub limit: LimitName,
    pub used: u64,
    pub max: u64,
    pub remaining: u64,
    /// When the count starts again, for limits over a period.
    pub resets_at: Option<DateTime<Utc>>,
}

/// What the tenant has used of its limits over a period at `now`: calls today, tokens this
/// month, bytes stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeriodUsage {
    pub api_calls: i64,
    pub tokens: i64,
    pub bytes: i64,
}

pub async fn period_usage(
    db: &ReadDb,
    tenant: TenantId,
    now: DateTime<Utc>,
) -> Result<PeriodUsage, ProjectionError> {
    let counters = sqlx::query(
        "SELECT period, api_calls, tokens, bytes FROM quota_counters WHERE tenant_id = $1 AND period IN ($2, $3, 'all')",
    )
    .bind(tenant.to_string())
    .bind(day(now))
    .bind(month(now))
    .fetch_all(&mut *db.scoped(tenant).await?)
    .await?;
    let mut used = PeriodUsage::default();
    for r in &counters {
        let period: String = r.try_get("period")?;
        if period == "all" {
            used.bytes = int(r, "bytes")?;
        } else if period.starts_with("day:") {
            used.api_calls = int(r, "api_calls")?;
        } else {
            used.tokens = int(r, "tokens")?;
        }
    }
    Ok(used)
}

/// Every limit of the tenant with what is used of it at `now`; `None` when the tenant is
/// unknown to the read side.
pub async fn quotas(
    ctx: &TenantContext,
    db: &ReadDb,
    plans: &PlanCatalog,
    now: DateTime<Utc>,
) -> Result<Option<Vec<Quota>>, ProjectionError> {
    let tenant = ctx.tenant_id;
    let Some(row) = directory::tenant(ctx, db).await? else { return Ok(None) };
    // A tenant below others has the limits it inherits unless it sets its own.
    let limits = directory::effective_of(db, &row, plans).await?.limits;
    let key = tenant.to_string();
    let PeriodUsage { api_calls: calls, tokens, bytes } = period_usage(db, tenant, now).await?;
    let count = |table: &'static str, flag: &'static str| {
        let key = key.clone();
        async move {
            let r = sqlx::query(&format!(
                "SELECT COUNT(*) AS n FROM {table} WHERE tenant_id = $1 AND {flag} = 0"
            ))
            .bind(key)
            .fetch_one(&mut *db.scoped(ctx.tenant_id).await?)
            .await?;
            int(&r, "n")
        }
    };
    let agents = count("dir_agents", "archived").await?;
    let users = count("dir_users", "removed").await?;
    let keys = count("dir_api_keys", "revoked").await?;
    let tomorrow = Utc
        .from_utc_datetime(&(now.date_naive() + Duration::days(1)).and_hms_opt(0, 0, 0).unwrap_or_default());
    let (y, m) = if now.month() == 12 { (now.year() + 1, 1) } else { (now.year(), now.month() + 1) };
    let next_month = NaiveDate::from_ymd_opt(y, m, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| Utc.from_utc_datetime(&d));
    let line = |limit, used: i64, max: u64, resets_at| {
        let used = used.max(0) as u64;
        Quota { limit, used, max, remaining: max.saturating_sub(used), resets_at }
    };
    Ok(Some(vec![
        line(LimitName::MaxAgents, agents, limits.max_agents, None),
        line(LimitName::MaxUsers, users, limits.max_users, None),
        line(LimitName::MaxApiKeys, keys, limits.max_api_keys, None),
        line(LimitName::ApiCallsPerDay, calls, limits.api_calls_per_day, Some(tomorrow)),
        line(LimitName::TokensPerMonth, tokens, limits.tokens_per_month, next_month),
        line(LimitName::StorageBytes, bytes, limits.storage_bytes, None),
    ]))
}
