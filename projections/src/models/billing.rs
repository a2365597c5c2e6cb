//! Tokens and cost per model per day (months are sums of days), priced from a table given
//! in config with exact decimal arithmetic.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use serde::Serialize;
use sqlx::AnyConnection;
use tenantry_domain::{Event, TenantContext};
use tenantry_store::RecordedEvent;

use super::{int, text};
use crate::db::{ReadDb, Val, exec, insert_many};
use crate::error::ProjectionError;
use crate::runtime::Projector;

/// Persisted projector name.
pub const NAME: &str = "billing_usage";

pub use tenantry_domain::price::{Price, PriceTable, money};

/// What a usage record cost: what it carries (decided with the prices in force when it
/// happened), or for a record from before prices were on the log, the configured table's.
pub fn cost_of(prices: &PriceTable, u: &tenantry_domain::event::UsageRecorded) -> (i64, bool) {
    match &u.cost {
        Some(c) => (c.nanos, c.unpriced),
        None => prices.cost_nanos(&u.model, u.usage.prompt_tokens, u.usage.completion_tokens),
    }
}

#[derive(Debug, Clone, Default)]
pub struct Billing {
    pub prices: PriceTable,
}

#[derive(Debug, Default)]
struct Acc {
    prompt: i64,
    completion: i64,
    cost: i64,
    unpriced: bool,
    requests: i64,
}

#[async_trait]
impl Projector for Billing {
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

    /// One multi-row upsert for every tenant's days and models (one row a key: PostgreSQL
    /// will not update a row twice in one statement).
    async fn apply_many(
        &self,
        conn: &mut AnyConnection,
        pages: &[(&str, &[RecordedEvent])],
    ) -> Result<(), ProjectionError> {
        let mut acc: BTreeMap<(&str, String, String), Acc> = BTreeMap::new();
        for (tenant, e) in super::each_event(pages) {
            if let Event::UsageRecorded(u) = &e.event {
                let (cost, unpriced) = cost_of(&self.prices, u);
                let a = acc
                    .entry((tenant, u.occurred_at.format("%Y-%m-%d").to_string(), u.model.clone()))
                    .or_default();
                a.prompt += i64::try_from(u.usage.prompt_tokens).unwrap_or(i64::MAX);
                a.completion += i64::try_from(u.usage.completion_tokens).unwrap_or(i64::MAX);
                a.cost += cost;
                a.unpriced |= unpriced;
                a.requests += 1;
            }
        }
        let rows = acc
            .into_iter()
            .map(|((tenant, day, model), a)| {
                vec![
                    tenant.into(),
                    day.into(),
                    model.into(),
                    a.prompt.into(),
                    a.completion.into(),
                    a.cost.into(),
                    a.unpriced.into(),
                    a.requests.into(),
                ]
            })
            .collect();
        insert_many(
            conn,
            "usage_daily",
            &[
                "tenant_id",
                "day",
                "model",
                "prompt_tokens",
                "completion_tokens",
                "cost_nanos",
                "unpriced",
                "requests",
            ],
            rows,
            "ON CONFLICT (tenant_id, day, model) DO UPDATE SET
                 prompt_tokens = usage_daily.prompt_tokens + excluded.prompt_tokens,
                 completion_tokens = usage_daily.completion_tokens + excluded.completion_tokens,
                 cost_nanos = usage_daily.cost_nanos + excluded.cost_nanos,
                 unpriced = CASE WHEN excluded.unpriced = 1 THEN 1 ELSE usage_daily.unpriced END,
                 requests = usage_daily.requests + excluded.requests",
        )
        .await
    }

    async fn clear(&self, conn: &mut AnyConnection, tenant: &str) -> Result<u64, ProjectionError> {
        exec(conn, "DELETE FROM usage_daily WHERE tenant_id = $1", vec![Val::from(tenant)]).await
    }
}

/// Usage of one model over a period (a day, or the whole period).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageLine {
    pub day: Option<String>,
    pub model: String,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub requests: i64,
    /// Exact decimal.
    pub cost: String,
    pub unpriced: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageReport {
    pub from: String,
    pub to: String,
    pub by_day: Vec<UsageLine>,
    pub by_model: Vec<UsageLine>,
    pub total_tokens: i64,
    pub total_cost: String,
}

/// Usage from day `from` to day `to` inclusive (`YYYY-MM-DD`), per model per day and per model.
pub async fn usage(
    ctx: &TenantContext,
    db: &ReadDb,
    from: &str,
    to: &str,
) -> Result<UsageReport, ProjectionError> {
    usage_of(db, &[ctx.tenant_id], from, to).await
}

