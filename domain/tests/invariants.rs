//! Invariants over any sequence of commands: whatever callers ask, in whatever order, the
//! state decided on never passes the tenant's limits.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use tenantry_domain::command::*;
use tenantry_domain::conversation::{self, UsageState};
use tenantry_domain::event::*;
use tenantry_domain::limits::{LimitOverrides, Plan, PlanCatalog};
use tenantry_domain::tenant::{self, TenantCommand, TenantState};
use tenantry_domain::*;

/// A small pool of ids, so commands collide on the same objects.
const POOL: u128 = 6;

#[derive(Debug, Clone)]
enum Step {
    CreateAgent(u128),
    ArchiveAgent(u128),
    AddUser(u128),
    RemoveUser(u128),
    IssueKey(u128),
    RevokeKey(u128),
    Limits(Option<u64>, Option<u64>, Option<u64>),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..POOL).prop_map(Step::CreateAgent),
        (0..POOL).prop_map(Step::ArchiveAgent),
        (0..POOL).prop_map(Step::AddUser),
        (0..POOL).prop_map(Step::RemoveUser),
        (0..POOL).prop_map(Step::IssueKey),
        (0..POOL).prop_map(Step::RevokeKey),
        (proptest::option::of(0u64..5), proptest::option::of(0u64..5), proptest::option::of(0u64..5))
            .prop_map(|(a, u, k)| Step::Limits(a, u, k)),
    ]
}

