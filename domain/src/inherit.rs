//! What a tenant below others inherits: each setting and each limit from the nearest tenant
//! on its path (itself first, then its parent, up to the root) that sets it, else the
//! default (settings) or its own plan (limits). Feature flags merge by name the same way.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::event::Settings;
use crate::ids::TenantId;
use crate::limits::{LimitOverrides, Limits};

/// One tenant of a path: its own settings and limit overrides.
#[derive(Debug, Clone, Copy)]
pub struct Level<'a> {
    pub tenant: TenantId,
    pub settings: &'a Settings,
    pub limits: &'a LimitOverrides,
}

/// Where an effective value came from: a tenant of the path, or nowhere (the default for a
/// setting, the tenant's plan for a limit).
pub type Source = Option<TenantId>;

/// The effective settings and limits of a tenant, each with where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Effective {
    pub settings: Settings,
    pub limits: Limits,
    /// Setting name to the tenant it came from (`null`: the default).
    pub settings_from: BTreeMap<String, Source>,
    /// Feature flag name to the tenant that set it.
    pub feature_flags_from: BTreeMap<String, TenantId>,
    /// Limit name to the tenant it came from (`null`: the tenant's plan).
    pub limits_from: BTreeMap<String, Source>,
}

/// The settings in effect for a tenant whose ancestors have `above` in effect: each of its
/// own values where it sets one, theirs otherwise; feature flags merge by name.
pub fn merge_settings(above: &Settings, own: &Settings) -> Settings {
    let mut flags: BTreeMap<String, bool> = above.feature_flags.iter().cloned().collect();
    flags.extend(own.feature_flags.iter().cloned());
    Settings {
        agent_name: own.agent_name.clone().or_else(|| above.agent_name.clone()),
        system_prompt: own.system_prompt.clone().or_else(|| above.system_prompt.clone()),
        default_model: own.default_model.clone().or_else(|| above.default_model.clone()),
        allowed_models: if own.allowed_models.is_empty() {
            above.allowed_models.clone()
        } else {
            own.allowed_models.clone()
        },
        feature_flags: flags.into_iter().collect(),
        custom: {
            let mut custom = crate::command::custom_object(above.custom.as_deref());
            custom.extend(crate::command::custom_object(own.custom.as_deref()));
            crate::command::custom_text(&custom)
        },
    }
}

/// The overrides a tenant inherits from `above` (its parent first, then up to the root):
/// each limit from the nearest tenant that overrides it.
pub fn inherited_limits(above: &[LimitOverrides]) -> LimitOverrides {
    above.iter().rev().fold(LimitOverrides::default(), |acc, l| acc.merge(*l))
}

