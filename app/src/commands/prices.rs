//! Price tables on the platform log's `prices` stream: set by the platform's operators,
//! folded into the history each usage decision prices with (the table in force when the
//! usage happened).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tenantry_domain::price::{self, PriceHistory, PriceTable};
use tenantry_domain::{Rejection, Role, TenantContext, TenantId};

use super::{CommandError, Commands, Decision, Reading, Written};

/// How long this process prices with the history it holds before reading the stream on:
/// a table set through another process is used here at most this much later.
pub const PRICES_FRESH_FOR: Duration = Duration::from_secs(1);

impl Commands {
    async fn price_history(&self, reading: Reading) -> Result<(Arc<PriceHistory>, u64), CommandError> {
        let ctx = &TenantContext::system(TenantId::PLATFORM);
        let reading = match reading {
            Reading::Cached
                if self
                    .prices_read
                    .lock()
                    .is_ok_and(|at| at.is_some_and(|at| at.elapsed() < PRICES_FRESH_FOR)) =>
            {
                Reading::Cached
            }
            _ => Reading::Fresh,
        };
        let folded = self
            .fold(ctx, &price::stream(), &self.caches.prices, reading, PriceHistory::default, price::evolve)
            .await?;
        if reading == Reading::Fresh
            && let Ok(mut at) = self.prices_read.lock()
        {
            *at = Some(Instant::now());
        }
        Ok(folded)
    }

    /// The table in force at `at` (`None` while none was ever set).
    pub async fn prices_at(&self, at: DateTime<Utc>) -> Result<Option<PriceTable>, CommandError> {
        Ok(self.price_history(Reading::Cached).await?.0.in_force(at).cloned())
    }

    /// Every table set, in the order set, with when each takes effect.
    pub async fn price_history_now(&self) -> Result<Arc<PriceHistory>, CommandError> {
        Ok(self.price_history(Reading::Fresh).await?.0)
    }

    /// Set a price table in force from `effective_from` (the platform's operators). Setting the
    /// table already in force from the same time writes nothing.
    #[tracing::instrument(skip_all, err)]
    pub async fn set_prices(
        &self,
        ctx: &TenantContext,
        table: &PriceTable,
        effective_from: DateTime<Utc>,
    ) -> Result<Written, CommandError> {
        if ctx.role != Role::SuperAdmin {
            return Err(Rejection::Forbidden.into());
        }
        table.check()?;
        let ctx = &TenantContext { tenant_id: TenantId::PLATFORM, ..ctx.clone() };
        self.run(ctx, move |reading| async move {
            let (history, version) = self.price_history(reading).await?;
            if history.tables.last().is_some_and(|(from, last)| *from == effective_from && last == table) {
                return Ok(None);
            }
            let events = vec![table.to_event(effective_from)];
            let stream = price::stream();
            let Some(request) = Self::request(stream.clone(), version, &events)? else { return Ok(None) };
            Ok(Some(Decision::new(request).then_advance(
                &self.caches.prices,
                TenantId::PLATFORM,
                stream,
                version,
                events,
                price::evolve,
            )))
        })
        .await
    }
}

/// Where a tenant stands against its budget this month, as its usage decisions see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetStanding {
    pub budget: Option<tenantry_domain::event::Budget>,
    /// `YYYY-MM`.
    pub month: String,
    /// The month's recorded cost, in 1e-9 units.
    pub spent_nanos: i64,
    /// Thresholds (thousandths) crossed this month.
    pub crossed: Vec<u16>,
}

impl Commands {
    /// The tenant's budget and this month's recorded spending, read from its streams now.
    pub async fn budget_standing(&self, ctx: &TenantContext) -> Result<BudgetStanding, CommandError> {
        use chrono::Datelike;
        let now = Utc::now();
        let (tenant, _) = self.tenant_state(ctx, Reading::Fresh).await?;
        let stream = tenantry_domain::StreamId::usage(now.year(), now.month());
        let (month, _) = self.usage_month(ctx, &stream, Reading::Fresh).await?;
        Ok(BudgetStanding {
            budget: tenant.budget.clone(),
            month: now.format("%Y-%m").to_string(),
            spent_nanos: month.cost_nanos,
            crossed: month.crossed.iter().copied().collect(),
        })
    }
}