fn command(step: &Step) -> TenantCommand {
    let id = |n: u128, salt: u128| uuid::Uuid::from_u128(salt << 64 | (n + 1));
    match *step {
        Step::CreateAgent(n) => TenantCommand::CreateAgent(CreateAgent {
            agent_id: AgentId::from(id(n, 1)),
            name: "a".into(),
            model: "m".into(),
            system_prompt: String::new(),
            tool_ids: vec![],
        }),
        Step::ArchiveAgent(n) => {
            TenantCommand::ArchiveAgent(ArchiveAgent { agent_id: AgentId::from(id(n, 1)) })
        }
        Step::AddUser(n) => TenantCommand::AddUser(AddUser {
            user_id: UserId::from(id(n, 2)),
            email: format!("u{n}@x.io"),
            role: Role::User,
        }),
        Step::RemoveUser(n) => TenantCommand::RemoveUser(RemoveUser { user_id: UserId::from(id(n, 2)) }),
        Step::IssueKey(n) => TenantCommand::IssueApiKey(IssueApiKey {
            key_id: ApiKeyId::from(id(n, 3)),
            name: "k".into(),
            role: Role::Admin,
            secret_hash: vec![1],
            user_id: None,
            scopes: vec![],
            expires_at: None,
            now: chrono::Utc::now(),
        }),
        Step::RevokeKey(n) => TenantCommand::RevokeApiKey(RevokeApiKey { key_id: ApiKeyId::from(id(n, 3)) }),
        Step::Limits(a, u, k) => TenantCommand::UpdateTenant(UpdateTenant {
            limits: Some(LimitOverrides {
                max_agents: a,
                max_users: u,
                max_api_keys: k,
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

fn start(max: u64) -> TenantState {
    tenant::evolve(
        TenantState::new(PlanCatalog::default()),
        &Event::TenantCreated(TenantCreated {
            slug: "acme".into(),
            name: "Acme".into(),
            plan: Plan::Starter,
            partner_id: None,
            settings: Settings::default(),
            limits: LimitOverrides {
                max_agents: Some(max),
                max_users: Some(max),
                max_api_keys: Some(max),
                ..Default::default()
            },
            ancestors: Vec::new(),
        }),
    )
}

proptest! {
    /// Counts only grow through a create, and a create is decided against the limit in force:
    /// whenever a command grows a count, the count after it is within the limit.
    #[test]
    fn counts_never_pass_their_limits_through_a_create(max in 0u64..4, steps in proptest::collection::vec(step(), 0..60)) {
        let ctx = TenantContext::system(TenantId::new());
        let mut state = start(max);
        for s in &steps {
            let before = (state.active_agents(), state.active_users(), state.active_api_keys());
            if let Ok(events) = tenant::decide(&ctx, &state, &command(s)) {
                state = events.iter().fold(state, tenant::evolve);
            }
            let limits = state.limits();
            let after = (state.active_agents(), state.active_users(), state.active_api_keys());
            if after.0 > before.0 { prop_assert!(after.0 <= limits.max_agents); }
            if after.1 > before.1 { prop_assert!(after.1 <= limits.max_users); }
            if after.2 > before.2 { prop_assert!(after.2 <= limits.max_api_keys); }
            // A limit lowered under the count stops creates; it never archives anything.
            prop_assert!(after.0 >= before.0 || matches!(s, Step::ArchiveAgent(_)));
        }
    }

    /// Over any records, a month's tokens never pass its limit, and a request id bills once.
    #[test]
    fn monthly_tokens_never_pass_the_limit(limit in 0u64..10_000, records in proptest::collection::vec((0u64..3_000, 0u8..8), 0..60)) {
        let ctx = TenantContext::system(TenantId::new());
        let mut tenant_state = start(5);
        tenant_state.overrides.tokens_per_month = Some(limit);
        let mut month = UsageState::default();
        let mut billed = std::collections::BTreeMap::new();
        for (tokens, id) in records {
            let record = RecordUsage {
                model: "m".into(),
                kind: "chat".into(),
                usage: TokenUsage { prompt_tokens: tokens, completion_tokens: 0 },
                request_id: Some(format!("r{id}")),
                occurred_at: Utc.with_ymd_and_hms(2026, 11, 3, 10, 0, 0).unwrap(),
            };
            if let Ok(events) = conversation::decide_usage(&ctx, &tenant_state, &month, &record, None) {
                for e in &events { *billed.entry(id).or_insert(0) += 1; month = conversation::evolve_usage(month, e); }
            }
            prop_assert!(month.tokens <= limit);
            prop_assert!(billed.values().all(|n| *n == 1));
        }
    }

    /// Under a hard-stop budget the month's recorded cost never passes it, and each
    /// threshold is told once, when the cost first reaches it.
    #[test]
    fn a_hard_stop_budget_holds_and_alerts_once(budget in 1i64..50_000_000, records in proptest::collection::vec(0u64..5_000, 0..60)) {
        use tenantry_domain::event::Budget;
        let ctx = TenantContext::system(TenantId::new());
        let mut tenant_state = start(5);
        tenant_state.budget = Some(Budget { monthly_nanos: budget, currency: "USD".into(), alert_at_permille: vec![500, 1000], hard_stop: true });
        let prices = tenantry_domain::price::PriceTable::default();
        let mut month = UsageState::default();
        let mut told = Vec::new();
        for (i, tokens) in records.into_iter().enumerate() {
            let record = RecordUsage {
                model: "m".into(),
                kind: "chat".into(),
                usage: TokenUsage { prompt_tokens: tokens, completion_tokens: tokens },
                request_id: Some(format!("r{i}")),
                occurred_at: Utc.with_ymd_and_hms(2026, 11, 3, 10, 0, 0).unwrap(),
            };
            if let Ok(events) = conversation::decide_usage(&ctx, &tenant_state, &month, &record, Some(&prices)) {
                for e in &events {
                    month = conversation::evolve_usage(month, e);
                    if let Event::BudgetThresholdCrossed(c) = e {
                        prop_assert!(i128::from(month.cost_nanos) * 1000 >= i128::from(budget) * i128::from(c.threshold_permille));
                        told.push(c.threshold_permille);
                    }
                }
            }
            prop_assert!(month.cost_nanos <= budget);
        }
        let mut unique = told.clone();
        unique.dedup();
        prop_assert_eq!(unique, told);
    }
}