/// The effective settings and limits of the last tenant of `path` (root first), whose plan
/// gives `plan_limits`.
pub fn effective(path: &[Level<'_>], plan_limits: Limits) -> Effective {
    let mut settings = Settings::default();
    let mut settings_from: BTreeMap<String, Source> = BTreeMap::new();
    let mut flags: BTreeMap<String, (bool, TenantId)> = BTreeMap::new();
    let mut limits = LimitOverrides::default();
    let mut limits_from: BTreeMap<String, Source> = BTreeMap::new();
    for name in ["agent_name", "system_prompt", "default_model", "allowed_models", "custom"] {
        settings_from.insert(name.into(), None);
    }
    // Root first: a level below overrides what a level above set.
    for level in path {
        let s = level.settings;
        let mut take = |name: &str, set: bool| {
            if set {
                settings_from.insert(name.into(), Some(level.tenant));
            }
            set
        };
        if take("agent_name", s.agent_name.is_some()) {
            settings.agent_name = s.agent_name.clone();
        }
        if take("system_prompt", s.system_prompt.is_some()) {
            settings.system_prompt = s.system_prompt.clone();
        }
        if take("default_model", s.default_model.is_some()) {
            settings.default_model = s.default_model.clone();
        }
        if take("allowed_models", !s.allowed_models.is_empty()) {
            settings.allowed_models = s.allowed_models.clone();
        }
        for (name, on) in &s.feature_flags {
            flags.insert(name.clone(), (*on, level.tenant));
        }
        if take("custom", s.custom.is_some()) {
            let mut custom = crate::command::custom_object(settings.custom.as_deref());
            custom.extend(crate::command::custom_object(s.custom.as_deref()));
            settings.custom = crate::command::custom_text(&custom);
        }
        limits = limits.merge(*level.limits);
        for (name, set) in overridden(level.limits) {
            if set {
                limits_from.insert(name.into(), Some(level.tenant));
            } else {
                limits_from.entry(name.into()).or_insert(None);
            }
        }
    }
    settings.feature_flags = flags.iter().map(|(name, (on, _))| (name.clone(), *on)).collect();
    Effective {
        settings,
        limits: limits.apply_to(plan_limits),
        settings_from,
        feature_flags_from: flags.into_iter().map(|(name, (_, from))| (name, from)).collect(),
        limits_from,
    }
}

fn overridden(l: &LimitOverrides) -> [(&'static str, bool); 8] {
    [
        ("max_agents", l.max_agents.is_some()),
        ("max_users", l.max_users.is_some()),
        ("max_api_keys", l.max_api_keys.is_some()),
        ("api_calls_per_day", l.api_calls_per_day.is_some()),
        ("tokens_per_month", l.tokens_per_month.is_some()),
        ("storage_bytes", l.storage_bytes.is_some()),
        ("requests_per_minute", l.requests_per_minute.is_some()),
        ("max_concurrent_requests", l.max_concurrent_requests.is_some()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::{Plan, PlanCatalog};

    #[test]
    fn the_nearest_tenant_that_sets_a_value_wins_and_says_so() {
        let (root, mid, leaf) = (TenantId::new(), TenantId::new(), TenantId::new());
        let root_settings = Settings {
            agent_name: Some("Ava".into()),
            system_prompt: Some("root prompt".into()),
            allowed_models: vec!["a".into(), "b".into()],
            feature_flags: vec![("beta".into(), true), ("chat".into(), true)],
            ..Default::default()
        };
        let mid_settings = Settings {
            system_prompt: Some("mid prompt".into()),
            feature_flags: vec![("beta".into(), false)],
            ..Default::default()
        };
        let leaf_settings = Settings { default_model: Some("b".into()), ..Default::default() };
        let root_limits = LimitOverrides { max_agents: Some(7), max_users: Some(70), ..Default::default() };
        let mid_limits = LimitOverrides { max_users: Some(30), ..Default::default() };
        let none = LimitOverrides::default();
        let path = [
            Level { tenant: root, settings: &root_settings, limits: &root_limits },
            Level { tenant: mid, settings: &mid_settings, limits: &mid_limits },
            Level { tenant: leaf, settings: &leaf_settings, limits: &none },
        ];
        let plan = PlanCatalog::default().limits(Plan::Starter);
        let e = effective(&path, plan);
        assert_eq!(e.settings.agent_name.as_deref(), Some("Ava"));
        assert_eq!(e.settings.system_prompt.as_deref(), Some("mid prompt"));
        assert_eq!(e.settings.default_model.as_deref(), Some("b"));
        assert_eq!(e.settings.allowed_models, ["a", "b"]);
        assert_eq!(e.settings.feature_flags, [("beta".to_owned(), false), ("chat".to_owned(), true)]);
        assert_eq!(e.settings_from["agent_name"], Some(root));
        assert_eq!(e.settings_from["system_prompt"], Some(mid));
        assert_eq!(e.settings_from["default_model"], Some(leaf));
        assert_eq!(e.feature_flags_from["beta"], mid);
        assert_eq!((e.limits.max_agents, e.limits.max_users), (7, 30));
        assert_eq!(e.limits.max_api_keys, plan.max_api_keys);
        assert_eq!((e.limits_from["max_users"], e.limits_from["max_api_keys"]), (Some(mid), None));
        // What the leaf's decisions see: the overrides it inherits, nearest first.
        let inherited = inherited_limits(&[mid_limits, root_limits]);
        assert_eq!((inherited.max_agents, inherited.max_users), (Some(7), Some(30)));
    }
}