/// The usage of several tenants together (a tenant and those below it), as one report.
pub async fn usage_of(
    db: &ReadDb,
    tenants: &[tenantry_domain::TenantId],
    from: &str,
    to: &str,
) -> Result<UsageReport, ProjectionError> {
    // (prompt, completion, cost in nanos, requests, unpriced), by (day, model) and by model.
    type Sums = (i64, i64, i64, i64, bool);
    let add = |m: &mut Sums, p: i64, c: i64, cost: i64, n: i64, unpriced: bool| {
        *m = (
            m.0.saturating_add(p),
            m.1.saturating_add(c),
            m.2.saturating_add(cost),
            m.3.saturating_add(n),
            m.4 || unpriced,
        );
    };
    let mut days: BTreeMap<(String, String), Sums> = BTreeMap::new();
    let mut models: BTreeMap<String, Sums> = BTreeMap::new();
    let (mut total_tokens, mut total_cost) = (0i64, 0i64);
    for tenant in tenants {
        let rows = sqlx::query(
            "SELECT day, model, prompt_tokens, completion_tokens, cost_nanos, unpriced, requests FROM usage_daily
             WHERE tenant_id = $1 AND day >= $2 AND day <= $3 ORDER BY day, model",
        )
        .bind(tenant.to_string())
        .bind(from)
        .bind(to)
        .fetch_all(db.platform_readers())
        .await?;
        for r in &rows {
            let (model, p, c, cost, unpriced, n) = (
                text(r, "model")?,
                int(r, "prompt_tokens")?,
                int(r, "completion_tokens")?,
                int(r, "cost_nanos")?,
                int(r, "unpriced")? != 0,
                int(r, "requests")?,
            );
            add(models.entry(model.clone()).or_default(), p, c, cost, n, unpriced);
            add(days.entry((text(r, "day")?, model)).or_default(), p, c, cost, n, unpriced);
            total_tokens = total_tokens.saturating_add(p.saturating_add(c));
            total_cost = total_cost.saturating_add(cost);
        }
    }
    let line = |day: Option<String>, model: String, (p, c, cost, n, unpriced): Sums| UsageLine {
        day,
        model,
        prompt_tokens: p,
        completion_tokens: c,
        requests: n,
        cost: money(cost),
        unpriced,
    };
    Ok(UsageReport {
        from: from.to_owned(),
        to: to.to_owned(),
        by_day: days.into_iter().map(|((day, model), sums)| line(Some(day), model, sums)).collect(),
        by_model: models.into_iter().map(|(model, sums)| line(None, model, sums)).collect(),
        total_tokens,
        total_cost: money(total_cost),
    })
}

/// One tenant's line in its partner's usage report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantUsage {
    pub tenant_id: String,
    pub slug: String,
    pub name: String,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub requests: i64,
    /// Exact decimal.
    pub cost: String,
}

/// A partner's usage: each of its tenants (those without usage too) and the total.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartnerUsage {
    pub partner_id: String,
    pub from: String,
    pub to: String,
    pub tenants: Vec<TenantUsage>,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub requests: i64,
    pub total_cost: String,
}

/// The usage of every tenant of `partner` from day `from` to day `to` inclusive.
pub async fn partner_usage(
    db: &ReadDb,
    partner: tenantry_domain::PartnerId,
    from: &str,
    to: &str,
) -> Result<PartnerUsage, ProjectionError> {
    let tenants =
        sqlx::query("SELECT tenant_id, slug, name FROM dir_tenants WHERE partner_id = $1 ORDER BY slug")
            .bind(partner.to_string())
            .fetch_all(db.platform_readers())
            .await?;
    let usage = sqlx::query(
        "SELECT u.tenant_id, u.prompt_tokens, u.completion_tokens, u.cost_nanos, u.requests
         FROM usage_daily u JOIN dir_tenants t ON t.tenant_id = u.tenant_id
         WHERE t.partner_id = $1 AND u.day >= $2 AND u.day <= $3",
    )
    .bind(partner.to_string())
    .bind(from)
    .bind(to)
    .fetch_all(db.platform_readers())
    .await?;
    // Per tenant: prompt, completion, requests, cost in nanos.
    let mut sums: HashMap<String, [i64; 4]> = HashMap::new();
    for r in &usage {
        let line = sums.entry(text(r, "tenant_id")?).or_default();
        for (sum, column) in
            line.iter_mut().zip(["prompt_tokens", "completion_tokens", "requests", "cost_nanos"])
        {
            *sum = sum.saturating_add(int(r, column)?);
        }
    }
    let mut total = [0i64; 4];
    let mut lines = Vec::with_capacity(tenants.len());
    for r in &tenants {
        let id = text(r, "tenant_id")?;
        let [p, c, n, cost] = sums.get(&id).copied().unwrap_or_default();
        for (t, v) in total.iter_mut().zip([p, c, n, cost]) {
            *t = t.saturating_add(v);
        }
        lines.push(TenantUsage {
            tenant_id: id,
            slug: text(r, "slug")?,
            name: text(r, "name")?,
            prompt_tokens: p,
            completion_tokens: c,
            requests: n,
            cost: money(cost),
        });
    }
    Ok(PartnerUsage {
        partner_id: partner.to_string(),
        from: from.to_owned(),
        to: to.to_owned(),
        tenants: lines,
        prompt_tokens: total[0],
        completion_tokens: total[1],
        requests: total[2],
        total_cost: money(total[3]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_are_exact_decimals() {
        let mut prices = PriceTable::default();
        prices.models.insert(
            "m".into(),
            Price { prompt_per_1k: "0.0025".parse().unwrap(), completion_per_1k: "0.01".parse().unwrap() },
        );
        // 1234 * 0.0025/1000 + 567 * 0.01/1000 = 0.003085 + 0.00567 = 0.008755
        assert_eq!(prices.cost_nanos("m", 1234, 567), (8_755_000, false));
        assert_eq!(money(8_755_000), "0.008755");
        // Unknown models take the default and are flagged.
        assert_eq!(prices.cost_nanos("other", 1000, 1000), (3_000_000, true));
        // 0.1 + 0.2 style sums stay exact.
        let (a, _) = prices.cost_nanos("m", 40, 0);
        assert_eq!(money(a * 3), "0.0003");
    }
}
