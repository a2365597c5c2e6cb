//! Plans and per-tenant limits.

use serde::{Deserialize, Serialize};

/// A commercial plan; each has default limits, set in config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    Starter,
    Professional,
    Enterprise,
}

impl Plan {
    /// The plan an [`Plan::as_str`] name stands for.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Starter, Self::Professional, Self::Enterprise].into_iter().find(|p| p.as_str() == name)
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Starter => "starter",
            Self::Professional => "professional",
            Self::Enterprise => "enterprise",
        }
    }
}

/// Every limit a tenant has. Field order is persisted (postcard): append, never reorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub max_agents: u64,
    pub max_users: u64,
    pub max_api_keys: u64,
    pub api_calls_per_day: u64,
    pub tokens_per_month: u64,
    pub storage_bytes: u64,
    pub requests_per_minute: u64,
    pub max_concurrent_requests: u64,
}

/// Per-tenant overrides of its plan's limits; `None` keeps the plan's value. Also the shape
/// the API takes them in (unknown names refused; postcard ignores that attribute).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitOverrides {
    pub max_agents: Option<u64>,
    pub max_users: Option<u64>,
    pub max_api_keys: Option<u64>,
    pub api_calls_per_day: Option<u64>,
    pub tokens_per_month: Option<u64>,
    pub storage_bytes: Option<u64>,
    pub requests_per_minute: Option<u64>,
    pub max_concurrent_requests: Option<u64>,
}

impl LimitOverrides {
    /// Upper bound of the count limits (agents, users, keys).
    pub const MAX_COUNT: u64 = 1_000_000;
    pub const MAX_CALLS_PER_DAY: u64 = 10_000_000_000;
    pub const MAX_TOKENS_PER_MONTH: u64 = 1_000_000_000_000_000;
    /// 1 PiB.
    pub const MAX_STORAGE_BYTES: u64 = 1 << 50;
    pub const MAX_REQUESTS_PER_MINUTE: u64 = 100_000_000;
    pub const MAX_CONCURRENT: u64 = 100_000;

    /// Later overrides win field by field.
    pub fn merge(self, later: Self) -> Self {
        Self {
            max_agents: later.max_agents.or(self.max_agents),
            max_users: later.max_users.or(self.max_users),
            max_api_keys: later.max_api_keys.or(self.max_api_keys),
            api_calls_per_day: later.api_calls_per_day.or(self.api_calls_per_day),
            tokens_per_month: later.tokens_per_month.or(self.tokens_per_month),
            storage_bytes: later.storage_bytes.or(self.storage_bytes),
            requests_per_minute: later.requests_per_minute.or(self.requests_per_minute),
            max_concurrent_requests: later.max_concurrent_requests.or(self.max_concurrent_requests),
        }
    }

    pub fn apply_to(self, base: Limits) -> Limits {
        Limits {
            max_agents: self.max_agents.unwrap_or(base.max_agents),
            max_users: self.max_users.unwrap_or(base.max_users),
            max_api_keys: self.max_api_keys.unwrap_or(base.max_api_keys),
            api_calls_per_day: self.api_calls_per_day.unwrap_or(base.api_calls_per_day),
            tokens_per_month: self.tokens_per_month.unwrap_or(base.tokens_per_month),
            storage_bytes: self.storage_bytes.unwrap_or(base.storage_bytes),
            requests_per_minute: self.requests_per_minute.unwrap_or(base.requests_per_minute),
            max_concurrent_requests: self.max_concurrent_requests.unwrap_or(base.max_concurrent_requests),
        }
    }
}

/// The default limits of every plan (from config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanCatalog {
    pub starter: Limits,
    pub professional: Limits,
    pub enterprise: Limits,
}

impl PlanCatalog {
    pub const fn limits(&self, plan: Plan) -> Limits {
        match plan {
            Plan::Starter => self.starter,
            Plan::Professional => self.professional,
            Plan::Enterprise => self.enterprise,
        }
    }
}

impl Default for PlanCatalog {
    fn default() -> Self {
        Self {
            starter: Limits {
                max_agents: 5,
                max_users: 10,
                max_api_keys: 5,
                api_calls_per_day: 10_000,
                tokens_per_month: 1_000_000,
                storage_bytes: 100 * 1024 * 1024,
                requests_per_minute: 600,
                max_concurrent_requests: 16,
            },
            professional: Limits {
                max_agents: 50,
                max_users: 200,
                max_api_keys: 50,
                api_calls_per_day: 500_000,
                tokens_per_month: 50_000_000,
                storage_bytes: 10 * 1024 * 1024 * 1024,
                requests_per_minute: 6_000,
                max_concurrent_requests: 64,
            },
            enterprise: Limits {
                max_agents: 1_000,
                max_users: 10_000,
                max_api_keys: 1_000,
                api_calls_per_day: 10_000_000,
                tokens_per_month: 2_000_000_000,
                storage_bytes: 1024 * 1024 * 1024 * 1024,
                requests_per_minute: 60_000,
                max_concurrent_requests: 256,
            },
        }
    }
}

/// Names of limits as the API and rejections spell them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitName {
    MaxAgents,
    MaxUsers,
    MaxApiKeys,
    ApiCallsPerDay,
    TokensPerMonth,
    StorageBytes,
    RequestsPerMinute,
    MaxConcurrentRequests,
}

impl LimitName {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::MaxAgents => "max_agents",
            Self::MaxUsers => "max_users",
            Self::MaxApiKeys => "max_api_keys",
            Self::ApiCallsPerDay => "api_calls_per_day",
            Self::TokensPerMonth => "tokens_per_month",
            Self::StorageBytes => "storage_bytes",
            Self::RequestsPerMinute => "requests_per_minute",
            Self::MaxConcurrentRequests => "max_concurrent_requests",
        }
    }
}

impl std::fmt::Display for LimitName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_names_round_trip() {
        for plan in [Plan::Starter, Plan::Professional, Plan::Enterprise] {
            assert_eq!(Plan::parse(plan.as_str()), Some(plan));
        }
        assert_eq!(Plan::parse("gold"), None);
    }
}
